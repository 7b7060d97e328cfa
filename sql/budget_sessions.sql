-- budgets and caches seen from other sessions (a second connection through
-- dblink): budgets created and changed elsewhere, REPEATABLE READ, replica
-- sessions, two-phase commit, DROP and CREATE EXTENSION
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger;
CREATE EXTENSION IF NOT EXISTS dblink;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\set VERBOSITY terse
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
	split_part(current_setting('unix_socket_directories'), ',', 1)) AS conninfo \gset
SELECT dblink_connect('other', :'conninfo');
SELECT dblink_exec('other', 'SET statement_timeout = ''10s''');
INSERT INTO prices (provider, model, effective_from, rate) VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M');
CREATE FUNCTION pg_temp.spent(budget text) RETURNS cost LANGUAGE sql AS $$
	SELECT tokenledger.sum(s.spent) FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id
	WHERE b.name = budget $$;

-- 1. A budget created, changed or deactivated in another session counts in
-- this one from its next row on (this backend had its budgets cached)
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1000000 out=0', 'pool');
SELECT dblink_exec('other', $$INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
	VALUES ('pool', 'team', 'pool', 'total', '10 USD', '{0.5}')$$);
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=2000000 out=0', 'pool');
SELECT pg_temp.spent('pool') AS counted_with_earlier_spend;
-- a lowered amount: the next row's alert check uses it
SELECT dblink_exec('other', $$UPDATE tokenledger.budgets SET amount = '5 USD' WHERE name = 'pool'$$);
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1 out=0', 'pool');
SELECT a.threshold, a.spent, a.amount FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id WHERE b.name = 'pool';
-- deactivated elsewhere: no longer counted here
SELECT dblink_exec('other', $$UPDATE tokenledger.budgets SET active = false WHERE name = 'pool'$$);
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=4000000 out=0', 'pool');
SELECT pg_temp.spent('pool') AS counted_while_inactive;
SELECT dblink_exec('other', $$UPDATE tokenledger.budgets SET active = true WHERE name = 'pool'$$);
SELECT pg_temp.spent('pool') AS counted_again_when_reactivated;

-- 2. A price committed while this session is in a REPEATABLE READ
-- transaction: the cache holds what is committed now, so the price is used
-- at once, and from then on (it is not loaded under the old snapshot and kept)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) > 0 AS snapshot_taken FROM prices;
SELECT dblink_exec('other', $$INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
	VALUES ('acme', 'rr', '2020-01-01', 'in=7 out=0 USD/1M')$$);
INSERT INTO usage (provider, model, tokens, app) VALUES ('acme', 'rr', 'in=1000000 out=0', 'rr') RETURNING cost AS cost_in_the_old_snapshot;
COMMIT;
INSERT INTO usage (provider, model, tokens, app) VALUES ('acme', 'rr', 'in=1000000 out=0', 'rr') RETURNING cost AS cost_after;

-- 3. Block budgets do not overrun under REPEATABLE READ: a reservation
-- committed by another session after this transaction's snapshot counts
INSERT INTO budgets (name, scope, scope_value, period, amount, mode) VALUES ('rr block', 'team', 'rrb', 'total', '10 USD', 'block');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS holds_seen FROM budget_holds;
SELECT r IS NOT NULL AS reserved_elsewhere FROM dblink('other', $$SELECT tokenledger.budget_reserve(team => 'rrb', estimate => '8 USD')$$) AS t(r uuid);
SELECT budget_reserve(team => 'rrb', estimate => '8 USD');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT count(*) AS holds_seen FROM budget_holds;
SELECT dblink_exec('other', $$INSERT INTO tokenledger.usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1500000 out=0', 'rrb')$$);
SELECT budget_reserve(team => 'rrb', estimate => '1 USD');
ROLLBACK;
SELECT name, spent, reserved, remaining FROM budget_check(team => 'rrb');

-- 4. Recording under REPEATABLE READ: a replay of a request_id that another
-- session committed after the snapshot returns its id; the same key with
-- other content is refused
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 AS snapshot_taken FROM usage;
SELECT id AS other_id FROM dblink('other', $$SELECT tokenledger.record_usage('acme', 'm', '{"input": 10, "output": 0}', request_id => 'rr-req')$$) AS t(id bigint) \gset
SELECT record_usage('acme', 'm', '{"input": 10, "output": 0}', request_id => 'rr-req') = :other_id AS same_id;
SELECT record_usage('acme', 'm', '{"input": 11, "output": 0}', request_id => 'rr-req');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 AS snapshot_taken FROM outcomes;
SELECT id AS other_id FROM dblink('other', $$SELECT tokenledger.record_outcome('rr-init', 'done', external_ref => 'rr-ref')$$) AS t(id bigint) \gset
SELECT record_outcome('rr-init', 'done', external_ref => 'rr-ref') = :other_id AS same_id;
ROLLBACK;

-- 5. Catalog changes made in a replica session (a logical-replication
-- subscriber applies changes so) reach the other backends' caches
INSERT INTO prices (provider, model, effective_from, rate) VALUES ('acme', 'r', '2020-01-01', 'in=1 out=0 USD/1M');
INSERT INTO usage (provider, model, tokens, app) VALUES ('acme', 'r', 'in=1000000 out=0', 'repl') RETURNING cost AS cost_before;
SELECT dblink_exec('other', 'SET session_replication_role = replica');
SELECT dblink_exec('other', $$INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
	VALUES ('acme', 'r', '2021-01-01', 'in=3 out=0 USD/1M')$$);
SELECT dblink_exec('other', 'RESET session_replication_role');
INSERT INTO usage (provider, model, tokens, app) VALUES ('acme', 'r', 'in=1000000 out=0', 'repl') RETURNING cost AS cost_at_the_replicated_price;

-- 6. Two-phase commit: a recorder whose spend crosses a threshold can be
-- prepared; recorders after it (a new backend too) are not held up; its
-- alert is raised by the next recording once it commits
INSERT INTO budgets (name, scope, scope_value, period, amount, warn_at) VALUES ('twopc', 'team', '2pc', 'total', '10 USD', '{0.5}');
BEGIN;
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=6000000 out=0', '2pc');
PREPARE TRANSACTION 'tokenledger-2pc';
SELECT dblink_exec('other', $$INSERT INTO tokenledger.usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1000000 out=0', '2pc')$$);
\c
SET search_path = public, tokenledger;
SET statement_timeout = '10s';
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1000000 out=0', '2pc');
SELECT count(*) AS alerts_while_prepared FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id WHERE b.name = 'twopc';
COMMIT PREPARED 'tokenledger-2pc';
INSERT INTO usage (provider, model, tokens, team) VALUES ('acme', 'm', 'in=1 out=0', '2pc');
SELECT a.threshold, a.spent FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id WHERE b.name = 'twopc';
SELECT name, spent FROM budget_check(team => '2pc');
RESET statement_timeout;

-- 7. DROP and CREATE EXTENSION: backends that recorded before record after
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
	split_part(current_setting('unix_socket_directories'), ',', 1)) AS conninfo \gset
SELECT dblink_connect('other', :'conninfo');
SELECT dblink_exec('other', $$INSERT INTO tokenledger.usage (provider, model, tokens, team, initiative)
	VALUES ('acme', 'm', 'in=1000000 out=0', 'pool', 'before-drop')$$);
INSERT INTO usage (provider, model, tokens, team, reservation_id) VALUES ('acme', 'm', 'in=1000000 out=0', 'pool',
	budget_reserve(team => 'pool', estimate => '1 USD'));
DROP EXTENSION tokenledger CASCADE;
CREATE EXTENSION tokenledger;
INSERT INTO prices (provider, model, effective_from, rate) VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M');
INSERT INTO budgets (name, scope, scope_value, period, amount, warn_at) VALUES ('pool', 'team', 'pool', 'total', '10 USD', '{0.1}');
SELECT dblink_exec('other', $$INSERT INTO tokenledger.usage (provider, model, tokens, team, initiative)
	VALUES ('acme', 'm', 'in=1000000 out=0', 'pool', 'after-drop')$$);
INSERT INTO usage (provider, model, tokens, team, initiative, reservation_id) VALUES ('acme', 'm', 'in=2000000 out=0', 'pool', 'after-drop',
	budget_reserve(team => 'pool', estimate => '2 USD'));
SELECT (SELECT tokenledger.sum(s.spent) FROM budget_spend s) AS counted, (SELECT sum(cost) FROM usage) AS ledger;
SELECT count(*) AS alerts FROM budget_alerts;
SELECT name FROM initiatives ORDER BY 1;
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
