#!/usr/bin/python3
"""Budget alerts reach a listener in another session, once, at commit.

A listener session LISTENs on tokenledger_budget; a recorder session records
spend that crosses a budget's thresholds.  Nothing arrives before the
recorder commits, nothing after a rollback, and each threshold arrives once.
Uses a database of its own (the recordings commit).  Prints TAP.
"""
import json
import sys

import psycopg
from tap import check, results


received = []


def pending(conn):
    """Notifications that have arrived: a round trip makes the connection read them."""
    conn.execute("SELECT 1")
    got = list(received)
    received.clear()
    return got


def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS tokenledger_notify_test")
    admin.execute("CREATE DATABASE tokenledger_notify_test")
    try:
        run(psycopg.conninfo.make_conninfo("", dbname="tokenledger_notify_test"))
    finally:
        admin.execute("DROP DATABASE IF EXISTS tokenledger_notify_test WITH (FORCE)")


def run(dsn):
    recorder = psycopg.connect(dsn)
    listener = psycopg.connect(dsn, autocommit=True)
    recorder.execute("CREATE EXTENSION tokenledger")
    recorder.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                        VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M')""")
    recorder.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                        VALUES ('support daily', 'team', 'support', 'day', '10 USD', '{0.5,0.8,1.0}')""")
    recorder.commit()
    listener.add_notify_handler(lambda n: received.append(json.loads(n.payload)))
    listener.execute("LISTEN tokenledger_budget")

    insert = ("INSERT INTO tokenledger.usage (provider, model, tokens, team) "
              "VALUES ('acme', 'm', tokenledger.tokens(%s, 0), 'support')")
    recorder.execute(insert, (6_000_000,))          # $6: crosses 50%
    check(pending(listener) == [], "nothing is sent before the recording commits")
    recorder.commit()
    got = pending(listener)
    check([g["threshold"] for g in got] == [0.5], f"the 50% alert arrives at commit: {got}")
    check(got and got[0]["budget"] == "support daily" and got[0]["scope"] == "team"
          and got[0]["period"] == "day" and got[0]["spent"] == 6 and got[0]["amount"] == 10,
          "the payload names the budget, scope, period, threshold, spent and amount")

    recorder.execute(insert, (3_000_000,))          # $9: would cross 80%
    recorder.rollback()
    check(pending(listener) == [], "a rolled-back recording sends nothing")
    cur = recorder.execute("SELECT count(*) FROM tokenledger.budget_alerts")
    check(cur.fetchone()[0] == 1, "and adds no alert row")
    recorder.rollback()

    recorder.execute(insert, (5_000_000,))          # $11: crosses 80% and 100%
    recorder.commit()
    got = pending(listener)
    check(sorted(g["threshold"] for g in got) == [0.8, 1.0], f"80% and 100% arrive once each: {got}")
    recorder.execute(insert, (1_000_000,))          # $12: nothing new
    recorder.commit()
    check(pending(listener) == [], "more spend past every threshold sends nothing")
    cur = recorder.execute("SELECT threshold FROM tokenledger.budget_alerts ORDER BY threshold")
    check([float(r[0]) for r in cur.fetchall()] == [0.5, 0.8, 1.0], "exactly one alert row per threshold")
    recorder.rollback()
    recorder.close()
    listener.close()


if __name__ == "__main__":
    print("1..8")
    try:
        main()
    except Exception as e:
        print(f"not ok {len(results) + 1} - notify test crashed: {e!r}")
        sys.exit(1)
    sys.exit(0 if all(results) and len(results) == 8 else 1)
