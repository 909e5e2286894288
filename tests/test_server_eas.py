# Protocol tests of the test server's ActiveSync 16.1 front-end (tests/server/eas.py)
# with the Python EAS client (tests/server/eas_client.py): every command, the
# SyncKey sequence and status 3, paging with MoreAvailable, byte-exact MIME,
# changes made by the device and by others, Ping wake-up on delivery, provisioning
# and the fault knobs. The answers are checked against the mailbox as the server
# keeps it (control API), so EWS and EAS are known to show one mailbox.

import base64
import os
import socket
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "server"))

import wbxml  # noqa: E402
from eas_client import E, EasClient, body_data, collection, mime_options  # noqa: E402
from harness import EwsServer  # noqa: E402
from wbxml import child, children, text  # noqa: E402

DEFAULTS = dict(versions=["2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1"], provision="none", policy=True,
                min_heartbeat=60, max_heartbeat=3540, max_folders=300, empty_sync=True, string_data=False,
                max_window=512)


@pytest.fixture(scope="module")
def srv():
    with EwsServer(messages=40, seed=11) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(srv):
    srv.clear_faults()
    srv.eas_config(**DEFAULTS)
    yield
    srv.clear_faults()


def new_client(srv, version="16.1"):
    return EasClient.from_url(srv.eas_url, srv.user, srv.password, version=version,
                              device_id="T" + os.urandom(6).hex().upper())


@pytest.fixture
def c(srv):
    cl = new_client(srv)
    cl.ids = cl.folders()
    return cl


def mime_of(srv, item_id):
    return srv.item_mime(item_id)


def server_mimes(srv, path):
    return {base64.b64decode(i["mime_b64"]) for i in srv.mailbox(mime=True)["items"] if i["folder_path"] == path}


def sid_of(c, srv, cid, item_id):
    """The ServerId under which the device holds the item with this EWS id (by exact MIME)."""
    want = srv.item_mime(item_id)
    adds, _, _, _ = c.sync_all(cid, key="0")
    return next(s for s, a in adds.items() if body_data(a) == want)


def status_of(body, cid):
    return text(collection(body, cid), "AirSync:Status")


# ---- HTTP level, OPTIONS, versions ----------------------------------------------------

def test_options_and_version_checks(srv):
    c = new_client(srv)
    o = c.options()
    assert o["status"] == 200
    assert o["versions"][-1] == "16.1" and "14.1" in o["versions"]
    for cmd in ("Sync", "FolderSync", "Ping", "ItemOperations", "SendMail", "MoveItems", "Provision",
                "FolderCreate", "FolderUpdate", "FolderDelete", "ResolveRecipients"):
        assert cmd in o["commands"]
    fs = E("FolderHierarchy:FolderSync", [E("FolderHierarchy:SyncKey", "0")])
    assert c.cmd("FolderSync", fs, headers={"MS-ASProtocolVersion": None}).status == 400
    assert c.cmd("FolderSync", fs, headers={"MS-ASProtocolVersion": "17.0"}).status == 400
    assert c.cmd("Bogus", fs).status == 501
    bad = EasClient.from_url(srv.eas_url, srv.user, "wrong")
    assert bad.cmd("FolderSync", fs).status == 401
    # a server playing Exchange 2010: 16.1 refused, 14.1 served
    srv.eas_config(versions=["12.1", "14.0", "14.1"])
    assert c.options()["versions"] == ["12.1", "14.0", "14.1"]
    assert c.cmd("FolderSync", fs).status == 400
    assert new_client(srv, "14.1").folder_sync("0")["status"] == "1"
    # bad WBXML: status 102 in the command's own element (14.0+)
    r = c.cmd("FolderSync", b"\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30", headers={"MS-ASProtocolVersion": "14.1"})
    assert r.status == 200 and text(r.body, "FolderHierarchy:Status") == "102"


# ---- Provision ---------------------------------------------------------------------

def test_provision_two_rounds_449_and_reprovision(srv):
    srv.eas_config(provision="449")
    c = new_client(srv)
    fs = E("FolderHierarchy:FolderSync", [E("FolderHierarchy:SyncKey", "0")])
    assert c.cmd("FolderSync", fs).status == 449
    # round 1: the policy and a temporary key
    pol = E("Provision:Policies", [E("Provision:Policy", [E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")])])
    r = c.ok("Provision", E("Provision:Provision", [pol]))
    p = child(child(r.body, "Provision:Policies"), "Provision:Policy")
    assert text(r.body, "Provision:Status") == "1" and text(p, "Provision:Status") == "1"
    assert wbxml.find(p, "Provision:EASProvisionDoc")
    temp = text(p, "Provision:PolicyKey")
    c.policy_key = temp
    assert c.cmd("FolderSync", fs).status == 449             # a temporary key is no key
    # a wrong acknowledgement is refused (policy status 5)
    ack = lambda k: E("Provision:Provision", [E("Provision:Policies", [E("Provision:Policy", [  # noqa: E731
        E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"), E("Provision:PolicyKey", k),
        E("Provision:Status", "1")])])])
    r = c.ok("Provision", ack("12345"))
    assert text(wbxml.find(r.body, "Provision:Policy")[0], "Provision:Status") == "5"
    r = c.ok("Provision", ack(temp))
    final = text(wbxml.find(r.body, "Provision:Policy")[0], "Provision:PolicyKey")
    assert final and final != temp and not wbxml.find(r.body, "Provision:Data")
    c.policy_key = final
    assert c.folder_sync("0")["status"] == "1"
    # the reprovision fault: 449 and the key is gone; provisioning again restores access
    srv.eas_config(provision="none")
    srv.fault("reprovision", operation="FolderSync")
    assert c.cmd("FolderSync", fs).status == 449
    assert c.cmd("FolderSync", fs).status == 449             # revoked even though not required
    assert c.provision() not in (None, final)
    assert c.folder_sync("0")["status"] == "1"
    # status mode (14.0+): 142 without a key, 144 with a wrong one
    srv.eas_config(provision="status")
    d = new_client(srv, "14.1")
    r = d.cmd("FolderSync", fs)
    assert r.status == 200 and text(r.body, "FolderHierarchy:Status") == "142"
    d.policy_key = "999"
    assert text(d.cmd("FolderSync", fs).body, "FolderHierarchy:Status") == "144"
    d.provision()
    assert d.folder_sync("0")["status"] == "1"
    # no policy at all (like SOGo)
    srv.eas_config(policy=False)
    assert new_client(srv).provision() is None


# ---- FolderSync and folder commands ---------------------------------------------------

def test_folder_sync_hierarchy_and_incremental(srv):
    c = new_client(srv)
    fs = c.folder_sync("0")
    assert fs["status"] == "1"
    by_id = {f["id"]: f for f in fs["add"]}
    types = {f["name"]: f["type"] for f in fs["add"]}
    assert types["Inbox"] == 2 and types["Drafts"] == 3 and types["Deleted Items"] == 4
    assert types["Sent Items"] == 5 and types["Outbox"] == 6 and types["Calendar"] == 8
    assert types["Contacts"] == 9 and types["Archive"] == 12
    view = {f["path"] for f in srv.mailbox()["folders"] if f["path"]}
    paths = set()
    for f in fs["add"]:
        parts, g = [], f
        while g is not None:
            parts.append(g["name"])
            g = by_id.get(g["parent"])
        paths.add("/".join(reversed(parts)))
    assert paths == view
    # parents come before their children
    seen = {"0"}
    for f in fs["add"]:
        assert f["parent"] in seen
        seen.add(f["id"])
    key = c.hier_key
    assert c.folder_sync()["add"] == [] and c.hier_key == key      # nothing new: same key
    # changes made elsewhere arrive as Add / Update / Delete
    srv.create_folder("Archive", "Fresh-A")
    d = c.folder_sync()
    assert [f["name"] for f in d["add"]] == ["Fresh-A"] and c.hier_key != key
    fid = d["add"][0]["id"]
    srv.rename_folder("Archive/Fresh-A", "Fresh-B")
    d = c.folder_sync()
    assert [(f["id"], f["name"]) for f in d["update"]] == [(fid, "Fresh-B")]
    srv.delete_folder("Archive/Fresh-B")
    assert c.folder_sync()["delete"] == [fid]
    # an unknown key is status 9
    assert c.folder_sync("{not-a-key}7")["status"] == "9"
    assert c.folder_sync("0")["status"] == "1"


def test_folder_create_update_delete(srv):
    c = new_client(srv)
    ids = c.folders()
    key0 = c.hier_key

    def fc(parent, name, ftype="12", key=None):
        r = c.ok("FolderCreate", E("FolderHierarchy:FolderCreate", [
            E("FolderHierarchy:SyncKey", key or c.hier_key), E("FolderHierarchy:ParentId", parent),
            E("FolderHierarchy:DisplayName", name), E("FolderHierarchy:Type", ftype)]))
        if text(r.body, "FolderHierarchy:Status") == "1":
            c.hier_key = text(r.body, "FolderHierarchy:SyncKey")
        return r.body
    b = fc(ids["Inbox"], "EAS made")
    assert text(b, "FolderHierarchy:Status") == "1"
    new_id = text(b, "FolderHierarchy:ServerId")
    assert c.hier_key != key0
    assert srv.folder("Inbox/EAS made")["folder_class"] == "IPF.Note"
    assert text(fc(ids["Inbox"], "EAS made"), "FolderHierarchy:Status") == "2"       # exists
    assert text(fc("424242", "x"), "FolderHierarchy:Status") == "5"                  # no parent
    assert text(fc(ids["Inbox"], "y", key=key0), "FolderHierarchy:Status") == "9"    # old key
    assert text(fc("0", "Top cal", "13"), "FolderHierarchy:Status") == "1"
    assert srv.folder("Top cal")["folder_class"] == "IPF.Appointment"
    # the device's own changes are not echoed back by FolderSync
    assert c.folder_sync() == {"status": "1", "add": [], "update": [], "delete": []}

    def fu(sid, parent, name):
        r = c.ok("FolderUpdate", E("FolderHierarchy:FolderUpdate", [
            E("FolderHierarchy:SyncKey", c.hier_key), E("FolderHierarchy:ServerId", sid),
            E("FolderHierarchy:ParentId", parent), E("FolderHierarchy:DisplayName", name)]))
        if text(r.body, "FolderHierarchy:Status") == "1":
            c.hier_key = text(r.body, "FolderHierarchy:SyncKey")
        return text(r.body, "FolderHierarchy:Status")
    assert fu(new_id, ids["Archive"], "EAS moved") == "1"
    assert srv.folder("Archive/EAS moved")["id"]
    assert fu(ids["Inbox"], "0", "Renamed inbox") == "3"                 # a special folder
    assert fu("999999", "0", "x") == "4"
    assert c.folder_sync() == {"status": "1", "add": [], "update": [], "delete": []}

    def fd(sid):
        r = c.ok("FolderDelete", E("FolderHierarchy:FolderDelete", [
            E("FolderHierarchy:SyncKey", c.hier_key), E("FolderHierarchy:ServerId", sid)]))
        if text(r.body, "FolderHierarchy:Status") == "1":
            c.hier_key = text(r.body, "FolderHierarchy:SyncKey")
        return text(r.body, "FolderHierarchy:Status")
    assert fd(new_id) == "1"
    assert not any(f["path"] == "Archive/EAS moved" for f in srv.mailbox()["folders"])
    assert fd(ids["Drafts"]) == "3" and fd(new_id) == "4"
    assert c.folder_sync() == {"status": "1", "add": [], "update": [], "delete": []}
    # another device sees all of it
    other = new_client(srv).folders()
    assert "Top cal" in other and "Archive/EAS moved" not in other


# ---- Sync ---------------------------------------------------------------------------

def test_sync_paging_exact_mime_and_key_sequence(srv, c):
    inbox = c.ids["Inbox"]
    want = server_mimes(srv, "Inbox")
    r = c.sync([{"id": inbox, "key": "0"}])
    col = collection(r.body, inbox)
    assert status_of(r.body, inbox) == "1" and child(col, "AirSync:Commands") is None   # key 0: no items
    k = text(col, "AirSync:SyncKey")
    got, pages, keys = {}, 0, [k]
    while True:
        r = c.sync([{"id": inbox, "key": k, "window": 5, "options": mime_options()}])
        col = collection(r.body, inbox)
        cmds = children(child(col, "AirSync:Commands"))
        assert 0 < len(cmds) <= 5
        for a in cmds:
            assert a[0] == "AirSync:Add"
            app = child(a, "AirSync:ApplicationData")
            body = child(app, "AirSyncBase:Body")
            assert text(body, "AirSyncBase:Type") == "4"
            assert isinstance(child(body, "AirSyncBase:Data")[1], bytes)     # opaque: exact bytes
            got[text(a, "AirSync:ServerId")] = body_data(app)
        pages += 1
        k = text(col, "AirSync:SyncKey")
        keys.append(k)
        if child(col, "AirSync:MoreAvailable") is None:
            break
    assert pages == -(-len(want) // 5) and set(got.values()) == want and len(got) == len(want)
    assert len(set(keys)) == len(keys)
    # nothing changed: an empty answer, and the key stays valid
    r = c.sync([{"id": inbox, "key": k}])
    assert r.status == 200 and r.data == b""
    # a retried request (the previous key) is answered again; older keys are gone (status 3)
    new_id = srv.deliver("Inbox", subject="Key sequence 1")
    r1 = c.sync([{"id": inbox, "key": k, "options": mime_options()}])
    col1 = collection(r1.body, inbox)
    k2 = text(col1, "AirSync:SyncKey")
    r1b = c.sync([{"id": inbox, "key": k, "options": mime_options()}])     # the answer got lost
    col1b = collection(r1b.body, inbox)
    assert [body_data(child(a, "AirSync:ApplicationData")) for a in children(child(col1b, "AirSync:Commands"))] \
        == [srv.item_mime(new_id)]
    k3 = text(col1b, "AirSync:SyncKey")
    assert k3 != k2
    r = c.sync([{"id": inbox, "key": keys[-2]}])
    assert status_of(r.body, inbox) == "3"
    assert text(collection(r.body, inbox), "AirSync:SyncKey") == "0"


def test_sync_status_3_after_invalidation_and_unknown_collection(srv, c):
    inbox = c.ids["Inbox"]
    c.sync_all(inbox)
    k = c.keys[inbox]
    srv.invalidate_sync_states()
    r = c.sync([{"id": inbox, "key": k}])
    assert status_of(r.body, inbox) == "3"
    assert status_of(c.sync([{"id": inbox, "key": "{bogus}1"}]).body, inbox) == "3"
    adds, _, _, _ = c.sync_all(inbox, key="0")                       # a resync from 0 works
    assert {body_data(a) for a in adds.values()} == server_mimes(srv, "Inbox")
    assert status_of(c.sync([{"id": "987654", "key": "0"}]).body, "987654") == "12"


def test_sync_several_collections_window_and_getchanges(srv, c):
    inbox, archive = c.ids["Inbox"], c.ids["Archive"]
    for i in range(3):
        srv.deliver("Archive", subject=f"Multi {i}")
    r = c.sync([{"id": inbox, "key": "0"}, {"id": archive, "key": "0"}])
    k = {cid: text(collection(r.body, cid), "AirSync:SyncKey") for cid in (inbox, archive)}
    total = len(server_mimes(srv, "Inbox")) + len(server_mimes(srv, "Archive"))
    seen = {inbox: {}, archive: {}}
    rounds = 0
    while True:
        rounds += 1
        r = c.sync([{"id": cid, "key": k[cid], "options": mime_options()} for cid in (inbox, archive)], window=4)
        n = 0
        more = False
        for cid in (inbox, archive):
            col = collection(r.body, cid)
            if col is None:
                continue
            k[cid] = text(col, "AirSync:SyncKey")
            for a in children(child(col, "AirSync:Commands")):
                seen[cid][text(a, "AirSync:ServerId")] = body_data(child(a, "AirSync:ApplicationData"))
                n += 1
            more = more or child(col, "AirSync:MoreAvailable") is not None
        assert n <= 4                                           # the request's WindowSize is for all
        if not more:
            break
    assert len(seen[inbox]) + len(seen[archive]) == total and rounds >= total // 4
    assert set(seen[archive].values()) == server_mimes(srv, "Archive")
    # GetChanges 0: the device's commands only, no server changes
    srv.deliver("Inbox", subject="Not yet")
    r = c.sync([{"id": inbox, "key": k[inbox], "get_changes": True, "get_changes_value": False}])
    assert r.data == b"" or child(collection(r.body, inbox), "AirSync:Commands") is None
    r = c.sync([{"id": inbox, "key": k[inbox]}])
    assert [text(child(a, "AirSync:ApplicationData"), "Email:Subject")
            for a in children(child(collection(r.body, inbox), "AirSync:Commands"))] == ["Not yet"]


def test_sync_client_changes_and_server_changes(srv, c):
    inbox = c.ids["Inbox"]
    ids = [srv.deliver("Inbox", subject=f"Change me {i}") for i in range(3)]
    adds, _, _, _ = c.sync_all(inbox, key="0")
    sid = {srv.item_mime(i): s for s, a in adds.items() for i in ids if body_data(a) == srv.item_mime(i)}
    s0, s1, s2 = (sid[srv.item_mime(i)] for i in ids)
    cmds = [E("AirSync:Change", [E("AirSync:ServerId", s0), E("AirSync:ApplicationData", [E("Email:Read", "1")])]),
            E("AirSync:Change", [E("AirSync:ServerId", s1), E("AirSync:ApplicationData", [
                E("Email:Flag", [E("Email:FlagStatus", "2"), E("Email:FlagType", "Flag for follow up")]),
                E("Email:Categories", [E("Email:Category", "Red"), E("Email:Category", "Blue")])])]),
            E("AirSync:Change", [E("AirSync:ServerId", f"{inbox}:99999"),
                                 E("AirSync:ApplicationData", [E("Email:Read", "1")])])]
    r = c.sync([{"id": inbox, "key": c.keys[inbox], "commands": cmds}])
    col = collection(r.body, inbox)
    c.keys[inbox] = text(col, "AirSync:SyncKey")
    resp = children(child(col, "AirSync:Responses"))
    assert [(text(x, "AirSync:ServerId"), text(x, "AirSync:Status")) for x in resp] == [(f"{inbox}:99999", "8")]
    assert child(col, "AirSync:Commands") is None                  # own changes are not echoed
    assert srv.item_info(ids[0])["is_read"] is True
    info = srv.item_info(ids[1])
    assert info["flag"] == "Flagged" and info["categories"] == ["Red", "Blue"]
    # the follow-up flag completed and cleared
    for st, want in (("1", "Complete"), ("0", "NotFlagged")):
        r = c.sync([{"id": inbox, "key": c.keys[inbox], "commands": [E("AirSync:Change", [
            E("AirSync:ServerId", s1), E("AirSync:ApplicationData", [E("Email:Flag", [E("Email:FlagStatus", st)])])])]}])
        c.keys[inbox] = text(collection(r.body, inbox), "AirSync:SyncKey")
        assert srv.item_info(ids[1])["flag"] == want
    # changes made elsewhere arrive as Change (read flag) and Delete
    srv.mark_read(ids[2], True)
    srv.set_flag(ids[0], "Flagged")
    srv.delete(ids[1])
    adds, changes, deletes, _ = c.sync_all(inbox)
    assert adds == {} and deletes == [s1]
    assert text(changes[s2], "Email:Read") == "1"
    assert text(child(changes[s0], "Email:Flag"), "Email:FlagStatus") == "2"


def test_sync_delete_moves_to_deleted_items_or_deletes(srv, c):
    inbox = c.ids["Inbox"]
    a = srv.deliver("Inbox", subject="Delete as move")
    b = srv.deliver("Inbox", subject="Delete for good")
    adds, _, _, _ = c.sync_all(inbox, key="0")
    sa = next(s for s, x in adds.items() if text(x, "Email:Subject") == "Delete as move")
    sb = next(s for s, x in adds.items() if text(x, "Email:Subject") == "Delete for good")
    r = c.sync([{"id": inbox, "key": c.keys[inbox], "commands": [E("AirSync:Delete", [E("AirSync:ServerId", sa)])]}])
    c.keys[inbox] = text(collection(r.body, inbox), "AirSync:SyncKey")
    assert srv.find_subject("Delete as move", "Deleted Items") and not srv.find_subject("Delete as move", "Inbox")
    coll = {"id": inbox, "key": c.keys[inbox], "commands": [E("AirSync:Delete", [E("AirSync:ServerId", sb)])]}
    req = c.sync_request([coll])
    req[1][0][1][0][1].insert(2, E("AirSync:DeletesAsMoves", "0"))
    r = c.ok("Sync", req)
    c.keys[inbox] = text(collection(r.body, inbox), "AirSync:SyncKey")
    assert not srv.find_subject("Delete for good")
    assert c.sync_all(inbox) == ({}, {}, [], 1)                        # no echo of the deletes
    del a, b


def test_sync_soft_delete_when_leaving_the_filter_window(srv, c):
    inbox = c.ids["Inbox"]
    now = time.time()
    srv.deliver("Inbox", subject="Young", received=now - 3600)
    srv.deliver("Inbox", subject="Old", received=now - 30 * 86400)
    opts = mime_options() + [E("AirSync:FilterType", "3")]           # one week
    adds, _, _, _ = c.sync_all(inbox, options=opts, key="0")
    subjects = {text(a, "Email:Subject") for a in adds.values()}
    assert "Young" in subjects and "Old" not in subjects
    aging = srv.deliver("Inbox", subject="Aging", received=now - 3600)
    adds, _, _, _ = c.sync_all(inbox, options=opts)
    (s_aging,) = [s for s, a in adds.items() if text(a, "Email:Subject") == "Aging"]
    # the item falls out of the window: SoftDelete, not Delete; it stays on the server
    srv.set_received(aging, now - 20 * 86400)
    r = c.sync([{"id": inbox, "key": c.keys[inbox], "options": opts}])
    cmds = children(child(collection(r.body, inbox), "AirSync:Commands"))
    assert [(x[0], text(x, "AirSync:ServerId")) for x in cmds] == [("AirSync:SoftDelete", s_aging)]
    assert srv.item_info(aging)["subject"] == "Aging"


def test_draft_add_change_and_send_in_16_1_not_in_14_1(srv, c):
    drafts = c.ids["Drafts"]
    c.sync_all(drafts, key="0")
    app = [E("Email:To", "bob@example.org"), E("Email:Subject", "Draft from EAS"),
           E("AirSyncBase:Body", [E("AirSyncBase:Type", "1"), E("AirSyncBase:Data", "Draft body text")]),
           E("AirSyncBase:Attachments", [E("AirSyncBase:Add", [
               E("AirSyncBase:ClientId", "att1"), E("AirSyncBase:DisplayName", "notes.txt"),
               E("AirSyncBase:ContentType", "text/plain"), E("AirSyncBase:Content", b"attached bytes\x00\x01"),
               E("AirSyncBase:Method", "1")])])]
    add = E("AirSync:Add", [E("AirSync:ClientId", "c-1"), E("AirSync:ApplicationData", app)])
    r = c.sync([{"id": drafts, "key": c.keys[drafts], "commands": [add]}])
    col = collection(r.body, drafts)
    c.keys[drafts] = text(col, "AirSync:SyncKey")
    resp = child(child(col, "AirSync:Responses"), "AirSync:Add")
    assert text(resp, "AirSync:Status") == "1" and text(resp, "AirSync:ClientId") == "c-1"
    sid = text(resp, "AirSync:ServerId")
    (iid,) = srv.find_subject("Draft from EAS", "Drafts")
    info = srv.item_info(iid)
    assert info["is_draft"] and info["has_attachments"]
    mime = srv.item_mime(iid)
    assert b"bob@example.org" in mime and b"Draft body text" in mime and b"notes.txt" in mime
    assert c.sync_all(drafts)[0] == {}                               # no echo of the Add
    # the same ClientId again (a retry): the same ServerId, no second draft
    r = c.sync([{"id": drafts, "key": c.keys[drafts], "commands": [add]}])
    col = collection(r.body, drafts)
    c.keys[drafts] = text(col, "AirSync:SyncKey")
    assert text(child(child(col, "AirSync:Responses"), "AirSync:Add"), "AirSync:ServerId") == sid
    assert len(srv.find_subject("Draft from EAS", "Drafts")) == 1
    # Fetch the attachment by its FileReference
    r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", [E("ItemOperations:Fetch", [
        E("ItemOperations:Store", "Mailbox"), E("AirSync:CollectionId", drafts), E("AirSync:ServerId", sid),
        E("ItemOperations:Options", [E("AirSyncBase:BodyPreference", [E("AirSyncBase:Type", "1")])])])]))
    ref = text(wbxml.find(r.body, "AirSyncBase:Attachment")[0], "AirSyncBase:FileReference")
    r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", [E("ItemOperations:Fetch", [
        E("ItemOperations:Store", "Mailbox"), E("AirSyncBase:FileReference", ref)])]))
    assert wbxml.raw(wbxml.find(r.body, "ItemOperations:Properties")[0], "ItemOperations:Data") == \
        b"attached bytes\x00\x01"
    # change the subject and body of the draft, then send it
    ch = E("AirSync:Change", [E("AirSync:ServerId", sid), E("AirSync:ApplicationData", [
        E("Email:Subject", "Draft edited"),
        E("AirSyncBase:Body", [E("AirSyncBase:Type", "1"), E("AirSyncBase:Data", "New body")])])])
    r = c.sync([{"id": drafts, "key": c.keys[drafts], "commands": [ch]}])
    c.keys[drafts] = text(collection(r.body, drafts), "AirSync:SyncKey")
    mime = srv.item_mime(iid)
    assert b"Subject: Draft edited" in mime and b"New body" in mime and b"notes.txt" in mime
    srv.clear_sent()
    send = E("AirSync:Change", [E("AirSync:ServerId", sid), E("AirSync:ApplicationData", [E("Email2:Send")])])
    r = c.sync([{"id": drafts, "key": c.keys[drafts], "commands": [send]}])
    c.keys[drafts] = text(collection(r.body, drafts), "AirSync:SyncKey")
    sent = srv.sent()
    assert len(sent) == 1 and sent[0]["recipients"] == ["bob@example.org"] and "New body" in sent[0]["mime"]
    assert not srv.find_subject("Draft edited", "Drafts") and srv.find_subject("Draft edited", "Sent Items")
    # 14.1 cannot create mail items: status 6
    old = new_client(srv, "14.1")
    ids = old.folders()
    old.sync_all(ids["Drafts"], key="0")
    r = old.sync([{"id": ids["Drafts"], "key": old.keys[ids["Drafts"]], "commands": [
        E("AirSync:Add", [E("AirSync:ClientId", "c-2"), E("AirSync:ApplicationData", app)])]}])
    assert text(wbxml.find(r.body, "AirSync:Responses")[0][1][0], "AirSync:Status") == "6"


def test_body_preferences_truncation_and_string_data(srv, c):
    inbox = c.ids["Inbox"]
    iid = srv.deliver("Inbox", subject="Body prefs", body="Plain text body, long enough to truncate.\r\n")
    mime = srv.item_mime(iid)

    def fetch(options):
        r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", [E("ItemOperations:Fetch", [
            E("ItemOperations:Store", "Mailbox"), E("AirSync:CollectionId", inbox),
            E("AirSync:ServerId", sid), E("ItemOperations:Options", options)])]))
        return child(wbxml.find(r.body, "ItemOperations:Properties")[0], "AirSyncBase:Body")
    sid = sid_of(c, srv, inbox, iid)
    b = fetch([E("AirSyncBase:BodyPreference", [E("AirSyncBase:Type", "1")])])
    assert text(b, "AirSyncBase:Type") == "1" and text(b, "AirSyncBase:Data").startswith("Plain text body")
    b = fetch([E("AirSyncBase:BodyPreference", [E("AirSyncBase:Type", "1"), E("AirSyncBase:TruncationSize", "10")])])
    assert text(b, "AirSyncBase:Data") == "Plain text" and text(b, "AirSyncBase:Truncated") == "1"
    b = fetch(mime_options(truncation=50))
    assert wbxml.raw(b, "AirSyncBase:Data") == mime[:50] and text(b, "AirSyncBase:EstimatedDataSize") == str(len(mime))
    srv.eas_config(string_data=True)
    b = fetch(mime_options())
    assert isinstance(child(b, "AirSyncBase:Data")[1], str) and wbxml.raw(b, "AirSyncBase:Data") == mime


# ---- ItemOperations, SendMail, MoveItems, ResolveRecipients ----------------------------

def test_item_operations_fetch_several(srv, c):
    inbox = c.ids["Inbox"]
    adds, _, _, _ = c.sync_all(inbox, key="0")
    sids = sorted(adds)[:3]
    fetches = [E("ItemOperations:Fetch", [E("ItemOperations:Store", "Mailbox"), E("AirSync:CollectionId", inbox),
                                          E("AirSync:ServerId", s), E("ItemOperations:Options", mime_options())])
               for s in sids + [f"{inbox}:77777"]]
    r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", fetches))
    assert text(r.body, "ItemOperations:Status") == "1"
    got = children(child(r.body, "ItemOperations:Response"), "ItemOperations:Fetch")
    assert [text(f, "ItemOperations:Status") for f in got] == ["1", "1", "1", "6"]
    for f, s in zip(got, sids):
        assert text(f, "AirSync:ServerId") == s
        assert body_data(child(f, "ItemOperations:Properties")) == body_data(adds[s])
    # counted as a GetItem of 4 ids in the statistics
    st = srv.stats()
    assert st["get_item_max"] >= 4 and st["get_item_ids"] >= 4
    # as SOGo: one item gone fails the whole request with HTTP 501, a single Fetch is fine
    srv.eas_config(fetch_gone="http501")
    try:
        assert c.cmd("ItemOperations", E("ItemOperations:ItemOperations", fetches)).status == 501
        r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", fetches[-1:]))
        assert [text(f, "ItemOperations:Status") for f in
                children(child(r.body, "ItemOperations:Response"), "ItemOperations:Fetch")] == ["6"]
        r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", fetches[:3]))
        assert text(r.body, "ItemOperations:Status") == "1"
    finally:
        srv.eas_config(fetch_gone="status")


def test_send_mail_save_in_sent_items_and_duplicates(srv, c):
    srv.clear_sent()
    mime = (b"From: Alice Example <alice@example.com>\r\nTo: Carol <carol@example.org>\r\n"
            b"Bcc: dave@example.org\r\nSubject: Sent by EAS\r\nMessage-ID: <eas-send-1@example.com>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello Carol\r\n")
    body = E("ComposeMail:SendMail", [E("ComposeMail:ClientId", "send-1"), E("ComposeMail:SaveInSentItems"),
                                      E("ComposeMail:Mime", mime)])
    r = c.cmd("SendMail", body)
    assert r.status == 200 and r.data == b""
    sent = srv.sent()
    assert len(sent) == 1 and sorted(sent[0]["recipients"]) == ["carol@example.org", "dave@example.org"]
    assert base64.b64decode(sent[0]["mime_b64"]) == mime
    (saved,) = srv.find_subject("Sent by EAS", "Sent Items")
    assert srv.item_mime(saved) == mime and srv.item_info(saved)["is_read"]
    r = c.cmd("SendMail", body)                                  # the same ClientId again
    assert text(r.body, "ComposeMail:Status") == "118" and len(srv.sent()) == 1
    r = c.cmd("SendMail", E("ComposeMail:SendMail", [E("ComposeMail:ClientId", "send-2"),
                                                     E("ComposeMail:Mime", b"Subject: nobody\r\n\r\nx\r\n")]))
    assert text(r.body, "ComposeMail:Status") == "107"
    r = c.cmd("SendMail", E("ComposeMail:SendMail", [E("ComposeMail:ClientId", "send-3"),
                                                     E("ComposeMail:Mime", mime.replace(b"eas-send-1", b"eas-send-3"))]))
    assert r.status == 200 and len(srv.find_subject("Sent by EAS", "Sent Items")) == 1   # not saved this time
    assert len(srv.sent()) == 2


def test_move_items(srv, c):
    inbox, archive = c.ids["Inbox"], c.ids["Archive"]
    iid = srv.deliver("Inbox", subject="Move me by EAS")
    mime = srv.item_mime(iid)
    sid = sid_of(c, srv, inbox, iid)
    c.sync_all(archive, key="0")

    def move(src, sfld, dfld):
        r = c.ok("MoveItems", E("Move:MoveItems", [E("Move:Move", [E("Move:SrcMsgId", src), E("Move:SrcFldId", sfld),
                                                                   E("Move:DstFldId", dfld)])]))
        resp = child(r.body, "Move:Response")
        return text(resp, "Move:Status"), text(resp, "Move:DstMsgId")
    assert move(sid, inbox, inbox)[0] == "4"
    assert move(sid, inbox, "888888")[0] == "2"
    st, dst = move(sid, inbox, archive)
    assert st == "3" and dst and dst.startswith(archive + ":")
    (moved,) = srv.find_subject("Move me by EAS", "Archive")
    assert srv.item_mime(moved) == mime and not srv.find_subject("Move me by EAS", "Inbox")
    assert move(sid, inbox, archive)[0] == "1"                       # gone from the source
    # neither side echoes the move to this device
    assert c.sync_all(inbox) == ({}, {}, [], 1) and c.sync_all(archive) == ({}, {}, [], 1)
    # the moved item is fetchable under its new ServerId
    r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", [E("ItemOperations:Fetch", [
        E("ItemOperations:Store", "Mailbox"), E("AirSync:CollectionId", archive), E("AirSync:ServerId", dst),
        E("ItemOperations:Options", mime_options())])]))
    assert body_data(wbxml.find(r.body, "ItemOperations:Properties")[0]) == mime


def test_resolve_recipients(srv, c):
    def resolve(*names):
        r = c.ok("ResolveRecipients", E("ResolveRecipients:ResolveRecipients",
                                        [E("ResolveRecipients:To", n) for n in names]))
        return [(text(x, "ResolveRecipients:Status"),
                 [text(y, "ResolveRecipients:EmailAddress") for y in children(x, "ResolveRecipients:Recipient")])
                for x in children(r.body, "ResolveRecipients:Response")]
    got = resolve("alice@example.com", "nobody-at-all@nowhere.example")
    assert got == [("1", ["alice@example.com"]), ("4", [])]


# ---- Ping -----------------------------------------------------------------------------

def ping(c, hb, fids, timeout=30):
    body = E("Ping:Ping", [E("Ping:HeartbeatInterval", str(hb)),
                           E("Ping:Folders", [E("Ping:Folder", [E("Ping:Id", f), E("Ping:Class", "Email")])
                                              for f in fids])])
    return c.ok("Ping", body, timeout=timeout).body


def test_ping_statuses_and_wake_up_on_delivery(srv, c):
    inbox, archive = c.ids["Inbox"], c.ids["Archive"]
    srv.eas_config(min_heartbeat=1, max_heartbeat=30, max_folders=3)
    c.sync_all(inbox, key="0")
    c.sync_all(archive, key="0")
    b = ping(c, 100, [inbox])
    assert text(b, "Ping:Status") == "5" and text(b, "Ping:HeartbeatInterval") == "30"
    assert text(ping(c, 5, [inbox, archive, "1", "2"]), "Ping:Status") == "6"
    assert text(ping(c, 5, ["55555"]), "Ping:Status") == "7"
    assert text(c.ok("Ping", b"").body, "Ping:Status") == "3"      # empty, nothing remembered yet
    t0 = time.monotonic()
    b = ping(c, 1, [inbox, archive])
    assert text(b, "Ping:Status") == "1" and time.monotonic() - t0 >= 0.9
    # a delivery during the wait ends it with status 2 naming the folder
    timer = threading.Timer(0.3, lambda: srv.deliver("Archive", subject="Wake up"))
    timer.start()
    t0 = time.monotonic()
    b = ping(c, 20, [inbox, archive])
    waited = time.monotonic() - t0
    timer.join()
    assert text(b, "Ping:Status") == "2" and [text(f) for f in children(child(b, "Ping:Folders"))] == [archive]
    assert waited < 10
    # pending changes answer at once; after the Sync, an empty Ping reuses the last folders
    assert text(ping(c, 20, [inbox, archive]), "Ping:Status") == "2"
    adds, _, _, _ = c.sync_all(archive)
    assert [text(a, "Email:Subject") for a in adds.values()] == ["Wake up"]
    timer = threading.Timer(0.3, lambda: srv.mark_read(srv.find_subject("Wake up", "Archive")[0], True))
    timer.start()
    b = c.ok("Ping", b"").body
    timer.join()
    assert text(b, "Ping:Status") == "2"
    # the device's own changes do not wake it
    _, changes, _, _ = c.sync_all(archive)
    sid = next(iter(changes))
    r = c.sync([{"id": archive, "key": c.keys[archive], "commands": [E("AirSync:Change", [
        E("AirSync:ServerId", sid), E("AirSync:ApplicationData", [E("Email:Read", "0")])])]}])
    c.keys[archive] = text(collection(r.body, archive), "AirSync:SyncKey")
    assert text(ping(c, 1, [archive]), "Ping:Status") == "1"


# ---- faults ----------------------------------------------------------------------------

def test_faults(srv, c):
    inbox = c.ids["Inbox"]
    srv.fault("http503", count=1, operation="Sync", retry_after=7)
    r = c.cmd("Sync", c.sync_request([{"id": inbox, "key": "0"}]))
    assert r.status == 503 and r.headers.get("retry-after") == "7"
    srv.fault("reset", operation="FolderSync")
    with pytest.raises((ConnectionError, socket.error, OSError)):
        c.folder_sync("0")
    srv.fault("garbage", operation="FolderSync")
    with pytest.raises(wbxml.WbxmlError):                        # 200, cut inside a string
        c.folder_sync("0")
    srv.fault("slow", operation="FolderSync", ms=300)
    t0 = time.monotonic()
    assert c.folder_sync("0")["status"] == "1" and time.monotonic() - t0 >= 0.3
    srv.fault("auth", operation="Ping")
    assert c.cmd("Ping", b"").status == 401
    # reset_after: the command was carried out, the answer never came
    srv.clear_sent()
    srv.fault("reset_after", operation="SendMail")
    with pytest.raises((ConnectionError, socket.error, OSError)):
        c.cmd("SendMail", E("ComposeMail:SendMail", [E("ComposeMail:ClientId", "ra-1"), E("ComposeMail:Mime",
              b"To: x@example.org\r\nSubject: reset after\r\n\r\nx\r\n")]))
    assert [s["subject"] for s in srv.sent()] == ["reset after"]
    st = srv.stats()
    assert st["requests"].get("Sync", 0) >= 1 and st["requests"].get("FolderSync", 0) >= 3


# ---- restarts and the codec -------------------------------------------------------------

def test_sync_keys_survive_a_restart_with_state_only(tmp_path):
    with EwsServer(messages=8, seed=4, state=str(tmp_path / "mbx.state")) as s:
        c = EasClient.from_url(s.eas_url, s.user, s.password, device_id="RESTART1")
        inbox = c.folders()["Inbox"]
        first, _, _, _ = c.sync_all(inbox)
        s.restart()
        new_id = s.deliver("Inbox", subject="After restart")
        assert c.folder_sync()["status"] == "1"                   # the hierarchy key is still known
        adds, _, _, _ = c.sync_all(inbox)                         # so is the collection's
        assert [body_data(a) for a in adds.values()] == [s.item_mime(new_id)]
    with EwsServer(messages=8, seed=4) as s:
        c = EasClient.from_url(s.eas_url, s.user, s.password, device_id="RESTART2")
        inbox = c.folders()["Inbox"]
        c.sync_all(inbox)
        key = c.keys[inbox]
        s.restart()
        assert c.folder_sync()["status"] == "9"
        assert status_of(c.sync([{"id": inbox, "key": key}]).body, inbox) == "3"


def test_wbxml_codec_round_trip_and_malformed_input():
    doc = E("AirSync:Sync", [E("AirSync:Collections", [E("AirSync:Collection", [
        E("AirSync:SyncKey", "{x}1"), E("AirSync:CollectionId", "5"), E("AirSync:GetChanges"),
        E("AirSync:Commands", [E("AirSync:Add", [E("AirSync:ServerId", "5:1"), E("AirSync:ApplicationData", [
            E("Email:Subject", "\u00e9t\u00e9 \U0001f600"),
            E("AirSyncBase:Body", [E("AirSyncBase:Type", "4"), E("AirSyncBase:Data", b"\x00\xff" * 200)])])])])])])])
    data = wbxml.encode(doc)
    assert wbxml.decode(data) == doc
    for i in range(1, len(data)):                       # every truncation is an error, never a crash
        with pytest.raises(wbxml.WbxmlError):
            wbxml.decode(data[:i])
    bad = [b"\x09\x01\x6a\x00\x45\x01",                 # unknown version
           b"\x03\x01\x04\x00\x45\x01",                 # not UTF-8
           b"\x03\x01\x6a\x03abc\x45\x01",              # a string table
           b"\x03\x01\x6a\x00\x85\x01",                 # attributes
           b"\x03\x01\x6a\x00\x45\x01\x45\x01",         # two roots
           b"\x03\x01\x6a\x00\x01",                     # END without an element
           b"\x03\x01\x6a\x00\x45\xc3\xff\xff\xff\xff\x7f\x01",   # opaque longer than the input
           b"\x03\x01\x6a\x00\x45\x03\xff\xfe\x00\x01",  # a string that is not UTF-8
           b"\x03\x01\x6a\x00\x45\x04\x01",             # an unsupported global token
           b"\x03\x01\x6a\x00" + b"\x45" * 100 + b"\x01" * 100]   # nested too deep
    for b in bad:
        with pytest.raises(wbxml.WbxmlError):
            wbxml.decode(b)
    # the server answers such a body with the command's status 102, not a crash
    with EwsServer(messages=1, seed=1) as s:
        c = EasClient.from_url(s.eas_url, s.user, s.password)
        for b in bad:
            r = c.cmd("Sync", b)
            assert r.status == 200 and text(r.body, "AirSync:Status") == "102"


def test_sync_wait_returns_on_a_change_or_empty_on_timeout(srv, c):
    inbox = c.ids["Inbox"]
    srv.eas_config(min_heartbeat=1)
    c.sync_all(inbox, key="0")
    req = c.sync_request([{"id": inbox, "key": c.keys[inbox]}])
    req[1].append(E("AirSync:HeartbeatInterval", "1"))
    t0 = time.monotonic()
    r = c.ok("Sync", req)
    assert r.data == b"" and time.monotonic() - t0 >= 0.9          # nothing within the interval
    timer = threading.Timer(0.3, lambda: srv.deliver("Inbox", subject="While waiting"))
    timer.start()
    req = c.sync_request([{"id": inbox, "key": c.keys[inbox], "options": mime_options()}])
    req[1].append(E("AirSync:HeartbeatInterval", "20"))
    t0 = time.monotonic()
    r = c.ok("Sync", req)
    timer.join()
    assert time.monotonic() - t0 < 10
    adds = children(child(collection(r.body, inbox), "AirSync:Commands"))
    assert [text(child(a, "AirSync:ApplicationData"), "Email:Subject") for a in adds] == ["While waiting"]
    req[1][-1] = E("AirSync:HeartbeatInterval", "5000")
    r = c.ok("Sync", req)
    assert text(r.body, "AirSync:Status") == "14" and text(r.body, "AirSync:Limit") == "3540"


def test_mount_targets_of_the_test_server():
    """tests/fs/servers.py: the EWS and EAS targets the mount suite is parametrised over."""
    sys.path.insert(0, os.path.join(HERE, "fs"))
    from servers import open_target
    for kind, want_args in (("ews", []), ("eas", ["--protocol", "eas"])):
        t = open_target(kind, messages=5, seed=2)
        try:
            assert t.args == want_args and t.inbox == "Inbox" and t.can("faults")
            assert t.url == (t.srv.ews_url if kind == "ews" else t.srv.eas_url)
            if kind == "eas":
                cl = EasClient.from_url(t.url, t.srv.user, t.srv.password)
                assert "Inbox" in cl.folders()
                assert t.srv.eas_config()["min_heartbeat"] == 1
        finally:
            t.close()
