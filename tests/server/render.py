# How the test EWS server prints folders and items: the properties of each
# BaseShape, the FieldURIs it knows, and the order the EWS schema gives them
# (ItemType properties first, then MessageType ones). Properties an item has
# no value for are left out, as Exchange does.

import base64
import email
import email.policy
import email.utils
import time

import props
from soap import esc

MAIL_CLASSES = {
    "IPM.Schedule.Meeting.Request": "MeetingRequest",
    "IPM.Schedule.Meeting.Canceled": "MeetingCancellation",
    "IPM.Post": "PostItem",
}


PIM_ELEMENTS = {"IPM.Appointment": "CalendarItem", "IPM.Contact": "Contact", "IPM.Task": "Task"}


def item_element(it):
    cls = it.item_class or ""
    if getattr(it, "pim", None):
        return PIM_ELEMENTS[cls]
    if cls in MAIL_CLASSES:
        return MAIL_CLASSES[cls]
    if cls.startswith("IPM.Schedule.Meeting.Resp"):
        return "MeetingResponse"
    if cls.startswith("IPM.Note") or cls.startswith("REPORT."):
        return "Message"
    return "Item"


def dt(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def tf(b):
    return "true" if b else "false"


def mailbox_xml(name, addr):
    return (f"<t:Mailbox><t:Name>{esc(name or addr)}</t:Name><t:EmailAddress>{esc(addr)}</t:EmailAddress>"
            "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>OneOff</t:MailboxType></t:Mailbox>")


def recipients_xml(header_value):
    pairs = email.utils.getaddresses([header_value]) if header_value else []
    return "".join(mailbox_xml(n, a) for n, a in pairs if a)


def display_names(header_value):
    pairs = email.utils.getaddresses([header_value]) if header_value else []
    return "; ".join(n or a for n, a in pairs if n or a)


def mime_b64(mime):
    # Exchange breaks the base64 of MimeContent into 76-character lines.
    return base64.encodebytes(mime).decode("ascii").rstrip("\n")


def _body(it, body_type):
    try:
        msg = email.message_from_bytes(it.mime, policy=email.policy.default)
        want = ("plain", "html") if body_type == "Text" else ("html", "plain")
        part = msg.get_body(preferencelist=want)
        text = part.get_content() if part is not None else ""
        kind = "HTML" if part is not None and part.get_content_subtype() == "html" else "Text"
    except Exception:                       # hostile MIME: an empty body, never a crash
        text, kind = "", "Text"
    if body_type == "HTML" and kind == "Text":
        text, kind = "<html><body><pre>" + text.replace("&", "&amp;").replace("<", "&lt;") + "</pre></body></html>", "HTML"
    return kind, text if isinstance(text, str) else ""


def _body_xml(it, body_type):
    if getattr(it, "pim", None):
        import pim_ews
        return f'<t:Body BodyType="Text">{esc(pim_ews.body_of(it))}</t:Body>'
    kind, text = _body(it, body_type)
    return f'<t:Body BodyType="{kind}">{esc(text)}</t:Body>'


def _headers(it):
    head = it.mime.split(b"\r\n\r\n", 1)[0]
    msg = email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.compat32)
    return "".join(f'<t:InternetMessageHeader HeaderName="{esc(k)}">{esc(str(v))}</t:InternetMessageHeader>'
                   for k, v in msg.items())


ITEM_RIGHTS = ("<t:EffectiveRights><t:CreateAssociated>false</t:CreateAssociated><t:CreateContents>false"
               "</t:CreateContents><t:CreateHierarchy>false</t:CreateHierarchy><t:Delete>true</t:Delete>"
               "<t:Modify>true</t:Modify><t:Read>true</t:Read><t:ViewPrivateItems>true</t:ViewPrivateItems>"
               "</t:EffectiveRights>")

# (FieldURI, renderer(item, ctx) -> xml or None), in schema order.
ITEM_FIELDS = [
    ("item:ParentFolderId", lambda it, c: f'<t:ParentFolderId Id="{it.folder.id}" ChangeKey="{it.folder.change_key}"/>'),
    ("item:ItemClass", lambda it, c: f"<t:ItemClass>{esc(it.item_class)}</t:ItemClass>"),
    ("item:Subject", lambda it, c: None if it.subject is None else f"<t:Subject>{esc(it.subject)}</t:Subject>"),
    ("item:Sensitivity", lambda it, c: "<t:Sensitivity>Normal</t:Sensitivity>"),
    ("item:Body", lambda it, c: _body_xml(it, c)),
    ("item:DateTimeReceived", lambda it, c: f"<t:DateTimeReceived>{dt(it.received)}</t:DateTimeReceived>"),
    ("item:Size", lambda it, c: f"<t:Size>{it.size}</t:Size>"),
    ("item:Categories", lambda it, c: _categories_xml(it)),
    ("item:Importance", lambda it, c: f"<t:Importance>{_importance(it)}</t:Importance>"),
    ("item:IsSubmitted", lambda it, c: "<t:IsSubmitted>false</t:IsSubmitted>"),
    ("item:IsDraft", lambda it, c: f"<t:IsDraft>{tf(it.is_draft)}</t:IsDraft>"),
    ("item:IsFromMe", lambda it, c: "<t:IsFromMe>false</t:IsFromMe>"),
    ("item:IsResend", lambda it, c: "<t:IsResend>false</t:IsResend>"),
    ("item:IsUnmodified", lambda it, c: f"<t:IsUnmodified>{tf(not it.is_draft)}</t:IsUnmodified>"),
    ("item:InternetMessageHeaders", lambda it, c: f"<t:InternetMessageHeaders>{_headers(it)}</t:InternetMessageHeaders>"),
    ("item:DateTimeSent", lambda it, c: f"<t:DateTimeSent>{dt(it.sent)}</t:DateTimeSent>"),
    ("item:DateTimeCreated", lambda it, c: f"<t:DateTimeCreated>{dt(it.received)}</t:DateTimeCreated>"),
    ("item:DisplayCc", lambda it, c: f"<t:DisplayCc>{esc(display_names(it.cc))}</t:DisplayCc>"),
    ("item:DisplayTo", lambda it, c: f"<t:DisplayTo>{esc(display_names(it.to))}</t:DisplayTo>"),
    ("item:HasAttachments", lambda it, c: f"<t:HasAttachments>{tf(it.has_attachments)}</t:HasAttachments>"),
    ("item:ExtendedProperty", None),    # the requested extended properties (props.py)
    ("item:Culture", lambda it, c: "<t:Culture>en-US</t:Culture>"),
    ("item:EffectiveRights", lambda it, c: ITEM_RIGHTS),
    ("item:LastModifiedTime", lambda it, c: f"<t:LastModifiedTime>{dt(it.modified)}</t:LastModifiedTime>"),
    ("item:IsAssociated", lambda it, c: "<t:IsAssociated>false</t:IsAssociated>"),
    ("item:Flag", lambda it, c: f"<t:Flag><t:FlagStatus>{it.flag}</t:FlagStatus></t:Flag>"),
    ("item:TextBody", lambda it, c: '<t:TextBody BodyType="Text">%s</t:TextBody>' % esc(
        _body(it, "Text")[1] if getattr(it, "pim", None) is None else __import__("pim_ews").body_of(it))),
    ("message:Sender", lambda it, c: f"<t:Sender>{mailbox_xml(it.from_name, it.from_addr)}</t:Sender>" if it.from_addr else None),
    ("message:ToRecipients", lambda it, c: (lambda r: f"<t:ToRecipients>{r}</t:ToRecipients>" if r else None)(recipients_xml(it.to))),
    ("message:CcRecipients", lambda it, c: (lambda r: f"<t:CcRecipients>{r}</t:CcRecipients>" if r else None)(recipients_xml(it.cc))),
    ("message:IsReadReceiptRequested", lambda it, c: "<t:IsReadReceiptRequested>false</t:IsReadReceiptRequested>"),
    ("message:IsDeliveryReceiptRequested", lambda it, c: "<t:IsDeliveryReceiptRequested>false</t:IsDeliveryReceiptRequested>"),
    ("message:ConversationTopic", lambda it, c: None if it.subject is None else f"<t:ConversationTopic>{esc(_topic(it.subject))}</t:ConversationTopic>"),
    ("message:From", lambda it, c: f"<t:From>{mailbox_xml(it.from_name, it.from_addr)}</t:From>" if it.from_addr else None),
    ("message:InternetMessageId", lambda it, c: f"<t:InternetMessageId>{esc(it.message_id)}</t:InternetMessageId>" if it.message_id else None),
    ("message:IsRead", lambda it, c: f"<t:IsRead>{tf(it.is_read)}</t:IsRead>"),
]
KNOWN_ITEM_FIELDS = {u for u, _ in ITEM_FIELDS} | {"item:MimeContent", "item:ItemId"}


def _importance(it):
    if getattr(it, "pim", None):
        import pim_ews
        return pim_ews.importance_of(it)
    return "Normal"


def _categories_xml(it):
    if not it.categories:
        return None
    return "<t:Categories>" + "".join(f"<t:String>{esc(c)}</t:String>" for c in it.categories) + "</t:Categories>"


# Properties that are too big or too costly for list views (FindItem, SyncFolderItems).
HEAVY_ITEM_FIELDS = {"item:Body", "item:TextBody", "item:InternetMessageHeaders",
                     "message:ToRecipients", "message:CcRecipients"}
ALL_ITEM_FIELDS = {u for u, _ in ITEM_FIELDS} - {"item:ExtendedProperty"}
DEFAULT_ITEM_FIELDS = ALL_ITEM_FIELDS - HEAVY_ITEM_FIELDS - {"item:Sensitivity", "item:EffectiveRights",
                                                              "item:Categories", "item:Flag"}
DEFAULT_GETITEM_FIELDS = DEFAULT_ITEM_FIELDS | {"item:Body", "message:ToRecipients", "message:CcRecipients"}


def _topic(subject):
    s = subject
    while True:
        low = s.lower()
        for p in ("re:", "fw:", "fwd:", "aw:", "wg:"):
            if low.startswith(p):
                s = s[len(p):].lstrip()
                break
        else:
            return s


def item_fields(base, additional, view):
    """FieldURIs to print for a shape; view is "get" (GetItem) or "list"."""
    if base == "IdOnly":
        fields = set()
    elif base == "Default":
        fields = set(DEFAULT_GETITEM_FIELDS if view == "get" else DEFAULT_ITEM_FIELDS)
    else:
        fields = set(ALL_ITEM_FIELDS if view == "get" else ALL_ITEM_FIELDS - HEAVY_ITEM_FIELDS)
    fields |= additional
    fields.add("@base:" + base)     # typed CalendarItem/Contact/Task properties follow the base shape
    if view != "get":
        fields -= HEAVY_ITEM_FIELDS - ({"message:ToRecipients", "message:CcRecipients"} & additional)
        fields.discard("item:MimeContent")
    return fields


def item_xml(it, fields, include_mime=False, body_type="Best"):
    elem = item_element(it)
    parts = [f"<t:{elem}>"]
    if include_mime or "item:MimeContent" in fields:
        parts.append(f'<t:MimeContent CharacterSet="UTF-8">{mime_b64(it.mime)}</t:MimeContent>')
    parts.append(f'<t:ItemId Id="{it.id}" ChangeKey="{it.change_key}"/>')
    pim_item = getattr(it, "pim", None) is not None
    for uri, render in ITEM_FIELDS:
        if pim_item and (uri.startswith("message:") or uri in PIM_SKIPPED):
            continue
        if uri in fields:
            if render is None:
                x = props.item_props_xml(it, [f[1] for f in fields if isinstance(f, tuple)])
            else:
                x = render(it, body_type)
            if x:
                parts.append(x)
    if pim_item:
        import pim_ews
        base = next((f[6:] for f in fields if isinstance(f, str) and f.startswith("@base:")), "Default")
        parts.append(pim_ews.typed_xml(it, fields, base))
    parts.append(f"</t:{elem}>")
    return "".join(parts)


# Message-only item properties a calendar item, contact or task does not carry.
PIM_SKIPPED = {"item:InternetMessageHeaders", "item:DisplayCc", "item:DisplayTo", "item:DateTimeSent"}


def item_id_xml(obj):
    return f'<t:ItemId Id="{obj.id}" ChangeKey="{obj.change_key}"/>'


# ---- folders -------------------------------------------------------------------

FOLDER_RIGHTS = ("<t:EffectiveRights><t:CreateAssociated>true</t:CreateAssociated><t:CreateContents>true"
                 "</t:CreateContents><t:CreateHierarchy>true</t:CreateHierarchy><t:Delete>true</t:Delete>"
                 "<t:Modify>true</t:Modify><t:Read>true</t:Read><t:ViewPrivateItems>true</t:ViewPrivateItems>"
                 "</t:EffectiveRights>")

FOLDER_FIELDS = [
    ("folder:ParentFolderId", lambda f: f'<t:ParentFolderId Id="{f.parent.id}" ChangeKey="{f.parent.change_key}"/>' if f.parent else None),
    ("folder:FolderClass", lambda f: f"<t:FolderClass>{esc(f.folder_class)}</t:FolderClass>" if f.folder_class else None),
    ("folder:DisplayName", lambda f: f"<t:DisplayName>{esc(f.name)}</t:DisplayName>"),
    ("folder:TotalCount", lambda f: f"<t:TotalCount>{len(f.items)}</t:TotalCount>"),
    ("folder:ChildFolderCount", lambda f: f"<t:ChildFolderCount>{len(f.children)}</t:ChildFolderCount>"),
    ("folder:EffectiveRights", lambda f: FOLDER_RIGHTS),
    ("folder:UnreadCount", lambda f: f"<t:UnreadCount>{f.unread}</t:UnreadCount>" if f.element == "Folder" else None),
]
ALL_FOLDER_FIELDS = {u for u, _ in FOLDER_FIELDS}
DEFAULT_FOLDER_FIELDS = {"folder:DisplayName", "folder:TotalCount", "folder:ChildFolderCount", "folder:UnreadCount"}


def folder_fields(base, additional):
    if base == "IdOnly":
        return set(additional)
    return (DEFAULT_FOLDER_FIELDS if base == "Default" else ALL_FOLDER_FIELDS) | additional


def folder_xml(f, fields):
    parts = [f'<t:{f.element}><t:FolderId Id="{f.id}" ChangeKey="{f.change_key}"/>']
    for uri, render in FOLDER_FIELDS:
        if uri in fields:
            x = render(f)
            if x:
                parts.append(x)
    parts.append(f"</t:{f.element}>")
    return "".join(parts)


def folder_id_xml(obj):
    return f'<t:FolderId Id="{obj.id}" ChangeKey="{obj.change_key}"/>'
