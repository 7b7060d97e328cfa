-- bench/ingest_setup.sql: the ledger with a realistic rule set, and a plain
-- table with the same columns, constraints and indexes but no triggers
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
INSERT INTO initiatives (name, team) SELECT 'initiative-' || i, 'team-' || (i % 4) FROM generate_series(1, 10) i
ON CONFLICT DO NOTHING;
INSERT INTO attribution_rules (priority, match_api_key, match_app, match_tags, initiative)
SELECT i, CASE WHEN i % 2 = 0 THEN 'key-' || i END, CASE WHEN i % 2 = 1 THEN 'app-' || i END,
	   CASE WHEN i = 9 THEN '{"flow": "refund"}'::jsonb END, 'initiative-' || i
FROM generate_series(1, 10) i;
DROP TABLE IF EXISTS bench_plain;
CREATE TABLE bench_plain (LIKE tokenledger.usage INCLUDING ALL);
CREATE SEQUENCE bench_plain_id_seq OWNED BY bench_plain.id;
ALTER TABLE bench_plain ALTER id SET DEFAULT nextval('bench_plain_id_seq'),
	ALTER attribution SET DEFAULT 'unattributed';
