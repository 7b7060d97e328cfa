-- install and use under a hostile search_path: objects that shadow built-ins
-- and the extension's own names must never be picked up
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '1999-01-01 00:00:00+00'::timestamptz $$;
CREATE FUNCTION evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'object'::text $$;
CREATE FUNCTION evil.btrim(text) RETURNS text LANGUAGE sql AS $$ SELECT 'not empty'::text $$;
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
CREATE TABLE evil.usage (id bigint, provider text);
CREATE TABLE evil.prices (id bigint);
SET search_path = evil, pg_catalog, public;
\set VERBOSITY terse
CREATE EXTENSION tokenledger;

-- the install used its own objects and the built-ins
SELECT count(*) AS shipped_prices FROM tokenledger.prices;
SELECT tokenledger.record_usage('openai', 'gpt-4o', '{"input": 1000000, "output": 0}', request_id => 'sec-1') > 0 AS recorded;
SELECT provider, model, cost, occurred_at > '2000-01-01' AS real_now FROM tokenledger.usage WHERE request_id = 'sec-1';
-- a replay with different content is still a conflict (the shadowing <> is not used)
SELECT tokenledger.record_usage('openai', 'gpt-4o', '{"input": 2, "output": 0}', request_id => 'sec-1');
-- tags must still be an object (the shadowing jsonb_typeof is not used)
INSERT INTO tokenledger.usage (provider, model, tokens, tags) VALUES ('openai', 'gpt-4o', 'in=1 out=1', '[1]');
-- an adjustment still needs a reason (the shadowing btrim is not used)
SELECT tokenledger.adjust((SELECT id FROM tokenledger.usage WHERE request_id = 'sec-1'), '-1 USD', '  ');
SELECT count(*) AS evil_usage_rows FROM evil.usage;

-- the insert path's own SQL (cache loads, counters, alerts, registration)
-- runs as the extension's owner with a pinned search_path: a role that may
-- only insert into usage records, is counted, alerted and registers a new
-- initiative, and an unqualified name it planted (pg_catalog's unnest,
-- shadowed in a schema first on its path) is never called
CREATE FUNCTION evil.unnest(numeric[]) RETURNS SETOF numeric LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'planted unnest called';
END $$;
INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
VALUES ('writer budget', 'app', 'writer-app', 'total', '1 USD', '{0.5}');
CREATE ROLE tl_only_insert;
GRANT USAGE ON SCHEMA tokenledger TO tl_only_insert;
GRANT INSERT ON tokenledger.usage TO tl_only_insert;
GRANT USAGE ON SEQUENCE tokenledger.usage_id_seq TO tl_only_insert;
SET ROLE tl_only_insert;
INSERT INTO tokenledger.usage (provider, model, tokens, app, initiative)
VALUES ('openai', 'gpt-4o', 'in=400000 out=0', 'writer-app', 'writer-initiative');
RESET ROLE;
SELECT b.name, s.spent FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id WHERE b.name = 'writer budget';
SELECT a.threshold, a.spent FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b ON b.id = a.budget_id WHERE b.name = 'writer budget';
SELECT name, status FROM tokenledger.initiatives WHERE name = 'writer-initiative';
DROP OWNED BY tl_only_insert;
DROP ROLE tl_only_insert;
RESET search_path;
DROP SCHEMA evil CASCADE;
