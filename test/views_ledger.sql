-- Behaviour of the views on the ledger (run_economics, unattributed_spend,
-- token_maxing, focus_export): their shape (comments, types, rights) and,
-- over a few hundred random ledger rows in several currencies with
-- adjustments, credits, rerates and unpriced calls, that they account for
-- every amount of the ledger.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SET LOCAL tokenledger.currency = 'USD';
SELECT plan(46);

CREATE TEMP TABLE ledger_views (name text, oid regclass);
INSERT INTO ledger_views VALUES
	('run_economics', 'tokenledger.run_economics'), ('unattributed_spend', 'tokenledger.unattributed_spend'),
	('token_maxing', 'tokenledger.token_maxing'), ('focus_export', 'tokenledger.focus_export');

-- ---------------------------------------------------------------------------
-- shape: a comment on the view and on every column, no tokenledger type,
-- the caller's rights, readable by tokenledger_reader
-- ---------------------------------------------------------------------------
SELECT is((SELECT count(*) FROM pg_attribute a
		   WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped
			 AND coalesce(col_description(a.attrelid, a.attnum), '') = ''),
		  0::bigint, v.name || ': every column has a comment')
FROM ledger_views v ORDER BY v.name;
SELECT ok(coalesce(obj_description(v.oid, 'pg_class'), '') <> '', v.name || ' has a comment')
FROM ledger_views v ORDER BY v.name;
SELECT is((SELECT count(*) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		   WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped
			 AND t.typnamespace = 'tokenledger'::regnamespace),
		  0::bigint, v.name || ': no column of a tokenledger type')
FROM ledger_views v ORDER BY v.name;
SELECT ok((SELECT 'security_invoker=true' = ANY (c.reloptions) FROM pg_class c WHERE c.oid = v.oid),
		  v.name || ' runs with the caller''s rights')
FROM ledger_views v ORDER BY v.name;
SELECT ok(has_table_privilege('tokenledger_reader', v.oid, 'SELECT'), 'tokenledger_reader may read ' || v.name)
FROM ledger_views v ORDER BY v.name;
SELECT ok(NOT has_table_privilege('tokenledger_writer', v.oid, 'SELECT'), 'tokenledger_writer may not read ' || v.name)
FROM ledger_views v ORDER BY v.name;

-- ---------------------------------------------------------------------------
-- a few hundred random rows: catalog-priced calls, given costs in USD, EUR
-- and JPY, unpriced calls, three initiatives (two teams) and shadow spend
-- ---------------------------------------------------------------------------
SELECT setseed(0.25);
INSERT INTO initiatives (name, team, value_per_outcome) VALUES
	('tap-vl-a', 'tap-cx', '1.50 USD'), ('tap-vl-b', 'tap-sales', '20 EUR'), ('tap-vl-c', 'tap-cx', NULL);
CREATE TEMP TABLE draws AS
SELECT i, random() AS kind, random() AS who, random() AS amount, random() AS run,
	   timestamptz '2025-01-01 00:00+00' + random() * interval '120 days' AS at,
	   tokens((random() * 20000)::bigint, (random() * 4000)::bigint, (random() * 30000)::bigint) AS t
FROM generate_series(1, 400) i;
INSERT INTO usage (request_id, occurred_at, provider, model, tokens, requests, cost, initiative,
				   principal, api_key, app, environment, run_id)
SELECT 'tap-vl-' || d.i, d.at,
	   CASE WHEN d.kind < 0.55 THEN p.provider ELSE 'tap-provider' END,
	   CASE WHEN d.kind < 0.55 THEN p.model WHEN d.kind < 0.9 THEN 'tap-given' ELSE 'tap-unpriced' END,
	   d.t, 1 + (d.amount * 3)::int,
	   CASE WHEN d.kind < 0.55 THEN NULL
			WHEN d.kind < 0.7 THEN cost(round((d.amount * 5)::numeric, 6), 'USD')
			WHEN d.kind < 0.8 THEN cost(round((d.amount * 5)::numeric, 6), 'EUR')
			WHEN d.kind < 0.9 THEN cost(round((d.amount * 500)::numeric, 0), 'JPY') END,
	   CASE WHEN d.who < 0.35 THEN 'tap-vl-a' WHEN d.who < 0.6 THEN 'tap-vl-b'
			WHEN d.who < 0.75 THEN 'tap-vl-c' END,
	   'principal-' || (d.i % 7), 'key-' || (d.i % 5), 'app-' || (d.i % 3), 'env-' || (d.i % 2),
	   CASE WHEN d.run < 0.7 THEN 'run-' || (d.i % 60) END
FROM draws d
CROSS JOIN LATERAL (SELECT provider, model FROM prices
					WHERE service_tier = 'standard' AND min_input_tokens = 0 AND shipped
					ORDER BY id OFFSET (d.i % 20) LIMIT 1) p;
-- corrections: late fees and credits on a few calls, in the call's currency
SELECT lives_ok($$SELECT adjust(u.id, cost(CASE WHEN u.id % 2 = 0 THEN 0.125 ELSE -0.0625 END * (1 + u.id % 4),
										  currency(u.cost)), 'tap correction')
				  FROM usage u WHERE u.request_id LIKE 'tap-vl-%' AND u.cost IS NOT NULL AND u.id % 9 = 0$$,
				'adjustments and credits on random calls');
-- a dearer price for one shipped model from February on, and its rerate
INSERT INTO prices (provider, model, effective_from, rate, source)
SELECT provider, model, '2025-02-01 00:00+00', rate * 1.25, 'tap rerate'
FROM prices WHERE service_tier = 'standard' AND min_input_tokens = 0 AND shipped
ORDER BY id LIMIT 1;
SELECT ok((SELECT rerate(p.provider, p.model, '2025-01-01', '2025-06-01') FROM prices p WHERE p.source = 'tap rerate') > 0,
		  'rerate appends corrections');
-- outcomes on some runs (and on runs no call served)
INSERT INTO outcomes (occurred_at, initiative, metric, quantity, run_id)
SELECT timestamptz '2025-01-01 00:00+00' + (i % 120) * interval '1 day',
	   (ARRAY['tap-vl-a', 'tap-vl-b', 'tap-vl-c'])[1 + i % 3], 'done', 1 + i % 3, 'run-' || (i * 7 % 80)
FROM generate_series(1, 50) i;
SELECT ok((SELECT count(DISTINCT entry) FROM usage WHERE request_id LIKE 'tap-vl-%' OR reason IS NOT NULL) = 3
		  AND (SELECT count(*) FROM usage WHERE entry = 'adjustment' AND amount(cost) < 0) > 0
		  AND (SELECT count(*) FROM usage WHERE entry = 'call' AND cost IS NULL) > 0
		  AND (SELECT count(DISTINCT currency(cost)) FROM usage) = 3,
		  'the random ledger has calls, adjustments, credits, rerates, unpriced calls and three currencies');

-- the ledger's own figures per currency (no exchange rate applies: every
-- amount stays in its own currency, unpriced calls count under USD)
CREATE TEMP TABLE ledger AS
SELECT u.*, coalesce(currency(u.cost), 'USD') AS cur, coalesce(amount(u.cost), 0) AS amt
FROM usage u;

-- ---------------------------------------------------------------------------
-- focus_export
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT "BillingCurrency", sum("BilledCost") FROM focus_export GROUP BY 1 ORDER BY 1$$,
	$$SELECT currency(cost), sum(amount(cost)) FROM usage WHERE cost IS NOT NULL GROUP BY 1 ORDER BY 1$$,
	'focus_export: Σ BilledCost per currency = the ledger''s Σ cost per currency');
SELECT results_eq(
	$$SELECT "ChargeCategory", coalesce("ChargeClass", ''), sum("BilledCost"), sum("x_Requests")::bigint
	  FROM focus_export GROUP BY 1, 2 ORDER BY 1, 2$$,
	$$SELECT CASE WHEN entry = 'call' THEN 'Usage' WHEN entry = 'adjustment' AND amt < 0 THEN 'Credit'
				  ELSE 'Adjustment' END,
			 CASE WHEN entry = 'rerate' THEN 'Correction' ELSE '' END, sum(amt),
			 coalesce(sum(requests) FILTER (WHERE entry = 'call'), 0)::bigint
	  FROM ledger GROUP BY 1, 2 ORDER BY 1, 2$$,
	'focus_export: calls are Usage, rerates Adjustment/Correction, negative adjustments Credit');
SELECT results_eq(
	$$SELECT sum("ConsumedQuantity"), sum("PricingQuantity") * 1000000, sum("x_UnpricedRequests")
	  FROM focus_export$$,
	$$SELECT sum(total(tokens)), sum(total(tokens)), sum(requests) FILTER (WHERE cost IS NULL)
	  FROM ledger WHERE entry = 'call'$$,
	'focus_export: consumed and pricing quantities are the calls'' tokens; unpriced calls are counted');
SELECT is((SELECT count(*) FROM focus_export
		   WHERE "BilledCost" IS NULL OR "EffectiveCost" IS NULL OR "ListCost" IS NULL OR "ContractedCost" IS NULL
			  OR "BillingAccountId" IS NULL OR "ChargeCategory" IS NULL OR "ServiceName" IS NULL OR "SkuId" IS NULL
			  OR "ChargePeriodEnd" <> "ChargePeriodStart" + interval '1 day'
			  OR "ChargePeriodStart" < "BillingPeriodStart" OR "ChargePeriodEnd" > "BillingPeriodEnd"
			  OR ("ChargeCategory" = 'Usage') <> ("ConsumedQuantity" IS NOT NULL)),
		  0::bigint, 'focus_export: costs never NULL, charge periods are days within their billing month');
SELECT is((SELECT count(*) FROM (SELECT 1 FROM focus_export
								 GROUP BY "ChargePeriodStart", "SkuId", "x_Initiative", "SubAccountId",
										  "BillingCurrency", "ChargeCategory", "ChargeClass", "SkuPriceId"
								 HAVING count(*) > 1) d),
		  0::bigint, 'focus_export: one row per day, sku, initiative, team, currency and charge');

-- ---------------------------------------------------------------------------
-- the other views add up to the ledger
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT currency, sum(spend), sum(requests)::bigint, sum(total_tokens)::bigint FROM run_economics
	  GROUP BY 1 ORDER BY 1$$,
	$$SELECT c.cur, coalesce(s.spend, 0), coalesce(s.requests, 0)::bigint, coalesce(s.tokens, 0)::bigint
	  FROM (SELECT DISTINCT l.cur FROM ledger l WHERE l.run_id IS NOT NULL
			UNION SELECT coalesce(currency(o.value), 'USD') FROM outcomes o
			WHERE o.run_id IN (SELECT run_id FROM ledger)) c
	  LEFT JOIN (SELECT cur, sum(amt) AS spend, sum(requests) FILTER (WHERE entry = 'call') AS requests,
						sum(total(tokens)) AS tokens
				 FROM ledger WHERE run_id IS NOT NULL GROUP BY cur) s ON s.cur = c.cur
	  ORDER BY 1$$,
	'run_economics: spend, calls and tokens per currency are those of the calls with a run_id');
SELECT results_eq(
	$$SELECT sum(outcomes), count(*) FILTER (WHERE produced_outcome) FROM run_economics$$,
	$$SELECT (SELECT sum(quantity) FROM outcomes WHERE run_id IN (SELECT run_id FROM ledger)),
			 (SELECT count(*) FROM run_economics r
			  WHERE (SELECT sum(quantity) FROM outcomes o WHERE o.run_id = r.run_id) > 0)$$,
	'run_economics: every outcome of a run with calls is counted once; produced_outcome when they add up to more than 0');
SELECT is((SELECT count(*) FROM run_economics WHERE (run_id, currency) IN
		   (SELECT run_id, currency FROM run_economics GROUP BY 1, 2 HAVING count(*) > 1)),
		  0::bigint, 'run_economics: one row per run and currency');
SELECT results_eq(
	$$SELECT month, currency, sum(spend), sum(requests)::bigint FROM unattributed_spend GROUP BY 1, 2 ORDER BY 1, 2$$,
	$$SELECT date_trunc('month', occurred_at)::date, cur, sum(amt), coalesce(sum(requests) FILTER (WHERE entry = 'call'), 0)::bigint
	  FROM ledger WHERE initiative IS NULL GROUP BY 1, 2 ORDER BY 1, 2$$,
	'unattributed_spend: the spend and calls with no initiative, month by month');
SELECT results_eq(
	$$SELECT month, currency, round(sum(spend_share), 12) FROM unattributed_spend GROUP BY 1, 2 ORDER BY 1, 2$$,
	$$SELECT m, cur, CASE WHEN whole <> 0 THEN round(shadow / whole, 12) END
	  FROM (SELECT date_trunc('month', occurred_at)::date AS m, cur, sum(amt) FILTER (WHERE initiative IS NULL) AS shadow,
				   sum(amt) AS whole
			FROM ledger GROUP BY 1, 2 HAVING count(*) FILTER (WHERE initiative IS NULL) > 0) x ORDER BY 1, 2$$,
	'unattributed_spend: the shares are of the month''s whole spend in the currency');
SELECT results_eq(
	$$SELECT month, currency, sum(spend), sum(requests)::bigint, sum(total_tokens)::bigint FROM token_maxing
	  GROUP BY 1, 2 ORDER BY 1, 2$$,
	$$SELECT date_trunc('month', occurred_at)::date, cur, sum(amt),
			 coalesce(sum(requests) FILTER (WHERE entry = 'call'), 0)::bigint, sum(total(tokens))::bigint
	  FROM ledger GROUP BY 1, 2 ORDER BY 1, 2$$,
	'token_maxing: every month''s spend, calls and tokens, by currency');
SELECT is((SELECT count(*) FROM token_maxing t
		   WHERE t.outcomes = 0
			 AND t.outcome_rank <> (SELECT max(x.outcome_rank) FROM token_maxing x WHERE x.month = t.month)),
		  0::bigint, 'token_maxing: principals without outcomes share the last outcome rank');
SELECT is((SELECT count(*) FROM token_maxing t
		   WHERE (t.spend_growth IS NOT NULL OR t.flagged)
			 AND NOT EXISTS (SELECT FROM token_maxing p
							 WHERE p.month = (t.month - interval '1 month')::date
							   AND p.principal IS NOT DISTINCT FROM t.principal
							   AND p.team IS NOT DISTINCT FROM t.team AND p.currency = t.currency)),
		  0::bigint, 'token_maxing: growth and flags only against the previous calendar month');

-- ---------------------------------------------------------------------------
-- a reader limited to one team sees that team's amounts, all of them
-- ---------------------------------------------------------------------------
CREATE ROLE tap_views_ledger_cx NOLOGIN;
GRANT tokenledger_reader TO tap_views_ledger_cx;
INSERT INTO team_members (role_name, team) VALUES ('tap_views_ledger_cx', 'tap-cx');
-- queries run as that role through functions it owns (SECURITY DEFINER),
-- so that pgTAP's own bookkeeping stays the session user's
CREATE FUNCTION pg_temp.rows_as_reader(view text) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM tokenledger.%I', view) INTO n;
	RETURN n;
END $$;
CREATE FUNCTION pg_temp.billed_as_reader() RETURNS TABLE (currency text, billed numeric)
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$ SELECT "BillingCurrency", sum("BilledCost") FROM tokenledger.focus_export GROUP BY 1 ORDER BY 1 $$;
CREATE FUNCTION pg_temp.other_teams_as_reader() RETURNS bigint
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$ SELECT count(*) FROM tokenledger.token_maxing WHERE team IS DISTINCT FROM 'tap-cx' $$;
ALTER FUNCTION pg_temp.rows_as_reader(text) OWNER TO tap_views_ledger_cx;
ALTER FUNCTION pg_temp.billed_as_reader() OWNER TO tap_views_ledger_cx;
ALTER FUNCTION pg_temp.other_teams_as_reader() OWNER TO tap_views_ledger_cx;
SELECT ok(pg_temp.rows_as_reader(v.name) > 0, 'a reader of one team reads rows of ' || v.name)
FROM ledger_views v WHERE v.name <> 'unattributed_spend' ORDER BY v.name;
SELECT is(pg_temp.rows_as_reader('unattributed_spend'), 0::bigint,
		  'unattributed spend has no team: a reader of one team sees none of it');
SELECT results_eq(
	$$SELECT * FROM pg_temp.billed_as_reader()$$,
	$$SELECT currency(cost), sum(amount(cost)) FROM usage WHERE team = 'tap-cx' AND cost IS NOT NULL
	  GROUP BY 1 ORDER BY 1$$,
	'focus_export as a team''s reader: Σ BilledCost per currency = that team''s ledger');
SELECT is(pg_temp.other_teams_as_reader(), 0::bigint, 'token_maxing as a team''s reader: its team only');

SELECT * FROM finish();
ROLLBACK;
