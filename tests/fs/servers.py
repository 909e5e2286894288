# The servers a mount test can run against, for parametrising the mount suite:
# the test server over EWS, the test server over ActiveSync 16.1, and SOGo over
# ActiveSync 14.1. Each gives a harness-like `srv` (tests/server/harness.py's
# API; for SOGo the IMAP view of tests/sogo/sogo_server.py), the URL and the
# extra daemon arguments, and says what the server cannot do (for skips).
"""
The `target` fixture of tests/fs/conftest.py gives one of each kind (through
make_target(), which skips what cannot run here); a module wanting another
mailbox defines its own with make_target(request.param, messages=..):

    def test_x(target, mount):
        target.require("faults")               # skips on SOGo, with the reason
        m = mount(target)                      # its URL and --protocol
        m.wait_synced()
        target.srv.deliver(target.inbox, subject="Hi")
"""

import functools
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sogo"))

from harness import EwsServer  # noqa: E402
from mountlib import EXE  # noqa: E402

KINDS = ["ews", "eas", "sogo"]

# what a server cannot do, and why (the skip message)
CANNOT = {
    "ews": {},
    "eas": {
        "store_message": "ActiveSync cannot store a message in a folder (Sync Add of mail: drafts only, "
                         "from 16.0 on)",
    },
    "sogo": {
        "faults": "SOGo has no fault knobs (the test server has)",
        "stats": "SOGo keeps no request statistics for tests",
        "drafts": "SOGo speaks ActiveSync 14.1, which cannot store a message in a folder (16.0 can)",
        "categories": "SOGo's ActiveSync does not keep categories on mail",
        "restart": "SOGo is shared by the whole test session and is not restarted by a test",
        "notify_fast": "SOGo looks for changes every 5 s (Ping answers within 5-10 s)",
        "outbox": "SOGo has no Outbox folder (the client's Outbox is virtual)",
        "tls": "SOGo is served over plain HTTP here (no certificate to distrust)",
        "store_message": "ActiveSync cannot store a message in a folder (Sync Add of mail: drafts only, "
                         "from 16.0 on)",
        "slash_names": "IMAP (where SOGo keeps mail) uses / between folder names: no name can hold one",
    },
}


class Target:
    def __init__(self, kind, srv, url, args, inbox, closer):
        self.kind, self.srv, self.url, self.args, self.inbox = kind, srv, url, args, inbox
        self._close = closer

    def can(self, feature):
        return feature not in CANNOT[self.kind]

    def require(self, *features):
        import pytest
        for f in features:
            if not self.can(f):
                pytest.skip(f"{self.kind}: {CANNOT[self.kind][f]}")

    def close(self):
        if self._close:
            self._close()
            self._close = None


def open_target(kind, messages=60, seed=5, **server_kw):
    """Start (or, for SOGo, take a fresh user on) the server of this kind.
    EWS and EAS: a test server of its own (server_kw go to EwsServer); the EAS
    one accepts Ping heartbeats from 1 s. SOGo: the session's instance, a new
    user, the same generated corpus (populate) when messages > 0."""
    if kind in ("ews", "eas"):
        srv = EwsServer(messages=messages, seed=seed, **server_kw).start()
        if kind == "ews":
            return Target(kind, srv, srv.ews_url, [], "Inbox", srv.cleanup)
        srv.eas_config(min_heartbeat=1)
        return Target(kind, srv, srv.eas_url, ["--protocol", "eas"], "Inbox", srv.cleanup)
    if kind == "sogo":
        import sogo_server
        user = sogo_server.shared().new_user()
        view = user.view()
        if messages:
            view.populate(messages, seed)
        return Target(kind, view, user.eas_url, ["--protocol", "eas"], "INBOX", user.remove)
    raise ValueError(f"unknown server kind {kind!r}; known: {KINDS}")


@functools.lru_cache(maxsize=None)
def has_eas():
    """Whether this exchangefs has the ActiveSync backend (its --help names eas)."""
    r = subprocess.run([EXE, "--help"], capture_output=True, text=True)
    return any("--protocol" in ln and "eas" in ln for ln in (r.stdout + r.stderr).splitlines())


def make_target(kind, messages=40, sogo_messages=12, seed=5, **server_kw):
    """open_target() with the skips every parametrised test shares: no
    ActiveSync backend built, or SOGo not runnable here (a failure instead
    with EXCHANGEFS_REQUIRE_SOGO=1, as in CI). SOGo stores about 50
    messages/s, so it gets the smaller corpus."""
    import pytest
    if kind != "ews" and not has_eas():
        pytest.skip("this exchangefs has no ActiveSync backend (--protocol eas)")
    try:
        return open_target(kind, messages=sogo_messages if kind == "sogo" else messages,
                           seed=seed, **({} if kind == "sogo" else server_kw))
    except RuntimeError as e:       # SOGo not installed or not startable
        if os.environ.get("EXCHANGEFS_REQUIRE_SOGO") == "1":
            pytest.fail(str(e))
        pytest.skip(str(e))


