# The mailbox model behind the test EWS server: folders and items as Exchange
# keeps them. Every change takes a new number from one mailbox-wide change
# counter (like Exchange change numbers); deletions leave tombstones; each
# folder keeps a log of (change number, object) so SyncFolderItems pages are
# a bisect plus a short scan, never a walk over the whole folder. A server-side
# item move is a tombstone in the source and a new item (new id) in the target.
# The EWS write operations (ops_write.py) and the control interface change the
# mailbox through the same methods, so both show in syncs alike. Sent messages
# are kept in Mailbox.sent; soft-deleted items in Mailbox.dumpster. Every
# change method also hands notification events (CreatedEvent, ModifiedEvent,
# MovedEvent...) to Mailbox.hub (notify.py) through _emit(), the one place
# that emits them.
#
# All state is guarded by Mailbox.lock (one RLock); callers outside this file
# must hold it while they read objects they got from here.

import base64
import bisect
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import os
import threading
import time

import syncstate

IPF_NOTE = "IPF.Note"

# Standard folders: (distinguished id, display name, class, element, parent)
STANDARD_FOLDERS = [
    ("inbox", "Inbox", IPF_NOTE, "Folder", "msgfolderroot"),
    ("drafts", "Drafts", IPF_NOTE, "Folder", "msgfolderroot"),
    ("sentitems", "Sent Items", IPF_NOTE, "Folder", "msgfolderroot"),
    ("deleteditems", "Deleted Items", IPF_NOTE, "Folder", "msgfolderroot"),
    ("outbox", "Outbox", IPF_NOTE, "Folder", "msgfolderroot"),
    ("junkemail", "Junk Email", IPF_NOTE, "Folder", "msgfolderroot"),
    (None, "Archive", IPF_NOTE, "Folder", "msgfolderroot"),
    ("calendar", "Calendar", "IPF.Appointment", "CalendarFolder", "msgfolderroot"),
    ("contacts", "Contacts", "IPF.Contact", "ContactsFolder", "msgfolderroot"),
]


class MailboxError(Exception):
    """A refusal with an EWS response code, e.g. ErrorFolderNotFound."""

    def __init__(self, code, text):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class Folder:
    __slots__ = ("id", "num", "parent", "name", "folder_class", "element", "distinguished",
                 "change_key", "cn", "children", "items", "unread", "next_item_num",
                 "log_cn", "log_ref", "stale", "sorted_cache", "alive")

    def __init__(self, fid, num, parent, name, folder_class, element, distinguished):
        self.id = fid
        self.num = num
        self.parent = parent            # Folder or None (root)
        self.name = name
        self.folder_class = folder_class  # None for root / msgfolderroot
        self.element = element          # "Folder", "CalendarFolder", ...
        self.distinguished = distinguished
        self.change_key = ""
        self.cn = 0
        self.children = []              # child Folders, creation order
        self.items = {}                 # item num -> live Item
        self.unread = 0
        self.next_item_num = 1
        self.log_cn = []                # change numbers, ascending
        self.log_ref = []               # Item or Tombstone, parallel to log_cn
        self.stale = 0                  # log entries superseded by later changes
        self.sorted_cache = None        # items by DateTimeReceived desc (FindItem)
        self.alive = True

    def is_mail(self):
        return self.folder_class is None or self.folder_class.startswith(IPF_NOTE)


class Item:
    __slots__ = ("id", "num", "folder", "mime", "subject", "from_name", "from_addr", "to", "cc",
                 "received", "sent", "modified", "size", "is_read", "item_class", "has_attachments",
                 "message_id", "is_draft", "change_key", "cn", "created_cn", "content_cn", "alive",
                 "flag", "categories", "ext", "pim")

FLAG_STATUSES = ("NotFlagged", "Flagged", "Complete")


class Tombstone:
    """What remains of an item (or folder) after a delete or a move away."""

    __slots__ = ("id", "num", "change_key", "cn", "folder_num")

    def __init__(self, oid, num, change_key, cn, folder_num=0):
        self.id, self.num, self.change_key, self.cn, self.folder_num = oid, num, change_key, cn, folder_num


def _parse_header_fields(mime):
    """Subject, from, to, cc, date, Message-ID and attachment flag of raw MIME."""
    head = mime.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n")

    def text(name):
        raw = msg.get(name)
        if raw is None:
            return None
        try:
            return str(email.header.make_header(email.header.decode_header(str(raw))))
        except (ValueError, LookupError, UnicodeError):
            return str(raw)
    subject = text("Subject")
    from_name, from_addr = email.utils.parseaddr(text("From") or "")
    date = None
    try:
        if msg.get("Date"):
            date = int(email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        date = None
    ctype = (msg.get("Content-Type") or "").lower()
    return dict(subject=subject, from_name=from_name, from_addr=from_addr,
                to=text("To") or "", cc=text("Cc") or "", sent=date,
                message_id=(msg.get("Message-ID") or "").strip() or None,
                has_attachments="multipart/mixed" in ctype)


class Mailbox:
    """One user's mailbox. Create with Mailbox(uid); it starts with the
    standard folder tree (root, msgfolderroot and the well-known folders)."""

    def __init__(self, uid="alice", standard=True):
        self.lock = threading.RLock()
        self.uid = uid                  # ids are derived from it (deterministic)
        self.guid = hashlib.sha256(uid.encode()).hexdigest()[:32]
        self.instance = os.urandom(8).hex()  # sync states name it: a new mailbox rejects old states
        self.epoch = 1
        self.counter = 0                # last change number handed out
        self.next_folder_num = 1
        self.folders = {}               # id -> Folder (live)
        self.items = {}                 # id -> Item (live)
        self.distinguished = {}         # distinguished id -> Folder
        self.h_log_cn = []              # hierarchy change log (folders, tombstones)
        self.h_log_ref = []
        self.markers = {}               # e.g. "invoice 4711" -> [item ids]; generator fills it
        self.journal = None             # persist.Journal once persistence is on
        self.sent = []                  # messages sent through EWS (dicts, see record_sent)
        self.dumpster = []              # soft-deleted Items (alive False), oldest first
        self.hub = None                 # notify.Hub once the server runs (events go there)
        if not standard:
            return
        self.root = self._new_folder(None, "", None, "Folder", "root")
        self.msgroot = self._new_folder(self.root, "Top of Information Store", None, "Folder", "msgfolderroot")
        for dist, name, cls, elem, parent in STANDARD_FOLDERS:
            self._new_folder(self.distinguished[parent], name, cls, elem, dist)

    # ---- ids and change keys ------------------------------------------------

    def _make_id(self, kind, folder_num, num):
        # Shaped like an Exchange store id: "AAMkA" + mailbox GUID + entry id.
        body = hashlib.sha256(f"{self.uid}/{kind}/{folder_num}/{num}".encode()).digest()
        raw = (b"\x00\x03\x24\x00" + self.guid.encode() + b"\x00\x46\x00\x00\x00\x00\x00"
               + body + kind.encode() + folder_num.to_bytes(4, "big") + num.to_bytes(6, "big") + b"\x00\x00")
        return base64.b64encode(raw).decode("ascii")

    def _change_key(self, kind_byte, cn):
        raw = bytes([kind_byte]) + b"\x00\x00\x00\x16\x00\x00\x00" + bytes.fromhex(self.guid[:32]) + cn.to_bytes(6, "big")
        return base64.b64encode(raw).decode("ascii")

    def _next_cn(self):
        self.counter += 1
        return self.counter

    # ---- folders ------------------------------------------------------------

    def _new_folder(self, parent, name, folder_class, element, distinguished=None, fid=None, num=None):
        if num is None:
            num = self.next_folder_num
        self.next_folder_num = max(self.next_folder_num, num + 1)
        f = Folder(fid or self._make_id("F", 0, num), num, parent, name, folder_class, element, distinguished)
        self.folders[f.id] = f
        if distinguished:
            self.distinguished[distinguished] = f
        if parent is not None:
            parent.children.append(f)
        self._touch_folder(f)
        return f

    def _touch_folder(self, f):
        f.cn = self._next_cn()
        f.change_key = self._change_key(1, f.cn)
        self.h_log_cn.append(f.cn)
        self.h_log_ref.append(f)
        self._save_folder(f)

    def folder(self, fid):
        return self.folders.get(fid)

    def folder_path(self, f):
        """Names from below msgfolderroot down to f (empty for msgfolderroot)."""
        parts = []
        while f is not None and f is not self.msgroot and f is not self.root:
            parts.append(f.name)
            f = f.parent
        return parts[::-1]

    def folder_by_path(self, path):
        """Find a folder by id, or by "Inbox/Projects" (names may hold '/')."""
        if path in self.folders:
            return self.folders[path]
        if path in ("", "/"):
            return self.msgroot

        def walk(f, rest):
            for c in f.children:
                if rest == c.name:
                    return c
                if rest.startswith(c.name + "/"):
                    hit = walk(c, rest[len(c.name) + 1:])
                    if hit:
                        return hit
            return None
        return walk(self.msgroot, path)

    def is_below(self, f, top):
        while f is not None:
            if f is top:
                return True
            f = f.parent
        return False

    def descendants(self, top):
        """Depth-first, pre-order, children in creation order."""
        out = []
        stack = list(reversed(top.children))
        while stack:
            f = stack.pop()
            out.append(f)
            stack.extend(reversed(f.children))
        return out

    def create_folder(self, parent, name, folder_class=IPF_NOTE, element="Folder"):
        if not name or any(c.name.lower() == name.lower() for c in parent.children):
            raise MailboxError("ErrorFolderExists", "A folder with the specified name already exists.")
        f = self._new_folder(parent, name, folder_class, element)
        self._emit(_ev("CreatedEvent", f, parent), _folder_modified(parent))
        return f

    def rename_folder(self, f, name):
        if not name:
            raise MailboxError("ErrorFolderExists", "A folder with the specified name already exists.")
        self.update_folder(f, name=name)

    def update_folder(self, f, name=None, folder_class=None):
        """Rename and/or change the class, as one change (UpdateFolder)."""
        if name is not None and name != f.name:
            if f.distinguished in ("root", "msgfolderroot"):   # others (Inbox...) may be renamed
                raise MailboxError("ErrorInvalidOperation", "The root folders of a mailbox cannot be renamed.")
            if any(c is not f and c.name.lower() == name.lower() for c in f.parent.children):
                raise MailboxError("ErrorFolderExists", "A folder with the specified name already exists.")
        changed = False
        if name is not None and name != f.name:
            f.name, changed = name, True
        if folder_class is not None and folder_class != f.folder_class:
            f.folder_class, changed = folder_class, True
        if changed:
            self._touch_folder(f)
            self._emit(_folder_modified(f))

    def move_folder(self, f, new_parent, rename_on_clash=False):
        """Move f below new_parent; it keeps its id, as on Exchange."""
        if f.distinguished:
            raise MailboxError("ErrorMoveDistinguishedFolder", "Cannot move distinguished folders.")
        if self.is_below(new_parent, f):
            raise MailboxError("ErrorMoveCopyFailed", "The move or copy operation failed.")
        if new_parent is f.parent:
            return
        taken = {c.name.lower() for c in new_parent.children}
        if f.name.lower() in taken:
            if not rename_on_clash:
                raise MailboxError("ErrorFolderExists", "A folder with the specified name already exists.")
            n = 1
            while f"{f.name}{n}".lower() in taken:   # like Outlook: "Name1", "Name2"...
                n += 1
            f.name = f"{f.name}{n}"
        old_parent = f.parent
        f.parent.children.remove(f)
        f.parent = new_parent
        new_parent.children.append(f)
        self._touch_folder(f)
        self._emit(_ev("MovedEvent", f, new_parent, f.id, old_parent), _folder_modified(old_parent),
                   _folder_modified(new_parent))

    def delete_folder(self, f):
        if f.distinguished:
            raise MailboxError("ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
        gone = [f] + self.descendants(f)
        events = [_ev("DeletedEvent", sub, sub.parent) for sub in reversed(gone)]   # children first
        for sub in gone:
            for it in list(sub.items.values()):
                it.alive = False
                del self.items[it.id]
            sub.items.clear()
            sub.alive = False
            sub.sorted_cache = None
            del self.folders[sub.id]
            cn = self._next_cn()
            t = Tombstone(sub.id, sub.num, sub.change_key, cn)
            self.h_log_cn.append(cn)
            self.h_log_ref.append(t)
            self._journal({"t": "df", "id": sub.id, "cn": cn})
        f.parent.children.remove(f)
        self.dumpster = [x for x in self.dumpster if x.folder.alive]
        self._emit(*events, _folder_modified(f.parent))

    # ---- items --------------------------------------------------------------

    def add_item(self, folder, mime, *, received=None, is_read=False, item_class="IPM.Note",
                 fields=None, is_draft=None, num=None, iid=None, size=None, flag="NotFlagged",
                 categories=(), ext=None, notify=True, pim=None):
        """Store a new item holding the exact MIME bytes. `fields` (subject,
        from_name, from_addr, to, cc, sent, message_id, has_attachments) saves
        parsing the headers when the caller already knows them. ext holds
        extended properties {props key: value} (see props.py). notify=False:
        the caller emits the events (a move, a copy, a delivery)."""
        if fields is None:
            fields = _parse_header_fields(mime)
        it = Item()
        it.num = num if num is not None else folder.next_item_num
        folder.next_item_num = max(folder.next_item_num, it.num + 1)
        it.id = iid or self._make_id("I", folder.num, it.num)
        it.folder = folder
        it.mime = mime
        it.subject = fields.get("subject")
        it.from_name = fields.get("from_name") or ""
        it.from_addr = fields.get("from_addr") or ""
        it.to = fields.get("to") or ""
        it.cc = fields.get("cc") or ""
        it.received = int(received if received is not None else time.time())
        it.sent = fields.get("sent") or it.received
        it.modified = it.received
        it.size = store_size(mime, it.subject)
        if size is not None:  # a test asks for another estimate (even a too small one)
            it.size = int(size)
        it.is_read = bool(is_read)
        it.item_class = item_class
        it.has_attachments = bool(fields.get("has_attachments"))
        it.message_id = fields.get("message_id")
        it.is_draft = folder.distinguished == "drafts" if is_draft is None else is_draft
        it.flag = flag if flag in FLAG_STATUSES else "NotFlagged"
        it.categories = list(categories)
        it.ext = dict(ext or {})
        it.pim = pim                    # canonical dict of a calendar item, contact or task (pim.py)
        it.alive = True
        it.created_cn = it.cn = it.content_cn = self._next_cn()
        it.change_key = self._change_key(9, it.cn)
        folder.items[it.num] = it
        folder.unread += not it.is_read
        folder.sorted_cache = None
        self.items[it.id] = it
        self._log_item(it)
        self._save_item(it)
        if notify:
            self._emit(_ev("CreatedEvent", it, folder), _folder_modified(folder))
        return it

    def deliver(self, folder, mime, **kw):
        """A message arriving by transport: like add_item, plus NewMailEvent."""
        it = self.add_item(folder, mime, notify=False, **kw)
        self._emit(_ev("CreatedEvent", it, folder), _ev("NewMailEvent", it, folder), _folder_modified(folder))
        return it

    def _log_item(self, it):
        f = it.folder
        f.log_cn.append(it.cn)
        f.log_ref.append(it)
        if f.stale > 1024 and f.stale * 2 > len(f.log_cn):
            self._compact_log(f)

    def _compact_log(self, f):
        entries = [(r.cn, r) for r in f.log_ref if isinstance(r, Tombstone)]
        entries += [(it.cn, it) for it in f.items.values()]
        entries.sort(key=lambda e: e[0])
        f.log_cn = [e[0] for e in entries]
        f.log_ref = [e[1] for e in entries]
        f.stale = 0

    def _modify(self, it, content):
        it.folder.stale += 1
        it.cn = self._next_cn()
        if content:
            it.content_cn = it.cn
        it.modified = int(time.time())
        it.change_key = self._change_key(9, it.cn)
        self._log_item(it)

    def _remove_item(self, it, soft=False):
        f = it.folder
        del f.items[it.num]
        del self.items[it.id]
        f.unread -= not it.is_read
        f.sorted_cache = None
        f.stale += 1
        it.alive = False
        cn = self._next_cn()
        t = Tombstone(it.id, it.num, it.change_key, cn, f.num)
        f.log_cn.append(cn)
        f.log_ref.append(t)
        self._journal({"t": "di", "id": it.id, "cn": cn, "soft": bool(soft)})

    def delete_item(self, it, soft=False):
        """Hard delete, or soft: the item goes to the dumpster (recoverable
        items; FindItem Traversal="SoftDeleted" lists them)."""
        self._remove_item(it, soft)
        if soft:
            self.dumpster.append(it)
        self._emit(_ev("DeletedEvent", it, it.folder), _folder_modified(it.folder))

    def _clone(self, it, dest, mime=None, **over):
        fields = dict(subject=it.subject, from_name=it.from_name, from_addr=it.from_addr, to=it.to,
                      cc=it.cc, sent=it.sent, message_id=it.message_id, has_attachments=it.has_attachments)
        if mime is not None and mime != it.mime:
            fields = _parse_header_fields(mime)
        kw = dict(received=it.received, is_read=it.is_read, item_class=it.item_class, fields=fields,
                  is_draft=it.is_draft, flag=it.flag, categories=it.categories, ext=it.ext, pim=it.pim)
        kw.update(over)
        new = self.add_item(dest, it.mime if mime is None else mime, notify=False, **kw)
        if mime is None and it.size != store_size(it.mime, it.subject):    # a test-chosen size stays
            new.size = it.size
            self._save_item(new)
        return new

    def move_item(self, it, dest):
        """Exchange semantics: a tombstone in the source, a new id in dest."""
        if dest is it.folder:
            return it
        self._remove_item(it)
        new = self._clone(it, dest)
        self._emit(_ev("MovedEvent", new, dest, it.id, it.folder), _folder_modified(it.folder),
                   _folder_modified(dest))
        return new

    def copy_item(self, it, dest):
        """A new item (new id) in dest with the same content and properties."""
        new = self._clone(it, dest)
        self._emit(_ev("CopiedEvent", new, dest, it.id, it.folder), _folder_modified(dest))
        return new

    def send_item(self, it, dest, mime=None):
        """A draft that was sent: gone from its folder; the copy in dest (if
        any, with the MIME as sent) is no draft any more, read, received now."""
        self._remove_item(it)
        if dest is None:
            self._emit(_ev("DeletedEvent", it, it.folder), _folder_modified(it.folder))
            return None
        new = self._clone(it, dest, mime, is_draft=False, is_read=True, received=int(time.time()))
        self._emit(_ev("MovedEvent", new, dest, it.id, it.folder), _folder_modified(it.folder),
                   _folder_modified(dest))
        return new

    def record_sent(self, mime, recipients, token=None, operation="", saved_id=None, subject=None,
                    message_id=None):
        """Remember a message handed to transport; tests read them (control sent)."""
        rec = {"mime_b64": base64.b64encode(mime).decode("ascii"), "recipients": list(recipients),
               "token": token, "time": time.time(), "operation": operation, "saved_id": saved_id,
               "subject": subject, "message_id": message_id}
        self.sent.append(rec)
        self._journal(dict(rec, t="sent"))
        return rec

    def clear_sent(self):
        self.sent = []
        self._journal({"t": "cs"})

    def change_item(self, it, *, is_read=None, flag=None, categories=None, subject=False, mime=None,
                    ext_set=None, ext_del=(), received=None):
        """Apply a set of property changes as one change (one new change key).
        subject=None removes the subject (False: leave it). Returns whether
        anything changed; a change of the read flag alone is no content change
        (SyncFolderItems reports it as ReadFlagChange)."""
        content = False
        if mime is not None and mime != it.mime:
            fields = _parse_header_fields(mime)
            it.mime = mime
            it.subject, it.from_name, it.from_addr = fields["subject"], fields["from_name"], fields["from_addr"]
            it.to, it.cc, it.has_attachments = fields["to"], fields["cc"], fields["has_attachments"]
            it.sent = fields["sent"] or it.sent
            it.message_id = fields["message_id"] or it.message_id
            it.size = store_size(mime, it.subject)
            content = True
        if subject is not False and subject != it.subject:
            self._set_subject(it, subject)
            content = True
        if flag is not None and flag != it.flag:
            if flag not in FLAG_STATUSES:
                raise ValueError(f"flag status {flag!r}")
            it.flag = flag
            content = True
        if categories is not None and list(categories) != it.categories:
            it.categories = list(categories)
            content = True
        for key, value in (ext_set or {}).items():
            if it.ext.get(key) != value:
                it.ext[key] = value
                content = True
        for key in ext_del:
            if key in it.ext:
                del it.ext[key]
                content = True
        if received is not None and int(received) != it.received:
            it.received = int(received)
            it.folder.sorted_cache = None
            content = True
        read_changed = is_read is not None and bool(is_read) != it.is_read
        if read_changed:
            it.is_read = bool(is_read)
            it.folder.unread += -1 if it.is_read else 1
        if not content and not read_changed:
            return False
        self._modify(it, content=content)
        if content:
            self._save_item(it)
        else:
            self._journal({"t": "r", "id": it.id, "read": it.is_read, "cn": it.cn, "ck": it.change_key,
                           "modified": it.modified})
        self._emit(_ev("ModifiedEvent", it, it.folder), _folder_modified(it.folder))
        return True

    def set_read(self, it, read):
        return self.change_item(it, is_read=bool(read))

    def update_item(self, it, subject):
        """Change the subject (and the Subject header of the MIME Exchange renders)."""
        self.change_item(it, subject=subject)

    def _set_subject(self, it, subject):
        """Rewrite the Subject header of the MIME (None: drop it)."""
        from generate import header_text    # RFC 2047 for anything but plain printable ASCII
        nl = b"\r\n" if b"\r\n\r\n" in it.mime or b"\n\n" not in it.mime else b"\n"
        head, sep, body = it.mime.partition(nl + nl)
        out, skipping = [], False
        for ln in head.split(nl):
            if skipping and ln[:1] in (b" ", b"\t"):
                continue                    # folded continuation of the old Subject
            skipping = ln.lower().startswith(b"subject:")
            if not skipping:
                out.append(ln)
        if subject is not None:
            out.append(b"Subject: " + header_text(subject).replace("\r\n", nl.decode()).encode("ascii"))
        it.mime = nl.join(out) + (sep or nl + nl) + body
        it.subject = subject
        it.size = store_size(it.mime, subject)  # the store size follows the MIME

    # ---- calendar items, contacts, tasks (pim.py) ----------------------------

    def add_pim_folders(self):
        """Tasks, Notes and Journal below msgfolderroot, as Exchange has them
        (opt-in: the mail-only test mailboxes keep their folder count)."""
        import pim
        for dist, name, cls, elem in pim.PIM_FOLDERS:
            if dist not in self.distinguished:
                self._new_folder(self.msgroot, name, cls, elem, dist)

    def add_pim(self, folder, p, received=None, notify=True):
        """Store a calendar item, contact or task given by its canonical
        dict; the MimeContent Exchange would render is made from it."""
        import pim
        pim.validate(p)
        now = int(received if received is not None else time.time())
        mime = pim.render_mime(p, now)
        fields = dict(subject=pim.subject_of(p), from_name="", from_addr="", to="", cc="", sent=now,
                      message_id=None, has_attachments=False)
        return self.add_item(folder, mime, received=now, is_read=True, item_class=pim.KIND_CLASS[p["kind"]],
                             fields=fields, is_draft=False, pim=p, notify=notify)

    def change_pim(self, it, p):
        """Replace the canonical dict of an item as one change."""
        import pim
        pim.validate(p)
        if p == it.pim:
            return False
        if p["kind"] == "calendar":
            p = dict(p, sequence=int(p.get("sequence") or 0) + (p.get("start") != it.pim.get("start")
                                                                or p.get("end") != it.pim.get("end")))
        it.pim = p
        it.subject = pim.subject_of(p)
        self._modify(it, content=True)
        it.mime = pim.render_mime(p, it.modified)
        it.size = store_size(it.mime, it.subject)
        self._save_item(it)
        self._emit(_ev("ModifiedEvent", it, it.folder), _folder_modified(it.folder))
        return True

    def items_sorted(self, f):
        """Items of f as FindItem lists them by default: newest received first."""
        if f.sorted_cache is None:
            f.sorted_cache = sorted(f.items.values(), key=lambda i: (-i.received, -i.num))
        return f.sorted_cache

    # ---- synchronisation ----------------------------------------------------

    def invalidate_sync_states(self):
        self.epoch += 1
        self._journal_meta()

    def _decode(self, text, kind, folder_num):
        if not text or not text.strip():
            return syncstate.SyncState()
        try:
            return syncstate.decode(text, self.instance, self.epoch, kind, folder_num, self.counter)
        except syncstate.InvalidSyncState:
            raise MailboxError("ErrorInvalidSyncStateData",
                               "Synchronization state data is corrupt or otherwise invalid.") from None

    def sync_items(self, f, state_text, max_changes, ignore=frozenset()):
        """Changes of folder f after the state, at most max_changes of them.
        Returns (changes, new_state_text, includes_last); a change is
        (kind, obj) with kind in create/update/read/delete."""
        st = self._decode(state_text, "items", f.num)
        changes, new_nums, more, last_cn = [], [], False, st.cn
        for i in range(bisect.bisect_right(f.log_cn, st.cn), len(f.log_cn)):
            cn, ref = f.log_cn[i], f.log_ref[i]
            if isinstance(ref, Tombstone):
                if ref.num not in st.given:
                    continue                    # the client never saw it
                kind = "delete"
            else:
                if not ref.alive or ref.cn != cn or ref.folder is not f:
                    continue                    # superseded log entry
                if ref.id in ignore:
                    last_cn = cn
                    continue
                if ref.num not in st.given:
                    kind = "create"
                elif ref.content_cn > st.cn:
                    kind = "update"
                else:
                    kind = "read"
            if len(changes) >= max_changes:
                more = True
                break
            if kind == "create":
                new_nums.append(ref.num)
            changes.append((kind, ref))
            last_cn = cn
        new = syncstate.SyncState(last_cn if more else self.counter, st.given.union(new_nums))
        return changes, syncstate.encode(self.instance, self.epoch, "items", f.num, new), not more

    def sync_hierarchy(self, top, state_text):
        """Folder changes below top after the state (all of them: Exchange
        does not page hierarchy syncs). Parents come before their children."""
        st = self._decode(state_text, "hier", top.num)
        changes, new_nums = [], []
        for i in range(bisect.bisect_right(self.h_log_cn, st.cn), len(self.h_log_cn)):
            cn, ref = self.h_log_cn[i], self.h_log_ref[i]
            if isinstance(ref, Tombstone):
                if ref.num in st.given:
                    changes.append(("delete", ref))
                continue
            if not ref.alive or ref.cn != cn or ref is top:
                continue
            if self.is_below(ref, top):
                if ref.num in st.given:
                    changes.append(("update", ref))
                else:
                    changes.append(("create", ref))
                    new_nums.append(ref.num)
            elif ref.num in st.given:           # moved out of the synced tree
                changes.append(("delete", Tombstone(ref.id, ref.num, ref.change_key, cn)))

        def depth(f):
            d = 0
            while f.parent is not None:
                d, f = d + 1, f.parent
            return d
        live = [c for c in changes if c[0] != "delete"]
        live.sort(key=lambda c: (depth(c[1]), c[1].cn))
        changes = live + [c for c in changes if c[0] == "delete"]
        new = syncstate.SyncState(self.counter, st.given.union(new_nums))
        return changes, syncstate.encode(self.instance, self.epoch, "hier", top.num, new), True

    # ---- notifications (see notify.py) -----------------------------------------

    def _emit(self, *events):
        """Hand the events of one change to the subscriptions. Every change
        method above ends here: this is the one place events come from."""
        if self.hub is not None:
            self.hub.publish([e for e in events if e is not None])

    # ---- persistence hooks (see persist.py) -----------------------------------

    def _journal(self, rec):
        if self.journal is not None:
            self.journal.append([rec, self._meta_record()])

    def _journal_meta(self):
        if self.journal is not None:
            self.journal.append([self._meta_record()])

    def _meta_record(self):
        return {"t": "m", "uid": self.uid, "instance": self.instance, "epoch": self.epoch, "counter": self.counter,
                "next_folder_num": self.next_folder_num, "markers": self.markers}

    def _save_folder(self, f):
        if self.journal is not None:
            self._journal(folder_record(f))

    def _save_item(self, it):
        if self.journal is not None:
            self._journal(item_record(it))


def _ev(kind, obj, parent, old_id=None, old_parent=None):
    """One notification event about an item or folder (obj) in parent; a
    move or copy names where it was (old_id, old_parent). A folder's
    ModifiedEvent carries its unread count (mail folders only, as Exchange)."""
    folder = isinstance(obj, Folder)
    unread = obj.unread if folder and kind == "ModifiedEvent" and obj.element == "Folder" else None
    return {"kind": kind, "folder": folder, "id": obj.id, "parent": parent.id if parent is not None else None,
            "old_id": old_id, "old_parent": old_parent.id if old_parent is not None else None,
            "unread": unread}


def _folder_modified(f):
    """The ModifiedEvent of a folder whose contents changed (None for the root)."""
    return _ev("ModifiedEvent", f, f.parent) if f is not None and f.parent is not None else None


def store_size(mime, subject):
    # Exchange's Size is the store size: larger than the MIME it renders.
    return len(mime) + 512 + len(mime) // 8 + 2 * len(subject or "")


def folder_record(f):
    return {"t": "f", "id": f.id, "num": f.num, "parent": f.parent.id if f.parent else None,
            "name": f.name, "class": f.folder_class, "element": f.element, "dist": f.distinguished,
            "ck": f.change_key, "cn": f.cn, "next_item_num": f.next_item_num}


def item_record(it):
    return {"t": "i", "id": it.id, "num": it.num, "folder": it.folder.id,
            "mime": base64.b64encode(it.mime).decode("ascii"), "subject": it.subject,
            "from_name": it.from_name, "from_addr": it.from_addr, "to": it.to, "cc": it.cc,
            "received": it.received, "sent": it.sent, "modified": it.modified, "size": it.size,
            "read": it.is_read, "class": it.item_class, "att": it.has_attachments,
            "mid": it.message_id, "draft": it.is_draft, "ck": it.change_key, "cn": it.cn,
            "ccn": it.created_cn, "kcn": it.content_cn, "flag": it.flag, "cats": it.categories,
            "ext": [[list(k), v] for k, v in sorted(it.ext.items())], "pim": it.pim}
