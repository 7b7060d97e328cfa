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
- A rolled-back savepoint keeps the transaction's counter slot; a budget
  change behind a prepared recorder gives up (55P03) instead of stalling
  recording; a recorder commits beside a prepared reserver; REPEATABLE READ
  recorders settle reservations made after their snapshot; SERIALIZABLE
  recorders that read the budget both commit; deleting a budget waits for
  recorders and leaves no counter; changes of exchange rates queue.
- A recorder with more backends recording than there are counter slots
  still counts every row.

Uses a database of its own.  Prints TAP.
"""
import sys
import threading
import time
from decimal import Decimal

import psycopg
from tap import check, results


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


def commit_all(conns):
    """Commit every connection at once (a thread each); the errors met."""
    joins = [in_thread(c.commit) for c in conns]
    errors = []
    for j in joins:
        try:
            j()
        except Exception as e:
            errors.append(str(e))
    return errors


def counted_and_ledger(conn, budget, team):
    """A total-period budget's counters and the ledger's sum for its team."""
    return conn.execute("""
        SELECT (SELECT tokenledger.amount(tokenledger.sum(s.spent)) FROM tokenledger.budget_spend s
                JOIN tokenledger.budgets b ON b.id = s.budget_id WHERE b.name = %s),
               (SELECT tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage WHERE team = %s)""",
                        (budget, team)).fetchone()


def waiting_for_lock(admin, pid):
    return admin.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                         (pid,)).fetchone()[0]


def wait_until(pred, timeout=10.0):
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
    notices = []
    recorder.add_notice_handler(lambda d: notices.append(d.message_primary))
    t0 = time.time()
    error = None
    try:
        recorder.commit()
    except psycopg.Error as e:
        error = e
    took = time.time() - t0
    check(error is None and took < 2,
          f"the recorder's commit does not wait for a reserver that holds a budget ({took:.2f} s, {error})")
    # ... and then takes the second, in id order, and commits
    error = None
    try:
        reserver.execute("SELECT tokenledger.lock_budget(%s)", (ids[1],))
        reserver.commit()
    except psycopg.Error as e:
        error = e
        reserver.rollback()
    check(error is None, f"the reserver gets the second lock and commits ({error})")
    admin.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, app)
                     VALUES ('acme', 'm', 'in=1 out=0', 'dl', 'dl-app')""")
    n = admin.execute("""SELECT count(*) FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b ON b.id = a.budget_id
                         WHERE b.name IN ('lock one', 'lock two')""").fetchone()[0]
    check(n == 2, f"both budgets' thresholds are alerted once, the skipped one by the next recording ({n})")
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
    errors = commit_all(recorders)
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
    counted, ledger = counted_and_ledger(watcher, 'late', 'late')
    check(counted == ledger == 1, f"the row recorded meanwhile is counted once: {counted} of {ledger}")
    for c in (admin, recorder, watcher):
        c.close()


def slot_survives_savepoint_rollback(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount)
                     VALUES ('savepoints', 'team', 'sp', 'total', '100 USD')""")
    a = connect(dsn)
    a.execute("SAVEPOINT s")
    a.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                 VALUES ('acme', 'm', 'in=1000000 out=0', 'sp')""")
    a.execute("ROLLBACK TO SAVEPOINT s")
    held = admin.execute("""SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory'
                            AND objsubid = 3 AND granted""", (a.info.backend_pid,)).fetchone()[0]
    check(held == 1, f"a rolled-back savepoint keeps the transaction's counter slot ({held} held)")
    a.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                 VALUES ('acme', 'm', 'in=1000000 out=0', 'sp')""")
    a.commit()
    a.close()
    admin.close()


def open_recorders_do_not_stall(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode, warn_at)
                     VALUES ('held', 'team', 'held', 'total', '10 USD', 'block', '{0.5}')""")
    prepared = connect(dsn)
    prepared.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                        VALUES ('acme', 'm', 'in=1000000 out=0', 'held')""")
    prepared.execute("PREPARE TRANSACTION 'tl-open-recorder'")
    editor = connect(dsn)
    t0 = time.time()
    code = None
    try:
        editor.execute("""INSERT INTO tokenledger.budgets (name, scope, period, amount)
                          VALUES ('edited meanwhile', 'global', 'day', '100 USD')""")
        editor.commit()
    except psycopg.Error as e:
        code = e.sqlstate
        editor.rollback()
    waited = time.time() - t0
    check(code == '55P03' and waited < 10,
          f"a budget change behind a prepared recorder gives up with 55P03 ({code}, {waited:.1f} s)")
    recorder = connect(dsn, autocommit=True)
    t0 = time.time()
    recorder.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                        VALUES ('acme', 'm', 'in=1000000 out=0', 'elsewhere')""")
    check(time.time() - t0 < 2, "recording goes on meanwhile")
    # a prepared reserver holds the budget's lock: a recorder crossing a
    # threshold of that budget still commits at once
    reserver = connect(dsn)
    reserver.execute("SELECT tokenledger.budget_reserve(team => 'held', estimate => '1 USD')")
    reserver.execute("PREPARE TRANSACTION 'tl-open-reserver'")
    t0 = time.time()
    recorder.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                        VALUES ('acme', 'm', 'in=5000000 out=0', 'held')""")
    check(time.time() - t0 < 5, f"a recorder commits beside a prepared reserver ({time.time() - t0:.1f} s)")
    admin.execute("COMMIT PREPARED 'tl-open-recorder'")
    admin.execute("ROLLBACK PREPARED 'tl-open-reserver'")
    recorder.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                        VALUES ('acme', 'm', 'in=1 out=0', 'held')""")
    n = admin.execute("""SELECT count(*) FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b
                         ON b.id = a.budget_id WHERE b.name = 'held'""").fetchone()[0]
    check(n == 1, f"the alert it could not raise comes with the next recording ({n})")
    for c in (admin, prepared, editor, recorder, reserver):
        c.close()


def repeatable_read_settles(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
                     VALUES ('rr settle', 'team', 'rrs', 'total', '10 USD', 'block')""")
    r = connect(dsn)
    r.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    r.execute("SELECT count(*) FROM tokenledger.budget_reservations")
    rid = admin.execute("SELECT tokenledger.budget_reserve(team => 'rrs', estimate => '5 USD')").fetchone()[0]
    r.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, reservation_id)
                 VALUES ('acme', 'm', 'in=5000000 out=0', 'rrs', %s)""", (rid,))
    r.commit()
    settled, holds = admin.execute("""SELECT settled_at IS NOT NULL,
        (SELECT count(*) FROM tokenledger.budget_holds WHERE reservation_id = %s)
        FROM tokenledger.budget_reservations WHERE id = %s""", (rid, rid)).fetchone()
    remaining = admin.execute("""SELECT tokenledger.amount(remaining) FROM tokenledger.budget_check(team => 'rrs')""").fetchone()[0]
    check(settled and holds == 0 and remaining == 5,
          f"a REPEATABLE READ recorder settles a reservation made after its snapshot (remaining {remaining})")
    r.close()
    admin.close()


def serializable_recorders(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                     VALUES ('ser', 'team', 'ser', 'total', '1000 USD', '{0.001,0.5}')""")
    one, two = connect(dsn), connect(dsn)
    for c in (one, two):
        c.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        c.execute("SELECT * FROM tokenledger.budget_check(team => 'ser')")
    for c in (one, two):
        c.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                     VALUES ('acme', 'm', 'in=2000000 out=0', 'ser')""")
    errors = []
    for c in (one, two):
        try:
            c.commit()
        except psycopg.Error as e:
            errors.append(e.sqlstate)
    check(not errors, f"two SERIALIZABLE recorders that checked the budget both commit {errors}")
    for c in (admin, one, two):
        c.close()


def delete_while_recording(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount)
                     VALUES ('doomed', 'team', 'doomed', 'day', '100 USD')""")
    recorder = connect(dsn)
    recorder.execute("""INSERT INTO tokenledger.usage (occurred_at, provider, model, tokens, team)
                        VALUES (now(), 'acme', 'm', 'in=1000000 out=0', 'doomed'),
                               (now() - interval '2 days', 'acme', 'm', 'in=1000000 out=0', 'doomed')""")
    editor = connect(dsn)
    delete = in_thread(lambda: editor.execute("DELETE FROM tokenledger.budgets WHERE name = 'doomed'"))
    check(wait_until(lambda: waiting_for_lock(admin, editor.info.backend_pid)),
          "deleting a budget waits for the recorder in flight")
    recorder.commit()
    delete()
    editor.commit()
    orphans = admin.execute("""SELECT count(*) FROM tokenledger.budget_spend s
                               WHERE NOT EXISTS (SELECT FROM tokenledger.budgets b WHERE b.id = s.budget_id)""").fetchone()[0]
    check(orphans == 0, f"and leaves no counter behind ({orphans})")
    for c in (admin, recorder, editor):
        c.close()


def concurrent_recounts(dsn):
    admin = connect(dsn, autocommit=True)
    one, two = connect(dsn), connect(dsn)
    one.execute("INSERT INTO tokenledger.fx_rates VALUES ('GBP', 'USD', 1.25, '2020-01-01')")
    second = in_thread(lambda: two.execute("INSERT INTO tokenledger.fx_rates VALUES ('CHF', 'USD', 1.1, '2020-01-01')"))
    check(wait_until(lambda: waiting_for_lock(admin, two.info.backend_pid)),
          "a second change of exchange rates waits for the first one's count")
    one.commit()
    try:
        second()
        two.commit()
        ok, why = True, ""
    except Exception as e:
        ok, why = False, str(e)
    check(ok, f"and then counts the budgets too {why}")
    for c in (admin, one, two):
        c.close()


def repeatable_read_new_budget(dsn):
    admin = connect(dsn, autocommit=True)
    r = connect(dsn)
    notices = []
    r.add_notice_handler(lambda d: notices.append(d.message_primary))
    r.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    r.execute("SELECT count(*) FROM tokenledger.budgets")
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, warn_at)
                     VALUES ('after snapshot', 'team', 'rrn', 'total', '10 USD', '{0.5}')""")
    r.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                 VALUES ('acme', 'm', 'in=6000000 out=0', 'rrn')""")
    r.commit()
    admin.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                     VALUES ('acme', 'm', 'in=1 out=0', 'rrn')""")
    n = admin.execute("""SELECT count(*) FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b
                         ON b.id = a.budget_id WHERE b.name = 'after snapshot'""").fetchone()[0]
    check(not notices and n == 1,
          f"a REPEATABLE READ recorder and a budget newer than its snapshot: no warning, one alert {notices}")
    r.close()
    admin.close()


def reserve_during_recount(dsn):
    admin = connect(dsn, autocommit=True)
    admin.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
                     VALUES ('recounted', 'team', 'rc', 'total', '10 USD', 'block')""")
    admin.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team)
                     VALUES ('acme', 'm', 'in=9000000 out=0', 'rc')""")
    bid = admin.execute("SELECT id FROM tokenledger.budgets WHERE name = 'recounted'").fetchone()[0]
    counting = connect(dsn)
    counting.execute("SELECT tokenledger.budget_recount(%s)", (bid,))
    # the recount is written, not committed: others see the counters whole,
    # with and without a snapshot
    seen = []
    for iso in ("READ COMMITTED", "SERIALIZABLE"):
        reader = connect(dsn)
        reader.execute(f"SET TRANSACTION ISOLATION LEVEL {iso}")
        seen.append(reader.execute("""SELECT tokenledger.amount(spent) FROM tokenledger.budget_check(team => 'rc')""").fetchone()[0])
        reader.rollback()
        reader.close()
    reserver = connect(dsn)
    code = None
    t0 = time.time()
    try:
        reserver.execute("SELECT tokenledger.budget_reserve(team => 'rc', estimate => '2 USD')")
    except psycopg.Error as e:
        code = e.sqlstate
    reserver.rollback()
    check(seen == [9, 9] and code == 'TL001' and time.time() - t0 < 2,
          f"while a recount is uncommitted, readers see 9.00 of 10 and a 2.00 reservation is refused ({seen}, {code})")
    counting.commit()
    try:
        reserver.execute("SELECT tokenledger.budget_reserve(team => 'rc', estimate => '2 USD')")
        code = None
    except psycopg.Error as e:
        code = e.sqlstate
    reserver.rollback()
    spent = admin.execute("""SELECT tokenledger.amount(spent) FROM tokenledger.budget_check(team => 'rc')""").fetchone()[0]
    check(code == 'TL001' and spent == 9, f"and after it commits ({spent}, {code})")
    for c in (admin, counting, reserver):
        c.close()


def repeatable_read_registration(dsn):
    one, two = connect(dsn), connect(dsn)
    for c in (one, two):
        c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        c.execute("SELECT count(*) FROM tokenledger.initiatives")
    one.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, initiative)
                   VALUES ('acme', 'm', 'in=1 out=0', 'first-used-twice')""")
    second = in_thread(lambda: two.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, initiative)
                                              VALUES ('acme', 'm', 'in=1 out=0', 'first-used-twice')"""))
    watcher = connect(dsn, autocommit=True)
    wait_until(lambda: waiting_for_lock(watcher, two.info.backend_pid))
    one.commit()
    error = None
    try:
        second()
        two.commit()
    except Exception as e:
        error = e
    n = watcher.execute("""SELECT (SELECT count(*) FROM tokenledger.initiatives WHERE name = 'first-used-twice'),
                                  (SELECT count(*) FROM tokenledger.usage WHERE initiative = 'first-used-twice')""").fetchone()
    check(error is None and n == (1, 2),
          f"two REPEATABLE READ recorders naming a new initiative at once both record it ({error}, {n})")
    for c in (one, two, watcher):
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
    errors = commit_all(conns)
    counted, ledger = counted_and_ledger(admin, 'crowd', 'crowd')
    check(not errors and counted == ledger == n,
          f"{n} concurrent open recorders (64 shared slots): counted {counted}, ledger {ledger} {errors[:1]}")
    for c in [admin] + conns:
        c.close()


def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS tokenledger_sessions_test")
    admin.execute("CREATE DATABASE tokenledger_sessions_test")
    dsn = psycopg.conninfo.make_conninfo("", dbname="tokenledger_sessions_test")
    print("1..25")
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
        slot_survives_savepoint_rollback(dsn)
        open_recorders_do_not_stall(dsn)
        repeatable_read_settles(dsn)
        serializable_recorders(dsn)
        delete_while_recording(dsn)
        concurrent_recounts(dsn)
        repeatable_read_new_budget(dsn)
        reserve_during_recount(dsn)
        repeatable_read_registration(dsn)
        more_backends_than_slots(dsn)
    finally:
        admin.execute("DROP DATABASE IF EXISTS tokenledger_sessions_test WITH (FORCE)")
    return 0 if all(results) and len(results) == 25 else 1


if __name__ == "__main__":
    sys.exit(main())
