-- demo/report.sql: what the month's AI spend bought, for a finance or ops lead
SET search_path = public, tokenledger;
SET TIME ZONE 'UTC';
\pset footer off
-- money is summed in tokenledger.currency, converted at each row's time
CREATE FUNCTION pg_temp.money(c cost, at timestamptz) RETURNS cost LANGUAGE sql STABLE
	RETURN convert(c, current_setting('tokenledger.currency'), at);
\pset null '-'

\echo
\echo '================================================================'
\echo ' AI spend report: October 2026'
\echo '================================================================'
SELECT to_char(count(*), 'FM999,999,999') AS calls,
	   to_char(sum(total(tokens)) / 1e6, 'FM999,999.0') || 'M' AS tokens,
	   '$' || to_char(amount(sum(pg_temp.money(cost, occurred_at))), 'FM999,999,990.00') AS spend,
	   to_char(100.0 * count(*) FILTER (WHERE initiative IS NULL) / count(*), 'FM990.0') || '%' AS calls_without_owner
FROM usage WHERE entry = 'call';

\echo
\echo 'Spend by initiative, and what it bought'
WITH spend AS (
	SELECT coalesce(initiative, '(unattributed)') AS initiative, count(*) AS calls, sum(pg_temp.money(cost, occurred_at)) AS spend
	FROM usage WHERE cost IS NOT NULL GROUP BY 1
), outs AS (
	SELECT initiative, sum(quantity) AS outcomes, sum(pg_temp.money(value, occurred_at)) AS value FROM outcomes GROUP BY 1
), total AS (SELECT sum(spend) AS t FROM spend)
SELECT s.initiative, i.team, i.status,
	   to_char(s.calls, 'FM999,999') AS calls,
	   '$' || to_char(amount(s.spend), 'FM999,999,990.00') AS spend,
	   to_char(100 * (s.spend / t.t), 'FM990.0') || '%' AS share,
	   coalesce(to_char(o.outcomes, 'FM999,999'), '-') AS outcomes,
	   coalesce('$' || to_char(amount(s.spend) / nullif(o.outcomes, 0), 'FM999,990.00'), '-') AS cost_per_outcome,
	   coalesce(to_char((amount(o.value) - amount(s.spend)) / amount(s.spend), 'FM9,990.00'), '-') AS roi
FROM spend s CROSS JOIN total t
LEFT JOIN initiatives i ON i.name = s.initiative
LEFT JOIN outs o ON o.initiative = s.initiative
ORDER BY s.spend DESC;

\echo
\echo 'Shadow AI: spend no initiative owns, by key'
SELECT coalesce(api_key, '-') AS api_key, coalesce(app, '-') AS app, principal,
	   to_char(count(*), 'FM999,999') AS calls,
	   '$' || to_char(amount(sum(pg_temp.money(cost, occurred_at))), 'FM999,990.00') AS spend,
	   to_char(100 * (sum(pg_temp.money(cost, occurred_at)) / (SELECT sum(pg_temp.money(cost, occurred_at)) FROM usage WHERE cost IS NOT NULL)), 'FM990.0') || '%' AS share_of_all
FROM usage WHERE initiative IS NULL AND cost IS NOT NULL
GROUP BY api_key, app, principal ORDER BY sum(pg_temp.money(cost, occurred_at)) DESC;

\echo
\echo 'Calls the catalog could not price (recorded, not dropped)'
SELECT provider, model, reason, to_char(count(*), 'FM999,999') AS calls,
	   to_char(sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens), 'FM999,999,999') AS tokens
FROM unpriced_usage GROUP BY 1, 2, 3 ORDER BY count(*) DESC;

\echo
\echo 'Top models by spend'
SELECT provider, coalesce(resolve_model(provider, model), model) AS model,
	   to_char(count(*), 'FM999,999') AS calls,
	   '$' || to_char(amount(sum(pg_temp.money(cost, occurred_at))), 'FM999,990.00') AS spend,
	   '$' || to_char(amount(sum(pg_temp.money(cost, occurred_at))) / count(*), 'FM990.0000') AS per_call
FROM usage WHERE cost IS NOT NULL
GROUP BY 1, 2 ORDER BY sum(pg_temp.money(cost, occurred_at)) DESC LIMIT 8;

\echo
\echo 'Runaway loops: one run repeating the same prompt, over 500 times in an hour'
WITH hourly AS (
	SELECT run_id, prompt_hash, principal, date_trunc('hour', occurred_at) AS hour,
		   count(*) AS calls, sum(pg_temp.money(cost, occurred_at)) AS spend
	FROM usage WHERE prompt_hash IS NOT NULL AND run_id IS NOT NULL
	GROUP BY 1, 2, 3, 4
)
SELECT run_id, prompt_hash, principal,
	   to_char(min(hour), 'DD Mon HH24:MI') || ' - ' || to_char(max(hour) + interval '1 hour', 'HH24:MI') AS hours,
	   to_char(sum(calls), 'FM999,999') AS calls,
	   to_char(max(calls), 'FM999,999') AS peak_per_hour,
	   '$' || to_char(amount(sum(spend)), 'FM999,990.00') AS spend
FROM hourly WHERE calls > 500
GROUP BY 1, 2, 3 ORDER BY sum(spend) DESC LIMIT 5;

\echo
\echo 'Premium models on simple tasks: short prompts and answers on top-tier models'
SELECT app, coalesce(resolve_model(provider, model), model) AS model,
	   to_char(count(*), 'FM999,999') AS calls,
	   '$' || to_char(amount(sum(pg_temp.money(cost, occurred_at))), 'FM999,990.00') AS spend,
	   '$' || to_char(amount(sum(pg_temp.money(cost_of(tokens, 'anthropic', 'claude-haiku-4-5', 'standard', occurred_at), occurred_at))), 'FM999,990.00') AS on_haiku_4_5
FROM usage
WHERE resolve_model(provider, model) IN ('claude-opus-4-1', 'claude-opus-4', 'gpt-5', 'o3')
  AND input(tokens) + cache_read(tokens) < 2000 AND output(tokens) < 100
GROUP BY 1, 2 ORDER BY sum(pg_temp.money(cost, occurred_at)) DESC;
