-- the trigger's catalog cache follows price and rule changes committed by
-- another session (a second connection through dblink)
CREATE EXTENSION IF NOT EXISTS dblink;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s',
	current_database(), current_setting('port'),
	split_part(current_setting('unix_socket_directories'), ',', 1)));

INSERT INTO prices (provider, model, effective_from, rate, source)
VALUES ('cachetest', 'm', '2025-01-01', 'in=1 out=1 USD/1M', 'cache v1');
INSERT INTO usage (occurred_at, provider, model, tokens, app)
VALUES ('2025-02-01', 'cachetest', 'm', 'in=1000000 out=0', 'cache-app');
-- this backend has the catalog cached now; another session changes it
SELECT dblink_exec('other', $$INSERT INTO tokenledger.prices (provider, model, effective_from, rate, source)
	VALUES ('cachetest', 'm', '2025-01-15', 'in=2 out=2 USD/1M', 'cache v2')$$);
SELECT dblink_exec('other', $$INSERT INTO tokenledger.attribution_rules (priority, match_app, initiative)
	VALUES (1, 'cache-app', 'cache-initiative')$$);
INSERT INTO usage (occurred_at, provider, model, tokens, app)
VALUES ('2025-02-01', 'cachetest', 'm', 'in=1000000 out=0', 'cache-app');
SELECT u.id > 0 AS recorded, u.cost, p.source, u.initiative
FROM usage u JOIN prices p ON p.id = u.price_id WHERE u.provider = 'cachetest' ORDER BY u.id;

-- a rolled-back change in the other session leaves the cache as it was
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$UPDATE tokenledger.prices SET rate = 'in=99 out=99 USD/1M' WHERE source = 'cache v2'$$);
INSERT INTO usage (occurred_at, provider, model, tokens) VALUES ('2025-02-02', 'cachetest', 'm', 'in=1000000 out=0');
SELECT dblink_exec('other', 'ROLLBACK');
-- the other session's uncommitted change was never seen
SELECT cost FROM usage WHERE provider = 'cachetest' AND occurred_at = '2025-02-02';

-- a change in this session's own transaction applies to its next insert
BEGIN;
UPDATE prices SET rate = 'in=3 out=3 USD/1M' WHERE source = 'cache v2';
INSERT INTO usage (occurred_at, provider, model, tokens) VALUES ('2025-02-03', 'cachetest', 'm', 'in=1000000 out=0') RETURNING cost AS cost_inside_the_transaction;
ROLLBACK;
INSERT INTO usage (occurred_at, provider, model, tokens) VALUES ('2025-02-04', 'cachetest', 'm', 'in=1000000 out=0');
SELECT occurred_at::date, cost FROM usage WHERE provider = 'cachetest' AND occurred_at >= '2025-02-02' ORDER BY 1;
SELECT dblink_disconnect('other');
