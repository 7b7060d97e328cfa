-- bench/copy.sql: COPY of :rows rows into the ledger and into the plain table,
-- three times each
\set ON_ERROR_STOP 1
SET search_path = public, tokenledger;
SELECT set_config('bench.rows', :'rows', false) AS bench_rows \gset
-- three rounds, the plain table and the ledger in turn, each round's file
-- of new calls (new request_ids); the medians
CREATE TEMP TABLE copy_timings (target text, ms numeric);
DO $$
DECLARE
	t0 timestamptz;
	f text;
BEGIN
	FOR round IN 1..3 LOOP
		f := format('/tmp/tokenledger-bench-copy-%s.csv', round);
		EXECUTE format($q$COPY (SELECT gen_random_uuid()::text,
				(ARRAY['openai', 'anthropic', 'google'])[1 + i %% 3],
				(ARRAY['gpt-4o-2024-08-06', 'claude-sonnet-4-5-20250929', 'gemini-2.5-flash'])[1 + i %% 3],
				tokenledger.tokens(100 + i %% 20000, 300, i %% 5000),
				'key-' || (1 + i %% 10), 'app-' || (1 + i %% 10), 'svc-bench'
			FROM generate_series(1, %s) i) TO %L WITH (FORMAT csv)$q$, current_setting('bench.rows'), f);
		t0 := clock_timestamp();
		EXECUTE format('COPY bench_plain (request_id, provider, model, tokens, api_key, app, principal) FROM %L WITH (FORMAT csv)', f);
		INSERT INTO copy_timings VALUES ('plain', extract(epoch FROM clock_timestamp() - t0) * 1000);
		t0 := clock_timestamp();
		EXECUTE format('COPY tokenledger.usage (request_id, provider, model, tokens, api_key, app, principal) FROM %L WITH (FORMAT csv)', f);
		INSERT INTO copy_timings VALUES ('ledger', extract(epoch FROM clock_timestamp() - t0) * 1000);
	END LOOP;
END $$;
CREATE TEMP VIEW copy_medians AS
	SELECT target, percentile_disc(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM copy_timings GROUP BY target;
SELECT target, round(ms) AS median_ms, round(:rows / (ms / 1000)) AS rows_per_second FROM copy_medians ORDER BY target DESC;
SELECT round((SELECT ms FROM copy_medians WHERE target = 'plain') / (SELECT ms FROM copy_medians WHERE target = 'ledger'), 2)
	AS copy_ratio \gset
SELECT count(*) FILTER (WHERE cost IS NOT NULL) AS priced, count(*) FILTER (WHERE attribution LIKE 'rule:%') AS attributed
FROM tokenledger.usage WHERE principal = 'svc-bench';
\echo copy_ratio :copy_ratio
\! rm -f /tmp/tokenledger-bench-copy-1.csv /tmp/tokenledger-bench-copy-2.csv /tmp/tokenledger-bench-copy-3.csv
