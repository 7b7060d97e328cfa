-- bench/scale_setup.sql: the catalog of the scale benchmark's ledgers (the
-- single-node ones, the coordinator and the shards alike): 24 initiatives
-- of 6 teams and 20 attribution rules (by API key and by app); no
-- partitions are made here
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
INSERT INTO initiatives (name, team) SELECT 'initiative-' || i, 'team-' || (i % 6) FROM generate_series(1, 24) i
ON CONFLICT DO NOTHING;
INSERT INTO attribution_rules (priority, match_api_key, match_app, initiative)
SELECT i, CASE WHEN i % 2 = 0 THEN 'key-' || i END, CASE WHEN i % 2 = 1 THEN 'app-' || i END, 'initiative-' || i
FROM generate_series(1, 20) i;
