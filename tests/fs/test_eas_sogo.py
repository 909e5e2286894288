"""test_eas_sogo.py - the ActiveSync backend mounted against a real SOGo 5.8
(ActiveSync 14.1), as a new user would use it: the tree, the exact MIME,
grep, a remount from the cache, read and follow-up flags, move, delete,
folders, sending through Outbox, new mail arriving as an inotify event
(Ping), a wrong password, and a draft refused with the reason.

Each test gets a fresh SOGo user (tests/sogo/sogo_server.py starts SOGo
once per session, or skips saying why; CI requires it).  What the tests
check on the server side is read back over IMAP, where SOGo keeps the mail.
"""
import errno
import os
import subprocess
import sys
import time
import uuid

import pytest

from inotify import Watcher
from mountlib import Mount, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "sogo"))
from sogo_server import sogo, sogo_user  # noqa: E402,F401  (pytest fixtures)


def quote(box):
    return '"%s"' % box


def append(u, box, subject, body="hello\r\n", extra=b""):
    """Put a message into box over IMAP; returns its exact bytes and Message-ID."""
    mid = "<%s@eas-test>" % uuid.uuid4().hex
    msg = ("From: Sender <sender@example.test>\r\nTo: %s\r\n"
           "Subject: %s\r\nMessage-ID: %s\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
           % (u.address, subject, mid, body)).encode() + extra
    u.deliver(msg, folder=box)
    return msg, mid


def imap_find(u, box, mid):
    """(uid, flags) of the message with this Message-ID in box, or None."""
    m = u.imap()
    try:
        typ, _ = m.select(quote(box))
        if typ != "OK":
            return None
        typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", mid, "UNDELETED")
        uids = data[0].split()
        if not uids:
            return None
        typ, data = m.uid("FETCH", uids[-1], "(FLAGS)")
        return uids[-1], data[0].decode()
    finally:
        m.logout()


def find_file(m, folder, subject):
    for n in os.listdir(m.path(folder)):
        if subject in n:
            return m.path(folder, n)
    return None


@pytest.fixture
def eas(tmp_path, sogo_user):
    mounts = []
    u = sogo_user

    def start(extra=(), cache=None):
        m = Mount(str(tmp_path / "mnt"), u.eas_url, u.name, u.password,
                  cache or str(tmp_path / "cache"), str(tmp_path / ("daemon-%d.log" % len(mounts))),
                  extra=["--protocol", "eas", "--sync-interval", "2", *extra])
        mounts.append(m)
        m.start()
        m.wait_synced(timeout=180)
        return m
    start.user = u
    yield start
    for m in mounts:
        if m.proc:
            m.kill()


def test_eas_tree_exact_mime_grep(eas):
    tag = uuid.uuid4().hex[:10]
    small, _ = append(eas.user, "INBOX", "eas-read small " + tag)
    big_body = "".join("line %06d of a longer message %s\r\n" % (i, tag) for i in range(8000))
    big, _ = append(eas.user, "INBOX", "eas-read big " + tag, body=big_body)
    m = eas()
    top = sorted(os.listdir(m.mountpoint))
    for name in ("INBOX", "Sent", "Trash", "Drafts", "Outbox"):
        assert name in top, top
    # only mail folders: SOGo's calendars and address book stay hidden
    assert not any("Calendar" in n or "Address" in n for n in top), top
    f_small = wait_for(lambda: find_file(m, "INBOX", "eas-read small " + tag), 30,
                       what="the small message")
    f_big = find_file(m, "INBOX", "eas-read big " + tag)
    assert f_big, os.listdir(m.path("INBOX"))
    with open(f_small, "rb") as f:
        assert f.read() == small
    with open(f_big, "rb") as f:
        assert f.read() == big
    assert os.stat(f_big).st_size == len(big)
    assert os.getxattr(f_small, "user.mail.subject").decode() == "eas-read small " + tag
    r = subprocess.run(["grep", "-rl", "line 004321 of a longer message " + tag, m.mountpoint],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines() == [f_big], (r.stdout, r.stderr)
    ino = os.stat(f_big).st_ino
    m.stop()
    # remounted from the cache: the same names and inodes, offline too
    m2 = eas()
    assert os.stat(f_big).st_ino == ino
    with open(f_small, "rb") as f:
        assert f.read() == small
    m2.stop()


def test_eas_flags_move_delete(eas):
    tag = uuid.uuid4().hex[:10]
    _, mid = append(eas.user, "INBOX", "eas-write " + tag)
    m = eas()
    p = wait_for(lambda: find_file(m, "INBOX", "eas-write " + tag), 30, what="the message")
    assert os.getxattr(p, "user.mail.read") == b"0"
    os.setxattr(p, "user.mail.read", b"1")
    os.setxattr(p, "user.mail.flag", b"flagged")
    wait_for(lambda: (imap_find(eas.user, "INBOX", mid) or (0, ""))[1].count("\\Seen") and
             "\\Flagged" in imap_find(eas.user, "INBOX", mid)[1], 30, what="\\Seen and \\Flagged on the server")
    os.setxattr(p, "user.mail.flag", b"none")
    wait_for(lambda: "\\Flagged" not in imap_find(eas.user, "INBOX", mid)[1], 30, what="flag cleared")
    # move to Junk, then delete (to Trash)
    name = os.path.basename(p)
    os.rename(p, m.path("Junk", name))
    wait_for(lambda: imap_find(eas.user, "Junk", mid), 30, what="the message in Junk on the server")
    assert imap_find(eas.user, "INBOX", mid) is None
    os.unlink(m.path("Junk", name))
    wait_for(lambda: imap_find(eas.user, "Trash", mid), 30, what="the message in Trash on the server")
    wait_for(lambda: find_file(m, "Trash", "eas-write " + tag), 30, what="the message in Trash")
    m.stop()


def test_eas_folders(eas):
    tag = uuid.uuid4().hex[:8]
    m = eas()
    os.mkdir(m.path("eas-dir-" + tag))
    wait_for(lambda: "eas-dir-" + tag in eas.user.folders(), 30, what="the folder on the server")
    os.rename(m.path("eas-dir-" + tag), m.path("eas-ren-" + tag))
    wait_for(lambda: "eas-ren-" + tag in eas.user.folders(), 30, what="the renamed folder")
    assert "eas-dir-" + tag not in eas.user.folders()
    os.rmdir(m.path("eas-ren-" + tag))
    wait_for(lambda: not any(tag in f for f in eas.user.folders()), 30, what="the folder deleted")
    m.stop()


def test_eas_send_through_outbox(eas):
    tag = uuid.uuid4().hex[:10]
    m = eas()
    msg = ("From: test@example.test\r\nTo: test2@example.test\r\nSubject: eas-send %s\r\n"
           "Message-ID: <%s@eas-send>\r\n\r\nsent by the ActiveSync backend\r\n" % (tag, tag))
    with open(m.path("Outbox", "new.eml"), "w") as f:
        f.write(msg)

    def sunk():
        return any(("eas-send " + tag).encode() in b for b in eas.user.sent())
    wait_for(sunk, 60, what="the message at the SMTP sink")
    wait_for(lambda: find_file(m, "Sent", "eas-send " + tag), 60, what="the copy in Sent")
    wait_for(lambda: not os.listdir(m.path("Outbox")), 30, what="an empty Outbox")
    m.stop()


def test_eas_new_mail_inotify(eas):
    tag = uuid.uuid4().hex[:10]
    # a sync interval far longer than the test: only Ping can tell
    m = eas(extra=["--sync-interval", "600"])
    with Watcher() as w:
        w.add(m.path("INBOX"))
        time.sleep(1)
        append(eas.user, "INBOX", "eas-push " + tag)
        # SOGo looks for changes every 5 s of a Ping; the sync interval
        # alone would also find it, so this checks the time too
        t0 = time.monotonic()
        w.wait_for(lambda evs: any(("eas-push " + tag) in (e.name or "") for e in evs), 60,
                   what="IN_CREATE of the new message")
        took = time.monotonic() - t0
    print("new mail appeared after %.1f s" % took)
    m.stop()


def test_eas_wrong_password(tmp_path, sogo_user):
    m = Mount(str(tmp_path / "mnt"), sogo_user.eas_url, sogo_user.name, "wrong",
              str(tmp_path / "cache"),
              str(tmp_path / "daemon.log"), extra=["--protocol", "eas"])
    m.start(expect_mount=False)
    rc = m.proc.wait(60)
    m.proc = None
    m.log.close()
    assert rc != 0
    text = m.log_text()
    assert "user name or password" in text, text
    assert "wrong" not in text.replace("wrong password", "")


def test_eas_draft_on_14_1_says_why(eas):
    """SOGo speaks ActiveSync 14.1, which cannot store a draft: close()
    fails with ENOTSUP (the backend said so when it connected), the bytes
    are kept in rejected/ with the reason, and the status says why."""
    m = eas()
    with pytest.raises(OSError) as e:
        with open(m.path("Drafts", "draft.eml"), "w") as f:
            f.write("From: test@example.test\r\nSubject: a draft\r\n\r\ndraft body\r\n")
    assert e.value.errno == errno.ENOTSUP
    st = m.status()
    assert "ActiveSync 14.1) cannot store a draft" in st, st
    assert "draft.eml" in os.listdir(m.path(".exchangefs", "rejected"))
    m.stop()
