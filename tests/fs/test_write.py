"""test_write.py - write-back through a real mount, checked on the server:
copy into Drafts and other folders, send through Outbox, delete, move,
rename, folder operations, flags as extended attributes, editing drafts in
place and the editors' way, refused content, local-only files."""
import errno
import os
import shutil
import subprocess
import time

import pytest

from mountlib import wait_for


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


@pytest.fixture
def live(server, mount):
    m = mount(server)
    m.wait_synced()
    return server, m


def test_copy_into_drafts_makes_a_draft(live, tmp_path):
    srv, m = live
    src = tmp_path / "note.eml"
    src.write_bytes(message("Draft one"))
    subprocess.run(["cp", str(src), m.path("Drafts")], check=True)
    drained(m)
    [it] = srv.items("Drafts", subject="Draft one")
    assert it["is_draft"] is True
    assert srv.item_mime(it["id"]) == src.read_bytes()
    # the file keeps the user's name and bytes, and now has the server's id
    p = m.path("Drafts", "note.eml")
    assert open(p, "rb").read() == src.read_bytes()
    wait_for(lambda: os.getxattr(p, "user.exchangefs.id").decode() == it["id"], 10,
             what="the new id on the file")
    # the next sync reports the item: still one file, no duplicate
    m.wait_next_sync()
    assert [n for n in os.listdir(m.path("Drafts")) if "Draft one" in n or n == "note.eml"] == ["note.eml"]


def test_copy_into_a_folder_is_a_normal_message(live):
    srv, m = live
    write(m.path("Archive", "kept.eml"), message("Kept copy", date="Mon, 03 Mar 2025 08:15:00 +0100"))
    drained(m)
    [it] = srv.items("Archive", subject="Kept copy")
    assert it["is_draft"] is False
    assert it["received"] == 1740986100  # its own Date, not the upload time


def test_send_through_outbox(live):
    srv, m = live
    before = len(srv.sent())
    write(m.path("Outbox", "reply.eml"), message("Sent reply", to="carol@example.com"))
    drained(m)
    sent = srv.sent()
    assert len(sent) == before + 1 and sent[-1]["subject"] == "Sent reply"
    assert "carol@example.com" in sent[-1]["recipients"]
    assert subjects(srv, "Sent Items").count("Sent reply") == 1
    wait_for(lambda: "reply.eml" not in os.listdir(m.path("Outbox")), 10, what="Outbox to empty")
    m.wait_next_sync()
    assert sum("Sent reply" in n for n in os.listdir(m.path("Sent Items"))) == 1


def test_refused_send_stays_in_outbox_with_the_reason(live):
    srv, m = live
    p = m.path("Outbox", "nobody.eml")
    write(p, message("No recipients", to=None))
    wait_for(lambda: "failed: 1" in m.status().replace("changes failed: 1", "failed: 1"), 30,
             what="the send to fail")
    assert os.path.exists(p)
    err = os.getxattr(p, "user.exchangefs.error").decode()
    assert "recipient" in err.lower()
    assert "nobody.eml" in m.status() and "ErrorInvalidRecipients" in m.status()
    assert not srv.sent()
    # fixed by the user: rewritten with a recipient, it goes
    write(p, message("No recipients", to="dave@example.com"))
    drained(m)
    assert srv.sent()[-1]["subject"] == "No recipients"
    wait_for(lambda: not os.path.exists(p), 10, what="the message to leave Outbox")


def test_rm_moves_to_deleted_items_and_there_deletes(live):
    srv, m = live
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[0]
    sid = os.getxattr(m.path("Inbox", name), "user.exchangefs.id").decode()
    mid = srv.item_info(sid)["message_id"]
    n_inbox = len(srv.items("Inbox"))
    os.unlink(m.path("Inbox", name))
    assert name not in os.listdir(m.path("Inbox"))
    drained(m)
    assert len(srv.items("Inbox")) == n_inbox - 1
    assert [it["message_id"] for it in srv.items("Deleted Items")].count(mid) == 1
    m.wait_next_sync()
    [trashed] = [n for n in os.listdir(m.path("Deleted Items"))
                 if os.getxattr(m.path("Deleted Items", n), "user.mail.message_id").decode() == mid]
    os.unlink(m.path("Deleted Items", trashed))
    drained(m)
    assert all(it["message_id"] != mid for it in srv.mailbox()["items"])


def test_mv_across_folders_keeps_the_name(live):
    srv, m = live
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[1]
    old_id = os.getxattr(m.path("Inbox", name), "user.exchangefs.id").decode()
    subj = srv.item_info(old_id)["subject"]
    ino = os.stat(m.path("Inbox", name)).st_ino
    os.rename(m.path("Inbox", name), m.path("Archive", name))
    drained(m)
    assert subj in subjects(srv, "Archive")
    assert all(it["id"] != old_id for it in srv.items("Inbox"))
    m.wait_next_sync()
    assert name in os.listdir(m.path("Archive"))
    assert os.stat(m.path("Archive", name)).st_ino == ino
    new_id = os.getxattr(m.path("Archive", name), "user.exchangefs.id").decode()
    assert new_id != old_id and srv.item_info(new_id)["folder_path"] == "Archive"


def test_rename_within_a_folder_is_local(live):
    srv, m = live
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[2]
    srv.reset_stats()
    os.rename(m.path("Inbox", name), m.path("Inbox", "renamed.eml"))
    assert queued(m) == 0
    requests = srv.stats()["requests"]
    assert not any(op in requests for op in ("MoveItem", "UpdateItem", "CreateItem"))
    m.wait_next_sync()
    assert "renamed.eml" in os.listdir(m.path("Inbox")) and name not in os.listdir(m.path("Inbox"))


def test_name_clash_in_target_gets_a_suffix(live):
    srv, m = live
    write(m.path("Archive", "same.eml"), message("Clash one"))
    write(m.path("Inbox", "same.eml"), message("Clash two"))
    drained(m)
    os.rename(m.path("Inbox", "same.eml"), m.path("Archive", "same.eml"))
    drained(m)
    wait_for(lambda: "same (2).eml" in os.listdir(m.path("Archive")), 10, what="the suffixed name")
    ss = subjects(srv, "Archive")
    assert ss.count("Clash one") == 1 and ss.count("Clash two") == 1
    assert open(m.path("Archive", "same.eml"), "rb").read() == message("Clash one")


def test_folders_mkdir_move_rename_rmdir(live):
    srv, m = live
    os.mkdir(m.path("Projects"))
    drained(m)
    assert srv.folder("Projects")["folder_class"] == "IPF.Note"
    write(m.path("Projects", "plan.eml"), message("Plan"))
    os.rename(m.path("Projects"), m.path("Archive", "Projects"))
    drained(m)
    assert subjects(srv, "Archive/Projects") == ["Plan"]
    os.rename(m.path("Archive", "Projects"), m.path("Archive", "Old-projects"))
    drained(m)
    assert srv.folder("Archive/Old-projects")["total"] == 1
    with pytest.raises(OSError) as e:
        os.rmdir(m.path("Archive", "Old-projects"))
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(m.path("Archive", "Old-projects", "plan.eml"))
    os.rmdir(m.path("Archive", "Old-projects"))
    drained(m)
    paths = ["/".join(f["path_parts"]) for f in srv.mailbox()["folders"]]
    assert "Archive/Old-projects" not in paths and "Projects" not in paths
    # a slash in a folder name is U+2215 on the mount and '/' on the server
    os.mkdir(m.path("A\u2215B"))
    drained(m)
    assert "A/B" in [f["name"] for f in srv.mailbox()["folders"]]


def test_well_known_folders_refuse_rmdir_and_rename(live):
    srv, m = live
    for name in ("Inbox", "Drafts", "Sent Items", "Deleted Items", "Outbox"):
        with pytest.raises(OSError) as e:
            os.rmdir(m.path(name))
        assert e.value.errno in (errno.EPERM, errno.ENOTEMPTY)
        with pytest.raises(OSError) as e:
            os.rename(m.path(name), m.path(name + "-x"))
        assert e.value.errno == errno.EPERM
    os.mkdir(m.path("Empty", "sub"))
    drained(m)


def test_flags_as_extended_attributes(live):
    srv, m = live
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[3]
    p = m.path("Inbox", name)
    sid = os.getxattr(p, "user.exchangefs.id").decode()
    names = os.listxattr(p)
    for a in ("user.mail.read", "user.mail.flag", "user.mail.categories"):
        assert a in names
    subprocess.run(["setfattr", "-n", "user.mail.read", "-v", "1", p], check=True)
    subprocess.run(["setfattr", "-n", "user.mail.flag", "-v", "flagged", p], check=True)
    os.setxattr(p, "user.mail.categories", b"Red, Project X")
    assert os.getxattr(p, "user.mail.flag") == b"flagged"
    drained(m)
    info = srv.item_info(sid)
    assert info["is_read"] is True and info["flag"] == "Flagged"
    assert info["categories"] == ["Red", "Project X"]
    os.setxattr(p, "user.mail.flag", b"complete")
    os.setxattr(p, "user.mail.read", b"0")
    os.removexattr(p, "user.mail.categories")
    drained(m)
    info = srv.item_info(sid)
    assert info["flag"] == "Complete" and info["is_read"] is False and info["categories"] == []
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.mail.flag", b"sparkly")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.mail.subject", b"nope")
    assert e.value.errno == errno.EPERM
    # changes made on the server come back
    srv.set_flag(sid, "Flagged")
    srv.set_categories(sid, ["Blue"])
    m.wait_next_sync()
    wait_for(lambda: os.getxattr(p, "user.mail.flag") == b"flagged", 10, what="flag from server")
    assert os.getxattr(p, "user.mail.categories") == b"Blue"


def test_messages_outside_drafts_are_read_only(live):
    srv, m = live
    name = sorted(n for n in os.listdir(m.path("Inbox")) if n.endswith(".eml"))[4]
    p = m.path("Inbox", name)
    before = open(p, "rb").read()
    for action in (lambda: open(p, "ab", buffering=0).write(b"x"),
                   lambda: open(p, "r+b", buffering=0).write(b"x"),
                   lambda: os.truncate(p, 0)):
        with pytest.raises(OSError) as e:
            action()
        assert e.value.errno == errno.EPERM
    assert open(p, "rb").read() == before


def test_not_a_message_is_refused_and_kept(live):
    srv, m = live
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
    # fixed and moved back, it is uploaded
    write(kept, message("Rescued"))
    os.rename(kept, m.path("Drafts", "rescued.eml"))
    drained(m)
    assert subjects(srv, "Drafts").count("Rescued") == 1


def test_editor_files_stay_local(live):
    srv, m = live
    srv.reset_stats()
    for n in ("4913", ".note.eml.swp", "note.eml~", "scratch.txt"):
        write(m.path("Drafts", n), b"editor bytes")
        assert open(m.path("Drafts", n), "rb").read() == b"editor bytes"
    os.unlink(m.path("Drafts", "4913"))
    assert queued(m) == 0
    assert "CreateItem" not in srv.stats()["requests"]
    m.stop()
    m.start()
    m.wait_synced()
    left = os.listdir(m.path("Drafts"))
    assert not any(n in left for n in (".note.eml.swp", "note.eml~", "scratch.txt"))


def draft(srv, m, name, subject):
    write(m.path("Drafts", name), message(subject))
    drained(m)
    [it] = srv.items("Drafts", subject=subject)
    return it["id"]


def test_edit_a_draft_in_place_and_by_rename(live):
    srv, m = live
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
    src = m.path("..", "v4.eml") if False else None
    tmp = os.path.join(os.path.dirname(m.cache_dir), "v4.eml")
    with open(tmp, "wb") as f:
        f.write(message("Version 4"))
    subprocess.run(["cp", tmp, p], check=True)
    drained(m)
    ds = subjects(srv, "Drafts")
    assert ds.count("Version 4") == 1 and "Version 3" not in ds
    assert open(p, "rb").read() == message("Version 4")


@pytest.mark.skipif(not shutil.which("vim"), reason="vim is not installed")
def test_edit_a_draft_with_vim(live):
    srv, m = live
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


def test_status_reads_whole_while_changes_flow(live):
    """The status text changes with every change sent; each open of the
    file reads one rendering, whole, however it is read (never two spliced,
    which cut UTF-8 or mix old and new figures)."""
    srv, m = live
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
