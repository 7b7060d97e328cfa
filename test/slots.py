#!/usr/bin/python3
"""The accounting path with more recorders at once than it has counter slots.

A recording transaction writes its budget counters and rollups into a slot
of its own (64 shared slots, then one per backend beyond them).  Here 72
connections each open a recording transaction and hold it, so that every
shared slot is taken and eight recorders write into slots of their own;
they record more in later statements (one in a savepoint rolled back), and
then commit in a shuffled order, some rolling back and two through
two-phase commit.  A second round crosses the budgets' alert thresholds
while the slots are all taken.  Afterwards: the counters equal the ledger
for every budget and period, the rollups equal the ledger, each threshold
reached has exactly one alert and one NOTIFY and no other has any, and each
budget's bound is at least its spend.  Then the alert check's bounds: far
below a threshold, commits do not read the counters, even after a row dated
in a later period (whose spend the bound keeps apart), and counters written
by SQL take their budget's bound away.

Uses a database of its own, through the libpq environment (PGHOST, PGPORT,
...), and drops it.  Prints TAP.
"""
import json
import os
import random
import sys
import time
from decimal import Decimal

import psycopg
from tap import check, comment, results

DBNAME = "tokenledger_slots_test"
SEED = int(os.environ.get("TOKENLEDGER_SEED") or 20261123)
SLOTS = 64
RECORDERS = SLOTS + 8
TEAMS = ["red", "green", "blue"]

INSERT = """INSERT INTO tokenledger.usage (provider, model, tokens, cost, team, principal)
            VALUES ('acme', 'm1', 'in=100 out=10', %s::tokenledger.cost, %s, %s)"""


def counters_against_ledger(db):
    """Rows where a budget period's counters and the ledger disagree."""
    return db.execute("""
        WITH counted AS (
            SELECT budget_id, period_start, tokenledger.amount(tokenledger.sum(spent)) AS spent
            FROM tokenledger.budget_spend GROUP BY 1, 2),
        ledger AS (
            SELECT b.id AS budget_id,
                   date_trunc(b.period, u.occurred_at, b.time_zone) AS period_start,
                   tokenledger.amount(tokenledger.sum(u.cost)) AS spent
            FROM tokenledger.budgets b JOIN tokenledger.usage u
              ON b.scope = 'global' OR (b.scope = 'team' AND u.team = b.scope_value)
            WHERE u.cost IS NOT NULL GROUP BY 1, 2)
        SELECT budget_id, period_start, c.spent, l.spent
        FROM counted c FULL JOIN ledger l USING (budget_id, period_start)
        WHERE c.spent IS DISTINCT FROM l.spent AND coalesce(c.spent, l.spent) <> 0""").fetchall()


def round_of(dsn, rng, cost, label, listener_notes):
    """One round: RECORDERS transactions open at once, then ended."""
    conns = []
    committed = Decimal(0)
    try:
        for i in range(RECORDERS):
            c = psycopg.connect(dsn)
            if i % 4 == 1:
                c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            elif i % 4 == 2:
                c.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            c.execute(INSERT, (f"{cost} USD", TEAMS[i % 3], f"p{i}"))
            conns.append(c)
        # every recorder holds its slot now; each records again
        for i, c in enumerate(conns):
            c.execute(INSERT, (f"{cost} USD", TEAMS[(i + 1) % 3], f"p{i}"))
            if i % 5 == 0:
                c.execute("SAVEPOINT s")
                c.execute(INSERT, (f"{cost * 7} USD", TEAMS[i % 3], f"p{i}"))
                c.execute("ROLLBACK TO SAVEPOINT s")
        order = list(range(RECORDERS))
        rng.shuffle(order)
        prepared = []
        for n, i in enumerate(order):
            c = conns[i]
            if n % 6 == 5:
                c.rollback()
            elif n in (3, 40):
                gid = f"slots-{label}-{i}"
                c.execute(f"PREPARE TRANSACTION '{gid}'")
                prepared.append(gid)
                committed += 2 * cost
            else:
                c.commit()
                committed += 2 * cost
        with psycopg.connect(dsn, autocommit=True) as a:
            for gid in prepared:
                a.execute(f"COMMIT PREPARED '{gid}'")
            # a prepared transaction does not check alerts: the next
            # recording against each budget does (these add no spend)
            for team in TEAMS:
                a.execute(INSERT, ("0 USD", team, "after"))
            slots = a.execute("""SELECT count(DISTINCT slot), max(slot) FROM tokenledger.budget_spend
                                 WHERE slot >= 0""").fetchone()
        return committed, slots
    finally:
        for c in conns:
            c.close()


def main():
    admin = psycopg.connect("", autocommit=True)
    max_conn = int(admin.execute("SHOW max_connections").fetchone()[0])
    admin.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
    admin.execute(f"CREATE DATABASE {DBNAME}")
    dsn = psycopg.conninfo.make_conninfo("", dbname=DBNAME)
    rng = random.Random(SEED)
    print("1..15")
    comment(f"seed {SEED}; {RECORDERS} recorders, {SLOTS} shared slots")
    try:
        db = psycopg.connect(dsn, autocommit=True)
        db.execute("CREATE EXTENSION tokenledger")
        db.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                      VALUES ('acme', 'm1', '2020-01-01', 'in=1 out=2 USD/1M')""")
        # 60 of the 72 recorders commit two calls each: 15 USD in the first
        # round (0.125 a call), 30 in the second (0.25); about a third of
        # the calls are the red team's.  The first round stays below every
        # threshold; the second crosses 50% of the global budget and 80% of
        # the red team's (and perhaps 100%: the expected alerts are derived
        # from the spend)
        db.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode, warn_at)
                      VALUES ('all', 'global', NULL, 'month', '80 USD', 'alert', '{0.5, 0.9}'),
                             ('red', 'team', 'red', 'year', '15 USD', 'alert', '{0.8, 1.0}'),
                             ('blue', 'team', 'blue', 'day', '1000 USD', 'alert', '{0.5}')""")
        listener = psycopg.connect(dsn, autocommit=True)
        received = []
        listener.add_notify_handler(lambda n: received.append(n.payload))
        listener.execute("LISTEN tokenledger_budget")
        check(max_conn >= RECORDERS + 8,
              f"max_connections ({max_conn}) leaves room for {RECORDERS} recorders")

        first, slots = round_of(dsn, rng, Decimal("0.125"), "a", None)
        check(slots[1] >= SLOTS,
              f"round 1: {slots[0]} slots written, the highest {slots[1]}: "
              f"recorders beyond the {SLOTS} shared slots wrote slots of their own")
        bad = counters_against_ledger(db)
        check(not bad, "round 1: every budget's counters equal the ledger", map(str, bad))
        alerts = db.execute("SELECT count(*) FROM tokenledger.budget_alerts").fetchone()[0]
        check(alerts == 0, f"round 1: below every threshold, no alert ({alerts})")

        second, slots = round_of(dsn, rng, Decimal("0.25"), "b", None)
        check(slots[0] > SLOTS and slots[1] >= SLOTS,
              f"round 2: {slots[0]} slots written, the highest {slots[1]}")
        bad = counters_against_ledger(db)
        check(not bad, "round 2: every budget's counters equal the ledger", map(str, bad))

        # the alerts are those the committed spend reached, each once
        expected = db.execute("""
            SELECT b.name, w
            FROM tokenledger.budgets b, unnest(b.warn_at) w,
                 LATERAL (SELECT tokenledger.amount(tokenledger.sum(spent)) AS spent
                          FROM tokenledger.budget_spend s WHERE s.budget_id = b.id) s
            WHERE s.spent >= w * tokenledger.amount(b.amount) ORDER BY 1, 2""").fetchall()
        got = db.execute("""SELECT b.name, a.threshold FROM tokenledger.budget_alerts a
                            JOIN tokenledger.budgets b ON b.id = a.budget_id ORDER BY 1, 2""").fetchall()
        check(len(expected) >= 2 and got == expected,
              f"round 2: one alert for each threshold the spend reached ({len(expected)})",
              [f"expected {expected}", f"got {got}"])
        time.sleep(0.5)
        listener.execute("SELECT 1")  # delivers the notifications received
        notes = sorted((n["budget"], Decimal(str(n["threshold"])))
                       for n in map(json.loads, received))
        check(notes == [(n, Decimal(w)) for n, w in expected],
              f"one NOTIFY for each alert ({len(notes)})", [f"got {notes}"])

        total = db.execute("""SELECT tokenledger.amount(tokenledger.sum(cost))
                              FROM tokenledger.usage""").fetchone()[0]
        check(total == first + second,
              f"the ledger holds exactly the committed spend ({total} = {first} + {second})")
        rollup = db.execute("""SELECT count(DISTINCT slot), sum(spend), sum(requests)
                               FROM tokenledger.usage_rollup""").fetchone()
        ledger = db.execute("""SELECT sum(tokenledger.amount(cost)), sum(requests)
                               FROM tokenledger.usage""").fetchone()
        check(rollup[0] > SLOTS and (rollup[1], rollup[2]) == ledger,
              f"the rollups, in {rollup[0]} slots, equal the ledger ({rollup[1]}, {rollup[2]} requests)")
        under = db.execute("""
            SELECT b.name, bb.bound, s.spent
            FROM tokenledger.budgets b
            JOIN tokenledger.budget_bounds bb ON bb.budget_id = b.id
            JOIN LATERAL (SELECT sum(tokenledger.amount(spent)) * 1000000000 AS spent
                          FROM tokenledger.budget_spend x
                          WHERE x.budget_id = b.id AND x.period_start = bb.period_start) s ON true
            WHERE bb.bound < s.spent""").fetchall()
        nbounds = db.execute("SELECT count(*) FROM tokenledger.budget_bounds").fetchone()[0]
        check(nbounds == 3 and not under,
              f"each of the {nbounds} budgets' bounds is at least its spend", map(str, under))

        # far below its thresholds, a present-period commit does not read a
        # budget's counters, even after a row dated in a later period
        # (the global budget, past its first threshold, is read at every
        # commit: it goes; the blue team's day budget stays far below)
        db.execute("DELETE FROM tokenledger.budgets WHERE name = 'all'")
        db.execute("""INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, cost, team, principal)
                      VALUES (now() + interval '400 days', 'acme', 'm1', 'in=100 out=10', '0.01 USD', 'blue', 'ahead')""")
        db.execute("SELECT pg_stat_force_next_flush()")
        before = db.execute("""SELECT idx_scan FROM pg_stat_user_indexes
                               WHERE indexrelname = 'budget_spend_pkey'""").fetchone()[0]
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        lsn = db.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        with psycopg.connect(dsn, autocommit=True) as c:
            for i in range(100):
                c.execute(INSERT, ("0.001 USD", "blue", "quiet"))
        # the bound is raised with a lease: later commits draw on it, and
        # neither write the page nor WAL-log it
        bound_writes = db.execute("""
            SELECT count(*) FROM pg_get_wal_records_info(%s, pg_current_wal_lsn())
            WHERE resource_manager = 'Generic'
              AND block_ref LIKE '%%rel ' || (SELECT dattablespace FROM pg_database WHERE datname = current_database())
                  || '/' || (SELECT oid FROM pg_database WHERE datname = current_database())
                  || '/' || pg_relation_filenode('tokenledger.budget_bounds') || ' %%'""", (lsn,)).fetchone()[0]
        blue = db.execute("""
            SELECT x.bound, s.spent, 0.5 * tokenledger.amount(b.amount) * 1000000000
            FROM tokenledger.budget_bounds x JOIN tokenledger.budgets b ON b.id = x.budget_id AND b.name = 'blue',
                 LATERAL (SELECT sum(tokenledger.amount(spent)) * 1000000000 AS spent
                          FROM tokenledger.budget_spend y
                          WHERE y.budget_id = x.budget_id AND y.period_start = x.period_start) s""").fetchone()
        check(bound_writes <= 10 and blue[1] <= blue[0] < blue[2],
              f"100 commits wrote the blue budget's bound {bound_writes} times (leases); "
              f"it stays between the spend and the threshold ({blue[1]} <= {blue[0]} < {blue[2]} nanos)")
        time.sleep(0.5)
        db.execute("SELECT pg_stat_clear_snapshot()")
        after = db.execute("""SELECT idx_scan FROM pg_stat_user_indexes
                              WHERE indexrelname = 'budget_spend_pkey'""").fetchone()[0]
        check(after - before < 20,
              f"100 commits far below the blue budget's threshold read its counters "
              f"{after - before} times through the index (a row dated ahead did not stop that)")
        ahead = db.execute("""SELECT x.ahead FROM tokenledger.budget_bounds x
                              JOIN tokenledger.budgets b ON b.id = x.budget_id AND b.name = 'blue'""").fetchone()
        check(ahead is not None and ahead[0] >= 10**7,
              f"the spend dated ahead is in the blue budget's bound for later periods ({ahead})")
        # counters written by SQL (as a logical replication's apply writes
        # them) take the budget's bound with it: its counters are read again
        db.execute("UPDATE tokenledger.budget_spend SET spent = spent WHERE budget_id = "
                   "(SELECT id FROM tokenledger.budgets WHERE name = 'blue')")
        left = db.execute("""SELECT b.name FROM tokenledger.budget_bounds x
                             JOIN tokenledger.budgets b ON b.id = x.budget_id ORDER BY 1""").fetchall()
        check(left == [("red",)], f"an UPDATE of blue's counters removed its bound; left: {left}")
        listener.close()
        db.close()
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        admin.close()
    return 0 if all(results) and len(results) == 15 else 1


if __name__ == "__main__":
    sys.exit(main())
