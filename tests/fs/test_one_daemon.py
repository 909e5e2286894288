"""test_one_daemon.py - one cache, one daemon: a second daemon on a cache in
use (a systemd unit plus a hand mount, the same command twice) exits with
one line naming the running one's pid and mount point and touches nothing
of the cache; a mount point that already has an exchangefs mount is
refused; a non-empty mount point is a warning; the lock holds across
fuse_daemonize()'s fork (the background mode) and is free again once the
daemon is gone, kill -9 included."""
import os
import re
import subprocess

import pytest

from harness import EwsServer
from mountlib import EXE, wait_for
from servers import make_target


@pytest.fixture
def srv():
    with EwsServer(messages=20, seed=7, tls=True) as s:
        yield s


def refused(m, timeout=60, mounted_before=False):
    """The daemon m (started with expect_mount=False) exits non-zero before
    mounting with one line; returns the line."""
    rc = m.proc.wait(timeout)
    m.proc = None
    m.log.close()
    text = m.check_log()
    lines = [l for l in text.splitlines() if l.strip() and "warning" not in l]
    assert rc != 0, text
    assert mounted_before or not os.path.ismount(m.mountpoint)
    assert len(lines) == 1 and lines[0].startswith("exchangefs: "), text
    return lines[0]


def test_second_daemon_on_one_cache_is_refused(srv, mount, tmp_path):
    m1 = mount(srv, mountpoint=str(tmp_path / "mnt1"))
    m1.wait_synced()
    inbox = sorted(os.listdir(m1.path("Inbox")))
    # a body download in progress of the first daemon: a second daemon's
    # start-up must not remove it
    tmp_body = os.path.join(m1.cache_dir, "bodies", "tmp.1234.5678")
    with open(tmp_body, "w") as f:
        f.write("half a message")
    m2 = mount(srv, mountpoint=str(tmp_path / "mnt2"), start=False)
    m2.start(expect_mount=False)
    line = refused(m2)
    assert "pid %d" % m1.proc.pid in line and m1.mountpoint in line, line
    assert m1.cache_dir in line
    assert os.path.exists(tmp_body)
    # the first one goes on working
    assert sorted(os.listdir(m1.path("Inbox"))) == inbox
    srv.deliver("Inbox", subject="after the refusal")
    wait_for(lambda: any("after the refusal" in n for n in os.listdir(m1.path("Inbox"))),
             60, what="a new message on the first mount")
    m1.stop()


def test_mount_on_an_exchangefs_mount_is_refused(srv, mount, tmp_path):
    m1 = mount(srv, mountpoint=str(tmp_path / "mnt"))
    m2 = mount(srv, mountpoint=str(tmp_path / "mnt"), cache=str(tmp_path / "other-cache"),
               start=False)
    m2.start(expect_mount=False)
    line = refused(m2, mounted_before=True)
    assert "already an exchangefs mount" in line and m1.mountpoint in line, line
    assert os.listdir(m1.path("Inbox"))
    m1.stop()


def test_non_empty_mount_point_warns_and_mounts(srv, mount, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "left-behind.txt").write_text("x")
    m = mount(srv, mountpoint=str(mnt))
    assert "mount point %s is not empty" % mnt in m.log_text()
    assert "Inbox" in os.listdir(m.mountpoint)
    m.stop()
    assert (mnt / "left-behind.txt").read_text() == "x"


def test_lock_is_free_after_kill_9(srv, mount, tmp_path):
    m1 = mount(srv, mountpoint=str(tmp_path / "mnt1"))
    m1.wait_synced()
    m1.kill()
    m2 = mount(srv, mountpoint=str(tmp_path / "mnt2"))
    m2.wait_synced()
    assert os.listdir(m2.path("Inbox"))
    m2.stop()


def test_background_daemon_holds_the_lock(srv, mount, tmp_path):
    """Without -f the daemon forks (fuse_daemonize): the child, which runs
    the mount, must hold the lock and be the pid named."""
    mnt1 = tmp_path / "mnt1"
    mnt1.mkdir()
    m2 = mount(srv, mountpoint=str(tmp_path / "mnt2"), start=False)
    argv = [a for a in m2.argv() if a != "-f"]
    argv[-1] = str(mnt1)
    pid = None
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, env=m2.env)
    assert r.returncode == 0, r.stderr
    try:
        assert os.path.ismount(mnt1)
        m2.start(expect_mount=False)
        line = refused(m2)
        pid = int(re.search(r"pid (\d+)", line).group(1))
        assert pid != os.getpid() and str(mnt1) in line, line
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            assert f.read().split(b"\0")[0] == EXE.encode()
        assert os.listdir(str(mnt1 / "Inbox"))
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt1)], capture_output=True)
    if pid:
        wait_for(lambda: not os.path.exists("/proc/%d" % pid), 30, what="the daemon's exit")
    m3 = mount(srv, mountpoint=str(tmp_path / "mnt3"))
    m3.stop()


@pytest.mark.parametrize("kind", ["ews", "eas"])
def test_lookup_works_while_mounted(kind, mount, tmp_path):
    """Subcommands that only read the cache directory (lookup: the
    ActiveSync device id) take no lock and work beside a mount."""
    t = make_target(kind, messages=3)
    try:
        m = mount(t)
        m.wait_synced()
        r = subprocess.run([EXE, "lookup", "--url", t.url, "--user", t.srv.user, *t.args,
                            *(["--ca-file", t.srv.ca_cert] if t.srv.ca_cert else []),
                            "--password-file", m.pwfile,
                            "--cache-dir", m.cache_dir, t.srv.user],
                           capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env=m.env)
        assert r.returncode == 0, r.stderr
        assert t.srv.user in r.stdout
        assert os.listdir(m.path(t.inbox))
        m.stop()
    finally:
        t.close()


def hold_lock(cache_dir, note):
    """Take the cache's lock the way a daemon does (an OFD write lock on
    <cache>/lock) and write note; returns the open file (closing it frees
    the lock)."""
    import fcntl
    import struct
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    f = open(os.path.join(cache_dir, "lock"), "r+b" if os.path.exists(
        os.path.join(cache_dir, "lock")) else "w+b")
    fcntl.fcntl(f, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
    f.truncate(0)
    f.write(note.encode())
    f.flush()
    return f


def test_a_stopping_daemon_is_waited_for(srv, mount, tmp_path):
    """A daemon that has left its FUSE loop (unmounted, its threads ending)
    notes that it is stopping: "fusermount3 -u DIR && exchangefs ..." then
    waits for it instead of being refused."""
    cache = str(tmp_path / "cache")
    holder = hold_lock(cache, "%d\n\n" % os.getpid())
    m = mount(srv, cache=cache, start=False)
    m.start(expect_mount=False)
    # it waits, neither mounting nor giving up, while the holder stops
    wait_for(lambda: "which is stopping" in m.log_text() or m.proc.poll() is not None
             or os.path.ismount(m.mountpoint), 30, what="the daemon's wait")
    assert m.proc.poll() is None and not os.path.ismount(m.mountpoint)
    holder.close()
    wait_for(lambda: m.proc.poll() is not None or os.path.ismount(m.mountpoint), 60,
             what="the mount after the holder exited")
    assert os.path.ismount(m.mountpoint), m.log_text()
    m.stop()


def test_the_lock_file_names_the_daemon(srv, mount, tmp_path):
    m = mount(srv)
    with open(os.path.join(m.cache_dir, "lock")) as f:
        assert f.read() == "%d\n%s\n" % (m.proc.pid, m.mountpoint)
    m.stop()
    # a clean exit leaves an empty file: no one is named
    with open(os.path.join(m.cache_dir, "lock")) as f:
        assert f.read() == ""


def test_mount_point_of_a_killed_daemon(srv, mount, tmp_path):
    """kill -9 leaves the mount point dead (ENOTCONN) until it is detached:
    a new mount there says how to clear it; once cleared, the cache's lock
    is free and the mount starts."""
    m1 = mount(srv)
    m1.wait_synced()
    m1.proc.kill()
    m1.proc.wait(30)
    m1.proc = None
    m1.log.close()
    m2 = mount(srv, start=False)
    m2.start(expect_mount=False)
    line = refused(m2, mounted_before=True)
    assert "fusermount3 -u %s" % m1.mountpoint in line, line
    # detached as a user would; -z: a dead mount may still be busy for a moment under load
    subprocess.run(["fusermount3", "-u", "-z", m1.mountpoint], capture_output=True, check=True)
    m3 = mount(srv)
    assert os.listdir(m3.path("Inbox"))
    m3.stop()
