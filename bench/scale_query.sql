-- bench/scale_query.sql: times one query of the scale benchmark in this
-- database: :q (a query text), median ms of :runs runs after one warm-up.
-- Prints one line, ms|rows|digest|scan nodes|ledger partitions scanned: the
-- digest (md5 of the rows) compares the figures between databases; the
-- partitions are the ledger's (tokenledger.usage's) that the plan scans
-- when run (EXPLAIN ANALYZE: scan nodes that ran at least once; a branch a
-- one-time filter skips, or a partition pruned, is not counted).  Fails when
-- the query fails or returns no rows.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET jit = off;
\ir bench_ms.sql
CREATE OR REPLACE FUNCTION pg_temp.measure(q text, runs int, OUT ms numeric, OUT nrows bigint, OUT digest text,
										   OUT scans text, OUT parts text)
LANGUAGE plpgsql AS $$
DECLARE
	plan jsonb;
BEGIN
	EXECUTE 'SELECT count(*), md5(string_agg(t::text, '','' ORDER BY t::text)) FROM (' || q || ') t' INTO nrows, digest;
	IF nrows = 0 THEN
		RAISE EXCEPTION 'the query returned no rows: %', q;
	END IF;
	ms := round(pg_temp.bench_ms(q, runs), 1);
	EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO plan;
	SELECT coalesce(string_agg(DISTINCT n ->> 'Node Type', ', '), ''),
		   coalesce(string_agg(DISTINCT n ->> 'Relation Name', ' '), '') INTO scans, parts
	FROM jsonb_path_query(plan, 'strict $.** ? (@."Actual Loops" > 0 && exists (@."Relation Name"))') n
	WHERE n ->> 'Relation Name' IN (SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
									WHERE i.inhparent = 'tokenledger.usage'::regclass);
END $$;
SELECT ms, nrows, digest, scans, parts FROM pg_temp.measure(:'q', :runs);
