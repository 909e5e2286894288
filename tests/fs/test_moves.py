"""test_moves.py - moves stay moves: a user's own folder operations in a
quick row look done the moment each call returns (no step fails, nothing
is renamed back and forth by a sync that has not caught up), and a move
made on the server is one rename whatever order the sync reads the two
folders in. On the test server over EWS and over ActiveSync."""
import os

import pytest

from inotify import Watcher
from mountlib import wait_for
from test_write import drained

LOCAL = pytest.mark.parametrize("target", ["ews", "eas"], indirect=True)
ROUNDS = 30


@LOCAL
def test_folder_made_moved_and_renamed_in_a_row(target, mount):
    """mkdir Proj && mv Proj Archive/ && mv Archive/Proj Archive/Old, many
    times quickly: every step succeeds when it runs, the tree is right at
    the end, and inotify shows only the user's own steps (no folder renamed
    back and forth by a stale server page)."""
    m = mount(target)
    m.wait_synced()
    top, archive = m.path(), m.path("Archive")
    with Watcher() as w:
        w.add(top)
        w.add(archive)
        for i in range(ROUNDS):
            proj, old = "Proj%d" % i, "Old%d" % i
            os.mkdir(os.path.join(top, proj))
            if i % 2:
                drained(m)   # made on the server: its echo comes back by sync
            os.rename(os.path.join(top, proj), os.path.join(archive, proj))
            os.stat(os.path.join(archive, proj))
            os.rename(os.path.join(archive, proj), os.path.join(archive, old))
            os.stat(os.path.join(archive, old))
        drained(m, timeout=120)
        m.wait_next_sync()
        m.wait_next_sync()
        w.settle(1.0)
        evs = w.events
    names = set(os.listdir(archive))
    for i in range(ROUNDS):
        assert "Old%d" % i in names and "Proj%d" % i not in names, sorted(names)
        assert "Proj%d" % i not in os.listdir(top)
    # the user's own steps, once each: CREATE Proj (top), MOVED_FROM Proj
    # (top) + MOVED_TO Proj (Archive), MOVED_FROM Proj + MOVED_TO Old (Archive)
    want = {}
    for i in range(ROUNDS):
        want[(top, "CREATE", "Proj%d" % i)] = 1
        want[(top, "MOVED_FROM", "Proj%d" % i)] = 1
        want[(archive, "MOVED_TO", "Proj%d" % i)] = 1
        want[(archive, "MOVED_FROM", "Proj%d" % i)] = 1
        want[(archive, "MOVED_TO", "Old%d" % i)] = 1
    got = {}
    for e in evs:
        for k in e.kinds & {"CREATE", "MOVED_FROM", "MOVED_TO", "DELETE"}:
            got[(e.path, k, e.name)] = got.get((e.path, k, e.name), 0) + 1
    extra = {k: v for k, v in got.items() if want.get(k) != v}
    assert not extra, "unexpected events: %r" % sorted(extra.items())


def hierarchy_syncs(target):
    """How many folder-list syncs the server has answered or is answering."""
    return target.srv.stats()["requests"].get(
        "SyncFolderHierarchy" if target.kind == "ews" else "FolderSync", 0)


def two_more_hierarchy_syncs(target):
    """Wait until a folder-list sync that started after now was applied
    (the sync thread runs them one after the other: the second has started
    once the first was applied)."""
    n = hierarchy_syncs(target)
    wait_for(lambda: hierarchy_syncs(target) >= n + 2, 30, what="two more folder-list syncs")


@LOCAL
def test_folder_move_waiting_for_the_server_wins_over_its_sync(target, mount):
    """A folder made here and on the server is moved here while the folder
    list the server sends still has it where it was made (the server is
    slow to answer that sync, and refuses the move for a while): the user's
    move wins - no rename back, the next step finds the folder where it
    was put - and in the end the server has what the user did."""
    srv = target.srv
    m = mount(target)
    m.wait_synced()
    top, archive = m.path(), m.path("Archive")
    ews = target.kind == "ews"
    srv.fault("http503", count=100000, operation="MoveFolder" if ews else "FolderUpdate")
    srv.fault("slow", count=100000, ms=1500, operation="SyncFolderHierarchy" if ews else "FolderSync")
    os.mkdir(os.path.join(top, "Proj"))
    drained(m)
    with Watcher() as w:
        w.add(top)
        w.add(archive)
        os.rename(os.path.join(top, "Proj"), os.path.join(archive, "Proj"))
        two_more_hierarchy_syncs(target)
        assert os.path.isdir(os.path.join(archive, "Proj"))
        assert "Proj" not in os.listdir(top)
        os.rename(os.path.join(archive, "Proj"), os.path.join(archive, "Old"))
        two_more_hierarchy_syncs(target)
        assert "Old" in os.listdir(archive)
        srv.clear_faults()
        drained(m, timeout=90)
        two_more_hierarchy_syncs(target)
        w.settle(1.0)
        evs = [(e.path, sorted(e.kinds & {"CREATE", "MOVED_FROM", "MOVED_TO", "DELETE"}), e.name)
               for e in w.events]
    evs = [e for e in evs if e[1]]
    assert evs == [(top, ["MOVED_FROM"], "Proj"), (archive, ["MOVED_TO"], "Proj"),
                   (archive, ["MOVED_FROM"], "Proj"), (archive, ["MOVED_TO"], "Old")], evs
    assert "Old" in os.listdir(archive) and "Proj" not in os.listdir(archive)
    assert [f["path"] for f in srv.mailbox()["folders"] if f["path"].endswith(("Proj", "Old"))] \
        == ["Archive/Old"]


@LOCAL
def test_folder_removed_here_stays_gone_while_the_server_refuses(target, mount):
    """rmdir of a folder the server has, while the server refuses the
    deletion for a while: the folder-list syncs in between (which still
    list it) do not bring it back."""
    srv = target.srv
    m = mount(target)
    m.wait_synced()
    top = m.path()
    ews = target.kind == "ews"
    srv.fault("http503", count=100000, operation="DeleteFolder" if ews else "FolderDelete")
    srv.fault("slow", count=100000, ms=1500, operation="SyncFolderHierarchy" if ews else "FolderSync")
    os.mkdir(os.path.join(top, "Gone"))
    drained(m)
    with Watcher() as w:
        w.add(top)
        os.rmdir(os.path.join(top, "Gone"))
        two_more_hierarchy_syncs(target)
        assert "Gone" not in os.listdir(top)
        srv.clear_faults()
        drained(m, timeout=90)
        two_more_hierarchy_syncs(target)
        w.settle(1.0)
        evs = [(sorted(e.kinds & {"CREATE", "MOVED_FROM", "MOVED_TO", "DELETE"}), e.name)
               for e in w.events]
    assert [e for e in evs if e[0]] == [(["DELETE"], "Gone")], evs   # no CREATE: not back
    assert "Gone" not in os.listdir(top)
    assert not [f for f in srv.mailbox()["folders"] if f["path"] == "Gone"]


def file_by_mime(d, mime):
    for n in os.listdir(d):
        if n.endswith(".eml"):
            with open(os.path.join(d, n), "rb") as f:
                if f.read() == mime:
                    return n
    return None


@LOCAL
@pytest.mark.parametrize("src,dst", [("Inbox", "Archive"), ("Archive", "Inbox")])
@pytest.mark.parametrize("notify", [False, True], ids=["polled", "notified"])
def test_server_move_is_one_rename_in_either_order(target, mount, src, dst, notify):
    """A message moved on the server: the sync reads one folder before the
    other - the source first one way, the target first the other way - and
    the mount shows one rename: the same inode, its cached body, MOVED_FROM
    and MOVED_TO with one cookie, no DELETE or CREATE. Polled, nothing links
    the two ends but the message's identity (ActiveSync never has more);
    notified, EWS's MovedEvent links them too."""
    srv = target.srv
    m = mount(target, extra=[] if notify else ["--no-notify"])
    m.wait_synced()
    if not srv.items(src):
        srv.deliver(src, subject="To be moved")
        wait_for(lambda: any(n.endswith(".eml") for n in os.listdir(m.path(src))), 30,
                 what="a message in " + src)
    item = srv.items(src)[0]
    mime = srv.item_mime(item["id"])
    name = file_by_mime(m.path(src), mime)   # reads (and caches) the bodies
    p = m.path(src, name)
    ino = os.stat(p).st_ino
    assert os.getxattr(p, "user.exchangefs.cached") in (b"1", b"true", b"yes")
    with Watcher() as w:
        w.add(m.path(src))
        w.add(m.path(dst))
        srv.move(item["id"], dst)
        w.wait_for(lambda evs: any("MOVED_TO" in e.kinds for e in evs), 30, "MOVED_TO")
        m.wait_next_sync()
        w.settle(1.0)
        evs = [e for e in w.events if e.kinds & {"CREATE", "DELETE", "MOVED_FROM", "MOVED_TO"}]
    frm = [e for e in evs if "MOVED_FROM" in e.kinds]
    to = [e for e in evs if "MOVED_TO" in e.kinds]
    assert len(evs) == 2 and len(frm) == 1 and len(to) == 1, evs
    assert frm[0].path == m.path(src) and frm[0].name == name, evs
    assert to[0].path == m.path(dst) and frm[0].cookie == to[0].cookie != 0, evs
    q = m.path(dst, to[0].name)
    assert os.stat(q).st_ino == ino
    assert os.getxattr(q, "user.exchangefs.cached") in (b"1", b"true", b"yes")
    with open(q, "rb") as f:
        assert f.read() == mime
    assert name not in os.listdir(m.path(src))


def held_rows(m):
    """Messages held out of the tree as half of a move (cache/sync_moves.c)."""
    import sqlite3
    db = sqlite3.connect("file:%s/cache.db?mode=ro" % m.cache_dir, uri=True)
    try:
        return db.execute("SELECT count(*) FROM nodes WHERE kind = 2 AND parent = 0 AND "
                          "pend = 0 AND local = 0 AND server_id IS NOT NULL").fetchone()[0]
    finally:
        db.close()


@LOCAL
def test_kill9_while_a_delete_is_held_settles_at_start(target, mount):
    """A message deleted on the server is held out of the tree in case it
    was moved; a daemon killed meanwhile settles it at the next start (the
    delete stands: no row is left behind in the cache)."""
    srv = target.srv
    m = mount(target, extra=["--no-notify"], env={"EXCHANGEFS_MOVE_HOLD_MS": "600000"})
    m.wait_synced()
    item = srv.items("Inbox")[0]
    name = file_by_mime(m.path("Inbox"), srv.item_mime(item["id"]))
    srv.delete(item["id"])
    wait_for(lambda: name not in os.listdir(m.path("Inbox")), 30, what="the message to leave the listing")
    m.kill()
    assert held_rows(m) == 1
    m.start()
    m.wait_synced()
    assert held_rows(m) == 0
    assert name not in os.listdir(m.path("Inbox"))
