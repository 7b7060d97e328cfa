#!/bin/sh
# bench/instructions.sh: CPU instructions per single-row INSERT, counted by
# valgrind (callgrind) in a single-user backend, for the plain table, the
# hand-written PL/pgSQL ledger and the ledger (pricing, attribution and
# rollups; then with the 10 budgets of budgets_setup.sql), with the set-up of
# bench/ingest.sh.  Instruction counts do not depend on what else the machine
# is doing, so they compare builds where pgbench's throughput varies from run
# to run; they leave out what concurrency costs (waits, WAL flushes shared by
# commits), which bench/ingest.sh measures.  Each INSERT is a prepared
# statement and its own transaction; a run of N+1000 inserts less a run of N
# leaves the cost of 1000, start-up and set-up excluded.
#   "make bench-instructions" runs it; needs valgrind.  ROWS (default 1000).
set -eu
cd "$(dirname "$0")"
BIN=$(${PG_CONFIG:-pg_config} --bindir)
ROWS=${ROWS:-1000}
command -v valgrind >/dev/null || { echo "bench/instructions.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }

work=$(mktemp -d /tmp/tokenledger-instructions.XXXXXX)
trap 'as_owner "$BIN/pg_ctl -D $work/data stop -m immediate" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# PostgreSQL runs as its own user when this runs as root
if [ "$(id -u)" = 0 ]; then
	chown postgres "$work"
	as_owner() { su postgres -s /bin/sh -c "$1"; }
else
	as_owner() { sh -c "$1"; }
fi
as_owner "$BIN/initdb -D $work/data -A trust -U postgres" >/dev/null
port=$((54000 + $$ % 1000))
start() { as_owner "$BIN/pg_ctl -D $work/data -o '-p $port -k $work -c listen_addresses=' -l $work/log -w start" >/dev/null; }
stop() { as_owner "$BIN/pg_ctl -D $work/data -w stop" >/dev/null; }
sql() { psql -X -q -h "$work" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

# the statements: PREPARE once, then EXECUTE with the values pgbench draws
statements() { # table n
	awk -v table="$1" -v n="$2" 'BEGIN {
		srand(1)
		if (table == "naive")
			print "PREPARE p(int, int) AS INSERT INTO naive_usage (request_id, provider, model, input_tokens, output_tokens, cache_read_tokens, api_key, app, principal) VALUES (gen_random_uuid()::text, '\''openai'\'', '\''gpt-4o-2024-08-06'\'', $1, 300, 1000, '\''key-'\'' || $2, '\''app-'\'' || $2, '\''svc-bench'\'');"
		else
			print "PREPARE p(int, int) AS INSERT INTO " table " (request_id, provider, model, tokens, api_key, app, principal) VALUES (gen_random_uuid()::text, '\''openai'\'', '\''gpt-4o-2024-08-06'\'', tokenledger.tokens($1, 300, 1000), '\''key-'\'' || $2, '\''app-'\'' || $2, '\''svc-bench'\'');"
		for (i = 0; i < n; i++)
			printf "EXECUTE p(%d, %d);\n", 100 + int(rand() * 19901), 1 + int(rand() * 10)
	}'
}

# instructions of a single-user backend running n inserts
count() { # table n
	statements "$1" "$2" >"$work/in.sql"
	chmod a+r "$work/in.sql"
	as_owner "valgrind --tool=callgrind --callgrind-out-file=$work/cg.out $BIN/postgres --single -D $work/data postgres <$work/in.sql >$work/out 2>$work/vg" || true
	# the backend's errors go to stderr, with valgrind's report
	if grep -q -e ' ERROR: ' -e ' FATAL: ' "$work/vg"; then
		grep -m 3 -e ' ERROR: ' -e ' FATAL: ' "$work/vg" >&2
		echo 0
		return
	fi
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/vg"
}
# per insert: (n + ROWS inserts) - (n inserts), over ROWS
per_insert() { # table
	a=$(count "$1" 200)
	b=$(count "$1" $((200 + ROWS)))
	awk -v a="$a" -v b="$b" -v n="$ROWS" 'BEGIN { if (a == 0 || b == 0) print 0; else printf "%d", (b - a) / n }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == 0 || b == 0) print "-"; else printf "%.2f", a / b }'; }

start
sql -f ingest_setup.sql
sql -f naive_setup.sql
stop
plain=$(per_insert bench_plain)
naive=$(per_insert naive)
ledger=$(per_insert tokenledger.usage)
start
sql -f budgets_setup.sql
stop
budgeted=$(per_insert tokenledger.usage)
start
check=$(sql -At -c "SELECT (SELECT tokenledger.sum(spent) FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id AND b.name = 'b10') OPERATOR(tokenledger.=) (SELECT tokenledger.sum(cost) FROM tokenledger.usage WHERE principal = 'svc-bench'), (SELECT count(*) FROM tokenledger.usage WHERE cost IS NULL)")
stop

echo "instructions per single-row INSERT (callgrind, single-user backend, $ROWS inserts)"
echo "  plain table:                   $plain"
echo "  hand-written PL/pgSQL ledger:  $naive"
echo "  ledger, no budgets:            $ledger"
echo "  ledger, 10 active budgets:     $budgeted"
echo "ratios (throughput, the inverse of instructions)"
echo "  ledger with budgets / plain              $(ratio "$plain" "$budgeted")   (target >= 0.85)"
echo "  ledger with budgets / hand-written ledger $(ratio "$naive" "$budgeted")   (target >= 1.30)"
echo "  ledger without budgets / plain           $(ratio "$plain" "$ledger")"
echo "counters equal the ledger, unpriced rows: $check"
