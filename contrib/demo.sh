#!/bin/sh
# demo.sh - try exchangefs with no Exchange account: installs what is
# needed, builds, starts the bundled test EWS server (HTTPS on 127.0.0.1,
# a generated mailbox of 500 messages kept in .demo/) and mounts it on
# ./demo-mail.  `./contrib/demo.sh stop` unmounts and stops the server.
#   ./contrib/demo.sh sogo      a real ActiveSync server instead: installs
#                               SOGo from Debian (tests/sogo/), fills user
#                               "demo" with 100 messages once, mounts it over
#                               ActiveSync 14.1 on ./demo-sogo
#   ./contrib/demo.sh deliver [SUBJECT]   new mail on the demo servers
#                               (watch it arrive: inotifywait -m demo-mail/Inbox)
#   ./contrib/demo.sh link      only put exchangefs on PATH (see below)
# The README and the hints use `exchangefs`: after building, the demo links
# /usr/local/bin/exchangefs (EXCHANGEFS_DEMO_BINDIR) to build/fs/exchangefs,
# unless an exchangefs that is not such a link is there already.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
demo="$top/.demo"
mnt="$top/demo-mail"
user="alice@example.com"

smnt="$top/demo-sogo"
sogo_url="http://127.0.0.1:${SOGO_PORT:-20000}/SOGo/Microsoft-Server-ActiveSync"

stop() {
	for m in "$mnt" "$smnt"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" && echo "unmounted $m"
		fi
	done
	if [ -f "$demo/server.pid" ] && kill "$(cat "$demo/server.pid")" 2>/dev/null; then
		echo "stopped the test server"
	fi
	rm -f "$demo/server.pid" "$demo/port"
	if [ -f "$demo/sogo-started" ]; then
		tests/sogo/stop-sogo.sh >/dev/null && echo "stopped SOGo"
		rm -f "$demo/sogo-started"
	fi
}

# deliver SUBJECT: a new message in the Inbox of whichever demo runs
deliver() {
	subject=${1:-"Hello from the demo $(date +%H:%M:%S)"}
	if mountpoint -q "$smnt" 2>/dev/null; then
		/usr/bin/python3 - "$subject" <<'PY'
import sys
sys.path.insert(0, "tests/sogo")
from sogo_server import FRESH_PASSWORD, Sogo, SogoUser
SogoUser(Sogo(), "demo", FRESH_PASSWORD).view().deliver("INBOX", subject=sys.argv[1])
PY
		echo "delivered \"$subject\" to the Inbox of demo@example.test on SOGo"
	fi
	if [ -s "$demo/port" ]; then
		curl -sf --cacert "$demo/cert.pem" -d "{\"folder_path\":\"Inbox\",\"subject\":\"$subject\"}" \
			"https://127.0.0.1:$(cat "$demo/port")/control/deliver" >/dev/null
		echo "delivered \"$subject\" to the Inbox of the test server"
	fi
}

# put exchangefs on PATH: a link in $bindir to the build (a newcomer types
# `exchangefs` as the README does); an installed exchangefs is left alone
link() {
	bindir=${EXCHANGEFS_DEMO_BINDIR:-/usr/local/bin}
	exe="$top/build/fs/exchangefs"
	dest="$bindir/exchangefs"
	if [ ! -x "$exe" ]; then
		echo "$exe is not built (run ./contrib/demo.sh)" >&2
		return 1
	fi
	if [ -e "$dest" ] && [ ! -L "$dest" ]; then
		echo "note: $dest is another exchangefs (installed); this build is $exe"
		return 0
	fi
	if [ "$(readlink "$dest" 2>/dev/null)" != "$exe" ]; then
		s=""
		[ -w "$bindir" ] || [ "$(id -u)" -eq 0 ] || s=sudo
		if ! { [ -d "$bindir" ] || $s mkdir -p "$bindir"; } ||
		   ! $s ln -sfn "$exe" "$dest"; then
			echo "note: cannot link $dest; run exchangefs as $exe"
			return 0
		fi
	fi
	case ":$PATH:" in
	*":$bindir:"*) echo "exchangefs is on your PATH: $dest -> build/fs/exchangefs" ;;
	*) echo "linked $dest -> build/fs/exchangefs ($bindir is not on your PATH: add it, or run $exe)" ;;
	esac
}

# install what is missing, build, and make the private .demo directory
prepare() {
	./contrib/install-deps.sh
	[ -d build ] || meson setup build >/dev/null
	ninja -C build >/dev/null
	echo "built build/fs/exchangefs"
	link
	mkdir -p "$demo"
	chmod 700 "$demo"
}

# the SOGo demo: a real ActiveSync server on 127.0.0.1
sogo() {
	./contrib/install-deps.sh --sogo
	prepare
	running=0
	curl -s -m 2 -o /dev/null -X OPTIONS "$sogo_url" && running=1
	echo "starting SOGo, Dovecot, PostgreSQL, memcached (tests/sogo/setup-sogo.sh)..."
	tests/sogo/setup-sogo.sh | tail -1
	[ $running = 1 ] || touch "$demo/sogo-started"
	/usr/bin/python3 - "$demo/sogo-password" <<'PY'
import os, sys
sys.path.insert(0, "tests/sogo")
from sogo_server import DOMAIN, FRESH_PASSWORD, Sogo, SogoUser
Sogo().psql("INSERT INTO sogo_users VALUES ('demo','demo','{PLAIN}%s','Demo User','demo@%s') "
            "ON CONFLICT (c_uid) DO NOTHING" % (FRESH_PASSWORD, DOMAIN))
u = SogoUser(Sogo(), "demo", FRESH_PASSWORD)
u.enable_modseq()
m = u.imap()
n = int(m.select("INBOX")[1][0])
m.logout()
if n == 0:
    print("filling the mailbox of demo@%s (100 messages)..." % DOMAIN)
    u.view().populate(100, 42)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, (FRESH_PASSWORD + "\n").encode())
os.close(fd)
PY
	mkdir -p "$smnt"
	if mountpoint -q "$smnt"; then
		echo "already mounted on $smnt"
	else
		./build/fs/exchangefs --protocol eas --url "$sogo_url" --user demo \
			--password-file "$demo/sogo-password" --cache-dir "$demo/sogo-cache" "$smnt"
	fi
	cat <<EOT

SOGo's mailbox of demo@example.test is mounted over ActiveSync on $smnt. Try:
  ls demo-sogo/ demo-sogo/INBOX | head     # folders and messages
  grep -rl 'invoice 4711' demo-sogo        # every message's exact MIME
  inotifywait -m demo-sogo/INBOX &         # then: ./contrib/demo.sh deliver
  printf 'To: bob@example.test\\nSubject: Hi\\n\\nHello\\n' > /tmp/hi.eml
  cp /tmp/hi.eml demo-sogo/Outbox/         # sent (to SOGo's SMTP sink), a copy in Sent
  exchangefs status demo-sogo               # sync state and progress
Unmount (and stop SOGo if the demo started it):
  ./contrib/demo.sh stop
EOT
}

case "${1:-}" in
stop) stop; exit 0 ;;
deliver) deliver "${2:-}"; exit 0 ;;
sogo) sogo; exit 0 ;;
link) link; exit $? ;;
"") ;;
*) echo "usage: $0 [sogo | deliver [SUBJECT] | link | stop]" >&2; exit 2 ;;
esac

prepare
if [ ! -f "$demo/cert.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$demo/key.pem" -out "$demo/cert.pem" -days 365 -subj /CN=localhost \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
fi
[ -f "$demo/password" ] || { umask 077; echo "demo-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$demo/password"; }

if [ ! -f "$demo/server.pid" ] || ! kill -0 "$(cat "$demo/server.pid")" 2>/dev/null; then
	rm -f "$demo/port"
	/usr/bin/python3 tests/server/ews_server.py --port 0 --port-file "$demo/port" \
		--tls-cert "$demo/cert.pem" --tls-key "$demo/key.pem" \
		--user "$user" --password "$(cat "$demo/password")" \
		--messages 500 --seed 42 --state "$demo/mailbox.json" \
		>"$demo/server.log" 2>&1 &
	echo $! > "$demo/server.pid"
	i=0
	while [ ! -s "$demo/port" ]; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 "$(cat "$demo/server.pid")" 2>/dev/null; then
			echo "the test server did not start; its log:" >&2
			cat "$demo/server.log" >&2
			exit 1
		fi
		sleep 0.1
	done
fi
port=$(cat "$demo/port")
url="https://127.0.0.1:$port/EWS/Exchange.asmx"
echo "test server: $url (user $user; control interface https://127.0.0.1:$port/control/)"

mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
	echo "already mounted on $mnt"
else
	./build/fs/exchangefs --url "$url" --user "$user" \
		--password-file "$demo/password" --ca-file "$demo/cert.pem" \
		--cache-dir "$demo/cache" "$mnt"
fi
cat <<EOT

The demo mailbox is mounted on $mnt. Try:
  ls demo-mail/                        # the folders
  ls -l demo-mail/Inbox | head         # messages as .eml files
  grep -rl 'invoice 4711' demo-mail    # fetches and searches every message
  getfattr -d demo-mail/Inbox/*.eml | head -20
  exchangefs status demo-mail          # sync state and progress, lined up
Deliver a new message on the server; it shows at once (watch with: inotifywait -m demo-mail/Inbox):
  ./contrib/demo.sh deliver "Hello demo"
The same mailbox over a real ActiveSync server (installs SOGo from Debian): ./contrib/demo.sh sogo
Unmount and stop the test server:
  fusermount3 -u demo-mail; ./contrib/demo.sh stop
EOT
