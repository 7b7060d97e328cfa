-- spend_daily, initiative_economics and spend_vs_outcome_growth on a
-- hand-worked ledger, read from the hourly rollups (UTC) and from the ledger
-- (Asia/Kolkata, whose days are not whole UTC hours); row-level security
-- through them; the rollups counted again from the ledger.
-- a database of its own: the other files' rows stay out of the figures
SELECT current_database() AS regress_db \gset
DROP DATABASE IF EXISTS tokenledger_economics;
CREATE DATABASE tokenledger_economics;
\c tokenledger_economics
SET client_min_messages = warning;
CREATE EXTENSION tokenledger;
RESET client_min_messages;
SET DateStyle = 'ISO, YMD';
SET search_path = public, tokenledger;
SET TimeZone = 'UTC';
SET tokenledger.currency = 'USD';

-- acme/m1: 1 USD per 1M input, 2 per 1M output; acme/m2: 10 EUR per 1M input
INSERT INTO prices (provider, model, effective_from, rate) VALUES
	('acme', 'm1', '2020-01-01', 'in=1 out=2 USD/1M'),
	('acme', 'm2', '2020-01-01', 'in=10 EUR/1M');
-- EUR is worth 1.1 USD, and 1.2 from 10:30 on 5 October (within an hour)
INSERT INTO fx_rates (currency, to_currency, rate, effective_from) VALUES
	('EUR', 'USD', 1.1, '2026-01-01 00:00+00'),
	('EUR', 'USD', 1.2, '2026-10-05 10:30+00');
INSERT INTO initiatives (name, team, owner) VALUES ('support', 't1', 'ana'), ('coding', 't2', 'raj');

INSERT INTO usage (occurred_at, provider, model, tokens, requests, cost, team, initiative, environment) VALUES
	-- September: 1.00 + 2.00 = 3.00 USD for support
	('2026-09-10 08:00+00', 'acme', 'm1', 'in=1000000 out=0', 1, NULL, 't1', 'support', 'prod'),
	('2026-09-10 09:00+00', 'acme', 'm1', 'in=0 out=1000000', 1, NULL, 't1', 'support', 'prod'),
	-- 10 EUR at 1.1 = 11.00 USD, then 10 EUR at 1.2 = 12.00 USD, in one UTC hour
	('2026-10-05 10:15+00', 'acme', 'm2', 'in=1000000 out=0', 1, NULL, 't1', 'support', 'prod'),
	('2026-10-05 10:45+00', 'acme', 'm2', 'in=1000000 out=0', 1, NULL, 't1', 'support', 'prod'),
	-- 5 GBP, which no rate converts: rows of its own, in GBP
	('2026-10-05 11:00+00', 'acme', 'm1', 'in=10 out=0', 1, '5 GBP', 't2', 'coding', 'prod'),
	-- unpriced: 3 calls, 100 / 10 tokens, no spend
	('2026-10-06 12:00+00', 'acme', 'mystery', 'in=100 out=10', 3, NULL, 't2', 'coding', 'prod'),
	-- shadow spend: 2,000,000 input tokens of m1 = 2.00 USD, no initiative, no team
	('2026-10-06 13:00+00', 'acme', 'm1', 'in=2000000 out=0', 1, NULL, NULL, NULL, 'prod'),
	-- 1.00 USD at 20:00 UTC: 5 October in UTC, 6 October in Kolkata (01:30)
	('2026-10-05 20:00+00', 'acme', 'm1', 'in=1000000 out=0', 1, NULL, 't1', 'support', 'prod');
-- a credit of 1 EUR on the 10:45 call: at 10:45, so at 1.2 = -1.20 USD
SELECT adjust(id, '-1 EUR', 'credit') > 0 AS adjusted FROM usage WHERE occurred_at = '2026-10-05 10:45+00';
-- a rolled-back recording leaves nothing
BEGIN;
INSERT INTO usage (occurred_at, provider, model, tokens, team, initiative) VALUES
	('2026-10-05 10:50+00', 'acme', 'm2', 'in=5000000 out=0', 't1', 'support');
ROLLBACK;

INSERT INTO outcomes (occurred_at, initiative, metric, quantity, value) VALUES
	('2026-09-20 12:00+00', 'support', 'ticket', 2, NULL),          -- no value
	('2026-10-07 12:00+00', 'support', 'ticket', 5, '10 EUR'),      -- 10 EUR at 1.2 = 12.00 USD
	('2026-10-08 12:00+00', 'coding', 'pr', 1, '3 GBP');            -- no rate: GBP

-- 2026-09-10 support m1: 2 calls, 1M in, 1M out, 3.00
-- 2026-10-05 support m1: 1 call, 1.00
-- 2026-10-05 support m2: 2 calls, 2M in, 11.00 + 12.00 - 1.20 = 21.80
-- 2026-10-05 coding m1 GBP: 1 call, 5.00 GBP
-- 2026-10-06 coding mystery: 3 calls, all unpriced, 0.00
-- 2026-10-06 (shadow) m1: 1 call, 2.00
SELECT day, team, initiative, model, environment, currency, requests, input_tokens, output_tokens, spend, unpriced_requests
FROM spend_daily ORDER BY day, initiative NULLS LAST, model, currency;

-- September, support: 3.00 over 2 outcomes = 1.50 each; value 0, so roi -1; the whole month's spend
-- October, support (USD): 21.80 + 1.00 = 22.80 over 5 outcomes = 4.56; value 12.00:
--   roi (12.00 - 22.80) / 22.80 = -0.4736842105...; share 22.80 / (22.80 + 0 + 2.00) = 0.9193548387...
-- October, coding (USD): 3 unpriced calls, no spend: no cost per outcome, no roi, share 0
-- October, coding (GBP): 5.00 GBP over 1 outcome worth 3.00 GBP: roi -0.4, the whole GBP spend
-- October, no initiative: 2.00, share 2.00 / 24.80 = 0.0806451612...
SELECT month, initiative, team, owner, status, requests, spend, outcomes, outcome_value,
	   cost_per_outcome, round(roi, 10) AS roi, round(spend_share, 10) AS spend_share, currency
FROM initiative_economics ORDER BY month, initiative NULLS LAST, currency;

-- support: 3.00 -> 22.80 is 7.6 times; 2 -> 5 outcomes is 2.5 times;
-- cost per outcome 1.50 -> 4.56 is 3.04 times.  No previous month: NULL
SELECT month, initiative, spend, outcomes, spend_growth, outcome_growth, cost_per_outcome,
	   cost_per_outcome_growth, currency
FROM spend_vs_outcome_growth ORDER BY month, initiative, currency;

-- in Kolkata the days are read from the ledger: the 20:00 UTC call is on 6 October
SET TimeZone = 'Asia/Kolkata';
SELECT whole_hour_zone();
SELECT day, initiative, model, currency, requests, spend
FROM spend_daily ORDER BY day, initiative NULLS LAST, model, currency;
SELECT month, initiative, spend, outcomes, currency FROM initiative_economics
ORDER BY month, initiative NULLS LAST, currency;
SET TimeZone = 'UTC';

-- in EUR: USD spend converts through the inverse of the EUR rate, GBP stays
-- apart.  September support: 3.00 USD / 1.1 = 2.727272727...
SET tokenledger.currency = 'EUR';
SELECT month, initiative, spend, outcome_value, currency FROM initiative_economics
ORDER BY month, initiative NULLS LAST, currency;
SET tokenledger.currency = 'USD';

-- a reader of team t1 sees t1's spend and outcomes only, rollups included;
-- the share is of the spend it sees
CREATE ROLE economics_t1 IN ROLE tokenledger_reader;
INSERT INTO team_members VALUES ('economics_t1', 't1');
SET ROLE economics_t1;
SELECT day, team, initiative, model, spend FROM spend_daily ORDER BY day, model;
SELECT month, initiative, spend, outcomes, round(spend_share, 4) AS spend_share FROM initiative_economics
ORDER BY month, initiative;
SELECT count(*) AS rollup_rows_seen FROM usage_rollup WHERE team IS DISTINCT FROM 't1';
RESET ROLE;

-- counted again from the ledger, the rollups give the same figures
CREATE TEMP TABLE before_recount AS SELECT * FROM spend_daily;
CREATE TEMP TABLE economics_before AS SELECT * FROM initiative_economics;
SELECT rollup_recount() > 0 AS recounted;
SELECT (SELECT count(*) FROM ((SELECT * FROM spend_daily EXCEPT ALL SELECT * FROM before_recount)
							 UNION ALL
							 (SELECT * FROM before_recount EXCEPT ALL SELECT * FROM spend_daily)) d) AS daily_differences,
	   (SELECT count(*) FROM ((SELECT * FROM initiative_economics EXCEPT ALL SELECT * FROM economics_before)
							 UNION ALL
							 (SELECT * FROM economics_before EXCEPT ALL SELECT * FROM initiative_economics)) d) AS economics_differences;
SELECT DISTINCT slot FROM usage_rollup;

-- a rate deleted: the 10:45 call and its credit go back to 1.1
-- (21.80 becomes 11.00 + 11.00 - 1.10 = 20.90)
DELETE FROM fx_rates WHERE effective_from = '2026-10-05 10:30+00';
SELECT day, initiative, model, spend FROM spend_daily WHERE model = 'm2';

-- rollup_recount counts the hours that the times given fall in: 10:30
-- is the hour from 10:00, counted once (2 calls of m2 that day, 20.90)
SELECT rollup_recount(ARRAY[timestamptz '2026-10-05 10:30+00']) > 0 AS recounted;
SELECT day, model, requests, spend FROM spend_daily WHERE model = 'm2';
-- a call at either end of time is refused (22008): no month holds it, and a
-- day of it would break the reports' arithmetic; nothing of it is rolled up
INSERT INTO usage (occurred_at, provider, model, tokens, team) VALUES
	('infinity', 'acme', 'm1', 'in=1000000 out=0', 't9'), ('-infinity', 'acme', 'm1', 'in=1000000 out=0', 't9');
SELECT day, spend FROM spend_daily WHERE team = 't9' ORDER BY day;
SELECT stretch FROM usage_rollup WHERE team = 't9' ORDER BY stretch;

-- the views have no column of a tokenledger type, and a comment on every column
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relname IN ('spend_daily', 'initiative_economics', 'spend_vs_outcome_growth')
  AND c.relnamespace = 'tokenledger'::regnamespace AND a.attnum > 0
  AND (col_description(c.oid, a.attnum) IS NULL
	   OR (SELECT t.typnamespace FROM pg_type t WHERE t.oid = a.atttypid) = 'tokenledger'::regnamespace);
\c :regress_db
DROP DATABASE tokenledger_economics;
DROP ROLE economics_t1;
