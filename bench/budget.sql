-- bench/budget.sql: budget_check latency at a small and a large ledger, in
-- one run (its cost must not grow with the ledger).  Rows go in through the
-- real insert path, so every budget's counters are kept as in production.
--   psql -v small=10000 -v large=10000000 -f bench/budget.sql   (make bench-budget)
\set ON_ERROR_STOP 1
\if :{?small}
\else
\set small 10000
\endif
\if :{?large}
\else
\set large 10000000
\endif
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
\i bench/budgets_setup.sql

-- median time (microseconds) of n budget_check calls
CREATE OR REPLACE FUNCTION pg_temp.check_us(n int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	times numeric[] := '{}';
BEGIN
	FOR i IN 1 .. n LOOP
		t0 := clock_timestamp();
		PERFORM * FROM tokenledger.budget_check(team => 'team-1', initiative => 'initiative-1',
			principal => 'svc-bench', api_key => 'key-1', app => 'app-1', estimate => '0.01 USD');
		times := times || (extract(epoch FROM clock_timestamp() - t0) * 1000000)::numeric;
	END LOOP;
	RETURN (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x);
END $$;

CREATE FUNCTION pg_temp.load(n bigint) RETURNS void LANGUAGE sql AS $$
	INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, api_key, app, principal, team, initiative)
	SELECT now() - (i % 86400) * interval '1 second', 'openai', 'gpt-4o', tokenledger.tokens(100 + i % 5000, 50),
		   'key-' || (1 + i % 10), 'app-' || (1 + i % 10), 'svc-bench', 'team-' || (i % 4), 'initiative-' || (1 + i % 10)
	FROM generate_series(1, n) i
$$;

SELECT pg_temp.load(:small);
ANALYZE;
SELECT pg_temp.check_us(500) AS small_us \gset
SELECT pg_temp.load(:large - :small);
ANALYZE;
SELECT pg_temp.check_us(500) AS large_us \gset
SELECT count(*) AS ledger_rows, count(*) FILTER (WHERE cost IS NOT NULL) AS priced FROM tokenledger.usage;
SELECT :small AS small_rows, :small_us AS median_us_small, :large AS large_rows, :large_us AS median_us_large,
       round(:large_us / :small_us, 2) AS ratio, '<= 1.20' AS target;
