"""test_write.py - write-back through a real mount, checked on the server:
copy into Drafts and other folders, send through Outbox, delete, move,
rename, folder operations, flags as extended attributes, editing drafts in
place and the editors' way, refused content, local-only files. Each test
runs on every kind of server (tests/fs/servers.py: the test server over EWS
and over ActiveSync 16.1, SOGo over ActiveSync 14.1) unless a kind truly
cannot do it (the skip says why) or the test is EWS-specific by nature
(its docstring says so). Files are found by their bytes or Message-ID, not
by item id: an ActiveSync id is not the test server's."""
import email.parser
import email.policy
import errno
import os
import shutil
import subprocess
import threading
import time

import pytest

from mountlib import wait_for

SOGO_WAIT = 60          # SOGo looks for changes every 5 s

# the well-known folders by kind (SOGo: the IMAP names, which its ActiveSync shows)
FOLDER_NAMES = {"sogo": {"Inbox": "INBOX", "Sent Items": "Sent", "Deleted Items": "Trash"}}


def fname(target, name):
    """The name of well-known folder `name` (EWS's) on this kind of server."""
    return FOLDER_NAMES.get(target.kind, {}).get(name, name)


def message(subject, to="bob@example.com", date="Thu, 13 Feb 2025 10:30:00 +0000", body="Hello.\r\n"):
    hdr = "From: Alice <alice@example.com>\r\n"
    if to:
        hdr += "To: %s\r\n" % to
    return (hdr + "Subject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s"
            % (subject, date, subject.replace(" ", "."), body)).encode()


def queued(m):
    for line in m.status().splitlines():
        if line.startswith("changes queued:"):
            return int(line.split(":")[1].split()[0])
    raise AssertionError("no queue line in status:\n" + m.status())


def drained(m, timeout=60):
    """Wait until every queued change reached the server."""
    wait_for(lambda: queued(m) == 0, timeout, interval=0.05, what="the journal to drain")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def subjects(srv, path):
    return sorted(it["subject"] for it in srv.items(path))


def wait_server(pred, target, what):
    return wait_for(pred, SOGO_WAIT if target.kind == "sogo" else 30, interval=0.2, what=what)


def emls(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".eml"))


def file_of(d, mime):
    """The name of the file in directory d holding exactly these bytes."""
    for n in emls(d):
        with open(os.path.join(d, n), "rb") as f:
            if f.read() == mime:
                return n
    return None


def server_item(target, folder, name, m):
    """The server's item (its info) behind file `name` of `folder` on mount m."""
    with open(m.path(folder, name), "rb") as f:
        data = f.read()
    for it in target.srv.items(folder):
        if target.srv.item_mime(it["id"]) == data:
            return it
    raise AssertionError("no item on the server for %s/%s" % (folder, name))


def mid_of(path):
    """The Message-ID of the message file at path, from its header."""
    with open(path, "rb") as f:
        head = email.parser.BytesHeaderParser(policy=email.policy.default).parse(f)
    return str(head["Message-ID"])


def by_message_id(srv, message_id):
    """[(folder path, item)] of the server's items with this Message-ID."""
    return [(it["folder_path"], it) for it in srv.mailbox()["items"] if it.get("message_id") == message_id]


# For what the daemon decides alone (refusals, local files, local renames):
# the test server's two protocols show it; SOGo (a new user and its corpus,
# ~5 s a test) would add only time to the suite's budget.
LOCAL = pytest.mark.parametrize("target", ["ews", "eas"], indirect=True)
# What test_backends.py already checks on SOGo (flags, move, sending) or
# what only the daemon decides once the server did its part (the suffix of
# a clashing name, the reason of a refused send): SOGo left out for the
# suite's time budget.
ON_TEST_SERVER = LOCAL


def needs(*features):
    """A test of `live` needing what some kinds cannot do: skipped (with
    the reason) before anything is mounted."""
    def mark(fn):
        fn.needs = features
        return fn
    return mark


@pytest.fixture
def live(target, mount, request):
    target.require(*getattr(request.function, "needs", ()))
    m = mount(target)
    m.wait_synced()
    return target, m


@pytest.fixture
def ews_live(server, mount):
    """The EWS test server (120 messages) mounted, for the EWS-only tests."""
    m = mount(server)
    m.wait_synced()
    return server, m


@needs("drafts")
def test_copy_into_drafts_makes_a_draft(live, tmp_path):
    """EWS stores the bytes written; ActiveSync 16.1 builds the draft from
    its fields (the server renders the MIME), and the file keeps what was
    written until the server changes the draft."""
    target, m = live
    srv = target.srv
    src = tmp_path / "note.eml"
    src.write_bytes(message("Draft one"))
    subprocess.run(["cp", str(src), m.path("Drafts")], check=True)
    drained(m)
    [it] = srv.items("Drafts", subject="Draft one")
    assert it["is_draft"] is True
    if target.kind == "ews":
        assert srv.item_mime(it["id"]) == src.read_bytes()
    else:
        assert b"Subject: Draft one" in srv.item_mime(it["id"])
    # the file keeps the user's name and bytes, and now has the server's id
    p = m.path("Drafts", "note.eml")
    assert open(p, "rb").read() == src.read_bytes()
    if target.kind == "ews":
        wait_for(lambda: os.getxattr(p, "user.exchangefs.id").decode() == it["id"], 10,
                 what="the new id on the file")
    # the next sync reports the item: still one file, no duplicate
    m.wait_next_sync()
    m.wait_next_sync()
    assert [n for n in os.listdir(m.path("Drafts")) if "Draft one" in n or n == "note.eml"] == ["note.eml"]
    assert open(p, "rb").read() == src.read_bytes()


def test_copy_into_a_folder_is_a_normal_message(ews_live):
    """EWS only: ActiveSync cannot store a message in a folder (only send,
    or a draft from 16.0 on); the refusal is test_eas_write's."""
    srv, m = ews_live
    write(m.path("Archive", "kept.eml"), message("Kept copy", date="Mon, 03 Mar 2025 08:15:00 +0100"))
    drained(m)
    [it] = srv.items("Archive", subject="Kept copy")
    assert it["is_draft"] is False
    assert it["received"] == 1740986100  # its own Date, not the upload time


def test_send_through_outbox(live):
    target, m = live
    srv, sent_items = target.srv, fname(target, "Sent Items")
    user = getattr(srv, "address", None) or srv.user + "@example.com"
    before = len(srv.sent())
    mime = message("Sent reply", to="carol@example.com").replace(b"alice@example.com", user.encode())
    write(m.path("Outbox", "reply.eml"), mime)
    drained(m)
    wait_server(lambda: len(srv.sent()) == before + 1, target, "the message at the transport")
    sent = srv.sent()
    assert sent[-1]["subject"] == "Sent reply"
    assert "carol@example.com" in sent[-1]["recipients"]
    wait_server(lambda: subjects(srv, sent_items).count("Sent reply") == 1, target, "the copy in Sent")
    wait_for(lambda: "reply.eml" not in os.listdir(m.path("Outbox")), 10, what="Outbox to empty")
    wait_server(lambda: sum(b"Subject: Sent reply" in open(m.path(sent_items, n), "rb").read()
                            for n in emls(m.path(sent_items))) == 1, target, "the copy in Sent on the mount")
    m.wait_next_sync()
    assert sum(b"Subject: Sent reply" in open(m.path(sent_items, n), "rb").read()
               for n in emls(m.path(sent_items))) == 1


@ON_TEST_SERVER
def test_refused_send_stays_in_outbox_with_the_reason(live):
    """A send the server refuses (no recipients) stays in Outbox with the
    reason: every kind refuses it (EWS: ErrorInvalidRecipients, named in
    the status; ActiveSync: SendMail's status, in the server's words)."""
    target, m = live
    srv = target.srv
    p = m.path("Outbox", "nobody.eml")
    write(p, message("No recipients", to=None))
    wait_for(lambda: "failed: 1" in m.status().replace("changes failed: 1", "failed: 1"),
             SOGO_WAIT if target.kind == "sogo" else 30, what="the send to fail")
    assert os.path.exists(p)
    err = os.getxattr(p, "user.exchangefs.error").decode()
    assert "nobody.eml" in m.status()
    if target.kind == "ews":
        assert "recipient" in err.lower()
        assert "ErrorInvalidRecipients" in m.status()
    assert err
    assert not [s for s in srv.sent() if s["subject"] == "No recipients"]
    # fixed by the user: rewritten with a recipient, it goes
    write(p, message("No recipients", to="dave@example.com"))
    drained(m)
    wait_server(lambda: [s for s in srv.sent() if s["subject"] == "No recipients"], target, "the send")
    wait_for(lambda: not os.path.exists(p), 10, what="the message to leave Outbox")


def test_rm_moves_to_deleted_items_and_there_deletes(live):
    target, m = live
    srv, inbox, trash = target.srv, target.inbox, fname(target, "Deleted Items")
    name = emls(m.path(inbox))[0]
    # known before the body is read (ActiveSync: from the MIME's first bytes)
    xmid = os.getxattr(m.path(inbox, name), "user.mail.message_id").decode()
    mid = mid_of(m.path(inbox, name))
    assert xmid == mid
    n_inbox = len(srv.items(inbox))
    os.unlink(m.path(inbox, name))
    assert name not in os.listdir(m.path(inbox))
    drained(m)
    assert len(srv.items(inbox)) == n_inbox - 1
    assert [it["message_id"] for it in srv.items(trash)].count(mid) == 1
    m.wait_next_sync()
    [trashed] = wait_server(lambda: [n for n in emls(m.path(trash))
                                     if mid_of(m.path(trash, n)) == mid],
                            target, "the message in the trash on the mount")
    os.unlink(m.path(trash, trashed))
    drained(m)
    assert not by_message_id(srv, mid)


def test_mv_across_folders_keeps_the_name(live):
    target, m = live
    srv, inbox = target.srv, target.inbox
    name = emls(m.path(inbox))[1]
    old_id = os.getxattr(m.path(inbox, name), "user.exchangefs.id").decode()
    mid = mid_of(m.path(inbox, name))
    ino = os.stat(m.path(inbox, name)).st_ino
    os.rename(m.path(inbox, name), m.path("Archive", name))
    drained(m)
    assert [f for f, _ in by_message_id(srv, mid)] == ["Archive"]
    m.wait_next_sync()
    assert name in os.listdir(m.path("Archive"))
    assert os.stat(m.path("Archive", name)).st_ino == ino
    new_id = os.getxattr(m.path("Archive", name), "user.exchangefs.id").decode()
    assert new_id != old_id
    if target.kind == "ews":
        assert srv.item_info(new_id)["folder_path"] == "Archive"


@LOCAL
def test_rename_within_a_folder_is_local(live):
    target, m = live
    srv, inbox = target.srv, target.inbox
    name = emls(m.path(inbox))[2 % len(emls(m.path(inbox)))]
    ids = sorted(it["id"] for it in srv.items(inbox))
    if target.can("stats"):
        srv.reset_stats()
    os.rename(m.path(inbox, name), m.path(inbox, "renamed.eml"))
    assert queued(m) == 0
    if target.can("stats"):
        requests = srv.stats()["requests"]
        writes = ("MoveItem", "UpdateItem", "CreateItem") if target.kind == "ews" else ("MoveItems", "SendMail")
        assert not any(op in requests for op in writes), requests
    m.wait_next_sync()
    assert "renamed.eml" in os.listdir(m.path(inbox)) and name not in os.listdir(m.path(inbox))
    assert sorted(it["id"] for it in srv.items(inbox)) == ids


@ON_TEST_SERVER
def test_name_clash_in_target_gets_a_suffix(live):
    target, m = live
    srv, inbox = target.srv, target.inbox
    one = srv.item_mime(srv.deliver("Archive", subject="Clash one"))
    two = srv.item_mime(srv.deliver(inbox, subject="Clash two"))
    n1 = wait_server(lambda: file_of(m.path("Archive"), one), target, "the first message on the mount")
    n2 = wait_server(lambda: file_of(m.path(inbox), two), target, "the second message on the mount")
    os.rename(m.path(inbox, n2), m.path(inbox, n1))
    os.rename(m.path(inbox, n1), m.path("Archive", n1))
    drained(m)
    suffixed = n1[:-4] + " (2).eml"
    wait_for(lambda: suffixed in os.listdir(m.path("Archive")), 10, what="the suffixed name")
    ss = subjects(srv, "Archive")
    assert ss.count("Clash one") == 1 and ss.count("Clash two") == 1
    assert open(m.path("Archive", n1), "rb").read() == one
    assert open(m.path("Archive", suffixed), "rb").read() == two


def test_folders_mkdir_move_rename_rmdir(live):
    target, m = live
    srv, inbox = target.srv, target.inbox
    paths = lambda: {"/".join(f["path_parts"]) for f in srv.mailbox()["folders"]}  # noqa: E731
    os.mkdir(m.path("Projects"))
    drained(m)
    assert srv.folder("Projects")["folder_class"] == "IPF.Note"
    name = emls(m.path(inbox))[0]
    mid = mid_of(m.path(inbox, name))
    os.rename(m.path(inbox, name), m.path("Projects", "plan.eml"))
    os.rename(m.path("Projects"), m.path("Archive", "Projects"))
    drained(m)
    assert [f for f, _ in by_message_id(srv, mid)] == ["Archive/Projects"]
    os.rename(m.path("Archive", "Projects"), m.path("Archive", "Old-projects"))
    drained(m)
    assert [f for f, _ in by_message_id(srv, mid)] == ["Archive/Old-projects"]
    with pytest.raises(OSError) as e:
        os.rmdir(m.path("Archive", "Old-projects"))
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(m.path("Archive", "Old-projects", "plan.eml"))
    os.rmdir(m.path("Archive", "Old-projects"))
    drained(m)
    assert "Archive/Old-projects" not in paths() and "Projects" not in paths()
    if target.kind == "sogo":
        return      # IMAP's hierarchy separator is '/': SOGo cannot name a folder "A/B"
    # a slash in a folder name is U+2215 on the mount and '/' on the server
    os.mkdir(m.path("A\u2215B"))
    drained(m)
    assert "A/B" in [f["name"] for f in srv.mailbox()["folders"]]


def test_well_known_folders_refuse_rmdir_and_rename(live):
    target, m = live
    for name in ("Inbox", "Drafts", "Sent Items", "Deleted Items", "Outbox"):
        name = fname(target, name)
        with pytest.raises(OSError) as e:
            os.rmdir(m.path(name))
        assert e.value.errno in (errno.EPERM, errno.ENOTEMPTY), name
        with pytest.raises(OSError) as e:
            os.rename(m.path(name), m.path(name + "-x"))
        assert e.value.errno == errno.EPERM, name
    os.mkdir(m.path("Empty", "sub"))
    drained(m)


@ON_TEST_SERVER
def test_flags_as_extended_attributes(live):
    target, m = live
    srv, inbox = target.srv, target.inbox
    name = emls(m.path(inbox))[3 % len(emls(m.path(inbox)))]
    p = m.path(inbox, name)
    sid = server_item(target, inbox, name, m)["id"]
    names = os.listxattr(p)
    for a in ("user.mail.read", "user.mail.flag", "user.mail.categories"):
        assert a in names
    cats = target.can("categories")
    subprocess.run(["setfattr", "-n", "user.mail.read", "-v", "1", p], check=True)
    subprocess.run(["setfattr", "-n", "user.mail.flag", "-v", "flagged", p], check=True)
    if cats:
        os.setxattr(p, "user.mail.categories", b"Red, Project X")
    assert os.getxattr(p, "user.mail.flag") == b"flagged"
    drained(m)
    info = srv.item_info(sid)
    assert info["is_read"] is True and info["flag"] == "Flagged"
    if cats:
        assert info["categories"] == ["Red", "Project X"]
    # IMAP (SOGo's store) has no "complete" state: \Flagged is all it keeps
    os.setxattr(p, "user.mail.flag", b"complete" if target.kind != "sogo" else b"none")
    os.setxattr(p, "user.mail.read", b"0")
    if cats:
        os.removexattr(p, "user.mail.categories")
    drained(m)
    info = srv.item_info(sid)
    assert info["flag"] == ("Complete" if target.kind != "sogo" else "NotFlagged")
    assert info["is_read"] is False and info["categories"] == []
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.mail.flag", b"sparkly")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.mail.subject", b"nope")
    assert e.value.errno == errno.EPERM
    # changes made on the server come back
    srv.set_flag(sid, "Flagged")
    if cats:
        srv.set_categories(sid, ["Blue"])
    wait_server(lambda: os.getxattr(p, "user.mail.flag") == b"flagged", target, "flag from server")
    if cats:
        wait_for(lambda: os.getxattr(p, "user.mail.categories") == b"Blue", 10, what="categories from server")


@LOCAL
def test_messages_outside_drafts_are_read_only(live):
    target, m = live
    name = emls(m.path(target.inbox))[4 % len(emls(m.path(target.inbox)))]
    p = m.path(target.inbox, name)
    before = open(p, "rb").read()
    for action in (lambda: open(p, "ab", buffering=0).write(b"x"),
                   lambda: open(p, "r+b", buffering=0).write(b"x"),
                   lambda: os.truncate(p, 0)):
        with pytest.raises(OSError) as e:
            action()
        assert e.value.errno == errno.EPERM
    assert open(p, "rb").read() == before


@LOCAL
def test_not_a_message_is_refused_and_kept(live):
    """The refusal is local (LOCAL: not on SOGo); the rescued file is
    uploaded as a draft where the server can store one."""
    target, m = live
    srv = target.srv
    p = m.path("Drafts", "bad.eml")
    data = b"this is not a message\nat all\n"
    with pytest.raises(OSError) as e:
        with open(p, "wb") as f:
            f.write(data)
    assert e.value.errno == errno.EINVAL
    # the kernel is told after the reply (never from inside a handler)
    wait_for(lambda: not os.path.exists(p), 10, what="the refused file to leave Drafts")
    kept = m.path(".exchangefs", "rejected", "bad.eml")
    assert open(kept, "rb").read() == data
    assert "not a header field" in os.getxattr(kept, "user.exchangefs.error").decode()
    assert "rejected" in os.listdir(m.path(".exchangefs"))
    assert "is not a message" in m.log_text()
    if not target.can("drafts"):
        return
    # fixed and moved back, it is uploaded
    write(kept, message("Rescued"))
    os.rename(kept, m.path("Drafts", "rescued.eml"))
    drained(m)
    assert subjects(srv, "Drafts").count("Rescued") == 1


@LOCAL
def test_editor_files_stay_local(live):
    target, m = live
    srv = target.srv
    if target.can("stats"):
        srv.reset_stats()
    drafts = len(srv.items("Drafts"))
    for n in ("4913", ".note.eml.swp", "note.eml~", "scratch.txt"):
        write(m.path("Drafts", n), b"editor bytes")
        assert open(m.path("Drafts", n), "rb").read() == b"editor bytes"
    os.unlink(m.path("Drafts", "4913"))
    assert queued(m) == 0
    if target.can("stats"):
        assert not {"CreateItem", "SendMail"} & set(srv.stats()["requests"])
    m.stop()
    m.start()
    m.wait_synced()
    left = os.listdir(m.path("Drafts"))
    assert not any(n in left for n in (".note.eml.swp", "note.eml~", "scratch.txt"))
    assert len(srv.items("Drafts")) == drafts


def draft(srv, m, name, subject):
    write(m.path("Drafts", name), message(subject))
    drained(m)
    [it] = srv.items("Drafts", subject=subject)
    return it["id"]


@needs("drafts")
def test_edit_a_draft_in_place_and_by_rename(live):
    target, m = live
    srv = target.srv
    p = m.path("Drafts", "edit.eml")
    draft(srv, m, "edit.eml", "Version 1")
    # rewrite in place (open O_TRUNC)
    write(p, message("Version 2"))
    drained(m)
    assert subjects(srv, "Drafts").count("Version 2") == 1 and "Version 1" not in subjects(srv, "Drafts")
    # sed -i: write a temp file, rename it over
    subprocess.run(["sed", "-i", "s/Version 2/Version 3/", p], check=True)
    drained(m)
    assert "Version 3" in subjects(srv, "Drafts") and "Version 2" not in subjects(srv, "Drafts")
    # cp over it
    tmp = os.path.join(os.path.dirname(m.cache_dir), "v4.eml")
    with open(tmp, "wb") as f:
        f.write(message("Version 4"))
    subprocess.run(["cp", tmp, p], check=True)
    drained(m)
    ds = subjects(srv, "Drafts")
    assert ds.count("Version 4") == 1 and "Version 3" not in ds
    assert open(p, "rb").read() == message("Version 4")


STALL_MS = 10000        # a fetch stalled this long on the server


@LOCAL
@needs("drafts")
def test_a_stalled_fetch_holds_up_only_its_own_draft(live, tmp_path):
    """The first write to a draft whose body is not cached fetches it. That
    fetch, stalled on the server, holds up the writer of that draft only: a
    cp of another file (create, write, close) completes while it is still
    blocked (no lock is held across the network)."""
    from test_sync import op
    target, m = live
    srv = target.srv
    srv.deliver("Drafts", subject="Stalled draft")
    name = wait_for(lambda: next((n for n in emls(m.path("Drafts")) if "Stalled" in n), None), 30,
                    what="the new draft on the mount")
    p = m.path("Drafts", name)
    srv.fault("slow", operation=op(target, "GetItem"), ms=STALL_MS)
    edit = {}

    def append():
        try:
            with open(p, "ab") as f:
                f.write(b"P.S.\r\n")
            edit["rc"] = 0
        except OSError as e:
            edit["rc"] = e.errno
    t = threading.Thread(target=append)
    t.start()
    try:
        wait_for(lambda: not srv.stats()["faults"], 10, what="the draft's fetch to reach the server")
        src = tmp_path / "other.eml"
        src.write_bytes(message("Unrelated copy"))
        t0 = time.monotonic()
        subprocess.run(["cp", str(src), m.path("Drafts", "other.eml")], check=True)
        print("cp of an unrelated file while a fetch is stalled %d ms: %.1f ms"
              % (STALL_MS, (time.monotonic() - t0) * 1000))
        assert t.is_alive() and "rc" not in edit, "the cp waited for the stalled fetch"
        assert open(m.path("Drafts", "other.eml"), "rb").read() == src.read_bytes()
    finally:
        t.join(STALL_MS / 1000 + 60)
    assert edit.get("rc") == 0
    with open(p, "rb") as f:
        assert f.read().endswith(b"P.S.\r\n")
    drained(m)
    assert "Unrelated copy" in subjects(srv, "Drafts")


@pytest.mark.skipif(not shutil.which("vim"), reason="vim is not installed")
@needs("drafts")
def test_edit_a_draft_with_vim(live):
    target, m = live
    srv = target.srv
    p = m.path("Drafts", "vim.eml")
    draft(srv, m, "vim.eml", "Vim 1")
    r = subprocess.run(["vim", "-es", "-u", "NONE", "-c", "%s/Vim 1/Vim 2/", "-c", "wq", p],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    drained(m)
    ds = subjects(srv, "Drafts")
    assert ds.count("Vim 2") == 1 and "Vim 1" not in ds
    assert b"Subject: Vim 2" in open(p, "rb").read()


def test_soft_delete_in_trash_is_an_option(server, mount):
    """EWS only: a soft delete (the dumpster) is EWS's DeleteType; and
    storing a message in Deleted Items needs CreateItem."""
    m = mount(server, extra=["--delete-in-trash", "soft"])
    m.wait_synced()
    write(m.path("Deleted Items", "old.eml"), message("Old news"))
    drained(m)
    os.unlink(m.path("Deleted Items", "old.eml"))
    drained(m)
    assert "Old news" not in subjects(server, "Deleted Items")
    assert [it["subject"] for it in server.dumpster()].count("Old news") == 1
    r = subprocess.run([m.argv()[0], "--delete-in-trash", "maybe", "--url", server.ews_url,
                        "--user", "x", m.mountpoint + "-x"], capture_output=True, text=True)
    assert r.returncode == 2 and "is not hard or soft" in r.stderr


def test_status_reads_whole_while_changes_flow(ews_live):
    """The status text changes with every change sent; each open of the
    file reads one rendering, whole, however it is read (never two spliced,
    which cut UTF-8 or mix old and new figures). EWS only: the status file
    is the daemon's own, and the changes it counts are uploads to a folder,
    which only EWS can store."""
    srv, m = ews_live
    link = m.path(".exchangefs", "status")
    assert os.path.islink(link)
    target = os.readlink(link)
    assert oct(os.stat(target).st_mode & 0o777) == "0o600"
    for i in range(40):
        write(m.path("Archive", "flow%d.eml" % i), message("Flow %d" % i))
        with open(link, "rb") as f:
            parts = []
            while True:
                chunk = f.read(7)   # many small reads while changes flow
                if not chunk:
                    break
                parts.append(chunk)
                time.sleep(0.001)
        text = b"".join(parts).decode("utf-8")
        assert text.endswith("\n") and "folder progress" in text
        r = subprocess.run(["cat", link], capture_output=True)
        assert r.returncode == 0 and r.stdout.decode("utf-8").endswith("\n")
    drained(m)
