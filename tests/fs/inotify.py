"""inotify.py - a small inotify reader for the mount tests (ctypes over
libc, no third-party module): watch directories, collect events with the
time each was read, wait for an expected sequence."""
import ctypes
import ctypes.util
import os
import select
import struct
import time

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

IN_ACCESS = 0x1
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_CLOSE_NOWRITE = 0x10
IN_OPEN = 0x20
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

NAMES = {IN_MODIFY: "MODIFY", IN_ATTRIB: "ATTRIB", IN_CLOSE_WRITE: "CLOSE_WRITE",
         IN_MOVED_FROM: "MOVED_FROM", IN_MOVED_TO: "MOVED_TO", IN_CREATE: "CREATE",
         IN_DELETE: "DELETE", IN_DELETE_SELF: "DELETE_SELF", IN_MOVE_SELF: "MOVE_SELF",
         IN_UNMOUNT: "UNMOUNT", IN_Q_OVERFLOW: "Q_OVERFLOW", IN_IGNORED: "IGNORED",
         IN_ACCESS: "ACCESS", IN_OPEN: "OPEN", IN_CLOSE_NOWRITE: "CLOSE_NOWRITE"}

# what the tests watch for: changes, not reads
CHANGES = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO |
           IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)


class Event:
    __slots__ = ("path", "mask", "cookie", "name", "at")

    def __init__(self, path, mask, cookie, name, at):
        self.path, self.mask, self.cookie, self.name, self.at = path, mask, cookie, name, at

    @property
    def kinds(self):
        return {n for bit, n in NAMES.items() if self.mask & bit}

    @property
    def is_dir(self):
        return bool(self.mask & IN_ISDIR)

    def __repr__(self):
        return "<%s %s %r cookie=%d>" % (self.path, "|".join(sorted(self.kinds)),
                                         self.name, self.cookie)


class Watcher:
    """inotify instance watching some directories (paths kept per wd)."""

    def __init__(self):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wds = {}
        self.events = []
        self._buf = b""

    def add(self, path, mask=CHANGES):
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "inotify_add_watch %s: %s" % (path, os.strerror(e)))
        self.wds[wd] = path
        return wd

    def add_tree(self, top, mask=CHANGES):
        for d, subdirs, _ in os.walk(top):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            self.add(d, mask)

    def poll(self, timeout=0.0):
        """Read what is there (waiting up to timeout for the first)."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        now = time.monotonic()
        data = self._buf + data
        out, off = [], 0
        while off + 16 <= len(data):
            wd, mask, cookie, length = struct.unpack_from("iIII", data, off)
            if off + 16 + length > len(data):
                break
            name = data[off + 16:off + 16 + length].split(b"\0", 1)[0].decode("utf-8", "replace")
            out.append(Event(self.wds.get(wd, "?"), mask, cookie, name, now))
            off += 16 + length
        self._buf = data[off:]
        self.events.extend(out)
        return out

    def wait_for(self, pred, timeout=10.0, what="an event"):
        """Wait until pred(list of all events so far) is true; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll(0)
            if pred(self.events):
                return self.events
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out after %.1f s waiting for %s; events: %r"
                                     % (timeout, what, self.events))
            self.poll(min(left, 0.2))

    def wait_kinds(self, name, kinds, path=None, timeout=10.0):
        """Wait until events on `name` (in directory `path`) cover `kinds`."""
        kinds = set(kinds)

        def have(evs):
            seen = set()
            for e in evs:
                if e.name == name and (path is None or e.path == path):
                    seen |= e.kinds
            return kinds <= seen
        self.wait_for(have, timeout, "%s on %r" % (sorted(kinds), name))
        return [e for e in self.events if e.name == name]

    def settle(self, quiet=0.5, timeout=10.0):
        """Read until nothing arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.poll(quiet):
                return self.events
        return self.events

    def clear(self):
        self.events = []

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
