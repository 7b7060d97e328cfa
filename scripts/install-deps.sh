#!/bin/sh
# install-deps.sh [test|dashboard]: install the Debian packages that building
# and the demo need (and with "test", what make test needs besides: Java and
# the PostgreSQL JDBC driver, Node.js with npm and Chromium for the dashboard,
# pgxnclient, pg_cron; with "dashboard", Node.js and npm), if any is missing
# (uses sudo when not run as root).
set -e
pkgs="build-essential postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
libtap-parser-sourcehandler-pgtap-perl postgresql-common python3 python3-psycopg"
case "${1:-}" in
test)
	pkgs="$pkgs default-jdk-headless libpostgresql-jdbc-java nodejs npm chromium
fonts-dejavu-core pgxnclient postgresql-15-cron" ;;
dashboard)
	pkgs="$pkgs nodejs npm" ;;
"") ;;
*)
	echo "usage: install-deps.sh [test|dashboard]" >&2
	exit 2 ;;
esac
# a program installed otherwise (Node.js from its own packages, say) will do
provides() {
	case "$1" in
	nodejs) command -v node ;;
	npm) command -v npm ;;
	chromium) command -v chromium ;;
	default-jdk-headless) command -v javac ;;
	*) false ;;
	esac
}
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || provides "$p" >/dev/null || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
