# Persistence of the test mailbox (--state FILE): a JSON-lines journal.
#
# The file starts with a snapshot (meta, folders parent-first, items, tombstones,
# soft-deleted items, sent messages) and every change appends the records it
# touched (a whole item with its flag, categories and extended properties, a
# read flag, a delete, a sent message...) plus a meta record, flushed before the change is answered, so a
# killed server restarts with the same folders, items, ids, change numbers and
# sync-state epoch. On start the journal is replayed and rewritten as a fresh
# snapshot. A torn last line (crash mid-write) is ignored.

import base64
import json
import os

from mailbox import Folder, Item, Mailbox, Tombstone, folder_record, item_record


class Journal:
    """Append-only writer; Mailbox calls append() with a list of records
    while it holds its lock, so lines are never interleaved."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def append(self, records):
        self.f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self.f.flush()

    def close(self):
        self.f.close()


def snapshot(mb, path):
    """Write the whole mailbox to path (atomically) and journal to it from now on."""
    tmp = path + ".tmp"
    with mb.lock, open(tmp, "w", encoding="utf-8") as out:
        def put(rec):
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        put(mb._meta_record())
        for f in [mb.root] + mb.descendants(mb.root):
            put(folder_record(f))
        for f in [mb.root] + mb.descendants(mb.root):
            for it in sorted(f.items.values(), key=lambda i: i.cn):
                put(item_record(it))
            for t in f.log_ref:
                if isinstance(t, Tombstone):
                    put({"t": "ti", "folder": f.id, "id": t.id, "num": t.num, "ck": t.change_key, "cn": t.cn})
        for t in mb.h_log_ref:
            if isinstance(t, Tombstone):
                put({"t": "tf", "id": t.id, "num": t.num, "ck": t.change_key, "cn": t.cn})
        for it in mb.dumpster:
            put(dict(item_record(it), t="sd"))
        for rec in mb.sent:
            put(dict(rec, t="sent"))
        out.flush()
        os.fsync(out.fileno())
        os.replace(tmp, path)
        if mb.journal is not None:
            mb.journal.close()
        mb.journal = Journal(path)


def load(path):
    """Rebuild a Mailbox from a journal file; None when the file is empty."""
    try:
        with open(path, encoding="utf-8") as inp:
            lines = inp.read().split("\n")
    except FileNotFoundError:
        return None
    mb = None
    folder_tombs, item_tombs = [], {}         # item_tombs: folder id -> [Tombstone]
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue                            # empty or torn line
        t = rec.get("t")
        if t == "m":
            if mb is None:
                mb = Mailbox(rec["uid"], standard=False)
            mb.instance, mb.epoch, mb.counter = rec["instance"], rec["epoch"], rec["counter"]
            mb.next_folder_num = rec["next_folder_num"]
            mb.markers = rec.get("markers") or {}
        elif mb is None:
            continue
        elif t == "f":
            _put_folder(mb, rec)
        elif t == "df":
            f = mb.folders.pop(rec["id"], None)
            if f is not None:
                for it in f.items.values():
                    mb.items.pop(it.id, None)
                if f.parent is not None and f in f.parent.children:
                    f.parent.children.remove(f)
                f.alive = False
                folder_tombs.append(Tombstone(f.id, f.num, f.change_key, rec["cn"]))
        elif t == "tf":
            folder_tombs.append(Tombstone(rec["id"], rec["num"], rec["ck"], rec["cn"]))
        elif t == "i":
            _put_item(mb, rec)
        elif t == "r":
            it = mb.items.get(rec["id"])
            if it is not None:
                it.is_read, it.cn, it.change_key, it.modified = rec["read"], rec["cn"], rec["ck"], rec["modified"]
        elif t == "di":
            it = mb.items.pop(rec["id"], None)
            if it is not None:
                del it.folder.items[it.num]
                it.alive = False
                item_tombs.setdefault(it.folder.id, []).append(
                    Tombstone(it.id, it.num, it.change_key, rec["cn"], it.folder.num))
                if rec.get("soft"):
                    mb.dumpster.append(it)
        elif t == "sd":
            it = _item_from(mb, rec)
            if it is not None:
                it.alive = False
                mb.dumpster.append(it)
        elif t == "sent":
            mb.sent.append({k: v for k, v in rec.items() if k != "t"})
        elif t == "cs":
            mb.sent = []
        elif t == "ti":
            f = mb.folders.get(rec["folder"])
            if f is not None:
                item_tombs.setdefault(f.id, []).append(Tombstone(rec["id"], rec["num"], rec["ck"], rec["cn"], f.num))
    if mb is None:
        return None
    _rebuild_indexes(mb, folder_tombs, item_tombs)
    mb.dumpster = [it for it in mb.dumpster if it.folder.alive and mb.folders.get(it.folder.id) is it.folder]
    return mb


def _put_folder(mb, rec):
    parent = mb.folders.get(rec["parent"]) if rec["parent"] else None
    f = mb.folders.get(rec["id"])
    if f is None:
        f = Folder(rec["id"], rec["num"], parent, rec["name"], rec["class"], rec["element"], rec["dist"])
        mb.folders[f.id] = f
        if parent is not None:
            parent.children.append(f)
    elif f.parent is not parent:
        f.parent.children.remove(f)
        parent.children.append(f)
        f.parent = parent
    f.name, f.folder_class, f.change_key, f.cn = rec["name"], rec["class"], rec["ck"], rec["cn"]
    f.next_item_num = max(f.next_item_num, rec["next_item_num"])
    if f.distinguished:
        mb.distinguished[f.distinguished] = f


def _put_item(mb, rec):
    it = _item_from(mb, rec)
    if it is None:
        return
    old = mb.items.get(rec["id"])
    if old is not None:
        del old.folder.items[old.num]
    it.folder.items[it.num] = it
    mb.items[it.id] = it


def _item_from(mb, rec):
    f = mb.folders.get(rec["folder"])
    if f is None:
        return None
    it = Item()
    it.id, it.num, it.folder = rec["id"], rec["num"], f
    it.mime = base64.b64decode(rec["mime"])
    it.subject, it.from_name, it.from_addr = rec["subject"], rec["from_name"], rec["from_addr"]
    it.to, it.cc, it.received, it.sent = rec["to"], rec["cc"], rec["received"], rec["sent"]
    it.modified, it.size, it.is_read, it.item_class = rec["modified"], rec["size"], rec["read"], rec["class"]
    it.has_attachments, it.message_id, it.is_draft = rec["att"], rec["mid"], rec["draft"]
    it.change_key, it.cn, it.created_cn, it.content_cn = rec["ck"], rec["cn"], rec["ccn"], rec["kcn"]
    it.flag = rec.get("flag") or "NotFlagged"       # records of older journals lack these
    it.categories = list(rec.get("cats") or [])
    it.ext = {tuple(k): v for k, v in rec.get("ext") or []}
    it.pim = rec.get("pim")
    it.alive = True
    return it


def _rebuild_indexes(mb, folder_tombs, item_tombs):
    mb.root = mb.distinguished["root"]
    mb.msgroot = mb.distinguished["msgfolderroot"]
    for f in mb.folders.values():
        entries = [(it.cn, it) for it in f.items.values()]
        entries += [(t.cn, t) for t in item_tombs.get(f.id, ())]
        entries.sort(key=lambda e: e[0])
        f.log_cn = [e[0] for e in entries]
        f.log_ref = [e[1] for e in entries]
        f.stale = 0
        f.unread = sum(1 for it in f.items.values() if not it.is_read)
        f.next_item_num = max([f.next_item_num] + [e[1].num + 1 for e in entries])
        f.sorted_cache = None
    entries = [(f.cn, f) for f in mb.folders.values()] + [(t.cn, t) for t in folder_tombs]
    entries.sort(key=lambda e: e[0])
    mb.h_log_cn = [e[0] for e in entries]
    mb.h_log_ref = [e[1] for e in entries]
    mb.next_folder_num = max([mb.next_folder_num] + [e[1].num + 1 for e in entries])
