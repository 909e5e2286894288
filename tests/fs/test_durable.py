"""test_durable.py - nothing the user wrote is lost, nothing arrives twice:
kill -9 of the daemon right after calls return, the server down for a whole
stream of writes, faults injected while writing, conflicts with changes
made on the server meanwhile, and 16 processes writing at once.

On the test server over EWS and over ActiveSync 16.1. Not on SOGo: the
workload saves drafts, which ActiveSync 14.1 cannot (servers.CANNOT);
test_backends.py's kill -9 case covers SOGo's writes. This file is the
suite's most expensive, so ActiveSync gets a representative subset: the
kill -9 and server-down streams, two of the six write faults, the conflicts
that are not EWS change keys, and the lost CreateFolder answer; the
16-writer stress stays on EWS (the journal and the inode layer it loads are
the same code over either protocol)."""
import json
import os
import random
import subprocess
import sys
import time

import pytest

import email

from mountlib import wait_for
from servers import KINDS, has_eas, make_target
from test_sync import op
from test_write import drained, message, queued, write


@pytest.fixture(params=KINDS)
def kt(request, tmp_path):
    """A fresh server (80 messages) of each kind; each test requires what it
    needs (SOGo: drafts, faults)."""
    t = make_target(request.param, messages=80, seed=5, tls=True,
                    state=str(tmp_path / "server-state.json"))
    yield t
    t.close()


def arm(target, fault, ews_ops, **kw):
    """Arm fault on the operations that carry these EWS operations' work
    (ActiveSync: Sync carries creates, changes and deletes)."""
    for o in dict.fromkeys(op(target, x) for x in ews_ops):
        target.srv.fault(fault, operation=o, **kw)


def message_id(kind, srv, m, name):
    """The Message-ID of an Inbox file: from the server's item over EWS (no
    fetch), from its bytes over ActiveSync (user.exchangefs.id is a
    ServerId there)."""
    p = m.path("Inbox", name)
    if kind == "ews":
        return srv.item_info(os.getxattr(p, "user.exchangefs.id").decode())["message_id"]
    with open(p, "rb") as f:
        return email.message_from_bytes(f.read())["Message-ID"]


class Workload:
    """A stream of mixed writes through the mount and what the server must
    hold afterwards: every change exactly once."""

    def __init__(self, target, m, rnd, tag, drafts=True):
        srv = target.srv
        self.srv, self.m, self.rnd, self.tag = srv, m, rnd, tag
        # a message saved into a folder (not a draft) is EWS's alone (servers.CANNOT)
        self.kinds = ["draft", "save", "send", "delete", "move", "flag", "mkdir"]
        if not target.can("store_message"):
            self.kinds.remove("save")
        if not drafts:
            self.kinds.remove("draft")
        self.inbox = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))
        self.rnd.shuffle(self.inbox)
        self.mids = {n: message_id(target.kind, srv, m, n) for n in self.inbox}
        self.created = []   # (server folder path, subject)
        self.sent = []      # subjects, in order
        self.deleted = []   # message ids
        self.moved = []     # message ids now in Archive
        self.flagged = []   # message ids
        self.folders = []   # folder names made at the top
        self.n = 0

    def ops(self, count):
        kinds = self.kinds
        for i in range(count):
            yield self.rnd.choice(kinds) if i >= len(kinds) else kinds[i]

    def do(self, kind):
        m, self.n = self.m, self.n + 1
        subj = "%s %s %d" % (self.tag, kind, self.n)
        if kind == "draft":
            write(m.path("Drafts", "d%d.eml" % self.n), message(subj))
            self.created.append(("Drafts", subj))
        elif kind == "save":
            write(m.path("Archive", "s%d.eml" % self.n), message(subj))
            self.created.append(("Archive", subj))
        elif kind == "send":
            write(m.path("Outbox", "o%d.eml" % self.n), message(subj, to="erin@example.com"))
            self.sent.append(subj)
        elif kind in ("delete", "move", "flag") and self.inbox:
            name = self.inbox.pop()
            mid = self.mids[name]
            p = m.path("Inbox", name)
            if kind == "delete":
                os.unlink(p)
                self.deleted.append(mid)
            elif kind == "move":
                os.rename(p, m.path("Archive", name))
                self.moved.append(mid)
            else:
                os.setxattr(p, "user.mail.flag", b"flagged")
                self.flagged.append(mid)
        elif kind == "mkdir":
            name = "%s dir %d" % (self.tag, self.n)
            os.mkdir(m.path(name))
            self.folders.append(name)

    def check(self):
        srv = self.srv
        box = srv.mailbox()
        paths = {f["id"]: "/".join(f["path_parts"]) for f in box["folders"]}
        by_mid = {}
        for it in box["items"]:
            by_mid.setdefault(it["message_id"], []).append(it)
        for folder, subj in self.created:
            hits = [it for it in box["items"] if it["subject"] == subj]
            assert len(hits) == 1, "%r arrived %d times" % (subj, len(hits))
            assert paths[hits[0]["folder_id"]] == folder, subj
        sent = [s["subject"] for s in srv.sent() if s["subject"].startswith(self.tag)]
        assert sent == self.sent, "sent %r, expected %r" % (sent, self.sent)
        for subj in self.sent:
            hits = [it for it in box["items"] if it["subject"] == subj]
            assert len(hits) == 1 and paths[hits[0]["folder_id"]] == "Sent Items", subj
        for mid in self.deleted:
            where = [paths[it["folder_id"]] for it in by_mid.get(mid, [])]
            assert where == ["Deleted Items"], "deleted %s is in %r" % (mid, where)
        for mid in self.moved:
            where = [paths[it["folder_id"]] for it in by_mid.get(mid, [])]
            assert where == ["Archive"], "moved %s is in %r" % (mid, where)
        for mid in self.flagged:
            [it] = by_mid[mid]
            assert it["flag"] == "Flagged", mid
        names = [paths[f["id"]] for f in box["folders"]]
        for name in self.folders:
            assert names.count(name) == 1, "folder %r made %d times" % (name, names.count(name))


@pytest.fixture(params=KINDS)
def slow(request, tmp_path):
    """A server that takes a little while per request, so a kill -9 often
    lands while a request is in flight."""
    t = make_target(request.param, messages=80, seed=5, tls=True, latency_ms=25,
                    state=str(tmp_path / "server-state.json"))
    t.require("drafts")
    yield t
    t.close()


def test_kill9_at_random_points_loses_and_doubles_nothing(slow, mount):
    """40 writes and 20 kills over EWS; over ActiveSync 20 and 10 (cost).
    Drafts included: over ActiveSync an Add carried out unanswered goes
    again after the restart with the key it went out with (see
    test_eas_draft_whose_answer_was_lost_is_not_doubled_by_a_restart)."""
    m = mount(slow)
    m.wait_synced()
    rnd = random.Random(20261122)
    w = Workload(slow, m, rnd, "K9")
    n = 40 if slow.kind == "ews" else 20
    kinds = list(w.ops(n))
    kills = set(rnd.sample(range(len(kinds)), n // 2))
    for i, kind in enumerate(kinds):
        w.do(kind)
        if i in kills:
            # right after the user's call returned; sometimes a moment
            # later, while the applier has a request in flight
            if rnd.random() < 0.5:
                time.sleep(rnd.random() * 0.08)
            m.kill()
            m.start()
    drained(m, timeout=120)
    w.check()
    assert "changes failed: 0" in m.status()
    m.stop()


def test_server_down_for_the_whole_stream(kt, mount):
    kt.require("drafts", "restart")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    w = Workload(kt, m, random.Random(7), "DOWN")
    server.stop()
    for kind in w.ops(25):
        w.do(kind)
    assert queued(m) >= 20
    assert "changes queued" in m.status()
    time.sleep(2)  # the applier fails and backs off meanwhile
    server.start()
    drained(m, timeout=120)
    w.check()


@pytest.mark.parametrize("fault,kw", [
    ("reset_after", {"count": 4}),
    ("reset", {"count": 3}),
    ("http503", {"count": 3}),
    ("http500", {"count": 2}),
    ("http429", {"count": 2, "retry_after": 1}),
    ("busy", {"count": 3, "backoff_ms": 300}),
])
def test_faults_while_writing(kt, mount, fault, kw):
    """Every fault on both protocols of the test server; over ActiveSync
    each twice per command, not three or four times (every retry backs off
    1, 2, 4 s: three faults on each of Sync, SendMail, MoveItems and
    FolderCreate made it 30 s). "busy" is EWS's ErrorServerBusy; the
    ActiveSync front-end answers it as 503 with Retry-After."""
    kt.require("drafts", "faults")
    if kt.kind != "ews":
        kw = dict(kw, count=2)
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    w = Workload(kt, m, random.Random(hash(fault) & 0xffff), "F" + fault)
    ops = list(w.ops(14))
    arm(kt, fault, ("CreateItem", "SendItem", "MoveItem", "DeleteItem", "UpdateItem", "CreateFolder"), **kw)
    for kind in ops:
        w.do(kind)
    drained(m, timeout=120)
    server.clear_faults()
    w.check()


def stalled(target, ews_op):
    """Make the operation fail (503) until cleared, so a local change waits queued."""
    arm(target, "http503", (ews_op,), count=100000)


def resume(server, m):
    server.clear_faults()  # the test server's, whichever protocol
    drained(m, timeout=90)


def test_conflict_flag_changed_on_server_is_reapplied(server, mount):
    """EWS only: a change key made stale by a change on the server is an EWS
    conflict (ActiveSync changes carry no key)."""
    m = mount(server)
    m.wait_synced()
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[0]
    p = m.path("Inbox", name)
    sid = os.getxattr(p, "user.exchangefs.id").decode()
    server.fault("http503", count=100000, operation="UpdateItem")
    os.setxattr(p, "user.mail.flag", b"flagged")
    server.set_categories(sid, ["Blue"])  # a new change key on the server
    resume(server, m)
    info = server.item_info(sid)
    assert info["flag"] == "Flagged" and info["categories"] == ["Blue"]
    assert any(r.get("op") == "UpdateItem" for r in server.stats()["recent"])


def test_conflict_move_of_item_deleted_on_server_is_dropped(kt, mount):
    kt.require("faults")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[1]
    mid = message_id(kt.kind, server, m, name)
    sid = next(it["id"] for it in server.items("Inbox") if it["message_id"] == mid)
    stalled(kt, "MoveItem")
    os.rename(m.path("Inbox", name), m.path("Archive", name))
    server.delete(sid)
    resume(server, m)
    assert "no longer exists on the server" in m.log_text()
    wait_for(lambda: name not in os.listdir(m.path("Archive")), 10, what="the file to go")
    assert "changes failed: 0" in m.status()


def test_conflict_edit_of_draft_deleted_on_server_recreates_it(kt, mount):
    kt.require("drafts", "faults")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    p = m.path("Drafts", "gone.eml")
    write(p, message("Gone 1"))
    drained(m)
    [it] = server.items("Drafts", subject="Gone 1")
    stalled(kt, "UpdateItem")
    write(p, message("Gone 2"))
    server.delete(it["id"])
    resume(server, m)
    drafts = [d["subject"] for d in server.items("Drafts")]
    assert drafts.count("Gone 2") == 1 and "Gone 1" not in drafts
    assert open(p, "rb").read() == message("Gone 2")
    assert "saving it as a new draft" in m.log_text()


WORKER = r'''
import json, os, random, sys, time
root, wid, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rnd = random.Random(wid)
mine = {}      # name -> (folder, subject)
gone = []
end = time.monotonic() + seconds
n = 0
def msg(s):
    return ("From: w@example.com\r\nTo: x@example.com\r\nSubject: %s\r\n"
            "Date: Thu, 13 Feb 2025 10:30:00 +0000\r\n\r\nbody %s\r\n" % (s, s)).encode()
while time.monotonic() < end:
    n += 1
    r = rnd.random()
    if r < 0.45 or not mine:
        folder = rnd.choice(["Archive", "Drafts", "Stress"])
        name = "w%d-%d.eml" % (wid, n)
        subj = "W%d %d" % (wid, n)
        with open(os.path.join(root, folder, name), "wb") as f:
            f.write(msg(subj))
        mine[name] = (folder, subj)
    elif r < 0.7:
        name = rnd.choice(sorted(mine))
        folder, subj = mine[name]
        to = rnd.choice([x for x in ["Archive", "Stress"] if x != folder] or ["Archive"])
        if folder == "Drafts":
            continue
        os.rename(os.path.join(root, folder, name), os.path.join(root, to, name))
        mine[name] = (to, subj)
    elif r < 0.85:
        name = rnd.choice(sorted(mine))
        folder, subj = mine.pop(name)
        os.unlink(os.path.join(root, folder, name))
        gone.append(subj)
    else:
        name = rnd.choice(sorted(mine))
        folder, subj = mine[name]
        os.setxattr(os.path.join(root, folder, name), "user.mail.read", b"1")
        os.listdir(os.path.join(root, folder))
with open(out, "w") as f:
    json.dump({"mine": mine, "gone": gone}, f)
'''


def test_sixteen_writers_at_once(server, mount, tmp_path):
    """EWS only (the cost: see the module's docstring)."""
    m = mount(server)
    m.wait_synced()
    os.mkdir(m.path("Stress"))
    drained(m)
    seconds = float(os.environ.get("EXCHANGEFS_STRESS_SECONDS", "20"))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), m.mountpoint, str(i), str(seconds),
                               str(tmp_path / ("w%d.json" % i))]) for i in range(16)]
    for p in procs:
        assert p.wait(seconds + 120) == 0
    drained(m, timeout=300)
    box = server.mailbox()
    paths = {f["id"]: "/".join(f["path_parts"]) for f in box["folders"]}
    by_subject = {}
    for it in box["items"]:
        by_subject.setdefault(it["subject"], []).append(paths[it["folder_id"]])
    total = 0
    for i in range(16):
        res = json.loads((tmp_path / ("w%d.json" % i)).read_text())
        for name, (folder, subj) in res["mine"].items():
            assert by_subject.get(subj) == [folder], "%s: %r" % (subj, by_subject.get(subj))
            assert os.path.exists(m.path(folder, name))
            total += 1
        for subj in res["gone"]:
            assert by_subject.get(subj, []) in ([], ["Deleted Items"]), subj
    assert total > 16
    assert "changes failed: 0" in m.status()
    m.stop()


def test_mkdir_whose_answer_was_lost_is_adopted(kt, mount):
    """CreateFolder carried out but unanswered: the retry hears the name
    exists; the next folder sync finds it and the queue goes on into it."""
    kt.require("faults")
    server = kt.srv
    m = mount(kt)
    m.wait_synced()
    arm(kt, "reset_after", ("CreateFolder",), count=1)
    os.mkdir(m.path("Lost answer"))
    if kt.can("store_message"):
        write(m.path("Lost answer", "inside.eml"), message("Inside lost"))
        subject = "Inside lost"
    else:   # ActiveSync stores no message in a folder: move one into it
        name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[0]
        subject = os.getxattr(m.path("Inbox", name), "user.mail.subject").decode()
        os.rename(m.path("Inbox", name), m.path("Lost answer", name))
    drained(m, timeout=120)
    paths = ["/".join(f["path_parts"]) for f in server.mailbox()["folders"]]
    assert paths.count("Lost answer") == 1
    assert [it["subject"] for it in server.items("Lost answer")] == [subject]
    assert "changes failed: 0" in m.status()
    assert "an earlier attempt made it" in m.log_text()
    assert os.listdir(m.path()).count("Lost answer") == 1


def test_eas_write_answered_incomplete_is_sent_again(mount):
    """ActiveSync only by nature: a Sync write answered status 13 ("resend
    the full request"; SOGo does now and then, and test_backends' kill -9
    case on SOGo lost a flag to it as a refusal) is sent again, not dropped.
    The periodic sync is off, so the write is the Sync the fault meets."""
    if not has_eas():
        pytest.skip("this exchangefs has no ActiveSync backend (--protocol eas)")
    t = make_target("eas", messages=10, seed=5)
    try:
        m = mount(t, extra=["--sync-interval", "600"])
        m.wait_synced()
        name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[0]
        mid = message_id("eas", t.srv, m, name)
        t.srv.fault("incomplete", count=1, operation="Sync")
        os.setxattr(m.path("Inbox", name), "user.mail.flag", b"flagged")
        drained(m, timeout=60)
        assert not t.srv.stats()["faults"], "the write never met the fault"
        [it] = [it for it in t.srv.items("Inbox") if it["message_id"] == mid]
        assert it["flag"] == "Flagged"
        assert "changes failed: 0" in m.status()
        assert "refused" not in m.log_text()
        m.stop()
    finally:
        t.close()


def test_eas_draft_whose_answer_was_lost_is_not_doubled_by_a_restart(mount):
    """ActiveSync only by nature (EWS finds an earlier attempt by its token):
    a draft's Sync Add carried out but unanswered, then kill -9. After the
    restart the Add goes again with the same ClientId and the key the lost
    write went out with (kept in the cache directory), so the server answers
    it as a resend; a write that started from SyncKey 0 made the server
    forget the ClientIds, and the draft came twice."""
    if not has_eas():
        pytest.skip("this exchangefs has no ActiveSync backend (--protocol eas)")
    t = make_target("eas", messages=10, seed=5)
    try:
        m = mount(t, extra=["--sync-interval", "600"])
        m.wait_synced()
        t.srv.fault("reset_after", count=1, operation="Sync")
        write(m.path("Drafts", "lost.eml"), message("Lost answer draft"))
        wait_for(lambda: t.srv.items("Drafts", subject="Lost answer draft"), 30, interval=0.01,
                 what="the Add to be carried out")
        m.kill()
        m.start()
        drained(m, timeout=60)
        assert [d["subject"] for d in t.srv.items("Drafts")].count("Lost answer draft") == 1
        assert "changes failed: 0" in m.status()
        m.stop()
    finally:
        t.close()


def test_eas_send_whose_answer_was_lost_goes_once(mount):
    """ActiveSync only by nature: a SendMail carried out but unanswered is
    sent again with the same ClientId; the server's "previously sent"
    (status 118) means done, not a refusal: one message out, no failure."""
    if not has_eas():
        pytest.skip("this exchangefs has no ActiveSync backend (--protocol eas)")
    t = make_target("eas", messages=10, seed=5)
    try:
        m = mount(t)
        m.wait_synced()
        t.srv.fault("reset_after", count=1, operation="SendMail")
        write(m.path("Outbox", "once.eml"), message("Sent once", to="erin@example.com"))
        drained(m, timeout=60)
        assert [s["subject"] for s in t.srv.sent()].count("Sent once") == 1
        assert not t.srv.stats()["faults"], "the send never met the fault"
        assert "changes failed: 0" in m.status()
        m.stop()
    finally:
        t.close()
