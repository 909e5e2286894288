"""test_state_files.py - a damaged state file never kills the mount. Every
file the daemon keeps in the cache directory (the SQLite cache with its
journal, and its -wal and -shm files after a crash, the lock, the ActiveSync device id, policy key, kept write keys,
folder list and well-known folders), when empty, truncated, random bytes or
with the wrong mode, is rebuilt, or refused with one line naming it and
what to do: the daemon mounts or prints that line, never crashes, and a
change queued before (a folder made while the server refused it) still
reaches the server when the journal is intact. Files are 0600 in a 0700
directory after a start whatever they were before. The accounts file, the
OAuth2 token file and the Autodiscover answers cache, which live outside
the cache directory, have their own tests below."""
import os
import random
import subprocess

import pytest

from mountlib import EXE, wait_for
from servers import make_target

# the files each protocol keeps in the cache directory
FILES = {
    "ews": ["cache.db", "lock", "cache.db-wal", "cache.db-shm"],
    "eas": ["cache.db", "lock", "eas-device-id", "eas-policy-key", "eas-write-keys",
            "eas-folders", "eas-special-folders"],
}
DAMAGES = ["empty", "truncated", "random", "mode"]
CASES = [(kind, name, damage) for kind in FILES for name in FILES[kind] for damage in DAMAGES]
# the command a queued folder creation is, per protocol (refused while queued)
MKDIR_OP = {"ews": "CreateFolder", "eas": "FolderCreate"}


@pytest.fixture(params=["ews", "eas"])
def kind(request):
    return request.param


def damage_file(path, how, seed):
    rnd = random.Random(seed)
    if how == "mode":
        os.chmod(path, 0o644)
        return
    with open(path, "rb") as f:
        data = f.read()
    if how == "empty":
        data = b""
    elif how == "truncated":
        data = data[:len(data) // 2]
    else:
        data = bytes(rnd.randrange(256) for _ in range(max(len(data), 64)))
    with open(path, "wb") as f:
        f.write(data)


def server_has_folder(srv, name):
    return any(f.get("name") == name or (f.get("path_parts") or [None])[-1] == name
               for f in srv.mailbox()["folders"])


def outcome(m, timeout=90):
    """Start m and wait until it mounts (True) or exits (False)."""
    m.start(expect_mount=False)
    wait_for(lambda: m.proc.poll() is not None or os.path.ismount(m.mountpoint), timeout,
             what="mount or exit of " + m.mountpoint)
    return os.path.ismount(m.mountpoint)


@pytest.mark.parametrize("kind, name, damage", CASES,
                         ids=["%s-%s-%s" % c for c in CASES])
def test_damaged_state_file(kind, name, damage, mount, tmp_path):
    t = make_target(kind, messages=5)
    try:
        m = mount(t)
        m.wait_synced()
        # a change the server refuses for now: it waits in the journal
        t.srv.fault("http503", count=100000, operation=MKDIR_OP[kind])
        os.mkdir(m.path("Queued"))
        if name.startswith("cache.db-"):
            m.kill()      # SQLite's -wal and -shm outlive only a crash
        else:
            m.stop()
        path = os.path.join(m.cache_dir, name)
        if not os.path.exists(path) and name == "eas-write-keys":
            with open(path, "w") as f:    # as a write of an earlier run leaves it
                f.write("2\t{0b7d2d37-5f7e-4a3c-9e43-7f3c2a4c9d11}3\n")
        assert os.path.exists(path), sorted(os.listdir(m.cache_dir))
        damage_file(path, damage, "%s-%s-%s" % (kind, name, damage))
        t.srv.clear_faults()

        m2 = mount(t, start=False)
        if outcome(m2):
            m2.wait_synced()
            # the -shm is an index SQLite rebuilds; what a damaged -wal
            # held is lost (SQLite keeps the commits before the damage)
            journal_intact = (name not in ("cache.db", "cache.db-wal")
                              or damage == "mode")
            if journal_intact:
                wait_for(lambda: server_has_folder(t.srv, "Queued"), 60,
                         what="the queued folder on the server")
            cache = m2.cache_dir
            assert os.stat(cache).st_mode & 0o777 == 0o700
            for f in os.listdir(cache):
                p = os.path.join(cache, f)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue        # a temporary file renamed meanwhile
                want = 0o700 if os.path.isdir(p) else 0o600
                assert st.st_mode & 0o777 == want, "%s is %o" % (f, st.st_mode & 0o777)
            m2.stop()
        else:
            rc = m2.proc.wait(30)
            m2.proc = None
            m2.log.close()
            text = m2.check_log()
            lines = [l for l in text.splitlines() if l.strip() and "warning" not in l]
            assert rc not in (0, -6, -11), text      # an exit, not a crash
            assert len(lines) == 1 and lines[0].startswith("exchangefs: "), text
            assert name in lines[0], lines[0]
            # only the cache itself may be refused: every other file is rebuilt
            assert name.startswith("cache.db"), text
    finally:
        t.close()


def test_lost_database_keeps_what_was_written(mount, tmp_path):
    """A cache database emptied (a full disk, a user's hand) is a new
    database: the mount starts again from the server, and the content
    written here and not yet sent, which only the lost journal knew, is
    kept in .exchangefs/rejected/ instead of being collected as unused."""
    t = make_target("ews", messages=5)
    try:
        m = mount(t)
        m.wait_synced()
        t.srv.fault("http503", count=100000, operation="CreateItem")
        mime = (b"From: me@example.com\r\nTo: you@example.com\r\nSubject: unsent\r\n"
                b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nkeep me\r\n")
        with open(m.path("Inbox", "unsent.eml"), "wb") as f:
            f.write(mime)
        m.stop()
        db = os.path.join(m.cache_dir, "cache.db")
        open(db, "wb").close()
        for extra in ("-wal", "-shm"):
            if os.path.exists(db + extra):
                os.unlink(db + extra)
        t.srv.clear_faults()
        m2 = mount(t)
        m2.wait_synced()
        rej = m2.path(".exchangefs", "rejected")
        names = os.listdir(rej)
        assert len(names) == 1 and names[0].startswith("recovered "), names
        with open(os.path.join(rej, names[0]), "rb") as f:
            assert f.read() == mime
        assert "recovered" in m2.log_text()
        m2.stop()
        # adopted once: the next start collects nothing and adds nothing
        m3 = mount(t)
        assert os.listdir(m3.path(".exchangefs", "rejected")) == names
        m3.stop()
    finally:
        t.close()


# ---- files outside the cache directory ---------------------------------------------

from test_signin import (ADDR, address_mount, env, login, rules, settings,  # noqa: E402,F401
                         token_file, token_mount, world)


def start_outcome(m, timeout=90):
    """(mounted, the one error line or None) of starting m; a refusal must
    be one line and an exit, never a crash."""
    if outcome(m, timeout):
        return True, None
    rc = m.proc.wait(30)
    m.proc = None
    m.log.close()
    text = m.check_log()
    lines = [l for l in text.splitlines()
             if l.startswith("exchangefs: ") and "warning" not in l and "debug:" not in l]
    assert rc not in (0, -6, -11), text
    assert len(lines) == 1, text
    return False, lines[0]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_token_file(world, env, tmp_path, damage):
    """The OAuth2 token file: refused with one line naming it and saying to
    sign in again; a readable one with the wrong mode is a warning."""
    assert login(world, env)[0] == 0
    path = token_file(env)
    damage_file(path, damage, "token-" + damage)
    m = token_mount(world, env, tmp_path, extra=["--auth", "oauth2"])
    mounted, line = start_outcome(m)
    if damage == "mode":
        assert mounted
        assert "chmod 600" in m.log_text()
        m.stop()
    else:
        assert not mounted
        assert path in line and "exchangefs login " + ADDR in line, line


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_autodiscover_cache(world, env, tmp_path, damage):
    """The Autodiscover answers cache is only a cache: damaged, it is asked
    again and the mount goes on."""
    rules(world, tls={"autodiscover.example.test": settings()})
    m = address_mount(world, env, tmp_path).start()
    m.stop()
    cached = os.path.join(env["XDG_CACHE_HOME"], "exchangefs", "autodiscover", ADDR + ".json")
    damage_file(cached, damage, "ad-" + damage)
    m2 = address_mount(world, env, tmp_path, name="m2")
    mounted, line = start_outcome(m2)
    assert mounted, line
    assert "Inbox" in os.listdir(m2.mountpoint)
    m2.stop()


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_accounts_file(tmp_path, damage):
    """The accounts file is the user's: never rewritten; damaged, a mount by
    account name mounts or says in one line which file (and line) is wrong."""
    from harness import EwsServer
    from test_unix import account_text, env_for, write_config
    with EwsServer(messages=3, tls=True) as srv:
        p = write_config(tmp_path, account_text(srv, tmp_path))
        damage_file(str(p), damage, "config-" + damage)
        (tmp_path / "mnt").mkdir()
        log = open(tmp_path / "daemon.log", "wb")
        proc = subprocess.Popen([EXE, "-f", "work"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env_for(tmp_path))
        try:
            wait_for(lambda: proc.poll() is not None or os.path.ismount(tmp_path / "mnt"), 60,
                     what="mount or exit")
            text = open(tmp_path / "daemon.log", errors="replace").read()
            if os.path.ismount(tmp_path / "mnt"):
                assert damage in ("mode", "truncated"), text
                r = subprocess.run(["fusermount3", "-u", str(tmp_path / "mnt")],
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
                assert proc.wait(30) == 0
            else:
                lines = [l for l in text.splitlines() if l.strip() and "warning" not in l]
                assert proc.returncode not in (0, -6, -11), text
                assert len(lines) == 1 and lines[0].startswith("exchangefs: "), text
                assert str(p) in lines[0] or "work" in lines[0], lines[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(tmp_path / "mnt")], capture_output=True)
            log.close()


def test_cache_directories_made_private(mount, tmp_path):
    """The cache directory and the directories in it are 0700 after a
    start, whatever a copy or an older version left."""
    t = make_target("ews", messages=3)
    try:
        m = mount(t)
        m.wait_synced()
        m.stop()
        for d, mode in (("", 0o755), ("bodies", 0o755), ("local", 0o777)):
            os.chmod(os.path.join(m.cache_dir, d), mode)
        m2 = mount(t)
        for d in ("", "bodies", "local"):
            st = os.stat(os.path.join(m.cache_dir, d))
            assert st.st_mode & 0o777 == 0o700, "%s is %o" % (d or ".", st.st_mode & 0o777)
        m2.stop()
    finally:
        t.close()
