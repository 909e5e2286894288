#!/usr/bin/python3
# The test EWS server: a faithful model of an Exchange mailbox (mailbox.py)
# spoken over real HTTP/1.1 (keep-alive, Basic auth, optional TLS) at
# POST /EWS/Exchange.asmx, ActiveSync 16.1 at /Microsoft-Server-ActiveSync
# (eas.py, same mailbox), plus a JSON control interface under /control/
# (control.py) for tests. GetStreamingEvents holds its connection open and
# streams (notify.py). Only the Python standard library is used.
#
#   ews_server.py --port 0 --port-file F [--host 127.0.0.1] [--tls-cert C --tls-key K]
#                 [--user alice --password secret] [--messages N --seed S] [--big R]
#                 [--state FILE] [--latency-ms N] [--xml-invalid-chars charref|strip] [-v]

import argparse
import base64
import contextlib
import ipaddress
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import control  # noqa: E402
import eas  # noqa: E402
import ops  # noqa: E402
import notify  # noqa: E402
import ntlm  # noqa: E402
import persist  # noqa: E402
import signin  # noqa: E402
import soap  # noqa: E402
from generate import generate  # noqa: E402
from mailbox import Mailbox  # noqa: E402

MAX_BODY = 10 * 1024 * 1024
MAX_DRAIN = 64 * 1024 * 1024      # bigger bodies are cut off unread
EWS_PATH = "/ews/exchange.asmx"
REALM = "mbx01.example.com"


class EwsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def working(self):
        """Held while a request is worked on: with control workers, a server
        whose CPU is the limit (a request waits for a free worker)."""
        return self.workers or contextlib.nullcontext()

    def __init__(self, addr, mailbox, user=None, password=None, latency_ms=0, tls=None, verbose=False):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, Handler)
        self.mailbox = mailbox
        self.user, self.password = user, password
        mailbox.owner_address = eas.user_address(self)   # the address book's first entry (directory.py)
        self.latency_ms = latency_ms
        self.item_cost_ms = 0           # GetItem: delay per item asked for (control item_cost)
        self.workers = None             # at most this many requests worked on at once (control workers)
        self.known_versions = None  # None: every version Exchange 2016 knows
        self.tls = tls                  # ssl.SSLContext or None
        self.verbose = verbose
        self.faults = control.Faults()
        self.signin = signin.State()    # OAuth2 authority and Autodiscover (signin.py)
        self.offer_negotiate = False
        self.ntlm = False               # offer and accept NTLM (ntlm.py)
        self.ntlm_stats = {"negotiate": 0, "authenticated": 0, "refused": 0, "v1_refused": 0}
        self.stats = control.Stats()
        self.conn_seq = 0
        self.conn_lock = threading.Lock()

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls is not None:
            # Handshake in the handler thread (do_handshake_on_connect), not here.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 300                       # idle keep-alive connections end after this

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        try:                            # headers and body go out as separate writes: no Nagle delay
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise
        with self.server.conn_lock:
            self.server.conn_seq += 1
            self.conn_id = self.server.conn_seq
        self.server.stats.connection()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s [conn %d] %s\n" % (self.log_date_time_string(), self.conn_id, fmt % args))

    # ---- plumbing ----------------------------------------------------------------

    def send(self, status, body, ctype="text/xml; charset=utf-8", headers=()):
        # recorded before the client can read the answer: a client that
        # asks for the stats next must find this request in them
        self.record_once(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", str(uuid.uuid4()))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        """The request body, or None after answering 413/400 (connection closed)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            if 0 < n <= MAX_DRAIN and "100-continue" not in (self.headers.get("Expect") or "").lower():
                self._drain(n)          # let the client finish sending, so it reads our answer
            self.send(413 if n > 0 else 400, b"Request body too large or bad Content-Length", "text/plain")
            return None
        return self.rfile.read(n) if n else b""

    def _drain(self, n):
        try:
            self.connection.settimeout(5)
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 16))
                if not chunk:
                    break
                n -= len(chunk)
        except OSError:
            pass

    def handle_expect_100(self):
        # Refuse an oversized body before the client sends it.
        try:
            too_big = int(self.headers.get("Content-Length") or 0) > MAX_BODY
        except ValueError:
            too_big = False
        if too_big:
            self.close_connection = True
            self.send(413, b"Request body too large", "text/plain")
            return False
        return super().handle_expect_100()

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0 or total + size > MAX_BODY:
                self.close_connection = True
                self.send(413 if size > 0 else 400, b"Bad or too large chunked body", "text/plain")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass                # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            total += size
            self.rfile.readline(16)

    def is_loopback(self):
        try:
            return ipaddress.ip_address(self.client_address[0].split("%")[0]).is_loopback
        except ValueError:
            return False

    def authorized(self):
        if self.server.user is None:
            return True
        h = self.headers.get("Authorization") or ""
        if self.server.ntlm and h[:5].lower() == "ntlm ":
            res = ntlm.step(self, h[5:].strip())
            self.ntlm_ok = res is True
            self.ntlm_challenge = res if isinstance(res, str) else None
            return self.ntlm_ok
        if not h and getattr(self, "ntlm_ok", False):
            return True                 # NTLM signs in the connection
        if h.lower().startswith("bearer "):
            return self.server.signin.bearer_ok(h[7:].strip())
        if not h.lower().startswith("basic "):
            return False
        try:
            user, _, pw = base64.b64decode(h[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        user = user.split("\\")[-1]     # accept DOMAIN\user
        return user in (self.server.user, self.server.user.split("@")[0]) and pw == self.server.password

    # ---- methods -------------------------------------------------------------------

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_OPTIONS(self):
        self.route("OPTIONS")

    def route(self, method):
        try:
            url = urllib.parse.urlsplit(self.path)
            body = self.read_body() if method == "POST" else b""
            if body is None:
                return
            if signin.route(self, method, url, body):
                return
            if url.path.startswith("/control/"):
                if not self.is_loopback():
                    return self.send(403, b"control interface is loopback-only", "text/plain")
                q = dict(urllib.parse.parse_qsl(url.query))
                status, ctype, out = control.handle(self.server, method, url.path, q, body)
                return self.send(status, out, ctype)
            if url.path.lower() == eas.PATH:        # ActiveSync front-end (eas.py)
                return eas.handle(self, method, url.query, body)
            if url.path.lower() != EWS_PATH:
                return self.send(404, b"<html><body>404 Not Found</body></html>", "text/html")
            if method != "POST":
                return self.send(405, b"<html><body>405 Method Not Allowed</body></html>", "text/html",
                                 [("Allow", "POST")])
            self.ews(body)
        except (ConnectionError, socket.timeout, ssl.SSLError, BrokenPipeError):
            self.close_connection = True
        except Exception as e:          # a bug here must never take the server down
            self.close_connection = True
            sys.stderr.write(f"ews_server: internal error on {self.path}: {e!r}\n")
            import traceback
            traceback.print_exc()
            try:
                self.send(500, soap.fault("ErrorInternalServerError", "An internal server error occurred. "
                                          "The operation failed."))
            except OSError:
                pass

    def ews(self, body):
        t0 = time.time()
        try:
            op_elem, _version = soap.parse_request(body, self.server.known_versions)
            op_name, parse_fault = soap.local(op_elem.tag), None
            if op_name == "GetUserAvailabilityRequest":     # the one operation whose element says Request
                op_name = "GetUserAvailability"
        except soap.Fault as f:
            op_elem, op_name, parse_fault = None, "(invalid)", f
        fault = self.server.faults.take(op_name)
        kind = fault["kind"] if fault else None
        self.in_flight = (op_name, kind, t0)    # reset() records it before cutting
        self.op_elem = op_elem
        status = self.apply_fault(fault, op_name) if fault else None
        if status is None:
            if self.server.latency_ms:
                time.sleep(self.server.latency_ms / 1000)
            if not self.authorized():
                status = self.unauthorized()
            elif parse_fault is not None:
                status = self.soap_fault(parse_fault)
            else:
                try:
                    if op_name == "GetStreamingEvents" and op_elem.tag == soap.m(op_name):
                        # A kept-open chunked answer; reset_after cuts it after the first envelope.
                        status = notify.serve_stream(self, op_elem, kind)
                        self.record_once(status)
                        return
                    with self.server.working():
                        n_ids = self.get_item_begin(op_name, op_elem)
                        try:
                            out = ops.dispatch(self.server.mailbox, op_elem)
                        finally:
                            if n_ids is not None:
                                self.server.stats.get_item(n_ids, -1)
                    if kind == "reset_after":
                        status = self.reset()    # done, but the client never hears of it
                    else:
                        status = 200
                        self.send(200, out)
                except soap.Fault as f:
                    status = self.reset() if kind == "reset_after" else self.soap_fault(f)
        self.record_once(status)

    def get_item_begin(self, op_name, op_elem):
        """Count a GetItem's ids and charge its per-item cost; None for other operations."""
        if op_name != "GetItem" or op_elem is None:
            return None
        ids = op_elem.find(soap.m("ItemIds"))
        n = len(ids) if ids is not None else 0
        self.server.stats.get_item(n, 1)
        if self.server.item_cost_ms:
            time.sleep(n * self.server.item_cost_ms / 1000)
        return n

    def record_once(self, status):
        """Record the request in flight in the stats (once)."""
        if getattr(self, "in_flight", None):
            op_name, kind, t0 = self.in_flight
            self.in_flight = None
            self.server.stats.record(self.conn_id, op_name, status, kind, t0)

    def soap_fault(self, f):
        self.send(f.http_status, soap.fault(f.code, f.text, f.message_xml))
        return f.http_status

    def unauthorized(self):
        offer = [("WWW-Authenticate", "Negotiate")] if self.server.offer_negotiate else []
        if self.server.ntlm:
            ch, self.ntlm_challenge = getattr(self, "ntlm_challenge", None), None
            offer.append(("WWW-Authenticate", "NTLM " + ch if ch else "NTLM"))
        self.send(401, b"", "text/html", offer + [("WWW-Authenticate", f'Basic realm="{REALM}"'),
                                                  ("WWW-Authenticate", 'Bearer realm="exchangefs-test"')])
        return 401

    def apply_fault(self, fault, op_name):
        """Act out an armed fault. Returns the HTTP status sent (0 when the
        connection was cut), or None when the request proceeds (slow)."""
        kind = fault["kind"]
        if kind == "slow":
            time.sleep(fault["ms"] / 1000)
            return None
        if kind == "reset_after":
            return None                 # acted out after the operation ran (see ews())
        if kind == "http500":
            self.send(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
            return 500
        if kind in ("http503", "http429"):
            code = 503 if kind == "http503" else 429
            self.send(code, f"<html><body>{code}</body></html>".encode(), "text/html",
                      [("Retry-After", str(fault["retry_after"]))])
            return code
        if kind == "busy":
            if fault["where"] == "message" and op_name in ops.operations():
                text = "The server cannot service this request right now. Try again later."
                backoff = f'<t:Value Name="BackOffMilliseconds">{fault["backoff_ms"]}</t:Value>'
                tail = {"SyncFolderItems": "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>",
                        "SyncFolderHierarchy": "<m:SyncState/><m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange>",
                        "CreateItem": "<m:Items/>", "UpdateItem": "<m:Items/>",
                        "MoveItem": "<m:Items/>", "CopyItem": "<m:Items/>", "CreateFolder": "<m:Folders/>",
                        "UpdateFolder": "<m:Folders/>", "MoveFolder": "<m:Folders/>", "GetItem": "<m:Items/>"}
                msg = soap.error_message(op_name, "ErrorServerBusy", text, tail.get(op_name, ""), backoff)
                ids = self.op_elem.find(soap.m("ItemIds")) if op_name == "GetItem" else None
                self.send(200, soap.response(op_name, [msg] * max(1, len(ids) if ids is not None else 1)))
                return 200
            self.send(500, soap.busy_fault(fault["backoff_ms"]))
            return 500
        if kind == "auth":
            return self.unauthorized()
        if kind == "garbage":
            self.send(200, b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="' +
                      soap.NS_SOAP.encode() + b'"><s:Body><m:Oops attr="unterminated></s:Envelope>')
            return 200
        if kind in ("reset", "truncate"):
            self.close_connection = True
            if kind == "truncate":
                body = soap.envelope("<!-- cut -->" + "x" * 4096)
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
            return self.reset()         # RST, no answer (or half of one)
        return None

    def reset(self):
        """Drop the connection with a TCP RST; returns the status recorded (0).
        The request is recorded first: a client that retries at once must
        not find its retry listed before the request it retried."""
        self.record_once(0)
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        return 0


def load_or_create(args):
    mb = persist.load(args.state) if args.state else None
    if mb is None:
        mb = Mailbox(uid=f"{args.user or 'alice'}-{args.seed}")
        generate(mb, args.messages, args.seed, args.big, pim=args.pim)
        if args.state:
            persist.snapshot(mb, args.state)
    elif args.state:
        persist.snapshot(mb, args.state)    # compact the journal
    mb.hub = notify.Hub()                   # from now on every change is an event
    return mb


def main(argv=None):
    ap = argparse.ArgumentParser(description="Test Exchange (EWS) server with a control API.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--user", help="require sign-in as this user: Basic (DOMAIN\\ prefix accepted), NTLM with --ntlm, or an issued Bearer token")
    ap.add_argument("--password", default="")
    ap.add_argument("--messages", type=int, default=200, help="messages to generate for a new mailbox")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pim", action="store_true", help="also seed Tasks/Notes/Journal and calendar items, "
                    "contacts and tasks (generate.generate_pim)")
    ap.add_argument("--big", type=float, default=0.0005, help="fraction of messages with big attachments")
    ap.add_argument("--state", help="JSON-lines file keeping the mailbox across restarts")
    ap.add_argument("--latency-ms", type=int, default=0, help="delay added to every EWS request")
    ap.add_argument("--item-cost-ms", type=int, default=0, help="delay per item a GetItem asks for")
    ap.add_argument("--xml-invalid-chars", choices=("charref", "strip"), default="charref",
                    help="how characters XML 1.0 forbids are sent: &#x1; like Exchange, or dropped")
    ap.add_argument("--known-versions", help="comma-separated RequestServerVersion values to accept "
                    "(e.g. up to Exchange2010_SP2, to play an Exchange 2010 server)")
    ap.add_argument("--offer-negotiate", action="store_true",
                    help="also offer Negotiate (Kerberos) in 401 answers; never accepts it")
    ap.add_argument("--ntlm", action="store_true", help="also offer and accept NTLM (NTLMv2)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    soap.set_invalid_char_mode(args.xml_invalid_chars)
    mb = load_or_create(args)
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    srv = EwsHttpServer((args.host, args.port), mb, args.user, args.password, args.latency_ms, tls, args.verbose)
    srv.eas_state_path = args.state + ".eas" if args.state else None   # EAS device states (eas.py)
    srv.offer_negotiate = args.offer_negotiate
    srv.ntlm = args.ntlm
    srv.item_cost_ms = args.item_cost_ms
    if args.known_versions:
        srv.known_versions = set(args.known_versions.split(","))
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)  # readers never see a half-written file
    scheme = "https" if tls else "http"
    print(f"ews_server: {len(mb.items)} items, listening on {scheme}://{args.host}:{port}/EWS/Exchange.asmx",
          file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
