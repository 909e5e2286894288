# Test-side helper for the test EWS server: start it as a subprocess on a free
# port, wait for it, drive its control interface, stop it. Used by the server's
# own tests and by the mount tests of the C client.
"""Start and drive the test EWS server (tests/server/ews_server.py).

    from harness import EwsServer        # with tests/server on sys.path

    with EwsServer(messages=500, seed=7, tls=True) as srv:
        srv.ews_url            # "https://127.0.0.1:PORT/EWS/Exchange.asmx"
        srv.base_url           # "https://127.0.0.1:PORT"
        srv.user, srv.password # Basic auth credentials ("alice", "secret")
        srv.ca_cert            # PEM of the self-signed cert (tls=True), else None
        srv.markers()          # {"invoice 4711": [id], "quarterly-needle-7f3a": [...], "hostile": [...]}
        new_id = srv.deliver("Inbox", subject="Hello", body="text")   # or mime=b"..."
        srv.mark_read(new_id, True); srv.update_item(new_id, "New subject")
        moved_id = srv.move(new_id, "Archive"); srv.delete(moved_id)
        srv.create_folder("Inbox", "New"); srv.rename_folder("Inbox/New", "Newer")
        srv.move_folder("Inbox/Newer", "Archive"); srv.delete_folder("Archive/Newer")
        srv.fault("busy", count=2, operation="GetItem", backoff_ms=500)
        srv.invalidate_sync_states()
        srv.stats()            # {"requests": {op: n}, "connections": n, "recent": [...], ...}
        srv.reset_stats()
        srv.mailbox(mime=False)   # {"folders": [...], "items": [...]} as the server sees it
        srv.folder("Inbox")       # folder info plus "items": [ids, newest first]
        srv.item_mime(item_id)    # exact MIME bytes
        srv.find("invoice 4711")  # ids of items whose MIME contains the text
        srv.items("Drafts")       # [item_info] of a folder, newest first; subject= narrows
        srv.find_subject("Hello", "Inbox")  # ids with exactly that subject (path optional)
        srv.find_token("tok-1")   # ids of items carrying the exchangefs token (path= narrows)
        srv.item_info(item_id)    # {"subject", "is_read", "is_draft", "flag", "categories",
                                  #  "change_key", "token", "ext", "folder_path", ...}
        srv.set_flag(item_id, "Flagged"); srv.set_categories(item_id, ["Red"])  # server-side
        srv.sent()                # [{"mime": str, "mime_b64", "recipients": [addr], "token",
                                  #   "time", "operation", "saved_id", "subject", "message_id"}]
        srv.clear_sent()
        srv.dumpster("Inbox")     # soft-deleted items (item_info + "deleted_from")
        srv.notify_config(keepalive_s=0.2, minute_s=1, refuse=None)   # notifications (see below)
        srv.subscriptions()       # [{"id", "kind", "folders", "queued", "connected", ...}]
        srv.wait_subscribed("streaming", connected=True)   # until a client is subscribed (and connected)
        srv.drop_streams()        # reset open GetStreamingEvents connections, no Closed envelope
        srv.expire_subscriptions()   # forget every subscription, as a restarted server would
        srv.restart()             # same port and --state file (if any): ids survive
        srv.eas_url               # "http://127.0.0.1:PORT/Microsoft-Server-ActiveSync" (same user)
        srv.eas_config(provision="449", min_heartbeat=1)   # EAS settings (eas.Config)
        srv.eas_devices()         # [{"id", "policy_key", "hierarchy_key", "collections"}...]
        srv.fault("reprovision")  # EAS: 449 and every policy key revoked

Constructor options: messages, seed, big (ratio of big attachments), user and
password (user=None turns auth off), tls, state (path of a --state file),
latency_ms, xml_invalid_chars ("charref" like Exchange or "strip"),
extra_args, start_timeout, python. Folder paths are "Inbox/Projects"; a
folder id is accepted wherever a path is. Fault kinds: http500, http503,
http429 (retry_after=s), reset, truncate, slow (ms=), busy (backoff_ms=,
where="fault"|"message"), auth, garbage, reset_after (the operation is
carried out, then the connection is reset unanswered); each hits the next
`count` EWS requests, only `operation` ones if given (Subscribe, GetEvents and
GetStreamingEvents too; reset_after on GetStreamingEvents resets the stream after its
first envelope). Errors from the control API raise ControlError (status, message).
srv.log_text() returns the server's stderr.

Notifications: notify_config(keepalive_s=45, subscription_expiry_s=1800, minute_s=60,
refuse=None|"streaming"|"all"|"quota", split_chunks=False, event_log_limit=50000) sets
any of them and returns the whole config: the idle keep-alive interval of streams,
how long a streaming subscription lives with no connection, how many seconds one
minute of Timeout/ConnectionTimeout lasts, refusals (no streaming, as Exchange 2007:
schema faults; no notification operations at all: ErrorInvalidRequest faults; a
policy allowing no subscription: ErrorExceededSubscriptionCount), envelopes cut into
two chunks, and how many events the server keeps. subscriptions() lists the live subscriptions
(expired ones are gone): id, kind ("pull"|"streaming"), all_folders, folders (ids)
and folder_paths, event_types, queued (events not yet handed out), missed,
connected, idle_s, and for pull timeout_min and watermark.
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "ews_server.py")


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(f"control API {status}: {message}")
        self.status = status
        self.message = message


def make_self_signed_cert(directory, names=()):
    """Write cert.pem/key.pem for 127.0.0.1, localhost and the DNS names given; returns (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    san = ",".join(["IP:127.0.0.1", "DNS:localhost"] + ["DNS:" + n for n in names])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=" + san],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


class EwsServer:
    def __init__(self, messages=200, seed=1, big=None, user="alice", password="secret", tls=False,
                 state=None, latency_ms=0, xml_invalid_chars=None, extra_args=(), start_timeout=120,
                 python=None, host="127.0.0.1", tls_names=(), pim=False):
        self.messages, self.seed, self.big = messages, seed, big
        self.user, self.password = user, password
        self.tls, self.state, self.latency_ms = tls, state, latency_ms
        self.xml_invalid_chars, self.extra_args = xml_invalid_chars, list(extra_args)
        self.start_timeout, self.host = start_timeout, host
        self.pim = pim                  # --pim: seed calendar items, contacts and tasks too
        self.python = python or ("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
        self.dir = tempfile.mkdtemp(prefix="ews-server-")
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.port = 0
        self.ca_cert = self.tls_key = None
        if tls:
            self.ca_cert, self.tls_key = make_self_signed_cert(self.dir, tls_names)
        self._register_secret()

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def base_url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ews_url(self):
        return self.base_url + "/EWS/Exchange.asmx"

    @property
    def eas_url(self):
        """The ActiveSync (EAS 16.1) endpoint over the same mailbox, same user (eas.py)."""
        return self.base_url + "/Microsoft-Server-ActiveSync"

    def start(self):
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [self.python, SERVER, "--host", self.host, "--port", str(self.port), "--port-file", port_file,
               "--messages", str(self.messages), "--seed", str(self.seed)]
        if self.big is not None:
            cmd += ["--big", str(self.big)]
        if self.pim:
            cmd.append("--pim")
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password]
        if self.tls:
            cmd += ["--tls-cert", self.ca_cert, "--tls-key", self.tls_key]
        if self.state:
            cmd += ["--state", self.state]
        if self.latency_ms:
            cmd += ["--latency-ms", str(self.latency_ms)]
        if self.xml_invalid_chars:
            cmd += ["--xml-invalid-chars", self.xml_invalid_chars]
        cmd += self.extra_args
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ews_server exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ews_server did not start in {self.start_timeout}s:\n{self.log_text()}")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        return self

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL). Returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill(self):
        """SIGKILL, as a crash would (the --state journal must survive it)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self):
        """Stop and start again on the same port (and --state file, if any)."""
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        self._keep_log()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- the session's log directory (tests/logcheck.py) -------------------------------

    def _register_secret(self):
        d = os.environ.get("EXCHANGEFS_TEST_LOGS")
        if d and self.password and os.path.isdir(d):
            with open(os.path.join(d, "secrets"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"secret": self.password, "user": self.user}) + "\n")

    def _keep_log(self):
        d = os.environ.get("EXCHANGEFS_TEST_LOGS")
        if d and os.path.isdir(d) and os.path.exists(self.log_path):
            shutil.copy(self.log_path, os.path.join(
                d, "server-%s-%d.log" % (os.path.basename(self.dir), os.getpid())))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ---- control API -------------------------------------------------------------------

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_cert) if self.tls else None

    def control(self, method, endpoint, payload=None, **query):
        """Call /control/<endpoint>; returns decoded JSON, or bytes for MIME."""
        path = "/control/" + endpoint + ("?" + urllib.parse.urlencode(query) if query else "")
        if self.tls:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=60, context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            try:
                msg = json.loads(data).get("error", data.decode(errors="replace"))
            except ValueError:
                msg = data.decode(errors="replace")
            raise ControlError(resp.status, msg)
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(data)
        return data

    def mailbox(self, mime=False):
        return self.control("GET", "mailbox", mime="1" if mime else "0")

    def folder(self, path):
        return self.control("GET", "folder", path=path)

    def item_mime(self, item_id):
        return self.control("GET", "item", id=item_id)

    def item_info(self, item_id):
        return self.control("GET", "item_info", id=item_id)

    def find(self, text):
        return self.control("GET", "find", text=text)["ids"]

    def items(self, path, subject=None):
        q = {"path": path} if subject is None else {"path": path, "subject": subject}
        return self.control("GET", "items", **q)

    def find_subject(self, subject, path=None):
        if path is not None:
            return [it["id"] for it in self.items(path, subject)]
        return [it["id"] for it in self.mailbox()["items"] if it["subject"] == subject]

    def find_token(self, token, path=None):
        q = {"token": token} if path is None else {"token": token, "path": path}
        return self.control("GET", "find_token", **q)["ids"]

    def sent(self):
        return self.control("GET", "sent")["sent"]

    def clear_sent(self):
        self.control("POST", "clear_sent", {})

    def dumpster(self, path=None):
        return self.control("GET", "dumpster", **({"path": path} if path else {}))["items"]

    def set_flag(self, item_id, status):
        return self.control("POST", "set_flag", {"id": item_id, "status": status})

    def set_received(self, item_id, received):
        """Change an item's received time (e.g. to age it out of an EAS FilterType window)."""
        return self.control("POST", "set_received", {"id": item_id, "received": int(received)})

    def set_categories(self, item_id, categories):
        return self.control("POST", "set_categories", {"id": item_id, "categories": list(categories)})

    def markers(self):
        return self.control("GET", "markers")

    def deliver(self, folder_path="Inbox", subject="Test message", body=None, mime=None, is_read=False,
                received=None, size=None):
        req = {"folder_path": folder_path, "subject": subject, "body": body, "is_read": is_read}
        if size is not None:  # the Size the server reports, e.g. smaller than the MIME
            req["size"] = int(size)
        if mime is not None:
            import base64
            req["mime_b64"] = base64.b64encode(mime).decode()
        if received is not None:
            req["received"] = int(received)
        return self.control("POST", "deliver", req)["id"]

    def add_pim(self, pim, folder_path=None):
        """A calendar item, contact or task from its canonical dict (pim.py);
        returns its id."""
        return self.control("POST", "pim_add", {"pim": pim, "folder_path": folder_path})["id"]

    def change_pim(self, item_id, **fields):
        return self.control("POST", "pim_change", {"id": item_id, "set": fields})["change_key"]

    def pim_of(self, item_id):
        return self.item_info(item_id)["pim"]

    def delete(self, item_id):
        self.control("POST", "delete", {"id": item_id})

    def move(self, item_id, to_path):
        return self.control("POST", "move", {"id": item_id, "to_path": to_path})["new_id"]

    def mark_read(self, item_id, read=True):
        return self.control("POST", "mark_read", {"id": item_id, "read": read})

    def update_item(self, item_id, subject):
        return self.control("POST", "update_item", {"id": item_id, "subject": subject})

    def create_folder(self, parent_path, name, folder_class="IPF.Note"):
        return self.control("POST", "create_folder", {"parent_path": parent_path, "name": name,
                                                      "folder_class": folder_class})["id"]

    def rename_folder(self, path, new_name):
        self.control("POST", "rename_folder", {"path": path, "new_name": new_name})

    def move_folder(self, path, to_path):
        self.control("POST", "move_folder", {"path": path, "to_path": to_path})

    def delete_folder(self, path):
        self.control("POST", "delete_folder", {"path": path})

    def fault(self, kind, count=1, operation=None, **params):
        return self.control("POST", "fault", dict(params, kind=kind, count=count, operation=operation))

    def clear_faults(self):
        self.control("POST", "clear_faults", {})

    def invalidate_sync_states(self):
        return self.control("POST", "fault", {"kind": "invalid_sync"})

    def stats(self):
        return self.control("GET", "stats")

    def workers(self, n):
        """At most n requests worked on at once (0: no limit)."""
        return self.control("POST", "workers", {"n": n})

    def item_cost(self, ms):
        """Make GetItem cost ms per item asked for."""
        return self.control("POST", "item_cost", {"ms": ms})

    # ---- notifications ---------------------------------------------------------------

    def notify_config(self, **settings):
        return self.control("POST", "notify_config", settings)

    def subscriptions(self, kind=None):
        subs = self.control("GET", "subscriptions")["subscriptions"]
        return [s for s in subs if kind is None or s["kind"] == kind]

    def wait_subscribed(self, kind=None, connected=None, count=1, timeout=10.0):
        """Wait until at least `count` subscriptions of `kind` exist (and have
        an open stream, if connected=True; none, if False); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            subs = [s for s in self.subscriptions(kind) if connected is None or s["connected"] == connected]
            if len(subs) >= count:
                return subs
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {count} {kind or ''} subscription(s) (connected={connected}) "
                                   f"within {timeout}s: {self.subscriptions()}")
            time.sleep(0.02)

    def drop_streams(self):
        return self.control("POST", "drop_streams", {})["dropped"]

    def expire_subscriptions(self):
        return self.control("POST", "expire_subscriptions", {})

    def reset_stats(self):
        self.control("POST", "reset_stats", {})

    # ---- ActiveSync ------------------------------------------------------------------

    def eas_config(self, **settings):
        """Settings of the EAS front-end (see eas.Config); returns all of them."""
        return self.control("POST", "eas_config", settings)

    def eas_devices(self):
        return self.control("GET", "eas_devices")["devices"]
