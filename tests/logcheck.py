"""logcheck.py - one directory of logs per test session, and the check that
no test secret (password, token) appears in any log.

Convention (see tests/conftest.py):
- At the start of a session EXCHANGEFS_TEST_LOGS names a fresh directory
  ($EXCHANGEFS_BUILD/test-logs/session-<pid> unless already set).
- Every log goes there: the daemon logs of tests/fs/mountlib.py (new_log()),
  the test server's log (tests/server/harness.py copies it there when the
  server is cleaned up), and any log a test writes itself (new_log()).
- Every secret a test gives a server or a daemon is registered with
  add_secret() (the harness registers its password; a token endpoint
  registers the tokens it issues); the file is "secrets" in the directory,
  one JSON object per line: {"secret": ..., "user": ...}.
- When the session ends, conftest.py's pytest_sessionfinish runs scan()
  over every file of the directory (the secrets file aside) and fails
  the run if a secret appears: raw (as a whole word when shorter than 12
  characters), or as the base64 of "user:secret" (a Basic Authorization
  header).
"""
import base64
import itertools
import json
import os
import re
import tempfile

ENV = "EXCHANGEFS_TEST_LOGS"
SECRETS = "secrets"
_counter = itertools.count(1)


def log_dir():
    """The session's log directory (made on first use if the session did
    not set one, e.g. when a test file runs outside pytest's conftest)."""
    d = os.environ.get(ENV)
    if not d:
        d = tempfile.mkdtemp(prefix="exchangefs-test-logs-")
        os.environ[ENV] = d
    os.makedirs(d, exist_ok=True)
    return d


def start_session(build_dir=None):
    """Choose and create the session's directory; returns it."""
    if os.environ.get(ENV):
        return log_dir()
    if build_dir and os.path.isdir(build_dir):
        top = os.path.join(build_dir, "test-logs")
        os.makedirs(top, exist_ok=True)
        for old in os.listdir(top):        # sessions whose pytest is gone
            m = re.fullmatch(r"session-(\d+)", old)
            if m and not os.path.exists("/proc/" + m.group(1)):
                _rmtree(os.path.join(top, old))
        d = os.path.join(top, "session-%d" % os.getpid())
        _rmtree(d)
        os.makedirs(d)
        os.environ[ENV] = d
    return log_dir()


def _rmtree(d):
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def new_log(prefix):
    """A fresh log file path in the session directory."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", prefix)[:80]
    return os.path.join(log_dir(), "%s-%d-%d.log" % (safe, os.getpid(), next(_counter)))


def add_secret(secret, user=None):
    """Register a secret the logs must never show."""
    if not secret:
        return
    with open(os.path.join(log_dir(), SECRETS), "a", encoding="utf-8") as f:
        f.write(json.dumps({"secret": secret, "user": user}) + "\n")


def needles(directory):
    """[(compiled regex over bytes, description)] of the registered secrets."""
    out, seen = [], set()
    try:
        with open(os.path.join(directory, SECRETS), encoding="utf-8") as f:
            entries = [json.loads(l) for l in f if l.strip()]
    except OSError:
        return out
    for e in entries:
        s, user = e["secret"], e.get("user")
        forms = [(s, "a secret")]
        if user:
            forms.append((base64.b64encode(("%s:%s" % (user, s)).encode()).decode(),
                          "the Basic Authorization of " + user))
        for text, what in forms:
            if text in seen:
                continue
            seen.add(text)
            pat = re.escape(text.encode())
            if len(text) < 12:
                pat = rb"(?<![A-Za-z0-9_])" + pat + rb"(?![A-Za-z0-9_])"
            out.append((re.compile(pat), "%s (%d characters)" % (what, len(text))))
    return out


def scan(directory=None):
    """[(file, description, line)] of every appearance of a secret in a
    file of the directory."""
    directory = directory or os.environ.get(ENV)
    if not directory or not os.path.isdir(directory):
        return []
    pats = needles(directory)
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if root == directory and name == SECRETS:
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for pat, what in pats:
                m = pat.search(data)
                if m:
                    start = data.rfind(b"\n", 0, m.start()) + 1
                    end = data.find(b"\n", m.end())
                    line = data[start:end if end >= 0 else len(data)]
                    line = line.replace(m.group(0), b"<SECRET>")[:200]
                    found.append((path, what, line.decode("utf-8", "replace")))
    return found


def files(directory=None):
    """The log files of the session (for a report)."""
    directory = directory or os.environ.get(ENV)
    out = []
    for root, _dirs, names in os.walk(directory or "/nonexistent"):
        out += [os.path.join(root, n) for n in names if n != SECRETS]
    return out
