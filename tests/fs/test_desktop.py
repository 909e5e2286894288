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

from mountlib import wait_for

MSG = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
       b"Subject: %s\r\nDate: Thu, 13 Feb 2025 10:30:00 +0000\r\n"
       b"Message-ID: <%s@test>\r\n\r\nHello.\r\n")


def message(subject):
    s = subject.encode()
    return MSG % (s, s.replace(b" ", b"."))


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
    m = mount(server, extra=["--cache-size", "100M"])
    m.wait_synced()
    inbox = m.path("Inbox")
    for n in sorted(os.listdir(inbox))[:5]:
        with open(os.path.join(inbox, n), "rb") as f:
            f.read()
    st = os.statvfs(m.mountpoint)
    disk = os.statvfs(tmp_path)
    assert st.f_blocks * st.f_frsize == 100 << 20
    bodies = sum(os.path.getsize(os.path.join(tmp_path, "cache", "bodies", b))
                 for b in os.listdir(os.path.join(tmp_path, "cache", "bodies")))
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert bodies > 0 and bodies <= used < bodies + 5 * st.f_frsize
    # the disk's free space (it moves a little while the test runs)
    assert st.f_bavail > 0
    assert abs(st.f_bavail * st.f_frsize - disk.f_bavail * disk.f_frsize) < 256 << 20
    assert st.f_ffree > 0 and st.f_files > st.f_ffree
    r = subprocess.run(["df", "-P", m.mountpoint], capture_output=True, text=True)
    assert r.returncode == 0 and " 100% " not in r.stdout, r.stdout
