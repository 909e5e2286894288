"""conftest.py - fixtures for the mount tests: a test EWS server (from
tests/server/harness.py), a `target` on every kind of server (tests/fs/
servers.py: the test server over EWS and over ActiveSync 16.1, SOGo over
ActiveSync 14.1), and exchangefs daemons mounted against either, with a log
per daemon kept in the session's log directory (tests/logcheck.py)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
sys.path.insert(0, HERE)

import logcheck  # noqa: E402  (tests/, on sys.path through tests/conftest.py)
from harness import EwsServer  # noqa: E402
from mountlib import EXE, Mount, server_name_to_file  # noqa: E402
from servers import KINDS, Target, make_target  # noqa: E402


def pytest_collection_modifyitems(config, items):
    skip = None
    if not os.path.exists("/dev/fuse"):
        skip = pytest.mark.skip(reason="/dev/fuse is missing")
    elif not os.path.exists(EXE):
        skip = pytest.mark.skip(reason="exchangefs is not built (%s)" % EXE)
    if skip:
        for item in items:
            if "tests/fs/" in str(item.fspath):
                item.add_marker(skip)


def expected_tree(dump):
    """{relative folder path on the mount: {item id: item}} from a server dump."""
    by_id = {f["id"]: f for f in dump["folders"]}
    out = {}
    for f in dump["folders"]:
        if f.get("distinguished") in ("root", "msgfolderroot"):
            continue
        cls = f.get("folder_class")
        if cls and not cls.startswith("IPF.Note"):
            continue
        # hidden if any ancestor is not a mail folder
        p, hidden = by_id.get(f["parent_id"]), False
        while p and p.get("distinguished") not in ("root", "msgfolderroot"):
            c = p.get("folder_class")
            hidden |= bool(c and not c.startswith("IPF.Note"))
            p = by_id.get(p["parent_id"])
        if hidden:
            continue
        out["/".join(server_name_to_file(n) for n in f["path_parts"])] = {}
    path_of = {f["id"]: "/".join(server_name_to_file(n) for n in f["path_parts"])
               for f in dump["folders"]}
    for it in dump["items"]:
        p = path_of.get(it["folder_id"])
        if p in out:
            out[p][it["id"]] = it
    return out


class MountFactory:
    def __init__(self, tmp_path, request):
        self.tmp = tmp_path
        self.request = request
        self.mounts = []
        self.n = 0
        self.name = request.node.name if request is not None else "shared"

    def __call__(self, srv, cache=None, mountpoint=None, extra=(), start=True,
                 password=None, url=None, **kw):
        """Mount srv: a test server (EwsServer, over EWS unless url says
        otherwise) or a Target of any kind (its URL and protocol options)."""
        if isinstance(srv, Target):
            url = url or srv.url
            extra = [*srv.args, *extra]
            srv = srv.srv
        self.n += 1
        cache = cache or str(self.tmp / "cache")
        mountpoint = mountpoint or str(self.tmp / "mnt")
        m = Mount(mountpoint, url or srv.ews_url, srv.user, password or srv.password,
                  cache, logcheck.new_log("daemon-%s-%d" % (self.name, self.n)),
                  ca_file=srv.ca_cert, extra=["--sync-interval", "1", *extra], **kw)
        self.mounts.append(m)
        if start:
            m.start()
        return m

    def cleanup(self):
        for m in self.mounts:
            if m.proc:
                m.kill()


@pytest.fixture
def mount(tmp_path, request):
    f = MountFactory(tmp_path, request)
    yield f
    f.cleanup()


@pytest.fixture
def server(tmp_path):
    """A fresh TLS test server with a small mailbox, for tests that change it."""
    with EwsServer(messages=120, seed=3, tls=True, state=str(tmp_path / "server-state.json")) as srv:
        yield srv


@pytest.fixture(params=KINDS)
def target(request):
    """A server of each kind (test server EWS, test server EAS 16.1, SOGo EAS
    14.1) with a small mailbox; mount(target) mounts it. A test needing what
    a kind cannot do calls target.require(feature) and is skipped with the
    reason (servers.CANNOT)."""
    t = make_target(request.param)
    yield t
    t.close()


@pytest.fixture(scope="module", params=["zero-open", "open-requests"])
def shared(tmp_path_factory, request):
    """One server and one synced mount shared by the read-only tests of a
    module; once with the kernel's zero-message opens, once with every open
    going through the daemon (the path older kernels take)."""
    tmp = tmp_path_factory.mktemp("shared")
    with EwsServer(messages=400, seed=11, tls=True) as srv:
        f = MountFactory(tmp, None)
        m = f(srv, extra=["--open-requests"] if request.param == "open-requests" else [])
        m.wait_synced()
        yield srv, m
        m.stop()
        f.cleanup()
