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
-- the month's partition, as a scheduled create_partitions() keeps it
SELECT create_partitions();
DROP TABLE IF EXISTS bench_plain;
-- the ledger's rules, as a plain table states them: 1.0's CHECK expressions
-- (the ledger checks the same rules with one C call, usage_row_check)
CREATE TABLE bench_plain (LIKE tokenledger.usage INCLUDING ALL EXCLUDING CONSTRAINTS,
	CHECK (requests >= 0),
	CHECK (jsonb_typeof(tags) = 'object'),
	CHECK (attribution ~ '^(explicit|unattributed|rule:[0-9]+)$'),
	CHECK (entry IN ('call', 'adjustment', 'rerate')),
	CHECK ((entry = 'call') = (adjusts IS NULL)));
CREATE SEQUENCE bench_plain_id_seq OWNED BY bench_plain.id;
ALTER TABLE bench_plain ALTER id SET DEFAULT nextval('bench_plain_id_seq'),
	ALTER attribution SET DEFAULT 'unattributed';
-- the indexes of a ledger partition, and a unique request_id (the ledger's
-- is in its key table)
ALTER TABLE bench_plain ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX ON bench_plain (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX ON bench_plain USING brin (occurred_at);
CREATE INDEX ON bench_plain (adjusts) WHERE adjusts IS NOT NULL;
CREATE INDEX ON bench_plain (id) WHERE cost IS NULL;
