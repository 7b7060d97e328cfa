-- Behaviour of cost_per_outcome and roi over random rows: each equals the
-- numeric formula over the same rows (round(sum(amount) / sum(outcomes), 9);
-- (sum(value) - sum(spend)) / sum(spend), scale included), by group and
-- overall, and a forced parallel plan gives exactly what a serial one does.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SELECT plan(17);

SELECT setseed(0.31);
-- 5,000 rows in 40 groups, each group in one currency: spend with up to 9
-- decimals, negative now and then (credits) and NULL now and then
-- (unpriced); outcomes with 0 to 4 decimals, NULL now and then, all 0 in
-- group 39; values on some rows only
CREATE TABLE econ_rand AS
SELECT i, g, cur,
       CASE WHEN random() < 0.1 THEN NULL
            ELSE cost(round((random() * 120 - 15)::numeric, (random() * 9)::int), cur) END AS spend,
       CASE WHEN random() < 0.2 THEN NULL WHEN g = 39 THEN 0
            ELSE round((random() * 10)::numeric, (random() * 4)::int) END AS outcomes,
       CASE WHEN random() < 0.6 THEN NULL
            ELSE cost(round((random() * 500)::numeric, (random() * 9)::int), cur) END AS value
FROM generate_series(1, 5000) i
CROSS JOIN LATERAL (SELECT i % 40 AS g) x
CROSS JOIN LATERAL (SELECT (ARRAY['USD', 'EUR', 'JPY', 'GBP'])[1 + g % 4] AS cur) y;
-- group 40: sums far beyond the cost range, a result within it; group 41:
-- spend that sums to 0; group 42: only outcomes
INSERT INTO econ_rand (i, g, cur, spend, outcomes, value)
SELECT 5000 + n, 40, 'USD', '9223372036.854775807 USD'::cost, 3::numeric, '1 USD'::cost FROM generate_series(1, 6) n
UNION ALL SELECT 5010, 41, 'EUR', '2.5 EUR', 1, '9 EUR'
UNION ALL SELECT 5011, 41, 'EUR', '-2.5 EUR', 1, NULL
UNION ALL SELECT 5012, 42, 'USD', NULL, 4, '3 USD';
ANALYZE econ_rand;

CREATE TEMP TABLE oracle AS
SELECT g, cur,
       cost(round(sum(amount(spend)) / nullif(sum(outcomes), 0), 9), cur) AS cpo,
       (coalesce(sum(amount(value)), 0) - sum(amount(spend))) / nullif(sum(amount(spend)), 0) AS roi
FROM econ_rand GROUP BY g, cur;
CREATE TEMP TABLE serial AS
SELECT g, cost_per_outcome(spend, outcomes) AS cpo, roi(spend, value) AS roi FROM econ_rand GROUP BY g;

SELECT is((SELECT count(*) FROM serial), 43::bigint, 'one result per group');
SELECT is((SELECT count(*) FROM serial s JOIN oracle o USING (g) WHERE s.cpo IS DISTINCT FROM o.cpo),
          0::bigint, 'cost_per_outcome equals round(sum(amount) / sum(outcomes), 9) in every group');
SELECT is((SELECT count(*) FROM serial s JOIN oracle o USING (g)
           WHERE s.roi::text IS DISTINCT FROM o.roi::text),
          0::bigint, 'roi equals (sum(value) - sum(spend)) / sum(spend) in every group, to the last digit and scale');
SELECT is((SELECT count(*) FROM serial s JOIN oracle o USING (g)
           WHERE currency(s.cpo) IS DISTINCT FROM CASE WHEN s.cpo IS NOT NULL THEN o.cur END),
          0::bigint, 'cost_per_outcome is in its group''s currency');
SELECT is((SELECT cpo FROM serial WHERE g = 40), '3074457345.618258602 USD'::cost,
          'sums beyond the cost range: 6 x 9223372036.854775807 / 18 = 3074457345.6182586023.. USD');
SELECT is((SELECT cpo FROM serial WHERE g = 39), NULL, 'outcomes that sum to 0: NULL');
SELECT ok((SELECT cpo = '0 EUR' AND roi IS NULL FROM serial WHERE g = 41),
          'spend that sums to 0: 0 per outcome, roi NULL');
SELECT ok((SELECT cpo IS NULL AND roi IS NULL FROM serial WHERE g = 42), 'no spend: both NULL');
SELECT is((SELECT cost_per_outcome(spend, outcomes) FROM econ_rand WHERE cur = 'EUR'),
          (SELECT cost(round(sum(amount(spend)) / sum(outcomes), 9), 'EUR') FROM econ_rand WHERE cur = 'EUR'),
          'over a whole currency');

-- a forced parallel plan: partial states in the workers, serialized,
-- deserialized and combined in the leader
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
CREATE FUNCTION pg_temp.plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END $$;
SELECT matches(pg_temp.plan('SELECT g, cost_per_outcome(spend, outcomes), roi(spend, value) FROM econ_rand GROUP BY g'),
               'Finalize .*Aggregate.*Gather.*Partial .*Aggregate.*Parallel Seq Scan',
               'the grouped query runs as a parallel plan');
SELECT is((SELECT count(*) FROM (SELECT g, cost_per_outcome(spend, outcomes) AS cpo, roi(spend, value) AS roi
                                 FROM econ_rand GROUP BY g) p
           JOIN serial s USING (g)
           WHERE p.cpo IS NOT DISTINCT FROM s.cpo AND p.roi::text IS NOT DISTINCT FROM s.roi::text),
          43::bigint, 'in parallel every group is exactly as in a serial plan');
SELECT matches(pg_temp.plan($$SELECT cost_per_outcome(spend, outcomes), roi(spend, value) FROM econ_rand WHERE cur = 'USD'$$),
               'Finalize Aggregate.*Gather.*Partial Aggregate', 'the whole-table query runs as a parallel plan');
SELECT is((SELECT array[cost_per_outcome(spend, outcomes)::text, roi(spend, value)::text] FROM econ_rand WHERE cur = 'USD'),
          (SELECT array[cost(round(sum(amount(spend)) / sum(outcomes), 9), 'USD')::text,
                        ((sum(amount(value)) - sum(amount(spend))) / sum(amount(spend)))::text]
           FROM econ_rand WHERE cur = 'USD'),
          'in parallel over the whole of a currency: the numeric formulas');
SELECT throws_ok($$SELECT cost_per_outcome(spend, outcomes) FROM econ_rand$$, '22023', NULL,
                 'mixed currencies in a parallel plan: 22023');
SELECT throws_ok($$SELECT cost_per_outcome(spend, CASE WHEN i = 4320 THEN -1 ELSE outcomes END) FROM econ_rand WHERE cur = 'USD'$$,
                 '22023', 'cost_per_outcome cannot count -1 outcomes', 'a negative outcome in a parallel plan: 22023 naming it');
SELECT throws_ok($$SELECT roi(spend, CASE WHEN cur = 'EUR' THEN value END) FROM econ_rand WHERE cur IN ('USD', 'EUR')$$,
                 '22023', NULL, 'mixed spend in roi: 22023');
SELECT throws_ok($$SELECT roi(CASE WHEN cur = 'USD' THEN spend END, CASE WHEN cur = 'EUR' THEN value END) FROM econ_rand WHERE cur IN ('USD', 'EUR')$$,
                 '22023', 'cannot compute roi of spend in USD and value in EUR', 'spend and value apart in roi: 22023');

SELECT * FROM finish();
ROLLBACK;
