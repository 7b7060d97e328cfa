-- tokens: text forms, constructor, accessors, arithmetic, errors
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

SELECT 'in=1200 out=350 cache_read=800'::tokens;
SELECT 'out=350, in=1200'::tokens, 'input=1 output=2'::tokens, 'in = 5 , out = 6'::tokens;
SELECT 'reasoning=100 out=300 cache_write_1h=7 cache_write=6 cache_read=5 in=4'::tokens;
SELECT 'out=5'::tokens AS only_out, 'in=0 out=0'::tokens AS zero, 'IN=1 Out=2'::tokens AS any_case;
SELECT 'in=9223372036854775807 out=9223372036854775807 reasoning=9223372036854775807'::tokens AS max;

-- malformed literals: 22P02 (22003 when a count is beyond bigint)
SELECT q, pg_temp.err(format('SELECT %L::tokens', q))
FROM unnest(ARRAY['', ' , ', 'in=', 'in=-5', 'in=1.5', 'foo=1', 'in=1 in=2', 'in=1 input=2',
                  'out=1 reasoning=2', 'in 5', 'in=abc', 'in=1;out=2', '=5', 'in==5',
                  'in=9223372036854775808', 'in=99999999999999999999', 'in=1e3', 'cached=5']) q;

-- constructor and accessors
SELECT tokens(1200, 350), tokens(1, 2, 3, 4, 1, 5), tokens(input => 10, output => 20, cache_write_1h => 3);
SELECT input(t), output(t), cache_read(t), cache_write(t), cache_write_1h(t), reasoning(t), total(t)
FROM (SELECT 'in=1 out=20 cache_read=300 cache_write=4000 cache_write_1h=50000 reasoning=7'::tokens t) s;
SELECT pg_temp.err($$SELECT tokens(-1, 0)$$);
SELECT pg_temp.err($$SELECT tokens(0, 5, reasoning => 6)$$);
SELECT pg_temp.err($$SELECT total('in=9223372036854775807 out=1'::tokens)$$);

-- arithmetic and equality
SELECT 'in=1 out=2 cache_read=3'::tokens + 'in=10 out=20 reasoning=5'::tokens AS added;
SELECT 'in=1 out=2 reasoning=1'::tokens * 3 AS times3, 4 * 'in=1 out=2'::tokens AS times4,
       'in=1 out=2'::tokens * 0 AS times0;
SELECT pg_temp.err($$SELECT 'in=9223372036854775807 out=0'::tokens + 'in=1 out=0'::tokens$$);
SELECT pg_temp.err($$SELECT 'in=1 out=4611686018427387904'::tokens * 2$$);
SELECT pg_temp.err($$SELECT 'in=1 out=2'::tokens * -1$$);
SELECT 'in=1 out=2'::tokens = 'out=2 input=1'::tokens AS eq, 'in=1 out=2'::tokens <> 'in=1 out=3' AS ne;
SELECT tokens_hash('in=1 out=2') = tokens_hash('out=2 in=1') AS hash_equal,
       tokens_hash_extended('in=1 out=2', 7) <> tokens_hash_extended('in=1 out=2', 8) AS seeded;

-- sum, GROUP BY and DISTINCT (hash class)
CREATE TEMP TABLE calls (model text, t tokens);
INSERT INTO calls VALUES ('a', 'in=1 out=2'), ('a', 'in=10 out=20 reasoning=5'), ('b', 'in=100 out=200'),
                         ('b', 'in=100 out=200'), ('b', NULL);
SELECT model, sum(t) FROM calls GROUP BY model ORDER BY model;
SELECT sum(t) FROM calls WHERE false;
SELECT count(*) AS distinct_values FROM (SELECT DISTINCT t FROM calls) d;
SELECT t, count(*) FROM calls WHERE t IS NOT NULL GROUP BY t ORDER BY count(*) DESC, input(t);
SELECT model, t, sum(t) OVER (ORDER BY input(t) ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
FROM calls WHERE t IS NOT NULL ORDER BY input(t), model;
SELECT pg_temp.err($$SELECT sum(t) FROM (VALUES ('in=9223372036854775807 out=0'::tokens), ('in=1 out=0')) v(t)$$);
