#!/usr/bin/python3
"""pg_dump and restore give back exactly the ledger that was dumped.

Database S records a ledger: budgets (alert and block) whose spend crossed
thresholds (budget_alerts rows), live and settled reservations, a call no
price applied to (cost NULL), a call no rule attributed (no team), a call
naming an initiative that had no team, an initiative registered by a call,
an outcome valued NULL (its initiative had no value_per_outcome), a given
cost, a cost in another currency, an adjustment (adjust()), a rerate entry
(rerate()), user prices and aliases, an admin's UPDATE of a shipped price,
exchange rates.  Then S changes what the insert path would decide today: a
price for the unpriced model, a rule that matches the unattributed call, a
value_per_outcome and a team for the initiatives.  A restore that prices,
attributes, values or counts its rows again is caught.

S's ledger has month partitions, an archived month and a row in the default
partition.  Every table of the extension but the partitions (every column,
in primary-key order) and every
sequence of S is compared with the restored database's, for
  (a) pg_dump -Fc, createdb, pg_restore -d (and no NOTIFY on
      tokenledger_budget while it restores, the same budget_alerts);
  (b) a plain pg_dump restored with psql -f;
  (c) pg_dump --data-only --load-via-partition-root restored with psql -f
      into a database where CREATE EXTENSION tokenledger was run first (the
      rows go through the ledger to whatever partitions that database has);
  (d) (a)'s dump restored with pg_restore --single-transaction
      --exit-on-error into another new database.
Each restore must also report no error.  Each table that differs is one
failing test, with how many rows differ and the first differing row of each
side.  Uses databases of its own.  Prints TAP.
"""
import os
import subprocess
import sys
import tempfile
import time

import psycopg
from psycopg.sql import Identifier
from tap import check, results, Failed, step


PREFIX = "tokenledger_dump_"
SOURCE = PREFIX + "s"
CHANNEL = "tokenledger_budget"


def dsn(db):
    return psycopg.conninfo.make_conninfo("", dbname=db)


def connect(db):
    conn = psycopg.connect(dsn(db), autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    conn.execute("SET extra_float_digits = 3")
    return conn


# ---------------------------------------------------------------------------
# the ledger of S
# ---------------------------------------------------------------------------

def record(conn):
    x = conn.execute
    x("SET search_path = tokenledger, public")
    x("""INSERT INTO prices (provider, model, effective_from, rate, source)
         VALUES ('acme', 'm', '2020-01-01', 'in=1 out=2 USD/1M', 'dump test')""")
    x("INSERT INTO model_aliases (provider, alias, model) VALUES ('acme', 'acme-latest', 'm')")
    # an admin's own price for a shipped row (the catalog ships list prices)
    x("""UPDATE prices SET rate = 'in=0.1 out=0.2 USD/1M', source = 'negotiated discount'
         WHERE id = (SELECT min(id) FROM prices WHERE shipped)""")
    x("""UPDATE model_aliases SET model = model || '-custom'
         WHERE (provider, alias) = (SELECT provider, alias FROM model_aliases WHERE shipped
                                    ORDER BY provider, alias LIMIT 1)""")
    x("""INSERT INTO initiatives (name, team, owner, outcome_metric)
         VALUES ('support-triage', 'support', 'ann', 'ticket_resolved'), ('teamless', NULL, 'bob', NULL)""")
    x("INSERT INTO attribution_rules (priority, match_api_key, team) VALUES (10, 'key-lab', 'research')")
    x("INSERT INTO fx_rates VALUES ('EUR', 'USD', 1.1, '2020-01-01')")
    x("""INSERT INTO budgets (name, scope, scope_value, period, amount, mode, warn_at) VALUES
         ('support total', 'team', 'support', 'total', '20 USD', 'alert', '{0.25,0.5,1.0}'),
         ('support daily', 'team', 'support', 'day', '100 USD', 'block', '{0.05,0.9}'),
         ('everything', 'global', NULL, 'total', '1000 USD', 'alert', '{0.001}')""")
    # spend that crosses thresholds: 25% and 50% of 'support total', 5% of
    # 'support daily', 0.1% of 'everything'
    x("""INSERT INTO usage (provider, model, tokens, team, request_id)
         VALUES ('acme', 'm', 'in=4000000 out=500000', 'support', 'req-1')""")          # $5
    x("""INSERT INTO usage (provider, model, tokens, initiative, principal)
         VALUES ('acme', 'acme-latest', 'in=5000000 out=0', 'support-triage', 'carol')""")  # $5, team from initiative
    x("""INSERT INTO usage (provider, model, tokens, api_key)
         VALUES ('acme', 'm-2024-08-06', 'in=1000000 out=0', 'key-lab')""")             # rule:1, research
    x("""INSERT INTO usage (provider, model, tokens, team)
         VALUES ('acme', 'future-model', 'in=1000 out=1000', 'support')""")             # unpriced
    x("""INSERT INTO usage (provider, model, tokens, app)
         VALUES ('acme', 'm', 'in=1000000 out=0', 'batch-job')""")                      # unattributed
    x("""INSERT INTO usage (provider, model, tokens, initiative)
         VALUES ('acme', 'm', 'in=100000 out=0', 'teamless')""")                        # no team yet
    x("""SELECT record_usage('acme', 'm', '{"input_tokens": 1000, "output_tokens": 10}',
                             request_id => 'req-2', initiative => 'auto-registered', app => 'helpdesk')""")
    x("""SELECT record_usage('acme', 'm', '{"input_tokens": 5, "output_tokens": 5}', request_id => 'req-3',
                             cost => '0.75 USD', team => 'support')""")                 # a given cost
    x("""SELECT record_usage('acme', 'm', '{"input_tokens": 5, "output_tokens": 5}', request_id => 'req-4',
                             cost => '1 EUR', team => 'support')""")                    # another currency
    first = x("SELECT min(id) FROM usage").fetchone()[0]
    x("SELECT adjust(%s, '-0.50 USD', 'credit from the provider')", (first,))
    # a call of last year, then a corrected price for that time: one rerate entry
    x("""INSERT INTO usage (provider, model, tokens, team, occurred_at)
         VALUES ('acme', 'm', 'in=1000000 out=0', 'support', '2024-06-01 12:00+00')""")
    x("""INSERT INTO prices (provider, model, effective_from, rate, source)
         VALUES ('acme', 'm', '2024-01-01', 'in=1.5 out=2 USD/1M', 'dump test: corrected 2024')""")
    x("SELECT rerate('acme', 'm', '2024-01-01', '2025-01-01')")
    # a live reservation, and one settled by a call
    x("SELECT budget_reserve(team => 'support', estimate => '2 USD', ttl => '1 day')")
    rid = x("SELECT budget_reserve(team => 'support', estimate => '1 USD', ttl => '1 day')").fetchone()[0]
    x("""INSERT INTO usage (provider, model, tokens, team, reservation_id)
         VALUES ('acme', 'm', 'in=900000 out=0', 'support', %s)""", (rid,))
    x("SELECT record_outcome('support-triage', 'ticket_resolved', 2, external_ref => 'zd-1')")   # value NULL
    x("SELECT record_outcome('support-triage', 'ticket_resolved', 1, value => '4 USD', external_ref => 'zd-2')")
    x("SELECT record_outcome('outcome-only', 'lead', 3)")                               # registers it

    # month partitions (the rows move out of the default partitions), the
    # 2024 month archived, and a row no month partition covers
    x("SELECT create_partitions(since => '2024-06-01', ahead => '1 month')")
    x("SELECT archive_before('2024-07-01')")
    x("""INSERT INTO usage (provider, model, tokens, team, request_id, occurred_at)
         VALUES ('acme', 'm', 'in=1000 out=0', 'support', 'req-far', '2150-01-01 00:00+00')""")

    # what the insert path would now decide differently
    x("""INSERT INTO prices (provider, model, effective_from, rate, source)
         VALUES ('acme', 'future-model', '2020-01-01', 'in=7 out=7 USD/1M', 'dump test: added later')""")
    x("INSERT INTO attribution_rules (priority, match_app, team) VALUES (5, 'batch-job', 'data')")
    x("UPDATE initiatives SET value_per_outcome = '3 USD' WHERE name = 'support-triage'")
    x("UPDATE initiatives SET team = 'ops' WHERE name = 'teamless'")


def preconditions(conn):
    """What the ledger must hold for the comparison to mean something."""
    q = conn.execute("""
        SELECT (SELECT count(*) FROM tokenledger.budget_alerts),
               (SELECT count(*) FROM tokenledger.budget_reservations WHERE settled_at IS NULL),
               (SELECT count(*) FROM tokenledger.budget_reservations WHERE settled_at IS NOT NULL),
               (SELECT count(*) FROM tokenledger.usage WHERE cost IS NULL),
               (SELECT count(*) FROM tokenledger.usage WHERE team IS NULL AND attribution = 'unattributed'),
               (SELECT count(*) FROM tokenledger.usage WHERE entry = 'adjustment'),
               (SELECT count(*) FROM tokenledger_archive.all_usage WHERE entry = 'rerate'),
               (SELECT count(*) FROM tokenledger.outcomes WHERE value IS NULL),
               (SELECT count(*) FROM tokenledger.initiatives WHERE name IN ('auto-registered', 'outcome-only')),
               (SELECT count(*) FROM tokenledger.budget_spend),
               (SELECT count(*) FROM tokenledger.usage WHERE initiative = 'teamless' AND team IS NULL),
               (SELECT count(*) FROM tokenledger.prices WHERE source = 'negotiated discount'),
               (SELECT count(*) FROM tokenledger.model_aliases WHERE model LIKE '%%-custom'),
               (SELECT count(*) FROM pg_inherits WHERE inhparent = 'tokenledger.usage'::regclass),
               (SELECT count(*) FROM tokenledger_archive.usage),
               (SELECT count(*) FROM tokenledger.usage_default)
        """).fetchone()
    names = ["alerts", "live reservations", "settled reservations", "unpriced calls", "unattributed calls",
             "adjustments", "rerate entries", "outcomes valued NULL", "registered initiatives",
             "counter rows", "calls without the initiative's later team", "corrected shipped prices",
             "corrected shipped aliases", "usage partitions", "archived calls",
             "calls in the default partition"]
    return all(v >= 1 for v in q), ", ".join(f"{n} {v}" for n, v in zip(names, q))


# ---------------------------------------------------------------------------
# fingerprints
# ---------------------------------------------------------------------------

def fingerprint(conn):
    """{table: (columns, [row, ...] in primary-key order)}, sequences and the version."""
    fp = {}
    tables = conn.execute("""
        SELECT c.oid, c.relname, c.relnamespace::regnamespace::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
        JOIN pg_extension e ON e.oid = d.refobjid
        WHERE e.extname = 'tokenledger' AND d.classid = 'pg_class'::regclass
          AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'p')
          -- a partitioned table holds its partitions' rows (which partition
          -- holds a row depends on the months the restore has made)
          AND NOT c.relispartition
          -- a cache that is not dumped: the budgets' recounts rebuild it
          AND c.relname <> 'budget_bounds'
        ORDER BY 3, 2""").fetchall()
    for oid, name, nsp in tables:
        cols = [r[0] for r in conn.execute("""
            SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped
            ORDER BY attnum""", (oid,))]
        pk = [r[0] for r in conn.execute("""
            SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attnum = k.attnum
            WHERE i.indrelid = %s AND i.indisprimary AND a.attrelid = i.indrelid ORDER BY k.n""", (oid,))]
        select = ", ".join(f"{Identifier(c).as_string(conn)}::text" for c in cols)
        order = ", ".join(Identifier(c).as_string(conn) + "::text" for c in (pk or cols))
        data = [tuple(r) for r in conn.execute(
            f"SELECT {select} FROM {Identifier(nsp, name).as_string(conn)} ORDER BY {order}")]
        fp[name if nsp == "tokenledger" else f"{nsp}.{name}"] = (cols, pk, data)
    fp["(spend per budget and period)"] = (["budget", "period_start", "currency", "spent"], ["budget", "period_start", "currency"], [
        tuple(r) for r in conn.execute("""
            SELECT b.name, s.period_start::text, s.currency, tokenledger.sum(s.spent)::text
            FROM tokenledger.budget_spend s JOIN tokenledger.budgets b ON b.id = s.budget_id
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")])
    seqs = conn.execute("""
        SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind = 'S'
        ORDER BY 1""").fetchall()
    seq_rows = []
    for (name,) in seqs:
        r = conn.execute(f"SELECT last_value::text, is_called::text FROM tokenledger.{Identifier(name).as_string(conn)}"
                         ).fetchone()
        seq_rows.append((name,) + tuple(r))
    fp["(sequences)"] = (["sequence", "last_value", "is_called"], ["sequence"], seq_rows)
    fp["(extension)"] = (["extversion"], [], [tuple(r) for r in conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'tokenledger'")])
    return fp


def short(row, cols):
    return "(" + ", ".join(f"{c}={'NULL' if v is None else v}" for c, v in zip(cols, row)) + ")"


def compare_table(variant, table, source, restored):
    cols, pk, s_rows = source
    r_cols, _, r_rows = restored
    if cols != r_cols:
        check(False, f"{variant}: {table} has the same columns", f"S: {cols}\nrestored: {r_cols}")
        return
    if s_rows == r_rows:
        check(True, f"{variant}: {table} is the same ({len(s_rows)} rows)")
        return
    only_s = [r for r in s_rows if r not in r_rows]
    only_r = [r for r in r_rows if r not in s_rows]
    diag = (f"{len(s_rows)} rows in S, {len(r_rows)} restored; {len(only_s)} only in S, "
            f"{len(only_r)} only in the restored database\n")
    # the first row whose key is on both sides: the columns that differ
    if pk:
        idx = [cols.index(c) for c in pk]
        by_key = {tuple(r[i] for i in idx): r for r in only_r}
        for r in only_s:
            other = by_key.get(tuple(r[i] for i in idx))
            if other is not None:
                key = ", ".join(f"{c}={r[i]}" for c, i in zip(pk, idx))
                changed = [f"{c}: {a!r} -> {b!r}" for c, a, b in zip(cols, r, other) if a != b]
                diag += f"row {key} changed: " + "; ".join(changed) + "\n"
                break
    if only_s:
        diag += f"first only in S:        {short(only_s[0], cols)}\n"
    if only_r:
        diag += f"first only in restored: {short(only_r[0], cols)}\n"
    if not only_s and not only_r:
        diag += "the same rows, in another order or repeated\n"
    check(False, f"{variant}: {table} is the same ({len(s_rows)} rows)", diag)


def compare_all(variant, source_fp, db):
    try:
        conn = connect(db)
        fp = fingerprint(conn)
        conn.close()
    except psycopg.Error as e:
        check(False, f"{variant}: the restored database can be read", f"{type(e).__name__}: {e}")
        return {}
    for table in source_fp:
        if table not in fp:
            check(False, f"{variant}: {table} is the same", "missing in the restored database")
        else:
            compare_table(variant, table, source_fp[table], fp[table])
    return fp


# ---------------------------------------------------------------------------
# dump and restore
# ---------------------------------------------------------------------------

def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def errors_of(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "ERROR" in ln or "error:" in ln or "FATAL" in ln]
    return errs, lines


def restore_checked(variant, tool_desc, cmd, db, listen=True):
    """Run a restore command with a listener on the channel in the target db."""
    listener, heard = None, []
    if listen:
        listener = connect(db)
        listener.add_notify_handler(lambda n: heard.append(n.payload))
        listener.execute(f"LISTEN {CHANNEL}")
    rc, _, err = run(cmd)
    errs, lines = errors_of(err)
    check(rc == 0 and not errs,
          f"{variant}: {tool_desc} reports no error",
          f"exit code {rc}; {len(errs)} error lines of {len(lines)} on stderr\n" + "\n".join(errs[:4] or lines[:4]))
    if listener is not None:
        time.sleep(0.3)  # the restore has committed; let the notifications arrive
        listener.execute("SELECT 1")
        listener.close()
        check(not heard, f"{variant}: no NOTIFY on {CHANNEL} while restoring",
              f"{len(heard)} sent; the first: {heard[0] if heard else ''}")


def createdb(admin, db):
    admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {db}")


def main():
    admin = psycopg.connect("", autocommit=True)
    dbs = [SOURCE] + [PREFIX + v for v in "abcdue"]
    tmp = tempfile.mkdtemp(prefix="tokenledger-dump-")
    try:
        createdb(admin, SOURCE)
        s = connect(SOURCE)
        step("CREATE EXTENSION tokenledger in S", s.execute, "CREATE EXTENSION tokenledger")
        step("recording the ledger of S", record, s)
        ok, what = preconditions(s)
        check(ok, f"S holds what the comparison needs: {what}")
        source = fingerprint(s)
        alerts = len(source["budget_alerts"][2])
        s.close()

        custom = os.path.join(tmp, "s.dump")
        plain = os.path.join(tmp, "s.sql")
        data_only = os.path.join(tmp, "s-data.sql")
        for desc, cmd in (("pg_dump -Fc", ["pg_dump", "-Fc", "-f", custom, "-d", SOURCE]),
                          ("pg_dump (plain)", ["pg_dump", "-f", plain, "-d", SOURCE]),
                          ("pg_dump --data-only --load-via-partition-root",
                           ["pg_dump", "--data-only", "--load-via-partition-root", "-f", data_only, "-d", SOURCE])):
            rc, _, err = run(cmd)
            check(rc == 0 and not errors_of(err)[0], f"{desc} of S succeeds", f"exit code {rc}\n{err[:600]}")
            if rc != 0:
                raise Failed()

        # (a) pg_restore into a new database
        db = PREFIX + "a"
        createdb(admin, db)
        restore_checked("(a) pg_restore", "pg_restore -d", ["pg_restore", "-d", db, custom], db)
        fp = compare_all("(a) pg_restore", source, db)
        n = len(fp.get("budget_alerts", (None, None, []))[2])
        check(n == alerts, f"(a) pg_restore: budget_alerts holds the {alerts} alerts of S, no more ({n})")

        # (b) plain SQL through psql
        db = PREFIX + "b"
        createdb(admin, db)
        restore_checked("(b) psql -f plain dump", "psql -f",
                        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", db, "-f", plain], db)
        compare_all("(b) psql -f plain dump", source, db)

        # (c) data only, into a database where the extension was created
        db = PREFIX + "c"
        createdb(admin, db)
        c = connect(db)
        step("(c) CREATE EXTENSION tokenledger before the data", c.execute, "CREATE EXTENSION tokenledger")
        c.close()
        restore_checked("(c) data-only into CREATE EXTENSION", "psql -f",
                        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", db, "-f", data_only], db)
        compare_all("(c) data-only into CREATE EXTENSION", source, db)

        # (d) (a)'s dump in one transaction, stopping at the first error
        db = PREFIX + "d"
        createdb(admin, db)
        restore_checked("(d) pg_restore --single-transaction --exit-on-error",
                        "pg_restore --single-transaction --exit-on-error",
                        ["pg_restore", "--single-transaction", "--exit-on-error", "-d", db, custom], db)
        compare_all("(d) pg_restore --single-transaction --exit-on-error", source, db)

        # (e) a ledger begun at 1.0 whose user price has the key of a row 1.1
        # ships (the update kept the user's row), into a new 1.1 installation
        db = PREFIX + "u"
        createdb(admin, db)
        u = connect(db)
        step("(e) a 1.0 ledger with a user price for gpt-5.1, updated to 1.1", u.execute, """
            CREATE EXTENSION tokenledger VERSION '1.0';
            INSERT INTO tokenledger.prices (provider, model, effective_from, rate, source)
            VALUES ('openai', 'gpt-5.1', '2023-01-01', 'in=1 out=8 USD/1M', 'our contract');
            INSERT INTO tokenledger.usage (provider, model, tokens, team)
            VALUES ('openai', 'gpt-5.1', 'in=1000000 out=0', 'red');
            ALTER EXTENSION tokenledger UPDATE;""")
        updated = fingerprint(u)
        u.close()
        dump = os.path.join(tmp, "u.dump")
        rc, _, err = run(["pg_dump", "-Fc", "-f", dump, "-d", db])
        check(rc == 0, "(e) pg_dump -Fc of the updated ledger succeeds", err[:600])
        db = PREFIX + "e"
        createdb(admin, db)
        restore_checked("(e) updated 1.0 ledger into a new 1.1", "pg_restore --exit-on-error",
                        ["pg_restore", "--exit-on-error", "-d", db, dump], db)
        compare_all("(e) updated 1.0 ledger into a new 1.1", updated, db)
    except Failed:
        pass
    finally:
        for db in dbs:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
