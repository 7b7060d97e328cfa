-- aggregates over cost: exact sums, NULL over no rows, mixed currencies,
-- overflow, window frames and forced parallel plans
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

SELECT sum(c), avg(c), min(c), max(c), count(c)
FROM (VALUES ('1 USD'::cost), ('2.5 USD'), (NULL), ('0.000000001 USD')) v(c);
SELECT sum(c), avg(c), min(c), max(c) FROM (SELECT '1 USD'::cost c WHERE false) s;
SELECT avg(c) AS rounds_half_away FROM (VALUES ('0.000000001 USD'::cost), ('0.000000002 USD')) v(c);
SELECT avg(c) AS negative_half_away FROM (VALUES ('-0.000000001 USD'::cost), ('-0.000000002 USD')) v(c);

-- intermediate sums may exceed the cost range as long as the result fits
SELECT sum(c) AS back_in_range
FROM (VALUES ('9223372036.854775807 USD'::cost), ('9223372036.854775807 USD'), ('-9223372036.854775807 USD')) v(c);
SELECT avg(c) AS avg_of_large
FROM (VALUES ('9223372036.854775807 USD'::cost), ('9223372036.854775807 USD')) v(c);
SELECT pg_temp.err($$SELECT sum(c) FROM (VALUES ('9223372036.854775807 USD'::cost), ('0.000000001 USD')) v(c)$$);
SELECT pg_temp.err($$SELECT sum(c) FROM (VALUES ('1 USD'::cost), ('1 EUR')) v(c)$$);
SELECT pg_temp.err($$SELECT avg(c) FROM (VALUES ('1 USD'::cost), ('1 EUR')) v(c)$$);
SELECT currency(c), sum(c) FROM (VALUES ('1 USD'::cost), ('1 EUR'), ('2 USD')) v(c) GROUP BY 1 ORDER BY 1;

-- moving window frames use the inverse transition function
SELECT i, sum(c) OVER w, avg(c) OVER w
FROM (SELECT i, cost(i * 1.5, 'EUR') c FROM generate_series(1, 6) i) s
WINDOW w AS (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) ORDER BY i;
SELECT i, sum(c) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
FROM (VALUES (1, '1 USD'::cost), (2, NULL), (3, NULL), (4, '4 USD')) v(i, c) ORDER BY i;

-- forced parallel plans: partial aggregation in workers, combined in the leader
CREATE TABLE agg_costs (c cost, t tokens);
INSERT INTO agg_costs
SELECT cost((i % 1000) * 1.000000007 - 250, 'USD'), tokens(i, i * 2, i % 7, 0, i % 3)
FROM generate_series(1, 100000) i;
ANALYZE agg_costs;
CREATE TEMP TABLE serial_result AS
SELECT sum(c) s, avg(c) a, min(c) mi, max(c) ma, sum(t) st FROM agg_costs;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT sum(c), avg(c), min(c), max(c), sum(t) FROM agg_costs;
SELECT p.s = r.s AS sum_equal, p.a = r.a AS avg_equal, p.mi = r.mi AS min_equal,
       p.ma = r.ma AS max_equal, p.st = r.st AS tokens_equal, p.s, p.a, p.st
FROM (SELECT sum(c) s, avg(c) a, min(c) mi, max(c) ma, sum(t) st FROM agg_costs) p, serial_result r;
-- the oracle: numeric over the same rows
SELECT sum(c) = cost(sum(amount(c)), 'USD') AS sum_matches_numeric,
       avg(c) = cost(round(sum(amount(c)) / count(*), 9), 'USD') AS avg_matches_numeric
FROM agg_costs;
EXPLAIN (COSTS OFF) SELECT currency(c), sum(c) FROM agg_costs GROUP BY 1;
SELECT currency(c), sum(c) FROM agg_costs GROUP BY 1;
RESET parallel_leader_participation;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost;
RESET parallel_setup_cost;
DROP TABLE agg_costs;
