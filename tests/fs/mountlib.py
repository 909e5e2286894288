"""mountlib.py - run the exchangefs daemon for mount tests, the way sshfs and
libfuse test themselves: the daemon in the foreground, wait for the mount
with a timeout while checking the daemon is alive, unmount with
`fusermount3 -u` and require success, keep a log per test, and fail a test
whose daemon printed sanitizer reports or unexpected errors.
"""
import os
import signal
import subprocess
import time

BUILD = os.environ.get("EXCHANGEFS_BUILD") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")
EXE = os.path.join(BUILD, "fs", "exchangefs")

# Log lines a healthy daemon never prints.
BAD_LOG = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:", "Segmentation",
           "double free", "Assertion")



def force_unmount(path):
    """umount2(MNT_FORCE): aborts a FUSE connection (fuse_umount_begin),
    which ends every request waiting on it; called without resolving the
    path through the mount (a stat there would wait on the dead daemon)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(os.fsencode(path), 1)       # MNT_FORCE

def wait_for(pred, timeout=30.0, interval=0.05, what="condition"):
    """Poll pred() until it is true; raise with `what` after timeout s."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def server_name_to_file(name):
    """The folder naming contract (cache/names.c), for comparisons."""
    name = name.replace("/", "\u2215")
    if name.startswith("."):
        name = "\uff0e" + name[1:]
    return name or "(unnamed)"


class Mount:
    """One exchangefs daemon.  Use start(), then stop() (or kill())."""

    def __init__(self, mountpoint, url, user, password, cache_dir, log_path,
                 ca_file=None, extra=(), env=None):
        self.mountpoint = mountpoint
        self.url = url
        self.user = user
        self.cache_dir = cache_dir
        self.log_path = log_path
        self.ca_file = ca_file
        self.extra = list(extra)
        self.env = dict(os.environ, TZ="UTC", **(env or {}))
        self.proc = None
        self.pwfile = os.path.join(os.path.dirname(cache_dir), "password")
        with open(os.open(self.pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(password + "\n")
        os.makedirs(mountpoint, exist_ok=True)

    def argv(self):
        a = [EXE, "-f", "--url", self.url, "--user", self.user,
             "--password-file", self.pwfile, "--cache-dir", self.cache_dir]
        if self.ca_file:
            a += ["--ca-file", self.ca_file]
        if not any(x == "--prefetch" or x.startswith("--prefetch=") for x in self.extra):
            a += ["--prefetch", "none"]     # tests count fetches; test_prefetch.py turns it on
        return a + self.extra + [self.mountpoint]

    def start(self, timeout=60, expect_mount=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        if not expect_mount:
            return self
        try:
            wait_for(lambda: self.proc.poll() is not None or os.path.ismount(self.mountpoint),
                     timeout, what="mount of " + self.mountpoint)
        except TimeoutError:
            self.kill()
            raise
        if not os.path.ismount(self.mountpoint):
            raise AssertionError("exchangefs exited with %s before mounting:\n%s"
                                 % (self.proc.returncode, self.log_text()))
        return self

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_log(self):
        text = self.log_text()
        for bad in BAD_LOG:
            assert bad not in text, "daemon log has %r:\n%s" % (bad, text[-5000:])
        # The daemon under a sanitizer (tests/run.sh) writes its reports to
        # log_path files, not stderr; tests/run.sh and .ci/run count them.
        # Under TSan a daemon with reports also exits 66, which stop() sees.
        return text

    def stop(self, timeout=30, busy_retries=10):
        """Unmount with fusermount3 -u and require a clean exit.  An unmount
        refused as busy (some process, or the daemon reflecting a server
        change, is inside the mount at that instant) is tried again up to
        busy_retries times 50 ms apart, as a user would."""
        if not self.proc:
            return
        for attempt in range(busy_retries + 1):
            r = subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True, text=True)
            if r.returncode == 0 or "busy" not in r.stderr:
                break
            self.busy_refusals = getattr(self, "busy_refusals", 0) + 1
            time.sleep(0.05)
        assert r.returncode == 0, "fusermount3 -u failed: " + r.stderr
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = self.stacks()
            self.kill()
            raise AssertionError("daemon did not exit after unmount:\n" + self.log_text()[-3000:] + stacks)
        self.proc = None
        self.log.close()
        assert rc == 0, "daemon exited with %d:\n%s" % (rc, self.log_text()[-3000:])
        self.check_log()

    def stacks(self):
        """Every thread's stack of a daemon that hangs (gdb), for the failure
        message: a hang in CI must say where it hung."""
        try:
            r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=60)
            return "\n--- daemon threads (gdb, newest first) ---\n" + r.stdout[:24000]
        except (OSError, subprocess.SubprocessError) as e:
            return "\n(no stacks: %s)" % e

    def signal(self, sig, timeout=30):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = self.stacks()
            self.kill()
            raise AssertionError("daemon did not exit after signal %d:\n%s%s"
                                 % (sig, self.log_text()[-3000:], stacks))
        self.proc = None
        self.log.close()
        return rc

    def kill(self):
        """kill -9, then lazily detach the dead mount."""
        if self.proc:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                # a thread of the daemon (the reflector) was waiting on a
                # request to its own mount that a worker had taken: the
                # kernel keeps that wait, and so the process, until the
                # connection is aborted, which a forced unmount does
                force_unmount(self.mountpoint)
                self.proc.wait(30)
            self.proc = None
            self.log.close()
        # a dead FUSE mount may not even stat (ENOTCONN): detach regardless
        subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def status(self):
        with open(self.path(".exchangefs", "status"), encoding="utf-8") as f:
            return f.read()

    def wait_synced(self, timeout=120):
        """Wait until the first complete sync has finished."""
        return wait_for(lambda: "last complete sync: never" not in self.status(),
                        timeout, interval=0.1, what="first complete sync")

    def wait_next_sync(self, timeout=60):
        """Wait until a complete sync that started after now has finished."""
        before = self._last_sync()
        time.sleep(1.1)  # the status has one-second resolution
        return wait_for(lambda: self._last_sync() != before, timeout, interval=0.1,
                        what="a new complete sync")

    def _last_sync(self):
        for line in self.status().splitlines():
            if line.startswith("last complete sync:"):
                return line
        return None

    def tree(self):
        """{relative folder path: sorted list of file names}."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.mountpoint):
            rel = os.path.relpath(dirpath, self.mountpoint)
            out["" if rel == "." else rel] = sorted(filenames)
        return out

    def inodes(self):
        """{relative path: inode} of every folder and message."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.mountpoint):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                out[os.path.relpath(p, self.mountpoint)] = os.lstat(p).st_ino
        return out
