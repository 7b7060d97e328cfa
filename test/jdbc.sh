#!/bin/sh
# Reads every reporting view through the PostgreSQL JDBC driver, as BI tools
# do: compiles test/jdbc/ViewsAsBiTool.java against Debian's driver
# (libpostgresql-jdbc-java) into a temporary directory and runs it.  It
# connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD),
# uses a database and a login of its own, and prints TAP.
set -u
dir=$(dirname "$0")
jar=/usr/share/java/postgresql.jar
if ! command -v javac >/dev/null || [ ! -r "$jar" ]; then
	echo "Bail out! javac or $jar is missing: run sh scripts/install-deps.sh test"
	exit 1
fi
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
javac -nowarn -d "$classes" -cp "$jar" "$dir/jdbc/ViewsAsBiTool.java" || exit 1
java -cp "$classes:$jar" ViewsAsBiTool "$dir/jdbc"
