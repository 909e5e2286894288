"""test_desktop.py - what desktops, file managers and scripts expect of a
mount: `gio trash` (a file manager's Delete key) puts mail in Deleted Items
and makes no server folder, dot-folders stay off the server, a refused or
empty .eml says why where a user looks (close(), the status, the log),
writes a server cannot store fail at close(), `df` shows the cache, and the
status lines up names that are not ASCII."""
import errno
import os
import re
import shutil
import subprocess

import pytest

from mountlib import EXE, wait_for

MSG = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
       b"Subject: %s\r\nDate: Thu, 13 Feb 2025 10:30:00 +0000\r\n"
       b"Message-ID: <%s@test>\r\n\r\nHello.\r\n")


def message(subject):
    s = subject.encode()
    return MSG % (s, s.replace(b" ", b"."))


# What the daemon decides alone: the test server's two protocols show it.
LOCAL = pytest.mark.parametrize("target", ["ews", "eas"], indirect=True)


def queued(m):
    for line in m.status().splitlines():
        if line.startswith("changes queued:"):
            return int(line.split(":")[1].split()[0])
    raise AssertionError("no queue line in status:\n" + m.status())


def drained(m, timeout=60):
    wait_for(lambda: queued(m) == 0, timeout, what="the journal to drain")


def server_folders(srv):
    return ["/".join(f["path_parts"]) for f in srv.mailbox()["folders"]]


def gio_trash(path):
    return subprocess.run(["gio", "trash", path], capture_output=True, text=True, timeout=60)


def folder_lines(status):
    """{folder path: the line} of the status's folder progress."""
    out, on = {}, False
    for line in status.splitlines():
        if line.startswith("folder progress"):
            on = True
        elif on and line.startswith("  "):
            m = re.match(r"  (.*?) +\d+ / \d+", line)
            out[m.group(1)] = line
    return out


def test_status_lines_up_names_that_are_not_ascii(server, mount):
    """The figures of every folder start in one column: the names were
    padded by bytes, and Überweisungen or Q1∕Q2 Plans (U+2215) pushed
    theirs left."""
    m = mount(server)
    m.wait_synced()
    lines = folder_lines(m.status())
    assert "Überweisungen" in lines and "Q1∕Q2 Plans" in lines, lines
    cols = {p: re.search(r"\d+ / \d+", ln).start() for p, ln in lines.items() if len(p) < 40}
    assert len(set(cols.values())) == 1, cols


def test_df_shows_the_cache_and_room_to_write(server, mount, tmp_path):
    """df: size = --cache-size, used = bodies cached, available = the free
    space of the cache's disk (it said 68K, 0 available, 100% used, and
    file managers refused to copy)."""
    # no prefetch: only the five bodies read below, none arriving meanwhile
    m = mount(server, extra=["--cache-size", "100M", "--prefetch", "none"])
    m.wait_synced()
    inbox = m.path("Inbox")
    for n in sorted(os.listdir(inbox))[:5]:
        with open(os.path.join(inbox, n), "rb") as f:
            f.read()
    st = os.statvfs(m.mountpoint)
    disk = os.statvfs(tmp_path)
    assert st.f_blocks * st.f_frsize == 100 << 20
    bodies = sum(os.path.getsize(os.path.join(tmp_path, "cache", "bodies", b))
                 for b in os.listdir(os.path.join(tmp_path, "cache", "bodies"))
                 if not b.startswith("tmp."))
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert bodies > 0 and bodies <= used < bodies + 5 * st.f_frsize
    # the disk's free space (it moves a little while the test runs)
    assert st.f_bavail > 0
    assert abs(st.f_bavail * st.f_frsize - disk.f_bavail * disk.f_frsize) < 256 << 20
    assert st.f_ffree > 0 and st.f_files > st.f_ffree
    r = subprocess.run(["df", "-P", m.mountpoint], capture_output=True, text=True)
    assert r.returncode == 0 and " 100% " not in r.stdout, r.stdout


@LOCAL
def test_gio_trash_puts_mail_in_deleted_items(target, mount):
    """`gio trash` (a file manager's Delete key) made the server folders
    .Trash-0, .Trash-0/files and .Trash-0/info and moved the mail into
    them. Now the message lands in Deleted Items, like rm, and the trash's
    bookkeeping (info/*.trashinfo) stays local."""
    m = mount(target)
    m.wait_synced()
    inbox = m.path("Inbox")
    name = sorted(n for n in os.listdir(inbox) if n.endswith(".eml"))[0]
    with open(os.path.join(inbox, name), "rb") as f:
        data = f.read()
    r = gio_trash(os.path.join(inbox, name))
    assert r.returncode == 0, r.stderr
    assert name not in os.listdir(inbox)
    assert name in os.listdir(m.path("Deleted Items"))
    with open(m.path("Deleted Items", name), "rb") as f:
        assert f.read() == data
    trash = m.path(".Trash-%d" % os.getuid())
    assert os.listdir(os.path.join(trash, "files")) == []
    # the kernel's own dentry from the rename is dropped just after the
    # rename returns (never from inside the request): poll
    wait_for(lambda: not os.path.exists(os.path.join(trash, "files", name)), 10,
             interval=0.02, what="the trashed name to leave files/")
    assert os.listdir(os.path.join(trash, "info")) == [name + ".trashinfo"]
    assert not any(n.startswith(".") for n in os.listdir(m.mountpoint))
    drained(m)
    srv = target.srv
    wait_for(lambda: any(srv.item_mime(it["id"]) == data for it in srv.items("Deleted Items")),
             30, what="the message in Deleted Items on the server")
    assert not any(p.startswith(".") or "/." in p for p in server_folders(srv))

    # a folder goes to Deleted Items too
    os.mkdir(m.path("Inbox", "Old stuff"))
    drained(m)
    r = gio_trash(m.path("Inbox", "Old stuff"))
    assert r.returncode == 0, r.stderr
    # a directory has one dentry: until the kernel's old one in files/ is
    # dropped (just after the rename returns), a lookup that races that
    # drop can get ESTALE from the kernel (d_splice_alias): poll
    wait_for(lambda: os.path.isdir(m.path("Deleted Items", "Old stuff")), 10,
             interval=0.02, what="the trashed folder in Deleted Items")
    drained(m)
    wait_for(lambda: "Deleted Items/Old stuff" in server_folders(srv), 30,
             what="the folder in Deleted Items on the server")

    # what is in Deleted Items already cannot be trashed again: GIO says
    # so, and a file manager then offers to delete it
    r = gio_trash(m.path("Deleted Items", name))
    assert r.returncode != 0 and "not supported" in r.stderr.lower(), r.stderr
    assert name in os.listdir(m.path("Deleted Items"))

    # the .trashinfo files were local: gone after a remount
    m.stop()
    m.start()
    assert os.listdir(os.path.join(trash, "info")) == []
    assert name in os.listdir(m.path("Deleted Items"))


@LOCAL
def test_no_dot_folder_reaches_the_server(target, mount):
    """mkdir of a name starting with '.' (a desktop's private directory:
    .Trash, another user's .Trash-1000, caches) is refused with EPERM and
    never becomes a server folder; so is renaming a folder to one. A
    server folder ".x" is "．x" on the mount, and that name can be made."""
    m = mount(target)
    m.wait_synced()
    for path in (m.path(".Trash"), m.path(".Trash-1000"), m.path("Inbox", ".thumbnails")):
        with pytest.raises(PermissionError):
            os.mkdir(path)
    os.mkdir(m.path("Inbox", "Keep"))
    with pytest.raises(PermissionError):
        os.rename(m.path("Inbox", "Keep"), m.path("Inbox", ".Keep"))
    os.mkdir(m.path("Inbox", "\uff0edotted"))
    drained(m)
    folders = server_folders(target.srv)
    assert "Inbox/Keep" in folders and "Inbox/.dotted" in folders
    assert not any(p.split("/")[-1] in (".Trash", ".Trash-1000", ".thumbnails", ".Keep")
                   for p in folders)


def write_file(path, data):
    """open, write, close; the OSError of close() (where a refusal shows)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def last_error(m):
    return next(ln for ln in m.status().splitlines() if ln.startswith("last error:"))


def test_refused_eml_says_why_where_a_user_looks(server, mount):
    """A .eml that is not a message fails close() with EINVAL; the reason
    was only in an extended attribute of the rejected copy, the status said
    "last error: none". Now: the status's last error, the log (stderr in
    the foreground), and the attribute."""
    m = mount(server)
    m.wait_synced()
    with pytest.raises(OSError) as e:
        write_file(m.path("Inbox", "notes.eml"), b"just some notes\n")
    assert e.value.errno == errno.EINVAL
    line = last_error(m)
    assert "'notes.eml' is not a message" in line and ".exchangefs/rejected/notes.eml" in line, line
    assert "line 1 is not a header field" in line
    assert "warning: 'notes.eml' is not a message" in m.log_text()
    why = os.getxattr(m.path(".exchangefs", "rejected", "notes.eml"), "user.exchangefs.error")
    assert b"not a header field" in why


def syslog_there():
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect("/dev/log")
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_background_daemon_logs_to_the_cache_without_syslog(server, tmp_path):
    """Without -f the log went to syslog, which many machines do not have:
    lines were lost. With no syslog listening it goes to CACHE/log, and
    the mount says so."""
    if syslog_there():
        pytest.skip("a syslog daemon listens on /dev/log here: the daemon logs there")
    mnt = tmp_path / "bg"
    mnt.mkdir()
    cache = tmp_path / "c"
    r = subprocess.run([EXE, "--url", server.ews_url, "--user", server.user,
                        "--ca-file", server.ca_cert, "--cache-dir", str(cache), "--prefetch", "none",
                        str(mnt)],
                       env=dict(os.environ, EXCHANGEFS_PASSWORD=server.password),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        assert "log in %s/log" % cache in r.stderr
        wait_for(lambda: "Inbox" in os.listdir(mnt), 30, what="the folder list")
        with pytest.raises(OSError):
            write_file(str(mnt / "Inbox" / "notes.eml"), b"just some notes\n")
        log = (cache / "log").read_text()
        assert "warning: 'notes.eml' is not a message" in log
        assert oct((cache / "log").stat().st_mode & 0o777) == "0o600"
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)])


def test_empty_eml_is_refused_at_its_last_close(server, mount, tmp_path):
    """A .eml created and closed empty was accepted, never uploaded, and
    gone after a remount without a word. Now its last close fails with
    EINVAL and says why (log, status); the file stays, so writing it
    afterwards works. A close while another descriptor still holds it (a
    shell's `cmd > new.eml` closes a duplicate before cmd writes; a child
    given the descriptor) is no refusal."""
    m = mount(server)
    m.wait_synced()
    src = tmp_path / "msg.eml"
    src.write_bytes(message("Written after touch"))
    x = m.path("Inbox", "x.eml")
    r = subprocess.run(["touch", x], capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr
    assert "'x.eml' is empty, not a message" in last_error(m)
    assert "warning: 'x.eml' is empty, not a message" in m.log_text()
    assert os.path.getsize(x) == 0
    with pytest.raises(OSError) as e:
        open(m.path("Inbox", "z.eml"), "wb").close()
    assert e.value.errno == errno.EINVAL

    # writing it afterwards, the shell's way (dup2, close, then cat writes)
    r = subprocess.run(["sh", "-c", 'cat "$1" > "$2"', "sh", str(src), x],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # a new file through a redirect: no refusal, no warning
    src2 = tmp_path / "msg2.eml"
    src2.write_bytes(message("Through a redirect"))
    y = m.path("Inbox", "y.eml")
    r = subprocess.run(["sh", "-c", 'cat "$1" > "$2"', "sh", str(src2), y],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # a child writes after the parent closed its copy
    (tmp_path / "msg3.eml").write_bytes(message("From a child"))
    with open(m.path("Inbox", "w.eml"), "wb") as f:
        child = subprocess.Popen(["sh", "-c", 'sleep 0.3; cat "$1"', "sh", str(tmp_path / "msg3.eml")],
                                 stdout=f)
    assert child.wait(30) == 0
    drained(m)
    subjects = {it["subject"] for it in server.items("Inbox")}
    assert {"Written after touch", "Through a redirect", "From a child"} <= subjects
    log = m.log_text()
    assert "'y.eml' is empty" not in log and "'w.eml' is empty" not in log

    # still empty at a remount: removed, and the log says so
    m.stop()
    m.start()
    assert not os.path.exists(m.path("Inbox", "z.eml"))
    assert "'z.eml' was still empty when exchangefs stopped" in m.log_text()


@pytest.mark.parametrize("target", ["eas"], indirect=True)
def test_what_activesync_14_1_cannot_store_fails_at_close(target, mount, tmp_path):
    """Over ActiveSync 14.1 `cp` into Drafts returned 0 and failed later in
    the status; the README says "Operation not supported". Now close()
    fails with ENOTSUP where the server cannot store the message (a draft
    on 14.1; a message in a folder on any ActiveSync), the copy is kept in
    rejected/ with the reason, and sending through Outbox still works."""
    target.srv.eas_config(versions=["14.1"])
    m = mount(target)
    m.wait_synced()
    for folder, subject in (("Drafts", "A draft"), ("Archive", "Kept")):
        with pytest.raises(OSError) as e:
            write_file(m.path(folder, "x.eml"), message(subject))
        assert e.value.errno == errno.ENOTSUP, (folder, e.value)
        assert "x.eml" not in os.listdir(m.path(folder))
    kept = os.listdir(m.path(".exchangefs", "rejected"))
    assert sorted(kept) == ["x (2).eml", "x.eml"], kept
    why = os.getxattr(m.path(".exchangefs", "rejected", "x.eml"), "user.exchangefs.error").decode()
    assert "ActiveSync 14.1" in why and "cannot store a draft" in why, why
    assert "cannot be stored" in last_error(m)
    # an editor's way (a temporary file renamed to .eml) is refused too
    write_file(m.path("Drafts", "note.tmp"), message("Via rename"))
    with pytest.raises(OSError) as e:
        os.rename(m.path("Drafts", "note.tmp"), m.path("Drafts", "note.eml"))
    assert e.value.errno == errno.ENOTSUP
    # what 14.1 can do still works
    write_file(m.path("Outbox", "send.eml"), message("Sent on 14.1"))
    drained(m)
    assert not any(it["subject"] in ("A draft", "Kept", "Via rename")
                   for it in target.srv.mailbox()["items"])
    assert "changes failed: 0" in m.status()


@pytest.mark.parametrize("target", ["ews", "eas"], indirect=True)
def test_status_says_what_the_server_cannot_do(target, mount):
    """What a backend cannot do was implicit (a NULL operation, or an
    answer faked: ActiveSync's find_token said "not found"). Now the backend
    declares it and the status says it in one line."""
    m = mount(target)
    m.wait_synced()
    line = next(ln for ln in m.status().splitlines() if ln.startswith("server cannot: "))
    if target.kind == "ews":
        assert line == "server cannot: nothing", line
    else:
        # the test server speaks 16.1 and has an Outbox
        assert line == ("server cannot: store a message in a folder, find a message whose "
                        "upload answer was lost (it is sent again; the server drops the "
                        "duplicate)"), line


TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_puts_exchangefs_on_path(tmp_path):
    """After ./contrib/demo.sh `exchangefs` was not on PATH, though the
    README and the demo's hints use it: the demo links it (here into a
    directory of the test's, through EXCHANGEFS_DEMO_BINDIR; the demo
    itself runs `link` after building). An installed exchangefs that is
    not such a link is left alone."""
    exe = os.path.join(TOP, "build", "fs", "exchangefs")
    if not os.access(exe, os.X_OK):
        pytest.skip("the demo links build/fs/exchangefs, which is not built here")
    bindir = tmp_path / "bin"
    env = dict(os.environ, EXCHANGEFS_DEMO_BINDIR=str(bindir),
               PATH=str(bindir) + os.pathsep + os.environ["PATH"])
    r = subprocess.run([os.path.join(TOP, "contrib", "demo.sh"), "link"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "exchangefs is on your PATH" in r.stdout, r.stdout
    assert os.readlink(bindir / "exchangefs") == exe
    v = subprocess.run(["exchangefs", "--version"], env=env, capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("exchangefs ")
    # the hints and the README use the name on PATH
    demo = open(os.path.join(TOP, "contrib", "demo.sh")).read()
    assert "exchangefs status demo-mail" in demo
    readme = open(os.path.join(TOP, "README.md")).read()
    assert readme.split("\n")[3:5] == [
        "./contrib/demo.sh      # install, build, start a demo Exchange (EWS) test server, mount its mailbox on ./demo-mail",
        "./tests/run.sh         # install, build, run all tests (unit, test server, independent EWS client, FUSE mounts)"]
    # an installed one is left alone
    (bindir / "exchangefs").unlink()
    (bindir / "exchangefs").write_text("#!/bin/sh\necho installed\n")
    r = subprocess.run([os.path.join(TOP, "contrib", "demo.sh"), "link"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "installed" in r.stdout
    assert (bindir / "exchangefs").read_text() == "#!/bin/sh\necho installed\n"


@LOCAL
def test_shell_redirect_over_a_draft_replaces_it_whole(target, mount, tmp_path):
    """`cat new.eml > Drafts/x.eml` over a longer draft: the shell truncates
    and closes a duplicate of the descriptor before cat writes. That first
    close found the draft empty, refused it (a rejected copy, the draft
    kept), and cat's bytes were then written over the old content: its
    tail stayed behind them. Now an empty content is judged at the last
    close only, and the draft becomes exactly what cat wrote."""
    target.require("drafts")
    m = mount(target)
    m.wait_synced()
    long_draft = message("Long draft") + b"x" * 5000 + b"\r\n"
    write_file(m.path("Drafts", "x.eml"), long_draft)
    drained(m)
    short = message("Short draft")
    src = tmp_path / "short.eml"
    src.write_bytes(short)
    r = subprocess.run(["sh", "-c", 'cat "$1" > "$2"', "sh", str(src), m.path("Drafts", "x.eml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(m.path("Drafts", "x.eml"), "rb") as f:
        assert f.read() == short
    assert os.listdir(m.path(".exchangefs", "rejected")) == []
    drained(m)
    subjects = [it["subject"] for it in target.srv.items("Drafts")]
    assert "Short draft" in subjects and "Long draft" not in subjects
