# The EWS write operations of the test server: CreateItem, SendItem,
# UpdateItem, DeleteItem, MoveItem, CopyItem, CreateFolder, DeleteFolder,
# UpdateFolder, MoveFolder. Like ops.py: each takes the mailbox (its lock
# held) and the operation element and returns the response document; faults
# of the whole request raise soap.Fault (checked before anything changes),
# per-id failures are error response messages in request order with
# Exchange's response codes. All changes go through Mailbox methods, so they
# show in SyncFolderItems/SyncFolderHierarchy like control-injected ones.

import base64
import binascii
import email.errors
import email.parser
import email.policy
import email.utils
import os
import re
import time

import pim_ews
import props
import render
import soap
from mailbox import MailboxError, _parse_header_fields
from ops import MALFORMED, id_is_malformed, resolve_folder   # ops.py imports this module lazily
from soap import error_message, folder_id_refs, local, m, ok_message, response, schema_fault, t, text_of

NOT_FOUND = "The specified object was not found in the store."
CONFLICT = ("The send or update operation could not be performed because the change key passed in the "
            "request does not match the current change key for the item.")
NO_RECIPIENTS = "At least one recipient is required, but none were found."
BAD_RECIPIENT = "At least one recipient isn't valid."
OWNER = ("Alice Example", "alice@example.com")
MID_DOMAIN = "mbx01.example.com"
MAX_IDS = 1000

DISPOSITIONS = ("SaveOnly", "SendOnly", "SendAndSaveCopy")
DELETE_TYPES = ("HardDelete", "SoftDelete", "MoveToDeletedItems")
CONFLICT_MODES = ("NeverOverwrite", "AutoResolve", "AlwaysOverwrite")
FOLDER_ELEMENTS = {"Folder": "IPF.Note", "CalendarFolder": "IPF.Appointment",
                   "ContactsFolder": "IPF.Contact", "TasksFolder": "IPF.Task", "SearchFolder": "IPF.Note"}

# Properties UpdateItem refuses to set (computed or fixed once saved).
READ_ONLY = {"item:ItemId", "item:ParentFolderId", "item:DateTimeReceived", "item:DateTimeSent",
             "item:DateTimeCreated", "item:Size", "item:HasAttachments", "item:IsDraft",
             "item:LastModifiedTime", "item:IsSubmitted", "item:IsUnmodified", "item:IsFromMe",
             "item:IsResend", "item:EffectiveRights", "item:InternetMessageHeaders", "item:DisplayTo",
             "item:DisplayCc", "message:ConversationTopic", "message:Sender"}
# FieldURI -> element holding the new value inside the t:Message of a SetItemField.
SETTABLE = {"message:IsRead": "IsRead", "item:Flag": "Flag", "item:Categories": "Categories",
            "item:MimeContent": "MimeContent", "item:Subject": "Subject"}

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")


def _bool(text, what):
    v = (text or "").strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise schema_fault(f"The '{what}' element is invalid - The value '{text}' is invalid according to its "
                       "datatype 'http://www.w3.org/2001/XMLSchema:boolean'.")


def _attr_enum(op, name, allowed, default=None):
    v = op.get(name)
    if v is None:
        if default is None:
            raise schema_fault(f"The required attribute '{name}' is missing.")
        return default
    if v not in allowed:
        raise schema_fault(f"The '{name}' attribute is invalid - The value '{v}' is invalid according to its "
                           "datatype.")
    return v


def _id_list(op, tag):
    elem = op.find(m(tag))
    if elem is None or len(elem) == 0:
        raise schema_fault(f"The element '{tag}' has incomplete content.")
    if len(elem) > MAX_IDS:
        raise schema_fault(f"The element '{tag}' has too many children.")
    return list(elem)


def item_of(mb, e):
    """The live item a t:ItemId names, or MailboxError."""
    iid = e.get("Id") or ""
    if local(e.tag) != "ItemId" or id_is_malformed(iid):
        raise MailboxError("ErrorInvalidIdMalformed", MALFORMED)
    it = mb.items.get(iid)
    if it is None:
        raise MailboxError("ErrorItemNotFound", NOT_FOUND)
    return it


def check_change_key(it, e, mode="AutoResolve"):
    """A stale ChangeKey fails unless the client said AlwaysOverwrite."""
    ck = e.get("ChangeKey")
    if not ck or ck == it.change_key or mode == "AlwaysOverwrite":
        return
    try:
        base64.b64decode(ck, validate=True)
    except (binascii.Error, ValueError):
        raise MailboxError("ErrorInvalidChangeKey", "The change key is invalid.") from None
    raise MailboxError("ErrorIrresolvableConflict", CONFLICT)


def folder_of(mb, container, code, text):
    """The one folder a container (SavedItemFolderId, ToFolderId...) names;
    ErrorFolderNotFound becomes `code` (Exchange names the role)."""
    refs = folder_id_refs(container)
    if not refs:
        raise schema_fault(f"The element '{local(container.tag)}' has incomplete content.")
    try:
        return resolve_folder(mb, refs[0])
    except MailboxError as e:
        if e.code == "ErrorFolderNotFound":
            raise MailboxError(code, text) from None
        raise


def _item_id_xml(it):
    return f"<t:{render.item_element(it)}>{render.item_id_xml(it)}</t:{render.item_element(it)}>"


def _folder_id_xml(f):
    return f"<t:{f.element}>{render.folder_id_xml(f)}</t:{f.element}>"


# ---- MIME helpers -------------------------------------------------------------------------

def _nl(mime):
    return b"\r\n" if b"\r\n" in mime.split(b"\n\n", 1)[0] + b"\r\n" else b"\n"


def stamp_headers(mime, message_id=None, date=None):
    """Add Message-ID/Date headers at the top, as transport does when absent."""
    nl = _nl(mime)
    head = b""
    if message_id:
        head += b"Message-ID: " + message_id.encode("ascii") + nl
    if date:
        head += b"Date: " + email.utils.formatdate(date, usegmt=True).encode("ascii") + nl
    return head + mime


def new_message_id():
    return f"<{os.urandom(12).hex()}@{MID_DOMAIN}>"


def recipients_of(*header_values):
    """[(name, addr)] of header values; raises ErrorInvalidRecipients for
    an address that is malformed or in a .invalid domain."""
    out = []
    for value in header_values:
        if not value or not value.strip():
            continue
        pairs = email.utils.getaddresses([value])
        for name, addr in pairs:
            if not addr and not name:
                raise MailboxError("ErrorInvalidRecipients", BAD_RECIPIENT)
            if not ADDRESS.match(addr or "") or addr.lower().rstrip(".").endswith(".invalid"):
                raise MailboxError("ErrorInvalidRecipients", BAD_RECIPIENT)
            out.append((name, addr))
    return out


def mime_recipients(mime):
    """Recipients of the To, Cc and Bcc headers, parsed before RFC 2047
    decoding (a decoded display name may hold a comma)."""
    head = mime.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n")
    return recipients_of(*[str(v) for h in ("To", "Cc", "Bcc") for v in (msg.get_all(h) or [])])


def _mailboxes(elem):
    """'Name <addr>, ...' of a t:ToRecipients-like element."""
    if elem is None:
        return ""
    parts = []
    for mbx in elem.findall(t("Mailbox")):
        addr = (text_of(mbx, t("EmailAddress")) or "").strip()
        name = (text_of(mbx, t("Name")) or "").strip()
        parts.append(email.utils.formataddr((name, addr)) if name and addr else addr or name)
    return ", ".join(p for p in parts if p)


def _build_mime(spec):
    """RFC 5322 bytes for a message given by fields (no MimeContent)."""
    from email.message import EmailMessage

    def one_line(s):
        return " ".join(s.split()) if s else s
    try:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = one_line(spec["from"]) or email.utils.formataddr(OWNER)
        for h in ("To", "Cc", "Bcc"):
            if spec[h.lower()]:
                msg[h] = one_line(spec[h.lower()])
        if spec["subject"] is not None:
            msg["Subject"] = one_line(spec["subject"])
        msg["Date"] = email.utils.formatdate(time.time(), usegmt=True)
        msg["Message-ID"] = new_message_id()
        subtype = "html" if spec["body_type"] == "HTML" else "plain"
        msg.set_content(spec["body"] or "", subtype=subtype)
        return msg.as_bytes()
    except (ValueError, TypeError, LookupError, email.errors.MessageError) as e:
        raise MailboxError("ErrorMimeContentConversionFailed", f"The message could not be converted: {e}") from None


def _message_spec(el):
    """What a t:Message of CreateItem says: MIME or fields, properties."""
    spec = {"mime": None, "ext": {}, "is_read": None, "flag": None, "categories": None, "subject": None,
            "body": None, "body_type": "Text", "to": "", "cc": "", "bcc": "", "from": "",
            "item_class": "IPM.Note"}
    for c in el:
        name = local(c.tag)
        if name == "MimeContent":
            try:
                spec["mime"] = base64.b64decode("".join((c.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                raise MailboxError("ErrorMimeContentInvalidBase64String",
                                   "The MIME content is not a valid Base64 string.") from None
        elif name == "ExtendedProperty":
            uri = c.find(t("ExtendedFieldURI"))
            if uri is None:
                raise MailboxError(*props.INVALID_EXT)
            key = props.ext_key(uri)
            spec["ext"][key] = props.value_of(c, key)
        elif name == "IsRead":
            spec["is_read"] = _bool(c.text, "IsRead")
        elif name == "Flag":
            soap.require_2013("Flag")
            spec["flag"] = _flag_status(c)
        elif name == "Categories":
            spec["categories"] = [s.text or "" for s in c.findall(t("String"))]
        elif name == "Subject":
            spec["subject"] = c.text or ""
        elif name == "Body":
            spec["body"] = c.text or ""
            spec["body_type"] = c.get("BodyType", "Text")
        elif name in ("ToRecipients", "CcRecipients", "BccRecipients"):
            spec[name[:-10].lower()] = _mailboxes(c)
        elif name == "From":
            spec["from"] = _mailboxes(c)
        elif name == "ItemClass":
            spec["item_class"] = (c.text or "IPM.Note").strip()
    return spec


def _flag_status(flag_elem):
    status = (text_of(flag_elem, t("FlagStatus")) or "").strip()
    if status not in ("NotFlagged", "Flagged", "Complete"):
        raise schema_fault(f"The 'FlagStatus' element is invalid - The value '{status}' is invalid.")
    return status


def _split_computed(ext):
    """(stored extended properties, PR_MESSAGE_FLAGS or None, delivery time
    or None, flag status or None)."""
    stored, flags, delivered, flag = {}, None, None, None
    for key, value in ext.items():
        tag = props.key_tag(key)
        if tag == props.PR_MESSAGE_FLAGS and key[2] == "Integer":
            flags = int(value.strip())
        elif tag == props.PR_MESSAGE_DELIVERY_TIME and key[2] == "SystemTime":
            delivered = props.parse_datetime(value)
        elif tag == props.PID_TAG_FLAG_STATUS and key[2] == "Integer":
            flag = props.flag_from_status(value)
        elif tag in props.COMPUTED_TAGS:
            continue                    # the store computes it; a client value is dropped
        else:
            stored[key] = value
    return stored, flags, delivered, flag


# ---- sending ------------------------------------------------------------------------------

def transmit(mb, mime, recipients, ext, operation, saved_id=None):
    """Hand a message to 'transport': the sent list tests read."""
    fields = _parse_header_fields(mime)
    token = ext.get(props.TOKEN_KEY)
    return mb.record_sent(mime, [a for _, a in recipients], token=token, operation=operation,
                          saved_id=saved_id, subject=fields["subject"], message_id=fields["message_id"])


def _check_recipients(recipients):
    if not recipients:
        raise MailboxError("ErrorInvalidRecipients", NO_RECIPIENTS)


def _send_ready_mime(mime, message_id=None):
    """MIME as transport sends it: Message-ID (the item's own, if it has
    one) and Date stamped when absent."""
    fields = _parse_header_fields(mime)
    has_date = re.search(rb"(?im)^date:", mime.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]) is not None
    if fields["message_id"] and has_date:
        return mime
    return stamp_headers(mime, None if fields["message_id"] else message_id or new_message_id(),
                         None if has_date else time.time())


# ---- CreateItem / SendItem ------------------------------------------------------------------

def create_item(mb, op):
    disp = op.get("MessageDisposition")
    if disp is not None and disp not in DISPOSITIONS:
        _attr_enum(op, "MessageDisposition", DISPOSITIONS)
    saved = op.find(m("SavedItemFolderId"))
    specs = []                          # schema problems fault before anything is created
    for el in _id_list(op, "Items"):
        try:
            if local(el.tag) in pim_ews.CREATE_ELEMENTS:
                specs.append((("pim", pim_ews.CREATE_ELEMENTS[local(el.tag)], el), None))
                continue
            if local(el.tag) not in ("Message", "Item", "PostItem"):
                raise MailboxError("ErrorInvalidItemForOperationCreateItem",
                                   "The item type is not valid for the CreateItem operation.")
            specs.append((_message_spec(el), None))
        except MailboxError as e:
            specs.append((None, e))
    out = []
    for spec, err in specs:
        try:
            if err is not None:
                raise err
            if isinstance(spec, tuple):
                out.append(ok_message("CreateItem", _create_pim(mb, op, spec[1], spec[2], saved)))
                continue
            out.append(ok_message("CreateItem", _create_one(mb, spec, disp, saved)))
        except MailboxError as e:
            out.append(error_message("CreateItem", e.code, e.text, "<m:Items/>"))
    return response("CreateItem", out)


def _create_one(mb, spec, disp, saved):
    if disp is None:
        raise MailboxError("ErrorMessageDispositionRequired",
                           "MessageDisposition attribute is required.")
    ext, flags, delivered, flag = _split_computed(spec["ext"])
    spec["flag"] = spec["flag"] or flag
    mime = spec["mime"] if spec["mime"] is not None else _build_mime(spec)
    fields = _parse_header_fields(mime)
    now = int(time.time())
    if disp == "SaveOnly":
        folder = (folder_of(mb, saved, "ErrorSavedItemFolderNotFound", "The folder to save the item in "
                            "does not exist.") if saved is not None else mb.distinguished["drafts"])
        is_draft = True if flags is None else bool(flags & props.MSGFLAG_UNSENT)
        is_read = True if flags is None else bool(flags & props.MSGFLAG_READ)
        if spec["is_read"] is not None:
            is_read = spec["is_read"]
        received = delivered if delivered is not None else now
        fields["message_id"] = fields["message_id"] or new_message_id()
        fields["sent"] = fields["sent"] or received
        it = mb.add_item(folder, mime, received=received, is_read=is_read, fields=fields, is_draft=is_draft,
                         item_class=spec["item_class"], flag=spec["flag"] or "NotFlagged",
                         categories=spec["categories"] or (), ext=ext)
        return f"<m:Items>{_item_id_xml(it)}</m:Items>"
    # SendOnly / SendAndSaveCopy: transport wants recipients; no id comes back.
    recipients = mime_recipients(mime)
    _check_recipients(recipients)
    folder = None
    if disp == "SendAndSaveCopy":
        folder = (folder_of(mb, saved, "ErrorSavedItemFolderNotFound", "The folder to save the item in "
                            "does not exist.") if saved is not None else mb.distinguished["sentitems"])
    mime = _send_ready_mime(mime)
    saved_id = None
    if folder is not None:
        copy = mb.add_item(folder, mime, received=now, is_read=True, is_draft=False,
                           item_class=spec["item_class"], flag=spec["flag"] or "NotFlagged",
                           categories=spec["categories"] or (), ext=ext)
        saved_id = copy.id
    transmit(mb, mime, recipients, ext, "CreateItem/" + disp, saved_id)
    return "<m:Items/>"


def _create_pim(mb, op, kind, el, saved):
    """CreateItem of a CalendarItem (SendMeetingInvitations required),
    Contact or Task, into SavedItemFolderId or the kind's default folder."""
    invitations = op.get("SendMeetingInvitations")
    if kind == "calendar" and invitations is None:
        raise MailboxError("ErrorSendMeetingInvitationsRequired",
                           "SendMeetingInvitations attribute is required for calendar items.")
    if invitations is not None and invitations not in pim_ews.INVITATIONS:
        raise schema_fault(f"The 'SendMeetingInvitations' attribute is invalid - The value '{invitations}' is "
                           "invalid according to its datatype.")
    dist = {"calendar": "calendar", "contact": "contacts", "task": "tasks"}[kind]
    if saved is not None:
        folder = folder_of(mb, saved, "ErrorSavedItemFolderNotFound", "The folder to save the item in does not exist.")
    else:
        folder = mb.distinguished.get(dist)
        if folder is None:
            raise MailboxError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
    if not (folder.folder_class or "").startswith(pim_ews.FOLDER_CLASS[kind]):
        raise MailboxError(*pim_ews.WRONG_FOLDER[kind])
    p = pim_ews.spec_of(el, kind)
    it = mb.add_pim(folder, p)
    if kind == "calendar" and invitations != "SendToNone" and p.get("attendees"):
        invite_attendees(mb, it, "REQUEST", "CreateItem/" + invitations)
    return f"<m:Items>{_item_id_xml(it)}</m:Items>"


def invite_attendees(mb, it, method, operation):
    """Hand an iMIP message (text/calendar; method=...) to transport, as
    Exchange does when told to send invitations, updates or cancellations."""
    import pim
    ics = pim.render_ics(it.pim, it.modified, method=method)
    to = ", ".join(email.utils.formataddr((n, a)) for n, a, _ in it.pim["attendees"])
    head = (f"From: {email.utils.formataddr(OWNER)}\r\nTo: {to}\r\nSubject: "
            f"{'Canceled: ' if method == 'CANCEL' else ''}{' '.join((it.pim.get('subject') or '').split())}\r\n"
            f"Message-ID: {new_message_id()}\r\nDate: {email.utils.formatdate(time.time(), usegmt=True)}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/calendar; charset=\"utf-8\"; method={method}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n")
    mime = head.encode("utf-8") + ics
    return mb.record_sent(mime, [a for _, a, _ in it.pim["attendees"]], operation=operation,
                          subject=it.pim.get("subject"))


def send_item(mb, op):
    save_attr = op.get("SaveItemToFolder")
    if save_attr is None:
        raise schema_fault("The required attribute 'SaveItemToFolder' is missing.")
    save = _bool(save_attr, "SaveItemToFolder")
    saved = op.find(m("SavedItemFolderId"))
    out = []
    for e in _id_list(op, "ItemIds"):
        try:
            if saved is not None and not save:
                raise MailboxError("ErrorInvalidSendItemSaveSettings", "SavedItemFolderId is not allowed "
                                   "when SaveItemToFolder is false.")
            it = item_of(mb, e)
            check_change_key(it, e)
            _send_draft(mb, it, save, saved, "SendItem")
            out.append(ok_message("SendItem"))
        except MailboxError as err:
            out.append(error_message("SendItem", err.code, err.text))
    return response("SendItem", out)


def _send_draft(mb, it, save, saved, operation):
    if not it.is_draft:
        raise MailboxError("ErrorInvalidItemForOperationSendItem",
                           "The item is not valid for the send operation: it has been sent already.")
    recipients = mime_recipients(it.mime)
    _check_recipients(recipients)
    folder = None
    if save:
        folder = (folder_of(mb, saved, "ErrorSavedItemFolderNotFound", "The folder to save the item in "
                            "does not exist.") if saved is not None else mb.distinguished["sentitems"])
    mime = _send_ready_mime(it.mime, it.message_id)
    ext = dict(it.ext)
    copy = mb.send_item(it, folder, mime)
    transmit(mb, mime, recipients, ext, operation, copy.id if copy else None)
    return copy


# ---- UpdateItem ---------------------------------------------------------------------------------

def _parse_updates(updates):
    """[(action, field, value)] of a t:Updates element; action is set or
    delete, field a FieldURI string or an extended property key. Raises
    MailboxError for what Exchange refuses per item."""
    out = []
    for u in updates:
        action = local(u.tag)
        paths = [c for c in u if local(c.tag) in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI")]
        others = [c for c in u if local(c.tag) not in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI")]
        if action not in ("SetItemField", "AppendToItemField", "DeleteItemField"):
            raise schema_fault(f"The element 'Updates' has invalid child element '{action}'.")
        if len(paths) != 1:
            raise schema_fault(f"The element '{action}' has incomplete content.")
        path = paths[0]
        if action == "AppendToItemField":
            raise MailboxError("ErrorInvalidPropertyAppend", "Append action is invalid for property.")
        if local(path.tag) == "IndexedFieldURI":
            raise MailboxError("ErrorInvalidPropertySet", "Set action is invalid for property.")
        if local(path.tag) == "ExtendedFieldURI":
            field = props.ext_key(path)
        else:
            field = path.get("FieldURI") or ""
            if field == "item:Flag":
                soap.require_2013("item:Flag")
        if action == "DeleteItemField":
            if others:
                raise schema_fault("The element 'DeleteItemField' has invalid child element.")
            out.append(("delete", field, None))
            continue
        if len(others) != 1 or len(others[0]) != 1:
            raise MailboxError("ErrorIncorrectUpdatePropertyCount", "An object within a change description "
                               "must contain one and only one property to modify.")
        value = others[0][0]
        if isinstance(field, tuple):
            if local(value.tag) != "ExtendedProperty" or value.find(t("ExtendedFieldURI")) is None \
                    or props.ext_key(value.find(t("ExtendedFieldURI"))) != field:
                raise MailboxError("ErrorIncorrectUpdatePropertyCount", "An object within a change "
                                   "description must contain one and only one property to modify.")
            out.append(("set", field, props.value_of(value, field)))
            continue
        if field in SETTABLE and local(value.tag) != SETTABLE[field]:
            raise MailboxError("ErrorIncorrectUpdatePropertyCount", "An object within a change description "
                               "must contain one and only one property to modify.")
        if field == "message:IsRead":
            out.append(("set", field, _bool(value.text, "IsRead")))
        elif field == "item:Flag":
            out.append(("set", field, _flag_status(value)))
        elif field == "item:Categories":
            out.append(("set", field, [s.text or "" for s in value.findall(t("String"))]))
        elif field == "item:Subject":
            out.append(("set", field, value.text or ""))
        elif field == "item:MimeContent":
            try:
                mime = base64.b64decode("".join((value.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                raise MailboxError("ErrorMimeContentInvalidBase64String",
                                   "The MIME content is not a valid Base64 string.") from None
            out.append(("set", field, mime))
        else:
            out.append(("set", field, value))
    return out


def _change_args(it, changes):
    """change_item() keyword arguments for parsed updates, checked against the item."""
    kw = {"ext_set": {}, "ext_del": []}
    for action, field, value in changes:
        if isinstance(field, tuple):
            tag = props.key_tag(field)
            if tag == props.PR_MESSAGE_FLAGS and field[2] == "Integer" and action == "set":
                kw["is_read"] = bool(int(value) & props.MSGFLAG_READ)
            elif tag == props.PR_MESSAGE_DELIVERY_TIME and field[2] == "SystemTime" and action == "set":
                kw["received"] = props.parse_datetime(value)
            elif tag == props.PID_TAG_FLAG_STATUS and field[2] == "Integer":
                kw["flag"] = props.flag_from_status(value if action == "set" else None)
            elif tag in props.COMPUTED_TAGS:
                raise MailboxError("ErrorInvalidPropertySet" if action == "set" else "ErrorInvalidPropertyDelete",
                                   "The property cannot be changed: the store computes it.")
            elif action == "set":
                kw["ext_set"][field] = value
            else:
                kw["ext_del"].append(field)
            continue
        if field in READ_ONLY or field not in SETTABLE:
            if action == "delete":
                raise MailboxError("ErrorInvalidPropertyDelete", "Delete action is invalid for property.")
            raise MailboxError("ErrorInvalidPropertySet", "Set action is invalid for property.")
        if field == "message:IsRead":
            if action == "delete":
                raise MailboxError("ErrorInvalidPropertyDelete", "Delete action is invalid for property.")
            kw["is_read"] = value
        elif field == "item:Flag":
            kw["flag"] = value if action == "set" else "NotFlagged"
        elif field == "item:Categories":
            kw["categories"] = value if action == "set" else []
        elif field == "item:Subject":
            kw["subject"] = value if action == "set" else None
        elif field == "item:MimeContent":
            if action == "delete":
                raise MailboxError("ErrorInvalidPropertyDelete", "Delete action is invalid for property.")
            if not it.is_draft:
                raise MailboxError("ErrorInvalidPropertyUpdateSentMessage",
                                   "Update operation is invalid for property of a sent message.")
            kw["mime"] = value
    return kw


def update_item(mb, op):
    mode = _attr_enum(op, "ConflictResolution", CONFLICT_MODES, "AutoResolve")
    disp = op.get("MessageDisposition")
    if disp is not None:
        _attr_enum(op, "MessageDisposition", DISPOSITIONS)
    saved = op.find(m("SavedItemFolderId"))
    parsed = []                         # schema problems fault before anything changes
    for ch in _id_list(op, "ItemChanges"):
        if local(ch.tag) != "ItemChange":
            raise schema_fault(f"The element 'ItemChanges' has invalid child element '{local(ch.tag)}'.")
        ref = [c for c in ch if local(c.tag) in ("ItemId", "OccurrenceItemId", "RecurringMasterItemId")]
        updates = ch.find(t("Updates"))
        if not ref or updates is None:
            raise schema_fault("The element 'ItemChange' has incomplete content.")
        try:
            parsed.append((ref[0], _parse_updates(updates), None, updates))
        except MailboxError as e:
            parsed.append((ref[0], None, e, updates))
    out = []
    for ref, changes, err, updates in parsed:
        try:
            it = item_of(mb, ref)
            if it.pim is not None:
                check_change_key(it, ref, mode)
                _update_pim(mb, op, it, updates)
                out.append(ok_message("UpdateItem", f"<m:Items>{_item_id_xml(it)}</m:Items>"
                                      "<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>"))
                continue
            if err is not None:
                raise err
            check_change_key(it, ref, mode)
            kw = _change_args(it, changes)
            if disp in ("SendOnly", "SendAndSaveCopy") and not it.is_draft:
                raise MailboxError("ErrorInvalidItemForOperationSendItem",
                                   "The item is not valid for the send operation: it has been sent already.")
            mb.change_item(it, **kw)
            if disp in ("SendOnly", "SendAndSaveCopy"):
                _send_draft(mb, it, disp == "SendAndSaveCopy", saved, "UpdateItem/" + disp)
                items = "<m:Items/>"
            else:
                items = f"<m:Items>{_item_id_xml(it)}</m:Items>"
            out.append(ok_message("UpdateItem", items + "<m:ConflictResults><t:Count>0</t:Count>"
                                  "</m:ConflictResults>"))
        except MailboxError as e:
            out.append(error_message("UpdateItem", e.code, e.text, "<m:Items/>"))
    return response("UpdateItem", out)


def _update_pim(mb, op, it, updates):
    how = op.get("SendMeetingInvitationsOrCancellations")
    if it.pim["kind"] == "calendar" and how is None:
        raise MailboxError("ErrorSendMeetingInvitationsOrCancellationsRequired",
                           "SendMeetingInvitationsOrCancellations attribute is required for calendar items.")
    p = pim_ews.apply_updates(it, updates)
    if mb.change_pim(it, p) and it.pim["kind"] == "calendar" and it.pim.get("attendees") \
            and how in ("SendToAllAndSaveCopy", "SendOnlyToAll", "SendToChangedAndSaveCopy", "SendOnlyToChanged"):
        invite_attendees(mb, it, "REQUEST", "UpdateItem/" + how)


# ---- DeleteItem / MoveItem / CopyItem -----------------------------------------------------------

def delete_item(mb, op):
    how = _attr_enum(op, "DeleteType", DELETE_TYPES)
    out = []
    for e in _id_list(op, "ItemIds"):
        try:
            it = item_of(mb, e)
            cancel = op.get("SendMeetingCancellations")
            if it.pim is not None and it.pim["kind"] == "calendar":
                if cancel is None:
                    raise MailboxError("ErrorSendMeetingCancellationsRequired",
                                       "SendMeetingCancellations attribute is required for calendar items.")
                if cancel != "SendToNone" and it.pim.get("attendees"):
                    invite_attendees(mb, it, "CANCEL", "DeleteItem/" + cancel)
            trash = mb.distinguished["deleteditems"]
            if how == "HardDelete":
                mb.delete_item(it)
            elif how == "SoftDelete" or mb.is_below(it.folder, trash):
                mb.delete_item(it, soft=True)     # from Deleted Items, "move to trash" is a soft delete
            else:
                mb.move_item(it, trash)
            out.append(ok_message("DeleteItem"))
        except MailboxError as err:
            out.append(error_message("DeleteItem", err.code, err.text))
    return response("DeleteItem", out)


def _move_or_copy(mb, op, name):
    to = op.find(m("ToFolderId"))
    if to is None:
        raise schema_fault(f"The element '{name}' has incomplete content. List of possible elements "
                           "expected: 'ToFolderId'.")
    ret = text_of(op, m("ReturnNewItemIds"))          # Exchange 2010 SP1 on; ids come back by default
    return_ids = True if ret is None else _bool(ret, "ReturnNewItemIds")
    out = []
    for e in _id_list(op, "ItemIds"):
        try:
            it = item_of(mb, e)
            dest = folder_of(mb, to, "ErrorToFolderNotFound", "The destination folder does not exist.")
            new = mb.move_item(it, dest) if name == "MoveItem" else mb.copy_item(it, dest)
            out.append(ok_message(name, f"<m:Items>{_item_id_xml(new)}</m:Items>" if return_ids else "<m:Items/>"))
        except MailboxError as err:
            out.append(error_message(name, err.code, err.text, "<m:Items/>"))
    return response(name, out)


def move_item(mb, op):
    return _move_or_copy(mb, op, "MoveItem")


def copy_item(mb, op):
    return _move_or_copy(mb, op, "CopyItem")


# ---- folders --------------------------------------------------------------------------------------

def _folder_refs(op, tag):
    refs = folder_id_refs(op.find(m(tag)))
    if not refs:
        raise schema_fault(f"The element '{tag}' has incomplete content.")
    return refs


def create_folder(mb, op):
    parent_elem = op.find(m("ParentFolderId"))
    if parent_elem is None:
        raise schema_fault("The element 'CreateFolder' has incomplete content. List of possible elements "
                           "expected: 'ParentFolderId'.")
    folders = op.find(m("Folders"))
    if folders is None or len(folders) == 0:
        raise schema_fault("The element 'Folders' has incomplete content.")
    out = []
    for fe in folders:
        try:
            parent = folder_of(mb, parent_elem, "ErrorParentFolderNotFound", "The parent folder was not found.")
            element = local(fe.tag)
            if element not in FOLDER_ELEMENTS:
                raise MailboxError("ErrorInvalidFolderTypeForOperation",
                                   "The folder type is not valid for this operation.")
            name = text_of(fe, t("DisplayName"))
            if not name or not name.strip():
                raise MailboxError("ErrorFolderSavePropertyError", "The folder save operation failed due to "
                                   "invalid property values: DisplayName is required.")
            cls = (text_of(fe, t("FolderClass")) or FOLDER_ELEMENTS[element]).strip()
            f = mb.create_folder(parent, name, cls, element)
            out.append(ok_message("CreateFolder", f"<m:Folders>{_folder_id_xml(f)}</m:Folders>"))
        except MailboxError as e:
            out.append(error_message("CreateFolder", e.code, e.text, "<m:Folders/>"))
    return response("CreateFolder", out)


def delete_folder(mb, op):
    how = _attr_enum(op, "DeleteType", DELETE_TYPES)
    out = []
    for ref in _folder_refs(op, "FolderIds"):
        try:
            f = resolve_folder(mb, ref)
            trash = mb.distinguished["deleteditems"]
            if f.distinguished:
                raise MailboxError("ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
            if how == "MoveToDeletedItems" and not mb.is_below(f, trash):
                mb.move_folder(f, trash, rename_on_clash=True)
            else:
                mb.delete_folder(f)
            out.append(ok_message("DeleteFolder"))
        except MailboxError as e:
            out.append(error_message("DeleteFolder", e.code, e.text))
    return response("DeleteFolder", out)


FOLDER_READ_ONLY = {"folder:FolderId", "folder:ParentFolderId", "folder:TotalCount", "folder:UnreadCount",
                    "folder:ChildFolderCount", "folder:EffectiveRights"}


def update_folder(mb, op):
    changes = op.find(m("FolderChanges"))
    if changes is None or len(changes) == 0:
        raise schema_fault("The element 'FolderChanges' has incomplete content.")
    out = []
    for ch in changes:
        refs = folder_id_refs(ch)
        updates = ch.find(t("Updates"))
        if not refs or updates is None:
            raise schema_fault("The element 'FolderChange' has incomplete content.")
        try:
            f = resolve_folder(mb, refs[0])
            ck = next((c.get("ChangeKey") for c in ch if local(c.tag) == "FolderId"), None)
            if ck and ck != f.change_key:
                raise MailboxError("ErrorIrresolvableConflict", CONFLICT)
            new_name = new_class = None
            for u in updates:
                action = local(u.tag)
                uri = [c for c in u if local(c.tag) in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI")]
                field = uri[0].get("FieldURI") if uri else None
                if action == "AppendToFolderField":
                    raise MailboxError("ErrorInvalidPropertyAppend", "Append action is invalid for property.")
                if field in FOLDER_READ_ONLY or (action == "DeleteFolderField" and field == "folder:DisplayName"):
                    code = "ErrorInvalidPropertyDelete" if action == "DeleteFolderField" else "ErrorInvalidPropertySet"
                    raise MailboxError(code, "The action is invalid for this property.")
                if action != "SetFolderField" or field not in ("folder:DisplayName", "folder:FolderClass"):
                    continue            # a property this model does not keep: accepted, nothing to do
                value = [c for c in u if c not in uri]
                elem = "DisplayName" if field == "folder:DisplayName" else "FolderClass"
                if len(value) != 1 or len(value[0]) != 1 or value[0].find(t(elem)) is None:
                    raise MailboxError("ErrorIncorrectUpdatePropertyCount", "An object within a change "
                                       "description must contain one and only one property to modify.")
                text = value[0].find(t(elem)).text or ""
                if not text.strip():
                    raise MailboxError("ErrorInvalidPropertySet", "Set action is invalid for property.")
                if elem == "DisplayName":
                    new_name = text
                else:
                    new_class = text.strip()
            mb.update_folder(f, new_name, new_class)
            out.append(ok_message("UpdateFolder", f"<m:Folders>{_folder_id_xml(f)}</m:Folders>"))
        except MailboxError as e:
            out.append(error_message("UpdateFolder", e.code, e.text, "<m:Folders/>"))
    return response("UpdateFolder", out)


def move_folder(mb, op):
    to = op.find(m("ToFolderId"))
    if to is None:
        raise schema_fault("The element 'MoveFolder' has incomplete content. List of possible elements "
                           "expected: 'ToFolderId'.")
    out = []
    for ref in _folder_refs(op, "FolderIds"):
        try:
            f = resolve_folder(mb, ref)
            dest = folder_of(mb, to, "ErrorToFolderNotFound", "The destination folder does not exist.")
            mb.move_folder(f, dest)
            out.append(ok_message("MoveFolder", f"<m:Folders>{_folder_id_xml(f)}</m:Folders>"))
        except MailboxError as e:
            out.append(error_message("MoveFolder", e.code, e.text, "<m:Folders/>"))
    return response("MoveFolder", out)


WRITE_OPERATIONS = {
    "CreateItem": create_item,
    "SendItem": send_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "MoveItem": move_item,
    "CopyItem": copy_item,
    "CreateFolder": create_folder,
    "DeleteFolder": delete_folder,
    "UpdateFolder": update_folder,
    "MoveFolder": move_folder,
}
