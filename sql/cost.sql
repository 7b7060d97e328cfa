-- cost: text forms, arithmetic, ranges, rounding and errors
SET search_path = public, tokenledger;
SET extra_float_digits = 0;
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

-- text forms
SELECT '12.50 USD'::cost, 'USD 12.50'::cost, '-0.25 EUR'::cost, '$1.50'::cost;
SELECT '€2'::cost, '£3.1'::cost, '-$1.50'::cost, '$-1.50'::cost, '  7  '::cost;
SELECT '12.5usd'::cost, 'eur 3'::cost, '.5 USD'::cost, '5. USD'::cost, '+1 JPY'::cost;
SELECT '$1.50 USD'::cost AS symbol_and_same_code, '0 USD'::cost, '-0 USD'::cost;
SELECT '1.000000001 USD'::cost, '1.100000000 USD'::cost, '1.123456789 USD'::cost;

-- bare amounts take tokenledger.currency
SELECT '7'::cost;
SET tokenledger.currency = 'eur';
SHOW tokenledger.currency;
SELECT '7'::cost, 7.5::numeric::cost;
RESET tokenledger.currency;
SELECT pg_temp.err($$SET tokenledger.currency = 'XYZ'$$);
SELECT pg_temp.err($$SET tokenledger.currency = 'US'$$);

-- more than 9 decimals round half away from zero, as numeric rounds
SELECT '1.0000000004 USD'::cost, '1.0000000005 USD'::cost, '-1.0000000005 USD'::cost,
       '0.00000000049999 USD'::cost, '-0.0000000005 USD'::cost;
SELECT x, x::cost = round(x, 9)::cost AS matches_numeric
FROM (VALUES (2.1234567894999::numeric), (2.1234567895), (-2.1234567895), (0.9999999999)) v(x);

-- the range: |amount| < 2^63 nanos
SELECT '9223372036.854775807 USD'::cost AS max, '-9223372036.854775807 USD'::cost AS min;
SELECT '9223372036.8547758074 USD'::cost AS rounds_down_to_max;
SELECT pg_temp.err($$SELECT '9223372036.854775808 USD'::cost$$);
SELECT pg_temp.err($$SELECT '-9223372036.854775808 USD'::cost$$);
SELECT pg_temp.err($$SELECT '9223372036.8547758075 USD'::cost$$);
SELECT pg_temp.err($$SELECT '99999999999999999999999 USD'::cost$$);
SELECT pg_temp.err($$SELECT cost(9223372036.854775808, 'USD')$$);
SELECT pg_temp.err($$SELECT '9223372036.854775807 USD'::cost + '0.000000001 USD'$$);
SELECT pg_temp.err($$SELECT '-9223372036.854775807 USD'::cost - '0.000000001 USD'$$);
SELECT pg_temp.err($$SELECT '5000000000 USD'::cost * 2$$);
SELECT pg_temp.err($$SELECT '5000000000 USD'::cost * 2::bigint$$);
SELECT pg_temp.err($$SELECT '5000000000 USD'::cost * 1.9$$);
SELECT '4611686018.427387903 USD'::cost * 2 AS just_fits, -'9223372036.854775807 USD'::cost AS negated;

-- malformed literals: 22P02 naming the value
SELECT q, pg_temp.err(format('SELECT %L::cost', q))
FROM unnest(ARRAY['', ' ', 'USD', '12.5 XX', '12.5 USDX', 'abc', '1.2.3 USD', '12,50 EUR',
                  '1e5 USD', '$', '$$1', '--1 USD', '- USD', '12 USD EUR', '$1 EUR',
                  '1 USD 2', '12.50 ZZZ', '+-1', '-$-1', 'USD 1 USD 1', '.', 'NaN',
                  'Infinity USD', '1_000 USD', '0x10 USD']) q;

-- constructor, accessors and casts
SELECT cost(12.5, 'usd'), cost(-0.0000000015, 'EUR'), amount('12.5 USD'), currency('3 GBP');
SELECT '12.5 USD'::cost::numeric, 12.5::numeric::cost, pg_typeof(amount('1 USD'));
SELECT pg_temp.err($$SELECT cost(1, 'XYZ')$$);
SELECT pg_temp.err($$SELECT cost('NaN', 'USD')$$);
CREATE TEMP TABLE assign_cast (c cost);
INSERT INTO assign_cast VALUES (3.25::numeric);
SELECT c FROM assign_cast;

-- arithmetic
SELECT '1.5 USD'::cost + '2.25 USD' AS add, '1.5 USD'::cost - '2.25 USD' AS sub,
       -'1.5 USD'::cost AS neg, -'-1.5 USD'::cost AS negneg;
SELECT '1.5 USD'::cost * 3 AS mul_int, 3 * '1.5 USD'::cost AS int_mul,
       '1.5 USD'::cost * 3::bigint AS mul_bigint, 3::bigint * '1.5 USD'::cost AS bigint_mul,
       '1.5 USD'::cost * 0.5 AS mul_num, 0.5 * '1.5 USD'::cost AS num_mul;
SELECT '10 USD'::cost / 3 AS div_int, '-10 USD'::cost / 3::bigint AS div_bigint,
       '10 USD'::cost / 4.0 AS div_num, '0.000000005 USD'::cost / 2 AS half_up,
       '-0.000000005 USD'::cost / 2 AS half_down, '0.000000003 USD'::cost / 2::numeric AS num_half;
SELECT '10 USD'::cost / '4 USD'::cost AS ratio, '1 USD'::cost / '3 USD'::cost AS third;
SELECT '0.000000001 USD'::cost * 0.5 AS half_nano, '0.000000001 USD'::cost * 0.49 AS under_half,
       '-0.000000001 USD'::cost * 0.5 AS neg_half_nano;
SELECT '9223372036.854775807 USD'::cost / -1 AS div_minus_one;

-- mixed currencies and division by zero
SELECT pg_temp.err($$SELECT '1 USD'::cost + '1 EUR'$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost - '1 EUR'$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost / '1 EUR'::cost$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost / 0$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost / 0::bigint$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost / 0.0$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost / '0 USD'::cost$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost * 'NaN'::numeric$$);
SELECT pg_temp.err($$SELECT '1 USD'::cost / 'Infinity'::numeric$$);

-- comparison: currency code, then amount; never raises
SELECT '1 USD'::cost = '1 EUR'::cost AS eq_mixed, '1 USD'::cost <> '1 EUR' AS ne_mixed,
       '1 EUR'::cost < '0.5 USD' AS eur_sorts_first, '2 USD'::cost > '1 USD' AS gt,
       '1 USD'::cost <= '1.00 USD' AS le, '1 USD'::cost >= '1.000000001 USD' AS ge;
SELECT cost_cmp('1 USD', '2 USD'), cost_cmp('2 USD', '1 USD'), cost_cmp('1 USD', '1 USD'),
       cost_cmp('9 EUR', '1 USD');
CREATE TEMP TABLE mixed (c cost);
INSERT INTO mixed VALUES ('3 USD'), ('-1 EUR'), ('2 GBP'), ('1 USD'), ('100 EUR'), ('0 JPY'), (NULL);
SELECT c FROM mixed ORDER BY c;
SELECT c FROM mixed ORDER BY c DESC NULLS LAST LIMIT 3;
ANALYZE mixed;
SELECT count(*) FROM mixed WHERE c > '1 USD';
SELECT min(c), max(c) FROM mixed;
SELECT DISTINCT c FROM (SELECT c FROM mixed UNION ALL SELECT '3.00 USD'::cost) s ORDER BY 1;
SELECT currency(c), count(*) FROM mixed WHERE c IS NOT NULL GROUP BY currency(c) ORDER BY 1;
CREATE INDEX ON mixed (c);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT c FROM mixed WHERE c = '3 USD';
SELECT c FROM mixed WHERE c BETWEEN '0 USD' AND '5 USD' ORDER BY c;
RESET enable_seqscan;
SELECT cost_hash('1 USD') = cost_hash('1.000 USD') AS hash_equal,
       cost_hash('1 USD') <> cost_hash('1 EUR') AS hash_differs,
       cost_hash_extended('1 USD', 0) = cost_hash_extended('1 USD', 0) AS ext_stable,
       cost_hash_extended('1 USD', 0) <> cost_hash_extended('1 USD', 1) AS ext_seeded;
-- hash join and hash partitioning use the hash class
SET enable_mergejoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM mixed a JOIN mixed b ON a.c = b.c;
SELECT count(*) FROM mixed a JOIN mixed b ON a.c = b.c;
RESET enable_mergejoin;
RESET enable_nestloop;
CREATE TEMP TABLE hparts (c cost) PARTITION BY HASH (c);
CREATE TEMP TABLE hparts0 PARTITION OF hparts FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TEMP TABLE hparts1 PARTITION OF hparts FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO hparts SELECT cost(i, 'USD') FROM generate_series(1, 100) i;
SELECT (SELECT count(*) FROM hparts0) + (SELECT count(*) FROM hparts1) AS partitioned_rows,
       (SELECT count(*) FROM hparts0) BETWEEN 1 AND 99 AS spread;
