-- the ledger: pricing, model resolution, attribution, append-only rules,
-- idempotency and corrections
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
-- runs q; returns 'ok' or the error's SQLSTATE, message and detail
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	-- a failing row's values include timestamps: leave them out
	detail := regexp_replace(detail, '^Failing row contains .*$', 'Failing row contains (...).');
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' | ' || detail, ' | '), '');
END $$;

-- the shipped catalog
SELECT provider, count(DISTINCT model) AS models, count(*) AS price_rows,
       count(*) FILTER (WHERE service_tier = 'batch') AS batch_rows,
       count(*) FILTER (WHERE min_input_tokens > 0) AS long_context_rows,
       bool_and(source IS NOT NULL AND shipped) AS all_sourced
FROM prices GROUP BY provider ORDER BY provider;

-- a test catalog with two versions and a long-context tier
INSERT INTO prices (provider, model, service_tier, effective_from, rate, min_input_tokens, source) VALUES
	('acme', 'm1', 'standard', '2025-01-01', 'in=2 out=8 cache_read=0.5 cache_write=2.5 cache_write_1h=4 USD/1M', 0, 'test v1'),
	('acme', 'm1', 'standard', '2025-06-01', 'in=1 out=4 cache_read=0.25 cache_write=1.25 cache_write_1h=2 USD/1M', 0, 'test v2'),
	('acme', 'm1', 'standard', '2025-01-01', 'in=4 out=16 USD/1M', 100000, 'test long context'),
	('acme', 'm1', 'standard', '2025-06-01', 'in=4 out=16 USD/1M', 100000, 'test long context v2'),
	('acme', 'm1', 'batch', '2025-01-01', 'in=1 out=4 USD/1M', 0, 'test batch'),
	('acme', 'm2', 'standard', '2025-01-01', 'in=0.1 out=0.4 EUR/1M', 0, 'test euro');
INSERT INTO model_aliases (provider, alias, model) VALUES ('acme', 'm1-latest', 'm1');

-- price lookup: newest effective version, highest applicable tier, exact to the nano
SELECT label, cost_of(t, 'acme', m, tier, at) AS cost
FROM (VALUES
	('v1 before the change', 'in=1000 out=500 cache_read=200 cache_write=100 cache_write_1h=10'::tokens, 'm1', 'standard', '2025-03-01'::timestamptz),
	('v2 after the change', 'in=1000 out=500 cache_read=200 cache_write=100 cache_write_1h=10', 'm1', 'standard', '2025-07-01'),
	('exactly at effective_from', 'in=1000000 out=0', 'm1', 'standard', '2025-06-01 00:00:00'),
	('before any price', 'in=1000 out=500', 'm1', 'standard', '2024-12-31'),
	('prompt of 100000: base tier', 'in=100000 out=1000', 'm1', 'standard', '2025-07-01'),
	('prompt of 100001: long context', 'in=90000 out=1000 cache_read=10001', 'm1', 'standard', '2025-07-01'),
	('batch tier', 'in=1000000 out=1000000', 'm1', 'batch', '2025-07-01'),
	('unknown tier', 'in=1000 out=500', 'm1', 'flex', '2025-07-01'),
	('alias', 'in=1000000 out=0', 'm1-latest', 'standard', '2025-07-01'),
	('suffix -YYYY-MM-DD', 'in=1000000 out=0', 'm1-2025-05-01', 'standard', '2025-07-01'),
	('suffix -YYYYMMDD', 'in=1000000 out=0', 'm1-20250501', 'standard', '2025-07-01'),
	('suffix @YYYYMMDD', 'in=1000000 out=0', 'm1@20250501', 'standard', '2025-07-01'),
	('alias with a suffix', 'in=1000000 out=0', 'm1-latest-20250501', 'standard', '2025-07-01'),
	('not a date suffix', 'in=1000000 out=0', 'm1-2025', 'standard', '2025-07-01'),
	('unknown model', 'in=1000000 out=0', 'nope', 'standard', '2025-07-01'),
	('euro catalog row', 'in=1000000 out=1000000', 'm2', 'standard', '2025-07-01'),
	('one token, rounded', 'in=1 out=0', 'm2', 'standard', '2025-07-01')) v(label, t, m, tier, at);
-- a new base row starts a new price list: the long-context row of the old
-- list retires with it, unless the new list has one of its own
INSERT INTO prices (provider, model, service_tier, effective_from, rate, min_input_tokens, source) VALUES
	('acme', 'lc', 'standard', '2025-01-01', 'in=1 out=1 USD/1M', 0, 'lc base v1'),
	('acme', 'lc', 'standard', '2025-01-01', 'in=2 out=2 USD/1M', 1000, 'lc long v1'),
	('acme', 'lc', 'standard', '2025-06-01', 'in=3 out=3 USD/1M', 0, 'lc base v2'),
	('acme', 'lc', 'standard', '2025-09-01', 'in=5 out=5 USD/1M', 1000, 'lc long v2, added later');
SELECT at::date, p.source AS small_prompt, q.source AS large_prompt
FROM unnest(ARRAY['2025-03-01', '2025-07-01', '2025-10-01']::timestamptz[]) at
JOIN prices p ON p.id = price_of('in=10 out=0', 'acme', 'lc', 'standard', at)
JOIN prices q ON q.id = price_of('in=5000 out=0', 'acme', 'lc', 'standard', at)
ORDER BY 1;
SELECT resolve_model('openai', 'gpt-4o-2024-08-06'), resolve_model('anthropic', 'claude-3-5-sonnet-latest'),
       resolve_model('anthropic', 'claude-sonnet-4-5@20250929'), resolve_model('openai', 'gpt-99');
-- shipped prices of real models, to the nano
SELECT cost_of('in=1200 out=350 cache_read=800'::tokens, 'openai', 'gpt-4o-2024-08-06') AS gpt_4o,
       cost_of('in=5000 out=800 cache_read=20000 cache_write=3000 cache_write_1h=1000'::tokens, 'anthropic', 'claude-sonnet-4-5-20250929') AS sonnet,
       cost_of('in=250000 out=1000'::tokens, 'anthropic', 'claude-sonnet-4-5') AS sonnet_long,
       cost_of('in=1000000 out=1000000'::tokens, 'google', 'gemini-2.5-pro', 'batch') AS gemini_batch;

-- inserts are priced, and keep the price row
INSERT INTO usage (occurred_at, provider, model, tokens, initiative, team) VALUES
	('2025-03-01', 'acme', 'm1', 'in=1000 out=500', 'support-triage', 'support'),
	('2025-07-01', 'acme', 'm1-20250501', 'in=1000 out=500', 'support-triage', NULL),
	('2025-07-01', 'acme', 'unknown-model', 'in=1000 out=500', NULL, NULL);
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative) VALUES
	('2025-07-01', 'acme', 'm1', 'in=1000 out=500', '0.42 USD', 'billing');
SELECT u.id, u.model, u.tokens, u.cost, p.source AS priced_by, u.initiative, u.team, u.attribution
FROM usage u LEFT JOIN prices p ON p.id = u.price_id ORDER BY u.id;
SELECT name, team, status FROM initiatives ORDER BY name;

-- attribution rules: lowest priority wins, NULL matches anything, tags by containment
UPDATE initiatives SET team = 'support' WHERE name = 'support-triage';
INSERT INTO attribution_rules (priority, match_api_key, match_app, match_principal, match_model, match_tags, initiative, team) VALUES
	(10, 'key-support', NULL, NULL, NULL, NULL, 'support-triage', NULL),
	(20, NULL, 'copilot', NULL, NULL, NULL, 'coding-assistants', 'engineering'),
	(5, NULL, 'copilot', 'alice', NULL, NULL, 'alice-experiments', NULL),
	(30, NULL, NULL, NULL, 'm2', '{"env": "prod", "feature": "ocr"}', 'invoice-ocr', 'finance'),
	(40, NULL, NULL, NULL, NULL, '{"env": "prod"}', NULL, 'platform');
INSERT INTO usage (occurred_at, provider, model, tokens, api_key, app, principal, tags) VALUES
	('2025-07-02', 'acme', 'm1', 'in=10 out=10', 'key-support', NULL, NULL, '{}'),
	('2025-07-02', 'acme', 'm1', 'in=10 out=10', NULL, 'copilot', 'bob', '{}'),
	('2025-07-02', 'acme', 'm1', 'in=10 out=10', NULL, 'copilot', 'alice', '{}'),
	('2025-07-02', 'acme', 'm2', 'in=10 out=10', NULL, NULL, NULL, '{"env": "prod", "feature": "ocr", "x": 1}'),
	('2025-07-02', 'acme', 'm2', 'in=10 out=10', NULL, NULL, NULL, '{"env": "prod"}'),
	('2025-07-02', 'acme', 'm1', 'in=10 out=10', NULL, NULL, NULL, '{"env": "dev"}'),
	('2025-07-02', 'acme', 'm1', 'in=10 out=10', 'key-support', 'copilot', NULL, '{}');
SELECT u.id, u.api_key, u.app, u.principal, u.tags, u.initiative, u.team,
       u.attribution = 'unattributed' OR r.id IS NOT NULL AS rule_exists,
       coalesce(r.priority::text, '-') AS rule_priority
FROM usage u LEFT JOIN attribution_rules r ON u.attribution = 'rule:' || r.id
WHERE u.occurred_at = '2025-07-02' ORDER BY u.id;

-- multi-row INSERT and COPY run the same trigger
INSERT INTO usage (occurred_at, provider, model, tokens, app)
SELECT '2025-08-01'::timestamptz + i * interval '1 minute', 'acme', 'm1', tokens(i * 1000, i * 100), 'copilot'
FROM generate_series(1, 5) i;
COPY usage (occurred_at, provider, model, service_tier, tokens, api_key, request_id) FROM stdin;
2025-08-02 10:00:00+00	acme	m1	standard	in=2000 out=100	key-support	copy-1
2025-08-02 10:01:00+00	acme	m1	batch	in=1000000 out=0	\N	copy-2
2025-08-02 10:02:00+00	acme	m1-latest	standard	in=1000000 out=0	\N	copy-3
2025-08-02 10:03:00+00	acme	mystery	standard	in=5 out=5	\N	copy-4
\.
SELECT occurred_at, model, service_tier, tokens, cost, initiative, attribution ~ '^(explicit|unattributed|rule:[0-9]+)$' AS valid_attribution
FROM usage WHERE occurred_at >= '2025-08-01' ORDER BY occurred_at;
SELECT count(*) AS calls, count(cost) AS priced, sum(cost) FILTER (WHERE currency(cost) = 'USD') AS usd_total
FROM usage WHERE entry = 'call';

-- secrets are never stored
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm1', 'in=1 out=1', 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm1', 'in=1 out=1', 'sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm1', 'in=1 out=1', 'AIzaSyA-1234567890abcdefghijklmnopqrstu')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, api_key) VALUES ('acme', 'm1', 'in=1 out=1', 'key-support')$$) AS key_name_is_fine;
-- bad input is refused whole: nothing of a failed multi-row insert remains
SELECT count(*) AS before FROM usage;
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens) VALUES ('acme', 'm1', 'in=1 out=1'), ('acme', 'm1', 'in=1 out=-1')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, entry) VALUES ('acme', 'm1', 'in=1 out=1', 'refund')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, requests) VALUES ('acme', 'm1', 'in=1 out=1', -1)$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, entry) VALUES ('acme', 'm1', 'in=1 out=1', 'adjustment')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, adjusts) VALUES ('acme', 'm1', 'in=1 out=1', 1)$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, tags) VALUES ('acme', 'm1', 'in=1 out=1', '"x"')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, tags) VALUES ('acme', 'm1', 'in=1 out=1', '[]')$$);
SELECT a, pg_temp.err(format($$INSERT INTO usage (provider, model, tokens, attribution) VALUES ('acme', 'm1', 'in=1 out=1', %L)$$, a))
FROM unnest(ARRAY['rule:', 'rule:7x', 'rule:-7', 'Explicit', 'unattributed ', '']) a;
SELECT pg_temp.err($$INSERT INTO outcomes (initiative, metric, quantity) VALUES ('i', 'm', -0.5)$$);
SELECT pg_temp.err($$INSERT INTO outcomes (initiative, metric, attributes) VALUES ('i', 'm', '[1]')$$);
-- the error names the table, the column and the constraint, as a CHECK's does
DO $$
DECLARE t text; c text; k text;
BEGIN
	INSERT INTO usage (provider, model, tokens, requests) VALUES ('acme', 'm1', 'in=1 out=1', -2);
EXCEPTION WHEN check_violation THEN
	GET STACKED DIAGNOSTICS t = TABLE_NAME, c = COLUMN_NAME, k = CONSTRAINT_NAME;
	RAISE NOTICE 'table %, column %, constraint %', t, c, k;
END $$;
SELECT count(*) AS after FROM usage;

-- append-only
SELECT pg_temp.err($$UPDATE usage SET cost = '0 USD' WHERE id = 1$$);
SELECT pg_temp.err($$UPDATE usage SET initiative = 'other' WHERE id = 3$$);
SELECT pg_temp.err($$DELETE FROM usage WHERE id = 1$$);
SELECT pg_temp.err($$TRUNCATE usage$$);
SELECT pg_temp.err($$DELETE FROM usage WHERE false$$) AS even_no_rows;
SELECT pg_temp.err($$DELETE FROM outcomes$$);
SELECT pg_temp.err($$UPDATE outcomes SET quantity = 2$$);
SELECT pg_temp.err($$TRUNCATE outcomes$$);
SET session_replication_role = replica;
SELECT pg_temp.err($$DELETE FROM usage WHERE id = 1$$) AS replica_session;
RESET session_replication_role;

-- unpriced calls are kept and shown; reprice() fills them once prices exist
SELECT id, provider, model, reason FROM unpriced_usage ORDER BY id;
SELECT reprice() AS repriced_without_prices;
INSERT INTO prices (provider, model, effective_from, rate, source) VALUES ('acme', 'unknown-model', '2025-01-01', 'in=3 out=6 USD/1M', 'late price');
SELECT reprice() AS repriced;
SELECT id, model, cost, price_id IS NOT NULL AS has_price_id FROM usage WHERE model IN ('unknown-model', 'mystery') ORDER BY id;
SELECT reprice() AS repriced_again;

-- idempotent recording
SELECT record_usage('acme', 'm1', '{"input": 100, "output": 10}', request_id => 'req-1', occurred_at => '2025-09-01') AS first,
       record_usage('acme', 'm1', '{"input": 100, "output": 10}', request_id => 'req-1', occurred_at => '2025-09-01') AS replay;
SELECT count(*) AS rows_for_req_1 FROM usage WHERE request_id = 'req-1';
SELECT pg_temp.err($$SELECT record_usage('acme', 'm1', '{"input": 100, "output": 11}', request_id => 'req-1')$$);
SELECT pg_temp.err($$SELECT record_usage('acme', 'm2', '{"input": 100, "output": 10}', request_id => 'req-1')$$);
SELECT pg_temp.err($$SELECT record_usage('acme', 'm1', '{"input": 100, "output": 10}', request_id => 'req-1', cost => '9 USD')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, request_id) VALUES ('acme', 'm1', 'in=1 out=1', 'req-1')$$);
SELECT record_outcome('support-triage', 'ticket_resolved', external_ref => 'T-1', occurred_at => '2025-09-01') AS first,
       record_outcome('support-triage', 'ticket_resolved', external_ref => 'T-1', occurred_at => '2025-09-01') AS replay;
SELECT pg_temp.err($$SELECT record_outcome('support-triage', 'ticket_resolved', 2, external_ref => 'T-1')$$);

-- outcomes are valued from the initiative when no value is given
UPDATE initiatives SET value_per_outcome = '12.50 USD', outcome_metric = 'ticket_resolved' WHERE name = 'support-triage';
SELECT record_outcome('support-triage', 'ticket_resolved', 3, external_ref => 'T-2', occurred_at => '2025-09-02') IS NOT NULL;
SELECT record_outcome('support-triage', 'ticket_resolved', 1, value => '20 USD', external_ref => 'T-3', occurred_at => '2025-09-03') IS NOT NULL;
SELECT record_outcome('brand-new-initiative', 'lead_enriched', 1, occurred_at => '2025-09-03') IS NOT NULL;
SELECT external_ref, initiative, team, metric, quantity, value FROM outcomes ORDER BY id;
SELECT name, status FROM initiatives WHERE name = 'brand-new-initiative';
SELECT pg_temp.err($$DELETE FROM outcomes WHERE external_ref = 'T-1'$$);
SELECT pg_temp.err($$UPDATE outcomes SET quantity = 5 WHERE external_ref = 'T-2'$$);

-- corrections: adjust, rerate
SELECT adjust(1, '-0.001 USD', 'provider credit') AS adjustment_id;
SELECT entry, adjusts, tokens, requests, cost, occurred_at, initiative, team, attribution, reason
FROM usage WHERE entry = 'adjustment';
SELECT pg_temp.err($$SELECT adjust(1, '1 EUR', 'wrong currency')$$);
SELECT pg_temp.err($$SELECT adjust(999999, '1 USD', 'no such row')$$);
SELECT pg_temp.err($$SELECT adjust(1, '1 USD', '')$$);
SELECT sum(cost) AS m1_total_before FROM usage WHERE model IN ('m1', 'm1-latest', 'm1-20250501') AND service_tier = 'standard' AND price_id IS NOT NULL AND entry = 'call';
-- the July price was wrong: fix it, then rerate July and August
UPDATE prices SET rate = 'in=1.5 out=6 cache_read=0.25 cache_write=1.25 cache_write_1h=2 USD/1M' WHERE source = 'test v2';
SELECT rerate('acme', 'm1', '2025-07-01', '2025-09-01') AS rerated;
SELECT rerate('acme', 'm1', '2025-07-01', '2025-09-01') AS rerated_again;
SELECT adjusts, cost, reason FROM usage WHERE entry = 'rerate' ORDER BY adjusts;
-- what a rerated call now stands at: its cost plus its rerate entries
SELECT c.id, c.cost AS charged, c.cost + sum(r.cost) AS now, cost_of(c.tokens, c.provider, c.model, c.service_tier, c.occurred_at) AS catalog
FROM usage c JOIN usage r ON r.adjusts = c.id AND r.entry = 'rerate'
GROUP BY c.id, c.cost, c.tokens, c.provider, c.model, c.service_tier, c.occurred_at ORDER BY c.id;
-- a price back to its first value: the rerate entries net out
UPDATE prices SET rate = 'in=1 out=4 cache_read=0.25 cache_write=1.25 cache_write_1h=2 USD/1M' WHERE source = 'test v2';
SELECT rerate('acme', 'm1', '2025-07-01', '2025-09-01') AS rerated_back;
SELECT c.id, c.cost + sum(r.cost) AS now FROM usage c JOIN usage r ON r.adjusts = c.id AND r.entry = 'rerate'
GROUP BY c.id, c.cost ORDER BY c.id;
-- given costs and adjustments are never rerated
SELECT count(*) AS rerates_of_given_costs FROM usage r JOIN usage c ON c.id = r.adjusts
WHERE r.entry = 'rerate' AND c.price_id IS NULL;

-- pg_dump keeps user rows and the ledger, not the shipped catalog
SELECT c.relnamespace::regnamespace AS schema, c.relname, x.cond
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(oid, cond)
JOIN pg_class c ON c.oid = x.oid
WHERE e.extname = 'tokenledger' ORDER BY c.relname, 1;

-- an absent optional value refuses nothing: NULL tags and attributes are {}
INSERT INTO usage (provider, model, tokens, tags, request_id) VALUES ('acme', 'm1', 'in=1 out=1', NULL, 'null-tags') RETURNING tags;
INSERT INTO outcomes (initiative, metric, attributes, external_ref) VALUES ('support-triage', 'ticket_resolved', NULL, 'null-attributes') RETURNING attributes;
COPY usage (provider, model, tokens, tags, request_id) FROM stdin;
acme	m1	in=1 out=1	\N	null-tags-copy
\.
SELECT request_id, tags FROM usage WHERE request_id LIKE 'null-tags%' ORDER BY 1;

-- a call happened at a finite time: no month could hold infinity
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, occurred_at) VALUES ('acme', 'm1', 'in=1 out=1', 'infinity')$$);
SELECT pg_temp.err($$INSERT INTO outcomes (initiative, metric, occurred_at) VALUES ('support-triage', 'ticket_resolved', '-infinity')$$);

-- tokenledger.replays = skip: a bulk load replayed whole records each key
-- once (INSERT ... SELECT and COPY); a replay that differs is refused
SET tokenledger.replays = skip;
INSERT INTO usage (provider, model, tokens, request_id, occurred_at)
SELECT 'acme', 'm1', 'in=10 out=1', 'bulk-' || (i % 3), ('2025-08-0' || (1 + i % 3))::timestamptz FROM generate_series(0, 5) i;
COPY usage (provider, model, tokens, request_id, occurred_at) FROM stdin;
acme	m1	in=10 out=1	bulk-1	2025-08-02
acme	m1	in=10 out=1	bulk-3	2025-08-04
\.
SELECT request_id, occurred_at::date, tokens, count(*) OVER (PARTITION BY request_id) AS recorded
FROM usage WHERE request_id LIKE 'bulk-%' ORDER BY 1;
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, request_id) VALUES ('acme', 'm1', 'in=11 out=1', 'bulk-1')$$);
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, request_id, cost) VALUES ('acme', 'm1', 'in=10 out=1', 'bulk-2', '1 USD')$$);
INSERT INTO outcomes (initiative, metric, external_ref) VALUES ('support-triage', 'ticket_resolved', 'null-attributes');
SELECT pg_temp.err($$INSERT INTO outcomes (initiative, metric, quantity, external_ref) VALUES ('support-triage', 'ticket_resolved', 2, 'null-attributes')$$);
SELECT count(*) AS outcomes_once FROM outcomes WHERE external_ref = 'null-attributes';
RESET tokenledger.replays;
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, request_id) VALUES ('acme', 'm1', 'in=10 out=1', 'bulk-1')$$);

-- the rules' edges that pass (rolled back)
BEGIN;
SELECT a, pg_temp.err(format($$INSERT INTO usage (provider, model, tokens, attribution) VALUES ('acme', 'm1', 'in=1 out=1', %L)$$, a))
FROM unnest(ARRAY['rule:7', 'rule:0123', 'explicit', 'unattributed']) a;
SELECT pg_temp.err($$INSERT INTO usage (provider, model, tokens, requests, tags) VALUES ('acme', 'm1', 'in=1 out=1', 0, '{}')$$) AS zero_requests;
SELECT pg_temp.err($$INSERT INTO outcomes (initiative, metric, quantity, attributes) VALUES ('i', 'm', 0, '{"a": [1]}')$$) AS zero_quantity;
ROLLBACK;

-- an outcome carries its team: as given, else its initiative's when
-- recorded (a later change of the initiative's team leaves it), none for an
-- initiative without one; the outcome rollup is kept per team
INSERT INTO outcomes (initiative, metric, team, external_ref, occurred_at)
VALUES ('support-triage', 'ticket_resolved', 'escalations', 'T-team-1', '2025-10-01 10:00+00'),
	   ('support-triage', 'ticket_resolved', NULL, 'T-team-2', '2025-10-01 10:20+00'),
	   ('team-less-initiative', 'lead_enriched', NULL, 'T-team-3', '2025-10-01 10:40+00');
UPDATE initiatives SET team = 'customer-care' WHERE name = 'support-triage';
INSERT INTO outcomes (initiative, metric, external_ref, occurred_at)
VALUES ('support-triage', 'ticket_resolved', 'T-team-4', '2025-10-01 10:50+00');
SELECT record_outcome('support-triage', 'ticket_resolved', external_ref => 'T-team-5',
					  occurred_at => '2025-10-01 10:55+00', team => 'escalations') IS NOT NULL AS given,
	   record_outcome('support-triage', 'ticket_resolved', external_ref => 'T-team-6',
					  occurred_at => '2025-10-01 10:56+00') IS NOT NULL AS from_initiative;
SELECT external_ref, initiative, team FROM outcomes WHERE external_ref LIKE 'T-team-%' ORDER BY external_ref;
SELECT team, initiative, entries, outcomes, outcome_value FROM outcome_rollup
WHERE stretch = '2025-10-01 10:00+00' ORDER BY team NULLS LAST, initiative;
SELECT pg_temp.err($$UPDATE outcomes SET team = 'x' WHERE external_ref = 'T-team-1'$$);
