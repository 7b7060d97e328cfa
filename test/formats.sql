-- Provider usage objects from ../shared/data/provider_usage_samples.jsonl
-- (SDK recordings and API reference examples), normalised by jsonb::tokens.
-- The expected counts follow SPEC section 6: no token billed twice, none dropped.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SELECT plan(42);

CREATE TEMP TABLE samples_raw (line text);
\copy samples_raw FROM '../shared/data/provider_usage_samples.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
CREATE TEMP TABLE samples AS
SELECT row_number() OVER () AS n, line::jsonb AS j FROM samples_raw;

SELECT is((SELECT count(*) FROM samples), 22::bigint, 'the sample file has 22 payloads');

CREATE TEMP TABLE expected (n int, provider text, tokens text);
INSERT INTO expected VALUES
	(1, 'openai', 'in=14 out=37'),
	(2, 'openai', 'in=14 out=50'),
	(3, 'openai', 'in=1117 out=46'),
	(4, 'openai', 'in=81 out=1035 reasoning=832'),
	(5, 'openai', 'in=139 out=438 reasoning=64'),
	(6, 'openai', 'in=476 out=500 cache_read=1024 reasoning=300'),
	(7, 'openai', 'in=3000 out=1000 cache_read=1800 cache_write=200'),
	(9, 'anthropic', 'in=28 out=5'),
	(10, 'anthropic', 'in=28 out=106 reasoning=67'),
	(11, 'anthropic', 'in=11306 out=163'),
	(12, 'anthropic', 'in=10 out=1 cache_read=3 cache_write=2'),
	(13, 'anthropic', 'in=42 out=99 cache_read=8 cache_write=7 reasoning=30'),
	(14, 'gemini', 'in=2 out=279 cache_read=3 reasoning=41'),
	(15, 'gemini', 'in=274 out=675 reasoning=232'),
	(16, 'gemini', 'in=2877 out=523 cache_read=901 reasoning=91'),
	(17, 'gemini', 'in=32 out=146 reasoning=140'),
	(18, 'gemini', 'in=61 out=16'),
	(19, 'bedrock', 'in=3 out=401 cache_write=1789'),
	(20, 'bedrock', 'in=700 out=3'),
	(21, 'bedrock', 'in=452 out=279'),
	(22, 'otel', 'in=52 out=47');

SELECT is((s.j -> 'usage')::tokens::text, e.tokens,
          format('sample %s (%s): %s', e.n, e.provider, left(s.j ->> 'source', 60)))
FROM expected e JOIN samples s USING (n) ORDER BY e.n;

-- the org costs row (sample 8) is money, not token usage
SELECT throws_ok(format('SELECT %L::jsonb::tokens', (SELECT j -> 'usage' FROM samples WHERE n = 8)),
                 '22P02', NULL, 'sample 8 (organization.costs.result) is refused: it carries no tokens');

-- whole bodies and streaming events
SELECT is(('{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o", "choices": [],'
           ' "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1920}}}')::jsonb::tokens::text,
          'in=86 out=300 cache_read=1920', 'a whole Chat Completions body');
SELECT is(('{"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-5",'
           ' "usage": {"input_tokens": 472, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 0,'
           ' "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}, "output_tokens": 1}}}')::jsonb::tokens::text,
          'in=472 out=1 cache_write=1000 cache_write_1h=2000', 'an Anthropic message_start event with the 1-hour cache split');
SELECT is('{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}'::jsonb::tokens::text,
          'in=0 out=15', 'an Anthropic message_delta event');
SELECT is(('{"type": "response.completed", "response": {"id": "resp_1", "usage": {"input_tokens": 5000,'
           ' "input_tokens_details": {"cached_tokens": 4000}, "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 600}}}}')::jsonb::tokens::text,
          'in=1000 out=900 cache_read=4000 reasoning=600', 'a Responses API response.completed event');
SELECT is('{"candidates": [], "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120}}'::jsonb::tokens::text,
          'in=100 out=20', 'a whole Gemini body');
SELECT is(('{"output": {}, "stopReason": "end_turn", "usage": {"inputTokens": 10, "outputTokens": 20, "cacheReadInputTokens": 30,'
           ' "cacheWriteInputTokens": 40, "cacheReadInputTokenCount": 30, "cacheWriteInputTokenCount": 40}}')::jsonb::tokens::text,
          'in=10 out=20 cache_read=30 cache_write=40', 'Bedrock cache counts given twice are counted once');
SELECT is(('{"gen_ai.provider.name": "anthropic", "gen_ai.usage.input_tokens": 1500,'
           ' "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 200,'
           ' "gen_ai.usage.output_tokens": 80, "gen_ai.usage.reasoning.output_tokens": 30}')::jsonb::tokens::text,
          'in=300 out=80 cache_read=1000 cache_write=200 reasoning=30', 'OpenTelemetry GenAI cache and reasoning attributes');
SELECT is('{"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 7}'::jsonb::tokens::text,
          'in=12 out=7', 'OpenTelemetry with the older prompt/completion names');
SELECT is('{"input": 5, "output": 6, "cache_read": 7, "cache_write": 8, "cache_write_1h": 9, "reasoning": 1}'::jsonb::tokens::text,
          'in=5 out=6 cache_read=7 cache_write=8 cache_write_1h=9 reasoning=1', 'the canonical object');

-- malformed and inconsistent objects
SELECT throws_ok($$SELECT '{"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}}'::jsonb::tokens$$,
                 '22P02', 'inconsistent usage object: "prompt_tokens_details.cached_tokens + cache_write_tokens" (11) exceeds "prompt_tokens" (10)',
                 'cached more than the prompt is refused');
SELECT throws_ok($$SELECT '{"prompt_tokens": -1, "completion_tokens": 1}'::jsonb::tokens$$, '22P02', NULL, 'a negative count is refused');
SELECT throws_ok($$SELECT '{"prompt_tokens": 1.5, "completion_tokens": 1}'::jsonb::tokens$$, '22P02', NULL, 'a fractional count is refused');
SELECT throws_ok($$SELECT '{"prompt_tokens": "12", "completion_tokens": 1}'::jsonb::tokens$$, '22P02', NULL, 'a count given as a string is refused');
SELECT throws_ok($$SELECT '{"foo": 1, "bar": 2}'::jsonb::tokens$$, '22P02', NULL, 'an unknown shape is refused');
SELECT throws_ok($$SELECT '[1, 2]'::jsonb::tokens$$, '22P02', NULL, 'an array is refused');
SELECT throws_ok($$SELECT '{"input": 1, "outputs": 2}'::jsonb::tokens$$, '22P02', 'invalid usage object: unknown key "outputs"',
                 'a canonical object with a misspelt key is refused, naming it');
SELECT throws_ok($$SELECT '{"input_tokens": 5, "output_tokens": 3, "cache_creation_input_tokens": 2, "cache_creation": {"ephemeral_1h_input_tokens": 3}}'::jsonb::tokens$$,
                 '22P02', NULL, 'a 1-hour cache write larger than all cache writes is refused');
SELECT throws_ok($$SELECT '{"promptTokenCount": 5, "cachedContentTokenCount": 6}'::jsonb::tokens$$, '22P02', NULL,
                 'Gemini cached content larger than the prompt is refused');
SELECT throws_ok($$SELECT '{"prompt_tokens": 99999999999999999999, "completion_tokens": 1}'::jsonb::tokens$$, '22003', NULL,
                 'a count beyond bigint is 22003');

SELECT * FROM finish();
ROLLBACK;
