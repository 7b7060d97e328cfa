#!/usr/bin/python3
"""Crash safety: SIGKILL the postmaster under load; after crash recovery the
budget counters equal the ledger, no reservation is lost or settled twice,
and the server takes work again.

The test makes a throwaway cluster of its own (initdb in a temporary
directory, a Unix socket there and no TCP; as the `postgres` OS user when
run as root, since the server refuses root), because it kills it; the
cluster it may be run inside (pg_virtualenv) is not touched.  Each round:

- pgbench clients (custom scripts with random values) record usage against
  alert budgets of several periods and time zones: single rows, and
  explicit transactions with a multi-row INSERT, a savepoint rolled back
  and record_usage; other clients reserve against two block budgets and
  settle (in the reserving transaction or a later one) or release, or
  leave the reservation live.  A witness thread does the same by itself
  and notes every commit the server acknowledged; two transactions that
  record and settle a reservation are left prepared (2PC).
- After a few seconds the postmaster and every process it started are
  stopped (SIGSTOP, so the cluster freezes at one instant) and killed with
  SIGKILL; the postmaster's pid from postmaster.pid must be gone.
- The cluster is started again (crash recovery).  Then: nothing committed
  before the kill is lost; every budget's counters equal the ledger's sums
  per period, both ways, and budget_status agrees; spend_daily (the
  rollups) equals a GROUP BY of the ledger; every settlement row
  settled its reservation, once, and left no hold; released reservations
  hold nothing; live ones hold on every budget they fall under; block
  budgets are not overrun; the prepared transactions survived, recorders
  beside them do not wait for them, and committing one and rolling back
  the other keeps counters and reservations right; a new recording and a
  new reservation are accepted and counted.

TOKENLEDGER_CRASH_SECONDS (default 5) is how long the load runs before each
kill, TOKENLEDGER_CRASH_ROUNDS (default 2) how many crashes.  Prints TAP.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from decimal import Decimal

import psycopg
from tap import check, comment, results


BIN = "/usr/lib/postgresql/15/bin"
SECONDS = float(os.environ.get("TOKENLEDGER_CRASH_SECONDS") or 5)
ROUNDS = int(os.environ.get("TOKENLEDGER_CRASH_ROUNDS") or 2)
CHECKS_PER_ROUND = 12
PLAN = CHECKS_PER_ROUND * ROUNDS
SUPERUSER = "tladmin"
CLIENTS = 6
# what each round must at least have committed before the kill, so that it
# cannot pass on an idle server
MIN_ROWS = 200
MIN_RESERVATIONS = 30
MIN_SETTLED = 10
MIN_RELEASED = 3
# recorders opened side by side with the prepared transactions
BESIDE = 20


# ---------------------------------------------------------------------------
# the throwaway cluster
# ---------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_state(pid):
    """(ppid, state) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def alive(pid):
    st = proc_state(pid)
    # a zombie has exited: it holds no memory, socket or file any more
    return st is not None and st[1] not in ("Z", "X")


def children(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_state(int(name))
            if st is not None and st[0] == pid:
                kids.append(int(name))
    return kids


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tokenledger-crash-")
        self.data = os.path.join(self.dir, "data")
        self.logpath = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.proc = None
        self.as_owner = []
        try:
            if os.geteuid() == 0:
                # initdb and postgres refuse to run as root
                pw = pwd.getpwnam("postgres")
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                # setpriv execs: the server stays this process's child
                self.as_owner = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
            self.log = open(self.logpath, "ab")
        except Exception:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def dsn(self, **kw):
        return psycopg.conninfo.make_conninfo(host=self.dir, port=self.port, user=SUPERUSER, dbname="postgres",
                                              connect_timeout=5, **kw)

    def initdb(self):
        out = subprocess.run(self.as_owner + [f"{BIN}/initdb", "-D", self.data, "-U", SUPERUSER, "-A", "trust",
                                              "-E", "UTF8", "--locale=C", "--no-sync"],
                             cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{out.stdout}")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
port = {self.port}
listen_addresses = ''
unix_socket_directories = '{self.dir}'
max_connections = 60
max_prepared_transactions = 10
shared_buffers = 32MB
log_line_prefix = '%m [%p] '
""")

    def start(self, timeout=60):
        """Start the postmaster and wait until it takes connections."""
        self.proc = subprocess.Popen(self.as_owner + [f"{BIN}/postgres", "-D", self.data], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with psycopg.connect(self.dsn(), autocommit=True) as c:
                    c.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    raise RuntimeError(f"the server did not come up in {timeout} s:\n{self.log_tail()}")
                time.sleep(0.1)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def crash(self):
        """Freeze the postmaster and every process it started, SIGKILL them
        all, and wait until they are gone.  Returns (postmaster pid, the
        pids of its processes, whether all are gone, the postmaster's exit
        status)."""
        pm = self.postmaster_pid()
        os.kill(pm, signal.SIGSTOP)          # it forks no more
        kids = children(pm)
        for k in kids:
            try:
                os.kill(k, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        os.kill(pm, signal.SIGKILL)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = None
        if self.proc is not None and self.proc.pid == pm:
            status = self.proc.wait(timeout=10)
        end = time.monotonic() + 10
        while time.monotonic() < end and any(alive(p) for p in [pm] + kids):
            time.sleep(0.05)
        gone = not any(alive(p) for p in [pm] + kids)
        return pm, kids, gone, status

    def log_size(self):
        self.log.flush()
        return os.path.getsize(self.logpath)

    def log_since(self, offset):
        with open(self.logpath, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, n=30):
        return "\n".join(self.log_since(0).splitlines()[-n:])

    def destroy(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                pm = self.proc.pid
                kids = children(pm)
                self.proc.send_signal(signal.SIGQUIT)     # immediate shutdown
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                for k in kids:
                    if alive(k):
                        try:
                            os.kill(k, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
        finally:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# set-up and load
# ---------------------------------------------------------------------------

SETUP = """
SET client_min_messages = warning;
CREATE EXTENSION tokenledger;
INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
VALUES ('acme', 'm', '2020-01-01', 'in=1 out=4 USD/1M');
INSERT INTO tokenledger.budgets (name, scope, scope_value, period, time_zone, amount, mode) VALUES
  ('global day',   'global', NULL,    'day',   'UTC',              '1000 USD', 'alert'),
  ('global total', 'global', NULL,    'total', 'UTC',              '5000 USD', 'alert'),
  ('team1 day',    'team',   'team1', 'day',   'Europe/Berlin',    '2 USD',    'alert'),
  ('team2 week',   'team',   'team2', 'week',  'America/New_York', '50 USD',   'alert'),
  ('app1 month',   'app',    'app1',  'month', 'Asia/Kolkata',     '20 USD',   'alert'),
  ('blk1 total',   'team',   'blk1',  'total', 'UTC',              '1000 USD', 'block'),
  ('blk2 day',     'team',   'blk2',  'day',   'Pacific/Chatham',  '1 USD',    'block');
-- a reservation for pgbench: its id, or '' when a block budget refuses (TL001)
CREATE FUNCTION crash_reserve(p_team text, micros bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN tokenledger.budget_reserve(team => p_team, app => 'app3',
           estimate => ((micros / 1e6)::text || ' USD')::tokenledger.cost, ttl => '1 hour')::text;
EXCEPTION WHEN SQLSTATE 'TL001' THEN
  RETURN '';
END $$;
"""

# pgbench scripts (name, weight, text).  Alert teams team1/team2 receive
# plain recordings; the block teams blk1/blk2 only settlements of their own
# reservations, at most the estimate (in=N out=0 costs N millionths of USD).
SCRIPTS = [
    ("record", 4, r"""
\set t random(1, 2)
\set a random(1, 3)
\set i random(0, 40000)
\set o random(0, 2000)
\set ago random(0, 80)
INSERT INTO tokenledger.usage (provider, model, tokens, team, app, occurred_at, tags)
VALUES ('acme', 'm', 'in=:i out=:o', 'team:t', 'app:a', now() - :ago * interval '1 hour', '{"s": "record"}');
"""),
    ("multi", 2, r"""
\set t random(1, 2)
\set i random(0, 40000)
\set j random(0, 40000)
\set k random(0, 40000)
\set ago random(0, 80)
BEGIN;
INSERT INTO tokenledger.usage (provider, model, tokens, team, app, occurred_at, tags) VALUES
  ('acme', 'm', 'in=:i out=10', 'team:t', 'app1', now(), '{"s": "multi"}'),
  ('acme', 'm', 'in=:j out=20', 'team1', 'app2', now() - :ago * interval '1 hour', '{"s": "multi"}'),
  ('acme', 'm', 'in=:k out=30', NULL, 'app3', now(), '{"s": "multi"}');
SAVEPOINT s;
INSERT INTO tokenledger.usage (provider, model, tokens, team, tags) VALUES ('acme', 'm', 'in=:k out=0', 'team2', '{"s": "undone"}');
ROLLBACK TO SAVEPOINT s;
\sleep 2 ms
SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": :i, "output_tokens": 5}', team => 'team:t', app => 'app1', tags => '{"s": "multi"}');
COMMIT;
"""),
    ("reserve_settle", 3, r"""
\set b random(1, 2)
\set e random(1000, 20000)
\set used random(0, :e)
\set i random(0, 40000)
SELECT crash_reserve('blk:b', :e) AS rid \gset
BEGIN;
INSERT INTO tokenledger.usage (provider, model, tokens, team, app, reservation_id, tags)
SELECT 'acme', 'm', 'in=:used out=0', 'blk:b', 'app3', NULLIF(':rid', '')::uuid, '{"s": "settle"}' WHERE ':rid' <> '';
INSERT INTO tokenledger.usage (provider, model, tokens, team, tags) VALUES ('acme', 'm', 'in=:i out=0', 'team2', '{"s": "settle"}');
COMMIT;
"""),
    ("reserve_tx", 2, r"""
\set b random(1, 2)
\set e random(1000, 20000)
\set used random(0, :e)
BEGIN;
SELECT crash_reserve('blk:b', :e) AS rid \gset
\sleep 1 ms
SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": :used, "output_tokens": 0}', team => 'blk:b',
         app => 'app3', reservation_id => NULLIF(':rid', '')::uuid, tags => '{"s": "settle_tx"}') WHERE ':rid' <> '';
COMMIT;
"""),
    ("reserve_release", 1, r"""
\set b random(1, 2)
\set e random(1000, 20000)
SELECT crash_reserve('blk:b', :e) AS rid \gset
\sleep 1 ms
SELECT tokenledger.budget_release(NULLIF(':rid', '')::uuid);
"""),
    ("reserve_keep", 1, r"""
\set e random(1000, 20000)
SELECT crash_reserve('blk1', :e);
"""),
]


class Witness:
    """Records, reserves, settles and releases by itself, and notes what the
    server acknowledged as committed."""

    def __init__(self, dsn, tag):
        self.dsn = dsn
        self.tag = tag
        self.rows = []          # request_ids committed
        self.reserved = []      # reservation ids committed
        self.settled = {}       # reservation id -> request_id of its settlement, committed
        self.released = []      # reservation ids released, committed
        self.errors = []        # errors met before the kill
        self.killing = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n = 0
        try:
            conn = psycopg.connect(self.dsn, autocommit=True)
            while not self.stop.is_set():
                n += 1
                key = f"{self.tag}-{n}"
                conn.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, app, request_id, tags)
                                VALUES ('acme', 'm', 'in=1000 out=100', 'team1', 'app2', %s, '{"s": "witness"}')""",
                             (key,))
                self.rows.append(key)
                rid = conn.execute("SELECT crash_reserve('blk1', 5000)").fetchone()[0]
                if not rid:
                    continue
                self.reserved.append(rid)
                if n % 3 == 0:
                    conn.execute("SELECT tokenledger.budget_release(%s::uuid)", (rid,))
                    self.released.append(rid)
                else:
                    with conn.transaction():
                        conn.execute("""SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 4000, "output_tokens": 0}',
                                          request_id => %s, team => 'blk1', reservation_id => %s::uuid,
                                          tags => '{"s": "witness"}')""", (key + "-s", rid))
                    self.settled[rid] = key + "-s"
        except psycopg.Error as e:
            if not self.killing.is_set():
                self.errors.append(f"{e.sqlstate} {e}")
        except Exception as e:  # reported as a failed check
            self.errors.append(repr(e))


def write_scripts(cluster):
    args = []
    for name, weight, text in SCRIPTS:
        path = os.path.join(cluster.dir, f"{name}.sql")
        with open(path, "w") as f:
            f.write(text.lstrip())
        args += ["-f", f"{path}@{weight}"]
    return args


def start_pgbench(cluster, script_args):
    out = open(os.path.join(cluster.dir, "pgbench.out"), "w+")
    proc = subprocess.Popen([f"{BIN}/pgbench", "-n", "-h", cluster.dir, "-p", str(cluster.port), "-U", SUPERUSER,
                             "-c", str(CLIENTS), "-j", "2", "-T", "600"] + script_args + ["postgres"],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cluster.dir)
    return proc, out


def prepare(dsn, gid):
    """A transaction that records and settles a reservation of its own
    (reserved and committed before), left prepared.  Returns the reservation
    id and what the transaction recorded (rows, USD)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        rid = c.execute("SELECT crash_reserve('blk1', 20000)").fetchone()[0]
        if not rid:
            raise RuntimeError("blk1 refused the reservation of a prepared transaction")
        c.execute("BEGIN")
        c.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, app, tags) VALUES
                       ('acme', 'm', 'in=100000 out=0', 'team1', 'app1', jsonb_build_object('s', 'prepared', 'gid', %s::text)),
                       ('acme', 'm', 'in=200000 out=0', 'team2', 'app2', jsonb_build_object('s', 'prepared', 'gid', %s::text))""",
                  (gid, gid))
        c.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, app, reservation_id, tags)
                     VALUES ('acme', 'm', 'in=15000 out=0', 'blk1', 'app3', %s::uuid,
                             jsonb_build_object('s', 'prepared', 'gid', %s::text))""", (rid, gid))
        c.execute(f"PREPARE TRANSACTION '{gid}'")
    return rid


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

def rows(conn, q, params=None):
    return conn.execute(q, params).fetchall()


def counts(conn):
    return rows(conn, """
        SELECT (SELECT count(*) FROM tokenledger.usage),
               (SELECT count(*) FROM tokenledger.budget_reservations),
               (SELECT count(*) FROM tokenledger.budget_reservations WHERE settled_at IS NOT NULL),
               (SELECT count(*) FROM tokenledger.budget_reservations WHERE released_at IS NOT NULL)""")[0]


def by_script(conn):
    return dict(rows(conn, "SELECT tags->>'s', count(*) FROM tokenledger.usage GROUP BY 1"))


def counter_diff(conn):
    """(budget, period, counted, ledger) wherever a budget's counters and the
    ledger's sum of cost for that period differ, both ways; and the number of
    budget periods compared."""
    diff = rows(conn, """
        WITH counters AS (
            SELECT s.budget_id, s.period_start, sum(tokenledger.amount(s.spent)) AS spent
            FROM tokenledger.budget_spend s
            GROUP BY 1, 2),
        ledger AS (
            SELECT b.id AS budget_id, tokenledger.period_start(b.period, u.occurred_at, b.time_zone) AS period_start,
                   sum(tokenledger.amount(u.cost)) AS spent
            FROM tokenledger.budgets b
            JOIN tokenledger.usage u ON tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
            WHERE u.cost IS NOT NULL AND b.active
            GROUP BY 1, 2),
        x AS (
            SELECT coalesce(c.budget_id, l.budget_id) AS budget_id, coalesce(c.period_start, l.period_start) AS ps,
                   c.spent AS counted, l.spent AS ledger
            FROM counters c FULL JOIN ledger l ON l.budget_id = c.budget_id AND l.period_start = c.period_start)
        SELECT coalesce(b.name, x.budget_id::text), x.ps::text, x.counted, x.ledger
        FROM x LEFT JOIN tokenledger.budgets b ON b.id = x.budget_id
        WHERE coalesce(x.counted, 0) <> coalesce(x.ledger, 0)
        ORDER BY 1, 2""")
    npairs = rows(conn, "SELECT count(DISTINCT (budget_id, period_start)) FROM tokenledger.budget_spend")[0][0]
    other = rows(conn, """SELECT 'usage', count(*) FROM tokenledger.usage WHERE tokenledger.currency(cost) <> 'USD'
                          UNION ALL
                          SELECT 'budget_spend', count(*) FROM tokenledger.budget_spend
                          WHERE tokenledger.currency(spent) <> 'USD'""")
    # each budget's bound, replayed from the WAL, still covers its period's spend
    under = rows(conn, """
        SELECT b.name, x.period_start::text, x.bound, s.spent
        FROM tokenledger.budget_bounds x JOIN tokenledger.budgets b ON b.id = x.budget_id,
             LATERAL (SELECT sum(tokenledger.amount(spent)) * 1000000000 AS spent
                      FROM tokenledger.budget_spend y
                      WHERE y.budget_id = x.budget_id AND y.period_start = x.period_start
                        AND y.currency = tokenledger.currency(b.amount)) s
        WHERE x.bound < s.spent""")
    problems = [f"{d[0]} period {d[1]}: counted {d[2]}, ledger {d[3]}" for d in diff]
    problems += [f"{o[1]} {o[0]} rows not in USD" for o in other if o[1]]
    problems += [f"{u[0]} period {u[1]}: bound {u[2]} below the counted {u[3]} nanos" for u in under]
    return problems, npairs


def status_diff(conn):
    return rows(conn, """
        SELECT s.name, p.ps::text, s.spent, l.spent, s.reserved, h.held
        FROM tokenledger.budget_status s
        JOIN tokenledger.budgets b ON b.id = s.budget_id
        -- the current period (budget_status shows a total budget's as NULL)
        CROSS JOIN LATERAL (SELECT tokenledger.period_start(b.period, now(), b.time_zone) AS ps) p
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(tokenledger.amount(u.cost)), 0) AS spent
            FROM tokenledger.usage u
            WHERE u.cost IS NOT NULL AND tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
              AND tokenledger.period_start(b.period, u.occurred_at, b.time_zone) = p.ps) l
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(tokenledger.amount(h.amount)), 0) AS held FROM tokenledger.budget_holds h
            WHERE h.budget_id = b.id AND h.period_start = p.ps AND h.expires_at > now()) h
        WHERE s.active AND (s.spent <> l.spent OR s.reserved <> h.held)""")


def rollup_diff(conn):
    """spend_daily (read from the rollups) against the same sums over the
    ledger, per day, team, initiative, model and currency (all USD here)."""
    conn.execute("SET TimeZone = 'UTC'")
    view = rows(conn, """SELECT day, team, initiative, provider, model, service_tier, environment, currency,
                                requests, input_tokens, spend
                         FROM tokenledger.spend_daily""")
    ledger = rows(conn, """
        SELECT occurred_at::date, team, initiative, provider,
               CASE WHEN cost IS NULL THEN model
                    ELSE coalesce(tokenledger.resolve_model(provider, model), model) END,
               service_tier, environment, coalesce(tokenledger.currency(cost), 'USD'),
               coalesce(sum(requests) FILTER (WHERE entry = 'call'), 0),
               sum(tokenledger.input(tokens)), round(coalesce(sum(tokenledger.amount(cost)), 0), 9)
        FROM tokenledger.usage GROUP BY 1, 2, 3, 4, 5, 6, 7, 8""")
    got, want = sorted(map(tuple, view), key=repr), sorted(map(tuple, ledger), key=repr)
    return [f"view only: {r}" for r in got if r not in want][:10] + \
           [f"ledger only: {r}" for r in want if r not in got][:10]


def reservation_problems(conn):
    """Settlements, releases and holds that contradict each other."""
    problems = []
    for r in rows(conn, """
            SELECT u.id, u.reservation_id, r.id IS NOT NULL, r.settled_by, r.settled_at IS NOT NULL,
                   r.released_at IS NOT NULL,
                   (SELECT count(*) FROM tokenledger.budget_holds h WHERE h.reservation_id = u.reservation_id)
            FROM tokenledger.usage u LEFT JOIN tokenledger.budget_reservations r ON r.id = u.reservation_id
            WHERE u.reservation_id IS NOT NULL"""):
        uid, rid, exists, by, settled, released, holds = r
        if not exists or by != uid or not settled or released or holds:
            problems.append(f"usage row {uid} settles {rid}: reservation exists {exists}, settled_by {by}, "
                            f"settled {settled}, released {released}, holds left {holds}")
    for rid, n in rows(conn, """SELECT reservation_id, count(*) FROM tokenledger.usage WHERE reservation_id IS NOT NULL
                                GROUP BY 1 HAVING count(*) > 1"""):
        problems.append(f"reservation {rid} is on {n} usage rows")
    for r in rows(conn, """
            SELECT r.id, r.settled_at, r.settled_by, r.released_at
            FROM tokenledger.budget_reservations r
            WHERE (r.settled_at IS NULL) <> (r.settled_by IS NULL)
               OR (r.settled_at IS NOT NULL AND r.released_at IS NOT NULL)
               OR (r.settled_by IS NOT NULL AND NOT EXISTS (
                      SELECT 1 FROM tokenledger.usage u WHERE u.id = r.settled_by AND u.reservation_id = r.id))"""):
        problems.append(f"reservation {r[0]}: settled_at {r[1]}, settled_by {r[2]} (no such settlement row?), "
                        f"released_at {r[3]}")
    for r in rows(conn, """
            SELECT h.reservation_id, h.budget_id, r.settled_at, r.released_at
            FROM tokenledger.budget_holds h JOIN tokenledger.budget_reservations r ON r.id = h.reservation_id
            WHERE r.settled_at IS NOT NULL OR r.released_at IS NOT NULL"""):
        problems.append(f"reservation {r[0]} still holds on budget {r[1]} (settled_at {r[2]}, released_at {r[3]})")
    # a live reservation holds its estimate on every budget it falls under,
    # in the period it was made in
    for r in rows(conn, """
            SELECT r.id, b.name, h.amount::text, r.estimate::text
            FROM tokenledger.budget_reservations r
            JOIN tokenledger.budgets b ON b.active
                 AND tokenledger.budget_applies(b, r.team, r.initiative, r.principal, r.api_key, r.app)
            LEFT JOIN tokenledger.budget_holds h ON h.reservation_id = r.id AND h.budget_id = b.id
                 AND h.period_start = tokenledger.period_start(b.period, r.created_at, b.time_zone)
            WHERE r.settled_at IS NULL AND r.released_at IS NULL AND r.expires_at > now()
              AND (h.amount IS NULL OR tokenledger.amount(h.amount) <> tokenledger.amount(r.estimate))"""):
        problems.append(f"live reservation {r[0]} holds {r[2]} on {r[1]}, its estimate is {r[3]}")
    return problems


def block_overruns(conn):
    return rows(conn, """
        WITH spend AS (
            SELECT b.id, tokenledger.period_start(b.period, u.occurred_at, b.time_zone) AS ps,
                   sum(tokenledger.amount(u.cost)) AS spent
            FROM tokenledger.budgets b
            JOIN tokenledger.usage u ON tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)
            WHERE b.mode = 'block' AND u.cost IS NOT NULL
            GROUP BY 1, 2),
        held AS (
            SELECT h.budget_id AS id, h.period_start AS ps, sum(tokenledger.amount(h.amount)) AS held
            FROM tokenledger.budget_holds h JOIN tokenledger.budgets b ON b.id = h.budget_id
            WHERE b.mode = 'block' AND h.expires_at > now()
            GROUP BY 1, 2)
        SELECT b.name, x.ps::text, coalesce(x.spent, 0), coalesce(x.held, 0), tokenledger.amount(b.amount)
        FROM (spend FULL JOIN held USING (id, ps)) x JOIN tokenledger.budgets b ON b.id = x.id
        ORDER BY 1, 2""")


# ---------------------------------------------------------------------------
# a round: load, kill, restart, check
# ---------------------------------------------------------------------------

def crash_round(cluster, rnd, script_args):
    R = f"round {rnd}:"
    dsn = cluster.dsn()
    admin = psycopg.connect(dsn, autocommit=True)
    before = counts(admin)
    scripts_before = by_script(admin)
    admin.close()

    started = time.monotonic()
    witness = Witness(dsn, f"w{rnd}")
    bench, bench_out = start_pgbench(cluster, script_args)
    witness.thread.start()
    time.sleep(max(0.5, SECONDS - 1.0))
    gids = {"commit": f"crash-{rnd}-commit", "rollback": f"crash-{rnd}-rollback"}
    prepared_rids = {k: prepare(dsn, gid) for k, gid in gids.items()}
    time.sleep(max(0.2, SECONDS - (time.monotonic() - started)))

    # what is committed just before the kill must survive it
    with psycopg.connect(dsn, autocommit=True) as c:
        seen = counts(c)
        seen_scripts = by_script(c)
        in_flight = rows(c, """SELECT count(*) FROM pg_stat_activity
                               WHERE backend_type = 'client backend' AND xact_start IS NOT NULL
                                 AND pid <> pg_backend_pid()""")[0][0]
    bench_alive = bench.poll() is None
    witness.killing.set()
    pm, kids, gone, status = cluster.crash()
    witness.stop.set()
    log_offset = cluster.log_size()
    try:
        bench.wait(timeout=15)
    except subprocess.TimeoutExpired:
        bench.kill()
        bench.wait()
    witness.thread.join(timeout=15)
    bench_out.seek(0)
    bench_text = bench_out.read()
    bench_out.close()
    comment(f"{R} load ran {time.monotonic() - started:.1f} s; killed with {in_flight} client transactions open "
            f"and 2 prepared")

    delta = [s - b for s, b in zip(seen, before)]
    kinds = {k: seen_scripts.get(k, 0) - scripts_before.get(k, 0)
             for k in ("record", "multi", "settle", "settle_tx", "witness")}
    bench_errors = [line for line in bench_text.splitlines() if "ERROR" in line]
    comment(f"{R} pgbench: " + "; ".join(line.strip() for line in bench_text.splitlines()
                                         if "aborted" in line or "transactions actually processed" in line)[:300])
    comment(f"{R} committed before the kill: {delta[0]} usage rows ({', '.join(f'{k} {v}' for k, v in kinds.items())}), "
            f"{delta[1]} reservations, {delta[2]} settled, {delta[3]} released; "
            f"the witness saw {len(witness.rows)} rows, {len(witness.reserved)} reservations committed")
    check(bench_alive and delta[0] >= MIN_ROWS and delta[1] >= MIN_RESERVATIONS and delta[2] >= MIN_SETTLED
          and delta[3] >= MIN_RELEASED and all(kinds[k] > 0 for k in ("record", "multi", "settle", "settle_tx", "witness"))
          and not bench_errors and not witness.errors,
          f"{R} the load did work before the kill ({delta[0]} rows, {delta[1]} reservations, {delta[2]} settled, "
          f"{delta[3]} released) and no client met an error",
          [f"pgbench running at the kill: {bench_alive}", f"rows by script: {kinds}"] + bench_errors[:10]
          + witness.errors + bench_text.splitlines()[-5:])

    check(gone and status in (None, -signal.SIGKILL) and not alive(pm),
          f"{R} the postmaster (pid {pm}) and its {len(kids)} processes were SIGKILLed and are gone",
          [f"postmaster exit status {status}", f"still alive: {[p for p in [pm] + kids if alive(p)]}"])

    # crash recovery
    t0 = time.monotonic()
    cluster.start()
    log = cluster.log_since(log_offset)
    recovered = "database system was not properly shut down; automatic recovery in progress" in log
    bad_log = [line for line in log.splitlines()
               if ("PANIC" in line or "TRAP" in line or "WARNING" in line or " ERROR" in line)]
    comment(f"{R} restarted through crash recovery in {time.monotonic() - t0:.1f} s")
    for line in log.splitlines():
        if "LOG:" in line and ("redo " in line or "recover" in line or "ready to" in line
                               or "checkpoint complete" in line):
            comment(f"{R} log: {line}")
    check(recovered and not bad_log, f"{R} the server came back through crash recovery, with no error in its log",
          bad_log + ([] if recovered else ["no 'automatic recovery in progress' in the log:"] + log.splitlines()[-15:]))

    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET statement_timeout = '30s'")
    after = counts(conn)
    lost = []
    have = {r[0] for r in rows(conn, "SELECT request_id FROM tokenledger.usage WHERE request_id LIKE %s",
                               (f"w{rnd}-%",))}
    lost += [f"witness row {k} is gone" for k in witness.rows if k not in have]
    lost += [f"witness settlement {k} is gone" for k in witness.settled.values() if k not in have]
    db = {str(r[0]): r[1:] for r in rows(conn, """
        SELECT r.id, r.settled_at IS NOT NULL, u.request_id, r.released_at IS NOT NULL
        FROM tokenledger.budget_reservations r LEFT JOIN tokenledger.usage u ON u.id = r.settled_by""")}
    for rid in witness.reserved:
        if rid not in db:
            lost.append(f"witness reservation {rid} is gone")
    for rid, key in witness.settled.items():
        if rid in db and (not db[rid][0] or db[rid][1] != key):
            lost.append(f"witness reservation {rid}, settled by {key}, is {db[rid]}")
    for rid in witness.released:
        if rid in db and not db[rid][2]:
            lost.append(f"witness reservation {rid}, released, is {db[rid]}")
    fewer = [f"{name}: {a} after, {s} committed before the kill"
             for name, a, s in zip(("usage rows", "reservations", "settled", "released"), after, seen) if a < s]
    check(not lost and not fewer,
          f"{R} nothing committed before the kill is lost ({after[0] - before[0]} rows, {after[1] - before[1]} "
          f"reservations now; the witness's {len(witness.rows) + len(witness.settled)} rows and "
          f"{len(witness.reserved)} reservations as acknowledged)", fewer + lost)

    problems, npairs = counter_diff(conn)
    check(not problems, f"{R} every budget's counters equal the ledger's sums per period, both ways, "
                        f"and its bound covers them ({npairs} budget periods)", problems)

    diff = status_diff(conn)
    check(not diff, f"{R} budget_status shows the ledger's spend and the live holds", diff)

    diff = rollup_diff(conn)
    check(not diff, f"{R} the rollups equal the ledger: spend_daily against a GROUP BY of usage", diff)

    problems = reservation_problems(conn)
    nres = rows(conn, """SELECT count(*) FILTER (WHERE settled_at IS NOT NULL), count(*) FILTER (WHERE released_at IS NOT NULL),
                                count(*) FILTER (WHERE settled_at IS NULL AND released_at IS NULL)
                         FROM tokenledger.budget_reservations""")[0]
    check(not problems, f"{R} no reservation lost or settled twice: {nres[0]} settled by one row each with no hold "
                        f"left, {nres[1]} released holding nothing, {nres[2]} live holding their estimate", problems)

    state = block_overruns(conn)
    for name, ps, spent, held, amount in state:
        comment(f"{R} {name}, period {ps}: spent {spent:.6f} + held {held:.6f} of {amount}")
    over = [s for s in state if s[2] + s[3] > s[4]]
    check(state and not over, f"{R} no block budget is overrun: spend plus live holds within the amount", over)

    # the prepared transactions survived; recorders and a reserver beside them do not wait
    pending = {r[0] for r in rows(conn, "SELECT gid FROM pg_prepared_xacts")}
    comment(f"{R} advisory locks (budget counter slots) of the prepared transactions: " + "; ".join(
        f"{r[0]} {r[1]}" for r in rows(conn, """
            SELECT x.gid, string_agg(l.classid || '/' || l.objid || '/' || l.objsubid || ' ' || l.mode, ', ')
            FROM pg_prepared_xacts x JOIN pg_locks l ON l.virtualtransaction = '-1/' || x.transaction
            WHERE l.locktype = 'advisory'
            GROUP BY 1 ORDER BY 1""")))
    waits = []
    beside = []
    try:
        for i in range(BESIDE):
            c = psycopg.connect(dsn, autocommit=True)
            beside.append(c)
            c.execute("BEGIN")
            c.execute("SET LOCAL lock_timeout = '3s'")
            c.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, app, tags)
                         VALUES ('acme', 'm', 'in=1000 out=0', %s, %s, '{"s": "beside"}')""",
                      (f"team{1 + i % 2}", f"app{1 + i % 2}"))
        c = beside[0]
        c.execute("SELECT crash_reserve('blk1', 1000)")
        for c in beside:
            c.execute("COMMIT")
    except psycopg.Error as e:
        waits.append(f"{e.sqlstate} {e}")
    finally:
        for c in beside:
            c.close()
    check(set(gids.values()) <= pending and not waits,
          f"{R} the 2 prepared transactions survived the crash, and {BESIDE} recorders and a reserver "
          f"beside them did not wait for them", [f"prepared now: {sorted(pending)}"] + waits)

    # resolve them: one commits, one rolls back
    conn.execute(f"COMMIT PREPARED '{gids['commit']}'")
    conn.execute(f"ROLLBACK PREPARED '{gids['rollback']}'")
    got = {r[0]: r[1] for r in rows(conn, """SELECT tags->>'gid', count(*) FROM tokenledger.usage
                                              WHERE tags->>'s' = 'prepared' GROUP BY 1""")}
    res = {k: rows(conn, """SELECT r.settled_at IS NOT NULL, r.released_at IS NOT NULL,
                                   (SELECT count(*) FROM tokenledger.budget_holds h WHERE h.reservation_id = r.id)
                            FROM tokenledger.budget_reservations r WHERE r.id = %s""", (rid,))
           for k, rid in prepared_rids.items()}
    problems, _ = counter_diff(conn)
    problems += reservation_problems(conn)
    if got.get(gids["commit"]) != 3 or gids["rollback"] in got:
        problems.append(f"rows of the prepared transactions: {got}")
    if res["commit"] != [(True, False, 0)]:
        problems.append(f"the reservation the committed one settled: (settled, released, holds) {res['commit']}")
    if not res["rollback"] or res["rollback"][0][:2] != (False, False) or res["rollback"][0][2] == 0:
        problems.append(f"the reservation the rolled-back one settled: (settled, released, holds) {res['rollback']}")
    check(not problems, f"{R} after COMMIT PREPARED of one and ROLLBACK PREPARED of the other, counters equal the "
                        f"ledger and only the committed one settled its reservation", problems)

    # new work is accepted and counted
    problems = []
    bid, = rows(conn, "SELECT id FROM tokenledger.budgets WHERE name = 'team1 day'")[0]
    blk, = rows(conn, "SELECT id FROM tokenledger.budgets WHERE name = 'blk1 total'")[0]

    def spent_reserved(b):
        return rows(conn, "SELECT spent, reserved FROM tokenledger.budget_status WHERE budget_id = %s", (b,))[0]

    s0 = spent_reserved(bid)
    r0 = spent_reserved(blk)
    cost, = rows(conn, """INSERT INTO tokenledger.usage (provider, model, tokens, team, app, tags)
                          VALUES ('acme', 'm', 'in=123456 out=1000', 'team1', 'app2', '{"s": "after"}')
                          RETURNING tokenledger.amount(cost)""")[0]
    rid = rows(conn, """SELECT tokenledger.budget_reserve(team => 'blk1', estimate => '0.25 USD')""")[0][0]
    s1 = spent_reserved(bid)
    r1 = spent_reserved(blk)
    if cost != Decimal("0.127456") or s1[0] - s0[0] != cost:
        problems.append(f"recorded {cost}; team1 day spent {s0[0]} -> {s1[0]}")
    if r1[1] - r0[1] != Decimal("0.25"):
        problems.append(f"reserved 0.25 USD; blk1 total reserved {r0[1]} -> {r1[1]}")
    conn.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, team, reservation_id, tags)
                    VALUES ('acme', 'm', 'in=200000 out=0', 'blk1', %s, '{"s": "after"}')""", (rid,))
    r2 = spent_reserved(blk)
    if r2[1] != r0[1] or r2[0] - r0[0] != Decimal("0.2"):
        problems.append(f"settled for 0.2 USD; blk1 total (spent, reserved) {r0} -> {r2}")
    more, _ = counter_diff(conn)
    problems += more + reservation_problems(conn)
    check(not problems, f"{R} the server takes work again: a recording of {cost} USD, a reservation and its "
                        f"settlement are counted", problems)
    conn.close()


def main():
    print(f"1..{PLAN}")
    sys.stdout.flush()
    # a harness that gives up on the test still gets the cluster removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # the cluster this may run inside (pg_virtualenv) is none of this test's business
    for k in [k for k in os.environ if k.startswith("PG")]:
        del os.environ[k]
    started = time.monotonic()
    cluster = None
    try:
        cluster = Cluster()
        cluster.initdb()
        cluster.start()
        comment(f"a throwaway cluster in {cluster.dir}, port {cluster.port}"
                f"{' (as the postgres OS user)' if cluster.as_owner else ''}")
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute(SETUP)
            c.execute("CHECKPOINT")
        script_args = write_scripts(cluster)
        for rnd in range(1, ROUNDS + 1):
            crash_round(cluster, rnd, script_args)
    except Exception as e:
        print(f"not ok {len(results) + 1} - the crash test failed: {e!r}")
        traceback.print_exc(file=sys.stdout)
        try:
            comment("server log, last lines:\n" + cluster.log_tail())
        except Exception:
            pass
        return 1
    finally:
        if cluster is not None:
            cluster.destroy()
        comment(f"whole run {time.monotonic() - started:.1f} s")
    return 0 if all(results) and len(results) == PLAN else 1


if __name__ == "__main__":
    sys.exit(main())
