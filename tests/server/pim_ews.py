# EWS of calendar items, contacts and tasks (pim.py holds the model): the
# typed properties of CalendarItem, Contact and Task in schema order, the
# CreateItem/UpdateItem side (properties or MimeContent in, canonical dict
# out) and GetUserAvailability (free/busy from the calendar folder).

import base64
import binascii
import calendar as _cal
import datetime

import pim
from mailbox import MailboxError
from soap import Fault, esc, local, m, t, text_of

CREATE_ELEMENTS = {"CalendarItem": "calendar", "Contact": "contact", "Task": "task"}
FOLDER_CLASS = {"calendar": "IPF.Appointment", "contact": "IPF.Contact", "task": "IPF.Task"}
WRONG_FOLDER = {"calendar": ("ErrorCannotCreateCalendarItemInNonCalendarFolder",
                             "Cannot create a calendar item in a non-calendar folder."),
                "contact": ("ErrorCannotCreateContactInNonContactFolder",
                            "Cannot create a contact in a non-contact folder."),
                "task": ("ErrorCannotCreateTaskInNonTaskFolder", "Cannot create a task in a non-task folder.")}
INVITATIONS = ("SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy")


def dt(ts):
    return pim.iso(ts)


def parse_dt(text):
    v = (text or "").strip()
    try:
        if v.endswith("Z"):
            v = v[:-1] + "+00:00"
        d = datetime.datetime.fromisoformat(v)
    except ValueError:
        raise MailboxError("ErrorInvalidValueForProperty", f"Invalid date/time {text!r}.") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp())


def _mbx(name, addr):
    return (f"<t:Mailbox><t:Name>{esc(name or addr)}</t:Name><t:EmailAddress>{esc(addr)}</t:EmailAddress>"
            "<t:RoutingType>SMTP</t:RoutingType></t:Mailbox>")


def _attendees(ev, typ):
    xs = [a for a in ev.get("attendees") or [] if a[2] == typ]
    if not xs:
        return ""
    tag = "RequiredAttendees" if typ == "Required" else "OptionalAttendees"
    return f"<t:{tag}>" + "".join(f"<t:Attendee>{_mbx(n, a)}<t:ResponseType>Unknown</t:ResponseType></t:Attendee>"
                                  for n, a, _ in xs) + f"</t:{tag}>"


def _recurrence(ev):
    rec = ev["recurrence"]
    first = pim.local(ev["start"], ev["tz"]).date()
    if rec["freq"] == "WEEKLY":
        days = " ".join(pim.DAY_NAMES[pim.DAYS.index(d)] for d in rec.get("days") or [])
        pattern = (f"<t:WeeklyRecurrence><t:Interval>{rec.get('interval') or 1}</t:Interval>"
                   f"<t:DaysOfWeek>{days}</t:DaysOfWeek><t:FirstDayOfWeek>Sunday</t:FirstDayOfWeek>"
                   "</t:WeeklyRecurrence>")
    else:
        pattern = f"<t:DailyRecurrence><t:Interval>{rec.get('interval') or 1}</t:Interval></t:DailyRecurrence>"
    if rec.get("count"):
        rng = (f"<t:NumberedRecurrence><t:StartDate>{first}</t:StartDate><t:NumberOfOccurrences>{rec['count']}"
               "</t:NumberOfOccurrences></t:NumberedRecurrence>")
    elif rec.get("until") is not None:
        rng = (f"<t:EndDateRecurrence><t:StartDate>{first}</t:StartDate><t:EndDate>"
               f"{pim.local(rec['until'], ev['tz']).date()}</t:EndDate></t:EndDateRecurrence>")
    else:
        rng = f"<t:NoEndRecurrence><t:StartDate>{first}</t:StartDate></t:NoEndRecurrence>"
    return f"<t:Recurrence>{pattern}{rng}</t:Recurrence>"


def _occ_id(it, orig):
    # Exchange's occurrence ids are the master's id plus the original start.
    raw = base64.b64decode(it.id) + orig.to_bytes(8, "big")
    return base64.b64encode(raw).decode("ascii")


def _calendar_fields(it):
    ev = it.pim
    rec = ev.get("recurrence")
    occ = pim.occurrences(ev) if rec else []
    exc = [x for x in ev.get("exceptions") or [] if not x.get("deleted")]
    gone = [x for x in ev.get("exceptions") or [] if x.get("deleted")]
    org = ev.get("organizer") or ["Alice Example", "alice@example.com"]
    tzname = ev["tz"]
    out = [
        ("calendar:UID", f"<t:UID>{esc(ev['uid'])}</t:UID>"),
        ("calendar:RecurrenceId", f"<t:RecurrenceId>{dt(ev['orig'])}</t:RecurrenceId>" if ev.get("orig") else ""),
        ("calendar:DateTimeStamp", f"<t:DateTimeStamp>{dt(it.modified)}</t:DateTimeStamp>"),
        ("calendar:Start", f"<t:Start>{dt(ev['start'])}</t:Start>"),
        ("calendar:End", f"<t:End>{dt(ev['end'])}</t:End>"),
        ("calendar:OriginalStart", f"<t:OriginalStart>{dt(ev['orig'])}</t:OriginalStart>" if ev.get("orig") else ""),
        ("calendar:IsAllDayEvent", f"<t:IsAllDayEvent>{'true' if ev.get('all_day') else 'false'}</t:IsAllDayEvent>"),
        ("calendar:LegacyFreeBusyStatus", f"<t:LegacyFreeBusyStatus>{ev.get('busy') or 'Busy'}</t:LegacyFreeBusyStatus>"),
        ("calendar:Location", f"<t:Location>{esc(ev['location'])}</t:Location>" if ev.get("location") else ""),
        ("calendar:IsMeeting", f"<t:IsMeeting>{'true' if ev.get('attendees') else 'false'}</t:IsMeeting>"),
        ("calendar:IsCancelled", "<t:IsCancelled>false</t:IsCancelled>"),
        ("calendar:IsRecurring", f"<t:IsRecurring>{'true' if rec or ev.get('instance') else 'false'}</t:IsRecurring>"),
        ("calendar:CalendarItemType", f"<t:CalendarItemType>{ev.get('instance') or ('RecurringMaster' if rec else 'Single')}"
         "</t:CalendarItemType>"),
        ("calendar:MyResponseType", "<t:MyResponseType>Organizer</t:MyResponseType>"),
        ("calendar:Organizer", f"<t:Organizer>{_mbx(*org)}</t:Organizer>"),
        ("calendar:RequiredAttendees", _attendees(ev, "Required")),
        ("calendar:OptionalAttendees", _attendees(ev, "Optional")),
        ("calendar:Duration", f"<t:Duration>PT{(ev['end'] - ev['start']) // 60}M</t:Duration>"),
        ("calendar:TimeZone", f"<t:TimeZone>{esc(tzname)}</t:TimeZone>"),
        ("calendar:AppointmentSequenceNumber", f"<t:AppointmentSequenceNumber>{ev.get('sequence', 0)}</t:AppointmentSequenceNumber>"),
        ("calendar:AppointmentState", f"<t:AppointmentState>{1 if ev.get('attendees') else 0}</t:AppointmentState>"),
        ("calendar:Recurrence", _recurrence(ev) if rec else ""),
        ("calendar:FirstOccurrence", _occurrence_info(it, occ[0]) .replace("Occurrence>", "FirstOccurrence>", 2)
         if occ else ""),
        ("calendar:LastOccurrence", _occurrence_info(it, occ[-1]).replace("Occurrence>", "LastOccurrence>", 2)
         if occ and (rec.get("count") or rec.get("until") is not None) else ""),
        ("calendar:ModifiedOccurrences", "<t:ModifiedOccurrences>" + "".join(
            _occurrence_info(it, (x["orig"], x["start"], x["end"], x)) for x in exc) + "</t:ModifiedOccurrences>"
         if exc else ""),
        ("calendar:DeletedOccurrences", "<t:DeletedOccurrences>" + "".join(
            f"<t:DeletedOccurrence><t:Start>{dt(x['orig'])}</t:Start></t:DeletedOccurrence>" for x in gone)
         + "</t:DeletedOccurrences>" if gone else ""),
        ("calendar:StartTimeZone", f'<t:StartTimeZone Id="{esc(tzname)}" Name="{esc(tzname)}"/>'),
        ("calendar:EndTimeZone", f'<t:EndTimeZone Id="{esc(tzname)}" Name="{esc(tzname)}"/>'),
    ]
    return out


def _occurrence_info(it, occ):
    orig, start, end, _ = occ
    return (f'<t:Occurrence><t:ItemId Id="{_occ_id(it, orig)}" ChangeKey="{it.change_key}"/>'
            f"<t:Start>{dt(start)}</t:Start><t:End>{dt(end)}</t:End><t:OriginalStart>{dt(orig)}</t:OriginalStart>"
            "</t:Occurrence>")


PHONE_KEYS = {"business": "BusinessPhone", "home": "HomePhone", "mobile": "MobilePhone"}


def _contact_fields(it):
    c = it.pim
    emails = "".join(f'<t:Entry Key="EmailAddress{i + 1}">{esc(e)}</t:Entry>' for i, e in enumerate(c.get("emails") or []))
    phones = "".join(f'<t:Entry Key="{PHONE_KEYS[k]}">{esc(v)}</t:Entry>'
                     for k, v in sorted((c.get("phones") or {}).items()) if k in PHONE_KEYS and v)
    complete = (f"<t:CompleteName><t:FirstName>{esc(c.get('given'))}</t:FirstName>"
                f"<t:MiddleName>{esc(c.get('middle'))}</t:MiddleName><t:LastName>{esc(c.get('surname'))}</t:LastName>"
                f"<t:FullName>{esc(c.get('display'))}</t:FullName></t:CompleteName>")

    def opt(uri, tag, key):
        return (uri, f"<t:{tag}>{esc(c[key])}</t:{tag}>" if c.get(key) else "")
    return [
        opt("contacts:FileAs", "FileAs", "file_as"),
        opt("contacts:DisplayName", "DisplayName", "display"),
        opt("contacts:GivenName", "GivenName", "given"),
        opt("contacts:MiddleName", "MiddleName", "middle"),
        opt("contacts:Nickname", "Nickname", "nickname"),
        ("contacts:CompleteName", complete),
        opt("contacts:CompanyName", "CompanyName", "company"),
        ("contacts:EmailAddresses", f"<t:EmailAddresses>{emails}</t:EmailAddresses>" if emails else ""),
        ("contacts:PhoneNumbers", f"<t:PhoneNumbers>{phones}</t:PhoneNumbers>" if phones else ""),
        ("contacts:Birthday", f"<t:Birthday>{_date(c['birthday'])}T11:59:00Z</t:Birthday>" if c.get("birthday") else ""),
        opt("contacts:Department", "Department", "department"),
        opt("contacts:JobTitle", "JobTitle", "job_title"),
        opt("contacts:Surname", "Surname", "surname"),
        ("contacts:HasPicture", f"<t:HasPicture>{'true' if c.get('photo') else 'false'}</t:HasPicture>"),
    ]


def _date(d):
    d = d.replace("-", "")
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}"


def _task_fields(it):
    k = it.pim
    return [
        ("task:CompleteDate", f"<t:CompleteDate>{dt(k['completed'])}</t:CompleteDate>" if k.get("completed") else ""),
        ("task:DueDate", f"<t:DueDate>{dt(k['due'])}</t:DueDate>" if k.get("due") is not None else ""),
        ("task:IsComplete", f"<t:IsComplete>{'true' if k.get('complete') else 'false'}</t:IsComplete>"),
        ("task:IsRecurring", "<t:IsRecurring>false</t:IsRecurring>"),
        ("task:PercentComplete", f"<t:PercentComplete>{int(k.get('percent') or 0)}</t:PercentComplete>"),
        ("task:StartDate", f"<t:StartDate>{dt(k['start'])}</t:StartDate>" if k.get("start") is not None else ""),
        ("task:Status", f"<t:Status>{k.get('status') or 'NotStarted'}</t:Status>"),
    ]


def typed_xml(it, fields, base):
    """The CalendarItem/Contact/Task properties asked for: all of them for
    Default/AllProperties shapes, else those named in the shape."""
    k = pim.kind_of(it)
    rows = _calendar_fields(it) if k == "calendar" else _contact_fields(it) if k == "contact" else _task_fields(it)
    return "".join(x for uri, x in rows if x and (base != "IdOnly" or uri in fields or INDEXED.get(uri) in fields))


# Indexed properties a shape names entry by entry (IndexedFieldURI).
INDEXED = {"contacts:EmailAddresses": "contacts:EmailAddress", "contacts:PhoneNumbers": "contacts:PhoneNumber",
           "contacts:PhysicalAddresses": "contacts:PhysicalAddress", "contacts:ImAddresses": "contacts:ImAddress"}


def body_of(it):
    return it.pim.get("notes" if pim.kind_of(it) == "contact" else "body") or ""


def importance_of(it):
    return it.pim.get("importance") or "Normal" if pim.kind_of(it) == "task" else "Normal"


# ---- CreateItem / UpdateItem ---------------------------------------------------------------

def _mailboxes(elem):
    out = []
    if elem is None:
        return out
    for a in elem:
        mb = a.find(t("Mailbox")) if local(a.tag) == "Attendee" else a
        if mb is None:
            continue
        out.append(((text_of(mb, t("Name")) or "").strip(), (text_of(mb, t("EmailAddress")) or "").strip()))
    return out


def _bool(v):
    return (v or "").strip().lower() in ("true", "1")


def _mime_of(el):
    try:
        return base64.b64decode("".join((el.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise MailboxError("ErrorMimeContentInvalidBase64String", "The MIME content is not a valid Base64 string.") \
            from None


def spec_of(el, kind):
    """A canonical dict of a t:CalendarItem/t:Contact/t:Task of CreateItem."""
    mime = el.find(t("MimeContent"))
    if mime is not None:
        data = _mime_of(mime)
        if kind == "calendar":
            p = pim.parse_ics(data)
        elif kind == "contact":
            p = pim.parse_vcf(data)
        else:
            raise MailboxError("ErrorMimeContentConversionFailed",
                               "MIME content conversion failed: a task has no MIME form.")
    else:
        p = {"calendar": pim.new_event, "contact": pim.new_contact, "task": pim.new_task}[kind]()
        if kind == "calendar":
            p["start"] = p["end"] = None
    apply_props(p, el, fresh=mime is None)
    if kind == "calendar":
        if p.get("start") is None or p.get("end") is None:
            raise MailboxError("ErrorMissingInformation", "Start and End are required for a calendar item.")
        if not p.get("uid") or mime is None:
            p["uid"] = p.get("uid") or pim.new_event(subject=p["subject"], start=p["start"])["uid"]
    if kind == "contact":
        p["display"] = p["display"] or " ".join(x for x in (p["given"], p["surname"]) if x)
        p["file_as"] = p["file_as"] or pim.file_as(p)
    return p


def apply_props(p, el, fresh=True):
    """Copy the typed properties of an element (a CreateItem item or the
    item inside a SetItemField) into the canonical dict p."""
    kind = p["kind"]
    for c in el:
        name = local(c.tag)
        v = c.text or ""
        if name == "Subject":
            if kind == "contact":
                continue
            p["subject"] = v
        elif name == "Body":
            p["notes" if kind == "contact" else "body"] = v
        elif name == "Importance" and kind == "task":
            p["importance"] = v.strip() or "Normal"
        elif kind == "calendar":
            if name == "Start":
                p["start"] = parse_dt(v)
            elif name == "End":
                p["end"] = parse_dt(v)
            elif name == "IsAllDayEvent":
                p["all_day"] = _bool(v)
            elif name == "LegacyFreeBusyStatus":
                if v.strip() not in pim.BUSY:
                    raise MailboxError("ErrorInvalidValueForProperty", f"Invalid free/busy status {v!r}.")
                p["busy"] = v.strip()
            elif name == "Location":
                p["location"] = v
            elif name == "UID":
                p["uid"] = v.strip()
            elif name in ("RequiredAttendees", "OptionalAttendees"):
                typ = "Required" if name.startswith("Req") else "Optional"
                p["attendees"] = [a for a in p.get("attendees") or [] if a[2] != typ] + \
                    [[n, a, typ] for n, a in _mailboxes(c)]
            elif name in ("StartTimeZone", "MeetingTimeZone"):
                tz = pim.windows_zone(c.get("Id") or "") or pim.windows_zone(c.get("TimeZoneName") or "")
                if tz:
                    p["tz"] = tz
            elif name == "ReminderMinutesBeforeStart":
                p["reminder"] = int(v) if v.strip().isdigit() else p.get("reminder")
            elif name == "Recurrence":
                p["recurrence"] = _parse_recurrence(c)
        elif kind == "contact":
            simple = {"GivenName": "given", "Surname": "surname", "MiddleName": "middle", "DisplayName": "display",
                      "FileAs": "file_as", "CompanyName": "company", "JobTitle": "job_title",
                      "Department": "department", "Nickname": "nickname"}
            if name in simple:
                p[simple[name]] = v
            elif name == "EmailAddresses":
                emails = list(p.get("emails") or []) + [""] * 3
                for e in c.findall(t("Entry")):
                    key = e.get("Key") or ""
                    if key[-1:] in "123" and key.startswith("EmailAddress"):
                        emails[int(key[-1]) - 1] = (e.text or "").strip()
                p["emails"] = [e for e in emails[:3] if e]
            elif name == "PhoneNumbers":
                rev = {v_: k for k, v_ in PHONE_KEYS.items()}
                phones = dict(p.get("phones") or {})
                for e in c.findall(t("Entry")):
                    k = rev.get(e.get("Key") or "")
                    if k:
                        if (e.text or "").strip():
                            phones[k] = e.text.strip()
                        else:
                            phones.pop(k, None)
                p["phones"] = phones
            elif name == "Birthday":
                p["birthday"] = time_date(parse_dt(v))
        elif kind == "task":
            if name == "DueDate":
                p["due"] = parse_dt(v)
            elif name == "StartDate":
                p["start"] = parse_dt(v)
            elif name == "CompleteDate":
                p["completed"] = parse_dt(v)
            elif name == "PercentComplete":
                try:
                    p["percent"] = int(float(v))
                except ValueError:
                    raise MailboxError("ErrorInvalidValueForProperty", "PercentComplete must be 0-100.") from None
                if not 0 <= p["percent"] <= 100:
                    raise MailboxError("ErrorInvalidPercentCompleteValue", "PercentComplete must be 0-100.")
                p["complete"] = p["percent"] == 100
                p["status"] = "Completed" if p["complete"] else "InProgress" if p["percent"] else p.get("status")
            elif name == "Status":
                if v.strip() not in ("NotStarted", "InProgress", "Completed", "WaitingOnOthers", "Deferred"):
                    raise MailboxError("ErrorInvalidValueForProperty", f"Invalid task status {v!r}.")
                p["status"] = v.strip()
                p["complete"] = p["status"] == "Completed"
                if p["complete"]:
                    p["percent"] = 100
                    p["completed"] = p.get("completed") or int(datetime.datetime.now().timestamp())
    return p


def time_date(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")


def _parse_recurrence(el):
    rec = {"freq": None, "interval": 1, "days": [], "count": None, "until": None}
    for c in el:
        name = local(c.tag)
        if name in ("WeeklyRecurrence", "DailyRecurrence"):
            rec["freq"] = "WEEKLY" if name.startswith("Weekly") else "DAILY"
            iv = text_of(c, t("Interval"), "1")
            rec["interval"] = int(iv) if iv.strip().isdigit() else 1
            days = (text_of(c, t("DaysOfWeek"), "") or "").split()
            rec["days"] = [pim.DAYS[pim.DAY_NAMES.index(d)] for d in days if d in pim.DAY_NAMES]
        elif name == "NumberedRecurrence":
            n = text_of(c, t("NumberOfOccurrences"), "")
            rec["count"] = int(n) if n.strip().isdigit() else None
        elif name == "EndDateRecurrence":
            d = (text_of(c, t("EndDate"), "") or "")[:10]
            try:
                rec["until"] = _cal.timegm(datetime.datetime.strptime(d, "%Y-%m-%d").timetuple()) + 86399
            except ValueError:
                raise MailboxError("ErrorCalendarInvalidRecurrence", "The recurrence end date is invalid.") from None
    if rec["freq"] is None:
        raise MailboxError("ErrorCalendarInvalidRecurrence", "Only daily and weekly recurrences are modelled.")
    return rec


# FieldURIs UpdateItem may set or delete on these items (-> what DeleteItemField clears).
SETTABLE = {
    "calendar": {"item:Subject": ("subject", ""), "item:Body": ("body", ""), "calendar:Start": None,
                 "calendar:End": None, "calendar:IsAllDayEvent": ("all_day", False),
                 "calendar:LegacyFreeBusyStatus": ("busy", "Busy"), "calendar:Location": ("location", None),
                 "calendar:RequiredAttendees": None, "calendar:OptionalAttendees": None,
                 "calendar:Recurrence": ("recurrence", None), "calendar:StartTimeZone": None,
                 "calendar:ReminderMinutesBeforeStart": ("reminder", None), "item:ReminderIsSet": None,
                 "calendar:UID": None, "item:Importance": None, "item:Sensitivity": None,
                 "item:Categories": None, "item:ReminderMinutesBeforeStart": ("reminder", None),
                 "calendar:EndTimeZone": None, "calendar:MeetingTimeZone": None},
    "contact": {"item:Body": ("notes", ""), "contacts:GivenName": ("given", ""), "contacts:Surname": ("surname", ""),
                "contacts:MiddleName": ("middle", ""), "contacts:DisplayName": ("display", ""),
                "contacts:FileAs": ("file_as", ""), "contacts:CompanyName": ("company", ""),
                "contacts:JobTitle": ("job_title", ""), "contacts:Department": ("department", ""),
                "contacts:Nickname": ("nickname", ""), "contacts:Birthday": ("birthday", None),
                "contacts:EmailAddress": None, "contacts:PhoneNumber": None, "contacts:EmailAddresses": None,
                "contacts:PhoneNumbers": None, "item:Categories": None, "item:Sensitivity": None,
                "item:Importance": None, "item:Subject": None},
    "task": {"item:Subject": ("subject", ""), "item:Body": ("body", ""), "item:Importance": ("importance", "Normal"),
             "task:DueDate": ("due", None), "task:StartDate": ("start", None), "task:Status": ("status", "NotStarted"),
             "task:PercentComplete": ("percent", 0), "task:CompleteDate": ("completed", None),
             "item:Categories": None, "item:Sensitivity": None, "item:ReminderIsSet": None},
}


def apply_updates(it, updates):
    """A new canonical dict for the t:Updates of an UpdateItem (raises
    MailboxError as Exchange refuses per item)."""
    p = dict(it.pim)
    kind = p["kind"]
    for u in updates:
        action = local(u.tag)
        path = next((c for c in u if local(c.tag) in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI")), None)
        if path is None:
            raise Fault("ErrorSchemaValidation", f"The element '{action}' has incomplete content.")
        uri = path.get("FieldURI") or ""
        if local(path.tag) == "ExtendedFieldURI" or uri not in SETTABLE[kind]:
            raise MailboxError("ErrorInvalidPropertySet" if action != "DeleteItemField" else
                               "ErrorInvalidPropertyDelete", f"The property {uri} cannot be changed here.")
        if action == "AppendToItemField":
            raise MailboxError("ErrorInvalidPropertyAppend", "Append action is invalid for property.")
        if action == "DeleteItemField":
            target = SETTABLE[kind][uri]
            if local(path.tag) == "IndexedFieldURI":
                idx = path.get("FieldIndex") or ""
                if uri == "contacts:EmailAddress" and idx[-1:] in "123":
                    emails = list(p.get("emails") or []) + [""] * 3
                    emails[int(idx[-1]) - 1] = ""
                    p["emails"] = [e for e in emails if e]
                elif uri == "contacts:PhoneNumber":
                    p["phones"] = {k: v for k, v in (p.get("phones") or {}).items() if PHONE_KEYS.get(k) != idx}
                continue
            if target is None:
                if uri in ("calendar:RequiredAttendees", "calendar:OptionalAttendees"):
                    typ = "Required" if "Required" in uri else "Optional"
                    p["attendees"] = [a for a in p.get("attendees") or [] if a[2] != typ]
                    continue
                if uri in ("calendar:Start", "calendar:End", "calendar:UID"):
                    raise MailboxError("ErrorInvalidPropertyDelete", "Delete action is invalid for property.")
                continue
            p[target[0]] = target[1]
            continue
        item = next((c for c in u if c is not path), None)
        if item is None or len(item) != 1:
            raise MailboxError("ErrorIncorrectUpdatePropertyCount", "An object within a change description must "
                               "contain one and only one property to modify.")
        apply_props(p, item, fresh=False)
    if kind == "contact" and not p.get("display"):
        p["display"] = " ".join(x for x in (p.get("given"), p.get("surname")) if x)
    return p


# ---- GetUserAvailability -----------------------------------------------------------------

def _tz_offset_fn(tz_elem):
    """UTC seconds -> offset seconds of the request's t:TimeZone (Bias,
    StandardTime, DaylightTime with DayOrder/Month/DayOfWeek/Time)."""
    if tz_elem is None:
        return lambda ts: 0

    def num(e, tag, default=0):
        v = text_of(e, t(tag), None) if e is not None else None
        try:
            return int(v)
        except (TypeError, ValueError):
            return default
    bias = num(tz_elem, "Bias")
    std, dst = tz_elem.find(t("StandardTime")), tz_elem.find(t("DaylightTime"))
    if std is None or dst is None or num(std, "Month") == 0:
        return lambda ts: -bias * 60

    def rule(e):
        dow = pim.DAY_NAMES.index(text_of(e, t("DayOfWeek"), "Sunday")) if \
            text_of(e, t("DayOfWeek"), "Sunday") in pim.DAY_NAMES else 0
        hh, mm = ((text_of(e, t("Time"), "00:00:00") or "00:00:00").split(":") + ["0"])[:2]
        return num(e, "Month"), num(e, "DayOrder", 1), dow, int(hh or 0) * 60 + int(mm or 0), num(e, "Bias")

    def transition(year, r, offset_before):
        month, order, dow, minutes, _ = r
        d = datetime.date(year, month, 1)
        days = [d + datetime.timedelta(n) for n in range(31) if (d + datetime.timedelta(n)).month == month]
        hits = [x for x in days if (x.weekday() + 1) % 7 == dow]
        day = hits[min(order, len(hits)) - 1]
        return _cal.timegm(day.timetuple()) + minutes * 60 - offset_before
    rs, rd = rule(std), rule(dst)

    def offset(ts):
        year = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).year
        std_off, dst_off = -(bias + rs[4]) * 60, -(bias + rd[4]) * 60
        a, b = transition(year, rd, std_off), transition(year, rs, dst_off)
        in_dst = a <= ts < b if a < b else not (b <= ts < a)
        return dst_off if in_dst else std_off
    return offset


def get_user_availability(mb, op, owner):
    from soap import envelope, NS_M, NS_T
    offset = _tz_offset_fn(op.find(t("TimeZone")))
    opts = op.find(t("FreeBusyViewOptions"))
    if opts is None:
        raise Fault("ErrorSchemaValidation", "The element 'GetUserAvailabilityRequest' has incomplete content.")
    window = opts.find(t("TimeWindow"))

    def local_in(text):
        d = datetime.datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
        if d.tzinfo is not None:
            return int(d.timestamp())
        naive = _cal.timegm(d.timetuple())
        return naive - offset(naive)
    try:
        lo, hi = local_in(text_of(window, t("StartTime"))), local_in(text_of(window, t("EndTime")))
    except (ValueError, TypeError):
        raise Fault("ErrorSchemaValidation", "The TimeWindow is invalid.") from None
    if hi <= lo or hi - lo > 62 * 86400:
        raise Fault("ErrorInvalidTimeInterval", "The time window must be positive and at most 62 days.")
    interval = text_of(opts, t("MergedFreeBusyIntervalInMinutes"), "30") or "30"
    slot = max(5, int(interval) if interval.strip().isdigit() else 30) * 60
    view = (text_of(opts, t("RequestedView"), "Detailed") or "Detailed").strip()

    def fmt(ts):
        return datetime.datetime.fromtimestamp(ts + offset(ts), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    out = []
    cal = mb.distinguished.get("calendar")
    for md in op.find(m("MailboxDataArray")) if op.find(m("MailboxDataArray")) is not None else []:
        addr = (text_of(md.find(t("Email")), t("Address")) or "").strip().lower() if md.find(t("Email")) is not None \
            else ""
        if addr != owner.lower() or cal is None:
            out.append('<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Error"><m:MessageText>'
                       f"No mailbox with the address {esc(addr)} was found.</m:MessageText><m:ResponseCode>"
                       "ErrorMailRecipientNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
                       "</m:ResponseMessage></m:FreeBusyResponse>")
            continue
        items = list(cal.items.values())
        events = "".join(
            f"<t:CalendarEvent><t:StartTime>{fmt(s)}</t:StartTime><t:EndTime>{fmt(e)}</t:EndTime>"
            f"<t:BusyType>{b}</t:BusyType>"
            + (f"<t:CalendarEventDetails><t:ID>{it.id}</t:ID><t:Subject>{esc((x or {}).get('subject', it.pim['subject']))}"
               f"</t:Subject><t:Location>{esc(it.pim.get('location') or '')}</t:Location>"
               f"<t:IsMeeting>{'true' if it.pim.get('attendees') else 'false'}</t:IsMeeting>"
               f"<t:IsRecurring>{'true' if it.pim.get('recurrence') else 'false'}</t:IsRecurring>"
               f"<t:IsException>{'true' if x else 'false'}</t:IsException><t:IsReminderSet>"
               f"{'true' if it.pim.get('reminder') is not None else 'false'}</t:IsReminderSet>"
               "<t:IsPrivate>false</t:IsPrivate></t:CalendarEventDetails>" if view.startswith("Detailed") else "")
            + "</t:CalendarEvent>"
            for s, e, b, it, x in pim.busy_intervals(items, lo, hi) if b != "Free" or view.startswith("Detailed"))
        merged = (f"<t:MergedFreeBusy>{pim.merged_free_busy(items, lo, hi, slot)}</t:MergedFreeBusy>"
                  if view.endswith("Merged") or view == "MergedOnly" else "")
        vt = {"Detailed": "Detailed", "FreeBusy": "FreeBusy", "MergedOnly": "MergedOnly"}.get(view, view)
        out.append('<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
                   f"</m:ResponseCode></m:ResponseMessage><m:FreeBusyView><t:FreeBusyViewType>{vt}"
                   f"</t:FreeBusyViewType>{merged}<t:CalendarEventArray>{events}</t:CalendarEventArray>"
                   "<t:WorkingHours><t:TimeZone><t:Bias>-60</t:Bias><t:StandardTime><t:Bias>0</t:Bias>"
                   "<t:Time>03:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday"
                   "</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>-60</t:Bias><t:Time>02:00:00</t:Time>"
                   "<t:DayOrder>5</t:DayOrder><t:Month>3</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek>"
                   "</t:DaylightTime></t:TimeZone><t:WorkingPeriodArray><t:WorkingPeriod><t:DayOfWeek>Monday "
                   "Tuesday Wednesday Thursday Friday</t:DayOfWeek><t:StartTimeInMinutes>480"
                   "</t:StartTimeInMinutes><t:EndTimeInMinutes>1020</t:EndTimeInMinutes></t:WorkingPeriod>"
                   "</t:WorkingPeriodArray></t:WorkingHours></m:FreeBusyView></m:FreeBusyResponse>")
    return envelope(f'<m:GetUserAvailabilityResponse xmlns:m="{NS_M}" xmlns:t="{NS_T}"><m:FreeBusyResponseArray>'
                    f'{"".join(out)}</m:FreeBusyResponseArray></m:GetUserAvailabilityResponse>')


# ---- FindItem with CalendarView -------------------------------------------------------------

class Occurrence:
    """One instance of a recurring master as CalendarView lists it: the
    master's properties, its own id, start, end (and those an exception
    changed), CalendarItemType Occurrence or Exception."""

    def __init__(self, master, occ):
        orig, start, end, x = occ
        self._master = master
        self.id = _occ_id(master, orig)
        self.pim = dict(master.pim, start=start, end=end, recurrence=None, exceptions=[], orig=orig,
                        instance="Exception" if x else "Occurrence")
        if x:
            for k in ("subject", "location"):
                if k in x:
                    self.pim[k] = x[k]
        self.subject = self.pim.get("subject")

    def __getattr__(self, name):
        return getattr(self._master, name)


def calendar_view(f, view, fields):
    """The RootFolder of a FindItem with CalendarView: single items and
    occurrences overlapping [StartDate, EndDate), by start; at most
    MaxEntriesReturned (IncludesLastItemInRange false when cut)."""
    import render
    from ops import _root_folder
    if not (f.folder_class or "").startswith("IPF.Appointment"):
        raise MailboxError("ErrorCalendarFolderIsInvalidForCalendarView",
                           "The folder is not a calendar folder.")
    try:
        lo, hi = parse_dt(view.get("StartDate")), parse_dt(view.get("EndDate"))
    except MailboxError:
        raise Fault("ErrorSchemaValidation", "The CalendarView StartDate or EndDate is invalid.") from None
    if hi < lo:
        raise MailboxError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")
    if hi - lo > 2 * 366 * 86400:
        raise MailboxError("ErrorCalendarViewRangeTooBig", "The calendar view range is too big.")
    entries = []
    for it in f.items.values():
        if pim.kind_of(it) != "calendar":
            continue
        if not it.pim.get("recurrence"):
            if it.pim["end"] > lo and it.pim["start"] < hi:
                entries.append((it.pim["start"], it))
            continue
        for occ in pim.occurrences(it.pim, lo, hi):
            entries.append((occ[1], Occurrence(it, occ)))
    entries.sort(key=lambda e: (e[0], e[1].id))
    limit = view.get("MaxEntriesReturned")
    n = len(entries) if not (limit or "").strip().isdigit() else min(len(entries), int(limit))
    return _root_folder("Items", [render.item_xml(x, fields) for _, x in entries[:n]], 0, n, n, len(entries))


def occurrence_by_id(mb, iid):
    """The Occurrence an occurrence id (master id + original start) names, or None."""
    try:
        raw = base64.b64decode(iid, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 9:
        return None
    master = mb.items.get(base64.b64encode(raw[:-8]).decode("ascii"))
    if master is None or pim.kind_of(master) != "calendar" or not master.pim.get("recurrence"):
        return None
    orig = int.from_bytes(raw[-8:], "big")
    for occ in pim.occurrences(master.pim, orig, orig + 1 + (master.pim["end"] - master.pim["start"])) + \
            [o for o in pim.occurrences(master.pim) if o[0] == orig]:
        if occ[0] == orig:
            return Occurrence(master, occ)
    return None
