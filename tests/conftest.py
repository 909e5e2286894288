"""conftest.py - session-wide: one directory for every log of the session
(tests/logcheck.py says how tests put their logs there), and at the end of
the session the check that no test password or token appears in any of
them; a leak fails the run (exit status 1) with a report of where, and so
does a sanitizer report file written during the run (tests/run.sh points
ASan, UBSan and TSan at files with log_path).  Tests
run in parallel (pytest-xdist, tests/run.sh): every test on SOGo goes to one
worker, since one SOGo instance serves the machine and the worker that
starts it stops it at its end."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import logcheck  # noqa: E402
import pytest  # noqa: E402

_leaks = []
_reports = []
_started = time.time()


def sanitizer_reports(since):
    """Report files written since `since` by a sanitizer whose *SAN_OPTIONS
    has log_path=P (the files are P.<pid>)."""
    found = []
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
        for opt in os.environ.get(var, "").split(":"):
            if not opt.startswith("log_path="):
                continue
            base = opt[len("log_path="):]
            d = os.path.dirname(base) or "."
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                if n.startswith(os.path.basename(base) + ".") and os.path.getmtime(p) >= since:
                    found.append(p)
    return sorted(set(found))


def pytest_configure(config):
    # one clock anchor for every generated mailbox of the run (tests/server/
    # generate.py): the controller sets it, xdist workers and servers inherit it
    os.environ.setdefault("EXCHANGEFS_TEST_ANCHOR", str(int(time.time()) // 3600 * 3600))
    build = os.environ.get("EXCHANGEFS_BUILD") or os.path.join(os.path.dirname(HERE), "build")
    logcheck.start_session(build)


def uses_sogo(item):
    """Whether a test runs on SOGo: its fixtures, or a parameter "sogo"
    (the every-kind suites, tests/fs/servers.py)."""
    if {"sogo", "sogo_user"} & set(getattr(item, "fixturenames", ())):
        return True
    cs = getattr(item, "callspec", None)
    return bool(cs) and "sogo" in [v for v in cs.params.values() if isinstance(v, str)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if uses_sogo(item):
            item.add_marker(pytest.mark.xdist_group("sogo"))


def pytest_sessionfinish(session, exitstatus):
    _leaks[:] = logcheck.scan()
    if _leaks:
        session.exitstatus = 1
    if not hasattr(session.config, "workerinput"):   # the xdist controller, or no xdist
        _reports[:] = sanitizer_reports(_started)
        if _reports:
            session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    d = os.environ.get(logcheck.ENV)
    n = len(logcheck.files(d))
    if _leaks:
        terminalreporter.section("secrets in logs", sep="=", red=True, bold=True)
        for path, what, line in _leaks:
            terminalreporter.write_line("%s: %s: %s" % (path, what, line))
        terminalreporter.write_line("FAILED: %d secret(s) found in the %d logs of %s"
                                    % (len(_leaks), n, d))
    else:
        terminalreporter.write_line("no secret in the %d logs of %s" % (n, d))
    if _reports:
        terminalreporter.section("sanitizer reports", sep="=", red=True, bold=True)
        terminalreporter.write_line("FAILED: %d sanitizer report file(s): %s"
                                    % (len(_reports), " ".join(_reports)))
