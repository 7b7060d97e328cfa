-- the LiteLLM price map (a sample with every tier kind), OpenTelemetry spans
-- and currency conversion
DROP EXTENSION IF EXISTS tokenledger CASCADE;
CREATE EXTENSION tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\set VERBOSITY terse

-- a sample in the map's format: base, batch, flex, priority, long-context,
-- long-context priority and 1-hour cache prices; entries without token
-- prices; a provider-prefixed name
SELECT import_prices_litellm($${
	"sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of ..."},
	"model-a": {"litellm_provider": "prov", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
		"cache_read_input_token_cost": 1.25e-06, "input_cost_per_token_batches": 1.25e-06,
		"output_cost_per_token_batches": 5e-06, "input_cost_per_token_flex": 1.25e-06, "output_cost_per_token_flex": 5e-06,
		"cache_read_input_token_cost_flex": 6.25e-07, "input_cost_per_token_priority": 4.25e-06,
		"output_cost_per_token_priority": 1.7e-05, "cache_read_input_token_cost_priority": 2.125e-06},
	"model-b": {"litellm_provider": "prov", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
		"cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
		"cache_creation_input_token_cost_above_1hr": 6e-06,
		"input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
		"cache_read_input_token_cost_above_200k_tokens": 6e-07, "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
		"cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
		"input_cost_per_token_above_200k_tokens_priority": 1.2e-05, "output_cost_per_token_above_200k_tokens_priority": 4.5e-05,
		"input_cost_per_token_priority": 6e-06, "output_cost_per_token_priority": 3e-05},
	"prov/model-c": {"litellm_provider": "prov", "input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07},
	"image-model": {"litellm_provider": "prov", "input_cost_per_pixel": 1e-08, "mode": "image_generation"},
	"free-model": {"litellm_provider": "local", "input_cost_per_token": 0, "output_cost_per_token": 0}
}$$, '2026-01-01') AS written;
SELECT provider, model, service_tier, min_input_tokens, rate
FROM prices WHERE provider IN ('prov', 'local') ORDER BY model, service_tier, min_input_tokens;
SELECT provider, alias, model FROM model_aliases WHERE provider = 'prov';
SELECT cost_of('in=300000 out=1000 cache_write_1h=1000'::tokens, 'prov', 'model-b', 'standard', '2026-02-01') AS long_context,
       cost_of('in=300000 out=1000'::tokens, 'prov', 'model-b', 'priority', '2026-02-01') AS long_priority,
       cost_of('in=1000000 out=0'::tokens, 'prov', 'prov/model-c', 'standard', '2026-02-01') AS prefixed_name;
-- a later import is a new version; the old one still prices older calls
SELECT import_prices_litellm('{"model-c": {"litellm_provider": "prov", "input_cost_per_token": 2e-07, "output_cost_per_token": 4e-07}}', '2026-06-01') AS new_version;
SELECT import_prices_litellm('{"model-c": {"litellm_provider": "prov", "input_cost_per_token": 9e-07, "output_cost_per_token": 4e-07}}', '2026-06-01') AS same_version_again;
SELECT cost_of('in=1000000 out=0'::tokens, 'prov', 'model-c', 'standard', '2026-03-01') AS march,
       cost_of('in=1000000 out=0'::tokens, 'prov', 'model-c', 'standard', '2026-07-01') AS july;
SELECT import_prices_litellm('[1, 2]');

-- OpenTelemetry GenAI spans
\set span '{"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-9", "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.output_tokens": 200, "gen_ai.openai.response.service_tier": "default", "service.name": "helpdesk", "enduser.id": "alice"}'
SELECT record_otel_span(:'span', occurred_at => '2026-02-01') AS span_id;
SELECT record_otel_span(:'span', occurred_at => '2026-02-01') AS replayed_span_id;
SELECT record_otel_span(jsonb_set(:'span', '{gen_ai.usage.output_tokens}', '201'), occurred_at => '2026-02-01') AS conflicting_span;
SELECT record_otel_span('{"gen_ai.system": "vertex_ai", "gen_ai.request.model": "gemini-2.5-flash",
	"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}', occurred_at => '2026-02-01') AS legacy_span_id;
SELECT provider, model, service_tier, tokens, cost, request_id, app, principal FROM usage ORDER BY id;
SELECT record_otel_span('{"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1}');
SELECT record_otel_span('{"gen_ai.system": "openai", "gen_ai.usage.input_tokens": 1}');

-- currency conversion at each time's rate
INSERT INTO fx_rates VALUES ('USD', 'EUR', 0.9, '2026-01-01'), ('USD', 'EUR', 0.95, '2026-06-01'),
	('GBP', 'USD', 1.25, '2026-01-01');
SELECT convert('100 USD'::cost, 'EUR', '2026-03-01') AS march, convert('100 USD'::cost, 'EUR', '2026-07-01') AS july,
       convert('95 EUR'::cost, 'usd', '2026-07-01') AS inverse, convert('1 EUR'::cost, 'EUR') AS same,
       convert('0.000000001 USD'::cost, 'EUR', '2026-03-01') AS rounded;
SELECT convert('100 USD'::cost, 'EUR', '2025-12-31');
SELECT convert('1 USD'::cost, 'JPY', '2026-03-01');

-- no token billed twice, none dropped: Chat Completions' cache writes are
-- cache writes, and an organization usage row's parts that come to less
-- than input_tokens leave the rest as uncached input
SELECT '{"prompt_tokens": 1000, "completion_tokens": 10,
         "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 200}}'::jsonb::tokens AS chat_with_cache_writes;
SELECT '{"prompt_tokens": 100, "completion_tokens": 10,
         "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 50}}'::jsonb::tokens AS chat_writes_past_the_prompt;
SELECT '{"object": "organization.usage.completions.result", "input_tokens": 1000, "input_uncached_tokens": 500,
         "input_cached_tokens": 300, "input_cache_write_tokens": 100, "output_tokens": 20}'::jsonb::tokens AS org_row_with_a_remainder;

-- an object whose token fields belong to two shapes is refused, naming them
-- (reading either shape would drop the other's tokens); fields no shape
-- counts (totals, ids) do not matter
SELECT '{"prompt_tokens": 100, "input_tokens": 50, "completion_tokens": 5}'::jsonb::tokens;
SELECT '{"input_tokens": 10, "output_tokens": 5, "promptTokenCount": 7}'::jsonb::tokens;
SELECT '{"gen_ai.usage.input_tokens": 10, "inputTokens": 3}'::jsonb::tokens;
SELECT '{"input": 1, "output": 2, "prompt_tokens": 3}'::jsonb::tokens;
SELECT '{"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "id": "x", "audio_tokens": 1}'::jsonb::tokens AS totals_and_ids_ignored;
