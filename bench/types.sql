-- bench/types.sql: aggregate throughput of cost against bigint and numeric.
--
-- Run with "make bench-types" (a throwaway cluster) or psql -f against a
-- database where tokenledger can be created.  Builds three single-column
-- tables of :rows rows (default 10M) holding the same amounts, times each
-- query :runs times (median), serial plans unless stated, and prints the
-- ratios that SPEC section 9 sets targets for.
\set ON_ERROR_STOP 1
\if :{?rows}
\else
\set rows 10000000
\endif
\if :{?runs}
\else
\set runs 5
\endif
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
SET jit = off;
SET max_parallel_workers_per_gather = 0;

DROP TABLE IF EXISTS bench_bigint, bench_numeric, bench_cost;
-- amounts of up to $100 with nine decimals (sums stay within range), the same in each table
CREATE UNLOGGED TABLE bench_bigint AS
	SELECT (random() * 1e11)::bigint AS v FROM generate_series(1, :rows);
CREATE UNLOGGED TABLE bench_numeric AS
	SELECT round(v::numeric / 1e9, 9) AS v FROM bench_bigint;
CREATE UNLOGGED TABLE bench_cost AS
	SELECT cost(v, 'USD') AS v FROM bench_numeric;
VACUUM ANALYZE bench_bigint, bench_numeric, bench_cost;

-- bench_ms(q, n): median wall time in ms of n runs of q
\ir bench_ms.sql

CREATE TEMP TABLE timings (name text PRIMARY KEY, ms numeric);
INSERT INTO timings VALUES
	('sum(bigint)', pg_temp.bench_ms('SELECT sum(v) FROM bench_bigint', :runs)),
	('sum(numeric)', pg_temp.bench_ms('SELECT sum(v) FROM bench_numeric', :runs)),
	('sum(cost)', pg_temp.bench_ms('SELECT sum(v) FROM bench_cost', :runs)),
	('sum(numeric + numeric)', pg_temp.bench_ms('SELECT sum(v + v) FROM bench_numeric', :runs)),
	('sum(cost + cost)', pg_temp.bench_ms('SELECT sum(v + v) FROM bench_cost', :runs)),
	('avg(numeric)', pg_temp.bench_ms('SELECT avg(v) FROM bench_numeric', :runs)),
	('avg(cost)', pg_temp.bench_ms('SELECT avg(v) FROM bench_cost', :runs));
SET max_parallel_workers_per_gather = 2;
INSERT INTO timings VALUES
	('parallel sum(bigint)', pg_temp.bench_ms('SELECT sum(v) FROM bench_bigint', :runs)),
	('parallel sum(numeric)', pg_temp.bench_ms('SELECT sum(v) FROM bench_numeric', :runs)),
	('parallel sum(cost)', pg_temp.bench_ms('SELECT sum(v) FROM bench_cost', :runs));
SET max_parallel_workers_per_gather = 0;

\echo
\echo 'Median times (ms) over' :rows 'rows,' :runs 'runs each:'
SELECT name, round(ms, 1) AS ms FROM timings ORDER BY ms;

\echo 'Ratios (targets from SPEC section 9):'
WITH t AS (SELECT name, ms FROM timings)
SELECT measure, round(ratio, 2) AS ratio, target,
       CASE WHEN ok THEN 'met' ELSE 'MISSED' END AS result
FROM (
	SELECT 'sum(cost) / sum(bigint)' AS measure,
	       (SELECT ms FROM t WHERE name = 'sum(cost)') / (SELECT ms FROM t WHERE name = 'sum(bigint)') AS ratio,
	       '<= 1.20' AS target, 1
	UNION ALL
	SELECT 'sum(numeric) / sum(cost)',
	       (SELECT ms FROM t WHERE name = 'sum(numeric)') / (SELECT ms FROM t WHERE name = 'sum(cost)'),
	       '>= 1.35', 2
	UNION ALL
	SELECT 'sum(numeric + numeric) / sum(cost + cost)',
	       (SELECT ms FROM t WHERE name = 'sum(numeric + numeric)') / (SELECT ms FROM t WHERE name = 'sum(cost + cost)'),
	       '>= 2.00', 3
	UNION ALL
	SELECT 'avg(numeric) / avg(cost)',
	       (SELECT ms FROM t WHERE name = 'avg(numeric)') / (SELECT ms FROM t WHERE name = 'avg(cost)'),
	       '(none)', 4
	UNION ALL
	SELECT 'serial / parallel sum(cost), 2 workers',
	       (SELECT ms FROM t WHERE name = 'sum(cost)') / (SELECT ms FROM t WHERE name = 'parallel sum(cost)'),
	       '(none)', 5
	UNION ALL
	SELECT 'parallel sum(cost) / parallel sum(bigint)',
	       (SELECT ms FROM t WHERE name = 'parallel sum(cost)') / (SELECT ms FROM t WHERE name = 'parallel sum(bigint)'),
	       '(none)', 6
) r(measure, ratio, target, ord)
CROSS JOIN LATERAL (SELECT CASE target
	WHEN '<= 1.20' THEN ratio <= 1.20
	WHEN '>= 1.35' THEN ratio >= 1.35
	WHEN '>= 2.00' THEN ratio >= 2.00
	ELSE true END) c(ok)
ORDER BY ord;

EXPLAIN (COSTS OFF) SELECT sum(v) FROM bench_cost;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT sum(v) FROM bench_cost;
DROP TABLE bench_bigint, bench_numeric, bench_cost;
