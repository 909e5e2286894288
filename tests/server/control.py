# The control interface of the test EWS server (/control/..., JSON, loopback
# only, no auth): tests read the mailbox as the server sees it, make
# server-side changes (deliver, delete, move, mark read, folder changes), arm
# faults that the next EWS requests will hit, and steer notifications
# (subscriptions, keep-alive interval, dropped streams). harness.py is the client.
#
#   GET  mailbox[?mime=0]  {folders:[{id,parent_id,name,path,path_parts,folder_class,...}],
#                           items:[{id,folder_id,folder_path,subject,mime_b64,size,is_read,is_draft,
#                                   flag,categories,token,ext,change_key,...}]}
#   GET  item?id=          raw MIME           GET item_info?id=   item fields, no MIME
#   GET  folder?path=      folder + item ids  GET find?text=      {ids} whose MIME has text
#   GET  items?path=[&subject=]  [item_info] of a folder, newest first (only that subject)
#   GET  find_token?token=[&path=]  {ids} of items carrying the exchangefs token
#   GET  sent              {sent:[{mime,mime_b64,recipients,token,time,operation,saved_id,...}]}
#   GET  dumpster[?path=]  {items:[item_info + deleted_from]} soft-deleted items
#   GET  markers           {"invoice 4711": [id], ...}            GET stats
#   POST deliver {folder_path, subject?, body?, mime_b64?, is_read?, received?, size?} -> {id}
#   POST delete {id} | move {id, to_path} -> {new_id} | mark_read {id, read} | update_item {id, subject}
#   POST set_flag {id, status} | set_categories {id, categories} | set_received {id, received}
#        -> {change_key}
#   POST create_folder {parent_path, name} -> {id} | rename_folder {path, new_name}
#   POST move_folder {path, to_path} | delete_folder {path}
#   POST fault {kind, count, operation?, ms?, backoff_ms?, retry_after?, where?} | clear_faults
#   POST reset_stats | clear_sent
# ActiveSync (eas.py): POST eas_config {versions?, provision?, policy?, min_heartbeat?, max_heartbeat?,
#   max_folders?, empty_sync?, string_data?, max_window?, fetch_gone?,
#   fetch_first_collection?} -> the whole config; GET eas_devices
#   {config, devices:[{id, type, policy_key, revoked, hierarchy_key, collections}]}. Faults hit EAS
#   commands by their Cmd name; kind "reprovision" (EAS only) answers 449 and revokes policy keys.
#   POST item_cost {ms}    GetItem sleeps ms per id it is asked for (as a server's work per
#                          item; concurrent calls overlap); GET stats then also has get_item_ids
#                          (ids GetItem worked on), get_item_max (most in one call), get_item_peak
#                          (most GetItem calls at once); on EAS the same for ItemOperations and
#                          its Fetch elements; and eas_sync_collections_max (most folders in
#                          one ActiveSync Sync)
#   POST workers {n}       at most n requests (EWS operations, ActiveSync commands but Ping) worked
#                          on at once, the others wait: a server whose CPU is the limit; 0: no limit
# Notifications (notify.py):
#   POST notify_config {keepalive_s?, subscription_expiry_s?, minute_s?, split_chunks?, event_log_limit?,
#                       refuse?: "streaming"|"all"|"quota"|null} -> the whole config
#   GET  subscriptions     {subscriptions:[{id,kind,all_folders,folders,folder_paths,event_types,queued,
#                           missed,connected,streams,idle_s,age_s,timeout_min?,watermark?}],
#                           streams, config, last_watermark, events}
#   POST drop_streams      reset every open GetStreamingEvents connection (no Closed) -> {dropped}
#   POST expire_subscriptions  forget every subscription, as a restart would (streams reset too)
#                          -> {dropped, forgotten}
# Paths are "Inbox/Projects" below msgfolderroot; a folder id works too.
# Errors: 400 bad input, 404 unknown item/folder, 409 refused by the mailbox.

import base64
import binascii
import json
import os
import threading
import time
from collections import deque

from generate import address, header_text, rfc2822_date
import props
from mailbox import MailboxError

# reset_after: the operation is carried out, then the connection is dropped unanswered.
FAULT_KINDS = {"http500", "http503", "http429", "reset", "reset_after", "truncate", "slow", "busy", "auth",
               "garbage", "invalid_sync", "reprovision",   # reprovision: EAS only (449, policy keys revoked)
               "incomplete"}                                # incomplete: EAS only (Sync status 13)


class ControlError(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


class Faults:
    """Armed faults; each hits the next `count` EWS requests that match."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = []               # dicts, protected by self.lock

    def arm(self, spec):
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ControlError(400, f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        f = {"kind": kind, "count": int(spec.get("count", 1)), "operation": spec.get("operation"),
             "ms": int(spec.get("ms", 1000)), "backoff_ms": int(spec.get("backoff_ms", 1000)),
             "retry_after": int(spec.get("retry_after", 1)), "where": spec.get("where", "fault")}
        with self.lock:
            self.pending.append(f)
        return f

    def take(self, operation):
        """The first armed fault matching this operation (its count used up by one), or None."""
        with self.lock:
            for f in self.pending:
                if f["count"] > 0 and f["operation"] in (None, operation):
                    f["count"] -= 1
                    if f["count"] == 0:
                        self.pending.remove(f)
                    return dict(f)
        return None

    def clear(self):
        with self.lock:
            self.pending.clear()

    def snapshot(self):
        with self.lock:
            return [dict(f) for f in self.pending]


class Stats:
    """Request counters, per-operation counts, connections, recent requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = {}          # operation -> count
            self.statuses = {}          # HTTP status -> count
            self.ews_connections = set()
            self.connections = 0        # accepted since reset (any path)
            self.recent = deque(maxlen=2000)
            self.get_item_ids = 0       # item ids GetItem was asked for
            self.get_item_max = 0       # most ids in one GetItem
            self.get_item_active = 0    # GetItem calls being answered now ...
            self.get_item_peak = 0      # ... and the most at once
            self.eas_sync_collections_max = 0   # most folders in one ActiveSync Sync

    def get_item(self, n, delta):
        """A GetItem of n ids starts (delta 1) or ends (delta -1)."""
        with self.lock:
            if delta > 0:
                self.get_item_ids += n
                self.get_item_max = max(self.get_item_max, n)
            self.get_item_active += delta
            self.get_item_peak = max(self.get_item_peak, self.get_item_active)

    def eas_sync(self, n):
        """An ActiveSync Sync of n collections."""
        with self.lock:
            self.eas_sync_collections_max = max(self.eas_sync_collections_max, n)

    def connection(self):
        with self.lock:
            self.connections += 1

    def record(self, conn_id, op, status, fault=None, t0=None):
        with self.lock:
            self.requests[op] = self.requests.get(op, 0) + 1
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            self.ews_connections.add(conn_id)
            self.recent.append({"t": t0 or time.time(), "end": time.time(), "op": op, "conn": conn_id,
                                "status": status, "fault": fault})

    def snapshot(self):
        with self.lock:
            return {"requests": dict(self.requests), "total": sum(self.requests.values()),
                    "statuses": dict(self.statuses), "connections": len(self.ews_connections),
                    "connections_accepted": self.connections, "recent": list(self.recent),
                    "get_item_ids": self.get_item_ids, "get_item_max": self.get_item_max,
                    "get_item_peak": self.get_item_peak,
                    "eas_sync_collections_max": self.eas_sync_collections_max}


# ---- handlers ----------------------------------------------------------------------

def _folder(mb, path):
    f = mb.folder_by_path(path) if isinstance(path, str) else None
    if f is None:
        raise ControlError(404, f"no folder {path!r}")
    return f


def _item(mb, iid):
    it = mb.items.get(iid) if isinstance(iid, str) else None
    if it is None:
        raise ControlError(404, f"no item {iid!r}")
    return it


def folder_info(mb, f):
    return {"id": f.id, "parent_id": f.parent.id if f.parent else None, "name": f.name,
            "path": "/".join(mb.folder_path(f)), "path_parts": mb.folder_path(f),
            "folder_class": f.folder_class, "element": f.element, "distinguished": f.distinguished,
            "change_key": f.change_key, "total": len(f.items), "unread": f.unread,
            "child_folder_count": len(f.children)}


def ext_info(key, value):
    return {"set": key[0], "prop": key[1], "type": key[2], "value": value}


def item_info(it, with_mime, mb=None):
    d = {"id": it.id, "change_key": it.change_key, "folder_id": it.folder.id, "subject": it.subject,
         "from_name": it.from_name, "from_addr": it.from_addr, "received": it.received,
         "received_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(it.received)),
         "sent": it.sent, "size": it.size, "mime_len": len(it.mime), "is_read": it.is_read,
         "item_class": it.item_class, "has_attachments": it.has_attachments,
         "message_id": it.message_id, "is_draft": it.is_draft, "flag": it.flag,
         "categories": list(it.categories), "token": it.ext.get(props.TOKEN_KEY),
         "ext": [ext_info(k, v) for k, v in sorted(it.ext.items())], "to": it.to, "cc": it.cc,
         "pim": it.pim}
    if mb is not None:
        d["folder_path"] = "/".join(mb.folder_path(it.folder))
    if with_mime:
        d["mime_b64"] = base64.b64encode(it.mime).decode("ascii")
    return d


def dump(mb, with_mime=True):
    folders = [mb.root] + mb.descendants(mb.root)
    return {"folders": [folder_info(mb, f) for f in folders],
            "items": [item_info(it, with_mime, mb) for f in folders for it in mb.items_sorted(f)],
            "counter": mb.counter, "epoch": mb.epoch, "sent": list(mb.sent),
            "dumpster": [dumpster_info(mb, it) for it in mb.dumpster]}


def dumpster_info(mb, it):
    return dict(item_info(it, False), deleted_from="/".join(mb.folder_path(it.folder)))


def sent_info(rec):
    mime = base64.b64decode(rec["mime_b64"])
    return dict(rec, mime=mime.decode("utf-8", "replace"))


def build_mime(subject, body, sender=("Test Sender", "sender@example.com")):
    now = int(time.time())
    mid = f"<{os.urandom(8).hex()}@example.com>"
    text = body if body is not None else "Delivered by the test control API.\r\n"
    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    charset, cte = ("us-ascii", "7bit") if text.isascii() else ("utf-8", "8bit")
    head = (f"From: {address(*sender)}\r\nTo: Alice Example <alice@example.com>\r\n"
            + (f"Subject: {header_text(subject)}\r\n" if subject is not None else "")
            + f"Date: {rfc2822_date(now)}\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
    return (head + text).encode()


def handle(server, method, path, query, body):
    """Run one control request. Returns (status, content_type, bytes)."""
    mb = server.mailbox
    try:
        req = json.loads(body or b"{}") if method == "POST" else {}
        if not isinstance(req, dict):
            raise ControlError(400, "JSON object expected")
    except ValueError as e:
        return _json(400, {"error": f"bad JSON: {e}"})
    try:
        with mb.lock:
            result = _route(server, mb, method, path, query, req)
    except ControlError as e:
        return _json(e.status, {"error": str(e)})
    except MailboxError as e:
        return _json(409, {"error": e.text, "code": e.code})
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        return _json(400, {"error": f"bad request: {e!r}"})
    if isinstance(result, bytes):
        return 200, "message/rfc822", result
    return _json(200, result)


def _json(status, obj):
    return status, "application/json", json.dumps(obj).encode()


def _route(server, mb, method, path, q, req):
    name = path[len("/control/"):]
    if method == "GET":
        if name == "mailbox":
            return dump(mb, q.get("mime", "1") not in ("0", "false", "no"))
        if name == "item":
            return _item(mb, q.get("id")).mime
        if name == "item_info":
            return item_info(_item(mb, q.get("id")), False, mb)
        if name == "items":
            f = _folder(mb, q.get("path") or q.get("id"))
            subject = q.get("subject")
            return [item_info(it, False, mb) for it in mb.items_sorted(f)
                    if subject is None or it.subject == subject]
        if name == "find_token":
            f = _folder(mb, q["path"]) if q.get("path") else None
            return {"ids": [it.id for it in mb.items.values() if it.ext.get(props.TOKEN_KEY) == q["token"]
                            and (f is None or it.folder is f)]}
        if name == "sent":
            return {"sent": [sent_info(r) for r in mb.sent]}
        if name == "dumpster":
            f = _folder(mb, q["path"]) if q.get("path") else None
            return {"items": [dumpster_info(mb, it) for it in mb.dumpster if f is None or it.folder is f]}
        if name == "folder":
            f = _folder(mb, q.get("path") or q.get("id"))
            return dict(folder_info(mb, f), items=[it.id for it in mb.items_sorted(f)])
        if name == "find":
            needle = q.get("text", "").encode()
            if not needle:
                raise ControlError(400, "text= is required")
            return {"ids": [it.id for it in mb.items.values() if needle in it.mime]}
        if name == "markers":
            return mb.markers
        if name == "stats":
            return dict(server.stats.snapshot(), faults=server.faults.snapshot())
        if name == "eas_devices":
            import eas
            return eas.control(server, name, q)
        if name == "subscriptions":
            return mb.hub.describe(lambda fid: "/".join(mb.folder_path(mb.folders[fid]))
                                   if fid in mb.folders else None)
        raise ControlError(404, f"unknown control endpoint GET {path}")
    if method != "POST":
        raise ControlError(405, "GET or POST")
    if name == "deliver":
        f = _folder(mb, req.get("folder_path", "Inbox"))
        if req.get("mime_b64") is not None:
            mime = base64.b64decode(req["mime_b64"], validate=True)
        else:
            mime = build_mime(req.get("subject", "Test message"), req.get("body"))
        it = mb.deliver(f, mime, is_read=bool(req.get("is_read", False)), received=req.get("received"),
                        item_class=req.get("item_class", "IPM.Note"), size=req.get("size"))
        return {"id": it.id, "change_key": it.change_key}
    if name == "pim_add":               # a calendar item, contact or task (pim.py canonical dict)
        import pim
        p = dict(req["pim"])
        kind = p.get("kind")
        base = {"calendar": pim.new_event, "contact": pim.new_contact, "task": pim.new_task}.get(kind)
        if base is None:
            raise ControlError(400, f"unknown kind {kind!r}")
        p = base(**p)
        if kind == "calendar" and ("start" not in p or "end" not in p):
            raise ControlError(400, "a calendar item needs start and end")
        f = _folder(mb, req["folder_path"]) if req.get("folder_path") else mb.distinguished.get(pim.KIND_FOLDER[kind])
        if f is None:
            raise ControlError(404, "no folder for that kind (start the server with --pim)")
        it = mb.add_pim(f, p)
        return {"id": it.id, "change_key": it.change_key}
    if name == "pim_change":            # {"id", "set": {field: value}}: a server-side edit
        it = _item(mb, req["id"])
        if it.pim is None:
            raise ControlError(400, "not a calendar item, contact or task")
        mb.change_pim(it, dict(it.pim, **req["set"]))
        return {"change_key": it.change_key}
    if name == "delete":
        mb.delete_item(_item(mb, req["id"]))
        return {"ok": True}
    if name == "move":
        it = mb.move_item(_item(mb, req["id"]), _folder(mb, req["to_path"]))
        return {"new_id": it.id, "change_key": it.change_key}
    if name == "mark_read":
        it = _item(mb, req["id"])
        mb.set_read(it, bool(req.get("read", True)))
        return {"change_key": it.change_key}
    if name == "update_item":
        it = _item(mb, req["id"])
        mb.update_item(it, str(req["subject"]))
        return {"change_key": it.change_key}
    if name == "set_flag":
        it = _item(mb, req["id"])
        if req.get("status") not in ("NotFlagged", "Flagged", "Complete"):
            raise ControlError(400, "status is NotFlagged, Flagged or Complete")
        mb.change_item(it, flag=req["status"])
        return {"change_key": it.change_key}
    if name == "set_received":
        it = _item(mb, req["id"])
        mb.change_item(it, received=int(req["received"]))
        return {"change_key": it.change_key}
    if name == "set_categories":
        it = _item(mb, req["id"])
        cats = req.get("categories")
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise ControlError(400, "categories is a list of strings")
        mb.change_item(it, categories=cats)
        return {"change_key": it.change_key}
    if name == "clear_sent":
        mb.clear_sent()
        return {"ok": True}
    if name == "rename_folder":
        mb.rename_folder(_folder(mb, req["path"]), str(req["new_name"]))
        return {"ok": True}
    if name == "create_folder":
        f = mb.create_folder(_folder(mb, req.get("parent_path", "")), str(req["name"]),
                             req.get("folder_class", "IPF.Note"), req.get("element", "Folder"))
        return {"id": f.id}
    if name == "delete_folder":
        mb.delete_folder(_folder(mb, req["path"]))
        return {"ok": True}
    if name == "move_folder":
        mb.move_folder(_folder(mb, req["path"]), _folder(mb, req["to_path"]))
        return {"ok": True}
    if name == "fault":
        if req.get("kind") == "invalid_sync":
            mb.invalidate_sync_states()
            return {"ok": True, "epoch": mb.epoch}
        return {"ok": True, "fault": server.faults.arm(req)}
    if name == "clear_faults":
        server.faults.clear()
        return {"ok": True}
    if name == "workers":
        n = max(0, int(req.get("n", 0)))
        server.workers = threading.BoundedSemaphore(n) if n else None
        return {"ok": True, "n": n}
    if name == "item_cost":
        server.item_cost_ms = max(0, int(req.get("ms", 0)))
        return {"ok": True, "ms": server.item_cost_ms}
    if name == "reset_stats":
        server.stats.reset()
        return {"ok": True}
    if name == "eas_config":
        import eas
        return eas.control(server, name, req)
    if name == "notify_config":
        return mb.hub.configure(req)
    if name == "drop_streams":
        return mb.hub.drop_streams()
    if name == "expire_subscriptions":
        return mb.hub.drop_streams(forget=True)
    raise ControlError(404, f"unknown control endpoint POST {path}")
