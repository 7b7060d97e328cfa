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
