#!/bin/sh
# demo.sh - try exchangefs with no Exchange account: installs what is
# needed, builds, starts the bundled test EWS server (HTTPS on 127.0.0.1,
# a generated mailbox of 500 messages kept in .demo/) and mounts it on
# ./demo-mail.  `./contrib/demo.sh stop` unmounts and stops the server.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
demo="$top/.demo"
mnt="$top/demo-mail"
user="alice@example.com"

stop() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" && echo "unmounted $mnt"
	fi
	if [ -f "$demo/server.pid" ] && kill "$(cat "$demo/server.pid")" 2>/dev/null; then
		echo "stopped the test server"
	fi
	rm -f "$demo/server.pid" "$demo/port"
}

if [ "${1:-}" = stop ]; then
	stop
	exit 0
fi

./contrib/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
echo "built build/fs/exchangefs"

mkdir -p "$demo"
chmod 700 "$demo"
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
  cat demo-mail/.exchangefs/status     # sync state and progress
Deliver a new message on the server; it shows at once (watch with: inotifywait -m demo-mail/Inbox):
  curl -s --cacert .demo/cert.pem -d '{"folder_path":"Inbox","subject":"Hello demo"}' https://127.0.0.1:$port/control/deliver
Unmount and stop the test server:
  fusermount3 -u demo-mail; ./contrib/demo.sh stop
EOT
