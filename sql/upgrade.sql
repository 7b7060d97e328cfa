-- 1.0 -> 1.1: a 1.0 ledger keeps recording with the 1.1 module until it is
-- updated, and keeps its counters, reservations and alerts through the update
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger VERSION '1.0';
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\set VERBOSITY terse
INSERT INTO prices (provider, model, effective_from, rate) VALUES
	('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M'), ('acme', 'e', '2020-01-01', 'in=1 out=0 EUR/1M');
INSERT INTO budgets (name, scope, scope_value, period, amount, mode, warn_at)
VALUES ('up', 'team', 'up', 'total', '10 USD', 'block', '{0.5}');
INSERT INTO usage (provider, model, tokens, team) VALUES
	('acme', 'm', 'in=2000000 out=0', 'up'), ('acme', 'm', 'in=4000000 out=0', 'up'),
	('acme', 'e', 'in=1000000 out=0', 'up');   -- 1.0 leaves other currencies out
SELECT budget_reserve(team => 'up', estimate => '3 USD') IS NOT NULL AS reserved;
SELECT budget_reserve(team => 'up', estimate => '3 USD');
SELECT b.name, s.spent FROM budget_spend s JOIN budgets b ON b.id = s.budget_id;
SELECT threshold, spent FROM budget_alerts;
-- a price a user added under 1.0 for a model 1.1 ships
INSERT INTO prices (provider, model, effective_from, rate, source)
VALUES ('openai', 'gpt-5.1', '2023-01-01', 'in=1 out=8 USD/1M', 'our contract');
SELECT id AS user_price_id FROM prices WHERE model = 'gpt-5.1' \gset

ALTER EXTENSION tokenledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tokenledger';
-- the counters carry their currency now; nothing was lost or counted twice
SELECT b.name, s.spent, s.currency FROM budget_spend s JOIN budgets b ON b.id = s.budget_id;
SELECT name, spent, reserved, remaining FROM budget_check(team => 'up');
SELECT count(*) AS alerts FROM budget_alerts;
-- and recording goes on by the 1.1 rules
INSERT INTO fx_rates VALUES ('EUR', 'USD', 1.5, '2000-01-01');
SELECT name, spent, reserved, remaining FROM budget_check(team => 'up');
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=500000 out=0', 'up');
SELECT name, spent, reserved, remaining FROM budget_check(team => 'up');
SELECT budget_reserve(team => 'up', estimate => '0.5 USD');
-- the shipped rows of 1.1 took fixed ids below zero; the user's row for the
-- same model, tier and time is kept as it was, and prices its calls
SELECT id < 0 AS shipped_id, id = :user_price_id AS users_row, service_tier, rate, source, shipped
FROM prices WHERE model = 'gpt-5.1' ORDER BY service_tier, id;
SELECT cost_of('in=1000000 out=0', 'openai', 'gpt-5.1') AS users_price,
	   cost_of('in=1000000 out=0', 'openai', 'gpt-5.1', 'priority') AS shipped_price;
SELECT id, model FROM prices WHERE shipped AND id < 0 ORDER BY id DESC;
-- the update summed the 1.0 ledger into the rollups: spend_daily holds every
-- call recorded before and after it (2 + 4 USD of m at 1 USD per 1M, and
-- 0.50 after it; 1 EUR of e converted at 1.5)
SELECT model, currency, requests, spend FROM spend_daily WHERE team = 'up' ORDER BY model;
SELECT (SELECT sum(requests) FROM spend_daily) = (SELECT sum(requests) FROM usage WHERE entry = 'call') AS all_calls;
