#!/usr/bin/python3
"""bench_eas_sogo.py - first sync over ActiveSync against a real SOGo (and,
with --server test, against the test server's ActiveSync 16.1 front-end);
prints figures, asserts nothing.

For each size N, a folder "bench-N" of user test2 is filled over IMAP with
N messages (once; kept for later runs), then exchangefs mounts test2 with
--protocol eas and an empty cache, and the first complete sync is timed:
messages/s, and the daemon's CPU time per 100 messages (user + system), so
it shows whether the client or the server is the limit (SOGo serves about
50 messages/s from its IMAP layer).  Also the daemon's peak RSS.

Needs SOGo running (tests/sogo/setup-sogo.sh or ../shared/tools/sogo/).

With --server test, the test server (tests/server/harness.py) generates a
mailbox of N messages and exchangefs mounts it over ActiveSync 16.1.

usage: tests/bench/bench_eas_sogo.py [--sizes 1000,10000] [--build DIR]
                                     [--server sogo|test]
"""
import argparse
import imaplib
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "fs"))
sys.path.insert(0, HERE)

import mountlib  # noqa: E402
from bench import cpu_seconds, rss_kb  # noqa: E402

URL = "http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync"
USER, PASSWORD = "test2", "test2"


def fill(n):
    box = "bench-%d" % n
    m = imaplib.IMAP4("127.0.0.1", 143)
    m.login(USER, PASSWORD)
    m._simple_command("ENABLE", "CONDSTORE")
    m.create(box)
    typ, data = m.select(box)
    have = int(data[0])
    t0 = time.monotonic()
    body = "".join("line %d of the body, some words to make it look like mail\r\n" % i
                   for i in range(30))
    for i in range(have, n):
        msg = ("From: Bench <bench@example.test>\r\nTo: test2@example.test\r\n"
               "Subject: bench %d message %d\r\nMessage-ID: <b%d-%d@bench>\r\n"
               "Date: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\n%s" % (n, i, n, i, body))
        m.append(box, None, None, msg.encode())
    if n > have:
        print("  filled %s with %d messages in %.1f s" % (box, n - have, time.monotonic() - t0))
    # Dovecot announces HIGHESTMODSEQ only after a CONDSTORE client opened it
    m.select(box, readonly=True)
    m.logout()


def total_messages():
    m = imaplib.IMAP4("127.0.0.1", 143)
    m.login(USER, PASSWORD)
    total = 0
    for line in m.list()[1]:
        name = line.decode().rsplit(' "/" ', 1)[-1].strip('"')
        typ, data = m.select('"%s"' % name, readonly=True)
        if typ == "OK":
            total += int(data[0])
    m.logout()
    return total


def run(n, build):
    fill(n)
    total = total_messages()
    tmp = tempfile.mkdtemp(prefix="bench-eas-")
    try:
        mountlib.EXE = os.path.join(build, "fs", "exchangefs")
        m = mountlib.Mount(os.path.join(tmp, "mnt"), URL, USER, PASSWORD,
                           os.path.join(tmp, "cache"), os.path.join(tmp, "daemon.log"),
                           extra=["--protocol", "eas", "--sync-interval", "3600"])
        t0 = time.monotonic()
        m.start(timeout=600)
        mountlib.wait_for(lambda: "last complete sync: never" not in m.status(), 3600,
                          interval=0.5, what="first complete sync")
        secs = time.monotonic() - t0
        cpu = cpu_seconds(m.proc.pid)
        rss = rss_kb(m.proc.pid)
        files = sum(len(f) for _, _, f in os.walk(m.mountpoint))
        m.stop()
        print("%6d messages in bench-%d (%d in the mailbox, %d files listed): first sync %.1f s "
              "= %.0f messages/s; daemon CPU %.1f ms per 100 messages; peak RSS %.1f MiB"
              % (n, n, total, files, secs, total / secs, cpu * 1000 * 100 / max(total, 1),
                 rss.get("VmHWM", 0) / 1024))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_test_server(n, build):
    other = os.environ.get("EXCHANGEFS_SERVER_DIR")
    if other:
        # a test server from elsewhere: forget the one bench.py imported
        here = os.path.join(TOP, "tests", "server")
        for name, mod in list(sys.modules.items()):
            if (getattr(mod, "__file__", None) or "").startswith(here):
                del sys.modules[name]
        sys.path.insert(0, other)
    from harness import EwsServer
    tmp = tempfile.mkdtemp(prefix="bench-eas16-")
    srv = EwsServer(messages=n, seed=7).start()
    try:
        srv.eas_config(min_heartbeat=1)
        mountlib.EXE = os.path.join(build, "fs", "exchangefs")
        m = mountlib.Mount(os.path.join(tmp, "mnt"), srv.eas_url, srv.user, srv.password,
                           os.path.join(tmp, "cache"), os.path.join(tmp, "daemon.log"),
                           ca_file=srv.ca_cert,
                           extra=["--protocol", "eas", "--sync-interval", "3600"])
        t0 = time.monotonic()
        m.start(timeout=600)
        mountlib.wait_for(lambda: "last complete sync: never" not in m.status(), 3600,
                          interval=0.5, what="first complete sync")
        secs = time.monotonic() - t0
        cpu = cpu_seconds(m.proc.pid)
        rss = rss_kb(m.proc.pid)
        files = sum(len(f) for _, _, f in os.walk(m.mountpoint))
        m.stop()
        print("%6d messages on the test server (ActiveSync 16.1), %d files listed: first sync "
              "%.1f s = %.0f messages/s; daemon CPU %.1f ms per 100 messages; peak RSS %.1f MiB"
              % (n, files, secs, files / secs, cpu * 1000 * 100 / max(files, 1),
                 rss.get("VmHWM", 0) / 1024))
    finally:
        srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--build", default=os.environ.get("EXCHANGEFS_BUILD")
                    or os.path.join(TOP, "build"))
    ap.add_argument("--server", choices=("sogo", "test"), default="sogo")
    a = ap.parse_args()
    for n in (int(x) for x in a.sizes.split(",")):
        (run if a.server == "sogo" else run_test_server)(n, a.build)


if __name__ == "__main__":
    main()
