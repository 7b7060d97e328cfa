-- bench/scale_rows.sql: the scale benchmark's calls, written once to CSV
-- files in :dir for COPY (columns: occurred_at, request_id, provider,
-- model, tokens, api_key, app, principal, environment, team, initiative).
-- :rows calls over the twelve months of 2025 in time order (a few minutes
-- of jitter), each with its own request_id, over 30 of the shipped models;
-- a tenth name their team and initiative, the rest are attributed by the
-- rules or stay unattributed.
--   all.csv        every call
--   coord.csv      every 250th call (recorded through the coordinator)
--   shard1.csv     the other calls of January to June
--   shard2.csv     the other calls of July to December
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE EXTENSION IF NOT EXISTS tokenledger;
DROP TABLE IF EXISTS bench_scale_rows;
CREATE UNLOGGED TABLE bench_scale_rows AS
WITH m AS (
	SELECT array_agg(provider ORDER BY provider, model) AS providers, array_agg(model ORDER BY provider, model) AS models
	FROM (SELECT DISTINCT provider, model FROM tokenledger.prices
		  WHERE shipped AND service_tier = 'standard' AND model NOT LIKE '%embedding%'
		  ORDER BY provider, model LIMIT 30) p
)
SELECT i,
	   timestamptz '2025-01-01 00:00+00'
		 + ((365 * 86400 - 600) * ((i - 1)::float8 / :rows) + (i * 7919) % 600) * interval '1 second' AS occurred_at,
	   'chatcmpl-' || substr(md5(i::text), 1, 24) AS request_id,
	   m.providers[1 + k] AS provider, m.models[1 + k] AS model,
	   tokenledger.tokens(200 + (i * 37) % 8000, 50 + (i * 53) % 1500,
						  CASE WHEN i % 3 = 0 THEN (i * 11) % 4000 ELSE 0 END) AS tokens,
	   'key-' || (1 + i % 22) AS api_key, 'app-' || (1 + (i / 22) % 17) AS app,
	   CASE WHEN i % 10 = 0 THEN 'svc-bench' ELSE 'user-' || (1 + (i * 13) % 300) END AS principal,
	   CASE WHEN i % 4 = 0 THEN 'dev' ELSE 'prod' END AS environment,
	   CASE WHEN i % 10 = 7 THEN 'team-' || ((i / 10) % 6) END AS team,
	   CASE WHEN i % 10 = 7 THEN 'initiative-' || (1 + (i / 10) % 24) END AS initiative
FROM generate_series(1, :rows::bigint) i, m,
	 LATERAL (SELECT ((i * 7 + i / 13) % cardinality(m.models))::int AS k) x;
\set cols 'occurred_at, request_id, provider, model, tokens, api_key, app, principal, environment, team, initiative'
\set all_csv :dir '/all.csv'
\set coord_csv :dir '/coord.csv'
\set shard1_csv :dir '/shard1.csv'
\set shard2_csv :dir '/shard2.csv'
COPY (SELECT :cols FROM bench_scale_rows ORDER BY i) TO :'all_csv' WITH (FORMAT csv);
COPY (SELECT :cols FROM bench_scale_rows WHERE i % 250 = 0 ORDER BY i) TO :'coord_csv' WITH (FORMAT csv);
COPY (SELECT :cols FROM bench_scale_rows WHERE i % 250 <> 0 AND occurred_at < '2025-07-01' ORDER BY i)
	TO :'shard1_csv' WITH (FORMAT csv);
COPY (SELECT :cols FROM bench_scale_rows WHERE i % 250 <> 0 AND occurred_at >= '2025-07-01' ORDER BY i)
	TO :'shard2_csv' WITH (FORMAT csv);
SELECT count(*) AS calls, count(DISTINCT model) AS models, min(occurred_at) AS first_call, max(occurred_at) AS last_call
FROM bench_scale_rows;
DROP TABLE bench_scale_rows;
