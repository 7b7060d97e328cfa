#!/bin/sh
# bench/ingest.sh: ingest throughput of the ledger (pricing, attribution,
# rollups on; then budgets too) against two baselines measured in the same
# run: a plain table with the same columns and indexes, and the ledger a
# user would write by hand (naive_setup.sql: PL/pgSQL, a query per row for
# the price and the rule, a rollup upsert per row, numeric money), at 4 and
# 8 clients.  The baselines are measured in turn with the ledger, in the
# same rounds, and the ratios are of the medians: on a small machine one
# run can be a fifth off the next.  Run inside a cluster: "make
# bench-ingest" (pg_virtualenv).
#   CLIENT_COUNTS  pgbench client counts (default "4 8")
#   DURATION       seconds per run (default 10)
#   REPS           rounds of the scripts in turn; medians are compared (default 3)
#   ROWS           rows for the COPY (default 1000000)
set -eu
cd "$(dirname "$0")"
CLIENT_COUNTS=${CLIENT_COUNTS:-${CLIENTS:-4 8}}
DURATION=${DURATION:-10}
REPS=${REPS:-3}
ROWS=${ROWS:-1000000}

psql -X -q -f ingest_setup.sql
psql -X -q -f naive_setup.sql

# tps of a script at a client count; a run in which any client failed counts as 0
tps() {
	out=$(pgbench -n -M prepared -c "$2" -j 2 -T "$DURATION" -f "$1" 2>&1)
	if echo "$out" | grep -q -e 'ERROR' -e 'aborted'; then
		echo "$out" | grep -m 3 -e 'ERROR' -e 'aborted' >&2
		echo 0
	else
		echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
	fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# REPS rounds of the three scripts in turn at a client count; sets
# <name>_<clients> to the median tps of each
rounds() { # clients name=script ...
	c=$1
	shift
	for spec in "$@"; do eval "runs_${spec%%=*}="; done
	r=1
	while [ "$r" -le "$REPS" ]; do
		for spec in "$@"; do
			t=$(tps "${spec#*=}" "$c")
			eval "runs_${spec%%=*}=\"\$runs_${spec%%=*} $t\""
		done
		r=$((r + 1))
	done
	for spec in "$@"; do
		name=${spec%%=*}
		eval "runs=\$runs_$name"
		# shellcheck disable=SC2086
		eval "${name}_$c=$(median $runs)"
		eval "echo \"  $(printf '%-30s' "$name:") \$${name}_$c tps (median of:$runs)\""
	done
}

for c in $CLIENT_COUNTS; do
	echo "single-row INSERT, $c clients, $REPS rounds of ${DURATION}s each, no budgets"
	rounds "$c" plain=insert_plain.sql naive=insert_naive.sql ledger=insert_usage.sql
done
psql -X -q -f budgets_setup.sql
for c in $CLIENT_COUNTS; do
	echo "single-row INSERT, $c clients, $REPS rounds of ${DURATION}s each, 10 active budgets"
	rounds "$c" plain_b=insert_plain.sql naive_b=insert_naive.sql budgeted=insert_usage.sql
done

echo "COPY of $ROWS rows (10 active budgets)"
copy_out=$(psql -X -q -v rows="$ROWS" -f copy.sql)
echo "$copy_out" | grep -v '^copy_ratio'
copy_ratio=$(echo "$copy_out" | sed -n 's/^copy_ratio //p')
psql -X -q -c "SELECT count(*) AS budgets, (SELECT count(*) FROM tokenledger.budget_spend) AS counter_rows,
	(SELECT tokenledger.sum(spent) FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id AND b.name = 'b10') OPERATOR(tokenledger.=)
	(SELECT tokenledger.sum(cost) FROM tokenledger.usage WHERE principal = 'svc-bench') AS accounting_equals_ledger
	FROM tokenledger.budgets"
psql -X -q -c "SELECT (SELECT sum(requests) FROM tokenledger.spend_daily)
	= (SELECT sum(requests) FROM tokenledger.usage WHERE entry = 'call') AS rollups_equal_ledger,
	(SELECT sum(spend) FROM naive_daily) = (SELECT sum(cost) FROM naive_usage) AS hand_written_rollup_equals_its_ledger"

echo
echo "ratios (targets from SPEC section 9)"
for c in $CLIENT_COUNTS; do
	eval "p0=\$plain_$c; l=\$ledger_$c; p=\$plain_b_$c; n=\$naive_b_$c; b=\$budgeted_$c"
	echo "  $c clients: ledger with budgets / plain  $(ratio "$b" "$p")   (target >= 0.85)"
	echo "  $c clients: ledger with budgets / hand-written ledger  $(ratio "$b" "$n")   (target >= 1.30)"
	echo "  $c clients: ledger without budgets / plain  $(ratio "$l" "$p0")"
done
echo "  COPY, ledger with budgets / plain  $copy_ratio   (target >= 0.75)"
