-- tokenledger 1.0 -> 1.1: upgrade script (a new installation of 1.1 runs
-- the 1.0 script and then this one, so both end exactly alike)
\echo Use "ALTER EXTENSION tokenledger UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- caches: every cached table tells every backend when it changes, also on a
-- logical-replication subscriber (ENABLE ALWAYS)
-- ---------------------------------------------------------------------------

CREATE TRIGGER fx_rates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.fx_rates
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.catalog_changed();
ALTER TABLE @extschema@.prices ENABLE ALWAYS TRIGGER prices_changed;
ALTER TABLE @extschema@.model_aliases ENABLE ALWAYS TRIGGER model_aliases_changed;
ALTER TABLE @extschema@.attribution_rules ENABLE ALWAYS TRIGGER attribution_rules_changed;
ALTER TABLE @extschema@.initiatives ENABLE ALWAYS TRIGGER initiatives_changed;
ALTER TABLE @extschema@.budgets ENABLE ALWAYS TRIGGER budgets_changed;
ALTER TABLE @extschema@.fx_rates ENABLE ALWAYS TRIGGER fx_rates_changed;

-- ---------------------------------------------------------------------------
-- the ledger, partitioned by month
--
-- usage and outcomes are range-partitioned on occurred_at: one partition a
-- month (usage_2026_11, named by the month in UTC) and a default partition
-- that takes every row no month covers yet, so no row is ever refused for
-- its date.  create_partitions() makes the months ahead and moves the rows
-- a default partition holds into their month.  A partitioned table's unique
-- indexes must include the partition key, so the idempotency keys live in
-- tables of their own (usage_request_ids, outcome_external_refs), written by
-- the row triggers: a request_id is recorded once whichever month it names.
-- Each partition has its own primary key on id; the parents have no unique
-- index, so a partition may also be a foreign table (a shard).
-- ---------------------------------------------------------------------------

-- lets this transaction's deletes of ledger partitions by the owner through
-- (create_partitions moving rows out of a default partition)
CREATE FUNCTION @extschema@.moving_rows(moving boolean) RETURNS void
	AS 'MODULE_PATHNAME', 'moving_rows_set' LANGUAGE C STRICT;
COMMENT ON FUNCTION @extschema@.moving_rows(boolean) IS
	'internal: lets create_partitions() move rows out of a default partition in this transaction';
REVOKE EXECUTE ON FUNCTION @extschema@.moving_rows(boolean) FROM PUBLIC;

-- what every local partition of the ledger has of its own: a primary key,
-- the indexes (per partition, not on the parent: a restore attaches the
-- dumped partitions to the parent that CREATE EXTENSION made, and would
-- index them twice), and UPDATE, DELETE and TRUNCATE of it refused also
-- when no row would change (statement triggers are not inherited)
CREATE FUNCTION @extschema@.equip_partition(part regclass) RETURNS void LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	distributed boolean := false;
BEGIN
	-- a ledger that Citus distributes by team: a unique key must hold it
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = $1)'
			INTO distributed USING pg_catalog.pg_partition_root(part);
	END IF;
	EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (%s)', part, CASE WHEN distributed THEN 'id, team' ELSE 'id' END);
	EXECUTE format('CREATE INDEX ON %s USING brin (occurred_at)', part);
	IF (SELECT c.relname FROM pg_class c WHERE c.oid = pg_partition_root(part)) = 'usage' THEN
		EXECUTE format('CREATE INDEX ON %s (adjusts) WHERE adjusts IS NOT NULL', part);
		EXECUTE format('CREATE INDEX ON %s (id) WHERE cost IS NULL', part);
	END IF;
	EXECUTE format('CREATE TRIGGER no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON %s'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only()', part);
	EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER no_change', part);
END $$;
COMMENT ON FUNCTION @extschema@.equip_partition(regclass) IS
	'internal: gives a new partition of the ledger its primary key (id; id and team where Citus distributes the ledger), its indexes and its refusals of UPDATE, DELETE and TRUNCATE';
REVOKE EXECUTE ON FUNCTION @extschema@.equip_partition(regclass) FROM PUBLIC;

-- The rules of a ledger row, one C call per table instead of 1.0's CHECK
-- expressions (five on usage, two on outcomes): a table's constraints are
-- compiled again for every statement that inserts, which for a single-row
-- INSERT cost more than pricing, attribution, budgets and rollups together.
-- Same rules, and the error names the column and the value.
CREATE FUNCTION @extschema@.usage_row_check(requests bigint, tags jsonb, attribution text,
		entry text, adjusts bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'usage_row_check' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.usage_row_check(bigint, jsonb, text, text, bigint) IS
	'internal: the CHECK of a usage row (requests >= 0; tags a JSON object; attribution explicit, unattributed or rule:<id>; entry call, adjustment or rerate; adjusts set exactly on corrections); raises 23514 naming the column';
CREATE FUNCTION @extschema@.outcome_row_check(quantity numeric, attributes jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'outcome_row_check' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.outcome_row_check(numeric, jsonb) IS
	'internal: the CHECK of an outcomes row (quantity >= 0; attributes a JSON object); raises 23514 naming the column';

-- The 1.0 tables become partitioned ones of the same columns, defaults,
-- checks, comments and triggers (the indexes are the partitions'); their
-- rows move into the default partitions unchanged (ids, times, costs),
-- before any trigger is on the new tables.  unpriced_usage (1.0) is pointed
-- at the new usage.
DO $$
DECLARE
	t text;
	old regclass;
	defs text[];
	def text;
	view_def text := pg_catalog.pg_get_viewdef('@extschema@.unpriced_usage'::regclass);
BEGIN
	FOREACH t IN ARRAY ARRAY['usage', 'outcomes'] LOOP
		old := format('@extschema@.%I', t)::regclass;
		-- the triggers, as they are
		SELECT array_agg(d ORDER BY n) INTO defs FROM (
			SELECT 1 AS n, pg_catalog.pg_get_triggerdef(g.oid) AS d FROM pg_catalog.pg_trigger g
			WHERE g.tgrelid = old AND NOT g.tgisinternal
			UNION ALL
			SELECT 2, format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', old, g.tgname)
			FROM pg_catalog.pg_trigger g
			WHERE g.tgrelid = old AND NOT g.tgisinternal AND g.tgenabled = 'A') s;
		EXECUTE format('ALTER TABLE %s RENAME TO %I', old, t || '_1_0');
		EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.%I INCLUDING DEFAULTS'
					   ' INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)'
					   ' PARTITION BY RANGE (occurred_at)', t, t || '_1_0');
		EXECUTE format('COMMENT ON TABLE @extschema@.%I IS %L', t,
					   pg_catalog.obj_description(old, 'pg_class') || '; partitioned by month');
		-- the insert trigger stamps recorded_at (the recording transaction's
		-- start): a default would be filled in where the INSERT is planned,
		-- which on Citus is the coordinator, and the shard would take the row
		-- for a restored one
		EXECUTE format('ALTER TABLE @extschema@.%I ALTER COLUMN recorded_at DROP DEFAULT', t);
		-- an outcome carries its team, as a call does: the key the ledger
		-- and its rollups are read by (and distributed by, on Citus)
		IF t = 'outcomes' THEN
			ALTER TABLE @extschema@.outcomes ADD COLUMN team text;
			COMMENT ON COLUMN @extschema@.outcomes.team IS
				'the team of the outcome: as given, else its initiative''s team when recorded';
		END IF;
		-- 1.0's CHECK expressions give way to the row's check function (above)
		FOR def IN SELECT c.conname FROM pg_catalog.pg_constraint c
				   WHERE c.conrelid = format('@extschema@.%I', t)::regclass AND c.contype = 'c' LOOP
			EXECUTE format('ALTER TABLE @extschema@.%I DROP CONSTRAINT %I', t, def);
		END LOOP;
		IF t = 'usage' THEN
			ALTER TABLE @extschema@.usage ADD CONSTRAINT usage_row_check
				CHECK (@extschema@.usage_row_check(requests, tags, attribution, entry, adjusts));
		ELSE
			ALTER TABLE @extschema@.outcomes ADD CONSTRAINT outcomes_row_check
				CHECK (@extschema@.outcome_row_check(quantity, attributes));
		END IF;
		EXECUTE format('COMMENT ON CONSTRAINT %I ON @extschema@.%I IS %L', t || '_row_check', t,
					   'the rules of a row of ' || t || ', checked by one C call (see the function''s comment)');
		EXECUTE format('CREATE TABLE @extschema@.%I PARTITION OF @extschema@.%I DEFAULT', t || '_default', t);
		EXECUTE format('COMMENT ON TABLE @extschema@.%I IS %L', t || '_default',
					   'the rows of ' || t || ' that no month partition covers (create_partitions() moves them into their month)');
		PERFORM @extschema@.equip_partition(format('@extschema@.%I', t || '_default')::regclass);
		PERFORM pg_catalog.pg_extension_config_dump(format('@extschema@.%I', t || '_default'), '');
		IF t = 'usage' THEN
			EXECUTE format('INSERT INTO @extschema@.%I SELECT * FROM %s', t, old);
		ELSE
			EXECUTE format('INSERT INTO @extschema@.outcomes SELECT o.*, i.team FROM %s o'
						   ' LEFT JOIN @extschema@.initiatives i ON i.name OPERATOR(pg_catalog.=) o.initiative',
						   old);
		END IF;
		EXECUTE format('ALTER SEQUENCE @extschema@.%I OWNED BY @extschema@.%I.id', t || '_id_seq', t);
		IF t = 'usage' THEN
			EXECUTE 'CREATE OR REPLACE VIEW @extschema@.unpriced_usage AS ' || view_def;
		END IF;
		EXECUTE format('ALTER EXTENSION tokenledger DROP TABLE %s', old);
		EXECUTE format('DROP TABLE %s', old);
		FOREACH def IN ARRAY defs LOOP
			EXECUTE def;
		END LOOP;
	END LOOP;
END $$;

-- partitions inherit row triggers, not statement ones: DELETE and UPDATE of
-- a partition are refused row by row (the owner's one UPDATE, filling a
-- missing cost, is the usage_before row trigger's to allow)
CREATE TRIGGER usage_no_delete BEFORE DELETE ON @extschema@.usage
	FOR EACH ROW EXECUTE FUNCTION @extschema@.append_only();
ALTER TABLE @extschema@.usage ENABLE ALWAYS TRIGGER usage_no_delete;
CREATE TRIGGER outcomes_no_change BEFORE UPDATE OR DELETE ON @extschema@.outcomes
	FOR EACH ROW EXECUTE FUNCTION @extschema@.append_only();
ALTER TABLE @extschema@.outcomes ENABLE ALWAYS TRIGGER outcomes_no_change;

-- the idempotency keys (the key, the row's id and time); derived from the
-- ledger, so not dumped: a restore writes them again
CREATE TABLE @extschema@.usage_request_ids (
	request_id text CONSTRAINT usage_request_id_key PRIMARY KEY,
	id bigint NOT NULL,
	occurred_at timestamptz NOT NULL
);
COMMENT ON TABLE @extschema@.usage_request_ids IS
	'the request_id of every usage row, once, whichever month the row is in (the insert trigger writes it)';
CREATE TABLE @extschema@.outcome_external_refs (
	external_ref text CONSTRAINT outcomes_external_ref_key PRIMARY KEY,
	id bigint NOT NULL,
	occurred_at timestamptz NOT NULL
);
COMMENT ON TABLE @extschema@.outcome_external_refs IS
	'the external_ref of every outcome, once, whichever month the outcome is in (the insert trigger writes it)';
INSERT INTO @extschema@.usage_request_ids
SELECT u.request_id, u.id, u.occurred_at FROM @extschema@.usage u WHERE u.request_id IS NOT NULL;
INSERT INTO @extschema@.outcome_external_refs
SELECT o.external_ref, o.id, o.occurred_at FROM @extschema@.outcomes o WHERE o.external_ref IS NOT NULL;

-- The locks that changing the ledger's partitions takes, all at once: the
-- first table waits (5 seconds at most, or lock_timeout when shorter), the
-- others are taken at once or not at all, and when one is not, all are let
-- go and the round starts again.  So a maintenance call never holds one of
-- them while it waits for a transaction that waits for it (a recorder of
-- both tables, a report that records).  55P03 when they stay taken.
CREATE FUNCTION @extschema@.lock_ledgers(tables regclass[], modes text[]) RETURNS void LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	deadline timestamptz := pg_catalog.clock_timestamp() + interval '5 seconds';
BEGIN
	LOOP
		BEGIN
			EXECUTE format('LOCK TABLE ONLY %s IN %s MODE', tables[1], modes[1]);
			FOR i IN 2 .. pg_catalog.array_length(tables, 1) LOOP
				EXECUTE format('LOCK TABLE ONLY %s IN %s MODE NOWAIT', tables[i], modes[i]);
			END LOOP;
			RETURN;
		EXCEPTION WHEN lock_not_available THEN
			-- the subtransaction's locks are let go with it
			IF pg_catalog.clock_timestamp() >= deadline THEN
				RAISE EXCEPTION 'could not change the ledger''s partitions: transactions using % stayed open',
					pg_catalog.array_to_string(tables, ', ')
					USING ERRCODE = 'lock_not_available', HINT = 'Run it again when they have ended.';
			END IF;
			PERFORM pg_catalog.pg_sleep(0.05);
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION @extschema@.lock_ledgers(regclass[], text[]) IS
	'internal: takes the locks of a change to the ledger''s partitions, all or none';
REVOKE EXECUTE ON FUNCTION @extschema@.lock_ledgers(regclass[], text[]) FROM PUBLIC;

-- One month's partition of usage or outcomes (m: the month's first day, in
-- UTC).  The default partition's rows of that month move into it: they are
-- deleted and inserted again through the ledger as restored rows (the
-- owner's), keeping every column, counted once.  Rows that this transaction
-- recorded would count again: their month waits for the next call.
-- Returns 1 when it made the partition, else 0.
CREATE FUNCTION @extschema@.create_partition(ledger text, m timestamp) RETURNS integer LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp SET DateStyle = 'ISO' SET TimeZone = 'UTC' AS $$
DECLARE
	part text := ledger || pg_catalog.to_char(m, '_YYYY_MM');
	lo timestamptz := m AT TIME ZONE 'UTC';
	hi timestamptz := (m + interval '1 month') AT TIME ZONE 'UTC';
	key text := CASE ledger WHEN 'usage' THEN 'request_id' ELSE 'external_ref' END;
	keys text := CASE ledger WHEN 'usage' THEN 'usage_request_ids' ELSE 'outcome_external_refs' END;
	moving boolean;
	busy boolean;
BEGIN
	IF ledger NOT IN ('usage', 'outcomes') THEN
		RAISE EXCEPTION 'no ledger table "%"', ledger USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF pg_catalog.to_regclass(format('@extschema@.%I', part)) IS NOT NULL THEN
		RETURN 0;
	END IF;
	-- (the caller holds the ledger against recorders: none slips in between)
	-- (SELECT 1: Citus plans no empty select list over a distributed table)
	EXECUTE format('SELECT EXISTS (SELECT 1 FROM @extschema@.%I d WHERE d.occurred_at >= $1 AND d.occurred_at < $2),'
				   ' EXISTS (SELECT 1 FROM @extschema@.%I d WHERE d.occurred_at >= $1 AND d.occurred_at < $2'
				   ' AND d.recorded_at = pg_catalog.now())', ledger || '_default', ledger || '_default')
		INTO moving, busy USING lo, hi;
	-- a month archived already comes back only for rows that arrived late
	IF busy OR (NOT moving AND pg_catalog.to_regclass(format('@extschema@_archive.%I', part)) IS NOT NULL) THEN
		RETURN 0;
	END IF;
	EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.%I INCLUDING DEFAULTS'
				   ' INCLUDING CONSTRAINTS INCLUDING STORAGE)', part, ledger);
	IF moving THEN
		EXECUTE format('CREATE TEMPORARY TABLE pg_temp.moved ON COMMIT DROP AS SELECT * FROM @extschema@.%I WITH NO DATA', part);
		PERFORM @extschema@.moving_rows(true);
		EXECUTE format('WITH d AS (DELETE FROM @extschema@.%I d WHERE d.occurred_at >= $1 AND d.occurred_at < $2'
					   ' RETURNING d.*) INSERT INTO pg_temp.moved SELECT * FROM d', ledger || '_default') USING lo, hi;
		PERFORM @extschema@.moving_rows(false);
		EXECUTE format('DELETE FROM @extschema@.%I k USING pg_temp.moved m WHERE k.%I = m.%I', keys, key, key);
	END IF;
	BEGIN
		EXECUTE format('ALTER TABLE @extschema@.%I ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
					   ledger, part, lo, hi);
	EXCEPTION WHEN invalid_object_definition THEN
		-- another partition covers the month (a shard's foreign table, one
		-- made by hand): the month is there already
		IF moving THEN
			RAISE;
		END IF;
		EXECUTE format('DROP TABLE @extschema@.%I', part);
		RETURN 0;
	END;
	PERFORM @extschema@.equip_partition(format('@extschema@.%I', part)::regclass);
	IF moving THEN
		EXECUTE format('INSERT INTO @extschema@.%I SELECT * FROM pg_temp.moved', ledger);
		DROP TABLE pg_temp.moved;
	END IF;
	RETURN 1;
END $$;
COMMENT ON FUNCTION @extschema@.create_partition(text, timestamp) IS
	'internal: one month''s partition of usage or outcomes, with the default partition''s rows of that month moved into it';
REVOKE EXECUTE ON FUNCTION @extschema@.create_partition(text, timestamp) FROM PUBLIC;

CREATE TYPE @extschema@.ledger_month AS (ledger text, month timestamp);
COMMENT ON TYPE @extschema@.ledger_month IS 'internal: a month of usage or outcomes (its first day, in UTC)';

CREATE FUNCTION @extschema@.create_partitions(since timestamptz DEFAULT now(), ahead interval DEFAULT '3 months')
	RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
	first_month timestamp := pg_catalog.date_trunc('month', since AT TIME ZONE 'UTC');
	last_month timestamp := pg_catalog.date_trunc('month', (pg_catalog.now() + ahead) AT TIME ZONE 'UTC');
	t text;
	m timestamp;
	todo @extschema@.ledger_month[] := '{}';
	made integer := 0;
BEGIN
	IF since IS NULL OR ahead IS NULL THEN
		RAISE EXCEPTION 'create_partitions() needs a since and an ahead, not NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF first_month < last_month - interval '100 years' THEN
		RAISE EXCEPTION 'create_partitions() would make more than 1200 months from % to %',
			pg_catalog.to_char(first_month, 'YYYY-MM'), pg_catalog.to_char(last_month, 'YYYY-MM')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Rows of months without a partition are kept in the default partition.';
	END IF;
	-- the months from since to ahead, then up to 24 months of rows that the
	-- default partitions hold outside them, oldest first (a flood of rows
	-- dated over the centuries is moved a little at each call, never
	-- blocking the months ahead)
	FOREACH t IN ARRAY ARRAY['usage', 'outcomes'] LOOP
		FOR m IN
			SELECT g FROM pg_catalog.generate_series(first_month, last_month, interval '1 month') g
			WHERE pg_catalog.to_regclass(format('@extschema@.%I', t || pg_catalog.to_char(g, '_YYYY_MM'))) IS NULL
		LOOP
			todo := todo || ROW(t, m)::@extschema@.ledger_month;
		END LOOP;
		FOR m IN EXECUTE format(
			'SELECT DISTINCT pg_catalog.date_trunc(''month'', d.occurred_at AT TIME ZONE ''UTC'') AS m'
			' FROM @extschema@.%I d WHERE d.occurred_at >= ''0001-01-01 00:00+00'''
			' AND d.occurred_at < ''9999-12-01 00:00+00'''
			' AND (d.occurred_at < $1 AT TIME ZONE ''UTC'''
			'      OR d.occurred_at >= ($2 + interval ''1 month'') AT TIME ZONE ''UTC'')'
			' ORDER BY 1 LIMIT 24', t || '_default')
			USING first_month, last_month
		LOOP
			todo := todo || ROW(t, m)::@extschema@.ledger_month;
		END LOOP;
	END LOOP;
	IF pg_catalog.cardinality(todo) = 0 THEN
		RETURN 0;
	END IF;
	-- recorders wait while the months are made (moments, unless rows move);
	-- the default partitions are scanned by ATTACH
	PERFORM @extschema@.lock_ledgers(
		ARRAY['@extschema@.usage', '@extschema@.outcomes', '@extschema@.usage_default',
			  '@extschema@.outcomes_default']::regclass[],
		ARRAY['SHARE ROW EXCLUSIVE', 'SHARE ROW EXCLUSIVE', 'ACCESS EXCLUSIVE', 'ACCESS EXCLUSIVE']);
	FOR i IN 1 .. pg_catalog.cardinality(todo) LOOP
		made := made + @extschema@.create_partition(todo[i].ledger, todo[i].month);
	END LOOP;
	RETURN made;
END $$;
COMMENT ON FUNCTION @extschema@.create_partitions(timestamptz, interval) IS
	'makes the monthly partitions of usage and outcomes from since''s month to ahead of now, moving the default partitions'' rows of those months in, and up to 24 more months for rows the default partitions hold outside them; returns how many it made; for a scheduler (pg_cron)';
REVOKE EXECUTE ON FUNCTION @extschema@.create_partitions(timestamptz, interval) FROM PUBLIC;

-- one conversion for the accounting, the reservations and the reports
CREATE OR REPLACE FUNCTION @extschema@.convert(amount @extschema@.cost, to_currency text,
		at timestamptz DEFAULT now())
	RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'cost_convert' LANGUAGE C STABLE PARALLEL RESTRICTED;

-- ---------------------------------------------------------------------------
-- idempotent recording under every isolation level: a replay finds the row
-- a concurrent recording committed, whatever the transaction's snapshot
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.recorded_usage(request_id text) RETURNS @extschema@.usage
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.recorded_usage(text) IS
	'the usage row recorded under a request_id, as committed now; NULL when none';
CREATE FUNCTION @extschema@.recorded_outcome(external_ref text) RETURNS @extschema@.outcomes
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.recorded_outcome(text) IS
	'the outcome recorded under an external_ref, as committed now; NULL when none';

-- the conflict error names the key and the fields that differ (the
-- recorded row may be one the replaying role cannot read); the insert
-- trigger raises the same error for replays it leaves out (see
-- tokenledger.replays)
CREATE OR REPLACE FUNCTION @extschema@.replay_conflict(what text, key text, recorded text, replayed text)
	RETURNS void AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION @extschema@.replay_conflict(text, text, text, text) IS
	'the error of a replayed key with different content (recorded: the fields that differ)';

CREATE OR REPLACE FUNCTION @extschema@.record_usage(provider text, model text, usage jsonb,
		request_id text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
		service_tier text DEFAULT NULL, requests bigint DEFAULT NULL,
		cost @extschema@.cost DEFAULT NULL, team text DEFAULT NULL, initiative text DEFAULT NULL,
		principal text DEFAULT NULL, api_key text DEFAULT NULL, app text DEFAULT NULL,
		environment text DEFAULT NULL, run_id text DEFAULT NULL, prompt_hash text DEFAULT NULL,
		tags jsonb DEFAULT NULL, reservation_id uuid DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	t tokens := record_usage.usage::tokens;
	n bigint := coalesce(record_usage.requests,
						 (record_usage.usage ->> 'num_model_requests')::bigint, 1);
	tier text := coalesce(record_usage.service_tier, 'standard');
	old usage;
	new_id bigint;
BEGIN
	-- the second round is for a call recorded concurrently under the same key
	FOR attempt IN 1 .. 2 LOOP
		IF record_usage.request_id IS NOT NULL THEN
			old := recorded_usage(record_usage.request_id);
			IF old.id IS NOT NULL THEN
				IF old.provider <> record_usage.provider OR old.model <> record_usage.model
				   OR old.service_tier <> tier OR old.tokens <> t
				   OR (record_usage.cost IS NOT NULL AND old.cost IS DISTINCT FROM record_usage.cost) THEN
					-- the recorded row may be another team's: name what differs, not its values
					PERFORM replay_conflict('request_id', record_usage.request_id,
						concat_ws(', ', CASE WHEN old.provider <> record_usage.provider THEN 'provider' END,
								  CASE WHEN old.model <> record_usage.model THEN 'model' END,
								  CASE WHEN old.service_tier <> tier THEN 'service_tier' END,
								  CASE WHEN old.tokens <> t THEN 'tokens' END,
								  CASE WHEN record_usage.cost IS NOT NULL AND old.cost IS DISTINCT FROM record_usage.cost THEN 'cost' END),
						NULL);
				END IF;
				RETURN old.id;
			END IF;
		END IF;
		BEGIN
			INSERT INTO usage (occurred_at, request_id, provider, model, service_tier, tokens,
							   requests, cost, team, initiative, principal, api_key, app,
							   environment, run_id, prompt_hash, tags, reservation_id)
			VALUES (coalesce(record_usage.occurred_at, now()), record_usage.request_id,
					record_usage.provider, record_usage.model, tier, t, n, record_usage.cost,
					record_usage.team, record_usage.initiative, record_usage.principal,
					record_usage.api_key, record_usage.app, record_usage.environment,
					record_usage.run_id, record_usage.prompt_hash,
					coalesce(record_usage.tags, '{}'), record_usage.reservation_id)
			RETURNING id INTO new_id;
			RETURN new_id;
		EXCEPTION WHEN unique_violation THEN
			IF record_usage.request_id IS NULL OR attempt = 2 THEN
				RAISE;
			END IF;
		END;
	END LOOP;
END $$;

-- record_outcome takes the outcome's team too (1.1's new column), and names
-- it in its INSERT: the initiative's team when none is given, so that the
-- row's team is known before it is routed (to a partition, or a Citus shard)
DROP FUNCTION @extschema@.record_outcome(text, text, numeric, timestamptz, @extschema@.cost, text, text, jsonb);
CREATE FUNCTION @extschema@.record_outcome(initiative text, metric text, quantity numeric DEFAULT 1,
		occurred_at timestamptz DEFAULT NULL, value @extschema@.cost DEFAULT NULL,
		run_id text DEFAULT NULL, external_ref text DEFAULT NULL, attributes jsonb DEFAULT NULL,
		team text DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	old outcomes;
	new_id bigint;
	-- (looked up before the INSERT: Citus plans no subquery in an INSERT)
	row_team text := coalesce(record_outcome.team,
							  (SELECT i.team FROM initiatives i WHERE i.name = record_outcome.initiative));
BEGIN
	-- the second round is for an outcome recorded concurrently under the same key
	FOR attempt IN 1 .. 2 LOOP
		IF record_outcome.external_ref IS NOT NULL THEN
			old := recorded_outcome(record_outcome.external_ref);
			IF old.id IS NOT NULL THEN
				IF old.initiative <> record_outcome.initiative OR old.metric <> record_outcome.metric
				   OR old.quantity <> record_outcome.quantity
				   OR (record_outcome.value IS NOT NULL AND old.value IS DISTINCT FROM record_outcome.value) THEN
					PERFORM replay_conflict('external_ref', record_outcome.external_ref,
						concat_ws(', ', CASE WHEN old.initiative <> record_outcome.initiative THEN 'initiative' END,
								  CASE WHEN old.metric <> record_outcome.metric THEN 'metric' END,
								  CASE WHEN old.quantity <> record_outcome.quantity THEN 'quantity' END,
								  CASE WHEN record_outcome.value IS NOT NULL AND old.value IS DISTINCT FROM record_outcome.value THEN 'value' END),
						NULL);
				END IF;
				RETURN old.id;
			END IF;
		END IF;
		BEGIN
			INSERT INTO outcomes (occurred_at, initiative, metric, quantity, value, run_id, external_ref, attributes,
								  team)
			VALUES (coalesce(record_outcome.occurred_at, now()), record_outcome.initiative,
					record_outcome.metric, record_outcome.quantity, record_outcome.value,
					record_outcome.run_id, record_outcome.external_ref,
					coalesce(record_outcome.attributes, '{}'), row_team)
			RETURNING id INTO new_id;
			RETURN new_id;
		EXCEPTION WHEN unique_violation THEN
			IF record_outcome.external_ref IS NULL OR attempt = 2 THEN
				RAISE;
			END IF;
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION @extschema@.record_outcome(text, text, numeric, timestamptz, @extschema@.cost, text, text, jsonb, text) IS
	'record a business outcome; idempotent on external_ref (returns the existing id; a different replay is refused with 23505); team: the initiative''s when not given';

-- ---------------------------------------------------------------------------
-- corrections
-- ---------------------------------------------------------------------------

-- only the calls that a price now applies to are touched (and locked)
CREATE OR REPLACE FUNCTION @extschema@.reprice() RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	n bigint;
BEGIN
	-- the usage trigger fills each cost from the catalog; it allows no other change
	UPDATE usage u SET price_id = NULL
	WHERE u.cost IS NULL AND u.entry = 'call'
	  AND price_of(u.tokens, u.provider, u.model, u.service_tier, u.occurred_at, u.requests) IS NOT NULL;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;

-- concurrent runs for one model queue, and each sees the entries the one
-- before it appended
CREATE OR REPLACE FUNCTION @extschema@.rerate(provider text, model text, since timestamptz, until timestamptz)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	n bigint;
BEGIN
	IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'rerate() runs under READ COMMITTED, not %', pg_catalog.current_setting('transaction_isolation')
			USING ERRCODE = 'invalid_transaction_state',
				  HINT = 'A transaction that cannot see the corrections a concurrent rerate() committed would append them again.';
	END IF;
	PERFORM pg_catalog.pg_advisory_xact_lock(29804, pg_catalog.hashtext('rerate ' || rerate.provider || '/' || rerate.model));
	INSERT INTO usage (occurred_at, provider, model, service_tier, tokens, requests, cost, price_id,
					   team, initiative, principal, api_key, app, environment, run_id,
					   prompt_hash, tags, attribution, entry, adjusts, reason)
	SELECT d.occurred_at, d.provider, d.model, d.service_tier, 'in=0 out=0', 0, d.delta, d.new_price_id,
		   d.team, d.initiative, d.principal, d.api_key, d.app, d.environment, d.run_id,
		   d.prompt_hash, d.tags, d.attribution, 'rerate', d.id,
		   format('rerate: price %s charges %s, was %s', d.new_price_id, d.new_cost, d.charged)
	FROM (
		SELECT c.*, c.new_cost - c.charged AS delta
		FROM (
			SELECT u.*, p.id AS new_price_id, u.tokens * p.rate AS new_cost,
				   u.cost + coalesce((SELECT sum(r.cost) FROM usage r
									  WHERE r.adjusts = u.id AND r.entry = 'rerate'), u.cost * 0) AS charged
			FROM usage u
			JOIN prices p ON p.id = price_of(u.tokens, u.provider, u.model, u.service_tier,
											 u.occurred_at, u.requests)
			WHERE u.entry = 'call' AND u.price_id IS NOT NULL
			  AND u.provider = rerate.provider
			  AND (u.model = rerate.model OR resolve_model(u.provider, u.model) = rerate.model)
			  AND u.occurred_at >= rerate.since AND u.occurred_at < rerate.until
		) c
	) d
	WHERE amount(d.delta) <> 0;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;

-- ---------------------------------------------------------------------------
-- the ledger keeps no rows out of sight: no table may inherit from it
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.guard_ledger_inheritance() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	child regclass;
BEGIN
	-- partitions are the ledger's own (they inherit its triggers); a table
	-- that merely inherits does not
	SELECT i.inhrelid::regclass INTO child FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent IN (to_regclass('@extschema@.usage'), to_regclass('@extschema@.outcomes'),
						  to_regclass('@extschema@_archive.usage'), to_regclass('@extschema@_archive.outcomes'))
	  AND NOT c.relispartition
	LIMIT 1;
	IF child IS NOT NULL THEN
		RAISE EXCEPTION 'table % cannot inherit from the tokenledger ledger', child
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'Rows of a child table would escape pricing, budgets and the append-only rules.';
	END IF;
END $$;
CREATE EVENT TRIGGER tokenledger_guard_ledger ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
	EXECUTE FUNCTION @extschema@.guard_ledger_inheritance();

-- ---------------------------------------------------------------------------
-- budgets
-- ---------------------------------------------------------------------------

-- counters carry their currency: spend that no exchange rate converts to
-- the budget's currency is counted in its own, never dropped
ALTER TABLE @extschema@.budget_spend ADD COLUMN currency text;
UPDATE @extschema@.budget_spend SET currency = @extschema@.currency(spent);
ALTER TABLE @extschema@.budget_spend ALTER COLUMN currency SET NOT NULL;
-- counters restored from a dump taken at 1.0 come without it
CREATE FUNCTION @extschema@.budget_spend_currency() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
	NEW.currency := coalesce(NEW.currency, currency(NEW.spent));
	RETURN NEW;
END $$;
CREATE TRIGGER budget_spend_currency BEFORE INSERT ON @extschema@.budget_spend
	FOR EACH ROW WHEN (NEW.currency IS NULL) EXECUTE FUNCTION @extschema@.budget_spend_currency();
ALTER TABLE @extschema@.budget_spend
	ADD CONSTRAINT budget_spend_currency_check CHECK (currency = @extschema@.currency(spent));
ALTER TABLE @extschema@.budget_spend DROP CONSTRAINT budget_spend_pkey;
ALTER TABLE @extschema@.budget_spend ADD PRIMARY KEY (budget_id, period_start, slot, currency);
COMMENT ON TABLE @extschema@.budget_spend IS
	'spend counted against each budget and period, kept by the ledger''s insert path: a period''s spend is the sum of its slots; rows in another currency than the budget''s hold spend no exchange rate converts';
-- counter rows are updated by every recording: with room on their pages,
-- the versions each update leaves behind are pruned while they are few
ALTER TABLE @extschema@.budget_spend SET (fillfactor = 10);

-- an upper bound of each budget's spend in a period, set by the recount and
-- raised in place by the insert path, so that a commit far below a budget's
-- thresholds does not read its counters (src/bound.c); not dumped (the
-- recounts rebuild it)
CREATE TABLE @extschema@.budget_bounds (
	budget_id bigint PRIMARY KEY,
	period_start timestamptz NOT NULL,
	bound bigint NOT NULL,
	ahead bigint NOT NULL
);
COMMENT ON TABLE @extschema@.budget_bounds IS
	'internal: per budget, upper bounds (nanos, in the budget''s currency) of the spend written into its counters for period_start (bound) and for the periods after it (ahead), kept in place outside MVCC by the insert path and set exactly by budget_recount';
-- counters written by SQL (a logical replication's apply, a restore, a
-- hand) take their budgets' bounds with them: a bound knows only what the
-- insert path and the recount write, and without one the counters are read
CREATE FUNCTION @extschema@.budget_spend_unbound() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		DELETE FROM budget_bounds;
	ELSIF TG_OP = 'DELETE' THEN
		DELETE FROM budget_bounds WHERE budget_id = OLD.budget_id;
	ELSE
		DELETE FROM budget_bounds WHERE budget_id = NEW.budget_id;
	END IF;
	RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION @extschema@.budget_spend_unbound() FROM PUBLIC;
CREATE TRIGGER budget_spend_unbound AFTER INSERT OR UPDATE OR DELETE ON @extschema@.budget_spend
	FOR EACH ROW EXECUTE FUNCTION @extschema@.budget_spend_unbound();
CREATE TRIGGER budget_spend_unbound_truncate AFTER TRUNCATE ON @extschema@.budget_spend
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.budget_spend_unbound();
-- a replication's apply too
ALTER TABLE @extschema@.budget_spend ENABLE ALWAYS TRIGGER budget_spend_unbound,
	ENABLE ALWAYS TRIGGER budget_spend_unbound_truncate;

-- alerts are checked when the recording transaction commits, by the module
DROP TRIGGER budget_checks_at_commit ON @extschema@.budget_checks;
DROP FUNCTION @extschema@.budget_check_alerts();
DROP TABLE @extschema@.budget_checks;
-- settlement is done by the module, as the extension's owner
DROP FUNCTION @extschema@.budget_settle(uuid[], bigint[]);

-- the budget's lock, in a key space that no role can take from SQL
CREATE OR REPLACE FUNCTION @extschema@.lock_budget(budget_id bigint) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
COMMENT ON FUNCTION @extschema@.lock_budget(bigint) IS
	'the budget''s lock until the transaction ends (reservations and alert checks take it in budget id order)';
REVOKE EXECUTE ON FUNCTION @extschema@.lock_budget(bigint) FROM PUBLIC;

-- scope matching: the accounting's own definition
CREATE OR REPLACE FUNCTION @extschema@.budget_applies(b @extschema@.budgets, team text, initiative text,
		principal text, api_key text, app text)
	RETURNS boolean AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.budget_applies(@extschema@.budgets, text, text, text, text, text) IS
	'whether an active budget applies to a call with these attributes';

-- spent and reserved, read together in one fresh snapshot
CREATE FUNCTION @extschema@.budget_position(budget_id bigint, period_start timestamptz, currency text,
		OUT spent @extschema@.cost, OUT reserved @extschema@.cost, OUT unconverted text)
	RETURNS record AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.budget_position(bigint, timestamptz, text) IS
	'a budget period''s spend and live reservations in the budget''s currency, as committed now (and this transaction''s own), and the spend no exchange rate converts';

CREATE OR REPLACE FUNCTION @extschema@.budget_spent(budget_id bigint, period_start timestamptz)
	RETURNS @extschema@.cost LANGUAGE sql VOLATILE PARALLEL RESTRICTED
	BEGIN ATOMIC
		SELECT (@extschema@.budget_position(b.id, budget_spent.period_start, @extschema@.currency(b.amount))).spent
		FROM @extschema@.budgets b WHERE b.id = budget_spent.budget_id;
	END;
CREATE OR REPLACE FUNCTION @extschema@.budget_reserved(budget_id bigint, period_start timestamptz)
	RETURNS @extschema@.cost LANGUAGE sql VOLATILE PARALLEL RESTRICTED
	BEGIN ATOMIC
		SELECT (@extschema@.budget_position(b.id, budget_reserved.period_start, @extschema@.currency(b.amount))).reserved
		FROM @extschema@.budgets b WHERE b.id = budget_reserved.budget_id;
	END;

CREATE OR REPLACE FUNCTION @extschema@.budget_check(team text DEFAULT NULL, initiative text DEFAULT NULL,
		principal text DEFAULT NULL, api_key text DEFAULT NULL, app text DEFAULT NULL,
		estimate @extschema@.cost DEFAULT NULL)
	RETURNS TABLE (budget_id bigint, name text, allowed boolean, status text,
				   spent @extschema@.cost, reserved @extschema@.cost, amount @extschema@.cost,
				   remaining @extschema@.cost, period_start timestamptz, period_end timestamptz)
	LANGUAGE sql VOLATILE
	SET search_path = @extschema@, pg_temp
	BEGIN ATOMIC
		SELECT c.id, c.name,
			   c.mode = 'alert'
			   OR (c.unconverted IS NULL
				   AND c.spent + c.reserved
					   + coalesce(convert(budget_check.estimate, currency(c.amount)), c.amount * 0) <= c.amount),
			   CASE WHEN c.spent >= c.amount THEN 'exceeded'
					WHEN c.spent >= c.amount * (SELECT min(t) FROM unnest(c.warn_at) t) THEN 'warning'
					ELSE 'ok' END,
			   c.spent, c.reserved, c.amount, c.amount - c.spent - c.reserved, c.ps, c.pe
		FROM (SELECT b.id, b.name, b.mode, b.amount, b.warn_at, p.ps, p.pe,
					 pos.spent, pos.reserved, pos.unconverted
			  FROM budgets b
			  CROSS JOIN LATERAL (SELECT period_start(b.period, now(), b.time_zone) AS ps,
										 period_end(b.period, now(), b.time_zone) AS pe) p
			  CROSS JOIN LATERAL budget_position(b.id, p.ps, currency(b.amount)) pos
			  WHERE budget_applies(b, budget_check.team, budget_check.initiative, budget_check.principal,
								   budget_check.api_key, budget_check.app)) c
		ORDER BY c.id;
	END;

-- a reservation records the role that took it: only that role (or one with
-- its rights, or an admin) releases it
ALTER TABLE @extschema@.budget_reservations ADD COLUMN reserved_by text;
COMMENT ON COLUMN @extschema@.budget_reservations.reserved_by IS
	'the role that took the reservation (NULL for reservations taken before 1.1: only admins release them)';

-- budget_reserve() (C) runs this as the extension's owner, naming the caller
CREATE FUNCTION @extschema@.budget_reserve_for(caller oid, team text, initiative text,
		principal text, api_key text, app text, estimate @extschema@.cost, ttl interval)
	RETURNS uuid LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	b budgets;
	ps timestamptz;
	pos record;
	held cost;
	rid uuid;
	expires timestamptz := now() + budget_reserve_for.ttl;
BEGIN
	IF budget_reserve_for.estimate IS NULL THEN
		RAISE EXCEPTION 'a reservation needs an estimate' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Estimate the call first, e.g. with tokenledger.cost_of(tokens, provider, model).';
	END IF;
	IF amount(budget_reserve_for.estimate) < 0 THEN
		RAISE EXCEPTION 'a reservation''s estimate cannot be negative: %', budget_reserve_for.estimate
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF budget_reserve_for.ttl IS NULL OR budget_reserve_for.ttl <= interval '0' THEN
		RAISE EXCEPTION 'a reservation needs a positive ttl' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO budget_reservations (team, initiative, principal, api_key, app, estimate, expires_at,
									 reserved_by)
	VALUES (budget_reserve_for.team, budget_reserve_for.initiative, budget_reserve_for.principal,
			budget_reserve_for.api_key, budget_reserve_for.app, budget_reserve_for.estimate, expires,
			(SELECT r.rolname FROM pg_roles r WHERE r.oid = budget_reserve_for.caller))
	RETURNING id INTO rid;
	-- every applicable budget, in id order: block budgets are locked in that
	-- order, as the commit-time alert checks lock them
	FOR b IN SELECT * FROM budgets x
			 WHERE budget_applies(x, budget_reserve_for.team, budget_reserve_for.initiative,
								  budget_reserve_for.principal, budget_reserve_for.api_key, budget_reserve_for.app)
			 ORDER BY x.id LOOP
		-- the estimate in the budget's currency, at today's rate (22023 when none)
		held := convert(budget_reserve_for.estimate, currency(b.amount), now());
		ps := period_start(b.period, now(), b.time_zone);
		IF b.mode = 'block' THEN
			PERFORM lock_budget(b.id);
			IF current_setting('transaction_isolation') = 'read committed' THEN
				DELETE FROM budget_holds h WHERE h.budget_id = b.id AND h.expires_at <= now();
			END IF;
			-- after the lock: spend and reservations as committed now
			pos := budget_position(b.id, ps, currency(b.amount));
			IF pos.unconverted IS NOT NULL THEN
				RAISE EXCEPTION 'budget "%" has spend that no exchange rate converts to %: %',
					b.name, currency(b.amount), pos.unconverted
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Add the missing rates to tokenledger.fx_rates; the budget is counted again.';
			END IF;
			IF pos.spent + pos.reserved + held > b.amount THEN
				RAISE EXCEPTION 'budget "%" would be exceeded', b.name
					USING ERRCODE = 'TL001',
						  DETAIL = format('Spent %s and reserved %s of %s this %s; the estimate is %s.',
										  pos.spent, pos.reserved, b.amount, b.period, held),
						  HINT = 'Wait for the next period, raise the budget, or release reservations no longer needed.';
			END IF;
		END IF;
		-- a budget deleted since this transaction's snapshot holds nothing
		INSERT INTO budget_holds (reservation_id, budget_id, period_start, amount, expires_at)
		SELECT rid, b.id, ps, held, expires
		WHERE EXISTS (SELECT FROM budgets x WHERE x.id = b.id FOR KEY SHARE);
	END LOOP;
	RETURN rid;
END $$;
REVOKE EXECUTE ON FUNCTION @extschema@.budget_reserve_for(oid, text, text, text, text, text, @extschema@.cost, interval) FROM PUBLIC;
CREATE OR REPLACE FUNCTION @extschema@.budget_reserve(team text DEFAULT NULL, initiative text DEFAULT NULL,
		principal text DEFAULT NULL, api_key text DEFAULT NULL, app text DEFAULT NULL,
		estimate @extschema@.cost DEFAULT NULL, ttl interval DEFAULT '10 minutes')
	RETURNS uuid AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.budget_release_for(caller oid, reservation uuid) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
	r budget_reservations;
BEGIN
	SELECT * INTO r FROM budget_reservations x WHERE x.id = reservation FOR UPDATE;
	IF NOT FOUND OR r.released_at IS NOT NULL OR r.settled_at IS NOT NULL THEN
		RETURN false;
	END IF;
	IF NOT (pg_has_role(caller, 'tokenledger_admin', 'USAGE')
			OR (r.reserved_by IS NOT NULL
				AND EXISTS (SELECT FROM pg_roles x WHERE x.rolname = r.reserved_by)
				AND pg_has_role(caller, r.reserved_by, 'USAGE'))) THEN
		RAISE EXCEPTION 'reservation % was taken by role %, not by %', reservation,
			coalesce(quote_ident(r.reserved_by), '(unknown: before 1.1)'), caller::regrole
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'A reservation is released by the role that took it, a role with its rights, or a member of tokenledger_admin.';
	END IF;
	UPDATE budget_reservations x SET released_at = now() WHERE x.id = reservation;
	DELETE FROM budget_holds h WHERE h.reservation_id = reservation;
	RETURN true;
END $$;
REVOKE EXECUTE ON FUNCTION @extschema@.budget_release_for(oid, uuid) FROM PUBLIC;
CREATE OR REPLACE FUNCTION @extschema@.budget_release(reservation uuid) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION @extschema@.budget_release(uuid) IS
	'free a reservation that will not be used (only the role that took it, a role with its rights, or an admin); false when it was already settled or released';

-- a new or changed budget is counted again from the ledger when its
-- transaction commits (recorders wait only from then until it has)
DROP TRIGGER budgets_backfill ON @extschema@.budgets;
CREATE FUNCTION @extschema@.budget_recount(budget_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
COMMENT ON FUNCTION @extschema@.budget_recount(bigint) IS
	'count a budget''s spend again from the ledger, by the rules of the insert path; returns the rows counted';
REVOKE EXECUTE ON FUNCTION @extschema@.budget_recount(bigint) FROM PUBLIC;
CREATE OR REPLACE FUNCTION @extschema@.budget_backfill() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
	-- a restored budget comes with its counters (see restored_guard)
	IF TG_OP = 'INSERT' AND NEW.created_at <> now() THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'UPDATE' AND (OLD.scope, OLD.scope_value, OLD.period, OLD.time_zone, currency(OLD.amount), OLD.active)
		IS NOT DISTINCT FROM (NEW.scope, NEW.scope_value, NEW.period, NEW.time_zone, currency(NEW.amount), NEW.active) THEN
		RETURN NULL;
	END IF;
	PERFORM budget_recount(NEW.id);
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER budgets_recount AFTER INSERT OR UPDATE ON @extschema@.budgets
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION @extschema@.budget_backfill();

-- a budget is deleted (with its counters, holds and alerts) once no
-- transaction that may be counting against it is still recording
CREATE FUNCTION @extschema@.budget_delete_waits() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE TRIGGER budgets_delete_waits BEFORE DELETE ON @extschema@.budgets
	FOR EACH ROW EXECUTE FUNCTION @extschema@.budget_delete_waits();

-- changed exchange rates: budgets are counted again at the rates as they now
-- stand (restored rates come with the counters they gave)
ALTER TABLE @extschema@.fx_rates ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
COMMENT ON COLUMN @extschema@.fx_rates.recorded_at IS 'when the rate was recorded';
CREATE FUNCTION @extschema@.fx_rates_recount() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		IF NOT EXISTS (SELECT FROM added a WHERE a.recorded_at = now()) THEN
			RETURN NULL;
		END IF;
	END IF;
	PERFORM budget_recount(b.id) FROM budgets b WHERE b.active ORDER BY b.id;
	RETURN NULL;
END $$;
-- (named to fire after fx_rates_changed, which makes the new rates seen)
CREATE TRIGGER fx_rates_recount AFTER UPDATE OR DELETE OR TRUNCATE ON @extschema@.fx_rates
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.fx_rates_recount();
CREATE TRIGGER fx_rates_recount_added AFTER INSERT ON @extschema@.fx_rates
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.fx_rates_recount();

-- the time a budget or a rate was recorded is the server's, but for a
-- restore (by the tables' owner): what marks a restored row
CREATE FUNCTION @extschema@.restored_guard() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE TRIGGER budgets_restored_guard BEFORE INSERT ON @extschema@.budgets
	FOR EACH ROW EXECUTE FUNCTION @extschema@.restored_guard('created_at');
CREATE TRIGGER fx_rates_restored_guard BEFORE INSERT ON @extschema@.fx_rates
	FOR EACH ROW EXECUTE FUNCTION @extschema@.restored_guard('recorded_at');

-- a budget's spend is seen by the roles that see its team (see visible_teams)
CREATE FUNCTION @extschema@.budget_visible(budget_id bigint) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.budget_visible(bigint) IS
	'whether the current role sees a budget''s spend: a budget of a team it sees (scope team, or an initiative of the team); budgets of other scopes only for those that see every team';

-- (budget_status shows only visible budgets: see its definition with the
-- forecast, further down)

-- ---------------------------------------------------------------------------
-- the shipped catalog of 1.1: models released since 1.0.  Rows a release
-- adds take fixed ids below zero (the users' rows take the sequence's), so
-- an updated and a new installation number them alike; a row a user
-- already has for the same model, tier and time is kept, and wins
-- ---------------------------------------------------------------------------

INSERT INTO @extschema@.prices (id, provider, model, service_tier, effective_from, rate, min_input_tokens, source, shipped)
SELECT id, provider, model, tier, timestamptz '2023-01-01 00:00:00+00', rate::@extschema@.rate, 0, source, true
FROM (VALUES
	(-1, 'openai', 'gpt-5.1', 'standard', 'in=1.25 out=10 cache_read=0.125 USD/1M', 'https://openai.com/api/pricing/'),
	(-2, 'openai', 'gpt-5.1', 'batch', 'in=0.625 out=5 cache_read=0.0625 USD/1M', 'https://openai.com/api/pricing/'),
	(-3, 'openai', 'gpt-5.1', 'priority', 'in=2.5 out=20 cache_read=0.25 USD/1M', 'https://openai.com/api/pricing/'),
	(-4, 'openai', 'gpt-5.1-codex', 'standard', 'in=1.25 out=10 cache_read=0.125 USD/1M', 'https://openai.com/api/pricing/'),
	(-5, 'openai', 'gpt-5-codex', 'standard', 'in=1.25 out=10 cache_read=0.125 USD/1M', 'https://openai.com/api/pricing/'),
	(-6, 'openai', 'gpt-5-pro', 'standard', 'in=15 out=120 USD/1M', 'https://openai.com/api/pricing/'),
	(-7, 'openai', 'gpt-5-pro', 'batch', 'in=7.5 out=60 USD/1M', 'https://openai.com/api/pricing/')
) AS v(id, provider, model, tier, rate, source)
ON CONFLICT DO NOTHING;
INSERT INTO @extschema@.model_aliases (provider, alias, model, shipped)
VALUES ('openai', 'gpt-5.1-chat-latest', 'gpt-5.1', true)
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------
-- roles, team isolation and the rights of each function
-- ---------------------------------------------------------------------------

-- the three roles, created when absent (roles belong to the cluster: other
-- databases share them, and they outlive the extension)
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['tokenledger_writer', 'tokenledger_reader', 'tokenledger_admin'] LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
	-- an admin is a writer and a reader
	FOREACH r IN ARRAY ARRAY['tokenledger_writer', 'tokenledger_reader'] LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m
					   WHERE m.roleid OPERATOR(pg_catalog.=) r::regrole
						 AND m.member OPERATOR(pg_catalog.=) 'tokenledger_admin'::regrole) THEN
			EXECUTE pg_catalog.format('GRANT %I TO tokenledger_admin', r);
		END IF;
	END LOOP;
END $$;

-- which roles see which teams' rows; '*' is every team and unattributed spend
CREATE TABLE @extschema@.team_members (
	role_name text NOT NULL,
	team text NOT NULL,
	PRIMARY KEY (role_name, team)
);
COMMENT ON TABLE @extschema@.team_members IS
	'team isolation: a role sees the ledger rows of the teams listed for it or for a role whose rights it has; team ''*'' is every team and unattributed spend';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.team_members', '');

CREATE FUNCTION @extschema@.visible_teams() RETURNS text[]
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.visible_teams() IS
	'the teams whose ledger rows the current role sees; {*} for every team (admins, superusers, ''*'' members)';
CREATE FUNCTION @extschema@.team_visible(team text) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.team_visible(text) IS
	'whether the current role sees the ledger rows of a team (NULL: rows with no team, seen by those that see every team); the policies of the ledger and the rollups, read once a query';

-- reading is by team; recording is never refused for a team
ALTER TABLE @extschema@.usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.outcomes ENABLE ROW LEVEL SECURITY;
-- (a function call, not a subquery: Citus distributes a table's policies
-- with it only when they have none)
CREATE POLICY usage_by_team ON @extschema@.usage FOR SELECT
	USING (@extschema@.team_visible(team));
CREATE POLICY usage_recording ON @extschema@.usage FOR INSERT WITH CHECK (true);
CREATE POLICY outcomes_by_team ON @extschema@.outcomes FOR SELECT
	USING (@extschema@.team_visible(team));
CREATE POLICY outcomes_recording ON @extschema@.outcomes FOR INSERT WITH CHECK (true);

-- ---------------------------------------------------------------------------
-- the archive: closed months out of the live ledger, still in the reports
--
-- archive_before(month) detaches the months before month from usage and
-- outcomes and attaches them to @extschema@_archive.usage and .outcomes,
-- append-only as the ledger is.  The reports and the recounts read
-- @extschema@_archive.all_usage and .all_outcomes, the live ledger and the
-- archive together, so no figure changes.  With drop => true the months are
-- dropped instead: the rollups keep their sums, the raw rows are gone.
-- ---------------------------------------------------------------------------

CREATE SCHEMA @extschema@_archive;
COMMENT ON SCHEMA @extschema@_archive IS 'tokenledger''s archived months (archive_before())';
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['usage', 'outcomes'] LOOP
		EXECUTE format('CREATE TABLE @extschema@_archive.%I (LIKE @extschema@.%I INCLUDING DEFAULTS'
					   ' INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)'
					   ' PARTITION BY RANGE (occurred_at)', t, t);
		EXECUTE format('COMMENT ON TABLE @extschema@_archive.%I IS %L', t,
					   'the archived months of ' || t || ' (archive_before()); append-only');
		EXECUTE format('CREATE TRIGGER no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON @extschema@_archive.%I'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only()', t);
		EXECUTE format('CREATE TRIGGER no_row_change BEFORE UPDATE OR DELETE ON @extschema@_archive.%I'
					   ' FOR EACH ROW EXECUTE FUNCTION @extschema@.append_only()', t);
		EXECUTE format('ALTER TABLE @extschema@_archive.%I ENABLE ALWAYS TRIGGER no_change', t);
		EXECUTE format('ALTER TABLE @extschema@_archive.%I ENABLE ALWAYS TRIGGER no_row_change', t);
		EXECUTE format('ALTER TABLE @extschema@_archive.%I ENABLE ROW LEVEL SECURITY', t);
		-- what a data-only restore brings of archived months lands here
		EXECUTE format('CREATE TABLE @extschema@_archive.%I PARTITION OF @extschema@_archive.%I DEFAULT',
					   t || '_default', t);
		EXECUTE format('COMMENT ON TABLE @extschema@_archive.%I IS %L', t || '_default',
					   'archived rows of ' || t || ' that no archived month covers (a data-only restore)');
		PERFORM @extschema@.equip_partition(format('@extschema@_archive.%I', t || '_default')::regclass);
		PERFORM pg_catalog.pg_extension_config_dump(format('@extschema@_archive.%I', t || '_default'), '');
		EXECUTE format('CREATE VIEW @extschema@_archive.%I WITH (security_invoker = true) AS'
					   ' SELECT * FROM @extschema@.%I UNION ALL SELECT * FROM @extschema@_archive.%I',
					   'all_' || t, t, t);
		EXECUTE format('COMMENT ON VIEW @extschema@_archive.%I IS %L', 'all_' || t,
					   'the live ' || t || ' and its archived months: what the reports read');
	END LOOP;
END $$;
-- the archive is read by team as the live ledger is: its reading policies
DO $$
DECLARE
	pol record;
BEGIN
	FOR pol IN
		SELECT p.tablename, p.policyname, p.qual FROM pg_catalog.pg_policies p
		WHERE p.schemaname = '@extschema@' AND p.tablename IN ('usage', 'outcomes') AND p.cmd = 'SELECT'
	LOOP
		EXECUTE format('CREATE POLICY %I ON @extschema@_archive.%I FOR SELECT USING (%s)',
					   pol.policyname, pol.tablename, pol.qual);
	END LOOP;
END $$;
GRANT USAGE ON SCHEMA @extschema@_archive TO tokenledger_reader, tokenledger_admin;
GRANT SELECT ON @extschema@_archive.usage, @extschema@_archive.outcomes,
	@extschema@_archive.all_usage, @extschema@_archive.all_outcomes
TO tokenledger_reader, tokenledger_admin;

-- unpriced_usage (1.0) lists the archived calls too, as every report does
DO $$
DECLARE
	def text := pg_catalog.pg_get_viewdef('@extschema@.unpriced_usage'::regclass);
	moved text := pg_catalog.regexp_replace(def, 'FROM (@extschema@\.)?usage u', 'FROM @extschema@_archive.all_usage u');
BEGIN
	IF moved = def THEN
		RAISE EXCEPTION 'unpriced_usage does not read usage u: %', def;
	END IF;
	EXECUTE 'CREATE OR REPLACE VIEW @extschema@.unpriced_usage AS ' || moved;
END $$;

CREATE FUNCTION @extschema@.archive_before(month timestamptz, drop boolean DEFAULT false)
	RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, @extschema@, pg_temp SET DateStyle = 'ISO' SET TimeZone = 'UTC' AS $$
DECLARE
	lim timestamp := pg_catalog.date_trunc('month', month AT TIME ZONE 'UTC');
	t text;
	p record;
	early timestamptz;
	done integer := 0;
BEGIN
	IF month IS NULL OR drop IS NULL THEN
		RAISE EXCEPTION 'archive_before() needs a month, not NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF lim > pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC') THEN
		RAISE EXCEPTION 'cannot archive month %: it is not closed', pg_catalog.to_char(lim - interval '1 month', 'YYYY-MM')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'archive_before(month) archives the months before month; a month is closed once it has ended.';
	END IF;
	FOREACH t IN ARRAY ARRAY['usage', 'outcomes'] LOOP
		EXECUTE format('SELECT pg_catalog.min(d.occurred_at) FROM @extschema@.%I d WHERE d.occurred_at < $1'
					   ' AND d.occurred_at >= ''0001-01-01 00:00+00''', t || '_default')
			INTO early USING lim AT TIME ZONE 'UTC';
		IF early IS NOT NULL THEN
			RAISE EXCEPTION 'cannot archive the months before %: the default partition of % holds rows of %',
				pg_catalog.to_char(lim, 'YYYY-MM'), t, pg_catalog.to_char(early AT TIME ZONE 'UTC', 'YYYY-MM')
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = 'Run tokenledger.create_partitions() first: it moves them into their month.';
		END IF;
	END LOOP;
	PERFORM @extschema@.lock_ledgers(ARRAY['@extschema@.usage', '@extschema@.outcomes']::regclass[],
									 ARRAY['ACCESS EXCLUSIVE', 'ACCESS EXCLUSIVE']);
	FOREACH t IN ARRAY ARRAY['usage', 'outcomes'] LOOP
		FOR p IN
			SELECT c.relname, pg_catalog.to_timestamp(substr(c.relname, length(t) + 2), 'YYYY_MM')::timestamp AS m
			FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = format('@extschema@.%I', t)::regclass
			  AND c.relname ~ ('^' || t || '_[0-9]{4}_[0-9]{2}$')
			  AND pg_catalog.to_timestamp(substr(c.relname, length(t) + 2), 'YYYY_MM')::timestamp < lim
			ORDER BY 2
		LOOP
			EXECUTE format('ALTER TABLE @extschema@.%I DETACH PARTITION @extschema@.%I', t, p.relname);
			IF drop THEN
				EXECUTE format('DROP TABLE @extschema@.%I', p.relname);
			ELSIF pg_catalog.to_regclass(format('@extschema@_archive.%I', p.relname)) IS NOT NULL THEN
				-- rows of an archived month that arrived late join it
				EXECUTE format('INSERT INTO @extschema@_archive.%I SELECT * FROM @extschema@.%I', p.relname, p.relname);
				EXECUTE format('DROP TABLE @extschema@.%I', p.relname);
			ELSE
				EXECUTE format('ALTER TABLE @extschema@.%I SET SCHEMA @extschema@_archive', p.relname);
				EXECUTE format('ALTER TABLE @extschema@_archive.%I ATTACH PARTITION @extschema@_archive.%I'
							   ' FOR VALUES FROM (%L) TO (%L)', t, p.relname,
							   p.m AT TIME ZONE 'UTC', (p.m + interval '1 month') AT TIME ZONE 'UTC');
			END IF;
			done := done + 1;
		END LOOP;
	END LOOP;
	RETURN done;
END $$;
COMMENT ON FUNCTION @extschema@.archive_before(timestamptz, boolean) IS
	'moves the closed months before month out of usage and outcomes into @extschema@_archive (the reports still read them), or drops them (drop => true; the rollups keep their sums); returns how many partitions it moved';
REVOKE EXECUTE ON FUNCTION @extschema@.archive_before(timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.create_partitions(timestamptz, interval),
	@extschema@.archive_before(timestamptz, boolean)
TO tokenledger_admin;

-- views read with the caller's rights, so the policies above apply to them
ALTER VIEW @extschema@.unpriced_usage SET (security_invoker = true);
ALTER VIEW @extschema@.budget_status SET (security_invoker = true);

-- UPDATE of usage: refused for every role but the owner, also in replica
-- sessions; the row trigger allows the owner one thing, what reprice() does
CREATE TRIGGER usage_no_update BEFORE UPDATE ON @extschema@.usage
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only('owner fills costs');
ALTER TABLE @extschema@.usage ENABLE ALWAYS TRIGGER usage_no_update;
ALTER TABLE @extschema@.usage ENABLE ALWAYS TRIGGER usage_before;

-- a shipped catalog row that an admin corrects becomes the user's, so
-- pg_dump keeps it; restoring it over the shipped row of a new install
-- replaces that row
CREATE FUNCTION @extschema@.shipped_row_corrected() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
	NEW.shipped := false;
	RETURN NEW;
END $$;
CREATE TRIGGER prices_corrected BEFORE UPDATE ON @extschema@.prices
	FOR EACH ROW WHEN (OLD.shipped) EXECUTE FUNCTION @extschema@.shipped_row_corrected();
CREATE TRIGGER model_aliases_corrected BEFORE UPDATE ON @extschema@.model_aliases
	FOR EACH ROW WHEN (OLD.shipped) EXECUTE FUNCTION @extschema@.shipped_row_corrected();
CREATE FUNCTION @extschema@.shipped_row_restored() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
	kept bigint;
BEGIN
	-- a restore is the tables' owner's; anyone else's insert is an insert
	IF NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
		RETURN NEW;
	END IF;
	-- The argument names the table, and the rows are looked for in the
	-- trigger's own relation: on Citus the trigger is a shard's, whose name
	-- is not the table's, and it may not query the distributed table.
	IF TG_ARGV[0] = 'prices' THEN
		-- a row of the user's that a release shipped under another id since
		EXECUTE format('DELETE FROM %s p WHERE p.shipped AND p.id <> ($1).id AND p.provider = ($1).provider'
					   ' AND p.model = ($1).model AND p.service_tier = ($1).service_tier'
					   ' AND p.min_input_tokens = ($1).min_input_tokens AND p.effective_from = ($1).effective_from',
					   TG_RELID::regclass) USING NEW;
		EXECUTE format('UPDATE %s p SET provider = ($1).provider, model = ($1).model,'
					   ' service_tier = ($1).service_tier, effective_from = ($1).effective_from, rate = ($1).rate,'
					   ' min_input_tokens = ($1).min_input_tokens, source = ($1).source, shipped = false'
					   ' WHERE p.id = ($1).id AND p.shipped', TG_RELID::regclass) USING NEW;
	ELSIF TG_ARGV[0] = 'model_aliases' THEN
		EXECUTE format('UPDATE %s a SET model = ($1).model, shipped = false'
					   ' WHERE a.provider = ($1).provider AND a.alias = ($1).alias AND a.shipped',
					   TG_RELID::regclass) USING NEW;
	ELSE
		EXECUTE format('UPDATE %s t SET cheaper_provider = ($1).cheaper_provider,'
					   ' cheaper_model = ($1).cheaper_model, note = ($1).note, shipped = false'
					   ' WHERE t.provider = ($1).provider AND t.model = ($1).model AND t.shipped',
					   TG_RELID::regclass) USING NEW;
	END IF;
	GET DIAGNOSTICS kept = ROW_COUNT;
	IF kept > 0 THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END $$;
-- shipped rows are not deleted (a restore would bring them back): correct
-- them instead, and they become the user's.  The tables' owner may (a
-- restore replaces a shipped row by the user's row of the same key)
CREATE FUNCTION @extschema@.shipped_row_kept() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
	IF pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'the shipped % row % cannot be deleted', TG_ARGV[0],
		row_to_json(OLD)::jsonb - 'shipped' - 'source' - 'note'
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  HINT = CASE TG_ARGV[0]
						 WHEN 'model_tiers' THEN 'Update it instead (it becomes yours, and pg_dump keeps it); set cheaper_provider and cheaper_model to NULL to switch the suggestion off.'
						 ELSE 'Update it instead (it becomes yours, and pg_dump keeps it), or add a price with a later effective_from.' END;
END $$;
CREATE TRIGGER prices_shipped_kept BEFORE DELETE ON @extschema@.prices
	FOR EACH ROW WHEN (OLD.shipped) EXECUTE FUNCTION @extschema@.shipped_row_kept('prices');
CREATE TRIGGER model_aliases_shipped_kept BEFORE DELETE ON @extschema@.model_aliases
	FOR EACH ROW WHEN (OLD.shipped) EXECUTE FUNCTION @extschema@.shipped_row_kept('model_aliases');
CREATE TRIGGER prices_restored BEFORE INSERT ON @extschema@.prices
	FOR EACH ROW WHEN (NOT NEW.shipped) EXECUTE FUNCTION @extschema@.shipped_row_restored('prices');
CREATE TRIGGER model_aliases_restored BEFORE INSERT ON @extschema@.model_aliases
	FOR EACH ROW WHEN (NOT NEW.shipped) EXECUTE FUNCTION @extschema@.shipped_row_restored('model_aliases');

-- functions that act for a role run as the extension's owner, with a
-- pinned search_path
ALTER FUNCTION @extschema@.record_usage(text, text, jsonb, text, timestamptz, text, bigint,
		@extschema@.cost, text, text, text, text, text, text, text, text, jsonb, uuid)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.record_outcome(text, text, numeric, timestamptz, @extschema@.cost, text, text, jsonb, text)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.record_otel_span(jsonb, timestamptz, text, text, text, text, text, text, text, text, jsonb)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.budget_check(text, text, text, text, text, @extschema@.cost)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.adjust(bigint, @extschema@.cost, text)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.reprice()
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.rerate(text, text, timestamptz, timestamptz)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.import_prices_litellm(jsonb, timestamptz)
	SECURITY DEFINER SET search_path = pg_catalog, @extschema@, pg_temp;

-- what PUBLIC may no longer run
REVOKE EXECUTE ON FUNCTION
	@extschema@.record_usage(text, text, jsonb, text, timestamptz, text, bigint,
		@extschema@.cost, text, text, text, text, text, text, text, text, jsonb, uuid),
	@extschema@.record_outcome(text, text, numeric, timestamptz, @extschema@.cost, text, text, jsonb, text),
	@extschema@.record_otel_span(jsonb, timestamptz, text, text, text, text, text, text, text, text, jsonb),
	@extschema@.cost_of(@extschema@.tokens, text, text, text, timestamptz),
	@extschema@.budget_check(text, text, text, text, text, @extschema@.cost),
	@extschema@.budget_reserve(text, text, text, text, text, @extschema@.cost, interval),
	@extschema@.budget_release(uuid),
	@extschema@.adjust(bigint, @extschema@.cost, text),
	@extschema@.reprice(),
	@extschema@.rerate(text, text, timestamptz, timestamptz),
	@extschema@.import_prices_litellm(jsonb, timestamptz),
	@extschema@.price_of(@extschema@.tokens, text, text, text, timestamptz, bigint),
	@extschema@.replay_conflict(text, text, text, text),
	@extschema@.recorded_usage(text),
	@extschema@.recorded_outcome(text),
	@extschema@.budget_backfill(),
	@extschema@.fx_rates_recount(),
	@extschema@.shipped_row_corrected(),
	@extschema@.shipped_row_restored(),
	@extschema@.shipped_row_kept()
FROM PUBLIC;

-- tokenledger_writer (apps): records, prices and checks budgets
GRANT USAGE ON SCHEMA @extschema@ TO tokenledger_writer, tokenledger_reader, tokenledger_admin;
GRANT INSERT ON @extschema@.usage, @extschema@.outcomes TO tokenledger_writer;
GRANT USAGE ON SEQUENCE @extschema@.usage_id_seq, @extschema@.outcomes_id_seq TO tokenledger_writer;
GRANT EXECUTE ON FUNCTION
	@extschema@.record_usage(text, text, jsonb, text, timestamptz, text, bigint,
		@extschema@.cost, text, text, text, text, text, text, text, text, jsonb, uuid),
	@extschema@.record_outcome(text, text, numeric, timestamptz, @extschema@.cost, text, text, jsonb, text),
	@extschema@.record_otel_span(jsonb, timestamptz, text, text, text, text, text, text, text, text, jsonb),
	@extschema@.cost_of(@extschema@.tokens, text, text, text, timestamptz),
	@extschema@.budget_check(text, text, text, text, text, @extschema@.cost),
	@extschema@.budget_reserve(text, text, text, text, text, @extschema@.cost, interval),
	@extschema@.budget_release(uuid)
TO tokenledger_writer;

-- tokenledger_reader (finance, BI tools): reads the ledger of its teams
GRANT SELECT ON @extschema@.usage, @extschema@.outcomes, @extschema@.initiatives, @extschema@.budgets,
	@extschema@.prices, @extschema@.model_aliases, @extschema@.attribution_rules, @extschema@.fx_rates,
	@extschema@.team_members, @extschema@.unpriced_usage, @extschema@.budget_status
TO tokenledger_reader;

-- tokenledger_admin: both, and the catalog, budgets and corrections
GRANT INSERT, UPDATE, DELETE ON @extschema@.prices, @extschema@.model_aliases, @extschema@.initiatives,
	@extschema@.attribution_rules, @extschema@.budgets, @extschema@.fx_rates, @extschema@.team_members
TO tokenledger_admin;
GRANT USAGE ON SEQUENCE @extschema@.prices_id_seq, @extschema@.initiatives_id_seq,
	@extschema@.attribution_rules_id_seq, @extschema@.budgets_id_seq
TO tokenledger_admin;
GRANT EXECUTE ON FUNCTION
	@extschema@.adjust(bigint, @extschema@.cost, text),
	@extschema@.reprice(),
	@extschema@.rerate(text, text, timestamptz, timestamptz),
	@extschema@.import_prices_litellm(jsonb, timestamptz)
TO tokenledger_admin;

-- counters written by 1.0 left out spend in other currencies: count every
-- active budget again by the 1.1 rules
SELECT @extschema@.budget_recount(b.id) FROM @extschema@.budgets b WHERE b.active ORDER BY b.id;

-- ===========================================================================
-- outcome economics: what the money bought (SPEC section 5)
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- reporting: the exchange rate at a row's time, and the stretches of time
-- that the rollups keep together (see src/report.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.fx_rate(from_currency text, to_currency text, at timestamptz)
	RETURNS numeric AS 'MODULE_PATHNAME', 'fx_rate' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.fx_rate(text, text, timestamptz) IS
	'units of to_currency that one unit of from_currency is worth at the given time (1 for the same currency); NULL when no rate in fx_rates applies';
CREATE FUNCTION @extschema@.fx_stretch(currency text, at timestamptz)
	RETURNS timestamptz AS 'MODULE_PATHNAME', 'fx_stretch' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.fx_stretch(text, timestamptz) IS
	'the start of the stretch of time that the rollups keep together: the UTC clock hour of at, or the later time in it from which a rate of the currency applies';
CREATE FUNCTION @extschema@.whole_hour_zone() RETURNS boolean
	AS 'MODULE_PATHNAME', 'whole_hour_zone' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.whole_hour_zone() IS
	'true when the session''s TimeZone has had only whole-hour UTC offsets since 1970: its days are runs of whole clock hours, and the views read the hourly rollups';
-- the currency the views report in
CREATE FUNCTION @extschema@.report_currency() RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT pg_catalog.upper(coalesce(pg_catalog.current_setting('tokenledger.currency', true), 'USD')) $$;
COMMENT ON FUNCTION @extschema@.report_currency() IS
	'the currency the views report money in: the setting tokenledger.currency';

-- ---------------------------------------------------------------------------
-- aggregates: cost_per_outcome and roi (src/economics.c)
-- ---------------------------------------------------------------------------

-- sum(spend) / sum(outcomes) and (sum(value) - sum(spend)) / sum(spend) over
-- exact sums: the costs as 128-bit sums of nanos, the outcomes as numeric.  A
-- NULL argument is left out of its own sum only.  Everyone may run the
-- aggregates; their support functions take internal and are not for calling
-- (the executor checks the aggregates' owner's right to run them, so PUBLIC,
-- the readers included, needs none).
CREATE FUNCTION @extschema@.cost_per_outcome_accum(internal, @extschema@.cost, numeric)
	RETURNS internal AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_per_outcome_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_per_outcome_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_per_outcome_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_per_outcome_final(internal) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.roi_accum(internal, @extschema@.cost, @extschema@.cost)
	RETURNS internal AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.roi_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.roi_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.roi_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.roi_final(internal) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
REVOKE EXECUTE ON FUNCTION
	@extschema@.cost_per_outcome_accum(internal, @extschema@.cost, numeric),
	@extschema@.cost_per_outcome_combine(internal, internal),
	@extschema@.cost_per_outcome_serialize(internal),
	@extschema@.cost_per_outcome_deserialize(bytea, internal),
	@extschema@.cost_per_outcome_final(internal),
	@extschema@.roi_accum(internal, @extschema@.cost, @extschema@.cost),
	@extschema@.roi_combine(internal, internal),
	@extschema@.roi_serialize(internal),
	@extschema@.roi_deserialize(bytea, internal),
	@extschema@.roi_final(internal)
FROM PUBLIC;

CREATE AGGREGATE @extschema@.cost_per_outcome(spend @extschema@.cost, outcomes numeric) (
	SFUNC = @extschema@.cost_per_outcome_accum,
	STYPE = internal,
	SSPACE = 64,
	FINALFUNC = @extschema@.cost_per_outcome_final,
	COMBINEFUNC = @extschema@.cost_per_outcome_combine,
	SERIALFUNC = @extschema@.cost_per_outcome_serialize,
	DESERIALFUNC = @extschema@.cost_per_outcome_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cost_per_outcome(@extschema@.cost, numeric) IS
	'sum of spend / sum of outcomes, rounded half away from zero to 1e-9 as round(numeric, 9); NULL without spend or when the outcomes sum to 0; a NULL argument is left out of its own sum';

CREATE AGGREGATE @extschema@.roi(spend @extschema@.cost, value @extschema@.cost) (
	SFUNC = @extschema@.roi_accum,
	STYPE = internal,
	SSPACE = 80,
	FINALFUNC = @extschema@.roi_final,
	COMBINEFUNC = @extschema@.roi_combine,
	SERIALFUNC = @extschema@.roi_serialize,
	DESERIALFUNC = @extschema@.roi_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.roi(@extschema@.cost, @extschema@.cost) IS
	'return on investment: (sum of value - sum of spend) / sum of spend in exact numeric (no value counts as 0); NULL without spend or when it sums to 0';

-- ---------------------------------------------------------------------------
-- rollups
-- ---------------------------------------------------------------------------

-- The hourly rollups that the dashboards' views read (see src/rollup.c):
-- kept by the recording transaction, in its own slot, so they always equal
-- the ledger.  One row per stretch (a UTC clock hour, cut where an exchange
-- rate of the row's currency takes effect), slot and key.  Half of each page
-- is left free, so that a row updated by every statement stays on its page
-- (a HOT update: no index entry).
CREATE TABLE @extschema@.usage_rollup (
	stretch timestamptz NOT NULL,
	slot smallint NOT NULL,
	provider text NOT NULL,
	model text NOT NULL,
	service_tier text NOT NULL,
	currency text,
	team text,
	initiative text,
	environment text,
	entries bigint NOT NULL,
	requests bigint NOT NULL,
	unpriced_requests bigint NOT NULL,
	input_tokens bigint NOT NULL,
	output_tokens bigint NOT NULL,
	cache_read_tokens bigint NOT NULL,
	cache_write_tokens bigint NOT NULL,
	cache_write_1h_tokens bigint NOT NULL,
	reasoning_tokens bigint NOT NULL,
	spend numeric NOT NULL
) WITH (fillfactor = 50);
CREATE INDEX usage_rollup_key ON @extschema@.usage_rollup
	(stretch, slot, provider, model, service_tier, currency, team, initiative, environment);
COMMENT ON TABLE @extschema@.usage_rollup IS
	'the ledger summed per hour (cut where an exchange rate of the currency takes effect), recording slot and the keys of spend_daily; kept by the recording transaction; read through spend_daily and initiative_economics';
COMMENT ON COLUMN @extschema@.usage_rollup.stretch IS 'start of the stretch: the UTC clock hour, or the later time in it from which a rate of the currency applies';
COMMENT ON COLUMN @extschema@.usage_rollup.slot IS 'the slot of the transactions that wrote the row (-1: rollup_recount)';
COMMENT ON COLUMN @extschema@.usage_rollup.model IS 'the catalog model a call with a cost resolved to when recorded, else the model as recorded';
COMMENT ON COLUMN @extschema@.usage_rollup.currency IS 'currency of the spend; NULL for unpriced calls';
COMMENT ON COLUMN @extschema@.usage_rollup.entries IS 'ledger rows summed (calls, adjustments and rerates)';
COMMENT ON COLUMN @extschema@.usage_rollup.requests IS 'calls (requests of call entries)';
COMMENT ON COLUMN @extschema@.usage_rollup.unpriced_requests IS 'calls without a cost';
COMMENT ON COLUMN @extschema@.usage_rollup.spend IS 'spend in its own currency, exact';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.usage_rollup', '');

CREATE TABLE @extschema@.outcome_rollup (
	stretch timestamptz NOT NULL,
	slot smallint NOT NULL,
	team text,
	initiative text NOT NULL,
	currency text,
	entries bigint NOT NULL,
	outcomes numeric NOT NULL,
	outcome_value numeric NOT NULL
) WITH (fillfactor = 50);
CREATE INDEX outcome_rollup_key ON @extschema@.outcome_rollup (stretch, slot, team, initiative, currency);
COMMENT ON TABLE @extschema@.outcome_rollup IS
	'outcomes summed per hour (cut where an exchange rate of the currency takes effect), recording slot, team, initiative and currency of their value; kept by the recording transaction';
COMMENT ON COLUMN @extschema@.outcome_rollup.team IS 'the team of the outcomes (outcomes.team)';
COMMENT ON COLUMN @extschema@.outcome_rollup.stretch IS 'start of the stretch: the UTC clock hour, or the later time in it from which a rate of the currency applies';
COMMENT ON COLUMN @extschema@.outcome_rollup.slot IS 'the slot of the transactions that wrote the row (-1: rollup_recount)';
COMMENT ON COLUMN @extschema@.outcome_rollup.currency IS 'currency of the value; NULL for outcomes without one';
COMMENT ON COLUMN @extschema@.outcome_rollup.entries IS 'outcome rows summed';
COMMENT ON COLUMN @extschema@.outcome_rollup.outcomes IS 'sum of quantity';
COMMENT ON COLUMN @extschema@.outcome_rollup.outcome_value IS 'sum of value in its own currency, exact';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outcome_rollup', '');

-- the rollups are seen as the rows they sum
ALTER TABLE @extschema@.usage_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.outcome_rollup ENABLE ROW LEVEL SECURITY;
CREATE POLICY usage_rollup_by_team ON @extschema@.usage_rollup FOR SELECT
	USING (@extschema@.team_visible(team));
CREATE POLICY outcome_rollup_by_team ON @extschema@.outcome_rollup FOR SELECT
	USING (@extschema@.team_visible(team));

-- kept by the insert path (outcomes here; usage by usage_budget_account)
CREATE FUNCTION @extschema@.rollup_outcome() RETURNS trigger
	AS 'MODULE_PATHNAME', 'rollup_outcome' LANGUAGE C;
CREATE FUNCTION @extschema@.rollup_outcome_flush() RETURNS trigger
	AS 'MODULE_PATHNAME', 'rollup_outcome_flush' LANGUAGE C;
CREATE TRIGGER outcome_rollup AFTER INSERT ON @extschema@.outcomes
	FOR EACH ROW EXECUTE FUNCTION @extschema@.rollup_outcome();
CREATE TRIGGER outcome_rollup_flush AFTER INSERT ON @extschema@.outcomes
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.rollup_outcome_flush();
REVOKE EXECUTE ON FUNCTION @extschema@.rollup_outcome(), @extschema@.rollup_outcome_flush() FROM PUBLIC;

-- Count hours of the rollups again from the ledger: the UTC hours that the
-- times in "hours" fall in (all of them when NULL), of the currencies in
-- "currencies" (all when NULL).  It waits for the transactions that are
-- recording (5 seconds at most, then 55P03), holds new ones off until it
-- ends, and reads the ledger as committed then (see src/rollup.c).
CREATE FUNCTION @extschema@.rollup_recount(hours timestamptz[] DEFAULT NULL, currencies text[] DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'rollup_recount' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.rollup_recount(timestamptz[], text[]) IS
	'counts the rollups of the given UTC hours and currencies (all when NULL) again from the ledger; run when exchange rates change, and after restoring a ledger dumped at version 1.0';
REVOKE EXECUTE ON FUNCTION @extschema@.rollup_recount(timestamptz[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.rollup_recount(timestamptz[], text[]) TO tokenledger_admin;

-- Merge the rows that several recording slots hold for one key and hour
-- into one (see src/rollup.c); a job such as pg_cron runs it, e.g. hourly
CREATE FUNCTION @extschema@.rollup_compact(before timestamptz DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'rollup_compact' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.rollup_compact(timestamptz) IS
	'merges the rollup rows that several recording slots hold for one key into one, for the hours before the given time (default: the current UTC hour); skips slots in use; returns the rows saved';
REVOKE EXECUTE ON FUNCTION @extschema@.rollup_compact(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.rollup_compact(timestamptz) TO tokenledger_admin;

-- a rate that takes effect within an hour cuts that hour's stretches of its
-- two currencies (restored rates come with the rollups they gave)
CREATE FUNCTION @extschema@.fx_rates_rollup() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
	hours timestamptz[];
	currencies text[];
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		SELECT array_agg(DISTINCT h) INTO hours
		FROM (SELECT date_trunc('hour', r.stretch AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS h, r.stretch
			  FROM usage_rollup r
			  UNION ALL
			  SELECT date_trunc('hour', r.stretch AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', r.stretch
			  FROM outcome_rollup r) s
		WHERE s.stretch <> s.h;
	ELSE
		IF TG_OP = 'INSERT' THEN
			SELECT array_agg(DISTINCT date_trunc('hour', c.effective_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
				   array_agg(DISTINCT x)
			INTO hours, currencies
			FROM new_rates c CROSS JOIN LATERAL (VALUES (c.currency), (c.to_currency)) v(x)
			WHERE c.recorded_at = now();
		ELSIF TG_OP = 'UPDATE' THEN
			SELECT array_agg(DISTINCT date_trunc('hour', c.effective_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
				   array_agg(DISTINCT x)
			INTO hours, currencies
			FROM (SELECT * FROM new_rates UNION ALL SELECT * FROM old_rates) c
			CROSS JOIN LATERAL (VALUES (c.currency), (c.to_currency)) v(x);
		ELSE
			SELECT array_agg(DISTINCT date_trunc('hour', c.effective_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
				   array_agg(DISTINCT x)
			INTO hours, currencies
			FROM old_rates c CROSS JOIN LATERAL (VALUES (c.currency), (c.to_currency)) v(x);
		END IF;
	END IF;
	IF hours IS NOT NULL THEN
		PERFORM rollup_recount(hours, currencies);
	END IF;
	RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION @extschema@.fx_rates_rollup() FROM PUBLIC;
-- (named to fire after fx_rates_changed, which makes the new rates seen)
CREATE TRIGGER fx_rates_rollup_added AFTER INSERT ON @extschema@.fx_rates
	REFERENCING NEW TABLE AS new_rates
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.fx_rates_rollup();
CREATE TRIGGER fx_rates_rollup_changed AFTER UPDATE ON @extschema@.fx_rates
	REFERENCING OLD TABLE AS old_rates NEW TABLE AS new_rates
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.fx_rates_rollup();
CREATE TRIGGER fx_rates_rollup_deleted AFTER DELETE ON @extschema@.fx_rates
	REFERENCING OLD TABLE AS old_rates
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.fx_rates_rollup();
CREATE TRIGGER fx_rates_rollup_truncated AFTER TRUNCATE ON @extschema@.fx_rates
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.fx_rates_rollup();

-- a ledger recorded before 1.1 is summed now
SELECT @extschema@.rollup_recount();

GRANT SELECT ON @extschema@.usage_rollup, @extschema@.outcome_rollup TO tokenledger_reader;

-- ---------------------------------------------------------------------------
-- views on the rollups: spend_daily, initiative_economics,
-- spend_vs_outcome_growth
-- ---------------------------------------------------------------------------

-- Internal: a day's spend and outcomes per key, from the rollups (or, where
-- the session's days are not whole UTC hours, from the ledger) in the
-- reporting currency, unrounded; each branch sums its own rows, so that what
-- the views above them group is days, not hours.  The views below sum them
-- and round once.
CREATE VIEW @extschema@.spend_days WITH (security_invoker = true) AS
SELECT r.stretch::date AS day, r.team, r.initiative, r.provider, r.model, r.service_tier, r.environment,
	   CASE WHEN r.currency IS NULL OR x.rate IS NOT NULL THEN (SELECT @extschema@.report_currency())
			ELSE r.currency END AS currency,
	   sum(r.entries) AS entries, sum(r.requests) AS requests, sum(r.unpriced_requests) AS unpriced_requests,
	   sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens,
	   sum(r.cache_read_tokens) AS cache_read_tokens, sum(r.cache_write_tokens) AS cache_write_tokens,
	   sum(r.cache_write_1h_tokens) AS cache_write_1h_tokens, sum(r.reasoning_tokens) AS reasoning_tokens,
	   sum(r.spend * coalesce(x.rate, 1)) AS spend
FROM @extschema@.usage_rollup r
CROSS JOIN LATERAL (SELECT @extschema@.fx_rate(r.currency, (SELECT @extschema@.report_currency()), r.stretch) AS rate) x
WHERE @extschema@.whole_hour_zone()
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
UNION ALL
SELECT u.occurred_at::date, u.team, u.initiative, u.provider,
	   CASE WHEN u.cost IS NULL THEN u.model
			ELSE coalesce(@extschema@.resolve_model(u.provider, u.model), u.model) END,
	   u.service_tier, u.environment,
	   CASE WHEN u.cost IS NULL OR x.rate IS NOT NULL THEN (SELECT @extschema@.report_currency())
			ELSE @extschema@.currency(u.cost) END,
	   count(*),
	   coalesce(sum(u.requests) FILTER (WHERE u.entry = 'call'), 0),
	   coalesce(sum(u.requests) FILTER (WHERE u.entry = 'call' AND u.cost IS NULL), 0),
	   sum(@extschema@.input(u.tokens)), sum(@extschema@.output(u.tokens)), sum(@extschema@.cache_read(u.tokens)),
	   sum(@extschema@.cache_write(u.tokens)), sum(@extschema@.cache_write_1h(u.tokens)),
	   sum(@extschema@.reasoning(u.tokens)),
	   coalesce(sum(@extschema@.amount(u.cost) * coalesce(x.rate, 1)), 0)
FROM @extschema@_archive.all_usage u
CROSS JOIN LATERAL (SELECT @extschema@.fx_rate(@extschema@.currency(u.cost), (SELECT @extschema@.report_currency()),
											   u.occurred_at) AS rate) x
WHERE NOT @extschema@.whole_hour_zone()
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
COMMENT ON VIEW @extschema@.spend_days IS
	'internal to spend_daily and initiative_economics: spend per day and key in the reporting currency, unrounded, from the hourly rollups (or, in a time zone whose days are not whole UTC hours, from the ledger)';

CREATE VIEW @extschema@.outcome_days WITH (security_invoker = true) AS
SELECT r.stretch::date AS day, r.initiative,
	   CASE WHEN r.currency IS NULL OR x.rate IS NOT NULL THEN (SELECT @extschema@.report_currency())
			ELSE r.currency END AS currency,
	   sum(r.entries) AS entries, sum(r.outcomes) AS outcomes,
	   sum(r.outcome_value * coalesce(x.rate, 1)) AS outcome_value
FROM @extschema@.outcome_rollup r
CROSS JOIN LATERAL (SELECT @extschema@.fx_rate(r.currency, (SELECT @extschema@.report_currency()), r.stretch) AS rate) x
WHERE @extschema@.whole_hour_zone()
GROUP BY 1, 2, 3
UNION ALL
SELECT o.occurred_at::date, o.initiative,
	   CASE WHEN o.value IS NULL OR x.rate IS NOT NULL THEN (SELECT @extschema@.report_currency())
			ELSE @extschema@.currency(o.value) END,
	   count(*), sum(o.quantity), coalesce(sum(@extschema@.amount(o.value) * coalesce(x.rate, 1)), 0)
FROM @extschema@_archive.all_outcomes o
CROSS JOIN LATERAL (SELECT @extschema@.fx_rate(@extschema@.currency(o.value), (SELECT @extschema@.report_currency()),
											   o.occurred_at) AS rate) x
WHERE NOT @extschema@.whole_hour_zone()
GROUP BY 1, 2, 3;
COMMENT ON VIEW @extschema@.outcome_days IS
	'internal to initiative_economics: outcomes per day and initiative with their value in the reporting currency, unrounded, from the hourly rollups (or, in a time zone whose days are not whole UTC hours, from the ledger)';

CREATE VIEW @extschema@.spend_daily WITH (security_invoker = true) AS
SELECT s.day, s.team, s.initiative, s.provider, s.model, s.service_tier, s.environment, s.currency,
	   sum(s.requests)::bigint AS requests,
	   sum(s.input_tokens)::bigint AS input_tokens,
	   sum(s.output_tokens)::bigint AS output_tokens,
	   sum(s.cache_read_tokens)::bigint AS cache_read_tokens,
	   sum(s.cache_write_tokens)::bigint AS cache_write_tokens,
	   sum(s.cache_write_1h_tokens)::bigint AS cache_write_1h_tokens,
	   sum(s.reasoning_tokens)::bigint AS reasoning_tokens,
	   round(sum(s.spend), 9) AS spend,
	   sum(s.unpriced_requests)::bigint AS unpriced_requests
FROM @extschema@.spend_days s
GROUP BY s.day, s.team, s.initiative, s.provider, s.model, s.service_tier, s.environment, s.currency
HAVING sum(s.entries) > 0;
COMMENT ON VIEW @extschema@.spend_daily IS
	'spend per day, team, initiative, provider, model, service tier, environment and currency: what was spent where, day by day (read from the hourly rollups)';

-- initiatives month by month, unrounded (internal)
CREATE VIEW @extschema@.initiative_months WITH (security_invoker = true) AS
SELECT b.month, b.initiative, b.currency,
	   sum(b.requests) AS requests, sum(b.spend) AS spend,
	   sum(b.outcomes) AS outcomes, sum(b.outcome_value) AS outcome_value
FROM (SELECT date_trunc('month', x.day)::date AS month, x.initiative, x.currency,
			 x.entries AS spend_entries, 0 AS outcome_entries,
			 x.requests, x.spend, 0 AS outcomes, 0 AS outcome_value
	  FROM @extschema@.spend_days x
	  UNION ALL
	  SELECT date_trunc('month', y.day)::date, y.initiative, y.currency,
			 0, y.entries, 0, 0, y.outcomes, y.outcome_value
	  FROM @extschema@.outcome_days y) b
GROUP BY b.month, b.initiative, b.currency
HAVING sum(b.spend_entries) > 0 OR sum(b.outcome_entries) > 0;
COMMENT ON VIEW @extschema@.initiative_months IS
	'internal to initiative_economics and spend_vs_outcome_growth: spend and outcomes per month, initiative and currency, unrounded';

CREATE VIEW @extschema@.initiative_economics WITH (security_invoker = true) AS
SELECT m.month, m.initiative, i.team, i.owner, i.status,
	   m.requests::bigint AS requests,
	   round(m.spend, 9) AS spend,
	   m.outcomes,
	   round(m.outcome_value, 9) AS outcome_value,
	   CASE WHEN m.outcomes > 0 THEN round(m.spend / m.outcomes, 9) END AS cost_per_outcome,
	   CASE WHEN m.spend <> 0 THEN (m.outcome_value - m.spend) / m.spend END AS roi,
	   CASE WHEN sum(m.spend) OVER w <> 0 THEN m.spend / sum(m.spend) OVER w END AS spend_share,
	   m.currency
FROM @extschema@.initiative_months m
LEFT JOIN @extschema@.initiatives i ON i.name = m.initiative
WINDOW w AS (PARTITION BY m.month, m.currency);
COMMENT ON VIEW @extschema@.initiative_economics IS
	'what each initiative spent and produced, month by month: spend, outcomes, cost per outcome, ROI and share of the month''s spend (read from the hourly rollups)';

CREATE VIEW @extschema@.spend_vs_outcome_growth WITH (security_invoker = true) AS
SELECT m.month, m.initiative,
	   round(m.spend, 9) AS spend,
	   m.outcomes,
	   CASE WHEN p.spend <> 0 THEN m.spend / p.spend END AS spend_growth,
	   CASE WHEN p.outcomes <> 0 THEN m.outcomes / p.outcomes END AS outcome_growth,
	   CASE WHEN m.outcomes > 0 THEN round(m.spend / m.outcomes, 9) END AS cost_per_outcome,
	   CASE WHEN m.outcomes > 0 AND p.outcomes > 0 AND p.spend <> 0
			THEN (m.spend / m.outcomes) / (p.spend / p.outcomes) END AS cost_per_outcome_growth,
	   m.currency
FROM @extschema@.initiative_months m
LEFT JOIN @extschema@.initiative_months p
	ON p.initiative = m.initiative AND p.currency = m.currency
   AND p.month = (m.month - interval '1 month')::date
WHERE m.initiative IS NOT NULL;
COMMENT ON VIEW @extschema@.spend_vs_outcome_growth IS
	'token maxing by initiative: how spend grew against outcomes, month on month (13 means 13 times the previous month)';

COMMENT ON COLUMN @extschema@.spend_days.day IS 'calendar day in the session''s TimeZone';
COMMENT ON COLUMN @extschema@.spend_days.team IS 'team the spend is attributed to (NULL: none)';
COMMENT ON COLUMN @extschema@.spend_days.initiative IS 'initiative the spend is attributed to (NULL: shadow spend, no initiative)';
COMMENT ON COLUMN @extschema@.spend_days.provider IS 'model provider';
COMMENT ON COLUMN @extschema@.spend_days.model IS 'the catalog model a call with a cost resolved to, else the model as recorded';
COMMENT ON COLUMN @extschema@.spend_days.service_tier IS 'service tier (standard, batch, flex, priority)';
COMMENT ON COLUMN @extschema@.spend_days.environment IS 'environment recorded with the calls';
COMMENT ON COLUMN @extschema@.spend_days.currency IS 'currency of the money columns: tokenledger.currency, or the spend''s own when no exchange rate converts it';
COMMENT ON COLUMN @extschema@.spend_days.entries IS 'ledger rows summed';
COMMENT ON COLUMN @extschema@.spend_days.requests IS 'calls (requests of call entries; adjustments and rerates count none)';
COMMENT ON COLUMN @extschema@.spend_days.unpriced_requests IS 'calls without a cost (no price applied); counted in requests and tokens, not in spend';
COMMENT ON COLUMN @extschema@.spend_days.input_tokens IS 'input tokens not served from or written to a cache';
COMMENT ON COLUMN @extschema@.spend_days.output_tokens IS 'output tokens, reasoning included';
COMMENT ON COLUMN @extschema@.spend_days.cache_read_tokens IS 'prompt tokens read from the provider''s cache';
COMMENT ON COLUMN @extschema@.spend_days.cache_write_tokens IS 'prompt tokens written to the cache (short-lived)';
COMMENT ON COLUMN @extschema@.spend_days.cache_write_1h_tokens IS 'prompt tokens written to the 1-hour cache';
COMMENT ON COLUMN @extschema@.spend_days.reasoning_tokens IS 'the reasoning part of output_tokens';
COMMENT ON COLUMN @extschema@.spend_days.spend IS 'spend including adjustments and rerates, converted at each row''s time, exact to 1e-9';
COMMENT ON COLUMN @extschema@.outcome_days.day IS 'calendar day in the session''s TimeZone';
COMMENT ON COLUMN @extschema@.outcome_days.initiative IS 'initiative the spend is attributed to (NULL: shadow spend, no initiative)';
COMMENT ON COLUMN @extschema@.outcome_days.currency IS 'currency of the money columns: tokenledger.currency, or the spend''s own when no exchange rate converts it';
COMMENT ON COLUMN @extschema@.outcome_days.entries IS 'ledger rows summed';
COMMENT ON COLUMN @extschema@.outcome_days.outcomes IS 'outcomes produced (sum of quantity)';
COMMENT ON COLUMN @extschema@.outcome_days.outcome_value IS 'value of the outcomes, converted at each outcome''s time';
COMMENT ON COLUMN @extschema@.spend_daily.day IS 'calendar day in the session''s TimeZone';
COMMENT ON COLUMN @extschema@.spend_daily.team IS 'team the spend is attributed to (NULL: none)';
COMMENT ON COLUMN @extschema@.spend_daily.initiative IS 'initiative the spend is attributed to (NULL: shadow spend, no initiative)';
COMMENT ON COLUMN @extschema@.spend_daily.provider IS 'model provider';
COMMENT ON COLUMN @extschema@.spend_daily.model IS 'the catalog model a call with a cost resolved to, else the model as recorded';
COMMENT ON COLUMN @extschema@.spend_daily.service_tier IS 'service tier (standard, batch, flex, priority)';
COMMENT ON COLUMN @extschema@.spend_daily.environment IS 'environment recorded with the calls';
COMMENT ON COLUMN @extschema@.spend_daily.currency IS 'currency of the money columns: tokenledger.currency, or the spend''s own when no exchange rate converts it';
COMMENT ON COLUMN @extschema@.spend_daily.requests IS 'calls (requests of call entries; adjustments and rerates count none)';
COMMENT ON COLUMN @extschema@.spend_daily.input_tokens IS 'input tokens not served from or written to a cache';
COMMENT ON COLUMN @extschema@.spend_daily.output_tokens IS 'output tokens, reasoning included';
COMMENT ON COLUMN @extschema@.spend_daily.cache_read_tokens IS 'prompt tokens read from the provider''s cache';
COMMENT ON COLUMN @extschema@.spend_daily.cache_write_tokens IS 'prompt tokens written to the cache (short-lived)';
COMMENT ON COLUMN @extschema@.spend_daily.cache_write_1h_tokens IS 'prompt tokens written to the 1-hour cache';
COMMENT ON COLUMN @extschema@.spend_daily.reasoning_tokens IS 'the reasoning part of output_tokens';
COMMENT ON COLUMN @extschema@.spend_daily.spend IS 'spend including adjustments and rerates, converted at each row''s time, exact to 1e-9';
COMMENT ON COLUMN @extschema@.spend_daily.unpriced_requests IS 'calls without a cost (no price applied); counted in requests and tokens, not in spend';
COMMENT ON COLUMN @extschema@.initiative_months.month IS 'first day of the calendar month in the session''s TimeZone';
COMMENT ON COLUMN @extschema@.initiative_months.initiative IS 'initiative the spend is attributed to (NULL: shadow spend, no initiative)';
COMMENT ON COLUMN @extschema@.initiative_months.currency IS 'currency of the money columns: tokenledger.currency, or the spend''s own when no exchange rate converts it';
COMMENT ON COLUMN @extschema@.initiative_months.requests IS 'calls (requests of call entries; adjustments and rerates count none)';
COMMENT ON COLUMN @extschema@.initiative_months.spend IS 'spend including adjustments and rerates, converted at each row''s time, exact to 1e-9';
COMMENT ON COLUMN @extschema@.initiative_months.outcomes IS 'outcomes produced (sum of quantity)';
COMMENT ON COLUMN @extschema@.initiative_months.outcome_value IS 'value of the outcomes, converted at each outcome''s time';
COMMENT ON COLUMN @extschema@.initiative_economics.month IS 'first day of the calendar month in the session''s TimeZone';
COMMENT ON COLUMN @extschema@.initiative_economics.initiative IS 'the initiative (NULL: shadow spend, no initiative)';
COMMENT ON COLUMN @extschema@.initiative_economics.team IS 'the initiative''s team';
COMMENT ON COLUMN @extschema@.initiative_economics.owner IS 'the initiative''s owner';
COMMENT ON COLUMN @extschema@.initiative_economics.status IS 'active, paused or abandoned';
COMMENT ON COLUMN @extschema@.initiative_economics.requests IS 'calls (requests of call entries; adjustments and rerates count none)';
COMMENT ON COLUMN @extschema@.initiative_economics.spend IS 'spend including adjustments and rerates, converted at each row''s time, exact to 1e-9';
COMMENT ON COLUMN @extschema@.initiative_economics.outcomes IS 'outcomes produced (sum of quantity)';
COMMENT ON COLUMN @extschema@.initiative_economics.outcome_value IS 'value of the outcomes, converted at each outcome''s time';
COMMENT ON COLUMN @extschema@.initiative_economics.cost_per_outcome IS 'spend / outcomes, rounded half away from zero to 1e-9; NULL without outcomes';
COMMENT ON COLUMN @extschema@.initiative_economics.roi IS '(outcome_value - spend) / spend; NULL when spend is 0';
COMMENT ON COLUMN @extschema@.initiative_economics.spend_share IS 'share of the month''s whole spend in this currency (shadow spend included), 0 to 1';
COMMENT ON COLUMN @extschema@.initiative_economics.currency IS 'currency of the money columns: tokenledger.currency, or the spend''s own when no exchange rate converts it';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.month IS 'first day of the calendar month in the session''s TimeZone';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.initiative IS 'the initiative';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.spend IS 'spend including adjustments and rerates, converted at each row''s time, exact to 1e-9';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.outcomes IS 'outcomes produced (sum of quantity)';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.spend_growth IS 'spend / the previous month''s (13 means 13 times); NULL without a previous month or when it was 0';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.outcome_growth IS 'outcomes / the previous month''s; NULL without a previous month or when it had none';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.cost_per_outcome IS 'spend / outcomes, rounded half away from zero to 1e-9; NULL without outcomes';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.cost_per_outcome_growth IS 'cost per outcome / the previous month''s; NULL when either month had no outcomes';
COMMENT ON COLUMN @extschema@.spend_vs_outcome_growth.currency IS 'currency of the money columns: tokenledger.currency, or the spend''s own when no exchange rate converts it';
-- unpriced_usage (1.0) gets a comment on each column, as every view has
COMMENT ON COLUMN @extschema@.unpriced_usage.id IS 'the call''s id in usage';
COMMENT ON COLUMN @extschema@.unpriced_usage.occurred_at IS 'when the call happened';
COMMENT ON COLUMN @extschema@.unpriced_usage.provider IS 'model provider';
COMMENT ON COLUMN @extschema@.unpriced_usage.model IS 'the model as recorded';
COMMENT ON COLUMN @extschema@.unpriced_usage.service_tier IS 'service tier';
COMMENT ON COLUMN @extschema@.unpriced_usage.requests IS 'calls the row stands for';
COMMENT ON COLUMN @extschema@.unpriced_usage.team IS 'team the call is attributed to';
COMMENT ON COLUMN @extschema@.unpriced_usage.initiative IS 'initiative the call is attributed to';
COMMENT ON COLUMN @extschema@.unpriced_usage.principal IS 'user or service account that made the call';
COMMENT ON COLUMN @extschema@.unpriced_usage.api_key IS 'the key''s id or name';
COMMENT ON COLUMN @extschema@.unpriced_usage.app IS 'application that made the call';
COMMENT ON COLUMN @extschema@.unpriced_usage.request_id IS 'idempotency key of the call';
GRANT SELECT ON @extschema@.spend_days, @extschema@.outcome_days, @extschema@.spend_daily,
	@extschema@.initiative_months, @extschema@.initiative_economics, @extschema@.spend_vs_outcome_growth
TO tokenledger_reader;

-- ---------------------------------------------------------------------------
-- views on the ledger: run_economics, unattributed_spend,
-- token_maxing, focus_export
-- ---------------------------------------------------------------------------

-- Each of these views reads usage and outcomes as the caller (row-level
-- security by team reaches through).  A ledger row's money is converted to
-- the report currency at its own occurred_at; a row that no rate converts
-- keeps its own currency, on output rows of its own; unpriced calls count
-- on rows of the report currency, with requests and tokens but no spend.
-- Exact products are summed and each figure is rounded once, to 9 places.

-- run_economics: what each workflow run cost and whether it produced an
-- outcome.  A run's initiative and team are those of its earliest call
-- that names an initiative (else of its earliest call); its outcomes are
-- the outcomes recorded with its run_id, each on the row of the currency
-- its value is reported in (the report currency when converted or when it
-- has no value, its own when no rate converts it)
CREATE VIEW @extschema@.run_economics WITH (security_invoker = true) AS
SELECT r.run_id, r.initiative, r.team, r.first_at, r.last_at,
	   g.requests::bigint AS requests,
	   g.total_tokens::bigint AS total_tokens,
	   round(g.spend, 9) AS spend,
	   g.outcomes,
	   round(g.outcome_value, 9) AS outcome_value,
	   coalesce(p.produced_outcome, false) AS produced_outcome,
	   g.currency
FROM (
	SELECT u.run_id, min(u.occurred_at) AS first_at, max(u.occurred_at) AS last_at,
		   (array_agg(u.initiative ORDER BY u.initiative IS NULL, u.occurred_at, u.id))[1] AS initiative,
		   (array_agg(u.team ORDER BY u.initiative IS NULL, u.occurred_at, u.id))[1] AS team
	FROM @extschema@_archive.all_usage u
	WHERE u.run_id IS NOT NULL
	GROUP BY u.run_id
) r
JOIN (
	SELECT e.run_id, e.currency,
		   sum(e.requests) AS requests, sum(e.total_tokens) AS total_tokens,
		   coalesce(sum(e.spend), 0) AS spend,
		   coalesce(sum(e.outcomes), 0) AS outcomes,
		   coalesce(sum(e.outcome_value), 0) AS outcome_value
	FROM (
		SELECT u.run_id, c.currency, CASE WHEN u.entry = 'call' THEN u.requests ELSE 0 END AS requests,
			   @extschema@.total(u.tokens) AS total_tokens, c.spend,
			   NULL::numeric AS outcomes, NULL::numeric AS outcome_value
		FROM @extschema@_archive.all_usage u
		CROSS JOIN LATERAL (
			SELECT CASE WHEN u.cost IS NULL OR x.rate IS NOT NULL THEN @extschema@.report_currency()
						ELSE @extschema@.currency(u.cost) END AS currency,
				   @extschema@.amount(u.cost) * coalesce(x.rate, 1) AS spend
			FROM (SELECT @extschema@.fx_rate(@extschema@.currency(u.cost), @extschema@.report_currency(),
											 u.occurred_at) AS rate) x
		) c
		WHERE u.run_id IS NOT NULL
		UNION ALL
		SELECT o.run_id, v.currency, 0, 0, NULL, o.quantity, v.value
		FROM @extschema@_archive.all_outcomes o
		CROSS JOIN LATERAL (
			SELECT CASE WHEN o.value IS NULL OR x.rate IS NOT NULL THEN @extschema@.report_currency()
						ELSE @extschema@.currency(o.value) END AS currency,
				   @extschema@.amount(o.value) * coalesce(x.rate, 1) AS value
			FROM (SELECT @extschema@.fx_rate(@extschema@.currency(o.value), @extschema@.report_currency(),
											 o.occurred_at) AS rate) x
		) v
		WHERE o.run_id IS NOT NULL
	) e
	GROUP BY e.run_id, e.currency
) g ON g.run_id = r.run_id
LEFT JOIN (
	SELECT o.run_id, sum(o.quantity) > 0 AS produced_outcome
	FROM @extschema@_archive.all_outcomes o
	WHERE o.run_id IS NOT NULL
	GROUP BY o.run_id
) p ON p.run_id = r.run_id;
COMMENT ON VIEW @extschema@.run_economics IS
	'what each workflow run (usage.run_id) cost and what it produced: one row per run and currency; outcomes are those recorded with the run''s run_id';
COMMENT ON COLUMN @extschema@.run_economics.run_id IS 'the workflow run or trace the calls served';
COMMENT ON COLUMN @extschema@.run_economics.initiative IS 'the initiative of the run''s earliest call that names one (NULL when none does)';
COMMENT ON COLUMN @extschema@.run_economics.team IS 'the team of that same call (of the earliest call when none names an initiative)';
COMMENT ON COLUMN @extschema@.run_economics.first_at IS 'when the run''s first call happened';
COMMENT ON COLUMN @extschema@.run_economics.last_at IS 'when the run''s last call happened';
COMMENT ON COLUMN @extschema@.run_economics.requests IS 'calls of the run on this row (the requests of call entries)';
COMMENT ON COLUMN @extschema@.run_economics.total_tokens IS 'tokens of those calls (input + output + cache reads and writes)';
COMMENT ON COLUMN @extschema@.run_economics.spend IS 'what the run cost in this row''s currency, adjustments and rerates included; unpriced calls add nothing';
COMMENT ON COLUMN @extschema@.run_economics.outcomes IS 'the sum of the quantity of the outcomes recorded with this run_id whose value is reported in this row''s currency (outcomes without a value: on the report currency''s row)';
COMMENT ON COLUMN @extschema@.run_economics.outcome_value IS 'what those outcomes are worth, each converted at its own occurred_at (0 when none has a value)';
COMMENT ON COLUMN @extschema@.run_economics.produced_outcome IS 'whether the outcomes recorded for the run add up to more than 0 (the same on every row of the run)';
COMMENT ON COLUMN @extschema@.run_economics.currency IS 'currency of spend and outcome_value: tokenledger.currency, or the amounts'' own when no exchange rate converts them';

-- unattributed_spend: shadow AI, the spend no initiative owns, by who spent it
CREATE VIEW @extschema@.unattributed_spend WITH (security_invoker = true) AS
SELECT g.month, g.api_key, g.app, g.principal,
	   coalesce(g.requests, 0)::bigint AS requests,
	   coalesce(g.total_tokens, 0)::bigint AS total_tokens,
	   round(coalesce(g.spend, 0), 9) AS spend,
	   coalesce(g.spend, 0) / nullif(g.month_spend, 0) AS spend_share,
	   g.currency
FROM (
	SELECT l.month, l.currency, l.unattributed,
		   CASE WHEN l.unattributed THEN l.api_key END AS api_key,
		   CASE WHEN l.unattributed THEN l.app END AS app,
		   CASE WHEN l.unattributed THEN l.principal END AS principal,
		   sum(l.requests) FILTER (WHERE l.entry = 'call') AS requests,
		   sum(l.total_tokens) AS total_tokens, sum(l.spend) AS spend,
		   sum(sum(l.spend)) OVER (PARTITION BY l.month, l.currency) AS month_spend
	FROM (
		SELECT pg_catalog.date_trunc('month', u.occurred_at)::date AS month, u.initiative IS NULL AS unattributed,
			   u.api_key, u.app, u.principal, u.entry, u.requests,
			   @extschema@.total(u.tokens) AS total_tokens, c.currency, c.spend
		FROM @extschema@_archive.all_usage u
		CROSS JOIN LATERAL (
			SELECT CASE WHEN u.cost IS NULL OR x.rate IS NOT NULL THEN @extschema@.report_currency()
						ELSE @extschema@.currency(u.cost) END AS currency,
				   @extschema@.amount(u.cost) * coalesce(x.rate, 1) AS spend
			FROM (SELECT @extschema@.fx_rate(@extschema@.currency(u.cost), @extschema@.report_currency(),
											 u.occurred_at) AS rate) x
		) c
	) l
	GROUP BY l.month, l.currency, l.unattributed, CASE WHEN l.unattributed THEN l.api_key END,
			 CASE WHEN l.unattributed THEN l.app END, CASE WHEN l.unattributed THEN l.principal END
) g
WHERE g.unattributed;
COMMENT ON VIEW @extschema@.unattributed_spend IS
	'shadow AI: spend with no initiative, per month, api_key, app, principal and currency, with its share of the month''s whole spend';
COMMENT ON COLUMN @extschema@.unattributed_spend.month IS 'first day of the calendar month (session TimeZone)';
COMMENT ON COLUMN @extschema@.unattributed_spend.api_key IS 'the API key (its id or name) the calls used';
COMMENT ON COLUMN @extschema@.unattributed_spend.app IS 'the application that made the calls';
COMMENT ON COLUMN @extschema@.unattributed_spend.principal IS 'the user or service account that made the calls';
COMMENT ON COLUMN @extschema@.unattributed_spend.requests IS 'calls (the requests of call entries)';
COMMENT ON COLUMN @extschema@.unattributed_spend.total_tokens IS 'tokens of those calls (input + output + cache reads and writes)';
COMMENT ON COLUMN @extschema@.unattributed_spend.spend IS 'what they cost, adjustments and rerates included; unpriced calls add nothing';
COMMENT ON COLUMN @extschema@.unattributed_spend.spend_share IS 'spend / the month''s whole spend in this currency, attributed or not (a fraction; NULL when that is 0)';
COMMENT ON COLUMN @extschema@.unattributed_spend.currency IS 'currency of spend: tokenledger.currency, or the costs'' own when no exchange rate converts them';

-- token_maxing: principals whose spend grows while their outcomes do not.
-- A principal's month is the calls of one principal and team in it; its
-- outcomes are those recorded with a run_id its calls served that month
-- (outcomes are not money: every currency row of it shows them), and its
-- ranks are among all principals of the month
CREATE VIEW @extschema@.token_maxing WITH (security_invoker = true) AS
WITH ledger AS (
	SELECT pg_catalog.date_trunc('month', u.occurred_at)::date AS month, u.principal, u.team, u.run_id,
		   u.entry, u.requests, @extschema@.total(u.tokens) AS total_tokens, c.currency, c.spend
	FROM @extschema@_archive.all_usage u
	CROSS JOIN LATERAL (
		SELECT CASE WHEN u.cost IS NULL OR x.rate IS NOT NULL THEN @extschema@.report_currency()
					ELSE @extschema@.currency(u.cost) END AS currency,
			   @extschema@.amount(u.cost) * coalesce(x.rate, 1) AS spend
		FROM (SELECT @extschema@.fx_rate(@extschema@.currency(u.cost), @extschema@.report_currency(),
										 u.occurred_at) AS rate) x
	) c
), run_outcomes AS (
	SELECT o.run_id, sum(o.quantity) AS outcomes
	FROM @extschema@_archive.all_outcomes o
	WHERE o.run_id IS NOT NULL
	GROUP BY o.run_id
), sums AS (
	SELECT l.month, l.principal, l.team, l.currency,
		   coalesce(sum(l.requests) FILTER (WHERE l.entry = 'call'), 0) AS requests,
		   coalesce(sum(l.total_tokens), 0) AS total_tokens,
		   coalesce(sum(l.spend), 0) AS spend,
		   coalesce(sum(l.spend) FILTER (WHERE coalesce(r.outcomes, 0) = 0), 0) AS spend_without_outcome
	FROM ledger l
	LEFT JOIN run_outcomes r ON r.run_id = l.run_id
	GROUP BY l.month, l.principal, l.team, l.currency
), principals AS (
	SELECT t.month, t.principal, t.team, t.total_tokens, coalesce(s.outcomes, 0) AS outcomes,
		   rank() OVER (PARTITION BY t.month ORDER BY t.total_tokens DESC) AS token_rank,
		   rank() OVER (PARTITION BY t.month ORDER BY coalesce(s.outcomes, 0) DESC) AS outcome_rank
	FROM (SELECT w.month, w.principal, w.team, sum(w.total_tokens) AS total_tokens
		  FROM sums w GROUP BY w.month, w.principal, w.team) t
	LEFT JOIN (
		SELECT d.month, d.principal, d.team, sum(r.outcomes) AS outcomes
		FROM (SELECT DISTINCT l.month, l.principal, l.team, l.run_id
			  FROM ledger l WHERE l.entry = 'call' AND l.run_id IS NOT NULL) d
		JOIN run_outcomes r ON r.run_id = d.run_id
		GROUP BY d.month, d.principal, d.team
	) s ON s.month = t.month AND s.principal IS NOT DISTINCT FROM t.principal
	   AND s.team IS NOT DISTINCT FROM t.team
)
SELECT w.month, w.principal, w.team, w.requests::bigint AS requests,
	   w.total_tokens::bigint AS total_tokens, round(w.spend, 9) AS spend, p.outcomes,
	   round(w.spend_without_outcome, 9) AS spend_without_outcome,
	   p.token_rank, p.outcome_rank,
	   w.spend / nullif(pw.spend, 0) AS spend_growth,
	   p.outcomes / nullif(pp.outcomes, 0) AS outcome_growth,
	   coalesce(w.spend >= 1.5 * pw.spend AND p.outcomes <= coalesce(pp.outcomes, 0), false) AS flagged,
	   w.currency
FROM sums w
JOIN principals p ON p.month = w.month AND p.principal IS NOT DISTINCT FROM w.principal
	AND p.team IS NOT DISTINCT FROM w.team
LEFT JOIN sums pw ON pw.month = (w.month - interval '1 month')::date
	AND pw.principal IS NOT DISTINCT FROM w.principal AND pw.team IS NOT DISTINCT FROM w.team
	AND pw.currency = w.currency
LEFT JOIN principals pp ON pp.month = (w.month - interval '1 month')::date
	AND pp.principal IS NOT DISTINCT FROM w.principal AND pp.team IS NOT DISTINCT FROM w.team;
COMMENT ON VIEW @extschema@.token_maxing IS
	'token maxing: per month, principal, team and currency, spend against the outcomes of the runs the principal''s calls served, ranked in the month and compared with the principal''s previous calendar month';
COMMENT ON COLUMN @extschema@.token_maxing.month IS 'first day of the calendar month (session TimeZone)';
COMMENT ON COLUMN @extschema@.token_maxing.principal IS 'the user or service account that made the calls (NULL: calls that name none)';
COMMENT ON COLUMN @extschema@.token_maxing.team IS 'the team the calls are attributed to';
COMMENT ON COLUMN @extschema@.token_maxing.requests IS 'calls (the requests of call entries)';
COMMENT ON COLUMN @extschema@.token_maxing.total_tokens IS 'tokens of those calls (input + output + cache reads and writes)';
COMMENT ON COLUMN @extschema@.token_maxing.spend IS 'what they cost, adjustments and rerates included; unpriced calls add nothing';
COMMENT ON COLUMN @extschema@.token_maxing.outcomes IS 'the sum of the quantity of the outcomes whose run_id is a run the principal''s calls (of this team) served this month; the same on every currency row';
COMMENT ON COLUMN @extschema@.token_maxing.spend_without_outcome IS 'the part of spend on calls with no run_id or whose run has no outcome (its outcomes add up to 0)';
COMMENT ON COLUMN @extschema@.token_maxing.token_rank IS '1 = the most tokens this month (all currencies of the principal and team together; rank(), ties share)';
COMMENT ON COLUMN @extschema@.token_maxing.outcome_rank IS '1 = the most outcomes this month (rank(); principals with none share the last rank)';
COMMENT ON COLUMN @extschema@.token_maxing.spend_growth IS 'spend / the previous calendar month''s spend of the same principal, team and currency (2 = doubled); NULL without one or when it was 0';
COMMENT ON COLUMN @extschema@.token_maxing.outcome_growth IS 'outcomes / the previous calendar month''s outcomes; NULL when the previous month had none';
COMMENT ON COLUMN @extschema@.token_maxing.flagged IS 'spend at least 1.5 x the previous calendar month''s while outcomes did not grow (this month''s <= the previous month''s, none counting as 0); false without a previous month';
COMMENT ON COLUMN @extschema@.token_maxing.currency IS 'currency of spend: tokenledger.currency, or the costs'' own when no exchange rate converts them';

-- focus_export: the ledger as a FinOps FOCUS 1.2 cost and usage dataset.
-- Amounts stay in their own currency (FOCUS keeps currencies apart), so
-- the sum of "BilledCost" per "BillingCurrency" is the ledger's sum of cost
-- per currency.
-- Rows are UTC days; a day's rows of one kind are split further by the
-- price row that priced them ("SkuPriceId") and by "ChargeClass".
-- "Tags" is the JSON object as text, as FOCUS files carry it (a jsonb
-- column is a type BI clients do not know)
CREATE VIEW @extschema@.focus_export WITH (security_invoker = true) AS
SELECT round(g.billed, 9) AS "BilledCost",
	   round(g.billed, 9) AS "EffectiveCost",
	   round(g.billed, 9) AS "ListCost",
	   round(g.billed, 9) AS "ContractedCost",
	   g.currency AS "BillingCurrency",
	   a.account AS "BillingAccountId",
	   a.account AS "BillingAccountName",
	   pg_catalog.timezone('UTC', pg_catalog.date_trunc('month', g.day)) AS "BillingPeriodStart",
	   pg_catalog.timezone('UTC', pg_catalog.date_trunc('month', g.day) + interval '1 month') AS "BillingPeriodEnd",
	   pg_catalog.timezone('UTC', g.day) AS "ChargePeriodStart",
	   pg_catalog.timezone('UTC', g.day + interval '1 day') AS "ChargePeriodEnd",
	   g.category AS "ChargeCategory",
	   g.class AS "ChargeClass",
	   s.service || ': ' ||
	   CASE WHEN g.class = 'Correction' THEN 'price corrections (rerate) of '
			WHEN g.category = 'Credit' THEN 'credits on '
			WHEN g.category = 'Adjustment' THEN 'adjustments to '
			ELSE '' END ||
	   g.model || ' calls, ' || g.service_tier || ' tier' AS "ChargeDescription",
	   'Usage-Based'::text AS "ChargeFrequency",
	   CASE WHEN g.category = 'Usage' THEN g.total_tokens END AS "ConsumedQuantity",
	   CASE WHEN g.category = 'Usage' THEN 'Tokens' END AS "ConsumedUnit",
	   CASE WHEN g.category = 'Usage' THEN g.total_tokens * 0.000001 END AS "PricingQuantity",
	   CASE WHEN g.category = 'Usage' THEN '1M Tokens' END AS "PricingUnit",
	   g.provider AS "ProviderName",
	   g.provider AS "PublisherName",
	   g.provider AS "InvoiceIssuerName",
	   'AI and Machine Learning'::text AS "ServiceCategory",
	   s.service AS "ServiceName",
	   g.provider || '/' || g.model || '/' || g.service_tier AS "SkuId",
	   g.price_id::text AS "SkuPriceId",
	   g.team AS "SubAccountId",
	   pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
		   'initiative', g.initiative, 'team', g.team, 'app', g.app, 'environment', g.environment))::text AS "Tags",
	   g.initiative AS "x_Initiative",
	   g.requests::bigint AS "x_Requests",
	   g.unpriced_requests::bigint AS "x_UnpricedRequests"
FROM (
	SELECT l.day, l.provider, l.model, l.service_tier, l.initiative, l.team, l.currency, l.category,
		   l.class, l.price_id,
		   coalesce(sum(l.amount), 0) AS billed,
		   sum(l.total_tokens) AS total_tokens,
		   coalesce(sum(l.requests) FILTER (WHERE l.entry = 'call'), 0) AS requests,
		   coalesce(sum(l.requests) FILTER (WHERE l.entry = 'call' AND l.amount IS NULL), 0) AS unpriced_requests,
		   -- a tag is given when every row of the charge carries the same value
		   CASE WHEN count(l.app) = count(*) AND min(l.app) = max(l.app) THEN min(l.app) END AS app,
		   CASE WHEN count(l.environment) = count(*) AND min(l.environment) = max(l.environment)
				THEN min(l.environment) END AS environment
	FROM (
		SELECT pg_catalog.date_trunc('day', pg_catalog.timezone('UTC', u.occurred_at)) AS day,
			   u.provider, coalesce(@extschema@.resolve_model(u.provider, u.model), u.model) AS model,
			   u.service_tier, u.initiative, u.team, u.app, u.environment, u.entry, u.requests,
			   u.price_id, @extschema@.total(u.tokens) AS total_tokens,
			   @extschema@.amount(u.cost) AS amount,
			   coalesce(@extschema@.currency(u.cost), @extschema@.report_currency()) AS currency,
			   CASE WHEN u.entry = 'call' THEN 'Usage'
					WHEN u.entry = 'adjustment' AND @extschema@.amount(u.cost) < 0 THEN 'Credit'
					ELSE 'Adjustment' END AS category,
			   CASE WHEN u.entry = 'rerate' THEN 'Correction' END AS class
		FROM @extschema@_archive.all_usage u
	) l
	GROUP BY l.day, l.provider, l.model, l.service_tier, l.initiative, l.team, l.currency, l.category,
			 l.class, l.price_id
) g
CROSS JOIN (SELECT coalesce(nullif(pg_catalog.current_setting('tokenledger.billing_account', true), ''),
							pg_catalog.current_database()::text) AS account) a
CROSS JOIN LATERAL (
	SELECT CASE pg_catalog.lower(g.provider)
			   WHEN 'openai' THEN 'OpenAI API'
			   WHEN 'anthropic' THEN 'Anthropic API'
			   WHEN 'google' THEN 'Gemini API'
			   WHEN 'gemini' THEN 'Gemini API'
			   WHEN 'vertex_ai' THEN 'Vertex AI'
			   WHEN 'bedrock' THEN 'Amazon Bedrock'
			   WHEN 'azure' THEN 'Azure OpenAI'
			   WHEN 'mistral' THEN 'Mistral API'
			   ELSE g.provider || ' API' END AS service
) s;
COMMENT ON VIEW @extschema@.focus_export IS
	'the ledger as a FinOps FOCUS 1.2 cost and usage dataset: one row per UTC day, provider, model, service tier, initiative, team, currency and charge (category, class, price row); amounts in their own currency, the sum of BilledCost per currency is the ledger''s sum of cost';
COMMENT ON COLUMN @extschema@.focus_export."BilledCost" IS 'FOCUS BilledCost: the sum of the cost of the ledger rows, in BillingCurrency (0 for unpriced calls)';
COMMENT ON COLUMN @extschema@.focus_export."EffectiveCost" IS 'FOCUS EffectiveCost: = BilledCost (no commitments or amortization in the ledger)';
COMMENT ON COLUMN @extschema@.focus_export."ListCost" IS 'FOCUS ListCost: = BilledCost (the ledger keeps what was charged)';
COMMENT ON COLUMN @extschema@.focus_export."ContractedCost" IS 'FOCUS ContractedCost: = BilledCost (the ledger keeps what was charged)';
COMMENT ON COLUMN @extschema@.focus_export."BillingCurrency" IS 'FOCUS BillingCurrency: the ISO 4217 currency of the costs, not converted (tokenledger.currency for unpriced calls)';
COMMENT ON COLUMN @extschema@.focus_export."BillingAccountId" IS 'FOCUS BillingAccountId: the setting tokenledger.billing_account, or the database''s name when it is empty';
COMMENT ON COLUMN @extschema@.focus_export."BillingAccountName" IS 'FOCUS BillingAccountName: as BillingAccountId';
COMMENT ON COLUMN @extschema@.focus_export."BillingPeriodStart" IS 'FOCUS BillingPeriodStart: the UTC calendar month''s start (inclusive)';
COMMENT ON COLUMN @extschema@.focus_export."BillingPeriodEnd" IS 'FOCUS BillingPeriodEnd: the next UTC month''s start (exclusive)';
COMMENT ON COLUMN @extschema@.focus_export."ChargePeriodStart" IS 'FOCUS ChargePeriodStart: the UTC day''s start (inclusive)';
COMMENT ON COLUMN @extschema@.focus_export."ChargePeriodEnd" IS 'FOCUS ChargePeriodEnd: the next UTC day''s start (exclusive)';
COMMENT ON COLUMN @extschema@.focus_export."ChargeCategory" IS 'FOCUS ChargeCategory: Usage (calls), Adjustment (adjustments and rerates) or Credit (negative adjustments)';
COMMENT ON COLUMN @extschema@.focus_export."ChargeClass" IS 'FOCUS ChargeClass: Correction for rerate entries (price corrections), else NULL';
COMMENT ON COLUMN @extschema@.focus_export."ChargeDescription" IS 'FOCUS ChargeDescription: service, kind of charge, model and service tier';
COMMENT ON COLUMN @extschema@.focus_export."ChargeFrequency" IS 'FOCUS ChargeFrequency: Usage-Based';
COMMENT ON COLUMN @extschema@.focus_export."ConsumedQuantity" IS 'FOCUS ConsumedQuantity: total tokens (input + output + cache reads and writes) of Usage rows; NULL on other rows';
COMMENT ON COLUMN @extschema@.focus_export."ConsumedUnit" IS 'FOCUS ConsumedUnit: Tokens (NULL where ConsumedQuantity is)';
COMMENT ON COLUMN @extschema@.focus_export."PricingQuantity" IS 'FOCUS PricingQuantity: total tokens / 1,000,000 of Usage rows (prices are per 1M tokens); NULL on other rows';
COMMENT ON COLUMN @extschema@.focus_export."PricingUnit" IS 'FOCUS PricingUnit: 1M Tokens (NULL where PricingQuantity is)';
COMMENT ON COLUMN @extschema@.focus_export."ProviderName" IS 'FOCUS ProviderName: the model provider (usage.provider)';
COMMENT ON COLUMN @extschema@.focus_export."PublisherName" IS 'FOCUS PublisherName: the model provider';
COMMENT ON COLUMN @extschema@.focus_export."InvoiceIssuerName" IS 'FOCUS InvoiceIssuerName: the model provider';
COMMENT ON COLUMN @extschema@.focus_export."ServiceCategory" IS 'FOCUS ServiceCategory: AI and Machine Learning';
COMMENT ON COLUMN @extschema@.focus_export."ServiceName" IS 'FOCUS ServiceName: the provider''s API (OpenAI API, Anthropic API, Gemini API, ...; else the provider followed by API)';
COMMENT ON COLUMN @extschema@.focus_export."SkuId" IS 'FOCUS SkuId: provider/model/service tier (the catalog model the call resolved to, else as recorded)';
COMMENT ON COLUMN @extschema@.focus_export."SkuPriceId" IS 'FOCUS SkuPriceId: the id of the prices row that priced the calls (the new price of a rerate); NULL for given costs, unpriced calls and adjustments';
COMMENT ON COLUMN @extschema@.focus_export."SubAccountId" IS 'FOCUS SubAccountId: the team';
COMMENT ON COLUMN @extschema@.focus_export."Tags" IS 'FOCUS Tags: a JSON object of initiative, team, app and environment, as text (keys in jsonb''s order; app and environment when all the row''s calls share one; NULL values left out)';
COMMENT ON COLUMN @extschema@.focus_export."x_Initiative" IS 'custom column: the initiative (NULL: unattributed spend)';
COMMENT ON COLUMN @extschema@.focus_export."x_Requests" IS 'custom column: calls (the requests of call entries)';
COMMENT ON COLUMN @extschema@.focus_export."x_UnpricedRequests" IS 'custom column: calls recorded without a price (they add 0 to BilledCost)';

GRANT SELECT ON @extschema@.run_economics, @extschema@.unattributed_spend, @extschema@.token_maxing,
	@extschema@.focus_export
TO tokenledger_reader;

-- ---------------------------------------------------------------------------
-- model_tiers and model_rightsizing, spend_anomalies, the
-- forecast of budget_status
-- ---------------------------------------------------------------------------

-- model_tiers: which cheaper model could do a premium model's work.  Shipped
-- rows are handled as the shipped prices and aliases are: pg_dump keeps only
-- the users' rows, a shipped row an admin corrects becomes the user's, and
-- shipped rows are not deleted (a restore would bring them back)
CREATE TABLE @extschema@.model_tiers (
	provider text NOT NULL,
	model text NOT NULL,
	cheaper_provider text,
	cheaper_model text,
	note text,
	shipped boolean NOT NULL DEFAULT false,
	PRIMARY KEY (provider, model),
	CONSTRAINT model_tiers_cheaper_check CHECK ((cheaper_provider IS NULL) = (cheaper_model IS NULL)),
	CONSTRAINT model_tiers_other_check CHECK (cheaper_provider <> provider OR cheaper_model <> model)
);
COMMENT ON TABLE @extschema@.model_tiers IS
	'the cheaper model that could do a premium model''s work (models as the price catalog names them); model_rightsizing prices calls at it';
COMMENT ON COLUMN @extschema@.model_tiers.provider IS 'provider of the premium model';
COMMENT ON COLUMN @extschema@.model_tiers.model IS 'the premium model, as the catalog names it (what resolve_model gives)';
COMMENT ON COLUMN @extschema@.model_tiers.cheaper_provider IS 'provider of the cheaper model; NULL with cheaper_model: no cheaper model is suggested';
COMMENT ON COLUMN @extschema@.model_tiers.cheaper_model IS 'the cheaper model, as the catalog names it; NULL: no cheaper model is suggested (how a shipped suggestion is switched off)';
COMMENT ON COLUMN @extschema@.model_tiers.note IS 'why the cheaper model fits, or what to check before switching';
COMMENT ON COLUMN @extschema@.model_tiers.shipped IS 'true for rows installed with the extension (not dumped by pg_dump)';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.model_tiers', 'WHERE NOT shipped');

-- shipped rows are corrected, kept and restored as the catalog's are
CREATE TRIGGER model_tiers_corrected BEFORE UPDATE ON @extschema@.model_tiers
	FOR EACH ROW WHEN (OLD.shipped) EXECUTE FUNCTION @extschema@.shipped_row_corrected();
CREATE TRIGGER model_tiers_shipped_kept BEFORE DELETE ON @extschema@.model_tiers
	FOR EACH ROW WHEN (OLD.shipped) EXECUTE FUNCTION @extschema@.shipped_row_kept('model_tiers');
CREATE TRIGGER model_tiers_restored BEFORE INSERT ON @extschema@.model_tiers
	FOR EACH ROW WHEN (NOT NEW.shipped) EXECUTE FUNCTION @extschema@.shipped_row_restored('model_tiers');

-- the shipped tiers: each premium model of the shipped catalog and the
-- current small model of its family (a row a user already has is kept)
INSERT INTO @extschema@.model_tiers (provider, model, cheaper_provider, cheaper_model, note, shipped)
SELECT provider, model, provider, cheaper_model, note, true
FROM (VALUES
	('openai', 'gpt-5-pro', 'gpt-5-mini', 'GPT-5 mini: the GPT-5 family''s small model'),
	('openai', 'gpt-5.1', 'gpt-5-mini', 'GPT-5 mini: the GPT-5 family''s small model'),
	('openai', 'gpt-5', 'gpt-5-mini', 'GPT-5 mini: the GPT-5 family''s small model'),
	('openai', 'gpt-5.1-codex', 'gpt-5-mini', 'GPT-5 mini: a general model; check it on your coding tasks first'),
	('openai', 'gpt-5-codex', 'gpt-5-mini', 'GPT-5 mini: a general model; check it on your coding tasks first'),
	('openai', 'gpt-4.1', 'gpt-4.1-mini', 'GPT-4.1 mini: the same family, long context kept'),
	('openai', 'gpt-4o', 'gpt-4o-mini', 'GPT-4o mini: the same family'),
	('openai', 'gpt-4-turbo', 'gpt-4.1-mini', 'GPT-4.1 mini: its successor''s small model'),
	('openai', 'o3-pro', 'o3', 'o3: the same model without the extra compute'),
	('openai', 'o1', 'o3', 'o3: its successor, a fraction of the price'),
	('openai', 'o3', 'o4-mini', 'o4-mini: the small reasoning model'),
	('anthropic', 'claude-opus-4-5', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('anthropic', 'claude-opus-4-1', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('anthropic', 'claude-opus-4', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('anthropic', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('anthropic', 'claude-sonnet-4', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('anthropic', 'claude-3-7-sonnet', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('anthropic', 'claude-3-5-sonnet', 'claude-haiku-4-5', 'Claude Haiku 4.5: the current small Claude'),
	('google', 'gemini-3-pro-preview', 'gemini-2.5-flash', 'Gemini 2.5 Flash: the current Flash model'),
	('google', 'gemini-2.5-pro', 'gemini-2.5-flash', 'Gemini 2.5 Flash: the same generation''s Flash'),
	('google', 'gemini-1.5-pro', 'gemini-2.5-flash', 'Gemini 2.5 Flash: the current Flash model')
) AS v(provider, model, cheaper_model, note)
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------
-- model_rightsizing: what the calls of premium models would have cost on
-- the cheaper model model_tiers names
-- ---------------------------------------------------------------------------

-- Each priced call of a model that model_tiers maps to a cheaper one, with
-- the adjustments and rerates of that call (spend includes them), is priced
-- again: its tokens at the cheaper model's price in effect at the call's
-- time, in the call's service tier where the cheaper model has a price in
-- it, else in standard.  A call the cheaper model has no price for (at its
-- time, in either tier), or whose cheaper price no exchange rate converts to
-- the row's currency, counts at what it cost: it adds to spend and to
-- spend_on_cheaper alike, so saving = spend - spend_on_cheaper never claims
-- a saving nobody can price.
CREATE VIEW @extschema@.model_rightsizing WITH (security_invoker = true) AS
SELECT r.month, r.initiative, r.provider, r.model, r.cheaper_provider, r.cheaper_model,
	   sum(r.requests)::bigint AS requests,
	   round(sum(r.spend), 9) AS spend,
	   round(sum(r.on_cheaper), 9) AS spend_on_cheaper,
	   round(sum(r.spend) - sum(r.on_cheaper), 9) AS saving,
	   coalesce(sum(r.requests) FILTER (WHERE r.short), 0)::bigint AS short_requests,
	   round(coalesce(sum(r.spend) FILTER (WHERE r.short), 0)
			 - coalesce(sum(r.on_cheaper) FILTER (WHERE r.short), 0), 9) AS saving_on_short,
	   r.currency
FROM (
	SELECT pg_catalog.date_trunc('month', u.occurred_at)::date AS month, u.initiative, u.provider,
		   m.model, t.cheaper_provider, t.cheaper_model,
		   CASE WHEN u.entry = 'call' THEN u.requests ELSE 0 END AS requests,
		   x.currency,
		   x.spend,
		   CASE WHEN ch.amount IS NULL THEN x.spend
				WHEN u.entry = 'call' THEN ch.amount
				ELSE 0 END AS on_cheaper,
		   -- per request, in numeric: no token count overflows it
		   @extschema@.input(c.tokens)::numeric + @extschema@.cache_read(c.tokens)
			   + @extschema@.cache_write(c.tokens) + @extschema@.cache_write_1h(c.tokens) < 1000::numeric * c.requests
		   AND @extschema@.output(c.tokens) < 300::numeric * c.requests AS short
	FROM @extschema@_archive.all_usage u
	-- the call itself, or the call an adjustment or rerate corrects
	CROSS JOIN LATERAL (
		SELECT u.tokens, u.requests, u.service_tier, u.cost WHERE u.entry = 'call'
		UNION ALL
		SELECT o.tokens, o.requests, o.service_tier, o.cost FROM @extschema@_archive.all_usage o
		WHERE u.entry <> 'call' AND o.id = u.adjusts AND o.entry = 'call'
	) c
	CROSS JOIN LATERAL (SELECT coalesce(@extschema@.resolve_model(u.provider, u.model), u.model) AS model) m
	JOIN @extschema@.model_tiers t ON t.provider = u.provider AND t.model = m.model
	CROSS JOIN LATERAL (
		SELECT f.currency, @extschema@.amount(u.cost) * coalesce(f.fx, 1) AS spend
		FROM (SELECT fx.fx, CASE WHEN fx.fx IS NULL THEN @extschema@.currency(u.cost)
								 ELSE @extschema@.report_currency() END AS currency
			  FROM (SELECT @extschema@.fx_rate(@extschema@.currency(u.cost), @extschema@.report_currency(),
											   u.occurred_at) AS fx) fx) f
	) x
	-- the call's tokens at the cheaper model's price, in the row's currency
	LEFT JOIN LATERAL (
		SELECT @extschema@.amount(q.cost)
			   * @extschema@.fx_rate(@extschema@.currency(q.cost), x.currency, u.occurred_at) AS amount
		FROM (SELECT c.tokens OPERATOR(@extschema@.*) p.rate AS cost
			  FROM @extschema@.prices p
			  WHERE p.id = coalesce(@extschema@.price_of(c.tokens, t.cheaper_provider, t.cheaper_model,
														 c.service_tier, u.occurred_at, c.requests),
									@extschema@.price_of(c.tokens, t.cheaper_provider, t.cheaper_model,
														 'standard', u.occurred_at, c.requests))) q
	) ch ON true
	WHERE u.cost IS NOT NULL AND c.cost IS NOT NULL AND t.cheaper_model IS NOT NULL
) r
GROUP BY r.month, r.initiative, r.provider, r.model, r.cheaper_provider, r.cheaper_model, r.currency;
COMMENT ON VIEW @extschema@.model_rightsizing IS
	'per month, initiative and premium model: what its priced calls cost and what the same tokens would have cost on the cheaper model model_tiers names';
COMMENT ON COLUMN @extschema@.model_rightsizing.month IS 'first day of the calendar month (session TimeZone)';
COMMENT ON COLUMN @extschema@.model_rightsizing.initiative IS 'the calls'' initiative; NULL for calls with none';
COMMENT ON COLUMN @extschema@.model_rightsizing.provider IS 'provider of the model';
COMMENT ON COLUMN @extschema@.model_rightsizing.model IS 'the catalog model the calls resolved to';
COMMENT ON COLUMN @extschema@.model_rightsizing.cheaper_provider IS 'provider of the cheaper model (model_tiers)';
COMMENT ON COLUMN @extschema@.model_rightsizing.cheaper_model IS 'the cheaper model (model_tiers)';
COMMENT ON COLUMN @extschema@.model_rightsizing.requests IS 'calls (sum of requests of call entries)';
COMMENT ON COLUMN @extschema@.model_rightsizing.spend IS 'what the calls cost, their adjustments and rerates included';
COMMENT ON COLUMN @extschema@.model_rightsizing.spend_on_cheaper IS 'the same tokens at the cheaper model''s catalog price in effect at each call''s time (the call''s service tier if the cheaper model has it, else standard); a call it has no price for counts at what it cost';
COMMENT ON COLUMN @extschema@.model_rightsizing.saving IS 'spend - spend_on_cheaper';
COMMENT ON COLUMN @extschema@.model_rightsizing.short_requests IS 'calls with a prompt (input + cache reads and writes) under 1,000 tokens and an output under 300, per request';
COMMENT ON COLUMN @extschema@.model_rightsizing.saving_on_short IS 'the part of saving on the short calls';
COMMENT ON COLUMN @extschema@.model_rightsizing.currency IS 'ISO 4217 code of the money columns: tokenledger.currency, or the calls'' own currency where no exchange rate converts it';

-- ---------------------------------------------------------------------------
-- spend_anomalies: days whose spend is far above the usual, and runs that
-- repeat one prompt
-- ---------------------------------------------------------------------------

-- Spikes: per initiative and per api_key (NULL included: spend with none),
-- each day's spend against the days before it.  The median and the median
-- absolute deviation are computed exactly in numeric (percentile_cont's
-- definition: the mean of the two middle values of an even count), and the
-- threshold is compared as spend - baseline >= threshold x 1.4826 x mad,
-- with no division.
CREATE VIEW @extschema@.spend_anomalies WITH (security_invoker = true) AS
WITH settings AS (
	SELECT @extschema@.report_currency() AS report_currency,
		   coalesce(current_setting('tokenledger.anomaly_threshold', true), '5')::numeric AS anomaly_threshold,
		   coalesce(current_setting('tokenledger.loop_threshold', true), '200')::bigint AS loop_threshold
),
-- the ledger's rows with their exchange rate to the report currency (NULL
-- when none applies, or for unpriced calls)
ledger AS NOT MATERIALIZED (
	SELECT u.initiative, u.api_key, u.run_id, u.prompt_hash, u.occurred_at, u.entry, u.requests,
		   @extschema@.currency(u.cost) AS cost_currency, @extschema@.amount(u.cost) AS amount,
		   @extschema@.fx_rate(@extschema@.currency(u.cost), s.report_currency, u.occurred_at) AS fx,
		   s.report_currency
	FROM @extschema@_archive.all_usage u, settings s
),
-- per initiative, api_key, day, currency and rate: each row's amount x its
-- rate, summed exactly as the sum of the amounts x the rate
parts AS (
	SELECT l.initiative, l.api_key, l.occurred_at::date AS day,
		   CASE WHEN l.cost_currency IS NOT NULL AND l.fx IS NULL THEN l.cost_currency
				ELSE l.report_currency END AS currency,
		   sum(l.amount) * coalesce(l.fx, 1) AS spend,
		   coalesce(sum(l.requests) FILTER (WHERE l.entry = 'call'), 0) AS requests
	FROM ledger l
	GROUP BY l.initiative, l.api_key, l.occurred_at::date, l.cost_currency, l.fx, l.report_currency
),
daily AS (
	SELECT CASE WHEN GROUPING(p.initiative) = 0 THEN 'initiative' ELSE 'api_key' END AS scope,
		   CASE WHEN GROUPING(p.initiative) = 0 THEN p.initiative ELSE p.api_key END AS scope_value,
		   p.currency, p.day, sum(p.spend) AS spend, sum(p.requests) AS requests
	FROM parts p
	GROUP BY GROUPING SETS ((p.initiative, p.currency, p.day), (p.api_key, p.currency, p.day))
),
history AS (
	-- the spend of the days with spend among the 28 before, and the scope's
	-- first day with spend
	SELECT d.*,
		   min(d.day) FILTER (WHERE d.spend IS NOT NULL) OVER s AS first_day,
		   array_agg(d.spend) FILTER (WHERE d.spend IS NOT NULL)
			   OVER (s ORDER BY d.day RANGE BETWEEN interval '28 days' PRECEDING AND interval '1 day' PRECEDING) AS spends
	FROM daily d
	WINDOW s AS (PARTITION BY d.scope, d.scope_value, d.currency)
),
baselines AS (
	SELECT h.scope, h.scope_value, h.currency, h.day, h.spend, h.requests, b.baseline,
		   (a.devs[(n.days + 1) / 2] + a.devs[n.days / 2 + 1]) / 2 AS mad
	FROM history h
	-- days of history: since the first spend, 28 at most, days without spend as 0
	CROSS JOIN LATERAL (SELECT h.day - greatest(h.first_day, h.day - 28) AS days) n
	CROSS JOIN LATERAL (
		SELECT array_agg(v ORDER BY v) AS vals
		FROM unnest(coalesce(h.spends, '{}')
					|| array_fill(0::numeric, ARRAY[n.days - coalesce(cardinality(h.spends), 0)])) v
	) o
	CROSS JOIN LATERAL (SELECT (o.vals[(n.days + 1) / 2] + o.vals[n.days / 2 + 1]) / 2 AS baseline) b
	CROSS JOIN LATERAL (
		SELECT array_agg(abs(v - b.baseline) ORDER BY abs(v - b.baseline)) AS devs FROM unnest(o.vals) v
	) a
	WHERE h.spend IS NOT NULL AND n.days >= 7 AND h.spend > b.baseline
),
-- loops: the runs, prompts and clock hours with enough calls, then their
-- spend by currency
repeats AS (
	SELECT u.run_id, u.prompt_hash, date_trunc('hour', u.occurred_at) AS hour
	FROM @extschema@_archive.all_usage u
	WHERE u.run_id IS NOT NULL AND u.prompt_hash IS NOT NULL
	GROUP BY u.run_id, u.prompt_hash, date_trunc('hour', u.occurred_at)
	HAVING coalesce(sum(u.requests) FILTER (WHERE u.entry = 'call'), 0) >= (SELECT s.loop_threshold FROM settings s)
),
loops AS (
	SELECT r.run_id, r.prompt_hash, r.hour,
		   CASE WHEN l.cost_currency IS NOT NULL AND l.fx IS NULL THEN l.cost_currency
				ELSE l.report_currency END AS currency,
		   coalesce(sum(l.requests) FILTER (WHERE l.entry = 'call'), 0) AS requests,
		   sum(l.amount * coalesce(l.fx, 1)) AS spend
	FROM repeats r
	JOIN ledger l ON l.run_id = r.run_id AND l.prompt_hash = r.prompt_hash
				 AND date_trunc('hour', l.occurred_at) = r.hour
	GROUP BY r.run_id, r.prompt_hash, r.hour, 4
)
SELECT 'spike'::text AS kind, b.scope, b.scope_value, b.day::timestamptz AS period_start,
	   (b.day + 1)::timestamptz AS period_end, b.requests::bigint AS requests,
	   round(b.spend, 9) AS spend, round(b.baseline, 9) AS baseline, round(b.mad, 9) AS mad,
	   CASE WHEN b.mad <> 0 THEN round((b.spend - b.baseline) / (1.4826 * b.mad), 4) END AS score,
	   NULL::text AS prompt_hash, b.currency
FROM baselines b, settings s
WHERE CASE WHEN b.mad <> 0 THEN b.spend - b.baseline >= s.anomaly_threshold * 1.4826 * b.mad
		   ELSE b.spend > 2 * b.baseline AND b.spend > b.baseline + 1 END
UNION ALL
SELECT 'loop', 'run', l.run_id, l.hour, l.hour + interval '1 hour', l.requests::bigint,
	   round(coalesce(l.spend, 0), 9), NULL, NULL, NULL, l.prompt_hash, l.currency
FROM loops l;
COMMENT ON VIEW @extschema@.spend_anomalies IS
	'spend to look at: days whose spend for an initiative or api_key is far above its usual (spikes), and runs that repeat one prompt within a clock hour (loops)';
COMMENT ON COLUMN @extschema@.spend_anomalies.kind IS 'spike or loop';
COMMENT ON COLUMN @extschema@.spend_anomalies.scope IS 'initiative or api_key for spikes; run for loops';
COMMENT ON COLUMN @extschema@.spend_anomalies.scope_value IS 'the initiative, api_key or run_id (NULL: spend with no initiative or api_key)';
COMMENT ON COLUMN @extschema@.spend_anomalies.period_start IS 'start of the day (spikes, session TimeZone) or of the clock hour (loops)';
COMMENT ON COLUMN @extschema@.spend_anomalies.period_end IS 'end (exclusive) of the day or clock hour';
COMMENT ON COLUMN @extschema@.spend_anomalies.requests IS 'calls in the period (sum of requests of call entries)';
COMMENT ON COLUMN @extschema@.spend_anomalies.spend IS 'spend in the period';
COMMENT ON COLUMN @extschema@.spend_anomalies.baseline IS 'spikes: the median daily spend of the 28 days before (days without spend as 0, none before the first spend, 7 at least); NULL for loops';
COMMENT ON COLUMN @extschema@.spend_anomalies.mad IS 'spikes: the median absolute deviation of those days from the baseline; NULL for loops';
COMMENT ON COLUMN @extschema@.spend_anomalies.score IS '(spend - baseline) / (1.4826 x mad), rounded to 4 decimals (the threshold tokenledger.anomaly_threshold compares the exact value); NULL when mad is 0 and for loops';
COMMENT ON COLUMN @extschema@.spend_anomalies.prompt_hash IS 'loops: the prompt_hash repeated (tokenledger.loop_threshold times at least); NULL for spikes';
COMMENT ON COLUMN @extschema@.spend_anomalies.currency IS 'ISO 4217 code of the money columns: tokenledger.currency, or the spend''s own currency where no exchange rate converts it';

-- ---------------------------------------------------------------------------
-- budget_status: the forecast
-- ---------------------------------------------------------------------------

-- The rate is the spend of the last 7 days, or of the period so far when
-- shorter, over that time.  The period so far spent what spent says; the
-- last 7 days of a longer period are read from the ledger (as the caller
-- sees it): the rows of the budget's scope (the accounting's own
-- definition, budget_applies), converted to its currency at each row's
-- time; spend no rate converts is left out, as it is of spent (see
-- unconverted).  A 'total' period has no bounds: period_start and
-- period_end are NULL (BI clients read no infinite timestamps), no
-- projected_spend, and projected_exhaustion whenever the rate reaches the
-- amount by the end of year 9999 (the last date clients' calendars hold).
CREATE OR REPLACE VIEW @extschema@.budget_status WITH (security_invoker = true) AS
SELECT b.id AS budget_id, b.name, b.scope, b.scope_value, b.period, b.time_zone, b.mode, b.active,
	   CASE WHEN isfinite(c.ps) THEN c.ps END AS period_start,
	   CASE WHEN isfinite(c.pe) THEN c.pe END AS period_end,
	   @extschema@.amount(c.spent) AS spent,
	   @extschema@.amount(c.reserved) AS reserved,
	   @extschema@.amount(b.amount) AS amount,
	   @extschema@.amount(b.amount) - @extschema@.amount(c.spent) - @extschema@.amount(c.reserved) AS remaining,
	   @extschema@.currency(b.amount) AS currency,
	   round(@extschema@.amount(c.spent) / @extschema@.amount(b.amount), 4) AS used_share,
	   CASE WHEN NOT b.active THEN 'inactive'
			WHEN c.spent OPERATOR(@extschema@.>=) b.amount THEN 'exceeded'
			WHEN @extschema@.amount(c.spent) >= @extschema@.amount(b.amount) * (SELECT min(t) FROM unnest(b.warn_at) t) THEN 'warning'
			ELSE 'ok' END AS status,
	   c.unconverted,
	   CASE WHEN b.active AND f.elapsed > 0 AND f.remaining_secs IS NOT NULL
			THEN round(@extschema@.amount(c.spent) + r.spend * f.remaining_secs / f.elapsed, 9) END AS projected_spend,
	   CASE WHEN NOT b.active THEN NULL
			WHEN @extschema@.amount(c.spent) >= @extschema@.amount(b.amount) THEN now()
			WHEN f.elapsed > 0 AND r.spend > 0 THEN (
				SELECT now() + make_interval(secs => e.secs::float8)
				FROM (SELECT (@extschema@.amount(b.amount) - @extschema@.amount(c.spent)) * f.elapsed / r.spend AS secs) e
				-- before the period ends, and by the end of year 9999 in the
				-- reading session's time zone (a cast, evaluated as the view is
				-- read: a timestamptz literal would keep the zone it was created in)
				WHERE (f.remaining_secs IS NULL OR e.secs < f.remaining_secs)
				  AND e.secs <= extract(epoch FROM timestamp '9999-12-31 23:59:59'::timestamptz - now()))
			END AS projected_exhaustion
FROM @extschema@.budgets b
CROSS JOIN LATERAL (
	SELECT p.ps, p.pe, pos.spent, pos.reserved, pos.unconverted
	FROM (SELECT @extschema@.period_start(b.period, now(), b.time_zone) AS ps,
				 @extschema@.period_end(b.period, now(), b.time_zone) AS pe) p
	CROSS JOIN LATERAL @extschema@.budget_position(b.id, p.ps, @extschema@.currency(b.amount)) pos
) c
-- the time since the rate's window began, and the time left in the period
CROSS JOIN LATERAL (
	SELECT w.since, extract(epoch FROM now() - w.since) AS elapsed,
		   CASE WHEN isfinite(c.pe) THEN extract(epoch FROM c.pe - now()) END AS remaining_secs
	FROM (SELECT greatest(c.ps, now() - interval '7 days') AS since) w
) f
-- the spend in that window: spent when the window is the whole period so
-- far (days, weeks, a month's first week), else read from the ledger, once
-- per active budget (OFFSET 0: not once per use)
CROSS JOIN LATERAL (
	SELECT CASE WHEN NOT b.active THEN 0
				WHEN f.since = c.ps THEN @extschema@.amount(c.spent)
				ELSE (SELECT coalesce(sum(@extschema@.amount(u.cost)
										  * @extschema@.fx_rate(@extschema@.currency(u.cost),
																@extschema@.currency(b.amount), u.occurred_at)), 0)
					  FROM @extschema@_archive.all_usage u
					  WHERE u.cost IS NOT NULL AND u.occurred_at >= f.since AND u.occurred_at <= now()
						AND @extschema@.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app))
				END AS spend
	OFFSET 0
) r
WHERE @extschema@.budget_visible(b.id);
COMMENT ON VIEW @extschema@.budget_status IS
	'every budget''s current period: spent, reserved, amount, remaining and status, and the forecast at the rate of the last 7 days';
COMMENT ON COLUMN @extschema@.budget_status.budget_id IS 'the budget''s id';
COMMENT ON COLUMN @extschema@.budget_status.name IS 'the budget''s name';
COMMENT ON COLUMN @extschema@.budget_status.scope IS 'global, team, initiative, principal, api_key or app';
COMMENT ON COLUMN @extschema@.budget_status.scope_value IS 'the team, initiative, principal, api_key or app the budget is for; NULL for global';
COMMENT ON COLUMN @extschema@.budget_status.period IS 'day, week, month, quarter, year or total';
COMMENT ON COLUMN @extschema@.budget_status.time_zone IS 'the time zone of the budget''s calendar periods';
COMMENT ON COLUMN @extschema@.budget_status.mode IS 'alert, or block (reservations beyond the amount are refused)';
COMMENT ON COLUMN @extschema@.budget_status.active IS 'whether the budget counts spend';
COMMENT ON COLUMN @extschema@.budget_status.period_start IS 'start of the current period; NULL for total (a period with no start)';
COMMENT ON COLUMN @extschema@.budget_status.period_end IS 'end (exclusive) of the current period; NULL for total (a period with no end)';
COMMENT ON COLUMN @extschema@.budget_status.unconverted IS
	'spend in the period that no exchange rate converts to the budget''s currency (e.g. 3.00 EUR), counted apart; NULL when none';
COMMENT ON COLUMN @extschema@.budget_status.projected_spend IS 'spent + the period''s remaining time x the average spend rate of the last 7 days (of the period so far when shorter); NULL for total periods (no end) and inactive budgets';
COMMENT ON COLUMN @extschema@.budget_status.projected_exhaustion IS 'when spent reaches the amount at that rate; now() when it already has; NULL when it does not before the period ends or by the end of year 9999 (in the session''s time zone), with no spend in the last 7 days, or for inactive budgets';

-- readers read the tiers and the views (and price calls as the view does);
-- admins keep the tiers
GRANT SELECT ON @extschema@.model_tiers, @extschema@.model_rightsizing, @extschema@.spend_anomalies
TO tokenledger_reader;
GRANT EXECUTE ON FUNCTION @extschema@.price_of(@extschema@.tokens, text, text, text, timestamptz, bigint)
TO tokenledger_reader;
GRANT INSERT, UPDATE, DELETE ON @extschema@.model_tiers TO tokenledger_admin;
