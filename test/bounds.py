#!/usr/bin/python3
"""The alert check's budget bounds where a statement or a table moves under them.

budget_bounds keeps, per budget, an upper bound of its period's spend, so
that a commit far below a budget's thresholds need not read its counters;
the bound must never be below the spend.  Two ways it was:

- one statement recording a budget's present period and a later one (two
  rows, two dates): both additions go to the same row of the same page, and
  the second must add to what the first wrote, whichever comes first;
- a recording backend remembers where its budget's row was; a recount
  (another session) moves the row to the table's first page and VACUUM cuts
  the table short: the remembered place is past the end, and the row must
  be looked up again, not its spend left out.

Each case ends with the bound at least the spend and the alerts of the
thresholds reached.  Uses a database of its own, through the libpq
environment (PGHOST, PGPORT, ...), and drops it.  Prints TAP.
"""
import sys
from decimal import Decimal

import psycopg
from tap import check, results

DBNAME = "tokenledger_bounds_test"
INSERT = """INSERT INTO tokenledger.usage (provider, model, tokens, cost, team, principal)
            VALUES ('acme', 'm1', 'in=100 out=10', %s::tokenledger.cost, %s, 'x')"""
STATE = """
    SELECT x.bound, x.ahead,
           (SELECT coalesce(sum(tokenledger.amount(spent)), 0) * 1000000000
            FROM tokenledger.budget_spend s
            WHERE s.budget_id = x.budget_id AND s.period_start = x.period_start),
           (SELECT coalesce(array_agg(threshold ORDER BY threshold), '{}')
            FROM tokenledger.budget_alerts a WHERE a.budget_id = x.budget_id)
    FROM tokenledger.budget_bounds x JOIN tokenledger.budgets b ON b.id = x.budget_id
    WHERE b.name = %s"""


def two_periods(db):
    """One INSERT: 600 USD today, 0.01 USD k days ahead, for k = 2..21."""
    wrong = []
    for k in range(2, 22):
        team = f"t{k}"
        db.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                      VALUES (%s, 'team', %s, 'day', '1000 USD', '{0.5}')""", (team, team))
        db.execute(f"""INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, cost, team, principal)
                       VALUES (now(), 'acme', 'm1', 'in=100 out=10', '600 USD', %s, 'x'),
                              (now() + interval '{k} days', 'acme', 'm1', 'in=100 out=10', '0.01 USD', %s, 'x')""",
                   (team, team))
        bound, ahead, spent, alerts = db.execute(STATE, (team,)).fetchone()
        if bound < spent or ahead < 10**7 or alerts != [Decimal("0.5")]:
            wrong.append(f"{k} days ahead: bound {bound}, spent {spent}, ahead {ahead}, alerts {alerts}")
    return wrong


def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
    admin.execute(f"CREATE DATABASE {DBNAME}")
    dsn = psycopg.conninfo.make_conninfo("", dbname=DBNAME)
    print("1..4")
    try:
        db = psycopg.connect(dsn, autocommit=True)
        db.execute("CREATE EXTENSION tokenledger")
        db.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                      VALUES ('acme', 'm1', '2020-01-01', 'in=1 out=2 USD/1M')""")

        wrong = two_periods(db)
        check(not wrong, "one statement recording today and a later day: each of 20 budgets' bound "
              "holds today's spend and its ahead the later day's, and today's alert is raised", wrong)

        # 400 budgets come and go, so that blue's bound row sits on a later page
        db.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                      SELECT 'f' || g, 'team', 'f' || g, 'day', '1000 USD', '{0.5}' FROM generate_series(1, 400) g""")
        db.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                      VALUES ('blue', 'team', 'blue', 'day', '2000 USD', '{0.5,0.9}')""")
        db.execute("DELETE FROM tokenledger.budgets WHERE name LIKE 'f%' OR name LIKE 't%'")
        db.execute("VACUUM tokenledger.budget_bounds")
        recorder = psycopg.connect(dsn, autocommit=True)
        recorder.execute(INSERT, ("0.01 USD", "blue"))
        before = db.execute("""SELECT (x.ctid::text::point)[0] FROM tokenledger.budget_bounds x
                               JOIN tokenledger.budgets b ON b.id = x.budget_id AND b.name = 'blue'""").fetchone()[0]
        db.execute("SELECT tokenledger.budget_recount(id) FROM tokenledger.budgets WHERE name = 'blue'")
        db.execute("VACUUM tokenledger.budget_bounds")
        pages = db.execute("SELECT pg_relation_size('tokenledger.budget_bounds') / 8192").fetchone()[0]
        check(before >= pages,
              f"the recount moved blue's bound from page {before:.0f} and VACUUM cut the table to {pages} page(s)")

        recorder.execute(INSERT, ("1200 USD", "blue"))
        bound, _, spent, alerts = db.execute(STATE, ("blue",)).fetchone()
        check(bound >= spent and alerts == [Decimal("0.5")],
              f"the recorder that remembered the old place counts its 1,200 USD in the bound "
              f"({bound} >= {spent} nanos); alert at 0.5: {alerts}")
        other = psycopg.connect(dsn, autocommit=True)
        other.execute(INSERT, ("700 USD", "blue"))
        bound, _, spent, alerts = db.execute(STATE, ("blue",)).fetchone()
        check(bound >= spent and alerts == [Decimal("0.5"), Decimal("0.9")],
              f"another recorder's 700 USD reaches 0.9 of 2,000 USD and its alert is raised "
              f"(bound {bound} >= {spent} nanos; alerts {alerts})")
        recorder.close()
        other.close()
        db.close()
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        admin.close()
    return 0 if all(results) and len(results) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
