#!/usr/bin/python3
"""bench_prefetch.py - a full offline copy: prints figures, asserts nothing.

For generated mailboxes (default 10,000 messages) served by the test server
over HTTPS on 127.0.0.1 it measures `exchangefs --prefetch all` from the
mount until every body is cached: wall time, messages/s, MB/s, the daemon's
CPU per message (its CPU for the same mount with --prefetch none taken
off, so the header sync is not counted) and its peak RSS.  Next to it, a
minimal client that only fetches the same MIME - GetItem with
MimeContent, the same batch size and number of connections (keep-alive,
Basic auth), base64 decoded and written one file per message - against
the same server.  Then `grep -r` over the copy with the server stopped.

The test server is Python: on a small machine it, not the client, is the
bottleneck, so the ratio to the minimal client is the figure to read.

--protocol eas: the same test server over ActiveSync 16.1 (ItemOperations;
no minimal client). --latency-ms adds a delay to every request, as a
remote server's round trip. --sogo N: also N messages on the local SOGo
(ActiveSync 14.1; no offline grep: SOGo stays up).

usage: tests/bench/bench_prefetch.py [--sizes 10000,100000] [--build DIR] [--dir DIR]
                                     [--batch 16] [--sessions 4] [--batches 4,16,32]
                                     [--protocol ews|eas] [--latency-ms 0] [--sogo 1000]
"""
import argparse
import base64
import http.client
import itertools
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "server"))
sys.path.insert(0, os.path.join(TOP, "tests", "fs"))

from harness import EwsServer  # noqa: E402
import mountlib  # noqa: E402
from bench import TICK, rss_kb  # noqa: E402


def cpu_split(pid):
    """(user, system) CPU seconds of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
MIME_RE = re.compile(rb"<t:MimeContent[^>]*>([^<]*)</t:MimeContent>")


def get_item_body(ids):
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<soap:Envelope xmlns:soap="{NS_SOAP}" xmlns:t="{NS_T}" xmlns:m="{NS_M}">'
            '<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>'
            '<soap:Body><m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            '<t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape><m:ItemIds>'
            + "".join(f'<t:ItemId Id="{i}"/>' for i in ids)
            + '</m:ItemIds></m:GetItem></soap:Body></soap:Envelope>\n').encode()


def minimal_client(srv, ids, out_dir, batch, sessions):
    """GetItem batches over `sessions` keep-alive connections; returns (wall, cpu, bytes)."""
    ctx = ssl.create_default_context(cafile=srv.ca_cert) if srv.tls else None
    auth = "Basic " + base64.b64encode(f"{srv.user}:{srv.password}".encode()).decode()
    batches = [ids[i:i + batch] for i in range(0, len(ids), batch)]
    lock = threading.Lock()
    total = [0]
    errors = []

    def worker():
        conn = (http.client.HTTPSConnection(srv.host, srv.port, context=ctx) if srv.tls
                else http.client.HTTPConnection(srv.host, srv.port))
        while True:
            with lock:
                if not batches:
                    break
                b = batches.pop()
            conn.request("POST", "/EWS/Exchange.asmx", get_item_body(b),
                         {"Content-Type": "text/xml; charset=utf-8", "Authorization": auth})
            resp = conn.getresponse()
            data = resp.read()
            mimes = MIME_RE.findall(data)
            if resp.status != 200 or len(mimes) != len(b):
                errors.append((resp.status, len(mimes), len(b)))
                continue
            n = 0
            for i, m in zip(b, mimes):
                raw = base64.b64decode(m)
                n += len(raw)
                with open(os.path.join(out_dir, i[-40:].replace("/", "_")), "wb") as f:
                    f.write(raw)
            with lock:
                total[0] += n
        conn.close()

    c0 = os.times()
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    if errors:
        print("minimal client: %d failed batches, e.g. %r" % (len(errors), errors[0]))
    c1 = os.times()
    return wall, (c1.user - c0.user, c1.system - c0.system), total[0]


def progress(m):
    for line in m.status().splitlines():
        mo = re.match(r"prefetch: ([\d,]+) / ([\d,]+) bodies", line)
        if mo:
            return int(mo.group(1).replace(",", "")), int(mo.group(2).replace(",", ""))
    return 0, -1


PROTOCOL = "ews"     # --protocol


def mount(srv, tmp, name, policy, env=None):
    url, args = srv.ews_url, []
    if PROTOCOL != "ews":
        url, args = srv.eas_url, ["--protocol", "eas"]
    m = mountlib.Mount(os.path.join(tmp, "mnt"), url, srv.user, srv.password,
                       os.path.join(tmp, "cache-" + name), os.path.join(tmp, name + ".log"),
                       ca_file=srv.ca_cert, env=env,
                       extra=["--sync-interval", "3600", "--cache-size", "0", "--prefetch", policy,
                              *args])
    t0 = time.monotonic()
    m.start(timeout=600)
    return m, t0


def bench_daemon(srv, tmp, n, batch, sessions, cpu_sync, synced=False):
    """--prefetch all until every body is cached.  synced: on a copy of the
    cache the header sync left (bodies only); else from an empty cache, the
    header sync running alongside (its CPU, cpu_sync, taken off)."""
    env = {"EXCHANGEFS_PREFETCH_BATCH": str(batch)}
    name = "all-%d%s" % (batch, "-synced" if synced else "")
    if synced:
        shutil.copytree(os.path.join(tmp, "cache-none"), os.path.join(tmp, "cache-" + name))
        cpu_sync = (0, 0)
    m, t0 = mount(srv, tmp, name, "all", env)
    pid = m.proc.pid
    db = os.path.join(m.cache_dir, "cache.db")
    t_first = t_last = None
    last = 0
    for i in itertools.count():
        time.sleep(0.05)
        # the body count straight from SQLite (costs the daemon nothing)
        try:
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=1)
            count = con.execute("SELECT count(*) FROM bodies").fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
        now = time.monotonic()
        if count and t_first is None:
            t_first = now
        if count != last:
            t_last, last = now, count
        if i % 40 == 0:                 # the status costs the daemon a count
            cached, total = progress(m)
            if total > 0 and cached >= total and "last complete sync: never" not in m.status():
                break
    wall = t_last - t0
    phase = t_last - t_first
    cpu = cpu_split(pid)
    mem = rss_kb(pid)
    st = m.status()
    mb = sum(os.path.getsize(os.path.join(m.cache_dir, "bodies", f))
             for f in os.listdir(os.path.join(m.cache_dir, "bodies"))) / 1e6
    user, system = cpu[0] - cpu_sync[0], cpu[1] - cpu_sync[1]
    print("[%s] exchangefs --prefetch all (batch %d, %d connections), %s: %d bodies, %.1f MB; %.2f s from "
          "the first body to the last = %.0f msg/s, %.1f MB/s (%.2f s from the mount); daemon CPU "
          "for the bodies %.3f ms per message (user %.3f + system %.3f); RSS peak %.1f MB"
          % (PROTOCOL, batch, sessions, "headers synced before" if synced else "empty cache, header sync alongside",
             cached, mb, phase, cached / phase, mb / phase, wall,
             (user + system) * 1000 / cached, user * 1000 / cached, system * 1000 / cached,
             mem["VmHWM"] / 1024), flush=True)
    for line in st.splitlines():
        if line.startswith(("prefetch", "bodies cached")):
            print("  status: " + line)
    return m, phase


def bench_size(n, build, batch, sessions, batches, where, latency_ms=0, sogo=False):
    tmp = tempfile.mkdtemp(prefix="exchangefs-benchpf-", dir=where)
    print("\n== full offline copy of %d messages (%s%s%s)" % (
        n, "SOGo, " if sogo else "", PROTOCOL, ", %d ms per request" % latency_ms if latency_ms else ""),
        flush=True)
    mountlib.EXE = os.path.join(build, "fs", "exchangefs")
    user = None
    try:
        t0 = time.monotonic()
        if sogo:
            sys.path.insert(0, os.path.join(TOP, "tests", "sogo"))
            import sogo_server
            user = sogo_server.shared().new_user()
            srv = user.view()
            srv.populate(n, 99)
        else:
            srv = EwsServer(messages=n, seed=99, tls=True, start_timeout=1200, latency_ms=latency_ms)
            srv.start()
        print("server up in %.1f s" % (time.monotonic() - t0), flush=True)
        ids = [it["id"] for it in srv.mailbox()["items"]]

        # the header sync alone, to take its CPU off
        m, t0 = mount(srv, tmp, "none", "none")
        mountlib.wait_for(lambda: "last complete sync: never" not in m.status(), 3600,
                          interval=0.5, what="first sync")
        cpu_sync = cpu_split(m.proc.pid)
        print("header sync only (--prefetch none): %.1f s, daemon CPU %.2f s"
              % (time.monotonic() - t0, sum(cpu_sync)), flush=True)
        m.stop()

        wall_c = None
        if PROTOCOL == "ews":
            out = os.path.join(tmp, "client")
            os.mkdir(out)
            wall_c, cpu_c, nbytes = minimal_client(srv, ids, out, batch, sessions)
            print("minimal Python client (GetItem, batch %d, %d connections): %d bodies, %.1f MB in %.1f s "
                  "= %.0f msg/s, %.1f MB/s; its CPU %.3f ms per message (user %.3f + system %.3f)"
                  % (batch, sessions, len(ids), nbytes / 1e6, wall_c, len(ids) / wall_c,
                     nbytes / 1e6 / wall_c, sum(cpu_c) * 1000 / len(ids), cpu_c[0] * 1000 / len(ids),
                     cpu_c[1] * 1000 / len(ids)), flush=True)
            shutil.rmtree(out)

        for b in batches:
            if b != batch:
                m, wall = bench_daemon(srv, tmp, n, b, sessions, cpu_sync, synced=True)
                m.stop()
        m, wall = bench_daemon(srv, tmp, n, batch, sessions, cpu_sync, synced=True)
        if wall_c:
            print("exchangefs / minimal client wall time, bodies only: %.2f" % (wall / wall_c), flush=True)
        m.stop()
        m, wall = bench_daemon(srv, tmp, n, batch, sessions, cpu_sync)
        if wall_c:
            print("exchangefs / minimal client wall time, first body to last with the header sync "
                  "alongside: %.2f" % (wall / wall_c), flush=True)
        m.stop()
        if sogo:
            return

        # grep -r over the copy, offline
        srv.stop()
        m, _ = mount(srv, tmp, "all-%d-synced" % batch, "all")
        t0 = time.monotonic()
        subprocess.run(["grep", "-rl", "invoice 4711", m.mountpoint], stdout=subprocess.DEVNULL)
        print("grep -r over the copy with the server stopped: %.1f s" % (time.monotonic() - t0))
        m.stop()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if user:
            user.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--build", default=os.environ.get("EXCHANGEFS_BUILD") or os.path.join(TOP, "build"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--sessions", type=int, default=4, help="the daemon's default pool")
    ap.add_argument("--batches", default="", help="also run the daemon with these batch sizes")
    ap.add_argument("--dir", help="where the caches and the client's files go (default $TMPDIR)")
    ap.add_argument("--protocol", choices=["ews", "eas"], default="ews",
                    help="the test server over EWS or ActiveSync 16.1")
    ap.add_argument("--latency-ms", type=int, default=0, help="the test server's delay per request")
    ap.add_argument("--sogo", type=int, default=0, help="also this many messages on SOGo (ActiveSync 14.1)")
    args = ap.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol
    print("exchangefs prefetch benchmark; build %s; %d cores" % (args.build, os.cpu_count()))
    batches = [int(b) for b in args.batches.split(",") if b]
    for n in (int(s) for s in args.sizes.split(",") if s and int(s) > 0):
        bench_size(n, args.build, args.batch, args.sessions, batches, args.dir, args.latency_ms)
    if args.sogo:
        PROTOCOL = "eas"
        bench_size(args.sogo, args.build, args.batch, args.sessions, [], args.dir, sogo=True)


if __name__ == "__main__":
    main()
