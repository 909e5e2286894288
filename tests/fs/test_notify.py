"""test_notify.py - server changes become inotify events on the mount
("reflection", fs/notify.c), pushed by the server's notifications
(cache/watch.c: EWS streaming subscriptions, ActiveSync Ping): every
mapping of the issue, at several folder depths, no echo of the user's own
changes, events after a dropped stream, a read-only mount, gio monitor, and
unmounting while events flow. Each test runs on every kind of server
(tests/fs/servers.py: the test server over EWS and over ActiveSync 16.1,
SOGo over ActiveSync 14.1) unless a kind truly cannot do it (the skip says
why) or the test is EWS-specific by nature (its docstring says so)."""
import os
import shutil
import subprocess
import threading
import time

import pytest

from inotify import Watcher
from mountlib import wait_for
from test_write import drained, file_of, message, needs, write

SOGO_WAIT = 60          # SOGo looks for changes every 5 s; its Ping answers within 5-10 s


def wait_s(target, fast=10):
    return SOGO_WAIT if target.kind == "sogo" else fast


def mounted(target, mount, interval="600", extra=()):
    """target mounted with notifications on and a long poll interval (so
    what arrives quickly came by notification), once it is subscribed."""
    m = mount(target, extra=["--sync-interval", interval, *extra])
    m.wait_synced()
    wait_for(lambda: "notifications: push" in m.status(), 30, what="a subscription")
    return m


# For what happens in the daemon and the kernel alone (refusals, unmount,
# gio reading inotify): the test server's two protocols show it; SOGo (a
# new user and its corpus, ~5 s a test, Ping every 5-10 s) would add only
# time to the suite's budget.
LOCAL = pytest.mark.parametrize("target", ["ews", "eas"], indirect=True)
# Mappings test_backends.py::test_server_changes_are_inotify_events checks
# on SOGo in one mount (delete, read flag, folder create and delete), and
# polling, which every SOGo test there does (sync interval 1 s): SOGo left
# out here for the suite's time budget.
ON_TEST_SERVER = LOCAL


@pytest.fixture
def live(target, mount, request):
    target.require(*getattr(request.function, "needs", ()))   # before mounting
    return target, mounted(target, mount)


@pytest.fixture
def ews_live(server, mount):
    """The EWS test server (120 messages) mounted as live is, for the
    EWS-only tests."""
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


def name_of(target, m, folder, item_id):
    """The file name of server item item_id in folder (by its bytes: an
    ActiveSync id is not the test server's)."""
    name = file_of(m.path(folder), target.srv.item_mime(item_id))
    assert name, "no file for item %s in %s" % (item_id, folder)
    return name


def first_new_name(m, folder, before, timeout=10):
    return wait_for(lambda: sorted(set(os.listdir(m.path(folder))) - before), timeout,
                    what="a new file in %s" % folder)[0]


@pytest.mark.parametrize("target,folder", [
    ("ews", "Inbox"), ("ews", "Inbox/Projects/2026"), ("eas", "Inbox"), ("eas", "Inbox/Projects/2026"),
    ("sogo", "Inbox/Projects/2026")], indirect=["target"])
def test_new_message_is_create_and_close_write(live, folder):
    """At two depths; SOGo at the deeper one only (its Inbox is
    test_backends.py::test_new_mail_appears's)."""
    target, m = live
    srv = target.srv
    folder = folder.replace("Inbox", target.inbox)
    d = m.path(folder)
    before = set(os.listdir(d))
    with Watcher() as w:
        w.add(d)
        t0 = time.monotonic()
        srv.deliver(folder, subject="Pushed news")
        w.wait_for(lambda evs: any("CLOSE_WRITE" in e.kinds for e in evs), wait_s(target), "CLOSE_WRITE")
        latency = time.monotonic() - t0
        name = first_new_name(m, folder, before)
        evs = w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"})
        assert [e for e in evs if "CREATE" in e.kinds][0].at <= \
            [e for e in evs if "CLOSE_WRITE" in e.kinds][0].at
        if target.can("notify_fast"):
            assert latency < 5, latency
        # the file is there, whole, as the event said
        with open(os.path.join(d, name), "rb") as f:
            assert b"Pushed news" in f.read()
        w.settle(0.3)
        assert names_in(w.events, "CREATE").count(name) == 1


@ON_TEST_SERVER
def test_deleted_message_is_delete(live):
    target, m = live
    srv, folder = target.srv, target.inbox + "/Receipts"
    items = srv.items(folder)
    if not items:   # SOGo's small corpus left it empty
        item_id = srv.deliver(folder, subject="To be deleted")
        wait_for(lambda: file_of(m.path(folder), srv.item_mime(item_id)), wait_s(target),
                 what="the new message on the mount")
        items = srv.items(folder)
    item = items[0]
    name = name_of(target, m, folder, item["id"])
    with Watcher() as w:
        w.add(m.path(folder))
        srv.delete(item["id"])
        w.wait_kinds(name, {"DELETE"}, timeout=wait_s(target))
    assert name not in os.listdir(m.path(folder))


def test_moved_message_is_one_move_with_one_cookie(ews_live):
    """EWS only: its MovedEvent links the two ends of a move made on the
    server. ActiveSync reports a delete and an add with nothing linking
    them (test_backends.py::test_server_changes_are_inotify_events)."""
    srv, m = ews_live
    item = srv.items("Inbox")[0]
    name = file_of(m.path("Inbox"), srv.item_mime(item["id"]))
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


@ON_TEST_SERVER
def test_flags_are_attrib(live):
    target, m = live
    srv, inbox = target.srv, target.inbox
    item = srv.items(inbox)[1]
    name = name_of(target, m, inbox, item["id"])
    p = m.path(inbox, name)
    t = wait_s(target)
    with Watcher() as w:
        w.add(m.path(inbox))
        srv.mark_read(item["id"], not item["is_read"])
        w.wait_kinds(name, {"ATTRIB"}, timeout=t)
        assert os.getxattr(p, "user.mail.read") == (b"0" if item["is_read"] else b"1")
        w.clear()
        srv.set_flag(item["id"], "Flagged")
        w.wait_kinds(name, {"ATTRIB"}, timeout=t)
        assert os.getxattr(p, "user.mail.flag") == b"flagged"
        if target.can("categories"):
            w.clear()
            srv.set_categories(item["id"], ["Red", "Blue"])
            w.wait_kinds(name, {"ATTRIB"}, timeout=t)
            assert os.getxattr(p, "user.mail.categories") == b"Red,Blue"
        w.settle(0.3)
        assert not names_in(w.events, "CREATE") and not names_in(w.events, "DELETE")


@needs("drafts")
def test_draft_edited_elsewhere_is_modify(live):
    target, m = live
    srv = target.srv
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


def tree_mounted(target, mount):
    """live, for folder changes: ActiveSync's Ping names the folders it
    watches, and neither the test server nor SOGo answers it for a folder
    created elsewhere, so there the folder tree comes by the periodic
    FolderSync (every second); EWS pushes it."""
    return mounted(target, mount, interval="600" if target.kind == "ews" else "1")


def test_folder_changes_are_directory_events(target, mount):
    m = tree_mounted(target, mount)
    srv, inbox, t = target.srv, target.inbox, wait_s(target)
    with Watcher() as w:
        w.add(m.path(inbox))
        w.add(m.path("Archive"))
        srv.create_folder(inbox, "Pushed")
        ev = w.wait_kinds("Pushed", {"CREATE"}, timeout=t)
        assert ev[0].is_dir and os.path.isdir(m.path(inbox, "Pushed"))
        w.add(m.path(inbox, "Pushed"))  # and a level deeper
        srv.create_folder(inbox + "/Pushed", "Deeper")
        w.wait_kinds("Deeper", {"CREATE"}, path=m.path(inbox, "Pushed"), timeout=t)
        srv.rename_folder(inbox + "/Pushed", "Renamed")
        w.wait_kinds("Pushed", {"MOVED_FROM"}, timeout=t)
        ev = w.wait_kinds("Renamed", {"MOVED_TO"}, timeout=t)
        assert ev[-1].is_dir and os.path.isdir(m.path(inbox, "Renamed", "Deeper"))
        srv.move_folder(inbox + "/Renamed", "Archive")
        w.wait_kinds("Renamed", {"MOVED_TO"}, path=m.path("Archive"), timeout=t)
        cookies = {e.cookie for e in w.events if e.name == "Renamed" and
                   ("MOVED_FROM" in e.kinds or "MOVED_TO" in e.kinds)}
        assert len(cookies) == 2  # one per move, each shared by FROM and TO


@ON_TEST_SERVER
def test_folder_deleted_after_tree_changes_is_delete(target, mount):
    m = tree_mounted(target, mount)
    srv, inbox, t = target.srv, target.inbox, wait_s(target)
    with Watcher() as w:
        w.add(m.path(inbox))
        srv.create_folder(inbox, "Doomed")
        w.wait_kinds("Doomed", {"CREATE"}, timeout=t)
        srv.delete_folder(inbox + "/Doomed")
        w.wait_kinds("Doomed", {"DELETE"}, path=m.path(inbox), timeout=t)
    assert "Doomed" not in os.listdir(m.path(inbox))


def test_folder_gone_before_subscribing(ews_live):
    """A folder deleted on the server after the client learnt of it but
    before its new subscription reached the server: Subscribe fails
    (ErrorFolderNotFound) and no stream covers the deletion.  The client
    syncs the tree instead of retrying the same set (it used to retry
    forever and miss the deletion until the next full sync). EWS only:
    an EWS Subscribe names its folders and fails on a gone one; a Ping
    naming a gone folder is status 7, a FolderSync."""
    srv, m = ews_live
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


def test_own_changes_make_no_echo(target, mount):
    """What the user does through the mount makes its events once, from
    the kernel (a new file's CREATE, setxattr's ATTRIB, rename's
    MOVED_FROM/TO with one cookie); the server reporting it back (by
    notification, and at the next syncs) adds nothing. The new file is a
    message stored in Archive on EWS, a draft on ActiveSync 16.1 (which
    cannot store a message elsewhere), none on SOGo (14.1 stores neither)."""
    srv, inbox = target.srv, target.inbox
    m = mount(target)
    m.wait_synced()
    new_in = "Archive" if target.kind == "ews" else "Drafts" if target.can("drafts") else None
    x, y = srv.items(inbox)[:2]
    nx, ny = name_of(target, m, inbox, x["id"]), name_of(target, m, inbox, y["id"])
    ino_y = os.stat(m.path(inbox, ny)).st_ino
    with Watcher() as w:
        for d in {"Archive", inbox, new_in or inbox}:
            w.add(m.path(d))
        if new_in:
            write(m.path(new_in, "mine.eml"), message("Mine"))
        os.setxattr(m.path(inbox, nx), "user.mail.flag", b"flagged")
        os.rename(m.path(inbox, ny), m.path("Archive", ny))
        drained(m)
        wait_for(lambda: srv.item_info(x["id"])["flag"] == "Flagged"
                 and [it["folder_path"] for it in srv.mailbox()["items"]
                      if it["message_id"] == y["message_id"]] == ["Archive"],
                 wait_s(target, 30), what="the flag and the move on the server")
        # the server has them all; let the next syncs (SOGo: and its 5 s
        # change scan) see them too
        m.wait_next_sync()
        m.wait_next_sync()
        w.settle(6 if target.kind == "sogo" else 1.0)
        evs = w.events
        assert names_in(evs, "ATTRIB").count(nx) == 1, evs
        frm = [e for e in evs if "MOVED_FROM" in e.kinds]
        to = [e for e in evs if "MOVED_TO" in e.kinds]
        assert [e.name for e in frm] == [ny] and [e.name for e in to] == [ny], evs
        assert frm[0].cookie == to[0].cookie != 0
        assert not names_in(evs, "DELETE"), evs
        assert set(names_in(evs, "CREATE")) == ({"mine.eml"} if new_in else set()), evs
        assert names_in(evs, "CREATE").count("mine.eml") == (1 if new_in else 0), evs
        assert not [e for e in evs if "MODIFY" in e.kinds and e.name != "mine.eml"], evs
    assert os.stat(m.path("Archive", ny)).st_ino == ino_y
    if new_in:
        assert sorted(os.listdir(m.path(new_in))).count("mine.eml") == 1
        assert len(srv.items(new_in, subject="Mine")) == 1


def test_events_survive_a_dropped_stream(target, mount):
    """EWS: the streaming connection is dropped; ActiveSync (the test
    server): the Ping's connection is reset. Either way what was delivered
    meanwhile arrives, and so do later changes. SOGo has no fault knobs."""
    target.require("faults")
    srv, inbox = target.srv, target.inbox
    m = mounted(target, mount)
    if target.kind == "ews":
        srv.drop_streams()
    else:
        srv.fault("reset", operation="Ping")
    before = set(os.listdir(m.path(inbox)))
    with Watcher() as w:
        w.add(m.path(inbox))
        # delivered while the client is reconnecting: queued on the
        # subscription, or found by the resync after a new one
        srv.deliver(inbox, subject="Across the gap")
        name = first_new_name(m, inbox, before, timeout=20)
        w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"}, timeout=20)
    if target.kind == "eas":
        wait_for(lambda: not srv.stats()["faults"], 20, what="the Ping reset")
    wait_for(lambda: "notifications: push" in m.status(), 30, what="the stream back")
    with Watcher() as w:
        w.add(m.path(inbox))
        srv.deliver(inbox, subject="After the gap")
        w.wait_for(lambda evs: any("CLOSE_WRITE" in e.kinds for e in evs), 10)


def test_subscription_lost_by_the_server_resyncs(ews_live):
    """EWS only: a streaming subscription the server forgot (ActiveSync
    has no subscription: every Ping names its folders)."""
    srv, m = ews_live
    srv.expire_subscriptions()
    srv.drop_streams()
    before = set(os.listdir(m.path("Inbox")))
    srv.deliver("Inbox", subject="While forgotten")
    first_new_name(m, "Inbox", before)  # found by the resync
    wait_for(lambda: srv.subscriptions(kind="streaming"), 30, what="a new subscription")


@ON_TEST_SERVER
def test_polling_still_reflects(target, mount):
    """With --no-notify the changes come at the next poll, and still as
    inotify events."""
    srv, inbox = target.srv, target.inbox
    m = mount(target, extra=["--no-notify"])
    m.wait_synced()
    assert "notifications: off" in m.status()
    before = set(os.listdir(m.path(inbox)))
    with Watcher() as w:
        w.add(m.path(inbox))
        srv.deliver(inbox, subject="Polled")
        name = first_new_name(m, inbox, before, timeout=wait_s(target))
        w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"})
    done, fallback = reflection_counts(m)
    assert done >= 1 and fallback == 0, (done, fallback)


@LOCAL
def test_read_only_mount_refuses_changes_and_still_has_events(target, mount):
    srv, inbox = target.srv, target.inbox
    m = mounted(target, mount, interval="1", extra=["-o", "ro"])
    before = set(os.listdir(m.path(inbox)))
    victim = sorted(n for n in before if n.endswith(".eml"))[0]
    for action in (lambda: write(m.path(inbox, "x.eml"), message("x")),
                   lambda: os.unlink(m.path(inbox, victim)),
                   lambda: os.mkdir(m.path(inbox, "New")),
                   lambda: os.rename(m.path(inbox, victim), m.path("Archive", victim)),
                   lambda: os.setxattr(m.path(inbox, victim), "user.mail.read", b"1")):
        with pytest.raises(OSError) as e:
            action()
        assert e.value.errno == 30  # EROFS
    with Watcher() as w:
        w.add(m.path(inbox))
        srv.deliver(inbox, subject="Read-only news")
        name = first_new_name(m, inbox, before, timeout=wait_s(target))
        w.wait_kinds(name, {"CREATE", "CLOSE_WRITE"})


@pytest.mark.skipif(not shutil.which("gio"), reason="gio (libglib2.0-bin) is not installed")
@LOCAL
def test_gio_monitor_sees_changes(live):
    target, m = live
    srv, inbox, t = target.srv, target.inbox, wait_s(target)
    p = subprocess.Popen(["gio", "monitor", "--dir", m.path(inbox)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        time.sleep(0.5)  # gio sets its watch up
        before = set(os.listdir(m.path(inbox)))
        item_id = srv.deliver(inbox, subject="Seen by GIO")
        name = first_new_name(m, inbox, before, timeout=t)
        wait_for(lambda: any(name in ln and "created" in ln for ln in lines), 10,
                 what="gio monitor to report %r created" % name)
        srv.mark_read(item_id, True)
        wait_for(lambda: any(name in ln and "attribute" in ln for ln in lines), t,
                 what="gio monitor to report an attribute change")
        srv.delete(item_id)
        wait_for(lambda: any(name in ln and "deleted" in ln for ln in lines), t,
                 what="gio monitor to report %r deleted" % name)
    finally:
        p.terminate()
        p.wait(5)


@LOCAL
def test_unmount_while_events_flow_leaves_nothing_behind(target, mount):
    srv, inbox = target.srv, target.inbox
    m = mount(target)
    m.wait_synced()
    stop = threading.Event()

    def flood():
        i = 0
        while not stop.is_set() and i < 400:
            try:
                srv.deliver(inbox, subject="Flood %d" % i)
            except Exception:
                return
            i += 1

    with Watcher() as w:
        w.add(m.path(inbox))
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        w.wait_for(lambda evs: len(evs) >= 6, wait_s(target, 20), "events flowing")
        m.stop(busy_retries=20)  # fusermount3 -u; the daemon must exit
        stop.set()
        t.join(30)
    assert not os.path.ismount(m.mountpoint)
    assert os.listdir(m.mountpoint) == []  # nothing written underneath


@pytest.mark.parametrize("errors", [1, 2])
def test_subscribe_met_by_a_passing_http_500_still_subscribes(server, mount, errors):
    """A plain HTTP 500 (no SOAP fault: a server restarting) answering
    Subscribe is a failure for a while, not a refusal of that form: once
    the server answers again the mount streams (one 500) or at least pulls
    (two in a row), and never ends up polling for the rest of the mount."""
    server.fault("http500", count=errors, operation="Subscribe")
    m = mount(server, extra=["--sync-interval", "600"])
    m.wait_synced()
    want = "notifications: push" if errors == 1 else "notifications: p"
    wait_for(lambda: want in m.status(), 60, what="a subscription after the 500s")
    assert "not offered" not in m.status()
    before = set(os.listdir(m.path("Inbox")))
    server.deliver("Inbox", subject="After the restart")
    first_new_name(m, "Inbox", before, timeout=30)
