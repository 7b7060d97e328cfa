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
RESET search_path;
DROP SCHEMA evil CASCADE;
