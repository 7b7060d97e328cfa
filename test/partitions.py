#!/usr/bin/python3
"""The ledger partitioned by month: partitions, moves, idempotency, pruning,
append-only partitions and the archive.

A database of its own records a ledger over five months (prices, an
unpriced model, initiatives with outcome values, attribution rules, budgets
per team and month and in total, a spike, a loop, outcomes with
external_refs) while only the default partitions exist, then:

- create_partitions(since => ...) makes one partition a month of usage and
  outcomes from since to three months ahead (named usage_YYYY_MM, bounded
  in UTC whatever the session's time zone), moves the default partitions'
  rows into them with every column unchanged, and counts nothing twice
  (rollups, budget counters and alerts, the key tables are as before and
  equal the ledger's own sums); a second call makes none;
- rows of 1990 and 2150 are recorded (in the default partition, priced) and
  get their month; calls and outcomes dated 'infinity' or '-infinity' are
  refused (22008) and leave nothing (last);
- rows recorded in the transaction that calls create_partitions() stay in
  the default partition until a later call, and are counted once; a
  recording in flight of a row of a month create_partitions() makes does
  not make it fail;
- a request_id or external_ref is recorded once whichever month names it:
  a plain INSERT fails (23505, usage_request_id_key), a replay returns the
  first id or fails when its content differs, a concurrent recording of the
  same key in another month waits for the first and fails or succeeds with
  its commit or rollback, and a REPEATABLE READ replay finds a key committed
  after its snapshot;
- a one-month query scans one partition (EXPLAIN), and spend_daily does
  not read the ledger at all (it reads the rollups);
- partitions refuse DELETE, UPDATE and TRUNCATE, for the superuser too; no
  role of the extension may execute moving_rows(); a table cannot inherit
  from the ledger; tokenledger_writer records through the ledger, not
  straight into a partition;
- a row inserted straight into a partition is priced, attributed, counted
  in the budgets and rollups, and holds the ledger's lock (a budget change
  waits for it);
- reprice() fills costs in the month partitions, counted once;
- archive_before() refuses an open month and months whose rows the default
  partition still holds; archiving moves the closed months into
  tokenledger_archive with every report view (full result sets), the
  rollups and the budget counters unchanged; archived
  months stay append-only, their request_ids are still replayed and their
  spend still counted by a budget recount; archive_before(drop => true)
  drops months with the rollups and the reports read from them unchanged
  (the views that read raw rows are printed), and a dropped call's
  request_id stays recorded;
- tokenledger_admin runs create_partitions() and archive_before(),
  tokenledger_writer and tokenledger_reader may not, and a reader sees only
  its team's archived rows.

Prints TAP.
"""
import sys
import threading
import time
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.types.string import TextLoader
from tap import check, comment, results, Failed, step


DB = "tokenledger_partitions_test"
ROLES = {"tlp_admin": "tokenledger_admin", "tlp_writer": "tokenledger_writer",
         "tlp_reader": "tokenledger_reader"}

REPORT_VIEWS = ["spend_daily", "initiative_economics", "spend_vs_outcome_growth", "run_economics",
                "unattributed_spend", "token_maxing", "focus_export", "model_rightsizing",
                "spend_anomalies", "budget_status", "unpriced_usage"]
# budget_status without its forecast (which moves with now())
BUDGET_STATUS = """SELECT budget_id, name, period_start, period_end, spent, reserved, amount, remaining,
                          currency, used_share, status, unconverted FROM tokenledger.budget_status"""
# the views that read the rollups, not the raw rows
FROM_ROLLUPS = ["spend_daily", "initiative_economics", "spend_vs_outcome_growth"]


def dsn(**kw):
    return psycopg.conninfo.make_conninfo("", dbname=DB, **kw)


def connect(autocommit=True, zone="UTC"):
    conn = psycopg.connect(dsn(), autocommit=autocommit)
    conn.execute(f"SET TimeZone = '{zone}'")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    # times as the server prints them ('infinity' included)
    conn.adapters.register_loader("timestamptz", TextLoader)
    if not autocommit:
        conn.commit()
    return conn


def q(conn, sql, params=None):
    return conn.execute(sql, params).fetchall()


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def error(conn, sql, params=None):
    """The error a statement raises (None when it succeeds); autocommit."""
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        return e
    return None


def sqlstate(conn, sql, params=None):
    e = error(conn, sql, params)
    return e.sqlstate if e is not None else None


def as_role(conn, role, sql, params=None):
    """SQLSTATE of sql run as role (None: it succeeded)."""
    conn.execute(f"SET ROLE {role}")
    try:
        return sqlstate(conn, sql, params)
    finally:
        conn.execute("RESET ROLE")


def diff(a, b, name_a="before", name_b="after"):
    only_a = [r for r in a if r not in b]
    only_b = [r for r in b if r not in a]
    out = [f"{len(a)} rows {name_a}, {len(b)} {name_b}"]
    out += [f"only {name_a}: {r}" for r in only_a[:5]]
    out += [f"only {name_b}: {r}" for r in only_b[:5]]
    return out


def month_name(m):
    return f"{m.year:04d}_{m.month:02d}"


def add_months(m, n):
    k = m.year * 12 + m.month - 1 + n
    return datetime(k // 12, k % 12 + 1, 1)


# ---------------------------------------------------------------------------
# what the database holds
# ---------------------------------------------------------------------------

def ledger_rows(conn, table):
    """Every row of usage or outcomes, every column, in id order."""
    return [r[0] for r in q(conn, f"SELECT t::text FROM tokenledger.{table} t ORDER BY t.id")]


def placement(conn, table):
    """(id, partition, the month partition the row belongs in)."""
    return q(conn, f"""
        SELECT t.id, t.tableoid::regclass::text,
               'tokenledger.{table}_' || to_char(t.occurred_at AT TIME ZONE 'UTC', 'YYYY_MM')
        FROM tokenledger.{table} t ORDER BY t.id""")


def partitions(conn, parent):
    return sorted(r[0] for r in q(conn, """
        SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = %s::regclass""", (parent,)))


USAGE_ROLLUP = """
    SELECT stretch, provider, model, service_tier, currency, team, initiative, environment,
           sum(entries), sum(requests), sum(unpriced_requests), sum(input_tokens), sum(output_tokens),
           sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(spend)
    FROM tokenledger.usage_rollup GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    -- (a group that reprice() emptied keeps a row of zeros)
    HAVING sum(entries) <> 0 OR sum(requests) <> 0 OR sum(spend) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"""
# the same figures from the raw rows (live and archived)
USAGE_FROM_LEDGER = """
    SELECT date_trunc('hour', occurred_at), provider, model, service_tier, tokenledger.currency(cost), team,
           initiative, environment, count(*)::numeric, sum(requests), coalesce(sum(requests) FILTER (WHERE cost IS NULL), 0),
           sum(tokenledger.input(tokens)), sum(tokenledger.output(tokens)), sum(tokenledger.cache_read(tokens)),
           sum(tokenledger.cache_write(tokens) + tokenledger.cache_write_1h(tokens)),
           sum(tokenledger.reasoning(tokens)), coalesce(sum(tokenledger.amount(cost)), 0)
    FROM tokenledger_archive.all_usage GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"""
OUTCOME_ROLLUP = """
    SELECT stretch, initiative, currency, sum(entries), sum(outcomes), sum(outcome_value)
    FROM tokenledger.outcome_rollup GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
OUTCOME_FROM_LEDGER = """
    SELECT date_trunc('hour', occurred_at), initiative, tokenledger.currency(value), count(*)::numeric,
           sum(quantity), coalesce(sum(tokenledger.amount(value)), 0)
    FROM tokenledger_archive.all_outcomes GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
BUDGET_SPEND = """
    SELECT b.name, s.period_start, s.currency, tokenledger.sum(s.spent)::text
    FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
# what the team budgets count, from the raw rows: per team and month, and in total
BUDGET_FROM_LEDGER = """
    SELECT b.name, CASE b.period WHEN 'month' THEN date_trunc('month', u.occurred_at)
                                 ELSE '-infinity' END AS period_start,
           tokenledger.currency(u.cost), tokenledger.sum(u.cost)::text
    FROM tokenledger.budgets b JOIN tokenledger_archive.all_usage u ON u.team = b.scope_value
    WHERE b.scope = 'team' AND u.cost IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
ALERTS = "SELECT b.name, a.period_start, a.threshold FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b ON b.id = a.budget_id ORDER BY 1, 2, 3"
KEYS = {"usage": ("usage_request_ids", "request_id"), "outcomes": ("outcome_external_refs", "external_ref")}


def keys_table(conn, table):
    kt, col = KEYS[table]
    return q(conn, f"SELECT {col}, id, occurred_at FROM tokenledger.{kt} ORDER BY 1")


def keys_of_ledger(conn, table):
    kt, col = KEYS[table]
    return q(conn, f"""SELECT {col}, id, occurred_at FROM tokenledger_archive.all_{table}
                       WHERE {col} IS NOT NULL ORDER BY 1""")


def accounts(conn):
    """Everything counted from the ledger."""
    return {"usage_rollup": q(conn, USAGE_ROLLUP), "outcome_rollup": q(conn, OUTCOME_ROLLUP),
            "budget_spend": q(conn, BUDGET_SPEND), "budget_alerts": q(conn, ALERTS),
            "usage_request_ids": keys_table(conn, "usage"), "outcome_external_refs": keys_table(conn, "outcomes"),
            "budget_check(team => 'support')": q(conn, "SELECT name, spent::text FROM tokenledger.budget_check(team => 'support') ORDER BY 1")}


def check_counted_once(conn, what):
    """The rollups, the team budgets and the key tables equal the ledger's own figures."""
    for name, mine, ledger in (("usage_rollup", USAGE_ROLLUP, USAGE_FROM_LEDGER),
                               ("outcome_rollup", OUTCOME_ROLLUP, OUTCOME_FROM_LEDGER),
                               ("budget_spend of the team budgets", BUDGET_SPEND.replace(
                                   "GROUP BY", "WHERE b.scope = 'team' GROUP BY"), BUDGET_FROM_LEDGER)):
        a, b = q(conn, mine), q(conn, ledger)
        check(a == b and len(a) > 0, f"{what}: {name} equals the ledger's sums ({len(a)} rows)",
              diff(a, b, "counted", "from the ledger"))
    for table in ("usage", "outcomes"):
        a, b = keys_table(conn, table), keys_of_ledger(conn, table)
        check(a == b and len(a) > 0, f"{what}: {KEYS[table][0]} holds every key of {table} once ({len(a)})",
              diff(a, b, "key table", "ledger"))
    spent = q(conn, """SELECT name, spent::text FROM tokenledger.budget_check(team => 'support')
                       WHERE name IN ('support monthly', 'support total') ORDER BY 1""")
    expect = q(conn, """
        SELECT b.name, coalesce(tokenledger.sum(u.cost), '0 USD')::text
        FROM tokenledger.budgets b LEFT JOIN tokenledger_archive.all_usage u
          ON u.team = 'support' AND u.cost IS NOT NULL
         AND (b.period = 'total' OR (u.occurred_at >= date_trunc('month', now())
                                     AND u.occurred_at < date_trunc('month', now()) + interval '1 month'))
        WHERE b.name IN ('support monthly', 'support total')
        GROUP BY 1 ORDER BY 1""")
    check(spent == expect and len(spent) == 2,
          f"{what}: budget_check(team => 'support') spent equals the ledger's sums ({spent})", diff(spent, expect))


def reports(conn):
    out = {}
    for v in REPORT_VIEWS:
        sql = BUDGET_STATUS if v == "budget_status" else f"SELECT * FROM tokenledger.{v}"
        out[v] = [r[0] for r in q(conn, f"SELECT x::text FROM ({sql}) x ORDER BY 1")]
    out["usage_rollup"] = q(conn, USAGE_ROLLUP)
    out["outcome_rollup"] = q(conn, OUTCOME_ROLLUP)
    out["budget_spend"] = q(conn, BUDGET_SPEND)
    return out


def plan_relations(conn, sql, executed=False):
    """The relations a plan scans (executed: those its execution scanned)."""
    plan = one(conn, ("EXPLAIN (ANALYZE, FORMAT JSON) " if executed else "EXPLAIN (FORMAT JSON) ") + sql)
    names = []

    def walk(node):
        if isinstance(node, dict):
            if "Relation Name" in node and (not executed or node.get("Actual Loops", 0) > 0):
                names.append(node["Relation Name"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(plan)
    return names


# ---------------------------------------------------------------------------
# the ledger, recorded before any month partition exists
# ---------------------------------------------------------------------------

SEED = """
SET search_path = tokenledger, public;
INSERT INTO prices (provider, model, effective_from, rate, min_input_tokens, source) VALUES
    ('acme', 'm', '1980-01-01', 'in=1 out=2 USD/1M', 0, 'partitions test'),
    ('acme', 'big', '1980-01-01', 'in=10 out=30 USD/1M', 0, 'partitions test');
INSERT INTO model_tiers (provider, model, cheaper_provider, cheaper_model) VALUES ('acme', 'big', 'acme', 'm');
INSERT INTO initiatives (name, team, owner, outcome_metric, value_per_outcome) VALUES
    ('triage', 'support', 'ann', 'ticket', '2 USD'),
    ('papers', 'research', 'rob', 'paper', '40 USD');
INSERT INTO attribution_rules (priority, match_app, initiative) VALUES (10, 'helpdesk', 'triage');
INSERT INTO attribution_rules (priority, match_api_key, initiative) VALUES (20, 'key-lab', 'papers');
INSERT INTO budgets (name, scope, scope_value, period, amount, mode, warn_at) VALUES
    ('support monthly', 'team', 'support', 'month', '40 USD', 'alert', '{0.25,0.5,1.0}'),
    ('research monthly', 'team', 'research', 'month', '400 USD', 'alert', '{0.5,1.0}'),
    ('support total', 'team', 'support', 'total', '100 USD', 'alert', '{0.5,0.8,1.0}'),
    ('everything monthly', 'global', NULL, 'month', '5000 USD', 'alert', '{0.5}');
-- helpdesk calls every day for 130 days (the rule attributes them to triage)
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, principal, api_key, run_id,
                   prompt_hash, environment)
SELECT now() - g * interval '1 day' - interval '1 hour', 'req-help-' || g, 'acme', 'm',
       format('in=%s out=%s cache_read=%s', 400000 + g * 1000, 100000 + g * 100, g * 10)::tokens,
       'helpdesk', 'agent-' || (g % 3), 'key-help', 'run-' || (g % 20), 'ph-' || (g % 4), 'prod'
FROM generate_series(0, 130) g;
-- a spike: one day 200 times the usual
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, principal, run_id)
VALUES (now() - interval '40 days', 'req-spike', 'acme', 'm', 'in=90000000 out=9000000', 'helpdesk', 'agent-1', 'run-spike');
-- research calls every third day on the big model (rightsizing)
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, api_key, principal, run_id, environment)
SELECT now() - g * interval '3 days' - interval '2 hours', 'req-lab-' || g, 'acme', 'big',
       format('in=%s out=%s reasoning=%s', 200000 + g, 50000, 1000)::tokens, 'key-lab', 'rita', 'lab-' || (g % 7), 'dev'
FROM generate_series(0, 43) g;
-- shadow use: no rule, no team; some of it on a model without a price
INSERT INTO usage (occurred_at, request_id, provider, model, tokens, app, api_key, principal)
SELECT now() - g * interval '5 days' - interval '3 hours', 'req-shadow-' || g,
       CASE WHEN g % 3 = 0 THEN 'nobody' ELSE 'acme' END, CASE WHEN g % 3 = 0 THEN 'mystery' ELSE 'm' END,
       'in=300000 out=30000', 'notebook', 'key-shadow', 'sam'
FROM generate_series(0, 25) g;
-- a loop: one run repeating one prompt within an hour
SELECT record_usage('acme', 'm', '{"input_tokens": 1000, "output_tokens": 100}', request_id => 'req-loop-' || g,
                    occurred_at => date_trunc('hour', now() - interval '20 days') + g * interval '1 minute',
                    requests => 150, app => 'helpdesk', run_id => 'run-loop', prompt_hash => 'ph-loop', principal => 'agent-2')
FROM generate_series(1, 2) g;
-- a given cost, and a correction
SELECT record_usage('acme', 'm', '{"input_tokens": 5, "output_tokens": 5}', request_id => 'req-given',
                    occurred_at => now() - interval '50 days', cost => '0.75 USD', team => 'support');
SELECT adjust((SELECT min(id) FROM usage WHERE request_id = 'req-help-100'), '-0.10 USD', 'credit');
-- outcomes: tickets every day, papers every ten days (one with its own value)
INSERT INTO outcomes (occurred_at, initiative, metric, quantity, run_id, external_ref)
SELECT now() - g * interval '1 day' - interval '30 minutes', 'triage', 'ticket', 1 + g % 3, 'run-' || (g % 20), 'zd-' || g
FROM generate_series(0, 130) g;
SELECT record_outcome('papers', 'paper', 1, occurred_at => now() - g * interval '10 days' - interval '1 hour',
                      run_id => 'lab-' || (g % 7), external_ref => 'doi-' || g,
                      value => CASE WHEN g = 3 THEN '55 USD'::cost END)
FROM generate_series(0, 12) g;
"""


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------

def fresh_install(su):
    check(q(su, """SELECT c.relname, c.relkind::text FROM pg_class c
                   WHERE c.oid IN ('tokenledger.usage'::regclass, 'tokenledger.outcomes'::regclass) ORDER BY 1""")
          == [("outcomes", "p"), ("usage", "p")], "usage and outcomes are partitioned tables (relkind p)")
    parts = {t: partitions(su, f"tokenledger.{t}") for t in ("usage", "outcomes")}
    check(parts == {"usage": ["tokenledger.usage_default"], "outcomes": ["tokenledger.outcomes_default"]},
          f"a new installation has only the default partitions: {parts}")
    bounds = q(su, """SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
                      WHERE c.oid IN ('tokenledger.usage_default'::regclass, 'tokenledger.outcomes_default'::regclass)""")
    check(bounds == [("DEFAULT",), ("DEFAULT",)], f"they are DEFAULT partitions ({bounds})")


def first_partitions(su, m0, since):
    before_rows = {t: ledger_rows(su, t) for t in ("usage", "outcomes")}
    where = {t: sorted({r[1] for r in placement(su, t)}) for t in ("usage", "outcomes")}
    check(where == {"usage": ["tokenledger.usage_default"], "outcomes": ["tokenledger.outcomes_default"]}
          and len(before_rows["usage"]) > 200 and len(before_rows["outcomes"]) > 100,
          f"{len(before_rows['usage'])} calls and {len(before_rows['outcomes'])} outcomes are in the default partitions")
    check_counted_once(su, "before create_partitions()")
    before = accounts(su)
    check(len(before["budget_alerts"]) >= 4, f"the seed raised budget alerts ({len(before['budget_alerts'])})")
    parts_before = {t: partitions(su, f"tokenledger.{t}") for t in ("usage", "outcomes")}

    # called from a session in another time zone: the bounds are UTC months all the same
    kolkata = connect(zone="Asia/Kolkata")
    t0 = time.monotonic()
    made = one(kolkata, "SELECT tokenledger.create_partitions(since => %s)", (f"{since:%Y-%m-%d %H:%M:%S}+00",))
    comment(f"create_partitions() moved {len(before_rows['usage']) + len(before_rows['outcomes'])} rows "
            f"in {time.monotonic() - t0:.2f} s")
    kolkata.close()

    now_m = add_months(m0, 3)
    months = []
    m = datetime(since.year, since.month, 1)
    while m <= now_m:
        months.append(m)
        m = add_months(m, 1)
    parts_after = {t: partitions(su, f"tokenledger.{t}") for t in ("usage", "outcomes")}
    new = {t: sorted(set(parts_after[t]) - set(parts_before[t])) for t in parts_after}
    expect = {t: [f"tokenledger.{t}_{month_name(m)}" for m in months] for t in ("usage", "outcomes")}
    check(made == len(new["usage"]) + len(new["outcomes"]) == 2 * len(months),
          f"create_partitions(since => {since:%Y-%m-%d}) made {made} partitions: one a month of usage and "
          f"outcomes from {months[0]:%Y-%m} to {months[-1]:%Y-%m}")
    check(new == expect, "the partitions are named usage_YYYY_MM / outcomes_YYYY_MM", diff(
        new["usage"] + new["outcomes"], expect["usage"] + expect["outcomes"], "made", "expected"))
    bounds = q(su, """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
                      WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relispartition
                        AND c.relname ~ '_[0-9]{4}_[0-9]{2}$' ORDER BY 1""")
    expect_bounds = sorted((f"{t}_{month_name(m)}",
                            f"FOR VALUES FROM ('{m:%Y-%m-%d} 00:00:00+00') TO ('{add_months(m, 1):%Y-%m-%d} 00:00:00+00')")
                           for t in ("usage", "outcomes") for m in months)
    check(bounds == expect_bounds, "each partition covers its month in UTC (called from an Asia/Kolkata session)",
          diff(bounds, expect_bounds, "made", "expected"))
    for t in ("usage", "outcomes"):
        after_rows = ledger_rows(su, t)
        check(after_rows == before_rows[t], f"every row of {t} is unchanged, every column and id ({len(after_rows)} rows)",
              diff(before_rows[t], after_rows))
        misplaced = [r for r in placement(su, t) if r[1] != r[2]]
        check(not misplaced, f"every row of {t} is in its month's partition", [str(r) for r in misplaced])
    after = accounts(su)
    for k in before:
        check(after[k] == before[k], f"create_partitions() leaves {k} as it was ({len(after[k])} rows)",
              diff(before[k], after[k]))
    check_counted_once(su, "after create_partitions()")
    again = one(su, "SELECT tokenledger.create_partitions(since => %s)", (f"{since:%Y-%m-%d %H:%M:%S}+00",))
    check(again == 0, f"a second create_partitions() makes none ({again})")
    return months


def far_rows(su, months):
    parts_before = partitions(su, "tokenledger.usage")
    ids = {}
    for label, at in (("2150", "2150-06-15 12:00+00"), ("1990", "1990-02-10 08:00+00")):
        ids[label] = one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 1000000, "output_tokens": 0}',
                                    request_id => %s, occurred_at => %s, team => 'support')""", ("req-far-" + label, at))
    got = q(su, """SELECT id, tableoid::regclass::text, cost::text FROM tokenledger.usage WHERE id = ANY(%s) ORDER BY id""",
            (list(ids.values()),))
    check([r[1] for r in got] == ["tokenledger.usage_default"] * 2 and all(r[2] == "1.00 USD" for r in got),
          "calls of 2150 and 1990 are recorded in the default partition and priced", [str(r) for r in got])
    before_rows = ledger_rows(su, "usage")
    before = accounts(su)
    made = one(su, "SELECT tokenledger.create_partitions()")
    new = sorted(set(partitions(su, "tokenledger.usage")) - set(parts_before))
    check(made == 2 and new == ["tokenledger.usage_1990_02", "tokenledger.usage_2150_06"],
          f"create_partitions() then makes their months ({made}: {new})")
    where = dict((r[0], r[1]) for r in placement(su, "usage"))
    check(where[ids["2150"]] == "tokenledger.usage_2150_06" and where[ids["1990"]] == "tokenledger.usage_1990_02",
          "the calls of 2150 and 1990 moved into them")
    check(ledger_rows(su, "usage") == before_rows and accounts(su) == before,
          "unchanged, and counted once (rollups, budgets, keys)")
    return ids


def same_transaction(su, m0):
    """Rows recorded in the transaction that makes partitions wait for the next call."""
    month = add_months(m0, 6)   # beyond what create_partitions() makes ahead
    at = month.replace(day=10).strftime("%Y-%m-%d 10:00+00")
    name = month_name(month)
    before = accounts(su)
    c = connect(autocommit=False)
    c.execute("""SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 2000000, "output_tokens": 0}',
                     request_id => 'req-same-tx', occurred_at => %s, team => 'support')""", (at,))
    c.execute("SELECT tokenledger.record_outcome('triage', 'ticket', 4, occurred_at => %s, external_ref => 'zd-same-tx')", (at,))
    made = one(c, "SELECT tokenledger.create_partitions(since => %s, ahead => interval '7 months')", (month,))
    where = q(c, """SELECT tableoid::regclass::text FROM tokenledger.usage WHERE request_id = 'req-same-tx'
                    UNION ALL SELECT tableoid::regclass::text FROM tokenledger.outcomes WHERE external_ref = 'zd-same-tx'""")
    made_names = q(c, "SELECT to_regclass(%s)::text, to_regclass(%s)::text",
                   (f"tokenledger.usage_{name}", f"tokenledger.outcomes_{name}"))[0]
    c.commit()
    c.close()
    check(where == [("tokenledger.usage_default",), ("tokenledger.outcomes_default",)] and made_names == (None, None),
          f"rows recorded in the transaction that calls create_partitions() stay in the default partitions "
          f"(their month {name} waits; it made {made} others)")
    check_counted_once(su, "rows recorded beside create_partitions()")
    made = one(su, "SELECT tokenledger.create_partitions(since => %s, ahead => interval '7 months')", (month,))
    where = q(su, """SELECT tableoid::regclass::text FROM tokenledger.usage WHERE request_id = 'req-same-tx'
                     UNION ALL SELECT tableoid::regclass::text FROM tokenledger.outcomes WHERE external_ref = 'zd-same-tx'""")
    check(made >= 2 and where == [(f"tokenledger.usage_{name}",), (f"tokenledger.outcomes_{name}",)],
          f"the next call makes month {name} and moves them ({made} partitions)")
    check_counted_once(su, "after they moved")
    after = accounts(su)
    grew = [k for k in ("usage_rollup", "budget_spend", "usage_request_ids") if after[k] == before[k]]
    check(not grew, "they were counted (the accounts grew by them)", grew)


def recording_in_flight(su, m0):
    """create_partitions() beside a recording, not yet committed, of a row of a month it makes."""
    month = add_months(m0, 9)
    at = month.replace(day=5).strftime("%Y-%m-%d 10:00+00")
    a = connect(autocommit=False)
    a.execute("""SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 100000, "output_tokens": 0}',
                     request_id => 'req-in-flight', occurred_at => %s, team => 'support')""", (at,))
    res = {}

    def make():
        c = connect()
        try:
            res["made"] = one(c, "SELECT tokenledger.create_partitions(since => %s, ahead => interval '10 months')", (month,))
        except psycopg.Error as e:
            res["error"] = e
        c.close()
    t = threading.Thread(target=make)
    t.start()
    time.sleep(0.5)
    a.commit()
    a.close()
    t.join(10)
    e = res.get("error")
    where = one(su, "SELECT tableoid::regclass::text FROM tokenledger.usage WHERE request_id = 'req-in-flight'")
    check(e is None, f"create_partitions() beside a recording in flight of a row of a month it makes succeeds "
          f"(made {res.get('made')}; the row is in {where})", [f"{e.sqlstate}: {e}" if e else ""])
    check_counted_once(su, "after a recording in flight")


def idempotency(su, months):
    a_month, b_month = months[1], months[3]
    at_a, at_b = a_month.replace(day=5).strftime("%Y-%m-%d 12:00+00"), b_month.replace(day=7).strftime("%Y-%m-%d 12:00+00")
    first = one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 1234, "output_tokens": 56}',
                          request_id => 'req-twice', occurred_at => %s, team => 'support')""", (at_a,))
    e = error(su, """INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team)
                     VALUES (%s, 'req-twice', 'acme', 'm', 'in=1234 out=56', 'support')""", (at_b,))
    check(e is not None and e.sqlstate == "23505" and e.diag.constraint_name == "usage_request_id_key",
          "a plain INSERT of a request_id recorded in another month fails: 23505 on usage_request_id_key",
          [repr(e), e.diag.constraint_name if e else ""])
    again = one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 1234, "output_tokens": 56}',
                          request_id => 'req-twice', occurred_at => %s, team => 'support')""", (at_b,))
    check(again == first, f"record_usage() replaying it with another month returns the first id ({again} = {first})")
    e = error(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 9999, "output_tokens": 56}',
                         request_id => 'req-twice', occurred_at => %s)""", (at_b,))
    check(e is not None and e.sqlstate == "23505" and "already recorded with different content" in str(e),
          "a replay with other tokens fails: 23505 'already recorded with different content'", [repr(e)])
    n = one(su, "SELECT count(*) FROM tokenledger.usage WHERE request_id = 'req-twice'")
    check(n == 1, f"the request_id is in the ledger once ({n})")

    first = one(su, "SELECT tokenledger.record_outcome('triage', 'ticket', 2, occurred_at => %s, external_ref => 'zd-twice')", (at_a,))
    e = error(su, """INSERT INTO tokenledger.outcomes (occurred_at, initiative, metric, quantity, external_ref)
                     VALUES (%s, 'triage', 'ticket', 2, 'zd-twice')""", (at_b,))
    check(e is not None and e.sqlstate == "23505" and e.diag.constraint_name == "outcomes_external_ref_key",
          "a plain INSERT of an external_ref recorded in another month fails: 23505 on outcomes_external_ref_key", [repr(e)])
    again = one(su, "SELECT tokenledger.record_outcome('triage', 'ticket', 2, occurred_at => %s, external_ref => 'zd-twice')", (at_b,))
    check(again == first, f"record_outcome() replaying it with another month returns the first id ({again} = {first})")
    e = error(su, "SELECT tokenledger.record_outcome('triage', 'ticket', 3, occurred_at => %s, external_ref => 'zd-twice')", (at_b,))
    check(e is not None and e.sqlstate == "23505" and "already recorded with different content" in str(e),
          "a replay with another quantity fails: 23505 'already recorded with different content'", [repr(e)])

    # two sessions, one request_id, two months
    insert = """INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team)
                VALUES (%s, %s, 'acme', 'm', 'in=10 out=10', 'support')"""
    for outcome in ("commit", "rollback"):
        key = f"req-race-{outcome}"
        first = connect(autocommit=False)
        first.execute(insert, (at_a, key))
        res = {}

        def second():
            c = connect()
            res["error"] = error(c, insert, (at_b, key))
            c.close()
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        waited = t.is_alive()
        waiting = one(su, """SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'
                             AND query LIKE 'INSERT INTO tokenledger.usage%%'""", (DB,))
        getattr(first, outcome)()
        t.join(10)
        first.close()
        e = res.get("error")
        if outcome == "commit":
            check(waited and waiting == 1 and e is not None and e.sqlstate == "23505",
                  "a concurrent recording of the same request_id in another month waits for the first, "
                  "then fails (23505) when it commits", [f"waited {waited}, waiting {waiting}", repr(e)])
        else:
            check(waited and e is None, "... and succeeds when the first rolls back", [f"waited {waited}", repr(e)])
        n = one(su, "SELECT count(*) FROM tokenledger.usage WHERE request_id = %s", (key,))
        check(n == 1, f"{key} is in the ledger once ({n})")

    # a replay under REPEATABLE READ of a key committed after the snapshot
    rr = connect(autocommit=False)
    rr.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    rr.execute("SELECT count(*) FROM tokenledger.usage")
    committed = one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 77, "output_tokens": 7}',
                              request_id => 'req-rr', occurred_at => %s, team => 'support')""", (at_a,))
    seen = one(rr, "SELECT count(*) FROM tokenledger.usage WHERE request_id = 'req-rr'")
    e = None
    try:
        replay = one(rr, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 77, "output_tokens": 7}',
                               request_id => 'req-rr', occurred_at => %s, team => 'support')""", (at_b,))
    except psycopg.Error as err:
        replay, e = None, err
    rr.rollback()
    rr.close()
    check(seen == 0 and replay == committed,
          f"under REPEATABLE READ a replay of a request_id committed after the snapshot returns its id "
          f"({replay} = {committed}; the snapshot does not see the row)", [repr(e)])


def pruning(su, months):
    m = months[2]
    lo, hi = m.strftime("%Y-%m-%d 00:00+00"), add_months(m, 1).strftime("%Y-%m-%d 00:00+00")
    rels = plan_relations(su, f"""SELECT tokenledger.sum(cost) FROM tokenledger.usage
                                  WHERE occurred_at >= '{lo}' AND occurred_at < '{hi}'""")
    check(rels == [f"usage_{month_name(m)}"], f"a one-month sum(cost) scans one partition: {rels}")
    rels = plan_relations(su, f"""SELECT tokenledger.sum(cost) FROM tokenledger.usage
                                  WHERE occurred_at >= '{lo}' AND occurred_at < '{hi}' AND team = 'support'""")
    check(rels == [f"usage_{month_name(m)}"], f"... with a filter on team too: {rels}")
    total = one(su, f"""SELECT tokenledger.sum(cost)::text FROM tokenledger.usage
                        WHERE occurred_at >= '{lo}' AND occurred_at < '{hi}'""")
    direct = one(su, f"SELECT tokenledger.sum(cost)::text FROM tokenledger.usage_{month_name(m)}")
    check(total == direct and total is not None, f"and sums what the partition holds ({total})")
    spend_daily = f"""SELECT * FROM tokenledger.spend_daily
                      WHERE day >= '{m:%Y-%m-%d}' AND day < '{add_months(m, 1):%Y-%m-%d}'"""
    planned = sorted(set(plan_relations(su, spend_daily)))
    scanned = sorted(set(plan_relations(su, spend_daily, executed=True)))
    check(scanned == ["usage_rollup"],
          f"spend_daily for one month reads the rollups and no ledger partition (scanned: {scanned})")
    comment(f"its plan holds a branch over the ledger (for time zones whose days are not whole UTC hours), "
            f"not run here: {planned}")
    su.execute("SET TimeZone = 'Asia/Kolkata'")
    scanned = sorted(set(plan_relations(su, spend_daily, executed=True)))
    su.execute("SET TimeZone = 'UTC'")
    comment(f"in Asia/Kolkata spend_daily for one month reads the ledger, filtered on occurred_at::date, "
            f"which does not prune: {scanned}")
    rels = plan_relations(su, f"""SELECT * FROM tokenledger.unpriced_usage
                                  WHERE occurred_at >= '{lo}' AND occurred_at < '{hi}'""")
    comment(f"unpriced_usage for one month scans: {sorted(set(rels))}")
    rels = plan_relations(su, f"""SELECT * FROM tokenledger_archive.all_usage
                                  WHERE occurred_at >= '{lo}' AND occurred_at < '{hi}'""")
    check([r for r in rels if r != "usage_default"] == [f"usage_{month_name(m)}"],
          f"tokenledger_archive.all_usage for one month scans its partition (and no archived one): {rels}")


def append_only(su, months):
    m = month_name(months[2])
    # a call and an outcome no month holds, so that the default partitions have rows
    one(su, "SELECT tokenledger.record_outcome('triage', 'ticket', 1, occurred_at => '2150-07-10', external_ref => 'zd-2150')")
    one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 10, "output_tokens": 0}', request_id => 'req-2150-07',
                                              occurred_at => '2150-07-10', team => 'support')""")
    empty = month_name(add_months(months[-1], -1))
    states = {stmt: sqlstate(su, f"{stmt} tokenledger.usage_{empty}" + (" SET run_id = 'x'" if stmt == "UPDATE" else ""))
              for stmt in ("DELETE FROM", "UPDATE", "TRUNCATE")}
    comment(f"on the empty partition usage_{empty} (no row trigger fires): {states}")
    for table in (f"usage_{m}", "usage_default", f"outcomes_{m}", "outcomes_default"):
        n = one(su, f"SELECT count(*) FROM tokenledger.{table}")
        states = {
            "DELETE": sqlstate(su, f"DELETE FROM tokenledger.{table}"),
            "DELETE of one row": sqlstate(su, f"DELETE FROM tokenledger.{table} WHERE id = (SELECT min(id) FROM tokenledger.{table})"),
            "UPDATE": sqlstate(su, f"UPDATE tokenledger.{table} SET run_id = 'x'"),
            "TRUNCATE": sqlstate(su, f"TRUNCATE tokenledger.{table}"),
        }
        check(set(states.values()) == {"42501"} and one(su, f"SELECT count(*) FROM tokenledger.{table}") == n and n > 0,
              f"DELETE, UPDATE and TRUNCATE of {table} are refused for the superuser (42501; {n} rows stay)", [str(states)])
    insert = """INSERT INTO tokenledger.{} (occurred_at, provider, model, tokens, team)
                VALUES ('{}', 'acme', 'm', 'in=10 out=10', 'support')"""
    at = months[2].strftime("%Y-%m-15 12:00+00")
    through = as_role(su, "tlp_writer", insert.format("usage", at))
    straight = as_role(su, "tlp_writer", insert.format(f"usage_{m}", at))
    check(through is None and straight == "42501",
          f"tokenledger_writer records through usage into a month partition ({through}), not straight into it ({straight})")
    for role in ("tlp_admin", "tlp_writer"):
        s = as_role(su, role, "SELECT tokenledger.moving_rows(true)")
        check(s == "42501", f"{ROLES[role]} may not execute moving_rows(true) ({s})")
    for parent in ("tokenledger.usage", "tokenledger.outcomes", "tokenledger.usage_default", f"tokenledger.usage_{m}"):
        e = error(su, f"CREATE TABLE public.tlp_child () INHERITS ({parent})")
        exists = one(su, "SELECT to_regclass('public.tlp_child') IS NOT NULL")
        check(e is not None and not exists, f"a table cannot inherit from {parent} ({e.sqlstate if e else 'created'}: "
              f"{str(e).splitlines()[0] if e else ''})")
        if exists:
            su.execute("DROP TABLE public.tlp_child")


def straight_into_partition(su, m0):
    part = f"tokenledger.usage_{month_name(m0)}"
    at = one(su, "SELECT now() - interval '1 minute'")
    before_spend = dict((r[0], r[1]) for r in q(su, """
        SELECT b.name, coalesce(tokenledger.sum(s.spent), '0 USD')::text FROM tokenledger.budgets b
        LEFT JOIN tokenledger.budget_spend s ON s.budget_id = b.id AND s.period_start = date_trunc('month', now())
        WHERE b.period = 'month' GROUP BY 1"""))
    rid = one(su, f"""INSERT INTO {part} (occurred_at, request_id, provider, model, tokens, app)
                      VALUES (%s, 'req-direct', 'acme', 'm', 'in=3000000 out=500000', 'helpdesk') RETURNING id""", (at,))
    row = q(su, """SELECT u.tableoid::regclass::text, u.cost::text, u.price_id IS NOT NULL, u.initiative, u.team, u.attribution,
                          (tokenledger.price_of(u.tokens, u.provider, u.model, u.service_tier, u.occurred_at, u.requests)
                           IS NOT DISTINCT FROM u.price_id)
                   FROM tokenledger.usage u WHERE u.id = %s""", (rid,))[0]
    rule = one(su, "SELECT 'rule:' || id FROM tokenledger.attribution_rules WHERE match_app = 'helpdesk'")
    check(row[0] == part and row[1] == "4.00 USD" and row[2] and row[6],
          f"a call inserted straight into {part} is priced from the catalog ({row[1]})", [str(row)])
    check(row[3:6] == ("triage", "support", rule), f"... and attributed by the rules ({row[3:6]})")
    after_spend = dict((r[0], r[1]) for r in q(su, """
        SELECT b.name, coalesce(tokenledger.sum(s.spent), '0 USD')::text FROM tokenledger.budgets b
        LEFT JOIN tokenledger.budget_spend s ON s.budget_id = b.id AND s.period_start = date_trunc('month', now())
        WHERE b.period = 'month' GROUP BY 1"""))
    grew = {k: (before_spend[k], after_spend[k]) for k in after_spend}
    check(one(su, "SELECT tokenledger.amount(%s::tokenledger.cost) + 4 = tokenledger.amount(%s::tokenledger.cost)",
              (before_spend["support monthly"], after_spend["support monthly"]))
          and one(su, "SELECT tokenledger.amount(%s::tokenledger.cost) + 4 = tokenledger.amount(%s::tokenledger.cost)",
                  (before_spend["everything monthly"], after_spend["everything monthly"]))
          and before_spend["research monthly"] == after_spend["research monthly"],
          f"... counted in the budgets it falls under ({grew})")
    check(one(su, "SELECT id FROM tokenledger.usage_request_ids WHERE request_id = 'req-direct'") == rid,
          "... its request_id is registered")
    oid = one(su, f"""INSERT INTO tokenledger.outcomes_{month_name(m0)} (occurred_at, initiative, metric, quantity)
                      VALUES (%s, 'triage', 'ticket', 5) RETURNING id""", (at,))
    check(one(su, "SELECT value::text FROM tokenledger.outcomes WHERE id = %s", (oid,)) == "10.00 USD",
          "an outcome inserted straight into its partition is valued (5 x 2 USD)")
    check_counted_once(su, "after inserts straight into partitions")

    # the ledger's lock: a budget change waits for an open insert into a partition
    a = connect(autocommit=False)
    a.execute(f"""INSERT INTO {part} (occurred_at, request_id, provider, model, tokens, app)
                  VALUES (now(), 'req-direct-open', 'acme', 'm', 'in=1000000 out=0', 'helpdesk')""")
    b = connect()
    b.execute("SET lock_timeout = '300ms'")
    # (a change of what a budget counts recounts it: here, deactivating it)
    e = error(b, "UPDATE tokenledger.budgets SET active = false WHERE name = 'research monthly'")
    check(e is not None and e.sqlstate == "55P03",
          f"a budget change waits for an uncommitted insert straight into {part} (lock_timeout: {e.sqlstate if e else 'no wait'})",
          [repr(e)])
    a.commit()
    a.close()
    e = error(b, "UPDATE tokenledger.budgets SET active = false WHERE name = 'research monthly'")
    check(e is None, f"and goes through once it commits ({e!r})")
    b.execute("UPDATE tokenledger.budgets SET active = true WHERE name = 'research monthly'")
    b.close()
    check_counted_once(su, "after the budget's recount")


def reprice_on_partitions(su, m0):
    """reprice() fills the costs of calls in month partitions, counted once."""
    since = add_months(m0, -1)
    where = q(su, """SELECT id, tableoid::regclass::text FROM tokenledger.usage
                     WHERE cost IS NULL AND provider = 'nobody' AND occurred_at >= %s ORDER BY id""", (since,))
    su.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate, min_input_tokens, source)
                  VALUES ('nobody', 'mystery', %s, 'in=2 out=2 USD/1M', 0, 'partitions test')""", (since,))
    n = one(su, "SELECT tokenledger.reprice()")
    after = q(su, """SELECT id, tableoid::regclass::text FROM tokenledger.usage
                     WHERE tokenledger.amount(cost) = 0.66 AND provider = 'nobody' ORDER BY id""")
    check(n == len(where) > 0 and after == where,
          f"reprice() prices the calls of the month partitions in place ({n}: {sorted({r[1] for r in where})})",
          [f"unpriced {where}", f"priced {after}"])
    left = one(su, "SELECT count(*) FROM tokenledger.usage WHERE cost IS NULL AND provider = 'nobody'")
    check(left > 0, f"older calls stay unpriced ({left})")
    check_counted_once(su, "after reprice()")


def archive(su, m0, months):
    e = error(su, "SELECT tokenledger.archive_before(%s)", (add_months(m0, 1),))
    check(e is not None and e.sqlstate == "22023", f"archive_before() refuses the open month (22023: {e})")
    # a row of an old month with no partition, in the default partition
    old = add_months(months[0], -3)
    one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 500000, "output_tokens": 0}',
                   request_id => 'req-late', occurred_at => %s, team => 'support')""", (old.replace(day=3),))
    e = error(su, "SELECT tokenledger.archive_before(%s)", (m0,))
    check(e is not None and e.sqlstate == "55000" and f"{old:%Y-%m}" in str(e),
          f"archive_before() refuses while the default partition holds older rows (55000: {str(e).splitlines()[0] if e else e})")
    for role in ("tlp_writer", "tlp_reader"):
        for fn in ("create_partitions()", f"archive_before('{m0:%Y-%m-%d}')"):
            s = as_role(su, role, f"SELECT tokenledger.{fn}")
            check(s == "42501", f"{ROLES[role]} may not run {fn} ({s})")
    s = as_role(su, "tlp_admin", "SELECT tokenledger.create_partitions()")
    check(s is None, f"tokenledger_admin runs create_partitions() ({s})")
    check(one(su, "SELECT tableoid::regclass::text FROM tokenledger.usage WHERE request_id = 'req-late'")
          == f"tokenledger.usage_{month_name(old)}", "which moves the old row into its month")

    before = reports(su)
    empty = [v for v in REPORT_VIEWS if not before[v]]
    check(not empty, f"every report has rows ({', '.join(f'{v} {len(before[v])}' for v in REPORT_VIEWS)})", empty)
    live_before = {t: partitions(su, f"tokenledger.{t}") for t in ("usage", "outcomes")}
    closed = {t: [p for p in live_before[t] if p[-7:].replace("_", "").isdigit()
                  and datetime(int(p[-7:-3]), int(p[-2:]), 1) < add_months(m0, -1)] for t in live_before}
    # the closed months before the previous one are archived, as tokenledger_admin
    su.execute("SET ROLE tlp_admin")
    moved = one(su, "SELECT tokenledger.archive_before(%s)", (add_months(m0, -1),))
    su.execute("RESET ROLE")
    n_closed = len(closed["usage"]) + len(closed["outcomes"])
    check(moved == n_closed and n_closed >= 8,
          f"tokenledger_admin runs archive_before({add_months(m0, -1):%Y-%m}): {moved} closed months moved")
    archived = {t: partitions(su, f"tokenledger_archive.{t}") for t in ("usage", "outcomes")}
    expect = {t: sorted([p.replace("tokenledger.", "tokenledger_archive.") for p in closed[t]]
                        + [f"tokenledger_archive.{t}_default"]) for t in closed}
    live = {t: partitions(su, f"tokenledger.{t}") for t in ("usage", "outcomes")}
    check(archived == expect and all(not set(closed[t]) & set(live[t]) for t in live),
          "they are attached to tokenledger_archive.usage / .outcomes, no longer to the live ledger",
          diff(sum(archived.values(), []), sum(expect.values(), []), "archived", "expected"))
    after = reports(su)
    for v in before:
        check(after[v] == before[v], f"{v} is the same after archiving ({len(after[v])} rows)", diff(before[v], after[v]))

    part = closed["usage"][len(closed["usage"]) // 2].replace("tokenledger.", "tokenledger_archive.")
    opart = closed["outcomes"][-1].replace("tokenledger.", "tokenledger_archive.")
    for table in (part, opart, "tokenledger_archive.usage"):
        states = {"DELETE": sqlstate(su, f"DELETE FROM {table}"),
                  "UPDATE": sqlstate(su, f"UPDATE {table} SET run_id = 'x'"),
                  "TRUNCATE": sqlstate(su, f"TRUNCATE {table}")}
        check(set(states.values()) == {"42501"}, f"the archived {table} refuses DELETE, UPDATE and TRUNCATE (42501)",
              [str(states)])
    # a replayed request_id of an archived row
    arow = q(su, f"""SELECT id, request_id, tokens::text FROM {part}
                     WHERE request_id LIKE 'req-shadow-%%' AND provider = 'acme' ORDER BY id LIMIT 1""")[0]
    e = None
    try:
        replay = one(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 300000, "output_tokens": 30000}',
                                                           request_id => %s)""", (arow[1],))
    except psycopg.Error as err:
        replay, e = None, err
    check(replay == arow[0], f"record_usage() replaying the request_id of an archived call returns its id ({replay} = {arow[0]})",
          [repr(e), str(arow)])
    e = error(su, """INSERT INTO tokenledger.usage (request_id, provider, model, tokens) VALUES (%s, 'acme', 'm', 'in=1 out=1')""",
              (arow[1],))
    check(e is not None and e.sqlstate == "23505", f"a plain INSERT of it fails (23505: {e!r})")
    # a recount counts the archived spend
    spend = q(su, BUDGET_SPEND)
    su.execute("UPDATE tokenledger.budgets SET active = false WHERE name IN ('support total', 'support monthly')")
    off = q(su, BUDGET_SPEND)
    su.execute("UPDATE tokenledger.budgets SET active = true WHERE name IN ('support total', 'support monthly')")
    check(q(su, BUDGET_SPEND) == spend
          and all(Decimal(r[3].split()[0]) == 0 for r in off if r[0].startswith("support")),
          "a budget recount (deactivated, then active again) counts the archived spend too",
          diff(spend, q(su, BUDGET_SPEND)) + [f"deactivated: {r}" for r in off if r[0].startswith("support")])
    check_counted_once(su, "after archiving")
    # a reader sees only its team's archived rows
    expect = one(su, "SELECT count(*) FROM tokenledger_archive.all_usage WHERE team = 'support'")
    archived_support = one(su, "SELECT count(*) FROM tokenledger_archive.usage WHERE team = 'support'")
    su.execute("SET ROLE tlp_reader")
    seen = q(su, "SELECT team, count(*) FROM tokenledger_archive.all_usage GROUP BY 1 ORDER BY 1")
    seen_archived = q(su, "SELECT team, count(*) FROM tokenledger_archive.usage GROUP BY 1 ORDER BY 1")
    su.execute("RESET ROLE")
    check(seen == [("support", expect)] and seen_archived == [("support", archived_support)] and archived_support > 0,
          f"a reader of team support sees only support's rows in tokenledger_archive.all_usage and .usage "
          f"({seen}, {seen_archived})")
    for table in (part, "tokenledger.usage_default", f"tokenledger.usage_{month_name(m0)}"):
        s = as_role(su, "tlp_reader", f"SELECT count(*) FROM {table}")
        check(s == "42501", f"a reader may not read the partition {table} itself (42501: {s})")

    # drop: the previous month goes; the rollups keep its sums
    before = reports(su)
    prev = add_months(m0, -1)
    prev_rows = one(su, "SELECT count(*) FROM tokenledger_archive.all_usage WHERE occurred_at >= %s AND occurred_at < %s",
                    (prev, m0))
    dropped = one(su, "SELECT tokenledger.archive_before(%s, drop => true)", (m0,))
    gone = [t for t in (f"tokenledger.usage_{month_name(prev)}", f"tokenledger.outcomes_{month_name(prev)}")
            if one(su, "SELECT to_regclass(%s) IS NULL", (t,))]
    left = one(su, "SELECT count(*) FROM tokenledger_archive.all_usage WHERE occurred_at >= %s AND occurred_at < %s",
               (prev, m0))
    check(dropped == 2 and len(gone) == 2 and prev_rows > 0 and left == 0,
          f"archive_before({m0:%Y-%m}, drop => true) drops {month_name(prev)} ({prev_rows} calls gone from all_usage)")
    after = reports(su)
    for v in FROM_ROLLUPS + ["usage_rollup", "outcome_rollup", "budget_spend"]:
        check(after[v] == before[v], f"{v} is the same after dropping a month ({len(after[v])} rows)", diff(before[v], after[v]))
    changed = [v for v in REPORT_VIEWS if after[v] != before[v]]
    comment(f"views that read the raw rows and change when a month is dropped: {', '.join(changed) or 'none'}")
    archived_after = {t: partitions(su, f"tokenledger_archive.{t}") for t in ("usage", "outcomes")}
    check(archived_after == archived, "archived months stay archived (drop => true drops live months only)")
    # what is left of a dropped call: its key
    key = one(su, "SELECT request_id FROM tokenledger.usage_request_ids WHERE occurred_at >= %s AND occurred_at < %s "
                  "AND request_id LIKE 'req-help-%%' ORDER BY 1 LIMIT 1", (prev, m0))
    e = error(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 1, "output_tokens": 1}', request_id => %s)""", (key,))
    check(key is not None and e is not None and e.sqlstate == "23505",
          f"the request_id of a dropped call stays recorded: a replay fails (23505) rather than count it again "
          f"({key}: {str(e).splitlines()[0] if e else 'recorded again'})")
    before = q(su, BUDGET_SPEND)
    su.execute("UPDATE tokenledger.budgets SET active = false WHERE name = 'support total'")
    su.execute("UPDATE tokenledger.budgets SET active = true WHERE name = 'support total'")
    after = q(su, BUDGET_SPEND)
    comment("a recount after a drop: " + "; ".join(f"{a[0]} {a[1]}: {a[3]} -> {b[3]}" for a, b in zip(before, after) if a != b))


def infinite_times(su, m0):
    """Calls and outcomes dated 'infinity' or '-infinity' are refused (22008):
    no month holds them, and a day of them breaks the reports' arithmetic."""
    before = one(su, "SELECT count(*) FROM tokenledger.usage")
    for at in ("infinity", "-infinity"):
        e = error(su, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 1000000, "output_tokens": 0}',
                             request_id => %s, occurred_at => %s, team => 'support')""", ("req-" + at, at))
        check(e is not None and e.sqlstate == "22008" and at in str(e),
              f"a call dated '{at}' is refused with 22008 naming the time ({e.sqlstate + ': ' + str(e).splitlines()[0] if e else 'recorded'})")
        e = error(su, "INSERT INTO tokenledger.outcomes (initiative, metric, occurred_at) VALUES ('support-triage', 'ticket_resolved', %s)", (at,))
        check(e is not None and e.sqlstate == "22008", f"an outcome dated '{at}' is refused with 22008 ({e.sqlstate if e else 'recorded'})")
    after = one(su, "SELECT count(*) FROM tokenledger.usage")
    keys = one(su, "SELECT count(*) FROM tokenledger.usage_request_ids WHERE request_id LIKE 'req-%%infinity'")
    check(after == before and keys == 0, f"nothing of them is left: no row, no key ({after - before} rows, {keys} keys)")


def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {DB}")
    made_roles = []
    t_start = time.monotonic()
    try:
        su = connect()
        step("CREATE EXTENSION tokenledger", su.execute, "CREATE EXTENSION tokenledger")
        for role, member_of in ROLES.items():
            if not one(admin, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)):
                admin.execute(f"CREATE ROLE {role} NOLOGIN IN ROLE {member_of}")
                made_roles.append(role)
        su.execute("INSERT INTO tokenledger.team_members VALUES ('tlp_reader', 'support')")
        fresh_install(su)
        step("recording five months of ledger", su.execute, SEED)
        su.execute("RESET search_path")
        m0 = one(su, "SELECT date_trunc('month', now() AT TIME ZONE 'UTC')")
        since = one(su, "SELECT min(occurred_at) AT TIME ZONE 'UTC' FROM tokenledger.usage")
        months = first_partitions(su, m0, since)
        far_rows(su, months)
        same_transaction(su, m0)
        recording_in_flight(su, m0)
        idempotency(su, months)
        pruning(su, months)
        append_only(su, months)
        straight_into_partition(su, m0)
        reprice_on_partitions(su, m0)
        archive(su, m0, months)
        infinite_times(su, m0)
        su.close()
    except Failed:
        pass
    finally:
        comment(f"{time.monotonic() - t_start:.1f} s")
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        for role in made_roles:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
