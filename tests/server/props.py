# Extended (MAPI) properties and FindItem restrictions of the test EWS server.
# An extended property is named by a t:ExtendedFieldURI; it is stored on the
# item under a canonical key (property set, name/id/tag, type) so any client
# spelling of the same property finds it, and it travels with copies and
# moves. A few tagged properties Exchange computes from the item itself
# (PR_MESSAGE_FLAGS, PR_MESSAGE_DELIVERY_TIME, PR_MESSAGE_SIZE) are derived,
# never stored. Restrictions (IsEqualTo, IsNotEqualTo, Exists, And, Or, Not)
# compile to a predicate over items.

import calendar
import datetime
import time

from mailbox import MailboxError
from soap import esc, local, t

# The property exchangefs stamps on every message it creates, to find it
# again when the answer to a CreateItem was lost.
TOKEN_SET = "3c7e2f4a-9b1d-4e6a-8f5c-2d0b7a1e9c43"
TOKEN_KEY = ("guid:" + TOKEN_SET, "name:ExchangefsToken", "String")

PR_MESSAGE_DELIVERY_TIME = 0x0E06
PR_MESSAGE_FLAGS = 0x0E07
PR_MESSAGE_SIZE = 0x0E08
PID_TAG_FLAG_STATUS = 0x1090           # MS-OXOFLAG: 1 complete, 2 flagged, absent: not flagged
MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8
MSGFLAG_HASATTACH = 0x10
COMPUTED_TAGS = {PR_MESSAGE_DELIVERY_TIME, PR_MESSAGE_FLAGS, PR_MESSAGE_SIZE, PID_TAG_FLAG_STATUS}
FLAG_STATUS_VALUES = {"Complete": 1, "Flagged": 2}

PROPERTY_TYPES = {"ApplicationTime", "ApplicationTimeArray", "Binary", "BinaryArray", "Boolean", "CLSID",
                  "CLSIDArray", "Currency", "CurrencyArray", "Double", "DoubleArray", "Error", "Float",
                  "FloatArray", "Integer", "IntegerArray", "Long", "LongArray", "Null", "Object",
                  "ObjectArray", "Short", "ShortArray", "SystemTime", "SystemTimeArray", "String",
                  "StringArray"}
INVALID_EXT = ("ErrorInvalidExtendedProperty", "The extended property attribute combination is invalid.")
UNSUPPORTED = ("ErrorUnsupportedQueryFilter", "The restriction or sort order is too complex for this operation.")


def _int(s):
    s = (s or "").strip()
    return int(s, 16) if s.lower().startswith("0x") else int(s)


def ext_key(uri):
    """Canonical key of a t:ExtendedFieldURI element (or attribute dict);
    raises MailboxError ErrorInvalidExtendedProperty for a bad combination."""
    a = uri.attrib if hasattr(uri, "attrib") else uri
    ptype = a.get("PropertyType")
    if ptype not in PROPERTY_TYPES:
        raise MailboxError(*INVALID_EXT)
    pset = a.get("PropertySetId")
    dset = a.get("DistinguishedPropertySetId")
    try:
        if a.get("PropertyTag") is not None:
            if pset or dset or a.get("PropertyName") is not None or a.get("PropertyId") is not None:
                raise MailboxError(*INVALID_EXT)
            tag = _int(a["PropertyTag"])
            if not 0 < tag <= 0xFFFF:
                raise MailboxError(*INVALID_EXT)
            return ("", f"tag:{tag}", ptype)
        if bool(pset) == bool(dset):
            raise MailboxError(*INVALID_EXT)
        where = "guid:" + pset.strip().lower() if pset else "dist:" + dset.strip()
        if (a.get("PropertyName") is None) == (a.get("PropertyId") is None):
            raise MailboxError(*INVALID_EXT)
        if a.get("PropertyName") is not None:
            return (where, "name:" + a["PropertyName"], ptype)
        return (where, f"id:{_int(a['PropertyId'])}", ptype)
    except ValueError:
        raise MailboxError(*INVALID_EXT) from None


def key_tag(key):
    return int(key[1][4:]) if key[0] == "" and key[1].startswith("tag:") else None


def uri_xml(key):
    """The t:ExtendedFieldURI element for a canonical key."""
    where, prop, ptype = key
    attrs = []
    if where.startswith("guid:"):
        attrs.append(f'PropertySetId="{esc(where[5:])}"')
    elif where.startswith("dist:"):
        attrs.append(f'DistinguishedPropertySetId="{esc(where[5:])}"')
    if prop.startswith("tag:"):
        attrs.append('PropertyTag="0x%x"' % int(prop[4:]))
    elif prop.startswith("id:"):
        attrs.append(f'PropertyId="{int(prop[3:])}"')
    else:
        attrs.append(f'PropertyName="{esc(prop[5:])}"')
    attrs.append(f'PropertyType="{ptype}"')
    return f"<t:ExtendedFieldURI {' '.join(attrs)}/>"


def value_of(prop_elem, key):
    """The value of a t:ExtendedProperty element: a string, or a list of
    strings for the *Array types."""
    if key[2].endswith("Array"):
        vals = prop_elem.find(t("Values"))
        if vals is None:
            raise MailboxError("ErrorInvalidExtendedPropertyValue", "The extended property value is invalid.")
        return [v.text or "" for v in vals if local(v.tag) == "Value"]
    v = prop_elem.find(t("Value"))
    if v is None:
        raise MailboxError("ErrorInvalidExtendedPropertyValue", "The extended property value is invalid.")
    text = v.text or ""
    check_value(key, text)
    return text


def check_value(key, text):
    ptype = key[2]
    try:
        if ptype in ("Integer", "Long", "Short"):
            int(text.strip())
        elif ptype == "Boolean" and text.strip().lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        elif ptype == "SystemTime":
            parse_datetime(text)
        elif ptype in ("Double", "Float", "Currency"):
            float(text.strip())
    except ValueError:
        raise MailboxError("ErrorInvalidExtendedPropertyValue",
                           "The extended property value is invalid.") from None


def parse_datetime(text):
    """xs:dateTime (Z, +hh:mm or no zone = UTC, fractional seconds) -> Unix seconds."""
    s = (text or "").strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    d = datetime.datetime.fromisoformat(s)
    if d.tzinfo is None:
        return calendar.timegm(d.timetuple())
    return int(d.timestamp())


def computed(it, key):
    """Value of a derived tagged property, or None."""
    tag = key_tag(key)
    if tag == PR_MESSAGE_FLAGS and key[2] == "Integer":
        return str((MSGFLAG_READ if it.is_read else 0) | (MSGFLAG_UNSENT if it.is_draft else 0)
                   | (MSGFLAG_HASATTACH if it.has_attachments else 0))
    if tag == PR_MESSAGE_DELIVERY_TIME and key[2] == "SystemTime":
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(it.received))
    if tag == PR_MESSAGE_SIZE and key[2] == "Integer":
        return str(it.size)
    if tag == PID_TAG_FLAG_STATUS and key[2] == "Integer" and it.flag in FLAG_STATUS_VALUES:
        return str(FLAG_STATUS_VALUES[it.flag])
    return None


def flag_from_status(value):
    """item:Flag status of a PidTagFlagStatus value (None: delete it)."""
    n = int(value.strip()) if value is not None else 0
    return {1: "Complete", 2: "Flagged"}.get(n, "NotFlagged")


def get(it, key):
    v = computed(it, key)
    return v if v is not None else it.ext.get(key)


def prop_xml(key, value):
    if isinstance(value, list):
        inner = "<t:Values>" + "".join(f"<t:Value>{esc(v)}</t:Value>" for v in value) + "</t:Values>"
    else:
        inner = f"<t:Value>{esc(value)}</t:Value>"
    return f"<t:ExtendedProperty>{uri_xml(key)}{inner}</t:ExtendedProperty>"


def item_props_xml(it, keys):
    """ExtendedProperty elements for the requested keys the item has."""
    out = []
    for key in sorted(keys):
        v = get(it, key)
        if v is not None:
            out.append(prop_xml(key, v))
    return "".join(out)


# ---- restrictions --------------------------------------------------------------------------

def _field_getter(uri):
    """(getter(item) -> value or None, kind) for a path element."""
    name = local(uri.tag)
    if name == "ExtendedFieldURI":
        key = ext_key(uri)
        return (lambda it: get(it, key)), key[2]
    if name != "FieldURI":
        raise MailboxError(*UNSUPPORTED)
    f = uri.get("FieldURI")
    getters = {
        "item:Subject": (lambda it: it.subject, "String"),
        "message:InternetMessageId": (lambda it: it.message_id, "String"),
        "item:ItemClass": (lambda it: it.item_class, "String"),
        "message:IsRead": (lambda it: it.is_read, "Boolean"),
        "item:IsDraft": (lambda it: it.is_draft, "Boolean"),
        "item:HasAttachments": (lambda it: it.has_attachments, "Boolean"),
        "item:Categories": (lambda it: list(it.categories) or None, "StringArray"),
    }
    if f not in getters:
        raise MailboxError("ErrorUnsupportedPathForQuery", "The property path is not supported for this query.")
    return getters[f]


def _norm(value, kind):
    """Comparable form of a stored or constant value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    s = str(value).strip() if kind not in ("String", "StringArray") else str(value)
    if kind == "Boolean":
        return s.lower() in ("true", "1")
    if kind in ("Integer", "Long", "Short"):
        try:
            return int(s)
        except ValueError:
            return None
    if kind == "SystemTime":
        try:
            return parse_datetime(s)
        except ValueError:
            return None
    return s.lower()        # Exchange compares strings without regard to case


def _equal_pred(e, negate):
    paths = [c for c in e if local(c.tag) in ("FieldURI", "ExtendedFieldURI", "IndexedFieldURI")]
    other = e.find(t("FieldURIOrConstant"))
    const = other.find(t("Constant")) if other is not None else None
    if len(paths) != 1 or const is None or const.get("Value") is None:
        raise MailboxError(*UNSUPPORTED)
    getter, kind = _field_getter(paths[0])
    want = _norm(const.get("Value"), kind)

    def pred(it):
        v = getter(it)
        if isinstance(v, list):
            hit = any(_norm(x, kind) == want for x in v)
        else:
            hit = v is not None and _norm(v, kind) == want
        return hit != negate
    return pred


def compile_restriction(elem):
    """Predicate for an m:Restriction element; raises MailboxError
    (ErrorUnsupportedQueryFilter / ErrorUnsupportedPathForQuery) otherwise."""
    if elem is None or len(elem) != 1:
        raise MailboxError("ErrorInvalidRestriction", "The restriction is invalid.")
    return _compile(elem[0])


def _compile(e):
    name = local(e.tag)
    if name in ("IsEqualTo", "IsNotEqualTo"):
        return _equal_pred(e, name == "IsNotEqualTo")
    if name == "Exists":
        if len(e) != 1:
            raise MailboxError(*UNSUPPORTED)
        getter, _ = _field_getter(e[0])
        return lambda it: getter(it) is not None
    if name == "Not":
        if len(e) != 1:
            raise MailboxError(*UNSUPPORTED)
        inner = _compile(e[0])
        return lambda it: not inner(it)
    if name in ("And", "Or"):
        parts = [_compile(c) for c in e]
        if not parts:
            raise MailboxError(*UNSUPPORTED)
        if name == "And":
            return lambda it: all(p(it) for p in parts)
        return lambda it: any(p(it) for p in parts)
    raise MailboxError(*UNSUPPORTED)
