# The Exchange ActiveSync (EAS 16.1) front-end of the test mailbox server, at
# /Microsoft-Server-ActiveSync next to EWS, over the same mailbox model
# (mailbox.py): the same folders, items, change numbers and tombstones, so a
# change made through EWS, EAS or the control API shows in both protocols.
# Commands: OPTIONS, Provision (policy, two rounds, 449 or status 142/144 when
# required), FolderSync, FolderCreate/Update/Delete, Sync (several collections,
# WindowSize, MoreAvailable, GetChanges, exact MIME with BodyPreference 4 and
# MIMESupport 2, Read/Flag/Categories changes, Delete, SoftDelete for items
# leaving the FilterType window, Add of drafts in 16.x, status 3), ItemOperations
# Fetch, SendMail, MoveItems, Ping, ResolveRecipients. SyncKeys are server-side
# states per device and collection: the current and the previous key are
# accepted (a retried request), anything else is status 3 (Sync) or 9
# (FolderSync); the control API's invalid_sync fault and a restart without
# --state forget them all (with --state FILE they survive a restart, kept in FILE.eas).
# Faults armed through the control API hit EAS commands by
# their Cmd name (operation="Sync"); "reprovision" answers 449 and revokes the
# policy keys. Settings: control eas_config (see Config).

import bisect
import email
import email.message
import email.policy
import email.utils
import html
import json
import math
import os
import sys
import threading
import time
import urllib.parse
import uuid

import wbxml
from wbxml import child, children, text
from mailbox import IPF_NOTE, MailboxError, Tombstone, store_size
from ops_write import mime_recipients, transmit
from generate import OWNER
import directory
import pim
import pim_eas

PATH = "/microsoft-server-activesync"
WBXML_TYPE = "application/vnd.ms-sync.wbxml"
ALL_VERSIONS = ["2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1"]
COMMANDS = ["Sync", "SendMail", "FolderSync", "FolderCreate", "FolderDelete", "FolderUpdate", "MoveItems",
            "ItemOperations", "Ping", "Provision", "ResolveRecipients"]
POLICY_TYPE = "MS-EAS-Provisioning-WBXML"
MAX_WINDOW = 512
DEFAULT_WINDOW = 100

# root element and status element of each command (for command-level statuses)
ROOTS = {"Sync": ("AirSync:Sync", "AirSync:Status"), "FolderSync": ("FolderHierarchy:FolderSync", "FolderHierarchy:Status"),
         "FolderCreate": ("FolderHierarchy:FolderCreate", "FolderHierarchy:Status"),
         "FolderUpdate": ("FolderHierarchy:FolderUpdate", "FolderHierarchy:Status"),
         "FolderDelete": ("FolderHierarchy:FolderDelete", "FolderHierarchy:Status"),
         "Ping": ("Ping:Ping", "Ping:Status"), "Provision": ("Provision:Provision", "Provision:Status"),
         "ItemOperations": ("ItemOperations:ItemOperations", "ItemOperations:Status"),
         "SendMail": ("ComposeMail:SendMail", "ComposeMail:Status"),
         "MoveItems": ("Move:MoveItems", "Move:Status"),
         "ResolveRecipients": ("ResolveRecipients:ResolveRecipients", "ResolveRecipients:Status")}

DIST_TYPES = {"inbox": 2, "drafts": 3, "deleteditems": 4, "sentitems": 5, "outbox": 6, "tasks": 7,
              "calendar": 8, "contacts": 9, "notes": 10, "journal": 11}
CLASS_TYPES = {"IPF.Note": 12, "IPF.Appointment": 13, "IPF.Contact": 14, "IPF.Task": 15, "IPF.Journal": 16,
               "IPF.StickyNote": 17}
TYPE_CLASSES = {1: (IPF_NOTE, "Folder"), 12: (IPF_NOTE, "Folder"), 13: ("IPF.Appointment", "CalendarFolder"),
                14: ("IPF.Contact", "ContactsFolder"), 15: ("IPF.Task", "TasksFolder"),
                16: ("IPF.Journal", "Folder"), 17: ("IPF.StickyNote", "Folder")}
FLAG_TO_EAS = {"NotFlagged": None, "Complete": "1", "Flagged": "2"}
FLAG_FROM_EAS = {"0": "NotFlagged", "1": "Complete", "2": "Flagged"}
# FilterType -> age in days (0: all)
FILTER_DAYS = {"0": 0, "1": 1, "2": 3, "3": 7, "4": 14, "5": 31, "6": 92, "7": 183}
MIME_TRUNCATION = {"0": 0, "1": 4096, "2": 5120, "3": 7168, "4": 10240, "5": 20480, "6": 51200, "7": 102400}


class Config:
    """Settings of the EAS front-end (control: POST eas_config)."""

    FIELDS = {
        "versions": list,          # MS-ASProtocolVersions offered (e.g. ["14.1"] plays Exchange 2010)
        "provision": str,          # "none": not required; "449": HTTP 449 until provisioned;
                                   # "status": Status 142/144 in the answer (14.0+; 449 below)
        "policy": bool,            # False: Provision answers "no policy" (status 2), like SOGo
        "min_heartbeat": int,      # Ping/Sync HeartbeatInterval limits (status 5 outside)
        "max_heartbeat": int,
        "max_folders": int,        # Ping folders (status 6 above)
        "empty_sync": bool,        # a Sync with nothing to say answers an empty body
        "string_data": bool,       # Body Data as an inline string, not opaque bytes
        "max_window": int,         # WindowSize cap
        "fetch_gone": str,         # ItemOperations with an item gone: "status" (its Fetch has
                                   # Status 6, as Exchange), "http501" (the whole request fails
                                   # with HTTP 501 when it has several Fetch, as SOGo) or "http500"
                                   # (HTTP 500 even for a lone Fetch: a server that says nothing
                                   # more of a gone message than of a hiccup)
        "fetch_first_collection": bool,   # every Fetch of an ItemOperations answered from the
                                          # first Fetch's CollectionId, as SOGo
    }

    def __init__(self):
        self.versions = list(ALL_VERSIONS)
        self.provision = "none"
        self.policy = True
        self.min_heartbeat = 60
        self.max_heartbeat = 3540
        self.max_folders = 300
        self.empty_sync = True
        self.string_data = False
        self.max_window = MAX_WINDOW
        self.fetch_gone = "status"
        self.fetch_first_collection = False

    def update(self, req):
        for k, v in req.items():
            if k not in self.FIELDS:
                raise ValueError(f"unknown eas_config setting {k!r}; known: {sorted(self.FIELDS)}")
            if not isinstance(v, self.FIELDS[k]) or (self.FIELDS[k] is int and isinstance(v, bool)):
                raise ValueError(f"eas_config {k}: {self.FIELDS[k].__name__} expected")
            if k == "fetch_gone" and v not in ("status", "http501", "http500"):
                raise ValueError("eas_config fetch_gone: status, http501 or http500")
            if k == "provision" and v not in ("none", "449", "status"):
                raise ValueError("eas_config provision: none, 449 or status")
            if k == "versions" and (not v or any(x not in ALL_VERSIONS for x in v)):
                raise ValueError(f"eas_config versions: some of {ALL_VERSIONS}")
            setattr(self, k, v)
        return self.describe()

    def describe(self):
        return {k: getattr(self, k) for k in self.FIELDS}


class Snap:
    """One SyncKey's state: change-number watermark, the item (or folder)
    numbers the device holds, and its own changes not to echo {num: cn}."""

    __slots__ = ("cn", "given", "echo", "epoch", "instance")

    def __init__(self, cn, given, echo, epoch, instance):
        self.cn, self.given, self.echo, self.epoch, self.instance = cn, given, echo, epoch, instance

    def copy(self):
        return Snap(self.cn, set(self.given), dict(self.echo), self.epoch, self.instance)


class Keyed:
    """States by SyncKey: the current one and the one before (a retry)."""

    def __init__(self):
        self.prefix = "{%s}" % uuid.uuid4()
        self.n = 0
        self.snaps = {}         # key -> Snap (at most two)
        self.cur = None
        self.options = None     # Sync: the last Options sent for this collection
        self.client_ids = {}    # Sync Add: ClientId -> ServerId

    def get(self, key, mb):
        s = self.snaps.get(key)
        if s is None or s.epoch != mb.epoch or s.instance != mb.instance:
            return None
        return s

    def commit(self, snap, from_key):
        self.n += 1
        key = f"{self.prefix}{self.n}"
        self.snaps = {k: v for k, v in self.snaps.items() if k == from_key}
        self.snaps[key] = snap
        self.cur = key
        return key

    def current(self):
        return self.snaps.get(self.cur)


class Device:
    def __init__(self, dev_id, dev_type):
        self.id, self.type = dev_id, dev_type
        self.policy_key = None          # final key after the acknowledgement
        self.temp_key = None            # handed out in round 1
        self.revoked = False            # a reprovision fault: 449 until provisioned again
        self.hier = None                # Keyed for the folder hierarchy
        self.cols = {}                  # collection id -> Keyed
        self.last_ping = None           # (heartbeat, [folder ids]) for an empty Ping
        self.last_sync = None           # the last full Sync request (for an empty one)
        self.sent_client_ids = set()    # SendMail ClientIds (duplicates: status 118)

    def describe(self):
        return {"id": self.id, "type": self.type, "policy_key": self.policy_key, "revoked": self.revoked,
                "hierarchy_key": self.hier.cur if self.hier else None,
                "collections": {cid: k.cur for cid, k in self.cols.items()}}


class EasState:
    def __init__(self, path=None):
        self.config = Config()
        self.devices = {}
        self.lock = threading.Lock()
        self.next_policy = 1000 + int(time.time()) % 100000
        self.path = path                # with --state: device states survive a restart
        if path and os.path.exists(path):
            self.load()

    # ---- persistence (--state FILE keeps them in FILE.eas, rewritten after each change) ----

    def save(self):
        if not self.path:
            return
        with self.lock:
            doc = {"v": 1, "next_policy": self.next_policy, "config": self.config.describe(),
                   "devices": [_dev_dump(d) for d in self.devices.values()]}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        os.replace(tmp, self.path)

    def load(self):
        try:
            with open(self.path) as f:
                doc = json.load(f)
            if doc.get("v") != 1:
                return
            self.next_policy = doc["next_policy"]
            self.config.update(doc["config"])
            for dd in doc["devices"]:
                d = _dev_load(dd)
                self.devices[d.id] = d
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.stderr.write(f"eas: device states not restored from {self.path}: {e!r}\n")
            self.devices = {}

    def device(self, dev_id, dev_type):
        with self.lock:
            d = self.devices.get(dev_id)
            if d is None:
                d = self.devices[dev_id] = Device(dev_id, dev_type)
            return d

    def new_policy_key(self):
        with self.lock:
            self.next_policy += 7919
            return str(self.next_policy % 4294967295 or 1)

    def describe(self):
        with self.lock:
            return {"config": self.config.describe(), "devices": [d.describe() for d in self.devices.values()]}


def _ranges(nums):
    out = []
    for n in sorted(nums):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _keyed_dump(k):
    if k is None:
        return None
    return {"prefix": k.prefix, "n": k.n, "cur": k.cur, "options": k.options, "client_ids": k.client_ids,
            "snaps": {key: [s.cn, _ranges(s.given), sorted(s.echo.items()), s.epoch, s.instance]
                      for key, s in k.snaps.items()}}


def _tuples(e):
    if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str):
        return (e[0], [_tuples(c) for c in e[1]] if isinstance(e[1], list) else e[1])
    return e


def _keyed_load(d):
    if d is None:
        return None
    k = Keyed()
    k.prefix, k.n, k.cur, k.client_ids = d["prefix"], d["n"], d["cur"], dict(d["client_ids"])
    k.options = _tuples(d["options"]) if d["options"] is not None else None
    for key, (cn, ranges, echo, epoch, instance) in d["snaps"].items():
        given = {n for a, b in ranges for n in range(a, b + 1)}
        k.snaps[key] = Snap(cn, given, {int(a): b for a, b in echo}, epoch, instance)
    return k


def _dev_dump(d):
    return {"id": d.id, "type": d.type, "policy_key": d.policy_key, "temp_key": d.temp_key, "revoked": d.revoked,
            "hier": _keyed_dump(d.hier), "cols": {cid: _keyed_dump(k) for cid, k in d.cols.items()},
            "sent_client_ids": sorted(d.sent_client_ids)}


def _dev_load(dd):
    d = Device(dd["id"], dd["type"])
    d.policy_key, d.temp_key, d.revoked = dd["policy_key"], dd["temp_key"], dd["revoked"]
    d.hier = _keyed_load(dd["hier"])
    d.cols = {cid: _keyed_load(k) for cid, k in dd["cols"].items()}
    d.sent_client_ids = set(dd["sent_client_ids"])
    return d


def state(server):
    st = getattr(server, "eas", None)
    if st is None:
        st = server.eas = EasState(getattr(server, "eas_state_path", None))
    return st


def control(server, name, req):
    """Control endpoints: POST eas_config {...}; GET eas_devices."""
    st = state(server)
    if name == "eas_config":
        out = st.config.update(req)
        st.save()
        return out
    if name == "eas_devices":
        return st.describe()
    return None


def revoke_policies(server):
    """The reprovision fault: every device must provision again."""
    st = state(server)
    with st.lock:
        for d in st.devices.values():
            if d.policy_key is not None or d.temp_key is not None:
                d.revoked = True
            d.policy_key = d.temp_key = None


# ---- helpers -----------------------------------------------------------------------

def E(tag, content=None):
    return (tag, content)


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def vnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def folder_type(f):
    if f.distinguished in DIST_TYPES:
        return DIST_TYPES[f.distinguished]
    return CLASS_TYPES.get(f.folder_class or "", 1)


def folder_class_name(f):
    c = f.folder_class or ""
    if c.startswith("IPF.Appointment"):
        return "Calendar"
    if c.startswith("IPF.Contact"):
        return "Contacts"
    if c.startswith("IPF.Task"):
        return "Tasks"
    if c.startswith("IPF.StickyNote"):
        return "Notes"
    return "Email"


def folder_by_sid(mb, sid):
    if not isinstance(sid, str) or not sid.isdigit():
        return None
    n = int(sid)
    for f in mb.folders.values():
        if f.num == n and mb.is_below(f, mb.msgroot) and f is not mb.msgroot:
            return f
    return None


def item_sid(it):
    return f"{it.folder.num}:{it.num}"


def item_by_sid(mb, sid, folder=None):
    if not isinstance(sid, str) or ":" not in sid:
        return None
    a, _, b = sid.partition(":")
    f = folder_by_sid(mb, a)
    if f is None or not b.isdigit() or (folder is not None and f is not folder):
        return None
    return f.items.get(int(b))


def parent_sid(mb, f):
    return "0" if f.parent is mb.msgroot else str(f.parent.num)


def user_address(server):
    u = server.user or OWNER[1]
    return u if "@" in u else f"{u}@example.com"


# ---- bodies --------------------------------------------------------------------------

class BodyOptions:
    def __init__(self, opts=None):
        self.prefs = []             # [(type, truncation or None, all_or_none)]
        self.mime_support = 0
        self.mime_truncation = None
        self.filter_days = 0
        if opts is None:
            return
        for bp in children(opts, "AirSyncBase:BodyPreference"):
            t = text(bp, "AirSyncBase:Type")
            tr = text(bp, "AirSyncBase:TruncationSize")
            self.prefs.append((t, int(tr) if tr and tr.isdigit() else None,
                               text(bp, "AirSyncBase:AllOrNone") == "1"))
        ms = text(opts, "AirSync:MIMESupport")
        self.mime_support = int(ms) if ms and ms.isdigit() else 0
        mt = text(opts, "AirSync:MIMETruncation")
        if mt in MIME_TRUNCATION:
            self.mime_truncation = MIME_TRUNCATION[mt]
        ft = text(opts, "AirSync:FilterType")
        self.filter_days = FILTER_DAYS.get(ft or "0", 0)


def _parsed(it):
    return email.message_from_bytes(it.mime, policy=email.policy.default)


def text_body(it, want_html):
    """The text (type 1) or HTML (type 2) of a message's MIME."""
    try:
        msg = _parsed(it)
        part = msg.get_body(("html", "plain") if want_html else ("plain", "html"))
        if part is None:
            return ""
        content = part.get_content()
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        if want_html and part.get_content_type() == "text/plain":
            return "<html><body><pre>" + html.escape(content) + "</pre></body></html>"
        if not want_html and part.get_content_type() == "text/html":
            return content          # good enough for a test server
        return content
    except (LookupError, ValueError, KeyError, AttributeError):
        return ""


def attachments_of(it):
    """[(index, part)] of a message's attachments."""
    if not it.has_attachments:
        return []
    try:
        return list(enumerate(_parsed(it).iter_attachments()))
    except (ValueError, KeyError, AttributeError):
        return []


def body_element(it, bo, cfg):
    mime_pref = next((p for p in bo.prefs if p[0] == "4"), None)
    if bo.mime_support == 2 and mime_pref is not None or (bo.mime_support and not bo.prefs):
        data, btype, limit = it.mime, "4", (mime_pref[1] if mime_pref else None)
        if bo.mime_truncation:
            limit = min(limit or bo.mime_truncation, bo.mime_truncation)
    else:
        pref = next((p for p in bo.prefs if p[0] in ("1", "2")), None) or ("1", None, False)
        btype, limit = pref[0], pref[1]
        data = text_body(it, btype == "2").encode("utf-8")
    estimate = len(data)
    if btype == "4" and it.size != store_size(it.mime, it.subject):
        estimate = it.size          # a test asked for another estimate (deliver size=)
    kids = [E("AirSyncBase:Type", btype), E("AirSyncBase:EstimatedDataSize", str(estimate))]
    if limit is not None and len(data) > limit:
        data = data[:limit]
        kids.append(E("AirSyncBase:Truncated", "1"))
    if cfg.string_data:
        try:
            s = data.decode("utf-8")
            payload = s if "\x00" not in s else data
        except UnicodeDecodeError:
            payload = data
    else:
        payload = data
    kids.append(E("AirSyncBase:Data", payload))
    return E("AirSyncBase:Body", kids)


def flag_element(it):
    st = FLAG_TO_EAS.get(it.flag)
    if st is None:
        return E("Email:Flag")
    kids = [E("Email:FlagStatus", st), E("Email:FlagType", "Flag for follow up")]
    if st == "1":
        kids.append(E("Email:CompleteTime", iso(it.modified)))
    return E("Email:Flag", kids)


def categories_element(it):
    return E("Email:Categories", [E("Email:Category", c) for c in it.categories] or None)


def app_data(it, bo, cfg, version, tag="AirSync:ApplicationData"):
    """The Email properties of an item as Sync Add and ItemOperations Fetch give them."""
    if it.pim is not None:                  # Calendar, Contacts, Tasks (pim_eas.py)
        return pim_eas.app_data(it, bo, tag)
    kids = []

    def add(t, v):
        if v:
            kids.append(E(t, v))
    add("Email:To", it.to)
    add("Email:Cc", it.cc)
    add("Email:From", (f'"{it.from_name}" <{it.from_addr}>' if it.from_name else it.from_addr)
        if it.from_addr else None)          # UTF-8 as it is, not RFC 2047
    add("Email:Subject", it.subject)
    add("Email:DateReceived", iso(it.received))
    add("Email:DisplayTo", it.to)
    add("Email:ThreadTopic", it.subject)
    add("Email:Importance", "1")
    add("Email:Read", "1" if it.is_read else "0")
    kids.append(body_element(it, bo, cfg))
    atts = attachments_of(it)
    if atts and not (bo.mime_support == 2 and any(p[0] == "4" for p in bo.prefs)):
        kids.append(E("AirSyncBase:Attachments", [E("AirSyncBase:Attachment", [
            E("AirSyncBase:DisplayName", p.get_filename() or f"attachment{i}"),
            E("AirSyncBase:FileReference", f"{item_sid(it)}:{i}"),
            E("AirSyncBase:Method", "1"),
            E("AirSyncBase:EstimatedDataSize", str(len(p.get_payload(decode=True) or b""))),
            E("AirSyncBase:IsInline", "1" if p.get_content_disposition() == "inline" else "0")]) for i, p in atts]))
    add("Email:MessageClass", it.item_class or "IPM.Note")
    add("Email:InternetCPID", "65001")
    kids.append(flag_element(it))
    add("Email:ContentClass", "urn:content-classes:message")
    add("AirSyncBase:NativeBodyType", "1")
    if vnum(version) >= 14.0:
        kids.append(categories_element(it))
    if vnum(version) >= 16.0:
        add("Email2:IsDraft", "1" if it.is_draft else "0")
    return E(tag, kids)


def change_data(it, bo, cfg, version, content):
    if it.pim is not None:                  # these classes send the whole item on a Change
        return pim_eas.app_data(it, bo)
    return _mail_change_data(it, bo, cfg, version, content)


def _mail_change_data(it, bo, cfg, version, content):
    """ApplicationData of a Change: Read, Flag, Categories; all of it when the content changed."""
    if content:
        return app_data(it, bo, cfg, version)
    kids = [E("Email:Read", "1" if it.is_read else "0"), flag_element(it)]
    if vnum(version) >= 14.0:
        kids.append(categories_element(it))
    return E("AirSync:ApplicationData", kids)


# ---- drafts (16.x: Sync Add/Change of Email in Drafts) --------------------------------

def build_draft(app, from_addr, old=None):
    """MIME for a draft from EAS properties; absent ones are kept from `old` (bytes)."""
    prev = email.message_from_bytes(old, policy=email.policy.default) if old else None

    def field(tag, header):
        v = text(app, tag)
        if v is not None:
            return v
        return str(prev[header]) if prev is not None and prev[header] is not None else ""
    msg = email.message.EmailMessage()
    msg["From"] = from_addr
    for tag, header in (("Email:To", "To"), ("Email:Cc", "Cc"), ("Email2:Bcc", "Bcc")):
        v = field(tag, header)
        if v:
            msg[header] = v
    msg["Subject"] = field("Email:Subject", "Subject")
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = (str(prev["Message-ID"]) if prev is not None and prev["Message-ID"]
                         else email.utils.make_msgid(domain="example.com"))
    imp = text(app, "Email:Importance")
    if imp in ("0", "2"):
        msg["Importance"] = "low" if imp == "0" else "high"
    body = child(app, "AirSyncBase:Body")
    btype, data = "1", ""
    if body is not None:
        btype = text(body, "AirSyncBase:Type") or "1"
        data = (wbxml.raw(body, "AirSyncBase:Data") or b"").decode("utf-8", "replace")
    elif prev is not None:
        part = prev.get_body(("plain", "html"))
        if part is not None:
            btype = "2" if part.get_content_type() == "text/html" else "1"
            data = part.get_content()
    msg.set_content(data, subtype="html" if btype == "2" else "plain")
    keep = []
    if prev is not None:
        gone = {text(d, "AirSyncBase:FileReference") for d in
                children(child(app, "AirSyncBase:Attachments"), "AirSyncBase:Delete")}
        for i, p in enumerate(prev.iter_attachments()):
            if not any(g and g.endswith(f":{i}") for g in gone):
                keep.append((p.get_payload(decode=True) or b"", p.get_content_type(), p.get_filename(),
                             p.get_content_disposition() == "inline", p["Content-ID"]))
    for a in children(child(app, "AirSyncBase:Attachments"), "AirSyncBase:Add"):
        keep.append((wbxml.raw(a, "AirSyncBase:Content") or b"",
                     text(a, "AirSyncBase:ContentType") or "application/octet-stream",
                     text(a, "AirSyncBase:DisplayName") or "attachment", text(a, "AirSyncBase:IsInline") == "1",
                     text(a, "AirSyncBase:ContentId")))
    for content, ctype, name, inline, cid in keep:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(content, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=name, disposition="inline" if inline else "attachment",
                           cid=f"<{cid.strip('<>')}>" if cid else None)
    return msg.as_bytes(policy=email.policy.SMTP)


# ---- the request ------------------------------------------------------------------------

class Request:
    def __init__(self, h, cmd, version, device, body):
        self.h, self.server, self.mb = h, h.server, h.server.mailbox
        self.st = state(h.server)
        self.cfg = self.st.config
        self.cmd, self.version, self.device, self.body = cmd, version, device, body


def handle(h, method, query, body):
    """Serve one request to /Microsoft-Server-ActiveSync (h: the HTTP handler)."""
    st = state(h.server)
    cfg = st.config
    q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    cmd = q.get("Cmd") or ("OPTIONS" if method == "OPTIONS" else "(none)")
    t0 = time.time()
    fault = h.server.faults.take(cmd)
    kind = fault["kind"] if fault else None
    h.in_flight = (cmd, kind, t0)
    if fault:
        status = apply_fault(h, fault)
        if status is not None:
            h.record_once(status)
            return
    if h.server.latency_ms:
        time.sleep(h.server.latency_ms / 1000)
    if not h.authorized():
        h.record_once(h.unauthorized())
        return
    if method == "OPTIONS":
        h.send(200, b"", "text/plain", [("MS-Server-ActiveSync", "15.1"),
                                        ("MS-ASProtocolVersions", ",".join(cfg.versions)),
                                        ("MS-ASProtocolCommands", ",".join(COMMANDS)),
                                        ("Public", "OPTIONS,POST"), ("Allow", "OPTIONS,POST")])
        return
    if method != "POST":
        h.send(405, b"", "text/plain", [("Allow", "OPTIONS,POST")])
        return
    version = h.headers.get("MS-ASProtocolVersion")
    dev_id, dev_type = q.get("DeviceId", ""), q.get("DeviceType", "")
    if version is None or version not in cfg.versions:
        return h.send(400, f"MS-ASProtocolVersion {version!r} is not one of {','.join(cfg.versions)}".encode(),
                      "text/plain")
    if not (dev_id.isalnum() and len(dev_id) <= 32 and dev_type and len(dev_type) <= 32):
        return h.send(400, b"DeviceId (letters and digits, 32 at most) and DeviceType are required", "text/plain")
    if cmd not in COMMANDS:
        return h.send(501, f"command {cmd!r} is not implemented".encode(), "text/plain")
    dev = st.device(dev_id, dev_type)
    r = Request(h, cmd, version, dev, body)
    if cmd != "Provision":
        refusal = policy_refusal(r, h.headers.get("X-MS-PolicyKey"))
        if refusal == 449:
            return h.send(449, b"", "text/plain")
        if refusal:
            return send_el(h, E(ROOTS[cmd][0], [E(ROOTS[cmd][1], str(refusal))]))
    ctype = (h.headers.get("Content-Type") or "").lower()
    if cmd == "SendMail" and ctype.startswith("message/rfc822"):
        elem = None
    else:
        try:
            elem = wbxml.decode(body)
        except wbxml.WbxmlError as e:
            if vnum(version) >= 14.0:
                return send_el(h, E(ROOTS[cmd][0], [E(ROOTS[cmd][1], "102")]))
            return h.send(400, f"bad WBXML: {e}".encode(), "text/plain")
        if elem is not None and elem[0] != ROOTS[cmd][0]:
            if vnum(version) >= 14.0:
                return send_el(h, E(ROOTS[cmd][0], [E(ROOTS[cmd][1], "103")]))
            return h.send(400, b"unexpected root element", "text/plain")
    fn = {"Sync": cmd_sync, "FolderSync": cmd_folder_sync, "FolderCreate": cmd_folder_create,
          "FolderUpdate": cmd_folder_update, "FolderDelete": cmd_folder_delete, "Ping": cmd_ping,
          "Provision": cmd_provision, "ItemOperations": cmd_item_operations, "SendMail": cmd_send_mail,
          "MoveItems": cmd_move_items, "ResolveRecipients": cmd_resolve_recipients}[cmd]
    if cmd == "Ping":                   # held open: no worker
        out = fn(r, elem)
    else:
        with h.server.working():
            out = fn(r, elem)
    if cmd not in ("Ping", "ItemOperations", "ResolveRecipients"):
        with r.mb.lock:
            st.save()
    if kind == "reset_after":
        h.reset()
        return
    if out is None or out == b"":
        h.send(200, b"", WBXML_TYPE)
    elif isinstance(out, int):
        h.send(out, b"", "text/plain")
    else:
        send_el(h, out)


def send_el(h, el):
    h.send(200, wbxml.encode(el), WBXML_TYPE)


def apply_fault(h, fault):
    """Act out an armed fault; returns the HTTP status sent (0: cut), or None to go on."""
    kind = fault["kind"]
    if kind == "slow":
        time.sleep(fault["ms"] / 1000)
        return None
    if kind == "reset_after":
        return None
    if kind in ("http503", "http429", "busy"):
        code = 429 if kind == "http429" else 503
        ra = fault["retry_after"] if kind != "busy" else max(1, math.ceil(fault["backoff_ms"] / 1000))
        h.send(code, b"Service Unavailable", "text/plain", [("Retry-After", str(ra))])
        return code
    if kind == "http500":
        h.send(500, b"Internal Server Error", "text/plain")
        return 500
    if kind == "auth":
        return h.unauthorized()
    if kind == "reprovision":
        revoke_policies(h.server)
        h.send(449, b"", "text/plain")
        return 449
    if kind == "incomplete":    # Sync status 13: "resend the full request" (SOGo does, now and then)
        send_el(h, E("AirSync:Sync", [E("AirSync:Status", "13")]))
        return 200
    if kind == "garbage":
        h.send(200, b"\x03\x01\x6a\x00\x45\x5c\x4f\x4b\x03", WBXML_TYPE)   # cut inside a string
        return 200
    if kind in ("reset", "truncate"):
        h.close_connection = True
        if kind == "truncate":
            body = wbxml.encode(E("AirSync:Sync", [E("AirSync:Status", "1")])) + b"\x00" * 64
            h.send_response(200)
            h.send_header("Content-Type", WBXML_TYPE)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
        return h.reset()
    return None


def policy_refusal(r, key):
    """None when the command may run; 449, 142 or 144 when provisioning is due."""
    d, cfg = r.device, r.cfg
    need = cfg.provision != "none" or d.revoked
    if not need or not cfg.policy:
        return None
    if d.policy_key is not None and key == d.policy_key:
        return None
    if cfg.provision == "status" and vnum(r.version) >= 14.0:
        return 142 if not key or key == "0" else 144
    return 449


# ---- Provision ----------------------------------------------------------------------------

def provision_doc():
    return E("Provision:EASProvisionDoc", [
        E("Provision:DevicePasswordEnabled", "0"), E("Provision:AlphanumericDevicePasswordRequired", "0"),
        E("Provision:PasswordRecoveryEnabled", "0"), E("Provision:AttachmentsEnabled", "1"),
        E("Provision:MinDevicePasswordLength", "1"), E("Provision:MaxInactivityTimeDeviceLock", "0"),
        E("Provision:MaxDevicePasswordFailedAttempts", "8"), E("Provision:AllowSimpleDevicePassword", "1"),
        E("Provision:DevicePasswordExpiration", "0"), E("Provision:DevicePasswordHistory", "0"),
        E("Provision:AllowStorageCard", "1"), E("Provision:AllowCamera", "1"),
        E("Provision:RequireDeviceEncryption", "0"), E("Provision:AllowHTMLEmail", "1"),
        E("Provision:MaxEmailAgeFilter", "0"), E("Provision:MaxEmailBodyTruncationSize", "-1"),
        E("Provision:MaxEmailHTMLBodyTruncationSize", "-1")])


def cmd_provision(r, elem):
    d = r.device
    pol = child(child(elem, "Provision:Policies"), "Provision:Policy")
    if pol is None:
        return E("Provision:Provision", [E("Provision:Status", "2")])
    ptype = text(pol, "Provision:PolicyType")
    head = [E("Provision:Status", "1")]
    if child(elem, "Settings:DeviceInformation") is not None:
        head = [E("Settings:DeviceInformation", [E("Settings:Status", "1")])] + head
    if ptype != POLICY_TYPE:
        return E("Provision:Provision", head + [E("Provision:Policies", [E("Provision:Policy", [
            E("Provision:PolicyType", ptype or ""), E("Provision:Status", "3")])])])
    if not r.cfg.policy:
        return E("Provision:Provision", head + [E("Provision:Policies", [E("Provision:Policy", [
            E("Provision:PolicyType", ptype), E("Provision:Status", "2")])])])
    key = text(pol, "Provision:PolicyKey")
    if key is None:                         # round 1: the policy and a temporary key
        d.temp_key = r.st.new_policy_key()
        return E("Provision:Provision", head + [E("Provision:Policies", [E("Provision:Policy", [
            E("Provision:PolicyType", ptype), E("Provision:Status", "1"), E("Provision:PolicyKey", d.temp_key),
            E("Provision:Data", [provision_doc()])])])])
    if key != d.temp_key or text(pol, "Provision:Status") not in ("1", "2"):
        return E("Provision:Provision", head + [E("Provision:Policies", [E("Provision:Policy", [
            E("Provision:PolicyType", ptype), E("Provision:Status", "5")])])])
    d.policy_key, d.temp_key, d.revoked = r.st.new_policy_key(), None, False
    return E("Provision:Provision", head + [E("Provision:Policies", [E("Provision:Policy", [
        E("Provision:PolicyType", ptype), E("Provision:Status", "1"), E("Provision:PolicyKey", d.policy_key)])])])


# ---- FolderSync and folder commands ------------------------------------------------------

def _hier_snap(r, key):
    """The hierarchy state of a key ("0": a new one), or None (status 9)."""
    mb, d = r.mb, r.device
    if key == "0":
        d.hier = Keyed()
        d.cols = {}                         # FolderSync 0 resets the device's collections
        return Snap(0, set(), {}, mb.epoch, mb.instance)
    if d.hier is None:
        return None
    return d.hier.get(key, mb)


def folder_entry(tag, mb, f):
    return E(tag, [E("FolderHierarchy:ServerId", str(f.num)), E("FolderHierarchy:ParentId", parent_sid(mb, f)),
                   E("FolderHierarchy:DisplayName", f.name), E("FolderHierarchy:Type", str(folder_type(f)))])


def cmd_folder_sync(r, elem):
    mb = r.mb
    key = text(elem, "FolderHierarchy:SyncKey")
    with mb.lock:
        snap = _hier_snap(r, key) if key is not None else None
        if snap is None:
            return E("FolderHierarchy:FolderSync", [E("FolderHierarchy:Status", "9" if key is not None else "10")])
        top = mb.msgroot
        new, adds, updates, deletes = snap.copy(), [], [], []
        for i in range(bisect.bisect_right(mb.h_log_cn, snap.cn), len(mb.h_log_cn)):
            cn, ref = mb.h_log_cn[i], mb.h_log_ref[i]
            if isinstance(ref, Tombstone):
                if ref.num in new.given:
                    new.given.discard(ref.num)
                    if new.echo.pop(ref.num, None) != -1:
                        deletes.append(ref.num)
                continue
            if not ref.alive or ref.cn != cn or ref is top:
                continue
            below = mb.is_below(ref, top)
            if new.echo.get(ref.num) == ref.cn:
                new.given.add(ref.num)
                continue
            if below and ref.num in new.given:
                updates.append(ref)
            elif below:
                new.given.add(ref.num)
                adds.append(ref)
            elif ref.num in new.given:
                new.given.discard(ref.num)
                deletes.append(ref.num)
        new.cn, new.echo = mb.counter, {}

        def depth(f):
            n = 0
            while f.parent is not None:
                n, f = n + 1, f.parent
            return n
        adds.sort(key=lambda f: (depth(f), f.cn))
        changes = ([folder_entry("FolderHierarchy:Add", mb, f) for f in adds]
                   + [folder_entry("FolderHierarchy:Update", mb, f) for f in updates]
                   + [E("FolderHierarchy:Delete", [E("FolderHierarchy:ServerId", str(n))]) for n in deletes])
        if not changes and key != "0":
            new_key = key
            r.device.hier.snaps[key] = new      # same key, later watermark
        else:
            new_key = r.device.hier.commit(new, key)
    return E("FolderHierarchy:FolderSync", [
        E("FolderHierarchy:Status", "1"), E("FolderHierarchy:SyncKey", new_key),
        E("FolderHierarchy:Changes", [E("FolderHierarchy:Count", str(len(changes)))] + changes)])


def _hier_for_change(r, elem, root):
    """The current hierarchy state for a folder command, or an error answer."""
    key = text(elem, "FolderHierarchy:SyncKey")
    d = r.device
    snap = d.hier.get(key, r.mb) if d.hier is not None and key is not None else None
    if snap is None or key != d.hier.cur:
        return None, E(root, [E("FolderHierarchy:Status", "9")])
    return key, None


def cmd_folder_create(r, elem):
    mb, root = r.mb, "FolderHierarchy:FolderCreate"
    with mb.lock:
        key, err = _hier_for_change(r, elem, root)
        if err:
            return err
        parent_id = text(elem, "FolderHierarchy:ParentId")
        name = text(elem, "FolderHierarchy:DisplayName")
        ftype = text(elem, "FolderHierarchy:Type") or "12"
        if name is None or parent_id is None or not ftype.isdigit():
            return E(root, [E("FolderHierarchy:Status", "10")])
        parent = mb.msgroot if parent_id == "0" else folder_by_sid(mb, parent_id)
        if parent is None:
            return E(root, [E("FolderHierarchy:Status", "5")])
        cls, element = TYPE_CLASSES.get(int(ftype), (None, None))
        if cls is None:
            return E(root, [E("FolderHierarchy:Status", "10")])
        try:
            f = mb.create_folder(parent, name, cls, element)
        except MailboxError:
            return E(root, [E("FolderHierarchy:Status", "2")])
        snap = r.device.hier.current().copy()
        snap.given.add(f.num)
        snap.echo[f.num] = f.cn
        new_key = r.device.hier.commit(snap, key)
        return E(root, [E("FolderHierarchy:Status", "1"), E("FolderHierarchy:SyncKey", new_key),
                        E("FolderHierarchy:ServerId", str(f.num))])


def cmd_folder_update(r, elem):
    mb, root = r.mb, "FolderHierarchy:FolderUpdate"
    with mb.lock:
        key, err = _hier_for_change(r, elem, root)
        if err:
            return err
        f = folder_by_sid(mb, text(elem, "FolderHierarchy:ServerId"))
        if f is None:
            return E(root, [E("FolderHierarchy:Status", "4")])
        if f.distinguished:
            return E(root, [E("FolderHierarchy:Status", "3")])
        pid = text(elem, "FolderHierarchy:ParentId")
        parent = mb.msgroot if pid == "0" else folder_by_sid(mb, pid) if pid is not None else f.parent
        if parent is None:
            return E(root, [E("FolderHierarchy:Status", "5")])
        name = text(elem, "FolderHierarchy:DisplayName") or f.name
        if any(c is not f and c.name.lower() == name.lower() for c in parent.children):
            return E(root, [E("FolderHierarchy:Status", "2")])
        try:
            if parent is not f.parent:
                mb.move_folder(f, parent)
            if name != f.name:
                mb.rename_folder(f, name)
        except MailboxError:
            return E(root, [E("FolderHierarchy:Status", "5" if mb.is_below(parent, f) else "2")])
        snap = r.device.hier.current().copy()
        snap.echo[f.num] = f.cn
        new_key = r.device.hier.commit(snap, key)
        return E(root, [E("FolderHierarchy:Status", "1"), E("FolderHierarchy:SyncKey", new_key)])


def cmd_folder_delete(r, elem):
    mb, root = r.mb, "FolderHierarchy:FolderDelete"
    with mb.lock:
        key, err = _hier_for_change(r, elem, root)
        if err:
            return err
        f = folder_by_sid(mb, text(elem, "FolderHierarchy:ServerId"))
        if f is None:
            return E(root, [E("FolderHierarchy:Status", "4")])
        if f.distinguished:
            return E(root, [E("FolderHierarchy:Status", "3")])
        gone = [f] + mb.descendants(f)
        mb.delete_folder(f)
        snap = r.device.hier.current().copy()
        for g in gone:
            if g.num in snap.given:
                snap.echo[g.num] = -1       # no Delete echoed for these
        new_key = r.device.hier.commit(snap, key)
        for g in gone:
            r.device.cols.pop(str(g.num), None)
        return E(root, [E("FolderHierarchy:Status", "1"), E("FolderHierarchy:SyncKey", new_key)])


# ---- Sync ------------------------------------------------------------------------------

def _changes(mb, f, snap, window, bo, now):
    """Changes of folder f after snap for a device: ([(kind, obj, content)], new Snap, more)."""
    new = snap.copy()
    out, more, last_cn = [], False, snap.cn
    cutoff = now - bo.filter_days * 86400 if bo.filter_days else None
    start = bisect.bisect_right(f.log_cn, snap.cn)
    for i in range(start, len(f.log_cn)):
        cn, ref = f.log_cn[i], f.log_ref[i]
        if isinstance(ref, Tombstone):
            if ref.num not in new.given:
                last_cn = cn
                continue
            kind = "delete"
        else:
            if not ref.alive or ref.cn != cn or ref.folder is not f:
                last_cn = cn
                continue
            if new.echo.get(ref.num) == ref.cn:
                new.given.add(ref.num)
                last_cn = cn
                continue
            if cutoff is not None and _aged(ref, cutoff):
                if ref.num in new.given:
                    kind = "softdelete"
                else:
                    last_cn = cn
                    continue
            elif ref.num not in new.given:
                kind = "add"
            else:
                kind = "change"
        if len(out) >= window:
            more = True
            break
        if kind == "add":
            new.given.add(ref.num)
        elif kind in ("delete", "softdelete"):
            new.given.discard(ref.num)
        out.append((kind, ref, kind == "change" and ref.content_cn > snap.cn))
        last_cn = cn
    if cutoff is not None and not more:
        # items the device holds that aged out of the window without a change
        aged = [it for n, it in f.items.items() if n in new.given and _aged(it, cutoff)]
        for it in aged:
            if len(out) >= window:
                more = True
                break
            new.given.discard(it.num)
            out.append(("softdelete", it, False))
    new.cn = last_cn if more else mb.counter
    if not more:
        new.echo = {}
    return out, new, more


PIM_KINDS = {"Calendar": "calendar", "Contacts": "contact", "Tasks": "task"}


def _aged(it, cutoff):
    """Whether an item is out of the FilterType window: mail by its arrival,
    a calendar item by its end (a recurring one never), contacts and tasks
    never (their classes have no date filter here)."""
    if it.pim is None:
        return it.received < cutoff
    if it.pim["kind"] == "calendar" and not it.pim.get("recurrence"):
        return it.pim["end"] < cutoff
    return False


def _client_commands(r, f, keyed, snap, commands, bo, deletes_as_moves):
    """Apply the device's Add/Change/Delete/Fetch; returns the Responses entries."""
    mb, responses = r.mb, []
    for c in children(commands):
        op = c[0].split(":")[1]
        sid = text(c, "AirSync:ServerId")
        if op == "Add":
            cid = text(c, "AirSync:ClientId") or ""
            if cid and cid in keyed.client_ids:
                responses.append(E("AirSync:Add", [E("AirSync:ClientId", cid),
                                                   E("AirSync:ServerId", keyed.client_ids[cid]),
                                                   E("AirSync:Status", "1")]))
                continue
            app = child(c, "AirSync:ApplicationData")
            kind = PIM_KINDS.get(folder_class_name(f))
            if kind is not None and app is not None:
                try:
                    it = mb.add_pim(f, pim_eas.from_app(kind, app))
                except MailboxError:
                    responses.append(E("AirSync:Add", [E("AirSync:ClientId", cid), E("AirSync:Status", "6")]))
                    continue
                snap.given.add(it.num)
                snap.echo[it.num] = it.cn
                keyed.client_ids[cid] = item_sid(it)
                responses.append(E("AirSync:Add", [E("AirSync:ClientId", cid), E("AirSync:ServerId", item_sid(it)),
                                                   E("AirSync:Status", "1")]))
                continue
            if vnum(r.version) < 16.0 or f.distinguished != "drafts" or app is None:
                responses.append(E("AirSync:Add", [E("AirSync:ClientId", cid), E("AirSync:Status", "6")]))
                continue
            mime = build_draft(app, user_address(r.server))
            it = mb.add_item(f, mime, is_read=text(app, "Email:Read") != "0", is_draft=True)
            _apply_props(mb, it, app)
            if child(app, "Email2:Send") is not None:
                _send(r, it.mime, save=True)
                mb.delete_item(it)
                responses.append(E("AirSync:Add", [E("AirSync:ClientId", cid), E("AirSync:Status", "1")]))
                continue
            snap.given.add(it.num)
            snap.echo[it.num] = it.cn
            keyed.client_ids[cid] = item_sid(it)
            responses.append(E("AirSync:Add", [E("AirSync:ClientId", cid), E("AirSync:ServerId", item_sid(it)),
                                               E("AirSync:Status", "1")]))
        elif op == "Change":
            it = item_by_sid(mb, sid, f)
            app = child(c, "AirSync:ApplicationData")
            if it is None:
                responses.append(E("AirSync:Change", [E("AirSync:ServerId", sid or ""), E("AirSync:Status", "8")]))
                continue
            if it.pim is not None:
                if app is not None:
                    try:
                        mb.change_pim(it, pim_eas.from_app(it.pim["kind"], app, it.pim))
                    except MailboxError:
                        responses.append(E("AirSync:Change", [E("AirSync:ServerId", sid), E("AirSync:Status", "6")]))
                        continue
                snap.echo[it.num] = it.cn
                continue
            if app is not None and it.is_draft and vnum(r.version) >= 16.0 and any(
                    child(app, t) is not None for t in ("Email:To", "Email:Cc", "Email2:Bcc", "Email:Subject",
                                                        "AirSyncBase:Body", "AirSyncBase:Attachments",
                                                        "Email:Importance")):
                mb.change_item(it, mime=build_draft(app, user_address(r.server), it.mime))
            _apply_props(mb, it, app)
            if app is not None and child(app, "Email2:Send") is not None and it.is_draft:
                _send(r, it.mime, save=True)
                snap.given.discard(it.num)
                mb.delete_item(it)
                continue
            snap.echo[it.num] = it.cn
        elif op == "Delete":
            it = item_by_sid(mb, sid, f)
            if it is None:
                responses.append(E("AirSync:Delete", [E("AirSync:ServerId", sid or ""), E("AirSync:Status", "8")]))
                continue
            snap.given.discard(it.num)
            trash = mb.distinguished.get("deleteditems")
            if deletes_as_moves and trash is not None and f is not trash:
                mb.move_item(it, trash)
            else:
                mb.delete_item(it)
        elif op == "Fetch":
            it = item_by_sid(mb, sid, f)
            if it is None:
                responses.append(E("AirSync:Fetch", [E("AirSync:ServerId", sid or ""), E("AirSync:Status", "8")]))
            else:
                responses.append(E("AirSync:Fetch", [E("AirSync:ServerId", sid), E("AirSync:Status", "1"),
                                                     app_data(it, bo, r.cfg, r.version)]))
    return responses


def _apply_props(mb, it, app):
    if app is None:
        return
    kw = {}
    read = text(app, "Email:Read")
    if read in ("0", "1"):
        kw["is_read"] = read == "1"
    fl = child(app, "Email:Flag")
    if fl is not None:
        kw["flag"] = FLAG_FROM_EAS.get(text(fl, "Email:FlagStatus") or "0", "NotFlagged")
    cats = child(app, "Email:Categories")
    if cats is not None:
        kw["categories"] = [text(c) for c in children(cats, "Email:Category")]
    if kw:
        mb.change_item(it, **kw)


def cmd_sync(r, elem):
    d, cfg = r.device, r.cfg
    if elem is None:                        # an empty Sync repeats the last full one
        if d.last_sync is None:
            return E("AirSync:Sync", [E("AirSync:Status", "13")])
        elem = d.last_sync
    cols = children(child(elem, "AirSync:Collections"), "AirSync:Collection")
    if not cols:
        if d.last_sync is None:
            return E("AirSync:Sync", [E("AirSync:Status", "13")])
        cols = children(child(d.last_sync, "AirSync:Collections"), "AirSync:Collection")
    d.last_sync = elem
    r.server.stats.eas_sync(len(cols))
    gw = text(elem, "AirSync:WindowSize")
    budget = min(int(gw), cfg.max_window) if gw and gw.isdigit() and int(gw) > 0 else None
    wait = text(elem, "AirSync:Wait")
    hb = text(elem, "AirSync:HeartbeatInterval")
    wait_s = int(wait) * 60 if wait and wait.isdigit() else int(hb) if hb and hb.isdigit() else 0
    if wait_s and not (cfg.min_heartbeat <= wait_s <= cfg.max_heartbeat):
        return E("AirSync:Sync", [E("AirSync:Status", "14"), E("AirSync:Limit", str(
            cfg.min_heartbeat if wait_s < cfg.min_heartbeat else cfg.max_heartbeat))])
    if any(child(c, "AirSync:Commands") is not None for c in cols):
        wait_s = 0                          # the device's changes are answered at once
    deadline = time.monotonic() + wait_s
    while True:
        out, anything = _sync_once(r, cols, budget, commit=not wait_s)
        if not wait_s:
            break
        if anything or time.monotonic() >= deadline:
            out, anything = _sync_once(r, cols, budget, commit=True)
            if not anything:
                return None             # the wait ended with nothing: an empty answer
            break
        time.sleep(0.05)
    if not anything and cfg.empty_sync:
        return None
    return E("AirSync:Sync", [E("AirSync:Collections", out)])


def _sync_once(r, cols, budget, commit):
    mb, d, cfg = r.mb, r.device, r.cfg
    out, anything = [], False
    now = time.time()
    with mb.lock:
        for c in cols:
            cid = text(c, "AirSync:CollectionId") or ""
            key = text(c, "AirSync:SyncKey") or ""
            f = folder_by_sid(mb, cid)
            head = [E("AirSync:SyncKey", key), E("AirSync:CollectionId", cid)]
            if vnum(r.version) < 12.1 or text(c, "AirSync:Class"):
                head.insert(0, E("AirSync:Class", folder_class_name(f) if f else text(c, "AirSync:Class")))
            if f is None:
                out.append(E("AirSync:Collection", head + [E("AirSync:Status", "12")]))
                anything = True
                continue
            keyed = d.cols.get(cid)
            opts = child(c, "AirSync:Options")
            if key == "0":
                if not commit:
                    anything = True
                    continue
                keyed = d.cols[cid] = Keyed()
                keyed.options = opts
                new_key = keyed.commit(Snap(0, set(), {}, mb.epoch, mb.instance), None)
                out.append(E("AirSync:Collection", [h for h in head if h[0] == "AirSync:Class"] + [
                    E("AirSync:SyncKey", new_key), E("AirSync:CollectionId", cid), E("AirSync:Status", "1")]))
                anything = True
                continue
            snap = keyed.get(key, mb) if keyed is not None else None
            if snap is None:
                if commit:
                    d.cols.pop(cid, None)
                out.append(E("AirSync:Collection", [E("AirSync:SyncKey", "0"), E("AirSync:CollectionId", cid),
                                                    E("AirSync:Status", "3")]))
                anything = True
                continue
            if opts is not None and commit:
                keyed.options = opts
            bo = BodyOptions(opts if opts is not None else keyed.options)
            snap = snap.copy()
            responses = []
            commands = child(c, "AirSync:Commands")
            if commands is not None and commit:
                dam = text(c, "AirSync:DeletesAsMoves")
                responses = _client_commands(r, f, keyed, snap, commands, bo, dam != "0")
            gc = child(c, "AirSync:GetChanges")
            get_changes = gc is None or text(gc) in ("", "1")
            win = text(c, "AirSync:WindowSize")
            window = min(int(win), cfg.max_window) if win and win.isdigit() and int(win) > 0 else DEFAULT_WINDOW
            if budget is not None:
                window = min(window, budget)
            changes, more = [], False
            new = snap
            if get_changes:
                changes, new, more = _changes(mb, f, snap, window, bo, now)
                if budget is not None:
                    budget -= len(changes)
            if not changes and not responses and commands is None and not more:
                if commit and new.cn != snap.cn:
                    keyed.snaps[key] = new          # same key, later watermark
                continue
            anything = True
            if not commit:
                continue
            new_key = keyed.commit(new, key)
            body = [E("AirSync:SyncKey", new_key), E("AirSync:CollectionId", cid), E("AirSync:Status", "1")]
            if vnum(r.version) < 12.1 or text(c, "AirSync:Class"):
                body.insert(0, E("AirSync:Class", folder_class_name(f)))
            if more:
                body.append(E("AirSync:MoreAvailable"))
            cmds = []
            for kind, obj, content in changes:
                if kind == "add":
                    cmds.append(E("AirSync:Add", [E("AirSync:ServerId", item_sid(obj)),
                                                  app_data(obj, bo, r.cfg, r.version)]))
                elif kind == "change":
                    cmds.append(E("AirSync:Change", [E("AirSync:ServerId", item_sid(obj)),
                                                     change_data(obj, bo, r.cfg, r.version, content)]))
                elif kind == "delete":
                    cmds.append(E("AirSync:Delete", [E("AirSync:ServerId", f"{f.num}:{obj.num}")]))
                else:
                    cmds.append(E("AirSync:SoftDelete", [E("AirSync:ServerId", f"{f.num}:{obj.num}")]))
            if cmds:
                body.append(E("AirSync:Commands", cmds))
            if responses:
                body.append(E("AirSync:Responses", responses))
            out.append(E("AirSync:Collection", body))
    return out, anything


# ---- Ping ------------------------------------------------------------------------------

def _pending(mb, d, f):
    """Whether folder f has changes the device has not synced."""
    keyed = d.cols.get(str(f.num))
    snap = keyed.current() if keyed is not None else None
    cn = snap.cn if snap is not None else 0
    echo = snap.echo if snap is not None else {}
    given = snap.given if snap is not None else set()
    for i in range(bisect.bisect_right(f.log_cn, cn), len(f.log_cn)):
        ref = f.log_ref[i]
        if isinstance(ref, Tombstone):
            if ref.num in given:
                return True
            continue
        if ref.alive and ref.cn == f.log_cn[i] and ref.folder is f and echo.get(ref.num) != ref.cn:
            return True
    return False


def cmd_ping(r, elem):
    mb, d, cfg = r.mb, r.device, r.cfg
    if elem is None:
        if d.last_ping is None:
            return E("Ping:Ping", [E("Ping:Status", "3")])
        hb, fids = d.last_ping
    else:
        hbt = text(elem, "Ping:HeartbeatInterval")
        folders = children(child(elem, "Ping:Folders"), "Ping:Folder")
        if d.last_ping is None and (hbt is None or not folders):
            return E("Ping:Ping", [E("Ping:Status", "3")])
        if hbt is not None and not hbt.isdigit():
            return E("Ping:Ping", [E("Ping:Status", "4")])
        hb = int(hbt) if hbt is not None else d.last_ping[0]
        fids = [text(x, "Ping:Id") for x in folders] if folders else d.last_ping[1]
    if hb < cfg.min_heartbeat or hb > cfg.max_heartbeat:
        return E("Ping:Ping", [E("Ping:Status", "5"), E("Ping:HeartbeatInterval", str(
            cfg.min_heartbeat if hb < cfg.min_heartbeat else cfg.max_heartbeat))])
    if len(fids) > cfg.max_folders:
        return E("Ping:Ping", [E("Ping:Status", "6"), E("Ping:MaxFolders", str(cfg.max_folders))])
    with mb.lock:
        if any(folder_by_sid(mb, x) is None for x in fids):
            return E("Ping:Ping", [E("Ping:Status", "7")])
    d.last_ping = (hb, fids)
    deadline = time.monotonic() + hb
    while True:
        with mb.lock:
            changed = []
            for x in fids:
                f = folder_by_sid(mb, x)
                if f is None:
                    return E("Ping:Ping", [E("Ping:Status", "7")])
                if _pending(mb, d, f):
                    changed.append(x)
        if changed:
            return E("Ping:Ping", [E("Ping:Status", "2"),
                                   E("Ping:Folders", [E("Ping:Folder", x) for x in changed])])
        if time.monotonic() >= deadline:
            return E("Ping:Ping", [E("Ping:Status", "1")])
        time.sleep(0.05)


# ---- ItemOperations, SendMail, MoveItems, ResolveRecipients ---------------------------------

def cmd_item_operations(r, elem):
    """Fetch elements counted in the stats as GetItem ids (get_item_ids, _max, _peak) and
    charged item_cost each, like the ids of a GetItem."""
    fetches = [op for op in children(elem) if op[0] == "ItemOperations:Fetch"]
    stats = r.server.stats
    stats.get_item(len(fetches), 1)
    try:
        if r.server.item_cost_ms:
            time.sleep(len(fetches) * r.server.item_cost_ms / 1000)
        return _item_operations(r, elem, len(fetches))
    finally:
        stats.get_item(len(fetches), -1)


def _item_operations(r, elem, n_fetch):
    mb, out, first_cid = r.mb, [], None
    with mb.lock:
        for op in children(elem):
            if op[0] != "ItemOperations:Fetch":
                out.append(E(op[0], [E("ItemOperations:Status", "2")]))
                continue
            bo = BodyOptions(child(op, "ItemOperations:Options"))
            cid = text(op, "AirSync:CollectionId")
            if first_cid is None:
                first_cid = cid
            if r.cfg.fetch_first_collection:
                cid = first_cid         # SOGo's quirk
            sid = text(op, "AirSync:ServerId")
            ref = text(op, "AirSyncBase:FileReference")
            if text(op, "ItemOperations:Store") not in ("Mailbox", None):
                out.append(E("ItemOperations:Fetch", [E("ItemOperations:Status", "9")]))
                continue
            if ref is not None:
                out.append(_fetch_attachment(mb, ref))
                continue
            f = folder_by_sid(mb, cid)
            it = item_by_sid(mb, sid, f) if f is not None else None
            ids = [E("AirSync:CollectionId", cid or ""), E("AirSync:ServerId", sid or "")]
            if it is None:
                if n_fetch > 1 and r.cfg.fetch_gone == "http501":
                    return 501          # SOGo: one item gone fails the whole request
                if r.cfg.fetch_gone == "http500":
                    return 500
                out.append(E("ItemOperations:Fetch", [E("ItemOperations:Status", "6")] + ids))
                continue
            out.append(E("ItemOperations:Fetch", [E("ItemOperations:Status", "1")] + ids + [
                E("AirSync:Class", folder_class_name(it.folder)), app_data(it, bo, r.cfg, r.version, "ItemOperations:Properties")]))
    return E("ItemOperations:ItemOperations", [E("ItemOperations:Status", "1"), E("ItemOperations:Response", out)])


def _fetch_attachment(mb, ref):
    sid, _, idx = ref.rpartition(":")
    it = item_by_sid(mb, sid)
    parts = dict(attachments_of(it)) if it is not None and idx.isdigit() else {}
    p = parts.get(int(idx)) if idx.isdigit() else None
    if p is None:
        return E("ItemOperations:Fetch", [E("ItemOperations:Status", "15"), E("AirSyncBase:FileReference", ref)])
    data = p.get_payload(decode=True) or b""
    return E("ItemOperations:Fetch", [E("ItemOperations:Status", "1"), E("AirSyncBase:FileReference", ref),
                                      E("ItemOperations:Properties", [
                                          E("AirSyncBase:ContentType", p.get_content_type()),
                                          E("ItemOperations:Range", f"0-{max(len(data) - 1, 0)}"),
                                          E("ItemOperations:Total", str(len(data))),
                                          E("ItemOperations:Data", data)])])


def _send(r, mime, save):
    mb = r.mb
    recipients = mime_recipients(mime)
    saved_id = None
    if save:
        it = mb.add_item(mb.distinguished["sentitems"], mime, is_read=True, is_draft=False)
        saved_id = it.id
    transmit(mb, mime, recipients, {}, "EAS SendMail", saved_id)


def cmd_send_mail(r, elem):
    mb, d = r.mb, r.device
    if elem is None:                        # 12.1 and older: the MIME is the body
        mime, client_id = r.body, None
        save = r.h.path.find("SaveInSent=T") >= 0
    else:
        mime = wbxml.raw(elem, "ComposeMail:Mime")
        client_id = text(elem, "ComposeMail:ClientId")
        save = child(elem, "ComposeMail:SaveInSentItems") is not None
        if mime is None or not client_id:
            return E("ComposeMail:SendMail", [E("ComposeMail:Status", "103")])
    if client_id and client_id in d.sent_client_ids:
        return E("ComposeMail:SendMail", [E("ComposeMail:Status", "118")])
    if not mime or not mime_recipients(mime):
        return E("ComposeMail:SendMail", [E("ComposeMail:Status", "107")])
    with mb.lock:
        _send(r, mime, save)
    if client_id:
        d.sent_client_ids.add(client_id)
    return None


def cmd_move_items(r, elem):
    mb, d, out = r.mb, r.device, []
    with mb.lock:
        for mv in children(elem, "Move:Move"):
            src_id = text(mv, "Move:SrcMsgId") or ""
            src_f = folder_by_sid(mb, text(mv, "Move:SrcFldId"))
            dst = folder_by_sid(mb, text(mv, "Move:DstFldId"))
            it = item_by_sid(mb, src_id, src_f) if src_f is not None else None
            resp = [E("Move:SrcMsgId", src_id)]
            if it is None:
                out.append(E("Move:Response", resp + [E("Move:Status", "1")]))
            elif dst is None:
                out.append(E("Move:Response", resp + [E("Move:Status", "2")]))
            elif dst is src_f:
                out.append(E("Move:Response", resp + [E("Move:Status", "4")]))
            else:
                new = mb.move_item(it, dst)
                ks = d.cols.get(str(src_f.num))
                if ks is not None and ks.current() is not None:
                    ks.current().given.discard(it.num)
                kd = d.cols.get(str(dst.num))
                if kd is not None and kd.current() is not None:
                    kd.current().given.add(new.num)
                    kd.current().echo[new.num] = new.cn
                out.append(E("Move:Response", resp + [E("Move:Status", "3"), E("Move:DstMsgId", item_sid(new))]))
    return E("Move:MoveItems", out)


def cmd_resolve_recipients(r, elem):
    mb = r.mb
    opts = child(elem, "ResolveRecipients:Options")
    max_amb = text(opts, "ResolveRecipients:MaxAmbiguousRecipients")
    max_amb = int(max_amb) if max_amb and max_amb.isdigit() else 20
    avail = child(opts, "ResolveRecipients:Availability") if opts is not None else None
    out = []
    for to in children(elem, "ResolveRecipients:To"):
        with mb.lock:
            hits = directory.resolve(mb, text(to))
        st = "1" if len(hits) == 1 else "2" if hits else "4"
        entries = [E("ResolveRecipients:Recipient", [E("ResolveRecipients:Type", "1"),
                                                     E("ResolveRecipients:DisplayName", n),
                                                     E("ResolveRecipients:EmailAddress", a)]
                     + ([_availability(r, a, avail)] if avail is not None else []))
                   for n, a in hits[:max_amb]]
        out.append(E("ResolveRecipients:Response", [E("ResolveRecipients:To", text(to) or ""),
                                                     E("ResolveRecipients:Status", st),
                                                     E("ResolveRecipients:RecipientCount", str(len(hits)))] + entries))
    return E("ResolveRecipients:ResolveRecipients", [E("ResolveRecipients:Status", "1")] + out)


def _availability(r, addr, avail):
    """MergedFreeBusy (one digit per 30 minutes) of the mailbox owner; status
    163 (no free/busy data) for anyone else, as the test directory has no
    other calendars."""
    mb = r.mb
    try:
        lo = pim_eas.parse_time(text(avail, "ResolveRecipients:StartTime"))
        hi = pim_eas.parse_time(text(avail, "ResolveRecipients:EndTime"))
    except MailboxError:
        return E("ResolveRecipients:Availability", [E("ResolveRecipients:Status", "5")])
    cal = mb.distinguished.get("calendar")
    if addr.lower() != user_address(r.server).lower() or cal is None or hi <= lo or hi - lo > 62 * 86400:
        return E("ResolveRecipients:Availability", [E("ResolveRecipients:Status", "163")])
    with mb.lock:
        merged = pim.merged_free_busy(list(cal.items.values()), lo, hi)
    return E("ResolveRecipients:Availability", [E("ResolveRecipients:Status", "1"),
                                                E("ResolveRecipients:MergedFreeBusy", merged)])
