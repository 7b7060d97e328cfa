-- The views that read the ledger directly: run_economics, unattributed_spend,
-- token_maxing and focus_export, on a small hand-worked ledger.  Every
-- figure expected below is worked out by hand in the comments.
-- a database of its own: the other files' rows stay out of the figures
SELECT current_database() AS regress_db \gset
DROP DATABASE IF EXISTS tokenledger_views_ledger;
CREATE DATABASE tokenledger_views_ledger;
\c tokenledger_views_ledger
SET client_min_messages = warning;
CREATE EXTENSION tokenledger;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET tokenledger.currency = 'USD';

-- a test model at simple prices: in=1 out=2 USD per 1M tokens, so
--   T1 = in=100000 out=50000   -> (100000*1 + 50000*2)/1e6   = 0.20 USD, 150000 tokens
--   T2 = in=200000 out=100000  -> (200000*1 + 100000*2)/1e6  = 0.40 USD, 300000 tokens
--   T3 = in=500000 out=250000  -> (500000*1 + 250000*2)/1e6  = 1.00 USD, 750000 tokens
INSERT INTO tokenledger.prices (id, provider, model, effective_from, rate, source)
VALUES (9001, 'openai', 'tl-test', '2024-01-01 00:00+00', 'in=1 out=2 USD/1M', 'views_ledger test');
-- 1 EUR = 1.1 USD from 2025; no rate at all for JPY
INSERT INTO tokenledger.fx_rates (currency, to_currency, rate, effective_from)
VALUES ('EUR', 'USD', 1.1, '2025-01-01 00:00+00');
-- support-bot outcomes are worth 2.00 USD each, lead-enrich ones 1000 JPY
INSERT INTO tokenledger.initiatives (name, team, owner, value_per_outcome)
VALUES ('support-bot', 'cx', 'ann', '2.00 USD'), ('lead-enrich', 'sales', 'bob', '1000 JPY');

-- the ledger (team comes from the initiative; acme/a1 has no price, so its
-- calls carry a given cost; acme/mystery has none at all: unpriced)
INSERT INTO tokenledger.usage (request_id, occurred_at, provider, model, tokens, requests, cost,
							   initiative, principal, api_key, app, environment, run_id)
VALUES
	-- January
	('u1',  '2025-01-10 10:00+00', 'openai', 'tl-test', 'in=100000 out=50000', 1, NULL,
	 'support-bot', 'alice', 'key-a', 'helpdesk', 'prod', 'r1'),                     -- 0.20 USD
	('u2',  '2025-01-10 10:05+00', 'openai', 'tl-test', 'in=100000 out=50000', 1, NULL,
	 'support-bot', 'alice', 'key-a', 'helpdesk', 'staging', 'r1'),                  -- 0.20 USD
	('u3',  '2025-01-12 09:00+00', 'openai', 'tl-test', 'in=200000 out=100000', 1, NULL,
	 'support-bot', 'alice', 'key-a', 'helpdesk', 'staging', 'r2'),                  -- 0.40 USD
	('u4',  '2025-01-15 08:00+00', 'acme', 'a1', 'in=1000 out=1000', 1, '2.00 EUR',
	 'lead-enrich', 'bob', 'key-b', 'crm', 'prod', 'r3'),                            -- 2.00 EUR = 2.20 USD
	('u5',  '2025-01-20 14:00+00', 'acme', 'a1', 'in=10 out=10', 1, '300 JPY',
	 NULL, 'carol', 'key-c', 'scratch', NULL, 'r4'),                                 -- 300 JPY, no rate
	('u6',  '2025-01-20 15:00+00', 'acme', 'mystery', 'in=1000 out=0', 3, NULL,
	 NULL, NULL, 'key-c', 'scratch', NULL, NULL),                                    -- unpriced, 3 calls
	('u7',  '2025-01-21 16:00+00', 'openai', 'tl-test-2025-01-21', 'in=100000 out=50000', 1, NULL,
	 NULL, 'carol', 'key-c', 'scratch', NULL, NULL),                                 -- 0.20 USD (model: tl-test)
	('u13', '2025-01-25 12:00+00', 'openai', 'tl-test', 'in=100000 out=50000', 1, NULL,
	 'support-bot', 'erin', 'key-e', 'helpdesk', 'prod', NULL),                      -- 0.20 USD
	-- February
	('u8',  '2025-02-05 09:00+00', 'openai', 'tl-test', 'in=500000 out=250000', 1, NULL,
	 'support-bot', 'alice', 'key-a', 'helpdesk', 'prod', 'r5'),                     -- 1.00 USD
	('u9',  '2025-02-06 09:00+00', 'openai', 'tl-test', 'in=500000 out=250000', 1, NULL,
	 'support-bot', 'alice', 'key-a', 'helpdesk', 'prod', NULL),                     -- 1.00 USD
	('u10', '2025-02-07 10:00+00', 'openai', 'tl-test', 'in=100000 out=50000', 1, NULL,
	 'lead-enrich', 'bob', 'key-b', 'crm', 'prod', 'r6'),                            -- 0.20 USD (+0.10 rerate below)
	('u11', '2025-02-08 11:00+00', 'acme', 'a1', 'in=10 out=10', 1, '500 JPY',
	 NULL, 'carol', 'key-c', 'scratch', NULL, NULL),                                 -- 500 JPY
	-- March (u15 is still February 28 in New York)
	('u15', '2025-03-01 02:00+00', 'openai', 'tl-test', 'in=100000 out=50000', 1, NULL,
	 NULL, 'gina', 'key-g', 'notebook', NULL, NULL),                                 -- 0.20 USD
	('u12', '2025-03-03 09:00+00', 'openai', 'tl-test', 'in=200000 out=100000', 1, NULL,
	 'support-bot', 'dave', 'key-d', 'helpdesk', 'prod', 'r7'),                      -- 0.40 USD
	('u14', '2025-03-05 09:00+00', 'openai', 'tl-test', 'in=500000 out=250000', 1, NULL,
	 'support-bot', 'erin', 'key-e', 'helpdesk', 'prod', NULL);                      -- 1.00 USD

SELECT request_id, team, tokenledger.resolve_model(provider, model) AS resolved, cost, price_id
FROM tokenledger.usage ORDER BY occurred_at;

-- corrections: a late fee on u3 (Adjustment), a credit on u1 (Credit)
SELECT tokenledger.adjust(id, '0.10 USD', 'late fee') IS NOT NULL AS adjusted
FROM tokenledger.usage WHERE request_id = 'u3';
SELECT tokenledger.adjust(id, '-0.05 USD', 'goodwill credit') IS NOT NULL AS adjusted
FROM tokenledger.usage WHERE request_id = 'u1';
-- a price correction from February on: in=1 out=4, so u10 costs
-- (100000 + 50000*4)/1e6 = 0.30 USD, 0.10 more; rerated for February 7 only
INSERT INTO tokenledger.prices (id, provider, model, effective_from, rate, source)
VALUES (9002, 'openai', 'tl-test', '2025-02-01 00:00+00', 'in=1 out=4 USD/1M', 'views_ledger test');
SELECT tokenledger.rerate('openai', 'tl-test', '2025-02-07 00:00+00', '2025-02-08 00:00+00') AS rerated;
SELECT u.entry, c.request_id AS corrects, u.cost, u.price_id, u.occurred_at
FROM tokenledger.usage u JOIN tokenledger.usage c ON c.id = u.adjusts
ORDER BY u.id;

-- outcomes (a NULL value is quantity x the initiative's value_per_outcome)
SELECT tokenledger.record_outcome('support-bot', 'ticket_resolved', 2, occurred_at => '2025-01-10 11:00+00',
								  run_id => 'r1', external_ref => 'o1') IS NOT NULL;   -- 4.00 USD
SELECT tokenledger.record_outcome('lead-enrich', 'lead_enriched', 3, occurred_at => '2025-01-16 00:00+00',
								  run_id => 'r3', value => '30.00 EUR', external_ref => 'o2') IS NOT NULL;  -- 33.00 USD
SELECT tokenledger.record_outcome('support-bot', 'ticket_resolved', 0, occurred_at => '2025-01-20 16:00+00',
								  run_id => 'r4', external_ref => 'o3') IS NOT NULL;   -- 0 of them: 0.00 USD
SELECT tokenledger.record_outcome('support-bot', 'ticket_resolved', 1, occurred_at => '2025-02-05 12:00+00',
								  run_id => 'r5', external_ref => 'o4') IS NOT NULL;   -- 2.00 USD
SELECT tokenledger.record_outcome('lead-enrich', 'lead_enriched', 1, occurred_at => '2025-02-07 12:00+00',
								  run_id => 'r6', external_ref => 'o5') IS NOT NULL;   -- 1000 JPY, no rate
SELECT tokenledger.record_outcome('support-bot', 'ticket_resolved', 5, occurred_at => '2025-02-10 00:00+00',
								  run_id => 'r-orphan', external_ref => 'o6') IS NOT NULL;  -- no call served r-orphan
SELECT tokenledger.record_outcome('support-bot', 'ticket_resolved', 1, occurred_at => '2025-03-10 00:00+00',
								  external_ref => 'o7') IS NOT NULL;                   -- no run
-- an initiative without a value_per_outcome (registered on first use, no team)
SELECT tokenledger.record_outcome('research', 'paper', 1, occurred_at => '2025-03-04 00:00+00',
								  run_id => 'r7', external_ref => 'o8') IS NOT NULL;   -- value NULL
SELECT external_ref, initiative, quantity, value, run_id FROM tokenledger.outcomes ORDER BY id;

-- ---------------------------------------------------------------------------
-- run_economics
-- ---------------------------------------------------------------------------
-- r1: u1 + u2 + credit = 0.20 + 0.20 - 0.05 = 0.35 USD; 2 calls; 300000 tokens; o1: 2 outcomes, 4.00
-- r2: u3 + late fee = 0.40 + 0.10 = 0.50 USD; 1 call; 300000 tokens; no outcome
-- r3: u4 2.00 EUR x 1.1 = 2.20 USD; 2000 tokens; o2: 3 outcomes, 30.00 EUR x 1.1 = 33.00 USD
-- r4: u5 300 JPY on a JPY row (no rate); o3 (quantity 0, 0.00 USD) on a USD row
--     of its own; produced_outcome false (its outcomes add up to 0)
-- r5: u8 1.00 USD; 750000 tokens; o4: 1 outcome, 2.00 USD
-- r6: u10 0.20 + rerate 0.10 = 0.30 USD, 150000 tokens; o5 (1000 JPY) on a
--     JPY row: 1 outcome, 1000; produced_outcome true on both rows
-- r7: u12 0.40 USD; o8: 1 outcome without a value: outcome_value 0
-- r-orphan served no call: no row
SELECT * FROM tokenledger.run_economics ORDER BY run_id, currency;

-- reported in EUR instead: USD amounts convert at 1/1.1 = 0.90909090909090909091
-- (the inverse of the EUR rate), each product exact, each figure rounded once:
--   r1: (0.20 + 0.20 - 0.05) x 0.90909090909090909091 = 0.31818181818181818182 -> 0.318181818
--       (rounding each row first would give 0.181818182 + 0.181818182 - 0.045454545 = 0.318181819)
--       value 4.00 x 0.909... = 3.63636363636363636364 -> 3.636363636
--   r3: 2.00 EUR and 30.00 EUR as they are (rate 1)
--   r4: the outcome of 0 USD converts too: its row is EUR now
SET tokenledger.currency = 'EUR';
SELECT run_id, spend, outcome_value, currency FROM tokenledger.run_economics
WHERE run_id IN ('r1', 'r3', 'r4') ORDER BY run_id, currency;
RESET tokenledger.currency;

-- ---------------------------------------------------------------------------
-- unattributed_spend
-- ---------------------------------------------------------------------------
-- January's whole USD spend: u1 0.20 + u2 0.20 + u3 0.40 + fee 0.10 + credit
-- -0.05 + u4 2.20 + u7 0.20 + u13 0.20 = 3.45
--   key-c/scratch/carol USD: u7: 1 call, 150000 tokens, 0.20; share 0.20/3.45 = 0.0579710144927536...
--   key-c/scratch/(none) USD: u6: 3 unpriced calls, 1000 tokens, spend 0, share 0
--   key-c/scratch/carol JPY: u5: 1 call, 20 tokens, 300; share 300/300 = 1
-- February: key-c/scratch/carol JPY: u11: 500 of 500 JPY: share 1
-- March's whole USD spend: u15 0.20 + u12 0.40 + u14 1.00 = 1.60
--   key-g/notebook/gina USD: u15 0.20; share 0.20/1.60 = 0.125
SELECT * FROM tokenledger.unattributed_spend ORDER BY month, currency, api_key, app, principal;

-- ---------------------------------------------------------------------------
-- token_maxing
-- ---------------------------------------------------------------------------
-- January (no previous month: growths NULL, flagged false)
--   alice/cx USD: u1 u2 u3 fee credit: 3 calls, 600000 tokens, 0.85; runs r1 (2
--     outcomes) and r2 (none): outcomes 2; without outcome: r2's 0.40 + 0.10 = 0.50
--   bob/sales USD: u4 2.20; r3 (3 outcomes): outcomes 3, without outcome 0
--   carol/(none) JPY: u5 300 (r4's outcomes add up to 0: without outcome 300);
--   carol/(none) USD: u7 0.20, no run (without outcome 0.20); carol's outcomes 0
--   (none)/(none) USD: u6: 3 unpriced calls, 1000 tokens, spend 0, outcomes 0
--   erin/cx USD: u13 0.20, no run
--   token ranks: alice 600000 (1), carol 150000 + 20 = 150020 (2), erin 150000 (3),
--   bob 2000 (4), (none) 1000 (5); outcome ranks: bob 3 (1), alice 2 (2), and
--   the three with none share the last rank, 3
-- February
--   alice/cx USD: u8 + u9 = 2.00; 2 calls, 1500000 tokens; r5 (1 outcome):
--     outcomes 1; without outcome: u9 (no run) 1.00; spend_growth 2.00/0.85 =
--     2.35294117647058823529; outcome_growth 1/2 = 0.5; flagged: 2.00 >= 1.5 x
--     0.85 = 1.275 and 1 <= 2: true
--   bob/sales USD: u10 + rerate = 0.30; r6 (1 outcome): outcomes 1; spend_growth
--     0.30/2.20 = 0.13636363636363636364; outcome_growth 1/3; flagged: 0.30 < 3.30: false
--   carol/(none) JPY: u11 500, no run: without outcome 500; spend_growth
--     500/300 = 1.6666666666666667; outcome_growth NULL (January had none);
--     flagged: 500 >= 450 and 0 <= 0 (none counting as 0): true
--   token ranks: alice 1500000 (1), bob 150000 (2), carol 20 (3); outcome ranks:
--   alice and bob 1 (1), carol none (3)
-- March
--   erin/cx USD: u14 1.00, no run; her previous calendar month (February) has no
--     row: spend_growth NULL, flagged false (January does not count)
--   dave/cx USD: u12 0.40; r7 (o8: 1 outcome): outcomes 1; no previous month
--   gina/(none) USD: u15 0.20; no previous month
--   token ranks: erin 750000 (1), dave 300000 (2), gina 150000 (3); outcome
--   ranks: dave 1 (1), erin and gina none (2)
SELECT * FROM tokenledger.token_maxing ORDER BY month, token_rank, currency;

-- ---------------------------------------------------------------------------
-- focus_export
-- ---------------------------------------------------------------------------
-- one row per UTC day, provider, model, tier, initiative, team, currency and
-- charge (category, class, price row):
--   01-10 tl-test support-bot Usage 9001: u1 + u2 = 0.40, 300000 tokens = 0.3 x 1M;
--         Tags: app helpdesk (both), environment left out (prod and staging)
--   01-10 Credit: the credit on u1, -0.05 (no tokens: quantities NULL)
--   01-12 Usage 9001: u3 0.40; Adjustment: the late fee 0.10
--   01-15 acme a1 lead-enrich EUR Usage: 2.00 EUR (not converted), given cost:
--         SkuPriceId NULL; ServiceName "acme API"
--   01-20 acme a1 JPY Usage: 300; acme mystery USD Usage: 0 (3 unpriced calls)
--   01-21 tl-test (resolved from tl-test-2025-01-21) no initiative: 0.20
--   01-25 0.20; 02-05 1.00; 02-06 1.00; 02-07 0.20 and the rerate 0.10
--         (Adjustment, Correction, SkuPriceId 9002); 02-08 500 JPY;
--   03-01 0.20; 03-03 0.40; 03-05 1.00
SELECT to_char("ChargePeriodStart", 'YYYY-MM-DD') AS day, "ProviderName", "ServiceName", "SkuId",
	   "SkuPriceId", "SubAccountId", "x_Initiative", "ChargeCategory", "ChargeClass",
	   "BilledCost", "BillingCurrency", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity",
	   "PricingUnit", "x_Requests", "x_UnpricedRequests", "Tags"
FROM tokenledger.focus_export
ORDER BY "ChargePeriodStart", "SkuId", "x_Initiative", "BillingCurrency", "ChargeCategory", "ChargeClass";
-- "Tags" is text, the JSON object as a FOCUS file carries it: jsonb's own
-- text (its keys in jsonb's order), an object on every row
SELECT pg_typeof("Tags") AS tags_type, bool_and("Tags"::jsonb::text = "Tags") AS as_jsonb_prints,
	   bool_and(jsonb_typeof("Tags"::jsonb) = 'object') AS objects
FROM tokenledger.focus_export GROUP BY 1;
SELECT "ChargeDescription", count(*) FROM tokenledger.focus_export GROUP BY 1 ORDER BY 1;
-- the constant columns, the periods (UTC, end exclusive) and the four costs
SELECT DISTINCT "ChargeFrequency", "ServiceCategory", "ProviderName" = "PublisherName"
	   AND "ProviderName" = "InvoiceIssuerName" AS same_provider,
	   "BilledCost" = "EffectiveCost" AND "BilledCost" = "ListCost" AND "BilledCost" = "ContractedCost" AS same_costs
FROM tokenledger.focus_export;
SELECT DISTINCT "BillingPeriodStart", "BillingPeriodEnd" FROM tokenledger.focus_export ORDER BY 1;
SELECT "ChargePeriodStart", "ChargePeriodEnd" FROM tokenledger.focus_export
WHERE "BilledCost" = 500;
-- Σ BilledCost per currency = the ledger's Σ cost per currency:
--   USD 0.40 - 0.05 + 0.40 + 0.10 + 0 + 0.20 + 0.20 + 1.00 + 1.00 + 0.20 + 0.10
--       + 0.20 + 0.40 + 1.00 = 5.15; EUR 2.00; JPY 300 + 500 = 800
SELECT f.currency, f.billed, l.ledger, f.billed = l.ledger AS equal
FROM (SELECT "BillingCurrency" AS currency, sum("BilledCost") AS billed
	  FROM tokenledger.focus_export GROUP BY 1) f
FULL JOIN (SELECT tokenledger.currency(cost) AS currency, sum(tokenledger.amount(cost)) AS ledger
		   FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1) l USING (currency)
ORDER BY 1;
-- the billing account: the database's name unless set
SELECT DISTINCT "BillingAccountId" = current_database() AS is_database, "BillingAccountName" = "BillingAccountId" AS same
FROM tokenledger.focus_export;
SET tokenledger.billing_account = 'acme-corp-0042';
SELECT DISTINCT "BillingAccountId", "BillingAccountName" FROM tokenledger.focus_export;
RESET tokenledger.billing_account;

-- ---------------------------------------------------------------------------
-- the session's TimeZone: months follow it, FOCUS periods stay UTC days
-- ---------------------------------------------------------------------------
SET TimeZone = 'America/New_York';
-- u15 (2025-03-01 02:00 UTC) is February 28 at 21:00 in New York: February's
-- whole USD spend is u8 1.00 + u9 1.00 + u10 0.20 + rerate 0.10 + u15 0.20 = 2.50,
-- gina's share 0.20/2.50 = 0.08
SELECT * FROM tokenledger.unattributed_spend WHERE principal = 'gina';
SELECT "ChargePeriodStart" AT TIME ZONE 'UTC' AS utc_start, "ChargePeriodEnd" AT TIME ZONE 'UTC' AS utc_end,
	   "BillingPeriodStart" AT TIME ZONE 'UTC' AS utc_month
FROM tokenledger.focus_export WHERE "Tags"::jsonb @> '{"app": "notebook"}';
SET TimeZone = 'UTC';

-- ---------------------------------------------------------------------------
-- team isolation reaches through the views; readers only
-- ---------------------------------------------------------------------------
CREATE ROLE regress_views_ledger_cx NOLOGIN;
GRANT tokenledger_reader TO regress_views_ledger_cx;
INSERT INTO tokenledger.team_members (role_name, team) VALUES ('regress_views_ledger_cx', 'cx');
-- a reader with no team_members row, and a writer (no right on the views)
CREATE ROLE regress_views_ledger_noteam NOLOGIN;
GRANT tokenledger_reader TO regress_views_ledger_noteam;
CREATE ROLE regress_views_ledger_writer NOLOGIN;
GRANT tokenledger_writer TO regress_views_ledger_writer;
SET ROLE regress_views_ledger_cx;
-- cx sees alice's, erin's and dave's calls: runs r1, r2, r5 and r7 (o8 belongs
-- to research, which has no team: r7 shows no outcome)
SELECT run_id, initiative, spend, outcomes, produced_outcome, currency
FROM tokenledger.run_economics ORDER BY run_id, currency;
-- unattributed spend has no team: nothing
SELECT count(*) FROM tokenledger.unattributed_spend;
-- January ranks among cx only: alice (600000) 1, erin (150000) 2
SELECT month, principal, team, spend, outcomes, token_rank, outcome_rank, flagged
FROM tokenledger.token_maxing ORDER BY month, token_rank;
-- cx's USD: 0.40 - 0.05 + 0.40 + 0.10 + 0.20 + 1.00 + 1.00 + 0.40 + 1.00 = 4.45
SELECT "BillingCurrency", sum("BilledCost"), count(*) FROM tokenledger.focus_export GROUP BY 1;
RESET ROLE;
-- a reader of no team sees no rows
SET ROLE regress_views_ledger_noteam;
SELECT (SELECT count(*) FROM tokenledger.run_economics) AS runs,
	   (SELECT count(*) FROM tokenledger.unattributed_spend) AS unattributed,
	   (SELECT count(*) FROM tokenledger.token_maxing) AS principals,
	   (SELECT count(*) FROM tokenledger.focus_export) AS charges;
RESET ROLE;
-- a writer may record, not read: 42501
SET ROLE regress_views_ledger_writer;
SELECT * FROM tokenledger.run_economics;
SELECT * FROM tokenledger.unattributed_spend;
SELECT * FROM tokenledger.token_maxing;
SELECT * FROM tokenledger.focus_export;
RESET ROLE;
DELETE FROM tokenledger.team_members WHERE role_name = 'regress_views_ledger_cx';
DROP ROLE regress_views_ledger_cx;
DROP ROLE regress_views_ledger_noteam;
DROP ROLE regress_views_ledger_writer;

-- the views' columns: no tokenledger type, a comment on each
SELECT c.relname, count(*) AS columns,
	   count(*) FILTER (WHERE t.typnamespace = 'tokenledger'::regnamespace) AS tokenledger_typed,
	   count(*) FILTER (WHERE col_description(c.oid, a.attnum) IS NULL) AS uncommented,
	   obj_description(c.oid, 'pg_class') IS NOT NULL AS view_commented,
	   c.reloptions
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.oid IN ('tokenledger.run_economics'::regclass, 'tokenledger.unattributed_spend'::regclass,
				'tokenledger.token_maxing'::regclass, 'tokenledger.focus_export'::regclass)
GROUP BY c.oid, c.relname, c.reloptions
ORDER BY c.relname;

\c :regress_db
DROP DATABASE tokenledger_views_ledger;
