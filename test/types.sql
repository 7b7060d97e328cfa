-- Behaviour of the cost, tokens and rate types, with numeric as the oracle:
-- the spec defines every cost result as the numeric result rounded to 9
-- decimals, half away from zero.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SELECT plan(41);

SELECT setseed(0.42);
-- random amounts with 0..12 decimals over many magnitudes, and factors
CREATE TEMP TABLE gen AS
SELECT i,
       round(((random() - 0.5) * 10 ^ (random() * 10))::numeric, (random() * 12)::int) AS a,
       round(((random() - 0.5) * 10 ^ (random() * 10))::numeric, (random() * 12)::int) AS b,
       round(((random() - 0.5) * 10 ^ (random() * 6 - 3))::numeric, (random() * 12)::int) AS f,
       (random() * 2000000 - 1000000)::bigint AS k
FROM generate_series(1, 20000) i;
UPDATE gen SET f = 1.5 WHERE f = 0;
UPDATE gen SET k = 7 WHERE k = 0;

SELECT cmp_ok((SELECT count(*) FROM gen WHERE abs(round(a, 9) * f) < 9223372036 AND abs(round(a, 9) / f) < 9223372036),
              '>', 15000::bigint, 'most generated rows are within range for * and /');
SELECT is((SELECT count(*) FROM gen WHERE cost(a, 'USD') <> cost(round(a, 9), 'USD')), 0::bigint,
          'cost(numeric) rounds like round(numeric, 9)');
SELECT is((SELECT count(*) FROM gen WHERE amount(cost(a, 'USD')) <> round(a, 9)), 0::bigint,
          'amount() returns the rounded amount');
SELECT is((SELECT count(*) FROM gen WHERE (a::text || ' EUR')::cost <> cost(round(a, 9), 'EUR')), 0::bigint,
          'text input rounds like round(numeric, 9)');
SELECT is((SELECT count(*) FROM gen WHERE cost(a, 'USD')::text::cost <> cost(a, 'USD')), 0::bigint,
          'text output round-trips');
SELECT is((SELECT count(*) FROM gen
           WHERE abs(round(a, 9) + round(b, 9)) < 9223372036
             AND amount(cost(a, 'USD') + cost(b, 'USD')) <> round(a, 9) + round(b, 9)), 0::bigint,
          'cost + cost equals numeric addition');
SELECT is((SELECT count(*) FROM gen
           WHERE abs(round(a, 9) - round(b, 9)) < 9223372036
             AND amount(cost(a, 'USD') - cost(b, 'USD')) <> round(a, 9) - round(b, 9)), 0::bigint,
          'cost - cost equals numeric subtraction');
SELECT is((SELECT count(*) FROM gen WHERE amount(-cost(a, 'USD')) <> -round(a, 9)), 0::bigint,
          'unary minus equals numeric negation');
SELECT is((SELECT count(*) FROM gen
           WHERE abs(round(a, 9) * f) < 9223372036
             AND amount(cost(a, 'USD') * f) <> round(round(a, 9) * f, 9)), 0::bigint,
          'cost * numeric equals round(numeric product, 9)');
SELECT is((SELECT count(*) FROM gen
           WHERE abs(round(a, 9) * f) < 9223372036
             AND amount(f * cost(a, 'USD')) <> round(round(a, 9) * f, 9)), 0::bigint,
          'numeric * cost equals round(numeric product, 9)');
SELECT is((SELECT count(*) FROM gen
           WHERE abs(round(a, 9) * k) < 9223372036
             AND amount(cost(a, 'USD') * k) <> round(a, 9) * k), 0::bigint,
          'cost * bigint equals the numeric product');
SELECT is((SELECT count(*) FROM gen
           WHERE abs(round(a, 9) / f) < 9223372036
             AND amount(cost(a, 'USD') / f) <> round(amount(cost(a, 'USD')) / f, 9)), 0::bigint,
          'cost / numeric equals round(numeric quotient, 9)');
SELECT is((SELECT count(*) FROM gen
           WHERE amount(cost(a, 'USD') / k) <> round(amount(cost(a, 'USD')) / k, 9)), 0::bigint,
          'cost / bigint equals round(numeric quotient, 9)');
SELECT is((SELECT count(*) FROM gen
           WHERE amount(cost(a, 'USD') / ((k::int % 997) * 2 + 1)) <> round(amount(cost(a, 'USD')) / ((k::int % 997) * 2 + 1), 9)), 0::bigint,
          'cost / integer equals round(numeric quotient, 9)');
SELECT is((SELECT count(*) FROM gen
           WHERE round(b, 9) <> 0
             AND cost(a, 'USD') / cost(b, 'USD') <> amount(cost(a, 'USD')) / amount(cost(b, 'USD'))), 0::bigint,
          'cost / cost equals the numeric quotient');
SELECT is((SELECT count(*) FROM gen
           WHERE (cost(a, 'USD') < cost(b, 'USD')) <> (round(a, 9) < round(b, 9))
              OR (cost(a, 'USD') = cost(b, 'USD')) <> (round(a, 9) = round(b, 9))
              OR sign(cost_cmp(cost(a, 'USD'), cost(b, 'USD'))) <> sign(round(a, 9) - round(b, 9))), 0::bigint,
          'comparisons agree with numeric');
-- aggregates over a / 1000, whose sum stays within range
SELECT is((SELECT sum(cost(a / 1000, 'USD')) FROM gen), cost((SELECT sum(round(a / 1000, 9)) FROM gen), 'USD'),
          'sum(cost) equals sum(numeric)');
SELECT is((SELECT avg(cost(a / 1000, 'USD')) FROM gen), cost((SELECT round(sum(round(a / 1000, 9)) / count(*), 9) FROM gen), 'USD'),
          'avg(cost) equals round(avg(numeric), 9)');
SELECT is((SELECT min(cost(a, 'USD')) FROM gen), cost((SELECT min(round(a, 9)) FROM gen), 'USD'),
          'min(cost) equals min(numeric)');
SELECT is((SELECT max(cost(a, 'USD')) FROM gen), cost((SELECT max(round(a, 9)) FROM gen), 'USD'),
          'max(cost) equals max(numeric)');
SELECT is((SELECT count(*) FROM (
             SELECT sum(cost(a / 1000, 'USD')) OVER w AS c, sum(round(a / 1000, 9)) OVER w AS n
             FROM gen WINDOW w AS (ORDER BY i ROWS BETWEEN 5 PRECEDING AND CURRENT ROW)) s
           WHERE amount(c) <> n), 0::bigint,
          'moving-window sum(cost) equals the numeric window sum');

-- errors and their SQLSTATEs
SELECT throws_ok($$SELECT '12.5 XX'::cost$$, '22P02', NULL, 'unknown currency is 22P02');
SELECT throws_ok($$SELECT '9223372036.854775808 USD'::cost$$, '22003', NULL, 'one nano past the range is 22003');
SELECT lives_ok($$SELECT '9223372036.854775807 USD'::cost$$, 'the largest amount is accepted');
SELECT throws_ok($$SELECT '1 USD'::cost + '1 EUR'::cost$$, '22023',
                 'cannot add costs in different currencies: USD and EUR', 'mixed currencies name both codes');
SELECT throws_ok($$SELECT sum(c) FROM (VALUES ('1 USD'::cost), ('2 GBP')) v(c)$$, '22023',
                 'cannot aggregate costs in different currencies: USD and GBP', 'mixed-currency sum is 22023');
SELECT throws_ok($$SELECT '1 USD'::cost / 0$$, '22012', NULL, 'division by zero is 22012');
SELECT throws_ok($$SELECT '5000000000 USD'::cost * 2$$, '22003', NULL, 'multiplication overflow is 22003');
SELECT throws_ok($$SELECT 'in=1 in=2'::tokens$$, '22P02', NULL, 'repeated tokens field is 22P02');
SELECT throws_ok($$SELECT 'in=-1'::tokens$$, '22P02', NULL, 'negative count is 22P02');
SELECT throws_ok($$SELECT 'out=1 reasoning=2'::tokens$$, '22P02', NULL, 'reasoning > output is 22P02');
SELECT throws_ok($$SELECT 'in=99999999999999999999'::tokens$$, '22003', NULL, 'count beyond bigint is 22003');
SELECT throws_ok($$SELECT 'in=9223372036854775807 out=0'::tokens + 'in=1 out=0'$$, '22003', NULL,
                 'tokens sum beyond bigint is 22003');
SELECT throws_ok($$SELECT 'in=-3 out=1'::rate$$, '22P02', NULL, 'negative price is 22P02');

-- tokens * rate against numeric
SELECT is((SELECT count(*) FROM (
             SELECT tokens(i * 7919 % 1000003, i * 104729 % 99991, i * 31 % 500000, i % 1000, 0, i % 77) AS t,
                    cost(1 + i % 20, 'USD') AS pin
             FROM generate_series(1, 5000) i) s
           WHERE amount(t * format('in=%s out=%s cache_read=%s cache_write=%s cache_write_1h=%s USD/1M',
                                   amount(pin), amount(pin) * 5, amount(pin) / 10, amount(pin) * 1.25, amount(pin) * 2)::rate)
                 <> round((input(t) * amount(pin) + output(t) * amount(pin) * 5 + cache_read(t) * round(amount(pin) / 10, 9)
                          + cache_write(t) * amount(pin) * 1.25 + cache_write_1h(t) * amount(pin) * 2) / 1000000, 9)),
          0::bigint, 'tokens * rate equals the numeric sum of count x price / 1M, rounded once');
SELECT is('in=1 out=0'::tokens * 'in=0.0005 out=0 USD/1M'::rate, '0.000000001 USD'::cost,
          'half a nano rounds away from zero');
SELECT is(('in=3 out=15 USD/1M'::rate * 0.5)::text, 'in=1.5 out=7.5 USD/1M', 'rate * numeric scales every price');

-- GUC
SET LOCAL tokenledger.currency = 'GBP';
SELECT is('2'::cost, '2 GBP'::cost, 'bare amounts take tokenledger.currency');
SELECT is(currency(5::numeric::cost), 'GBP', 'numeric -> cost takes tokenledger.currency');
SELECT is(('in=1 out=1'::rate)::text, 'in=1 out=1 GBP/1M', 'rates without a currency take tokenledger.currency');
SELECT throws_ok($$SET tokenledger.currency = 'ABC'$$, '22023', NULL, 'an unknown currency setting is refused');

SELECT * FROM finish();
ROLLBACK;
