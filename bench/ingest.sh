#!/bin/sh
# bench/ingest.sh: ingest throughput of the ledger (pricing and attribution
# on) against a plain table with the same columns and indexes, measured in
# one run.  Run inside a cluster: "make bench-ingest" (pg_virtualenv).
#   CLIENTS  pgbench clients (default 8)     DURATION  seconds per run (default 20)
#   ROWS     rows for the COPY (default 1000000)
set -eu
cd "$(dirname "$0")"
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-20}
ROWS=${ROWS:-1000000}

psql -X -q -f ingest_setup.sql

tps() {
	pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -f "$1" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
echo "single-row INSERT, $CLIENTS clients, ${DURATION}s each"
plain=$(tps insert_plain.sql)
ledger=$(tps insert_usage.sql)
echo "  plain table:  $plain tps"
echo "  ledger:       $ledger tps"
insert_ratio=$(awk -v a="$ledger" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')

echo "COPY of $ROWS rows"
copy_out=$(psql -X -q -v rows="$ROWS" -f copy.sql)
echo "$copy_out" | grep -v '^copy_ratio'
copy_ratio=$(echo "$copy_out" | sed -n 's/^copy_ratio //p')

echo
echo "ratios (ledger / plain table; targets from SPEC section 9)"
echo "  single-row INSERT  $insert_ratio   (target >= 0.70)"
echo "  COPY               $copy_ratio   (target >= 0.60)"
