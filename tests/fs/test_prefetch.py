"""test_prefetch.py - bodies fetched in the background (--prefetch): all of
them byte-equal, only the last N days, never beyond --cache-size and never
evicting, an on-demand read served before the prefetch backlog, throttling
shrinking the pool and its recovery, failures listed without blocking the
rest, kill -9 then a restart fetching only what is missing, and read-ahead
for a reader going through an uncached folder (grep -r) in batches."""
import hashlib
import os
import re
import sqlite3
import time

import pytest

from harness import EwsServer
from mountlib import wait_for


@pytest.fixture
def small(tmp_path):
    """A small plain-HTTP mailbox (no TLS: these tests are about batching)."""
    with EwsServer(messages=150, seed=5) as srv:
        yield srv


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


def visible_items(server):
    """Server items in folders the mount shows (mail folders)."""
    dump = server.mailbox()
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


def test_prefetch_all_caches_every_body_byte_equal(small, mount):
    m = mount(small, extra=["--prefetch", "all"])
    wait_complete(m)
    items = visible_items(small)
    assert progress(m) == (len(items), len(items))
    st = small.stats()
    assert st["get_item_ids"] == len(items)           # each body fetched once
    assert st["get_item_max"] > 1                     # in batches
    assert "prefetch errors: none" in m.status()
    # every file reads from the cache, byte-equal to the server's MIME
    small.reset_stats()
    got = sorted(hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files(m))
    want = sorted(hashlib.sha256(small.item_mime(it["id"])).hexdigest() for it in items)
    assert got == want
    assert small.stats()["requests"].get("GetItem", 0) == 0
    m.stop()
    # the foreground progress line
    assert re.search(r"prefetch: [\d,]+ / [\d,]+ bodies, .*complete", m.log_text())


def test_prefetch_days_only_recent_then_all_on_remount(small, mount):
    m = mount(small, extra=["--prefetch", "7d"])
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
    m = mount(small, extra=["--prefetch", "all"])
    wait_complete(m)
    assert progress(m) == (len(items), len(items))
    assert abs(small.stats()["get_item_ids"] - (len(items) - cached)) <= len(edge)
    m.stop()


def test_prefetch_stops_at_cache_size_and_never_evicts(small, mount):
    limit = 120 * 1024
    m = mount(small, extra=["--prefetch", "all", "--cache-size", str(limit)])
    m.wait_synced()
    wait_for(lambda: "stopped at the cache size limit" in m.status(), 60, interval=0.1,
             what="prefetch to stop at the limit:\n" + m.status())
    n, size = bodies_in_db(m)
    assert 0 < n < len(visible_items(small)) and size <= limit
    time.sleep(1.5)                                   # it stays stopped
    assert bodies_in_db(m) == (n, size)
    # nothing was fetched twice: prefetch never evicted what it fetched
    assert small.stats()["get_item_ids"] - n <= 16 * 4     # at most the batches refused at the limit
    assert "evicting" not in m.log_text()
    m.stop()


def test_on_demand_read_jumps_the_queue(tmp_path, mount):
    with EwsServer(messages=300, seed=6) as srv:
        srv.item_cost(40)                             # 300 bodies: >= 3 s with 4 connections
        m = mount(srv, extra=["--prefetch", "all"])
        m.wait_synced()
        names = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))
        oldest = m.path("Inbox", names[0])            # the last one prefetch would reach
        wait_for(lambda: progress(m)[0] > 0, 30, interval=0.02, what="prefetch to start")
        t0 = time.monotonic()
        with open(oldest, "rb") as f:
            data = f.read()
        latency = time.monotonic() - t0
        cached, total = progress(m)
        print("on-demand read during prefetch: %.0f ms (prefetch at %d / %d)" % (latency * 1000, cached, total))
        assert data.startswith(b"Received:") or b"Subject" in data[:4096]
        assert cached < total                         # served before the backlog
        assert srv.stats()["get_item_peak"] >= 2      # while prefetch calls ran
        wait_complete(m)
        m.stop()


def test_throttling_shrinks_pool_and_recovers(small, mount):
    small.item_cost(5)
    small.fault("busy", count=3, operation="GetItem", where="message", backoff_ms=300)
    m = mount(small, extra=["--prefetch", "all"], env={"EXCHANGEFS_PREFETCH_BATCH": "2"})
    wait_complete(m)
    log = m.log_text()
    assert re.search(r"server is throttling \(asked to wait 300 ms\): fetching with [12] connection", log)
    wait_for(lambda: "no longer throttling" in m.log_text(), 60, what="the pool to grow again")
    assert progress(m)[0] == len(visible_items(small))
    m.stop()


def test_failed_bodies_listed_and_rest_fetched(small, mount):
    small.fault("garbage", count=1, operation="GetItem")
    m = mount(small, extra=["--prefetch", "all"], env={"EXCHANGEFS_PREFETCH_BATCH": "4"})
    m.wait_synced()
    items = visible_items(small)
    wait_for(lambda: progress(m)[0] == len(items) - 4, 60, interval=0.1,
             what="all but the failed batch:\n" + m.status())
    st = m.status()
    assert "prefetch errors: 4 (retried later)" in st
    assert st.count("(1 attempts)") == 4
    m.stop(busy_retries=20)


def test_kill_mid_prefetch_resumes_without_refetching(small, mount):
    small.item_cost(20)
    m = mount(small, extra=["--prefetch", "all"], env={"EXCHANGEFS_PREFETCH_BATCH": "4"})
    m.wait_synced()
    wait_for(lambda: progress(m)[0] >= 40, 60, interval=0.05, what="some bodies")
    m.kill()
    have, _ = bodies_in_db(m)
    assert have < len(visible_items(small))
    small.item_cost(0)
    small.reset_stats()
    m = mount(small, extra=["--prefetch", "all"])
    wait_complete(m)
    items = visible_items(small)
    assert progress(m) == (len(items), len(items))
    assert small.stats()["get_item_ids"] == len(items) - have
    assert not [n for n in os.listdir(os.path.join(m.cache_dir, "bodies")) if n.startswith("tmp.")]
    m.stop()


def test_read_ahead_batches_a_folder_read_in_a_row(small, mount):
    m = mount(small)                                   # --prefetch none
    m.wait_synced()
    inbox = m.path("Inbox")
    names = sorted((n for n in os.listdir(inbox) if n.endswith(".eml")),
                   key=lambda n: os.stat(os.path.join(inbox, n)).st_ino)
    small.reset_stats()
    for n in names:                                    # as grep -r does
        with open(os.path.join(inbox, n), "rb") as f:
            f.read()
    st = small.stats()
    calls = st["requests"].get("GetItem", 0)
    print("read-ahead: %d files read with %d GetItem calls (most ids in one: %d)"
          % (len(names), calls, st["get_item_max"]))
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


def test_policy_remembered_for_the_account_and_bad_values_refused(small, mount, tmp_path):
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
def test_body_larger_than_the_estimate_reads_whole(small, mount, how):
    """stat showed the server's estimate (100 bytes); the body fetched in
    the background is larger: a later read still gets every byte."""
    big = "line of text that makes the message longer than its estimate\r\n" * 200
    old = int(time.time()) - 400 * 86400                 # the last one prefetch reaches
    ids = [small.deliver("Archive", subject="Estimate %d" % i, body=big, received=old + i, size=100)
           for i in range(3)]
    small.item_cost(20)
    m = mount(small, extra=["--prefetch", "all" if how == "prefetch" else "none"])
    m.wait_synced()
    names = {}
    for n in os.listdir(m.path("Archive")):
        if "Estimate" in n:
            names[os.getxattr(m.path("Archive", n), "user.exchangefs.id").decode()] = n
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


def test_folder_looked_at_goes_first(small, mount):
    small.item_cost(20)
    m = mount(small, extra=["--prefetch", "all"])
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
