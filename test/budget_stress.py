#!/usr/bin/python3
"""A randomized concurrent run of budget recording; afterwards every
budget's counters equal the ledger's sums and no block budget was overrun.

Six recorder threads, each with a connection of its own, run a seeded random
mix for a few seconds: single-row and multi-row INSERTs into the ledger
(some dated in the past, some unpriced, some with a given cost, in USD and
EUR), COPY, record_usage (new keys, replays, deliberate conflicts, and keys
that several workers record at once), transactions that roll back,
savepoints rolled back, PL/pgSQL blocks that catch an error after
inserting, REPEATABLE READ and SERIALIZABLE transactions (retried on
40001), two-phase commits, adjustments, and reservations against block
budgets that are settled by a usage row (in the reserving transaction or a
later one, by INSERT, COPY or record_usage), released, rolled back or left
to expire.  An admin thread meanwhile edits the alert budgets (amount,
active, scope, period, time zone, warn_at, new and deleted budgets; some
edits rolled back, some in a transaction that also records spend), which
recounts them at commit, and prices a model late and runs reprice().

The block budgets' teams receive spend only through settled reservations
whose cost is at most the estimate, so spend plus live holds may never
exceed a block budget's amount.  After the workers stop, one tiny recording
against each alert budget's scope lets the alerts of concurrent commits
land; then the counters are compared with the ledger in both directions,
and the alerts, reservations and NOTIFYs are checked.  The errors a worker
may meet are TL001 (a block budget refuses), 40001 (retried), 23505 (a
deliberate replay conflict) and the error raised on purpose in PL/pgSQL;
the only WARNING allowed is an alert check that SSI cancelled, which the
extension defers to the next recording by design.

Seeded: TOKENLEDGER_SEED (printed as a TAP comment) picks every worker's
choices; TOKENLEDGER_STRESS_SECONDS (default 8) how long they run.  Uses a
database of its own, through the libpq environment (PGHOST, PGPORT, ...),
and drops it.  Prints TAP.
"""
import datetime
import json
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from tap import check, comment, results


DBNAME = "tokenledger_budget_stress_test"
SEED = int(os.environ.get("TOKENLEDGER_SEED") or 20251123)
SECONDS = float(os.environ.get("TOKENLEDGER_STRESS_SECONDS") or 8)
NWORKERS = 6
PLAN = 16

TEAMS = ["red", "green", "blue"]
APPS = ["web", "bot", "batch"]
BLOCK_TEAMS = ["blk1", "blk2", "blk3"]
TIME_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]
PERIODS = ["day", "week", "month", "quarter", "year", "total"]
SHARED_KEYS = 40
# the error raised on purpose inside PL/pgSQL blocks
DELIBERATE = "TLX42"


# ---------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------

SETUP = """
CREATE EXTENSION tokenledger;
INSERT INTO tokenledger.prices (provider, model, effective_from, rate) VALUES
  ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M'),
  ('acme', 'e', '2020-01-01', 'in=1 out=0 EUR/1M');
INSERT INTO tokenledger.fx_rates VALUES ('EUR', 'USD', 1.1, '2000-01-01');
INSERT INTO tokenledger.budgets (name, scope, scope_value, period, time_zone, amount, warn_at, mode) VALUES
  ('global daily',       'global', NULL,    'day',   'UTC',              '40 USD',  '{0.5,0.8,1.0}',                 'alert'),
  ('global monthly eur', 'global', NULL,    'month', 'UTC',              '90 EUR',  '{0.25,0.5,0.75,1.0}',           'alert'),
  ('all time',           'global', NULL,    'total', 'UTC',              '150 USD', '{0.25,0.5,0.75,1.0,2.0}',       'alert'),
  ('red weekly',         'team',   'red',   'week',  'UTC',              '12 USD',  '{0.5,0.8,1.0}',                 'alert'),
  ('green monthly',      'team',   'green', 'month', 'Europe/Berlin',    '12 USD',  '{0.5,0.8,1.0}',                 'alert'),
  ('web daily',          'app',    'web',   'day',   'America/New_York', '6 USD',   '{0.1,0.25,0.5,0.75,1.0,1.5,2}', 'alert'),
  ('blk1 total',         'team',   'blk1',  'total', 'UTC',              '2 USD',   '{0.5,0.8,1.0}',                 'block'),
  ('blk2 daily',         'team',   'blk2',  'day',   'Asia/Tokyo',       '1.5 USD', '{0.5,0.8,1.0}',                 'block'),
  ('blk3 monthly eur',   'team',   'blk3',  'month', 'UTC',              '1.2 EUR', '{0.5,0.8,1.0}',                 'block');
"""

# the columns every recording below names
COLS = "provider, model, tokens, team, app, principal, occurred_at, cost, reservation_id"
ROW = ("('acme', %s, %s::tokenledger.tokens, %s, %s, %s, now() - %s * interval '1 second',"
       " %s::tokenledger.cost, %s::uuid)")


@dataclass
class Reservation:
    id: str
    team: str
    ccy: str
    micros: int        # the estimate, in millionths of ccy
    expiring: bool = False

    @property
    def estimate(self):
        return f"{self.micros / 1e6:.6f} {self.ccy}"


class Shared:
    """What the workers saw, for the checks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = Counter()            # operations completed, by kind
        self.events = Counter()         # refusals, retries, ...
        self.unexpected = []            # (worker, op, sqlstate, message)
        self.anomalies = []             # results that contradict the contract
        self.warnings = []              # server WARNINGs received by workers
        self.granted = {}               # reservation id -> Reservation (committed)
        self.settled = set()
        self.released = set()
        self.vanished = set()           # granted inside transactions that rolled back
        self.shared_ids = defaultdict(set)

    def add(self, attr, value):
        with self.lock:
            getattr(self, attr).append(value)


# ---------------------------------------------------------------------------
# workers
# ---------------------------------------------------------------------------

class Worker:
    def __init__(self, idx, dsn, shared, deadline):
        self.idx = idx
        self.name = f"w{idx}"
        self.rng = random.Random(f"{SEED}/{idx}")
        self.shared = shared
        self.deadline = deadline
        self.conn = psycopg.connect(dsn, autocommit=True, application_name=f"stress-{self.name}")
        self.notices = []
        self.conn.add_notice_handler(self.on_notice)
        self.live = []                  # reservations this worker holds, committed
        self.private = {}               # request_id -> (id, model, usage, team, app)
        self.adjustable = []            # (usage id, currency) of priced free rows
        self.seq = 0

    def on_notice(self, diag):
        if diag.severity_nonlocalized == "WARNING":
            # the documented fallback: a commit-time alert check that SSI
            # cancels lets the recording commit, and the next recording
            # raises the alert (the final recordings below)
            if diag.sqlstate == "40001" and diag.message_primary.startswith("budget alerts were not checked"):
                self.event("alert checks cancelled by SSI (WARNING, 40001)")
            else:
                self.shared.add("warnings", (self.name, f"{diag.sqlstate} {diag.message_primary}"))
        elif diag.message_primary and diag.message_primary.startswith("stress "):
            self.notices.append(diag.message_primary.split())

    def next_id(self):
        self.seq += 1
        return f"{self.name}-{self.seq}"

    # -- helpers -------------------------------------------------------------

    def x(self, query, params=None):
        return self.conn.execute(query, params)

    def end_tx(self):
        if self.conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            self.conn.execute("ROLLBACK")

    def event(self, name, n=1):
        with self.shared.lock:
            self.shared.events[name] += n

    def tx(self, body, iso=None, allowed=(), retries=3):
        """body() inside BEGIN .. COMMIT, retried on 40001.  Returns
        (True, body's value) or (False, sqlstate) for an allowed one."""
        for attempt in range(retries):
            try:
                self.x("BEGIN" + (f" ISOLATION LEVEL {iso}" if iso else ""))
                value = body()
                self.x("COMMIT")
                return True, value
            except psycopg.Error as e:
                self.end_tx()
                if e.sqlstate == "40001":
                    self.event("serialization failures (40001)")
                    if attempt < retries - 1:
                        continue
                    return False, "40001"
                if e.sqlstate in allowed:
                    return False, e.sqlstate
                raise
        return False, None

    def free_row(self):
        """A recording outside the block budgets' scope."""
        r = self.rng
        model = r.choices(["m", "e", "late", "nope"], [70, 18, 8, 4])[0]
        ago = 0 if r.random() < 0.8 else r.randint(60, 120 * 86400)
        cost = None
        if r.random() < 0.07:
            cost = f"{r.randint(1, 40000) / 1e6:.6f} {r.choice(['USD', 'EUR'])}"
        return (model, f"in={r.randint(0, 40000)} out={r.randint(0, 800)}", r.choice(TEAMS + [None]),
                r.choice(APPS + [None]), r.choice(["alice", "bob", None]), ago, cost, None)

    def settle_row(self, res):
        """The usage row that settles a reservation: same currency, at most the estimate."""
        model = "m" if res.ccy == "USD" else "e"
        return (model, f"in={self.rng.randint(0, res.micros)} out={self.rng.randint(0, 300)}",
                res.team, self.rng.choice(APPS + [None]), None, 0, None, res.id)

    def insert(self, rows):
        q = f"INSERT INTO tokenledger.usage ({COLS}) VALUES " + ", ".join([ROW] * len(rows))
        return self.x(q + " RETURNING id, tokenledger.currency(cost)", [v for row in rows for v in row]).fetchall()

    def copy(self, rows):
        now = datetime.datetime.now(datetime.timezone.utc)
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY tokenledger.usage ({COLS}) FROM STDIN") as cp:
                for (model, tokens, team, app, principal, ago, cost, rid) in rows:
                    cp.write_row(("acme", model, tokens, team, app, principal,
                                  now - datetime.timedelta(seconds=ago), cost, rid))

    def reserve(self, team, ccy, micros, ttl="1 hour"):
        res = Reservation(None, team, ccy, micros, expiring=ttl != "1 hour")
        res.id = str(self.x("SELECT tokenledger.budget_reserve(team => %s, estimate => %s::tokenledger.cost,"
                            " ttl => %s::interval)", (team, res.estimate, ttl)).fetchone()[0])
        return res

    def new_reservation_args(self):
        r = self.rng
        team = r.choice(BLOCK_TEAMS) if r.random() < 0.85 else r.choice(TEAMS)
        return team, r.choice(["USD", "EUR"]), r.randint(50_000, 400_000)

    def refused(self, team):
        self.event(f"TL001 refusals for {team}")

    def take_live(self):
        if not self.live:
            return None
        return self.live.pop(self.rng.randrange(len(self.live)))

    def granted(self, res, settled=False):
        with self.shared.lock:
            self.shared.granted[res.id] = res
            if settled:
                self.shared.settled.add(res.id)
        if not settled and not res.expiring:
            self.live.append(res)

    def mark_settled(self, res):
        with self.shared.lock:
            self.shared.settled.add(res.id)

    def vanished(self, rid):
        with self.shared.lock:
            self.shared.vanished.add(rid)

    def anomaly(self, text):
        self.shared.add("anomalies", f"{self.name}: {text}")

    # -- operations ------------------------------------------------------------

    def op_insert_one(self):
        row = self.free_row()
        (uid, ccy), = self.insert([row])
        if ccy is not None:
            self.adjustable.append((uid, ccy))

    def op_insert_multi(self):
        rows = [self.free_row() for _ in range(self.rng.randint(2, 12))]
        res = self.take_live() if self.rng.random() < 0.3 else None
        if res:
            rows.insert(self.rng.randrange(len(rows) + 1), self.settle_row(res))
        self.insert(rows)
        if res:
            self.mark_settled(res)

    def op_copy(self):
        rows = [self.free_row() for _ in range(self.rng.randint(3, 40))]
        res = self.take_live() if self.rng.random() < 0.3 else None
        if res:
            rows.insert(self.rng.randrange(len(rows) + 1), self.settle_row(res))
        if self.rng.random() < 0.5:
            self.copy(rows)
        else:
            # COPY inside a transaction with a single-row INSERT
            ok, _ = self.tx(lambda: (self.copy(rows), self.insert([self.free_row()])))
            if not ok:
                if res:
                    self.live.append(res)
                return
        if res:
            self.mark_settled(res)

    def op_record_usage(self):
        r = self.rng
        kind = r.choices(["new", "replay", "conflict", "shared", "shared_rr", "settle"], [35, 15, 8, 25, 10, 7])[0]
        q = ("SELECT tokenledger.record_usage('acme', %s, %s::jsonb, request_id => %s,"
             " occurred_at => now() - %s * interval '1 second', team => %s, app => %s,"
             " reservation_id => %s::uuid)")
        if kind == "replay" and self.private:
            key = r.choice(list(self.private))
            uid, model, usage, team, app = self.private[key]
            got = self.x(q, (model, usage, key, 0, team, app, None)).fetchone()[0]
            if got != uid:
                self.anomaly(f"replay of {key} returned {got}, recorded as {uid}")
        elif kind == "conflict" and self.private:
            key = r.choice(list(self.private))
            uid, model, usage, team, app = self.private[key]
            other = json.dumps({"input_tokens": json.loads(usage)["input_tokens"] + 1, "output_tokens": 0})
            try:
                got = self.x(q, (model, other, key, 0, team, app, None)).fetchone()[0]
                self.anomaly(f"a replay of {key} with other tokens was accepted (id {got})")
            except psycopg.Error as e:
                if e.sqlstate != "23505":
                    raise
                self.event("replay conflicts refused (23505)")
        elif kind in ("shared", "shared_rr"):
            k = r.randrange(SHARED_KEYS)
            params = ("m", json.dumps({"input_tokens": 1000 * (k + 1), "output_tokens": 7}),
                      f"shared-{k}", 0, TEAMS[k % 3], APPS[k % 3], None)
            if kind == "shared":
                got = self.x(q, params).fetchone()[0]
            else:
                iso = r.choice(["REPEATABLE READ", "SERIALIZABLE"])
                ok, got = self.tx(lambda: (self.x("SELECT count(*) FROM tokenledger.usage WHERE team = 'red'"),
                                           self.x(q, params).fetchone()[0])[1], iso=iso)
                if not ok:
                    return
            with self.shared.lock:
                self.shared.shared_ids[f"shared-{k}"].add(got)
        elif kind == "settle" and self.live:
            res = self.take_live()
            row = self.settle_row(res)
            usage = json.dumps({"input_tokens": int(row[1].split()[0][3:]), "output_tokens": 0})
            self.x(q, (row[0], usage, self.next_id(), 0, res.team, row[3], res.id))
            self.mark_settled(res)
        else:
            key = self.next_id()
            model = r.choice(["m", "m", "e"])
            usage = json.dumps({"input_tokens": r.randint(0, 40000), "output_tokens": r.randint(0, 500)})
            team, app = r.choice(TEAMS + [None]), r.choice(APPS + [None])
            ago = 0 if r.random() < 0.8 else r.randint(60, 40 * 86400)
            uid = self.x(q, (model, usage, key, ago, team, app, None)).fetchone()[0]
            self.private[key] = (uid, model, usage, team, app)

    def op_rollback(self):
        vanished = []

        def body():
            self.insert([self.free_row() for _ in range(self.rng.randint(1, 5))])
            if self.rng.random() < 0.4:
                team, ccy, micros = self.new_reservation_args()
                res = self.reserve(team, ccy, micros)
                vanished.append(res.id)
                self.insert([self.settle_row(res)])
            self.copy([self.free_row() for _ in range(3)])
            raise Rollback()
        try:
            self.tx(body, allowed=("TL001",))
        except Rollback:
            self.end_tx()
        for rid in vanished:
            self.vanished(rid)

    def op_savepoint(self):
        res = self.take_live()
        undone = self.rng.random() < 0.5     # the settlement is in the savepoint rolled back

        def body():
            self.insert([self.free_row()])
            self.x("SAVEPOINT a")
            self.insert([self.free_row() for _ in range(self.rng.randint(1, 3))])
            if res and undone:
                self.insert([self.settle_row(res)])
            self.x("ROLLBACK TO SAVEPOINT a")
            self.insert([self.free_row()])
            self.x("SAVEPOINT b")
            if res and not undone:
                self.insert([self.settle_row(res)])
            self.copy([self.free_row() for _ in range(2)])
            self.x("RELEASE SAVEPOINT b")
            self.x("SAVEPOINT c")
            self.insert([self.free_row()])
            self.x("ROLLBACK TO SAVEPOINT c")
        ok, _ = self.tx(body)
        if res:
            if ok and not undone:
                self.mark_settled(res)
            else:
                self.live.append(res)

    def op_plpgsql(self):
        r = self.rng
        kind = r.choices(["caught", "settle_undone", "reserve_inside", "escapes"], [35, 20, 30, 15])[0]

        def ins(row):
            return sql.SQL("INSERT INTO tokenledger.usage ({}) VALUES ('acme', {}, {}::tokenledger.tokens, {}, {}, {},"
                           " now() - {} * interval '1 second', {}::tokenledger.cost, {}::uuid);").format(
                sql.SQL(COLS), *[sql.Literal(v) for v in row])

        raise_it = sql.SQL("RAISE EXCEPTION 'deliberate' USING ERRCODE = {};").format(sql.Literal(DELIBERATE))
        res = self.take_live() if kind == "settle_undone" else None
        self.notices.clear()
        if kind == "reserve_inside":
            team, ccy, micros = self.new_reservation_args()
            est = f"{micros / 1e6:.6f} {ccy}"
            undo = r.random() < 0.3
            settle = Reservation("00000000-0000-0000-0000-000000000000", team, ccy, micros)
            srow = list(self.settle_row(settle))
            body = sql.SQL("""DO $$
DECLARE r uuid;
BEGIN
  {}
  BEGIN
    r := tokenledger.budget_reserve(team => {}, estimate => {}::tokenledger.cost, ttl => '1 hour');
    INSERT INTO tokenledger.usage (provider, model, tokens, team, app, reservation_id)
    VALUES ('acme', {}, {}::tokenledger.tokens, {}, {}, r);
    IF {} THEN
      RAISE NOTICE 'stress undone %', r;
      {}
    END IF;
    RAISE NOTICE 'stress settled %', r;
  EXCEPTION
    WHEN SQLSTATE 'TL001' THEN RAISE NOTICE 'stress refused';
    WHEN SQLSTATE {} THEN NULL;
  END;
  {}
END $$""").format(ins(self.free_row()), sql.Literal(team), sql.Literal(est), sql.Literal(srow[0]),
                  sql.Literal(srow[1]), sql.Literal(team), sql.Literal(srow[3]), sql.Literal(undo), raise_it,
                  sql.Literal(DELIBERATE), ins(self.free_row()))
            self.x(body)
            for n in self.notices:
                if n[1] == "settled":
                    with self.shared.lock:
                        self.shared.granted[n[2]] = Reservation(n[2], team, ccy, micros)
                        self.shared.settled.add(n[2])
                elif n[1] == "undone":
                    self.vanished(n[2])
                elif n[1] == "refused":
                    self.refused(team)
            return
        inner = [ins(self.free_row())]
        if res:
            inner.append(ins(self.settle_row(res)))
        body = sql.SQL("""DO $$
BEGIN
  {}
  BEGIN
    {}
    {}
  EXCEPTION WHEN SQLSTATE {} THEN
    NULL;
  END;
  {}
  {}
END $$""").format(ins(self.free_row()), sql.SQL("\n    ").join(inner), raise_it, sql.Literal(DELIBERATE),
                  ins(self.free_row()), raise_it if kind == "escapes" else sql.SQL(""))
        try:
            self.x(body)
        except psycopg.Error as e:
            if kind != "escapes" or e.sqlstate != DELIBERATE:
                raise
            self.event("deliberate errors escaped a block")
        finally:
            if res:
                self.live.append(res)      # settled only inside the block rolled back

    def op_isolated(self):
        r = self.rng
        iso = r.choice(["REPEATABLE READ", "SERIALIZABLE"])
        team, ccy, micros = self.new_reservation_args()
        what = r.choices(["record", "reserve_settle", "settle_live"], [50, 30, 20])[0]
        res = self.take_live() if what == "settle_live" else None
        made = []

        def body():
            self.x("SELECT sum(amount) FROM tokenledger.budget_status")
            self.x("SELECT count(*) FROM tokenledger.usage WHERE team = %s", (r.choice(TEAMS),))
            self.insert([self.free_row() for _ in range(r.randint(1, 4))])
            if what == "reserve_settle":
                new = self.reserve(team, ccy, micros)
                made.append(new)
                if r.random() < 0.7:
                    self.insert([self.settle_row(new)])
                    return "settled"
                return "held"
            if res:
                self.insert([self.settle_row(res)])
            return None
        ok, value = self.tx(body, iso=iso, allowed=("TL001",))
        if not ok and value == "TL001":
            self.refused(team)
        # only the last attempt's reservation can have committed
        for i, new in enumerate(made):
            if ok and i == len(made) - 1:
                self.granted(new, settled=value == "settled")
            else:
                self.vanished(new.id)
        if res:
            if ok:
                self.mark_settled(res)
            else:
                self.live.append(res)

    def op_reserve(self):
        r = self.rng
        team, ccy, micros = self.new_reservation_args()
        flow = r.choices(["alone", "settle_same_tx", "rollback", "expire", "record_usage"], [45, 25, 10, 8, 12])[0]
        try:
            if flow == "alone":
                self.granted(self.reserve(team, ccy, micros))
            elif flow == "expire":
                self.granted(self.reserve(team, ccy, micros, ttl=f"{r.randint(1, 3)} seconds"))
            elif flow == "rollback":
                made = []
                try:
                    self.tx(lambda: (made.append(self.reserve(team, ccy, micros)), self.raise_rollback()))
                except Rollback:
                    self.end_tx()
                for m in made:
                    self.vanished(m.id)
            else:
                made = []

                def body():
                    new = self.reserve(team, ccy, micros)
                    made.append(new)
                    row = self.settle_row(new)
                    if flow == "record_usage":
                        usage = json.dumps({"input_tokens": int(row[1].split()[0][3:]), "output_tokens": 0})
                        self.x("SELECT tokenledger.record_usage('acme', %s, %s::jsonb, team => %s,"
                               " reservation_id => %s::uuid)", (row[0], usage, team, new.id))
                    else:
                        self.insert([self.free_row(), row])
                ok, st = self.tx(body, allowed=("TL001",))
                for i, m in enumerate(made):
                    if ok and i == len(made) - 1:
                        self.granted(m, settled=True)
                    else:
                        self.vanished(m.id)
                if st == "TL001":
                    self.refused(team)
        except psycopg.Error as e:
            self.end_tx()
            if e.sqlstate != "TL001":
                raise
            self.refused(team)

    def raise_rollback(self):
        raise Rollback()

    def op_settle(self):
        res = self.take_live()
        if res is None:
            return self.op_reserve()
        r = self.rng
        how = r.choices(["insert", "release", "rollback", "later"], [55, 30, 10, 5])[0]
        if how == "insert":
            self.insert([self.settle_row(res)])
            self.mark_settled(res)
        elif how == "release":
            if not self.x("SELECT tokenledger.budget_release(%s)", (res.id,)).fetchone()[0]:
                self.anomaly(f"budget_release({res.id}) of a live reservation returned false")
            with self.shared.lock:
                self.shared.released.add(res.id)
            if r.random() < 0.3:
                if self.x("SELECT tokenledger.budget_release(%s)", (res.id,)).fetchone()[0]:
                    self.anomaly(f"budget_release({res.id}) released it twice")
        elif how == "rollback":
            try:
                self.tx(lambda: (self.insert([self.settle_row(res)]), self.raise_rollback()))
            except Rollback:
                self.end_tx()
            self.live.append(res)
        else:
            self.live.append(res)

    def op_release_settled(self):
        """budget_release of a settled reservation gives false and changes nothing."""
        with self.shared.lock:
            done = sorted(self.shared.settled)
        if not done:
            return
        rid = self.rng.choice(done)
        if self.x("SELECT tokenledger.budget_release(%s)", (rid,)).fetchone()[0]:
            self.anomaly(f"budget_release({rid}) released a settled reservation")

    def op_two_phase(self):
        res = self.take_live() if self.rng.random() < 0.5 else None
        commit = self.rng.random() < 0.7
        gid = f"stress-{self.next_id()}"
        self.x("BEGIN")
        try:
            rows = [self.free_row() for _ in range(self.rng.randint(1, 4))]
            if res:
                rows.append(self.settle_row(res))
            self.insert(rows)
            self.x(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(gid)))
        except BaseException:
            self.end_tx()
            if res:
                self.live.append(res)
            raise
        self.x(sql.SQL("COMMIT PREPARED {}" if commit else "ROLLBACK PREPARED {}").format(sql.Literal(gid)))
        if res:
            if commit:
                self.mark_settled(res)
            else:
                self.live.append(res)

    def op_adjust(self):
        if not self.adjustable:
            return self.op_insert_one()
        uid, ccy = self.rng.choice(self.adjustable)
        delta = f"{self.rng.randint(-5000, 10000) / 1e6:.6f} {ccy}"
        self.x("SELECT tokenledger.adjust(%s, %s::tokenledger.cost, 'stress correction')", (uid, delta))

    def op_check(self):
        self.x("SELECT * FROM tokenledger.budget_check(team => %s, app => %s, estimate => '0.1 USD')",
               (self.rng.choice(TEAMS + BLOCK_TEAMS), self.rng.choice(APPS)))

    OPS = [("insert_one", 14), ("insert_multi", 8), ("copy", 5), ("record_usage", 10), ("rollback", 5),
           ("savepoint", 6), ("plpgsql", 6), ("isolated", 8), ("reserve", 18), ("settle", 14),
           ("release_settled", 1), ("two_phase", 2), ("adjust", 3), ("check", 1)]

    def run(self):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        try:
            while time.monotonic() < self.deadline:
                op = self.rng.choices(names, weights)[0]
                try:
                    getattr(self, "op_" + op)()
                    with self.shared.lock:
                        self.shared.ops[op] += 1
                except psycopg.Error as e:
                    self.end_tx()
                    self.shared.add("unexpected", (self.name, op, e.sqlstate, str(e).splitlines()[0]))
            # what is still held is left live (and checked as such)
        except Exception as e:   # a broken connection or a bug in the test
            self.shared.add("unexpected", (self.name, "worker", None, f"{e!r}: {traceback.format_exc()}"))
        finally:
            self.conn.close()


class Rollback(Exception):
    pass


class Admin(Worker):
    """Edits the alert budgets while the recorders run."""

    def __init__(self, idx, dsn, shared, deadline):
        super().__init__(idx, dsn, shared, deadline)
        self.name = "admin"
        self.extras = 0
        self.late_priced = False

    def alert_budgets(self, nonglobal=False):
        q = "SELECT id FROM tokenledger.budgets WHERE mode = 'alert'"
        if nonglobal:
            q += " AND scope <> 'global'"
        return [r[0] for r in self.x(q + " ORDER BY id").fetchall()]

    def edit(self):
        r = self.rng
        kind = r.choices(["amount", "active", "scope", "time_zone", "period", "warn_at", "new", "delete"],
                         [20, 20, 15, 10, 10, 8, 10, 7])[0]
        extras = [i for (i,) in self.x("SELECT id FROM tokenledger.budgets WHERE name LIKE 'extra %'").fetchall()]
        if kind == "new" and len(extras) >= 3 or kind == "delete" and not extras:
            kind = "amount"
        ids = self.alert_budgets(nonglobal=kind == "scope")
        bid = r.choice(extras if kind == "delete" else ids)
        if kind == "amount":
            self.x("UPDATE tokenledger.budgets SET amount = tokenledger.cost(round(tokenledger.amount(amount) * %s::numeric, 2),"
                   " tokenledger.currency(amount)) WHERE id = %s", (r.choice([0.5, 0.8, 1.25, 2]), bid))
        elif kind == "active":
            self.x("UPDATE tokenledger.budgets SET active = NOT active WHERE id = %s", (bid,))
        elif kind == "scope":
            scope = r.choice(["team", "app", "principal"])
            value = {"team": r.choice(TEAMS), "app": r.choice(APPS), "principal": r.choice(["alice", "bob"])}[scope]
            self.x("UPDATE tokenledger.budgets SET scope = %s, scope_value = %s WHERE id = %s", (scope, value, bid))
        elif kind == "time_zone":
            self.x("UPDATE tokenledger.budgets SET time_zone = %s WHERE id = %s", (r.choice(TIME_ZONES), bid))
        elif kind == "period":
            self.x("UPDATE tokenledger.budgets SET period = %s WHERE id = %s", (r.choice(PERIODS), bid))
        elif kind == "warn_at":
            self.x("UPDATE tokenledger.budgets SET warn_at = %s::numeric[] WHERE id = %s",
                   (r.choice(["{0.5,0.8,1.0}", "{0.3,0.6,0.9,1.2}", "{0.05,0.5,1}"]), bid))
        elif kind == "new":
            self.extras += 1
            scope = r.choice(["global", "team", "app"])
            value = None if scope == "global" else r.choice(TEAMS if scope == "team" else APPS)
            self.x("INSERT INTO tokenledger.budgets (name, scope, scope_value, period, time_zone, amount, warn_at)"
                   " VALUES (%s, %s, %s, %s, %s, %s::tokenledger.cost, '{0.5,0.8,1.0}')",
                   (f"extra {self.extras}", scope, value, r.choice(PERIODS), r.choice(TIME_ZONES),
                    f"{r.choice([5, 10, 20])} {r.choice(['USD', 'EUR'])}"))
        elif kind == "delete":
            self.x("DELETE FROM tokenledger.budgets WHERE id = %s", (bid,))
        return kind

    def run(self):
        r = self.rng
        try:
            while time.monotonic() < self.deadline:
                time.sleep(r.uniform(0.1, 0.4))
                how = r.choices(["alone", "in_tx", "rolled_back", "with_spend", "late_price", "reprice"],
                                [40, 20, 12, 15, 4, 9])[0]
                try:
                    if how == "alone":
                        kind = self.edit()
                    elif how == "in_tx":
                        ok, kind = self.tx(lambda: (self.edit(), self.edit())[1])
                    elif how == "rolled_back":
                        try:
                            self.tx(lambda: (self.edit(), self.raise_rollback()))
                        except Rollback:
                            self.end_tx()
                        kind = "rolled back"
                    elif how == "with_spend":
                        ok, kind = self.tx(lambda: (self.insert([self.free_row() for _ in range(3)]), self.edit())[1])
                        kind = f"with spend: {kind}"
                    elif how == "late_price" and not self.late_priced:
                        self.x("INSERT INTO tokenledger.prices (provider, model, effective_from, rate)"
                               " VALUES ('acme', 'late', '2020-01-01', 'in=2 out=0 USD/1M')")
                        self.late_priced = True
                        kind = "late price"
                    else:
                        n = self.x("SELECT tokenledger.reprice()").fetchone()[0]
                        self.event("rows repriced", n)
                        kind = "reprice"
                    with self.shared.lock:
                        self.shared.ops[f"admin: {kind}"] += 1
                except psycopg.Error as e:
                    self.end_tx()
                    self.shared.add("unexpected", (self.name, how, e.sqlstate, str(e).splitlines()[0]))
            # every budget active again (a recount each), and the late rows priced
            self.x("UPDATE tokenledger.budgets SET active = true WHERE NOT active")
            if not self.late_priced:
                self.x("INSERT INTO tokenledger.prices (provider, model, effective_from, rate)"
                       " VALUES ('acme', 'late', '2020-01-01', 'in=2 out=0 USD/1M')")
            self.event("rows repriced", self.x("SELECT tokenledger.reprice()").fetchone()[0])
        except Exception as e:
            self.shared.add("unexpected", (self.name, "admin", getattr(e, "sqlstate", None),
                                           f"{e!r}: {traceback.format_exc()}"))
        finally:
            self.conn.close()


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------

def rows(conn, q, params=None):
    return conn.execute(q, params).fetchall()


def checks_before_final_recordings(conn, shared):
    # the test's premise: block budgets' teams got spend only by settling reservations
    bad = rows(conn, """
        SELECT u.id, u.team, u.cost, u.reservation_id, r.settled_by, r.estimate
        FROM tokenledger.usage u LEFT JOIN tokenledger.budget_reservations r ON r.id = u.reservation_id
        WHERE u.team IN ('blk1', 'blk2', 'blk3') AND u.cost IS NOT NULL
          AND (r.id IS NULL OR r.settled_by IS DISTINCT FROM u.id OR r.team IS DISTINCT FROM u.team
               OR tokenledger.currency(u.cost) <> tokenledger.currency(r.estimate)
               OR tokenledger.amount(u.cost) > tokenledger.amount(r.estimate))
        ORDER BY u.id""")
    n = rows(conn, "SELECT count(*) FROM tokenledger.usage WHERE team IN ('blk1', 'blk2', 'blk3')")[0][0]
    check(not bad and n > 0,
          f"the block budgets' {n} recordings are all settlements of their own reservation, within its estimate",
          bad)

    # spend plus live holds never above the amount, per block budget and period
    state = rows(conn, """
        WITH spend AS (
            SELECT b.id, tokenledger.period_start(b.period, u.occurred_at, b.time_zone) AS ps,
                   sum(tokenledger.amount(tokenledger.convert(u.cost, tokenledger.currency(b.amount), u.occurred_at))) AS spent
            FROM tokenledger.budgets b
            JOIN tokenledger.usage u ON tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
            WHERE b.mode = 'block' AND u.cost IS NOT NULL
            GROUP BY 1, 2),
        held AS (
            SELECT h.budget_id AS id, h.period_start AS ps, sum(tokenledger.amount(h.amount)) AS held
            FROM tokenledger.budget_holds h JOIN tokenledger.budgets b ON b.id = h.budget_id
            WHERE b.mode = 'block' AND h.expires_at > now()
              AND tokenledger.currency(h.amount) = tokenledger.currency(b.amount)
            GROUP BY 1, 2)
        SELECT b.name, x.ps::text, coalesce(x.spent, 0), coalesce(x.held, 0), tokenledger.amount(b.amount),
               tokenledger.currency(b.amount)
        FROM (spend FULL JOIN held USING (id, ps)) x JOIN tokenledger.budgets b ON b.id = x.id
        ORDER BY b.name, x.ps""")
    for name, ps, spent, held, amount, ccy in state:
        comment(f"{name}, period {ps}: spent {spent:.6f} + held {held:.6f} of {amount} {ccy}")
    over = [s for s in state if s[2] + s[3] > s[4]]
    check(state and not over, "no block budget was overrun: spend plus live holds stay within the amount",
          [f"{s[0]} period {s[1]}: spent {s[2]} + held {s[3]} > {s[4]} {s[5]}" for s in over])

    refusals = {t: shared.events[f"TL001 refusals for {t}"] for t in BLOCK_TEAMS}
    check(all(refusals[t] > 0 for t in BLOCK_TEAMS),
          f"every block budget refused reservations with TL001 once full: {refusals}")

    # reservations: settled, released, rolled back and live ones as the workers saw them
    db = {str(r[0]): r for r in rows(conn, """
        SELECT r.id, r.team, r.settled_at, r.settled_by, r.released_at, r.expires_at > now(),
               (SELECT array_agg(u.id ORDER BY u.id) FROM tokenledger.usage u WHERE u.reservation_id = r.id),
               (SELECT count(*) FROM tokenledger.budget_holds h WHERE h.reservation_id = r.id),
               (SELECT count(*) FROM tokenledger.budget_holds h JOIN tokenledger.budgets b ON b.id = h.budget_id
                WHERE h.reservation_id = r.id AND b.mode = 'block' AND b.scope = 'team' AND b.scope_value = r.team
                  AND h.amount OPERATOR(tokenledger.=) tokenledger.convert(r.estimate, tokenledger.currency(b.amount), r.created_at))
        FROM tokenledger.budget_reservations r""")}
    problems = []
    for rid in sorted(shared.settled):
        d = db.get(rid)
        if d is None:
            problems.append(f"settled {rid} does not exist")
        elif d[2] is None or d[6] is None or len(d[6]) != 1 or d[3] != d[6][0] or d[7] != 0 or d[4] is not None:
            problems.append(f"settled {rid}: settled_at {d[2]}, settled_by {d[3]}, usage rows {d[6]}, "
                            f"holds {d[7]}, released_at {d[4]}")
    check(shared.settled and not problems,
          f"each of the {len(shared.settled)} reservations settled by a committed usage row is marked settled by it "
          f"and holds nothing", problems)

    problems = []
    for rid in sorted(shared.released):
        d = db.get(rid)
        if d is None or d[4] is None or d[2] is not None or d[6] is not None or d[7] != 0:
            problems.append(f"released {rid}: {d}")
    for rid in sorted(shared.vanished):
        if rid in db:
            problems.append(f"{rid} was reserved in a transaction that rolled back, but exists: {db[rid]}")
    live = set(shared.granted) - shared.settled - shared.released
    for rid in sorted(live):
        d = db.get(rid)
        res = shared.granted[rid]
        if d is None or d[2] is not None or d[4] is not None or d[6] is not None:
            problems.append(f"live {rid}: {d}")
        elif res.team in BLOCK_TEAMS and d[5] and d[8] != 1:
            problems.append(f"live {rid} of {res.team} has no hold of its estimate on its block budget: {d}")
    extra = set(db) - set(shared.granted)
    for rid in sorted(extra):
        problems.append(f"{rid} exists but no committed reservation returned it: {db[rid]}")
    check(not problems,
          f"the {len(shared.released)} released reservations hold nothing and are not settled, the "
          f"{len(shared.vanished)} rolled back do not exist, the {len(live)} live ones still hold", problems)


def final_recordings(conn):
    """One tiny recording against each active alert budget's scope, so that
    alerts of commits that completed a crossing together land."""
    budgets = rows(conn, """SELECT id, scope, scope_value, tokenledger.currency(amount) FROM tokenledger.budgets
                            WHERE active AND mode = 'alert' ORDER BY id""")
    for bid, scope, value, ccy in budgets:
        cols = {"team": None, "app": None, "principal": None}
        if scope in cols:
            cols[scope] = value
        conn.execute("INSERT INTO tokenledger.usage (provider, model, tokens, team, app, principal, cost)"
                     " VALUES ('acme', 'final', 'in=0 out=0', %s, %s, %s, %s::tokenledger.cost)",
                     (cols["team"], cols["app"], cols["principal"], f"0.000001 {ccy}"))
    return len(budgets)


def checks_after_final_recordings(conn, notified):
    diff = rows(conn, """
        WITH counters AS (
            SELECT s.budget_id, s.period_start, tokenledger.amount(tokenledger.sum(s.spent)) AS spent
            FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id
            WHERE s.currency = tokenledger.currency(b.amount)
            GROUP BY 1, 2),
        ledger AS (
            SELECT b.id AS budget_id, tokenledger.period_start(b.period, u.occurred_at, b.time_zone) AS period_start,
                   tokenledger.amount(tokenledger.sum(
                       tokenledger.convert(u.cost, tokenledger.currency(b.amount), u.occurred_at))) AS spent
            FROM tokenledger.budgets b
            JOIN tokenledger.usage u ON tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
            WHERE u.cost IS NOT NULL
            GROUP BY 1, 2)
        SELECT b.name, x.period_start::text, x.counted, x.ledger
        FROM (SELECT coalesce(c.budget_id, l.budget_id) AS budget_id, coalesce(c.period_start, l.period_start) AS period_start,
                     c.spent AS counted, l.spent AS ledger
              FROM counters c FULL JOIN ledger l ON l.budget_id = c.budget_id AND l.period_start = c.period_start) x
        JOIN tokenledger.budgets b ON b.id = x.budget_id
        WHERE coalesce(x.counted, 0) <> coalesce(x.ledger, 0)
        ORDER BY 1, 2""")
    stats = rows(conn, """SELECT count(*), count(DISTINCT (budget_id, period_start)) FROM tokenledger.budget_spend""")[0]
    check(not diff, f"every budget's counters equal the ledger's sums, per period, both ways "
                    f"({stats[1]} budget periods in {stats[0]} counter rows)",
          [f"{d[0]} period {d[1]}: counted {d[2]}, ledger {d[3]}" for d in diff])

    other = rows(conn, """
        SELECT b.name, s.period_start::text, s.slot, s.spent
        FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id
        WHERE s.currency <> tokenledger.currency(b.amount) AND tokenledger.amount(s.spent) <> 0
           OR s.currency <> tokenledger.currency(s.spent)""")
    unconverted = rows(conn, "SELECT name, unconverted FROM tokenledger.budget_status WHERE unconverted IS NOT NULL")
    check(not other and not unconverted, "no spend is counted apart in another currency than the budget's",
          other + unconverted)

    orphans = rows(conn, """
        SELECT 'budget_spend', s.budget_id, s.period_start::text, s.spent::text FROM tokenledger.budget_spend s
        WHERE NOT EXISTS (SELECT 1 FROM tokenledger.budgets b WHERE b.id = s.budget_id)
        UNION ALL
        SELECT 'budget_holds', h.budget_id, h.period_start::text, h.amount::text FROM tokenledger.budget_holds h
        WHERE NOT EXISTS (SELECT 1 FROM tokenledger.budgets b WHERE b.id = h.budget_id)
        UNION ALL
        SELECT 'budget_alerts', a.budget_id, a.period_start::text, a.threshold::text FROM tokenledger.budget_alerts a
        WHERE NOT EXISTS (SELECT 1 FROM tokenledger.budgets b WHERE b.id = a.budget_id)""")
    check(not orphans, "no counter, hold or alert is left of the budgets deleted meanwhile "
                       "(budget_spend's foreign key holds)", orphans)

    status = rows(conn, """
        SELECT s.name, s.spent, l.spent, s.reserved, h.held
        FROM tokenledger.budget_status s
        JOIN tokenledger.budgets b ON b.id = s.budget_id
        -- the current period (budget_status shows a total budget's as NULL)
        CROSS JOIN LATERAL (SELECT tokenledger.period_start(b.period, now(), b.time_zone) AS ps) p
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(tokenledger.amount(tokenledger.convert(u.cost, s.currency, u.occurred_at))), 0) AS spent
            FROM tokenledger.usage u
            WHERE u.cost IS NOT NULL AND tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
              AND tokenledger.period_start(b.period, u.occurred_at, b.time_zone) = p.ps) l
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(tokenledger.amount(h.amount)), 0) AS held FROM tokenledger.budget_holds h
            WHERE h.budget_id = b.id AND h.period_start = p.ps AND h.expires_at > now()
              AND tokenledger.currency(h.amount) = s.currency) h
        WHERE s.active AND (s.spent <> l.spent OR s.reserved <> h.held)""")
    check(not status, "budget_status shows each active budget's current spend as the ledger has it, and its live holds",
          status)

    dup = rows(conn, """SELECT budget_id, period_start::text, threshold, count(*) FROM tokenledger.budget_alerts
                        GROUP BY 1, 2, 3 HAVING count(*) > 1""")
    wrong = rows(conn, """SELECT a.id, b.name, a.period_start::text, a.threshold, a.spent, a.amount
                          FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b ON b.id = a.budget_id
                          WHERE tokenledger.currency(a.spent) <> tokenledger.currency(a.amount)
                             OR tokenledger.amount(a.spent) < round(tokenledger.amount(a.amount) * a.threshold, 9)""")
    nalerts = rows(conn, "SELECT count(*) FROM tokenledger.budget_alerts")[0][0]
    check(nalerts > 0 and not dup and not wrong,
          f"{nalerts} alerts, none twice, each raised by spend that had reached its threshold", dup + wrong)

    missing = rows(conn, """
        SELECT b.name, p.ps::text, t, tokenledger.budget_spent(b.id, p.ps), b.amount
        FROM tokenledger.budgets b
        CROSS JOIN LATERAL (SELECT tokenledger.period_start(b.period, now(), b.time_zone) AS ps) p
        CROSS JOIN LATERAL unnest(b.warn_at) t
        WHERE b.active AND b.mode = 'alert'
          AND tokenledger.amount(tokenledger.budget_spent(b.id, p.ps)) >= round(tokenledger.amount(b.amount) * t, 9)
          AND NOT EXISTS (SELECT 1 FROM tokenledger.budget_alerts a
                          WHERE a.budget_id = b.id AND a.period_start = p.ps AND a.threshold = t)""")
    reached = rows(conn, """
        SELECT count(*) FROM tokenledger.budgets b
        CROSS JOIN LATERAL unnest(b.warn_at) t
        WHERE b.active AND b.mode = 'alert'
          AND tokenledger.amount(tokenledger.budget_spent(b.id, tokenledger.period_start(b.period, now(), b.time_zone)))
              >= round(tokenledger.amount(b.amount) * t, 9)""")[0][0]
    check(reached > 0 and not missing,
          f"each of the {reached} thresholds the active alert budgets' current spend has reached has its alert",
          missing)

    ids = [r[0] for r in rows(conn, "SELECT id FROM tokenledger.budget_alerts ORDER BY id")]
    # the alerts of a budget deleted meanwhile went with it (ON DELETE CASCADE)
    budgets = {r[0] for r in rows(conn, "SELECT id FROM tokenledger.budgets")}
    got = Counter(n.get("alert_id") for n in notified if n.get("budget_id") in budgets)
    twice = {k: v for k, v in got.items() if v > 1}
    check(sorted(got) == ids and not twice,
          f"every alert row was notified once on tokenledger_budget ({sum(got.values())} notifications of "
          f"budgets that still exist), no other",
          [f"rows not notified: {sorted(set(ids) - set(got))[:20]}", f"notified without a row: "
           f"{sorted(set(got) - set(ids), key=str)[:20]}", f"notified more than once: {twice}"])


# ---------------------------------------------------------------------------

def main():
    admin = psycopg.connect("", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS " + DBNAME)
    admin.execute("CREATE DATABASE " + DBNAME)
    try:
        run(psycopg.conninfo.make_conninfo("", dbname=DBNAME))
    finally:
        # a prepared transaction left behind would keep the database
        try:
            with psycopg.connect(psycopg.conninfo.make_conninfo("", dbname=DBNAME), autocommit=True) as c:
                for (gid,) in c.execute("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"):
                    c.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))
        except psycopg.Error:
            pass
        admin.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        admin.close()


def run(dsn):
    started = time.monotonic()
    comment(f"seed {SEED} (TOKENLEDGER_SEED), {NWORKERS} workers and an admin for {SECONDS:g} s "
            f"(TOKENLEDGER_STRESS_SECONDS)")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        c.execute(SETUP)

    notified = []
    listener = psycopg.connect(dsn, autocommit=True)
    listener.add_notify_handler(lambda n: notified.append(json.loads(n.payload)))
    listener.execute("LISTEN tokenledger_budget")

    shared = Shared()
    deadline = time.monotonic() + SECONDS
    workers = [Worker(i, dsn, shared, deadline) for i in range(NWORKERS)] + [Admin(NWORKERS, dsn, shared, deadline)]
    threads = [threading.Thread(target=w.run, name=w.name, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1, deadline + 30 - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    comment(f"workers ran {time.monotonic() - started:.1f} s")
    comment("operations: " + ", ".join(f"{k} {v}" for k, v in sorted(shared.ops.items())))
    comment("events: " + ", ".join(f"{k} {v}" for k, v in sorted(shared.events.items())))

    kinds = [n for n, _ in Worker.OPS]
    missing = [k for k in kinds if shared.ops[k] == 0]
    check(not hung and not missing, "the workers stopped in time, having run every kind of operation",
          [f"still running: {hung}", f"never completed: {missing}"])
    check(not shared.unexpected, "no worker met an error other than TL001, 40001, 23505 of a deliberate conflict "
                                 f"or the {DELIBERATE} raised on purpose",
          [f"{u[0]} {u[1]}: {u[2]} {u[3]}" for u in shared.unexpected])
    split = [sorted(v) for k, v in sorted(shared.shared_ids.items()) if len(v) != 1]
    check(not shared.anomalies and not split,
          "replays returned the recorded id, keys recorded concurrently got one id, releases answered right",
          shared.anomalies + [f"one request_id, several ids: {s}" for s in split])
    check(not shared.warnings, "no session got a WARNING (but for alert checks cancelled by SSI, deferred by design)",
          [f"WARNING in {w[0]}: {w[1]}" for w in shared.warnings])

    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET TIME ZONE 'UTC'")
    checks_before_final_recordings(conn, shared)
    n = final_recordings(conn)
    comment(f"one tiny recording against each of the {n} active alert budgets")
    # the NOTIFYs of everything committed: a round trip reads them
    for _ in range(20):
        before = len(notified)
        listener.execute("SELECT 1")
        time.sleep(0.05)
        listener.execute("SELECT 1")
        if len(notified) == before:
            break
    checks_after_final_recordings(conn, notified)
    counts = rows(conn, """SELECT count(*), count(*) FILTER (WHERE cost IS NULL), tokenledger.sum(cost) FILTER
                           (WHERE tokenledger.currency(cost) = 'USD'), count(DISTINCT reservation_id)
                           FROM tokenledger.usage""")[0]
    comment(f"ledger: {counts[0]} rows ({counts[1]} unpriced), USD spend {counts[2]}, {counts[3]} settlements")
    conn.close()
    listener.close()
    comment(f"whole run {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    print(f"1..{PLAN}")
    sys.stdout.flush()
    try:
        main()
    except Exception as e:
        print(f"not ok {len(results) + 1} - budget stress test crashed: {e!r}")
        traceback.print_exc(file=sys.stdout)
        sys.exit(1)
    sys.exit(0 if all(results) and len(results) == PLAN else 1)
