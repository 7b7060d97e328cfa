#!/bin/sh
# pg_cron (Debian's postgresql-15-cron) keeps the ledger's month partitions
# made ahead, set up as the README says: pg_cron in shared_preload_libraries,
# cron.database_name naming the ledger's database, and
# SELECT tokenledger.create_partitions() scheduled with cron.schedule.  A call
# and an outcome recorded before the job ran wait in the default partitions;
# the job's first run makes this month's and the next three months'
# partitions of usage and outcomes and moves them into their month unchanged;
# its second run makes nothing and succeeds too.  pg_cron must be preloaded,
# so the test makes a cluster of its own and removes it after: Unix socket
# only, in a fresh directory; peer authentication, as Debian's clusters have
# (as root the cluster, its superuser and the test's psql are postgres), so
# pg_cron connects through the socket (cron.host) as the OS user it runs as.
# The Debian package is pg_cron 1.4, which schedules by the minute: the test
# waits for two runs, one to two minutes.  Prints TAP.
set -u
cd "$(dirname "$0")/.."
BIN=/usr/lib/postgresql/15/bin
PORT=${CRON_TEST_PORT:-5641}
DB=tokenledger_cron_test
JOB=tokenledger-partitions
SCHEDULE='* * * * *'
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ ! -f "$("$BIN/pg_config" --sharedir)/extension/pg_cron.control" ]; then
	echo "Bail out! pg_cron is not installed (apt-get install postgresql-15-cron; sh scripts/install-deps.sh test does)"
	exit 1
fi

failed=0
T=$(mktemp -d /tmp/tokenledger-cron.XXXXXX)
chmod 755 "$T"
[ "$(id -u)" != 0 ] || chown postgres: "$T"
cleanup() {
	if [ "$failed" != 0 ] && [ -f "$T/server.log" ]; then
		echo "# the server's log:"
		tail -30 "$T/server.log" | sed 's/^/#   /'
	fi
	if [ -f "$T/data/postmaster.pid" ]; then
		as_owner "$BIN/pg_ctl" -D "$T/data" -m immediate -w stop >/dev/null 2>&1
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
. test/tap.sh

# the cluster: every connection (pg_cron's too) through the socket in $T
SU=postgres
[ "$(id -u)" = 0 ] || SU=$(id -un)
export PGHOST="$T" PGPORT="$PORT" PGUSER="$SU" PGDATABASE="$DB"
unset PGPASSWORD PGSERVICE PGOPTIONS
(cd "$T" && as_owner "$BIN/initdb" -D "$T/data" -U "$SU" --auth-local=peer --auth-host=scram-sha-256 \
	-E UTF8 --locale=C --no-sync) >"$T/initdb.log" 2>&1 ||
	{ sed 's/^/# /' "$T/initdb.log"; echo "Bail out! initdb failed"; exit 1; }
cat >>"$T/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$T'
fsync = off
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB'
cron.host = '$T'
EOF
(cd "$T" && as_owner "$BIN/pg_ctl" -D "$T/data" -l "$T/server.log" -w start) >/dev/null 2>&1 ||
	{ sed 's/^/# /' "$T/server.log"; echo "Bail out! the server did not start"; exit 1; }
ok 0 "a cluster of its own with shared_preload_libraries = 'pg_cron' and cron.database_name = '$DB'"

# psql, as the cluster's owner, from a directory it may enter
q() { (cd "$T" && as_owner psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 "$@"); }
# prints every "t|description" line of a query's output as a TAP line
checks() {
	while IFS='|' read -r result description; do
		[ "$result" = t ]
		ok $? "$description"
	done <<-EOF
		$1
	EOF
}

q -d postgres -c "CREATE DATABASE $DB" >/dev/null || { echo "Bail out! CREATE DATABASE failed"; exit 1; }
out=$(q 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION tokenledger;
CREATE EXTENSION pg_cron;
INSERT INTO tokenledger.prices (provider, model, effective_from, rate, source)
VALUES ('acme', 'm', '2020-01-01', 'in=2 out=8 USD/1M', 'cron test');
INSERT INTO tokenledger.initiatives (name, team, owner, outcome_metric, value_per_outcome)
VALUES ('triage', 'support', 'ann', 'ticket', '2 USD');
INSERT INTO tokenledger.usage (request_id, provider, model, tokens, app, team)
VALUES ('req-cron', 'acme', 'm', 'in=1200 out=350', 'helpdesk', 'support');
INSERT INTO tokenledger.outcomes (initiative, metric, quantity, external_ref)
VALUES ('triage', 'ticket', 3, 'zd-cron');
SQL
)
[ $? = 0 ] || { echo "$out" | sed 's/^/# /'; echo "Bail out! setting up the database failed"; exit 1; }

# the rows as they are, every column, and where they are
ROWS="SELECT (SELECT row_to_json(u)::text FROM tokenledger.usage u WHERE request_id = 'req-cron')
	|| ' ' || (SELECT row_to_json(o)::text FROM tokenledger.outcomes o WHERE external_ref = 'zd-cron')"
WHERE="SELECT (SELECT u.tableoid::regclass::text FROM tokenledger.usage u WHERE request_id = 'req-cron')
	|| ' ' || (SELECT o.tableoid::regclass::text FROM tokenledger.outcomes o WHERE external_ref = 'zd-cron')"
PARTS="SELECT string_agg(i.inhrelid::regclass::text, ' ' ORDER BY i.inhrelid::regclass::text) FROM pg_inherits i
	WHERE i.inhparent IN ('tokenledger.usage'::regclass, 'tokenledger.outcomes'::regclass)"
rows0=$(q -c "$ROWS")
parts0=$(q -c "$PARTS")
checks "$(q <<'SQL'
SELECT u.tableoid = 'tokenledger.usage_default'::regclass AND u.cost IS NOT NULL
       AND o.tableoid = 'tokenledger.outcomes_default'::regclass AND o.value IS NOT NULL,
       'before the job ran, a call (' || u.cost::text || ') and an outcome (' || o.value::text
       || ') of this month are in ' || u.tableoid::regclass::text || ' and ' || o.tableoid::regclass::text
FROM tokenledger.usage u, tokenledger.outcomes o WHERE u.request_id = 'req-cron' AND o.external_ref = 'zd-cron';
SQL
)"

jobid=$(echo "SELECT cron.schedule(:'job', :'schedule', 'SELECT tokenledger.create_partitions()')" |
	q -v job="$JOB" -v schedule="$SCHEDULE")
[ -n "$jobid" ] || { echo "Bail out! cron.schedule failed"; exit 1; }
checks "$(q <<SQL
SELECT database = current_database() AND username = current_user AND active,
       'cron.schedule makes job ' || jobid || ' (' || jobname || '): ''' || schedule || ''' ' || command
       || ' in ' || database || ' as ' || username
FROM cron.job WHERE jobid = $jobid;
SQL
)"

# waits until the job has finished (succeeded or failed) $1 runs, 75 s at most a run
wait_runs() {
	i=0
	while [ "$i" -lt $((75 * $1)) ]; do
		finished=$(q -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid AND status IN ('succeeded', 'failed')")
		[ "${finished:-0}" -ge "$1" ] && return 0
		sleep 1
		i=$((i + 1))
	done
	return 1
}
# the run's status and message, and every partition of usage and outcomes is
# the one expected: the default ones and this month's and the next three
# months' (named by the run's start time in UTC), each bounded by its month
RUN_CHECKS="SET TimeZone = UTC;
WITH run AS (SELECT * FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid OFFSET :nth - 1 LIMIT 1),
want AS (SELECT 'tokenledger.' || l || to_char(date_trunc('month', run.start_time AT TIME ZONE 'UTC') + m * interval '1 month', '_YYYY_MM') AS name,
                date_trunc('month', run.start_time AT TIME ZONE 'UTC') + m * interval '1 month' AS lo
         FROM run, unnest(ARRAY['usage', 'outcomes']) l, generate_series(0, 3) m),
have AS (SELECT i.inhrelid::regclass::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent IN ('tokenledger.usage'::regclass, 'tokenledger.outcomes'::regclass))
SELECT run.status = 'succeeded', 'run ' || :nth || ' of the job: ' || run.status || ' (' || run.return_message || ')' FROM run
UNION ALL
SELECT (SELECT array_agg(name ORDER BY name) FROM have)
       = (SELECT array_agg(name ORDER BY name) FROM (SELECT name FROM want UNION ALL
              VALUES ('tokenledger.usage_default'), ('tokenledger.outcomes_default')) w)
   AND NOT EXISTS (SELECT FROM want JOIN have USING (name)
                   WHERE bound <> format('FOR VALUES FROM (%L) TO (%L)', (lo AT TIME ZONE 'UTC')::text,
                                         ((lo + interval '1 month') AT TIME ZONE 'UTC')::text)),
       'after it, usage and outcomes have the default partitions and this month''s and the next three months'' '
       || '(from the run''s start in UTC), each from its first day to the next month''s: '
       || (SELECT string_agg(name, ' ' ORDER BY name) FROM have)"

wait_runs 1
ok $? "the job ran within 75 s"
checks "$(echo "$RUN_CHECKS" | q -v nth=1)"
rows1=$(q -c "$ROWS")
where1=$(q -c "$WHERE")
month=$(q -c "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY_MM') FROM tokenledger.usage WHERE request_id = 'req-cron'")
[ "$where1" = "tokenledger.usage_$month tokenledger.outcomes_$month" ]
ok $? "the call and the outcome moved into their month's partitions: $where1"
[ -n "$rows1" ] && [ "$rows1" = "$rows0" ]
ok $? "every column of both rows is as it was (ids, times, cost, value)"
[ "$rows1" = "$rows0" ] || printf '# before: %s\n# after:  %s\n' "$rows0" "$rows1"
checks "$(q <<'SQL'
SELECT (SELECT count(*) FROM tokenledger.usage_default) + (SELECT count(*) FROM tokenledger.outcomes_default) = 0
       AND (SELECT count(*) FROM tokenledger.usage) = 1 AND (SELECT count(*) FROM tokenledger.outcomes) = 1
       AND (SELECT count(*) FROM tokenledger.usage_request_ids WHERE request_id = 'req-cron') = 1
       AND (SELECT count(*) FROM tokenledger.outcome_external_refs WHERE external_ref = 'zd-cron') = 1,
       'the default partitions are empty; the ledger holds each row once, its idempotency key once';
SQL
)"
parts1=$(q -c "$PARTS")
[ "$parts0" != "$parts1" ]
ok $? "the job made partitions (there were: $parts0)"

wait_runs 2
ok $? "the job ran a second time a minute later"
checks "$(echo "$RUN_CHECKS" | q -v nth=2)"
[ "$(q -c "$PARTS")" = "$parts1" ] && [ "$(q -c "$ROWS")" = "$rows1" ] && [ "$(q -c "$WHERE")" = "$where1" ]
ok $? "the second run made nothing: the same partitions, the rows where they were"

checks "$(q -v job="$JOB" <<'SQL'
SELECT cron.unschedule(:'job') AS unscheduled \gset
SELECT :'unscheduled' = 't' AND NOT EXISTS (SELECT FROM cron.job),
       'cron.unschedule(''' || :'job' || ''') removes the job';
SQL
)"
echo "1..$n"
[ "$failed" = 0 ]
