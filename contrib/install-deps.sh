#!/bin/sh
# install-deps.sh - install what exchangefs needs to build, run and test on
# Debian 12, only what is missing (apt-get update only when needed).
set -eu
# --sogo: also the packages of the SOGo ActiveSync test server (tests/sogo/; CI uses it,
# the demo does not need it): installed by tests/sogo/setup-sogo.sh, daemons not started
if [ "${1:-}" = --sogo ]; then
	if [ "$(id -u)" -eq 0 ]; then s=""; else s=sudo; fi
	$s "$(dirname "$0")/../tests/sogo/setup-sogo.sh" --install-only >/dev/null || exit 1
fi
pkgs="build-essential clang meson ninja-build pkg-config libfuse3-dev fuse3
libcurl4-openssl-dev libxml2-dev libsqlite3-dev libssl-dev openssl attr
libical-dev libicu-dev tzdata
inotify-tools libglib2.0-bin python3 python3-pytest python3-pytest-xdist
python3-exchangelib python3-icalendar python3-vobject khal khard curl vim
systemd bash-completion"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "exchangefs: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
