# Calendar items, contacts and tasks of the test mailbox: one canonical dict
# per item (Item.pim, JSON-able, kept in the journal) from which every
# rendering is made, so a change through EWS, EAS or the control API shows in
# both protocols alike. Here: the time zones (Windows names as Exchange uses
# them), recurrence expansion, the MimeContent Exchange gives (iCalendar for
# calendar items, vCard 3.0 for contacts, a plain RFC 5322 message for
# tasks, which have no iCalendar form on Exchange), parsing of iCalendar and
# vCard sent by clients, and the EAS TIME_ZONE_INFORMATION blob. The EWS XML
# of these items is in pim_ews.py, the AirSync XML in pim_eas.py.
#
# Canonical dicts (times are UTC seconds since the epoch):
#   calendar: uid subject location body start end tz all_day busy organizer
#             [name, addr] attendees [[name, addr, "Required"|"Optional"]]
#             recurrence {freq WEEKLY|DAILY, interval, days [MO..], count,
#             until} exceptions [{orig, deleted, start, end, subject,
#             location}] reminder sequence
#   contact:  given surname middle display file_as company job_title
#             department nickname emails [..] phones {mobile, business, home}
#             birthday "YYYY-MM-DD" photo (base64 JPEG) notes
#   task:     subject body start due complete completed importance status
#             percent

import base64
import calendar as _cal
import datetime
import hashlib
import struct
import time
import zoneinfo

from mailbox import MailboxError

KIND_CLASS = {"calendar": "IPM.Appointment", "contact": "IPM.Contact", "task": "IPM.Task"}
CLASS_KIND = {v: k for k, v in KIND_CLASS.items()}
KIND_FOLDER = {"calendar": "calendar", "contact": "contacts", "task": "tasks"}
PIM_FOLDERS = [("tasks", "Tasks", "IPF.Task", "TasksFolder"), ("notes", "Notes", "IPF.StickyNote", "Folder"),
               ("journal", "Journal", "IPF.Journal", "Folder")]
PRODID = "Microsoft Exchange Server 2010"
DAYS = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]
DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
BUSY = ("Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData")
MAX_OCCURRENCES = 1000

# Windows zone name -> IANA name, bias (minutes west of UTC), daylight bias,
# standard rule and daylight rule (month, week 1-5 with 5 = last, weekday
# 0 = Sunday, hour) or None: what Exchange's VTIMEZONE and EAS blob carry.
ZONES = {
    "W. Europe Standard Time": ("Europe/Berlin", -60, -60, (10, 5, 0, 3), (3, 5, 0, 2)),
    "Pacific Standard Time": ("America/Los_Angeles", 480, -60, (11, 1, 0, 2), (3, 2, 0, 2)),
    "Tokyo Standard Time": ("Asia/Tokyo", -540, 0, None, None),
    "UTC": ("UTC", 0, 0, None, None),
}
IANA_TO_WINDOWS = {v[0]: k for k, v in ZONES.items()}


def kind_of(it):
    return it.pim.get("kind") if getattr(it, "pim", None) else None


def zone(name):
    return zoneinfo.ZoneInfo(ZONES.get(name, ZONES["UTC"])[0])


def windows_zone(name):
    """A Windows zone name for a TZID that is one, or an IANA name."""
    if name in ZONES:
        return name
    return IANA_TO_WINDOWS.get(name)


def local(ts, tz):
    return datetime.datetime.fromtimestamp(ts, zone(tz))


def utc_of_local(dt, tz):
    return int(dt.replace(tzinfo=zone(tz)).timestamp())


def compact(ts):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ---- recurrence -------------------------------------------------------------------------

def occurrences(ev, lo=None, hi=None):
    """[(orig start, start, end, exception or None)] of a calendar item
    overlapping [lo, hi), deleted occurrences left out."""
    dur = ev["end"] - ev["start"]
    rec = ev.get("recurrence")
    out = []
    if not rec:
        starts = [ev["start"]]
    else:
        first = local(ev["start"], ev["tz"])
        days = [DAYS.index(d) for d in rec.get("days") or []] or [(first.weekday() + 1) % 7]
        interval = max(1, int(rec.get("interval") or 1))
        count, until = rec.get("count"), rec.get("until")
        starts, day = [], first.date()
        week0 = first.date() - datetime.timedelta(days=(first.weekday() + 1) % 7)
        while len(starts) < MAX_OCCURRENCES and (count is None or len(starts) < count):
            if rec["freq"] == "DAILY":
                ok = (day - first.date()).days % interval == 0
            else:
                weeks = (day - week0).days // 7
                ok = weeks % interval == 0 and (day.weekday() + 1) % 7 in days
            if ok:
                ts = utc_of_local(datetime.datetime.combine(day, first.time()), ev["tz"])
                if until is not None and ts > until:
                    break
                if hi is not None and ts >= hi and count is None:
                    break
                starts.append(ts)
            day += datetime.timedelta(days=1)
            if until is None and count is None and hi is None and len(starts) >= 60:
                break
    exc = {x["orig"]: x for x in ev.get("exceptions") or []}
    for s in starts:
        x = exc.get(s)
        if x is not None and x.get("deleted"):
            continue
        start, end = (x["start"], x["end"]) if x else (s, s + dur)
        if (lo is None or end > lo) and (hi is None or start < hi):
            out.append((s, start, end, x))
    return out


# ---- iCalendar ---------------------------------------------------------------------------

def ical_escape(s):
    """TEXT as RFC 5545 has it: backslash, semicolon, comma and line breaks
    (CRLF, bare LF, bare CR) escaped; other control characters, which TEXT
    cannot hold, dropped."""
    s = (s or "").replace("\r\n", "\n").replace("\r", "\n")
    s = "".join(c for c in s if c in "\n\t" or not (ord(c) < 32 or ord(c) == 127))
    return s.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def ical_unescape(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            out.append("\n" if n in "nN" else n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def fold(line):
    """Fold a content line at 75 octets, never inside a UTF-8 sequence."""
    raw = line.encode()
    if len(raw) <= 75:
        return line + "\r\n"
    parts, cur, limit = [], b"", 75
    for ch in line:
        b = ch.encode()
        if len(cur) + len(b) > limit:
            parts.append(cur)
            cur, limit = b"", 74
        cur += b
    parts.append(cur)
    return "\r\n ".join(p.decode() for p in parts) + "\r\n"


def _offset(minutes):
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _rule(r):
    month, week, dow, _ = r
    return f"FREQ=YEARLY;INTERVAL=1;BYDAY={-1 if week == 5 else week}{DAYS[dow]};BYMONTH={month}"


def vtimezone(name):
    _, bias, dbias, std, dst = ZONES[name]
    std_off, dst_off = -bias, -(bias + dbias)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}", "BEGIN:STANDARD"]
    if std is None:
        lines += ["DTSTART:16010101T000000", f"TZOFFSETFROM:{_offset(std_off)}", f"TZOFFSETTO:{_offset(std_off)}",
                  "END:STANDARD"]
    else:
        lines += [f"DTSTART:16010101T{std[3]:02d}0000", f"TZOFFSETFROM:{_offset(dst_off)}",
                  f"TZOFFSETTO:{_offset(std_off)}", f"RRULE:{_rule(std)}", "END:STANDARD", "BEGIN:DAYLIGHT",
                  f"DTSTART:16010101T{dst[3]:02d}0000", f"TZOFFSETFROM:{_offset(std_off)}",
                  f"TZOFFSETTO:{_offset(dst_off)}", f"RRULE:{_rule(dst)}", "END:DAYLIGHT"]
    return lines + ["END:VTIMEZONE"]


def _when(prop, ts, ev):
    if ev.get("all_day"):
        return f"{prop};VALUE=DATE:{local(ts, ev['tz']).strftime('%Y%m%d')}"
    return f"{prop};TZID={ev['tz']}:{local(ts, ev['tz']).strftime('%Y%m%dT%H%M%S')}"


def _vevent(ev, stamp, x=None):
    """The VEVENT of an item (x None) or of one modified occurrence."""
    start, end = (x["start"], x["end"]) if x else (ev["start"], ev["end"])
    subject = x.get("subject", ev["subject"]) if x else ev["subject"]
    loc = x.get("location", ev.get("location")) if x else ev.get("location")
    lines = ["BEGIN:VEVENT"]
    org = ev.get("organizer")
    if ev.get("attendees") and org:
        lines.append(f"ORGANIZER;CN={_param(org[0])}:mailto:{org[1]}")
        for name, addr, typ in ev["attendees"]:
            role = "REQ-PARTICIPANT" if typ != "Optional" else "OPT-PARTICIPANT"
            lines.append(f"ATTENDEE;ROLE={role};PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN={_param(name)}:mailto:{addr}")
    lines.append(f"DESCRIPTION;LANGUAGE=en-US:{ical_escape(ev.get('body'))}")
    rec = ev.get("recurrence")
    if rec and x is None:
        r = f"FREQ={rec['freq']};"
        if rec.get("until") is not None:
            r += f"UNTIL={compact(rec['until'])};"
        if rec.get("count"):
            r += f"COUNT={rec['count']};"
        r += f"INTERVAL={rec.get('interval') or 1}"
        if rec["freq"] == "WEEKLY":
            r += f";BYDAY={','.join(rec.get('days') or [])};WKST=SU"
        lines.append("RRULE:" + r)
        for d in ev.get("exceptions") or []:
            if d.get("deleted"):
                lines.append(_when("EXDATE", d["orig"], ev))
    lines.append(f"UID:{ev['uid']}")
    if x is not None:
        lines.append(_when("RECURRENCE-ID", x["orig"], ev))
    lines += [f"SUMMARY;LANGUAGE=en-US:{ical_escape(subject)}", _when("DTSTART", start, ev),
              _when("DTEND", end, ev), "CLASS:PUBLIC", "PRIORITY:5", f"DTSTAMP:{compact(stamp)}",
              "TRANSP:" + ("TRANSPARENT" if ev.get("busy") == "Free" else "OPAQUE"), "STATUS:CONFIRMED",
              f"SEQUENCE:{ev.get('sequence', 0)}"]
    if loc:
        lines.append(f"LOCATION;LANGUAGE=en-US:{ical_escape(loc)}")
    busy = (ev.get("busy") or "Busy").upper()
    inst = 3 if x is not None else 1 if rec else 0
    lines += [f"X-MICROSOFT-CDO-APPT-SEQUENCE:{ev.get('sequence', 0)}", f"X-MICROSOFT-CDO-BUSYSTATUS:{busy}",
              f"X-MICROSOFT-CDO-INTENDEDSTATUS:{busy}",
              f"X-MICROSOFT-CDO-ALLDAYEVENT:{'TRUE' if ev.get('all_day') else 'FALSE'}",
              "X-MICROSOFT-CDO-IMPORTANCE:1", f"X-MICROSOFT-CDO-INSTTYPE:{inst}",
              "X-MICROSOFT-DONOTFORWARDMEETING:FALSE", "X-MICROSOFT-DISALLOW-COUNTER:FALSE"]
    if ev.get("reminder") is not None:
        lines += ["BEGIN:VALARM", "DESCRIPTION:REMINDER", f"TRIGGER;RELATED=START:-PT{int(ev['reminder'])}M",
                  "ACTION:DISPLAY", "END:VALARM"]
    return lines + ["END:VEVENT"]


def _param(s):
    s = (s or "").replace('"', "'")
    return f'"{s}"' if any(c in s for c in ":;,") else s


def render_ics(ev, stamp, method=None):
    """The iCalendar Exchange's EWS gives as MimeContent of a calendar item:
    METHOD (PUBLISH, or REQUEST for a meeting), PRODID, a VTIMEZONE with the
    Windows name as TZID, the master VEVENT and one VEVENT per modified
    occurrence (RECURRENCE-ID, X-MICROSOFT-CDO-INSTTYPE:3); deleted
    occurrences are EXDATEs of the master."""
    method = method or ("REQUEST" if ev.get("attendees") else "PUBLISH")
    lines = [f"METHOD:{method}", f"PRODID:{PRODID}", "VERSION:2.0"]
    lines += vtimezone(ev["tz"] if ev["tz"] in ZONES else "UTC")
    lines += _vevent(ev, stamp)
    for x in ev.get("exceptions") or []:
        if not x.get("deleted"):
            lines += _vevent(ev, stamp, x)
    return ("BEGIN:VCALENDAR\r\n" + "".join(fold(ln) for ln in lines) + "END:VCALENDAR\r\n").encode()


def _content_lines(data, what):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MailboxError("ErrorMimeContentConversionFailed",
                           f"The {what} could not be converted: it is not UTF-8.") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for ln in text.split("\n"):
        if ln[:1] in (" ", "\t") and out:
            out[-1] += ln[1:]
        elif ln.strip():
            out.append(ln)
    parsed = []
    for ln in out:
        name_params, sep, value = ln.partition(":")
        while sep and name_params.count('"') % 2:      # a colon inside a quoted parameter
            more, sep, value = value.partition(":")
            name_params += ":" + more
        if not sep:
            raise MailboxError("ErrorMimeContentConversionFailed",
                               f"The {what} could not be converted: a line has no ':'.")
        parts = name_params.split(";")
        params = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            params[k.upper()] = v.strip('"')
        parsed.append((parts[0].upper(), params, value))
    return parsed


def _parse_when(value, params, tzid_default):
    """(UTC seconds, is a date) of a DATE or DATE-TIME value."""
    v = value.strip()
    try:
        if params.get("VALUE") == "DATE" or len(v) == 8:
            d = datetime.datetime.strptime(v[:8], "%Y%m%d")
            return utc_of_local(d, tzid_default), True
        if v.endswith("Z"):
            d = datetime.datetime.strptime(v[:15], "%Y%m%dT%H%M%S")
            return _cal.timegm(d.timetuple()), False
        d = datetime.datetime.strptime(v[:15], "%Y%m%dT%H%M%S")
        tz = windows_zone(params.get("TZID", "")) or tzid_default
        return utc_of_local(d, tz), False
    except ValueError:
        raise MailboxError("ErrorMimeContentConversionFailed",
                           f"The iCalendar could not be converted: bad date {value!r}.") from None


def parse_ics(data, default_tz="UTC"):
    """A canonical calendar dict of an iCalendar object (its first VEVENT
    without RECURRENCE-ID is the master; others are its exceptions)."""
    lines = _content_lines(data, "iCalendar")
    if not lines or lines[0][0] != "BEGIN" or lines[0][2].upper() != "VCALENDAR":
        raise MailboxError("ErrorMimeContentConversionFailed", "The iCalendar could not be converted: no VCALENDAR.")
    events, cur, depth, tz = [], None, [], None
    for name, params, value in lines:
        if name == "BEGIN":
            depth.append(value.upper())
            if value.upper() == "VEVENT":
                cur = []
            continue
        if name == "END":
            if depth and depth[-1] == "VEVENT" and cur is not None:
                events.append(cur)
                cur = None
            depth = depth[:-1]
            continue
        if depth and depth[-1] == "VEVENT" and cur is not None:
            cur.append((name, params, value))
        if name == "TZID" and depth and depth[-1] == "VTIMEZONE":
            tz = windows_zone(value.strip())
    if not events:
        raise MailboxError("ErrorMimeContentConversionFailed", "The iCalendar could not be converted: no VEVENT.")
    master, exceptions = None, []
    for props in events:
        if any(n == "RECURRENCE-ID" for n, _, _ in props):
            exceptions.append(props)
        elif master is None:
            master = props
    if master is None:
        master, exceptions = exceptions[0], exceptions[1:]
    tzid = tz or "UTC"
    for n, p, v in master:
        if n == "DTSTART" and p.get("TZID"):
            tzid = windows_zone(p["TZID"]) or tzid
    ev = {"kind": "calendar", "uid": None, "subject": "", "location": None, "body": "", "tz": tzid,
          "all_day": False, "busy": "Busy", "organizer": None, "attendees": [], "recurrence": None,
          "exceptions": [], "reminder": None, "sequence": 0}
    start = end = None
    exdates = []
    in_alarm = False
    for n, p, v in master:
        if n == "UID":
            ev["uid"] = v.strip()
        elif n == "SUMMARY":
            ev["subject"] = ical_unescape(v)
        elif n == "LOCATION":
            ev["location"] = ical_unescape(v)
        elif n == "DESCRIPTION" and not in_alarm:
            ev["body"] = ical_unescape(v)
        elif n == "DTSTART":
            start, ev["all_day"] = _parse_when(v, p, tzid)
        elif n == "DTEND":
            end, _ = _parse_when(v, p, tzid)
        elif n == "ORGANIZER":
            ev["organizer"] = [p.get("CN", ""), v.split(":", 1)[-1]]
        elif n == "ATTENDEE":
            ev["attendees"].append([p.get("CN", ""), v.split(":", 1)[-1],
                                    "Optional" if p.get("ROLE") == "OPT-PARTICIPANT" else "Required"])
        elif n == "X-MICROSOFT-CDO-BUSYSTATUS":
            ev["busy"] = {"FREE": "Free", "TENTATIVE": "Tentative", "OOF": "OOF"}.get(v.strip().upper(), "Busy")
        elif n == "TRANSP" and v.strip().upper() == "TRANSPARENT":
            ev["busy"] = "Free"
        elif n == "SEQUENCE" and v.strip().isdigit():
            ev["sequence"] = int(v.strip())
        elif n == "RRULE":
            ev["recurrence"] = _parse_rrule(v)
        elif n == "EXDATE":
            for one in v.split(","):
                exdates.append(_parse_when(one, p, tzid)[0])
        elif n == "TRIGGER":
            m = v.strip().lstrip("-").upper()
            if m.startswith("PT") and m.endswith("M") and m[2:-1].isdigit():
                ev["reminder"] = int(m[2:-1])
        elif n == "BEGIN" and v.upper() == "VALARM":
            in_alarm = True
    if start is None:
        raise MailboxError("ErrorMimeContentConversionFailed", "The iCalendar could not be converted: no DTSTART.")
    ev["start"] = start
    ev["end"] = end if end is not None and end >= start else start + (86400 if ev["all_day"] else 1800)
    ev["uid"] = ev["uid"] or hashlib.sha1(data).hexdigest()
    ev["exceptions"] = [{"orig": d, "deleted": True} for d in exdates]
    for props in exceptions:
        x = {"orig": None, "deleted": False}
        for n, p, v in props:
            if n == "RECURRENCE-ID":
                x["orig"] = _parse_when(v, p, tzid)[0]
            elif n == "DTSTART":
                x["start"] = _parse_when(v, p, tzid)[0]
            elif n == "DTEND":
                x["end"] = _parse_when(v, p, tzid)[0]
            elif n == "SUMMARY":
                x["subject"] = ical_unescape(v)
            elif n == "LOCATION":
                x["location"] = ical_unescape(v)
        if x["orig"] is not None:
            x.setdefault("start", x["orig"])
            x.setdefault("end", x["start"] + ev["end"] - ev["start"])
            ev["exceptions"].append(x)
    return ev


def _parse_rrule(v):
    parts = dict(p.partition("=")[::2] for p in v.strip().split(";") if p)
    freq = parts.get("FREQ", "").upper()
    if freq not in ("DAILY", "WEEKLY"):
        raise MailboxError("ErrorMimeContentConversionFailed",
                           f"The iCalendar could not be converted: recurrence {freq!r} is not modelled.")
    until = None
    if parts.get("UNTIL"):
        until = _parse_when(parts["UNTIL"], {}, "UTC")[0]
    days = [d[-2:] for d in parts.get("BYDAY", "").split(",") if d[-2:] in DAYS]
    return {"freq": freq, "interval": int(parts.get("INTERVAL", "1") or 1), "days": days,
            "count": int(parts["COUNT"]) if parts.get("COUNT", "").isdigit() else None, "until": until}


# ---- vCard ---------------------------------------------------------------------------------

def vcard_escape(s):
    return ical_escape(s)


def render_vcf(c, stamp):
    """A contact's MimeContent as Exchange writes it: vCard 3.0 with
    PROFILE, MAILER and PRODID "Microsoft Exchange", N/FN, and REV."""
    lines = ["BEGIN:VCARD", "PROFILE:VCARD", "VERSION:3.0", "MAILER:Microsoft Exchange",
             "PRODID:Microsoft Exchange", f"FN:{vcard_escape(c.get('display') or '')}",
             "N:" + ";".join(vcard_escape(c.get(k) or "") for k in ("surname", "given", "middle")) + ";;"]
    if c.get("nickname"):
        lines.append(f"NICKNAME:{vcard_escape(c['nickname'])}")
    if c.get("company") or c.get("department"):
        lines.append(f"ORG:{vcard_escape(c.get('company') or '')};{vcard_escape(c.get('department') or '')}")
    lines.append("CLASS:PUBLIC")
    for key, typ in (("business", "WORK"), ("home", "HOME"), ("mobile", "CELL")):
        if (c.get("phones") or {}).get(key):
            lines.append(f"TEL;TYPE={typ}:{c['phones'][key]}")
    for i, e in enumerate(c.get("emails") or []):
        lines.append(f"EMAIL;TYPE=INTERNET{';TYPE=PREF' if i == 0 else ''}:{e}")
    if c.get("job_title"):
        lines.append(f"TITLE:{vcard_escape(c['job_title'])}")
    if c.get("birthday"):
        lines.append(f"BDAY;VALUE=DATE:{c['birthday']}")
    if c.get("notes"):
        lines.append(f"NOTE:{vcard_escape(c['notes'])}")
    if c.get("photo"):
        lines.append(f"PHOTO;TYPE=JPEG;ENCODING=b:{c['photo']}")
    t = time.gmtime(stamp)
    lines.append(f"REV;VALUE=DATE-TIME:{time.strftime('%Y-%m-%dT%H:%M:%S', t)},000Z")
    lines.append("END:VCARD")
    return "".join(fold(ln) for ln in lines).encode()


def parse_vcf(data):
    lines = _content_lines(data, "vCard")
    if not lines or lines[0][0] != "BEGIN" or lines[0][2].strip().upper() != "VCARD":
        raise MailboxError("ErrorMimeContentConversionFailed", "The vCard could not be converted: no VCARD.")
    c = new_contact()
    for name, params, value in lines:
        name = name.split(".")[-1]            # item1.EMAIL
        types = {t.upper() for k, v in params.items() if k == "TYPE" for t in v.split(",")}
        if name == "FN":
            c["display"] = ical_unescape(value)
        elif name == "N":
            parts = (value.split(";") + [""] * 3)[:3]
            c["surname"], c["given"], c["middle"] = (ical_unescape(p) for p in parts)
        elif name == "NICKNAME":
            c["nickname"] = ical_unescape(value)
        elif name == "ORG":
            parts = (value.split(";") + [""])[:2]
            c["company"], c["department"] = ical_unescape(parts[0]), ical_unescape(parts[1])
        elif name == "TITLE":
            c["job_title"] = ical_unescape(value)
        elif name == "EMAIL" and value.strip():
            c["emails"].append(value.strip())
        elif name == "TEL" and value.strip():
            key = "mobile" if "CELL" in types else "home" if "HOME" in types else "business"
            c["phones"].setdefault(key, value.strip())
        elif name == "BDAY":
            v = value.strip().replace("-", "")[:8]
            if len(v) == 8 and v.isdigit():
                c["birthday"] = f"{v[:4]}-{v[4:6]}-{v[6:]}" if "-" in value else v
        elif name == "NOTE":
            c["notes"] = ical_unescape(value)
        elif name == "PHOTO" and value.strip() and not value.startswith("http"):
            c["photo"] = value.split(",", 1)[-1].strip() if value.startswith("data:") else value.strip()
    c["emails"] = c["emails"][:3]
    c["display"] = c["display"] or " ".join(x for x in (c["given"], c["surname"]) if x)
    c["file_as"] = file_as(c)
    return c


def new_contact(**kw):
    c = {"kind": "contact", "given": "", "surname": "", "middle": "", "display": "", "file_as": "",
         "company": "", "job_title": "", "department": "", "nickname": "", "emails": [], "phones": {},
         "birthday": None, "photo": None, "notes": ""}
    c.update(kw)
    if not c["display"]:
        c["display"] = " ".join(x for x in (c["given"], c["surname"]) if x)
    if not c["file_as"]:
        c["file_as"] = file_as(c)
    return c


def file_as(c):
    """Outlook's default FileAs: "Last, First"."""
    if c.get("surname") and c.get("given"):
        return f"{c['surname']}, {c['given']}"
    return c.get("surname") or c.get("given") or c.get("display") or c.get("company") or ""


def new_task(**kw):
    t = {"kind": "task", "subject": "", "body": "", "start": None, "due": None, "complete": False,
         "completed": None, "importance": "Normal", "status": "NotStarted", "percent": 0}
    t.update(kw)
    return t


def new_event(**kw):
    ev = {"kind": "calendar", "uid": None, "subject": "", "location": None, "body": "", "tz": "UTC",
          "all_day": False, "busy": "Busy", "organizer": None, "attendees": [], "recurrence": None,
          "exceptions": [], "reminder": 15, "sequence": 0}
    ev.update(kw)
    if not ev["uid"]:
        ev["uid"] = "040000008200E00074C5B7101A82E008" + hashlib.sha1(
            f"{ev['subject']}/{ev.get('start')}".encode()).hexdigest().upper()
    return ev


def render_task_mime(t, stamp):
    """A task's MimeContent: Exchange has no iCalendar (VTODO) form of a
    task; it converts the item as a message (subject and text body)."""
    body = (t.get("body") or "").replace("\r\n", "\n").replace("\n", "\r\n")
    subj = t.get("subject") or ""
    from generate import header_text
    head = (f"From: Alice Example <alice@example.com>\r\nSubject: {header_text(subj)}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(stamp))}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n")
    return head.encode() + base64.encodebytes(body.encode()).replace(b"\n", b"\r\n")


def render_mime(p, stamp):
    k = p["kind"]
    if k == "calendar":
        return render_ics(p, stamp)
    if k == "contact":
        return render_vcf(p, stamp)
    return render_task_mime(p, stamp)


def subject_of(p):
    return p.get("display") if p["kind"] == "contact" else p.get("subject")


def validate(p):
    """Refuse what Exchange refuses (as MailboxError)."""
    k = p.get("kind")
    if k not in KIND_CLASS:
        raise MailboxError("ErrorInvalidRequest", "Unknown item kind.")
    if k == "calendar":
        if p["tz"] not in ZONES:
            raise MailboxError("ErrorInvalidRequest", f"Unknown time zone {p['tz']!r}.")
        if p["end"] < p["start"]:
            raise MailboxError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")


# ---- EAS time zone blob --------------------------------------------------------------------

def _systemtime(rule):
    if rule is None:
        return b"\0" * 16
    month, week, dow, hour = rule
    return struct.pack("<8H", 0, month, dow, week, hour, 0, 0, 0)


def eas_timezone(name):
    """TIME_ZONE_INFORMATION as MS-ASDTYPE 2.6.4 has it, base64: Bias,
    StandardName (32 UTF-16 units), StandardDate, StandardBias,
    DaylightName, DaylightDate, DaylightBias (172 bytes)."""
    _, bias, dbias, std, dst = ZONES.get(name, ZONES["UTC"])
    nm = name.encode("utf-16-le")[:62].ljust(64, b"\0")
    dname = name.replace("Standard", "Daylight").encode("utf-16-le")[:62].ljust(64, b"\0")
    blob = (struct.pack("<i", bias) + nm + _systemtime(std) + struct.pack("<i", 0) + dname + _systemtime(dst)
            + struct.pack("<i", dbias if dst else 0))
    return base64.b64encode(blob).decode("ascii")


def zone_of_eas_timezone(b64):
    """The modelled zone whose bias and rules match a blob (names are not
    reliable: devices send empty ones); UTC when none does."""
    try:
        raw = base64.b64decode(b64 or "", validate=True)
    except ValueError:
        return "UTC"
    if len(raw) != 172:
        return "UTC"
    bias = struct.unpack_from("<i", raw, 0)[0]
    std = struct.unpack_from("<8H", raw, 68)
    for name, (_, zb, _, zstd, _) in ZONES.items():
        if zb == bias and ((zstd is None and std[1] == 0) or (zstd is not None and std[1] == zstd[0])):
            return name
    return "UTC"


# ---- free/busy --------------------------------------------------------------------------

def busy_intervals(items, lo, hi):
    """[(start, end, busy type, item)] of the calendar items in [lo, hi)."""
    out = []
    for it in items:
        ev = it.pim
        if not ev or ev.get("kind") != "calendar":
            continue
        for _, s, e, x in occurrences(ev, lo, hi):
            out.append((s, e, ev.get("busy") or "Busy", it, x))
    out.sort(key=lambda r: r[0])
    return out


def merged_free_busy(items, lo, hi, slot=1800):
    """One digit per slot: 0 free, 1 tentative, 2 busy, 3 OOF (the highest wins)."""
    rank = {"Free": 0, "Tentative": 1, "Busy": 2, "OOF": 3, "WorkingElsewhere": 4}
    ivs = busy_intervals(items, lo, hi)
    digits = []
    t = lo
    while t < hi:
        v = 0
        for s, e, b, _, _ in ivs:
            if s < t + slot and e > t:
                v = max(v, rank.get(b, 2))
        digits.append(str(v))
        t += slot
    return "".join(digits)
