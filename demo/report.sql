-- demo/report.sql: what a year of AI spend bought, as a finance lead reads
-- it.  Every block reads tokenledger's views (SPEC 5.3): spend_daily,
-- initiative_economics, spend_vs_outcome_growth, unattributed_spend,
-- token_maxing, model_rightsizing, spend_anomalies and budget_status.
--
-- "The year" is the twelve full calendar months before the current one;
-- budgets, their forecast and the anomalies look at now.
\set QUIET on
SET client_min_messages = warning;
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
-- each query here runs once and reads little: compiling it (JIT) costs
-- more than it saves
SET jit = off;
\pset footer off
\pset null '-'

-- the setting tokenledger.currency exists once the module is loaded: the
-- first value of a tokenledger type loads it
SELECT 'in=0 out=0'::tokens IS NOT NULL AS loaded \gset

SELECT (date_trunc('month', now()) - interval '12 months')::date AS y0,
	   (date_trunc('month', now()) - interval '1 month')::date AS last,
	   date_trunc('month', now())::date AS cur,
	   to_char(now() - interval '12 months', 'Mon YYYY') AS y0_label,
	   to_char(now() - interval '1 month', 'Mon YYYY') AS last_label,
	   to_char(now() - interval '2 months', 'Mon YYYY') AS before_label,
	   format('AI spend and what it bought: %s - %s  (as of %s)', to_char(now() - interval '12 months', 'Mon YYYY'),
			  to_char(now() - interval '1 month', 'Mon YYYY'), to_char(now(), 'DD Mon YYYY HH24:MI TZ')) AS title,
	   report_currency() AS rc
\gset

-- formats: money in whole units (or with cents), counts, tokens, ratios, shares
CREATE FUNCTION pg_temp.money(a numeric, currency text, cents boolean DEFAULT false) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN a < 0 THEN '-' ELSE '' END || CASE WHEN currency = 'USD' THEN '$' ELSE '' END
		|| to_char(abs(a), CASE WHEN cents THEN 'FM999,999,999,990.00' ELSE 'FM999,999,999,990' END)
		|| CASE WHEN currency = 'USD' THEN '' ELSE ' ' || currency END;
CREATE FUNCTION pg_temp.n(a numeric) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN to_char(a, 'FM999,999,999,990');
CREATE FUNCTION pg_temp.tok(a numeric) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN a >= 1e9 THEN to_char(a / 1e9, 'FM999,990.0') || 'B'
				ELSE to_char(a / 1e6, 'FM999,990.0') || 'M' END;
CREATE FUNCTION pg_temp.x(a numeric) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN to_char(a, 'FM999,990.0') || 'x';
CREATE FUNCTION pg_temp.pct(a numeric) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN to_char(100 * a, 'FM990.0') || '%';

\echo
\echo '=============================================================================='
\echo ' ' :title
\echo '=============================================================================='
\echo
\echo 'The year in figures, and its first month against its last (spend_daily, initiative_economics)'
WITH s AS (
	SELECT date_trunc('month', day)::date AS month, sum(requests) AS calls, sum(unpriced_requests) AS unpriced,
		   sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens) AS tokens,
		   sum(spend) AS spend, coalesce(sum(spend) FILTER (WHERE initiative IS NULL), 0) AS shadow
	FROM spend_daily
	WHERE day >= :'y0' AND day < :'cur' AND currency = :'rc'
	GROUP BY 1
), o AS (
	SELECT month, sum(outcomes) AS outcomes, sum(outcome_value) AS outcome_value
	FROM initiative_economics
	WHERE month >= :'y0' AND month < :'cur' AND currency = :'rc'
	GROUP BY 1
), m AS (
	SELECT * FROM s JOIN o USING (month)
), y AS (
	SELECT sum(calls) AS calls, sum(unpriced) AS unpriced, sum(tokens) AS tokens, sum(spend) AS spend,
		   sum(shadow) AS shadow, sum(outcomes) AS outcomes, sum(outcome_value) AS outcome_value
	FROM m
), f AS (SELECT * FROM m WHERE month = :'y0'), l AS (SELECT * FROM m WHERE month = :'last')
SELECT v.figure, v.year AS "the year", v.first AS :"y0_label", v.last AS :"last_label", v.growth
FROM y, f, l, LATERAL (VALUES
	(1, 'spend', pg_temp.money(y.spend, :'rc'), pg_temp.money(f.spend, :'rc'), pg_temp.money(l.spend, :'rc'),
		pg_temp.x(l.spend / f.spend)),
	(2, 'calls', pg_temp.n(y.calls), pg_temp.n(f.calls), pg_temp.n(l.calls), pg_temp.x(l.calls / f.calls)),
	(3, 'tokens', pg_temp.tok(y.tokens), pg_temp.tok(f.tokens), pg_temp.tok(l.tokens), pg_temp.x(l.tokens / f.tokens)),
	(4, 'outcomes (tickets, PRs, invoices, ...)', pg_temp.n(y.outcomes), pg_temp.n(f.outcomes), pg_temp.n(l.outcomes),
		pg_temp.x(l.outcomes / f.outcomes)),
	(5, 'value of the outcomes', pg_temp.money(y.outcome_value, :'rc'), pg_temp.money(f.outcome_value, :'rc'),
		pg_temp.money(l.outcome_value, :'rc'), pg_temp.x(l.outcome_value / f.outcome_value)),
	(6, 'cost per outcome', pg_temp.money(y.spend / y.outcomes, :'rc', true), pg_temp.money(f.spend / f.outcomes, :'rc', true),
		pg_temp.money(l.spend / l.outcomes, :'rc', true), pg_temp.x((l.spend / l.outcomes) / (f.spend / f.outcomes))),
	(7, 'shadow spend (no initiative)', pg_temp.money(y.shadow, :'rc') || ' (' || pg_temp.pct(y.shadow / y.spend) || ')',
		pg_temp.money(f.shadow, :'rc') || ' (' || pg_temp.pct(f.shadow / f.spend) || ')',
		pg_temp.money(l.shadow, :'rc') || ' (' || pg_temp.pct(l.shadow / l.spend) || ')',
		pg_temp.x(l.shadow / nullif(f.shadow, 0))),
	(8, 'calls the catalog could not price', pg_temp.n(y.unpriced), pg_temp.n(f.unpriced), pg_temp.n(l.unpriced), NULL)
) AS v(k, figure, year, first, last, growth)
ORDER BY v.k;

\echo
\echo 'Month by month (spend_daily, initiative_economics; the current month to date)'
WITH s AS (
	SELECT date_trunc('month', day)::date AS month, sum(requests) AS calls,
		   sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens) AS tokens,
		   sum(spend) AS spend
	FROM spend_daily
	WHERE day >= :'y0' AND currency = :'rc'
	GROUP BY 1
), o AS (
	SELECT month, sum(outcomes) AS outcomes FROM initiative_economics
	WHERE month >= :'y0' AND currency = :'rc' GROUP BY 1
)
SELECT to_char(s.month, 'Mon YYYY') || CASE WHEN s.month = :'cur' THEN ' (to date)' ELSE '' END AS month,
	   pg_temp.n(s.calls) AS calls, pg_temp.tok(s.tokens) AS tokens, pg_temp.money(s.spend, :'rc') AS spend,
	   pg_temp.n(o.outcomes) AS outcomes, pg_temp.money(s.spend / o.outcomes, :'rc', true) AS cost_per_outcome,
	   pg_temp.x(s.tokens / first_value(s.tokens) OVER w) AS tokens_vs_first,
	   pg_temp.x(o.outcomes / first_value(o.outcomes) OVER w) AS outcomes_vs_first
FROM s JOIN o USING (month)
WINDOW w AS (ORDER BY s.month)
ORDER BY s.month;

\echo
\echo 'Cost per outcome by initiative: the year, and' :last_label '(initiative_economics)'
SELECT coalesce(e.initiative, '(no initiative)') AS initiative, max(e.team) AS team, max(e.status) AS status,
	   pg_temp.money(sum(e.spend), e.currency) AS spend,
	   pg_temp.pct(sum(e.spend) / sum(sum(e.spend)) OVER (PARTITION BY e.currency)) AS share,
	   pg_temp.n(sum(e.outcomes)) AS outcomes,
	   pg_temp.money(sum(e.spend) / nullif(sum(e.outcomes), 0), e.currency, true) AS per_outcome,
	   pg_temp.money(max(e.cost_per_outcome) FILTER (WHERE e.month = :'last'), e.currency, true) AS :"last_label",
	   to_char((sum(e.outcome_value) - sum(e.spend)) / nullif(sum(e.spend), 0), 'FM999,990.00') AS roi
FROM initiative_economics e
WHERE e.month >= :'y0' AND e.month < :'cur'
GROUP BY e.initiative, e.currency
ORDER BY sum(e.spend) DESC;
\echo '(contract-review is billed in EUR: each call is converted at the rate fx_rates gives for its time)'

\echo
\echo 'Spend against outcomes, initiative by initiative:' :y0_label 'to' :last_label '(spend_vs_outcome_growth)'
SELECT l.initiative,
	   pg_temp.money(f.spend, l.currency) AS :"y0_label", pg_temp.money(l.spend, l.currency) AS :"last_label",
	   pg_temp.x(l.spend / nullif(f.spend, 0)) AS spend,
	   pg_temp.x(l.outcomes / nullif(f.outcomes, 0)) AS outcomes,
	   coalesce(pg_temp.money(f.cost_per_outcome, l.currency, true), '-') || ' -> '
		   || coalesce(pg_temp.money(l.cost_per_outcome, l.currency, true), '-') AS cost_per_outcome,
	   pg_temp.x(l.spend_growth) AS spend_mom, pg_temp.x(l.outcome_growth) AS outcomes_mom
FROM spend_vs_outcome_growth l
LEFT JOIN spend_vs_outcome_growth f ON f.initiative = l.initiative AND f.currency = l.currency AND f.month = :'y0'
WHERE l.month = :'last'
ORDER BY l.spend DESC;
\echo '(spend_mom, outcomes_mom:' :last_label 'against' :before_label 'as the view gives them)'

\echo
\echo 'Shadow AI: spend no initiative owns, by key (unattributed_spend)'
WITH total AS (
	SELECT currency, sum(spend) AS spend FROM spend_daily
	WHERE day >= :'y0' AND day < :'cur' GROUP BY currency
)
SELECT coalesce(u.api_key, '(none)') AS api_key, coalesce(u.app, '-') AS app, coalesce(u.principal, '-') AS principal,
	   to_char(min(u.month), 'Mon YYYY') AS since, pg_temp.n(sum(u.requests)) AS calls,
	   pg_temp.money(sum(u.spend), u.currency) AS spend, pg_temp.pct(sum(u.spend) / max(t.spend)) AS share_of_year,
	   pg_temp.money(sum(u.spend) FILTER (WHERE u.month = :'last'), u.currency) AS :"last_label"
FROM unattributed_spend u
JOIN total t ON t.currency = u.currency
WHERE u.month >= :'y0' AND u.month < :'cur'
GROUP BY u.api_key, u.app, u.principal, u.currency
ORDER BY sum(u.spend) DESC;

\echo
\echo 'Token maxing: spend up 1.5x or more on the month before, outcomes not up (token_maxing)'
CREATE TEMP TABLE flagged AS
SELECT * FROM token_maxing WHERE flagged AND month >= :'y0';
SELECT to_char(month, 'Mon YYYY') AS month, principal, team, pg_temp.money(spend, currency) AS spend,
	   pg_temp.x(spend_growth) AS spend_growth, pg_temp.n(outcomes) AS outcomes,
	   pg_temp.money(spend_without_outcome, currency) AS spend_without_outcome,
	   token_rank, outcome_rank
FROM flagged
ORDER BY flagged.spend DESC
LIMIT 6;
SELECT format('(%s principal-months flagged since %s, %s principals; %s of their spend served no outcome)',
			  count(*), :'y0_label', count(DISTINCT principal),
			  pg_temp.money(sum(spend_without_outcome), :'rc')) AS note
FROM flagged WHERE currency = :'rc' \gset
\echo :note

\echo
\echo 'Right-sizing: the same tokens on the cheaper model that model_tiers names, in' :last_label '(model_rightsizing)'
SELECT coalesce(r.initiative, '(no initiative)') AS initiative, r.model || ' -> ' || r.cheaper_model AS "model -> cheaper",
	   pg_temp.n(r.requests) AS calls, pg_temp.money(r.spend, r.currency) AS spend,
	   pg_temp.money(r.saving, r.currency) || ' (' || pg_temp.pct(r.saving / r.spend) || ')' AS saving_all,
	   pg_temp.pct(r.short_requests::numeric / nullif(r.requests, 0)) AS short_calls,
	   pg_temp.money(r.saving_on_short, r.currency) || ' (' || pg_temp.pct(r.saving_on_short / r.spend) || ')'
		   AS saving_on_short
FROM model_rightsizing r
WHERE r.month = :'last' AND r.spend > 0
ORDER BY r.saving_on_short DESC, r.saving DESC
LIMIT 6;
\echo '(short calls: prompts under 1,000 tokens and answers under 300: a small model does them as well)'

\echo
\echo 'Anomalies: runaway loops and days of unusual spend (spend_anomalies)'
CREATE TEMP TABLE anomalies AS SELECT * FROM spend_anomalies;
SELECT scope_value AS run, prompt_hash, to_char(min(period_start), 'DD Mon YYYY HH24:MI') || ' - '
		   || to_char(max(period_end), 'HH24:MI') AS hours,
	   pg_temp.n(sum(requests)) AS calls, pg_temp.n(max(requests)) AS peak_per_hour,
	   pg_temp.money(sum(spend), currency) AS spend
FROM anomalies WHERE kind = 'loop'
GROUP BY scope_value, prompt_hash, currency
ORDER BY sum(spend) DESC;
-- spikes: the days of one scope that follow each other within a few days
-- are one episode
SELECT scope, coalesce(scope_value, CASE scope WHEN 'initiative' THEN '(no initiative)' ELSE '(no key)' END) AS scope_value,
	   to_char(min(period_start), 'DD Mon YYYY') || CASE WHEN count(*) > 1 THEN ', ' || count(*) || ' days to '
		   || to_char(max(period_start), 'DD Mon') ELSE '' END AS days,
	   pg_temp.money(sum(spend), currency) AS spend, pg_temp.money(sum(baseline), currency) AS usual,
	   to_char(max(score), 'FM999,990.0') AS peak_score
FROM (SELECT e.*, count(*) FILTER (WHERE e.gap) OVER (PARTITION BY scope, scope_value, currency ORDER BY period_start) AS episode
	  FROM (SELECT a.*, coalesce(period_start - lag(period_start) OVER (PARTITION BY scope, scope_value, currency
																	   ORDER BY period_start) > interval '3 days', true) AS gap
			FROM anomalies a WHERE kind = 'spike') e) s
GROUP BY scope, scope_value, currency, episode
ORDER BY sum(spend) DESC
LIMIT 8;

\echo
\echo 'Budgets, this period, and where the rate of the last 7 days takes them (budget_status)'
SELECT name, scope || coalesce(': ' || scope_value, '') AS scope, period, mode,
	   pg_temp.money(spent, currency) AS spent, pg_temp.money(amount, currency) AS amount,
	   pg_temp.pct(used_share) AS used, status,
	   pg_temp.money(projected_spend, currency) AS projected,
	   CASE WHEN spent >= amount THEN 'reached'
			ELSE to_char(projected_exhaustion, 'DD Mon HH24:MI') END AS exhausted
FROM budget_status
WHERE active
ORDER BY budget_id;
\echo '(a block budget refuses new reservations, budget_reserve() raising TL001; spend already made is still recorded)'
\echo
