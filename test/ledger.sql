-- Behaviour of the ledger: every priced call equals the numeric sum of
-- count x catalog price / 1M rounded once; attribution; idempotency.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SELECT plan(16);

SELECT setseed(0.7);
-- 3,000 calls over every shipped standard-tier model, with random token mixes
CREATE TEMP TABLE calls AS
SELECT i, p.provider, p.model,
       tokens((random() * 20000)::bigint, (o.out)::bigint, (random() * 50000)::bigint,
              (random() * 3000)::bigint, (random() * o.out)::bigint, (random() * 1000)::bigint) AS t
FROM generate_series(1, 3000) i
CROSS JOIN LATERAL (SELECT random() * 4000 AS out) o
CROSS JOIN LATERAL (SELECT provider, model FROM prices
                    WHERE service_tier = 'standard' AND min_input_tokens = 0 AND shipped
                    ORDER BY id OFFSET (i % 36) LIMIT 1) p;
INSERT INTO usage (request_id, occurred_at, provider, model, tokens, app)
SELECT 'tap-' || i, '2026-01-15', provider, model, t, 'tap' FROM calls;

SELECT is((SELECT count(*) FROM usage WHERE app = 'tap' AND cost IS NOT NULL), 3000::bigint,
          'every call of a shipped model is priced');
SELECT is((SELECT count(*) FROM usage u JOIN prices p ON p.id = u.price_id
           WHERE u.app = 'tap'
             AND amount(u.cost) <> round((input(u.tokens) * amount(input_price(p.rate))
                                         + output(u.tokens) * amount(output_price(p.rate))
                                         + cache_read(u.tokens) * amount(cache_read_price(p.rate))
                                         + cache_write(u.tokens) * amount(cache_write_price(p.rate))
                                         + cache_write_1h(u.tokens) * amount(cache_write_1h_price(p.rate))) / 1000000, 9)),
          0::bigint, 'each cost equals the numeric sum of count x price / 1M, rounded once to the nano');
SELECT is((SELECT count(*) FROM usage u JOIN prices p ON p.id = u.price_id
           WHERE u.app = 'tap' AND (p.provider <> u.provider OR p.model <> u.model OR p.service_tier <> 'standard'
                                    OR p.effective_from > u.occurred_at)),
          0::bigint, 'each call is priced by a row of its own model and tier, in effect at its time');
SELECT is((SELECT count(*) FROM usage u JOIN prices p ON p.id = u.price_id
           WHERE u.app = 'tap'
             AND (input(u.tokens) + cache_read(u.tokens) + cache_write(u.tokens) + cache_write_1h(u.tokens) > 200000) <> (p.min_input_tokens > 0)
             AND u.model IN (SELECT model FROM prices WHERE min_input_tokens = 200000)),
          0::bigint, 'long-context rows price exactly the prompts above their threshold');
SELECT is((SELECT sum(cost) FROM usage WHERE app = 'tap'),
          (SELECT sum(cost_of(t, provider, model, 'standard', '2026-01-15')) FROM calls),
          'the ledger total equals cost_of over the same calls');

-- attribution rules, in priority order
INSERT INTO attribution_rules (priority, match_app, match_tags, initiative, team) VALUES
	(50, 'tap-rules', NULL, 'general', 'ops'),
	(10, 'tap-rules', '{"flow": "refund"}', 'refunds', 'support');
INSERT INTO initiatives (name, team) VALUES ('refunds-explicit', 'finance');
INSERT INTO usage (provider, model, tokens, app, tags, initiative) VALUES
	('openai', 'gpt-4o', 'in=1 out=1', 'tap-rules', '{"flow": "refund", "lang": "de"}', NULL),
	('openai', 'gpt-4o', 'in=1 out=1', 'tap-rules', '{"flow": "other"}', NULL),
	('openai', 'gpt-4o', 'in=1 out=1', 'tap-rules', '{"flow": "refund"}', 'refunds-explicit'),
	('openai', 'gpt-4o', 'in=1 out=1', 'elsewhere', '{}', NULL);
SELECT results_eq($$SELECT initiative, team, left(attribution, 5) FROM usage WHERE app IN ('tap-rules', 'elsewhere') ORDER BY id$$,
                  $$VALUES ('refunds'::text, 'support'::text, 'rule:'::text), ('general', 'ops', 'rule:'),
                           ('refunds-explicit', 'finance', 'expli'), (NULL, NULL, 'unatt')$$,
                  'the lowest-priority matching rule wins, explicit attribution is kept and team comes from the initiative');
SELECT is((SELECT count(*) FROM initiatives WHERE name IN ('refunds', 'general')), 2::bigint,
          'initiatives named by rules are registered on first use');

-- idempotency through record_usage, over every sample shape
SELECT is(record_usage('openai', 'gpt-4o', '{"prompt_tokens": 10, "completion_tokens": 2}', request_id => 'idem-1'),
          record_usage('openai', 'gpt-4o', '{"prompt_tokens": 10, "completion_tokens": 2}', request_id => 'idem-1'),
          'a replay returns the existing id');
SELECT is((SELECT count(*) FROM usage WHERE request_id = 'idem-1'), 1::bigint, 'a replay records nothing');
SELECT throws_ok($$SELECT record_usage('openai', 'gpt-4o', '{"prompt_tokens": 10, "completion_tokens": 3}', request_id => 'idem-1')$$,
                 '23505', 'request_id "idem-1" was already recorded with different content',
                 'a replay with different tokens is a conflict');
CREATE TEMP TABLE org_id AS
SELECT record_usage('openai', 'gpt-4o', '{"object": "organization.usage.completions.result", "input_tokens": 100,'
                    ' "input_cached_tokens": 40, "output_tokens": 10, "num_model_requests": 7}', request_id => 'org-1') AS id;
SELECT is((SELECT id FROM org_id), (SELECT id FROM usage WHERE request_id = 'org-1'), 'record_usage returns the new id');
SELECT is((SELECT requests FROM usage WHERE request_id = 'org-1'), 7::bigint,
          'num_model_requests of an org usage row becomes requests');
SELECT is((SELECT tokens::text FROM usage WHERE request_id = 'org-1'), 'in=60 out=10 cache_read=40',
          'an org usage row is normalised');

-- adjustments keep the original's attribution and time
SELECT lives_ok($$SELECT adjust((SELECT id FROM usage WHERE request_id = 'tap-1'), '-0.5 USD', 'credit')$$, 'adjust appends a correction');
SELECT results_eq($$SELECT a.occurred_at, a.app, a.attribution, a.cost FROM usage a
                    WHERE a.entry = 'adjustment' AND a.adjusts = (SELECT id FROM usage WHERE request_id = 'tap-1')$$,
                  $$SELECT occurred_at, app, attribution, '-0.5 USD'::cost FROM usage WHERE request_id = 'tap-1'$$,
                  'the adjustment carries the original''s time and attribution');
SELECT throws_ok($$UPDATE usage SET cost = '0 USD' WHERE request_id = 'tap-1'$$, '42501', NULL, 'a priced call cannot be updated');

SELECT * FROM finish();
ROLLBACK;
