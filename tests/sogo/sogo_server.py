# The pytest side of the SOGo ActiveSync test server: start it once per test
# session (setup-sogo.sh), give each test a fresh user with an empty mailbox,
# deliver mail into it over IMAP APPEND, read what SOGo sent (SMTP sink), and
# stop it at the end of the session if this process started it.
"""A real ActiveSync server (SOGo 5.8, EAS up to 14.1) for tests.

    sys.path.insert(0, "tests/sogo")
    from sogo_server import sogo, sogo_user    # pytest fixtures (session, function)

    def test_x(sogo_user):
        u = sogo_user
        u.eas_url                  # "http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync"
        u.name, u.password         # fresh user (Basic auth), mail address u.address
        u.deliver(mime_bytes)      # IMAP APPEND into INBOX (folder="Sent" etc.); returns the UID
        u.imap()                   # logged-in imaplib.IMAP4 (caller logs out)
        u.enable_modseq()          # after creating a mailbox by IMAP or EAS (Dovecot CONDSTORE trap)
        u.sent()                   # [bytes] messages SOGo sent for this user (SMTP sink)
        u.folders()                # IMAP mailbox names

Without the packages (contrib/install-deps.sh --sogo) or without root, the
fixtures skip with the reason. An instance already answering on the port (a
developer's, started by setup-sogo.sh with the same SOGO_TEST_BASE) is used and
left running; one started here is stopped when the process exits.
"""

import atexit
import http.client
import imaplib
import os
import re
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.environ.get("SOGO_TEST_BASE", "/tmp/sogo-test")
STATE = os.path.join(BASE, "state")
PORT = int(os.environ.get("SOGO_PORT", "20000"))
IMAP_PORT = int(os.environ.get("SOGO_IMAP_PORT", "143"))
PG_PORT = int(os.environ.get("SOGO_PG_PORT", "5432"))
EAS_PATH = "/SOGo/Microsoft-Server-ActiveSync"
DOMAIN = "example.test"
FRESH_PASSWORD = "xfs-fresh-user"      # setup-sogo.sh gives Dovecot a static passdb with it


def unavailable():
    """Why SOGo cannot run here (None when it can)."""
    missing = [p for p in ("/usr/sbin/sogod", "/usr/sbin/dovecot", "/usr/bin/memcached",
                           "/usr/lib/postgresql/15/bin/postgres") if not os.path.exists(p)]
    if missing:
        return "SOGo test server not installed (" + ", ".join(missing) + "): run contrib/install-deps.sh --sogo"
    if os.geteuid() != 0:
        return "the SOGo test server needs root (it starts PostgreSQL, Dovecot and sogod as their users)"
    return None


def endpoint_up(timeout=3):
    try:
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
        c.request("OPTIONS", EAS_PATH)
        r = c.getresponse()
        r.read()
        c.close()
        return r.getheader("MS-ASProtocolVersions") is not None or r.status == 401
    except OSError:
        return False


class Sogo:
    """One SOGo instance (all daemons); see the module doc."""

    def __init__(self):
        self.started_here = False
        self.setup_seconds = None
        self.lock = threading.Lock()
        self.users = []

    def start(self):
        t0 = time.monotonic()
        # an instance already running (a developer's, same SOGO_TEST_BASE) is used and left
        # running; the script is idempotent and brings its configuration up to date
        running = endpoint_up()
        r = subprocess.run([os.path.join(HERE, "setup-sogo.sh")], env=dict(os.environ, SKIP_INSTALL="1"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("setup-sogo.sh failed:\n" + r.stdout.decode(errors="replace")[-4000:])
        self.started_here = not running
        self.setup_seconds = time.monotonic() - t0
        return self

    def stop(self):
        for u in list(self.users):
            u.remove()
        if self.started_here:
            subprocess.run([os.path.join(HERE, "stop-sogo.sh")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
            self.started_here = False

    def psql(self, sql):
        r = subprocess.run(["psql", "-q", "-h", os.path.join(STATE, "pgsock"), "-p", str(PG_PORT), "-U", "postgres",
                            "-d", "sogo", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stdout.decode(errors='replace')}")

    def new_user(self, prefix="t"):
        """A user that never existed: an empty mailbox and no EAS device state."""
        name = prefix + os.urandom(5).hex()
        password = FRESH_PASSWORD       # Dovecot's static passdb (setup-sogo.sh) takes any name with it
        with self.lock:
            self.psql(f"INSERT INTO sogo_users VALUES ('{name}','{name}','{{PLAIN}}{password}',"
                      f"'Test User {name}','{name}@{DOMAIN}')")
        u = SogoUser(self, name, password)
        u.enable_modseq()       # logs in once (Dovecot makes INBOX, Drafts, Sent, Trash...)
        self.users.append(u)
        return u


class SogoUser:
    def __init__(self, sogo, name, password):
        self.sogo, self.name, self.password = sogo, name, password
        self.address = f"{name}@{DOMAIN}"
        self.host, self.port, self.path = "127.0.0.1", PORT, EAS_PATH
        self.eas_url = f"http://127.0.0.1:{PORT}{EAS_PATH}"
        self.removed = False

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", IMAP_PORT)
        m.login(self.name, self.password)
        return m

    def enable_modseq(self):
        """ENABLE CONDSTORE + EXAMINE every mailbox once: until then Dovecot
        announces no HIGHESTMODSEQ and SOGo's Sync of it returns nothing."""
        m = self.imap()
        try:
            m._simple_command("ENABLE", "CONDSTORE")
            for name in self._list(m):
                m.select(_quote(name), readonly=True)
        finally:
            m.logout()

    def _list(self, m):
        out = []
        for ln in m.list()[1]:
            ln = ln.decode()
            if "\\Noselect" in ln:
                continue
            name = re.match(r'\(.*?\) (?:"[^"]*"|NIL) (.*)$', ln).group(1)
            out.append(name[1:-1].replace('\\"', '"').replace("\\\\", "\\") if name.startswith('"') else name)
        return out

    def folders(self):
        m = self.imap()
        try:
            return self._list(m)
        finally:
            m.logout()

    def deliver(self, mime, folder="INBOX", seen=False):
        """Store the exact bytes in a mailbox (IMAP APPEND); returns the new UID."""
        m = self.imap()
        try:
            typ, data = m.append(_quote(folder), "(\\Seen)" if seen else None, None, mime)
            if typ != "OK":
                raise RuntimeError(f"IMAP APPEND to {folder}: {data}")
            hit = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            return int(hit.group(1)) if hit else None
        finally:
            m.logout()

    def sent(self):
        """Messages SOGo handed to SMTP for this user, oldest first (X-Sink-* headers stripped)."""
        d = os.path.join(STATE, "smtp-sink")
        out = []
        for fn in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            if not fn.endswith(".eml"):
                continue
            with open(os.path.join(d, fn), "rb") as f:
                data = f.read()
            head, _, rest = data.partition(b"\r\n")
            if self.address.encode() in head:
                out.append(rest.split(b"\r\n", 1)[1] if rest.startswith(b"X-Sink-To:") else rest)
        return out

    def remove(self):
        if self.removed:
            return
        self.removed = True
        with self.sogo.lock:
            try:
                self.sogo.psql(f"DELETE FROM sogo_users WHERE c_uid = '{self.name}'")
            except RuntimeError:
                pass
        subprocess.run(["rm", "-rf", "--", os.path.join(STATE, "mail", self.name)], check=False)
        if self in self.sogo.users:
            self.sogo.users.remove(self)


def _quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_shared = None
_shared_error = None


def shared():
    """The process-wide instance, started on first use and stopped at exit;
    raises RuntimeError when SOGo cannot run here (see unavailable())."""
    global _shared, _shared_error
    if _shared is None and _shared_error is None:
        why = unavailable()
        if why:
            _shared_error = why
        else:
            s = Sogo()
            try:
                s.start()
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
                _shared_error = f"SOGo did not start: {e}"
            else:
                _shared = s
                atexit.register(s.stop)
    if _shared is None:
        raise RuntimeError(_shared_error)
    return _shared


try:
    import pytest

    @pytest.fixture(scope="session")
    def sogo():
        """The running SOGo (skips the test when it cannot run here)."""
        try:
            return shared()
        except RuntimeError as e:
            pytest.skip(str(e))

    @pytest.fixture
    def sogo_user(sogo):
        """A fresh user with an empty mailbox, removed after the test."""
        u = sogo.new_user()
        yield u
        u.remove()
except ImportError:     # used without pytest (a benchmark, by hand)
    pass
