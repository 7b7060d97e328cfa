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
echo "  plain table:               $plain tps"
ledger=$(tps insert_usage.sql)
echo "  ledger, no budgets:        $ledger tps"
psql -X -q -f budgets_setup.sql
budgeted=$(tps insert_usage.sql)
echo "  ledger, 10 active budgets: $budgeted tps"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "COPY of $ROWS rows (10 active budgets)"
copy_out=$(psql -X -q -v rows="$ROWS" -f copy.sql)
echo "$copy_out" | grep -v '^copy_ratio'
copy_ratio=$(echo "$copy_out" | sed -n 's/^copy_ratio //p')
psql -X -q -c "SELECT count(*) AS budgets, (SELECT count(*) FROM tokenledger.budget_spend) AS counter_rows,
	(SELECT tokenledger.sum(spent) FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id AND b.name = 'b10') OPERATOR(tokenledger.=)
	(SELECT tokenledger.sum(cost) FROM tokenledger.usage WHERE principal = 'svc-bench') AS accounting_equals_ledger
	FROM tokenledger.budgets"

echo
echo "ratios (targets from SPEC section 9)"
echo "  single-row INSERT, ledger with budgets / plain  $(ratio "$budgeted" "$plain")   (target >= 0.70)"
echo "  single-row INSERT, ledger without budgets / plain  $(ratio "$ledger" "$plain")"
echo "  single-row INSERT, 10 budgets / no budgets  $(ratio "$budgeted" "$ledger")"
echo "  COPY, ledger with budgets / plain  $copy_ratio   (target >= 0.60)"
