#!/usr/bin/python3
"""bench_eas_pass.py - new mail in many folders at once over ActiveSync:
prints figures, asserts nothing.

A mailbox with F mail folders (default 20) is mounted with --protocol eas
and synced; then one message is delivered into every folder at once, and
the time until all F files show on the mount is taken (Ping reports the
folders; the sync engine reads them, 16 per Sync since several-collection
Sync, one per Sync before).  Against the test server's ActiveSync 16.1
front-end with a simulated network latency per request (--latency-ms,
default 50: a server on the other side of a WAN), and it counts the Sync
requests; with --server sogo against SOGo on this machine (no latency).
Run it with --build of an older build to compare.

usage: tests/bench/bench_eas_pass.py [--folders 20] [--rounds 3] [--latency-ms 50]
                                     [--server test|sogo] [--build DIR]
"""
import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "fs"))
sys.path.insert(0, os.path.join(TOP, "tests"))

import mountlib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folders", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--server", choices=["test", "sogo"], default="test")
    ap.add_argument("--build", default=os.environ.get("EXCHANGEFS_BUILD", os.path.join(TOP, "build")))
    a = ap.parse_args()
    os.environ["EXCHANGEFS_BUILD"] = a.build
    mountlib.EXE = os.path.join(a.build, "fs", "exchangefs")
    import servers
    kind = "eas" if a.server == "test" else "sogo"
    kw = {"latency_ms": a.latency_ms} if kind == "eas" else {}
    t = servers.open_target(kind, messages=10, seed=3, **kw)
    tmp = tempfile.mkdtemp(prefix="bench-eas-pass-")
    m = None
    try:
        names = ["Bench %02d" % k for k in range(a.folders - 1)]
        for n in names:
            t.srv.create_folder(t.inbox, n)
        paths = [t.inbox] + ["%s/%s" % (t.inbox, n) for n in names]
        m = mountlib.Mount(os.path.join(tmp, "mnt"), t.url, t.srv.user, t.srv.password,
                           os.path.join(tmp, "cache"), os.path.join(tmp, "daemon.log"),
                           ca_file=getattr(t.srv, "ca_cert", None), extra=t.args)
        m.start()
        m.wait_synced(timeout=300)
        time.sleep(3)                   # the watcher's Ping is in place
        print("%s, %d folders%s" % ("test server EAS 16.1" if kind == "eas" else "SOGo EAS 14.1",
                                    a.folders, ", %d ms per request" % a.latency_ms if kind == "eas" else ""))
        for r in range(a.rounds):
            before = t.srv.stats()["requests"].get("Sync", 0) if kind == "eas" else 0
            subject = "bench-pass-%d-%d" % (os.getpid(), r)
            t0 = time.monotonic()
            for p in paths:
                t.srv.deliver(p, subject=subject)
            delivered = time.monotonic() - t0
            mountlib.wait_for(lambda: all(any(subject in n for n in os.listdir(m.path(*p.split("/"))))
                                          for p in paths), 120, interval=0.05, what="the new messages")
            took = time.monotonic() - t0
            syncs = (t.srv.stats()["requests"].get("Sync", 0) - before) if kind == "eas" else None
            print("  round %d: all %d messages on the mount %.2f s after the first delivery "
                  "(delivering took %.2f s)%s" % (r + 1, len(paths), took, delivered,
                                                  ", %d Sync requests" % syncs if syncs is not None else ""))
            time.sleep(2)
    finally:
        if m:
            m.stop()
        t.close()


if __name__ == "__main__":
    main()
