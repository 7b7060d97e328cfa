-- rate: text forms, pricing tokens, discounts, errors
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

SELECT 'in=3 out=15 cache_read=0.30 cache_write=3.75 cache_write_1h=6 USD/1M'::rate;
SELECT 'in=0.15 out=0.6 USD'::rate, 'out=10 in=2.5'::rate AS default_currency,
       'input=1.25, output=10, cache_read=0.125 EUR/1M'::rate, 'in=0 out=0 usd/1m'::rate;
SELECT 'in=0.0000000001 out=0.0000000005 USD/1M'::rate AS rounded_to_nano;

SELECT q, pg_temp.err(format('SELECT %L::rate', q))
FROM unnest(ARRAY['', 'in=-1 out=2', 'in=x out=1', 'foo=1', 'in=1 in=2', 'in=1 out=2 XYZ/1M',
                  'in=1 out=2 USD/1M extra', 'in=1 out=2 USD/1K', 'USD/1M', 'in=1,5 out=2',
                  'in=99999999999 out=1']) q;

-- accessors
SELECT input_price(r), output_price(r), cache_read_price(r), cache_write_price(r), cache_write_1h_price(r)
FROM (SELECT 'in=3 out=15 cache_read=0.30 cache_write=3.75 cache_write_1h=6 USD/1M'::rate r) s;

-- tokens * rate: exact sum over the billed classes, rounded once to the nano
SELECT 'in=1000000 out=1000000 cache_read=1000000 cache_write=1000000 cache_write_1h=1000000'::tokens
       * 'in=3 out=15 cache_read=0.30 cache_write=3.75 cache_write_1h=6 USD/1M'::rate AS all_classes;
SELECT 'in=1200 out=350 cache_read=800 reasoning=100'::tokens * 'in=3 out=15 cache_read=0.30 USD/1M'::rate AS call_cost,
       'in=3 out=15 USD/1M'::rate * 'in=1 out=0'::tokens AS one_token;
SELECT 'in=1 out=0'::tokens * 'in=0.0005 out=0 USD/1M'::rate AS half_nano_rounds_up,
       'in=1 out=0'::tokens * 'in=0.000499999 out=0 USD/1M'::rate AS under_half_rounds_down,
       'in=3 out=0'::tokens * 'in=0.000333333 out=0 USD/1M'::rate AS rounded_once;
SELECT 'in=9223372036854775807 out=0'::tokens * 'in=0.001 out=0 USD/1M'::rate AS exactly_max;
SELECT pg_temp.err($$SELECT 'in=9223372036854775807 out=9223372036854775807'::tokens * 'in=9000000000 out=9000000000 USD/1M'::rate$$);

-- rate * numeric (discounts)
SELECT 'in=3 out=15 cache_read=0.30 USD/1M'::rate * 0.5 AS batch, 'in=1 out=3'::rate * 0.333333333333 AS third;
SELECT pg_temp.err($$SELECT 'in=3 out=15'::rate * -0.5$$);
SELECT pg_temp.err($$SELECT 'in=3 out=15'::rate * 'NaN'::numeric$$);
SELECT pg_temp.err($$SELECT 'in=9000000000 out=15'::rate * 2$$);
SELECT 'in=3 out=15 USD/1M'::rate = 'out=15 in=3.0 USD'::rate AS eq,
       'in=3 out=15 USD/1M'::rate <> 'in=3 out=15 EUR/1M'::rate AS ne;
