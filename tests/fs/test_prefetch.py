"""test_prefetch.py - bodies fetched in the background (--prefetch): all of
them byte-equal, only the last N days, never beyond --cache-size and never
evicting, an on-demand read served before the prefetch backlog, throttling
shrinking the pool and its recovery, failures listed without blocking the
rest, kill -9 then a restart fetching only what is missing, header pages
of every folder's first sync before any prefetch call, read-ahead
for a reader going through an uncached folder (grep -r) in batches, and a
message gone from the server in the middle of a batch.

Prefetch is a core feature: the tests run on every kind of server
(tests/fs/servers.py: the test server over EWS and over ActiveSync 16.1,
SOGo over ActiveSync 14.1). What needs request statistics, fault knobs or
the test server's per-item cost runs on the test server's two kinds only
(servers.CANNOT says why SOGo cannot); the test server's statistics count
an EAS ItemOperations and its Fetch elements as a GetItem and its ids."""
import base64
import hashlib
import os
import re
import sqlite3
import time

import pytest

from mountlib import wait_for
from servers import KINDS, make_target

# the test server's name of the command that fetches bodies, per kind
FETCH_OP = {"ews": "GetItem", "eas": "ItemOperations"}


def target_of(request, **kw):
    t = make_target(request.param, **kw)
    request.addfinalizer(t.close)
    return t


@pytest.fixture(params=KINDS)
def small(request):
    """A small plain-HTTP mailbox (no TLS: these tests are about batching)
    on each kind of server; SOGo gets fewer messages (it stores ~50/s)."""
    return target_of(request, messages=150, sogo_messages=24, seed=5)


@pytest.fixture(params=KINDS + ["eas-sogo-quirks"])
def small_q(request):
    """small, and the test server over ActiveSync answering ItemOperations as
    SOGo does: every Fetch from the first Fetch's folder, HTTP 501 for a
    batch with a message gone (SOGo's own corpus is too small to show it)."""
    kind = request.param.split("-")[0]
    t = make_target(kind, messages=150, sogo_messages=24, seed=5)
    request.addfinalizer(t.close)
    if request.param == "eas-sogo-quirks":
        t.srv.eas_config(fetch_first_collection=True, fetch_gone="http501")
    return t


@pytest.fixture(params=["ews", "eas"])
def tsmall(request):
    """The same on the test server only (both protocols): for tests that
    need its statistics, faults or per-item cost."""
    return target_of(request, messages=150, seed=5)


def progress(m):
    """(cached, total) from the status line 'prefetch: 7,412 / 10,005 bodies, ...'."""
    for line in m.status().splitlines():
        mo = re.match(r"prefetch: ([\d,]+) / ([\d,]+) bodies", line)
        if mo:
            return int(mo.group(1).replace(",", "")), int(mo.group(2).replace(",", ""))
    raise AssertionError("no prefetch line in status:\n" + m.status())


def wait_complete(m, timeout=120):
    m.wait_synced()
    return wait_for(lambda: ", complete" in m.status(), timeout, interval=0.1,
                    what="prefetch to complete:\n" + m.status())


def visible_items(server, dump=None):
    """Server items in folders the mount shows (mail folders)."""
    dump = dump or server.mailbox()
    mail = set()
    by_id = {f["id"]: f for f in dump["folders"]}
    for f in dump["folders"]:
        ok, p = True, f
        while p and p.get("distinguished") not in ("root", "msgfolderroot"):
            c = p.get("folder_class")
            ok &= not c or c.startswith("IPF.Note")
            p = by_id.get(p["parent_id"])
        if ok:
            mail.add(f["id"])
    return [it for it in dump["items"] if it["folder_id"] in mail]


def files(m):
    out = []
    for dirpath, dirnames, filenames in os.walk(m.mountpoint):
        dirnames[:] = [d for d in dirnames if d != ".exchangefs"]
        out += [os.path.join(dirpath, n) for n in filenames]
    return out


def bodies_in_db(m):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(m.cache_dir, "cache.db"), uri=True)
    try:
        return db.execute("SELECT count(*), coalesce(sum(size), 0) FROM bodies").fetchone()
    finally:
        db.close()


def test_prefetch_all_caches_every_body_byte_equal(small_q, mount):
    small = small_q
    srv = small.srv
    m = mount(small, extra=["--prefetch", "all"])
    wait_complete(m)
    dump = srv.mailbox(mime=True)
    items = visible_items(srv, dump)
    assert progress(m) == (len(items), len(items))
    if small.can("stats"):
        st = srv.stats()
        assert st["get_item_ids"] == len(items)           # each body fetched once
        assert st["get_item_max"] > 1                     # in batches
        srv.reset_stats()
    assert "prefetch errors: none" in m.status()
    # every file reads from the cache, byte-equal to the server's MIME
    got = sorted(hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files(m))
    want = sorted(hashlib.sha256(base64.b64decode(it["mime_b64"])).hexdigest() for it in items)
    assert got == want
    if small.can("stats"):
        assert srv.stats()["requests"].get(FETCH_OP[small.kind], 0) == 0
    m.stop()
    # the foreground progress line
    assert re.search(r"prefetch: [\d,]+ / [\d,]+ bodies, .*complete", m.log_text())


def test_prefetch_days_only_recent_then_all_on_remount(tsmall, mount):
    """On the test server's kinds: the count of bodies fetched is the proof
    (SOGo keeps no statistics), and received dates come from the corpus."""
    small, t = tsmall.srv, tsmall
    m = mount(t, extra=["--prefetch", "7d"])
    wait_complete(m)
    now = time.time()
    items = visible_items(small)
    recent = [it for it in items if it["received"] >= now - 7 * 86400]
    edge = [it for it in items if abs(it["received"] - (now - 7 * 86400)) < 120]
    assert 0 < len(recent) < len(items)
    cached, total = progress(m)
    assert abs(total - len(recent)) <= len(edge) and cached == total
    assert abs(small.stats()["get_item_ids"] - len(recent)) <= len(edge)
    assert "prefetch policy: 7d" in m.status()
    m.stop()
    # a new policy takes effect at the next mount, and what is cached stays
    small.reset_stats()
    m = mount(t, extra=["--prefetch", "all"])
    wait_complete(m)
    assert progress(m) == (len(items), len(items))
    assert abs(small.stats()["get_item_ids"] - (len(items) - cached)) <= len(edge)
    m.stop()


@pytest.mark.parametrize("kind", ["ews", "eas"])
def test_prefetch_days_with_nothing_in_the_window_says_complete(kind, mount, request):
    """--prefetch 7d on a mailbox whose newest mail is a month old: once the
    first sync is done the status says prefetch is complete with nothing in
    the window (it used to say 'waiting for the first sync' for ever)."""
    t = make_target(kind, messages=0)
    request.addfinalizer(t.close)
    old = int(time.time()) - 30 * 86400
    for i in range(3):
        t.srv.deliver("Inbox", subject="Old %d" % i, received=old + i)
    m = mount(t, extra=["--prefetch", "7d"])
    m.wait_synced()
    wait_for(lambda: "complete (nothing received in the last 7 days)" in m.status(), 30,
             interval=0.1, what="prefetch to say it is complete:\n" + m.status())
    assert progress(m) == (0, 0)
    assert "waiting for the first sync" not in m.status()
    m.stop()
    # the same from the cache of the earlier run, with the server down (no pass
    # of this run ever completes)
    t.srv.stop()
    m = mount(t, extra=["--prefetch", "7d"])
    wait_for(lambda: "complete (nothing received in the last 7 days)" in m.status(), 30,
             interval=0.1, what="prefetch to say it is complete:\n" + m.status())
    m.stop()


def test_prefetch_stops_at_cache_size_and_never_evicts(small, mount):
    items = visible_items(small.srv)
    # about a third of the mailbox (120 KiB of the test server's 150 messages)
    limit = 120 * 1024 if small.kind != "sogo" else sum(it["size"] for it in items) // 3
    m = mount(small, extra=["--prefetch", "all", "--cache-size", str(limit)])
    m.wait_synced()
    wait_for(lambda: "stopped at the cache size limit" in m.status(), 60, interval=0.1,
             what="prefetch to stop at the limit:\n" + m.status())
    n, size = bodies_in_db(m)
    assert 0 < n < len(items) and size <= limit
    time.sleep(1.5)                                   # it stays stopped
    assert bodies_in_db(m) == (n, size)
    # nothing was fetched twice: prefetch never evicted what it fetched
    if small.can("stats"):
        assert small.srv.stats()["get_item_ids"] - n <= 16 * 4   # at most the batches refused at the limit
    assert "evicting" not in m.log_text()
    m.stop()


@pytest.mark.parametrize("kind", ["ews", "eas"])
def test_on_demand_read_jumps_the_queue(kind, mount, request):
    """On the test server's kinds: its per-item cost makes the backlog."""
    t = make_target(kind, messages=300, seed=6)
    request.addfinalizer(t.close)
    srv = t.srv
    srv.item_cost(40)                             # 300 bodies: >= 3 s with 4 connections
    m = mount(t, extra=["--prefetch", "all"])
    m.wait_synced()
    names = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))
    oldest = m.path("Inbox", names[0])            # the last one prefetch would reach
    wait_for(lambda: progress(m)[0] > 0, 30, interval=0.02, what="prefetch to start")
    t0 = time.monotonic()
    with open(oldest, "rb") as f:
        data = f.read()
    latency = time.monotonic() - t0
    cached, total = progress(m)
    print("%s: on-demand read during prefetch: %.0f ms (prefetch at %d / %d)"
          % (kind, latency * 1000, cached, total))
    assert data.startswith(b"Received:") or b"Subject" in data[:4096]
    assert cached < total                         # served before the backlog
    assert srv.stats()["get_item_peak"] >= 2      # while prefetch calls ran
    wait_complete(m)
    m.stop()


# the test server's name of the command that syncs a folder's items
SYNC_OP = {"ews": "SyncFolderItems", "eas": "Sync"}


@pytest.mark.parametrize("kind", ["ews", "eas"])
def test_header_pages_go_before_prefetch(kind, mount, request):
    """--prefetch all on a fresh cache, a reader listing Inbox at once: no
    body request reaches the server before the last page of every folder's
    first sync (the server's requests in the order they began)."""
    t = make_target(kind, messages=600, seed=7)
    request.addfinalizer(t.close)
    srv = t.srv
    srv.item_cost(5)
    # one pass: every page the server sees belongs to a first sync
    m = mount(t, extra=["--prefetch", "all", "--sync-interval", "3600", "--no-notify"])
    assert len(os.listdir(m.path("Inbox"))) > 100     # waits for its first sync
    m.wait_synced()
    wait_for(lambda: progress(m)[0] > 0, 60, interval=0.05, what="prefetch to start")
    recent = srv.stats()["recent"]
    pages = [r["t"] for r in recent if r["op"] == SYNC_OP[kind]]
    bodies = [r["t"] for r in recent if r["op"] == FETCH_OP[kind]]
    assert len(pages) >= 8 and bodies
    early = [p for p in pages if p > min(bodies)]
    assert not early, ("%d of %d %s pages began after the first %s"
                       % (len(early), len(pages), SYNC_OP[kind], FETCH_OP[kind]))
    m.stop()


def test_throttling_shrinks_pool_and_recovers(tsmall, mount):
    """EWS: ErrorServerBusy on the items with BackOffMilliseconds; ActiveSync
    has no per-item busy answer: HTTP 503 with Retry-After (whole seconds)."""
    small = tsmall.srv
    small.item_cost(5)
    if tsmall.kind == "ews":
        small.fault("busy", count=3, operation="GetItem", where="message", backoff_ms=300)
        wait = 300
    else:
        small.fault("http503", count=3, operation="ItemOperations", retry_after=1)
        wait = 1000
    m = mount(tsmall, extra=["--prefetch", "all"], env={"EXCHANGEFS_PREFETCH_BATCH": "2"})
    wait_complete(m)
    log = m.log_text()
    assert re.search(r"server is throttling \(asked to wait %d ms\): fetching with [12] connection" % wait, log)
    wait_for(lambda: "no longer throttling" in m.log_text(), 60, what="the pool to grow again")
    assert progress(m)[0] == len(visible_items(small))
    m.stop()


def test_failed_bodies_listed_and_rest_fetched(tsmall, mount):
    """A malformed answer fails its batch (no one-by-one retry: that is for
    a server refusing the whole request) and the rest goes on."""
    small = tsmall.srv
    small.fault("garbage", count=1, operation=FETCH_OP[tsmall.kind])
    m = mount(tsmall, extra=["--prefetch", "all"], env={"EXCHANGEFS_PREFETCH_BATCH": "4"})
    m.wait_synced()
    items = visible_items(small)

    def failed():
        mo = re.search(r"prefetch errors: (\d+) \(retried later\)", m.status())
        return int(mo.group(1)) if mo else 0
    # the first batch fails whole: 4 bodies, or fewer if prefetch began
    # while its folder was still syncing (fewer candidates then)
    wait_for(lambda: failed() and progress(m)[0] == len(items) - failed(), 60, interval=0.1,
             what="all but the failed batch")
    st = m.status()
    assert 1 <= failed() <= 4, st
    assert st.count("(1 attempts)") == failed(), st
    m.stop(busy_retries=20)


def test_kill_mid_prefetch_resumes_without_refetching(tsmall, mount):
    small = tsmall.srv
    small.item_cost(20)
    m = mount(tsmall, extra=["--prefetch", "all"], env={"EXCHANGEFS_PREFETCH_BATCH": "4"})
    m.wait_synced()
    wait_for(lambda: progress(m)[0] >= 40, 60, interval=0.05, what="some bodies")
    m.kill()
    have, _ = bodies_in_db(m)
    assert have < len(visible_items(small))
    small.item_cost(0)
    small.reset_stats()
    m = mount(tsmall, extra=["--prefetch", "all"])
    wait_complete(m)
    items = visible_items(small)
    assert progress(m) == (len(items), len(items))
    assert small.stats()["get_item_ids"] == len(items) - have
    assert not [n for n in os.listdir(os.path.join(m.cache_dir, "bodies")) if n.startswith("tmp.")]
    m.stop()


def test_read_ahead_batches_a_folder_read_in_a_row(tsmall, mount):
    small = tsmall.srv
    m = mount(tsmall)                                  # --prefetch none
    m.wait_synced()
    inbox = m.path("Inbox")
    names = sorted((n for n in os.listdir(inbox) if n.endswith(".eml")),
                   key=lambda n: os.stat(os.path.join(inbox, n)).st_ino)
    small.reset_stats()
    for n in names:                                    # as grep -r does
        with open(os.path.join(inbox, n), "rb") as f:
            f.read()
    st = small.stats()
    calls = st["requests"].get(FETCH_OP[tsmall.kind], 0)
    print("read-ahead: %d files read with %d %s calls (most ids in one: %d)"
          % (len(names), calls, FETCH_OP[tsmall.kind], st["get_item_max"]))
    assert st["get_item_ids"] >= len(names)
    assert calls <= len(names) // 4
    assert st["get_item_max"] > 1
    m.stop()


def without_prefetch_option(m):
    argv = m.argv()
    i = argv.index("--prefetch")
    del argv[i:i + 2]
    m.argv = lambda: argv
    return m.start()


@pytest.fixture
def ews_small():
    t = make_target("ews", messages=150, seed=5)
    yield t.srv
    t.close()


def test_policy_remembered_for_the_account_and_bad_values_refused(ews_small, mount, tmp_path):
    """EWS only: the option and the account's remembered setting are the
    core's, whatever the protocol."""
    small = ews_small
    import subprocess
    from mountlib import EXE
    for bad in ("soon", "0d", "-3d", "7"):
        r = subprocess.run([EXE, "--url", "https://x/", "--user", "a", "--prefetch", bad, "/tmp"],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "--prefetch: '%s' is not all, none or a number of days" % bad in r.stderr
    # a new account: the default
    m = without_prefetch_option(mount(small, start=False, cache=str(tmp_path / "other")))
    assert "prefetch policy: 30d" in m.status()
    m.stop()
    m = mount(small, extra=["--prefetch", "7d"])
    assert "prefetch policy: 7d" in m.status()
    m.stop()
    # no --prefetch at all: the account's remembered setting
    m = without_prefetch_option(mount(small, start=False))
    assert "prefetch policy: 7d" in m.status()
    m.stop()


@pytest.mark.parametrize("how", ["prefetch", "read-ahead"])
def test_body_larger_than_the_estimate_reads_whole(tsmall, mount, how):
    """stat showed the server's estimate (100 bytes; on ActiveSync the
    EstimatedDataSize); the body fetched in the background is larger: a
    later read still gets every byte."""
    small, t = tsmall.srv, tsmall
    big = "line of text that makes the message longer than its estimate\r\n" * 200
    old = int(time.time()) - 400 * 86400                 # the last one prefetch reaches
    ids = [small.deliver("Archive", subject="Estimate %d" % i, body=big, received=old + i, size=100)
           for i in range(3)]
    small.item_cost(20)
    m = mount(t, extra=["--prefetch", "all" if how == "prefetch" else "none"])
    m.wait_synced()
    names = {}                                           # server id -> file (by subject)
    for n in os.listdir(m.path("Archive")):
        for k, i in enumerate(ids):
            if "Estimate %d" % k in n:
                names[i] = n
    assert all(os.stat(m.path("Archive", names[i])).st_size == 100 for i in ids)
    if how == "prefetch":
        wait_complete(m)
    else:                                                # the first read fetches the others ahead
        with open(m.path("Archive", names[ids[0]]), "rb") as f:
            f.read()
        with open(m.path("Archive", names[ids[1]]), "rb") as f:
            f.read()
    for i in ids:
        with open(m.path("Archive", names[i]), "rb") as f:
            assert f.read() == small.item_mime(i)
    m.stop()


def test_folder_looked_at_goes_first(tsmall, mount):
    small = tsmall.srv
    small.item_cost(20)
    m = mount(tsmall, extra=["--prefetch", "all"])
    folder = m.path("Inbox", "Receipts")
    os.listdir(folder)                                   # the user looks at it
    ino = os.stat(folder).st_ino

    def uncached():
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(m.cache_dir, "cache.db"), uri=True)
        try:
            return db.execute("SELECT count(*) FROM nodes WHERE parent = ? AND kind = 2 AND "
                              "body_size < 0", (ino,)).fetchone()[0]
        finally:
            db.close()
    wait_for(lambda: uncached() == 0, 60, interval=0.02, what="the folder's bodies")
    cached, total = progress(m)
    print("folder looked at complete when prefetch was at %d / %d" % (cached, total))
    assert cached < total
    m.stop()


@pytest.mark.parametrize("kind", ["ews", "eas", "eas-http501", "sogo"])
def test_message_gone_mid_batch_rest_delivered(kind, mount, request):
    """Two messages deleted on the server after the last sync, in the middle
    of a read-ahead batch: they vanish from the mount, every other one is
    delivered byte-equal, still in batches. eas-http501 is the test server
    failing the whole ItemOperations with HTTP 501 when one of its Fetch is
    gone, as SOGo does: the client then asks one by one; SOGo itself
    proves it. No notifications and no re-sync, so the fetch is what finds
    the gap."""
    t = make_target(kind.split("-")[0], messages=10, sogo_messages=0, seed=7)
    request.addfinalizer(t.close)
    srv = t.srv
    if kind == "eas-http501":
        srv.eas_config(fetch_gone="http501")
    srv.create_folder(t.inbox, "Batch")
    box = t.inbox + "/Batch"
    base = int(time.time()) - 86400
    ids = {"Batch %02d" % i: srv.deliver(box, subject="Batch %02d" % i, body="body %d\r\n" % i * 20,
                                         received=base + i)
           for i in range(20)}
    m = mount(t, extra=["--prefetch", "none", "--no-notify", "--sync-interval", "3600"])
    m.wait_synced()
    d = m.path(t.inbox, "Batch")
    names = sorted((n for n in os.listdir(d) if n.endswith(".eml")),
                   key=lambda n: os.stat(os.path.join(d, n)).st_ino)
    assert len(names) == 20
    subject = {n: next(s for s in ids if s in n) for n in names}
    gone = {names[4], names[9]}                   # in the batch the second read fetches
    for n in gone:
        srv.delete(ids[subject[n]])
    if t.can("stats"):
        srv.reset_stats()
    got = {}
    for n in names:                               # as grep -r does
        try:
            with open(os.path.join(d, n), "rb") as f:
                got[n] = f.read()
        except FileNotFoundError:
            got[n] = None
    for n in names:
        if n in gone:
            assert got[n] is None, n
        else:
            assert got[n] == srv.item_mime(ids[subject[n]]), n
    wait_for(lambda: not gone & set(os.listdir(d)), 10, what="the gone messages to leave the listing")
    if t.can("stats"):
        st = srv.stats()
        calls = st["requests"].get(FETCH_OP[t.kind], 0)
        print("%s: 20 messages, 2 gone: %d %s calls, most ids in one %d, statuses %s"
              % (kind, calls, FETCH_OP[t.kind], st["get_item_max"], st["statuses"]))
        assert st["get_item_max"] >= 8               # still in batches
        if kind == "eas-http501":
            assert st["statuses"].get("501", 0) >= 1   # the batch failed as a whole ...
            assert calls <= 6 + 18                     # ... and was asked one by one
        else:
            assert calls <= 6
    m.stop()
