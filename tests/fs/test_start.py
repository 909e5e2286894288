"""test_start.py - start-up and shut-down as a user meets them: one clear
line and a non-zero exit for every error at start (never a hang), the
help and version, and clean unmounts on fusermount3 -u, Ctrl-C and
SIGTERM."""
import os
import signal
import socket
import subprocess

import pytest

from mountlib import EXE, wait_for
from servers import KINDS, has_eas, make_target


def run(args, env=None, timeout=60):
    e = dict(os.environ, **(env or {}))
    e.pop("EXCHANGEFS_PASSWORD", None)
    if env:
        e.update(env)
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=e)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_line_error(r):
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip() and "warning" not in l]
    assert len(lines) == 1, "expected one line, got:\n" + r.stderr
    assert lines[0].startswith("exchangefs: ")
    return lines[0]


def test_help_and_version():
    r = run(["--help"])
    assert r.returncode == 0 and "--password-file" in r.stdout and "--cache-size" in r.stdout
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("exchangefs ")


@pytest.mark.parametrize("args, words", [
    ([], "no mount point"),
    (["--user", "a", "/tmp"], "--url is required"),
    (["--url", "ftp://x/", "--user", "a", "/tmp"], "not an http(s) URL"),
    (["--url", "https://x/", "/tmp"], "--user is required"),
    (["--url", "https://x/", "--user", "a", "--password", "x", "/tmp"], "command line"),
    (["--url", "https://x/", "--user", "a", "--protocol", "imap", "/tmp"], "not supported"),
    (["--url", "https://x/", "--user", "a", "--cache-size", "lots", "/tmp"], "not a size"),
    (["--url", "https://x/", "--user", "a", "--bogus", "/tmp"], "unknown option"),
])
def test_usage_errors(args, words):
    r = run(args)
    assert r.returncode == 2
    assert words in one_line_error(r)


@pytest.mark.parametrize("flag", ["-d=sync,http", "-dsync,http", "--debug=sync,http"])
def test_debug_categories_as_help_writes_them(flag, tmp_path):
    """-d=CATS (the form --help shows) mounts with those categories: getopt
    used to read it as a cluster of short options, the h of "http" printed
    the help and the exit was 0 without mounting."""
    port = free_port()
    r = run([flag, "--url", "https://127.0.0.1:%d/EWS/Exchange.asmx" % port, "--user", "a",
             "--cache-dir", str(tmp_path / "c"), str(tmp_path)], env={"EXCHANGEFS_PASSWORD": "x"})
    assert "--password-file" not in r.stdout, "printed the help"
    assert r.returncode == 1 and "cannot reach" in r.stderr
    assert "debug: " in r.stderr   # the categories asked for are on


def test_debug_unknown_category_is_a_usage_error():
    r = run(["-d=sync,bogus", "--url", "https://x/", "--user", "a", "/tmp"])
    assert r.returncode == 2 and "unknown category" in one_line_error(r)


def test_missing_mountpoint_and_password(tmp_path):
    r = run(["--url", "https://127.0.0.1:1/", "--user", "a", str(tmp_path / "nope")])
    assert "mount point" in one_line_error(r)
    r = run(["--url", "https://127.0.0.1:1/", "--user", "a", str(tmp_path)])
    assert "no password" in one_line_error(r)
    r = run(["--url", "https://127.0.0.1:1/", "--user", "a", "--password-command", "false",
             str(tmp_path)])
    assert "--password-command failed" in one_line_error(r)


@pytest.fixture(params=KINDS)
def backend(request):
    """A server of each kind with a tiny mailbox (none on SOGo: these tests
    never get past signing in), over TLS where the server can (SOGo here is
    plain HTTP)."""
    t = make_target(request.param, messages=5, sogo_messages=0, tls=True)
    yield t
    t.close()


def start_once(target, password, url=None, ca=True, cache=None):
    """Run the daemon against target the way a user starts it; it must
    exit before mounting."""
    ca_args = ["--ca-file", target.srv.ca_cert] if ca and target.srv.ca_cert else []
    return run(["--url", url or target.url, "--user", target.srv.user, *target.args, *ca_args,
                "--cache-dir", cache, cache + "-mnt"],
               env={"EXCHANGEFS_PASSWORD": password})


@pytest.mark.parametrize("protocol", [[], ["--protocol", "eas"]], ids=["ews", "eas"])
def test_server_down_with_empty_cache(tmp_path, protocol):
    if protocol and not has_eas():
        pytest.skip("this exchangefs has no ActiveSync backend (--protocol eas)")
    port = free_port()
    path = "/Microsoft-Server-ActiveSync" if protocol else "/EWS/Exchange.asmx"
    r = run(["--url", "https://127.0.0.1:%d%s" % (port, path), "--user", "a", *protocol,
             "--cache-dir", str(tmp_path / "c"), str(tmp_path)],
            env={"EXCHANGEFS_PASSWORD": "x"})
    line = one_line_error(r)
    assert "cannot reach" in line and "no cached copy" in line
    assert r.returncode == 1


def test_wrong_password(backend, tmp_path):
    (tmp_path / "c-mnt").mkdir()
    r = start_once(backend, "wrong-pw-1234", cache=str(tmp_path / "c"))
    line = one_line_error(r)
    assert r.returncode == 1
    assert "401" in line or "password" in line
    assert "wrong-pw-1234" not in r.stderr  # never echo the secret


def test_untrusted_certificate(backend, tmp_path):
    backend.require("tls")
    (tmp_path / "c-mnt").mkdir()
    r = start_once(backend, backend.srv.password, ca=False, cache=str(tmp_path / "c"))
    line = one_line_error(r)
    assert "certificate" in line.lower()
    assert "--ca-file" in line   # what to do about it


def test_not_an_endpoint_of_the_protocol(backend, tmp_path):
    """A URL that answers, but not as an EWS (or ActiveSync) endpoint: the
    test servers' control API; on SOGo its web root beside the endpoint."""
    import urllib.parse
    u = urllib.parse.urlsplit(backend.url)
    path = "/control/stats" if backend.kind != "sogo" else "/SOGo/"
    url = urllib.parse.urlunsplit((u.scheme, u.netloc, path, "", ""))
    (tmp_path / "c-mnt").mkdir()
    r = start_once(backend, backend.srv.password, url=url, cache=str(tmp_path / "c"))
    assert r.returncode == 1
    one_line_error(r)


def test_password_command(server, tmp_path):
    mnt = tmp_path / "m"
    mnt.mkdir()
    p = subprocess.Popen([EXE, "-f", "--url", server.ews_url, "--user", server.user,
                          "--ca-file", server.ca_cert, "--cache-dir", str(tmp_path / "c"),
                          "--password-command", "echo " + server.password, str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_for(lambda: os.path.ismount(mnt) or p.poll() is not None, 60, what="mount")
    assert os.path.ismount(mnt)
    assert subprocess.run(["fusermount3", "-u", str(mnt)]).returncode == 0
    assert p.wait(30) == 0
    assert server.password not in p.stdout.read().decode()


def test_own_threads_leave_signals_to_fuse(server, mount):
    """SIGINT/SIGTERM must reach the main thread or a FUSE worker: a signal
    taken by any other thread only sets libfuse's exit flag, and the FUSE
    loop can then wait forever (test_signal_unmounts_cleanly hung in CI so,
    once prefetch added four threads).  So every thread of our own is named
    xfs-* and has them blocked."""
    m = mount(server)
    m.wait_synced()
    task = "/proc/%d/task" % m.proc.pid
    named = {}
    for tid in os.listdir(task):
        with open(os.path.join(task, tid, "comm")) as f:
            comm = f.read().strip()
        with open(os.path.join(task, tid, "status")) as f:
            blk = int(next(ln.split()[1] for ln in f if ln.startswith("SigBlk:")), 16)
        if comm.startswith("xfs-"):
            named.setdefault(comm, []).append(tid)
            for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
                assert blk & (1 << (sig - 1)), "%s (%s) takes %s" % (comm, tid, sig.name)
    for comm in ("xfs-sync", "xfs-applier", "xfs-watch", "xfs-prefetch", "xfs-reflect"):
        assert comm in named, "no %s thread: %s" % (comm, sorted(named))
    m.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_unmounts_cleanly(server, mount, sig):
    m = mount(server)
    m.wait_synced()
    os.listdir(m.path("Inbox"))
    rc = m.signal(sig)
    assert rc == 0
    assert not os.path.ismount(m.mountpoint)
    m.check_log()


def test_background_daemon(server, tmp_path):
    """Without -f the daemon goes to the background (and to /): relative
    paths given on the command line must still work."""
    import shutil
    mnt = tmp_path / "bg"
    mnt.mkdir()
    shutil.copy(server.ca_cert, tmp_path / "ca.pem")
    r = subprocess.run([EXE, "--url", server.ews_url, "--user", server.user,
                        "--ca-file", "ca.pem", "--cache-dir", "c", "bg"],
                       env=dict(os.environ, EXCHANGEFS_PASSWORD=server.password),
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    try:
        assert os.path.ismount(mnt)
        assert "Inbox" in os.listdir(mnt)
        assert len(os.listdir(mnt / "Inbox")) > 0
        name = next(n for n in os.listdir(mnt / "Inbox") if n.endswith(".eml"))
        with open(mnt / "Inbox" / name, "rb") as f:  # a fetch: uses the CA file
            assert f.read(5)
        assert (tmp_path / "c" / "cache.db").exists()
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)])


def test_older_server_schema_version(tmp_path, mount):
    """An Exchange 2010 server refuses RequestServerVersion Exchange2013_SP1
    (schema validation); the client asks again with an older version."""
    from harness import EwsServer
    older = "Exchange2007,Exchange2007_SP1,Exchange2010,Exchange2010_SP1,Exchange2010_SP2"
    with EwsServer(messages=60, seed=4, tls=True, extra_args=["--known-versions", older]) as srv:
        m = mount(srv)
        m.wait_synced()
        inbox = m.path("Inbox")
        name = next(n for n in os.listdir(inbox) if n.endswith(".eml"))
        p = os.path.join(inbox, name)
        with open(p, "rb") as f:
            assert f.read() == srv.item_mime(os.getxattr(p, "user.exchangefs.id").decode())
        m.stop()


def test_sigterm_while_a_reader_waits(tmp_path, mount):
    """SIGTERM while ls waits for a folder's first sync on a slow server:
    the reader gets an error, the daemon exits cleanly and promptly."""
    import threading
    import time
    from harness import EwsServer
    with EwsServer(messages=3000, seed=6, tls=True, latency_ms=400) as srv:
        m = mount(srv)
        result = {}

        def reader():
            try:
                result["names"] = os.listdir(m.path("Inbox"))
            except OSError as e:
                result["error"] = e.errno

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the listing should still be waiting"
        t0 = time.monotonic()
        rc = m.signal(signal.SIGTERM, timeout=30)
        t.join(30)
        assert rc == 0
        assert time.monotonic() - t0 < 15
        assert not t.is_alive()
        assert "names" in result or "error" in result
        m.check_log()
