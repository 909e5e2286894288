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
