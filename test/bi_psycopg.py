#!/usr/bin/python3
"""Every reporting view read as Superset (SQLAlchemy over psycopg) reads it.

A Python BI tool logs in as a role granted tokenledger_reader, lists a view's
columns with their comments (what SQLAlchemy's inspector asks the catalog:
obj_description and col_description), runs a query and takes the types from
cursor.description and from the values psycopg returns.  For every view in
schema tokenledger that tokenledger_reader may read (found in the catalog, so
a new view is covered without editing this file), this checks that

- every type code in cursor.description is a built-in PostgreSQL type that
  psycopg loads by itself (no tokenledger type, nothing to register);
- the view and every column have a comment;
- SELECT * runs, returns rows, and every value is a plain Python type:
  numeric -> Decimal, bigint -> int, date -> datetime.date, timestamptz ->
  an aware datetime.datetime, boolean -> bool, text -> str (so no money or
  time comes back as str), and each date/time column has values to check;
- every numeric column is exact: the sum of its Decimals equals the server's;
- the money and count columns equal the ledger's own figures, computed from
  usage and outcomes with amount(sum(cost)) (test/jdbc/figures.sql, shared
  with the JDBC test), read again in binary; a view with a currency column
  and no figure fails.

Connects with the libpq environment; the login connects over TCP as a BI
server does (a PGHOST that is a socket directory means localhost).  Uses a
database and a login of its own, drops both, and prints TAP.
"""
import datetime
import decimal
import os
import re
import sys
from decimal import Decimal

import psycopg
from psycopg import sql
from tap import check, results

DB = "tokenledger_psycopg_bi_test"
READER = "tokenledger_psycopg_bi"
PASSWORD = "tl-psycopg-bi-test"
HERE = os.path.dirname(os.path.abspath(__file__))

# the Python type each PostgreSQL type of the views must come back as
PYTHON_TYPES = {
    "numeric": Decimal, "bigint": int, "integer": int, "smallint": int,
    "date": datetime.date, "timestamp with time zone": datetime.datetime,
    "boolean": bool, "text": str, "character varying": str,
}
TIME_TYPES = ("date", "timestamp with time zone")


def read_figures(path):
    """The preamble and the figures of figures.sql: (view, keys, column,
    filter, query) for each "-- figure: view | keys | column [| filter]"."""
    parts = re.split(r"(?m)^-- figure: ", open(path, encoding="utf-8").read())
    figures = []
    for part in parts[1:]:
        head, query = part.split("\n", 1)
        fields = [f.strip() for f in head.split("|")]
        figures.append((fields[0], [k.strip() for k in fields[1].split(",")], fields[2],
                        fields[3] if len(fields) > 3 else None, query.strip().rstrip(";")))
    return parts[0], figures


def key_text(values):
    return " | ".join("\\N" if v is None else str(v) for v in values)


def compare(reader, owner, view, keys, column, where, query):
    """A figure read from the view (its key and value columns, as a chart's
    query would, in binary) against the ledger's; returns (figures, differences)."""
    q = sql.SQL("SELECT {}, {} FROM tokenledger.{}").format(
        sql.SQL(", ").join(map(sql.Identifier, keys)), sql.Identifier(column), sql.Identifier(view))
    if where:
        q = sql.SQL("{} WHERE {}").format(q, sql.SQL(where))
    from_view, from_ledger = {}, {}
    with reader.cursor(binary=True) as cur:
        for row in cur.execute(q):
            if row[-1] is not None:
                k = key_text(row[:-1])
                from_view[k] = from_view.get(k, Decimal(0)) + row[-1]
    for row in owner.execute(query):
        k = key_text(row[:-1])
        from_ledger[k] = from_ledger.get(k, Decimal(0)) + Decimal(str(row[-1]))
    from_view = {k: v for k, v in from_view.items() if v != 0}
    from_ledger = {k: v for k, v in from_ledger.items() if v != 0}
    diff = [f"{k}: view {from_view.get(k)}, ledger {from_ledger.get(k)}"
            for k in sorted(set(from_view) | set(from_ledger)) if from_view.get(k) != from_ledger.get(k)]
    if not from_ledger:
        diff.append("the ledger has no figure to compare")
    return len(from_ledger), diff


def view_checks(reader, owner, view, figures):
    # what SQLAlchemy's inspector reads: the view's and the columns' comments
    columns = reader.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum) "
        "FROM pg_attribute a WHERE a.attrelid = ('tokenledger.' || quote_ident(%s))::regclass "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (view,)).fetchall()
    view_comment = reader.execute("SELECT obj_description(('tokenledger.' || quote_ident(%s))::regclass, 'pg_class')",
                                  (view,)).fetchone()[0]
    missing = [name for name, _, c in columns if not c]
    if not view_comment:
        missing.insert(0, "the view itself")
    check(not missing, f"{view}: the view and its {len(columns)} columns have comments", missing)

    # SELECT *: the type codes, then the Python type of every value
    problems, numeric, time_values, nrows = [], [], 0, 0
    reader.rollback()  # a new transaction (repeatable read) for SELECT * and the sums
    try:
        cur = reader.execute(sql.SQL("SELECT * FROM tokenledger.{}").format(sql.Identifier(view)))
        described = []
        for d in cur.description:
            info = reader.adapters.types.get(d.type_code)
            if info is None or d.type_code >= 16384:
                problems.append(f"{d.name}: type code {d.type_code} is not a built-in type psycopg loads")
            described.append((d.name, info.name if info else str(d.type_code)))
        declared = {name: t for name, t, _ in columns}
        rows = cur.fetchall()
        nrows = len(rows)
        for i, (name, _) in enumerate(described):
            pg_type = declared.get(name)
            want = PYTHON_TYPES.get(pg_type)
            if want is None:
                problems.append(f"{name}: {pg_type} is not a type this test knows how BI tools read")
                continue
            values = [r[i] for r in rows if r[i] is not None]
            wrong = {type(v).__name__ for v in values if type(v) is not want}
            if wrong:
                problems.append(f"{name} ({pg_type}) comes back as {', '.join(sorted(wrong))}, not {want.__name__}")
            if pg_type == "timestamp with time zone" and any(v.tzinfo is None for v in values):
                problems.append(f"{name}: a timestamp without its time zone")
            if pg_type in TIME_TYPES:
                time_values += len(values)
                if not values:
                    problems.append(f"{name}: no value to check (NULL in every row)")
            if pg_type == "numeric":
                numeric.append((name, sum(values, Decimal(0))))
        # the server's own sums, in the same snapshot (figures of now() agree)
        inexact = []
        if numeric:
            q = sql.SQL("SELECT {} FROM tokenledger.{}").format(
                sql.SQL(", ").join(sql.SQL("sum({})::text").format(sql.Identifier(n)) for n, _ in numeric),
                sql.Identifier(view))
            server = reader.execute(q).fetchone()
            for (name, client), total in zip(numeric, server):
                if Decimal(total or 0) != client:
                    inexact.append(f"{name}: the Decimals sum to {client}, the server to {total}")
    except psycopg.Error as e:
        problems.append(f"{type(e).__name__}: {e}")
        inexact = [f"not read: {type(e).__name__}"]
    finally:
        reader.rollback()
    check(not problems and nrows > 0,
          f"{view}: SELECT * gives {nrows} rows as the reader, built-in type codes, every value a plain "
          f"Python type ({time_values} dates and times as date/datetime)", problems)
    check(not inexact, f"{view}: its {len(numeric)} numeric columns come back as exact Decimals", inexact)

    # the money and counts against the ledger
    compared = 0
    for fview, keys, column, where, query in figures:
        if fview != view:
            continue
        compared += 1
        try:
            n, diff = compare(reader, owner, view, keys, column, where, query)
        except psycopg.Error as e:
            n, diff = 0, [f"{type(e).__name__}: {e}"]
        reader.rollback()
        owner.rollback()
        check(not diff, f"{view}.{column} by {', '.join(keys)} equals the ledger ({n} figures, as Decimal)", diff)
    if compared == 0 and any(name.lower().endswith("currency") for name, _, _ in columns):
        check(False, f"{view}: its money is compared with the ledger",
              ["the view has a currency column but figures.sql has no figure for it"])


def main():
    root = psycopg.connect("", autocommit=True)

    def drop_all():
        root.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        root.execute(f"DROP ROLE IF EXISTS {READER}")

    drop_all()
    root.execute(f"CREATE DATABASE {DB}")
    try:
        run()
    except Exception as e:  # a crash is a failure, with its reason
        check(False, "the test ran to its end", [repr(e)])
    finally:
        drop_all()
        root.close()
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


def run():
    preamble, figures = read_figures(os.path.join(HERE, "jdbc", "figures.sql"))
    owner = psycopg.connect(psycopg.conninfo.make_conninfo("", dbname=DB))
    owner.execute("CREATE EXTENSION tokenledger")
    owner.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{PASSWORD}' IN ROLE tokenledger_reader")
    owner.execute(open(os.path.join(HERE, "jdbc", "ledger.sql"), encoding="utf-8").read())
    owner.execute("INSERT INTO tokenledger.team_members (role_name, team) VALUES (%s, '*')", (READER,))
    owner.execute(preamble)
    owner.commit()

    views = [r[0] for r in owner.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'tokenledger'::regnamespace "
        "AND c.relkind IN ('v', 'm') AND has_table_privilege('tokenledger_reader', c.oid, 'SELECT') ORDER BY 1")]
    check(len(views) >= 10,
          f"the catalog lists {len(views)} views that tokenledger_reader may read: {', '.join(views)}")

    host = os.environ.get("PGHOST") or "localhost"
    if host.startswith("/"):
        host = "localhost"
    reader = psycopg.connect(psycopg.conninfo.make_conninfo("", dbname=DB, host=host, user=READER,
                                                            password=PASSWORD))
    reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    check(reader.execute("SELECT current_user").fetchone()[0] == READER,
          f"logged in over TCP as {READER}, a member of tokenledger_reader")
    reader.rollback()
    for view in views:
        view_checks(reader, owner, view, figures)
    reader.close()
    owner.close()


if __name__ == "__main__":
    decimal.getcontext().prec = 60  # exact sums of the figures
    sys.exit(main())
