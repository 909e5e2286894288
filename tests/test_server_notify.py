"""test_server_notify.py - EWS notifications of the test server (notify.py):
Subscribe (pull, streaming), GetEvents, GetStreamingEvents over a kept-open
chunked response, Unsubscribe, the events every mailbox change produces
(EWS operations and control injections alike), and the control knobs tests
use to shorten timers and inject faults. Shares the SOAP client of
test_server.py and the write helpers of test_server_write.py."""
import base64
import os
import queue
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))

from harness import EwsServer  # noqa: E402
from test_server import ENVELOPE, NS, T, Ews, ews, folder_id, messages  # noqa: E402,F401
from test_server_write import call, create, eml, item_ref, new_ids, set_field, update  # noqa: E402

M = "{%s}" % NS["m"]
SOAP = "{%s}" % NS["s"]
ALL_TYPES = ("NewMailEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "CopiedEvent")
DEFAULTS = dict(keepalive_s=45, subscription_expiry_s=1800, minute_s=60, refuse=None, split_chunks=False,
                event_log_limit=50000)


@pytest.fixture(scope="module")
def srv():
    with EwsServer(messages=60, seed=5) as s:
        yield s
        assert "Traceback" not in s.log_text(), s.log_text()[-3000:]


@pytest.fixture(autouse=True)
def fresh(srv):
    """Every test starts with default timers and no subscriptions."""
    srv.notify_config(**DEFAULTS)
    srv.expire_subscriptions()
    srv.clear_faults()
    yield


# ---- requests ---------------------------------------------------------------------------

def dist(name):
    return f'<t:DistinguishedFolderId Id="{name}"/>'


def fid(fid_):
    return f'<t:FolderId Id="{fid_}"/>'


def subscribe_xml(kind="Pull", folders=None, types=ALL_TYPES, timeout=10, watermark=None, all_folders=False):
    attr = ' SubscribeToAllFolders="true"' if all_folders else ""
    parts = [f"<m:{kind}SubscriptionRequest{attr}>"]
    if folders is not None:
        parts.append(f"<t:FolderIds>{''.join(folders)}</t:FolderIds>")
    parts.append("<t:EventTypes>" + "".join(f"<t:EventType>{e}</t:EventType>" for e in types) + "</t:EventTypes>")
    if watermark is not None:
        parts.append(f"<t:Watermark>{watermark}</t:Watermark>")
    if kind == "Pull" and timeout is not None:
        parts.append(f"<t:Timeout>{timeout}</t:Timeout>")
    parts.append(f"</m:{kind}SubscriptionRequest>")
    return "<m:Subscribe>" + "".join(parts) + "</m:Subscribe>"


def subscribe(ews, **kw):
    """(code, subscription id, watermark, message element)."""
    [(code, msg)] = call(ews, subscribe_xml(**kw))
    return (code, msg.findtext("m:SubscriptionId", namespaces=NS), msg.findtext("m:Watermark", namespaces=NS), msg)


def pull(ews, folders=None, **kw):
    code, sid, wm, msg = subscribe(ews, kind="Pull", folders=folders, all_folders=folders is None, **kw)
    assert code == "NoError", ET.tostring(msg)
    return sid, wm


def streaming(ews, folders=None, **kw):
    code, sid, wm, msg = subscribe(ews, kind="Streaming", folders=folders, all_folders=folders is None, **kw)
    assert code == "NoError" and wm is None, ET.tostring(msg)
    return sid


def event_of(e):
    """An event element as a dict: kind, ids, watermark, unread."""
    def ref(tag):
        x = e.find(f"t:{tag}", NS)
        return None if x is None else x.get("Id")
    d = {"kind": e.tag[len(T):], "watermark": e.findtext("t:Watermark", namespaces=NS),
         "time": e.findtext("t:TimeStamp", namespaces=NS), "item": ref("ItemId"), "folder": ref("FolderId"),
         "parent": ref("ParentFolderId"), "old_item": ref("OldItemId"), "old_folder": ref("OldFolderId"),
         "old_parent": ref("OldParentFolderId"), "unread": e.findtext("t:UnreadCount", namespaces=NS)}
    d["id"] = d["item"] or d["folder"]
    for tag in ("ItemId", "FolderId", "ParentFolderId", "OldItemId", "OldParentFolderId", "OldFolderId"):
        x = e.find(f"t:{tag}", NS)
        if x is not None:                   # Exchange's placeholder change keys
            assert x.get("ChangeKey") == ("CQAAAA==" if "Item" in tag else "AQAAAA=="), tag
    return d


def get_events(ews, sid, wm):
    """(code, previous watermark, more, [event dicts], message)."""
    [(code, msg)] = call(ews, f"<m:GetEvents><m:SubscriptionId>{sid}</m:SubscriptionId>"
                              f"<m:Watermark>{wm}</m:Watermark></m:GetEvents>")
    if code != "NoError":
        assert msg.get("ResponseClass") == "Error"
        return code, None, None, [], msg
    n = msg.find("m:Notification", NS)
    assert n.findtext("t:SubscriptionId", namespaces=NS) == sid
    events = [event_of(e) for e in n if e.tag.startswith(T) and e.tag.endswith("Event")]
    return code, n.findtext("t:PreviousWatermark", namespaces=NS), n.findtext("t:MoreEvents", namespaces=NS) == "true", \
        events, msg


def drain(ews, sid, wm):
    """All events queued on a pull subscription: ([events], new watermark)."""
    out = []
    while True:
        code, prev, more, events, _ = get_events(ews, sid, wm)
        assert code == "NoError" and prev == wm
        wm = events[-1]["watermark"]
        if events[-1]["kind"] == "StatusEvent":
            assert len(events) == 1 and not more
            return out, wm
        out += events
        if not more:
            return out, wm


def unsubscribe(ews, sid):
    [(code, _)] = call(ews, f"<m:Unsubscribe><m:SubscriptionId>{sid}</m:SubscriptionId></m:Unsubscribe>")
    return code


def kinds(events):
    return [(e["kind"], e["id"]) for e in events]


# ---- a streaming client over a raw socket (checks the chunked framing itself) -------------

class Envelope:
    def __init__(self, raw):
        self.raw = raw
        self.root = ET.fromstring(raw)          # every envelope is a well-formed document
        assert self.root.tag == SOAP + "Envelope"
        body = self.root.find(SOAP + "Body")
        resp = body[0]
        assert resp.tag == M + "GetStreamingEventsResponse"
        [self.msg] = list(resp.find("m:ResponseMessages", NS))
        assert self.msg.tag == M + "GetStreamingEventsResponseMessage"
        self.cls = self.msg.get("ResponseClass")
        self.code = self.msg.findtext("m:ResponseCode", namespaces=NS)
        self.status = self.msg.findtext("m:ConnectionStatus", namespaces=NS)
        self.error_ids = [e.text for e in self.msg.findall("m:ErrorSubscriptionIds/m:SubscriptionId", NS)]
        self.notes = []
        for n in self.msg.findall("m:Notifications/m:Notification", NS):
            sid = n.findtext("t:SubscriptionId", namespaces=NS)
            assert n.find("t:PreviousWatermark", NS) is None and n.find("t:MoreEvents", NS) is None
            self.notes.append((sid, [event_of(e) for e in n if e.tag != T + "SubscriptionId"]))

    def events(self, sid=None):
        return [e for s, evs in self.notes if sid in (None, s) for e in evs]


def stream_request(ids, minutes, version="Exchange2013_SP1"):
    body = (f"<m:GetStreamingEvents><m:SubscriptionIds>"
            + "".join(f"<t:SubscriptionId>{i}</t:SubscriptionId>" for i in ids)
            + f"</m:SubscriptionIds><m:ConnectionTimeout>{minutes}</m:ConnectionTimeout></m:GetStreamingEvents>")
    return (ENVELOPE % body).replace("Exchange2013_SP1", version).encode()


class Stream:
    """GetStreamingEvents on its own connection; a thread parses the chunked
    body as it arrives and queues (arrival time, Envelope)."""

    def __init__(self, srv, ids, minutes=30, version="Exchange2013_SP1"):
        self.srv, self.sock = srv, socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        self.envelopes, self.chunks, self.ended, self.failure = queue.Queue(), [], False, None
        self.send(stream_request(ids, minutes, version))
        self.f = self.sock.makefile("rb")
        status = self.f.readline()
        assert status.startswith(b"HTTP/1.1 "), status
        self.status = int(status.split()[1])
        self.headers = {}
        while True:
            line = self.f.readline().strip()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def send(self, data):
        auth = base64.b64encode(f"{self.srv.user}:{self.srv.password}".encode()).decode()
        self.sock.sendall(b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: text/xml; charset=utf-8\r\nAuthorization: Basic " + auth.encode()
                          + b"\r\nContent-Length: %d\r\n\r\n" % len(data) + data)

    def _read(self):
        buf = b""
        try:
            while True:
                size_line = self.f.readline()
                if not size_line:
                    raise ConnectionError("EOF before the last chunk")
                assert size_line.endswith(b"\r\n"), size_line
                size = int(size_line, 16)
                if size == 0:
                    assert self.f.readline() == b"\r\n"
                    assert buf == b"", buf[:200]          # no half envelope left at the end
                    self.ended = True
                    return
                data = self.f.read(size)
                assert len(data) == size and self.f.read(2) == b"\r\n"
                self.chunks.append(data)
                buf += data
                while b"</Envelope>" in buf:
                    raw, _, buf = buf.partition(b"</Envelope>")
                    self.envelopes.put((time.monotonic(), Envelope(raw + b"</Envelope>")))
        except Exception as e:              # noqa: BLE001 - reported by next()
            self.failure = e
        finally:
            self.envelopes.put((time.monotonic(), None))

    def next(self, timeout=5.0):
        """The next envelope, or None when the body ended or the connection broke."""
        try:
            _, env = self.envelopes.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no envelope within {timeout}s") from None
        if env is None:
            self.envelopes.put((time.monotonic(), None))
        return env

    def next_timed(self, timeout=5.0):
        t, env = self.envelopes.get(timeout=timeout)
        if env is None:
            self.envelopes.put((t, None))
        return t, env

    def until_events(self, n=1, timeout=5.0):
        """Envelopes until at least n events arrived; returns the events."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            env = self.next(max(0.01, deadline - time.monotonic()))
            assert env is not None, f"stream ended: {self.failure!r}"
            assert env.cls == "Success", env.raw
            out += env.events()
        return out

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def streams():
    opened = []

    def open_(srv, ids, **kw):
        s = Stream(srv, ids, **kw)
        opened.append(s)
        return s
    yield open_
    for s in opened:
        s.close()


# ---- Subscribe ---------------------------------------------------------------------------

def test_pull_subscribe_and_status_event(ews, srv):
    sid, wm = pull(ews, [dist("inbox")])
    assert sid and wm and base64.b64decode(wm)
    code, prev, more, events, _ = get_events(ews, sid, wm)
    assert (code, prev, more) == ("NoError", wm, False)
    [status] = events
    assert status["kind"] == "StatusEvent" and status["watermark"] == wm and status["id"] is None
    [sub] = srv.subscriptions()
    assert (sub["id"], sub["kind"], sub["folder_paths"], sub["timeout_min"], sub["queued"]) == \
        (sid, "pull", ["Inbox"], 10, 0)
    assert sorted(sub["event_types"]) == sorted(ALL_TYPES)


def test_subscribe_refusals(ews, srv):
    inbox = folder_id(srv, "Inbox")

    def code_of(**kw):
        return subscribe(ews, **kw)[0]
    for kind in ("Pull", "Streaming"):
        assert code_of(kind=kind, folders=[dist("inbox")], all_folders=True) == "ErrorInvalidSubscriptionRequest"
        assert code_of(kind=kind) == "ErrorInvalidSubscriptionRequest"
        assert code_of(kind=kind, folders=[fid(inbox[:-10] + "AAAAAAAA==")]) == "ErrorFolderNotFound"
        assert code_of(kind=kind, folders=[dist("inbox"), fid("not base64!")]) == "ErrorInvalidIdMalformed"
        assert code_of(kind=kind, folders=[dist("tasks")]) == "ErrorFolderNotFound"
    _, _, _, msg = subscribe(ews, kind="Pull", folders=[fid(inbox)], watermark="AAAAAHgGAAAAAAAAAQ==")
    assert msg.get("ResponseClass") == "Error" and msg.findtext("m:ResponseCode", namespaces=NS) == \
        "ErrorInvalidWatermark" and msg.findtext("m:MessageText", namespaces=NS)
    assert code_of(kind="Push", folders=[dist("inbox")]) == "ErrorInvalidPushSubscriptionUrl"
    assert srv.subscriptions() == []
    # Schema violations are SOAP faults of the whole request.
    for bad in (subscribe_xml(folders=[dist("inbox")], timeout=0), subscribe_xml(folders=[dist("inbox")], timeout=1441),
                subscribe_xml(folders=[dist("inbox")], timeout=None),
                subscribe_xml(folders=[dist("inbox")], types=("StatusEvent",)),
                subscribe_xml(folders=[dist("inbox")], types=()),
                subscribe_xml(kind="Streaming", folders=[dist("inbox")], watermark="x"),
                subscribe_xml(folders=[]),
                "<m:Subscribe/>"):
        status, _, out = ews.post(bad)
        assert status == 500 and b"ErrorSchemaValidation" in out, bad
    assert srv.subscriptions() == []


# ---- events of control injections ----------------------------------------------------------

def test_delivery_events(ews, srv):
    sid, wm = pull(ews, [dist("inbox")])
    iid = srv.deliver("Inbox", subject="Notify me")
    events, wm2 = drain(ews, sid, wm)
    inbox = srv.folder("Inbox")
    assert kinds(events) == [("CreatedEvent", iid), ("NewMailEvent", iid), ("ModifiedEvent", inbox["id"])]
    assert all(e["parent"] == inbox["id"] for e in events[:2])
    assert events[2]["parent"] == inbox["parent_id"] and events[2]["unread"] == str(inbox["unread"])
    assert events[0]["item"] == iid and events[2]["folder"] == inbox["id"]
    marks = [e["watermark"] for e in events]
    assert all(marks) and len(set(marks)) == 3 and wm2 == marks[-1]
    assert all(e["time"].endswith("Z") and abs(time.mktime(time.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ"))
                                                - time.mktime(time.gmtime())) < 120 for e in events)
    assert get_events(ews, sid, wm2)[3][0]["kind"] == "StatusEvent"


def test_every_control_change_is_an_event(ews, srv):
    sid, wm = pull(ews)                         # SubscribeToAllFolders
    ids = {f["path"]: f["id"] for f in srv.mailbox()["folders"]}
    inbox, archive, root = ids["Inbox"], ids["Archive"], ids[""]

    def changes(action):
        nonlocal wm
        action()
        events, wm = drain(ews, sid, wm)
        return events
    it = srv.deliver("Inbox", subject="All kinds")
    assert [e["kind"] for e in changes(lambda: None)] == ["CreatedEvent", "NewMailEvent", "ModifiedEvent"]
    ev = changes(lambda: srv.mark_read(it, True))
    assert kinds(ev) == [("ModifiedEvent", it), ("ModifiedEvent", inbox)]
    assert ev[0]["parent"] == inbox and ev[0]["unread"] is None and ev[1]["unread"] == str(srv.folder("Inbox")["unread"])
    for act in (lambda: srv.update_item(it, "Renamed"), lambda: srv.set_flag(it, "Flagged"),
                lambda: srv.set_categories(it, ["Red"])):
        assert kinds(changes(act)) == [("ModifiedEvent", it), ("ModifiedEvent", inbox)]
    assert changes(lambda: srv.set_flag(it, "Flagged")) == []           # no change, no event
    moved = []
    ev = changes(lambda: moved.append(srv.move(it, "Archive")))
    assert kinds(ev) == [("MovedEvent", moved[0]), ("ModifiedEvent", inbox), ("ModifiedEvent", archive)]
    assert (ev[0]["parent"], ev[0]["old_item"], ev[0]["old_parent"]) == (archive, it, inbox)
    ev = changes(lambda: srv.delete(moved[0]))
    assert kinds(ev) == [("DeletedEvent", moved[0]), ("ModifiedEvent", archive)] and ev[0]["parent"] == archive
    new = []
    ev = changes(lambda: new.append(srv.create_folder("Inbox", "Evented")))
    assert kinds(ev) == [("CreatedEvent", new[0]), ("ModifiedEvent", inbox)] and ev[0]["parent"] == inbox
    assert ev[0]["folder"] == new[0] and ev[0]["item"] is None
    ev = changes(lambda: srv.rename_folder("Inbox/Evented", "Evented2"))
    assert kinds(ev) == [("ModifiedEvent", new[0])] and ev[0]["parent"] == inbox and ev[0]["unread"] == "0"
    sub_id = srv.create_folder("Inbox/Evented2", "Child")
    changes(lambda: None)
    ev = changes(lambda: srv.move_folder("Inbox/Evented2", "Archive"))
    assert kinds(ev) == [("MovedEvent", new[0]), ("ModifiedEvent", inbox), ("ModifiedEvent", archive)]
    assert (ev[0]["parent"], ev[0]["old_folder"], ev[0]["old_parent"]) == (archive, new[0], inbox)
    ev = changes(lambda: srv.delete_folder("Archive/Evented2"))
    assert kinds(ev) == [("DeletedEvent", sub_id), ("DeletedEvent", new[0]), ("ModifiedEvent", archive)]
    assert ev[0]["parent"] == new[0] and ev[1]["parent"] == archive
    top = []
    ev = changes(lambda: top.append(srv.create_folder("", "Top level")))
    assert kinds(ev) == [("CreatedEvent", top[0]), ("ModifiedEvent", root)]
    assert ev[0]["parent"] == root and ev[1]["parent"] == srv.mailbox()["folders"][0]["id"]   # the root


# ---- events of EWS operations ------------------------------------------------------------------

def test_every_ews_change_is_an_event(ews, srv):
    sid, wm = pull(ews)
    ids = {f["path"]: f["id"] for f in srv.mailbox()["folders"]}
    drafts, sent, inbox, trash, archive = (ids[p] for p in ("Drafts", "Sent Items", "Inbox", "Deleted Items",
                                                            "Archive"))

    def changes(body=None):
        nonlocal wm
        got = call(ews, body) if body else None
        events, wm = drain(ews, sid, wm)
        return got, events
    draft, _ = create(ews, eml("Event draft"))
    _, ev = changes()
    assert kinds(ev) == [("CreatedEvent", draft), ("ModifiedEvent", drafts)]
    code, _ = update(ews, draft, None, set_field("item:Subject", "<t:Subject>Edited</t:Subject>"))
    _, ev = changes()
    assert code == "NoError" and kinds(ev) == [("ModifiedEvent", draft), ("ModifiedEvent", drafts)]
    got, ev = changes(f'<m:SendItem SaveItemToFolder="true"><m:ItemIds>{item_ref(draft)}</m:ItemIds></m:SendItem>')
    [copy] = srv.find_subject("Edited", "Sent Items")
    assert kinds(ev) == [("MovedEvent", copy), ("ModifiedEvent", drafts), ("ModifiedEvent", sent)]
    assert (ev[0]["old_item"], ev[0]["old_parent"], ev[0]["parent"]) == (draft, drafts, sent)
    create(ews, eml("Sent directly"), disposition="SendAndSaveCopy")
    _, ev = changes()
    [copy2] = srv.find_subject("Sent directly", "Sent Items")
    assert kinds(ev) == [("CreatedEvent", copy2), ("ModifiedEvent", sent)]
    create(ews, eml("Sent only"), disposition="SendOnly")
    assert changes()[1] == []
    to = f"<m:ToFolderId>{fid(archive)}</m:ToFolderId>"
    got, ev = changes(f"<m:CopyItem>{to}<m:ItemIds>{item_ref(copy2)}</m:ItemIds></m:CopyItem>")
    [(copied, _)] = new_ids(got[0][1])
    assert kinds(ev) == [("CopiedEvent", copied), ("ModifiedEvent", archive)]
    assert (ev[0]["old_item"], ev[0]["old_parent"], ev[0]["parent"]) == (copy2, sent, archive)
    got, ev = changes(f"<m:MoveItem>{to}<m:ItemIds>{item_ref(copy2)}</m:ItemIds></m:MoveItem>")
    [(moved, _)] = new_ids(got[0][1])
    assert kinds(ev) == [("MovedEvent", moved), ("ModifiedEvent", sent), ("ModifiedEvent", archive)]
    got, ev = changes(f'<m:DeleteItem DeleteType="MoveToDeletedItems"><m:ItemIds>{item_ref(moved)}</m:ItemIds>'
                      "</m:DeleteItem>")
    assert [e["kind"] for e in ev] == ["MovedEvent", "ModifiedEvent", "ModifiedEvent"]
    assert (ev[0]["old_item"], ev[0]["parent"], ev[2]["id"]) == (moved, trash, trash)
    got, ev = changes(f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{item_ref(copied)}</m:ItemIds>'
                      "</m:DeleteItem>")
    assert kinds(ev) == [("DeletedEvent", copied), ("ModifiedEvent", archive)]
    got, ev = changes(f'<m:DeleteItem DeleteType="SoftDelete"><m:ItemIds>{item_ref(copy)}</m:ItemIds>'
                      "</m:DeleteItem>")
    assert kinds(ev) == [("DeletedEvent", copy), ("ModifiedEvent", sent)]
    got, ev = changes(f"<m:CreateFolder><m:ParentFolderId>{fid(inbox)}</m:ParentFolderId><m:Folders><t:Folder>"
                      "<t:DisplayName>EWS folder</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>")
    [(folder, _)] = new_ids(got[0][1])
    assert kinds(ev) == [("CreatedEvent", folder), ("ModifiedEvent", inbox)]
    got, ev = changes(f"<m:UpdateFolder><m:FolderChanges><t:FolderChange>{fid(folder)}<t:Updates><t:SetFolderField>"
                      '<t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:DisplayName>EWS renamed</t:DisplayName>'
                      "</t:Folder></t:SetFolderField></t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>")
    assert kinds(ev) == [("ModifiedEvent", folder)]
    got, ev = changes(f"<m:MoveFolder>{to}<m:FolderIds>{fid(folder)}</m:FolderIds></m:MoveFolder>")
    assert kinds(ev) == [("MovedEvent", folder), ("ModifiedEvent", inbox), ("ModifiedEvent", archive)]
    got, ev = changes(f'<m:DeleteFolder DeleteType="MoveToDeletedItems"><m:FolderIds>{fid(folder)}</m:FolderIds>'
                      "</m:DeleteFolder>")
    assert kinds(ev) == [("MovedEvent", folder), ("ModifiedEvent", archive), ("ModifiedEvent", trash)]
    got, ev = changes(f'<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds>{fid(folder)}</m:FolderIds>'
                      "</m:DeleteFolder>")
    assert kinds(ev) == [("DeletedEvent", folder), ("ModifiedEvent", trash)]
    got, ev = changes(f'<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds>{dist("inbox")}</m:FolderIds>'
                      "</m:DeleteFolder>")
    assert got[0][0] == "ErrorDeleteDistinguishedFolder" and ev == []     # refused: nothing happened


# ---- filtering, watermarks -----------------------------------------------------------------------

def test_folder_and_type_filters(ews, srv):
    inbox, archive = folder_id(srv, "Inbox"), folder_id(srv, "Archive")
    sid, wm = pull(ews, [fid(inbox)])
    only_new, wm_new = pull(ews, [dist("inbox"), dist("drafts")], types=("NewMailEvent",))
    elsewhere = srv.deliver("Archive", subject="Not in Inbox")
    here = srv.deliver("Inbox", subject="In Inbox")
    moved_out = srv.move(here, "Archive")
    moved_in = srv.move(elsewhere, "Inbox")
    srv.mark_read(moved_out, True)                # in Archive: not seen
    events, _ = drain(ews, sid, wm)
    assert kinds(events) == [("CreatedEvent", here), ("NewMailEvent", here), ("ModifiedEvent", inbox),
                             ("MovedEvent", moved_out), ("ModifiedEvent", inbox),
                             ("MovedEvent", moved_in), ("ModifiedEvent", inbox)]
    assert events[3]["old_parent"] == inbox and events[5]["parent"] == inbox
    events, _ = drain(ews, only_new, wm_new)
    assert kinds(events) == [("NewMailEvent", here)]
    subs = {s["id"]: s for s in srv.subscriptions()}
    assert subs[only_new]["folder_paths"] == ["Drafts", "Inbox"] and subs[only_new]["event_types"] == ["NewMailEvent"]
    assert archive not in subs[sid]["folders"]


def test_watermarks_more_events_and_replay(ews, srv):
    sid, wm0 = pull(ews, [dist("inbox")])
    ids = [srv.deliver("Inbox", subject=f"Batch {i}") for i in range(20)]      # 60 events
    code, prev, more, first, _ = get_events(ews, sid, wm0)
    assert (code, prev, more, len(first)) == ("NoError", wm0, True, 50)
    [s] = srv.subscriptions()
    assert s["queued"] == 10 and s["watermark"] == first[-1]["watermark"]
    code, prev, more, rest, _ = get_events(ews, sid, first[-1]["watermark"])
    assert (prev, more, len(rest)) == (first[-1]["watermark"], False, 10)
    assert [e["id"] for e in first + rest if e["kind"] == "NewMailEvent"] == ids
    # The answer was lost: asking again with the old watermark hands the same events out again.
    assert get_events(ews, sid, wm0)[3] == first
    status = get_events(ews, sid, rest[-1]["watermark"])[3]
    assert [e["kind"] for e in status] == ["StatusEvent"] and status[0]["watermark"] == rest[-1]["watermark"]
    # A watermark that is not this server's, or garbage: refused, the subscription lives on.
    for bad in ("AAAAAHgGAAAAAAAAAQ==", "!!", base64.b64encode(b"\x01\0\0\0" + b"x" * 25).decode()):
        assert get_events(ews, sid, bad)[0] == "ErrorInvalidWatermark"
    assert get_events(ews, sid, rest[-1]["watermark"])[0] == "NoError"
    # A new subscription from an old watermark starts there.
    sid2, wm2 = pull(ews, [dist("inbox")], watermark=first[2]["watermark"])
    assert wm2 == first[2]["watermark"]
    events, _ = drain(ews, sid2, wm2)
    assert len(events) == 57 and events[0] == first[3]


def test_pull_expiry_and_unsubscribe(ews, srv):
    srv.notify_config(minute_s=0.3)
    sid, wm = pull(ews, [dist("inbox")], timeout=1)
    for _ in range(3):                           # each GetEvents resets the timer
        time.sleep(0.15)
        code, _, _, events, _ = get_events(ews, sid, wm)
        assert code == "NoError"
        wm = events[-1]["watermark"]
    time.sleep(0.5)
    code, _, _, _, msg = get_events(ews, sid, wm)
    assert code == "ErrorSubscriptionNotFound" and msg.findtext("m:MessageText", namespaces=NS)
    assert srv.subscriptions() == []
    srv.notify_config(minute_s=60)
    sid, wm = pull(ews, [dist("inbox")])
    assert unsubscribe(ews, sid) == "NoError"
    assert unsubscribe(ews, sid) == "ErrorSubscriptionNotFound"
    assert get_events(ews, sid, wm)[0] == "ErrorSubscriptionNotFound"
    assert get_events(ews, "bm90IGEgc3Vic2NyaXB0aW9u", wm)[0] == "ErrorSubscriptionNotFound"
    stream_sid = streaming(ews, [dist("inbox")])
    assert get_events(ews, stream_sid, wm)[0] == "ErrorInvalidPullSubscriptionId"
    status, _, out = ews.post(f"<m:GetEvents><m:SubscriptionId>{stream_sid}</m:SubscriptionId></m:GetEvents>")
    assert status == 500 and b"ErrorSchemaValidation" in out


# ---- streaming ---------------------------------------------------------------------------------

def test_stream_delivers_at_once_and_is_valid_chunked_http(ews, srv, streams):
    sid = streaming(ews, [dist("inbox")])
    st = streams(srv, [sid])
    assert st.status == 200 and st.headers["transfer-encoding"] == "chunked"
    assert st.headers["content-type"].startswith("text/xml") and "content-length" not in st.headers
    hello = st.next()
    assert (hello.cls, hello.code, hello.status, hello.notes) == ("Success", "NoError", "OK", [])
    assert not hello.raw.startswith(b"<?xml") and hello.raw.startswith(b"<Envelope xmlns=")
    assert srv.wait_subscribed("streaming", connected=True)[0]["id"] == sid
    for i in range(3):
        t0 = time.monotonic()
        iid = srv.deliver("Inbox", subject=f"Streamed {i}")
        t, env = st.next_timed()
        assert t - t0 < 1.0, f"event took {t - t0:.3f}s"
        assert env.status is None and [s for s, _ in env.notes] == [sid]
        evs = env.events()
        assert [(e["kind"], e["id"]) for e in evs[:2]] == [("CreatedEvent", iid), ("NewMailEvent", iid)]
        assert all(e["watermark"] is None and e["time"] for e in evs)      # streaming: no Watermark
        if len(evs) < 3:
            evs += st.until_events(1)
        assert evs[2]["kind"] == "ModifiedEvent" and evs[2]["unread"] == str(srv.folder("Inbox")["unread"])
    srv.deliver("Archive", subject="Not watched")
    assert srv.subscriptions()[0]["queued"] == 0
    assert all(c for c in st.chunks)


def test_stream_split_chunks_keepalives_and_closed_ending(ews, srv, streams):
    srv.notify_config(keepalive_s=0.15, minute_s=0.9, split_chunks=True)
    sid = streaming(ews, [dist("inbox")])
    t0 = time.monotonic()
    st = streams(srv, [sid], minutes=1)
    envs = []
    while True:
        t, env = st.next_timed()
        if env is None:
            break
        envs.append((t, env))
    assert st.ended and st.failure is None, st.failure
    assert [e.status for _, e in envs][-1] == "Closed" and all(e.status == "OK" for _, e in envs[:-1])
    assert len(envs) >= 4 and all(e.cls == "Success" and not e.notes for _, e in envs)
    gaps = [b[0] - a[0] for a, b in zip(envs, envs[1:-1])]
    assert all(g > 0.05 for g in gaps), gaps
    assert 0.8 < envs[-1][0] - t0 < 5
    assert len(st.chunks) == 2 * len(envs)             # each envelope cut in two chunks
    # The connection stays usable after the body ended: a second request on it.
    st.send(ENVELOPE.encode() % b"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
            b'<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>')
    assert st.f.readline().startswith(b"HTTP/1.1 200")
    [sub] = srv.subscriptions()
    assert sub["id"] == sid and not sub["connected"]


def test_events_queue_while_disconnected(ews, srv, streams):
    sid = streaming(ews, [dist("inbox")])
    st = streams(srv, [sid])
    assert st.next().status == "OK"
    st.close()                                   # the client goes away
    srv.wait_subscribed("streaming", connected=False)
    ids = [srv.deliver("Inbox", subject=f"While away {i}") for i in range(2)]
    [sub] = srv.subscriptions()
    assert sub["queued"] == 6 and not sub["connected"]
    st2 = streams(srv, [sid])
    events = st2.until_events(6)
    assert [e["id"] for e in events if e["kind"] == "NewMailEvent"] == ids
    assert srv.subscriptions()[0]["queued"] == 0
    later = srv.deliver("Inbox", subject="Live again")
    assert st2.until_events(3)[0]["id"] == later


def test_drop_streams_and_reconnect(ews, srv, streams):
    sid = streaming(ews, [dist("inbox")])
    st = streams(srv, [sid])
    assert st.next().status == "OK"
    srv.wait_subscribed("streaming", connected=True)
    assert srv.drop_streams() == 1
    assert st.next() is None and not st.ended           # cut: no Closed envelope, no last chunk
    assert isinstance(st.failure, (ConnectionError, OSError)), st.failure
    [sub] = srv.subscriptions()
    assert sub["id"] == sid and not sub["connected"]
    iid = srv.deliver("Inbox", subject="During the outage")
    st2 = streams(srv, [sid])
    assert st2.until_events(3)[1]["id"] == iid


def test_expire_subscriptions(ews, srv, streams):
    sid = streaming(ews, [dist("inbox")])
    psid, wm = pull(ews, [dist("inbox")])
    st = streams(srv, [sid])
    assert st.next().status == "OK"
    assert srv.expire_subscriptions() == {"dropped": 1, "forgotten": 2}
    assert st.next() is None and not st.ended
    assert get_events(ews, psid, wm)[0] == "ErrorSubscriptionNotFound"
    st2 = streams(srv, [sid])
    env = st2.next()
    assert (env.cls, env.code, env.error_ids, env.status) == ("Error", "ErrorSubscriptionNotFound", [sid], "Closed")
    assert env.msg.findtext("m:MessageText", namespaces=NS)
    assert st2.next() is None and st2.ended


def test_streaming_subscription_expires_without_connection(ews, srv, streams):
    srv.notify_config(subscription_expiry_s=0.4, keepalive_s=0.2)
    sid = streaming(ews, [dist("inbox")])
    time.sleep(0.6)
    assert srv.subscriptions() == []
    sid = streaming(ews, [dist("inbox")])
    st = streams(srv, [sid])
    time.sleep(0.8)                             # connected: it does not expire
    assert srv.subscriptions()[0]["connected"]
    st.close()
    srv.wait_subscribed("streaming", connected=False)
    time.sleep(0.6)
    assert srv.subscriptions() == []
    env = streams(srv, [sid]).next()
    assert (env.code, env.error_ids) == ("ErrorSubscriptionNotFound", [sid])


def test_unsubscribe_streaming_ends_its_stream(ews, srv, streams):
    sid = streaming(ews, [dist("inbox")])
    st = streams(srv, [sid])
    assert st.next().status == "OK"
    srv.wait_subscribed("streaming", connected=True)
    assert unsubscribe(ews, sid) == "NoError"
    env = st.next()
    assert (env.cls, env.status) == ("Success", "Closed")
    assert st.next() is None and st.ended
    assert srv.subscriptions() == []


def test_one_stream_many_subscriptions_and_takeover(ews, srv, streams):
    a, b = streaming(ews, [dist("inbox")]), streaming(ews, [dist("drafts")], types=("CreatedEvent",))
    st = streams(srv, [a, b])
    assert st.next().status == "OK"
    in_inbox = srv.deliver("Inbox", subject="For a")
    evs = st.until_events(3)
    in_drafts = srv.deliver("Drafts", subject="For b")
    env = st.next()
    assert [(s, [e["kind"] for e in evs]) for s, evs in env.notes] == [(b, ["CreatedEvent"])]
    assert evs[0]["id"] == in_inbox and env.events()[0]["id"] == in_drafts
    # A second connection for b takes it over; the first keeps a.
    st2 = streams(srv, [b])
    env = st.next()
    assert (env.cls, env.code, env.error_ids, env.status) == \
        ("Error", "ErrorNewEventStreamConnectionOpened", [b], "OK")
    assert st2.next().status == "OK"
    srv.deliver("Drafts", subject="b only")
    assert [s for s, _ in st2.next().notes] == [b]
    st3 = streams(srv, [a])
    env = st.next()
    assert (env.code, env.error_ids, env.status) == ("ErrorNewEventStreamConnectionOpened", [a], "Closed")
    assert st.next() is None and st.ended


def test_stream_request_errors(ews, srv, streams):
    psid, _ = pull(ews, [dist("inbox")])
    good = streaming(ews, [dist("inbox")])
    env = streams(srv, [good, "bm90IGEgc3Vic2NyaXB0aW9u"]).next()
    assert (env.cls, env.code, env.error_ids, env.status) == \
        ("Error", "ErrorSubscriptionNotFound", ["bm90IGEgc3Vic2NyaXB0aW9u"], "Closed")
    env = streams(srv, [psid]).next()
    assert (env.code, env.error_ids) == ("ErrorInvalidSubscription", [psid])
    for minutes in (0, 31, "x"):
        status, _, out = ews.post(stream_request([good], minutes), envelope=False)
        assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post(stream_request([], 1), envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    assert not srv.subscriptions("streaming")[0]["connected"]


def test_missed_events(ews, srv, streams):
    srv.notify_config(event_log_limit=5)
    sid = streaming(ews, [dist("inbox")])
    psid, wm = pull(ews, [dist("inbox")])
    srv.deliver("Archive", subject="Irrelevant")         # 3 events nobody here wanted
    assert not srv.subscriptions("streaming")[0]["missed"]
    srv.deliver("Inbox", subject="One")
    srv.deliver("Inbox", subject="Two")                   # 9 events: some fell out unseen
    assert srv.subscriptions("streaming")[0]["missed"]
    env = streams(srv, [sid]).next()
    assert (env.code, env.error_ids, env.status) == ("ErrorMissedNotificationEvents", [sid], "Closed")
    assert srv.subscriptions("streaming") == []
    assert get_events(ews, psid, wm)[0] == "ErrorInvalidWatermark"


# ---- refusal modes, versions, faults ---------------------------------------------------------

def test_refusal_modes_and_old_versions(ews, srv, streams):
    sid = streaming(ews, [dist("inbox")])
    srv.notify_config(refuse="streaming")
    status, _, out = ews.post(subscribe_xml(kind="Streaming", folders=[dist("inbox")]))
    assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post(stream_request([sid], 1), envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    psid, _ = pull(ews, [dist("inbox")])                 # pull still works, as on Exchange 2007
    srv.notify_config(refuse="all")                      # a server without notifications
    for body in (subscribe_xml(folders=[dist("inbox")]), subscribe_xml(kind="Streaming", folders=[dist("inbox")]),
                 f"<m:GetEvents><m:SubscriptionId>{psid}</m:SubscriptionId><m:Watermark>x</m:Watermark>"
                 "</m:GetEvents>", f"<m:Unsubscribe><m:SubscriptionId>{psid}</m:SubscriptionId></m:Unsubscribe>"):
        status, _, out = ews.post(body)
        assert status == 500 and b"a:ErrorInvalidRequest" in out
    status, _, out = ews.post(stream_request([sid], 1), envelope=False)
    assert status == 500 and b"a:ErrorInvalidRequest" in out
    srv.notify_config(refuse="quota")                    # a policy that allows no subscription
    code, _, _, msg = subscribe(ews, kind="Pull", folders=[dist("inbox")])
    assert code == "ErrorExceededSubscriptionCount" and msg.get("ResponseClass") == "Error"
    assert subscribe(ews, kind="Streaming", folders=[dist("inbox")])[0] == "ErrorExceededSubscriptionCount"
    with pytest.raises(Exception):
        srv.notify_config(refuse="sometimes")
    srv.notify_config(refuse=None)
    old = ENVELOPE.replace("Exchange2013_SP1", "Exchange2010")
    status, _, out = ews.post((old % subscribe_xml(kind="Streaming", folders=[dist("inbox")])).encode(),
                              envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post((old % subscribe_xml(folders=[dist("inbox")])).encode(), envelope=False)
    assert status == 200 and b"NoError" in out
    assert streams(srv, [sid], version="Exchange2010_SP1").next().status == "OK"


def test_faults_hit_notification_operations(ews, srv, streams):
    srv.fault("http503", operation="Subscribe", retry_after=2)
    status, r, _ = ews.post(subscribe_xml(folders=[dist("inbox")]))
    assert status == 503 and r.getheader("Retry-After") == "2"
    sid, wm = pull(ews, [dist("inbox")])
    srv.fault("busy", operation="GetEvents", where="message", backoff_ms=700)
    code, _, _, _, msg = get_events(ews, sid, wm)
    assert code == "ErrorServerBusy" and b"BackOffMilliseconds" in ET.tostring(msg)
    ssid = streaming(ews, [dist("inbox")])
    srv.fault("http500", operation="GetStreamingEvents")
    status, _, _ = ews.post(stream_request([ssid], 1), envelope=False)
    assert status == 500
    srv.fault("reset_after", operation="GetStreamingEvents")
    st = streams(srv, [ssid])
    assert st.next().status == "OK" and st.next() is None and not st.ended
    srv.wait_subscribed("streaming", connected=False)
    iid = srv.deliver("Inbox", subject="After the reset")
    assert streams(srv, [ssid]).until_events(3)[0]["id"] == iid
    ops = srv.stats()["requests"]
    assert ops["GetStreamingEvents"] >= 3 and ops["Subscribe"] >= 3 and ops["GetEvents"] >= 1


# ---- an independent client ---------------------------------------------------------------------

def test_exchangelib_pull_and_streaming(srv):
    exchangelib = pytest.importorskip("exchangelib")
    from exchangelib import BASIC, DELEGATE, Account, Configuration, Credentials, Version
    from exchangelib.version import EXCHANGE_2013_SP1
    cfg = Configuration(service_endpoint=srv.ews_url, credentials=Credentials(srv.user, srv.password),
                        auth_type=BASIC, version=Version(build=EXCHANGE_2013_SP1))
    acc = Account("alice@example.com", config=cfg, autodiscover=False, access_type=DELEGATE)
    sid, wm = acc.inbox.subscribe_to_pull(timeout=5)
    iid = srv.deliver("Inbox", subject="exchangelib pull")
    [note] = list(acc.inbox.get_events(sid, wm))
    assert [type(e).__name__ for e in note.events] == ["CreatedEvent", "NewMailEvent", "ModifiedEvent"]
    assert note.events[0].item_id.id == iid and note.events[2].unread_count == srv.folder("Inbox")["unread"]
    acc.inbox.unsubscribe(sid)
    srv.notify_config(minute_s=1.0, keepalive_s=0.2)
    ssid = acc.inbox.subscribe_to_streaming()
    got = []

    def run():
        for n in acc.inbox.get_streaming_events(ssid, connection_timeout=1):
            got.extend(n.events)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    srv.wait_subscribed("streaming", connected=True)
    iid = srv.deliver("Inbox", subject="exchangelib streaming")
    t.join(10)
    assert not t.is_alive()                     # it stopped at ConnectionStatus Closed
    assert [type(e).__name__ for e in got] == ["CreatedEvent", "NewMailEvent", "ModifiedEvent"]
    assert got[1].item_id.id == iid
    acc.inbox.unsubscribe(ssid)
    exchangelib.close_connections()
