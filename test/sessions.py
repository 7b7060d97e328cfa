#!/usr/bin/python3
"""Budgets under real concurrency: several sessions at once.

- A recorder whose commit checks the alerts of two budgets and a reserver
  that locks the same budgets do not deadlock: both take budget locks in
  id order, and the recording commits.
- Thresholds crossed together by several recorders, none of which crosses
  alone, raise exactly one alert, without a later recording.
- Concurrent rerate() runs of one model append each correction once.
- A budget created while a recorder is in flight counts that recorder's row
  once: the count of the ledger waits for it.
- A recorder with more backends recording than there are counter slots
  still counts every row.

Uses a database of its own.  Prints TAP.
"""
import sys
import threading
from decimal import Decimal

import psycopg

results = []


def check(ok, description):
    results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {description}")
    sys.stdout.flush()


def connect(dsn, autocommit=False):
    conn = psycopg.connect(dsn, autocommit=autocommit)
    conn.execute("SET statement_timeout = '30s'")
    conn.commit() if not autocommit else None
    return conn


def in_thread(fn):
    """Run fn in a thread; return a join() that re-raises its exception."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as e:  # reported by the caller
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()

    def join(timeout=30):
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError("the session is still waiting")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    return join


def waiting_for_lock(admin, pid):
    return admin.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                         (pid,)).fetchone()[0]


def wait_until(pred, timeout=10.0):
    import time
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def deadlock_at_commit(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode, warn_at)
                     VALUES ('lock one', 'team', 'dl', 'total', '100 USD', 'block', '{0.01}'),
                            ('lock two', 'app', 'dl-app', 'total', '100 USD', 'block', '{0.01}')""")
    ids = [r[0] for r in admin.execute(
        "SELECT id FROM tokenledger.budgets WHERE name IN ('lock one', 'lock two') ORDER BY id")]
    recorder = connect(dsn)
    reserver = connect(dsn)
    # the recorder's row crosses a threshold of both budgets: its commit
    # checks both, under their locks
    recorder.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, app)
                        VALUES ('acme', 'm', 'in=5000000 out=0', 'dl', 'dl-app')""")
    # a reserver holds the first budget's lock ...
    reserver.execute("SELECT tokenledger.lock_budget(%s)", (ids[0],))
    rpid = recorder.info.backend_pid
    commit = in_thread(recorder.commit)
    check(wait_until(lambda: waiting_for_lock(admin, rpid)),
          "the recorder's commit waits for the first budget's lock")
    # ... and then takes the second: with both in id order, nobody waits on it
    error = None
    try:
        reserver.execute("SELECT tokenledger.lock_budget(%s)", (ids[1],))
        reserver.commit()
    except psycopg.Error as e:
        error = e
        reserver.rollback()
    check(error is None, f"the reserver gets the second lock and commits ({error})")
    try:
        commit()
        ok, why = True, ""
    except Exception as e:
        ok, why = False, str(e)
    check(ok, f"the recording commits {why}")
    n = admin.execute("""SELECT count(*) FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b ON b.id = a.budget_id
                         WHERE b.name IN ('lock one', 'lock two')""").fetchone()[0]
    check(n == 2, f"both budgets' thresholds were alerted once ({n})")
    for c in (admin, recorder, reserver):
        c.close()


def crossed_together(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                     VALUES ('together', 'team', 'tg', 'total', '10 USD', '{0.5}')""")
    recorders = [connect(dsn) for _ in range(8)]
    # each adds 0.70 USD: none crosses 5 USD alone, all eight do
    for r in recorders:
        r.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                     VALUES ('acme', 'm', 'in=700000 out=0', 'tg')""")
    joins = [in_thread(r.commit) for r in recorders]
    errors = []
    for j in joins:
        try:
            j()
        except Exception as e:
            errors.append(str(e))
    check(not errors, f"all eight recordings commit {errors}")
    rows = admin.execute("""SELECT a.threshold, tokenledger.amount(a.spent) FROM tokenledger.budget_alerts a
                            JOIN tokenledger.budgets b ON b.id = a.budget_id WHERE b.name = 'together'""").fetchall()
    check(len(rows) == 1 and rows[0][1] == Decimal('5.6'),
          f"exactly one alert, raised with the whole 5.60 USD, and no later recording needed ({rows})")
    for c in [admin] + recorders:
        c.close()


def concurrent_rerate(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate, source)
                     VALUES ('acme', 'rr', '2025-01-01', 'in=1 out=0 USD/1M', 'rerate test')""")
    admin.execute("""INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens)
                     SELECT '2025-02-01'::timestamptz + i * interval '1 minute', 'acme', 'rr', 'in=1000000 out=0'
                     FROM generate_series(1, 20) i""")
    admin.execute("UPDATE tokenledger.prices SET rate = 'in=2 out=0 USD/1M' WHERE source = 'rerate test'")
    one = connect(dsn)
    two = connect(dsn)
    n1 = one.execute("SELECT tokenledger.rerate('acme', 'rr', '2025-01-01', '2026-01-01')").fetchone()[0]
    second = in_thread(lambda: two.execute(
        "SELECT tokenledger.rerate('acme', 'rr', '2025-01-01', '2026-01-01')").fetchone()[0])
    check(wait_until(lambda: waiting_for_lock(admin, two.info.backend_pid)),
          "a second rerate() of the same model waits for the first")
    one.commit()
    n2 = second()
    two.commit()
    total = admin.execute("""SELECT count(*), sum(tokenledger.amount(cost)) FROM tokenledger.usage
                             WHERE model = 'rr' AND entry = 'rerate'""").fetchone()
    check(n1 == 20 and n2 == 0 and total[0] == 20 and total[1] == 20,
          f"each call is corrected once: {n1} then {n2} entries, {total[0]} in all, {total[1]} USD")
    for c in (admin, one, two):
        c.close()


def budget_created_while_recording(dsn):
    admin = connect(dsn)
    recorder = connect(dsn)
    # the recorder counts its row before the budget exists ...
    recorder.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                        VALUES ('acme', 'm', 'in=1000000 out=0', 'late')""")
    # ... and the budget is created meanwhile: counting the ledger waits for it
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount)
                     VALUES ('late', 'team', 'late', 'total', '100 USD')""")
    commit = in_thread(admin.commit)
    watcher = connect(dsn, autocommit=True)
    check(wait_until(lambda: waiting_for_lock(watcher, admin.info.backend_pid)),
          "a new budget's count of the ledger waits for the recorder in flight")
    recorder.commit()
    commit()
    counted, ledger = watcher.execute("""
        SELECT (SELECT tokenledger.amount(tokenledger.sum(s.spent)) FROM tokenledger.budget_spend s
                JOIN tokenledger.budgets b ON b.id = s.budget_id WHERE b.name = 'late'),
               (SELECT tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage WHERE team = 'late')""").fetchone()
    check(counted == ledger == 1, f"the row recorded meanwhile is counted once: {counted} of {ledger}")
    for c in (admin, recorder, watcher):
        c.close()


def more_backends_than_slots(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount)
                     VALUES ('crowd', 'team', 'crowd', 'total', '1000000 USD')""")
    limit = int(admin.execute("SHOW max_connections").fetchone()[0])
    n = min(70, limit - 10)
    conns = [connect(dsn) for _ in range(n)]
    for c in conns:  # every transaction holds its slot until it ends: none waits
        c.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                     VALUES ('acme', 'm', 'in=1000000 out=0', 'crowd')""")
    joins = [in_thread(c.commit) for c in conns]
    errors = []
    for j in joins:
        try:
            j()
        except Exception as e:
            errors.append(str(e))
    counted, ledger = admin.execute("""
        SELECT (SELECT tokenledger.amount(tokenledger.sum(s.spent)) FROM tokenledger.budget_spend s
                JOIN tokenledger.budgets b ON b.id = s.budget_id WHERE b.name = 'crowd'),
               (SELECT tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage WHERE team = 'crowd')""").fetchone()
    check(not errors and counted == ledger == n,
          f"{n} concurrent open recorders (64 shared slots): counted {counted}, ledger {ledger} {errors[:1]}")
    for c in [admin] + conns:
        c.close()


def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS tokenledger_sessions_test")
    admin.execute("CREATE DATABASE tokenledger_sessions_test")
    dsn = psycopg.conninfo.make_conninfo("", dbname="tokenledger_sessions_test")
    print("1..11")
    try:
        setup = psycopg.connect(dsn, autocommit=True)
        setup.execute("CREATE EXTENSION tokenledger")
        setup.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                         VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M')""")
        setup.close()
        deadlock_at_commit(dsn)
        crossed_together(dsn)
        concurrent_rerate(dsn)
        budget_created_while_recording(dsn)
        more_backends_than_slots(dsn)
    finally:
        admin.execute("DROP DATABASE IF EXISTS tokenledger_sessions_test WITH (FORCE)")
    return 0 if all(results) and len(results) == 11 else 1


if __name__ == "__main__":
    sys.exit(main())
