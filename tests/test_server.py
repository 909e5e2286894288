# Tests of the test EWS server (tests/server): hand-written SOAP exactly as
# docs/ews-subset.md shows it, sent over real HTTP, answers checked against
# the server's own view of the mailbox (control API).  The write operations
# are tested in test_server_write.py.

import base64
import http.client
import os
import re
import socket
import sys
import time
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))

from harness import ControlError, EwsServer  # noqa: E402

NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/",
      "t": "http://schemas.microsoft.com/exchange/services/2006/types",
      "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
      "e": "http://schemas.microsoft.com/exchange/services/2006/errors"}
T = "{%s}" % NS["t"]
M = "{%s}" % NS["m"]

ENVELOPE = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
               xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>
  <soap:Body>%s</soap:Body>
</soap:Envelope>"""

HIER_FIELDS = """<t:AdditionalProperties>
      <t:FieldURI FieldURI="folder:ParentFolderId"/>
      <t:FieldURI FieldURI="folder:DisplayName"/>
      <t:FieldURI FieldURI="folder:FolderClass"/>
      <t:FieldURI FieldURI="folder:TotalCount"/>
      <t:FieldURI FieldURI="folder:UnreadCount"/>
    </t:AdditionalProperties>"""

ITEM_FIELDS = """<t:AdditionalProperties>
      <t:FieldURI FieldURI="item:Subject"/>
      <t:FieldURI FieldURI="item:DateTimeReceived"/>
      <t:FieldURI FieldURI="item:DateTimeSent"/>
      <t:FieldURI FieldURI="item:Size"/>
      <t:FieldURI FieldURI="item:ItemClass"/>
      <t:FieldURI FieldURI="item:HasAttachments"/>
      <t:FieldURI FieldURI="message:From"/>
      <t:FieldURI FieldURI="message:IsRead"/>
      <t:FieldURI FieldURI="message:InternetMessageId"/>
    </t:AdditionalProperties>"""


def lenient_xml(data):
    """Parse like a liberal client: character references XML 1.0 forbids
    (Exchange sends them, e.g. &#x1;) become U+2400+n control pictures."""
    def fix(mo):
        cp = int(mo.group(1), 16)
        ok = cp in (9, 10, 13) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or cp >= 0x10000
        return mo.group(0) if ok else ("&#x%X;" % (0x2400 + cp)).encode()
    return ET.fromstring(re.sub(rb"&#x([0-9A-Fa-f]+);", fix, data))


class Ews:
    """A minimal keep-alive EWS client for hand-written requests."""

    def __init__(self, srv, user=None, password=None):
        self.srv = srv
        self.user = srv.user if user is None else user
        self.password = srv.password if password is None else password
        self.conn = None

    def connect(self):
        if self.srv.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.srv.port, timeout=30,
                                               context=self.srv.ssl_context())
        return http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)

    def post(self, body, auth=True, envelope=True, headers=None):
        data = (ENVELOPE % body if envelope else body)
        data = data.encode() if isinstance(data, str) else data
        h = {"Content-Type": "text/xml; charset=utf-8", "X-AnchorMailbox": "alice@example.com"}
        if auth and self.user is not None:
            h["Authorization"] = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self.connect()
            try:
                self.conn.request("POST", "/EWS/Exchange.asmx", body=data, headers=h)
                r = self.conn.getresponse()
                out = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, r, out
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise

    def call(self, body):
        status, r, out = self.post(body)
        assert status == 200, out[:2000]
        assert r.getheader("Content-Type").startswith("text/xml")
        return lenient_xml(out)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def messages(root):
    return root.find("s:Body", NS)[0].find("m:ResponseMessages", NS)


def get_folder_xml(ids, shape="IdOnly"):
    return (f"<m:GetFolder><m:FolderShape><t:BaseShape>{shape}</t:BaseShape></m:FolderShape>"
            f"<m:FolderIds>{ids}</m:FolderIds></m:GetFolder>")


def sync_hierarchy(ews, state=None):
    st = f"<m:SyncState>{state}</m:SyncState>" if state else ""
    root = ews.call(f"""<m:SyncFolderHierarchy>
  <m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>{HIER_FIELDS}</m:FolderShape>
  <m:SyncFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:SyncFolderId>{st}
</m:SyncFolderHierarchy>""")
    msg = messages(root)[0]
    assert msg.findtext("m:ResponseCode", namespaces=NS) == "NoError", ET.tostring(msg)[:500]
    assert msg.findtext("m:IncludesLastFolderInRange", namespaces=NS) == "true"
    changes = []
    for ch in msg.find("m:Changes", NS):
        kind = ch.tag[len(T):]
        if kind == "Delete":
            changes.append((kind, ch.find("t:FolderId", NS).get("Id"), None))
        else:
            f = ch[0]
            changes.append((kind, f.find("t:FolderId", NS).get("Id"), f))
    return changes, msg.findtext("m:SyncState", namespaces=NS)


def sync_items_raw(ews, folder_id, state=None, max_changes=512, fields=ITEM_FIELDS, extra=""):
    st = f"<m:SyncState>{state}</m:SyncState>" if state else ""
    return ews.call(f"""<m:SyncFolderItems>
  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>{fields}</m:ItemShape>
  <m:SyncFolderId><t:FolderId Id="{folder_id}"/></m:SyncFolderId>{st}{extra}
  <m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned>
  <m:SyncScope>NormalItems</m:SyncScope>
</m:SyncFolderItems>""")


def sync_items(ews, folder_id, state=None, max_changes=512, fields=ITEM_FIELDS):
    """One page: ([(kind, id, element)], new state, includes_last)."""
    msg = messages(sync_items_raw(ews, folder_id, state, max_changes, fields))[0]
    code = msg.findtext("m:ResponseCode", namespaces=NS)
    if code != "NoError":
        raise AssertionError(code)
    changes = []
    for ch in msg.find("m:Changes", NS):
        kind = ch.tag[len(T):]
        if kind in ("Delete", "ReadFlagChange"):
            changes.append((kind, ch.find("t:ItemId", NS).get("Id"), ch))
        else:
            changes.append((kind, ch[0].find("t:ItemId", NS).get("Id"), ch[0]))
    last = msg.findtext("m:IncludesLastItemInRange", namespaces=NS)
    assert last in ("true", "false")
    return changes, msg.findtext("m:SyncState", namespaces=NS), last == "true"


def sync_all(ews, folder_id, state=None, max_changes=512, fields=ITEM_FIELDS):
    out, pages = [], 0
    while True:
        changes, state, last = sync_items(ews, folder_id, state, max_changes, fields)
        assert len(changes) <= max_changes
        out += changes
        pages += 1
        if last:
            return out, state, pages
        assert changes, "a page that is not the last must carry changes"


def folder_id(srv, path):
    return srv.folder(path)["id"]


@pytest.fixture(scope="module")
def srv():
    with EwsServer(messages=600, seed=3) as s:
        yield s


@pytest.fixture
def ews(srv):
    c = Ews(srv)
    yield c
    c.close()


# ---- folders ------------------------------------------------------------------------------

def test_getfolder_distinguished_and_version_header(ews, srv):
    root = ews.call(get_folder_xml('<t:DistinguishedFolderId Id="msgfolderroot"/>'
                                   '<t:DistinguishedFolderId Id="inbox"/>'
                                   '<t:DistinguishedFolderId Id="tasks"/>', "Default"))
    info = root.find("s:Header", NS).find("t:ServerVersionInfo", NS)
    assert info.get("MajorVersion") == "15"
    msgs = list(messages(root))
    assert [m_.get("ResponseClass") for m_ in msgs] == ["Success", "Success", "Error"]
    assert msgs[2].findtext("m:ResponseCode", namespaces=NS) == "ErrorFolderNotFound"
    inbox = msgs[1].find("m:Folders", NS)[0]
    dump = srv.folder("Inbox")
    assert inbox.find("t:FolderId", NS).get("Id") == dump["id"]
    assert inbox.findtext("t:DisplayName", namespaces=NS) == "Inbox"
    assert int(inbox.findtext("t:TotalCount", namespaces=NS)) == dump["total"]
    assert int(inbox.findtext("t:UnreadCount", namespaces=NS)) == dump["unread"]
    assert int(inbox.findtext("t:ChildFolderCount", namespaces=NS)) == 2
    top = msgs[0].find("m:Folders", NS)[0]
    assert top.find("t:FolderId", NS).get("Id") == srv.mailbox()["folders"][1]["id"]


def test_getfolder_by_id_and_bad_ids(ews, srv):
    fid = folder_id(srv, "Inbox/Projects/2026")
    root = ews.call(get_folder_xml(f'<t:FolderId Id="{fid}"/><t:FolderId Id="not base64!"/>'
                                   f'<t:FolderId Id="{fid[:-8]}AAAAAA=="/>', "AllProperties"))
    msgs = list(messages(root))
    f = msgs[0].find("m:Folders", NS)[0]
    assert f.findtext("t:DisplayName", namespaces=NS) == "2026"
    assert f.find("t:ParentFolderId", NS).get("Id") == folder_id(srv, "Inbox/Projects")
    assert f.findtext("t:FolderClass", namespaces=NS) == "IPF.Note"
    assert msgs[1].findtext("m:ResponseCode", namespaces=NS) == "ErrorInvalidIdMalformed"
    assert msgs[2].findtext("m:ResponseCode", namespaces=NS) == "ErrorFolderNotFound"


def test_hierarchy_sync_full_and_incremental(ews, srv):
    changes, state = sync_hierarchy(ews)
    assert state.startswith("H4sI")
    assert all(k == "Create" for k, _, _ in changes)
    dump = {f["id"]: f for f in srv.mailbox()["folders"]}
    below = {fid for fid, f in dump.items() if f["distinguished"] not in ("root", "msgfolderroot")}
    assert {fid for _, fid, _ in changes} == below
    seen = {f["id"] for f in srv.mailbox()["folders"][:2]}
    for _, fid, elem in changes:                     # parents come before children
        parent = elem.find("t:ParentFolderId", NS).get("Id")
        assert parent in seen
        seen.add(fid)
        assert elem.findtext("t:DisplayName", namespaces=NS) == dump[fid]["name"]
    tags = {elem.findtext("t:DisplayName", namespaces=NS): elem.tag[len(T):] for _, _, elem in changes}
    assert tags["Calendar"] == "CalendarFolder" and tags["Contacts"] == "ContactsFolder"
    assert tags["Inbox"] == "Folder" and "Q1/Q2 Plans" in tags

    assert sync_hierarchy(ews, state)[0] == []
    new = srv.create_folder("Inbox", "Hier test")
    srv.rename_folder("Newsletters", "News letters")
    srv.move_folder("Inbox/Hier test", "Archive")
    changes, state2 = sync_hierarchy(ews, state)
    kinds = {(k, e.findtext("t:DisplayName", namespaces=NS)) for k, _, e in changes}
    assert kinds == {("Create", "Hier test"), ("Update", "News letters")}
    moved = [e for _, fid, e in changes if fid == new][0]
    assert moved.find("t:ParentFolderId", NS).get("Id") == folder_id(srv, "Archive")
    srv.delete_folder(new)
    changes, state3 = sync_hierarchy(ews, state2)
    assert changes == [("Delete", new, None)]
    srv.rename_folder("News letters", "Newsletters")
    assert [k for k, _, _ in sync_hierarchy(ews, state3)[0]] == ["Update"]


def test_findfolder_shallow_and_deep(ews, srv):
    def find(traversal, view=""):
        root = ews.call(f"""<m:FindFolder Traversal="{traversal}">
  <m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>{view}
  <m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds>
</m:FindFolder>""")
        rf = messages(root)[0].find("m:RootFolder", NS)
        return rf, [f.findtext("t:DisplayName", namespaces=NS) for f in rf.find("t:Folders", NS)]
    rf, names = find("Shallow")
    assert "Inbox" in names and "2026" not in names
    rf, deep = find("Deep")
    assert "2026" in deep and int(rf.get("TotalItemsInView")) == len(deep) == len(srv.mailbox()["folders"]) - 2
    rf, page = find("Deep", '<m:IndexedPageFolderView MaxEntriesReturned="5" Offset="5" BasePoint="Beginning"/>')
    assert page == deep[5:10] and rf.get("IncludesLastItemInRange") == "false" and rf.get("IndexedPagingOffset") == "10"


# ---- items ---------------------------------------------------------------------------------

def test_sync_items_paging_covers_folder(ews, srv):
    inbox = srv.folder("Inbox")
    changes, state, pages = sync_all(ews, inbox["id"], max_changes=37)
    assert pages == -(-inbox["total"] // 37)
    assert all(k == "Create" for k, _, _ in changes)
    assert [i for _, i, _ in changes] != [] and sorted(i for _, i, _ in changes) == sorted(inbox["items"])
    assert len({i for _, i, _ in changes}) == len(changes)
    assert sync_items(ews, inbox["id"], state)[0] == []
    # fields of the contract are present, and nothing unrequested
    by_id = {it["id"]: it for it in srv.mailbox()["items"]}
    for _, iid, e in changes[:50]:
        it = by_id[iid]
        assert e.tag in (T + "Message", T + "MeetingRequest")
        assert e.findtext("t:ItemClass", namespaces=NS) == it["item_class"]
        assert int(e.findtext("t:Size", namespaces=NS)) == it["size"] != it["mime_len"]
        assert e.findtext("t:DateTimeReceived", namespaces=NS) == it["received_iso"]
        assert e.findtext("t:IsRead", namespaces=NS) == ("true" if it["is_read"] else "false")
        assert e.find("t:From/t:Mailbox/t:EmailAddress", NS).text == it["from_addr"]
        assert e.findtext("t:InternetMessageId", namespaces=NS) == it["message_id"]
        assert e.find("t:Body", NS) is None and e.find("t:MimeContent", NS) is None
    idonly, _, _ = sync_items(ews, inbox["id"], None, 5, fields="")
    assert [len(e) for _, _, e in idonly] == [1] * 5


def test_sync_items_incremental_changes(ews, srv):
    fid = folder_id(srv, "Inbox/Receipts")
    _, state, _ = sync_all(ews, fid)
    new = srv.deliver("Inbox/Receipts", subject="Fresh", body="hello")
    old = srv.folder("Inbox/Receipts")["items"][-1]
    srv.mark_read(old, not srv.item_info(old)["is_read"])
    changes, state, last = sync_items(ews, fid, state)
    assert last and [(k, i) for k, i, _ in changes] == [("Create", new), ("ReadFlagChange", old)]
    srv.update_item(new, "Fresh, renamed")
    srv.mark_read(new, True)                       # content + read change: one Update
    changes, state, _ = sync_items(ews, fid, state)
    assert [(k, i) for k, i, _ in changes] == [("Update", new)]
    assert changes[0][2].findtext("t:Subject", namespaces=NS) == "Fresh, renamed"
    assert changes[0][2].findtext("t:IsRead", namespaces=NS) == "true"
    moved = srv.move(new, "Archive")
    assert moved != new
    srv.delete(old)
    ghost = srv.deliver("Inbox/Receipts", subject="Blink")
    srv.delete(ghost)                              # created and deleted between syncs: nothing
    changes, state, _ = sync_items(ews, fid, state)
    assert [(k, i) for k, i, _ in changes] == [("Delete", new), ("Delete", old)]
    assert sync_items(ews, fid, state)[0] == []
    arch = [i for k, i, _ in sync_all(ews, folder_id(srv, "Archive"))[0] if k == "Create"]
    assert moved in arch and new not in arch


def test_paging_while_the_folder_changes(ews, srv):
    fid = srv.create_folder("", "Paging")
    ids = [srv.deliver(fid, subject=f"m{i}") for i in range(30)]
    changes, state, last = sync_items(ews, fid, None, 10)
    assert not last and [i for _, i, _ in changes] == ids[:10]
    srv.mark_read(ids[3], True)                    # already given: comes again as ReadFlagChange
    srv.mark_read(ids[20], True)                   # not given yet: still one Create, later
    srv.delete(ids[25])                            # never given: never mentioned
    rest, state, _ = sync_all(ews, fid, state, 10)
    got = [(k, i) for k, i, _ in rest]
    assert ("ReadFlagChange", ids[3]) in got
    creates = [i for k, i, _ in rest if k == "Create"]
    assert sorted(creates) == sorted(set(ids[10:]) - {ids[25]})
    assert all(k in ("Create", "ReadFlagChange") for k, _ in got)
    assert [e.findtext("t:IsRead", namespaces=NS) for k, i, e in rest if i == ids[20]] == ["true"]


def test_sync_errors(ews, srv):
    fid = folder_id(srv, "Junk Email")
    _, state, _ = sync_items(ews, fid)
    for bad in ("garbage", base64.b64encode(b"not gzip").decode(), state[:-8] + "AAAAAAA="):
        msg = messages(sync_items_raw(ews, fid, bad))[0]
        assert msg.get("ResponseClass") == "Error"
        assert msg.findtext("m:ResponseCode", namespaces=NS) == "ErrorInvalidSyncStateData"
        assert msg.find("m:SyncState", NS) is not None
    other = folder_id(srv, "Drafts")               # a state is bound to its folder
    msg = messages(sync_items_raw(ews, other, state))[0]
    assert msg.findtext("m:ResponseCode", namespaces=NS) == "ErrorInvalidSyncStateData"
    status, _, out = ews.post(f"""<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:SyncFolderId><t:FolderId Id="{fid}"/></m:SyncFolderId><m:MaxChangesReturned>513</m:MaxChangesReturned>
</m:SyncFolderItems>""")
    assert status == 500 and b"ErrorSchemaValidation" in out
    msg = messages(sync_items_raw(ews, fid[:-10] + "AAAAAAAA=="))[0]
    assert msg.findtext("m:ResponseCode", namespaces=NS) == "ErrorSyncFolderNotFound"


def test_invalid_sync_fault_invalidates_states(ews, srv):
    fid = folder_id(srv, "Sent Items")
    _, state, _ = sync_all(ews, fid)
    _, hstate = sync_hierarchy(ews)
    srv.invalidate_sync_states()
    for msg in (messages(sync_items_raw(ews, fid, state))[0],):
        assert msg.findtext("m:ResponseCode", namespaces=NS) == "ErrorInvalidSyncStateData"
    root = ews.call(f"""<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
  <m:SyncState>{hstate}</m:SyncState></m:SyncFolderHierarchy>""")
    assert messages(root)[0].findtext("m:ResponseCode", namespaces=NS) == "ErrorInvalidSyncStateData"
    again, _, _ = sync_all(ews, fid)               # a fresh sync works and gives the same items
    assert sorted(i for _, i, _ in again) == sorted(srv.folder("Sent Items")["items"])


def test_getitem_mime_multi_id_with_errors(ews, srv):
    inbox = srv.folder("Inbox")["items"]
    a, b = inbox[0], inbox[-1]
    missing = a[:-12] + "AAAAAAAAAA=="
    root = ews.call(f"""<m:GetItem>
  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape>
  <m:ItemIds><t:ItemId Id="{a}"/><t:ItemId Id="{missing}"/><t:ItemId Id="%%%"/><t:ItemId Id="{b}" ChangeKey="x"/></m:ItemIds>
</m:GetItem>""")
    msgs = list(messages(root))
    assert [x.findtext("m:ResponseCode", namespaces=NS) for x in msgs] == \
        ["NoError", "ErrorItemNotFound", "ErrorInvalidIdMalformed", "NoError"]
    assert msgs[1].find("m:Items", NS) is not None
    for msg, iid in ((msgs[0], a), (msgs[3], b)):
        item = msg.find("m:Items", NS)[0]
        assert item.find("t:ItemId", NS).get("Id") == iid
        mc = item.find("t:MimeContent", NS)
        assert mc.get("CharacterSet") == "UTF-8"
        assert max(len(line) for line in mc.text.split("\n")) <= 76
        assert base64.b64decode("".join(mc.text.split())) == srv.item_mime(iid)


def test_mime_round_trip_exact_bytes(ews, srv):
    raw = (b"From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\r\nTo: alice@example.com\r\n"
           b"Subject: round trip\r\nMessage-ID: <rt@example.com>\r\n\r\nbody \xff\x00 bytes\n bare LF\r\n")
    iid = srv.deliver("Inbox", mime=raw)
    assert srv.item_mime(iid) == raw
    root = ews.call(f"""<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
  <t:AdditionalProperties><t:FieldURI FieldURI="item:MimeContent"/><t:FieldURI FieldURI="item:Subject"/>
  <t:FieldURI FieldURI="message:From"/></t:AdditionalProperties></m:ItemShape>
  <m:ItemIds><t:ItemId Id="{iid}"/></m:ItemIds></m:GetItem>""")
    item = messages(root)[0].find("m:Items", NS)[0]
    assert base64.b64decode(item.findtext("t:MimeContent", namespaces=NS)) == raw
    assert item.findtext("t:Subject", namespaces=NS) == "round trip"
    assert item.findtext("t:From/t:Mailbox/t:Name", namespaces=NS) == "Jürgen"
    big = srv.markers()
    big_id = [i for i in srv.folder("Inbox")["items"] if srv.item_info(i)["subject"] == "Big attachment"][0]
    root = ews.call(f"""<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
  <t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape>
  <m:ItemIds><t:ItemId Id="{big_id}"/></m:ItemIds></m:GetItem>""")
    data = base64.b64decode(messages(root)[0].find("m:Items/t:Message/t:MimeContent", NS).text)
    assert data == srv.item_mime(big_id) and len(data) > 300 * 1024
    assert big["invoice 4711"]


def test_finditem_paging(ews, srv):
    fid = folder_id(srv, "Inbox/Projects")
    total = srv.folder("Inbox/Projects")["total"]
    got, offset = [], 0
    while True:
        root = ews.call(f"""<m:FindItem Traversal="Shallow">
  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
  <t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties></m:ItemShape>
  <m:IndexedPageItemView MaxEntriesReturned="4" Offset="{offset}" BasePoint="Beginning"/>
  <m:ParentFolderIds><t:FolderId Id="{fid}"/></m:ParentFolderIds></m:FindItem>""")
        rf = messages(root)[0].find("m:RootFolder", NS)
        assert int(rf.get("TotalItemsInView")) == total
        got += [e.find("t:ItemId", NS).get("Id") for e in rf.find("t:Items", NS)]
        offset = int(rf.get("IndexedPagingOffset"))
        if rf.get("IncludesLastItemInRange") == "true":
            break
    assert got == srv.folder("Inbox/Projects")["items"]      # newest first, like Exchange


# ---- generator content -------------------------------------------------------------------

def test_hostile_subjects_reach_the_wire(ews, srv):
    changes, _, _ = sync_all(ews, folder_id(srv, "Inbox"))
    subjects = {e.findtext("t:Subject", namespaces=NS) for k, _, e in changes}
    for s in ("../x", "a/b", ".hidden", "", "   ", "....", ". . .", "Grüße aus Köln", "Weekly sync",
              'He said "hi" \\ <b>&amp;</b>', "multi\nline"):
        assert s in subjects, s
    assert "ctrl\u2401char\ttab\x7fdel" in subjects     # &#x1; on the wire, like Exchange
    assert any(s is not None and len(s.encode()) == 1000 for s in subjects)
    no_subject = [e for k, _, e in changes if e.find("t:Subject", NS) is None]
    assert len(no_subject) == 1
    weekly = [e.findtext("t:DateTimeReceived", namespaces=NS)[:16] for k, _, e in changes
              if e.findtext("t:Subject", namespaces=NS) == "Weekly sync"]
    assert len(weekly) == 3 and len(set(weekly)) == 1


def test_strip_mode_sends_valid_xml():
    with EwsServer(messages=40, xml_invalid_chars="strip") as s:
        ews = Ews(s)
        status, _, out = ews.post(f"""<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>{ITEM_FIELDS}
  </m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId>
  <m:MaxChangesReturned>512</m:MaxChangesReturned></m:SyncFolderItems>""")
        assert status == 200 and b"&#x1;" not in out
        subjects = {e.text for e in ET.fromstring(out).iter(T + "Subject")}
        assert "ctrlchar\ttab\x7fdel" in subjects
        ews.close()


def test_generator_2000_messages():
    from generate import generate
    from mailbox import Mailbox
    mb1, mb2, mb3 = Mailbox("g"), Mailbox("g"), Mailbox("g")
    info = generate(mb1, 2000, seed=11)
    generate(mb2, 2000, seed=11)
    generate(mb3, 2000, seed=12)
    assert len(mb1.items) == 2000
    mimes = lambda mb: sorted(it.mime for it in mb.items.values())  # noqa: E731
    assert mimes(mb1) == mimes(mb2) and mimes(mb1) != mimes(mb3)
    with_invoice = [it for it in mb1.items.values() if b"invoice 4711" in it.mime]
    assert [it.id for it in with_invoice] == info["markers"]["invoice 4711"]
    assert len(info["markers"]["quarterly-needle-7f3a"]) == 3
    for it in mb1.items.values():
        assert b"\n" not in it.mime.replace(b"\r\n", b"")
        assert b"\r\nMessage-ID: <" in it.mime and b"\r\nDate: " in it.mime
    subjects = [it.subject for it in mb1.items.values()]
    assert any(s and s.startswith("=?") is False and not s.isascii() for s in subjects)
    kinds = b"".join(it.mime[:600] for it in mb1.items.values())
    for ct in (b"multipart/alternative", b"multipart/mixed", b"charset=utf-8", b"=?UTF-8?B?", b"=?iso-8859-1?Q?"):
        assert ct in kinds or any(ct in it.mime for it in mb1.items.values()), ct
    received = [it.received for it in mb1.items.values()]
    assert max(received) - min(received) > 365 * 86400
    assert len({it.folder.id for it in mb1.items.values()}) >= 8


# ---- HTTP behaviour and faults ---------------------------------------------------------------

def test_auth_401_and_keepalive(srv):
    ews = Ews(srv, password="wrong")
    status, r, _ = ews.post(get_folder_xml('<t:DistinguishedFolderId Id="inbox"/>'))
    assert status == 401 and r.getheader("WWW-Authenticate").startswith('Basic realm="')
    status, r, _ = ews.post(get_folder_xml('<t:DistinguishedFolderId Id="inbox"/>'), auth=False)
    assert status == 401
    srv.reset_stats()
    good = Ews(srv)
    for _ in range(5):
        good.call(get_folder_xml('<t:DistinguishedFolderId Id="inbox"/>'))
    st = srv.stats()
    assert st["requests"]["GetFolder"] == 5 and st["connections"] == 1
    good.close()
    ews.close()


def test_busy_fault_with_backoff(ews, srv):
    srv.reset_stats()
    srv.fault("busy", count=1, operation="GetItem", backoff_ms=1234)
    ews.call(get_folder_xml('<t:DistinguishedFolderId Id="inbox"/>'))       # not GetItem: unaffected
    body = f"""<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:ItemIds><t:ItemId Id="{srv.folder('Inbox')['items'][0]}"/></m:ItemIds></m:GetItem>"""
    status, _, out = ews.post(body)
    assert status == 500
    fault = ET.fromstring(out).find("s:Body/s:Fault", NS)
    assert fault.findtext("faultcode").endswith(":ErrorServerBusy")
    assert fault.findtext("detail/e:ResponseCode", namespaces=NS) == "ErrorServerBusy"
    assert fault.find("detail/t:MessageXml/t:Value", NS).get("Name") == "BackOffMilliseconds"
    assert fault.findtext("detail/t:MessageXml/t:Value", namespaces=NS) == "1234"
    assert ews.post(body)[0] == 200
    srv.fault("busy", operation="GetItem", where="message", backoff_ms=50)
    msg = messages(ews.call(body))[0]
    assert msg.findtext("m:ResponseCode", namespaces=NS) == "ErrorServerBusy"
    assert msg.findtext("m:MessageXml/t:Value", namespaces=NS) == "50"
    st = srv.stats()
    assert [r["status"] for r in st["recent"]] == [200, 500, 200, 200]
    assert st["recent"][1]["fault"] == "busy"


def test_getitem_batch_cost_counters_and_busy_per_item(ews, srv):
    """Knobs for prefetch tests: a per-item GetItem cost, counters of the ids
    asked for, and ErrorServerBusy answered for every item of a batch."""
    ids = srv.folder("Inbox")["items"][:5]
    body = ("<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>"
            "<t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape><m:ItemIds>"
            + "".join(f'<t:ItemId Id="{i}"/>' for i in ids) + "</m:ItemIds></m:GetItem>")
    srv.reset_stats()
    srv.item_cost(40)
    try:
        t0 = time.monotonic()
        msgs = messages(ews.call(body))
        took = time.monotonic() - t0
    finally:
        srv.item_cost(0)
    assert len(msgs) == 5 and took >= 0.2                 # 5 items x 40 ms
    assert all(m.get("ResponseClass") == "Success" for m in msgs)
    st = srv.stats()
    assert st["get_item_ids"] == 5 and st["get_item_max"] == 5 and st["get_item_peak"] == 1
    srv.fault("busy", operation="GetItem", where="message", backoff_ms=70)
    msgs = messages(ews.call(body))
    assert [m.findtext("m:ResponseCode", namespaces=NS) for m in msgs] == ["ErrorServerBusy"] * 5
    assert srv.stats()["get_item_ids"] == 5                 # refused: no work done


def test_http_faults(srv):
    ews = Ews(srv)
    req = get_folder_xml('<t:DistinguishedFolderId Id="inbox"/>')
    srv.fault("http503", retry_after=7)
    status, r, _ = ews.post(req)
    assert status == 503 and r.getheader("Retry-After") == "7"
    srv.fault("http429")
    assert ews.post(req)[0] == 429
    srv.fault("http500")
    status, r, out = ews.post(req)
    assert status == 500 and b"Fault" not in out
    srv.fault("auth")
    assert ews.post(req)[0] == 401
    srv.fault("garbage")
    status, _, out = ews.post(req)
    with pytest.raises(ET.ParseError):
        ET.fromstring(out)
    srv.fault("slow", ms=300)
    t0 = time.monotonic()
    assert ews.post(req)[0] == 200
    assert time.monotonic() - t0 >= 0.29
    for kind in ("reset", "truncate"):
        srv.fault(kind)
        conn = ews.connect()
        conn.request("POST", "/EWS/Exchange.asmx", body=(ENVELOPE % req).encode(),
                     headers={"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()})
        with pytest.raises((http.client.HTTPException, ConnectionError, socket.error)):
            conn.getresponse().read()
        conn.close()
    assert ews.post(req)[0] == 200
    ews.close()


def test_bad_requests(srv):
    ews = Ews(srv)
    status, _, out = ews.post("<m:FrobnicateItem/>")
    assert status == 500 and b"ErrorInvalidRequest" in out
    status, _, out = ews.post("<not-xml", envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post(get_folder_xml('<t:DistinguishedFolderId Id="inbox"/>').replace(
        "<m:FolderShape>", "<m:FolderShape><t:BaseShape>Bogus</t:BaseShape>"))
    assert status == 500
    assert ews.post(b"x" * (11 * 1024 * 1024), envelope=False)[0] == 413
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    ews.close()
    conn = ews.connect()
    conn.request("GET", "/EWS/Exchange.asmx")
    assert conn.getresponse().status == 405
    conn.close()
    other_prefixes = """<?xml version="1.0"?><E:Envelope xmlns:E="http://schemas.xmlsoap.org/soap/envelope/">
<E:Body><GetFolder xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
 xmlns:x="http://schemas.microsoft.com/exchange/services/2006/types">
<FolderShape><x:BaseShape>IdOnly</x:BaseShape></FolderShape>
<FolderIds><x:DistinguishedFolderId Id="inbox"/></FolderIds></GetFolder></E:Body></E:Envelope>"""
    status, _, out = ews.post(other_prefixes, envelope=False)
    assert status == 200 and b"NoError" in out
    with pytest.raises(ControlError):
        srv.delete("no-such-id")
    ews.close()


def test_tls_and_persistence_across_restart(tmp_path):
    state_file = str(tmp_path / "mailbox.jsonl")
    s = EwsServer(messages=80, seed=5, tls=True, state=state_file)
    try:
        s.start()
        assert s.ews_url.startswith("https://127.0.0.1:")
        ews = Ews(s)
        inbox = folder_id(s, "Inbox")
        before, state, _ = sync_all(ews, inbox)
        new = s.deliver("Inbox", subject="Survives restart")
        s.mark_read(before[0][1], True)
        _, hstate = sync_hierarchy(ews)
        ews.close()
        s.kill()                                   # a crash: the journal must be enough
        s.start()
        ews = Ews(s)
        changes, state, _ = sync_items(ews, inbox, state)
        kinds = [(k, i) for k, i, _ in changes]
        assert ("Create", new) in kinds
        assert s.item_info(new)["subject"] == "Survives restart"
        assert sync_hierarchy(ews, hstate)[0] == []
        ews.close()
    finally:
        s.cleanup()


def test_journal_replay_restores_everything(tmp_path):
    import persist
    from control import dump
    from generate import generate
    from mailbox import Mailbox
    path = str(tmp_path / "state.jsonl")
    mb = Mailbox("replay")
    generate(mb, 120, seed=2)
    persist.snapshot(mb, path)
    inbox = mb.folder_by_path("Inbox")
    _, state, _ = mb.sync_items(inbox, "", 512)
    _, hstate, _ = mb.sync_hierarchy(mb.msgroot, "")
    items = mb.items_sorted(inbox)
    mb.set_read(items[0], not items[0].is_read)
    mb.update_item(items[1], "Renamed ✅")
    mb.move_item(items[2], mb.folder_by_path("Archive"))
    mb.delete_item(items[3])
    from control import build_mime
    mb.add_item(inbox, build_mime("New one", "body"))
    f = mb.create_folder(mb.folder_by_path("Inbox/Projects"), "Sub")
    g = mb.create_folder(f, "Subsub")
    mb.add_item(g, build_mime("Deep", "x"))
    mb.rename_folder(mb.folder_by_path("Newsletters"), "News")
    mb.move_folder(mb.folder_by_path("Empty"), mb.folder_by_path("Archive"))
    mb.delete_folder(f)
    with open(path, "a") as out:
        out.write('{"t": "i", "torn')                  # a crash in the middle of a line
    back = persist.load(path)
    assert dump(back) == dump(mb)
    assert (back.counter, back.epoch, back.instance, back.markers) == (mb.counter, mb.epoch, mb.instance, mb.markers)
    a = mb.sync_items(inbox, state, 512)
    b = back.sync_items(back.folder_by_path("Inbox"), state, 512)
    assert [(k, o.id, o.change_key) for k, o in a[0]] == [(k, o.id, o.change_key) for k, o in b[0]]
    assert [k for k, _ in a[0]] == ["read", "update", "delete", "delete", "create"]
    ha = mb.sync_hierarchy(mb.msgroot, hstate)[0]
    hb = back.sync_hierarchy(back.msgroot, hstate)[0]
    assert [(k, o.id) for k, o in ha] == [(k, o.id) for k, o in hb]
    assert sorted(k for k, _ in ha) == ["update", "update"]
    # new ids after the restart do not collide with old ones
    n1 = mb.add_item(inbox, build_mime("after", "x"))
    n2 = back.add_item(back.folder_by_path("Inbox"), build_mime("after", "x"))
    assert n1.id == n2.id and n1.id not in {it.id for it in items}


def test_mutated_requests_never_break_the_server(srv):
    ews = Ews(srv)
    fid = folder_id(srv, "Inbox")
    iid = srv.folder("Inbox")["items"][0]
    seeds = [ENVELOPE % f"""<m:SyncFolderItems><m:ItemShape><t:BaseShape>Default</t:BaseShape>{ITEM_FIELDS}
  </m:ItemShape><m:SyncFolderId><t:FolderId Id="{fid}"/></m:SyncFolderId>
  <m:MaxChangesReturned>3</m:MaxChangesReturned></m:SyncFolderItems>""",
             ENVELOPE % f"""<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape>
  <t:BodyType>HTML</t:BodyType></m:ItemShape><m:ItemIds><t:ItemId Id="{iid}"/></m:ItemIds></m:GetItem>""",
             ENVELOPE % """<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape>
  </m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="2" Offset="1" BasePoint="End"/>
  <m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="item:Subject"/></t:FieldOrder></m:SortOrder>
  <m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>"""]
    import random
    rnd = random.Random(5)
    for seed in seeds:
        assert ews.post(seed, envelope=False)[0] == 200
        for _ in range(150):
            b = bytearray(seed.encode())
            for _ in range(rnd.randint(1, 4)):
                op = rnd.random()
                pos = rnd.randrange(len(b))
                if op < 0.4:
                    del b[pos:pos + rnd.randint(1, 40)]
                elif op < 0.7:
                    b[pos:pos] = rnd.choice([b"<", b"&", b'"', b"-1", b"99999999999", b"\xff", b"</m:x>", b"Id"])
                else:
                    b[pos] = rnd.randrange(256)
            status, _, _ = ews.post(bytes(b), envelope=False)
            assert status in (200, 500)
    assert ews.post(seeds[0], envelope=False)[0] == 200
    assert "internal error" not in srv.log_text()
    ews.close()


# ---- ResolveNames (the address book, shared with ActiveSync ResolveRecipients) -------------

def test_resolve_names_agrees_with_activesync(ews, srv):
    from eas_client import E, EasClient
    from wbxml import children, text

    # the address book: the owner and every sender of the mailbox
    book = {"alice@example.com": "Alice Example"}
    for it in srv.mailbox()["items"]:
        if it["from_addr"]:
            book.setdefault(it["from_addr"].lower(), it["from_name"] or it["from_addr"])

    def expected(q):
        q = q.lower()
        if q in book:
            return [q]
        return sorted(a for a, n in book.items()
                      if a.startswith(q) or any(w.startswith(q) for w in n.lower().replace(",", " ").split()))

    def ews_resolve(q):
        msg = messages(ews.call(f'<m:ResolveNames ReturnFullContactData="false">'
                                f'<m:UnresolvedEntry>{q}</m:UnresolvedEntry></m:ResolveNames>'))[0]
        people = [(mb.findtext("t:Name", namespaces=NS), mb.findtext("t:EmailAddress", namespaces=NS),
                   mb.findtext("t:MailboxType", namespaces=NS))
                  for mb in msg.findall("m:ResolutionSet/t:Resolution/t:Mailbox", NS)]
        return msg.get("ResponseClass"), msg.findtext("m:ResponseCode", namespaces=NS), people

    c = EasClient.from_url(srv.eas_url, srv.user, srv.password)

    def eas_resolve(q):
        r = c.ok("ResolveRecipients", E("ResolveRecipients:ResolveRecipients", [E("ResolveRecipients:To", q)]))
        resp = children(r.body, "ResolveRecipients:Response")[0]
        return (text(resp, "ResolveRecipients:Status"),
                [(text(x, "ResolveRecipients:DisplayName"), text(x, "ResolveRecipients:EmailAddress"))
                 for x in children(resp, "ResolveRecipients:Recipient")])

    assert ews_resolve("alice@example.com") == ("Success", "NoError",
                                                [("Alice Example", "alice@example.com", "Mailbox")])
    smiths = expected("smith")
    assert len(smiths) >= 2, smiths            # Bob Smith, "Smith, Erin" in the generated corpus
    cls, code, people = ews_resolve("smith")
    assert (cls, code) == ("Warning", "ErrorNameResolutionMultipleResults")
    assert [a for _, a, _ in people] == smiths
    assert all(n == book[a.lower()] and t == "Mailbox" for n, a, t in people)
    assert eas_resolve("smith") == ("2", [(n, a) for n, a, _ in people])
    assert ews_resolve("nobody-at-all") == ("Error", "ErrorNameResolutionNoResults", [])
    assert eas_resolve("nobody-at-all") == ("4", [])
    # an exact address wins over prefixes, on both
    assert ews_resolve("bob@example.com")[2] == [("Bob Smith", "bob@example.com", "Mailbox")]
    assert eas_resolve("bob@example.com") == ("1", [("Bob Smith", "bob@example.com")])
