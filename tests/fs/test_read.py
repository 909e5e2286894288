"""test_read.py - what a user reading a mounted mailbox relies on: the tree
equals the server's, every message's bytes equal the server's MIME, grep
finds what is there, names are safe, xattrs tell the truth, the control
entry works without being listed, and the mount refuses writes."""
import errno
import os
import stat
import subprocess

import pytest

from conftest import expected_tree


def test_tree_equals_server(shared):
    srv, m = shared
    want = expected_tree(srv.mailbox())
    tree = m.tree()
    got_dirs = {p for p in tree if p}
    assert got_dirs == set(want), "folders differ: missing %s, extra %s" % (
        set(want) - got_dirs, got_dirs - set(want))
    for path, items in want.items():
        assert len(tree[path]) == len(items), "message count differs in %r" % path
    # non-mail folders are not shown
    assert "Calendar" not in os.listdir(m.mountpoint)
    assert "Contacts" not in os.listdir(m.mountpoint)


def test_every_message_is_the_servers_mime(shared):
    srv, m = shared
    want = expected_tree(srv.mailbox())
    checked = 0
    for path, items in want.items():
        seen = set()
        for name in os.listdir(m.path(path)):
            p = m.path(path, name)
            if os.path.isdir(p):
                continue
            item_id = os.getxattr(p, "user.exchangefs.id").decode()
            assert item_id in items, "%s is not a server item of %s" % (name, path)
            assert item_id not in seen, "item shown twice: " + name
            seen.add(item_id)
            with open(p, "rb") as f:
                data = f.read()
            assert data == srv.item_mime(item_id), "content of %s/%s differs" % (path, name)
            # stat is exact once the body is cached
            assert os.stat(p).st_size == len(data)
            checked += 1
        assert seen == set(items), "items missing in %r" % path
    assert checked >= 400


def test_grep_finds_known_string(shared):
    srv, m = shared
    r = subprocess.run(["grep", "-rl", "invoice 4711", m.mountpoint], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = r.stdout.splitlines()
    assert len(files) == 1
    assert os.getxattr(files[0], "user.exchangefs.id").decode() == srv.markers()["invoice 4711"][0]
    r = subprocess.run(["grep", "-rlF", "quarterly-needle-7f3a", m.mountpoint],
                       capture_output=True, text=True)
    ids = sorted(os.getxattr(f, "user.exchangefs.id").decode() for f in r.stdout.splitlines())
    assert ids == sorted(srv.markers()["quarterly-needle-7f3a"])


def test_names_are_safe_and_formatted(shared):
    srv, m = shared
    hostile = set(srv.markers()["hostile"])
    found = 0
    for dirpath, dirnames, filenames in os.walk(m.mountpoint):
        for n in filenames:
            b = n.encode("utf-8", "surrogateescape")
            assert len(b) <= 255
            assert "/" not in n and not n.startswith(".")
            assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in n), repr(n)
            b.decode("utf-8")  # valid UTF-8
            assert n.endswith(".eml")
            assert n[4] == "-" and n[7] == "-" and n[10] == " " and n[15] == " ", n
            p = os.path.join(dirpath, n)
            if os.getxattr(p, "user.exchangefs.id").decode() in hostile:
                found += 1
                # a hostile name stays inside its folder
                assert os.path.dirname(os.path.realpath(p)) == os.path.realpath(dirpath)
    assert found == len(hostile)


def test_xattrs(shared):
    srv, m = shared
    item_id = srv.markers()["invoice 4711"][0]
    info = srv.item_info(item_id)
    want = expected_tree(srv.mailbox())
    path = next(p for p, items in want.items() if item_id in items)
    name = next(n for n in os.listdir(m.path(path))
                if not os.path.isdir(m.path(path, n)) and
                os.getxattr(m.path(path, n), "user.exchangefs.id").decode() == item_id)
    p = m.path(path, name)
    attrs = set(os.listxattr(p))
    for a in ("user.mail.subject", "user.mail.from", "user.mail.date", "user.mail.read",
              "user.mail.class", "user.mail.size", "user.exchangefs.id"):
        assert a in attrs
    assert os.getxattr(p, "user.mail.subject").decode() == info["subject"]
    assert os.getxattr(p, "user.mail.read").decode() == ("1" if info["is_read"] else "0")
    assert os.getxattr(p, "user.mail.class").decode() == info["item_class"]
    assert os.getxattr(p, "user.mail.date").decode() == info["received_iso"]
    assert int(os.getxattr(p, "user.mail.size")) == info["size"]
    assert info["from_addr"] in os.getxattr(p, "user.mail.from").decode()
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.nonexistent")
    assert e.value.errno == errno.ENODATA
    r = subprocess.run(["getfattr", "-d", p], capture_output=True, text=True)
    assert r.returncode == 0 and "user.mail.subject" in r.stdout
    # folders have attributes too
    assert os.getxattr(m.path("Inbox"), "user.exchangefs.folder_class") == b"IPF.Note"


def test_control_entry_resolves_but_is_not_listed(shared):
    srv, m = shared
    assert ".exchangefs" not in os.listdir(m.mountpoint)
    r = subprocess.run(["find", m.mountpoint], capture_output=True, text=True)
    assert ".exchangefs" not in r.stdout
    st = m.status()
    assert "connection: online" in st
    assert "Inbox" in st and "folder progress" in st
    assert "last error:" in st
    assert sorted(os.listdir(m.path(".exchangefs"))) == ["rejected", "status"]


def test_messages_outside_drafts_refuse_writes(shared):
    """Received messages are read-only (their flags are not: test_write)."""
    srv, m = shared
    inbox = m.path("Inbox")
    some = m.path("Inbox", next(n for n in os.listdir(inbox) if n.endswith(".eml")))
    for action in (lambda: open(some, "ab", buffering=0).write(b"x"),
                   lambda: os.truncate(some, 0),
                   lambda: os.setxattr(some, "user.mail.subject", b"1"),
                   lambda: os.symlink("x", os.path.join(inbox, "link"))):
        with pytest.raises(OSError) as e:
            action()
        assert e.value.errno == errno.EPERM


def test_stat_and_statfs(shared):
    srv, m = shared
    st = os.stat(m.path("Inbox"))
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == os.getuid()
    sv = os.statvfs(m.mountpoint)
    assert sv.f_namemax == 255
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", m.mountpoint], capture_output=True, text=True)
    assert r.stdout.strip() == "fuse.exchangefs"


def test_cache_is_private(shared):
    """Cache files 0600 in 0700 directories, WAL and bodies included."""
    srv, m = shared
    seen = 0
    for dirpath, dirnames, filenames in os.walk(m.cache_dir):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for n in filenames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, n)).st_mode)
            assert mode == 0o600, "%s is %o" % (n, mode)
            seen += 1
    assert seen > 2  # cache.db, its WAL, bodies
