"""test_notify.py - server changes become inotify events on the mount
("reflection", fs/notify.c), pushed by the server's notifications
(cache/watch.c, EWS streaming subscriptions): every mapping of the issue,
at several folder depths, no echo of the user's own changes, events after
a dropped stream, a read-only mount, gio monitor, and unmounting while
events flow."""
import os
import shutil
import subprocess
import threading
import time

import pytest

from inotify import Watcher
from mountlib import wait_for
from test_write import drained, message, write


@pytest.fixture
def live(server, mount):
    """A mount of the shared test server with notifications on and a long
    poll interval, so what arrives quickly came by notification."""
    m = mount(server, extra=["--sync-interval", "600"])
    m.wait_synced()
    wait_for(lambda: "notifications: push" in m.status(), 30, what="a streaming subscription")
    return server, m


def reflection_counts(m):
    """(changes reflected, changes only invalidated) from the status."""
    for line in m.status().splitlines():
        if line.startswith("inotify events:"):
            words = line.split()
            return int(words[2]), int(words[words.index("invalidated") - 1])
    raise AssertionError("no inotify line in the status")


def names_in(events, kind):
    return [e.name for e in events if kind in e.kinds]


def file_of(m, folder, item_id):
    """The file name of server item item_id in folder."""
    d = m.path(folder)
    for n in os.listdir(d):
        try:
            if os.getxattr(os.path.join(d, n), "user.exchangefs.id").decode() == item_id:
                return n
        except OSError:
            pass
    raise AssertionError("no file for item %s in %s" % (item_id, folder))


def first_new_name(m, folder, before):
    return wait_for(lambda: sorted(set(os.listdir(m.path(folder))) - before), 10,
                    what="a new file in %s" % folder)[0]


@pytest.mark.parametrize("folder", ["Inbox", "Inbox/Projects/2026"])
def test_new_message_is_create_and_close_write(live, folder):
    srv, m = live
    d = m.path(folder)
    before = set(os.listdir(d))
    with Watcher() as w:
        w.add(d)
        t0 = time.monotonic()
        srv.deliver(folder, subject="Pushed news")
        w.wait_for(lambda evs: any("CLOSE_WRITE" in e.kinds for e in evs), 10, "CLOSE_WRITE")
        latency = time.monotonic() - t0
        name = first_new_name(m, folder, before)
        evs = w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"})
        assert [e for e in evs if "CREATE" in e.kinds][0].at <= \
            [e for e in evs if "CLOSE_WRITE" in e.kinds][0].at
        assert latency < 5, latency
        # the file is there, whole, as the event said
        with open(os.path.join(d, name), "rb") as f:
            assert b"Pushed news" in f.read()
        w.settle(0.3)
        assert names_in(w.events, "CREATE").count(name) == 1


def test_deleted_message_is_delete(live):
    srv, m = live
    item = srv.items("Inbox/Receipts")[0]
    name = file_of(m, "Inbox/Receipts", item["id"])
    with Watcher() as w:
        w.add(m.path("Inbox", "Receipts"))
        srv.delete(item["id"])
        w.wait_kinds(name, {"DELETE"})
    assert name not in os.listdir(m.path("Inbox", "Receipts"))


def test_moved_message_is_one_move_with_one_cookie(live):
    srv, m = live
    item = srv.items("Inbox")[0]
    name = file_of(m, "Inbox", item["id"])
    with Watcher() as w:
        w.add(m.path("Inbox"))
        w.add(m.path("Archive"))
        srv.move(item["id"], "Archive")
        evs = w.wait_for(lambda evs: "MOVED_TO" in {k for e in evs for k in e.kinds}, 10,
                         "MOVED_TO")
        w.settle(0.5)
        evs = w.events
        frm = [e for e in evs if "MOVED_FROM" in e.kinds]
        to = [e for e in evs if "MOVED_TO" in e.kinds]
        assert len(frm) == 1 and len(to) == 1, evs
        assert frm[0].cookie == to[0].cookie != 0
        assert frm[0].name == name and to[0].path == m.path("Archive")
        assert not names_in(evs, "DELETE") and not names_in(evs, "CREATE"), evs
    assert to[0].name in os.listdir(m.path("Archive"))


def test_flags_are_attrib(live):
    srv, m = live
    item = srv.items("Inbox")[1]
    name = file_of(m, "Inbox", item["id"])
    p = m.path("Inbox", name)
    with Watcher() as w:
        w.add(m.path("Inbox"))
        srv.mark_read(item["id"], not item["is_read"])
        w.wait_kinds(name, {"ATTRIB"})
        assert os.getxattr(p, "user.mail.read") == (b"0" if item["is_read"] else b"1")
        w.clear()
        srv.set_flag(item["id"], "Flagged")
        w.wait_kinds(name, {"ATTRIB"})
        assert os.getxattr(p, "user.mail.flag") == b"flagged"
        w.clear()
        srv.set_categories(item["id"], ["Red", "Blue"])
        w.wait_kinds(name, {"ATTRIB"})
        assert os.getxattr(p, "user.mail.categories") == b"Red,Blue"
        w.settle(0.3)
        assert not names_in(w.events, "CREATE") and not names_in(w.events, "DELETE")


def test_draft_edited_elsewhere_is_modify(live):
    srv, m = live
    write(m.path("Drafts", "plan.eml"), message("Plan v1"))
    drained(m)
    (it,) = srv.items("Drafts", subject="Plan v1")
    p = m.path("Drafts", "plan.eml")
    assert b"Plan v1" in open(p, "rb").read()
    with Watcher() as w:
        w.add(m.path("Drafts"))
        srv.update_item(it["id"], "Plan v2, longer")
        w.wait_kinds("plan.eml", {"MODIFY", "CLOSE_WRITE"})
        assert not names_in(w.events, "DELETE")
    assert b"Plan v2, longer" in open(p, "rb").read()


def test_folder_changes_are_directory_events(live):
    srv, m = live
    with Watcher() as w:
        w.add(m.path("Inbox"))
        w.add(m.path("Archive"))
        srv.create_folder("Inbox", "Pushed")
        ev = w.wait_kinds("Pushed", {"CREATE"})
        assert ev[0].is_dir and os.path.isdir(m.path("Inbox", "Pushed"))
        w.add(m.path("Inbox", "Pushed"))  # and a level deeper
        srv.create_folder("Inbox/Pushed", "Deeper")
        w.wait_kinds("Deeper", {"CREATE"}, path=m.path("Inbox", "Pushed"))
        srv.rename_folder("Inbox/Pushed", "Renamed")
        w.wait_kinds("Pushed", {"MOVED_FROM"})
        ev = w.wait_kinds("Renamed", {"MOVED_TO"})
        assert ev[-1].is_dir and os.path.isdir(m.path("Inbox", "Renamed", "Deeper"))
        srv.move_folder("Inbox/Renamed", "Archive")
        w.wait_kinds("Renamed", {"MOVED_TO"}, path=m.path("Archive"))
        cookies = {e.cookie for e in w.events if e.name == "Renamed" and
                   ("MOVED_FROM" in e.kinds or "MOVED_TO" in e.kinds)}
        assert len(cookies) == 2  # one per move, each shared by FROM and TO


def test_folder_deleted_after_tree_changes_is_delete(live):
    srv, m = live
    with Watcher() as w:
        w.add(m.path("Inbox"))
        srv.create_folder("Inbox", "Doomed")
        w.wait_kinds("Doomed", {"CREATE"})
        srv.delete_folder("Inbox/Doomed")
        w.wait_kinds("Doomed", {"DELETE"}, path=m.path("Inbox"))
    assert "Doomed" not in os.listdir(m.path("Inbox"))


def test_folder_gone_before_subscribing(live):
    """A folder deleted on the server after the client learnt of it but
    before its new subscription reached the server: Subscribe fails
    (ErrorFolderNotFound) and no stream covers the deletion.  The client
    syncs the tree instead of retrying the same set (it used to retry
    forever and miss the deletion until the next full sync)."""
    srv, m = live
    srv.fault("slow", operation="Subscribe", ms=1500)
    with Watcher() as w:
        w.add(m.path("Inbox"))
        srv.create_folder("Inbox", "Doomed")
        w.wait_kinds("Doomed", {"CREATE"})
        # the new set's Subscribe is at the server, waiting: delete now
        wait_for(lambda: not srv.stats()["faults"], 10, what="the Subscribe for the new set")
        srv.delete_folder("Inbox/Doomed")
        w.wait_kinds("Doomed", {"DELETE"}, path=m.path("Inbox"))
    assert "Doomed" not in os.listdir(m.path("Inbox"))
    wait_for(lambda: "notifications: push" in m.status(), 15, what="a new subscription")
    assert "syncing the folder tree before subscribing again" in m.log_text()
    # and the new subscription works
    with Watcher() as w:
        w.add(m.path("Inbox"))
        srv.create_folder("Inbox", "Later")
        w.wait_kinds("Later", {"CREATE"})


def test_own_changes_make_no_echo(server, mount):
    """What the user does through the mount makes its events once, from
    the kernel; the server reporting it back (by notification, and at the
    next full syncs) adds nothing."""
    srv, m = server, mount(server)
    m.wait_synced()
    with Watcher() as w:
        w.add(m.path("Archive"))
        w.add(m.path("Inbox"))
        write(m.path("Archive", "mine.eml"), message("Mine"))
        victim = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[0]
        os.setxattr(m.path("Inbox", victim), "user.mail.flag", b"flagged")
        os.rename(m.path("Inbox", victim), m.path("Archive", victim))
        drained(m)
        # the server has all three; let the next sync see them too
        m.wait_next_sync()
        m.wait_next_sync()
        w.settle(1.0)
        evs = w.events
        assert names_in(evs, "CREATE").count("mine.eml") == 1, evs
        assert names_in(evs, "MOVED_TO").count(victim) == 1, evs
        assert names_in(evs, "ATTRIB").count(victim) <= 1, evs
        assert not names_in(evs, "DELETE"), evs
    assert sorted(os.listdir(m.path("Archive"))).count("mine.eml") == 1
    assert len(srv.items("Archive", subject="Mine")) == 1


def test_events_survive_a_dropped_stream(live):
    srv, m = live
    srv.drop_streams()
    before = set(os.listdir(m.path("Inbox")))
    with Watcher() as w:
        w.add(m.path("Inbox"))
        # delivered while the client is reconnecting: queued on the
        # subscription, or found by the resync after a new one
        srv.deliver("Inbox", subject="Across the gap")
        name = first_new_name(m, "Inbox", before)
        w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"}, timeout=20)
    wait_for(lambda: "notifications: push" in m.status(), 30, what="the stream back")
    with Watcher() as w:
        w.add(m.path("Inbox"))
        srv.deliver("Inbox", subject="After the gap")
        w.wait_for(lambda evs: any("CLOSE_WRITE" in e.kinds for e in evs), 10)


def test_subscription_lost_by_the_server_resyncs(live):
    srv, m = live
    srv.expire_subscriptions()
    srv.drop_streams()
    before = set(os.listdir(m.path("Inbox")))
    srv.deliver("Inbox", subject="While forgotten")
    first_new_name(m, "Inbox", before)  # found by the resync
    wait_for(lambda: srv.subscriptions(kind="streaming"), 30, what="a new subscription")


def test_polling_still_reflects(server, mount):
    """With --no-notify the changes come at the next poll, and still as
    inotify events."""
    m = mount(server, extra=["--no-notify"])
    m.wait_synced()
    assert "notifications: off" in m.status()
    before = set(os.listdir(m.path("Inbox")))
    with Watcher() as w:
        w.add(m.path("Inbox"))
        server.deliver("Inbox", subject="Polled")
        name = first_new_name(m, "Inbox", before)
        w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"})
    done, fallback = reflection_counts(m)
    assert done >= 1 and fallback == 0, (done, fallback)


def test_read_only_mount_refuses_changes_and_still_has_events(server, mount):
    m = mount(server, extra=["-o", "ro"])
    m.wait_synced()
    wait_for(lambda: "notifications: push" in m.status(), 30, what="a subscription")
    before = set(os.listdir(m.path("Inbox")))
    victim = sorted(before)[0]
    for action in (lambda: write(m.path("Inbox", "x.eml"), message("x")),
                   lambda: os.unlink(m.path("Inbox", victim)),
                   lambda: os.mkdir(m.path("Inbox", "New")),
                   lambda: os.rename(m.path("Inbox", victim), m.path("Archive", victim)),
                   lambda: os.setxattr(m.path("Inbox", victim), "user.mail.read", b"1")):
        with pytest.raises(OSError) as e:
            action()
        assert e.value.errno == 30  # EROFS
    with Watcher() as w:
        w.add(m.path("Inbox"))
        server.deliver("Inbox", subject="Read-only news")
        name = first_new_name(m, "Inbox", before)
        w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"})


@pytest.mark.skipif(not shutil.which("gio"), reason="gio (libglib2.0-bin) is not installed")
def test_gio_monitor_sees_changes(live):
    srv, m = live
    p = subprocess.Popen(["gio", "monitor", "--dir", m.path("Inbox")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        time.sleep(0.5)  # gio sets its watch up
        before = set(os.listdir(m.path("Inbox")))
        srv.deliver("Inbox", subject="Seen by GIO")
        name = first_new_name(m, "Inbox", before)
        wait_for(lambda: any(name in ln and "created" in ln for ln in lines), 10,
                 what="gio monitor to report %r created" % name)
        item = srv.items("Inbox", subject="Seen by GIO")[0]
        srv.mark_read(item["id"], True)
        wait_for(lambda: any(name in ln and "attribute" in ln for ln in lines), 10,
                 what="gio monitor to report an attribute change")
        srv.delete(item["id"])
        wait_for(lambda: any(name in ln and "deleted" in ln for ln in lines), 10,
                 what="gio monitor to report %r deleted" % name)
    finally:
        p.terminate()
        p.wait(5)


def test_unmount_while_events_flow_leaves_nothing_behind(server, mount):
    m = mount(server)
    m.wait_synced()
    stop = threading.Event()

    def flood():
        i = 0
        while not stop.is_set() and i < 400:
            try:
                server.deliver("Inbox", subject="Flood %d" % i)
            except Exception:
                return
            i += 1

    with Watcher() as w:
        w.add(m.path("Inbox"))
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        w.wait_for(lambda evs: len(evs) >= 6, 20, "events flowing")
        m.stop(busy_retries=20)  # fusermount3 -u; the daemon must exit
        stop.set()
        t.join(30)
    assert not os.path.ismount(m.mountpoint)
    assert os.listdir(m.mountpoint) == []  # nothing written underneath
