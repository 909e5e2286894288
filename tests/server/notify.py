# EWS notifications of the test server (MS-OXWSNTIF): Subscribe (pull and
# streaming), GetEvents, GetStreamingEvents, Unsubscribe, and the Hub that
# keeps the mailbox's event table and the subscriptions. The mailbox hands
# every change to Hub.publish() (mailbox.py, _emit); pull subscriptions read
# the table from a watermark, streaming ones are fed over a kept-open chunked
# HTTP response (serve_stream, called by ews_server.py). What Exchange does
# and what this models is in docs/ews-subset.md ("Notifications").

import base64
import os
import select
import socket
import ssl
import threading
import time
import uuid

import soap
from mailbox import MailboxError
from ops import resolve_folder
from soap import NS_M, NS_SOAP, NS_T, error_message, esc, local, ok_message, response, schema_fault

EVENT_TYPES = ("CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "NewMailEvent",
               "FreeBusyChangedEvent")
BATCH = 50                      # events per Notification: "the first 50 events from the queue"
ITEM_CK, FOLDER_CK = "CQAAAA==", "AQAAAA=="   # Exchange's placeholder change keys in events
PRE_2010_SP1 = {"Exchange2007", "Exchange2007_SP1", "Exchange2010"}   # no streaming in their schema
HOST = b"mbx01.example.com"

DEFAULTS = {
    "keepalive_s": 45.0,            # ConnectionStatus OK while idle (the EWS Managed API's heartbeat)
    "subscription_expiry_s": 1800.0,    # a streaming subscription with no connection lives 30 min
    "minute_s": 60.0,               # what one minute of Timeout / ConnectionTimeout lasts (tests shorten it)
    "refuse": None,                 # "streaming": an Exchange 2007 / 2010 RTM; "all": a server without
                                    # notifications; "quota": one whose policy allows no subscription
    "split_chunks": False,          # send each envelope as two HTTP chunks (cut mid-element)
    "event_log_limit": 50000,       # events kept; older watermarks are invalid, slower streams miss events
}

NOT_FOUND = "The specified subscription was not found."
INVALID_WATERMARK = "Watermark is invalid."


def now_iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Subscription:
    __slots__ = ("id", "kind", "folders", "types", "pos", "timeout_min", "last", "stream", "missed", "created")

    def __init__(self, sid, kind, folders, types, pos, timeout_min=None):
        self.id, self.kind, self.folders, self.types = sid, kind, folders, types
        self.pos = pos                  # last event seq handed to the client
        self.timeout_min = timeout_min  # pull: minutes without GetEvents before it expires
        self.last = self.created = time.monotonic()   # last GetEvents, or last stream closed
        self.stream = None              # the Stream feeding it (streaming)
        self.missed = False             # events it never got fell out of the table

    def matches(self, ev):
        if ev["kind"] not in self.types:
            return False
        if self.folders is None:
            return True
        return (ev["parent"] in self.folders or ev["old_parent"] in self.folders
                or (ev["folder"] and ev["kind"] == "ModifiedEvent" and ev["id"] in self.folders))


class Stream:
    """One open GetStreamingEvents response."""

    def __init__(self, subs, deadline):
        self.subs = list(subs)
        self.deadline = deadline        # monotonic time of the ConnectionStatus Closed ending
        self.abort = False              # drop_streams / expire_subscriptions: reset, no goodbye
        self.errors = []                # (code, text, [subscription ids]) to send
        self.conn_id = None


class Hub:
    """The mailbox's event table and subscriptions. Lock order: Mailbox.lock,
    then Hub.cond; a stream never takes the mailbox lock."""

    def __init__(self):
        self.cond = threading.Condition()
        self.instance = os.urandom(16)      # watermarks of another server run are invalid
        self.seq = 0                        # last event number handed out
        self.log = []                       # events (dicts), seq ascending and consecutive
        self.subs = {}                      # id -> Subscription
        self.streams = set()
        self.config = dict(DEFAULTS)

    # ---- events ----------------------------------------------------------------------

    def publish(self, events):
        if not events:
            return
        t = time.time()
        with self.cond:
            for ev in events:
                self.seq += 1
                self.log.append(dict(ev, seq=self.seq, time=t))
            limit = int(self.config["event_log_limit"])
            if len(self.log) > limit:
                dropped = self.log[:len(self.log) - limit]
                del self.log[:len(dropped)]
                for sub in self.subs.values():      # a stream that never got one of them missed it
                    if sub.kind == "streaming" and sub.pos < dropped[-1]["seq"]:
                        if any(e["seq"] > sub.pos and sub.matches(e) for e in dropped):
                            sub.missed = True
                        sub.pos = max(sub.pos, dropped[-1]["seq"])
            self.cond.notify_all()

    def first_seq(self):
        return self.log[0]["seq"] if self.log else self.seq + 1

    def pending(self, sub, after, limit):
        """(events matching sub after seq `after`, at most limit; more left?)"""
        out = []
        for ev in self.log[max(0, after + 1 - self.first_seq()):]:
            if sub.matches(ev):
                if len(out) == limit:
                    return out, True
                out.append(ev)
        return out, False

    def watermark(self, seq):
        return base64.b64encode(b"\x01\x00\x00\x00" + self.instance + seq.to_bytes(8, "little") + b"\x01").decode()

    def seq_of(self, wm):
        """The event number a watermark names, or None if it is not valid here."""
        try:
            raw = base64.b64decode((wm or "").strip(), validate=True)
        except ValueError:
            return None
        if len(raw) != 29 or raw[:4] != b"\x01\x00\x00\x00" or raw[4:20] != self.instance:
            return None
        seq = int.from_bytes(raw[20:28], "little")
        return seq if self.first_seq() - 1 <= seq <= self.seq else None

    # ---- subscriptions -----------------------------------------------------------------

    def purge(self):
        """Forget subscriptions that expired (caller holds cond)."""
        now, minute = time.monotonic(), float(self.config["minute_s"])
        for sub in list(self.subs.values()):
            if sub.stream is not None:
                continue
            life = sub.timeout_min * minute if sub.kind == "pull" else float(self.config["subscription_expiry_s"])
            if now - sub.last > life:
                del self.subs[sub.id]

    def new_id(self):
        return base64.b64encode(bytes([len(HOST), 0]) + HOST + b"\x10\x00\x00\x00" + uuid.uuid4().bytes
                                + int(time.time() * 1e7).to_bytes(8, "little")).decode()

    def remove(self, sub):
        """Unsubscribe: a stream that fed only this subscription ends (Closed)."""
        self.subs.pop(sub.id, None)
        st = sub.stream
        if st is not None and sub in st.subs:
            st.subs.remove(sub)
        sub.stream = None
        self.cond.notify_all()

    def configure(self, req):
        for key, value in req.items():
            if key not in DEFAULTS:
                raise ValueError(f"unknown notify_config key {key!r}; known: {sorted(DEFAULTS)}")
            if key == "refuse":
                if value not in (None, "streaming", "all", "quota"):
                    raise ValueError("refuse is null, \"streaming\", \"all\" or \"quota\"")
            elif key == "split_chunks":
                value = bool(value)
            elif key == "event_log_limit":
                value = int(value)
                if value < 1:
                    raise ValueError("event_log_limit must be at least 1")
            else:
                value = float(value)
                if value <= 0:
                    raise ValueError(f"{key} must be positive")
            self.config[key] = value
        with self.cond:
            self.cond.notify_all()
        return dict(self.config)

    def describe(self, folder_path=None):
        with self.cond:
            self.purge()
            now, out = time.monotonic(), []
            for sub in self.subs.values():
                queued = len(self.pending(sub, sub.pos, 1 << 30)[0]) if not sub.missed else None
                d = {"id": sub.id, "kind": sub.kind, "all_folders": sub.folders is None,
                     "folders": None if sub.folders is None else sorted(sub.folders),
                     "event_types": sorted(sub.types), "queued": queued, "missed": sub.missed,
                     "connected": sub.stream is not None, "streams": int(sub.stream is not None),
                     "idle_s": 0.0 if sub.stream is not None else round(now - sub.last, 3),
                     "age_s": round(now - sub.created, 3)}
                if folder_path is not None and sub.folders is not None:
                    d["folder_paths"] = sorted(folder_path(f) for f in sub.folders)
                if sub.kind == "pull":
                    d["timeout_min"] = sub.timeout_min
                    d["watermark"] = self.watermark(sub.pos)
                out.append(d)
            return {"subscriptions": out, "streams": len(self.streams), "config": dict(self.config),
                    "last_watermark": self.watermark(self.seq), "events": self.seq}

    def drop_streams(self, forget=False, wait=5.0):
        """Reset every open stream (no Closed envelope); forget=True also
        forgets every subscription, as a restarted server would."""
        with self.cond:
            streams = list(self.streams)
            for st in streams:
                st.abort = True
            n_subs = len(self.subs)
            if forget:
                for sub in self.subs.values():
                    sub.stream = None
                self.subs.clear()
            self.cond.notify_all()
            deadline = time.monotonic() + wait
            while any(st in self.streams for st in streams) and time.monotonic() < deadline:
                self.cond.wait(0.05)
        return {"dropped": len(streams), "forgotten": n_subs if forget else 0}


# ---- request parsing ----------------------------------------------------------------------

def _child(elem, name):
    """A child by local name, in the types or messages namespace (clients differ)."""
    for c in elem:
        if c.tag in (soap.t(name), soap.m(name)):
            return c
    return None


def _bool_attr(elem, name):
    v = elem.get(name)
    if v is None:
        return False
    v = v.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise schema_fault(f"The '{name}' attribute is invalid - The value '{elem.get(name)}' is invalid according "
                       "to its datatype 'http://www.w3.org/2001/XMLSchema:boolean'.")


def _int_elem(elem, name, lo, hi, datatype):
    e = _child(elem, name)
    if e is None:
        raise schema_fault(f"The element '{local(elem.tag)}' has incomplete content. List of possible elements "
                           f"expected: '{name}'.")
    text = (e.text or "").strip()
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise schema_fault(f"The '{name}' element is invalid - The value '{text}' is invalid according to its "
                           f"datatype 'http://schemas.microsoft.com/exchange/services/2006/types:{datatype}' - "
                           f"The value must be between {lo} and {hi}.")
    return n


def _subscription_request(op):
    reqs = [c for c in op if local(c.tag) in ("PullSubscriptionRequest", "PushSubscriptionRequest",
                                              "StreamingSubscriptionRequest")]
    if len(reqs) != 1 or len(op) != 1:
        raise schema_fault("The element 'Subscribe' has invalid content. Expected one of: "
                           "'PullSubscriptionRequest', 'PushSubscriptionRequest', 'StreamingSubscriptionRequest'.")
    req = reqs[0]
    kind = {"PullSubscriptionRequest": "pull", "PushSubscriptionRequest": "push",
            "StreamingSubscriptionRequest": "streaming"}[local(req.tag)]
    all_folders = _bool_attr(req, "SubscribeToAllFolders")
    folder_ids = _child(req, "FolderIds")
    if folder_ids is not None and len(folder_ids) == 0:
        raise schema_fault("The element 'FolderIds' has incomplete content. List of possible elements expected: "
                           "'FolderId, DistinguishedFolderId'.")
    types_elem = _child(req, "EventTypes")
    if types_elem is None or len(types_elem) == 0:
        raise schema_fault(f"The element '{local(req.tag)}' has incomplete content. List of possible elements "
                           "expected: 'EventTypes'.")
    types = set()
    for e in types_elem:
        v = (e.text or "").strip()
        if local(e.tag) != "EventType" or v not in EVENT_TYPES:
            raise schema_fault(f"The 'EventType' element is invalid - The value '{v}' is invalid according to "
                               "its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:"
                               "NotificationEventTypeType' - The Enumeration constraint failed.")
        types.add(v)
    wm = _child(req, "Watermark")
    if wm is not None and kind == "streaming":
        raise schema_fault("The element 'StreamingSubscriptionRequest' has invalid child element 'Watermark'.")
    timeout = _int_elem(req, "Timeout", 1, 1440, "SubscriptionTimeoutType") if kind == "pull" else None
    return kind, all_folders, folder_ids, frozenset(types), wm, timeout


# ---- operations (ops.dispatch calls them with the mailbox lock held) ---------------------

def _hub(mb):
    if mb.hub is None:
        mb.hub = Hub()
    if mb.hub.config["refuse"] == "all":
        # A server without notifications: what this one answers any operation it does not know.
        raise soap.Fault("ErrorInvalidRequest", "The request is invalid.")
    return mb.hub


def subscribe(mb, op):
    hub = _hub(mb)
    kind, all_folders, folder_ids, types, wm, timeout = _subscription_request(op)
    refuse = hub.config["refuse"]
    if kind == "streaming" and (soap.request_version() in PRE_2010_SP1 or refuse == "streaming"):
        # What a server whose schema predates Exchange 2010 SP1 answers.
        raise schema_fault("The element 'Subscribe' in namespace 'http://schemas.microsoft.com/exchange/services/"
                           "2006/messages' has invalid child element 'StreamingSubscriptionRequest' in namespace "
                           "'http://schemas.microsoft.com/exchange/services/2006/messages'. List of possible "
                           "elements expected: 'PullSubscriptionRequest, PushSubscriptionRequest'.")
    try:
        if refuse == "quota":       # EwsMaxSubscriptions reached (or 0)
            raise MailboxError("ErrorExceededSubscriptionCount", "You have exceeded the available subscriptions "
                               "for your account. Remove unnecessary subscriptions and try your request again.")
        if kind == "push":
            raise MailboxError("ErrorInvalidPushSubscriptionUrl", "The test server makes no outgoing "
                               "connections: push subscriptions are not supported.")
        if all_folders == (folder_ids is not None):
            raise MailboxError("ErrorInvalidSubscriptionRequest", "The subscription request is invalid: give "
                               "either FolderIds or SubscribeToAllFolders=\"true\".")
        folders = None
        if folder_ids is not None:
            folders = frozenset(resolve_folder(mb, ref).id for ref in soap.folder_id_refs(folder_ids))
        with hub.cond:
            hub.purge()
            pos = hub.seq
            if wm is not None:
                pos = hub.seq_of(wm.text)
                if pos is None:
                    raise MailboxError("ErrorInvalidWatermark", INVALID_WATERMARK)
            sub = Subscription(hub.new_id(), kind, folders, types, pos, timeout)
            hub.subs[sub.id] = sub
            inner = f"<m:SubscriptionId>{sub.id}</m:SubscriptionId>"
            if kind == "pull":
                inner += f"<m:Watermark>{hub.watermark(pos)}</m:Watermark>"
    except MailboxError as e:
        return response("Subscribe", [error_message("Subscribe", e.code, e.text)])
    return response("Subscribe", [ok_message("Subscribe", inner)])


def _id_xml(tag, oid, ck):
    return f'<t:{tag} Id="{oid}" ChangeKey="{ck}"/>'


def event_xml(ev, watermark=None):
    """One event element; pull events carry their Watermark, streaming ones
    do not (Exchange leaves it out there)."""
    kind = ev["kind"]
    parts = [f"<t:{kind}>"]
    if watermark is not None:
        parts.append(f"<t:Watermark>{watermark}</t:Watermark>")
    parts.append(f"<t:TimeStamp>{now_iso(ev['time'])}</t:TimeStamp>")
    what, ck = ("Folder", FOLDER_CK) if ev["folder"] else ("Item", ITEM_CK)
    parts.append(_id_xml(f"{what}Id", ev["id"], ck))
    parts.append(_id_xml("ParentFolderId", ev["parent"], FOLDER_CK))
    if kind in ("MovedEvent", "CopiedEvent"):
        parts.append(_id_xml(f"Old{what}Id", ev["old_id"], ck))
        parts.append(_id_xml("OldParentFolderId", ev["old_parent"], FOLDER_CK))
    if kind == "ModifiedEvent" and ev["unread"] is not None:
        parts.append(f"<t:UnreadCount>{ev['unread']}</t:UnreadCount>")
    parts.append(f"</t:{kind}>")
    return "".join(parts)


def _sub_id_text(op):
    e = _child(op, "SubscriptionId")
    if e is None or not (e.text or "").strip():
        raise schema_fault(f"The element '{local(op.tag)}' has incomplete content. List of possible elements "
                           "expected: 'SubscriptionId'.")
    return e.text.strip()


def get_events(mb, op):
    hub = _hub(mb)
    sid = _sub_id_text(op)
    wm_elem = _child(op, "Watermark")
    if wm_elem is None:
        raise schema_fault("The element 'GetEvents' has incomplete content. List of possible elements expected: "
                           "'Watermark'.")
    with hub.cond:
        hub.purge()
        sub = hub.subs.get(sid)
        try:
            if sub is None:
                raise MailboxError("ErrorSubscriptionNotFound", NOT_FOUND)
            if sub.kind != "pull":
                raise MailboxError("ErrorInvalidPullSubscriptionId", "The subscription is not a pull subscription.")
            start = hub.seq_of(wm_elem.text)
            if start is None:
                raise MailboxError("ErrorInvalidWatermark", INVALID_WATERMARK)
        except MailboxError as e:
            return response("GetEvents", [error_message("GetEvents", e.code, e.text)])
        events, more = hub.pending(sub, start, BATCH)
        sub.pos = events[-1]["seq"] if events else hub.seq
        sub.last = time.monotonic()
        if events:
            body = "".join(event_xml(ev, hub.watermark(ev["seq"])) for ev in events)
        else:
            body = f"<t:StatusEvent><t:Watermark>{hub.watermark(sub.pos)}</t:Watermark></t:StatusEvent>"
        inner = (f"<m:Notification><t:SubscriptionId>{sid}</t:SubscriptionId>"
                 f"<t:PreviousWatermark>{esc(wm_elem.text.strip())}</t:PreviousWatermark>"
                 f"<t:MoreEvents>{'true' if more else 'false'}</t:MoreEvents>{body}</m:Notification>")
    return response("GetEvents", [ok_message("GetEvents", inner)])


def unsubscribe(mb, op):
    hub = _hub(mb)
    sid = _sub_id_text(op)
    with hub.cond:
        hub.purge()
        sub = hub.subs.get(sid)
        if sub is None:
            return response("Unsubscribe", [error_message("Unsubscribe", "ErrorSubscriptionNotFound", NOT_FOUND)])
        hub.remove(sub)
    return response("Unsubscribe", [ok_message("Unsubscribe")])


def get_streaming_events_unstreamed(mb, op):
    # ews_server.py answers GetStreamingEvents itself (serve_stream); this entry
    # only makes the name known to the fault machinery.
    raise soap.Fault("ErrorInvalidRequest", "The request is invalid.")


NOTIFY_OPERATIONS = {
    "Subscribe": subscribe,
    "GetEvents": get_events,
    "Unsubscribe": unsubscribe,
    "GetStreamingEvents": get_streaming_events_unstreamed,
}


# ---- GetStreamingEvents ------------------------------------------------------------------

STREAM_HEAD = (f'<Envelope xmlns="{NS_SOAP}"><soap11:Header xmlns:soap11="{NS_SOAP}">'
               f'<ServerVersionInfo xmlns="{NS_T}" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" '
               f'MinorBuildNumber="6" Version="V2017_07_11"/></soap11:Header><soap11:Body xmlns:soap11="{NS_SOAP}">'
               f'<m:GetStreamingEventsResponse xmlns:m="{NS_M}" xmlns:t="{NS_T}"><m:ResponseMessages>')
STREAM_TAIL = "</m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></Envelope>"


def stream_envelope(inner, code=None, text="", error_ids=(), status=None):
    """One GetStreamingEventsResponse envelope as Exchange streams it: no XML
    declaration (the stream is a sequence of Envelope elements), default
    namespace on Envelope, soap11: prefixes inside."""
    if code is None:
        msg = '<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
    else:
        msg = (f'<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>{esc(text)}'
               f'</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0'
               '</m:DescriptiveLinkKey>')
    if error_ids:
        inner += ("<m:ErrorSubscriptionIds>" + "".join(f"<m:SubscriptionId>{esc(i)}</m:SubscriptionId>"
                                                       for i in error_ids) + "</m:ErrorSubscriptionIds>")
    if status:
        inner += f"<m:ConnectionStatus>{status}</m:ConnectionStatus>"
    return (STREAM_HEAD + msg + inner + "</m:GetStreamingEventsResponseMessage>" + STREAM_TAIL).encode("utf-8")


def notifications_xml(batches):
    return ("<m:Notifications>" + "".join(
        f"<m:Notification><t:SubscriptionId>{sub.id}</t:SubscriptionId>"
        + "".join(event_xml(ev) for ev in events) + "</m:Notification>"
        for sub, events in batches) + "</m:Notifications>")


def _parse_stream_request(op):
    ids_elem = _child(op, "SubscriptionIds")
    ids = [(e.text or "").strip() for e in ids_elem] if ids_elem is not None else []
    if not ids or any(local(e.tag) != "SubscriptionId" for e in ids_elem):
        raise schema_fault("The element 'SubscriptionIds' has incomplete content. List of possible elements "
                           "expected: 'SubscriptionId'.")
    minutes = _int_elem(op, "ConnectionTimeout", 1, 30, "StreamingSubscriptionConnectionTimeoutType")
    return ids, minutes


class _Wire:
    """Writes the chunked body of one streaming response."""

    def __init__(self, handler, split):
        self.h, self.split = handler, split

    def headers(self):
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", "text/xml; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("request-id", str(uuid.uuid4()))
        h.send_header("X-Content-Type-Options", "nosniff")
        h.end_headers()
        h.wfile.flush()

    def envelope(self, data):
        parts = [data[:len(data) // 2], data[len(data) // 2:]] if self.split else [data]
        out = b"".join(b"%X\r\n%s\r\n" % (len(p), p) for p in parts)
        self.h.wfile.write(out)
        self.h.wfile.flush()

    def end(self):
        self.h.wfile.write(b"0\r\n\r\n")
        self.h.wfile.flush()


def _client_gone(conn):
    """Did the client close its end? (It sends nothing while it waits.)"""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        if isinstance(conn, ssl.SSLSocket):
            return True             # a close_notify or EOF; a waiting client sends nothing else
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def serve_stream(h, op, fault_kind=None):
    """Answer GetStreamingEvents on handler h: headers, then envelopes as
    events happen, OK keep-alives while idle, Closed at ConnectionTimeout,
    then the end of the chunked body. Returns the HTTP status recorded.
    Schema problems raise soap.Fault before anything is sent."""
    hub = _hub(h.server.mailbox)
    ids, minutes = _parse_stream_request(op)
    if soap.request_version() in PRE_2010_SP1 or hub.config["refuse"] == "streaming":
        raise schema_fault("The element 'GetStreamingEvents' in namespace 'http://schemas.microsoft.com/exchange/"
                           "services/2006/messages' is not declared.")
    wire = _Wire(h, hub.config["split_chunks"])
    error = None
    with hub.cond:
        hub.purge()
        missing = [i for i in ids if i not in hub.subs]
        wrong = [i for i in ids if i in hub.subs and hub.subs[i].kind != "streaming"]
        missed = [i for i in ids if i in hub.subs and hub.subs[i].missed]
        if missing:
            error = ("ErrorSubscriptionNotFound", NOT_FOUND, missing)
        elif wrong:
            error = ("ErrorInvalidSubscription", "The subscription is not a streaming subscription.", wrong)
        elif missed:
            error = ("ErrorMissedNotificationEvents", "Events were missed: the subscription fell too far behind "
                     "and has been removed.", missed)
            for i in missed:
                hub.remove(hub.subs[i])
        else:
            subs = [hub.subs[i] for i in dict.fromkeys(ids)]
            stream = Stream(subs, time.monotonic() + minutes * float(hub.config["minute_s"]))
            stream.conn_id = h.conn_id
            for sub in subs:
                old = sub.stream
                if old is not None and old is not stream:     # one connection per subscription
                    old.subs.remove(sub)
                    old.errors.append(("ErrorNewEventStreamConnectionOpened", "A new connection was opened for "
                                       "this subscription; this one no longer delivers its events.", [sub.id]))
                sub.stream = stream
            hub.streams.add(stream)
            hub.cond.notify_all()
    if error is not None:
        wire.headers()
        wire.envelope(stream_envelope("", error[0], error[1], error[2], "Closed"))
        wire.end()
        return 200
    try:
        wire.headers()
        _stream_loop(h, hub, stream, wire, fault_kind)
    except (OSError, ssl.SSLError, ValueError):
        h.close_connection = True
    finally:
        with hub.cond:
            hub.streams.discard(stream)
            now = time.monotonic()
            for sub in stream.subs:
                if sub.stream is stream:
                    sub.stream = None
                    sub.last = now
            stream.subs = []
            hub.cond.notify_all()
    return 200


def _stream_loop(h, hub, stream, wire, fault_kind):
    first, last_sent = True, time.monotonic()
    while True:
        batches, errors, action = [], [], None
        with hub.cond:
            while action is None:
                now = time.monotonic()
                keepalive = float(hub.config["keepalive_s"])
                if stream.abort:
                    action = "drop"
                    break
                errors, stream.errors = stream.errors, []
                for sub in [x for x in stream.subs if x.missed]:
                    errors.append(("ErrorMissedNotificationEvents", "Events were missed: the subscription fell "
                                   "too far behind and has been removed.", [sub.id]))
                    hub.remove(sub)
                if errors:
                    action = "errors"
                    break
                for sub in stream.subs:
                    events, _more = hub.pending(sub, sub.pos, BATCH)
                    if events:
                        batches.append((sub, events, sub.pos))
                        sub.pos = events[-1]["seq"]     # off the queue as it is sent
                if batches:
                    action = "events"
                elif not first and (not stream.subs or now >= stream.deadline):
                    action = "close"
                elif first or now - last_sent >= keepalive:
                    action = "ok"
                elif _client_gone(h.connection):
                    action = "gone"
                else:
                    hub.cond.wait(max(0.0, min(stream.deadline - now, keepalive - (now - last_sent), 0.25)))
        if action == "drop":
            h.reset()
            return
        if action == "gone":
            h.close_connection = True
            return
        if action == "close":
            wire.envelope(stream_envelope("", status="Closed"))
            wire.end()
            return
        if action == "errors":
            status = "OK" if stream.subs else "Closed"
            for code, text, sids in errors:
                wire.envelope(stream_envelope("", code, text, sids, status))
            if not stream.subs:
                wire.end()
                return
        elif action == "events":
            try:
                wire.envelope(stream_envelope(notifications_xml([(sub, evs) for sub, evs, _ in batches])))
            except (OSError, ValueError):
                with hub.cond:      # not sent: back on the queue, unless another stream took it over
                    for sub, events, before in batches:
                        if sub.stream in (stream, None) and sub.pos == events[-1]["seq"]:
                            sub.pos = before
                raise
        else:
            wire.envelope(stream_envelope("", status="OK"))
        first, last_sent = False, time.monotonic()
        if fault_kind == "reset_after":
            h.reset()
            return
