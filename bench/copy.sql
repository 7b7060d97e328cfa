-- bench/copy.sql: COPY of :rows rows into the ledger and into the plain table
\set ON_ERROR_STOP 1
SET search_path = public, tokenledger;
COPY (SELECT gen_random_uuid()::text,
			 (ARRAY['openai', 'anthropic', 'google'])[1 + i % 3],
			 (ARRAY['gpt-4o-2024-08-06', 'claude-sonnet-4-5-20250929', 'gemini-2.5-flash'])[1 + i % 3],
			 tokens(100 + i % 20000, 300, i % 5000),
			 'key-' || (1 + i % 10), 'app-' || (1 + i % 10), 'svc-bench'
	  FROM generate_series(1, :rows) i) TO '/tmp/tokenledger-bench-copy.csv' WITH (FORMAT csv);
CREATE TEMP TABLE copy_timings (target text, ms numeric);
DO $$
DECLARE
	t0 timestamptz;
BEGIN
	t0 := clock_timestamp();
	COPY bench_plain (request_id, provider, model, tokens, api_key, app, principal)
		FROM '/tmp/tokenledger-bench-copy.csv' WITH (FORMAT csv);
	INSERT INTO copy_timings VALUES ('plain', extract(epoch FROM clock_timestamp() - t0) * 1000);
	t0 := clock_timestamp();
	COPY tokenledger.usage (request_id, provider, model, tokens, api_key, app, principal)
		FROM '/tmp/tokenledger-bench-copy.csv' WITH (FORMAT csv);
	INSERT INTO copy_timings VALUES ('ledger', extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
SELECT target, round(ms) AS ms, round(:rows / (ms / 1000)) AS rows_per_second FROM copy_timings;
SELECT round((SELECT ms FROM copy_timings WHERE target = 'plain') / (SELECT ms FROM copy_timings WHERE target = 'ledger'), 2)
	AS copy_ratio \gset
SELECT count(*) FILTER (WHERE cost IS NOT NULL) AS priced, count(*) FILTER (WHERE attribution LIKE 'rule:%') AS attributed
FROM tokenledger.usage WHERE principal = 'svc-bench';
\echo copy_ratio :copy_ratio
\! rm -f /tmp/tokenledger-bench-copy.csv
