-- demo/generate.sql: a year of AI spend at a mid-size company, generated
-- deterministically (setseed) and recorded through the ledger's insert path
-- (INSERT ... SELECT and record_usage), so every call is priced from the
-- catalog, attributed by the rules, counted against budgets and summed into
-- the rollups as in production.
--
-- The dates follow the clock: the twelve full calendar months before the
-- current one (the year the report reads) and the current month up to now
-- (what budgets, their forecast and the anomalies look at).  Full months
-- keep the year's figures from depending on the day of the month the demo
-- runs; the month to date keeps the budgets live.
--
-- Over the year, tokens grow about 13x while outcomes barely double:
--   coding-assistants    engineers' coding assistants: more engineers, more
--                        calls, ever larger contexts, while merged pull
--                        requests follow the head count.  Last month one
--                        engineer's agents ran day and night: about $150,000
--                        and not one merged pull request
--   support-triage       a workflow that resolves support tickets; it moved
--                        from gpt-4o to gpt-4.1 and caches its knowledge
--                        base, so its cost per ticket falls as tickets double
--   marketing-genai      an experiment abandoned after four months whose
--                        scheduler kept running (and once replayed its backlog)
--   invoice-processing   claude-opus-4-1 reading invoices: mostly short
--                        extractions that a small model does as well
--   ops-incident-digest  incident summaries on gemini-2.5-pro, some over 200k tokens
--   account-research     a research agent; one of its runs looped on one
--                        prompt for seven hours two days ago
--   contract-review      a European team on Mistral, billed in EUR
--   shadow keys          spend no initiative owns: a legacy batch job, a
--                        personal key, a hackathon bot nobody stopped, a
--                        contractor's tools, a CRM plugin
--   unpriced calls       a model the catalog does not know: recorded, never dropped
--
-- The calls are generated into a staging table and recorded in time order,
-- as a ledger fills, so the BRIN index on occurred_at serves the time-bounded
-- reads (the budgets' forecast reads the last 7 days).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tokenledger;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
SET work_mem = '128MB';
SELECT setseed(0.2026) AS seed \gset

-- ---------------------------------------------------------------------------
-- the calendar: y0 is the first day of the year, m the month (0-11 the
-- year, 12 the current month), t the time since y0 in months
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_clock AS
SELECT date_trunc('month', now()) - interval '12 months' AS y0,
	   date_trunc('month', now()) - interval '1 month' AS last_month,
	   date_trunc('month', now()) AS this_month,
	   -- the runaway loop: 01:00 to 08:00, two days ago
	   date_trunc('day', now()) - interval '2 days' + interval '1 hour' AS loop_at;

CREATE TEMP TABLE demo_days AS
SELECT d::date AS day,
	   (12 * (extract(year FROM d) - extract(year FROM c.y0))
		+ extract(month FROM d) - extract(month FROM c.y0))::integer AS m,
	   extract(epoch FROM d - c.y0) / (86400 * 30.44) AS t,
	   extract(isodow FROM d) >= 6 AS weekend
FROM demo_clock c, generate_series(c.y0, now(), interval '1 day') d;

-- calls a day: base at the start of the year, times growth by its end,
-- fewer at weekends, and +-15% from day to day
CREATE FUNCTION pg_temp.per_day(base float8, growth float8, t float8, weekend boolean, weekend_share float8)
	RETURNS integer LANGUAGE sql VOLATILE
	RETURN round(base * power(growth, t / 11) * CASE WHEN weekend THEN weekend_share ELSE 1 END
				 * (0.85 + random() * 0.3))::integer;
-- a random number in [lo0, hi0] at the start of the year, moving to [lo1, hi1] by its end
CREATE FUNCTION pg_temp.drift(t float8, lo0 float8, hi0 float8, lo1 float8, hi1 float8)
	RETURNS float8 LANGUAGE sql VOLATILE
	RETURN lo0 + (lo1 - lo0) * t / 11 + random() * (hi0 - lo0 + ((hi1 - lo1) - (hi0 - lo0)) * t / 11);
CREATE FUNCTION pg_temp.office_hours(day date) RETURNS timestamptz LANGUAGE sql VOLATILE
	RETURN day + interval '8 hours' + random() * interval '10 hours';
CREATE FUNCTION pg_temp.any_hour(day date) RETURNS timestamptz LANGUAGE sql VOLATILE
	RETURN day + random() * interval '24 hours';

-- the staging tables: the same columns as the ledger's
CREATE TEMP TABLE demo_usage (
	occurred_at timestamptz, request_id text, provider text, model text,
	service_tier text DEFAULT 'standard', tokens tokens, requests bigint DEFAULT 1,
	api_key text, app text, principal text, run_id text, prompt_hash text, environment text
);
CREATE TEMP TABLE demo_outcomes (
	occurred_at timestamptz, initiative text, metric text, quantity numeric DEFAULT 1,
	run_id text, external_ref text, attributes jsonb DEFAULT '{}'
);

-- ---------------------------------------------------------------------------
-- the organisation: initiatives, attribution, a contract price in EUR
-- ---------------------------------------------------------------------------

INSERT INTO initiatives (name, team, owner, status, outcome_metric, value_per_outcome) VALUES
	('coding-assistants', 'engineering', 'cto', 'active', 'pull_request_merged', '150.00 USD'),
	('support-triage', 'support', 'dana.support-lead', 'active', 'ticket_resolved', '18.00 USD'),
	('marketing-genai', 'marketing', 'max.growth', 'abandoned', 'campaign_asset', '40.00 USD'),
	('invoice-processing', 'finance', 'ap-lead', 'active', 'invoice_processed', '4.00 USD'),
	('ops-incident-digest', 'platform', 'sre-lead', 'active', 'incident_summarised', '25.00 USD'),
	('account-research', 'sales', 'sales-ops-lead', 'active', 'account_brief', '30.00 USD'),
	('contract-review', 'legal', 'legal-ops-eu', 'active', 'contract_reviewed', '45.00 EUR');

-- attribution by api key and app, as a data engineer sets it up; the
-- shadow keys match no rule
INSERT INTO attribution_rules (priority, match_api_key, match_app, initiative) VALUES
	(10, 'key-support-prod', NULL, 'support-triage'),
	(10, 'key-marketing-gen', NULL, 'marketing-genai'),
	(10, 'key-finance-ap', NULL, 'invoice-processing'),
	(10, 'key-legal-eu', NULL, 'contract-review'),
	(20, NULL, 'ide-assistant', 'coding-assistants'),
	(20, NULL, 'incident-bot', 'ops-incident-digest'),
	(20, NULL, 'research-agent', 'account-research');

-- the European team's contract with Mistral, billed in EUR: a price row of
-- the company's own, next to the shipped USD catalog
INSERT INTO prices (provider, model, effective_from, rate, source)
SELECT 'mistral', 'mistral-large-2411', y0, 'in=1.8 out=5.4 EUR/1M', 'EU enterprise agreement (billed in EUR)'
FROM demo_clock;
-- an exchange rate from the first of every month (the reports convert each
-- row at its own time)
INSERT INTO fx_rates (currency, to_currency, rate, effective_from)
SELECT 'EUR', 'USD', round((1.08 + 0.04 * sin(k / 2.0) + 0.005 * k)::numeric, 4), c.y0 + k * interval '1 month'
FROM demo_clock c, generate_series(0, 12) k;

-- ---------------------------------------------------------------------------
-- coding-assistants: 60 engineers at the start of the year, 100 at its end.
-- Each working day 2-4 sessions, which the IDE gateway reports in batches
-- of calls; sonnet mostly, opus more and more; the tokens of a call grow
-- about 8x (ever larger contexts)
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_devs AS
SELECT n AS dev, 'dev' || lpad(n::text, 3, '0') AS name,
	   CASE WHEN n <= 60 THEN 0 ELSE (n - 60) * 11.0 / 40 END AS joined
FROM generate_series(1, 100) n;

-- (random draws stay in the select lists of derived tables: there they
-- are drawn once per row, whatever the join order)
CREATE TEMP TABLE demo_dev_days AS
SELECT x.day, x.t, x.name, x.sessions
FROM (SELECT d.day, d.t, d.weekend, v.name, 2 + floor(random() * 3)::integer AS sessions, random() AS r
	  FROM demo_days d JOIN demo_devs v ON v.joined <= d.t) x
WHERE NOT x.weekend OR x.r < 0.08;

CREATE TEMP TABLE demo_sessions AS
SELECT dd.day, dd.t, dd.name, s, pg_temp.office_hours(dd.day) AS start, 2 + floor(random() * 3)::integer AS batches
FROM demo_dev_days dd
CROSS JOIN LATERAL generate_series(1, dd.sessions) s;

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, requests, api_key, app, principal, run_id, environment)
SELECT b.at, 'ide-' || b.name || '-' || to_char(b.day, 'YYYYMMDD') || '-' || b.s || '-' || b.j, 'anthropic',
	   CASE WHEN b.opus THEN 'claude-opus-4-1-20250805' ELSE 'claude-sonnet-4-5-20250929' END,
	   tokens((b.n * pg_temp.drift(b.t, 3000, 5000, 10000, 20000))::bigint,
			  (b.n * pg_temp.drift(b.t, 1000, 2000, 3000, 5000))::bigint,
			  (b.n * pg_temp.drift(b.t, 15000, 25000, 150000, 250000))::bigint,
			  (b.n * pg_temp.drift(b.t, 2000, 4000, 4000, 6000))::bigint),
	   b.n, 'key-ide-' || b.name, 'ide-assistant', b.name,
	   'sess-' || b.name || '-' || to_char(b.day, 'YYYYMMDD') || '-' || b.s, 'dev'
FROM (SELECT ss.*, j, ss.start + j * interval '6 minutes' AS at, random() < 0.3 + 0.15 * ss.t / 11 AS opus,
			 round((4 + random() * 6) * power(1.5, ss.t / 11))::bigint AS n
	  FROM demo_sessions ss
	  CROSS JOIN LATERAL generate_series(1, ss.batches) j) b;

-- merged pull requests: about one per engineer and working day, credited
-- to the day's first session; dev017 merged none last month
INSERT INTO demo_outcomes (occurred_at, initiative, metric, quantity, run_id, external_ref, attributes)
SELECT x.start + interval '2 hours', 'coding-assistants', 'pull_request_merged', x.q,
	   'sess-' || x.name || '-' || to_char(x.day, 'YYYYMMDD') || '-1',
	   'pr-' || x.name || '-' || to_char(x.day, 'YYYYMMDD'), jsonb_build_object('author', x.name)
FROM (SELECT ss.day, ss.name, ss.start, CASE WHEN random() < 0.15 THEN 2 ELSE 1 END AS q, random() AS r
	  FROM demo_sessions ss WHERE ss.s = 1) x
CROSS JOIN demo_clock c
WHERE x.r < 0.8
  AND NOT (x.name = 'dev017' AND x.day >= c.last_month AND x.day < c.this_month);

-- dev017's agents, last month: a swarm of opus sessions around the clock,
-- reported hourly (about 310 calls an hour at $0.64 each: $150,000)
INSERT INTO demo_usage (occurred_at, provider, model, tokens, requests, api_key, app, principal, run_id, environment)
SELECT x.h + random() * interval '50 minutes', 'anthropic', 'claude-opus-4-1-20250805',
	   tokens(x.n * 3000, x.n * 6000, x.n * 60000, x.n * 3000), x.n,
	   'key-ide-dev017', 'ide-assistant', 'dev017', 'agents-dev017-' || to_char(x.h, 'YYYYMMDD'), 'dev'
FROM (SELECT h, round(150000.0 / (extract(epoch FROM c.this_month - c.last_month) / 3600) / 0.64125
					  * (0.9 + random() * 0.2))::bigint AS n
	  FROM demo_clock c
	  CROSS JOIN LATERAL generate_series(c.last_month, c.this_month - interval '1 hour', interval '1 hour') h) x;

-- ---------------------------------------------------------------------------
-- support-triage: an agent works each ticket in 6-10 calls (one row per
-- ticket, as the helpdesk reports it); gpt-4o until month 4, then gpt-4.1,
-- and the knowledge base is cached more and more
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_tickets AS
SELECT 'T' || to_char(d.day, 'YYMMDD') || lpad(i::text, 4, '0') AS ticket, pg_temp.office_hours(d.day) AS at, d.t,
	   random() < least(greatest((d.t - 4) / 3, 0), 1) AS migrated,
	   random() < 0.66 + 0.09 * least(d.t, 11) / 11 AS resolved,
	   6 + floor(random() * 5)::bigint AS calls, 10000 + random() * 6000 AS prompt
FROM demo_days d
CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(150, 2.1, d.t, d.weekend, 0.55)) i;

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, requests, api_key, app, principal, run_id, prompt_hash)
SELECT k.at, 'sup-' || k.ticket, 'openai', CASE WHEN k.migrated THEN 'gpt-4.1-2025-04-14' ELSE 'gpt-4o-2024-08-06' END,
	   tokens((k.calls * k.prompt * (1 - x.cached))::bigint, (k.calls * (900 + random() * 600))::bigint,
			  (k.calls * k.prompt * x.cached)::bigint),
	   k.calls, 'key-support-prod', 'helpdesk', 'svc-helpdesk', 'ticket-' || k.ticket, md5(k.ticket)
FROM demo_tickets k
CROSS JOIN LATERAL (SELECT 0.5 + 0.35 * least(greatest((k.t - 3) / 6, 0), 1) AS cached) x;

INSERT INTO demo_outcomes (occurred_at, initiative, metric, run_id, external_ref)
SELECT k.at + (20 + random() * 220) * interval '1 minute', 'support-triage', 'ticket_resolved',
	   'ticket-' || k.ticket, 'zendesk-' || k.ticket
FROM demo_tickets k WHERE k.resolved;

-- ---------------------------------------------------------------------------
-- marketing-genai: long o3-pro and gpt-5 generations.  Four months of a
-- campaign studio with outcomes; from month 1 a scheduler generates assets
-- every quarter of an hour, and it kept running after the experiment was
-- abandoned (on the 12th of month 8 it replayed its backlog)
-- ---------------------------------------------------------------------------

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT x.at, 'mkt-' || to_char(x.day, 'YYYYMMDD') || '-' || x.i, 'openai', CASE WHEN x.i % 2 = 0 THEN 'o3-pro' ELSE 'gpt-5' END,
	   tokens(6000 + (random() * 10000)::bigint, x.o, 0, 0, (x.o * 0.6)::bigint),
	   'key-marketing-gen', 'campaign-studio', 'max.growth'
FROM (SELECT d.day, i, pg_temp.office_hours(d.day) AS at, (20000 + random() * 30000)::bigint AS o
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(160, 1.4, d.t, d.weekend, 0.1)) i
	  WHERE d.m < 4) x;

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT x.at, 'mkt-sched-' || to_char(x.day, 'YYYYMMDD') || '-' || x.i, 'openai', CASE WHEN x.i % 2 = 0 THEN 'o3-pro' ELSE 'gpt-5' END,
	   tokens(6000 + (random() * 10000)::bigint, x.o, 0, 0, (x.o * 0.6)::bigint),
	   'key-marketing-gen', 'campaign-scheduler', 'svc-campaign-scheduler'
FROM (SELECT d.day, i, pg_temp.any_hour(d.day) AS at, (40000 + random() * 40000)::bigint AS o
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(CASE WHEN d.m = 8 AND extract(day FROM d.day) = 12 THEN 600 ELSE 96 END,
														   1, d.t, d.weekend, 1)) i
	  WHERE d.m >= 1) x;

INSERT INTO demo_outcomes (occurred_at, initiative, metric, external_ref)
SELECT pg_temp.office_hours(d.day), 'marketing-genai', 'campaign_asset', 'asset-' || to_char(d.day, 'YYYYMMDD') || '-' || i
FROM demo_days d
CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(14, 1.4, d.t, d.weekend, 0)) i
WHERE d.m < 4;

-- ---------------------------------------------------------------------------
-- invoice-processing: claude-opus-4-1 extracts invoice fields, about five
-- calls an invoice.  The AP gateway reports its calls every ten minutes,
-- short extractions (a one-page invoice: prompts under 1,000 tokens,
-- answers under 300; 85% of the calls) apart from long documents
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_ap_batches AS
SELECT y.day, y.at, round(y.n * 0.85)::bigint AS short_calls, round(y.n * 0.15)::bigint AS long_calls
FROM (SELECT x.day, x.day + interval '8 hours' + b * interval '10 minutes' AS at, x.n * (0.7 + random() * 0.6) AS n
	  FROM (SELECT d.day, pg_temp.per_day(240, 1.9, d.t, d.weekend, 0.1) AS n FROM demo_days d) x
	  CROSS JOIN generate_series(0, 59) b) y;

INSERT INTO demo_usage (occurred_at, provider, model, tokens, requests, api_key, app, principal, run_id)
SELECT k.at + random() * interval '9 minutes', 'anthropic', 'claude-opus-4-1-20250805',
	   CASE WHEN c.short THEN tokens((c.n * (600 + random() * 350))::bigint, (c.n * (120 + random() * 160))::bigint)
			ELSE tokens((c.n * (4000 + random() * 5000))::bigint, (c.n * (400 + random() * 500))::bigint) END,
	   c.n, 'key-finance-ap', 'ap-automation', 'svc-ap', 'ap-' || to_char(k.at, 'YYYYMMDD-HH24MI')
FROM demo_ap_batches k
CROSS JOIN LATERAL (VALUES (true, k.short_calls), (false, k.long_calls)) AS c(short, n)
WHERE c.n > 0;

-- the AP system reports the invoices it processed once a day
INSERT INTO demo_outcomes (occurred_at, initiative, metric, quantity, external_ref)
SELECT k.day + interval '20 hours', 'invoice-processing', 'invoice_processed',
	   round(sum(k.short_calls + k.long_calls) / 5.0 * (0.95 + random() * 0.04)), 'ap-daily-' || to_char(k.day, 'YYYYMMDD')
FROM demo_ap_batches k
GROUP BY k.day;

-- ---------------------------------------------------------------------------
-- ops-incident-digest: gemini-2.5-pro summarises incidents from their logs,
-- some beyond 200k tokens (the long-context price)
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_incidents AS
SELECT 'INC-' || to_char(d.day, 'YYMMDD') || '-' || i AS incident, pg_temp.any_hour(d.day) AS at,
	   6 + floor(random() * 5)::integer AS calls, random() < 0.9 AS summarised
FROM demo_days d
CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(8, 1.3, d.t, d.weekend, 0.7)) i;

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, app, principal, run_id)
SELECT k.at + j * interval '3 minutes', 'ops-' || k.incident || '-' || j, 'google', 'gemini-2.5-pro',
	   tokens(CASE WHEN random() < 0.06 THEN 210000 + (random() * 200000)::bigint
				   ELSE 20000 + (random() * 80000)::bigint END,
			  (800 + random() * 2500)::bigint, 0, 0, (random() * 500)::bigint),
	   'incident-bot', 'svc-sre', k.incident
FROM demo_incidents k
CROSS JOIN LATERAL generate_series(1, k.calls) j;

INSERT INTO demo_outcomes (occurred_at, initiative, metric, run_id, external_ref)
SELECT k.at + interval '1 hour', 'ops-incident-digest', 'incident_summarised', k.incident, 'pd-' || k.incident
FROM demo_incidents k WHERE k.summarised;

-- ---------------------------------------------------------------------------
-- account-research: an agent writes account briefs for sales, 6-12 steps a run
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_runs AS
SELECT 'run-' || to_char(d.day, 'YYMMDD') || '-' || i AS run, pg_temp.office_hours(d.day) AS at,
	   6 + floor(random() * 7)::integer AS steps, random() < 0.85 AS briefed
FROM demo_days d
CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(15, 1.2, d.t, d.weekend, 0.1)) i;

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal, run_id, prompt_hash)
SELECT r.at + j * interval '40 seconds', r.run || '-' || j, 'anthropic', 'claude-sonnet-4-5-20250929',
	   tokens((15000 + random() * 30000)::bigint, (500 + random() * 1500)::bigint),
	   'key-research', 'research-agent', 'svc-research-agent', r.run, md5(r.run || '/' || j)
FROM demo_runs r
CROSS JOIN LATERAL generate_series(1, r.steps) j;

INSERT INTO demo_outcomes (occurred_at, initiative, metric, run_id, external_ref)
SELECT r.at + interval '15 minutes', 'account-research', 'account_brief', r.run, 'brief-' || r.run
FROM demo_runs r WHERE r.briefed;

-- the runaway loop: one run repeats the same prompt every six seconds from
-- 01:00 to 08:00 two days ago, on opus
INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal, run_id, prompt_hash)
SELECT c.loop_at + i * interval '6 seconds', 'run-7f3a9c-' || i, 'anthropic', 'claude-opus-4-1-20250805',
	   tokens(48000, 600), 'key-research', 'research-agent', 'svc-research-agent', 'run-7f3a9c', 'ph-5d41402a'
FROM demo_clock c, generate_series(0, 4199) i;

-- ---------------------------------------------------------------------------
-- contract-review: the European legal team on Mistral, priced in EUR
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE demo_contracts AS
SELECT 'CTR-' || to_char(d.day, 'YYMMDD') || '-' || i AS contract, pg_temp.office_hours(d.day) AS at,
	   3 + floor(random() * 3)::integer AS calls, random() < 0.9 AS reviewed
FROM demo_days d
CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(15, 1.3, d.t, d.weekend, 0)) i;

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal, run_id)
SELECT k.at + j * interval '2 minutes', 'clm-' || k.contract || '-' || j, 'mistral', 'mistral-large-2411',
	   tokens((30000 + random() * 30000)::bigint, (1000 + random() * 2000)::bigint),
	   'key-legal-eu', 'clm-eu', 'svc-clm', k.contract
FROM demo_contracts k
CROSS JOIN LATERAL generate_series(1, k.calls) j;

INSERT INTO demo_outcomes (occurred_at, initiative, metric, run_id, external_ref)
SELECT k.at + interval '30 minutes', 'contract-review', 'contract_reviewed', k.contract, 'clm-' || k.contract
FROM demo_contracts k WHERE k.reviewed;

-- ---------------------------------------------------------------------------
-- shadow keys: spend that no rule attributes
-- ---------------------------------------------------------------------------

-- a legacy enrichment job on the batch tier, reported in nightly chunks
INSERT INTO demo_usage (occurred_at, provider, model, service_tier, tokens, requests, api_key, app, principal)
SELECT x.at, 'openai', 'gpt-4.1', 'batch',
	   tokens(x.n * (2500 + (random() * 1000)::bigint), x.n * (300 + (random() * 200)::bigint)),
	   x.n, 'key-legacy-batch', 'nightly-enrichment', 'svc-legacy'
FROM (SELECT d.day + interval '2 hours' + i * interval '10 minutes' AS at, (800 + random() * 400)::bigint AS n
	  FROM demo_days d CROSS JOIN generate_series(1, 10) i) x;

-- a hackathon bot from month 6 that nobody turned off
INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT x.at, 'hack-' || to_char(x.day, 'YYYYMMDD') || '-' || x.i, 'openai', 'o3',
	   tokens((60000 + random() * 140000)::bigint, x.o, 0, 0, (x.o * 0.7)::bigint),
	   'key-hackathon-2026', 'hackathon-bot', 'team-hack'
FROM (SELECT d.day, i, pg_temp.any_hour(d.day) AS at, (3000 + random() * 7000)::bigint AS o
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(400, 1, d.t, d.weekend, 1)) i
	  WHERE d.m >= 6) x;

-- a contractor's tools on a company key, from month 9
INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT x.at, 'acme-' || to_char(x.day, 'YYYYMMDD') || '-' || x.i, 'anthropic', 'claude-sonnet-4-5',
	   tokens((20000 + random() * 40000)::bigint, (2000 + random() * 4000)::bigint, (random() * 100000)::bigint),
	   'key-contractor-acme', 'acme-dev-tools', 'contractor-acme'
FROM (SELECT d.day, i, pg_temp.office_hours(d.day) AS at
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(400, 1, d.t, d.weekend, 0.1)) i
	  WHERE d.m >= 9) x;

-- a CRM plugin the sales team installed
INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, api_key, app, principal)
SELECT x.at, 'crm-' || to_char(x.day, 'YYYYMMDD') || '-' || x.i, 'google', 'gemini-2.5-pro',
	   tokens((5000 + random() * 20000)::bigint, (500 + random() * 2000)::bigint),
	   'key-sales-notes', 'crm-plugin', 'sales-ops'
FROM (SELECT d.day, i, pg_temp.office_hours(d.day) AS at
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(40, 3, d.t, d.weekend, 0.1)) i) x;

-- ---------------------------------------------------------------------------
-- a model the catalog does not know (from month 9, in the IDE): recorded,
-- shown as unpriced, never dropped
-- ---------------------------------------------------------------------------

INSERT INTO demo_usage (occurred_at, request_id, provider, model, tokens, app, principal, environment)
SELECT x.at, 'codestral-' || to_char(x.day, 'YYYYMMDD') || '-' || x.i, 'mistral', 'codestral-2508',
	   tokens((500 + random() * 3000)::bigint, (100 + random() * 500)::bigint),
	   'ide-assistant', 'dev' || lpad((1 + (x.i * 7) % 60)::text, 3, '0'), 'dev'
FROM (SELECT d.day, i, pg_temp.office_hours(d.day) AS at
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(60, 1, d.t, d.weekend, 0.1)) i
	  WHERE d.m >= 9) x;

-- ---------------------------------------------------------------------------
-- record it all, in time order, up to now (the later part of today is
-- drawn too, and left out only here, so that every run of a day draws the
-- same numbers): priced, attributed, counted, rolled up
-- ---------------------------------------------------------------------------

-- a month's partition for every month of the year, and three ahead (what a
-- daily pg_cron job keeps doing)
SELECT create_partitions(since => (SELECT min(occurred_at) FROM demo_usage)) AS partitions \gset

INSERT INTO usage (occurred_at, request_id, provider, model, service_tier, tokens, requests,
				   api_key, app, principal, run_id, prompt_hash, environment)
SELECT occurred_at, request_id, provider, model, service_tier, tokens, requests,
	   api_key, app, principal, run_id, prompt_hash, environment
FROM demo_usage WHERE occurred_at <= now() ORDER BY occurred_at;

INSERT INTO outcomes (occurred_at, initiative, metric, quantity, run_id, external_ref, attributes)
SELECT occurred_at, initiative, metric, quantity, run_id, external_ref, attributes
FROM demo_outcomes WHERE occurred_at <= now() ORDER BY occurred_at;

-- a personal key on opus, recorded call by call with record_usage from the
-- Anthropic usage objects
SELECT count(record_usage('anthropic', 'claude-opus-4-1',
						  jsonb_build_object('input_tokens', (5000 + random() * 25000)::bigint,
											 'output_tokens', (1000 + random() * 3000)::bigint,
											 'cache_read_input_tokens', (random() * 40000)::bigint),
						  request_id => 'jdoe-' || to_char(x.at, 'YYYYMMDD') || '-' || x.i,
						  occurred_at => x.at, api_key => 'key-personal-jdoe', principal => 'jdoe')) AS jdoe_calls
FROM (SELECT pg_temp.office_hours(d.day) AS at, i
	  FROM demo_days d
	  CROSS JOIN LATERAL generate_series(1, pg_temp.per_day(30, 2.5, d.t, d.weekend, 0.1)) i
	  ORDER BY 1) x
WHERE x.at <= now() \gset

-- ---------------------------------------------------------------------------
-- budgets for the current period, set by finance (each is counted from the
-- ledger when it is created)
-- ---------------------------------------------------------------------------

INSERT INTO budgets (name, scope, scope_value, period, amount, mode) VALUES
	('company-monthly', 'global', NULL, 'month', '180000.00 USD', 'alert'),
	('engineering-monthly', 'team', 'engineering', 'month', '130000.00 USD', 'alert'),
	('support-monthly', 'team', 'support', 'month', '2500.00 USD', 'alert'),
	('marketing-genai-stop', 'initiative', 'marketing-genai', 'month', '5000.00 USD', 'block'),
	('hackathon-key-daily', 'api_key', 'key-hackathon-2026', 'day', '100.00 USD', 'alert');

ANALYZE usage;
ANALYZE outcomes;
