-- demo/generate.sql: one month (October 2026) of AI spend at a mid-size
-- company, generated deterministically (setseed) and recorded through the
-- ledger's insert path, so every call is priced and attributed as in
-- production.
--
--   support-triage      a workflow that resolves support tickets (outcomes)
--   ticket-tagging      part of support, but on a premium model for a simple task
--   marketing-genai     an abandoned marketing experiment that kept running
--   coding-assistants   engineers' coding assistants
--   ops-incident-digest an ops workflow that summarises incidents (outcomes)
--   unattributed keys   spend nobody owns ("shadow AI")
--   a runaway loop      one agent run repeating the same prompt all night
--   unpriced calls      a model the catalog does not know
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
SELECT setseed(0.2026);

INSERT INTO initiatives (name, team, owner, status, outcome_metric, value_per_outcome) VALUES
	('support-triage', 'support', 'dana.support-lead', 'active', 'ticket_resolved', '18.00 USD'),
	('marketing-genai', 'marketing', 'max.growth', 'abandoned', 'campaign_asset', '40.00 USD'),
	('coding-assistants', 'engineering', 'cto', 'active', 'pull_request_merged', '150.00 USD'),
	('ops-incident-digest', 'platform', 'sre-lead', 'active', 'incident_summarised', '25.00 USD');

-- attribution by api key and app, as a data engineer sets it up
INSERT INTO attribution_rules (priority, match_api_key, match_app, initiative, team) VALUES
	(10, 'key-support-prod', NULL, 'support-triage', NULL),
	(10, 'key-marketing-gen', NULL, 'marketing-genai', NULL),
	(20, NULL, 'ide-assistant', 'coding-assistants', NULL),
	(20, NULL, 'incident-bot', 'ops-incident-digest', NULL);

CREATE TEMP TABLE demo_days AS
SELECT d::date AS day FROM generate_series('2026-10-01'::date, '2026-10-31', '1 day') d;

-- a call at a random time of a day, weighted to office hours on weekdays
CREATE FUNCTION pg_temp.call_time(i bigint, days int) RETURNS timestamptz LANGUAGE sql AS $$
	SELECT '2026-10-01'::timestamptz
		+ ((i * 7919) % days) * interval '1 day'
		+ (8 + (random() * 10)) * interval '1 hour'
		+ random() * interval '59 minutes'
$$;

-- support-triage: gpt-4o drafts answers with a cached knowledge base
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal, run_id, prompt_hash)
SELECT pg_temp.call_time(i, 31), 'sup-' || i, 'openai', 'gpt-4o-2024-08-06',
	   tokens((4000 + random() * 8000)::bigint, (300 + random() * 900)::bigint, (10000 + random() * 30000)::bigint),
	   'key-support-prod', 'helpdesk', 'svc-helpdesk', 'ticket-' || (i / 3), md5('sup' || i)
FROM generate_series(1, 60000) i;
-- tickets resolved: about two in three tickets
INSERT INTO outcomes (occurred_at, initiative, metric, quantity, run_id, external_ref)
SELECT pg_temp.call_time(t * 3, 31) + interval '20 minutes', 'support-triage', 'ticket_resolved', 1,
	   'ticket-' || t, 'zendesk-' || t
FROM generate_series(1, 20000) t
WHERE random() < 0.68;

-- ticket-tagging: claude-opus-4-1 to pick one of five labels (a small model would do)
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, initiative, app, principal, run_id)
SELECT pg_temp.call_time(i, 31), 'tag-' || i, 'anthropic', 'claude-opus-4-1-20250805',
	   tokens((400 + random() * 600)::bigint, (5 + random() * 20)::bigint),
	   'support-triage', 'ticket-tagger', 'svc-tagger', 'ticket-' || i
FROM generate_series(1, 20000) i;

-- marketing-genai: long o3-pro and gpt-5 generations; the experiment was
-- abandoned in September but its scheduler kept running
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT pg_temp.call_time(i, 31), 'mkt-' || i, 'openai', CASE WHEN i % 2 = 0 THEN 'o3-pro' ELSE 'gpt-5' END,
	   tokens(6000 + (random() * 10000)::bigint, o, 0, 0, (o * 0.6)::bigint),
	   'key-marketing-gen', 'campaign-studio', 'max.growth'
FROM generate_series(1, 24000) i
CROSS JOIN LATERAL (SELECT (20000 + random() * 30000)::bigint AS o) x;
INSERT INTO outcomes (occurred_at, initiative, metric, quantity, external_ref)
SELECT pg_temp.call_time(i * 11, 31), 'marketing-genai', 'campaign_asset', 1, 'asset-' || i
FROM generate_series(1, 40) i;

-- coding-assistants: claude-sonnet-4-5 and claude-opus-4-1 with large
-- cached repository context; 60 engineers
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, principal, run_id, environment)
SELECT pg_temp.call_time(i, 31), 'ide-' || i, 'anthropic',
	   CASE WHEN i % 20 < 9 THEN 'claude-opus-4-1' ELSE 'claude-sonnet-4-5-20250929' END,
	   tokens((5000 + random() * 25000)::bigint, (2000 + random() * 10000)::bigint,
			  (50000 + random() * 100000)::bigint, (random() * 8000)::bigint, 0, (random() * 2000)::bigint),
	   'ide-assistant', 'dev' || lpad((1 + (i * 31) % 60)::text, 2, '0'), 'session-' || (i / 25), 'dev'
FROM generate_series(1, 115000) i;
INSERT INTO outcomes (occurred_at, initiative, metric, quantity, external_ref, attributes)
SELECT pg_temp.call_time(i * 5, 31), 'coding-assistants', 'pull_request_merged', 1, 'pr-' || i,
	   jsonb_build_object('author', 'dev' || lpad((1 + (i * 7) % 60)::text, 2, '0'))
FROM generate_series(1, 1300) i;

-- ops-incident-digest: gemini-2.5-pro over long incident logs, some beyond 200k tokens
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, principal, run_id)
SELECT pg_temp.call_time(i, 31), 'ops-' || i, 'google', 'gemini-2.5-pro',
	   tokens(CASE WHEN i % 20 = 0 THEN 210000 + (random() * 200000)::bigint
				   ELSE 20000 + (random() * 80000)::bigint END,
			  (800 + random() * 2500)::bigint, 0, 0, (random() * 500)::bigint),
	   'incident-bot', 'svc-sre', 'incident-' || (i / 8)
FROM generate_series(1, 20000) i;
INSERT INTO outcomes (occurred_at, initiative, metric, quantity, run_id, external_ref)
SELECT pg_temp.call_time(i * 8, 31), 'ops-incident-digest', 'incident_summarised', 1, 'incident-' || i, 'pd-' || i
FROM generate_series(1, 2400) i;

-- shadow AI: keys nobody registered
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT pg_temp.call_time(i, 31), 'shadow-' || i, p.provider, p.model,
	   tokens((5000 + random() * 40000)::bigint, (500 + random() * 6000)::bigint),
	   p.api_key, p.app, p.principal
FROM generate_series(1, 28000) i
CROSS JOIN LATERAL (VALUES
	(0, 'openai', 'gpt-4.1', 'key-legacy-batch', 'nightly-enrichment', 'svc-legacy'),
	(1, 'anthropic', 'claude-opus-4-1', 'key-personal-jdoe', NULL, 'jdoe'),
	(2, 'openai', 'o3', 'key-hackathon-2026', 'hackathon-bot', 'team-hack'),
	(3, 'google', 'gemini-2.5-flash', 'key-sales-notes', 'crm-plugin', 'sales-ops')
) AS p(k, provider, model, api_key, app, principal)
WHERE p.k = i % 4;

-- the runaway loop: one agent run repeats the same prompt from 01:00 to 08:30 on 17 October
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, principal, run_id, prompt_hash, initiative)
SELECT '2026-10-17 01:00:00+00'::timestamptz + i * interval '1.5 seconds', 'loop-' || i,
	   'anthropic', 'claude-opus-4-1', tokens(28000, 600, 0), 'research-agent', 'svc-agent',
	   'run-7f3a', 'prompt-5d41402a', 'coding-assistants'
FROM generate_series(1, 18000) i;

-- a model the catalog does not know: recorded, shown as unpriced, never dropped
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, principal)
SELECT pg_temp.call_time(i, 31), 'mistral-' || i, 'mistral', 'mistral-large-2411',
	   tokens((500 + random() * 3000)::bigint, (100 + random() * 500)::bigint), 'translation-svc', 'svc-i18n'
FROM generate_series(1, 1500) i;

ANALYZE usage;
ANALYZE outcomes;
