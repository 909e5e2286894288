# ActiveSync of calendar items, contacts and tasks (pim.py holds the model):
# the ApplicationData of the Calendar (MS-ASCAL), Contacts (MS-ASCNTC) and
# Tasks (MS-ASTASK) classes as Sync Add/Change and Fetch give them, the same
# read back from a device's Add/Change (canonical dict out), and the
# MergedFreeBusy of ResolveRecipients Availability. Dates are MS-ASDTYPE
# compact UTC (20261205T100000Z) in Calendar, ISO with milliseconds in Tasks
# and Contacts.

import calendar as _cal
import datetime
import time

import pim
from mailbox import MailboxError
from wbxml import child, children, text

BUSY = {"Free": "0", "Tentative": "1", "Busy": "2", "OOF": "3", "WorkingElsewhere": "4"}
BUSY_FROM = {v: k for k, v in BUSY.items()}
IMPORTANCE = {"Low": "0", "Normal": "1", "High": "2"}
IMPORTANCE_FROM = {v: k for k, v in IMPORTANCE.items()}
DAY_BITS = {d: 1 << i for i, d in enumerate(pim.DAYS)}      # SU=1, MO=2, ... SA=64


def E(tag, content=None):
    return (tag, content)


def compact(ts):
    return pim.compact(ts)


def iso_ms(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def parse_time(v):
    """Compact (20261205T100000Z) or ISO (2026-12-05T10:00:00.000Z) UTC."""
    s = (v or "").strip().replace("-", "").replace(":", "")
    s = s.split(".")[0].rstrip("Z")
    try:
        return _cal.timegm(datetime.datetime.strptime(s[:15], "%Y%m%dT%H%M%S").timetuple())
    except ValueError:
        raise MailboxError("ErrorInvalidValueForProperty", f"bad date {v!r}") from None


def _body(text_value, bo):
    return E("AirSyncBase:Body", [E("AirSyncBase:Type", "1"),
                                  E("AirSyncBase:EstimatedDataSize", str(len((text_value or "").encode()))),
                                  E("AirSyncBase:Data", text_value or "")])


def app_data(it, bo, tag="AirSync:ApplicationData"):
    k = pim.kind_of(it)
    p = it.pim
    if k == "calendar":
        kids = _calendar(p, it)
    elif k == "contact":
        kids = _contact(p)
    else:
        kids = _task(p)
    return E(tag, kids)


def _recurrence(p):
    rec = p["recurrence"]
    kids = [E("Calendar:Type", "1" if rec["freq"] == "WEEKLY" else "0"),
            E("Calendar:Interval", str(rec.get("interval") or 1))]
    if rec.get("count"):
        kids.append(E("Calendar:Occurrences", str(rec["count"])))
    if rec.get("until") is not None:
        kids.append(E("Calendar:Until", compact(rec["until"])))
    if rec["freq"] == "WEEKLY":
        kids.append(E("Calendar:DayOfWeek", str(sum(DAY_BITS[d] for d in rec.get("days") or []))))
    return E("Calendar:Recurrence", kids)


def _calendar(p, it):
    kids = [E("Calendar:Timezone", pim.eas_timezone(p["tz"])),
            E("Calendar:AllDayEvent", "1" if p.get("all_day") else "0"),
            _body(p.get("body"), None),
            E("Calendar:BusyStatus", BUSY.get(p.get("busy") or "Busy", "2")),
            E("Calendar:DtStamp", compact(it.modified)),
            E("Calendar:EndTime", compact(p["end"])),
            E("Calendar:Sensitivity", "0"),
            E("Calendar:StartTime", compact(p["start"])),
            E("Calendar:Subject", p.get("subject") or ""),
            E("Calendar:UID", p["uid"]),
            E("Calendar:MeetingStatus", "1" if p.get("attendees") else "0")]
    if p.get("location"):
        kids.append(E("Calendar:Location", p["location"]))
    if p.get("organizer"):
        kids += [E("Calendar:OrganizerName", p["organizer"][0]), E("Calendar:OrganizerEmail", p["organizer"][1])]
    if p.get("attendees"):
        kids.append(E("Calendar:Attendees", [E("Calendar:Attendee", [
            E("Calendar:Email", a), E("Calendar:Name", n or a),
            E("Calendar:AttendeeType", "1" if typ == "Required" else "2")]) for n, a, typ in p["attendees"]]))
    if p.get("reminder") is not None:
        kids.append(E("Calendar:Reminder", str(p["reminder"])))
    if p.get("recurrence"):
        kids.append(_recurrence(p))
        excs = []
        for x in p.get("exceptions") or []:
            if x.get("deleted"):
                excs.append(E("Calendar:Exception", [E("Calendar:Deleted", "1"),
                                                     E("Calendar:ExceptionStartTime", compact(x["orig"]))]))
            else:
                ek = [E("Calendar:ExceptionStartTime", compact(x["orig"])),
                      E("Calendar:StartTime", compact(x["start"])), E("Calendar:EndTime", compact(x["end"]))]
                if "subject" in x:
                    ek.append(E("Calendar:Subject", x["subject"] or ""))
                if x.get("location"):
                    ek.append(E("Calendar:Location", x["location"]))
                excs.append(E("Calendar:Exception", ek))
        if excs:
            kids.append(E("Calendar:Exceptions", excs))
    return kids


def _contact(c):
    kids = []

    def add(tag, v):
        if v:
            kids.append(E(tag, v))
    add("Contacts:FileAs", c.get("file_as"))
    add("Contacts:FirstName", c.get("given"))
    add("Contacts:MiddleName", c.get("middle"))
    add("Contacts:LastName", c.get("surname"))
    add("Contacts:CompanyName", c.get("company"))
    add("Contacts:Department", c.get("department"))
    add("Contacts:JobTitle", c.get("job_title"))
    for i, e in enumerate((c.get("emails") or [])[:3]):
        kids.append(E(f"Contacts:Email{i + 1}Address", e))
    phones = c.get("phones") or {}
    add("Contacts:MobilePhoneNumber", phones.get("mobile"))
    add("Contacts:BusinessPhoneNumber", phones.get("business"))
    add("Contacts:HomePhoneNumber", phones.get("home"))
    if c.get("birthday"):
        d = c["birthday"].replace("-", "")
        kids.append(E("Contacts:Birthday", f"{d[:4]}-{d[4:6]}-{d[6:8]}T11:59:00.000Z"))
    add("Contacts:Picture", c.get("photo"))
    add("Contacts2:NickName", c.get("nickname"))
    kids.append(_body(c.get("notes"), None))
    return kids


def _task(k):
    kids = [_body(k.get("body"), None), E("Tasks:Subject", k.get("subject") or ""),
            E("Tasks:Importance", IMPORTANCE.get(k.get("importance") or "Normal", "1")),
            E("Tasks:Complete", "1" if k.get("complete") else "0"), E("Tasks:Sensitivity", "0"),
            E("Tasks:ReminderSet", "0")]
    if k.get("complete") and k.get("completed"):
        kids.append(E("Tasks:DateCompleted", iso_ms(k["completed"])))
    if k.get("start") is not None:
        kids += [E("Tasks:StartDate", iso_ms(k["start"])), E("Tasks:UtcStartDate", iso_ms(k["start"]))]
    if k.get("due") is not None:
        kids += [E("Tasks:DueDate", iso_ms(k["due"])), E("Tasks:UtcDueDate", iso_ms(k["due"]))]
    return kids


# ---- from the device ---------------------------------------------------------------------

def _body_text(app):
    b = child(app, "AirSyncBase:Body")
    return text(b, "AirSyncBase:Data") if b is not None else None


def from_app(kind, app, old=None):
    """A canonical dict of a device's ApplicationData (Add, or Change over
    old: what the device leaves out stays as it was, as MS-ASCMD says for
    Change of these classes)."""
    if kind == "calendar":
        return _calendar_from(app, old)
    if kind == "contact":
        return _contact_from(app, old)
    return _task_from(app, old)


def _calendar_from(app, old):
    p = dict(old) if old else pim.new_event(start=None, end=None, uid="placeholder")
    if old is None:
        p["uid"] = None
    tz = text(app, "Calendar:Timezone")
    if tz is not None:
        p["tz"] = pim.zone_of_eas_timezone(tz)
    for tag, key in (("Calendar:Subject", "subject"), ("Calendar:Location", "location")):
        v = text(app, tag)
        if v is not None:
            p[key] = v
    body = _body_text(app)
    if body is not None:
        p["body"] = body
    for tag, key in (("Calendar:StartTime", "start"), ("Calendar:EndTime", "end")):
        v = text(app, tag)
        if v is not None:
            p[key] = parse_time(v)
    v = text(app, "Calendar:AllDayEvent")
    if v is not None:
        p["all_day"] = v == "1"
    v = text(app, "Calendar:BusyStatus")
    if v is not None:
        p["busy"] = BUSY_FROM.get(v, "Busy")
    v = text(app, "Calendar:Reminder")
    if v is not None:
        p["reminder"] = int(v) if v.isdigit() else None
    v = text(app, "Calendar:UID") or text(app, "Calendar:ClientUid")
    if v:
        p["uid"] = v
    att = child(app, "Calendar:Attendees")
    if att is not None:
        p["attendees"] = [[text(a, "Calendar:Name") or "", text(a, "Calendar:Email") or "",
                           "Optional" if text(a, "Calendar:AttendeeType") == "2" else "Required"]
                          for a in children(att, "Calendar:Attendee")]
        if p["attendees"] and not p.get("organizer"):
            p["organizer"] = ["Alice Example", "alice@example.com"]
    rec = child(app, "Calendar:Recurrence")
    if rec is not None:
        typ = text(rec, "Calendar:Type")
        if typ not in ("0", "1"):
            raise MailboxError("ErrorCalendarInvalidRecurrence", "Only daily and weekly recurrences are modelled.")
        bits = int(text(rec, "Calendar:DayOfWeek") or "0")
        occ, until = text(rec, "Calendar:Occurrences"), text(rec, "Calendar:Until")
        p["recurrence"] = {"freq": "WEEKLY" if typ == "1" else "DAILY",
                           "interval": int(text(rec, "Calendar:Interval") or "1"),
                           "days": [d for d in pim.DAYS if bits & DAY_BITS[d]],
                           "count": int(occ) if occ and occ.isdigit() else None,
                           "until": parse_time(until) if until else None}
    excs = child(app, "Calendar:Exceptions")
    if excs is not None:
        out = []
        for x in children(excs, "Calendar:Exception"):
            orig = parse_time(text(x, "Calendar:ExceptionStartTime"))
            if text(x, "Calendar:Deleted") == "1":
                out.append({"orig": orig, "deleted": True})
                continue
            e = {"orig": orig, "deleted": False}
            s, en = text(x, "Calendar:StartTime"), text(x, "Calendar:EndTime")
            e["start"] = parse_time(s) if s else orig
            e["end"] = parse_time(en) if en else e["start"] + (p["end"] - p["start"])
            if text(x, "Calendar:Subject") is not None:
                e["subject"] = text(x, "Calendar:Subject")
            if text(x, "Calendar:Location") is not None:
                e["location"] = text(x, "Calendar:Location")
            out.append(e)
        p["exceptions"] = out
    if p.get("start") is None or p.get("end") is None:
        raise MailboxError("ErrorMissingInformation", "StartTime and EndTime are required.")
    if not p.get("uid"):
        p["uid"] = pim.new_event(subject=p.get("subject") or "", start=p["start"])["uid"]
    return p


CONTACT_TAGS = {"Contacts:FileAs": "file_as", "Contacts:FirstName": "given", "Contacts:MiddleName": "middle",
                "Contacts:LastName": "surname", "Contacts:CompanyName": "company",
                "Contacts:Department": "department", "Contacts:JobTitle": "job_title",
                "Contacts2:NickName": "nickname", "Contacts:Picture": "photo"}
PHONE_TAGS = {"Contacts:MobilePhoneNumber": "mobile", "Contacts:BusinessPhoneNumber": "business",
              "Contacts:HomePhoneNumber": "home"}


def _contact_from(app, old):
    c = dict(old) if old else pim.new_contact()
    for tag, key in CONTACT_TAGS.items():
        v = text(app, tag)
        if v is not None:
            c[key] = v
    emails = list(c.get("emails") or []) + [""] * 3
    for i in range(3):
        v = text(app, f"Contacts:Email{i + 1}Address")
        if v is not None:
            emails[i] = v.strip()
    c["emails"] = [e for e in emails[:3] if e]
    phones = dict(c.get("phones") or {})
    for tag, key in PHONE_TAGS.items():
        v = text(app, tag)
        if v is not None:
            phones[key] = v
    c["phones"] = {k: v for k, v in phones.items() if v}
    v = text(app, "Contacts:Birthday")
    if v:
        c["birthday"] = time.strftime("%Y-%m-%d", time.gmtime(parse_time(v)))
    body = _body_text(app)
    if body is not None:
        c["notes"] = body
    c["display"] = " ".join(x for x in (c.get("given"), c.get("middle"), c.get("surname")) if x) \
        or c.get("display") or c.get("company") or ""
    c["file_as"] = c.get("file_as") or pim.file_as(c)
    return c


def _task_from(app, old):
    k = dict(old) if old else pim.new_task()
    v = text(app, "Tasks:Subject")
    if v is not None:
        k["subject"] = v
    body = _body_text(app)
    if body is not None:
        k["body"] = body
    v = text(app, "Tasks:Importance")
    if v is not None:
        k["importance"] = IMPORTANCE_FROM.get(v, "Normal")
    for tags, key in ((("Tasks:UtcDueDate", "Tasks:DueDate"), "due"), (("Tasks:UtcStartDate", "Tasks:StartDate"), "start")):
        for tag in tags:
            v = text(app, tag)
            if v:
                k[key] = parse_time(v)
                break
    v = text(app, "Tasks:Complete")
    if v is not None:
        k["complete"] = v == "1"
        k["status"] = "Completed" if k["complete"] else ("NotStarted" if k.get("status") == "Completed"
                                                        else k.get("status") or "NotStarted")
        k["percent"] = 100 if k["complete"] else (0 if k.get("percent") == 100 else k.get("percent") or 0)
        dc = text(app, "Tasks:DateCompleted")
        k["completed"] = (parse_time(dc) if dc else k.get("completed") or int(time.time())) if k["complete"] else None
    return k
