#!/usr/bin/python3
"""bench.py - prints figures, asserts nothing (the machine is shared and noisy).

For generated mailboxes of 10k and 100k messages served by the test server
over HTTPS on 127.0.0.1, it measures:
  - first full header sync: wall time, and the daemon's CPU time per 100 items
  - warm `ls -l` of the Inbox against the same names and sizes on tmpfs
  - `grep -r` over all cached messages (10k mailbox) against a copy on local disk,
    plus the cold grep that fetches every body
  - the daemon's RSS (current and peak)
  - write-back (--writes N): `cp` of N messages into Drafts, time until the
    copies returned (journal commits) and until all reached the server;
    then `rm` of them (DeleteItem) the same way
  - notifications (--notify N): N server-side changes injected one after
    another (new messages, then as many read-flag changes), each timed from
    the injection to the read of its inotify event by a watcher: p50, p99,
    max; with the streaming subscription, and with --no-notify (polling)
    for comparison

usage: tests/bench/bench.py [--sizes 10000,100000] [--build DIR] [--runs 5] [--writes 1000]
                            [--notify 1000]
"""
import argparse
import os
import shutil
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

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


def wait_for_sync(m):
    mountlib.wait_for(lambda: "last complete sync: never" not in m.status(), 3600,
                      interval=1.0, what="first complete sync")


def best_of(runs, fn):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ls_l(path):
    subprocess.run(["ls", "-l", path], stdout=subprocess.DEVNULL, check=True)


def grep_r(path, word="invoice 4711"):
    subprocess.run(["grep", "-rl", word, path], stdout=subprocess.DEVNULL)


def bench_ls(m, inbox, runs, what):
    """Warm ls -l of a folder against the same names and sizes on tmpfs."""
    names = os.listdir(inbox)
    shm = tempfile.mkdtemp(prefix="exchangefs-bench-", dir="/dev/shm")
    for name in names:
        p = os.path.join(inbox, name)
        if os.path.isdir(p):
            os.mkdir(os.path.join(shm, name))
        else:
            with open(os.path.join(shm, name), "wb") as f:
                f.truncate(os.stat(p).st_size)
    ls_l(inbox)
    ls_l(shm)
    t_fuse = best_of(runs, lambda: ls_l(inbox))
    t_tmpfs = best_of(runs, lambda: ls_l(shm))
    print("warm ls -l of Inbox (%d entries, %s): exchangefs %.1f ms, tmpfs %.1f ms, ratio %.2f"
          % (len(names), what, t_fuse * 1000, t_tmpfs * 1000, t_fuse / t_tmpfs))
    shutil.rmtree(shm)


def bench_size(n, build, runs, do_grep):
    tmp = tempfile.mkdtemp(prefix="exchangefs-bench-")
    print("\n== mailbox of %d messages" % n, flush=True)
    try:
        t0 = time.monotonic()
        srv = EwsServer(messages=n, seed=99, tls=True, start_timeout=600)
        srv.start()
        print("test server up in %.1f s" % (time.monotonic() - t0), flush=True)
        mountlib.EXE = os.path.join(build, "fs", "exchangefs")
        mnt = os.path.join(tmp, "mnt")
        m = mountlib.Mount(mnt, srv.ews_url, srv.user, srv.password, os.path.join(tmp, "cache"),
                           os.path.join(tmp, "daemon.log"), ca_file=srv.ca_cert,
                           extra=["--sync-interval", "3600", "--cache-size", "0"])
        t0 = time.monotonic()
        m.start(timeout=600)
        pid = m.proc.pid
        # poll the status once a second: reading it costs the daemon CPU
        wait_for_sync(m)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pid)
        # the daemon's own figure is exact; the poll above has 1 s steps
        import re
        found = re.search(r"first sync complete: .* in ([0-9.]+) s", m.log_text())
        if found:
            wall = float(found.group(1))
        items = sum(len(v) for v in m.tree().values())
        mem = rss_kb(pid)
        print("first sync: %d items in %.2f s wall (%.0f items/s); daemon CPU %.2f s = %.2f ms per 100 items"
              % (items, wall, items / wall, cpu, cpu * 1000 / items * 100))
        print("daemon RSS after sync: %.1f MB (peak %.1f MB)" % (mem["VmRSS"] / 1024, mem["VmHWM"] / 1024))

        inbox = m.path("Inbox")
        bench_ls(m, inbox, runs, "headers cached, bodies not")

        if do_grep:
            t0 = time.monotonic()
            grep_r(mnt)
            cold = time.monotonic() - t0
            print("cold grep -r (fetches every body, one GetItem per message): %.1f s (%.0f msg/s)"
                  % (cold, items / cold))
            copy = os.path.join(tmp, "copy")
            shutil.copytree(mnt, copy, ignore=shutil.ignore_patterns(".exchangefs"))
            grep_r(mnt)
            grep_r(copy)
            t_fuse = best_of(runs, lambda: grep_r(mnt))
            t_disk = best_of(runs, lambda: grep_r(copy))
            print("warm grep -r over %d cached messages: exchangefs %.0f ms, local disk %.0f ms, ratio %.2f"
                  % (items, t_fuse * 1000, t_disk * 1000, t_fuse / t_disk))
            bench_ls(m, inbox, runs, "bodies cached")
            mem = rss_kb(pid)
            print("daemon RSS after grep: %.1f MB (peak %.1f MB)"
                  % (mem["VmRSS"] / 1024, mem["VmHWM"] / 1024))
        m.stop()
        srv.stop()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def queued(m):
    for line in m.status().splitlines():
        if line.startswith("changes queued:"):
            return int(line.split(":")[1].split()[0])
    return -1


def bench_writes(n, build):
    tmp = tempfile.mkdtemp(prefix="exchangefs-bench-")
    print("\n== write-back: %d messages" % n, flush=True)
    try:
        srv = EwsServer(messages=100, seed=99, tls=True)
        srv.start()
        mountlib.EXE = os.path.join(build, "fs", "exchangefs")
        mnt = os.path.join(tmp, "mnt")
        m = mountlib.Mount(mnt, srv.ews_url, srv.user, srv.password, os.path.join(tmp, "cache"),
                           os.path.join(tmp, "daemon.log"), ca_file=srv.ca_cert,
                           extra=["--sync-interval", "3600"])
        m.start()
        wait_for_sync(m)
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        for i in range(n):
            with open(os.path.join(src, "m%05d.eml" % i), "wb") as f:
                f.write(("From: a@example.com\r\nTo: b@example.com\r\nSubject: bench %d\r\n"
                         "Date: Thu, 13 Feb 2025 10:30:00 +0000\r\n\r\n" % i).encode()
                        + b"x" * 4000 + b"\r\n")
        drafts = m.path("Drafts")
        t0 = time.monotonic()
        subprocess.run("cp %s/*.eml '%s'/" % (src, drafts), shell=True, check=True)
        t_cp = time.monotonic() - t0
        while queued(m) > 0:
            time.sleep(0.05)
        t_all = time.monotonic() - t0
        print("cp of %d messages (4 KB) into Drafts: returned in %.2f s (%.1f ms per file, journal "
              "commit included); all on the server after %.2f s (%.0f creates/s)"
              % (n, t_cp, t_cp * 1000 / n, t_all, n / t_all))
        t0 = time.monotonic()
        subprocess.run("rm '%s'/m*.eml" % drafts, shell=True, check=True)
        t_rm = time.monotonic() - t0
        while queued(m) > 0:
            time.sleep(0.05)
        t_all = time.monotonic() - t0
        print("rm of them: returned in %.2f s; all deleted on the server after %.2f s (%.0f deletes/s)"
              % (t_rm, t_all, n / t_all))
        m.stop()
        srv.stop()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def percentiles(v):
    v = sorted(v)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return pick(0.5), pick(0.99), v[-1]


def bench_notify(n, build, poll=False):
    from inotify import Watcher, IN_CLOSE_WRITE, IN_ATTRIB
    tmp = tempfile.mkdtemp(prefix="exchangefs-bench-")
    how = "polling every 1 s (--no-notify)" if poll else "streaming notifications"
    print("\n== server change -> inotify event, %d changes, %s" % (n, how), flush=True)
    try:
        srv = EwsServer(messages=100, seed=98, tls=True)
        srv.start()
        mountlib.EXE = os.path.join(build, "fs", "exchangefs")
        m = mountlib.Mount(os.path.join(tmp, "mnt"), srv.ews_url, srv.user, srv.password,
                           os.path.join(tmp, "cache"), os.path.join(tmp, "daemon.log"),
                           ca_file=srv.ca_cert,
                           extra=["--no-notify", "--sync-interval", "1"] if poll
                           else ["--sync-interval", "3600"])
        m.start()
        wait_for_sync(m)
        if not poll:
            mountlib.wait_for(lambda: "notifications: push" in m.status(), 60,
                              what="a streaming subscription")
        inbox = m.path("Inbox")
        with Watcher() as w:
            w.add(inbox, IN_CLOSE_WRITE | IN_ATTRIB)
            lat_new, ids = [], []
            for i in range(n):
                seen = len(w.events)
                t0 = time.monotonic()
                ids.append(srv.deliver("Inbox", subject="Bench notify %05d" % i))
                w.wait_for(lambda evs: any(e.mask & IN_CLOSE_WRITE and "%05d" % i in e.name
                                           for e in evs[seen:]), 30)
                ev = next(e for e in w.events[seen:] if e.mask & IN_CLOSE_WRITE and "%05d" % i in e.name)
                lat_new.append(ev.at - t0)
            lat_attr = []
            for i, item_id in enumerate(ids):
                seen = len(w.events)
                t0 = time.monotonic()
                srv.mark_read(item_id, True)
                w.wait_for(lambda evs: any(e.mask & IN_ATTRIB and "%05d" % i in e.name
                                           for e in evs[seen:]), 30)
                ev = next(e for e in w.events[seen:] if e.mask & IN_ATTRIB and "%05d" % i in e.name)
                lat_attr.append(ev.at - t0)
        for what, v in (("new message -> CREATE+CLOSE_WRITE", lat_new),
                        ("read flag -> ATTRIB", lat_attr)):
            p50, p99, mx = percentiles(v)
            print("%-36s p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms   (%d changes)"
                  % (what, p50 * 1000, p99 * 1000, mx * 1000, len(v)))
        for line in m.status().splitlines():
            if line.startswith(("notifications:", "inotify events:")):
                print("status: " + line)
        m.stop()
        srv.stop()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--build", default=os.environ.get("EXCHANGEFS_BUILD") or os.path.join(TOP, "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--writes", type=int, default=1000, help="messages for the write-back figure (0: skip)")
    ap.add_argument("--notify", type=int, default=1000,
                    help="server changes for the notification latency figure (0: skip)")
    args = ap.parse_args()
    print("exchangefs benchmark; build %s; %d cores" % (args.build, os.cpu_count()))
    for n in (int(s) for s in args.sizes.split(",") if s):
        bench_size(n, args.build, args.runs, do_grep=n <= 20000)
    if args.writes:
        bench_writes(args.writes, args.build)
    if args.notify:
        bench_notify(args.notify, args.build)
        bench_notify(min(args.notify, 100), args.build, poll=True)


if __name__ == "__main__":
    main()
