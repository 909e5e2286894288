# SOAP/XML helpers for the test EWS server: parse requests by namespace URI
# (clients pick their own prefixes), and build responses the way Exchange
# prints them (s:/m:/t: prefixes, ServerVersionInfo header, faults with
# ResponseCode and MessageXml). Responses are built as strings: a 512-change
# SyncFolderItems page is cheaper that way than with an element tree.

import threading
import xml.etree.ElementTree as ET

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
NS_E = "http://schemas.microsoft.com/exchange/services/2006/errors"

SERVER_VERSION = ('<h:ServerVersionInfo xmlns:h="%s" MajorVersion="15" MinorVersion="1" '
                  'MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/>' % NS_T)

# RequestServerVersion values older than Exchange 2013: their schema lacks
# what 2013 added (e.g. item:Flag), and such requests are refused as invalid.
PRE_2013 = {"Exchange2007", "Exchange2007_SP1", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2"}
_request = threading.local()           # the RequestServerVersion of this thread's request


def request_version():
    return getattr(_request, "version", None)


def require_2013(what):
    """Refuse, as schema validation of an older version does, what Exchange
    2013 introduced, when the request asked for an older version."""
    if request_version() in PRE_2013:
        raise schema_fault(f"The '{what}' value is invalid according to the schema of "
                           f"{request_version()}.")


# RequestServerVersion values a 2016 server accepts.
KNOWN_VERSIONS = {"Exchange2007", "Exchange2007_SP1", "Exchange2010", "Exchange2010_SP1",
                  "Exchange2010_SP2", "Exchange2013", "Exchange2013_SP1", "Exchange2015",
                  "Exchange2016", "Exchange2019", "V2015_10_05", "V2016_01_06", "V2016_04_13",
                  "V2016_07_13", "V2016_10_10", "V2017_01_07", "V2017_04_14", "V2017_07_11"}


class Fault(Exception):
    """A failure of the whole request: sent as a SOAP fault with HTTP 500."""

    def __init__(self, code, text, message_xml="", http_status=500):
        super().__init__(f"{code}: {text}")
        self.code, self.text, self.message_xml, self.http_status = code, text, message_xml, http_status


def t(name):
    return f"{{{NS_T}}}{name}"


def m(name):
    return f"{{{NS_M}}}{name}"


# ---- escaping -----------------------------------------------------------------

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def _is_xml_char(cp):
    return cp in (0x9, 0xA, 0xD) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or 0x10000 <= cp <= 0x10FFFF


class Escaper:
    """Escape text for element content and attributes. Exchange writes
    characters that XML 1.0 forbids (a subject with U+0001) as character
    references (&#x1;), which strict parsers reject; mode "charref" does the
    same, mode "strip" drops them instead."""

    def __init__(self, mode="charref"):
        self.mode = mode

    def __call__(self, s):
        if s is None:
            return ""
        s = str(s)
        if s.isascii() and s.isprintable() and not any(c in s for c in '&<>"'):
            return s
        out = []
        for c in s:
            cp = ord(c)
            if c in _ESCAPES:
                out.append(_ESCAPES[c])
            elif _is_xml_char(cp):
                out.append(c)
            elif self.mode == "charref" and 0xD800 > cp:
                out.append("&#x%X;" % cp)
            # else: dropped
        return "".join(out)


esc = Escaper("charref")


def set_invalid_char_mode(mode):
    esc.mode = mode


# ---- responses ------------------------------------------------------------------

def envelope(body_xml):
    return ('<?xml version="1.0" encoding="utf-8"?>'
            f'<s:Envelope xmlns:s="{NS_SOAP}"><s:Header>{SERVER_VERSION}</s:Header>'
            f'<s:Body>{body_xml}</s:Body></s:Envelope>').encode("utf-8")


def response(op, messages):
    """Wrap response messages (strings) into the <m:OpResponse> envelope."""
    return envelope(f'<m:{op}Response xmlns:m="{NS_M}" xmlns:t="{NS_T}">'
                    f'<m:ResponseMessages>{"".join(messages)}</m:ResponseMessages></m:{op}Response>')


def ok_message(op, inner=""):
    return (f'<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f'{inner}</m:{op}ResponseMessage>')


def error_message(op, code, text, tail="", message_xml=""):
    """A failed response message; tail holds the elements Exchange still
    prints after an error (e.g. an empty m:Items or m:SyncState)."""
    mx = f"<m:MessageXml>{message_xml}</m:MessageXml>" if message_xml else ""
    return (f'<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{esc(text)}</m:MessageText>'
            f'<m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>'
            f'{mx}{tail}</m:{op}ResponseMessage>')


def fault(code, text, message_xml=""):
    mx = f'<t:MessageXml xmlns:t="{NS_T}">{message_xml}</t:MessageXml>' if message_xml else ""
    body = (f'<s:Fault><faultcode xmlns:a="{NS_T}">a:{code}</faultcode>'
            f'<faultstring xml:lang="en-US">{esc(text)}</faultstring><detail>'
            f'<e:ResponseCode xmlns:e="{NS_E}">{code}</e:ResponseCode>'
            f'<e:Message xmlns:e="{NS_E}">{esc(text)}</e:Message>{mx}</detail></s:Fault>')
    return ('<?xml version="1.0" encoding="utf-8"?>'
            f'<s:Envelope xmlns:s="{NS_SOAP}"><s:Body>{body}</s:Body></s:Envelope>').encode("utf-8")


def busy_fault(backoff_ms):
    return fault("ErrorServerBusy", "The server cannot service this request right now. Try again later.",
                 f'<t:Value Name="BackOffMilliseconds">{int(backoff_ms)}</t:Value>')


def schema_fault(violation, line=1, pos=1):
    text = f"The request failed schema validation: {violation}"
    return Fault("ErrorSchemaValidation", text,
                 f"<t:LineNumber>{line}</t:LineNumber><t:LinePosition>{pos}</t:LinePosition>"
                 f"<t:Violation>{esc(violation)}</t:Violation>")


# ---- requests -------------------------------------------------------------------

def parse_request(body, known_versions=None):
    """Return (operation element, RequestServerVersion or None). Raises Fault.
    known_versions narrows the accepted versions (to play an older server)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise schema_fault("DTD is prohibited in this XML document.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        line, pos = getattr(e, "position", (1, 1))
        raise schema_fault(str(e), line, pos) from None
    except (LookupError, ValueError) as e:   # e.g. encoding="utf-v" in the XML declaration
        raise schema_fault(str(e)) from None
    if root.tag != f"{{{NS_SOAP}}}Envelope":
        raise schema_fault("The root element is not a SOAP 1.1 Envelope.")
    sbody = root.find(f"{{{NS_SOAP}}}Body")
    if sbody is None or len(sbody) == 0:
        raise schema_fault("The SOAP Body is missing or empty.")
    version = _request.version = None
    header = root.find(f"{{{NS_SOAP}}}Header")
    if header is not None:
        rsv = header.find(t("RequestServerVersion"))
        if rsv is not None:
            version = rsv.get("Version")
            if version not in (known_versions or KNOWN_VERSIONS):
                raise schema_fault(f"The 'Version' attribute is invalid - The value '{version}' is invalid "
                                   "according to its datatype.")
    _request.version = version
    return sbody[0], version


def local(tag):
    return tag.rsplit("}", 1)[-1]


def text_of(parent, tag, default=None):
    e = parent.find(tag) if parent is not None else None
    return e.text if e is not None and e.text is not None else default


def shape_of(shape_elem):
    """(BaseShape, set of FieldURIs, include_mime, body_type) of an
    ItemShape/FolderShape element. A requested extended property adds
    ("ext", key) and the marker "item:ExtendedProperty" to the set."""
    if shape_elem is None:
        raise schema_fault("The element 'ItemShape' or 'FolderShape' is missing.")
    base = (text_of(shape_elem, t("BaseShape")) or "").strip()
    if base not in ("IdOnly", "Default", "AllProperties"):
        raise schema_fault(f"The 'BaseShape' element is invalid - The value '{base}' is invalid.")
    fields = set()
    extra = shape_elem.find(t("AdditionalProperties"))
    if extra is not None:
        for e in extra:
            if local(e.tag) == "FieldURI" and e.get("FieldURI"):
                if e.get("FieldURI") == "item:Flag":
                    require_2013("item:Flag")
                fields.add(e.get("FieldURI"))
            elif local(e.tag) == "ExtendedFieldURI":
                import props                # props builds on this module
                from mailbox import MailboxError
                try:
                    fields.add(("ext", props.ext_key(e)))
                except MailboxError as err:
                    raise Fault(err.code, err.text) from None
                fields.add("item:ExtendedProperty")
            elif local(e.tag) == "IndexedFieldURI" and e.get("FieldURI"):
                fields.add(e.get("FieldURI"))   # e.g. contacts:EmailAddress (pim_ews.py)
    include_mime = (text_of(shape_elem, t("IncludeMimeContent"), "false").strip().lower() in ("true", "1"))
    body_type = (text_of(shape_elem, t("BodyType"), "Best") or "Best").strip()
    return base, fields, include_mime, body_type


def folder_id_refs(container):
    """[(kind, value)] for t:FolderId / t:DistinguishedFolderId children."""
    out = []
    if container is None:
        return out
    for e in container:
        name = local(e.tag)
        if name == "FolderId":
            out.append(("id", e.get("Id") or ""))
        elif name == "DistinguishedFolderId":
            out.append(("dist", (e.get("Id") or "").strip()))
    return out
