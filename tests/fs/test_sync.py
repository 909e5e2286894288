"""test_sync.py - the mirror follows the server: deliveries, deletions,
moves and folder renames appear after a sync; names and inodes survive a
remount, an invalid sync state and a kill -9 in the middle of the first
sync; an offline remount serves the cache; throttling is honoured.

The tests run on every kind of server (tests/fs/servers.py) unless a test
says otherwise: the test server over EWS and over ActiveSync 16.1, SOGo over
ActiveSync 14.1 (30 messages; SOGo has no fault knobs or statistics, is not
restarted by a test, and stores ~50 messages/s). Over ActiveSync
user.exchangefs.id is the ActiveSync ServerId, not the server's item id:
files are matched to server items by name, subject or bytes there."""
import errno
import os
import socket
import urllib.parse

import pytest

from conftest import expected_tree
from mountlib import server_name_to_file, wait_for
from servers import KINDS, make_target

SOGO_WAIT = 60          # SOGo looks for changes every 5 s; its Ping answers within 5-10 s


@pytest.fixture(params=KINDS)
def kt(request, tmp_path):
    """A fresh server of each kind with a small mailbox (120 messages on the
    test server, 30 on SOGo), which the test may change."""
    t = make_target(request.param, messages=120, sogo_messages=30, seed=3, tls=True,
                    state=str(tmp_path / "server-state.json"))
    yield t
    t.close()


def wait_server(pred, target, what, timeout=30):
    return wait_for(pred, SOGO_WAIT if target.kind == "sogo" else timeout, interval=0.1, what=what)


def ids_in(m, *path):
    out = {}
    d = m.path(*path)
    for n in os.listdir(d):
        p = os.path.join(d, n)
        try:
            if not os.path.isdir(p):
                out[os.getxattr(p, "user.exchangefs.id").decode()] = n
        except FileNotFoundError:
            pass  # removed by a sync between listdir and getxattr: what polls wait for
    return out


def emls(m, *path):
    return sorted(n for n in os.listdir(m.path(*path)) if n.endswith(".eml"))


def named(m, folder, suffix):
    """The file of folder whose name ends with suffix, or None."""
    return next((n for n in emls(m, folder) if n.endswith(suffix)), None)


def file_of(target, m, folder, item_id):
    """The name of the server item's file in folder: by user.exchangefs.id
    over EWS, by its bytes over ActiveSync."""
    if target.kind == "ews":
        return ids_in(m, folder).get(item_id)
    want = target.srv.item_mime(item_id)
    for n in emls(m, folder):
        with open(m.path(folder, n), "rb") as f:
            if f.read() == want:
                return n
    return None


def printable(subject):
    """A subject as compared here: without control characters (SOGo drops
    them, XML cannot carry most of them)."""
    return "".join(c for c in subject or "" if ord(c) >= 0x20 and ord(c) != 0x7f)


def subject_of(path):
    try:
        return os.getxattr(path, "user.mail.subject").decode()
    except OSError:     # ENODATA: a message without a subject
        return ""


def folder_keys(target, m, path):
    """What identifies the messages of a folder on the mount, comparable
    with server_keys(): their server ids over EWS, their subjects over
    ActiveSync (whose ServerIds the server's dump does not show)."""
    if target.kind == "ews":
        return sorted(ids_in(m, *path.split("/")) if path else {})
    d = m.path(*path.split("/"))
    return sorted(printable(subject_of(os.path.join(d, n))) for n in os.listdir(d) if n.endswith(".eml"))


def server_keys(target, items):
    if target.kind == "ews":
        return sorted(items)
    return sorted(printable(it["subject"]) for it in items.values())


def assert_tree_equals_server(target, m):
    want = expected_tree(target.srv.mailbox())
    if not target.can("outbox"):
        want["Outbox"] = {}     # the client's own Outbox (servers.CANNOT)
    assert {p for p in m.tree() if p} == set(want)
    for path, items in want.items():
        assert folder_keys(target, m, path) == server_keys(target, items), path


def dead_url(url):
    """url with its port replaced by one nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, f"127.0.0.1:{port}", u.path, u.query, u.fragment))


def test_server_changes_appear(kt, mount):
    """New mail, a deletion, a move, the read flag, a folder rename, a new
    folder (with a slash in its name where the server allows one) and its
    deletion, each made on the server, reach the mount."""
    srv, inbox = kt.srv, kt.inbox
    m = mount(kt)
    m.wait_synced()
    # deliver
    new_id = srv.deliver(inbox, subject="Fresh news", body="hello from the server")
    name = wait_server(lambda: named(m, inbox, " Fresh news.eml"), kt, "delivered message")
    with open(m.path(inbox, name), "rb") as f:
        assert f.read() == srv.item_mime(new_id)
    if kt.kind == "ews":
        assert ids_in(m, inbox)[new_id] == name
    # delete
    victim = next(it["id"] for it in srv.items(inbox) if it["id"] != new_id)
    vname = file_of(kt, m, inbox, victim)
    assert vname
    srv.delete(victim)
    # the listing is the cache's at once; the kernel's dentry of the name is
    # dropped by the notification thread just after the page commits
    wait_server(lambda: vname not in emls(m, inbox) and not os.path.exists(m.path(inbox, vname)),
                kt, "deleted message to vanish")
    # move (a new id in the destination, as Exchange and ActiveSync do)
    new_moved = srv.move(new_id, "Archive")
    # over ActiveSync a move is a delete in one collection and an add in
    # another, each seen by its own folder's sync: wait for both
    moved = wait_server(lambda: not named(m, inbox, " Fresh news.eml")
                        and named(m, "Archive", " Fresh news.eml"), kt, "moved message")
    if kt.kind == "ews":
        assert ids_in(m, "Archive")[new_moved] == moved
    # mark read: attributes follow
    srv.mark_read(new_moved, True)
    p = m.path("Archive", moved)
    wait_server(lambda: os.getxattr(p, "user.mail.read") == b"1", kt, "read flag")
    # folder rename keeps the folder's inode, names and contents
    ino = os.stat(m.path(inbox, "Projects")).st_ino
    before = emls(m, inbox, "Projects")
    assert before
    srv.rename_folder(f"{inbox}/Projects", "Projects 2027")
    wait_server(lambda: os.path.isdir(m.path(inbox, "Projects 2027")), kt, "renamed folder")
    assert not os.path.exists(m.path(inbox, "Projects"))
    assert os.stat(m.path(inbox, "Projects 2027")).st_ino == ino
    assert emls(m, inbox, "Projects 2027") == before
    # a new folder with a slash in its name, and its deletion
    fname = "Q3/Q4" if kt.can("slash_names") else "Q3-Q4"
    srv.create_folder("", fname)
    wait_server(lambda: os.path.isdir(m.path(server_name_to_file(fname))), kt, "new folder")
    srv.delete_folder(srv.folder(fname)["id"])
    wait_server(lambda: not os.path.exists(m.path(server_name_to_file(fname))), kt, "deleted folder")
    # in the end, the tree equals the server's
    m.wait_next_sync()
    assert_tree_equals_server(kt, m)
    m.stop()


def test_remount_and_offline_serve_the_cache(kt, mount):
    """A remount keeps every name and inode; a remount with the server down
    (SOGo, which a test does not stop: its URL a dead port) shows the same
    tree and inodes, reads the bodies read before, refuses one never fetched
    with a clear errno, and goes online by itself when the server is back."""
    m = mount(kt)
    m.wait_synced()
    inbox = emls(m, kt.inbox)
    with open(m.path(kt.inbox, inbox[0]), "rb") as f:
        cached = f.read()
    tree, before = m.tree(), m.inodes()
    m.stop()
    m1 = mount(kt)
    m1.wait_synced()
    assert m1.tree() == tree and m1.inodes() == before
    m1.stop()
    if kt.can("restart"):
        kt.srv.stop()
        m2 = mount(kt)  # the server is down: mounts from the cache
    else:
        m2 = mount(kt.srv, url=dead_url(kt.url), extra=kt.args)
    assert m2.tree() == tree and m2.inodes() == before
    with open(m2.path(kt.inbox, inbox[0]), "rb") as f:
        assert f.read() == cached
    # a body never fetched cannot be read, with a clear errno
    with pytest.raises(OSError) as e:
        open(m2.path(kt.inbox, inbox[1]), "rb").read()
    assert e.value.errno in (errno.EIO, errno.EAGAIN)
    assert "offline" in m2.status() or "sign-in" in m2.status()
    if kt.can("restart"):
        # the server comes back: the mount goes online by itself
        kt.srv.restart()
        wait_for(lambda: "connection: online" in m2.status(), 60, what="reconnect")
        with open(m2.path(kt.inbox, inbox[1]), "rb") as f:
            assert len(f.read()) > 0
    m2.stop()
    assert "serving the cached copy" in m2.log_text()


def test_invalid_sync_state_recovers_without_renaming(kt, mount):
    """The server refuses the sync states (EWS ErrorInvalidSyncStateData;
    ActiveSync Sync status 3: the test server forgets every key, SOGo its
    per-folder states): the resync keeps every name and inode and picks up
    what changed."""
    m = mount(kt)
    m.wait_synced()
    before = m.inodes()
    kt.srv.invalidate_sync_states()
    new_id = kt.srv.deliver(kt.inbox, subject="After the reset")
    name = wait_server(lambda: named(m, kt.inbox, " After the reset.eml"), kt,
                       "message after resync", timeout=60)
    with open(m.path(kt.inbox, name), "rb") as f:
        assert f.read() == kt.srv.item_mime(new_id)
    m.wait_next_sync()
    after = m.inodes()
    for path, ino in before.items():
        assert after.get(path) == ino, "%s changed by the resync" % path
    assert "resyncing" in m.log_text()
    m.stop()


# the test server's fault knobs are keyed by operation: EWS operations over
# EWS, ActiveSync commands over ActiveSync
EAS_OPS = {"SyncFolderItems": "Sync", "SyncFolderHierarchy": "FolderSync", "GetItem": "ItemOperations",
           "CreateItem": "Sync", "UpdateItem": "Sync", "DeleteItem": "Sync", "MoveItem": "MoveItems",
           "CreateFolder": "FolderCreate", "SendItem": "SendMail"}


def op(target, ews_op):
    return ews_op if target.kind == "ews" else EAS_OPS[ews_op]


def big_target(kind, **kw):
    """A test server with a big mailbox, for what happens during a long
    first sync; not on SOGo, which would take minutes to store it."""
    if kind == "sogo":
        pytest.skip("sogo: a mailbox big enough for a long first sync takes SOGo minutes "
                    "to store (~50 messages/s)")
    return make_target(kind, tls=True, **kw)


@pytest.mark.parametrize("fault, params", [
    ("busy", {"backoff_ms": 3000}),          # ErrorServerBusy with BackOffMilliseconds
    ("http503", {"retry_after": 3}),          # 503 with Retry-After
    ("http429", {"retry_after": 3}),          # 429 with Retry-After
], ids=["ErrorServerBusy", "503", "429"])
def test_throttling_is_honoured(kt, mount, fault, params):
    """After a busy answer the sync waits as long as the server asked.
    ErrorServerBusy is an EWS SOAP error: over ActiveSync the test server
    sends it as a 503 with Retry-After, which the 503 case covers."""
    kt.require("faults", "stats")
    if fault == "busy" and kt.kind != "ews":
        pytest.skip("ErrorServerBusy is EWS's; over ActiveSync it is the 503 case")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    server.reset_stats()
    server.fault(fault, count=1, operation=op(kt, "SyncFolderItems"), **params)
    server.deliver(kt.inbox, subject="Behind the throttle")
    wait_for(lambda: named(m, kt.inbox, " Behind the throttle.eml"), 60, what="message after throttling")
    m.wait_next_sync()
    recent = server.stats()["recent"]
    busy = [r for r in recent if r.get("fault") == fault]
    assert busy, "the %s fault was not hit" % fault
    # no busy loop: after the busy answer the sync thread waited as long as
    # the server asked before its next sync request
    t_busy = busy[0]["end"]
    later = [r for r in recent if r["t"] > t_busy and r["op"] == op(kt, "SyncFolderItems")]
    assert later, "no sync after the busy answer"
    assert later[0]["t"] - t_busy >= 2.9, "retried after %.2f s" % (later[0]["t"] - t_busy)
    assert "server busy" in m.log_text() or "waiting" in m.log_text()
    m.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_kill9_during_first_sync_converges(kind, mount):
    t = big_target(kind, messages=6000, seed=5, latency_ms=30)
    try:
        m = mount(t)
        # wait until some pages are committed, then kill -9 mid-sync
        wait_for(lambda: "syncing:" in m.status() and "changes so far" in m.status()
                 and " 0 changes" not in m.status(), 120, interval=0.02, what="first sync under way")
        m.kill()
        m2 = mount(t)
        m2.wait_synced(timeout=300)
        want = expected_tree(t.srv.mailbox())
        for path, items in want.items():
            assert folder_keys(t, m2, path) == server_keys(t, items), "folder %r differs after kill -9" % path
        m2.stop()
    finally:
        t.close()


@pytest.mark.parametrize("opens", [[], ["--open-requests"]], ids=["zero-open", "open-requests"])
def test_small_size_estimate_never_truncates(server, mount, opens):
    """The server's Size is only an estimate; when it is smaller than the
    MIME, a read must still return the whole message (and stat then tells
    the exact size). EWS only: only the test server's EWS Size can be staged
    smaller than the MIME (its ActiveSync EstimatedDataSize is the MIME's
    length; SOGo's is a little larger, which test_read.py's whole reads
    cover)."""
    import subprocess
    m = mount(server, extra=opens)
    m.wait_synced()
    body = "".join("line %06d of a long message\r\n" % i for i in range(8000))
    new_id = server.deliver("Inbox", subject="Underestimated", body=body, size=1000)
    wait_for(lambda: new_id in ids_in(m, "Inbox"), 30, what="delivered message")
    p = m.path("Inbox", ids_in(m, "Inbox")[new_id])
    assert os.stat(p).st_size == 1000  # the estimate, before the body is cached
    want = server.item_mime(new_id)
    assert len(want) > 200000
    r = subprocess.run(["cat", p], capture_output=True)
    assert r.returncode == 0 and r.stdout == want
    assert os.stat(p).st_size == len(want)
    with open(p, "rb") as f:
        assert f.read() == want
    m.stop()


def test_cache_size_limit_evicts_and_refetches(kt, mount):
    """With a body store smaller than the folder, reading every message
    twice still gives the server's exact bytes (evicted bodies are fetched
    again) and the store stays within its limit (SOGo: about half a minute,
    its fetches are slow)."""
    m = mount(kt, extra=["--cache-size", "40K"])
    m.wait_synced()
    names = emls(m, kt.inbox)
    mimes = {}
    if kt.kind != "ews":
        import base64
        mimes = {base64.b64decode(it["mime_b64"]) for it in kt.srv.mailbox(mime=True)["items"]
                 if it["folder_path"] == kt.inbox}
        assert len(mimes) == len(names)
    for _ in range(2):
        for n in names:
            p = m.path(kt.inbox, n)
            with open(p, "rb") as f:
                data = f.read()
            if kt.kind == "ews":
                assert data == kt.srv.item_mime(os.getxattr(p, "user.exchangefs.id").decode()), n
            else:
                assert data in mimes, n
            assert os.stat(p).st_size == len(data)
    line = next(l for l in m.status().splitlines() if l.startswith("bodies cached:"))
    used = int(line.split("(")[1].split()[0])
    assert used <= 40 * 1024 + 400 * 1024  # the limit, plus the one body just fetched
    m.stop()


def test_faults_are_survived(kt, mount):
    """Connection resets, HTTP 500 and 503 with Retry-After while syncing
    and reading: the mount retries and ends equal to the server."""
    kt.require("faults")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    names = emls(m, kt.inbox)
    # a read whose first two fetches are cut off still succeeds
    server.fault("reset", count=2, operation=op(kt, "GetItem"))
    with open(m.path(kt.inbox, names[0]), "rb") as f:
        data = f.read()
    assert any(server.item_mime(it["id"]) == data for it in server.items(kt.inbox))
    # syncs that fail with 500, a reset and a 503 asking for 1 s recover
    server.fault("http500", count=1, operation=op(kt, "SyncFolderItems"))
    server.fault("reset", count=1, operation=op(kt, "SyncFolderHierarchy"))
    server.fault("http503", count=1, operation=op(kt, "SyncFolderItems"), retry_after=1)
    server.deliver(kt.inbox, subject="After the storm")
    wait_for(lambda: named(m, kt.inbox, " After the storm.eml"), 90, what="message after faults")
    m.wait_next_sync(timeout=90)
    assert not server.stats()["faults"], "not every fault was hit"
    assert_tree_equals_server(kt, m)
    m.stop()


def test_connections_are_reused(kt, mount):
    """Keep-alive: syncing every folder and reading many messages uses a
    handful of connections, not one per request."""
    kt.require("stats")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    server.reset_stats()
    m.wait_next_sync()
    for n in emls(m, kt.inbox)[:30]:
        with open(m.path(kt.inbox, n), "rb") as f:
            f.read()
    st = server.stats()
    # enough requests to show reuse (reads in a row are fetched in batches;
    # ActiveSync reads 16 folders per Sync and 16 bodies per request, so
    # there it is a pass, the reads and each session's OPTIONS: ~16)
    if kt.kind == "ews":
        assert st["total"] >= 25, st["requests"]
    else:
        assert st["total"] >= 2 * st["connections"], st["requests"]
    # one sync session plus at most the fetch pool (4, and 1 more for reads)
    assert st["connections"] <= 6, st["connections"]
    m.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_first_listing_is_never_partial(kind, mount):
    """ls right after mounting, while the first sync is still running on a
    slow server: the folder asked for jumps the queue and is listed whole."""
    t = big_target(kind, messages=4000, seed=8, latency_ms=40)
    try:
        want = expected_tree(t.srv.mailbox())
        m = mount(t)
        # ask for a folder deep in the tree first, then the biggest one
        for path in ("Inbox/Projects/2026", "Inbox"):
            names = [n for n in os.listdir(m.path(*path.split("/"))) if n.endswith(".eml")]
            assert len(names) == len(want[path]), "partial listing of %s" % path
        assert "last complete sync: never" in m.status()  # the rest is still syncing
        m.wait_synced(timeout=300)
        m.stop()
    finally:
        t.close()
