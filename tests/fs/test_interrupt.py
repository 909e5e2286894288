"""test_interrupt.py - a wait a user can feel can be cut short: Ctrl-C on `ls`
of a folder whose first sync the server holds back, or on `cat` of a message
whose body the server stalls, ends the command at once (FUSE_INTERRUPT is
answered EINTR) and the daemon goes on working; a reader behind a server
back-off longer than --timeout gets ETIMEDOUT, and the status file says why.

Reads are interrupted where the kernel sends FUSE_INTERRUPT: a body fetched
at OPEN (--open-requests, or a kernel without zero-message opens). With
zero-message opens the kernel reads through its readahead, a background
request it never interrupts: a fatal signal (Ctrl-C on cat) ends the reader
at once all the same, and the fetch itself ends within --timeout.

On the test server over both protocols (its fault knobs: `busy` answers 503
with Retry-After, `slow` holds the answer back). Every wait polls a condition
with a generous limit; nothing is timed."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from mountlib import wait_for
from servers import make_target

SYNC_OP = {"ews": "SyncFolderItems", "eas": "Sync"}
FETCH_OP = {"ews": "GetItem", "eas": "ItemOperations"}


@pytest.fixture(params=["ews", "eas"])
def tsrv(request):
    t = make_target(request.param, messages=20, seed=21)
    request.addfinalizer(t.close)
    return t


def in_fuse_wait(pid):
    """Whether process pid sleeps in a FUSE request (its kernel wait channel)."""
    try:
        with open("/proc/%d/wchan" % pid) as f:
            w = f.read()
    except OSError:
        return False
    return "fuse" in w or "request_wait_answer" in w


def interrupt_and_wait(proc, what):
    """SIGINT to proc once it waits inside the mount; it must end soon after."""
    wait_for(lambda: proc.poll() is None and in_fuse_wait(proc.pid), 30,
             what=what + " to wait in a FUSE request")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: proc.poll() is not None, 20, what=what + " to end after SIGINT")
    return proc.returncode


def test_ctrl_c_on_ls_of_a_folder_held_back(tsrv, mount):
    """The server answers the first sync of every folder 'busy, come back in an
    hour': `ls` of Inbox waits for that first sync (a listing is never partial),
    and Ctrl-C ends it at once; the daemon still answers and unmounts."""
    srv = tsrv.srv
    srv.fault("busy", count=1000, operation=SYNC_OP[tsrv.kind], backoff_ms=3600 * 1000)
    m = mount(tsrv, extra=["--no-notify"])
    ls = subprocess.Popen(["ls", m.path(tsrv.inbox)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    rc = interrupt_and_wait(ls, "ls")
    assert rc == -signal.SIGINT
    # the daemon keeps working: the folder tree and the status answer
    assert tsrv.inbox.split("/")[0] in os.listdir(m.mountpoint)
    assert "connection:" in m.status()
    m.stop()


def test_ctrl_c_on_python_listdir_gets_keyboard_interrupt(tsrv, mount):
    """The same from a program that handles SIGINT (Python): its call ends with
    KeyboardInterrupt rather than waiting for the folder's sync."""
    srv = tsrv.srv
    srv.fault("busy", count=1000, operation=SYNC_OP[tsrv.kind], backoff_ms=3600 * 1000)
    m = mount(tsrv, extra=["--no-notify"])
    code = ("import os, sys\n"
            "try:\n    os.listdir(sys.argv[1])\nexcept KeyboardInterrupt:\n    sys.exit(42)\n"
            "except OSError as e:\n    sys.exit(43 if e.errno == 4 else 44)\n")
    p = subprocess.Popen([sys.executable, "-c", code, m.path(tsrv.inbox)])
    rc = interrupt_and_wait(p, "python listdir")
    assert rc in (42, 43), rc
    m.stop()


def test_ctrl_c_on_a_read_whose_fetch_stalls(tsrv, mount):
    """The server holds a body's answer back (longer than the test waits): Ctrl-C
    on `cat`, whose OPEN fetches the body, ends it at once, the abandoned fetch frees its session, and the next
    read of the message (the server well again) is byte-equal."""
    srv = tsrv.srv
    m = mount(tsrv, extra=["--no-notify", "--sync-interval", "3600", "--open-requests"])
    m.wait_synced()
    d = m.path(tsrv.inbox)
    name = sorted(n for n in os.listdir(d) if n.endswith(".eml"))[0]
    path = os.path.join(d, name)
    srv.fault("slow", count=1, operation=FETCH_OP[tsrv.kind], ms=120 * 1000)
    cat = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc = interrupt_and_wait(cat, "cat")
    assert rc == -signal.SIGINT
    # the server well again: cat may have been interrupted before its fetch
    # reached the server, which would then hold the next one back instead
    srv.clear_faults()
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > 0 and os.path.getsize(path) == len(data)
    m.stop()


def test_ctrl_c_on_a_read_waiting_for_anothers_fetch(tsrv, mount):
    """Two readers of one message whose fetch stalls: the second waits for the
    first's fetch (one fetch per message); Ctrl-C on the second ends it at once,
    while the first still waits."""
    srv = tsrv.srv
    m = mount(tsrv, extra=["--no-notify", "--sync-interval", "3600", "--open-requests"])
    m.wait_synced()
    d = m.path(tsrv.inbox)
    name = sorted(n for n in os.listdir(d) if n.endswith(".eml"))[1]
    path = os.path.join(d, name)
    srv.fault("slow", count=1, operation=FETCH_OP[tsrv.kind], ms=120 * 1000)
    first = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: in_fuse_wait(first.pid), 30, what="the first reader to wait")
    second = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc = interrupt_and_wait(second, "the second cat")
    assert rc == -signal.SIGINT
    assert first.poll() is None
    interrupt_and_wait(first, "the first cat")
    m.stop()


def test_reader_behind_a_long_back_off_gets_etimedout_after_timeout(tsrv, mount):
    """The server asks for an hour's pause on the first sync of the folders: a
    listing gives up after --timeout with ETIMEDOUT (not an hour), the status file
    names the reason, and the daemon unmounts at once (the back-off sleep ends
    on stop)."""
    srv = tsrv.srv
    srv.fault("busy", count=1000, operation=SYNC_OP[tsrv.kind], backoff_ms=3600 * 1000)
    m = mount(tsrv, extra=["--no-notify", "--timeout", "3"])
    code = ("import os, sys\n"
            "try:\n    os.listdir(sys.argv[1])\nexcept OSError as e:\n    sys.exit(e.errno)\n"
            "sys.exit(0)\n")
    p = subprocess.Popen([sys.executable, "-c", code, m.path(tsrv.inbox)])
    wait_for(lambda: p.poll() is not None, 60, what="the listing to give up")
    assert p.returncode == errno.ETIMEDOUT
    st = m.status()
    assert "server asked to wait" in st and "(throttled)" in st, st
    assert "--timeout (3 s)" in st, st
    m.stop()


def test_read_behind_a_long_back_off_gets_etimedout(tsrv, mount):
    """A body read that the server answers 'busy, come back in an hour': ETIMEDOUT
    without waiting the hour, and the status file says why."""
    srv = tsrv.srv
    m = mount(tsrv, extra=["--no-notify", "--sync-interval", "3600", "--timeout", "3"])
    m.wait_synced()
    d = m.path(tsrv.inbox)
    name = sorted(n for n in os.listdir(d) if n.endswith(".eml"))[2]
    srv.fault("busy", count=1000, operation=FETCH_OP[tsrv.kind], backoff_ms=3600 * 1000)
    code = ("import sys\n"
            "try:\n    open(sys.argv[1], 'rb').read()\nexcept OSError as e:\n    sys.exit(e.errno)\n"
            "sys.exit(0)\n")
    p = subprocess.Popen([sys.executable, "-c", code, os.path.join(d, name)])
    wait_for(lambda: p.poll() is not None, 60, what="the read to give up")
    assert p.returncode == errno.ETIMEDOUT
    st = m.status()
    assert "server asked to wait 3600 s (throttled)" in st, st
    srv.clear_faults()
    m.stop()
