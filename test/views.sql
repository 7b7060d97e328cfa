-- Every reporting view is BI-ready: a comment on the view and on each
-- column, no column of a tokenledger type, readable by tokenledger_reader
-- and run with the caller's rights; and the views over the rollups sum to
-- the ledger on random data.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SELECT plan(13);

CREATE TEMP TABLE reporting(name) AS
SELECT unnest(ARRAY['spend_daily', 'initiative_economics', 'run_economics', 'unattributed_spend',
					'token_maxing', 'spend_vs_outcome_growth', 'model_rightsizing', 'spend_anomalies',
					'focus_export', 'budget_status', 'unpriced_usage']);

SELECT is((SELECT array_agg(r.name ORDER BY r.name) FROM reporting r
		   WHERE to_regclass('tokenledger.' || r.name) IS NULL),
		  NULL, 'every reporting view of the SPEC exists');

SELECT is((SELECT array_agg(c.relname ORDER BY c.relname) FROM pg_class c
		   WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind = 'v'
			 AND obj_description(c.oid, 'pg_class') IS NULL),
		  NULL, 'every view of the extension has a comment');

SELECT is((SELECT array_agg(c.relname || '.' || a.attname ORDER BY 1) FROM pg_class c
		   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		   WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind = 'v'
			 AND col_description(c.oid, a.attnum) IS NULL),
		  NULL, 'every column of every view has a comment');

SELECT is((SELECT array_agg(c.relname || '.' || a.attname ORDER BY 1) FROM reporting r
		   JOIN pg_class c ON c.oid = to_regclass('tokenledger.' || r.name)
		   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		   JOIN pg_type t ON t.oid = a.atttypid
		   WHERE t.typnamespace = 'tokenledger'::regnamespace
			  OR t.typelem IN (SELECT oid FROM pg_type WHERE typnamespace = 'tokenledger'::regnamespace)),
		  NULL, 'no reporting view has a column of a tokenledger type');

SELECT is((SELECT array_agg(c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, NULL) ORDER BY 1)
		   FROM reporting r
		   JOIN pg_class c ON c.oid = to_regclass('tokenledger.' || r.name)
		   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		   WHERE a.atttypid NOT IN ('numeric'::regtype, 'bigint'::regtype, 'integer'::regtype, 'text'::regtype,
									'date'::regtype, 'timestamptz'::regtype, 'boolean'::regtype)),
		  NULL, 'every reporting view column is numeric, bigint, integer, text, date, timestamptz or boolean, as BI tools map them (no jsonb)');

SELECT is((SELECT array_agg(r.name ORDER BY r.name) FROM reporting r
		   WHERE NOT has_table_privilege('tokenledger_reader', 'tokenledger.' || r.name, 'SELECT')),
		  NULL, 'tokenledger_reader may read every reporting view');

SELECT is((SELECT array_agg(c.relname ORDER BY c.relname) FROM pg_class c
		   WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind = 'v'
			 AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)),
		  NULL, 'every view runs with the caller''s rights (row-level security reaches through)');

SELECT is((SELECT array_agg(c.relname ORDER BY c.relname) FROM pg_class c
		   WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind = 'v'
			 AND has_table_privilege('tokenledger_writer', c.oid, 'SELECT')
			 AND NOT pg_has_role('tokenledger_writer', 'tokenledger_reader', 'USAGE')),
		  NULL, 'a writer reads no view');

-- random calls over the shipped catalog, in two currencies and with no rate
-- for a third; sums of spend_daily equal the ledger's per currency
SELECT setseed(0.42);
INSERT INTO fx_rates (currency, to_currency, rate, effective_from)
VALUES ('EUR', 'USD', 1.0875, '2020-01-01'), ('EUR', 'USD', 1.1125, '2026-03-15 16:20+00');
INSERT INTO usage (occurred_at, provider, model, tokens, requests, cost, team, initiative, environment)
SELECT timestamptz '2026-03-01' + random() * interval '30 days',
	   p.provider, p.model, tokens((random() * 9000)::bigint, (random() * 900)::bigint),
	   1 + (random() * 3)::int,
	   CASE WHEN i % 13 = 0 THEN cost(round((random() * 5)::numeric, 6), (ARRAY['EUR', 'JPY'])[1 + i % 2]) END,
	   'team-' || i % 3, CASE WHEN i % 7 <> 0 THEN 'ini-' || i % 5 END, 'prod'
FROM generate_series(1, 3000) i
CROSS JOIN LATERAL (SELECT provider, model FROM prices
					WHERE service_tier = 'standard' AND min_input_tokens = 0 AND shipped
					ORDER BY id OFFSET (i % 20) LIMIT 1) p;

CREATE TEMP TABLE converted AS
SELECT u.*, CASE WHEN r.rate IS NULL THEN currency(u.cost) ELSE 'USD' END AS cur,
	   amount(u.cost) * coalesce(r.rate, 1) AS spend
FROM usage u
CROSS JOIN LATERAL (SELECT CASE currency(u.cost) WHEN 'USD' THEN 1
					WHEN 'EUR' THEN (SELECT f.rate FROM fx_rates f WHERE f.currency = 'EUR'
									 AND f.effective_from <= u.occurred_at
									 ORDER BY f.effective_from DESC LIMIT 1) END AS rate) r
WHERE u.cost IS NOT NULL;

SELECT results_eq(
	$$SELECT day, team, initiative, provider, model, currency, spend FROM spend_daily
	  WHERE spend <> 0 ORDER BY 1, 2, 3, 4, 5, 6$$,
	$$SELECT occurred_at::date, team, initiative, provider, model, cur, round(sum(spend), 9) FROM converted
	  GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(spend) <> 0 ORDER BY 1, 2, 3, 4, 5, 6$$,
	'spend_daily equals the ledger, EUR converted at each call''s time and JPY apart');
SELECT results_eq(
	$$SELECT sum(requests)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint FROM spend_daily$$,
	$$SELECT sum(requests)::bigint, sum(input(tokens))::bigint, sum(output(tokens))::bigint FROM usage$$,
	'spend_daily counts every call and token');
SELECT results_eq(
	$$SELECT month, initiative, currency, spend FROM initiative_economics ORDER BY 1, 2, 3$$,
	$$SELECT date_trunc('month', occurred_at)::date, initiative, cur, round(sum(spend), 9) FROM converted
	  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3$$,
	'initiative_economics equals the ledger, shadow spend included');
SELECT is((SELECT array_agg(DISTINCT round(s, 12)) FROM (
			  SELECT sum(spend_share) AS s FROM initiative_economics GROUP BY month, currency) x),
		  ARRAY[1.000000000000], 'the shares of each month add up to 1');
-- in a whole-hour time zone the ledger's branch is cut off before it runs
SET LOCAL TimeZone = 'Europe/Paris';
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	plan text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
		plan := plan || line || E'\n';
	END LOOP;
	RETURN plan;
END $$;
SELECT doesnt_match(pg_temp.plan_of('SELECT * FROM tokenledger.spend_daily WHERE day >= ''2026-03-01'''),
			   'Scan on usage(_default|_[0-9]{4}_[0-9]{2})? \w+ \(actual',
			   'spend_daily in Europe/Paris reads the rollups, never the ledger');
SELECT * FROM finish();
ROLLBACK;
