-- model_tiers and model_rightsizing, spend_anomalies, and the forecast of
-- budget_status, on hand-worked data (each figure derived in a comment)
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\set VERBOSITY terse

-- ===========================================================================
-- model_tiers: shipped rows, corrections, restores
-- ===========================================================================

-- every shipped row names a premium model and a cheaper one of the shipped catalog
SELECT t.provider, t.model, t.cheaper_model,
	   ps.input_price AS price_in, cs.input_price AS cheaper_in
FROM model_tiers t
CROSS JOIN LATERAL (SELECT amount(input_price(p.rate)) AS input_price FROM prices p
					WHERE p.shipped AND p.provider = t.provider AND p.model = t.model
					  AND p.service_tier = 'standard' AND p.min_input_tokens = 0) ps
CROSS JOIN LATERAL (SELECT amount(input_price(p.rate)) AS input_price FROM prices p
					WHERE p.shipped AND p.provider = t.cheaper_provider AND p.model = t.cheaper_model
					  AND p.service_tier = 'standard' AND p.min_input_tokens = 0) cs
WHERE t.shipped
ORDER BY t.provider, t.model;
SELECT count(*) AS shipped_rows, count(*) FILTER (WHERE provider = cheaper_provider) AS same_provider
FROM model_tiers WHERE shipped;

-- a cheaper model is named whole (provider and model) or not at all, and is another model
INSERT INTO model_tiers (provider, model, cheaper_provider) VALUES ('acme', 'x', 'acme');
INSERT INTO model_tiers (provider, model, cheaper_provider, cheaper_model) VALUES ('acme', 'x', 'acme', 'x');

-- an admin's correction of a shipped row makes it the user's (pg_dump keeps it)
CREATE ROLE regress_views_tiers_admin;
GRANT tokenledger_admin TO regress_views_tiers_admin;
SET ROLE regress_views_tiers_admin;
UPDATE model_tiers SET cheaper_model = 'gpt-4.1-nano', note = 'ours' WHERE provider = 'openai' AND model = 'gpt-4.1';
SELECT provider, model, cheaper_model, note, shipped FROM model_tiers WHERE model = 'gpt-4.1';
-- shipped rows are not deleted, even by an admin (a restore would bring them back)
DELETE FROM model_tiers WHERE provider = 'openai' AND model = 'gpt-4o';
-- the row the admin now owns may go
DELETE FROM model_tiers WHERE provider = 'openai' AND model = 'gpt-4.1';
-- a row of the admin's own, added and removed
INSERT INTO model_tiers (provider, model, cheaper_provider, cheaper_model) VALUES ('openai', 'gpt-4.1-mini', 'openai', 'gpt-4.1-nano');
SELECT provider, model, cheaper_model, shipped FROM model_tiers WHERE model = 'gpt-4.1-mini';
DELETE FROM model_tiers WHERE model = 'gpt-4.1-mini';
-- a row of its own for a shipped model is refused: the shipped row is corrected instead
INSERT INTO model_tiers (provider, model, cheaper_provider, cheaper_model) VALUES ('openai', 'o1', 'openai', 'o4-mini');
RESET ROLE;
-- restoring a dump (as the tables' owner): the user's row replaces the
-- shipped row of the same model
INSERT INTO model_tiers (provider, model, cheaper_provider, cheaper_model, note)
VALUES ('openai', 'gpt-4o', 'openai', 'gpt-4.1-nano', 'restored');
SELECT provider, model, cheaper_model, note, shipped FROM model_tiers WHERE model IN ('gpt-4o', 'o1') ORDER BY model;
-- the owner may delete a shipped row (a restore replaces one that way)
DELETE FROM model_tiers WHERE provider = 'openai' AND model = 'o3' AND shipped;
SELECT count(*) AS o3_rows FROM model_tiers WHERE model = 'o3';

-- ===========================================================================
-- model_rightsizing
-- ===========================================================================

-- a made-up provider with easy prices (USD per 1M tokens):
--   big   standard in=10 out=20, batch in=5 out=10
--   small standard in=1 out=2 until 2026-03-01, then in=2 out=4 (no batch tier)
--   huge  standard in=100 out=100; tiny standard in=1 out=1 only from 2026-02-15
INSERT INTO prices (provider, model, service_tier, effective_from, rate) VALUES
	('acme', 'big', 'standard', '2020-01-01', 'in=10 out=20 USD/1M'),
	('acme', 'big', 'batch', '2020-01-01', 'in=5 out=10 USD/1M'),
	('acme', 'small', 'standard', '2020-01-01', 'in=1 out=2 USD/1M'),
	('acme', 'small', 'standard', '2026-03-01', 'in=2 out=4 USD/1M'),
	('acme', 'huge', 'standard', '2020-01-01', 'in=100 out=100 USD/1M'),
	('acme', 'tiny', 'standard', '2026-02-15', 'in=1 out=1 USD/1M');
INSERT INTO model_tiers (provider, model, cheaper_provider, cheaper_model) VALUES
	('acme', 'big', 'acme', 'small'), ('acme', 'huge', 'acme', 'tiny');
INSERT INTO fx_rates (currency, to_currency, rate, effective_from) VALUES ('GBP', 'USD', 1.25, '2020-01-01');

INSERT INTO usage (request_id, occurred_at, provider, model, service_tier, tokens, requests, cost, initiative) VALUES
	-- c1 short (prompt 500 < 1000, output 200 < 300): 500x10/1M + 200x20/1M = 0.009;
	--    on small 500x1/1M + 200x2/1M = 0.0009; saving 0.0081
	('c1', '2026-01-10 12:00+00', 'acme', 'big', 'standard', 'in=500 out=200', 1, NULL, 'chat'),
	-- c2: 100000x10/1M + 10000x20/1M = 1.2; on small 0.1 + 0.02 = 0.12; saving 1.08
	('c2', '2026-01-10 12:00+00', 'acme', 'big', 'standard', 'in=100000 out=10000', 1, NULL, 'chat'),
	-- c3, a dated name of big, batch tier, 2 requests: 2000x5/1M + 500x10/1M = 0.015;
	--    small has no batch tier: standard 2000x1/1M + 500x2/1M = 0.003; saving 0.012;
	--    per request an output of 250 but a prompt of 1000: not short
	('c3', '2026-01-10 12:00+00', 'acme', 'big-2026-01-05', 'batch', 'in=2000 out=500', 2, NULL, 'chat'),
	-- c4, a given cost of 3 GBP = 3.75 USD at 1.25; on small 1000000x1/1M = 1; saving 2.75
	('c4', '2026-01-10 12:00+00', 'acme', 'big', 'standard', 'in=1000000 out=0', 1, '3 GBP', 'chat'),
	-- c5, 4 CHF that no rate converts: a CHF row; the USD price of small does
	--    not convert to CHF either, so the call counts at what it cost (saving 0);
	--    prompt 999 and output 299: short
	('c5', '2026-01-10 12:00+00', 'acme', 'big', 'standard', 'in=999 out=299', 1, '4 CHF', 'chat'),
	-- c6, output 300 is not short: 999x10/1M + 300x20/1M = 0.01599;
	--    on small 0.000999 + 0.0006 = 0.001599; saving 0.014391
	('c6', '2026-01-10 12:00+00', 'acme', 'big', 'standard', 'in=999 out=300', 1, NULL, 'chat'),
	-- c8, before big had a price: unpriced, left out
	('c8', '2019-06-01 12:00+00', 'acme', 'big', 'standard', 'in=999 out=300', 1, NULL, 'chat'),
	-- c9, small itself has no cheaper tier: left out
	('c9', '2026-01-10 12:00+00', 'acme', 'small', 'standard', 'in=1000 out=1000', 1, NULL, 'chat'),
	-- c10, no initiative: 1000000x10/1M = 10; on small 1; saving 9
	('c10', '2026-01-10 12:00+00', 'acme', 'big', 'standard', 'in=1000000 out=0', 1, NULL, NULL),
	-- c11, March, at small's new price: 1000x10/1M + 1000x20/1M = 0.03;
	--    on small 1000x2/1M + 1000x4/1M = 0.006; saving 0.024
	('c11', '2026-03-05 12:00+00', 'acme', 'big', 'standard', 'in=1000 out=1000', 1, NULL, 'chat'),
	-- c12, huge before tiny has a price: 10000x100/1M = 1, counted at what it cost
	('c12', '2026-02-10 12:00+00', 'acme', 'huge', 'standard', 'in=10000 out=0', 1, NULL, 'chat'),
	-- c13, huge after: 1; on tiny 10000x1/1M = 0.01; saving 0.99
	('c13', '2026-02-20 12:00+00', 'acme', 'huge', 'standard', 'in=10000 out=0', 1, NULL, 'chat');
-- c7: a credit of -0.2 USD on c2 adds to spend (and to saving), not to spend_on_cheaper
SELECT adjust(id, '-0.2 USD', 'credit') IS NOT NULL AS adjusted FROM usage WHERE request_id = 'c2';

-- January, chat, big, USD: c1, c2, c3, c4, c6 and the credit
--   requests 1 + 1 + 2 + 1 + 1 = 6
--   spend 0.009 + 1.2 + 0.015 + 3.75 + 0.01599 - 0.2 = 4.78999
--   spend_on_cheaper 0.0009 + 0.12 + 0.003 + 1 + 0.001599 = 1.125499
--   saving 4.78999 - 1.125499 = 3.664491; short: c1 (1 request, saving 0.0081)
-- January, chat, big, CHF: c5: 1 request, 4, 4, saving 0; short 1, saving 0
-- January, no initiative, big, USD: c10: 1, 10, 1, 9; no short call
-- February, chat, huge, USD: c12 + c13: 2 requests, spend 2, on tiny 1 + 0.01 = 1.01, saving 0.99
-- March, chat, big, USD: c11: 1, 0.03, 0.006, 0.024
SELECT * FROM model_rightsizing ORDER BY month, initiative, model, currency;
-- in another report currency: the USD rows convert at 0.8 EUR per USD; no
-- rate converts GBP to EUR (rates are not chained), so c4 goes to a GBP row,
-- where small's USD price converts at the inverse of GBP -> USD, 1 / 1.25 = 0.8
INSERT INTO fx_rates (currency, to_currency, rate, effective_from) VALUES ('USD', 'EUR', 0.8, '2020-01-01');
SET tokenledger.currency = 'EUR';
-- January, chat, big, EUR: c1, c2, c3, c6 and the credit, x 0.8
--   spend (0.009 + 1.2 + 0.015 + 0.01599 - 0.2) x 0.8 = 1.03999 x 0.8 = 0.831992
--   on small (0.0009 + 0.12 + 0.003 + 0.001599) x 0.8 = 0.125499 x 0.8 = 0.1003992
--   saving 0.7315928; short c1: 0.0081 x 0.8 = 0.00648
-- January, chat, big, GBP: c4: 1 request, spend 3, on small 1 x 0.8 = 0.8, saving 2.2
SELECT month, initiative, model, requests, spend, spend_on_cheaper, saving, short_requests, saving_on_short, currency
FROM model_rightsizing WHERE month = '2026-01-01' AND initiative = 'chat' ORDER BY currency;
RESET tokenledger.currency;
-- a shipped suggestion switched off (cheaper model NULL): huge's calls leave the view
UPDATE model_tiers SET cheaper_provider = NULL, cheaper_model = NULL WHERE model = 'huge';
SELECT DISTINCT model FROM model_rightsizing ORDER BY model;

-- ===========================================================================
-- spend_anomalies
-- ===========================================================================

-- daily spend per initiative (given costs in USD, at noon UTC), each
-- initiative on its own api_key unless said otherwise
CREATE TEMP TABLE days (initiative text, api_key text, day date, spend numeric);
INSERT INTO days VALUES
	-- steady: Jan 1-8 10, 12, 8, 10, 11, 9, 10, 10; Jan 9 100 (10 on its key, 90 on a new key)
	('steady', 'k-steady', '2025-01-01', 10), ('steady', 'k-steady', '2025-01-02', 12),
	('steady', 'k-steady', '2025-01-03', 8), ('steady', 'k-steady', '2025-01-04', 10),
	('steady', 'k-steady', '2025-01-05', 11), ('steady', 'k-steady', '2025-01-06', 9),
	('steady', 'k-steady', '2025-01-07', 10), ('steady', 'k-steady', '2025-01-08', 10),
	('steady', 'k-steady', '2025-01-09', 10), ('steady', 'k-new', '2025-01-09', 90),
	-- young: only six days before its seventh
	('young', 'k-young', '2025-01-01', 1), ('young', 'k-young', '2025-01-02', 1),
	('young', 'k-young', '2025-01-03', 1), ('young', 'k-young', '2025-01-04', 1),
	('young', 'k-young', '2025-01-05', 1), ('young', 'k-young', '2025-01-06', 1),
	('young', 'k-young', '2025-01-07', 500),
	-- gappy: Jan 1 4, Jan 2 6, Jan 4 4, Jan 6 6, Jan 8 5 (no spend Jan 3, 5, 7); Jan 9 8
	('gappy', 'k-gappy', '2025-01-01', 4), ('gappy', 'k-gappy', '2025-01-02', 6),
	('gappy', 'k-gappy', '2025-01-04', 4), ('gappy', 'k-gappy', '2025-01-06', 6),
	('gappy', 'k-gappy', '2025-01-08', 5), ('gappy', 'k-gappy', '2025-01-09', 8),
	-- late: first spend Jan 20, 3 a day for 7 days, then 30
	('late', 'k-late', '2025-01-20', 3), ('late', 'k-late', '2025-01-21', 3),
	('late', 'k-late', '2025-01-22', 3), ('late', 'k-late', '2025-01-23', 3),
	('late', 'k-late', '2025-01-24', 3), ('late', 'k-late', '2025-01-25', 3),
	('late', 'k-late', '2025-01-26', 3), ('late', 'k-late', '2025-01-27', 30),
	-- pennies: 0.1 a day for 7 days, then 0.5 (over twice the baseline, not over baseline + 1)
	('pennies', 'k-pennies', '2025-01-01', 0.1), ('pennies', 'k-pennies', '2025-01-02', 0.1),
	('pennies', 'k-pennies', '2025-01-03', 0.1), ('pennies', 'k-pennies', '2025-01-04', 0.1),
	('pennies', 'k-pennies', '2025-01-05', 0.1), ('pennies', 'k-pennies', '2025-01-06', 0.1),
	('pennies', 'k-pennies', '2025-01-07', 0.1), ('pennies', 'k-pennies', '2025-01-08', 0.5);
-- flat: 2 a day Jan 1-10, then 4.5 on Jan 11 and 4 on Jan 12
INSERT INTO days SELECT 'flat', 'k-flat', d, 2 FROM generate_series(date '2025-01-01', date '2025-01-10', interval '1 day') d;
INSERT INTO days VALUES ('flat', 'k-flat', '2025-01-11', 4.5), ('flat', 'k-flat', '2025-01-12', 4);
-- edge: Jan 1 0.5, Jan 2-15 1, Jan 16-28 1.8, Jan 29 4, Jan 30 4
INSERT INTO days SELECT 'edge', 'k-edge', d,
	CASE WHEN d = '2025-01-01' THEN 0.5 WHEN d <= '2025-01-15' THEN 1 WHEN d <= '2025-01-28' THEN 1.8 ELSE 4 END
FROM generate_series(date '2025-01-01', date '2025-01-30', interval '1 day') d;
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative, api_key)
SELECT d.day + time '12:00', 'acme', 'small', 'in=1 out=1', cost(d.spend, 'USD'), d.initiative, d.api_key FROM days d;
-- young's and late's spend also has an unpriced call now and then (requests, no spend)
INSERT INTO usage (occurred_at, provider, model, tokens, initiative, api_key) VALUES
	('2025-01-07 13:00+00', 'acme', 'nothing', 'in=1 out=1', 'young', 'k-young'),
	('2025-01-27 13:00+00', 'acme', 'nothing', 'in=1 out=1', 'late', 'k-late'),
	('2025-01-19 13:00+00', 'acme', 'nothing', 'in=1 out=1', 'late', 'k-late');

-- at the default threshold (5):
-- steady, Jan 9: the 8 days before sorted 8 9 10 10 10 10 11 12: baseline (10 + 10) / 2 = 10;
--   deviations 0 0 0 0 1 1 2 2: mad (0 + 1) / 2 = 0.5; score 90 / (1.4826 x 0.5) = 121.4083
--   (its keys: k-steady spent 10 that day, its baseline; k-new has no history)
-- young, Jan 7: 6 days of history, fewer than 7: no spike (its unpriced call of Jan 7 is a request)
-- gappy, Jan 9: the 8 days before, those without spend as 0: 0 0 0 4 4 5 6 6: baseline 4;
--   deviations 0 0 1 2 2 4 4 4: mad 2; score 4 / 2.9652 = 1.3490: no spike at 5
-- late, Jan 27: the 7 days since its first spend (the unpriced call of Jan 19 is no spend):
--   baseline 3, mad 0: 30 > 2 x 3 and 30 > 3 + 1: a spike, no score; 2 requests
-- pennies, Jan 8: baseline 0.1, mad 0: 0.5 > 0.2 but not > 1.1: no spike
-- flat, Jan 11: baseline 2, mad 0: 4.5 > 4 and > 3: a spike; Jan 12 (ten 2s and 4.5 before:
--   baseline 2, mad 0): 4 is not over 2 x 2: no spike
-- edge, Jan 29: 28 days before: 0.5, fourteen 1s, thirteen 1.8s: baseline (1 + 1) / 2 = 1;
--   deviations fourteen 0s, 0.5, thirteen 0.8s: mad (0 + 0.5) / 2 = 0.25;
--   score 3 / (1.4826 x 0.25) = 8.0939
-- edge, Jan 30: 28 days before (Jan 1 no longer): fourteen 1s, thirteen 1.8s, 4:
--   baseline (1 + 1.8) / 2 = 1.4; deviations twenty-seven 0.4s, 2.6: mad 0.4;
--   score 2.6 / 0.59304 = 4.3842: no spike at 5
SELECT * FROM spend_anomalies ORDER BY kind, scope, scope_value, period_start;
-- the threshold compares the exact score: gappy's is 4 / 2.9652 = 1.348981...,
-- under 1.349 (edge's Jan 30, 4.3842, is over it)
SET tokenledger.anomaly_threshold = 1.349;
SELECT scope, scope_value, period_start::date AS day, baseline, mad, score FROM spend_anomalies
WHERE scope = 'initiative' AND score IS NOT NULL ORDER BY scope_value, period_start;
SET tokenledger.anomaly_threshold = 1.3489;
-- now gappy's Jan 9 too (no other day with a mad above 0 comes near:
-- gappy's Jan 8 scores 1 / 2.9652 = 0.3373, edge's Jan 16-28 have mad 0)
SELECT scope, scope_value, period_start::date AS day, baseline, mad, score FROM spend_anomalies
WHERE scope = 'initiative' AND score IS NOT NULL ORDER BY scope_value, period_start;
RESET tokenledger.anomaly_threshold;
SHOW tokenledger.anomaly_threshold;
SET tokenledger.anomaly_threshold = -1;
SET tokenledger.anomaly_threshold = 'high';

-- loops: calls of one run repeating one prompt_hash within one clock hour
INSERT INTO usage (occurred_at, provider, model, tokens, requests, cost, run_id, prompt_hash) VALUES
	-- r1/p1: three calls in the hour 10:00-11:00, one of them 0.5 CHF that no rate converts
	('2025-03-01 10:05+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r1', 'p1'),
	('2025-03-01 10:20+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r1', 'p1'),
	('2025-03-01 10:59:59+00', 'acme', 'small', 'in=1 out=1', 1, '0.5 CHF', 'r1', 'p1'),
	-- r1/p2: twice in that hour
	('2025-03-01 10:10+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r1', 'p2'),
	('2025-03-01 10:11+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r1', 'p2'),
	-- r2/p1: three calls across two clock hours (one at 10, two at 11)
	('2025-03-01 10:59+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r2', 'p1'),
	('2025-03-01 11:00+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r2', 'p1'),
	('2025-03-01 11:01+00', 'acme', 'small', 'in=1 out=1', 1, '0.1 USD', 'r2', 'p1'),
	-- r3/p3: one unpriced row standing for three calls
	('2025-03-01 12:30+00', 'acme', 'nothing', 'in=3 out=3', 3, NULL, 'r3', 'p3');
-- at the default (200) none
SELECT count(*) AS loops FROM spend_anomalies WHERE kind = 'loop';
SET tokenledger.loop_threshold = 3;
-- r1/p1 10:00: 3 calls, exactly the threshold: a USD row (2 calls, 0.2) and a
-- CHF row (1 call, 0.5); r3/p3 12:00: 3 calls, no spend; r1/p2 (2) and r2/p1
-- (1 and 2 in their hours) stay below
SELECT kind, scope, scope_value, period_start, period_end, requests, spend, baseline, mad, score, prompt_hash, currency
FROM spend_anomalies WHERE kind = 'loop' ORDER BY scope_value, period_start, currency;
SET tokenledger.loop_threshold = 2;
-- r1/p2 (2) and r2/p1 at 11:00 (2) as well
SELECT scope_value, period_start, requests, prompt_hash, currency
FROM spend_anomalies WHERE kind = 'loop' ORDER BY scope_value, period_start, prompt_hash, currency;
SET tokenledger.loop_threshold = 0;
RESET tokenledger.loop_threshold;

-- ===========================================================================
-- budget_status: the forecast
-- ===========================================================================

-- now() is the transaction's time: the data is placed relative to it
INSERT INTO fx_rates (currency, to_currency, rate, effective_from) VALUES ('EUR', 'USD', 1.5, '2020-01-01');
INSERT INTO budgets (name, scope, scope_value, period, amount, active) VALUES
	('fc-total', 'initiative', 'fc-total', 'total', '20 USD', true),
	('fc-month', 'initiative', 'fc-month', 'month', '100 USD', true),
	('fc-over', 'initiative', 'fc-over', 'total', '5 USD', true),
	('fc-day', 'initiative', 'fc-day', 'day', '5 USD', true),
	('fc-idle', 'initiative', 'fc-idle', 'total', '5 USD', true),
	('fc-far', 'initiative', 'fc-far', 'total', '9000000000 USD', true),
	('fc-ages', 'initiative', 'fc-ages', 'total', '100001 USD', true),
	('fc-late', 'initiative', 'fc-late', 'total', '1000001 USD', true),
	('fc-off', 'initiative', 'fc-total', 'total', '20 USD', false);
BEGIN;
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative) VALUES
	-- fc-total: 3 USD 10 days ago (before the last 7 days), 4 USD 6 days ago,
	-- 2 EUR = 3 USD an hour ago, and 5 CHF that no rate converts
	(now() - interval '10 days', 'acme', 'small', 'in=1 out=1', '3 USD', 'fc-total'),
	(now() - interval '6 days', 'acme', 'small', 'in=1 out=1', '4 USD', 'fc-total'),
	(now() - interval '1 hour', 'acme', 'small', 'in=1 out=1', '2 EUR', 'fc-total'),
	(now() - interval '2 days', 'acme', 'small', 'in=1 out=1', '5 CHF', 'fc-total'),
	-- fc-month: 7 USD now, and 50 USD a second before the month began
	(now(), 'acme', 'small', 'in=1 out=1', '7 USD', 'fc-month'),
	(date_trunc('month', now()) - interval '1 second', 'acme', 'small', 'in=1 out=1', '50 USD', 'fc-month'),
	-- fc-over: 6 USD two days ago, over its 5
	(now() - interval '2 days', 'acme', 'small', 'in=1 out=1', '6 USD', 'fc-over'),
	-- fc-idle: 4 USD 8 days ago, nothing since
	(now() - interval '8 days', 'acme', 'small', 'in=1 out=1', '4 USD', 'fc-idle'),
	-- fc-far: one nano in the last 7 days, against 9e9 USD
	(now() - interval '1 day', 'acme', 'small', 'in=1 out=1', '0.000000001 USD', 'fc-far'),
	-- fc-ages and fc-late: 1 USD an hour ago
	(now() - interval '1 hour', 'acme', 'small', 'in=1 out=1', '1 USD', 'fc-ages'),
	(now() - interval '1 hour', 'acme', 'small', 'in=1 out=1', '1 USD', 'fc-late');
-- fc-total, by hand: spent 3 + 4 + 3 = 10 USD (the CHF apart); the last 7 days
--   (604800 s) spent 4 + 3 = 7: a rate of 1 USD a day; no end, so no
--   projected_spend; the 10 USD left last 10 x 604800 / 7 = 864000 s = 10 days
-- fc-over: spent 6 >= 5: exhausted now
-- fc-day: nothing spent, rate 0: projected 0, no exhaustion
-- fc-idle: no spend in the last 7 days: no exhaustion (and no end)
-- fc-far: 9e9 x 604800 / 1e-9 s is past the last timestamptz: none
-- fc-ages: the 100000 USD left last 100000 x 604800 / 1 s = 700000 days
--   (about 1917 years: before the end of year 9999)
-- fc-late: the 1000000 USD left last 7000000 days (about 19165 years: after
--   year 9999, which clients cannot read): none
-- fc-off: inactive: no forecast
-- period_start and period_end: NULL for a total period (it has no bounds), set for a day
SELECT name, period, period_start IS NULL AS no_start, period_end IS NULL AS no_end,
	   spent, amount, status, unconverted, projected_spend,
	   projected_exhaustion - now() AS exhausted_in
FROM budget_status WHERE name <> 'fc-month' ORDER BY name;
-- fc-month: spent 7; the rate is 7 over the time since the later of the
-- month's start and 7 days ago; the forecast as computed from now()
SELECT b.name, b.spent,
	   b.projected_spend = round(7 + 7 * extract(epoch FROM b.period_end - now())
									   / extract(epoch FROM now() - greatest(b.period_start, now() - interval '7 days')), 9)
		   AS projected_spend_ok,
	   b.projected_spend >= b.spent AS not_below_spent,
	   b.projected_exhaustion IS NOT DISTINCT FROM (
		   SELECT now() + make_interval(secs => s::float8) FROM (
			   SELECT 93 * extract(epoch FROM now() - greatest(b.period_start, now() - interval '7 days')) / 7 AS s) x
		   WHERE now() + make_interval(secs => s::float8) < b.period_end) AS exhaustion_ok
FROM budget_status b WHERE b.name = 'fc-month';
COMMIT;

-- the columns of budget_status: the 1.0 ones in their order, then the forecast
SELECT attnum, attname, format_type(atttypid, atttypmod) AS type
FROM pg_attribute WHERE attrelid = 'budget_status'::regclass AND attnum > 0 ORDER BY attnum;
SELECT relname, reloptions FROM pg_class
WHERE oid IN ('budget_status'::regclass, 'model_rightsizing'::regclass, 'spend_anomalies'::regclass) ORDER BY relname;

-- a reader reads the views and the tiers, and changes no tier
CREATE ROLE regress_views_tiers_reader;
GRANT tokenledger_reader TO regress_views_tiers_reader;
INSERT INTO team_members VALUES ('regress_views_tiers_reader', '*');
SET ROLE regress_views_tiers_reader;
SELECT count(*) > 0 AS reads_rightsizing FROM model_rightsizing;
SELECT count(*) > 0 AS reads_anomalies FROM spend_anomalies;
SELECT count(*) > 0 AS reads_budget_status FROM budget_status;
SELECT count(*) > 0 AS reads_tiers FROM model_tiers;
UPDATE model_tiers SET note = 'mine' WHERE model = 'gpt-5';
RESET ROLE;
-- row-level security reaches through: a reader of a team with no spend sees none
UPDATE team_members SET team = 'nobody' WHERE role_name = 'regress_views_tiers_reader';
SET ROLE regress_views_tiers_reader;
SELECT (SELECT count(*) FROM model_rightsizing) AS rightsizing_rows,
	   (SELECT count(*) FROM spend_anomalies) AS anomaly_rows;
RESET ROLE;
DELETE FROM team_members WHERE role_name = 'regress_views_tiers_reader';
DROP ROLE regress_views_tiers_reader;
DROP ROLE regress_views_tiers_admin;
