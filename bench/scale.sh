#!/bin/sh
# bench/scale.sh: the ledger at scale, each figure against a baseline
# measured in the same run.  Run inside a cluster: "make bench-scale"
# (pg_virtualenv); it makes its own databases there and two more clusters
# for the shards (scripts/shards.sh), and removes them.
#  1. COPY of ROWS calls (2025, in time order, 30 models, request_ids, 20
#     attribution rules, the 10 budgets of bench/budgets_setup.sql) into the
#     ledger partitioned by month (create_partitions() made every month
#     first) against the same COPY into the same extension with no month
#     partitions: every row in the default partition, the one big table a
#     ledger is without partitions.
#  2. One month's reports in both: a GROUP BY team over the ledger
#     (pruned to the month's partition), spend_daily and unattributed_spend
#     for the month; median of RUNS runs, the partitions each plan scans,
#     and the same figures in both databases.
#  3. Two shards (postgres_fdw, extensions 'tokenledger'), each holding
#     half the year as a foreign partition of the coordinator's ledger: every
#     250th call recorded through the coordinator, the others loaded into
#     their shard directly; sum(cost) per team on the coordinator against
#     the single-node database of 1, with the figures compared.
#   ROWS        calls (default 5000000)
#   RUNS        timed runs per query (default 5; 3 for the coordinator)
#   SHARD_PORT  first of the two shards' ports (default 55420)
set -eu
cd "$(dirname "$0")"
ROWS=${ROWS:-5000000}
RUNS=${RUNS:-5}
FDW_RUNS=${FDW_RUNS:-3}
SHARD_PORT=${SHARD_PORT:-55420}
MONTH=2025-06-01
NEXT=2025-07-01
FLAT=tokenledger_scale_flat
PART=tokenledger_scale_part
COORD=tokenledger_scale_coord
COLS='occurred_at, request_id, provider, model, tokens, api_key, app, principal, environment, team, initiative'

work=$(mktemp -d /tmp/tokenledger-bench-scale.XXXXXX)
chmod 755 "$work"
mkdir "$work/csv"
chmod 777 "$work/csv"
SHARDS=$work/shards
cleanup() {
	if [ -f "$SHARDS/.shards" ]; then sh ../scripts/shards.sh stop "$SHARDS" || true; fi
	for db in $COORD $PART $FLAT; do dropdb --if-exists "$db" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sql() { db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
val() { db=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$@"; }
shard() { n=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h "$SHARDS" -p $((SHARD_PORT + n - 1)) -U postgres "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }
fail() { echo "bench-scale: $*" >&2; exit 1; }
# a query timed in a database: sets ms, nrows, digest, scans, parts (scale_query.sql)
measure() {
	out=$(psql -X -q -At -F '|' -v ON_ERROR_STOP=1 -d "$1" -v q="$2" -v runs="$3" -f scale_query.sql) ||
		fail "the query failed in $1: $2"
	ms=${out%%|*}; rest=${out#*|}
	nrows=${rest%%|*}; rest=${rest#*|}
	digest=${rest%%|*}; rest=${rest#*|}
	scans=${rest%%|*}; parts=${rest#*|}
	[ "${nrows:-0}" -gt 0 ] || fail "the query returned no rows in $1: $2"
}
nparts() { if [ -z "$1" ]; then echo 0; else echo "$1" | wc -w; fi; }
# a list of partitions, the first and the last when long
short() { if [ "$(nparts "$1")" -le 3 ]; then echo "$1"; else echo "${1%% *} ... ${1##* }"; fi; }

echo "tokenledger scale benchmark: $ROWS calls over the 12 months of 2025"
echo

for db in $COORD $PART $FLAT; do dropdb --if-exists "$db" 2>/dev/null; createdb "$db"; done
for db in $FLAT $PART; do sql "$db" -f scale_setup.sql -f budgets_setup.sql; done
made=$(val $PART "SELECT tokenledger.create_partitions(since => '2025-01-01')")
sql $FLAT -v rows="$ROWS" -v dir="$work/csv" -f scale_rows.sql >/dev/null
[ "$(wc -l <"$work/csv/all.csv")" -eq "$ROWS" ] || fail "all.csv does not have $ROWS rows"

# -- 1. COPY -----------------------------------------------------------------
copy() {
	val "$1" "CHECKPOINT" >/dev/null
	t0=$(now)
	sql "$1" -c "COPY tokenledger.usage ($COLS) FROM '$work/csv/all.csv' WITH (FORMAT csv)"
	t1=$(now)
	secs "$t0" "$t1"
	# now, so that no autovacuum of this ledger runs during the next COPY
	sql "$1" -c "VACUUM ANALYZE tokenledger.usage"
}
flat_s=$(copy $FLAT)
part_s=$(copy $PART)
# what was recorded: every row, priced and attributed the same in both
check="SELECT count(*), count(cost), count(*) FILTER (WHERE attribution LIKE 'rule:%'), count(DISTINCT team),
	tokenledger.sum(cost) FROM tokenledger.usage"
flat_check=$(val $FLAT "$check")
part_check=$(val $PART "$check")
[ "${flat_check%%|*}" = "$ROWS" ] || fail "the unpartitioned ledger has ${flat_check%%|*} rows, not $ROWS"
[ "$flat_check" = "$part_check" ] || fail "the two ledgers differ: $flat_check / $part_check"
flat_layout=$(val $FLAT "SELECT count(*) - 1, (SELECT count(*) FROM tokenledger.usage_default) FROM pg_inherits
	WHERE inhparent = 'tokenledger.usage'::regclass")
part_layout=$(val $PART "SELECT count(*) FILTER (WHERE n.rows > 0 AND i.inhrelid <> 'tokenledger.usage_default'::regclass),
	count(*) FILTER (WHERE i.inhrelid <> 'tokenledger.usage_default'::regclass),
	coalesce(sum(n.rows) FILTER (WHERE i.inhrelid = 'tokenledger.usage_default'::regclass), 0)
	FROM pg_inherits i LEFT JOIN (SELECT tableoid, count(*) AS rows FROM tokenledger.usage GROUP BY tableoid) n ON n.tableoid = i.inhrelid
	WHERE i.inhparent = 'tokenledger.usage'::regclass")
[ "${part_layout##*|}" = 0 ] || fail "the partitioned ledger's default partition holds ${part_layout##*|} rows"
IFS='|' read -r calls priced ruled teams total <<EOF
$part_check
EOF
IFS="|" read -r filled months _default <<EOF
$part_layout
EOF
echo "1. COPY of $ROWS calls (20 attribution rules, 10 active budgets), in the same run"
echo "   recorded in each: $calls rows, $priced priced, $ruled attributed by a rule, $teams teams, sum(cost) $total"
printf '   %-58s %8s s  %9s rows/s\n' "unpartitioned (no month partitions: all in usage_default)" "$flat_s" "$(rate "$ROWS" "$flat_s")"
printf '   %-58s %8s s  %9s rows/s\n' "partitioned by month ($filled of $months months hold rows)" "$part_s" "$(rate "$ROWS" "$part_s")"
echo "   partitioned / unpartitioned throughput: $(ratio "$flat_s" "$part_s")"
echo "   (create_partitions(since => '2025-01-01') made $made partitions of usage and outcomes;"
echo "    the unpartitioned ledger has ${flat_layout%%|*} month partitions and ${flat_layout##*|} rows in its default partition)"
echo

# -- 2. one month's reports ---------------------------------------------------
echo "2. one month ($MONTH to $NEXT), median of $RUNS runs, ms"
printf '   %-34s %13s %13s %7s  %s\n' query unpartitioned partitioned "ratio" "partitions scanned (unpartitioned / partitioned)"
report() {
	measure $FLAT "$2" "$RUNS"
	f_ms=$ms f_digest=$digest f_parts=$parts f_scans=$scans
	measure $PART "$2" "$RUNS"
	[ "$digest" = "$f_digest" ] || fail "$1: the two ledgers report different figures"
	if [ -z "$parts" ]; then where="none: it reads the hourly rollups"; else where="$(short "$f_parts") ($f_scans) / $(short "$parts") ($scans)"; fi
	printf '   %-34s %13s %13s %7s  %s / %s: %s\n' "$1" "$f_ms" "$ms" "$(ratio "$f_ms" "$ms")" \
		"$(nparts "$f_parts")" "$(nparts "$parts")" "$where"
	eval "$3=\$parts" # sets q1_parts, q2_parts, q3_parts
}
report "team, sum(cost) over the ledger" "SELECT team, tokenledger.sum(cost) FROM tokenledger.usage
	WHERE occurred_at >= '$MONTH' AND occurred_at < '$NEXT' GROUP BY team" q1_parts
report "spend_daily" "SELECT * FROM tokenledger.spend_daily WHERE day >= '$MONTH' AND day < '$NEXT'" q2_parts
report "unattributed_spend" "SELECT * FROM tokenledger.unattributed_spend WHERE month = '$MONTH'" q3_parts
# shellcheck disable=SC2154 # q1_parts: set by report
[ "$(nparts "$q1_parts")" = 1 ] || fail "the month's GROUP BY scans $(nparts "$q1_parts") partitions of the partitioned ledger, not 1"
echo "   (ratio: unpartitioned ms / partitioned ms; each query's rows are the same in both databases)"
echo

# -- 3. two shards -------------------------------------------------------------
sh ../scripts/shards.sh start "$SHARDS" 2 "$SHARD_PORT"
for n in 1 2; do
	shard "$n" -d postgres -c "CREATE DATABASE ledger"
	shard "$n" -d ledger -f scale_setup.sql
	shard "$n" -d ledger -At -c "SELECT tokenledger.create_partitions(since => '2025-01-01')" >/dev/null
	# a shard's own ids (rows loaded into it directly) apart from the
	# coordinator's, which the rows recorded through it carry
	shard "$n" -d ledger -At -c "SELECT setval('tokenledger.usage_id_seq', $n * 1000000000000)" >/dev/null
done
sql $COORD -f scale_setup.sql -f budgets_setup.sql
sql $COORD <<EOF
CREATE EXTENSION postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost', port '$SHARD_PORT', dbname 'ledger',
	extensions 'tokenledger', fetch_size '10000', async_capable 'true');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost', port '$((SHARD_PORT + 1))', dbname 'ledger',
	extensions 'tokenledger', fetch_size '10000', async_capable 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user 'postgres');
CREATE FOREIGN TABLE tokenledger.usage_s1 PARTITION OF tokenledger.usage FOR VALUES FROM ('2025-01-01 00:00+00') TO ('2025-07-01 00:00+00')
	SERVER shard1 OPTIONS (schema_name 'tokenledger', table_name 'usage');
CREATE FOREIGN TABLE tokenledger.usage_s2 PARTITION OF tokenledger.usage FOR VALUES FROM ('2025-07-01 00:00+00') TO ('2026-01-01 00:00+00')
	SERVER shard2 OPTIONS (schema_name 'tokenledger', table_name 'usage');
CREATE FOREIGN TABLE tokenledger.outcomes_s1 PARTITION OF tokenledger.outcomes FOR VALUES FROM ('2025-01-01 00:00+00') TO ('2025-07-01 00:00+00')
	SERVER shard1 OPTIONS (schema_name 'tokenledger', table_name 'outcomes');
CREATE FOREIGN TABLE tokenledger.outcomes_s2 PARTITION OF tokenledger.outcomes FOR VALUES FROM ('2025-07-01 00:00+00') TO ('2026-01-01 00:00+00')
	SERVER shard2 OPTIONS (schema_name 'tokenledger', table_name 'outcomes');
EOF
coord_rows=$(wc -l <"$work/csv/coord.csv")
t0=$(now)
sql $COORD -c "COPY tokenledger.usage ($COLS) FROM '$work/csv/coord.csv' WITH (FORMAT csv)"
t1=$(now)
coord_s=$(secs "$t0" "$t1")
direct_rows=$((ROWS - coord_rows))
t0=$(now)
shard 1 -d ledger -c "COPY tokenledger.usage ($COLS) FROM '$work/csv/shard1.csv' WITH (FORMAT csv)" &
p1=$!
shard 2 -d ledger -c "COPY tokenledger.usage ($COLS) FROM '$work/csv/shard2.csv' WITH (FORMAT csv)" &
p2=$!
wait $p1 || fail "the COPY into shard 1 failed"
wait $p2 || fail "the COPY into shard 2 failed"
t1=$(now)
direct_s=$(secs "$t0" "$t1")
for n in 1 2; do shard $n -d ledger -c "VACUUM ANALYZE tokenledger.usage"; done
sql $COORD -c "ANALYZE tokenledger.usage"
coord_check=$(val $COORD "$check")
[ "$coord_check" = "$part_check" ] || fail "the sharded ledger differs from the single-node one: $coord_check / $part_check"
shard_rows=$(for n in 1 2; do shard $n -d ledger -At -c "SELECT count(*) FROM tokenledger.usage"; done | tr '\n' ' ')
coord_local=$(val $COORD "SELECT count(*) FROM tokenledger.usage_default")

echo "3. two shards (postgres_fdw, extensions 'tokenledger'): January-June on shard 1, July-December on shard 2"
printf '   %-58s %8s s  %9s rows/s\n' "$coord_rows calls (every 250th) COPY through the coordinator" "$coord_s" "$(rate "$coord_rows" "$coord_s")"
printf '   %-58s %8s s  %9s rows/s\n' "$direct_rows calls COPY into their shard directly, both at once" "$direct_s" "$(rate "$direct_rows" "$direct_s")"
echo "   rows on the shards: $shard_rows(the coordinator's own default partition: $coord_local)"
per_team="SELECT team, tokenledger.sum(cost) FROM tokenledger.usage GROUP BY team"
per_shard="SELECT team, tokenledger.sum(s) FROM (
	SELECT team, tokenledger.sum(cost) AS s FROM tokenledger.usage_s1 GROUP BY team
	UNION ALL SELECT team, tokenledger.sum(cost) FROM tokenledger.usage_s2 GROUP BY team
	UNION ALL SELECT team, tokenledger.sum(cost) FROM tokenledger.usage_default GROUP BY team) p GROUP BY team"
measure $PART "$per_team" "$RUNS"
single_ms=$ms single_digest=$digest
measure $COORD "$per_team" "$FDW_RUNS"
coord_ms=$ms coord_digest=$digest
measure $COORD "$per_shard" "$FDW_RUNS"
shard_ms=$ms shard_digest=$digest
pushed=$(val $COORD "EXPLAIN (VERBOSE, COSTS OFF) $per_shard" | grep 'Remote SQL:' | grep -c 'GROUP BY' || true)
shipped=$(val $COORD "EXPLAIN (VERBOSE, COSTS OFF) $per_team" | grep 'Remote SQL:' | grep -c 'GROUP BY' || true)
total_single=$(val $PART "SELECT tokenledger.sum(s) FROM ($per_team) t(team, s)")
total_coord=$(val $COORD "SELECT tokenledger.sum(s) FROM ($per_team) t(team, s)")
total_shard=$(val $COORD "SELECT tokenledger.sum(s) FROM ($per_shard) t(team, s)")
same() { if [ "$1" = "$2" ]; then echo yes; else echo NO; fi; }
echo "   sum(cost) per team ($nrows groups, the unattributed one included), median ms ($RUNS runs single-node, $FDW_RUNS on the coordinator):"
printf '   %-58s %8s ms  total %s\n' "single node (the partitioned ledger of 1)" "$single_ms" "$total_single"
printf '   %-58s %8s ms  total %s  equal per team: %s\n' "coordinator, GROUP BY over the ledger (rows shipped)" \
	"$coord_ms" "$total_coord" "$(same "$coord_digest" "$single_digest")"
printf '   %-58s %8s ms  total %s  equal per team: %s\n' "coordinator, per-shard sums summed (pushed down)" \
	"$shard_ms" "$total_shard" "$(same "$shard_digest" "$single_digest")"
echo "   coordinator / single node time: $(ratio "$coord_ms" "$single_ms") (GROUP BY over the ledger), $(ratio "$shard_ms" "$single_ms") (per-shard sums)"
echo "   remote queries with GROUP BY: $pushed of the per-shard form's, $shipped of the plain GROUP BY's"
if [ "$coord_digest" != "$single_digest" ] || [ "$shard_digest" != "$single_digest" ]; then
	fail "the coordinator's sum(cost) per team differs from the single node's"
fi
[ "$pushed" = 2 ] || fail "the per-shard sums are not computed on the shards (EXPLAIN VERBOSE)"
