#!/usr/bin/python3
"""The views over the rollups equal the same queries over the raw ledger.

Several sessions record at once, at READ COMMITTED, REPEATABLE READ and
SERIALIZABLE, for a seeded random mix: single-row and
multi-row INSERTs, COPY, record_usage and record_outcome, savepoints rolled
back, whole transactions rolled back, a prepared transaction, late rows for
old hours, adjustments and credits, then reprice() of calls whose model gets
a price, rerate() after a price change, and exchange rates that take effect
in the middle of an hour, are corrected and deleted, and rollup_compact()
merging the rows that several slots hold.  After each phase,
spend_daily, initiative_economics and spend_vs_outcome_growth are compared
row for row, exactly, with reference queries written here over usage and
outcomes (converting each row at its own time through fx_rates), in three
time zones: UTC and New York (read from the rollups) and Kolkata (whose
days are not whole UTC hours: read from the ledger), and outcome_rollup
per team, initiative and currency with the outcomes.  An uncommitted
recording in another session is in neither.

Uses a database of its own.  Prints TAP.
"""
import random
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
from tap import check, comment, results

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 20261123
ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]
BASE = datetime(2026, 9, 28, 0, 0, tzinfo=timezone.utc)
# the hours in which the rates below take effect, are moved or deleted
CUT_HOURS = [datetime(2026, 10, d, h, 0, tzinfo=timezone.utc)
             for d, h in [(3, 14), (7, 11), (12, 5), (20, 9), (25, 18)]]

# the rate of a currency into the reporting one at a row's time: the newest
# direct rate, else the inverse of the newest reverse one
RATE = """(SELECT coalesce(
    (SELECT f.rate FROM tokenledger.fx_rates f
     WHERE f.currency = {cur} AND f.to_currency = current_setting('tokenledger.currency')
       AND f.effective_from <= {at} ORDER BY f.effective_from DESC LIMIT 1),
    (SELECT 1 / f.rate FROM tokenledger.fx_rates f
     WHERE f.to_currency = {cur} AND f.currency = current_setting('tokenledger.currency')
       AND f.effective_from <= {at} ORDER BY f.effective_from DESC LIMIT 1),
    CASE WHEN {cur} = current_setting('tokenledger.currency') THEN 1 END))"""

USAGE_ROWS = f"""
SELECT u.*, u.occurred_at::date AS day, date_trunc('month', u.occurred_at)::date AS month,
       CASE WHEN u.cost IS NULL THEN u.model
            ELSE coalesce(tokenledger.resolve_model(u.provider, u.model), u.model) END AS shown_model,
       CASE WHEN u.cost IS NULL OR x.rate IS NOT NULL THEN current_setting('tokenledger.currency')
            ELSE tokenledger.currency(u.cost) END AS cur,
       coalesce(tokenledger.amount(u.cost) * coalesce(x.rate, 1), 0) AS converted
FROM tokenledger.usage u
CROSS JOIN LATERAL (SELECT {RATE.format(cur="tokenledger.currency(u.cost)", at="u.occurred_at")} AS rate) x
"""

OUTCOME_ROWS = f"""
SELECT o.*, date_trunc('month', o.occurred_at)::date AS month,
       CASE WHEN o.value IS NULL OR x.rate IS NOT NULL THEN current_setting('tokenledger.currency')
            ELSE tokenledger.currency(o.value) END AS cur,
       coalesce(tokenledger.amount(o.value) * coalesce(x.rate, 1), 0) AS converted
FROM tokenledger.outcomes o
CROSS JOIN LATERAL (SELECT {RATE.format(cur="tokenledger.currency(o.value)", at="o.occurred_at")} AS rate) x
"""

SPEND_DAILY_REF = f"""
SELECT day, team, initiative, provider, shown_model, service_tier, environment, cur,
       coalesce(sum(requests) FILTER (WHERE entry = 'call'), 0),
       sum(tokenledger.input(tokens)), sum(tokenledger.output(tokens)),
       sum(tokenledger.cache_read(tokens)), sum(tokenledger.cache_write(tokens)),
       sum(tokenledger.cache_write_1h(tokens)), sum(tokenledger.reasoning(tokens)),
       round(sum(converted), 9),
       coalesce(sum(requests) FILTER (WHERE entry = 'call' AND cost IS NULL), 0)
FROM ({USAGE_ROWS}) r
GROUP BY day, team, initiative, provider, shown_model, service_tier, environment, cur
"""

SPEND_DAILY_VIEW = """
SELECT day, team, initiative, provider, model, service_tier, environment, currency, requests,
       input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
       reasoning_tokens, spend, unpriced_requests
FROM tokenledger.spend_daily
"""

MONTHS = f"""
SELECT coalesce(s.month, o.month) AS month, coalesce(s.initiative, o.initiative) AS initiative,
       coalesce(s.cur, o.cur) AS cur, coalesce(s.requests, 0) AS requests,
       coalesce(s.spend, 0) AS spend, coalesce(o.outcomes, 0) AS outcomes,
       coalesce(o.value, 0) AS value
FROM (SELECT month, initiative, cur, coalesce(sum(requests) FILTER (WHERE entry = 'call'), 0) AS requests,
             sum(converted) AS spend
      FROM ({USAGE_ROWS}) r GROUP BY 1, 2, 3) s
FULL JOIN (SELECT month, initiative, cur, sum(quantity) AS outcomes, sum(converted) AS value
           FROM ({OUTCOME_ROWS}) q GROUP BY 1, 2, 3) o
  ON o.month = s.month AND o.initiative = s.initiative AND o.cur = s.cur
"""

ECONOMICS_REF = f"""
SELECT m.month, m.initiative, i.team, i.owner, i.status, m.requests, round(m.spend, 9), m.outcomes,
       round(m.value, 9),
       CASE WHEN m.outcomes > 0 THEN round(m.spend / m.outcomes, 9) END,
       CASE WHEN m.spend <> 0 THEN (m.value - m.spend) / m.spend END,
       CASE WHEN t.total <> 0 THEN m.spend / t.total END,
       m.cur
FROM ({MONTHS}) m
LEFT JOIN tokenledger.initiatives i ON i.name = m.initiative
JOIN (SELECT month, cur, sum(spend) AS total FROM ({MONTHS}) x GROUP BY 1, 2) t
  ON t.month = m.month AND t.cur = m.cur
"""

ECONOMICS_VIEW = """
SELECT month, initiative, team, owner, status, requests, spend, outcomes, outcome_value,
       cost_per_outcome, roi, spend_share, currency
FROM tokenledger.initiative_economics
"""

GROWTH_REF = f"""
SELECT m.month, m.initiative, round(m.spend, 9), m.outcomes,
       CASE WHEN p.spend <> 0 THEN m.spend / p.spend END,
       CASE WHEN p.outcomes <> 0 THEN m.outcomes / p.outcomes END,
       CASE WHEN m.outcomes > 0 THEN round(m.spend / m.outcomes, 9) END,
       CASE WHEN m.outcomes > 0 AND p.outcomes > 0 AND p.spend <> 0
            THEN (m.spend / m.outcomes) / (p.spend / p.outcomes) END,
       m.cur
FROM ({MONTHS}) m
LEFT JOIN ({MONTHS}) p ON p.initiative = m.initiative AND p.cur = m.cur
                      AND p.month = (m.month - interval '1 month')::date
WHERE m.initiative IS NOT NULL
"""

GROWTH_VIEW = """
SELECT month, initiative, spend, outcomes, spend_growth, outcome_growth, cost_per_outcome,
       cost_per_outcome_growth, currency
FROM tokenledger.spend_vs_outcome_growth
"""

PAIRS = [("spend_daily", SPEND_DAILY_VIEW, SPEND_DAILY_REF),
         ("initiative_economics", ECONOMICS_VIEW, ECONOMICS_REF),
         ("spend_vs_outcome_growth", GROWTH_VIEW, GROWTH_REF)]


def rows_of(conn, sql):
    return sorted((tuple(r) for r in conn.execute(sql).fetchall()), key=repr)


def compare(dsn, phase):
    """Every view against its reference, in each time zone."""
    conn = psycopg.connect(dsn, autocommit=True)
    for zone in ZONES:
        conn.execute(f"SET TimeZone = '{zone}'")
        for name, view, ref in PAIRS:
            got = rows_of(conn, view)
            want = rows_of(conn, ref)
            diff = [f"view only: {r}" for r in got if r not in want] + \
                   [f"ledger only: {r}" for r in want if r not in got]
            check(got == want and len(got) > 0,
                  f"{phase}: {name} equals the ledger in {zone} ({len(got)} rows)", diff)
    # the outcome rollup by its own key, team included
    got = rows_of(conn, """SELECT team, initiative, currency, sum(entries), sum(outcomes), sum(outcome_value)
                           FROM tokenledger.outcome_rollup GROUP BY 1, 2, 3 HAVING sum(entries) <> 0""")
    want = rows_of(conn, """SELECT team, initiative, tokenledger.currency(value), count(*), sum(quantity),
                                   coalesce(sum(tokenledger.amount(value)), 0)
                            FROM tokenledger.outcomes GROUP BY 1, 2, 3""")
    check(got == want and len(got) > 0,
          f"{phase}: outcome_rollup per team, initiative and currency equals the outcomes ({len(got)} rows)",
          [f"rollup only: {r}" for r in got if r not in want] + [f"ledger only: {r}" for r in want if r not in got])
    conn.close()


class Workload:
    def __init__(self, dsn, seed):
        self.dsn = dsn
        self.rng = random.Random(seed)

    def row(self, rng, late=False):
        hours = rng.randrange(0, 24 * 40)
        at = BASE + timedelta(hours=hours, minutes=rng.randrange(60), seconds=rng.randrange(60))
        if late:
            at -= timedelta(days=30)
        elif rng.random() < 0.2:
            # within an hour in which an exchange rate takes effect
            at = rng.choice(CUT_HOURS) + timedelta(minutes=rng.randrange(60), seconds=rng.randrange(60))
        model = rng.choice(["m1", "m1-2026-01-01", "m2", "m3", "m3"])
        cost = None
        if rng.random() < 0.15:
            cost = f"{Decimal(rng.randrange(0, 5000)) / 1000} {rng.choice(['USD', 'EUR', 'GBP'])}"
        return (at, "acme", model, rng.choice(["standard", "standard", "batch"]),
                f"in={rng.randrange(5000)} out={rng.randrange(900)} cache_read={rng.randrange(300)}",
                rng.choice([1, 1, 1, 3]), cost,
                rng.choice(["t1", "t2", None]), rng.choice(["support", "coding", "marketing", None]),
                rng.choice(["prod", "dev", None]))

    INSERT = """INSERT INTO tokenledger.usage (occurred_at, provider, model, service_tier, tokens,
                requests, cost, team, initiative, environment)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""

    def session(self, seed, transactions):
        rng = random.Random(seed)
        conn = psycopg.connect(self.dsn)
        # recorders at every isolation level, side by side
        conn.isolation_level = rng.choice([psycopg.IsolationLevel.READ_COMMITTED,
                                           psycopg.IsolationLevel.REPEATABLE_READ,
                                           psycopg.IsolationLevel.SERIALIZABLE])
        for n in range(transactions):
            kind = rng.random()
            with conn.cursor() as cur:
                if kind < 0.35:
                    cur.execute(self.INSERT, self.row(rng, late=rng.random() < 0.1))
                elif kind < 0.5:
                    cur.executemany(self.INSERT, [self.row(rng) for _ in range(rng.randrange(2, 15))])
                elif kind < 0.6:
                    with cur.copy("""COPY tokenledger.usage (occurred_at, provider, model, service_tier,
                                     tokens, requests, cost, team, initiative, environment)
                                     FROM STDIN""") as cp:
                        for _ in range(rng.randrange(10, 60)):
                            cp.write_row(self.row(rng))
                elif kind < 0.7:
                    cur.execute(self.INSERT, self.row(rng))
                    cur.execute("SAVEPOINT s")
                    cur.executemany(self.INSERT, [self.row(rng) for _ in range(3)])
                    cur.execute("ROLLBACK TO SAVEPOINT s")
                    cur.execute(self.INSERT, self.row(rng))
                elif kind < 0.78:
                    cur.executemany(self.INSERT, [self.row(rng) for _ in range(4)])
                    conn.rollback()
                    continue
                elif kind < 0.9:
                    at = BASE + timedelta(hours=rng.randrange(24 * 40), minutes=rng.randrange(60))
                    value = rng.choice([None, None, "0.25 USD", "0.20 EUR", "1.5 GBP"])
                    cur.execute("""SELECT tokenledger.record_outcome(%s, 'done', %s, occurred_at => %s,
                                   value => %s::tokenledger.cost)""",
                                (rng.choice(["support", "coding", "marketing"]),
                                 Decimal(rng.randrange(1, 40)) / 4, at, value))
                elif conn.isolation_level == psycopg.IsolationLevel.SERIALIZABLE:
                    # (reading the ledger before writing it is the application's
                    # own read/write dependency: not done at SERIALIZABLE here)
                    cur.execute(self.INSERT, self.row(rng))
                else:
                    # a credit or a charge, in the corrected call's currency
                    cur.execute("SELECT id, tokenledger.currency(cost) FROM tokenledger.usage"
                                " WHERE entry = 'call' AND cost IS NOT NULL"
                                " ORDER BY id DESC LIMIT 1 OFFSET %s", (rng.randrange(20),))
                    found = cur.fetchone()
                    if found:
                        cur.execute("SELECT tokenledger.adjust(%s, %s::tokenledger.cost, 'correction')",
                                    (found[0], f"{Decimal(rng.randrange(-999, 999)) / 10000} {found[1]}"))
            conn.commit()
        conn.close()

    def run(self, sessions, transactions):
        errors = []

        def work(seed):
            try:
                self.session(seed, transactions)
            except Exception as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(self.rng.randrange(1 << 30),))
                   for _ in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors


def compact_busy_slot(dsn):
    """A reprice() leaves +A, +B and -B of one unpriced key in three slots;
    compacting while the slot of +B is busy merges +A and -B, whose entries
    net to 0 but whose tokens do not: the merged row is kept."""
    s = psycopg.connect(dsn, autocommit=True)
    ins = """INSERT INTO tokenledger.usage (occurred_at, provider, model, service_tier, tokens, requests, team)
             VALUES (%s, 'acme', 'mx', 'standard', %s, 1, 'tx')"""
    a, b, c = (psycopg.connect(dsn) for _ in range(3))
    a.execute(ins, ("2026-12-01 10:10+00", "in=100"))
    b.execute(ins, ("2026-12-01 10:40+00", "in=7"))
    a.commit()
    b.commit()
    s.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                 VALUES ('acme', 'mx', '2026-12-01 10:30+00', 'in=1 USD/1M')""")
    c.execute("SELECT tokenledger.reprice()")
    c.commit()
    b.execute(ins, ("2026-12-05 10:40+00", "in=1"))
    s.execute("SELECT tokenledger.rollup_compact('2027-01-01')")
    b.rollback()
    s.execute("SET TimeZone = 'UTC'")
    got = s.execute("""SELECT sum(input_tokens), sum(requests), sum(unpriced_requests) FROM tokenledger.spend_daily
                       WHERE team = 'tx'""").fetchone()
    check(got == (107, 2, 1), f"compacting beside a busy slot keeps every token (107, 2, 1): {got}")
    for conn in (a, b, c, s):
        conn.close()


def rate_beside_outcome_recorder(dsn):
    """An exchange rate added while a recorder that wrote an outcome goes on
    to write a call: neither waits for the other for good."""
    s = psycopg.connect(dsn, autocommit=True)
    rec = psycopg.connect(dsn)
    rec.execute("SELECT tokenledger.record_outcome('support', 'done', 1, occurred_at => '2026-12-02 10:00+00')")
    out = {}

    def add_rate():
        try:
            s.execute("""INSERT INTO tokenledger.fx_rates (currency, to_currency, rate, effective_from)
                         VALUES ('EUR', 'USD', 1.05, '2026-12-02 10:30+00')""")
            out["rate"] = "ok"
        except Exception as e:  # reported below
            out["rate"] = repr(e)

    t = threading.Thread(target=add_rate)
    t.start()
    time.sleep(0.5)
    try:
        rec.execute("""INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, team)
                       VALUES ('2026-12-02 10:45+00', 'acme', 'm2', 'in=1000', 't1')""")
        rec.commit()
        out["recorder"] = "ok"
    except Exception as e:  # reported below
        out["recorder"] = repr(e)
    t.join()
    check(out == {"rate": "ok", "recorder": "ok"},
          f"a rate added beside a recorder of an outcome and a call: both commit {out}")
    rec.close()
    s.close()


def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS tokenledger_rollups_test")
    admin.execute("CREATE DATABASE tokenledger_rollups_test")
    dsn = psycopg.conninfo.make_conninfo("", dbname="tokenledger_rollups_test")
    planned = (3 * 3 + 1) * 7 + 7
    print(f"1..{planned}")
    comment(f"seed {SEED}")
    try:
        setup = psycopg.connect(dsn, autocommit=True)
        setup.execute("CREATE EXTENSION tokenledger")
        setup.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate) VALUES
                         ('acme', 'm1', '2020-01-01', 'in=1 out=2 cache_read=0.1 USD/1M'),
                         ('acme', 'm1', '2026-10-10', 'in=1.5 out=2.5 cache_read=0.1 USD/1M'),
                         ('acme', 'm2', '2020-01-01', 'in=0.7 out=3.3 EUR/1M')""")
        setup.execute("""INSERT INTO tokenledger.fx_rates (currency, to_currency, rate, effective_from) VALUES
                         ('EUR', 'USD', 1.0812345, '2026-01-01'),
                         ('EUR', 'USD', 1.0731, '2026-10-03 14:25:00+00'),
                         ('USD', 'EUR', 0.93, '2026-10-20 09:40:00+00')""")
        # initiatives known beforehand: sessions that register the same new
        # initiatives in different orders can deadlock (a known limit)
        setup.execute("""INSERT INTO tokenledger.initiatives (name, team, owner) VALUES
                         ('support', 't1', 'ana'), ('coding', 't2', 'raj'), ('marketing', 't1', 'lee')""")
        work = Workload(dsn, SEED)

        errors = work.run(sessions=4, transactions=120)
        check(not errors, "phase 1: four sessions recorded without errors", errors)
        compare(dsn, "recorded")

        # the rows several slots hold for one key and hour, merged; a slot in
        # use by an open recorder is left for the next run
        before = setup.execute("SELECT count(*) FROM tokenledger.usage_rollup").fetchone()[0]
        busy = psycopg.connect(dsn)
        busy.execute(Workload.INSERT, work.row(random.Random(3)))
        saved = setup.execute("SELECT tokenledger.rollup_compact('2027-01-01')").fetchone()[0]
        after = setup.execute("SELECT count(*) FROM tokenledger.usage_rollup").fetchone()[0]
        busy.commit()
        busy.close()
        check(saved > 0 and after < before,
              f"rollup_compact() merged the slots' rows: {before} rows before, {after} after")
        compare(dsn, "compacted")

        # a prepared transaction, and an uncommitted one in another session
        c = psycopg.connect(dsn)
        c.execute(Workload.INSERT, work.row(random.Random(1)))
        c.execute("PREPARE TRANSACTION 'rollups'")
        c.close()
        setup.execute("COMMIT PREPARED 'rollups'")
        open_conn = psycopg.connect(dsn)
        open_conn.execute(Workload.INSERT, work.row(random.Random(2)))
        compare(dsn, "prepared and open")
        open_conn.rollback()
        open_conn.close()

        # a price for m3 and reprice(); a changed price for m1 and rerate()
        setup.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                         VALUES ('acme', 'm3', '2020-01-01', 'in=0.3 out=0.9 USD/1M')""")
        n = setup.execute("SELECT tokenledger.reprice()").fetchone()[0]
        check(n > 0, f"reprice() priced {n} calls")
        setup.execute("""UPDATE tokenledger.prices SET rate = 'in=1.25 out=2 cache_read=0.1 USD/1M'
                         WHERE provider = 'acme' AND model = 'm1' AND effective_from = '2026-10-10'""")
        n = setup.execute("""SELECT tokenledger.rerate('acme', 'm1', '2026-01-01', '2027-01-01')""").fetchone()[0]
        check(n > 0, f"rerate() appended {n} corrections")
        compare(dsn, "repriced and rerated")

        # rates that take effect within an hour, corrected, deleted
        setup.execute("""INSERT INTO tokenledger.fx_rates (currency, to_currency, rate, effective_from) VALUES
                         ('EUR', 'USD', 1.1102, '2026-10-07 11:17:30+00'),
                         ('GBP', 'USD', 1.2707, '2026-10-12 05:05:00+00')""")
        setup.execute("""UPDATE tokenledger.fx_rates SET effective_from = '2026-10-25 18:33:00+00'
                         WHERE currency = 'USD' AND to_currency = 'EUR'""")
        setup.execute("""DELETE FROM tokenledger.fx_rates WHERE effective_from = '2026-10-03 14:25:00+00'""")
        compare(dsn, "exchange rates changed")

        errors = work.run(sessions=3, transactions=80)
        check(not errors, "phase 2: three more sessions recorded without errors", errors)
        compare(dsn, "recorded again")

        compact_busy_slot(dsn)
        rate_beside_outcome_recorder(dsn)
        compare(dsn, "after a compaction beside a busy slot and a rate beside recorders")
    finally:
        admin.execute("DROP DATABASE IF EXISTS tokenledger_rollups_test WITH (FORCE)")
    return 0 if all(results) and len(results) == planned else 1


if __name__ == "__main__":
    sys.exit(main())
