"""test_stalled_server.py - a server that stops answering never holds the
daemon: with every request stalled (the test server's `slow` fault) while
the daemon sends a queued message, syncs, watches and prefetches,
`fusermount3 -u` ends the daemon promptly, and nothing the user wrote is lost
(the message is sent by the next mount). Over both protocols of the test
server; every wait polls with a generous bound, nothing is timed."""
import os

import pytest

from mountlib import wait_for
from servers import make_target
from test_write import message, write

@pytest.fixture(params=["ews", "eas"])
def tsrv(request):
    t = make_target(request.param, messages=30, seed=33)
    request.addfinalizer(t.close)
    return t


def held(srv):
    """How many requests the server is holding (or held)."""
    return sum(HELD - f["count"] for f in srv.stats()["faults"])


HELD = 100000


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "no-notify"])
def test_unmount_with_every_request_stalled(tsrv, mount, notify):
    srv = tsrv.srv
    extra = ["--sync-interval", "2"]
    if not notify:
        extra.append("--no-notify")
    m = mount(tsrv, extra=extra)
    m.wait_synced()
    # from now on every request is held for ten minutes
    srv.fault("slow", count=HELD, ms=600 * 1000)
    write(m.path("Drafts", "stalled.eml"), message("Written while the server stalls"))
    # the daemon waits inside requests the server holds: a sync every 2 s,
    # the message to send (behind the sync's server lock), notifications
    wait_for(lambda: held(srv) >= 2, 60, what="requests to reach the stalled server")
    m.stop(timeout=60)
    srv.clear_faults()
    # the next mount sends it: nothing was lost
    m2 = mount(tsrv, extra=["--no-notify"])
    m2.wait_synced()
    wait_for(lambda: "changes queued: 0" in m2.status(), 120,
             what="the message written during the stall to be sent")
    assert os.path.exists(m2.path("Drafts", "stalled.eml"))
    got = [it for it in srv.items("Drafts") if it["subject"] == "Written while the server stalls"]
    assert len(got) == 1, got     # sent once, though its first request was cut
    m2.stop()


def test_eas_read_while_a_sync_is_stalled(mount):
    """ActiveSync serialises its Sync commands (reads and writes of every
    folder share one key chain lock, and the sync engine's server lock):
    a Sync the server holds must not hold up reading a message whose body
    is not cached yet (ItemOperations takes neither lock)."""
    t = make_target("eas", messages=30, seed=34)
    try:
        srv = t.srv
        m = mount(t, extra=["--no-notify", "--prefetch", "none", "--sync-interval", "2"])
        m.wait_synced()
        d = m.path(t.inbox)
        names = sorted(n for n in os.listdir(d) if n.endswith(".eml"))
        srv.fault("slow", count=HELD, operation="Sync", ms=600 * 1000)
        write(m.path("Drafts", "held.eml"), message("Held by the server"))
        wait_for(lambda: held(srv) >= 1, 60, what="a Sync to reach the stalled server")
        with open(os.path.join(d, names[3]), "rb") as f:
            assert b"Subject:" in f.read()
        m.stop(timeout=60)
    finally:
        t.close()
