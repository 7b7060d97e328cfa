-- Behaviour of model_tiers, model_rightsizing, spend_anomalies and the
-- forecast of budget_status: comments, rights, the shipped tiers, and the
-- views' figures against independent computations.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET LOCAL search_path = public, tokenledger;
SET LOCAL TimeZone = 'UTC';
SELECT plan(32);

-- every column of the new views, of budget_status and of model_tiers has a comment
SELECT is((SELECT array_agg(c.relname || '.' || a.attname ORDER BY c.relname, a.attnum)
		   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		   WHERE c.oid IN ('tokenledger.model_rightsizing'::regclass, 'tokenledger.spend_anomalies'::regclass,
						   'tokenledger.budget_status'::regclass, 'tokenledger.model_tiers'::regclass)
			 AND a.attnum > 0 AND NOT a.attisdropped
			 AND col_description(c.oid, a.attnum) IS NULL),
		  NULL, 'every column of model_rightsizing, spend_anomalies, budget_status and model_tiers has a comment');
SELECT ok(obj_description('tokenledger.model_rightsizing'::regclass, 'pg_class') IS NOT NULL
		  AND obj_description('tokenledger.spend_anomalies'::regclass, 'pg_class') IS NOT NULL
		  AND obj_description('tokenledger.budget_status'::regclass, 'pg_class') IS NOT NULL
		  AND obj_description('tokenledger.model_tiers'::regclass, 'pg_class') IS NOT NULL,
		  'the views and model_tiers have a comment');
SELECT columns_are('tokenledger', 'model_rightsizing',
				   ARRAY['month', 'initiative', 'provider', 'model', 'cheaper_provider', 'cheaper_model', 'requests',
						 'spend', 'spend_on_cheaper', 'saving', 'short_requests', 'saving_on_short', 'currency'],
				   'model_rightsizing has the columns of SPEC 5.3');
SELECT columns_are('tokenledger', 'spend_anomalies',
				   ARRAY['kind', 'scope', 'scope_value', 'period_start', 'period_end', 'requests', 'spend', 'baseline',
						 'mad', 'score', 'prompt_hash', 'currency'],
				   'spend_anomalies has the columns of SPEC 5.3');
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
		   WHERE a.attrelid = 'tokenledger.budget_status'::regclass AND a.attnum > 18),
		  ARRAY['projected_spend', 'projected_exhaustion'], 'budget_status ends with the forecast');
SELECT is((SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		   WHERE c.oid IN ('tokenledger.model_rightsizing'::regclass, 'tokenledger.spend_anomalies'::regclass,
						   'tokenledger.budget_status'::regclass)
			 AND a.attnum > 0 AND a.atttypid IN (SELECT t.oid FROM pg_type t WHERE t.typnamespace = 'tokenledger'::regnamespace)),
		  0::bigint, 'no column of a tokenledger type');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
		   WHERE c.oid IN ('tokenledger.model_rightsizing'::regclass, 'tokenledger.spend_anomalies'::regclass,
						   'tokenledger.budget_status'::regclass)
			 AND 'security_invoker=true' = ANY (c.reloptions)),
		  ARRAY['budget_status', 'model_rightsizing', 'spend_anomalies'], 'the views run with the caller''s rights');

-- rights
SELECT ok(has_table_privilege('tokenledger_reader', 'tokenledger.model_rightsizing', 'SELECT')
		  AND has_table_privilege('tokenledger_reader', 'tokenledger.spend_anomalies', 'SELECT')
		  AND has_table_privilege('tokenledger_reader', 'tokenledger.budget_status', 'SELECT')
		  AND has_table_privilege('tokenledger_reader', 'tokenledger.model_tiers', 'SELECT'),
		  'a reader can SELECT the views and model_tiers');
SELECT ok(NOT has_table_privilege('tokenledger_reader', 'tokenledger.model_tiers', 'INSERT')
		  AND NOT has_table_privilege('tokenledger_reader', 'tokenledger.model_tiers', 'UPDATE')
		  AND NOT has_table_privilege('tokenledger_reader', 'tokenledger.model_tiers', 'DELETE')
		  AND NOT has_table_privilege('tokenledger_writer', 'tokenledger.model_tiers', 'SELECT'),
		  'a reader does not write model_tiers, a writer does not read it');
SELECT ok(has_table_privilege('tokenledger_admin', 'tokenledger.model_tiers', 'INSERT')
		  AND has_table_privilege('tokenledger_admin', 'tokenledger.model_tiers', 'UPDATE')
		  AND has_table_privilege('tokenledger_admin', 'tokenledger.model_tiers', 'DELETE'),
		  'an admin writes model_tiers');
SELECT ok(NOT has_function_privilege('public', 'tokenledger.shipped_row_restored()', 'EXECUTE')
		  AND NOT has_function_privilege('public', 'tokenledger.shipped_row_kept()', 'EXECUTE')
		  AND NOT has_function_privilege('public', 'tokenledger.price_of(tokenledger.tokens, text, text, text, timestamptz, bigint)', 'EXECUTE'),
		  'PUBLIC runs neither the trigger functions nor price_of');
-- pg_dump keeps the users' rows only
SELECT is((SELECT e.extcondition[array_position(e.extconfig, 'tokenledger.model_tiers'::regclass)]
		   FROM pg_extension e WHERE e.extname = 'tokenledger'),
		  'WHERE NOT shipped', 'pg_dump dumps the model_tiers rows users added or corrected');

-- the shipped tiers name priced shipped models on both sides, cheaper in every billed class
SELECT cmp_ok((SELECT count(*) FROM model_tiers WHERE shipped), '>=', 15::bigint, 'model_tiers ships its rows');
SELECT is((SELECT array_agg(t.provider || '/' || t.model) FROM model_tiers t
		   WHERE t.shipped AND NOT EXISTS (SELECT FROM prices p WHERE p.shipped AND p.provider = t.provider
										   AND p.model = t.model AND p.service_tier = 'standard')),
		  NULL, 'every shipped tier names a priced shipped model');
SELECT is((SELECT array_agg(t.cheaper_provider || '/' || t.cheaper_model) FROM model_tiers t
		   WHERE t.shipped AND NOT EXISTS (SELECT FROM prices p WHERE p.shipped AND p.provider = t.cheaper_provider
										   AND p.model = t.cheaper_model AND p.service_tier = 'standard')),
		  NULL, 'every shipped tier names a priced shipped cheaper model');
SELECT is((SELECT array_agg(t.model) FROM model_tiers t
		   JOIN prices p ON p.shipped AND p.provider = t.provider AND p.model = t.model
						AND p.service_tier = 'standard' AND p.min_input_tokens = 0
		   JOIN prices c ON c.shipped AND c.provider = t.cheaper_provider AND c.model = t.cheaper_model
						AND c.service_tier = 'standard' AND c.min_input_tokens = 0
		   WHERE t.shipped
			 AND NOT (input_price(c.rate) < input_price(p.rate) AND output_price(c.rate) < output_price(p.rate))),
		  NULL, 'every shipped cheaper model is cheaper for input and output');
SELECT is((SELECT array_agg(p.model ORDER BY p.model) FROM (SELECT DISTINCT provider, model FROM prices WHERE shipped) p
		   WHERE p.model ~ '(opus|sonnet|-pro|^gpt-5(\.1)?$|^gpt-4o$|^gpt-4\.1$|^o3-pro$|^o1$)'
			 AND NOT EXISTS (SELECT FROM model_tiers t WHERE t.provider = p.provider AND t.model = p.model)),
		  NULL, 'every shipped premium model (Opus, Sonnet, Pro, GPT-5, GPT-4o, GPT-4.1, o1, o3-pro) has a tier');

-- model_rightsizing over random calls of every shipped premium model in
-- the standard tier: spend_on_cheaper is cost_of at the cheaper model, and
-- saving is spend - spend_on_cheaper
SELECT setseed(0.31);
INSERT INTO usage (request_id, occurred_at, provider, model, tokens, initiative)
SELECT 'tiers-' || i, timestamptz '2026-02-10 12:00+00' + i * interval '1 minute', t.provider, t.model,
	   tokens((random() * 3000)::bigint, (random() * 600)::bigint, (random() * 2000)::bigint, 0, 0, 0), 'tiers'
FROM generate_series(1, 600) i
CROSS JOIN LATERAL (SELECT provider, model FROM model_tiers WHERE shipped ORDER BY provider, model
					OFFSET (i % (SELECT count(*) FROM model_tiers WHERE shipped)) LIMIT 1) t;
SELECT is((SELECT array_agg(r.model) FROM model_rightsizing r
		   WHERE r.initiative = 'tiers'
			 AND r.spend_on_cheaper IS DISTINCT FROM (
				 SELECT sum(amount(cost_of(u.tokens, t.cheaper_provider, t.cheaper_model, 'standard', u.occurred_at)))
				 FROM usage u JOIN model_tiers t ON t.provider = u.provider AND t.model = u.model
				 WHERE u.initiative = 'tiers' AND u.model = r.model)),
		  NULL, 'spend_on_cheaper is what cost_of charges for the same tokens on the cheaper model');
SELECT is((SELECT array_agg(r.model) FROM model_rightsizing r
		   WHERE r.initiative = 'tiers'
			 AND (r.spend IS DISTINCT FROM (SELECT sum(amount(u.cost)) FROM usage u
											WHERE u.initiative = 'tiers' AND u.model = r.model)
				  OR r.saving <> r.spend - r.spend_on_cheaper OR r.saving <= 0)),
		  NULL, 'spend is the ledger''s, and saving = spend - spend_on_cheaper > 0');
SELECT is((SELECT sum(requests) FROM model_rightsizing WHERE initiative = 'tiers'), 600::numeric,
		  'every call of a premium model is counted once');
SELECT is((SELECT sum(short_requests) FROM model_rightsizing WHERE initiative = 'tiers'),
		  (SELECT count(*)::numeric FROM usage WHERE initiative = 'tiers'
		   AND input(tokens) + cache_read(tokens) < 1000 AND output(tokens) < 300),
		  'short_requests counts the calls with a prompt under 1,000 and an output under 300 tokens');

-- spend_anomalies: a score exactly at the threshold is a spike, a nano below is not
-- (baseline 10, mad 0.5: spend 10 + 5 x 1.4826 x 0.5 = 13.7065 scores exactly 5)
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative)
SELECT d + time '12:00', 'acme', 'm', 'in=1 out=1', cost(v, 'USD'), 'tap-at'
FROM unnest(ARRAY[date '2025-06-01', '2025-06-02', '2025-06-03', '2025-06-04', '2025-06-05', '2025-06-06',
				  '2025-06-07', '2025-06-08', '2025-06-09'],
			ARRAY[10, 12, 8, 10, 11, 9, 10, 10, 13.7065]) AS x(d, v);
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative)
SELECT d + time '12:00', 'acme', 'm', 'in=1 out=1', cost(v, 'USD'), 'tap-below'
FROM unnest(ARRAY[date '2025-06-01', '2025-06-02', '2025-06-03', '2025-06-04', '2025-06-05', '2025-06-06',
				  '2025-06-07', '2025-06-08', '2025-06-09'],
			ARRAY[10, 12, 8, 10, 11, 9, 10, 10, 13.706499999]) AS x(d, v);
SELECT results_eq($$SELECT scope_value, baseline, mad, score FROM spend_anomalies
					WHERE scope = 'initiative' AND scope_value LIKE 'tap-%' ORDER BY scope_value$$,
				  $$VALUES ('tap-at'::text, 10::numeric, 0.5::numeric, 5::numeric)$$,
				  'a score exactly at tokenledger.anomaly_threshold is a spike, one a nano below is not');
SET LOCAL tokenledger.anomaly_threshold = 4.9;
SELECT is((SELECT count(*) FROM spend_anomalies WHERE scope = 'initiative' AND scope_value LIKE 'tap-%'), 2::bigint,
		  'a lower tokenledger.anomaly_threshold reports both');
RESET tokenledger.anomaly_threshold;
SELECT is((SELECT count(*) FROM spend_anomalies WHERE scope = 'initiative' AND scope_value = 'tiers'), 0::bigint,
		  'one day of spend is no spike');

-- loops: exactly at tokenledger.loop_threshold
INSERT INTO usage (occurred_at, provider, model, tokens, cost, run_id, prompt_hash)
SELECT timestamptz '2025-07-01 09:00+00' + i * interval '10 seconds', 'acme', 'm', 'in=1 out=1', '0.01 USD', 'tap-run', 'h'
FROM generate_series(0, 199) i;
SELECT results_eq($$SELECT kind, scope, scope_value, requests, spend, prompt_hash, period_end - period_start
					FROM spend_anomalies WHERE kind = 'loop'$$,
				  $$VALUES ('loop'::text, 'run'::text, 'tap-run'::text, 200::bigint, 2::numeric, 'h'::text, interval '1 hour')$$,
				  '200 repeats of one prompt in a run within a clock hour are a loop (the default threshold)');
SET LOCAL tokenledger.loop_threshold = 201;
SELECT is((SELECT count(*) FROM spend_anomalies WHERE kind = 'loop'), 0::bigint, '199 below the threshold are none');
RESET tokenledger.loop_threshold;

-- budget_status: the forecast against the ledger, as computed here from now()
INSERT INTO budgets (name, scope, scope_value, period, amount) VALUES
	('tap-week', 'initiative', 'tap-week', 'week', '50 USD'),
	('tap-global', 'global', NULL, 'total', '1000000 USD');
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative)
SELECT now() - i * interval '90 minutes', 'acme', 'm', 'in=1 out=1', '0.25 USD', 'tap-week' FROM generate_series(0, 149) i;
SELECT is((SELECT projected_spend FROM budget_status WHERE name = 'tap-week'),
		  (SELECT round(b.spent + sum(amount(u.cost)) * extract(epoch FROM b.period_end - now())
							  / extract(epoch FROM now() - greatest(b.period_start, now() - interval '7 days')), 9)
		   FROM budget_status b, usage u
		   WHERE b.name = 'tap-week' AND u.initiative = 'tap-week'
			 AND u.occurred_at >= greatest(b.period_start, now() - interval '7 days')
		   GROUP BY b.spent, b.period_start, b.period_end),
		  'projected_spend = spent + remaining time x the rate of the last 7 days or of the period so far');
SELECT ok((SELECT projected_exhaustion IS NULL OR (projected_exhaustion > now() AND projected_exhaustion < period_end)
		   FROM budget_status WHERE name = 'tap-week')
		  AND (SELECT (projected_exhaustion IS NOT NULL) = (projected_spend > amount) OR projected_spend = amount
			   FROM budget_status WHERE name = 'tap-week'),
		  'projected_exhaustion falls within the period exactly when projected_spend passes the amount');
SELECT is((SELECT projected_spend IS NULL AND projected_exhaustion > now() FROM budget_status WHERE name = 'tap-global'),
		  true, 'a total budget has no projected_spend, but runs out at some time');
-- a total budget's period has no bounds, and its exhaustion is shown up to
-- the end of year 9999 in the session's time zone: a budget that runs out at
-- 9999-12-31 20:00 UTC (1 USD spent an hour ago: 1 USD a week, and the
-- amount 1 USD + a week's dollar for each week until then)
INSERT INTO budgets (name, scope, scope_value, period, amount) VALUES
	('tap-9999', 'initiative', 'tap-9999', 'total',
	 cost(round(1 + extract(epoch FROM timestamptz '9999-12-31 20:00:00+00' - now()) / 604800, 9), 'USD'));
INSERT INTO usage (occurred_at, provider, model, tokens, cost, initiative)
VALUES (now() - interval '1 hour', 'acme', 'm', 'in=1 out=1', '1 USD', 'tap-9999');
SELECT is((SELECT ARRAY[period_start, period_end] FROM budget_status WHERE name = 'tap-9999'),
		  ARRAY[NULL, NULL]::timestamptz[], 'a total budget''s period_start and period_end are NULL');
SET LOCAL TimeZone = 'Etc/GMT+12';
SELECT ok((SELECT abs(extract(epoch FROM projected_exhaustion - timestamptz '9999-12-31 20:00:00+00')) < 1
		   FROM budget_status WHERE name = 'tap-9999'),
		  'an exhaustion at 9999-12-31 20:00 UTC is shown where that is still year 9999 (08:00 at UTC-12)');
SET LOCAL TimeZone = 'Pacific/Kiritimati';
SELECT is((SELECT projected_exhaustion FROM budget_status WHERE name = 'tap-9999'), NULL::timestamptz,
		  'and is NULL where it is year 10000 (10:00 on 1 January at UTC+14), which clients cannot read');
SET LOCAL TimeZone = 'UTC';

SELECT * FROM finish();
ROLLBACK;
