-- The ledger's own figures, computed from usage and outcomes with the
-- extension's aggregates (amount(sum(cost)) per currency), that the BI-client
-- tests (test/jdbc.sh, test/bi_psycopg.py) compare with what they read from
-- the views.  Everything before the first "-- figure:" runs once, as the
-- database owner; then each "-- figure: view | key columns | column [| filter]"
-- is a query giving, per key (as text, in that order), the sum of that column
-- of the view over the view's rows of the key (those that pass the filter).
-- Keys whose figure is 0 on either side are left out of the comparison.
-- Reporting views round each figure once, to the nano; the views internal to
-- them (spend_days, outcome_days, initiative_months) keep the exact sums.

-- the reporting currency (tokenledger.currency, USD) and the rate that
-- converts each currency to it; the test ledger has one rate per currency,
-- so a currency's sum converts at it exactly as its rows do
CREATE TEMP VIEW rate AS
SELECT c.currency,
	   CASE WHEN c.currency = 'USD' OR f.rate IS NOT NULL THEN 'USD' ELSE c.currency END AS report_currency,
	   CASE WHEN c.currency = 'USD' THEN 1 ELSE coalesce(f.rate, 1) END AS rate
FROM (SELECT tokenledger.currency(cost) AS currency FROM tokenledger.usage WHERE cost IS NOT NULL
	  UNION SELECT tokenledger.currency(value) FROM tokenledger.outcomes WHERE value IS NOT NULL
	  UNION SELECT 'USD') c
LEFT JOIN tokenledger.fx_rates f ON f.currency = c.currency AND f.to_currency = 'USD';

-- the value of each outcome: its own, or quantity x its initiative's value_per_outcome
CREATE TEMP VIEW outcome_value AS
SELECT o.*, coalesce(o.value, o.quantity OPERATOR(tokenledger.*) i.value_per_outcome) AS worth
FROM tokenledger.outcomes o JOIN tokenledger.initiatives i ON i.name = o.initiative;

-- figure: spend_daily | day, currency | spend
SELECT s.day::text, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT occurred_at::date AS day, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1, 2) s
JOIN rate r USING (currency) GROUP BY 1, 2;

-- figure: spend_daily | day | requests
SELECT occurred_at::date::text, sum(requests) FROM tokenledger.usage WHERE entry = 'call' GROUP BY 1;

-- figure: spend_daily | day | unpriced_requests
SELECT occurred_at::date::text, sum(requests) FROM tokenledger.usage
WHERE entry = 'call' AND cost IS NULL GROUP BY 1;

-- figure: spend_days | day, currency | spend
SELECT s.day::text, r.report_currency, sum(s.amount * r.rate)
FROM (SELECT occurred_at::date AS day, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1, 2) s
JOIN rate r USING (currency) GROUP BY 1, 2;

-- figure: initiative_economics | month, initiative, currency | spend
SELECT s.month::text, s.initiative, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT date_trunc('month', occurred_at)::date AS month, initiative, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1, 2, 3) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: initiative_economics | month, initiative | requests
SELECT date_trunc('month', occurred_at)::date::text, initiative, sum(requests)
FROM tokenledger.usage WHERE entry = 'call' GROUP BY 1, 2;

-- figure: initiative_economics | month, initiative | outcomes
SELECT date_trunc('month', occurred_at)::date::text, initiative, sum(quantity)
FROM tokenledger.outcomes GROUP BY 1, 2;

-- figure: initiative_economics | month, initiative, currency | outcome_value
SELECT s.month::text, s.initiative, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT date_trunc('month', occurred_at)::date AS month, initiative, tokenledger.currency(worth) AS currency,
			 tokenledger.amount(tokenledger.sum(worth)) AS amount
	  FROM outcome_value GROUP BY 1, 2, 3) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: initiative_months | month, initiative, currency | spend
SELECT s.month::text, s.initiative, r.report_currency, sum(s.amount * r.rate)
FROM (SELECT date_trunc('month', occurred_at)::date AS month, initiative, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1, 2, 3) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: outcome_days | day, initiative, currency | outcome_value
SELECT s.day::text, s.initiative, r.report_currency, sum(s.amount * r.rate)
FROM (SELECT occurred_at::date AS day, initiative, tokenledger.currency(worth) AS currency,
			 tokenledger.amount(tokenledger.sum(worth)) AS amount
	  FROM outcome_value GROUP BY 1, 2, 3) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: spend_vs_outcome_growth | month, initiative, currency | spend
SELECT s.month::text, s.initiative, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT date_trunc('month', occurred_at)::date AS month, initiative, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL AND initiative IS NOT NULL GROUP BY 1, 2, 3) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: run_economics | run_id, currency | spend
SELECT s.run_id, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT run_id, tokenledger.currency(cost) AS currency, tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL AND run_id IS NOT NULL GROUP BY 1, 2) s
JOIN rate r USING (currency) GROUP BY 1, 2;

-- figure: run_economics | run_id | outcomes
SELECT run_id, sum(quantity) FROM tokenledger.outcomes WHERE run_id IS NOT NULL GROUP BY 1;

-- figure: unattributed_spend | month, currency | spend
SELECT s.month::text, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT date_trunc('month', occurred_at)::date AS month, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL AND initiative IS NULL GROUP BY 1, 2) s
JOIN rate r USING (currency) GROUP BY 1, 2;

-- figure: token_maxing | month, principal, currency | spend
SELECT s.month::text, s.principal, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT date_trunc('month', occurred_at)::date AS month, principal, tokenledger.currency(cost) AS currency,
			 tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1, 2, 3) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: model_rightsizing | month, initiative, model, currency | spend
SELECT s.month::text, s.initiative, s.model, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT date_trunc('month', u.occurred_at)::date AS month, u.initiative, u.model,
			 tokenledger.currency(u.cost) AS currency, tokenledger.amount(tokenledger.sum(u.cost)) AS amount
	  FROM tokenledger.usage u
	  JOIN tokenledger.model_tiers t ON t.provider = u.provider AND t.model = u.model AND t.cheaper_model IS NOT NULL
	  WHERE u.cost IS NOT NULL GROUP BY 1, 2, 3, 4) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3, 4;

-- figure: spend_anomalies | kind, scope_value, currency | spend | kind = 'loop'
SELECT 'loop', s.run_id, r.report_currency, round(sum(s.amount * r.rate), 9)
FROM (SELECT run_id, tokenledger.currency(cost) AS currency, tokenledger.amount(tokenledger.sum(cost)) AS amount
	  FROM tokenledger.usage
	  WHERE cost IS NOT NULL
		AND (run_id, prompt_hash, date_trunc('hour', occurred_at)) IN (
			SELECT run_id, prompt_hash, date_trunc('hour', occurred_at) FROM tokenledger.usage
			WHERE entry = 'call' GROUP BY 1, 2, 3 HAVING sum(requests) >= 200)
	  GROUP BY 1, 2) s
JOIN rate r USING (currency) GROUP BY 1, 2, 3;

-- figure: focus_export | BillingCurrency | BilledCost
SELECT tokenledger.currency(cost), tokenledger.amount(tokenledger.sum(cost))
FROM tokenledger.usage WHERE cost IS NOT NULL GROUP BY 1;

-- figure: budget_status | name | spent
-- a budget counts each call as it is recorded, converted to the budget's
-- currency at the call's time: a cost, to the nano
SELECT 'all-time', tokenledger.amount(tokenledger.sum(tokenledger.convert(u.cost, 'USD', u.occurred_at)))
FROM tokenledger.usage u JOIN rate r ON r.currency = tokenledger.currency(u.cost)
WHERE r.report_currency = 'USD'
UNION ALL
SELECT 'monthly', tokenledger.amount(tokenledger.sum(tokenledger.convert(u.cost, 'USD', u.occurred_at)))
FROM tokenledger.usage u JOIN rate r ON r.currency = tokenledger.currency(u.cost)
WHERE r.report_currency = 'USD' AND u.occurred_at >= date_trunc('month', now(), 'UTC')
UNION ALL
SELECT 'nightly-total', tokenledger.amount(tokenledger.sum(tokenledger.convert(u.cost, 'USD', u.occurred_at)))
FROM tokenledger.usage u JOIN rate r ON r.currency = tokenledger.currency(u.cost)
WHERE r.report_currency = 'USD' AND u.principal = 'svc-nightly';

-- figure: unpriced_usage | model | requests
SELECT model, sum(requests) FROM tokenledger.usage WHERE cost IS NULL AND entry = 'call' GROUP BY 1;
