"""test_read.py - what a user reading a mounted mailbox relies on: the tree
equals the server's, every message's bytes equal the server's MIME, grep
finds what is there, names are safe, xattrs tell the truth, the control
entry works without being listed, and the mount refuses writes.

Every test runs on every kind of server (tests/fs/servers.py): the test
server over EWS (once with the kernel's zero-message opens, once with every
open going through the daemon: a kernel path, so not repeated per backend),
the test server over ActiveSync 16.1 and SOGo over ActiveSync 14.1 (a 30
message corpus: the smallest that holds the grep markers). Over ActiveSync
user.exchangefs.id is the ActiveSync ServerId, not the server's item id, so
a file is matched to its server item by its bytes there."""
import base64
import email.utils
import errno
import os
import stat
import subprocess
import time

import pytest

from conftest import MountFactory, expected_tree
from servers import make_target

SHARED = [("ews", "zero-open"), ("ews", "open-requests"), ("eas", "zero-open"), ("sogo", "zero-open")]


class Shared:
    """The server and mount shared by this module's read-only tests."""

    def __init__(self, target, m):
        self.target, self.srv, self.m, self.kind = target, target.srv, m, target.kind
        self.inbox = target.inbox
        self.by_mime = {}
        if self.kind != "ews":
            for it in self.srv.mailbox(mime=True)["items"]:
                self.by_mime[base64.b64decode(it["mime_b64"])] = it["id"]

    def item_of(self, path, data=None):
        """The server's id of the item a file shows."""
        if self.kind == "ews":
            return os.getxattr(path, "user.exchangefs.id").decode()
        if data is None:
            with open(path, "rb") as f:
                data = f.read()
        return self.by_mime.get(data)

    def hostile(self):
        return set(self.srv.markers().get("hostile", []))


@pytest.fixture(scope="module", params=SHARED, ids=["-".join(p) for p in SHARED])
def shared(tmp_path_factory, request):
    """One server and one synced mount shared by the read-only tests: 400
    messages on the test server, 30 on SOGo (it stores ~50/s)."""
    kind, opens = request.param
    tmp = tmp_path_factory.mktemp("shared")
    t = make_target(kind, messages=400, sogo_messages=30, seed=11, tls=True)
    try:
        f = MountFactory(tmp, None)
        m = f(t, extra=["--open-requests"] if opens == "open-requests" else [])
        m.wait_synced(timeout=180)
        yield Shared(t, m)
        m.stop()
        f.cleanup()
    finally:
        t.close()


def test_tree_equals_server(shared):
    srv, m = shared.srv, shared.m
    want = expected_tree(srv.mailbox())
    if not shared.target.can("outbox"):
        want["Outbox"] = {}     # the client's own Outbox (servers.CANNOT)
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
    srv, m = shared.srv, shared.m
    want = expected_tree(srv.mailbox())
    checked = 0
    for path, items in want.items():
        seen = set()
        for name in os.listdir(m.path(path)):
            p = m.path(path, name)
            if os.path.isdir(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            item_id = shared.item_of(p, data)
            assert item_id in items, "%s is not a server item of %s" % (name, path)
            assert item_id not in seen, "item shown twice: " + name
            seen.add(item_id)
            assert data == srv.item_mime(item_id), "content of %s/%s differs" % (path, name)
            # stat is exact once the body is cached
            assert os.stat(p).st_size == len(data)
            checked += 1
        assert seen == set(items), "items missing in %r" % path
    assert checked >= (30 if shared.kind == "sogo" else 400)


def test_grep_finds_known_string(shared):
    srv, m = shared.srv, shared.m
    r = subprocess.run(["grep", "-rl", "invoice 4711", m.mountpoint], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = r.stdout.splitlines()
    assert len(files) == 1
    assert shared.item_of(files[0]) == srv.markers()["invoice 4711"][0]
    r = subprocess.run(["grep", "-rlF", "quarterly-needle-7f3a", m.mountpoint],
                       capture_output=True, text=True)
    ids = sorted(shared.item_of(f) for f in r.stdout.splitlines())
    assert ids == sorted(srv.markers()["quarterly-needle-7f3a"]) and ids


def test_names_are_safe_and_formatted(shared):
    m = shared.m
    hostile = shared.hostile()
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
            if shared.item_of(p) in hostile:
                found += 1
                # a hostile name stays inside its folder
                assert os.path.dirname(os.path.realpath(p)) == os.path.realpath(dirpath)
    assert found == len(hostile) and found


def test_xattrs(shared):
    srv, m = shared.srv, shared.m
    item_id = srv.markers()["invoice 4711"][0]
    info = srv.item_info(item_id)
    want = expected_tree(srv.mailbox())
    path = next(p for p, items in want.items() if item_id in items)
    name = next(n for n in os.listdir(m.path(path))
                if not os.path.isdir(m.path(path, n)) and shared.item_of(m.path(path, n)) == item_id)
    p = m.path(path, name)
    attrs = set(os.listxattr(p))
    for a in ("user.mail.subject", "user.mail.from", "user.mail.date", "user.mail.read",
              "user.mail.class", "user.mail.size", "user.exchangefs.id"):
        assert a in attrs
    received = info["received"]
    if shared.kind == "sogo":
        # SOGo's DateReceived is the message's Date header, not the IMAP
        # INTERNALDATE the view reads as "received"
        received = email.utils.parsedate_to_datetime(
            email.message_from_bytes(srv.item_mime(item_id))["Date"]).timestamp()
    received_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(received))
    assert os.getxattr(p, "user.mail.subject").decode() == info["subject"]
    assert os.getxattr(p, "user.mail.read").decode() == ("1" if info["is_read"] else "0")
    assert os.getxattr(p, "user.mail.class").decode() == info.get("item_class", "IPM.Note")
    assert os.getxattr(p, "user.mail.date").decode() == received_iso
    # the server's size: EWS's Size property; over ActiveSync the
    # EstimatedDataSize of the MIME body: its length on the test server,
    # SOGo's own estimate (about 10% more than the IMAP size)
    size = int(os.getxattr(p, "user.mail.size"))
    if shared.kind == "sogo":
        assert 0.8 * info["mime_len"] <= size <= 1.3 * info["mime_len"], (size, info["mime_len"])
    else:
        assert size == info["size" if shared.kind == "ews" else "mime_len"]
    assert info["from_addr"] in os.getxattr(p, "user.mail.from").decode()
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.nonexistent")
    assert e.value.errno == errno.ENODATA
    r = subprocess.run(["getfattr", "-d", p], capture_output=True, text=True)
    assert r.returncode == 0 and "user.mail.subject" in r.stdout
    # folders have attributes too
    assert os.getxattr(m.path(shared.inbox), "user.exchangefs.folder_class") == b"IPF.Note"


def test_foreign_xattr_namespaces_are_not_supported(shared):
    """security.* and system.* (which ls -l probes on every file) answer
    EOPNOTSUPP, not ENODATA: coreutils then stops asking for the rest of
    the listing, so ls -l costs no request per file.  user.* is unchanged,
    and ls -l and getfattr still work."""
    m = shared.m
    inbox = m.path(shared.inbox)
    p = os.path.join(inbox, next(n for n in sorted(os.listdir(inbox))
                                 if not os.path.isdir(os.path.join(inbox, n))))
    for target in (p, inbox):
        for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
            with pytest.raises(OSError) as e:
                os.getxattr(target, name)
            assert e.value.errno == errno.EOPNOTSUPP, (target, name, e.value)
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.nonexistent")
    assert e.value.errno == errno.ENODATA
    assert os.getxattr(p, "user.mail.subject") is not None
    r = subprocess.run(["ls", "-l", inbox], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert os.path.basename(p) in r.stdout
    r = subprocess.run(["getfattr", "-n", "user.mail.subject", p], capture_output=True, text=True)
    assert r.returncode == 0 and "user.mail.subject" in r.stdout, r.stderr


def test_control_entry_resolves_but_is_not_listed(shared):
    m = shared.m
    assert ".exchangefs" not in os.listdir(m.mountpoint)
    r = subprocess.run(["find", m.mountpoint], capture_output=True, text=True)
    assert ".exchangefs" not in r.stdout
    st = m.status()
    assert "connection: online" in st
    assert shared.inbox in st and "folder progress" in st
    assert "last error:" in st
    assert sorted(os.listdir(m.path(".exchangefs"))) == ["rejected", "status"]


def test_messages_outside_drafts_refuse_writes(shared):
    """Received messages are read-only (their flags are not: test_write)."""
    m = shared.m
    inbox = m.path(shared.inbox)
    some = os.path.join(inbox, next(n for n in os.listdir(inbox) if n.endswith(".eml")))
    for action in (lambda: open(some, "ab", buffering=0).write(b"x"),
                   lambda: os.truncate(some, 0),
                   lambda: os.setxattr(some, "user.mail.subject", b"1"),
                   lambda: os.symlink("x", os.path.join(inbox, "link"))):
        with pytest.raises(OSError) as e:
            action()
        assert e.value.errno == errno.EPERM


def test_stat_and_statfs(shared):
    m = shared.m
    st = os.stat(m.path(shared.inbox))
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == os.getuid()
    sv = os.statvfs(m.mountpoint)
    assert sv.f_namemax == 255
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", m.mountpoint], capture_output=True, text=True)
    assert r.stdout.strip() == "fuse.exchangefs"


def test_cache_is_private(shared):
    """Cache files 0600 in 0700 directories, WAL and bodies included."""
    m = shared.m
    seen = 0
    for dirpath, dirnames, filenames in os.walk(m.cache_dir):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for n in filenames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, n)).st_mode)
            assert mode == 0o600, "%s is %o" % (n, mode)
            seen += 1
    assert seen > 2  # cache.db, its WAL, bodies


# ---- a server's hiccup never hides a message (ActiveSync, test server only) --------------

def _eas_box(request, n=6):
    """The test server over ActiveSync with n messages in Inbox/Hiccup, mounted with
    nothing that would re-sync or fetch on its own: {subject: id}, target, mount."""
    t = make_target("eas", messages=10, seed=13)
    request.addfinalizer(t.close)
    t.srv.create_folder(t.inbox, "Hiccup")
    base = int(time.time()) - 86400
    ids = {"Hiccup %02d" % i: t.srv.deliver(t.inbox + "/Hiccup", subject="Hiccup %02d" % i,
                                            body="body %d\r\n" % i, received=base + i)
           for i in range(n)}
    return ids, t


def _named(d, ids):
    return {n: next(s for s in ids if s in n) for n in os.listdir(d) if n.endswith(".eml")}


def test_eas_http500_on_a_body_keeps_the_message(mount, request):
    """One body read answered HTTP 500 by ItemOperations (the message exists): the read
    fails with EIO, the message stays listed, and once the server is well again it reads
    byte-equal. (A lone HTTP 500 used to be taken for "gone": the message was removed
    from the cache and no later sync brought it back.)"""
    ids, t = _eas_box(request)
    m = mount(t, extra=["--no-notify", "--sync-interval", "3600"])
    m.wait_synced()
    d = m.path(t.inbox, "Hiccup")
    names = _named(d, ids)
    assert len(names) == len(ids)
    victim = sorted(names)[2]
    t.srv.fault("http500", count=100, operation="ItemOperations")
    with pytest.raises(OSError) as e:
        with open(os.path.join(d, victim), "rb") as f:
            f.read()
    assert e.value.errno == errno.EIO
    t.srv.clear_faults()
    assert _named(d, ids) == names                # nothing left the listing (the read
                                                  # had the folder synced: nothing gone)
    with open(os.path.join(d, victim), "rb") as f:
        assert f.read() == t.srv.item_mime(ids[names[victim]])
    assert "cannot fetch" in m.log_text() and "HTTP 500" in m.log_text()
    m.stop()


def test_eas_lone_http500_for_a_gone_message_removed_by_its_folder_sync(mount, request):
    """A server that answers a lone Fetch of a message gone with HTTP 500 (as SOGo may)
    says nothing the client can tell from a hiccup: the folder's Sync decides. The message
    deleted on the server is gone after the read (ENOENT, as its Sync says), the others
    stay and read fine."""
    ids, t = _eas_box(request)
    t.srv.eas_config(fetch_gone="http500")
    m = mount(t, extra=["--no-notify", "--sync-interval", "3600"])
    m.wait_synced()
    d = m.path(t.inbox, "Hiccup")
    names = _named(d, ids)
    gone = sorted(names)[1]
    t.srv.delete(ids[names[gone]])
    with pytest.raises(FileNotFoundError):
        with open(os.path.join(d, gone), "rb") as f:
            f.read()
    assert gone not in os.listdir(d)
    rest = {n: s for n, s in _named(d, ids).items()}
    assert set(rest) == set(names) - {gone}
    for n, s in rest.items():
        with open(os.path.join(d, n), "rb") as f:
            assert f.read() == t.srv.item_mime(ids[s]), n
    m.stop()


def test_read_only_mount_reads_without_a_request_per_close(mount, request):
    """On a read-only mount a warm read costs the daemon nothing: the first
    FLUSH (the kernel sends one at every close, read-only opens included)
    answers ENOSYS and the kernel sends no other.  Counted from libfuse's
    request log (-o debug), never timed."""
    t = make_target("ews", messages=20, seed=17)
    request.addfinalizer(t.close)
    m = mount(t, extra=["--sync-interval", "3600", "-o", "ro,debug"])
    m.wait_synced()
    inbox = m.path(t.inbox)
    names = sorted(n for n in os.listdir(inbox) if n.endswith(".eml"))[:3]
    for _ in range(3):
        for n in names:
            with open(os.path.join(inbox, n), "rb") as f:
                assert f.read()
    flushes = m.log_text().count("opcode: FLUSH")
    assert flushes == 1, "%d FLUSH requests for 9 closes" % flushes
    m.stop()


def test_listing_brings_every_entry_without_a_lookup_each(mount, request):
    """Every chunk of a listing carries its entries' attributes (readdirplus,
    not "auto", which sends them with the first chunk only): a grep -r or
    find on a fresh mount, or once the entry timeouts ran out, stats each
    file without a LOOKUP.  Counted from libfuse's request log, never timed."""
    t = make_target("ews", messages=700, seed=19)
    request.addfinalizer(t.close)
    m = mount(t, extra=["--sync-interval", "3600", "-o", "debug"])
    m.wait_synced()
    inbox = m.path(t.inbox)
    ino = os.stat(inbox).st_ino
    before = len(m.log_text())
    names = os.listdir(inbox)
    assert len(names) > 300       # more than one chunk of READDIRPLUS
    for n in names:
        os.lstat(os.path.join(inbox, n))
    log = m.log_text()[before:]
    lookups = log.count("opcode: LOOKUP (1), nodeid: %d," % ino)
    assert lookups == 0, "%d LOOKUPs in the folder" % lookups
    assert log.count("opcode: READDIRPLUS") >= 2
    m.stop()
