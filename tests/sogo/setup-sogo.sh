#!/bin/bash
# tests/sogo/setup-sogo.sh - install, configure and start the real ActiveSync server of the test
# suite on Debian 12: SOGo 5.8 (sogo + sogo-activesync) + Dovecot IMAP + PostgreSQL 15 + memcached +
# a tiny SMTP sink (smtp-sink.py). Everything listens on 127.0.0.1 only; no systemd needed (daemons
# are started by hand). Idempotent: re-running it leaves running daemons alone (restarting only what
# changed) and exits 0 once  OPTIONS http://127.0.0.1:$SOGO_PORT/SOGo/Microsoft-Server-ActiveSync
# answers 200 with MS-ASProtocolVersions. stop-sogo.sh stops everything (pid files under $STATE).
# tests/sogo/sogo.py (the pytest side) runs it, adds a fresh user per test and stops it again.
# Adapted from the measured setup in the project's shared tools (README.md here lists the quirks).
#
#   setup-sogo.sh                 install what is missing, configure, start
#   setup-sogo.sh --install-only  only install the packages (contrib/install-deps.sh --sogo)
#
# Environment (all optional):
#   SOGO_TEST_BASE   base dir (default /tmp/sogo-test); state lives in $SOGO_TEST_BASE/state
#   SOGO_TEST_USERS  space separated user:password list (default "test:test test2:test2");
#                    mail address is user@example.test; the same password works for EAS and IMAP
#   SOGO_PORT, SOGO_IMAP_PORT, SOGO_PG_PORT, SOGO_MEMCACHED_PORT, SOGO_SMTP_PORT
#                    ports (defaults 20000, 143, 5432, 11211, 2525)
#   SOGO_WORKERS     sogod worker processes (default 8: each pending Ping/Sync holds one, even after its client went away)
#   SOGO_EAS_DEBUG   YES to log every EAS request/response (WBXML as XML) to $STATE/sogo/sogo.log
#   SKIP_INSTALL=1   do not touch packages
# Files written outside $SOGO_TEST_BASE: /etc/sogo/sogo.conf (sogod reads no other; the original
# is saved once as $SOGO_TEST_BASE/sogo.conf.orig), /run/sogo (home of user sogo), system user vmail.
set -euo pipefail

BASE=${SOGO_TEST_BASE:-/tmp/sogo-test}
STATE=$BASE/state
USERS=${SOGO_TEST_USERS:-"test:test test2:test2"}
WORKERS=${SOGO_WORKERS:-8}
EAS_DEBUG=${SOGO_EAS_DEBUG:-NO}
DOMAIN=example.test
PGBIN=/usr/lib/postgresql/15/bin
PKGS="sogo sogo-activesync dovecot-imapd memcached postgresql-15 python3 curl"
SOGO_PORT=${SOGO_PORT:-20000}
IMAP_PORT=${SOGO_IMAP_PORT:-143}
PG_PORT=${SOGO_PG_PORT:-5432}
MEMCACHED_PORT=${SOGO_MEMCACHED_PORT:-11211}
SMTP_PORT=${SOGO_SMTP_PORT:-2525}
FRESH_PASSWORD=xfs-fresh-user     # see sogo_server.py (Sogo.new_user)
HERE=$(cd "$(dirname "$0")" && pwd)
INSTALL_ONLY=0
[ "${1:-}" = --install-only ] && INSTALL_ONLY=1
# one run at a time: several test processes may ask at once (spawn closes fd 9 for the daemons)
mkdir -p "$BASE"
exec 9>"$BASE/.setup.lock"
flock 9

T_START=$(date +%s.%N)
T_LAST=$T_START
log() { local now; now=$(date +%s.%N)
        awk -v n="$now" -v s="$T_START" -v l="$T_LAST" -v m="$*" \
            'BEGIN { printf "[setup-sogo +%6.2fs | step %5.2fs] %s\n", n - s, n - l, m }'; T_LAST=$now; }
# spawn OUTFILE CMD...: run a daemon-starting command detached from our stdio and inherited fds,
# so that callers that capture our output (CI, $(...), pipes) do not wait for the daemons
spawn() { local out=$1; shift
          ( for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
            exec "$@" ) </dev/null >>"$out" 2>&1; }
die() { echo "setup-sogo: ERROR: $*" >&2; exit 1; }
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }
alive() { [ -s "$1" ] && running "$(head -1 "$1")"; }   # alive PIDFILE (zombies count as dead)

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- 1. packages
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  missing=""
  for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "installing:$missing"
    # keep the packages' own init/systemd units from starting daemons on the public interfaces:
    # a temporary policy-rc.d (only if none exists) that forbids starting just these services
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\ncase "$1" in sogo|dovecot|memcached|postgresql*) exit 101;; esac\nexit 104\n' \
        > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    # only the missing ones: naming an installed package would also upgrade it
    apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends $missing
    log "packages installed"
  else
    log "packages already installed"
  fi
fi
[ $INSTALL_ONLY = 1 ] && exit 0
[ -x /usr/sbin/sogod ] && [ -x /usr/sbin/dovecot ] && [ -x /usr/bin/memcached ] && [ -x $PGBIN/postgres ] \
  || die "packages missing (run without SKIP_INSTALL=1)"
if [ -d /run/systemd/system ]; then
  # systemd is PID 1: make sure the distro units do not hold our ports
  for s in sogo dovecot memcached postgresql; do
    systemctl is-active -q "$s" 2>/dev/null && { log "stopping distro unit $s"; systemctl stop "$s"; } || true
  done
fi

# ---------------------------------------------------------------- 2. users, directories
getent passwd vmail >/dev/null || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmail
mkdir -p "$BASE" "$STATE" "$STATE/dovecot/run" "$STATE/dovecot/lib" "$STATE/smtp-sink"
chmod 755 "$BASE" "$STATE"
install -d -o postgres -g postgres -m 700 "$STATE/pg"
install -d -o postgres -g postgres -m 755 "$STATE/pgsock"
install -d -o vmail -g vmail -m 700 "$STATE/mail"
install -d -o memcache -g memcache -m 755 "$STATE/memcached"
install -d -o sogo -g sogo -m 750 "$STATE/sogo"
install -d -o sogo -g sogo -m 755 /run/sogo                 # $HOME of user sogo (GNUstep)
[ -e "$STATE/pg.log" ] || install -o postgres -g postgres -m 640 /dev/null "$STATE/pg.log"
log "users/directories ready"

# ---------------------------------------------------------------- 3. PostgreSQL (private cluster)
if [ ! -s "$STATE/pg/PG_VERSION" ]; then
  su postgres -s /bin/sh -c "$PGBIN/initdb -D $STATE/pg -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256" > "$STATE/initdb.log" 2>&1 || die "initdb failed: $STATE/initdb.log"
  log "initdb done"
fi
if ! su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $STATE/pg status" >/dev/null 2>&1; then
  spawn "$STATE/pg_ctl.out" su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $STATE/pg -l $STATE/pg.log -w -t 60 \
      -o \"-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$STATE/pgsock\" start" \
    || die "PostgreSQL did not start, see $STATE/pg.log"
  log "PostgreSQL started (pid $(head -1 $STATE/pg/postmaster.pid))"
else
  log "PostgreSQL already running"
fi
{
  cat <<'EOF'
SET client_min_messages TO warning;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sogo') THEN CREATE ROLE sogo LOGIN PASSWORD 'sogo'; END IF;
END $$;
SELECT 'CREATE DATABASE sogo OWNER sogo' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sogo')\gexec
\c sogo
SET client_min_messages TO warning;
SET ROLE sogo;
CREATE TABLE IF NOT EXISTS sogo_users (
  c_uid varchar(255) PRIMARY KEY, c_name varchar(255) NOT NULL, c_password varchar(255) NOT NULL,
  c_cn varchar(255), mail varchar(255));
EOF
  for up in $USERS; do
    u=${up%%:*}; p=${up#*:}
    echo "INSERT INTO sogo_users VALUES ('$u','$u','{PLAIN}$p','Test User $u','$u@$DOMAIN')
          ON CONFLICT (c_uid) DO UPDATE SET c_password = EXCLUDED.c_password;"
  done
} | psql -q -h "$STATE/pgsock" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -f - >/dev/null || die "database setup failed"
log "database sogo + table sogo_users ready ($(echo $USERS | wc -w) users)"

# ---------------------------------------------------------------- 4. Dovecot (private instance)
: > "$STATE/dovecot/users.new"
for up in $USERS; do echo "${up%%:*}:{PLAIN}${up#*:}::::::" >> "$STATE/dovecot/users.new"; done
mv "$STATE/dovecot/users.new" "$STATE/dovecot/users"; chmod 644 "$STATE/dovecot/users"
cat > "$STATE/dovecot/dovecot.conf.new" <<EOF
# private dovecot instance for SOGo EAS tests (loopback only) - generated by setup-sogo.sh
protocols = imap
listen = 127.0.0.1
base_dir = $STATE/dovecot/run
state_dir = $STATE/dovecot/lib
instance_name = sogo-test-dovecot
log_path = $STATE/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:$STATE/mail/%u
mail_plugins = acl
imap_max_line_length = 2M
protocol imap {
  mail_plugins = \$mail_plugins imap_acl
}
plugin {
  acl = vfile
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $STATE/dovecot/users
}
# the fresh users tests make (sogo_server.py: a row in sogo_users, no line above) log in
# with this password; their mailboxes are made on first login
passdb {
  driver = static
  args = password=$FRESH_PASSWORD
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=$STATE/mail/%u
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    auto = subscribe
    special_use = \Drafts
  }
  mailbox Sent {
    auto = subscribe
    special_use = \Sent
  }
  mailbox Trash {
    auto = subscribe
    special_use = \Trash
  }
  mailbox Junk {
    auto = subscribe
    special_use = \Junk
  }
  mailbox Templates {
    auto = subscribe
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  inet_listener http {
    port = 0
  }
}
EOF
dc_changed=0
cmp -s "$STATE/dovecot/dovecot.conf.new" "$STATE/dovecot/dovecot.conf" || dc_changed=1
mv "$STATE/dovecot/dovecot.conf.new" "$STATE/dovecot/dovecot.conf"
doveconf -c "$STATE/dovecot/dovecot.conf" -n >/dev/null || die "bad dovecot config"
if alive "$STATE/dovecot/run/master.pid"; then
  if [ $dc_changed = 1 ]; then kill -HUP "$(cat "$STATE/dovecot/run/master.pid")"; log "Dovecot config reloaded"
  else log "Dovecot already running"; fi
else
  spawn "$STATE/dovecot/dovecot.out" /usr/sbin/dovecot -c "$STATE/dovecot/dovecot.conf" || die "dovecot did not start, see $STATE/dovecot/dovecot.log"
  for i in $(seq 1 50); do alive "$STATE/dovecot/run/master.pid" && break; sleep 0.1; done
  log "Dovecot started (pid $(cat "$STATE/dovecot/run/master.pid"))"
fi

# ---------------------------------------------------------------- 5. memcached
if alive "$STATE/memcached/memcached.pid"; then
  log "memcached already running"
else
  spawn "$STATE/memcached.out" /usr/bin/memcached -d -u memcache -l 127.0.0.1 -p $MEMCACHED_PORT -U 0 -m 64 \
    -P "$STATE/memcached/memcached.pid"
  for i in $(seq 1 50); do alive "$STATE/memcached/memcached.pid" && break; sleep 0.1; done
  alive "$STATE/memcached/memcached.pid" || die "memcached did not start (port $MEMCACHED_PORT busy?)"
  log "memcached started (pid $(cat "$STATE/memcached/memcached.pid"))"
fi

# ---------------------------------------------------------------- 6. SMTP sink (stores N.eml files)
install -m 755 "$HERE/smtp-sink.py" "$BASE/smtp-sink.py"
chmod 755 "$BASE/smtp-sink.py"
if alive "$STATE/smtp-sink.pid"; then
  log "SMTP sink already running"
else
  spawn "$STATE/smtp-sink.log" setsid -f /bin/sh -c 'echo $$ > "$1"; exec /usr/bin/python3 "$2" 127.0.0.1 "$4" "$3"' \
    sh "$STATE/smtp-sink.pid" "$BASE/smtp-sink.py" "$STATE/smtp-sink" "$SMTP_PORT"
  for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT) 2>/dev/null && break; sleep 0.1; done
  alive "$STATE/smtp-sink.pid" || die "SMTP sink did not start, see $STATE/smtp-sink.log"
  log "SMTP sink started on 127.0.0.1:$SMTP_PORT (pid $(cat "$STATE/smtp-sink.pid"))"
fi

# ---------------------------------------------------------------- 7. EAS/Dovecot quirk: modseq warm-up
# Dovecot announces HIGHESTMODSEQ for a mailbox only after a CONDSTORE-enabled client opened it once;
# until then SOGo's EAS Sync returns nothing for that folder (SyncKey stays "-1"). Open every mailbox
# of every test user once with ENABLE CONDSTORE + EXAMINE (persistent). Test code that creates new
# mailboxes (IMAP CREATE, EAS FolderCreate) must do the same for them (see imap-enable-modseq.py).
install -m 755 "$HERE/imap-enable-modseq.py" "$BASE/imap-enable-modseq.py"
chmod 755 "$BASE/imap-enable-modseq.py"
for up in $USERS; do
  /usr/bin/python3 "$BASE/imap-enable-modseq.py" "${up%%:*}" "${up#*:}" 127.0.0.1 "$IMAP_PORT" || die "IMAP login failed for ${up%%:*}"
done
log "IMAP mailboxes of $(echo $USERS | wc -w) users modseq-enabled"

# ---------------------------------------------------------------- 8. SOGo
[ -f "$BASE/sogo.conf.orig" ] || cp -p /etc/sogo/sogo.conf "$BASE/sogo.conf.orig" 2>/dev/null || true
DB="postgresql://sogo:sogo@127.0.0.1:$PG_PORT/sogo"
cat > "$STATE/sogo.conf.new" <<EOF
/* generated by $BASE/setup-sogo.sh: SOGo for local EAS integration tests (loopback only) */
{
  WOPort = "127.0.0.1:$SOGO_PORT";
  WOWorkersCount = $WORKERS;
  WOWatchDogRequestTimeout = 10;
  SxVMemLimit = 512;

  SOGoProfileURL = "$DB/sogo_user_profile";
  OCSFolderInfoURL = "$DB/sogo_folder_info";
  OCSSessionsFolderURL = "$DB/sogo_sessions_folder";
  OCSStoreURL = "$DB/sogo_store";
  OCSAclURL = "$DB/sogo_acl";
  OCSCacheFolderURL = "$DB/sogo_cache_folder";

  SOGoUserSources = (
    {
      type = sql;
      id = users;
      viewURL = "$DB/sogo_users";
      canAuthenticate = YES;
      isAddressBook = YES;
      displayName = "Test users";
      listRequiresDot = NO;
      userPasswordAlgorithm = plain;
    }
  );

  SOGoIMAPServer = "imap://127.0.0.1:$IMAP_PORT";
  SOGoMailDomain = $DOMAIN;
  SOGoMailingMechanism = smtp;
  SOGoSMTPServer = "smtp://127.0.0.1:$SMTP_PORT";
  SOGoMemcachedHost = "127.0.0.1:$MEMCACHED_PORT";

  SOGoTimeZone = UTC;
  SOGoLanguage = English;
  SOGoSentFolderName = Sent;
  SOGoTrashFolderName = Trash;
  SOGoDraftsFolderName = Drafts;
  SOGoJunkFolderName = Junk;
  SOGoIMAPAclConformsToIMAPExt = YES;
  SOGoVacationEnabled = NO;
  SOGoForwardEnabled = NO;
  SOGoSieveScriptsEnabled = NO;
  SOGoEnableEMailAlarms = NO;
  SOGoAppointmentSendEMailNotifications = NO;

  /* ActiveSync: Ping/Sync may wait up to 300 s; changes are polled every 5 s
     (Ping sleeps in steps of max(5, SOGoInternalSyncInterval) s) */
  SOGoMaximumPingInterval = 300;
  SOGoMaximumSyncInterval = 300;
  SOGoInternalSyncInterval = 5;
  SOGoEASDebugEnabled = $EAS_DEBUG;
}
EOF
sg_changed=0
cmp -s "$STATE/sogo.conf.new" /etc/sogo/sogo.conf || sg_changed=1
if [ $sg_changed = 1 ]; then
  install -o root -g sogo -m 640 "$STATE/sogo.conf.new" /etc/sogo/sogo.conf
fi
rm -f "$STATE/sogo.conf.new"
SOGO_PID="$STATE/sogo/sogo.pid"
stop_sogod() {   # TERM parent and workers, KILL whatever is left after 5 s
  local p kids i
  p=$(cat "$SOGO_PID"); kids=$(ps -o pid= --ppid "$p" || true)
  kill -TERM "$p" $kids 2>/dev/null || true
  for i in $(seq 1 30); do running "$p" || break; sleep 0.1; done
  kill -KILL "$p" $kids 2>/dev/null || true
  rm -f "$SOGO_PID"
}
if alive "$SOGO_PID" && [ $sg_changed = 1 ]; then
  log "sogo.conf changed: restarting sogod"; stop_sogod
fi
if alive "$SOGO_PID"; then
  log "sogod already running"
else
  rm -f "$SOGO_PID"
  spawn "$STATE/sogod.out" su sogo -s /bin/sh -c ". /usr/share/GNUstep/Makefiles/GNUstep.sh; exec /usr/sbin/sogod \
      -WOWorkersCount $WORKERS -WOPidFile $SOGO_PID -WOLogFile $STATE/sogo/sogo.log" \
    || die "sogod did not start, see $STATE/sogo/sogo.log"
  for i in $(seq 1 50); do alive "$SOGO_PID" && break; sleep 0.1; done
  alive "$SOGO_PID" || die "sogod did not start (port $SOGO_PORT busy?), see $STATE/sogo/sogo.log"
  log "sogod started (pid $(cat "$SOGO_PID"), $WORKERS workers)"
fi

# ---------------------------------------------------------------- 9. wait for the EAS endpoint
first=${USERS%% *}
hdrs=""
for i in $(seq 1 300); do
  hdrs=$(curl -s -m 5 -o /dev/null -D - -X OPTIONS -u "${first%%:*}:${first#*:}" \
         "http://127.0.0.1:$SOGO_PORT/SOGo/Microsoft-Server-ActiveSync" 2>/dev/null || true)
  if echo "$hdrs" | head -1 | grep -q ' 200' && echo "$hdrs" | grep -qi '^MS-ASProtocolVersions:'; then break; fi
  hdrs=""; sleep 0.2
done
[ -n "$hdrs" ] || die "EAS endpoint did not answer, see $STATE/sogo/sogo.log"
log "EAS endpoint ready: http://127.0.0.1:$SOGO_PORT/SOGo/Microsoft-Server-ActiveSync"
echo "$hdrs" | grep -iE '^MS-AS|^MS-Server' | tr -d '\r'
echo "users: $USERS (mail: user@$DOMAIN); SMTP sink files: $STATE/smtp-sink/; logs: $STATE/sogo/sogo.log $STATE/dovecot/dovecot.log"
exit 0
