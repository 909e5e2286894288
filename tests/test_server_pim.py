# Calendar items, contacts and tasks of the test server (tests/server/pim*.py)
# over both protocols: EWS through the independent client python3-exchangelib,
# ActiveSync through eas_client.py; the iCalendar and vCard it renders are
# parsed with python3-icalendar and python3-vobject. A change made through one
# protocol (or the control API) must show in the other.

import base64
import datetime
import os
import sys
import xml.etree.ElementTree as ET

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import EwsServer  # noqa: E402

exchangelib = pytest.importorskip("exchangelib")
icalendar = pytest.importorskip("icalendar")
vobject = pytest.importorskip("vobject")
from exchangelib import CalendarItem, Contact, EWSDateTime, EWSTimeZone  # noqa: E402
from exchangelib.items import Task  # noqa: E402

from eas_client import E, EasClient, collection  # noqa: E402
from test_exchangelib import account  # noqa: E402
from wbxml import child, children, text  # noqa: E402

import generate  # noqa: E402
import pim  # noqa: E402

TNS = "{http://schemas.microsoft.com/exchange/services/2006/types}"


@pytest.fixture(scope="module")
def srv():
    with EwsServer(messages=10, seed=7, pim=True) as s:
        yield s


@pytest.fixture(scope="module")
def acc(srv):
    return account(srv)


@pytest.fixture(scope="module")
def ids(srv):
    return srv.markers()["pim"]


def eas(srv):
    c = EasClient.from_url(srv.eas_url, srv.user, srv.password)
    c.provision()
    return c


# ---- EWS -------------------------------------------------------------------------------

def test_ews_sync_gives_typed_items(acc, ids):
    got = {}
    for f in (acc.calendar, acc.contacts, acc.tasks):
        for kind, item in f.sync_items():
            assert kind == "create"
            got[item.id] = type(item).__name__
    element = {"calendar": "CalendarItem", "contact": "Contact", "task": "Task"}
    want = {ids[m]: element[kind] for kind, m, _ in generate.pim_specs(7, generate.ANCHOR)}
    assert got == want


def test_ews_calendar_mime_is_exchange_icalendar(acc, ids):
    item = acc.calendar.get(id=ids["recurring"])
    cal = icalendar.Calendar.from_ical(item.mime_content)
    assert str(cal["PRODID"]) == "Microsoft Exchange Server 2010" and str(cal["METHOD"]) == "PUBLISH"
    assert [str(z["TZID"]) for z in cal.walk("VTIMEZONE")] == ["W. Europe Standard Time"]
    master, moved = cal.walk("VEVENT")
    assert "RECURRENCE-ID" not in master and str(moved["SUMMARY"]) == "Weekly sync (moved)"
    assert master["RRULE"]["FREQ"] == ["WEEKLY"] and master["RRULE"]["COUNT"] == [10]
    assert "EXDATE" in master and str(moved["X-MICROSOFT-CDO-INSTTYPE"]) == "3"
    assert master["UID"] == moved["UID"]
    assert item.recurrence is not None and item.type == "RecurringMaster"
    assert len(item.modified_occurrences) == 1 and len(item.deleted_occurrences) == 1
    list(vobject.readComponents(item.mime_content.decode()))      # a second parser agrees


def test_ews_all_day_and_three_time_zones(acc, ids):
    allday = icalendar.Calendar.from_ical(acc.calendar.get(id=ids["allday"]).mime_content).walk("VEVENT")[0]
    assert isinstance(allday["DTSTART"].dt, datetime.date) and not isinstance(allday["DTSTART"].dt, datetime.datetime)
    assert (allday["DTEND"].dt - allday["DTSTART"].dt).days == 1
    assert acc.calendar.get(id=ids["allday"]).is_all_day
    zones = {}
    for m in ("berlin", "seattle", "tokyo"):
        item = acc.calendar.get(id=ids[m])
        ev = icalendar.Calendar.from_ical(item.mime_content).walk("VEVENT")[0]
        zones[m] = ev["DTSTART"].params["TZID"]
        p = pim.parse_ics(item.mime_content)       # the wall-clock time in the named zone is the item's Start
        assert p["start"] == int(item.start.timestamp())
    assert zones == {"berlin": "W. Europe Standard Time", "seattle": "Pacific Standard Time",
                     "tokyo": "Tokyo Standard Time"}
    assert acc.calendar.get(id=ids["seattle"]).start.astimezone(EWSTimeZone("America/Los_Angeles")).hour == 9
    assert acc.calendar.get(id=ids["tokyo"]).start.astimezone(EWSTimeZone("Asia/Tokyo")).hour == 10


def test_ews_calendar_view_expands_occurrences(acc, srv, ids):
    p = srv.pim_of(ids["recurring"])
    utc = EWSTimeZone("UTC")
    lo = EWSDateTime.fromtimestamp(p["start"] - 3600, tz=utc)
    view = [i for i in acc.calendar.view(start=lo, end=lo + datetime.timedelta(days=22))
            if i.uid == p["uid"]]
    assert [i.type for i in view] == ["Occurrence", "Exception", "Occurrence"]     # the third was deleted
    assert view[1].subject == "Weekly sync (moved)"
    moved = [x for x in p["exceptions"] if not x["deleted"]][0]
    assert int(view[1].start.timestamp()) == moved["start"]
    again = acc.calendar.get(id=view[2].id)                  # GetItem of an occurrence id
    assert again.type == "Occurrence" and again.start == view[2].start


def test_ews_contact_vcard_with_photo_and_non_ascii(acc, ids):
    c = acc.contacts.get(id=ids["photo"])
    assert (c.given_name, c.surname, c.display_name) == ("Jürgen", "Müller", "Jürgen Müller")
    assert [e.email for e in c.email_addresses] == ["juergen@beispiel.de"]
    card = vobject.readOne(c.mime_content.decode())
    assert card.version.value == "3.0" and card.fn.value == "Jürgen Müller"
    assert card.n.value.family == "Müller" and card.n.value.given == "Jürgen"
    assert card.photo.value[:2] == b"\xff\xd8" and card.photo.value[-2:] == b"\xff\xd9"
    assert vobject.readOne(acc.contacts.get(id=ids["japanese"]).mime_content.decode()).fn.value == "佐藤 花子"


def test_ews_tasks(acc, ids):
    due = acc.tasks.get(id=ids["due"])
    assert due.subject == "Submit expense report" and due.due_date is not None and due.status == "NotStarted"
    assert due.importance == "High"
    done = acc.tasks.get(id=ids["done"])
    assert done.is_complete and done.percent_complete == 100 and done.status == "Completed"
    assert not due.mime_content.startswith(b"BEGIN:VCALENDAR")    # Exchange has no VTODO of a task


def test_ews_hostile_items(acc, ids):
    big = acc.calendar.get(id=ids["hostile_big"])
    assert len(big.body) >= 1000000
    ev = icalendar.Calendar.from_ical(big.mime_content).walk("VEVENT")[0]
    assert len(str(ev["DESCRIPTION"])) >= 1000000
    assert all(len(ln) <= 75 for ln in big.mime_content.split(b"\r\n"))
    odd = acc.calendar.get(id=ids["hostile_lines"])
    ev = icalendar.Calendar.from_ical(odd.mime_content).walk("VEVENT")[0]
    assert str(ev["LOCATION"]) == "a;b,c" and "\x01" not in str(ev["DESCRIPTION"])


def test_ews_create_update_delete_shows_in_eas(acc, srv):
    tz = EWSTimeZone("Europe/Berlin")
    ci = CalendarItem(account=acc, folder=acc.calendar, subject="Created over EWS",
                      start=EWSDateTime(2031, 3, 4, 10, 0, tzinfo=tz), end=EWSDateTime(2031, 3, 4, 11, 0, tzinfo=tz))
    ci.save(send_meeting_invitations="SendToNone")
    assert srv.pim_of(ci.id)["subject"] == "Created over EWS"
    c = eas(srv)
    cal = c.folders()["Calendar"]
    adds, _, _, _ = c.sync_all(cal, options=[])
    assert "Created over EWS" in [text(a, "Calendar:Subject") for a in adds.values()]
    ci.subject = "Renamed over EWS"
    ci.save(update_fields=["subject"])
    _, changes, _, _ = c.sync_all(cal, options=[])
    assert [text(a, "Calendar:Subject") for a in changes.values()] == ["Renamed over EWS"]
    ci.delete(send_meeting_cancellations="SendToNone")
    _, _, deletes, _ = c.sync_all(cal, options=[])
    assert len(deletes) == 1


def test_ews_create_from_icalendar_and_vcard(acc, srv):
    ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:mime-1@example.com\r\nSUMMARY:From MIME\r\n"
           "DTSTART;TZID=Pacific Standard Time:20310601T080000\r\nDTEND;TZID=Pacific Standard Time:20310601T090000\r\n"
           "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()
    cid = create_from_mime(acc, srv, "CalendarItem", ics, 'SendMeetingInvitations="SendToNone"')
    p = srv.pim_of(cid)
    assert (p["uid"], p["subject"], p["tz"]) == ("mime-1@example.com", "From MIME", "Pacific Standard Time")
    assert datetime.datetime.fromtimestamp(p["start"], datetime.timezone.utc).hour == 15      # PDT is UTC-7
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë Álvarez\r\nN:Álvarez;Zoë;;;\r\nEMAIL:zoe@ejemplo.es\r\nEND:VCARD\r\n"
    coid = create_from_mime(acc, srv, "Contact", card.encode())
    assert srv.pim_of(coid)["surname"] == "Álvarez" and srv.pim_of(coid)["emails"] == ["zoe@ejemplo.es"]
    for bad in (b"BEGIN:VCALENDAR\r\nSUMMARY:\xff\xfe\r\n", b"BEGIN:VCALENDAR\r\nno colon\r\n", b""):
        with pytest.raises(AssertionError, match="ErrorMimeContentConversionFailed"):
            create_from_mime(acc, srv, "CalendarItem", bad, 'SendMeetingInvitations="SendToNone"')
    with pytest.raises(AssertionError, match="ErrorSendMeetingInvitationsRequired"):
        create_from_mime(acc, srv, "CalendarItem", ics)
    with pytest.raises(AssertionError, match="ErrorMimeContentConversionFailed"):
        create_from_mime(acc, srv, "Task", b"From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n")


def test_ews_meeting_invitations_are_sent_only_when_asked(acc, srv):
    from exchangelib import Attendee, Mailbox
    tz = EWSTimeZone("Asia/Tokyo")
    srv.clear_sent()
    for how in ("SendToNone", "SendToAllAndSaveCopy"):
        ci = CalendarItem(account=acc, folder=acc.calendar, subject=f"Meeting {how}",
                          start=EWSDateTime(2031, 5, 6, 10, 0, tzinfo=tz), end=EWSDateTime(2031, 5, 6, 11, 0, tzinfo=tz),
                          required_attendees=[Attendee(mailbox=Mailbox(email_address="bob@example.com"))])
        ci.save(send_meeting_invitations=how)
    sent = srv.sent()
    assert [s["subject"] for s in sent] == ["Meeting SendToAllAndSaveCopy"]
    assert sent[0]["recipients"] == ["bob@example.com"] and "method=REQUEST" in sent[0]["mime"]


def test_ews_contact_and_task_update(acc, srv):
    co = Contact(account=acc, folder=acc.contacts, given_name="Ann", surname="Lee", display_name="Ann Lee")
    co.save()
    co.surname = "Lée"
    co.save(update_fields=["surname"])
    assert srv.pim_of(co.id)["surname"] == "Lée"
    t = Task(account=acc, folder=acc.tasks, subject="Write report", due_date=datetime.date(2031, 1, 2))
    t.save()
    t.status = "Completed"
    t.save(update_fields=["status"])
    assert srv.pim_of(t.id)["complete"] and srv.pim_of(t.id)["percent"] == 100
    t.delete()
    co.delete()


CREATE = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
 xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body>
<m:CreateItem %s><m:Items><t:%s><t:MimeContent CharacterSet="UTF-8">%s</t:MimeContent></t:%s></m:Items>
</m:CreateItem></soap:Body></soap:Envelope>"""


def post(acc, srv, body):
    r = requests.post(srv.ews_url, data=body, auth=(srv.user, srv.password), timeout=60,
                      headers={"Content-Type": "text/xml; charset=utf-8"})
    return ET.fromstring(r.content)


def create_from_mime(acc, srv, element, mime, attrs=""):
    """CreateItem of an item given as MimeContent (raw SOAP: exchangelib
    insists on Start/End next to it); returns the new id or raises
    AssertionError naming the response code."""
    root = post(acc, srv, (CREATE % (attrs, element, base64.b64encode(mime).decode(), element)).encode())
    code = root.find(".//{http://schemas.microsoft.com/exchange/services/2006/messages}ResponseCode")
    assert code is not None and code.text == "NoError", ET.tostring(root).decode()[:600]
    return root.find(f".//{TNS}ItemId").get("Id")


AVAIL = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
 xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body>
<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias>
<t:StandardTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder><t:Month>0</t:Month>
<t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time>
<t:DayOrder>0</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone>
<m:MailboxDataArray><t:MailboxData><t:Email><t:Address>%s</t:Address></t:Email><t:AttendeeType>Required
</t:AttendeeType></t:MailboxData></m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow>
<t:StartTime>%s</t:StartTime><t:EndTime>%s</t:EndTime></t:TimeWindow>
<t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes>
<t:RequestedView>DetailedMerged</t:RequestedView></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>
</soap:Body></soap:Envelope>"""


def test_ews_free_busy(acc, srv, ids):
    p = srv.pim_of(ids["berlin"])
    lo = p["start"] - 3600
    fmt = lambda ts: datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    body = (AVAIL % ("alice@example.com", fmt(lo), fmt(lo + 2 * 3600))).encode()   # nothing else that near
    root = post(acc, srv, body)
    events = root.findall(f".//{TNS}CalendarEvent")
    starts = [e.find(f"{TNS}StartTime").text for e in events]
    assert fmt(p["start"]) in starts
    merged = root.find(f".//{TNS}MergedFreeBusy").text
    assert merged == "0020"                 # busy from one hour in for 30 minutes, in 30-minute slots
    root = post(acc, srv, (AVAIL % ("nobody@example.com", fmt(lo), fmt(lo + 3600))).encode())
    assert b"ErrorMailRecipientNotFound" in ET.tostring(root)


def test_ews_fault_knobs_hit_the_new_operations(acc, srv, ids):
    p = srv.pim_of(ids["berlin"])
    fmt = lambda ts: datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    body = (AVAIL % ("alice@example.com", fmt(p["start"]), fmt(p["end"]))).encode()
    srv.fault("http503", operation="GetUserAvailability")
    r = requests.post(srv.ews_url, data=body, auth=(srv.user, srv.password), timeout=60,
                      headers={"Content-Type": "text/xml; charset=utf-8"})
    assert r.status_code == 503
    assert post(acc, srv, body).find(f".//{TNS}CalendarEvent") is not None      # the next one is answered
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Fault Test\r\nN:Test;Fault;;;\r\nEND:VCARD\r\n"
    srv.fault("busy", operation="CreateItem", where="message")
    with pytest.raises(AssertionError, match="ErrorServerBusy"):
        create_from_mime(acc, srv, "Contact", card)
    assert srv.pim_of(create_from_mime(acc, srv, "Contact", card))["display"] == "Fault Test"


def test_state_file_keeps_pim_items_across_a_restart(tmp_path):
    with EwsServer(messages=5, seed=9, pim=True, state=str(tmp_path / "state.jsonl")) as s:
        ids = s.markers()["pim"]
        s.change_pim(ids["due"], subject="Changed before restart")
        before = {m: s.pim_of(i) for m, i in ids.items()}
        s.restart()
        assert {m: s.pim_of(i) for m, i in ids.items()} == before
        assert s.item_info(ids["recurring"])["mime_len"] > 1000


# ---- ActiveSync -------------------------------------------------------------------------

def test_eas_sync_each_class(srv, ids):
    c = eas(srv)
    folders = c.folders()
    adds, _, _, _ = c.sync_all(folders["Calendar"], options=[])
    by_subject = {text(a, "Calendar:Subject"): a for a in adds.values()}
    rec = by_subject["Weekly sync"]
    assert text(child(rec, "Calendar:Recurrence"), "Calendar:Type") == "1"
    excs = children(child(rec, "Calendar:Exceptions"), "Calendar:Exception")
    assert sorted(text(x, "Calendar:Deleted") or "0" for x in excs) == ["0", "1"]
    tz = base64.b64decode(text(rec, "Calendar:Timezone"))
    assert len(tz) == 172 and int.from_bytes(tz[:4], "little", signed=True) == -60
    assert pim.zone_of_eas_timezone(text(by_subject["Standup in Seattle"], "Calendar:Timezone")) == "Pacific Standard Time"
    assert text(by_subject["Company holiday"], "Calendar:AllDayEvent") == "1"
    assert len(text(by_subject["Design review"], "Calendar:StartTime")) == 16        # 20261205T090000Z
    cadds, _, _, _ = c.sync_all(folders["Contacts"], options=[])
    juergen = [a for a in cadds.values() if text(a, "Contacts:LastName") == "Müller"][0]
    assert text(juergen, "Contacts:FirstName") == "Jürgen" and text(juergen, "Contacts:Picture")
    assert text(juergen, "Contacts:Email1Address") == "juergen@beispiel.de"
    tadds, _, _, _ = c.sync_all(folders["Tasks"], options=[])
    tasks = {text(a, "Tasks:Subject"): a for a in tadds.values()}
    assert text(tasks["Submit expense report"], "Tasks:UtcDueDate")
    assert text(tasks["Renew passport"], "Tasks:Complete") == "1"


def _add(c, cid, key, client_id, app):
    r = c.sync([{"id": cid, "key": key, "commands": [E("AirSync:Add", [E("AirSync:ClientId", client_id),
                                                                        E("AirSync:ApplicationData", app)])]}])
    col = collection(r.body, cid)
    resp = child(child(col, "AirSync:Responses"), "AirSync:Add")
    return text(col, "AirSync:SyncKey"), text(resp, "AirSync:Status"), text(resp, "AirSync:ServerId")


def test_eas_add_change_delete_show_in_ews(srv, acc):
    c = eas(srv)
    folders = c.folders()
    cal = folders["Calendar"]
    c.sync_all(cal, options=[])
    key = c.keys[cal]
    app = [E("Calendar:Timezone", pim.eas_timezone("Tokyo Standard Time")), E("Calendar:Subject", "Added over EAS"),
           E("Calendar:StartTime", "20310707T010000Z"), E("Calendar:EndTime", "20310707T020000Z"),
           E("Calendar:UID", "eas-add-1"), E("Calendar:BusyStatus", "2"), E("Calendar:AllDayEvent", "0")]
    key, st, sid = _add(c, cal, key, "c1", app)
    assert st == "1" and sid
    found = [i for i in acc.calendar.filter(subject="Added over EAS")] or \
        [i for i in acc.calendar.all() if i.subject == "Added over EAS"]
    assert len(found) == 1
    item = found[0]
    assert "TZID=Tokyo Standard Time:20310707T100000" in item.mime_content.decode()
    c.keys[cal] = key
    r = c.sync([{"id": cal, "key": key, "commands": [E("AirSync:Change", [
        E("AirSync:ServerId", sid), E("AirSync:ApplicationData", [E("Calendar:Subject", "Changed over EAS")])])]}])
    c.keys[cal] = text(collection(r.body, cal), "AirSync:SyncKey")
    item.refresh()
    assert item.subject == "Changed over EAS" and item.uid == "eas-add-1"
    # a server-side change (control API) reaches the device as a Change
    srv.change_pim(item.id, location="Tokyo office")
    _, changes, _, _ = c.sync_all(cal, options=[])
    assert [text(a, "Calendar:Location") for a in changes.values()] == ["Tokyo office"]
    r = c.sync([{"id": cal, "key": c.keys[cal], "commands": [E("AirSync:Delete", [E("AirSync:ServerId", sid)])]}])
    c.keys[cal] = text(collection(r.body, cal), "AirSync:SyncKey")
    assert not [i for i in acc.calendar.all() if i.subject == "Changed over EAS"]
    # contacts and tasks
    con = folders["Contacts"]
    c.sync_all(con, options=[])
    _, st, sid = _add(c, con, c.keys[con], "c2", [E("Contacts:FirstName", "Åsa"), E("Contacts:LastName", "Öberg"),
                                                   E("Contacts:Email1Address", "asa@example.se")])
    assert st == "1"
    got = [x for x in acc.contacts.all() if x.surname == "Öberg"]
    assert got and got[0].display_name == "Åsa Öberg"
    assert vobject.readOne(got[0].mime_content.decode()).n.value.given == "Åsa"
    tsk = folders["Tasks"]
    c.sync_all(tsk, options=[])
    _, st, sid = _add(c, tsk, c.keys[tsk], "c3", [E("Tasks:Subject", "EAS task"),
                                                   E("Tasks:UtcDueDate", "2031-02-03T00:00:00.000Z"),
                                                   E("Tasks:DueDate", "2031-02-03T00:00:00.000Z"),
                                                   E("Tasks:Complete", "0")])
    assert st == "1"
    t = [x for x in acc.tasks.all() if x.subject == "EAS task"][0]
    assert t.due_date == datetime.date(2031, 2, 3)


def test_eas_resolve_recipients_availability(srv, ids):
    c = eas(srv)
    p = srv.pim_of(ids["berlin"])
    lo = p["start"] - 3600
    req = E("ResolveRecipients:ResolveRecipients", [
        E("ResolveRecipients:To", "alice@example.com"),
        E("ResolveRecipients:Options", [E("ResolveRecipients:Availability", [
            E("ResolveRecipients:StartTime", pim.iso(lo).replace("Z", ".000Z")),
            E("ResolveRecipients:EndTime", pim.iso(lo + 2 * 3600).replace("Z", ".000Z"))])])])
    r = c.ok("ResolveRecipients", req)
    rec = child(child(r.body, "ResolveRecipients:Response"), "ResolveRecipients:Recipient")
    av = child(rec, "ResolveRecipients:Availability")
    assert text(av, "ResolveRecipients:Status") == "1"
    assert text(av, "ResolveRecipients:MergedFreeBusy") == "0020"


def test_model_round_trips_icalendar_and_vcard(ids, srv):
    for m in ("recurring", "allday", "tokyo", "hostile_lines"):
        p = srv.pim_of(ids[m])
        again = pim.parse_ics(pim.render_ics(p, 0))
        for k in ("uid", "start", "end", "tz", "all_day", "recurrence"):
            assert again[k] == p[k], (m, k)
        assert sorted(x["orig"] for x in again["exceptions"]) == sorted(x["orig"] for x in p["exceptions"])
    c = srv.pim_of(ids["photo"])
    again = pim.parse_vcf(pim.render_vcf(c, 0))
    for k in ("given", "surname", "display", "emails", "photo", "birthday"):
        assert again[k] == c[k], k


def test_eas_hostile_adds(srv, acc):
    c = eas(srv)
    cal = c.folders()["Calendar"]
    c.sync_all(cal, options=[])
    base = [E("Calendar:Timezone", pim.eas_timezone("UTC")), E("Calendar:StartTime", "20310808T100000Z"),
            E("Calendar:EndTime", "20310808T110000Z")]
    # a body that is not UTF-8 (opaque data) is kept with replacement characters
    key, st, sid = _add(c, cal, c.keys[cal], "h1", base + [
        E("Calendar:Subject", "Bad bytes"),
        E("AirSyncBase:Body", [E("AirSyncBase:Type", "1"), E("AirSyncBase:Data", b"ok \xff\xfe end")])])
    assert st == "1"
    item = [i for i in acc.calendar.all() if i.subject == "Bad bytes"][0]
    assert item.body.startswith("ok ") and item.body.endswith(" end")
    icalendar.Calendar.from_ical(item.mime_content)
    # a monthly recurrence is not modelled: the Add is refused with status 6, nothing stored
    key, st, sid = _add(c, cal, key, "h2", base + [E("Calendar:Subject", "Monthly"), E("Calendar:Recurrence", [
        E("Calendar:Type", "2"), E("Calendar:Interval", "1"), E("Calendar:DayOfMonth", "8")])])
    assert st == "6" and sid is None
    assert not [i for i in acc.calendar.all() if i.subject == "Monthly"]
    # an end before the start is refused too
    key, st, sid = _add(c, cal, key, "h3", [E("Calendar:Timezone", pim.eas_timezone("UTC")),
                                            E("Calendar:Subject", "Backwards"),
                                            E("Calendar:StartTime", "20310808T110000Z"),
                                            E("Calendar:EndTime", "20310808T100000Z")])
    assert st == "6"


def test_ews_pull_notifications_for_server_side_changes(acc, srv):
    sub_id, watermark = acc.calendar.subscribe_to_pull()
    try:
        iid = srv.add_pim({"kind": "calendar", "subject": "Pushed", "tz": "UTC",
                           "start": 1956528000, "end": 1956531600})
        srv.change_pim(iid, subject="Pushed again")
        srv.delete(iid)
        kinds = []
        for notification in acc.calendar.get_events(subscription_id=sub_id, watermark=watermark):
            kinds += [type(e).__name__ for e in notification.events if getattr(e, "item_id", None)
                      and e.item_id.id == iid]
        assert kinds == ["CreatedEvent", "ModifiedEvent", "DeletedEvent"]
    finally:
        acc.calendar.unsubscribe(sub_id)
