-- The whole LiteLLM price map of ../shared/data, imported, and every model
-- priced against the per-token prices the map states.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SELECT plan(9);

\set content `cat ../shared/data/litellm_model_prices.json`
CREATE TEMP TABLE map AS SELECT :'content'::jsonb AS j;
CREATE TEMP TABLE written AS SELECT import_prices_litellm((SELECT j FROM map), '2026-07-24') AS n;

-- entries with token prices: every one has a standard row
CREATE TEMP TABLE priced_entries AS
SELECT key, value FROM map, jsonb_each(j)
WHERE key <> 'sample_spec' AND jsonb_typeof(value -> 'litellm_provider') = 'string'
  AND (jsonb_typeof(value -> 'input_cost_per_token') = 'number' OR jsonb_typeof(value -> 'output_cost_per_token') = 'number');
SELECT cmp_ok((SELECT n FROM written), '>=', (SELECT count(*)::int FROM priced_entries),
              'at least one price row per entry with token prices');
SELECT is((SELECT count(DISTINCT source) FROM prices WHERE source LIKE 'LiteLLM model price map: %' AND service_tier = 'standard' AND min_input_tokens = 0),
          (SELECT count(*) FROM priced_entries),
          'every entry with token prices has a standard-tier row');
SELECT is((SELECT count(*) FROM prices p JOIN map ON true
           WHERE p.source = 'LiteLLM model price map: sample_spec'), 0::bigint, 'sample_spec is skipped');
SELECT is(import_prices_litellm((SELECT j FROM map), '2026-07-24'), 0, 're-importing the same version writes nothing');

-- the oracle: count x price per token, prices per 1M kept to 1e-9, rounded once
CREATE FUNCTION pg_temp.per_m(v jsonb, f text) RETURNS numeric LANGUAGE sql AS
$$ SELECT coalesce(round((v ->> f)::numeric * 1000000, 9), 0) $$;
CREATE TEMP TABLE oracle AS
SELECT e.key, e.value ->> 'litellm_provider' AS provider, p.model,
       round((1234 * pg_temp.per_m(e.value, 'input_cost_per_token')
              + 567 * pg_temp.per_m(e.value, 'output_cost_per_token')
              + 8901 * pg_temp.per_m(e.value, 'cache_read_input_token_cost')
              + 234 * pg_temp.per_m(e.value, 'cache_creation_input_token_cost')
              + 56 * pg_temp.per_m(e.value, 'cache_creation_input_token_cost_above_1hr')) / 1000000, 9) AS expected,
       amount(cost_of('in=1234 out=567 cache_read=8901 cache_write=234 cache_write_1h=56', p.provider, p.model, 'standard', '2026-08-01')) AS actual
FROM priced_entries e
JOIN prices p ON p.source = 'LiteLLM model price map: ' || e.key AND p.service_tier = 'standard' AND p.min_input_tokens = 0;
SELECT is((SELECT count(*) FROM oracle), (SELECT count(*) FROM priced_entries), 'every priced entry is checked');
SELECT is((SELECT count(*) FROM oracle WHERE actual IS DISTINCT FROM expected), 0::bigint,
          'every model''s standard price equals the map''s per-token prices');
SELECT is((SELECT count(*) FROM priced_entries e
           WHERE e.key LIKE '%/%' AND cost_of('in=1000 out=100', e.value ->> 'litellm_provider', e.key, 'standard', '2026-08-01') IS NULL),
          0::bigint, 'provider-prefixed names resolve');

-- long-context and service tiers of the map
SELECT is((SELECT count(*) FROM priced_entries e
           JOIN prices p ON p.source = 'LiteLLM model price map: ' || e.key AND p.service_tier = 'standard' AND p.min_input_tokens = 200000
           WHERE amount(cost_of('in=250000 out=1000', p.provider, p.model, 'standard', '2026-08-01'))
                 <> round((250000 * pg_temp.per_m(e.value, 'input_cost_per_token_above_200k_tokens')
                          + 1000 * pg_temp.per_m(e.value, 'output_cost_per_token_above_200k_tokens')) / 1000000, 9)), 0::bigint,
          'prompts over 200k tokens are priced at the map''s _above_200k_tokens prices');
SELECT is((SELECT count(*) FROM priced_entries e
           JOIN prices p ON p.source = 'LiteLLM model price map: ' || e.key AND p.service_tier = 'batch' AND p.min_input_tokens = 0
           WHERE amount(cost_of('in=1000 out=100', p.provider, p.model, 'batch', '2026-08-01'))
                 <> round((1000 * pg_temp.per_m(e.value, 'input_cost_per_token_batches')
                          + 100 * pg_temp.per_m(e.value, 'output_cost_per_token_batches')) / 1000000, 9)), 0::bigint,
          'batch calls are priced at the map''s _batches prices');

SELECT * FROM finish();
ROLLBACK;
