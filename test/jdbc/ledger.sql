-- The small ledger that the BI-client tests (test/jdbc.sh, test/bi_psycopg.py)
-- read through the views: two months of calls priced from the catalog in USD,
-- provider-billed calls in EUR (converted through fx_rates) and in GBP (no
-- rate: reported apart), an unpriced call, a credit, outcomes, a runaway loop,
-- calls of the last hour for the budgets' forecast, and three budgets.  Run as
-- the database owner right after CREATE EXTENSION tokenledger.
INSERT INTO tokenledger.fx_rates (currency, to_currency, rate, effective_from)
VALUES ('EUR', 'USD', 1.0875, '2020-01-01');

INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
VALUES ('all-time', 'global', NULL, 'total', '100000 USD', 'alert'),
	('monthly', 'global', NULL, 'month', '20 USD', 'alert'),
	('nightly-total', 'principal', 'svc-nightly', 'total', '0.03 USD', 'alert');

INSERT INTO tokenledger.initiatives (name, team, owner, outcome_metric, value_per_outcome)
VALUES ('support-triage', 'support', 'ana', 'ticket resolved', '4.00 USD'),
	('invoice-processing', 'finance', 'bo', 'invoice processed', '0.50 USD');

-- catalog-priced calls, 2 January to 27 February 2026, at noon UTC
INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, requests, initiative,
							   principal, api_key, app, environment, run_id, prompt_hash)
SELECT timestamptz '2026-01-02 12:00+00' + (i % 57) * interval '1 day',
	   (ARRAY['anthropic', 'anthropic', 'openai'])[1 + i % 3],
	   (ARRAY['claude-opus-4-1', 'claude-haiku-4-5', 'gpt-4o-mini'])[1 + i % 3],
	   tokenledger.tokens(800 + 37 * i, 120 + 11 * i, 500 * (i % 4)),
	   1 + i % 4,
	   (ARRAY['support-triage', 'invoice-processing', NULL])[1 + i % 3 + (i / 3) % 2],
	   'dev' || i % 4, 'key-' || i % 3, CASE WHEN i % 3 = 2 THEN 'notebook' ELSE 'gateway' END,
	   'prod', CASE WHEN i % 5 <> 0 THEN 'run-' || i % 17 END, 'ph-' || i % 9
FROM generate_series(1, 150) i;

-- provider-billed calls: EUR (a rate converts them) and GBP (none does)
INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, cost, initiative, principal, run_id)
SELECT timestamptz '2026-01-03 12:00+00' + (i % 50) * interval '1 day',
	   'mistral', 'mistral-large-latest', tokenledger.tokens(2000 + i, 300 + i),
	   tokenledger.cost(0.0123457 * i, CASE WHEN i % 4 = 0 THEN 'GBP' ELSE 'EUR' END),
	   CASE WHEN i % 2 = 0 THEN 'support-triage' END, 'dev' || i % 4, 'run-' || i % 17
FROM generate_series(1, 40) i;

-- a call no price applies to
INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, initiative, principal)
VALUES ('2026-02-04 12:00+00', 'acme', 'acme-unknown-1', tokenledger.tokens(5000, 700), 'support-triage', 'dev1');

-- a provider credit on one call
SELECT tokenledger.adjust(min(id), '-0.005 USD', 'provider credit')
FROM tokenledger.usage WHERE model = 'claude-opus-4-1';

-- a runaway: one run repeating one prompt 250 times within an hour
INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, requests, initiative,
							   principal, api_key, run_id, prompt_hash)
VALUES ('2026-02-10 03:10+00', 'anthropic', 'claude-haiku-4-5', tokenledger.tokens(250 * 900, 250 * 80), 250,
		'invoice-processing', 'svc-agent', 'key-1', 'run-loop', 'ph-loop');

-- the last hour, so that the budgets have a forecast: svc-nightly's three
-- calls ($0.0255) reach its $0.03 in about a day and a quarter at this rate
INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, initiative, principal)
SELECT now() - i * interval '20 minutes', 'anthropic', 'claude-haiku-4-5',
	   tokenledger.tokens(4000, 900), 'support-triage', 'svc-nightly'
FROM generate_series(1, 3) i;

-- outcomes: tickets valued at the initiative's value_per_outcome, invoices
-- with a value of their own
SELECT tokenledger.record_outcome('support-triage', 'ticket resolved', 1 + i % 3,
								  occurred_at => timestamptz '2026-01-04 15:00+00' + (i % 54) * interval '1 day',
								  run_id => 'run-' || i % 17, external_ref => 'ticket-' || i)
FROM generate_series(1, 30) i;
SELECT tokenledger.record_outcome('invoice-processing', 'invoice processed', 10,
								  occurred_at => timestamptz '2026-01-05 15:00+00' + (i % 50) * interval '1 day',
								  value => tokenledger.cost(4.5 + i / 10.0, 'USD'),
								  run_id => 'run-' || i % 17, external_ref => 'invoice-' || i)
FROM generate_series(1, 12) i;
