#!/bin/sh
# scripts/shards.sh: throwaway PostgreSQL 15 clusters on this machine, e.g.
# the shards of a postgres_fdw coordinator.
#   sh scripts/shards.sh start DIR N BASEPORT
#       makes N clusters DIR/1 .. DIR/N (DIR new or empty) on ports
#       BASEPORT .. BASEPORT+N-1, listening on localhost and on a Unix socket
#       in DIR, superuser postgres, trust authentication for local
#       connections, and starts them (logs in DIR/<i>.log)
#   sh scripts/shards.sh stop DIR
#       stops them and removes DIR
#   SHARDS_PRELOAD  shared_preload_libraries of the clusters (e.g. citus)
# The server refuses to run as root: as root, the clusters belong to the
# postgres OS user (DIR is given to it; its parent must be open to it).
set -eu
BIN=/usr/lib/postgresql/15/bin
usage() { echo "usage: sh scripts/shards.sh start DIR N BASEPORT | stop DIR" >&2; exit 2; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ $# -ge 2 ] || usage
DIR=$2

case $1 in
start)
	[ $# = 4 ] || usage
	N=$3 BASEPORT=$4
	mkdir -p "$DIR"
	[ -z "$(ls -A "$DIR")" ] || { echo "shards.sh: $DIR is not empty" >&2; exit 1; }
	DIR=$(cd "$DIR" && pwd)
	touch "$DIR/.shards"
	[ "$(id -u)" != 0 ] || chown -R postgres: "$DIR"
	cd "$DIR"
	i=1
	while [ "$i" -le "$N" ]; do
		as_owner "$BIN/initdb" -D "$DIR/$i" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
		cat >>"$DIR/$i/postgresql.conf" <<-EOF
			port = $((BASEPORT + i - 1))
			listen_addresses = 'localhost'
			unix_socket_directories = '$DIR'
			fsync = off
			shared_preload_libraries = '${SHARDS_PRELOAD:-}'
		EOF
		as_owner "$BIN/pg_ctl" -D "$DIR/$i" -l "$DIR/$i.log" -w start >/dev/null
		i=$((i + 1))
	done
	;;
stop)
	[ $# = 2 ] || usage
	[ -f "$DIR/.shards" ] || { echo "shards.sh: $DIR was not made by shards.sh start" >&2; exit 1; }
	cd "$DIR"
	for d in "$DIR"/*/; do
		if [ -f "$d/postmaster.pid" ]; then as_owner "$BIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null || true; fi
	done
	cd /
	rm -rf "$DIR"
	;;
*)
	usage
	;;
esac
