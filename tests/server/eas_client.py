# A small Exchange ActiveSync client for tests (standard library only): the
# HTTP side of EAS (query string, MS-ASProtocolVersion, X-MS-PolicyKey, Basic
# auth) over the WBXML codec in wbxml.py, plus helpers for the commands the
# tests drive. Used against the test server's EAS front-end (eas.py) and SOGo.
"""
    c = EasClient("127.0.0.1", port, "alice", "secret", version="16.1")
    c.options()                         # {"versions": [...], "commands": [...], "headers": {...}}
    r = c.cmd("FolderSync", E("FolderHierarchy:FolderSync", [E("FolderHierarchy:SyncKey", "0")]))
    r.status, r.headers, r.body         # HTTP status, headers (lower-case), decoded element or None
    c.provision()                       # both rounds; sets c.policy_key
    folders = c.folder_sync()           # {server_id: {"name", "parent", "type"}}; keeps c.hier_key
    adds, ... = c.sync_all(cid)         # drive Sync to the end (see sync_all)
"""

import base64
import http.client
import urllib.parse

import wbxml
from wbxml import child, children, text

WBXML_TYPE = "application/vnd.ms-sync.wbxml"


def E(tag, content=None):
    return (tag, content)


class Response:
    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data
        ctype = headers.get("content-type", "")
        self.body = wbxml.decode(data) if data and ctype.startswith(WBXML_TYPE) else None

    def __repr__(self):
        return f"<Response {self.status} {wbxml.dump(self.body)}>"


class EasError(Exception):
    pass


class EasClient:
    def __init__(self, host, port, user, password, version="16.1", path="/Microsoft-Server-ActiveSync",
                 device_id="EXCHANGEFSTEST01", device_type="exchangefs", timeout=120):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.version, self.path, self.timeout = version, path, timeout
        self.device_id, self.device_type = device_id, device_type
        self.policy_key = None
        self.hier_key = "0"
        self.keys = {}                  # collection id -> SyncKey

    @classmethod
    def from_url(cls, url, user, password, **kw):
        u = urllib.parse.urlsplit(url)
        return cls(u.hostname, u.port or 80, user, password, path=u.path, **kw)

    def _auth(self):
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def request(self, method, cmd=None, body=b"", headers=None, params=None, timeout=None):
        q = {}
        if cmd is not None:
            q = {"Cmd": cmd, "User": self.user, "DeviceId": self.device_id, "DeviceType": self.device_type}
        q.update(params or {})
        url = self.path + ("?" + urllib.parse.urlencode(q) if q else "")
        h = {"Authorization": self._auth(), "User-Agent": "exchangefs-tests/1.0"}
        if method == "POST":
            h["MS-ASProtocolVersion"] = self.version
            h["Content-Type"] = WBXML_TYPE
            if self.policy_key is not None:
                h["X-MS-PolicyKey"] = self.policy_key
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            conn.request(method, url, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def cmd(self, cmd, elem, **kw):
        body = wbxml.encode(elem) if isinstance(elem, tuple) else (elem or b"")
        return self.request("POST", cmd, body, **kw)

    def ok(self, cmd, elem, **kw):
        """cmd(), insisting on HTTP 200."""
        r = self.cmd(cmd, elem, **kw)
        if r.status != 200:
            raise EasError(f"{cmd}: HTTP {r.status} {r.data[:200]!r}")
        return r

    def options(self):
        r = self.request("OPTIONS")
        return {"status": r.status, "headers": r.headers,
                "versions": [v.strip() for v in r.headers.get("ms-asprotocolversions", "").split(",") if v.strip()],
                "commands": [c.strip() for c in r.headers.get("ms-asprotocolcommands", "").split(",") if c.strip()]}

    # ---- commands ----------------------------------------------------------------

    def provision(self):
        """Both rounds of Provision; returns the final policy key (None when the server has no policy)."""
        pol = E("Provision:Policies", [E("Provision:Policy", [E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")])])
        r = self.ok("Provision", E("Provision:Provision", [pol]))
        st = text(r.body, "Provision:Status")
        policy = child(child(r.body, "Provision:Policies"), "Provision:Policy")
        if st != "1" or text(policy, "Provision:Status") != "1":
            return None                 # e.g. SOGo: no policy
        temp = text(policy, "Provision:PolicyKey")
        ack = E("Provision:Policies", [E("Provision:Policy", [E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"),
                                                             E("Provision:PolicyKey", temp),
                                                             E("Provision:Status", "1")])])
        self.policy_key = temp
        r = self.ok("Provision", E("Provision:Provision", [ack]))
        policy = child(child(r.body, "Provision:Policies"), "Provision:Policy")
        self.policy_key = text(policy, "Provision:PolicyKey")
        return self.policy_key

    def folder_sync(self, key=None):
        """FolderSync from `key` (default: the last one); returns the changes
        as {"add": [...], "update": [...], "delete": [ids], "status": s}."""
        r = self.ok("FolderSync", E("FolderHierarchy:FolderSync",
                                    [E("FolderHierarchy:SyncKey", key if key is not None else self.hier_key)]))
        st = text(r.body, "FolderHierarchy:Status")
        out = {"status": st, "add": [], "update": [], "delete": []}
        if st == "1":
            self.hier_key = text(r.body, "FolderHierarchy:SyncKey")
            ch = child(r.body, "FolderHierarchy:Changes")
            for e in children(ch):
                kind = e[0].split(":")[1].lower()
                if kind == "count":
                    continue
                if kind == "delete":
                    out["delete"].append(text(e, "FolderHierarchy:ServerId"))
                else:
                    out[kind].append({"id": text(e, "FolderHierarchy:ServerId"),
                                      "parent": text(e, "FolderHierarchy:ParentId"),
                                      "name": text(e, "FolderHierarchy:DisplayName"),
                                      "type": int(text(e, "FolderHierarchy:Type"))})
        return out

    def folders(self):
        """The whole hierarchy from SyncKey 0: {name path: server id} (sets hier_key)."""
        fs = self.folder_sync("0")
        by_id = {f["id"]: f for f in fs["add"]}

        def path(f):
            parts = []
            while f is not None:
                parts.append(f["name"])
                f = by_id.get(f["parent"])
            return "/".join(reversed(parts))
        return {path(f): f["id"] for f in fs["add"]}

    def sync_request(self, collections, window=None):
        """collections: [{"id", "key", "get_changes"?, "window"?, "options"?, "commands"?}]."""
        cols = []
        for c in collections:
            kids = [E("AirSync:SyncKey", c["key"]), E("AirSync:CollectionId", c["id"])]
            if c.get("get_changes", c["key"] != "0"):
                kids.append(E("AirSync:GetChanges", "1" if c.get("get_changes_value", True) else "0"))
            if c.get("window"):
                kids.append(E("AirSync:WindowSize", str(c["window"])))
            if c.get("options") is not None:
                kids.append(E("AirSync:Options", c["options"]))
            if c.get("commands"):
                kids.append(E("AirSync:Commands", c["commands"]))
            cols.append(E("AirSync:Collection", kids))
        body = [E("AirSync:Collections", cols)]
        if window:
            body.append(E("AirSync:WindowSize", str(window)))
        return E("AirSync:Sync", body)

    def sync(self, collections, window=None, **kw):
        return self.ok("Sync", self.sync_request(collections, window), **kw)

    def sync_all(self, cid, options=None, window=100, key=None):
        """Sync a collection from `key` (default its last key, else 0) until no
        MoreAvailable; returns (adds {server id: ApplicationData}, changes, deletes, rounds)."""
        k = key if key is not None else self.keys.get(cid, "0")
        if k == "0":
            r = self.sync([{"id": cid, "key": "0"}])
            col = collection(r.body, cid)
            if text(col, "AirSync:Status") != "1":
                raise EasError(f"Sync {cid} from 0: {wbxml.dump(r.body)}")
            k = text(col, "AirSync:SyncKey")
        adds, changes, deletes, rounds = {}, {}, [], 0
        opts = options if options is not None else mime_options()
        while True:
            rounds += 1
            r = self.sync([{"id": cid, "key": k, "window": window, "options": opts}])
            if r.body is None:          # nothing changed: an empty answer
                break
            col = collection(r.body, cid)
            if text(col, "AirSync:Status") != "1":
                raise EasError(f"Sync {cid}: {wbxml.dump(r.body)}")
            k = text(col, "AirSync:SyncKey")
            for e in children(child(col, "AirSync:Commands")):
                sid = text(e, "AirSync:ServerId")
                if e[0] == "AirSync:Add":
                    adds[sid] = child(e, "AirSync:ApplicationData")
                elif e[0] == "AirSync:Change":
                    changes[sid] = child(e, "AirSync:ApplicationData")
                else:
                    deletes.append(sid)
            if child(col, "AirSync:MoreAvailable") is None:
                break
        self.keys[cid] = k
        return adds, changes, deletes, rounds


def mime_options(body_type="4", truncation=None):
    """Sync/ItemOperations Options asking for the exact MIME (MIMESupport 2, BodyPreference 4)."""
    bp = [E("AirSyncBase:Type", body_type)]
    if truncation is not None:
        bp.append(E("AirSyncBase:TruncationSize", str(truncation)))
    return [E("AirSync:MIMESupport", "2"), E("AirSyncBase:BodyPreference", bp)]


def collection(body, cid):
    for c in children(child(body, "AirSync:Collections"), "AirSync:Collection"):
        if text(c, "AirSync:CollectionId") == cid:
            return c
    return None


def body_data(app):
    """The bytes of AirSyncBase:Body/Data of an ApplicationData (or Properties) element."""
    return wbxml.raw(child(app, "AirSyncBase:Body"), "AirSyncBase:Data")
