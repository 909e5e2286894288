#!/usr/bin/python3
"""bench_warm.py - is a warm mount as fast as local disk?  Prints figures, asserts nothing.

A mailbox whose Inbox holds 10,000 messages (--messages 18200) on the test server (HTTPS on
127.0.0.1) is mounted with --prefetch all; once every body is cached, the
Inbox is copied to a local directory on ext4 (the disk of the build tree;
`df -T` says which) and to tmpfs (/dev/shm), and it measures

  - warm `grep -rl` over the Inbox (a word no message holds: every byte read)
  - warm `ls -l` of the Inbox

on the mount and on the copies: one warming run each, then --runs runs
taken in turns, best and median.  The machine is shared: read the best.

Then the FUSE requests that still reach the daemon during one warm run of
each command, per opcode, from a second mount of the same cache with
libfuse's request log (-o debug; timed figures never come from that mount),
and the same after the daemon's periodic re-sync has passed once
(--sync-interval 5 on that mount): a re-sync that changed nothing must not
cost the next grep anything.

usage: tests/bench/bench_warm.py [--messages 10000] [--runs 7] [--build DIR] [--dir DIR]
                                 [--no-counts]
"""
import argparse
import collections
import os
import re
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

WORD = "no message says zqxjkv"


def grep_rl(path):
    subprocess.run(["grep", "-rl", WORD, path], stdout=subprocess.DEVNULL)


def ls_l(path):
    subprocess.run(["ls", "-l", path], stdout=subprocess.DEVNULL, check=True)


def fstype(path):
    out = subprocess.run(["df", "--output=fstype", path], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[-1]


def timed(fn, path):
    t0 = time.perf_counter()
    fn(path)
    return time.perf_counter() - t0


def compare(what, fn, places, runs):
    """places: [(label, path)]; the first is the mount.  One warming run
    each, then `runs` rounds in turns."""
    for _, p in places:
        fn(p)
    times = {label: [] for label, _ in places}
    for _ in range(runs):
        for label, p in places:
            times[label].append(timed(fn, p))
    ref = places[0][0]
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    cells = []
    for label, _ in places:
        cell = "%s %6.0f / %6.0f ms" % (label, best[label] * 1000, med[label] * 1000)
        if label != ref:
            cell += " (x%.2f / x%.2f)" % (best[ref] / best[label], med[ref] / med[label])
        cells.append(cell)
    print("%-22s best / median: %s" % (what, ";  ".join(cells)), flush=True)
    return best, med


OPCODE = re.compile(r"opcode: (\w+) \(")


def count_requests(m, fn, path):
    """Run fn(path) once; the requests libfuse logged meanwhile, by opcode."""
    with open(m.log_path, "rb") as f:
        f.seek(0, 2)
        start = f.tell()
    fn(path)
    time.sleep(0.2)         # the log is written by the daemon's threads
    with open(m.log_path, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    return collections.Counter(OPCODE.findall(text))


def show_counts(what, c, n):
    total = sum(c.values())
    detail = ", ".join("%s %d" % kv for kv in sorted(c.items(), key=lambda kv: -kv[1]))
    print("  %-44s %6d requests (%.2f per file)%s" % (what, total, total / n,
                                                      ": " + detail if detail else ""),
          flush=True)


def wait_prefetched(m, timeout):
    def done():
        st = m.status()
        return ("last complete sync: never" not in st and
                re.search(r"^prefetch: .*complete", st, re.M))
    mountlib.wait_for(done, timeout, interval=1.0, what="every body cached (--prefetch all)")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=18200,
                    help="in the whole mailbox; the Inbox gets 55%% (10,000 of 18,200)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--build", default=os.environ.get("EXCHANGEFS_BUILD") or os.path.join(TOP, "build"))
    ap.add_argument("--dir", default=os.path.join(TOP, "build"),
                    help="where the cache and the local copy go (default: the build tree's disk)")
    ap.add_argument("--no-counts", action="store_true", help="skip the request counts")
    ap.add_argument("--mount-options", default="", help="extra -o options for the mount (experiments)")
    ap.add_argument("--daemon-args", default="", help="extra daemon arguments, split at spaces (experiments)")
    args = ap.parse_args()

    mountlib.EXE = os.path.join(args.build, "fs", "exchangefs")
    os.makedirs(args.dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="exchangefs-benchwarm-", dir=args.dir)
    shm = tempfile.mkdtemp(prefix="exchangefs-benchwarm-", dir="/dev/shm")
    print("exchangefs warm-mount benchmark; build %s; %d cores; kernel %s; local copy on %s (%s), "
          "and on %s (%s)" % (args.build, os.cpu_count(), os.uname().release, tmp, fstype(tmp),
                              shm, fstype(shm)), flush=True)
    srv = None
    extra = ["--sync-interval", "3600", "--cache-size", "0", "--prefetch", "all"]
    if args.mount_options:
        extra += ["-o", args.mount_options]
    extra += args.daemon_args.split()
    try:
        t0 = time.monotonic()
        srv = EwsServer(messages=args.messages, seed=99, tls=True, start_timeout=1200)
        srv.start()
        print("test server up (%d messages) in %.1f s" % (args.messages, time.monotonic() - t0),
              flush=True)
        mnt = os.path.join(tmp, "mnt")
        cache = os.path.join(tmp, "cache")
        m = mountlib.Mount(mnt, srv.ews_url, srv.user, srv.password, cache,
                           os.path.join(tmp, "daemon.log"), ca_file=srv.ca_cert, extra=extra)
        t0 = time.monotonic()
        m.start(timeout=600)
        wait_prefetched(m, 3600)
        print("mounted, every body cached, in %.1f s" % (time.monotonic() - t0), flush=True)
        inbox = m.path("Inbox")
        n = len(os.listdir(inbox))
        disk = os.path.join(tmp, "Inbox")
        ram = os.path.join(shm, "Inbox")
        shutil.copytree(inbox, disk)
        shutil.copytree(inbox, ram)
        print("Inbox: %d messages, %.1f MB" % (n, sum(os.path.getsize(os.path.join(disk, f))
                                                    for f in os.listdir(disk)) / 1e6), flush=True)
        places = [("exchangefs", inbox), ("ext4", disk), ("tmpfs", ram)]
        compare("warm grep -rl Inbox", grep_rl, places, args.runs)
        compare("warm ls -l Inbox", ls_l, places, args.runs)
        m.stop()

        if not args.no_counts:
            print("FUSE requests reaching the daemon (a mount of the same cache with -o debug):",
                  flush=True)
            log = os.path.join(tmp, "daemon-debug.log")
            opts = "debug" + ("," + args.mount_options if args.mount_options else "")
            m = mountlib.Mount(mnt, srv.ews_url, srv.user, srv.password, cache, log,
                               ca_file=srv.ca_cert,
                               extra=["--sync-interval", "5", "--cache-size", "0",
                                      "--prefetch", "all", "-o", opts, *args.daemon_args.split()])
            m.start(timeout=600)
            wait_prefetched(m, 600)
            show_counts("first grep -rl Inbox of this mount", count_requests(m, grep_rl, inbox), n)
            show_counts("warm grep -rl Inbox", count_requests(m, grep_rl, inbox), n)
            show_counts("first ls -l Inbox of this mount", count_requests(m, ls_l, inbox), n)
            show_counts("warm ls -l Inbox", count_requests(m, ls_l, inbox), n)
            m.wait_next_sync(timeout=120)
            show_counts("grep -rl Inbox after a re-sync", count_requests(m, grep_rl, inbox), n)
            show_counts("ls -l Inbox after a re-sync", count_requests(m, ls_l, inbox), n)
            m.stop()
        srv.stop()
        srv = None
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        if srv:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
