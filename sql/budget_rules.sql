-- budgets in one session: subtransactions, currencies, thresholds out of
-- range, accounting without the statement trigger, reprice, the ledger's
-- children
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\set VERBOSITY terse

INSERT INTO prices (provider, model, effective_from, rate) VALUES
	('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M'),
	('acme', 'e', '2020-01-01', 'in=1 out=0 EUR/1M');
-- a budget's counters against the ledger: one row per period, in the budget's currency
CREATE FUNCTION pg_temp.counters(budget text) RETURNS TABLE (period_start timestamptz, counted cost, ledger cost)
LANGUAGE sql AS $$
	SELECT coalesce(c.ps, l.ps), c.spent, l.spent
	FROM (SELECT s.period_start AS ps, tokenledger.sum(s.spent) AS spent
		  FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id
		  WHERE b.name = budget AND s.currency = tokenledger.currency(b.amount) GROUP BY 1) c
	FULL JOIN (SELECT tokenledger.period_start(b.period, u.occurred_at, b.time_zone) AS ps,
					  tokenledger.sum(tokenledger.convert(u.cost, tokenledger.currency(b.amount), u.occurred_at)) AS spent
			   FROM tokenledger.budgets b JOIN tokenledger.usage u
					ON tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
			   WHERE b.name = budget AND u.cost IS NOT NULL GROUP BY 1) l ON l.ps = c.ps
	ORDER BY 1 $$;

-- 1. A subtransaction that aborts takes only its own spend with it: an
-- audit trigger that catches an error, savepoints rolled back and kept
INSERT INTO budgets (name, scope, scope_value, period, amount) VALUES ('audit team', 'team', 'audit', 'total', '100 USD');
CREATE TABLE public.audit_log (usage_id bigint);
CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		INSERT INTO public.audit_log VALUES (NEW.id);
		PERFORM 1 / 0;
	EXCEPTION WHEN division_by_zero THEN
		NULL;  -- audit failures must not stop recording
	END;
	RETURN NULL;
END $$;
CREATE TRIGGER usage_audit AFTER INSERT ON usage FOR EACH ROW EXECUTE FUNCTION public.audit();
INSERT INTO usage (provider, model, tokens, team) VALUES
	('acme', 'm', 'in=1000000 out=0', 'audit'), ('acme', 'm', 'in=2000000 out=0', 'audit');
SELECT counted, ledger FROM pg_temp.counters('audit team');
BEGIN;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=4000000 out=0', 'audit');
SAVEPOINT s1;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=8000000 out=0', 'audit');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=16000000 out=0', 'audit');
RELEASE SAVEPOINT s2;
-- within the transaction too: 3 + 4 + 16
SELECT spent FROM budget_check(team => 'audit');
COMMIT;
SELECT counted, ledger FROM pg_temp.counters('audit team');
DROP TRIGGER usage_audit ON usage;

-- 2. Currencies: spend in another currency is converted at the row's time;
-- without a rate it is counted apart, in its own currency
INSERT INTO budgets (name, scope, scope_value, period, amount, mode) VALUES
	('fx usd', 'team', 'fx', 'month', '100 USD', 'alert'),
	('fx eur', 'app', 'fx-app', 'total', '100 EUR', 'alert'),
	('fx block', 'team', 'fx', 'total', '100 USD', 'block');
INSERT INTO usage (occurred_at, provider, model, tokens, team, app) VALUES
	('2026-01-10', 'acme', 'e', 'in=10000000 out=0', 'fx', 'fx-app'),   -- 10 EUR, no rate yet
	('2026-01-11', 'acme', 'm', 'in=5000000 out=0', 'fx', 'fx-app');    -- 5 USD, no rate yet
SELECT b.name, s.period_start, s.currency, tokenledger.sum(s.spent) AS spent
FROM budget_spend s JOIN budgets b ON b.id = s.budget_id WHERE b.name LIKE 'fx %' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT name, spent, reserved, amount, currency, unconverted FROM budget_status WHERE name LIKE 'fx %' ORDER BY name;
-- a block budget with spend it cannot convert refuses reservations (22023), never guesses
SELECT budget_reserve(team => 'fx', estimate => '1 USD');
SELECT name, allowed FROM budget_check(team => 'fx') ORDER BY name;
-- rates convert at each row's time: 1.10 in January, 1.20 from February
INSERT INTO fx_rates VALUES ('EUR', 'USD', 1.10, '2026-01-01'), ('EUR', 'USD', 1.20, '2026-02-01');
INSERT INTO usage (occurred_at, provider, model, tokens, team, app) VALUES
	('2026-02-10', 'acme', 'e', 'in=10000000 out=0', 'fx', 'fx-app');   -- 10 EUR = 12 USD
SELECT b.name, s.period_start, s.currency, tokenledger.sum(s.spent) AS spent
FROM budget_spend s JOIN budgets b ON b.id = s.budget_id WHERE b.name LIKE 'fx %' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT * FROM pg_temp.counters('fx usd');
SELECT * FROM pg_temp.counters('fx eur');
-- a reservation in another currency is held in the budget's, at today's rate
SELECT name, spent, unconverted FROM budget_status WHERE name LIKE 'fx %' ORDER BY name;
SELECT budget_reserve(team => 'fx', estimate => '1000000 EUR');
SELECT budget_reserve(team => 'fx', estimate => '5 EUR') IS NOT NULL AS held;
SELECT b.name, h.amount FROM budget_holds h JOIN budgets b ON b.id = h.budget_id WHERE b.name LIKE 'fx %' ORDER BY 1, 2;
-- no rate for the estimate: refused (the message names the day)
\set VERBOSITY sqlstate
SELECT budget_reserve(team => 'fx', estimate => '1 GBP');
\set VERBOSITY terse
-- a budget whose currency changes is counted again in the new one
UPDATE budgets SET amount = '100 EUR' WHERE name = 'fx usd';
SELECT b.name, s.currency, tokenledger.sum(s.spent) AS spent
FROM budget_spend s JOIN budgets b ON b.id = s.budget_id WHERE b.name = 'fx usd' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT name, status, spent FROM budget_check(team => 'fx') WHERE name = 'fx usd';
SELECT * FROM pg_temp.counters('fx usd');

-- 3. A threshold beyond what a counter can hold never stops recording
INSERT INTO budgets (name, scope, period, amount, warn_at) VALUES ('huge', 'global', 'total', '9000000000 USD', '{0.5,1000}');
INSERT INTO usage (provider, model, tokens) VALUES ('acme', 'm', 'in=1000000 out=0');
SELECT name, status FROM budget_check() WHERE name = 'huge';

-- 4. The accounting does not depend on the statement trigger: rows written
-- where it does not fire are counted before the transaction commits
ALTER TABLE usage DISABLE TRIGGER usage_budget_flush;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1000000 out=0', 'audit');
BEGIN;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1000000 out=0', 'audit');
SAVEPOINT s;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=50000000 out=0', 'audit');
ROLLBACK TO SAVEPOINT s;
COMMIT;
ALTER TABLE usage ENABLE TRIGGER usage_budget_flush;
SELECT counted, ledger FROM pg_temp.counters('audit team');
-- no table may inherit from the ledger: its rows would escape all of this
CREATE TABLE public.usage_child () INHERITS (usage);
CREATE TABLE public.loose (LIKE usage INCLUDING CONSTRAINTS);
ALTER TABLE public.loose INHERIT usage;
DROP TABLE public.loose;

-- 5. reprice() touches, and locks, only the calls a price now applies to
INSERT INTO usage (provider, model, tokens) VALUES ('acme', 'later', 'in=1000000 out=0'), ('acme', 'never', 'in=1 out=0');
SELECT reprice() AS priced_none;
SELECT model, xmax = '0' AS untouched FROM usage WHERE cost IS NULL ORDER BY model;
INSERT INTO prices (provider, model, effective_from, rate) VALUES ('acme', 'later', '2020-01-01', 'in=2 out=0 USD/1M');
SELECT reprice() AS priced;
SELECT model, cost, xmax = '0' AS untouched FROM usage WHERE model IN ('later', 'never') ORDER BY model;

-- 6. catalog triggers fire on logical-replication subscribers too
SELECT tgrelid::regclass, tgname, tgenabled FROM pg_trigger
WHERE tgfoid = 'tokenledger.catalog_changed'::regproc ORDER BY 1, 2;

-- 7. rerate() refuses a snapshot that cannot see a concurrent run's corrections
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT rerate('acme', 'm', '2020-01-01', '2030-01-01');
ROLLBACK;

-- 8. A counter beyond what one row holds goes on in further rows: recording
-- is never refused because a budget's spend is large (9e9 VND is less than
-- 370,000 USD)
INSERT INTO fx_rates VALUES ('USD', 'VND', 25000, '2020-01-01');
INSERT INTO budgets (name, scope, scope_value, period, amount) VALUES ('dong', 'team', 'vn', 'year', '9000000000 VND');
INSERT INTO usage (provider, model, tokens, cost, team) VALUES
	('acme', 'm', 'in=1 out=0', '200000 USD', 'vn'), ('acme', 'm', 'in=1 out=0', '200000 USD', 'vn');
INSERT INTO usage (provider, model, tokens, cost, team) VALUES ('acme', 'm', 'in=1 out=0', '200000 USD', 'vn');
SELECT count(*) AS counter_rows, sum(tokenledger.amount(s.spent)) AS vnd
FROM budget_spend s JOIN budgets b ON b.id = s.budget_id WHERE b.name = 'dong';
SELECT count(*) AS recorded FROM usage WHERE team = 'vn';

-- 9. A recorded row by its key, from a parallel query too
INSERT INTO usage (provider, model, tokens, request_id) SELECT 'acme', 'm', 'in=1 out=0', 'par-' || i FROM generate_series(1, 200) i;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT count((recorded_usage(u.request_id)).id) AS found FROM usage u WHERE u.request_id LIKE 'par-%';
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
