"""test_sync.py - the mirror follows the server: deliveries, deletions,
moves and folder renames appear after a sync; names and inodes survive a
remount, an invalid sync state and a kill -9 in the middle of the first
sync; an offline remount serves the cache; throttling is honoured."""
import errno
import os

import pytest

from conftest import expected_tree
from mountlib import wait_for


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


def test_server_changes_appear(server, mount):
    m = mount(server)
    m.wait_synced()
    inbox = ids_in(m, "Inbox")
    # deliver
    new_id = server.deliver("Inbox", subject="Fresh news", body="hello from the server")
    wait_for(lambda: new_id in ids_in(m, "Inbox"), 30, what="delivered message")
    name = ids_in(m, "Inbox")[new_id]
    assert name.endswith(" Fresh news.eml")
    with open(m.path("Inbox", name), "rb") as f:
        assert f.read() == server.item_mime(new_id)
    # delete
    victim = next(iter(inbox))
    server.delete(victim)
    wait_for(lambda: victim not in ids_in(m, "Inbox"), 30, what="deleted message to vanish")
    assert not os.path.exists(m.path("Inbox", inbox[victim]))
    # move (a new id in the destination, as Exchange does)
    moved = new_id
    new_moved = server.move(moved, "Archive")
    wait_for(lambda: new_moved in ids_in(m, "Archive"), 30, what="moved message")
    assert moved not in ids_in(m, "Inbox")
    # mark read: attributes follow
    server.mark_read(new_moved, True)
    p = m.path("Archive", ids_in(m, "Archive")[new_moved])
    wait_for(lambda: os.getxattr(p, "user.mail.read") == b"1", 30, what="read flag")
    # folder rename keeps the folder's inode and contents
    ino = os.stat(m.path("Inbox", "Projects")).st_ino
    before = ids_in(m, "Inbox", "Projects")
    server.rename_folder("Inbox/Projects", "Projects 2027")
    wait_for(lambda: os.path.isdir(m.path("Inbox", "Projects 2027")), 30, what="renamed folder")
    assert not os.path.exists(m.path("Inbox", "Projects"))
    assert os.stat(m.path("Inbox", "Projects 2027")).st_ino == ino
    assert ids_in(m, "Inbox", "Projects 2027") == before
    # a new folder with a slash in its name, and its deletion
    server.create_folder("", "Q3/Q4")
    wait_for(lambda: os.path.isdir(m.path("Q3\u2215Q4")), 30, what="new folder")
    server.delete_folder(server.folder("Q3/Q4")["id"])
    wait_for(lambda: not os.path.exists(m.path("Q3\u2215Q4")), 30, what="deleted folder")
    # in the end, the tree equals the server's
    m.wait_next_sync()
    want = expected_tree(server.mailbox())
    assert {p for p in m.tree() if p} == set(want)
    m.stop()


def test_remount_keeps_names_and_inodes(server, mount):
    m = mount(server)
    m.wait_synced()
    before = m.inodes()
    m.stop()
    m2 = mount(server)
    m2.wait_synced()
    assert m2.inodes() == before
    m2.stop()


def test_offline_remount_serves_cache(server, mount):
    m = mount(server)
    m.wait_synced()
    inbox = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))
    with open(m.path("Inbox", inbox[0]), "rb") as f:
        cached = f.read()
    tree = m.tree()
    m.stop()
    server.stop()
    m2 = mount(server)  # the server is down: mounts from the cache
    assert m2.tree() == tree
    with open(m2.path("Inbox", inbox[0]), "rb") as f:
        assert f.read() == cached
    # a body never fetched cannot be read, with a clear errno
    with pytest.raises(OSError) as e:
        open(m2.path("Inbox", inbox[1]), "rb").read()
    assert e.value.errno in (errno.EIO, errno.EAGAIN)
    assert "offline" in m2.status() or "sign-in" in m2.status()
    # the server comes back: the mount goes online by itself
    server.restart()
    wait_for(lambda: "connection: online" in m2.status(), 60, what="reconnect")
    with open(m2.path("Inbox", inbox[1]), "rb") as f:
        assert len(f.read()) > 0
    m2.stop()
    assert "serving the cached copy" in m2.log_text()


def test_invalid_sync_state_recovers_without_renaming(server, mount):
    m = mount(server)
    m.wait_synced()
    before = m.inodes()
    server.invalidate_sync_states()
    new_id = server.deliver("Inbox", subject="After the reset")
    wait_for(lambda: new_id in ids_in(m, "Inbox"), 60, what="message after resync")
    m.wait_next_sync()
    after = m.inodes()
    for path, ino in before.items():
        assert after.get(path) == ino, "%s changed by the resync" % path
    assert "resyncing" in m.log_text()
    m.stop()


@pytest.mark.parametrize("kind, params", [
    ("busy", {"backoff_ms": 3000}),          # ErrorServerBusy with BackOffMilliseconds
    ("http503", {"retry_after": 3}),          # 503 with Retry-After
    ("http429", {"retry_after": 3}),          # 429 with Retry-After
], ids=["ErrorServerBusy", "503", "429"])
def test_throttling_is_honoured(server, mount, kind, params):
    m = mount(server)
    m.wait_synced()
    server.reset_stats()
    server.fault(kind, count=1, operation="SyncFolderItems", **params)
    new_id = server.deliver("Inbox", subject="Behind the throttle")
    wait_for(lambda: new_id in ids_in(m, "Inbox"), 60, what="message after throttling")
    m.wait_next_sync()
    recent = server.stats()["recent"]
    busy = [r for r in recent if r.get("fault") == kind]
    assert busy, "the %s fault was not hit" % kind
    # no busy loop: after the busy answer the sync thread waited as long as
    # the server asked before its next SyncFolderItems
    t_busy = busy[0]["end"]
    later = [r for r in recent if r["t"] > t_busy and r["op"] == "SyncFolderItems"]
    assert later, "no sync after the busy answer"
    assert later[0]["t"] - t_busy >= 2.9, "retried after %.2f s" % (later[0]["t"] - t_busy)
    assert "server busy" in m.log_text() or "waiting" in m.log_text()
    m.stop()


def test_kill9_during_first_sync_converges(tmp_path, mount):
    from harness import EwsServer
    with EwsServer(messages=6000, seed=5, tls=True, latency_ms=30) as srv:
        m = mount(srv)
        # wait until some pages are committed, then kill -9 mid-sync
        wait_for(lambda: "syncing:" in m.status() and "changes so far" in m.status()
                 and " 0 changes" not in m.status(), 120, interval=0.02, what="first sync under way")
        m.kill()
        m2 = mount(srv)
        m2.wait_synced(timeout=300)
        want = expected_tree(srv.mailbox())
        for path, items in want.items():
            got = ids_in(m2, *path.split("/")) if path else {}
            assert sorted(got) == sorted(items), "folder %r differs after kill -9" % path
        m2.stop()


@pytest.mark.parametrize("opens", [[], ["--open-requests"]], ids=["zero-open", "open-requests"])
def test_small_size_estimate_never_truncates(server, mount, opens):
    """The server's Size is only an estimate; when it is smaller than the
    MIME, a read must still return the whole message (and stat then tells
    the exact size)."""
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


def test_cache_size_limit_evicts_and_refetches(server, mount):
    """With a body store smaller than the folder, reading every message
    twice still gives the server's exact bytes (evicted bodies are fetched
    again) and the store stays within its limit."""
    m = mount(server, extra=["--cache-size", "40K"])
    m.wait_synced()
    names = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))
    for _ in range(2):
        for n in names:
            p = m.path("Inbox", n)
            item_id = os.getxattr(p, "user.exchangefs.id").decode()
            with open(p, "rb") as f:
                data = f.read()
            assert data == server.item_mime(item_id), n
            assert os.stat(p).st_size == len(data)
    line = next(l for l in m.status().splitlines() if l.startswith("bodies cached:"))
    used = int(line.split("(")[1].split()[0])
    assert used <= 40 * 1024 + 400 * 1024  # the limit, plus the one body just fetched
    m.stop()


def test_faults_are_survived(server, mount):
    """Connection resets, HTTP 500 and 503 with Retry-After while syncing
    and reading: the mount retries and ends equal to the server."""
    m = mount(server)
    m.wait_synced()
    names = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))
    # a read whose first two GetItem calls are cut off still succeeds
    server.fault("reset", count=2, operation="GetItem")
    p = m.path("Inbox", names[0])
    with open(p, "rb") as f:
        assert f.read() == server.item_mime(os.getxattr(p, "user.exchangefs.id").decode())
    # syncs that fail with 500, a reset and a 503 asking for 1 s recover
    server.fault("http500", count=1, operation="SyncFolderItems")
    server.fault("reset", count=1, operation="SyncFolderHierarchy")
    server.fault("http503", count=1, operation="SyncFolderItems", retry_after=1)
    new_id = server.deliver("Inbox", subject="After the storm")
    wait_for(lambda: new_id in ids_in(m, "Inbox"), 90, what="message after faults")
    m.wait_next_sync(timeout=90)
    want = expected_tree(server.mailbox())
    for path, items in want.items():
        got = ids_in(m, *path.split("/"))
        assert sorted(got) == sorted(items), path
    m.stop()


def test_connections_are_reused(server, mount):
    """Keep-alive: syncing every folder and reading many messages uses a
    handful of connections, not one per request."""
    m = mount(server)
    m.wait_synced()
    server.reset_stats()
    m.wait_next_sync()
    for n in sorted(os.listdir(m.path("Inbox")))[:30]:
        p = m.path("Inbox", n)
        if n.endswith(".eml"):
            with open(p, "rb") as f:
                f.read()
    st = server.stats()
    assert st["total"] >= 25                 # reads in a row are fetched in batches
    # one sync session plus at most the fetch pool (4, and 1 more for reads)
    assert st["connections"] <= 6, st["connections"]
    m.stop()


def test_first_listing_is_never_partial(tmp_path, mount):
    """ls right after mounting, while the first sync is still running on a
    slow server: the folder asked for jumps the queue and is listed whole."""
    from harness import EwsServer
    with EwsServer(messages=4000, seed=8, tls=True, latency_ms=40) as srv:
        want = expected_tree(srv.mailbox())
        m = mount(srv)
        # ask for a folder deep in the tree first, then the biggest one
        for path in ("Inbox/Projects/2026", "Inbox"):
            names = [n for n in os.listdir(m.path(*path.split("/"))) if n.endswith(".eml")]
            assert len(names) == len(want[path]), "partial listing of %s" % path
        assert "last complete sync: never" in m.status()  # the rest is still syncing
        m.wait_synced(timeout=300)
        m.stop()
