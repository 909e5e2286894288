#!/usr/bin/python3
"""bench_first_ls.py - how long the first `ls` of a folder takes on a fresh
cache, with and without prefetch: prints figures, asserts nothing.

The test server (HTTPS on 127.0.0.1) holds a generated mailbox (default
10,000 messages: Inbox about 5,500, Archive about 800, Sent Items about
1,000).  For each protocol (EWS, ActiveSync 16.1) and each policy
(--prefetch all, --prefetch none), every run mounts with an EMPTY cache
and, as soon as the mount is up, lists Inbox, then Archive, then Sent
Items one after the other, as a user would: each `ls` waits for that
folder's first sync.  Printed: best / median over the runs of each `ls`,
and of the time from the mount to the end of the first complete sync.

The server's time matters: the test server is Python (one interpreter
lock: it serves one request's CPU at a time, like a server whose CPU is
the bottleneck), --workers (default 1) lets it work on that many requests
at once (the others wait, as on a server whose CPU is busy), and
--item-cost-ms (default 2) makes every body it is asked for cost that
long (GetItem / ItemOperations); --latency-ms adds a round trip to every
request.  So prefetch calls that run while a folder
is synced compete with its pages for the server.

usage: tests/bench/bench_first_ls.py [--messages 10000] [--runs 3] [--build DIR]
                                     [--protocols ews,eas] [--policies all,none]
                                     [--item-cost-ms 2] [--workers 1] [--latency-ms 0] [--dir DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "server"))
sys.path.insert(0, os.path.join(TOP, "tests", "fs"))

from harness import EwsServer  # noqa: E402
import mountlib  # noqa: E402

FOLDERS = ["Inbox", "Archive", "Sent Items"]


def one_run(srv, tmp, protocol, policy, run):
    """Mount on an empty cache, ls each folder in turn; seconds per ls, then
    the first complete sync (from the mount being up)."""
    name = "%s-%s-%d" % (protocol, policy, run)
    url, args = (srv.ews_url, []) if protocol == "ews" else (srv.eas_url, ["--protocol", "eas"])
    m = mountlib.Mount(os.path.join(tmp, "mnt"), url, srv.user, srv.password,
                       os.path.join(tmp, "cache-" + name), os.path.join(tmp, name + ".log"),
                       ca_file=srv.ca_cert,
                       extra=["--sync-interval", "3600", "--cache-size", "0", "--prefetch", policy,
                              *args])
    m.start(timeout=300)
    try:
        t0 = time.monotonic()
        out = []
        for f in FOLDERS:
            t = time.monotonic()
            n = len(os.listdir(m.path(f)))
            out.append(time.monotonic() - t)
            if run == 0:
                print("  [%s --prefetch %s] ls %s: %d entries" % (protocol, policy, f, n), flush=True)
        mountlib.wait_for(lambda: "last complete sync: never" not in m.status(), 1800,
                          interval=0.2, what="first complete sync")
        out.append(time.monotonic() - t0)
        return out
    finally:
        m.stop(timeout=120)
        shutil.rmtree(os.path.join(tmp, "cache-" + name), ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.environ.get("EXCHANGEFS_BUILD") or os.path.join(TOP, "build"))
    ap.add_argument("--protocols", default="ews,eas")
    ap.add_argument("--policies", default="all,none")
    ap.add_argument("--item-cost-ms", type=int, default=2, help="the server's work per body asked for")
    ap.add_argument("--workers", type=int, default=1,
                    help="requests the server works on at once (its CPU); 0: no limit")
    ap.add_argument("--latency-ms", type=int, default=0, help="the test server's delay per request")
    ap.add_argument("--dir", help="where the caches go (default $TMPDIR)")
    args = ap.parse_args()
    mountlib.EXE = os.path.join(args.build, "fs", "exchangefs")
    print("exchangefs first-ls benchmark; build %s; %d cores; %d messages, %d ms per body, "
          "%d ms per request, %s, %d runs"
          % (args.build, os.cpu_count(), args.messages, args.item_cost_ms, args.latency_ms,
             "%d server workers" % args.workers if args.workers else "no server worker limit",
             args.runs), flush=True)
    tmp = tempfile.mkdtemp(prefix="exchangefs-benchls-", dir=args.dir)
    srv = EwsServer(messages=args.messages, seed=99, tls=True, start_timeout=1200,
                    latency_ms=args.latency_ms)
    try:
        t0 = time.monotonic()
        srv.start()
        srv.item_cost(args.item_cost_ms)
        srv.workers(args.workers)
        print("server up in %.1f s" % (time.monotonic() - t0), flush=True)
        rows = []
        for protocol in args.protocols.split(","):
            for policy in args.policies.split(","):
                runs = [one_run(srv, tmp, protocol, policy, i) for i in range(args.runs)]
                cols = list(zip(*runs))
                rows.append(("%s, --prefetch %s" % (protocol, policy),
                             ["%.1f / %.1f" % (min(c), statistics.median(c)) for c in cols]))
                print("  %-24s %s" % (rows[-1][0], "  ".join(rows[-1][1])), flush=True)
        head = ["ls " + f for f in FOLDERS] + ["first sync complete"]
        print("\n| (best / median, s)       | " + " | ".join(head) + " |")
        print("|--------------------------|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
        for label, cells in rows:
            print("| %-24s | " % label + " | ".join(c.ljust(len(h)) for c, h in zip(cells, head)) + " |")
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
