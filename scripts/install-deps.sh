#!/bin/sh
# install-deps.sh: install the Debian packages that building, testing and the
# demo need, if any is missing (uses sudo when not run as root).
set -e
pkgs="build-essential postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
libtap-parser-sourcehandler-pgtap-perl postgresql-common python3 python3-psycopg
default-jdk-headless libpostgresql-jdbc-java nodejs npm chromium fonts-dejavu-core
pgxnclient"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
