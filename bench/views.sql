-- bench/views.sql: what a dashboard waits for as the ledger grows.
--
-- Run with "make bench-views" (a throwaway cluster) or psql -f against a
-- database where tokenledger can be created.  Records :rows calls (default
-- 1M) through the insert path over two months (September and October
-- 2026) and 96 keys (4 teams x 2 initiatives each x 6 models x 2
-- environments), then times a month of spend_daily and of
-- initiative_economics (median of :runs); records 4 x :rows more calls
-- over the same days and keys (5 times the calls per day) and times them
-- again.  The baseline is what a user would write instead: the same calls in
-- a plain table with a numeric cost column, grouped by hand.  Prints the
-- ratios that SPEC section 9 sets a target for (5M / 1M <= 1.5).
\set ON_ERROR_STOP 1
\if :{?rows}
\else
\set rows 1000000
\endif
\if :{?runs}
\else
\set runs 5
\endif
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
SET TimeZone = 'UTC';
SET jit = off;

DROP TABLE IF EXISTS bench_plain;
-- the hand-written ledger: the same columns, cost as numeric
CREATE TABLE bench_plain (
	occurred_at timestamptz NOT NULL,
	team text, initiative text, provider text, model text, service_tier text, environment text,
	requests bigint, input_tokens bigint, output_tokens bigint, cost numeric
);
CREATE INDEX ON bench_plain USING brin (occurred_at);

-- :n calls spread evenly over the two months and the 96 keys
CREATE OR REPLACE FUNCTION pg_temp.record(n bigint, seed float8) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM setseed(seed);
	CREATE TEMP TABLE batch ON COMMIT DROP AS
	SELECT timestamptz '2026-09-01 00:00+00' + (random() * 61 * 86400) * interval '1 second' AS occurred_at,
		   'team-' || k.t AS team, 'initiative-' || k.t || '-' || k.ini AS initiative,
		   m.provider, m.model, CASE WHEN k.env = 0 THEN 'prod' ELSE 'dev' END AS environment,
		   tokens((random() * 4000)::bigint, (random() * 800)::bigint) AS tokens
	FROM generate_series(1, n) i
	CROSS JOIN LATERAL (SELECT i % 4 AS t, (i / 4) % 2 AS ini, (i / 8) % 6 AS mi, (i / 48) % 2 AS env) k
	CROSS JOIN LATERAL (SELECT (ARRAY['openai', 'openai', 'openai', 'anthropic', 'anthropic', 'google'])[k.mi + 1] AS provider,
							   (ARRAY['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'gemini-2.5-flash'])[k.mi + 1] AS model) m;
	INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, team, initiative, environment)
	SELECT occurred_at, provider, model, tokens, team, initiative, environment FROM batch;
	INSERT INTO bench_plain
	SELECT occurred_at, team, initiative, provider, model, 'standard', environment, 1,
		   input(tokens), output(tokens), amount(cost_of(tokens, provider, model, 'standard', occurred_at))
	FROM batch;
END $$;

-- bench_ms(q, n): median wall time in ms of n runs of q
\ir bench_ms.sql

CREATE TEMP TABLE queries (name text PRIMARY KEY, q text);
INSERT INTO queries VALUES
('spend_daily', $q$SELECT count(*), sum(spend) FROM (SELECT * FROM tokenledger.spend_daily
	WHERE day >= '2026-10-01' AND day < '2026-11-01') s$q$),
('initiative_economics', $q$SELECT count(*), sum(spend) FROM (SELECT * FROM tokenledger.initiative_economics
	WHERE month = '2026-10-01') s$q$),
('plain GROUP BY by day', $q$SELECT count(*), sum(spend) FROM (
	SELECT occurred_at::date AS day, team, initiative, provider, model, service_tier, environment,
		   sum(requests) AS requests, sum(input_tokens), sum(output_tokens), sum(cost) AS spend
	FROM bench_plain WHERE occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'
	GROUP BY 1, 2, 3, 4, 5, 6, 7) s$q$),
('plain GROUP BY by month', $q$SELECT count(*), sum(spend) FROM (
	SELECT date_trunc('month', occurred_at)::date AS month, initiative, sum(requests), sum(cost) AS spend
	FROM bench_plain WHERE occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'
	GROUP BY 1, 2) s$q$);

CREATE TEMP TABLE timings (name text, size text, ms numeric, spend numeric, PRIMARY KEY (name, size));

SELECT pg_temp.record(:rows, 0.1);
VACUUM ANALYZE tokenledger.usage, tokenledger.usage_rollup, bench_plain;
INSERT INTO timings
SELECT name, '1x', pg_temp.bench_ms(q, :runs), NULL FROM queries;

SELECT pg_temp.record(:rows, 0.2);
SELECT pg_temp.record(:rows, 0.3);
SELECT pg_temp.record(:rows, 0.4);
SELECT pg_temp.record(:rows, 0.5);
VACUUM ANALYZE tokenledger.usage, tokenledger.usage_rollup, bench_plain;
INSERT INTO timings
SELECT name, '5x', pg_temp.bench_ms(q, :runs), NULL FROM queries;

-- the figures timed are the ledger's: the view's month equals the plain table's
\echo
SELECT (SELECT count(*) FROM tokenledger.usage) AS ledger_rows,
	   (SELECT count(*) FROM tokenledger.usage_rollup) AS rollup_rows,
	   (SELECT sum(spend) FROM tokenledger.spend_daily WHERE day >= '2026-10-01' AND day < '2026-11-01') AS view_spend,
	   (SELECT round(sum(cost), 9) FROM bench_plain WHERE occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01') AS plain_spend;

\echo
\echo 'A month of each, median ms of' :runs 'runs, at' :rows 'and 5 x' :rows 'ledger rows over the same days and keys'
SELECT a.name, a.ms AS ms_1x, b.ms AS ms_5x, round(b.ms / a.ms, 2) AS ratio_5x_1x,
	   CASE WHEN a.name IN ('spend_daily', 'initiative_economics') THEN '<= 1.5' END AS target
FROM timings a JOIN timings b ON b.name = a.name AND b.size = '5x'
WHERE a.size = '1x'
ORDER BY a.name DESC;

\echo 'The views against the hand-written GROUP BY over the plain table (plain ms / view ms)'
SELECT v.size, v.name AS view,
	   round(p.ms / v.ms, 2) AS plain_over_view
FROM timings v
JOIN timings p ON p.size = v.size
			  AND p.name = CASE v.name WHEN 'spend_daily' THEN 'plain GROUP BY by day' ELSE 'plain GROUP BY by month' END
WHERE v.name IN ('spend_daily', 'initiative_economics')
ORDER BY v.size, v.name DESC;
