#!/bin/bash
# tests/sogo/stop-sogo.sh - stop what setup-sogo.sh started, using its pid files (state is kept; run
# setup-sogo.sh again to restart; delete $SOGO_TEST_BASE/state for a clean slate).
set -u
BASE=${SOGO_TEST_BASE:-/tmp/sogo-test}
STATE=$BASE/state
PGBIN=/usr/lib/postgresql/15/bin
T0=$(date +%s.%N)
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }
say() { awk -v n="$(date +%s.%N)" -v s="$T0" -v m="$*" 'BEGIN { printf "[stop-sogo +%5.2fs] %s\n", n - s, m }'; }

# stop_pid NAME PIDFILE [SECONDS]: TERM the pid, wait, then KILL
stop_pid() {
  local name=$1 pf=$2 wait=${3:-10} pid i
  if [ ! -s "$pf" ]; then say "$name: no pid file"; return 0; fi
  pid=$(head -1 "$pf")
  if ! running "$pid"; then say "$name: not running (stale pid $pid)"; rm -f "$pf"; return 0; fi
  kill -TERM "$pid"
  for i in $(seq 1 $((wait * 10))); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then kill -KILL "$pid"; say "$name: killed (pid $pid)"; else say "$name: stopped (pid $pid)"; fi
  rm -f "$pf"
}

# sogod: the watchdog (parent) takes 3-20 s to stop its workers on TERM alone, so TERM the
# parent and its workers together, KILL leftovers after 2 s
pf=$STATE/sogo/sogo.pid
if [ -s "$pf" ] && running "$(cat "$pf")"; then
  p=$(cat "$pf"); kids=$(ps -o pid= --ppid "$p" 2>/dev/null | tr '\n' ' ')
  kill -TERM "$p" $kids 2>/dev/null
  for i in $(seq 1 20); do running "$p" || break; sleep 0.1; done
  left=""; for k in $p $kids; do running "$k" && left="$left $k"; done
  [ -n "$left" ] && kill -KILL $left 2>/dev/null
  say "sogod: stopped (pid $p, workers $kids${left:+; killed:$left})"
  rm -f "$pf"
else
  say "sogod: not running"; rm -f "$pf"
fi
# a sogod of ours the pid file no longer names (a restart that lost the race for the port)
stray=$(pgrep -f -- "-WOPidFile $pf" | tr '\n' ' ')
if [ -n "$stray" ]; then
  kill -TERM $stray 2>/dev/null; sleep 2; kill -KILL $stray 2>/dev/null
  say "sogod: stopped strays ($stray)"
fi

stop_pid "SMTP sink" "$STATE/smtp-sink.pid" 5
stop_pid memcached "$STATE/memcached/memcached.pid" 5
stop_pid dovecot "$STATE/dovecot/run/master.pid" 10

if [ -s "$STATE/pg/postmaster.pid" ] && su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $STATE/pg status" >/dev/null 2>&1; then
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $STATE/pg -m fast -w -t 30 stop" >/dev/null && say "PostgreSQL: stopped" \
    || say "PostgreSQL: stop failed"
else
  say "PostgreSQL: not running"
fi
exit 0
