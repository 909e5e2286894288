# Tests that the real ActiveSync server of the suite (SOGo 5.8, tests/sogo/)
# is up and speaks EAS 14.1 as the client will meet it: OPTIONS, FolderSync,
# Sync with the exact MIME of a message delivered over IMAP, ItemOperations
# Fetch, SendMail to the SMTP sink, and one fresh mailbox per test. Skipped
# (with the reason) where SOGo is not installed: contrib/install-deps.sh --sogo.

import base64
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "server"))
sys.path.insert(0, os.path.join(HERE, "sogo"))

from eas_client import E, EasClient, body_data, mime_options  # noqa: E402
from sogo_server import sogo, sogo_user  # noqa: E402,F401  (pytest fixtures)
from wbxml import child, text  # noqa: E402


def client(u, device="XFSSOGOTEST"):
    return EasClient(u.host, u.port, u.name, u.password, version="14.1", path=u.path,
                     device_id=device + os.urandom(3).hex().upper())


def message(marker, body="Hello from the SOGo test.\r\n"):
    return (f"From: Bob Sender <bob@example.org>\r\nTo: someone@example.test\r\n"
            f"Subject: SOGo round trip {marker}\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n"
            f"Message-ID: <{marker}@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"{body}Marker: {marker} \u00e9t\u00e9\r\n").encode("utf-8")


def test_sogo_options(sogo_user):
    o = client(sogo_user).options()
    assert o["status"] == 200
    assert "14.1" in o["versions"] and not any(v.startswith("16") for v in o["versions"])
    for c in ("Sync", "FolderSync", "Ping", "ItemOperations", "SendMail", "MoveItems", "FolderCreate"):
        assert c in o["commands"]


def test_sogo_folder_sync_and_mime_round_trip(sogo_user):
    u = sogo_user
    marker = "xfs-" + os.urandom(6).hex()
    mime = message(marker)
    u.deliver(mime)
    c = client(u)
    assert c.provision() is None                    # SOGo has no policy
    fs = c.folder_sync("0")
    assert fs["status"] == "1" and c.hier_key not in ("0", None)
    types = {f["type"]: f for f in fs["add"]}
    inbox = types[2]["id"]                          # default Inbox
    assert {2, 3, 4, 5} <= set(types)               # Inbox, Drafts, Deleted Items, Sent Items
    adds, _, _, _ = c.sync_all(inbox)
    assert len(adds) == 1
    (sid, app), = adds.items()
    assert text(app, "Email:Subject") == f"SOGo round trip {marker}"
    got = body_data(app)
    assert got == mime, (got[:300], mime[:300])     # the exact bytes that went in over IMAP
    # ItemOperations Fetch returns the same MIME
    r = c.ok("ItemOperations", E("ItemOperations:ItemOperations", [E("ItemOperations:Fetch", [
        E("ItemOperations:Store", "Mailbox"), E("AirSync:CollectionId", inbox), E("AirSync:ServerId", sid),
        E("ItemOperations:Options", mime_options())])]))
    fetch = child(child(r.body, "ItemOperations:Response"), "ItemOperations:Fetch")
    assert text(fetch, "ItemOperations:Status") == "1"
    assert body_data(child(fetch, "ItemOperations:Properties")) == mime


def test_sogo_fresh_mailbox_per_test(sogo_user):
    """Each test's user starts empty: nothing from the test before."""
    c = client(sogo_user)
    fs = c.folder_sync("0")
    inbox = next(f["id"] for f in fs["add"] if f["type"] == 2)
    adds, _, _, _ = c.sync_all(inbox)
    assert adds == {}


def test_sogo_sync_sees_new_mail_and_sendmail_reaches_smtp(sogo_user):
    u = sogo_user
    c = client(u)
    fs = c.folder_sync("0")
    inbox = next(f["id"] for f in fs["add"] if f["type"] == 2)
    assert c.sync_all(inbox)[0] == {}
    marker = "xfs-" + os.urandom(6).hex()
    u.deliver(message(marker))
    adds, _, _, _ = c.sync_all(inbox)               # incremental, from the saved key
    assert [text(a, "Email:Subject") for a in adds.values()] == [f"SOGo round trip {marker}"]
    out = (f"From: {u.address}\r\nTo: carol@example.org\r\nSubject: sent {marker}\r\n"
           f"Message-ID: <sent-{marker}@example.test>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain\r\n\r\nbody {marker}\r\n").encode()
    r = c.cmd("SendMail", E("ComposeMail:SendMail", [E("ComposeMail:ClientId", marker),
                                                     E("ComposeMail:SaveInSentItems"),
                                                     E("ComposeMail:Mime", out)]))
    assert r.status == 200 and (r.body is None or text(r.body, "ComposeMail:Status") in (None, "1")), r
    deadline = time.monotonic() + 10
    while not any(marker.encode() in m for m in u.sent()) and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = [m for m in u.sent() if marker.encode() in m]
    assert sent and b"Subject: sent " + marker.encode() in sent[0]


def test_sogo_view_matches_eas_and_reports_changes(sogo_user):
    """The harness API over IMAP (what mount tests use against SOGo) and SOGo's
    own ActiveSync agree: the seeded corpus, then changes made over IMAP."""
    srv = sogo_user.view()
    markers = srv.populate(messages=30, seed=3)
    assert markers["invoice 4711"] and all("@" in i for v in markers.values() for i in v)
    dump = srv.mailbox(mime=True)
    by_path = {}
    for it in dump["items"]:
        by_path.setdefault(it["folder_path"], set()).add(base64.b64decode(it["mime_b64"]))
    assert sum(len(v) for v in by_path.values()) >= 20
    c = client(sogo_user)
    ids = c.folders()
    for path, mimes in by_path.items():
        adds, _, _, _ = c.sync_all(ids[path])
        assert {body_data(a) for a in adds.values()} == mimes, path
    # changes made elsewhere (IMAP) reach ActiveSync
    inbox = ids["INBOX"]
    first = srv.items("INBOX")[0]
    srv.mark_read(first["id"], not first["is_read"])
    new_id = srv.deliver("INBOX", subject="View delivery", body="hello")
    moved = srv.move(srv.items("INBOX")[-1]["id"], "Archive" if "Archive" in ids else "Trash")
    assert moved and srv.item_mime(moved)
    adds, changes, deletes, _ = c.sync_all(inbox)
    assert [text(a, "Email:Subject") for a in adds.values()] == ["View delivery"]
    assert len(changes) == 1 and len(deletes) == 1
    assert srv.item_info(new_id)["subject"] == "View delivery"


def test_sogo_mount_target(sogo):
    """tests/fs/servers.py's SOGo target: a fresh user with the seeded corpus, EAS URL and args."""
    sys.path.insert(0, os.path.join(HERE, "fs"))
    from servers import open_target
    t = open_target("sogo", messages=5, seed=2)
    try:
        assert t.args == ["--protocol", "eas"] and t.inbox == "INBOX" and not t.can("faults")
        c = EasClient.from_url(t.url, t.srv.user, t.srv.password, version="14.1")
        ids = c.folders()
        items = t.srv.mailbox()["items"]
        full = {i["folder_path"] for i in items}
        assert sum(len(c.sync_all(ids[p])[0]) for p in full) == len(items) > 0
    finally:
        t.close()
