# WBXML (WAP Binary XML 1.3) as Exchange ActiveSync uses it: the code pages of
# MS-ASWBXML that the test server's EAS front-end (eas.py), the Python EAS
# client (eas_client.py) and the tests need. Standard library only.
#
# An element is a tuple (tag, content): tag is "Page:Name" (e.g. "AirSync:Sync");
# content is a list of elements, a str (inline string), bytes (opaque data) or
# None (an empty element). decode() checks every byte against the input's end and
# raises WbxmlError for anything malformed (truncation, unknown global tokens,
# attributes, nesting deeper than MAX_DEPTH, string tables, oversized lengths).

PAGES = {
    0: ("AirSync", {0x05: "Sync", 0x06: "Responses", 0x07: "Add", 0x08: "Change", 0x09: "Delete",
                    0x0A: "Fetch", 0x0B: "SyncKey", 0x0C: "ClientId", 0x0D: "ServerId", 0x0E: "Status",
                    0x0F: "Collection", 0x10: "Class", 0x12: "CollectionId", 0x13: "GetChanges",
                    0x14: "MoreAvailable", 0x15: "WindowSize", 0x16: "Commands", 0x17: "Options",
                    0x18: "FilterType", 0x19: "Truncation", 0x1B: "Conflict", 0x1C: "Collections",
                    0x1D: "ApplicationData", 0x1E: "DeletesAsMoves", 0x20: "Supported",
                    0x21: "SoftDelete", 0x22: "MIMESupport", 0x23: "MIMETruncation", 0x24: "Wait",
                    0x25: "Limit", 0x26: "Partial", 0x27: "ConversationMode", 0x28: "MaxItems",
                    0x29: "HeartbeatInterval"}),
    1: ("Contacts", {0x05: "Anniversary", 0x06: "AssistantName", 0x07: "AssistantPhoneNumber", 0x08: "Birthday",
                     0x0C: "Business2PhoneNumber", 0x0D: "BusinessAddressCity", 0x0E: "BusinessAddressCountry",
                     0x0F: "BusinessAddressPostalCode", 0x10: "BusinessAddressState",
                     0x11: "BusinessAddressStreet", 0x12: "BusinessFaxNumber", 0x13: "BusinessPhoneNumber",
                     0x14: "CarPhoneNumber", 0x15: "Categories", 0x16: "Category", 0x17: "Children", 0x18: "Child",
                     0x19: "CompanyName", 0x1A: "Department", 0x1B: "Email1Address", 0x1C: "Email2Address",
                     0x1D: "Email3Address", 0x1E: "FileAs", 0x1F: "FirstName", 0x20: "Home2PhoneNumber",
                     0x21: "HomeAddressCity", 0x22: "HomeAddressCountry", 0x23: "HomeAddressPostalCode",
                     0x24: "HomeAddressState", 0x25: "HomeAddressStreet", 0x26: "HomeFaxNumber",
                     0x27: "HomePhoneNumber", 0x28: "JobTitle", 0x29: "LastName", 0x2A: "MiddleName",
                     0x2B: "MobilePhoneNumber", 0x2C: "OfficeLocation", 0x2D: "OtherAddressCity",
                     0x2E: "OtherAddressCountry", 0x2F: "OtherAddressPostalCode", 0x30: "OtherAddressState",
                     0x31: "OtherAddressStreet", 0x32: "PagerNumber", 0x33: "RadioPhoneNumber", 0x34: "Spouse",
                     0x35: "Suffix", 0x36: "Title", 0x37: "WebPage", 0x38: "YomiCompanyName",
                     0x39: "YomiFirstName", 0x3A: "YomiLastName", 0x3C: "Picture", 0x3D: "Alias",
                     0x3E: "WeightedRank"}),
    2: ("Email", {0x05: "Attachment", 0x06: "Attachments", 0x07: "AttName", 0x08: "AttSize",
                  0x09: "Att0Id", 0x0A: "AttMethod", 0x0C: "Body", 0x0D: "BodySize", 0x0E: "BodyTruncated",
                  0x0F: "DateReceived", 0x10: "DisplayName", 0x11: "DisplayTo", 0x12: "Importance",
                  0x13: "MessageClass", 0x14: "Subject", 0x15: "Read", 0x16: "To", 0x17: "Cc", 0x18: "From",
                  0x19: "ReplyTo", 0x1A: "AllDayEvent", 0x1B: "Categories", 0x1C: "Category",
                  0x1D: "DTStamp", 0x1E: "EndTime", 0x1F: "InstanceType", 0x20: "BusyStatus",
                  0x21: "Location", 0x22: "MeetingRequest", 0x23: "Organizer", 0x24: "RecurrenceId",
                  0x25: "Reminder", 0x26: "ResponseRequested", 0x27: "Recurrences", 0x28: "Recurrence",
                  0x29: "Recurrence_Type", 0x2A: "Recurrence_Until", 0x2B: "Recurrence_Occurrences",
                  0x2C: "Recurrence_Interval", 0x2D: "Recurrence_DayOfWeek", 0x2E: "Recurrence_DayOfMonth",
                  0x2F: "Recurrence_WeekOfMonth", 0x30: "Recurrence_MonthOfYear", 0x31: "StartTime",
                  0x32: "Sensitivity", 0x33: "TimeZone", 0x34: "GlobalObjId", 0x35: "ThreadTopic",
                  0x36: "MIMEData", 0x37: "MIMETruncated", 0x38: "MIMESize", 0x39: "InternetCPID",
                  0x3A: "Flag", 0x3B: "FlagStatus", 0x3C: "ContentClass", 0x3D: "FlagType",
                  0x3E: "CompleteTime", 0x3F: "DisallowNewTimeProposal"}),
    4: ("Calendar", {0x05: "Timezone", 0x06: "AllDayEvent", 0x07: "Attendees", 0x08: "Attendee", 0x09: "Email",
                     0x0A: "Name", 0x0D: "BusyStatus", 0x0E: "Categories", 0x0F: "Category", 0x11: "DtStamp",
                     0x12: "EndTime", 0x13: "Exception", 0x14: "Exceptions", 0x15: "Deleted",
                     0x16: "ExceptionStartTime", 0x17: "Location", 0x18: "MeetingStatus", 0x19: "OrganizerEmail",
                     0x1A: "OrganizerName", 0x1B: "Recurrence", 0x1C: "Type", 0x1D: "Until", 0x1E: "Occurrences",
                     0x1F: "Interval", 0x20: "DayOfWeek", 0x21: "DayOfMonth", 0x22: "WeekOfMonth",
                     0x23: "MonthOfYear", 0x24: "Reminder", 0x25: "Sensitivity", 0x26: "Subject",
                     0x27: "StartTime", 0x28: "UID", 0x29: "AttendeeStatus", 0x2A: "AttendeeType",
                     0x33: "DisallowNewTimeProposal", 0x34: "ResponseRequested", 0x35: "AppointmentReplyTime",
                     0x36: "ResponseType", 0x37: "CalendarType", 0x38: "IsLeapMonth", 0x39: "FirstDayOfWeek",
                     0x3A: "OnlineMeetingConfLink", 0x3B: "OnlineMeetingExternalLink", 0x3C: "ClientUid"}),
    5: ("Move", {0x05: "MoveItems", 0x06: "Move", 0x07: "SrcMsgId", 0x08: "SrcFldId", 0x09: "DstFldId",
                 0x0A: "Response", 0x0B: "Status", 0x0C: "DstMsgId"}),
    6: ("GetItemEstimate", {0x05: "GetItemEstimate", 0x06: "Version", 0x07: "Collections",
                            0x08: "Collection", 0x09: "Class", 0x0A: "CollectionId", 0x0B: "DateTime",
                            0x0C: "Estimate", 0x0D: "Response", 0x0E: "Status"}),
    7: ("FolderHierarchy", {0x07: "DisplayName", 0x08: "ServerId", 0x09: "ParentId", 0x0A: "Type",
                            0x0C: "Status", 0x0E: "Changes", 0x0F: "Add", 0x10: "Delete", 0x11: "Update",
                            0x12: "SyncKey", 0x13: "FolderCreate", 0x14: "FolderDelete", 0x15: "FolderUpdate",
                            0x16: "FolderSync", 0x17: "Count"}),
    9: ("Tasks", {0x08: "Categories", 0x09: "Category", 0x0A: "Complete", 0x0B: "DateCompleted",
                  0x0C: "DueDate", 0x0D: "UtcDueDate", 0x0E: "Importance", 0x0F: "Recurrence", 0x10: "Type",
                  0x11: "Start", 0x12: "Until", 0x13: "Occurrences", 0x14: "Interval", 0x15: "DayOfMonth",
                  0x16: "DayOfWeek", 0x17: "WeekOfMonth", 0x18: "MonthOfYear", 0x19: "Regenerate",
                  0x1A: "DeadOccur", 0x1B: "ReminderSet", 0x1C: "ReminderTime", 0x1D: "Sensitivity",
                  0x1E: "StartDate", 0x1F: "UtcStartDate", 0x20: "Subject", 0x22: "OrdinalDate",
                  0x23: "SubOrdinalDate", 0x24: "CalendarType", 0x25: "IsLeapMonth", 0x26: "FirstDayOfWeek"}),
    10: ("ResolveRecipients", {0x05: "ResolveRecipients", 0x06: "Response", 0x07: "Status", 0x08: "Type",
                               0x09: "Recipient", 0x0A: "DisplayName", 0x0B: "EmailAddress",
                               0x0C: "Certificates", 0x0D: "Certificate", 0x0E: "MiniCertificate",
                               0x0F: "Options", 0x10: "To", 0x11: "CertificateRetrieval",
                               0x12: "RecipientCount", 0x13: "MaxCertificates", 0x14: "MaxAmbiguousRecipients",
                               0x15: "CertificateCount", 0x16: "Availability", 0x17: "StartTime",
                               0x18: "EndTime", 0x19: "MergedFreeBusy", 0x1A: "Picture", 0x1B: "MaxSize",
                               0x1C: "Data", 0x1D: "MaxPictures"}),
    12: ("Contacts2", {0x05: "CustomerId", 0x06: "GovernmentId", 0x07: "IMAddress", 0x08: "IMAddress2",
                       0x09: "IMAddress3", 0x0A: "ManagerName", 0x0B: "CompanyMainPhone", 0x0C: "AccountName",
                       0x0D: "NickName", 0x0E: "MMS"}),
    13: ("Ping", {0x05: "Ping", 0x06: "AutdState", 0x07: "Status", 0x08: "HeartbeatInterval",
                  0x09: "Folders", 0x0A: "Folder", 0x0B: "Id", 0x0C: "Class", 0x0D: "MaxFolders"}),
    14: ("Provision", {0x05: "Provision", 0x06: "Policies", 0x07: "Policy", 0x08: "PolicyType",
                       0x09: "PolicyKey", 0x0A: "Data", 0x0B: "Status", 0x0C: "RemoteWipe",
                       0x0D: "EASProvisionDoc", 0x0E: "DevicePasswordEnabled",
                       0x0F: "AlphanumericDevicePasswordRequired", 0x10: "RequireStorageCardEncryption",
                       0x11: "PasswordRecoveryEnabled", 0x13: "AttachmentsEnabled",
                       0x14: "MinDevicePasswordLength", 0x15: "MaxInactivityTimeDeviceLock",
                       0x16: "MaxDevicePasswordFailedAttempts", 0x17: "MaxAttachmentSize",
                       0x18: "AllowSimpleDevicePassword", 0x19: "DevicePasswordExpiration",
                       0x1A: "DevicePasswordHistory", 0x1B: "AllowStorageCard", 0x1C: "AllowCamera",
                       0x1D: "RequireDeviceEncryption", 0x29: "AllowHTMLEmail", 0x2A: "MaxEmailAgeFilter",
                       0x2B: "MaxEmailBodyTruncationSize", 0x2C: "MaxEmailHTMLBodyTruncationSize"}),
    15: ("Search", {0x05: "Search", 0x07: "Store", 0x08: "Name", 0x09: "Query", 0x0A: "Options", 0x0B: "Range",
                    0x0C: "Status", 0x0D: "Response", 0x0E: "Result", 0x0F: "Properties", 0x10: "Total",
                    0x11: "EqualTo", 0x12: "Value", 0x13: "And", 0x14: "Or", 0x15: "FreeText",
                    0x17: "DeepTraversal", 0x18: "LongId", 0x19: "RebuildResults", 0x1A: "LessThan",
                    0x1B: "GreaterThan"}),
    17: ("AirSyncBase", {0x05: "BodyPreference", 0x06: "Type", 0x07: "TruncationSize", 0x08: "AllOrNone",
                         0x0A: "Body", 0x0B: "Data", 0x0C: "EstimatedDataSize", 0x0D: "Truncated",
                         0x0E: "Attachments", 0x0F: "Attachment", 0x10: "DisplayName", 0x11: "FileReference",
                         0x12: "Method", 0x13: "ContentId", 0x14: "ContentLocation", 0x15: "IsInline",
                         0x16: "NativeBodyType", 0x17: "ContentType", 0x18: "Preview",
                         0x19: "BodyPartPreference", 0x1A: "BodyPart", 0x1B: "Status", 0x1C: "Add",
                         0x1D: "Delete", 0x1E: "ClientId", 0x1F: "Content", 0x20: "Location",
                         0x2D: "InstanceId"}),
    18: ("Settings", {0x05: "Settings", 0x06: "Status", 0x07: "Get", 0x08: "Set", 0x16: "DeviceInformation",
                      0x17: "Model", 0x18: "IMEI", 0x19: "FriendlyName", 0x1A: "OS", 0x1B: "OSLanguage",
                      0x1C: "PhoneNumber", 0x1D: "UserInformation", 0x1E: "EmailAddresses",
                      0x1F: "SmtpAddress", 0x20: "UserAgent", 0x21: "EnableOutboundSMS",
                      0x22: "MobileOperator", 0x23: "PrimarySmtpAddress", 0x24: "Accounts", 0x25: "Account",
                      0x26: "AccountId", 0x27: "AccountName", 0x28: "UserDisplayName", 0x29: "SendDisabled"}),
    20: ("ItemOperations", {0x05: "ItemOperations", 0x06: "Fetch", 0x07: "Store", 0x08: "Options",
                            0x09: "Range", 0x0A: "Total", 0x0B: "Properties", 0x0C: "Data", 0x0D: "Status",
                            0x0E: "Response", 0x0F: "Version", 0x10: "Schema", 0x11: "Part",
                            0x12: "EmptyFolderContents", 0x13: "DeleteSubFolders", 0x14: "UserName",
                            0x15: "Password", 0x16: "Move", 0x17: "DstFldId", 0x18: "ConversationId",
                            0x19: "MoveAlways"}),
    21: ("ComposeMail", {0x05: "SendMail", 0x06: "SmartForward", 0x07: "SmartReply", 0x08: "SaveInSentItems",
                         0x09: "ReplaceMime", 0x0B: "Source", 0x0C: "FolderId", 0x0D: "ItemId",
                         0x0E: "LongId", 0x0F: "InstanceId", 0x10: "Mime", 0x11: "ClientId", 0x12: "Status",
                         0x13: "AccountId"}),
    22: ("Email2", {0x05: "UmCallerID", 0x06: "UmUserNotes", 0x07: "UmAttDuration", 0x08: "UmAttOrder",
                    0x09: "ConversationId", 0x0A: "ConversationIndex", 0x0B: "LastVerbExecuted",
                    0x0C: "LastVerbExecutionTime", 0x0D: "ReceivedAsBcc", 0x0E: "Sender",
                    0x0F: "CalendarType", 0x10: "IsLeapMonth", 0x11: "AccountId", 0x12: "FirstDayOfWeek",
                    0x13: "MeetingMessageType", 0x15: "IsDraft", 0x16: "Bcc", 0x17: "Send"}),
}

TOK = {}    # "Page:Name" -> (page, token)
NAME = {}   # (page, token) -> "Page:Name"
for _pg, (_pname, _names) in PAGES.items():
    for _tk, _n in _names.items():
        TOK[_pname + ":" + _n] = (_pg, _tk)
        NAME[(_pg, _tk)] = _pname + ":" + _n

MAX_DEPTH = 64
MAX_INPUT = 64 * 1024 * 1024

SWITCH_PAGE, END, STR_I, OPAQUE = 0x00, 0x01, 0x03, 0xC3


class WbxmlError(ValueError):
    """The input is not WBXML as ActiveSync uses it."""


def _mbuint(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.insert(0, 0x80 | (n & 0x7F))
        n >>= 7
    return bytes(out)


def encode(elem):
    """WBXML 1.3, public id 1 (unknown), UTF-8, no string table."""
    out = bytearray(b"\x03\x01\x6a\x00")
    cur = [0]

    def enc(e, depth):
        if depth > MAX_DEPTH:
            raise WbxmlError("nesting too deep")
        tag, content = e
        if tag not in TOK:
            raise WbxmlError(f"unknown tag {tag!r}")
        pg, tk = TOK[tag]
        if pg != cur[0]:
            out.extend((SWITCH_PAGE, pg))
            cur[0] = pg
        if content is None or (isinstance(content, list) and not content):
            out.append(tk)
            return
        out.append(tk | 0x40)
        if isinstance(content, list):
            for c in content:
                enc(c, depth + 1)
        elif isinstance(content, (bytes, bytearray)):
            out.append(OPAQUE)
            out.extend(_mbuint(len(content)))
            out.extend(content)
        else:
            s = str(content).encode("utf-8")
            if b"\x00" in s:
                raise WbxmlError("NUL in an inline string")
            out.append(STR_I)
            out.extend(s)
            out.append(0)
        out.append(END)

    enc(elem, 0)
    return bytes(out)


def decode(data):
    """Parse one WBXML document; returns its root element (None for an empty body)."""
    if not data:
        return None
    if len(data) > MAX_INPUT:
        raise WbxmlError("document too large")
    data = bytes(data)
    n = len(data)
    pos = 0

    def byte():
        nonlocal pos
        if pos >= n:
            raise WbxmlError("truncated")
        b = data[pos]
        pos += 1
        return b

    def mbuint():
        v = 0
        for _ in range(5):
            b = byte()
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v
        raise WbxmlError("multi-byte integer too long")

    version = byte()
    if version not in (0x01, 0x02, 0x03):
        raise WbxmlError(f"unknown WBXML version 0x{version:02x}")
    if mbuint() == 0:          # public id in the string table: not ActiveSync
        mbuint()
    charset = mbuint()
    if charset not in (0x6A, 0):
        raise WbxmlError(f"charset {charset} is not UTF-8")
    strtbl = mbuint()
    if strtbl:
        raise WbxmlError("string tables are not used by ActiveSync")
    page = 0
    # iterative parse: a stack of (tag, children)
    stack = []
    root = None
    while True:
        if pos >= n:
            if stack:
                raise WbxmlError("truncated (unclosed element)")
            break
        b = byte()
        if b == SWITCH_PAGE:
            page = byte()
            continue
        if b == END:
            if not stack:
                raise WbxmlError("END without an open element")
            tag, kids = stack.pop()
            el = (tag, _content(kids))
            if stack:
                stack[-1][1].append(el)
            else:
                root = el
                if pos != n:
                    raise WbxmlError("data after the root element")
            continue
        if b == STR_I:
            end = data.find(b"\x00", pos)
            if end < 0:
                raise WbxmlError("unterminated inline string")
            if not stack:
                raise WbxmlError("text outside an element")
            try:
                stack[-1][1].append(data[pos:end].decode("utf-8"))
            except UnicodeDecodeError:
                raise WbxmlError("inline string is not UTF-8") from None
            pos = end + 1
            continue
        if b == OPAQUE:
            ln = mbuint()
            if ln > n - pos:
                raise WbxmlError("opaque data runs past the end")
            if not stack:
                raise WbxmlError("opaque data outside an element")
            stack[-1][1].append(data[pos:pos + ln])
            pos += ln
            continue
        if b & 0x3F < 0x05:
            raise WbxmlError(f"unsupported global token 0x{b:02x}")
        if b & 0x80:
            raise WbxmlError("attributes are not used by ActiveSync")
        if root is not None:
            raise WbxmlError("a second root element")
        tag = NAME.get((page, b & 0x3F), "cp%d:0x%02x" % (page, b & 0x3F))
        if b & 0x40:
            if len(stack) >= MAX_DEPTH:
                raise WbxmlError("nesting too deep")
            stack.append((tag, []))
        else:
            el = (tag, None)
            if stack:
                stack[-1][1].append(el)
            else:
                root = el
                if pos != n:
                    raise WbxmlError("data after the root element")
    if root is None:
        raise WbxmlError("no root element")
    return root


def _content(kids):
    if not kids:
        return None
    if all(isinstance(k, tuple) for k in kids):
        return kids
    if any(isinstance(k, tuple) for k in kids):
        raise WbxmlError("mixed text and elements")
    if all(isinstance(k, str) for k in kids):
        return "".join(kids)
    return b"".join(k.encode("utf-8") if isinstance(k, str) else k for k in kids)


# ---- reading decoded elements --------------------------------------------------------

def children(e, tag=None):
    """Direct child elements of e (with this tag)."""
    if e is None or not isinstance(e[1], list):
        return []
    return [c for c in e[1] if tag is None or c[0] == tag]


def child(e, tag):
    for c in children(e, tag):
        return c
    return None


def text(e, tag=None, default=None):
    """The text of e's first child with this tag (of e itself without a tag);
    bytes are decoded as UTF-8; an empty element gives ""."""
    if tag is not None:
        e = child(e, tag)
    if e is None:
        return default
    c = e[1]
    if c is None:
        return ""
    if isinstance(c, (bytes, bytearray)):
        return bytes(c).decode("utf-8", "replace")
    if isinstance(c, str):
        return c
    return default


def raw(e, tag=None):
    """Content as bytes (opaque data, or an inline string as UTF-8), None if absent."""
    if tag is not None:
        e = child(e, tag)
    if e is None:
        return None
    c = e[1]
    if c is None:
        return b""
    if isinstance(c, str):
        return c.encode("utf-8")
    if isinstance(c, (bytes, bytearray)):
        return bytes(c)
    return None


def find(e, tag):
    """All elements with this tag in e's subtree (e included), document order."""
    out = []
    if e is None:
        return out
    stack = [e]
    while stack:
        x = stack.pop()
        if x[0] == tag:
            out.append(x)
        if isinstance(x[1], list):
            stack.extend(reversed(x[1]))
    return out


def dump(e, ind=0, maxlen=200):
    """The element as indented pseudo-XML (for failure messages)."""
    if e is None:
        return "(empty)"
    tag, c = e
    pad = "  " * ind
    if isinstance(c, list):
        return (pad + f"<{tag}>\n" + "".join(dump(x, ind + 1, maxlen) + "\n" for x in c) + pad + f"</{tag}>")
    if c is None:
        return pad + f"<{tag}/>"
    s = c if isinstance(c, str) else f"[{len(c)} bytes] " + bytes(c[:maxlen]).decode("utf-8", "replace")
    if len(s) > maxlen:
        s = s[:maxlen] + f"...[{len(s)} chars]"
    return pad + f"<{tag}>{s}</{tag}>"
