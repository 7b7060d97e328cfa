-- cost_per_outcome(spend cost, outcomes numeric) and roi(spend cost, value
-- cost): figures derived by hand, NULLs, every error, GROUP BY, forced
-- parallel plans (serialize, deserialize, combine), garbage states, readers
SET search_path = public, tokenledger;
-- runs q; returns 'ok' or the error's SQLSTATE, message and detail
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' | ' || detail, ' | '), '');
END $$;

-- ---------------------------------------------------------------------------
-- cost_per_outcome
-- ---------------------------------------------------------------------------

-- 3 calls, 0.10 + 0.20 + 0.05 = 0.35 USD, over 2 + 4 + 1 = 7 outcomes:
-- 0.35 / 7 = 0.05 USD exactly
SELECT cost_per_outcome(c, q) AS three_calls
FROM (VALUES ('0.10 USD'::cost, 2::numeric), ('0.20 USD', 4), ('0.05 USD', 1)) v(c, q);

-- rounding to the nano, half away from zero (as round(numeric, 9)):
--   0.000000001 / 2  = 0.0000000005   -> 0.000000001
--  -0.000000001 / 2  = -0.0000000005  -> -0.000000001
--   0.000000025 / 10 = 0.0000000025   -> 0.000000003 (half-even would give 2)
--  -0.000000025 / 10 = -0.0000000025  -> -0.000000003
--   0.000000001 / 3  = 0.000000000333 -> 0 (shown 0.00)
--   0.000000002 / 3  = 0.000000000667 -> 0.000000001
--   2 / 3            = 0.6666666666.. -> 0.666666667
--  -2 / 3            = -0.666666666.. -> -0.666666667
--   1 / 3            = 0.3333333333.. -> 0.333333333
SELECT s, q, cost_per_outcome(s, q)
FROM (VALUES ('0.000000001 USD'::cost, 2::numeric), ('-0.000000001 USD', 2),
             ('0.000000025 USD', 10), ('-0.000000025 USD', 10),
             ('0.000000001 USD', 3), ('0.000000002 USD', 3),
             ('2 USD', 3), ('-2 USD', 3), ('1 USD', 3)) v(s, q)
GROUP BY s, q ORDER BY amount(s), q;

-- fractional outcomes: 1 EUR over 0.5 + 0.25 + 0.75 = 1.5 outcomes:
-- 0.6666666666.. -> 0.666666667 EUR; 10 GBP over 0.3 outcomes: 33.333333333 GBP
SELECT cost_per_outcome(c, q) AS fractional
FROM (VALUES ('0.40 EUR'::cost, 0.5), ('0.35 EUR', 0.25), ('0.25 EUR', 0.75)) v(c, q);
SELECT cost_per_outcome('10 GBP'::cost, 0.3) AS ten_over_three_tenths;
-- a credit: 1.00 - 0.40 = 0.60 USD over 3 outcomes = 0.20 USD; no spend at
-- all: 0 USD over 3 outcomes = 0.00 USD; "-0.000" outcomes are zero, not
-- negative: 1 USD over 0 + 2 outcomes = 0.50 USD
SELECT cost_per_outcome(c, q) AS with_credit
FROM (VALUES ('1.00 USD'::cost, 1::numeric), ('-0.40 USD', 2)) v(c, q);
SELECT cost_per_outcome(c, q) AS zero_spend
FROM (VALUES ('0 USD'::cost, 1::numeric), ('0 USD', 2)) v(c, q);
SELECT cost_per_outcome(c, q) AS minus_zero_outcomes
FROM (VALUES ('1 USD'::cost, '-0.000'::numeric), (NULL, 2)) v(c, q);

-- sums beyond the cost range are fine when the result fits:
-- 2 x 9223372036.854775807 = 18446744073.709551614 over 4 outcomes
-- = 4611686018.4273879035 -> 4611686018.427387904 USD
SELECT cost_per_outcome(c, q) AS back_in_range
FROM (VALUES ('9223372036.854775807 USD'::cost, 1::numeric), ('9223372036.854775807 USD', 3)) v(c, q);

-- NULLs: a NULL argument leaves only its own sum.  The outcomes of a row
-- with no spend (an unpriced call, or an outcome row beside the calls)
-- still count: 0.30 USD over 1 + 2 outcomes = 0.10 USD
SELECT cost_per_outcome(c, q) AS null_spend_row_counts
FROM (VALUES ('0.30 USD'::cost, 1::numeric), (NULL, 2), (NULL, NULL), ('0 USD', NULL)) v(c, q);
-- NULL over no rows, with no spend, with no outcomes, when the outcomes sum to 0
SELECT cost_per_outcome(c, q) IS NULL AS no_rows
FROM (VALUES ('1 USD'::cost, 1::numeric)) v(c, q) WHERE false;
SELECT cost_per_outcome(c, q) IS NULL AS no_spend
FROM (VALUES (NULL::cost, 1::numeric), (NULL, 2)) v(c, q);
SELECT cost_per_outcome(c, q) IS NULL AS no_outcomes
FROM (VALUES ('1 USD'::cost, NULL::numeric), ('2 USD', NULL)) v(c, q);
SELECT cost_per_outcome(c, q) IS NULL AS zero_outcomes
FROM (VALUES ('1 USD'::cost, 0::numeric), ('2 USD', 0.00)) v(c, q);

-- errors: mixed currencies (22023, both codes), negative, NaN or infinite
-- outcomes (22023, the value; also on a row without spend), a result out
-- of the cost range (22003)
SELECT pg_temp.err($$SELECT cost_per_outcome(c, q) FROM (VALUES ('1 USD'::cost, 1::numeric), ('1 EUR', 1)) v(c, q)$$);
SELECT pg_temp.err($$SELECT cost_per_outcome(c, q) FROM (VALUES ('1 USD'::cost, 1::numeric), ('1 USD', -2)) v(c, q)$$);
SELECT pg_temp.err($$SELECT cost_per_outcome(c, q) FROM (VALUES ('1 USD'::cost, 3::numeric), (NULL, -0.5)) v(c, q)$$);
SELECT pg_temp.err($$SELECT cost_per_outcome('1 USD', 'NaN')$$);
SELECT pg_temp.err($$SELECT cost_per_outcome('1 USD', 'Infinity')$$);
SELECT pg_temp.err($$SELECT cost_per_outcome('1 USD', '-Infinity')$$);
-- 9223372036.854775807 / 0.5 = 18446744073.709551614 USD
SELECT pg_temp.err($$SELECT cost_per_outcome('9223372036.854775807 USD', 0.5)$$);

-- ---------------------------------------------------------------------------
-- roi
-- ---------------------------------------------------------------------------

-- (250 - 100) / 100 = 1.5; (50 - 200) / 200 = -0.75; (100 - 100) / 100 = 0
-- (numeric division keeps at least 16 significant digits: 1.5 shows as
-- 1.5000000000000000, -0.75 as -0.75000000000000000000)
SELECT roi(s, v) AS gain FROM (VALUES ('100 USD'::cost, '250 USD'::cost)) t(s, v);
SELECT roi(s, v) AS loss FROM (VALUES ('120 USD'::cost, '50 USD'::cost), ('80 USD', NULL)) t(s, v);
SELECT roi(s, v) AS even FROM (VALUES ('100 USD'::cost, '40 USD'::cost), (NULL, '60 USD')) t(s, v);
-- 0.10 + 0.20 + 0.05 = 0.35 spent, 1.00 worth: 0.65 / 0.35 = 1.857142857142857142.. -> 1.8571428571428571
SELECT roi(s, v) AS three_calls
FROM (VALUES ('0.10 USD'::cost, NULL::cost), ('0.20 USD', NULL), ('0.05 USD', '1.00 USD')) t(s, v);
-- (4 - 3) / 3 = 0.333..., 20 decimals; spend with no value at all: (0 - 10) / 10 = -1
SELECT roi('3 JPY'::cost, '4 JPY'::cost) AS one_third;
SELECT roi(s, v) AS nothing_back FROM (VALUES ('10 EUR'::cost, NULL::cost), ('0 EUR', NULL)) t(s, v);
-- credits beyond the spend: the formula as it stands, (5 - (-10)) / -10 = -1.5
SELECT roi(s, v) AS negative_spend FROM (VALUES ('-10 USD'::cost, '5 USD'::cost)) t(s, v);
-- exactly the numeric formula over the amounts, scale included:
-- (1000000 - 0.000000001) / 0.000000001 = 999999.999999999 / 0.000000001
-- = 999999999999999, shown with the scale 9 of the amounts
SELECT r, r::text = ((1000000 - 0.000000001) / 0.000000001)::text AS same_as_numeric
FROM (SELECT roi('0.000000001 USD'::cost, '1000000 USD'::cost) r) x;

-- NULL over no rows, with no spend, when the spend sums to 0
SELECT roi(s, v) IS NULL AS no_rows FROM (VALUES ('1 USD'::cost, '1 USD'::cost)) t(s, v) WHERE false;
SELECT roi(s, v) IS NULL AS no_spend FROM (VALUES (NULL::cost, '1 USD'::cost)) t(s, v);
SELECT roi(s, v) IS NULL AS zero_spend FROM (VALUES ('1 USD'::cost, '5 USD'::cost), ('-1 USD', NULL)) t(s, v);

-- errors (22023): mixed spend, mixed value, spend and value apart (also
-- when the spend sums to 0)
SELECT pg_temp.err($$SELECT roi(s, v) FROM (VALUES ('1 USD'::cost, '2 USD'::cost), ('1 EUR', NULL)) t(s, v)$$);
SELECT pg_temp.err($$SELECT roi(s, v) FROM (VALUES ('1 USD'::cost, '2 USD'::cost), (NULL, '2 GBP')) t(s, v)$$);
SELECT pg_temp.err($$SELECT roi(s, v) FROM (VALUES ('1 USD'::cost, '2 EUR'::cost)) t(s, v)$$);
SELECT pg_temp.err($$SELECT roi(s, v) FROM (VALUES ('1 USD'::cost, NULL::cost), ('-1 USD', '2 EUR')) t(s, v)$$);

-- ---------------------------------------------------------------------------
-- GROUP BY: calls and outcomes side by side, one group per initiative
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE econ (initiative text, spend cost, outcomes numeric, value cost);
INSERT INTO econ VALUES
	-- support: 0.40 + 0.35 + 0.25 = 1.00 USD for 3 + 1 = 4 outcomes worth 6 + 2 = 8 USD:
	-- 1.00 / 4 = 0.25 USD per outcome, roi (8 - 1) / 1 = 7
	('support', '0.40 USD', NULL, NULL), ('support', '0.35 USD', NULL, NULL),
	('support', '0.25 USD', NULL, NULL), ('support', NULL, 3, '6 USD'), ('support', NULL, 1, '2 USD'),
	-- leads: 2.00 + 1.00 = 3.00 EUR and no outcome yet: NULL per outcome, roi (0 - 3) / 3 = -1
	('leads', '2.00 EUR', NULL, NULL), ('leads', '1.00 EUR', NULL, NULL),
	-- invoices: 3 x 0.07 = 0.21 USD for 2 outcomes worth 0.10 USD: 0.105 USD per outcome,
	-- roi (0.10 - 0.21) / 0.21 = -0.523809523809523809523.. -> 20 decimals
	('invoices', '0.07 USD', NULL, NULL), ('invoices', '0.07 USD', NULL, NULL),
	('invoices', '0.07 USD', NULL, NULL), ('invoices', NULL, 2, '0.10 USD'),
	-- onboarding: outcomes only, nothing spent yet: NULL, NULL
	('onboarding', NULL, 5, '50 USD');
SELECT initiative, sum(spend) AS spend, sum(outcomes) AS outcomes,
       cost_per_outcome(spend, outcomes), roi(spend, value)
FROM econ GROUP BY initiative ORDER BY initiative;

-- as window functions: the running cost per outcome, 0.30 / 1 = 0.30,
-- 0.60 / 3 = 0.20, 1.00 / 4 = 0.25 USD; roi over two days,
-- (1 - 0.30) / 0.30 = 2.333.., (1 - 0.60) / 0.60 = 0.666..,
-- (2 - 0.70) / 0.70 = 1.857142857142..
SELECT d, cost_per_outcome(c, q) OVER (ORDER BY d) AS running,
       roi(c, v) OVER (ORDER BY d ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS two_days
FROM (VALUES (1, '0.30 USD'::cost, 1::numeric, '1 USD'::cost), (2, '0.30 USD', 2, NULL),
             (3, '0.40 USD', 1, '2 USD')) v(d, c, q, v)
ORDER BY d;

-- ---------------------------------------------------------------------------
-- forced parallel plans: partial states in workers, serialized, deserialized
-- and combined in the leader; the same figures as a serial plan
-- ---------------------------------------------------------------------------
CREATE TABLE econ_big (i int, g int, spend cost, outcomes numeric, value cost);
INSERT INTO econ_big
SELECT i, i % 4,
       CASE WHEN i % 17 <> 0 THEN cost((i % 997) * 0.000000013 + (i % 7) * 0.01 - 0.02, 'USD') END,
       CASE WHEN i % 11 <> 0 THEN (i % 5) * 0.25 END,
       CASE WHEN i % 3 = 0 THEN cost((i % 13) * 0.05, 'USD') END
FROM generate_series(1, 100000) i;
ANALYZE econ_big;
CREATE TEMP TABLE serial_result AS
SELECT cost_per_outcome(spend, outcomes) c, roi(spend, value) r FROM econ_big;
CREATE TEMP TABLE serial_groups AS
SELECT g, cost_per_outcome(spend, outcomes) c, roi(spend, value) r FROM econ_big GROUP BY g;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT cost_per_outcome(spend, outcomes), roi(spend, value) FROM econ_big;
SELECT p.c = s.c AS cost_per_outcome_equal, p.r = s.r AS roi_equal,
       p.r::text = s.r::text AS roi_same_scale, p.c, p.r
FROM (SELECT cost_per_outcome(spend, outcomes) c, roi(spend, value) r FROM econ_big) p, serial_result s;
-- the oracle: numeric over the same rows
SELECT cost_per_outcome(spend, outcomes) = cost(round(sum(amount(spend)) / sum(outcomes), 9), 'USD')
         AS cost_per_outcome_matches_numeric,
       roi(spend, value)::text = ((sum(amount(value)) - sum(amount(spend))) / sum(amount(spend)))::text
         AS roi_matches_numeric
FROM econ_big;
EXPLAIN (COSTS OFF)
SELECT g, cost_per_outcome(spend, outcomes), roi(spend, value) FROM econ_big GROUP BY g;
SELECT count(*) AS groups, count(*) FILTER (WHERE p.c = s.c AND p.r::text = s.r::text) AS equal
FROM (SELECT g, cost_per_outcome(spend, outcomes) c, roi(spend, value) r FROM econ_big GROUP BY g) p
JOIN serial_groups s USING (g);
-- errors raised in a worker reach the client
SELECT pg_temp.err($$SELECT cost_per_outcome(spend, CASE WHEN g = 3 AND outcomes > 0 THEN -outcomes ELSE outcomes END) FROM econ_big$$) ~ '^22023: cost_per_outcome cannot count -' AS negative_in_worker;
SELECT pg_temp.err($$SELECT roi(spend, CASE WHEN g = 2 THEN cost(amount(value), 'EUR') ELSE value END) FROM econ_big$$);

-- deserialize refuses states it did not write (never a crash): test
-- aggregates hand one aggregate's serialized states to another's
-- deserialize.  Their final function reads only the leading cost sum that
-- every one of these states starts with.
CREATE AGGREGATE public.roi_into_cost_per_outcome(cost, cost) (
	SFUNC = roi_accum, STYPE = internal, FINALFUNC = cost_sum_final,
	COMBINEFUNC = cost_per_outcome_combine, SERIALFUNC = roi_serialize,
	DESERIALFUNC = cost_per_outcome_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE public.sum_into_cost_per_outcome(cost) (
	SFUNC = cost_sum_accum, STYPE = internal, FINALFUNC = cost_sum_final,
	COMBINEFUNC = cost_per_outcome_combine, SERIALFUNC = cost_sum_serialize,
	DESERIALFUNC = cost_per_outcome_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE public.cost_per_outcome_into_roi(cost, numeric) (
	SFUNC = cost_per_outcome_accum, STYPE = internal, FINALFUNC = cost_sum_final,
	COMBINEFUNC = roi_combine, SERIALFUNC = cost_per_outcome_serialize,
	DESERIALFUNC = roi_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE public.sum_into_roi(cost) (
	SFUNC = cost_sum_accum, STYPE = internal, FINALFUNC = cost_sum_final,
	COMBINEFUNC = roi_combine, SERIALFUNC = cost_sum_serialize,
	DESERIALFUNC = roi_deserialize, PARALLEL = SAFE);
EXPLAIN (COSTS OFF) SELECT public.roi_into_cost_per_outcome(spend, value) FROM econ_big;
-- a roi state is 54 bytes, a cost sum 27: a cost_per_outcome state is 27
-- bytes and a numeric of 8 + 2 x (its first two bytes) bytes.  Positive
-- value sums leave those two bytes 0; a negative one makes them 65535.
SELECT pg_temp.err($$SELECT public.roi_into_cost_per_outcome(spend, value) FROM econ_big$$);
SELECT pg_temp.err($$SELECT public.roi_into_cost_per_outcome(spend, -value) FROM econ_big$$);
SELECT pg_temp.err($$SELECT public.sum_into_cost_per_outcome(spend) FROM econ_big$$);
SELECT pg_temp.err($$SELECT public.cost_per_outcome_into_roi(spend, outcomes) FROM econ_big$$) ~ '^22P03: invalid serialized roi state: \d+ bytes, 54 expected$' AS wrong_length;
SELECT pg_temp.err($$SELECT public.sum_into_roi(spend) FROM econ_big$$);
DROP AGGREGATE public.roi_into_cost_per_outcome(cost, cost), public.sum_into_cost_per_outcome(cost),
	public.cost_per_outcome_into_roi(cost, numeric), public.sum_into_roi(cost);

-- ---------------------------------------------------------------------------
-- everyone may aggregate; the support functions are nobody's to call
-- ---------------------------------------------------------------------------
SELECT has_function_privilege('tokenledger_reader', 'cost_per_outcome(cost, numeric)', 'EXECUTE') AS reader_cost_per_outcome,
       has_function_privilege('tokenledger_reader', 'roi(cost, cost)', 'EXECUTE') AS reader_roi,
       has_function_privilege('tokenledger_writer', 'roi(cost, cost)', 'EXECUTE') AS writer_roi,
       has_function_privilege('public', 'cost_per_outcome_accum(internal, cost, numeric)', 'EXECUTE') AS public_accum,
       has_function_privilege('public', 'roi_final(internal)', 'EXECUTE') AS public_final;
GRANT SELECT ON econ_big, serial_result TO tokenledger_reader;
SET ROLE tokenledger_reader;
SELECT cost_per_outcome(c, q), roi(c, v)
FROM (VALUES ('0.10 USD'::cost, 2::numeric, '1 USD'::cost), ('0.20 USD', 4, NULL), ('0.05 USD', 1, NULL)) t(c, q, v);
SELECT p.c = s.c AND p.r = s.r AS reader_parallel_equal
FROM (SELECT cost_per_outcome(spend, outcomes) c, roi(spend, value) r FROM econ_big) p, serial_result s;
RESET ROLE;

RESET parallel_leader_participation;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost;
RESET parallel_setup_cost;
DROP TABLE econ_big;
