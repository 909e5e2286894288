"""test_unix.py - exchangefs as a Unix program: the accounts file (good and
malformed content), mounting the way fstab does (mount -t fuse.exchangefs
through mount.fuse3, and contrib's mount.exchangefs), the systemd user unit
(systemd-analyze verify; readiness through $NOTIFY_SOCKET), `exchangefs
status` and `unmount`, bash completion, the man page and what meson
installs, and a -d debug log that must not show the password."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess

import pytest

import logcheck
from mountlib import BUILD, EXE, wait_for

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRIB = os.path.join(TOP, "contrib")


def write_config(tmp_path, text, mode=0o600):
    d = tmp_path / "xdg" / "exchangefs"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "config"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def account_text(server, tmp_path, name="work", extra=""):
    return (
        "# accounts file of a test\n"
        "sync-interval = 30\n"
        "\n"
        f"[{name}]\n"
        f"url = {server.ews_url}\n"
        f"user = {server.user}\n"
        f"password = {server.password}\n"
        f"ca_file = {server.ca_cert}\n"
        f"cache-dir = {tmp_path}/cache\n"
        f"mountpoint = {tmp_path}/mnt\n"
        f"{extra}"
        "\n[other]\nurl = https://elsewhere.example/EWS/Exchange.asmx\n")


def env_for(tmp_path, **kw):
    e = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), TZ="UTC")
    e.pop("EXCHANGEFS_PASSWORD", None)
    e["PATH"] = os.path.join(BUILD, "fs") + ":" + e.get("PATH", "/usr/bin:/bin")
    e.update(kw)
    return e


def run(args, tmp_path, **kw):
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env_for(tmp_path), **kw)


def one_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("exchangefs: ")
    return lines[0]


def test_account_mount_status_unmount(server, tmp_path):
    """`exchangefs -f work`: everything from the [work] section (password
    included, the file being 0600), the command line overriding the file;
    READY=1 to systemd once mounted; `status` and `unmount work`."""
    write_config(tmp_path, account_text(server, tmp_path))
    (tmp_path / "mnt").mkdir()
    sock_path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(60)
    log = open(logcheck.new_log("daemon-account"), "wb")
    p = subprocess.Popen([EXE, "-f", "work", "--sync-interval", "7"], stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env_for(tmp_path, NOTIFY_SOCKET=sock_path))
    mnt = str(tmp_path / "mnt")
    try:
        assert sock.recv(100) == b"READY=1"
        assert os.path.ismount(mnt)
        st = wait_for(lambda: "last complete sync: never" not in
                      open(mnt + "/.exchangefs/status").read() and
                      open(mnt + "/.exchangefs/status").read(), 60, what="first sync")
        assert "sync interval: 7 s" in st          # the command line wins
        assert "Inbox" in os.listdir(mnt)
        r = run(["status", mnt], tmp_path)
        assert r.returncode == 0, r.stderr
        first, *rest = r.stdout.splitlines()
        assert first == "exchangefs on %s (exchangefs:%s@127.0.0.1:%d)" % (
            mnt, server.user, server.port)
        conn = next(l for l in rest if l.split()[0] == "connection:")
        assert len(conn.split()) > 1
        # values lined up after the longest key
        cols = {l.index(l.split(":", 1)[1].strip()) for l in rest
                if not l.startswith("    ") and ": " in l and len(l.split(":", 1)[0]) < 40}
        assert len(cols) == 1, r.stdout
        r = run(["unmount", "work"], tmp_path)
        assert r.returncode == 0, r.stderr
        assert p.wait(30) == 0
        assert sock.recv(100) == b"STOPPING=1"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        sock.close()
        log.close()
    assert not os.path.ismount(mnt)


@pytest.mark.parametrize("text, where, words", [
    ("[work]\nurl https://x/\n", 2, "expected 'key = value'"),
    ("[work]\nbogus = 1\n", 2, "unknown key 'bogus'"),
    ("[work]\nconfig = /etc/x\n", 2, "unknown key 'config'"),
    ("[work]\ncache-size = lots\n", 2, "--cache-size: 'lots' is not a size"),
    ("[work]\nsync_interval = 0\n", 2, "--sync-interval"),
    ("[work]\ninsecure = maybe\n", 2, "not yes or no"),
    ("[work]\nurl =\n", 2, "url needs a value"),
    ("[work\n", 1, "a section line is [name]"),
    ("[work]\n[work]\n", 2, "appears twice"),
    ("[work]\nurl = https://a/\nurl = https://b/\n", 3, "already set on line 2"),
    ("# top\nsync-interval = soon\n[work]\n", 2, "--sync-interval"),
    ("[home]\nurl = https://a/\n[work]\nuser = a\n[home2]\nBad Key = 1\n", 6,
     "a key is lower-case letters"),
])
def test_malformed_accounts_file(tmp_path, text, where, words):
    path = write_config(tmp_path, text)
    r = run(["--account", "work", str(tmp_path)], tmp_path)
    assert r.returncode == 2
    line = one_line(r)
    assert line.startswith("exchangefs: %s:%d: " % (path, where)), line
    assert words in line


def test_accounts_file_refusals(tmp_path):
    path = write_config(tmp_path, "[work]\nurl = https://a/\npassword = hunter2-xyz\n",
                        mode=0o640)
    r = run(["work", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and "chmod 600" in one_line(r)
    assert "hunter2" not in r.stderr
    os.chmod(path, 0o600)
    r = run(["home", str(tmp_path)], tmp_path)
    assert r.returncode == 2
    assert "no account [home]" in one_line(r) and "accounts: work" in r.stderr
    r = run(["--account", "work", "elsewhere", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and "not both" in one_line(r)
    r = run(["--config", str(tmp_path / "missing"), "--account", "work", str(tmp_path)],
            tmp_path)
    assert r.returncode == 2 and "cannot read accounts file" in one_line(r)
    r = run(["work"], tmp_path, cwd=tmp_path)
    assert r.returncode == 2 and "sets no mountpoint" in one_line(r)
    os.unlink(path)
    r = run(["--account", "work", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and "no accounts file" in one_line(r)


def test_status_of_something_else(tmp_path):
    r = run(["status", str(tmp_path)], tmp_path)
    assert r.returncode == 1 and "is not an exchangefs mount" in one_line(r)
    r = run(["status", str(tmp_path / "nope")], tmp_path)
    assert r.returncode == 1 and "No such file" in one_line(r)
    r = run(["status"], tmp_path)
    assert r.returncode == 2 and "usage" in one_line(r)
    r = run(["unmount", "nosuchaccount"], tmp_path)
    assert r.returncode == 2


@pytest.mark.parametrize("how", ["mount -t fuse", "mount.exchangefs"])
def test_fstab_style_mount(server, tmp_path, how):
    """What an fstab line `work /mnt fuse.exchangefs noauto,user,_netdev 0 0`
    does: mount(8) -> mount.fuse3 -> `exchangefs work /mnt -o ...`, the
    daemon in the background.  mount(8) clears PATH, so type
    fuse.exchangefs finds only an installed exchangefs; the test uses the
    equivalent `/path/to/exchangefs#work` source of type fuse, which takes
    the same way through mount.fuse3.  Type exchangefs: mount(8) ->
    contrib's mount.exchangefs, run here as mount(8) runs it."""
    if os.geteuid() != 0:
        pytest.skip("mount(8) with a helper needs root here")
    write_config(tmp_path, account_text(server, tmp_path))
    mnt = tmp_path / "fstab-mnt"
    mnt.mkdir()
    opts = "noauto,user,_netdev,nofail,x-systemd.automount"
    if how.startswith("mount "):
        cmd = ["mount", "-t", "fuse", "-o", opts, EXE + "#work", str(mnt)]
    else:
        cmd = ["sh", os.path.join(BUILD, "contrib", "mount.exchangefs"), "work", str(mnt),
               "-n", "-o", "rw," + opts]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=90,
                           stdin=subprocess.DEVNULL, env=env_for(tmp_path))
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)
        with open("/proc/self/mountinfo") as f:
            line = next(l for l in f if " %s " % mnt in l)
        assert " - fuse.exchangefs exchangefs:%s@127.0.0.1:" % server.user in line
        names = wait_for(lambda: [n for n in os.listdir(mnt / "Inbox") if n.endswith(".eml")],
                         60, what="Inbox listing")
        with open(mnt / "Inbox" / names[0], "rb") as f:
            assert f.read(5)
        r = run(["status", str(mnt)], tmp_path)
        assert r.returncode == 0 and "folder progress" in r.stdout
    finally:
        u = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
        if u.returncode:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
    assert u.returncode == 0, u.stderr
    assert not os.path.ismount(mnt)
    # a fake mount (-f) does nothing
    r = subprocess.run(["sh", os.path.join(BUILD, "contrib", "mount.exchangefs"), "work", str(mnt),
                        "-f", "-o", opts], capture_output=True, env=env_for(tmp_path))
    assert r.returncode == 0 and not os.path.ismount(mnt)


def render_unit(tmp_path):
    with open(os.path.join(CONTRIB, "exchangefs@.service.in")) as f:
        text = f.read().replace("@BINDIR@", os.path.join(BUILD, "fs"))
    d = tmp_path / "units"
    d.mkdir(exist_ok=True)
    (d / "exchangefs@.service").write_text(text)
    return d, text


def verify(tmp_path, unit_dir, instance="work"):
    man = tmp_path / "man" / "man1"
    man.mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.join(CONTRIB, "exchangefs.1"), man)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    e = dict(os.environ, MANPATH=str(tmp_path / "man"), XDG_RUNTIME_DIR=str(run_dir))
    return subprocess.run(["systemd-analyze", "verify", "--user",
                           str(unit_dir / ("exchangefs@%s.service" % instance))],
                          capture_output=True, text=True, timeout=60, env=e)


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    d, text = render_unit(tmp_path)
    r = verify(tmp_path, d)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), \
        r.stdout + r.stderr
    assert "Type=notify" in text and "ExecStop=" in text and "Restart=on-failure" in text
    # and the check is real: a broken unit is reported
    (d / "exchangefs@.service").write_text(text.replace("ExecStart=" + BUILD,
                                                        "ExecStart=/nonexistent"))
    r = verify(tmp_path, d)
    assert r.returncode != 0 and "nonexistent" in r.stdout + r.stderr


def test_bash_completion(tmp_path):
    bc = "/usr/share/bash-completion/bash_completion"
    comp = os.path.join(CONTRIB, "bash-completion", "exchangefs")
    assert subprocess.run(["bash", "-n", comp]).returncode == 0
    if not os.path.exists(bc):
        pytest.skip("bash-completion is not installed")
    write_config(tmp_path, "[work]\nurl = https://a/\n[home]\nurl = https://b/\n")

    def complete(*words):
        script = ('source %s; source %s; COMP_WORDS=(%s); COMP_CWORD=%d; '
                  'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; '
                  '_exchangefs; printf "%%s\\n" "${COMPREPLY[@]}"'
                  % (bc, comp, " ".join("'%s'" % w for w in words), len(words) - 1))
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                           env=env_for(tmp_path), cwd=tmp_path)
        return r.stdout.split()

    assert complete("exchangefs", "--acc") == ["--account"]
    assert sorted(complete("exchangefs", "--account", "")) == ["home", "work"]
    assert "status" in complete("exchangefs", "")
    assert complete("exchangefs", "--delete-in-trash", "s") == ["soft"]
    # exchangefs lookup (tests/fs/test_lookup.py): the command, then an account
    assert complete("exchangefs", "lo") == ["lookup"]
    assert sorted(complete("exchangefs", "lookup", "")) == ["home", "work"]
    assert sorted(complete("exchangefs", "lookup", "--protocol", "eas", "w")) == ["work"]
    assert complete("exchangefs", "lookup", "work", "") == []


def test_man_page_and_install(tmp_path):
    """The man page renders cleanly and documents the additions; meson
    installs it, the mount helper, the unit and the completion."""
    page = os.path.join(CONTRIB, "exchangefs.1")
    with open(page) as f:
        text = f.read()
    for words in ("ACCOUNTS FILE", "status", "mount.exchangefs", "exchangefs@",
                  "noauto,user", r"\-\-account", r"\-\-config"):
        assert words in text, words
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = subprocess.run(["meson", "introspect", "--installed", BUILD], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip("meson introspect failed: " + r.stderr)
    installed = list(json.loads(r.stdout).values())
    for suffix in ("/share/man/man1/exchangefs.1", "/sbin/mount.exchangefs",
                   "/lib/systemd/user/exchangefs@.service",
                   "/share/bash-completion/completions/exchangefs", "/bin/exchangefs"):
        assert any(p.endswith(suffix) for p in installed), (suffix, installed)


def test_debug_log_keeps_secrets(server, mount):
    """-d (all categories, HTTP traces included): a mount that syncs and
    reads messages logs neither the password nor the Authorization header.
    The log stays in the session directory, which the end-of-session check
    (tests/conftest.py) greps again with every other log."""
    m = mount(server, extra=["-d"])
    m.wait_synced()
    inbox = m.path("Inbox")
    for name in sorted(os.listdir(inbox))[:3]:
        with open(os.path.join(inbox, name), "rb") as f:
            f.read()
    m.stop()
    text = m.log_text()
    assert "POST " in text           # the HTTP trace is there...
    basic = base64.b64encode(("%s:%s" % (server.user, server.password)).encode()).decode()
    assert basic not in text         # ...without the credentials
    with open(m.log_path, "rb") as f:
        data = f.read()
    assert not [what for pat, what in logcheck.needles(logcheck.log_dir()) if pat.search(data)]


def test_secret_check_finds_planted_secrets(tmp_path):
    """The end-of-session check itself: it finds a password and a Basic
    header planted in a log, and not a word that merely contains it."""
    d = tmp_path / "logs"
    d.mkdir()
    (d / "secrets").write_text(json.dumps({"secret": "secret", "user": "alice"}) + "\n" +
                               json.dumps({"secret": "tok-ABCDEFGHIJKLMNOP"}) + "\n")
    (d / "clean.log").write_text("client_secret is a field name; secrets are kept\n")
    assert logcheck.scan(str(d)) == []
    (d / "a.log").write_text("login with password secret\n")
    (d / "b.log").write_text("Authorization: Basic %s\n" % base64.b64encode(b"alice:secret").decode())
    sub = d / "nested"
    sub.mkdir()
    (sub / "c.log").write_text("xxtok-ABCDEFGHIJKLMNOPxx\n")
    found = sorted((os.path.basename(p), what) for p, what, _ in logcheck.scan(str(d)))
    assert [f for f, _ in found] == ["a.log", "b.log", "c.log"]
    assert all("<SECRET>" in line for _, _, line in logcheck.scan(str(d)))


def test_sigterm_from_systemd_unmounts(server, tmp_path):
    """systemd stops a Type=notify service with SIGTERM when ExecStop did
    not end it: a clean unmount and exit 0 either way."""
    write_config(tmp_path, account_text(server, tmp_path))
    (tmp_path / "mnt").mkdir()
    log = open(logcheck.new_log("daemon-sigterm"), "wb")
    p = subprocess.Popen([EXE, "--foreground", "--account", "work"], stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env_for(tmp_path))
    mnt = str(tmp_path / "mnt")
    try:
        wait_for(lambda: os.path.ismount(mnt) or p.poll() is not None, 60, what="mount")
        assert os.path.ismount(mnt)
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        log.close()
    assert not os.path.ismount(mnt)
