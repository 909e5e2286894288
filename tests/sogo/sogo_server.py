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
        srv = u.view()             # tests/server/harness.py's API over IMAP: deliver, items,
                                   # item_info, item_mime, mark_read, set_flag, delete, move,
                                   # create/rename/move/delete_folder, sent, mailbox, populate

Without the packages (contrib/install-deps.sh --sogo) or without root (or
password-less sudo), the fixtures skip with the reason (fail with
EXCHANGEFS_REQUIRE_SOGO=1, as in CI). An instance already answering on the port (a
developer's, started by setup-sogo.sh with the same SOGO_TEST_BASE) is used and
left running; one started here is stopped when the process exits.
"""

import atexit
import base64
import email.parser
import email.policy
import email.utils
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
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL).returncode != 0:
        return ("the SOGo test server needs root or password-less sudo (it starts PostgreSQL, "
                "Dovecot and sogod as their users)")
    return None


def as_root(argv):
    """argv run as root: as it is when we are root, else through sudo with the SOGO_* settings."""
    if os.geteuid() == 0:
        return argv
    env = [f"{k}={v}" for k, v in os.environ.items() if k.startswith("SOGO_")]
    return ["sudo", "-n", "env", "SKIP_INSTALL=1", *env, *argv]


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
        r = subprocess.run(as_root([os.path.join(HERE, "setup-sogo.sh")]), env=dict(os.environ, SKIP_INSTALL="1"),
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
            subprocess.run(as_root([os.path.join(HERE, "stop-sogo.sh")]), stdout=subprocess.DEVNULL,
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
        try:                    # the session's check that no log shows a test secret (tests/logcheck.py)
            import logcheck
            logcheck.add_secret(password, name)
        except ImportError:
            pass
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
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\") if name.startswith('"') else name
            out.append(_unmutf7(name))
        return out

    def folders(self):
        m = self.imap()
        try:
            return self._list(m)
        finally:
            m.logout()

    def deliver(self, mime, folder="INBOX", seen=False, received=None):
        """Store the exact bytes in a mailbox (IMAP APPEND); returns the new UID."""
        m = self.imap()
        try:
            date = imaplib.Time2Internaldate(received) if received is not None else None
            typ, data = m.append(_quote(folder), "(\\Seen)" if seen else None, date, mime)
            if typ != "OK":
                raise RuntimeError(f"IMAP APPEND to {folder}: {data}")
            hit = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            return int(hit.group(1)) if hit else None
        finally:
            m.logout()

    def view(self):
        """The test server's harness API for this user (ImapView), for mount tests."""
        return ImapView(self)

    def sent(self, with_envelope=False):
        """Messages SOGo handed to SMTP for this user, oldest first (X-Sink-* headers
        stripped); with_envelope: [(recipients header value, mime)]."""
        d = os.path.join(STATE, "smtp-sink")
        out = []
        for fn in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            if not fn.endswith(".eml"):
                continue
            with open(os.path.join(d, fn), "rb") as f:
                data = f.read()
            head, _, rest = data.partition(b"\r\n")
            if self.address.encode() in head:
                to, _, mime = rest.partition(b"\r\n") if rest.startswith(b"X-Sink-To:") else (b"", b"", rest)
                out.append((to[len(b"X-Sink-To:"):].decode("utf-8", "replace").strip(), mime)
                           if with_envelope else mime)
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
        subprocess.run(as_root(["rm", "-rf", "--", os.path.join(STATE, "mail", self.name)]), check=False)
        if self in self.sogo.users:
            self.sogo.users.remove(self)


# ---- the test server's harness API over IMAP (for mount tests parametrised over servers) ----

# model folder names (tests/server/generate.py) -> SOGo's IMAP mailboxes (= its EAS display names)
MODEL_TO_IMAP = {"Inbox": "INBOX", "Sent Items": "Sent", "Deleted Items": "Trash", "Junk Email": "Junk",
                 "Drafts": "Drafts"}
SPECIAL = {"INBOX": "inbox", "Drafts": "drafts", "Sent": "sentitems", "Trash": "deleteditems", "Junk": "junkemail"}


def _split_id(item_id):
    uid, _, box = item_id.partition("@")
    if not uid.isdigit() or not box:
        raise KeyError(f"no item {item_id!r}")
    return box, int(uid)


class ImapView:
    """What tests/server/harness.py's EwsServer offers to mount tests, for a SOGo
    user, done over IMAP: ids are "UID@mailbox", folder paths are IMAP names
    ("INBOX/Projects"), which are also SOGo's EAS display names. Messages flagged
    \\Deleted (SOGo's EAS Delete never expunges) are not listed."""

    def __init__(self, user):
        self.u = user
        self._markers = {}

    # harness-like attributes
    @property
    def user(self):
        return self.u.name

    @property
    def password(self):
        return self.u.password

    @property
    def address(self):
        return self.u.address

    ca_cert = None
    ews_url = None

    @property
    def eas_url(self):
        return self.u.eas_url

    def _with(self, fn):
        m = self.u.imap()
        try:
            return fn(m)
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def _select(self, m, box, readonly=True):
        typ, data = m.select(_quote(box), readonly=readonly)
        if typ != "OK":
            raise KeyError(f"no folder {box!r}: {data}")

    def _fetch(self, m, box, uids="1:*", mime=True):
        self._select(m, box)
        what = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])" if mime else \
            "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])"
        typ, data = m.uid("FETCH", uids, what)
        out = []
        for part in data:
            if not isinstance(part, tuple):
                continue
            meta = part[0].decode()
            uid = int(re.search(r"UID (\d+)", meta).group(1))
            flags = re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()
            if "\\Deleted" in flags:
                continue
            size = int(re.search(r"RFC822.SIZE (\d+)", meta).group(1))
            date = re.search(r'INTERNALDATE "([^"]+)"', meta)
            received = int(time.mktime(imaplib.Internaldate2tuple(
                f'INTERNALDATE "{date.group(1)}"'.encode()))) if date else 0
            out.append(self._info(box, uid, flags, size, received, part[1], mime))
        out.sort(key=lambda i: (-i["received"], -i["uid"]))
        return out

    def _info(self, box, uid, flags, size, received, data, with_mime):
        head = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
        subject = head["Subject"]
        d = {"id": f"{uid}@{box}", "uid": uid, "folder_id": box, "folder_path": box,
             "subject": str(subject) if subject is not None else None,
             "from_addr": email.utils.parseaddr(str(head["From"] or ""))[1], "to": str(head["To"] or ""),
             "message_id": str(head["Message-ID"]) if head["Message-ID"] else None,
             "is_read": "\\Seen" in flags, "is_draft": "\\Draft" in flags,
             "flag": "Flagged" if "\\Flagged" in flags else "NotFlagged", "categories": [],
             "size": size, "mime_len": size, "received": received, "flags": flags}
        if with_mime:
            d["mime_b64"] = base64.b64encode(data).decode("ascii")
        return d

    # ---- reading ----

    def folders(self):
        out = []
        for box in sorted(self.u.folders()):
            parts = box.split("/")
            out.append({"id": box, "parent_id": "/".join(parts[:-1]) or None, "name": parts[-1], "path": box,
                        "path_parts": parts, "folder_class": "IPF.Note", "distinguished": SPECIAL.get(box)})
        return out

    def mailbox(self, mime=False):
        def run(m):
            kept, items = [], []
            for f in self.folders():
                try:
                    items += self._fetch(m, f["path"], mime=mime)
                except KeyError:    # deleted since the LIST: not in this snapshot
                    continue
                kept.append(f)
            return kept, items
        folders, items = self._with(run)
        return {"folders": folders, "items": items}

    def folder(self, path):
        f = next((f for f in self.folders() if f["path"] == path), None)
        if f is None:
            raise KeyError(f"no folder {path!r}")
        return dict(f, items=[i["id"] for i in self.items(path)])

    def items(self, path, subject=None):
        got = self._with(lambda m: self._fetch(m, path, mime=False))
        return [i for i in got if subject is None or i["subject"] == subject]

    def find_subject(self, subject, path=None):
        if path is not None:
            return [i["id"] for i in self.items(path, subject)]
        return [i["id"] for i in self.mailbox()["items"] if i["subject"] == subject]

    def item_info(self, item_id):
        box, uid = _split_id(item_id)
        got = self._with(lambda m: self._fetch(m, box, str(uid), mime=False))
        if not got:
            raise KeyError(f"no item {item_id!r}")
        return got[0]

    def item_mime(self, item_id):
        box, uid = _split_id(item_id)
        got = self._with(lambda m: self._fetch(m, box, str(uid), mime=True))
        if not got:
            raise KeyError(f"no item {item_id!r}")
        return base64.b64decode(got[0]["mime_b64"])

    def markers(self):
        return self._markers

    def sent(self):
        out = []
        for raw in self.u.sent(with_envelope=True):
            env, mime = raw
            head = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(mime)
            out.append({"mime": mime.decode("utf-8", "replace"), "mime_b64": base64.b64encode(mime).decode(),
                        "recipients": [a.strip().strip("<>") for a in env.split(",") if a.strip()],
                        "subject": str(head["Subject"]) if head["Subject"] is not None else None,
                        "message_id": str(head["Message-ID"]) if head["Message-ID"] else None})
        return out

    # ---- changes made "elsewhere" ----

    def deliver(self, folder_path="INBOX", subject="Test message", body=None, mime=None, is_read=False,
                received=None):
        if mime is None:
            mime = (f"From: Test Sender <sender@example.com>\r\nTo: {self.u.address}\r\n"
                    f"Subject: {subject}\r\nDate: {email.utils.formatdate(received)}\r\n"
                    f"Message-ID: {email.utils.make_msgid(domain='example.com')}\r\nMIME-Version: 1.0\r\n"
                    f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                    f"{body if body is not None else 'Delivered by the test harness.'}\r\n").encode("utf-8")
        uid = self.u.deliver(mime, folder_path, seen=is_read, received=received)
        return f"{uid}@{folder_path}"

    def _store(self, item_id, op, flags):
        box, uid = _split_id(item_id)

        def run(m):
            self._select(m, box, readonly=False)
            typ, data = m.uid("STORE", str(uid), op, flags)
            if typ != "OK":
                raise KeyError(f"STORE on {item_id!r}: {data}")
        self._with(run)

    def mark_read(self, item_id, read=True):
        self._store(item_id, "+FLAGS" if read else "-FLAGS", "(\\Seen)")

    def set_flag(self, item_id, status):
        self._store(item_id, "+FLAGS" if status == "Flagged" else "-FLAGS", "(\\Flagged)")

    def delete(self, item_id):
        box, uid = _split_id(item_id)

        def run(m):
            self._select(m, box, readonly=False)
            m.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
            m.uid("EXPUNGE", str(uid))
        self._with(run)

    def move(self, item_id, to_path):
        box, uid = _split_id(item_id)

        def run(m):
            self._select(m, box, readonly=False)
            typ, data = m.uid("MOVE", str(uid), _quote(to_path))
            if typ != "OK":
                raise KeyError(f"MOVE {item_id!r}: {data}")
            hit = re.search(rb"COPYUID \d+ \S+ (\d+)", b" ".join(x for x in [*data, *(
                m.untagged_responses.get("OK") or [])] if isinstance(x, bytes)))
            return f"{int(hit.group(1))}@{to_path}" if hit else None
        return self._with(run)

    def create_folder(self, parent_path, name, folder_class="IPF.Note"):
        path = f"{parent_path}/{name}" if parent_path else name
        self._with(lambda m: m.create(_quote(path)))
        self.u.enable_modseq()
        return path

    def rename_folder(self, path, new_name):
        new = "/".join(path.split("/")[:-1] + [new_name])
        self._with(lambda m: m.rename(_quote(path), _quote(new)))
        self.u.enable_modseq()

    def move_folder(self, path, to_path):
        new = f"{to_path}/{path.split('/')[-1]}" if to_path else path.split("/")[-1]
        self._with(lambda m: m.rename(_quote(path), _quote(new)))
        self.u.enable_modseq()

    def delete_folder(self, path):
        def run(m):
            for box in sorted((b for b in self.u._list(m) if b == path or b.startswith(path + "/")),
                              key=len, reverse=True):
                m.delete(_quote(box))
        self._with(run)

    # ---- a seeded corpus, like the test server's ----

    def populate(self, messages=200, seed=1, big=0.0):
        """The test server's generated mailbox (same MIME, same markers) copied
        into SOGo: folders mapped as MODEL_TO_IMAP, folders whose name holds "/"
        and non-mail folders left out. Returns and keeps the markers ({text: [ids]})."""
        import sys as _sys
        _sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
        from generate import generate
        from mailbox import Mailbox
        mb = Mailbox(uid=f"sogo-{seed}")
        info = generate(mb, messages, seed, big)
        ids, made = {}, set()

        def imap_path(f):
            parts = mb.folder_path(f)
            if not parts or any("/" in p for p in parts) or not f.is_mail() or parts[0] == "Outbox":
                return None
            return "/".join([MODEL_TO_IMAP.get(parts[0], parts[0])] + parts[1:])

        def run(m):
            existing = set(self.u._list(m))
            for f in [mb.msgroot] + mb.descendants(mb.msgroot):
                p = imap_path(f)
                if p and p not in existing and p not in made:
                    m.create(_quote(p))
                    made.add(p)
            for it in sorted(mb.items.values(), key=lambda i: i.received):
                p = imap_path(it.folder)
                if p is None:
                    continue
                flags = "(\\Seen)" if it.is_read else None
                typ, data = m.append(_quote(p), flags, imaplib.Time2Internaldate(it.received), it.mime)
                hit = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                if hit:
                    ids[it.id] = f"{int(hit.group(1))}@{p}"
        self._with(run)
        self.u.enable_modseq()
        self._markers = {k: [ids[i] for i in v if i in ids]
                         for k, v in {**info["markers"], "hostile": info["hostile"]}.items()}
        return self._markers

    def invalidate_sync_states(self):
        """Make SOGo refuse this user's item SyncKeys (Sync status 3), like
        the test server's invalid_sync fault: forget its per-folder sync
        states (sogo_cache_folder rows '/<device>+folder...'; the device's
        own row, with the FolderSync state, stays)."""
        self.u.sogo.psql(f"DELETE FROM sogo_cache_folder WHERE c_uid = '{self.u.name}' AND c_path LIKE '%+folder%'")

    # not available on SOGo: the test server's request statistics and fault knobs
    def stats(self):
        raise NotImplementedError("SOGo keeps no request statistics for tests")

    def fault(self, *a, **kw):
        raise NotImplementedError("SOGo has no fault knobs (the test server has)")


def _mutf7(name):
    """An IMAP mailbox name in modified UTF-7 (RFC 3501 5.1.3)."""
    out, run = [], []

    def flush():
        if run:
            b = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def _unmutf7(name):
    def dec(mo):
        b = mo.group(1)
        if not b:
            return "&"
        b = b.replace(",", "/")
        return base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, name)


def _quote(name):
    name = _mutf7(name)
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
        """The running SOGo (skips the test when it cannot run here; with
        EXCHANGEFS_REQUIRE_SOGO=1, as in CI, that is a failure instead)."""
        try:
            return shared()
        except RuntimeError as e:
            if os.environ.get("EXCHANGEFS_REQUIRE_SOGO") == "1":
                pytest.fail(str(e))
            pytest.skip(str(e))

    @pytest.fixture
    def sogo_user(sogo):
        """A fresh user with an empty mailbox, removed after the test."""
        u = sogo.new_user()
        yield u
        u.remove()
except ImportError:     # used without pytest (a benchmark, by hand)
    pass
