#!/bin/sh
# run.sh - install what is needed, build, and run every test (unit tests,
# the test server's own tests, the independent-client test, and the FUSE
# mount tests).  SANITIZE=1 builds with AddressSanitizer + UBSan in
# build-asan, SANITIZE=thread with ThreadSanitizer in build-tsan; the
# reports go to files in the build directory (asan.*, ubsan.*, tsan.*),
# which .ci/run counts.
# Extra arguments go to pytest (e.g. -k remount); when the first names a
# test file or directory (tests/fs), only that runs.  Tests run three at a
# time (EXCHANGEFS_TEST_JOBS).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./contrib/install-deps.sh
case "${SANITIZE:-0}" in
1|address)
	build="build-asan"
	[ -d "$build" ] || meson setup "$build" -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:log_path=$top/$build/asan"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$top/$build/ubsan"
	rm -f "$build"/asan.* "$build"/ubsan.*
	;;
thread)
	# Every report is kept and the run goes on (halt_on_error=0); a
	# daemon with a report exits 66 at its end, which fails its test.
	build="build-tsan"
	[ -d "$build" ] || meson setup "$build" -Db_sanitize=thread \
		-Db_lundef=false >/dev/null
	export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$top/$build/tsan"
	rm -f "$build"/tsan.*
	;;
0)
	build="build"
	[ -d "$build" ] || meson setup "$build" >/dev/null
	;;
*)
	echo "SANITIZE=$SANITIZE: say 1 (or address) or thread" >&2
	exit 2
	;;
esac
ninja -C "$build" >/dev/null
export EXCHANGEFS_BUILD="$top/$build"
# Tests mostly wait (on servers, daemons, events): three at a time on two
# cores take about half the time.  Tests on the one SOGo instance stay on
# one worker (tests/conftest.py groups them).  EXCHANGEFS_TEST_JOBS=0: one
# at a time.
jobs=${EXCHANGEFS_TEST_JOBS:-3}
par=""
[ "$jobs" -gt 0 ] && par="-n $jobs --dist loadgroup"
# the whole of tests/ unless the first argument names what to run
what=tests
[ $# -gt 0 ] && [ -e "${1%%::*}" ] && what=""
# shellcheck disable=SC2086
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfEs $par \
	--junitxml="$top/$build/pytest.xml" $what "$@"
