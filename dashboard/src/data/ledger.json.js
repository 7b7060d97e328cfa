// Reads tokenledger's reporting views for the dashboard, as any BI tool would:
// an ordinary PostgreSQL connection (node-postgres, configured by the libpq
// variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) as a member of
// tokenledger_reader, and SELECTs from the views only.  All the reads run in
// one REPEATABLE READ transaction, so every panel shows the same snapshot.
// Money stays an exact numeric string here; the page formats it.
import pg from "pg";

// date columns as their text (YYYY-MM-DD), not as a Date at local midnight
pg.types.setTypeParser(pg.types.builtins.DATE, (s) => s);

const client = new pg.Client();
await client.connect();
const rows = async (sql, params = []) => (await client.query(sql, params)).rows;

try {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  await client.query("SET TIME ZONE 'UTC'");
  // each query runs once and reads little: compiling it costs more than it saves
  await client.query("SET jit = off");

  // the year: the twelve full calendar months before the current one
  const [when] = await rows(`
    SELECT (date_trunc('month', now()) - interval '12 months')::date AS y0,
           (date_trunc('month', now()) - interval '1 month')::date AS last,
           date_trunc('month', now())::date AS cur,
           now() AS as_of`);
  const {y0, last, cur} = when;

  // the reporting currency: the one the views report most spend in (rows
  // that no exchange rate converts keep their own currency)
  const [{currency}] = await rows(`
    SELECT currency FROM tokenledger.spend_daily
    WHERE spend IS NOT NULL GROUP BY currency ORDER BY sum(spend) DESC LIMIT 1`);

  // the year's figures, and its first and last month (spend_daily, initiative_economics)
  const months = await rows(`
    WITH s AS (
      SELECT date_trunc('month', day)::date AS month, sum(requests) AS calls,
             sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens) AS tokens,
             sum(spend) AS spend, coalesce(sum(spend) FILTER (WHERE initiative IS NULL), 0) AS shadow
      FROM tokenledger.spend_daily
      WHERE day >= $1 AND currency = $2
      GROUP BY 1
    ), o AS (
      SELECT month, sum(outcomes) AS outcomes, sum(outcome_value) AS outcome_value
      FROM tokenledger.initiative_economics
      WHERE month >= $1 AND currency = $2
      GROUP BY 1
    )
    SELECT s.month, s.calls, s.tokens, s.spend, s.shadow,
           coalesce(o.outcomes, 0) AS outcomes, coalesce(o.outcome_value, 0) AS outcome_value
    FROM s LEFT JOIN o USING (month)
    ORDER BY s.month`, [y0, currency]);

  // spend and outcomes by initiative and month (initiative_economics)
  const initiativeMonths = await rows(`
    SELECT month, initiative, team, status, requests, spend, outcomes, outcome_value,
           cost_per_outcome, roi, spend_share
    FROM tokenledger.initiative_economics
    WHERE month >= $1 AND currency = $2
    ORDER BY month, initiative NULLS LAST`, [y0, currency]);

  // each initiative's month-over-month growth (spend_vs_outcome_growth)
  const growth = await rows(`
    SELECT month, initiative, spend, outcomes, spend_growth, outcome_growth,
           cost_per_outcome, cost_per_outcome_growth
    FROM tokenledger.spend_vs_outcome_growth
    WHERE month >= $1 AND month < $2 AND currency = $3
    ORDER BY month, initiative NULLS LAST`, [y0, cur, currency]);

  // shadow spend: calls no initiative owns, by key (unattributed_spend)
  const shadow = await rows(`
    SELECT month, api_key, app, principal, requests, total_tokens, spend, spend_share
    FROM tokenledger.unattributed_spend
    WHERE month >= $1 AND month < $2 AND currency = $3
    ORDER BY month, spend DESC`, [y0, cur, currency]);

  // token maxing: spend up 1.5x or more while outcomes did not grow (token_maxing)
  const tokenMaxing = await rows(`
    SELECT month, principal, team, requests, total_tokens, spend, outcomes, spend_without_outcome,
           token_rank, outcome_rank, spend_growth, outcome_growth
    FROM tokenledger.token_maxing
    WHERE flagged AND month >= $1 AND currency = $2
    ORDER BY spend DESC`, [y0, currency]);

  // right-sizing last month: the same tokens on the cheaper model (model_rightsizing)
  const rightsizing = await rows(`
    SELECT month, initiative, provider, model, cheaper_provider, cheaper_model, requests, spend,
           spend_on_cheaper, saving, short_requests, saving_on_short
    FROM tokenledger.model_rightsizing
    WHERE month = $1 AND currency = $2 AND spend > 0
    ORDER BY saving DESC`, [last, currency]);

  // runaway loops and days of unusual spend (spend_anomalies)
  const anomalies = await rows(`
    SELECT kind, scope, scope_value, period_start, period_end, requests, spend, baseline, mad,
           score, prompt_hash, currency
    FROM tokenledger.spend_anomalies
    ORDER BY period_start`);

  // budgets, this period, and their forecast (budget_status)
  const budgets = await rows(`
    SELECT budget_id, name, scope, scope_value, period, mode, period_start, period_end,
           spent, reserved, amount, remaining, used_share, status, projected_spend,
           projected_exhaustion, currency
    FROM tokenledger.budget_status
    WHERE active
    ORDER BY budget_id`);

  await client.query("COMMIT");
  process.stdout.write(JSON.stringify({
    ...when, currency, months, initiativeMonths, growth, shadow, tokenMaxing, rightsizing, anomalies, budgets
  }));
} finally {
  await client.end();
}
