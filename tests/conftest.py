"""conftest.py - session-wide: one directory for every log of the session
(tests/logcheck.py says how tests put their logs there), and at the end of
the session the check that no test password or token appears in any of
them; a leak fails the run (exit status 1) with a report of where."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import logcheck  # noqa: E402

_leaks = []


def pytest_configure(config):
    build = os.environ.get("EXCHANGEFS_BUILD") or os.path.join(os.path.dirname(HERE), "build")
    logcheck.start_session(build)


def pytest_sessionfinish(session, exitstatus):
    _leaks[:] = logcheck.scan()
    if _leaks:
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
