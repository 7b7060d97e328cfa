-- budgets: calendar periods in time zones, accounting, reservations, alerts
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\set VERBOSITY terse

-- calendar periods: weeks start on Monday; months, quarters and DST in the budget's zone
SELECT p, period_start(p, '2026-03-29 12:00:00+00', 'Europe/Berlin') AS starts,
       period_end(p, '2026-03-29 12:00:00+00', 'Europe/Berlin') AS ends
FROM unnest(ARRAY['day', 'week', 'month', 'quarter', 'year', 'total']) p;
-- 29 March 2026 is a 23-hour day in Berlin (DST starts); 25 October a 25-hour one
SELECT period_end('day', '2026-03-29 12:00:00+00', 'Europe/Berlin') - period_start('day', '2026-03-29 12:00:00+00', 'Europe/Berlin') AS spring_day,
       period_end('day', '2026-10-25 12:00:00+00', 'Europe/Berlin') - period_start('day', '2026-10-25 12:00:00+00', 'Europe/Berlin') AS autumn_day;
-- the same instant falls in different days, months and quarters by zone
SELECT z, period_start('day', '2026-03-31 23:30:00+00', z) AS day_start,
       period_start('quarter', '2026-03-31 23:30:00+00', z) AS quarter_start
FROM unnest(ARRAY['UTC', 'Asia/Tokyo', 'America/Los_Angeles']) z;
SELECT period_start('week', '2026-11-22 10:00:00+00') AS sunday_is_in_the_week_of, period_start('week', '2026-11-23 00:00:00+00') AS monday;
INSERT INTO budgets (name, scope, period, amount, time_zone) VALUES ('bad zone', 'global', 'day', '1 USD', 'Mars/Olympus');
INSERT INTO budgets (name, scope, scope_value, period, amount) VALUES ('global with value', 'global', 'x', 'day', '1 USD');
INSERT INTO budgets (name, scope, period, amount) VALUES ('zero', 'global', 'day', '0 USD');

-- accounting follows the ledger, by the row's time in the budget's zone
INSERT INTO budgets (name, scope, scope_value, period, amount, mode, time_zone, warn_at) VALUES
	('support tokyo day', 'team', 'support', 'day', '10 USD', 'block', 'Asia/Tokyo', '{0.5,0.8,1.0}'),
	('global month', 'global', NULL, 'month', '1000 USD', 'alert', 'UTC', '{0.9}'),
	('ops key', 'api_key', 'key-ops', 'total', '5 USD', 'block', 'UTC', '{1.0}');
INSERT INTO prices (provider, model, effective_from, rate) VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M');
INSERT INTO usage (occurred_at, provider, model, tokens, team) VALUES
	('2026-03-31 14:00:00+00', 'acme', 'm', 'in=2000000 out=0', 'support'),   -- Tokyo: 31 March 23:00
	('2026-03-31 16:00:00+00', 'acme', 'm', 'in=3000000 out=0', 'support');   -- Tokyo: 1 April 01:00
SELECT b.name, s.period_start, tokenledger.sum(s.spent) AS spent
FROM budget_spend s JOIN budgets b ON b.id = s.budget_id GROUP BY 1, 2 ORDER BY 1, 2;
-- corrections count too, at the original's time
SELECT adjust((SELECT min(id) FROM usage), '-0.5 USD', 'credit') > 0 AS adjusted;
SELECT b.name, s.period_start, tokenledger.sum(s.spent) AS spent
FROM budget_spend s JOIN budgets b ON b.id = s.budget_id WHERE b.name = 'support tokyo day' GROUP BY 1, 2 ORDER BY 1, 2;
-- a rolled-back recording leaves no accounting behind
BEGIN;
INSERT INTO usage (occurred_at, provider, model, tokens, team) VALUES ('2026-03-31 16:30:00+00', 'acme', 'm', 'in=4000000 out=0', 'support');
ROLLBACK;
-- the counters equal the ledger's sums for every budget and period
SELECT b.name, count(*) FILTER (WHERE s.spent IS DISTINCT FROM l.spent) AS mismatches
FROM budgets b
CROSS JOIN LATERAL (SELECT period_start(b.period, u.occurred_at, b.time_zone) AS ps, tokenledger.sum(u.cost) AS spent
                    FROM usage u WHERE u.cost IS NOT NULL AND budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
                    GROUP BY 1) l
LEFT JOIN LATERAL (SELECT tokenledger.sum(x.spent) AS spent FROM budget_spend x WHERE x.budget_id = b.id AND x.period_start = l.ps) s ON true
GROUP BY 1 ORDER BY 1;
-- a budget created later counts what is already in the ledger
INSERT INTO budgets (name, scope, scope_value, period, amount) VALUES ('support year', 'team', 'support', 'year', '100 USD');
SELECT tokenledger.sum(spent) FROM budget_spend s JOIN budgets b ON b.id = s.budget_id WHERE b.name = 'support year';

-- budget_check and reservations (now: a fixed budget on the total period)
INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm', 'in=3000000 out=0', 'key-ops');
SELECT name, allowed, status, spent, reserved, amount, remaining FROM budget_check(api_key => 'key-ops', estimate => '1 USD');
SELECT name, allowed FROM budget_check(api_key => 'key-ops', estimate => '2.5 USD') WHERE name = 'ops key';
SELECT budget_reserve(api_key => 'key-ops', estimate => '1.5 USD') IS NOT NULL AS first_reservation;
SELECT name, spent, reserved, remaining FROM budget_check(api_key => 'key-ops') WHERE name = 'ops key';
SELECT budget_reserve(api_key => 'key-ops', estimate => '1 USD');
-- released reservations free the budget; expired ones no longer count
SELECT budget_release((SELECT id FROM budget_reservations WHERE api_key = 'key-ops' ORDER BY created_at LIMIT 1)) AS released;
SELECT budget_release((SELECT id FROM budget_reservations WHERE api_key = 'key-ops' ORDER BY created_at LIMIT 1)) AS released_again;
SELECT budget_reserve(api_key => 'key-ops', estimate => '1.9 USD', ttl => '1 millisecond') IS NOT NULL AS short_lived;
SELECT pg_sleep(0.01);
SELECT name, reserved FROM budget_check(api_key => 'key-ops') WHERE name = 'ops key';
-- a usage row with the reservation_id settles it: the hold becomes spend
SELECT budget_reserve(api_key => 'key-ops', estimate => '1 USD') AS rid \gset
SELECT name, spent, reserved FROM budget_check(api_key => 'key-ops') WHERE name = 'ops key';
INSERT INTO usage (provider, model, tokens, api_key, reservation_id) VALUES ('acme', 'm', 'in=800000 out=0', 'key-ops', :'rid');
SELECT name, spent, reserved FROM budget_check(api_key => 'key-ops') WHERE name = 'ops key';
SELECT settled_at IS NOT NULL AS settled, settled_by = (SELECT max(id) FROM usage) AS by_the_usage_row FROM budget_reservations WHERE id = :'rid';
-- spend is never refused: past the amount it is recorded, and reservations stop
INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm', 'in=2000000 out=0', 'key-ops');
SELECT name, status, spent, remaining FROM budget_check(api_key => 'key-ops') WHERE name = 'ops key';
SELECT budget_reserve(api_key => 'key-ops', estimate => '0.01 USD');
SELECT budget_reserve(api_key => 'key-ops', estimate => NULL);
SELECT budget_reserve(api_key => 'key-ops', estimate => '-1 USD');

-- alerts: one per budget, period and threshold, raised when the spend reaches it
SELECT b.name, a.threshold, a.spent, a.amount FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id ORDER BY a.id;
INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm', 'in=100000 out=0', 'key-ops');
SELECT count(*) AS alerts_after_more_spend FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id WHERE b.name = 'ops key';
BEGIN;
INSERT INTO budgets (name, scope, period, amount, warn_at) VALUES ('rolled back', 'global', 'total', '1 USD', '{0.1}');
INSERT INTO usage (provider, model, tokens) VALUES ('acme', 'm', 'in=200000 out=0');
-- alerts are raised when the recording commits, not before
SELECT count(*) AS alerts_before_commit FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id WHERE b.name = 'rolled back';
ROLLBACK;
SELECT count(*) AS alerts_of_rolled_back_budget FROM budget_alerts a WHERE NOT EXISTS (SELECT 1 FROM budgets b WHERE b.id = a.budget_id);

SELECT name, scope, period, spent, reserved, amount, remaining, currency, status FROM budget_status
WHERE name <> 'support year' ORDER BY budget_id;
