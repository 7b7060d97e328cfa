#!/usr/bin/python3
"""Past one machine: a coordinator whose ledger partitions are postgres_fdw
foreign tables on two other clusters, each running tokenledger.

scripts/shards.sh makes two throwaway clusters (the shards) on this machine;
each gets a database `ledger` with the extension, the same user price and
attribution rule and initiative (the shipped catalog is in each already).
The coordinator (a database of its own in the cluster the test runs in) has
postgres_fdw, one foreign server per shard with `extensions 'tokenledger'`,
and the foreign partitions of tokenledger.usage and tokenledger.outcomes:
the first half of 2025 on shard 1, the second on shard 2; its own catalog
prices the user model otherwise and attributes the app to another team, so
that what the shard did shows.  A one-node database records the same rows
with the shards' catalog.

- Recording through the coordinator (INSERT, also of rows for both shards
  in one statement, record_usage, record_outcome) lands each row on the
  shard its occurred_at names, priced, attributed and valued by the shard's
  catalog; the id the coordinator returns is the shard row's id.
- Idempotency is global: a request_id or external_ref replayed with an
  occurred_at on the other shard returns the same id through record_usage /
  record_outcome, and a plain INSERT is refused with 23505.
- tokenledger.sum(cost), cost_per_outcome(cost, requests) and sum(cost +
  cost) per team over a foreign partition run on the shard (EXPLAIN
  VERBOSE: the aggregate in the Remote SQL), as does each branch of the
  per-shard form (the foreign partitions grouped, their sums summed); over
  the whole ledger each team's figures equal the shards' own and the
  one-node database's.  (A GROUP BY over the partitioned ledger itself is
  aggregated on the coordinator: PostgreSQL 15's postgres_fdw does not push
  partial aggregates down; its plan is printed as a comment.)
- The coordinator's budgets, reservations and rollups count the rows the
  shards priced: budget_check, spend_daily and the rollups equal the
  shards' figures and the one-node database's; a reservation taken on the
  coordinator is settled by a row recorded on a shard; adjust(), reprice()
  and rerate() on the coordinator land on the call's shard and are counted.
- Time-bounded queries prune to one shard and ship the bounds, and the
  shard prunes its own months; the ids are the coordinator's; a row of a
  month no shard covers lands in a local partition of the coordinator and
  is priced there; the ledger stays append-only through the coordinator; a
  row recorded straight on a shard takes the shard's own ids (which collide
  with the coordinator's until the shard's sequence is moved) and is in the
  ledger but not in the coordinator's budgets; create_partitions() on the
  coordinator leaves the months the shards hold alone.

TOKENLEDGER_SHARD_PORT: the first of the two shards' ports (default: the
first two free ports from 55400).  Removes its clusters and databases,
also on failure.  Prints TAP.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
from decimal import Decimal

import psycopg
from psycopg.conninfo import make_conninfo
from tap import check, comment, results, Failed, step

SHARDS_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "shards.sh")
COORD = "tokenledger_shards"
SINGLE = "tokenledger_shards_one"
# the half-years each shard holds
RANGES = [("2025-01-01", "2025-07-01"), ("2025-07-01", "2026-01-01")]

# the catalog of the shards (and of the one-node database)
SHARD_CATALOG = """
INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
VALUES ('acme', 'acme-large', '2020-01-01', 'in=1 out=2 USD/1M');
INSERT INTO tokenledger.attribution_rules (match_app, team) VALUES ('support-bot', 'support');
INSERT INTO tokenledger.initiatives (name, team, value_per_outcome) VALUES ('lead-enrichment', 'sales', '2 USD');
"""
# the coordinator's own catalog differs, so that what a shard did shows
COORD_CATALOG = """
INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
VALUES ('acme', 'acme-large', '2020-01-01', 'in=100 out=200 USD/1M');
INSERT INTO tokenledger.attribution_rules (match_app, team) VALUES ('support-bot', 'coordinator');
"""
BUDGETS = """
INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode) VALUES
  ('everything', 'global', NULL, 'total', '1000 USD', 'alert'),
  ('support', 'team', 'support', 'total', '1000 USD', 'alert'),
  ('search', 'team', 'search', 'total', '5 USD', 'block');
"""

MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5-20250929"), ("acme", "acme-large")]


def usage_rows():
    """32 calls over 2025: both shards, three models, explicit teams, a
    rule's app and unattributed calls."""
    out = []
    for i in range(32):
        provider, model = MODELS[i % 3]
        team, app = [("search", "web"), (None, "support-bot"), ("research", "notebook"), (None, "batch")][i % 4]
        out.append(dict(occurred_at=f"2025-{1 + i % 12:02d}-{1 + (i * 7) % 27:02d} {i % 24:02d}:15:00+00",
                        request_id=f"call-{i}", provider=provider, model=model,
                        tokens=f"in={1000 * (i + 1)} out={100 * (i + 3)}", team=team, app=app))
    return out


def outcome_rows():
    return [dict(occurred_at=f"2025-{1 + i % 12:02d}-{2 + i:02d} 09:00:00+00", initiative="lead-enrichment",
                 metric="leads", quantity=1 + i % 3, external_ref=f"lead-{i}") for i in range(10)]


def free_ports(n):
    """The first n consecutive ports from 55400 that nothing listens on."""
    base = 55400
    while True:
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            base += n


def connect(**kw):
    conn = psycopg.connect(make_conninfo("", **kw), autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def rows(conn, sql, params=None):
    return conn.execute(sql, params).fetchall()


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()


def plan(conn, sql):
    return "\n".join(r[0] for r in rows(conn, "EXPLAIN (VERBOSE, COSTS OFF) " + sql))


def remote_sql(text):
    return [line.split("Remote SQL:", 1)[1].strip() for line in text.splitlines() if "Remote SQL:" in line]


def shard_of(occurred_at):
    for i, (lo, hi) in enumerate(RANGES):
        if lo <= occurred_at[:10] < hi:
            return i
    return None


def add_up(*row_lists):
    """Rows (key..., amount) summed per key across lists."""
    total = {}
    for rs in row_lists:
        for *key, amount in rs:
            total[tuple(key)] = total.get(tuple(key), Decimal(0)) + Decimal(amount)
    return total


def as_dict(rs):
    return {tuple(key): Decimal(amount) for *key, amount in rs}


def refused(conn, sql, params=None):
    """The SQLSTATE and message a statement fails with, or None."""
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        return e.sqlstate, str(e).splitlines()[0]
    return None


INSERT_USAGE = """INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team, app)
VALUES (%(occurred_at)s, %(request_id)s, %(provider)s, %(model)s, %(tokens)s, %(team)s, %(app)s)"""
RECORD_USAGE = """SELECT tokenledger.record_usage(%(provider)s, %(model)s, jsonb_build_object(
    'input_tokens', tokenledger.input(%(tokens)s::tokenledger.tokens),
    'output_tokens', tokenledger.output(%(tokens)s::tokenledger.tokens)),
  request_id => %(request_id)s, occurred_at => %(occurred_at)s, team => %(team)s, app => %(app)s)"""
RECORD_OUTCOME = """SELECT tokenledger.record_outcome(%(initiative)s, %(metric)s, %(quantity)s,
  occurred_at => %(occurred_at)s, external_ref => %(external_ref)s)"""
ROW = "SELECT id, cost::text, price_id, attribution, team FROM tokenledger.usage WHERE request_id = %s"


def setup_shard(conn):
    conn.execute("CREATE DATABASE ledger")


def setup_ledger(conn, catalog):
    conn.execute("SET client_min_messages = warning")
    conn.execute("CREATE EXTENSION tokenledger")
    conn.execute(catalog)


def setup_coordinator(coord, ports):
    coord.execute("CREATE EXTENSION postgres_fdw")
    for i, port in enumerate(ports, 1):
        coord.execute(f"""CREATE SERVER shard{i} FOREIGN DATA WRAPPER postgres_fdw
            OPTIONS (host 'localhost', port '{port}', dbname 'ledger', extensions 'tokenledger')""")
        coord.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER shard{i} OPTIONS (user 'postgres')")
    for i, (lo, hi) in enumerate(RANGES, 1):
        for table in ("usage", "outcomes"):
            coord.execute(f"""CREATE FOREIGN TABLE tokenledger.{table}_s{i}
                PARTITION OF tokenledger.{table} FOR VALUES FROM ('{lo}') TO ('{hi}')
                SERVER shard{i} OPTIONS (schema_name 'tokenledger', table_name '{table}')""")


def main():
    admin = connect()
    work = tempfile.mkdtemp(prefix="tokenledger-shards-")
    base = int(os.environ.get("TOKENLEDGER_SHARD_PORT") or free_ports(2))
    ports = [base, base + 1]
    shards = []
    try:
        for db in (COORD, SINGLE):
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {db}")
        out = subprocess.run(["sh", SHARDS_SH, "start", work, "2", str(base)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        check(out.returncode == 0, f"scripts/shards.sh started two clusters on ports {ports[0]} and {ports[1]}",
              out.stdout)
        if out.returncode != 0:
            raise Failed()
        shard_dsn = [dict(host=work, port=p, user="postgres") for p in ports]
        for d in shard_dsn:
            step("CREATE DATABASE ledger on a shard", setup_shard, connect(dbname="postgres", **d))
            shards.append(connect(dbname="ledger", **d))
        for s in shards:
            step("the shard's tokenledger and catalog", setup_ledger, s, SHARD_CATALOG)
        # shard 1 keeps its rows in month partitions, shard 2 in its default partition
        made = step("create_partitions() on shard 1", one, shards[0],
                    f"SELECT tokenledger.create_partitions('{RANGES[0][0]}', '1 month')")[0]
        check(made >= 24, f"shard 1 has month partitions from January 2025 on ({made} made)")
        coord = connect(dbname=COORD)
        single = connect(dbname=SINGLE)
        step("the one-node database's tokenledger, catalog and budgets", setup_ledger, single, SHARD_CATALOG + BUDGETS)
        step("the coordinator's tokenledger, catalog and budgets", setup_ledger, coord, COORD_CATALOG + BUDGETS)
        kind = one(coord, "SELECT relkind FROM pg_class WHERE oid = 'tokenledger.usage'::regclass")[0]
        check(kind == "p", f"tokenledger.usage is partitioned (relkind {kind})")
        if kind != "p":
            raise Failed()
        step("postgres_fdw servers for the shards and the foreign partitions", setup_coordinator, coord, ports)
        parts = rows(coord, """SELECT c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid)
                               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                               WHERE i.inhparent = 'tokenledger.usage'::regclass ORDER BY 1""")
        comment("the coordinator's usage partitions:\n" + "\n".join(f"  {n} ({k}) {b}" for n, k, b in parts))

        shard_price = [one(s, "SELECT id FROM tokenledger.prices WHERE provider = 'acme'")[0] for s in shards]
        shard_rule = [one(s, "SELECT id FROM tokenledger.attribution_rules")[0] for s in shards]

        # -- recording through the coordinator -------------------------------
        calls = usage_rows()
        by_insert, by_function = calls[0::2], calls[1::2]
        ids = {}
        # one multi-row INSERT: its rows go to both shards
        values = ", ".join(psycopg.ClientCursor(coord).mogrify("(%(occurred_at)s, %(request_id)s, %(provider)s, %(model)s, "
                                                  "%(tokens)s, %(team)s, %(app)s)", c) for c in by_insert)
        got = step("a multi-row INSERT through the coordinator", rows, coord,
                   "INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team, app) "
                   f"VALUES {values} RETURNING request_id, id")
        ids.update(dict(got))
        for c in by_function:
            ids[c["request_id"]] = step("record_usage through the coordinator", one, coord, RECORD_USAGE, c)[0]
        for c in calls:
            single.execute(INSERT_USAGE, c)

        wrong = []
        for c in calls:
            home = shard_of(c["occurred_at"])
            found = [rows(s, ROW, (c["request_id"],)) for s in shards]
            if [len(f) for f in found] != [1 if i == home else 0 for i in range(2)]:
                wrong.append(f"{c['request_id']} ({c['occurred_at']}): {[len(f) for f in found]} rows on the shards")
                continue
            sid, cost, price_id, attribution, team = found[home][0]
            expect_cost = one(shards[home], "SELECT tokenledger.cost_of(%s, %s, %s, at => %s)::text",
                              (c["tokens"], c["provider"], c["model"], c["occurred_at"]))[0]
            problems = []
            if sid != ids[c["request_id"]]:
                problems.append(f"id {sid} on the shard, {ids[c['request_id']]} returned")
            if cost is None or cost != expect_cost:
                problems.append(f"cost {cost}, the shard's catalog gives {expect_cost}")
            if c["provider"] == "acme" and price_id != shard_price[home]:
                problems.append(f"price_id {price_id}, the shard's acme price is {shard_price[home]}")
            if price_id is None:
                problems.append("no price_id")
            if c["app"] == "support-bot" and (attribution, team) != (f"rule:{shard_rule[home]}", "support"):
                problems.append(f"attribution {attribution}, team {team}: the shard's rule is {shard_rule[home]} (support)")
            if c["team"] is not None and (attribution, team) != ("explicit", c["team"]):
                problems.append(f"attribution {attribution}, team {team}")
            if problems:
                wrong.append(f"{c['request_id']}: " + "; ".join(problems))
        check(not wrong, f"each of the {len(calls)} calls recorded through the coordinator is on the shard its "
              "month names, priced and attributed by the shard's catalog, under the id the coordinator returned",
              wrong)
        acme = next(c for c in calls if c["provider"] == "acme")
        mine = one(coord, "SELECT tokenledger.cost_of(%s, 'acme', 'acme-large', at => %s)::text",
                   (acme["tokens"], acme["occurred_at"]))[0]
        theirs = one(coord, "SELECT cost::text FROM tokenledger.usage WHERE request_id = %s", (acme["request_id"],))[0]
        check(mine != theirs, f"the coordinator reads the shard's price ({theirs}), not its own ({mine})")
        local = one(coord, """SELECT count(*) FROM tokenledger.usage u JOIN pg_class c ON c.oid = u.tableoid
                              WHERE c.relkind <> 'f'""")[0]
        check(local == 0, f"no call of 2025 is in a local partition of the coordinator ({local})")

        outs = outcome_rows()
        oids = {}
        for o in outs:
            oids[o["external_ref"]] = step("record_outcome through the coordinator", one, coord, RECORD_OUTCOME, o)[0]
            single.execute(RECORD_OUTCOME, o)
        wrong = []
        for o in outs:
            home = shard_of(o["occurred_at"])
            found = [rows(s, "SELECT id, value::text FROM tokenledger.outcomes WHERE external_ref = %s",
                          (o["external_ref"],)) for s in shards]
            want = one(shards[home], "SELECT (%s::numeric OPERATOR(tokenledger.*) value_per_outcome)::text FROM tokenledger.initiatives "
                       "WHERE name = 'lead-enrichment'", (o["quantity"],))[0]
            if [len(f) for f in found] != [1 if i == home else 0 for i in range(2)]:
                wrong.append(f"{o['external_ref']}: {[len(f) for f in found]} rows on the shards")
            elif found[home][0] != (oids[o["external_ref"]], want):
                wrong.append(f"{o['external_ref']}: {found[home][0]} on the shard, id {oids[o['external_ref']]} "
                             f"returned, value {want} expected")
        check(not wrong, f"each of the {len(outs)} outcomes recorded through the coordinator is on its shard, "
              "valued by the shard's initiative, under the id the coordinator returned", wrong)

        # -- idempotency across shards ---------------------------------------
        first = calls[0]                       # January: shard 1
        moved = dict(first, occurred_at="2025-10-10 10:00:00+00")     # shard 2
        again = step("record_usage replaying a request_id with another month", one, coord, RECORD_USAGE, moved)[0]
        check(again == ids[first["request_id"]],
              f"record_usage of a request_id replayed for the other shard's half-year returns the first id "
              f"({again}, {ids[first['request_id']]})")
        err = refused(coord, INSERT_USAGE, moved)
        check(err is not None and err[0] == "23505",
              f"a plain INSERT of it for the other shard is refused with 23505 ({err})")
        n = [one(s, "SELECT count(*) FROM tokenledger.usage WHERE request_id = %s", (first["request_id"],))[0]
             for s in shards]
        check(n == [1, 0], f"the request_id is on shard 1 once and not on shard 2 ({n})")
        o_moved = dict(outs[0], occurred_at="2025-11-11 11:00:00+00")
        again = step("record_outcome replaying an external_ref", one, coord, RECORD_OUTCOME, o_moved)[0]
        check(again == oids[outs[0]["external_ref"]],
              f"record_outcome of an external_ref replayed for the other shard returns the first id ({again})")
        err = refused(coord, """INSERT INTO tokenledger.outcomes (occurred_at, initiative, metric, quantity, external_ref)
                                VALUES (%(occurred_at)s, %(initiative)s, %(metric)s, %(quantity)s, %(external_ref)s)""",
                      o_moved)
        check(err is not None and err[0] == "23505",
              f"a plain INSERT of that outcome for the other shard is refused with 23505 ({err})")

        # -- a reservation on the coordinator, settled by a shard's row -------
        rid = step("budget_reserve on the coordinator", one, coord,
                   "SELECT tokenledger.budget_reserve(team => 'search', estimate => '0.05 USD')")[0]
        settle = dict(occurred_at="2025-03-03 03:00:00+00", request_id="reserved-call", provider="openai",
                      model="gpt-4o", tokens="in=5000 out=500", team="search", app="web")
        sid = step("record_usage with the reservation", one, coord,
                   RECORD_USAGE.replace("app => %(app)s)", "app => %(app)s, reservation_id => %(rid)s)"),
                   dict(settle, rid=rid))[0]
        single.execute(INSERT_USAGE, settle)
        r = one(coord, """SELECT settled_by, (SELECT count(*) FROM tokenledger.budget_holds h WHERE h.reservation_id = r.id)
                          FROM tokenledger.budget_reservations r WHERE id = %s""", (rid,))
        on_shard = one(shards[0], "SELECT id FROM tokenledger.usage WHERE request_id = 'reserved-call'")
        check(r == (sid, 0) and on_shard == (sid,),
              f"a reservation taken on the coordinator is settled by the row recorded on shard 1 "
              f"(settled_by {r[0]}, holds left {r[1]}, shard row {on_shard})")

        # -- aggregates: pushed down per shard, equal everywhere -------------
        figures = {
            "tokenledger.sum(cost)": "tokenledger.amount(tokenledger.sum(cost))",
            "tokenledger.cost_per_outcome(cost, requests::numeric)":
                "tokenledger.amount(tokenledger.cost_per_outcome(cost, requests::numeric))",
            "tokenledger.sum(cost OPERATOR(tokenledger.+) cost)": "tokenledger.amount(tokenledger.sum(cost OPERATOR(tokenledger.+) cost))",
        }
        for agg, amount in figures.items():
            for i in range(2):
                q = f"SELECT team, {agg} FROM tokenledger.usage_s{i + 1} GROUP BY team"
                p = plan(coord, q)
                remote = remote_sql(p)
                pushed = any(re.search(r"\bGROUP BY\b", r) and agg.split("(")[0] in r for r in remote)
                check(pushed and "Relations: Aggregate on" in p,
                      f"{agg} per team over shard {i + 1}'s partition runs on the shard (Remote SQL: {remote})", p)
                through = as_dict(rows(coord, f"SELECT team, {amount} FROM tokenledger.usage_s{i + 1} GROUP BY team"))
                own = as_dict(rows(shards[i], f"SELECT team, {amount} FROM tokenledger.usage GROUP BY team"))
                check(through == own, f"{agg} per team through the coordinator equals shard {i + 1}'s own figures",
                      [f"coordinator {through}", f"shard {own}"])
        whole = as_dict(rows(coord, "SELECT team, tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage "
                                    "GROUP BY team"))
        shard_sums = add_up(*(rows(s, "SELECT team, tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage "
                                      "GROUP BY team") for s in shards))
        one_node = as_dict(rows(single, "SELECT team, tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage "
                                        "GROUP BY team"))
        check(whole == shard_sums == one_node and len(whole) >= 4,
              f"sum(cost) per team over the coordinator's ledger equals the sum of the shards' own and the "
              f"one-node figure ({len(whole)} teams)",
              [f"coordinator {whole}", f"shards {shard_sums}", f"one node {one_node}"])
        for agg, amount in list(figures.items())[1:]:
            a = as_dict(rows(coord, f"SELECT team, {amount} FROM tokenledger.usage GROUP BY team"))
            b = as_dict(rows(single, f"SELECT team, {amount} FROM tokenledger.usage GROUP BY team"))
            check(a == b, f"{agg} per team over the coordinator's ledger equals the one-node figure",
                  [f"coordinator {a}", f"one node {b}"])
        comment("GROUP BY team over the whole ledger, as PostgreSQL 15 plans it:\n" +
                plan(coord, "SELECT team, tokenledger.sum(cost) FROM tokenledger.usage GROUP BY team"))
        per_shard = ("SELECT team, tokenledger.sum(spend) FROM ("
                     + " UNION ALL ".join(f"SELECT team, tokenledger.sum(cost) AS spend FROM tokenledger.usage_s{i + 1} "
                                          "GROUP BY team" for i in range(2))
                     + ") s GROUP BY team")
        p = plan(coord, per_shard)
        remote = remote_sql(p)
        check(len(remote) == 2 and all("tokenledger.sum(cost)" in r and "GROUP BY" in r for r in remote),
              "the per-shard form (each foreign partition grouped, the sums summed) sends the aggregate to both "
              f"shards ({remote})", p)
        got = as_dict(rows(coord, per_shard.replace("tokenledger.sum(spend)",
                                                    "tokenledger.amount(tokenledger.sum(spend))")))
        check(got == whole, "and its figures equal the ledger's", [f"per shard {got}", f"ledger {whole}"])

        # -- pruning ---------------------------------------------------------
        p = plan(coord, "SELECT tokenledger.sum(cost) FROM tokenledger.usage "
                        "WHERE occurred_at >= '2025-02-01' AND occurred_at < '2025-03-01'")
        scanned = re.findall(r"on tokenledger\.(\w+)", p)
        remote = remote_sql(p)
        check(scanned and set(scanned) == {"usage_s1"} and any("occurred_at >=" in r for r in remote),
              f"a February query reads shard 1's partition alone and sends it the bounds ({scanned}; {remote})", p)

        p = plan(shards[0], "SELECT cost FROM tokenledger.usage "
                            "WHERE occurred_at >= '2025-02-01' AND occurred_at < '2025-03-01'")
        scanned = re.findall(r"on tokenledger\.(\w+)", p)
        check(scanned == ["usage_2025_02"], f"and shard 1 reads its February partition alone ({scanned})", p)
        seqs = [one(s, "SELECT u.is_called OR o.is_called FROM tokenledger.usage_id_seq u, "
                       "tokenledger.outcomes_id_seq o")[0] for s in shards]
        ids_all = [r[0] for s in shards for r in rows(s, "SELECT id FROM tokenledger.usage")]
        check(seqs == [False, False] and len(ids_all) == len(set(ids_all)) == len(calls) + 1,
              f"the ids are the coordinator's: the shards' sequences were not used ({seqs}), and the "
              f"{len(ids_all)} ids on the shards are distinct")

        # -- budgets and rollups on the coordinator --------------------------
        def spent(conn, team=None):
            return {name: Decimal(s) for name, s in rows(
                conn, "SELECT name, tokenledger.amount(spent) FROM tokenledger.budget_check(team => %s)", (team,))}
        c_all, c_sup, c_sea = spent(coord), spent(coord, "support"), spent(coord, "search")
        s_all, s_sup, s_sea = spent(single), spent(single, "support"), spent(single, "search")
        ledger = {t: sum((v for (k,), v in shard_sums.items() if t is None or k == t), Decimal(0))
                  for t in (None, "support", "search")}
        check(c_all["everything"] == ledger[None] == s_all["everything"] and c_sup["support"] == ledger["support"]
              == s_sup["support"] and c_sea["search"] == ledger["search"] == s_sea["search"] and ledger["support"] > 0,
              f"budget_check on the coordinator counts the rows the shards priced (everything {c_all['everything']}, "
              f"support {c_sup['support']}, search {c_sea['search']}): the shards' sums and the one-node figures",
              [f"coordinator {c_all} {c_sup} {c_sea}", f"shards {ledger}", f"one node {s_all} {s_sup} {s_sea}"])
        daily = """SELECT day::text, team, initiative, provider, model, currency, requests, input_tokens, output_tokens, spend
                   FROM tokenledger.spend_daily ORDER BY 1, 2, 3, 4, 5, 6"""
        a, b = rows(coord, daily), rows(single, daily)
        check(a == b and len(a) >= len(calls) // 2, f"spend_daily on the coordinator equals the one-node view ({len(a)} rows)",
              [f"coordinator {x}" for x in a if x not in b] + [f"one node {x}" for x in b if x not in a])
        rollup = """SELECT team, provider, sum(requests), sum(input_tokens), sum(output_tokens), sum(spend)
                    FROM tokenledger.usage_rollup GROUP BY team, provider"""
        mine = {tuple(r[:2]): tuple(r[2:]) for r in rows(coord, rollup)}
        theirs = {}
        for s in shards:
            for r in rows(s, rollup):
                t = theirs.get(tuple(r[:2]), (0, 0, 0, Decimal(0)))
                theirs[tuple(r[:2])] = tuple(x + y for x, y in zip(t, r[2:]))
        check(mine == theirs, f"usage_rollup on the coordinator equals the shards' rollups added up ({len(mine)} keys)",
              [f"coordinator {mine}", f"shards {theirs}"])
        orollup = "SELECT initiative, sum(outcomes), sum(outcome_value) FROM tokenledger.outcome_rollup GROUP BY 1"
        mine = {r[0]: r[1:] for r in rows(coord, orollup)}
        theirs = {}
        for s in shards:
            for r in rows(s, orollup):
                t = theirs.get(r[0], (0, 0))
                theirs[r[0]] = tuple(x + y for x, y in zip(t, r[1:]))
        check(mine == theirs and mine, f"outcome_rollup on the coordinator equals the shards' ({mine})",
              [f"coordinator {mine}", f"shards {theirs}"])

        # -- what stays local, and what the coordinator does not see ---------
        stray = dict(occurred_at="2024-03-15 12:00:00+00", request_id="no-shard", provider="openai", model="gpt-4o",
                     tokens="in=2000 out=100", team="search", app="web")
        got = step("a call of a month no shard holds", one, coord, RECORD_USAGE, stray)
        where = one(coord, """SELECT u.tableoid::regclass::text, c.relkind, u.cost::text FROM tokenledger.usage u
                              JOIN pg_class c ON c.oid = u.tableoid WHERE u.request_id = 'no-shard'""")
        want = one(coord, "SELECT tokenledger.cost_of('in=2000 out=100', 'openai', 'gpt-4o', at => '2024-03-15')::text")[0]
        check(where is not None and where[1] == "r" and where[2] == want,
              f"a call of March 2024 (no shard's) is in the coordinator's local partition, priced there ({where})")
        for table in ("usage", "usage_s1"):
            err = refused(coord, f"DELETE FROM tokenledger.{table} WHERE request_id = %s", (calls[0]["request_id"],))
            check(err is not None, f"DELETE FROM tokenledger.{table} on the coordinator is refused ({err})")
        err = refused(coord, "UPDATE tokenledger.usage SET team = 'x' WHERE request_id = %s", (calls[0]["request_id"],))
        check(err is not None, f"UPDATE of the ledger through the coordinator is refused ({err})")
        n = one(shards[0], "SELECT count(*) FROM tokenledger.usage WHERE request_id = %s", (calls[0]["request_id"],))[0]
        check(n == 1, "the shard's row is still there")

        # a model no catalog prices yet, then priced by reprice() through the coordinator
        late = dict(occurred_at="2025-08-08 08:00:00+00", request_id="late-price", provider="acme", model="acme-new",
                    tokens="in=7000 out=700", team="research", app="notebook")
        step("a call of a model without a price", one, coord, RECORD_USAGE, late)
        before = spent(coord)["everything"]
        for conn in shards + [coord]:
            conn.execute("INSERT INTO tokenledger.prices (provider, model, effective_from, rate) "
                         "VALUES ('acme', 'acme-new', '2020-01-01', 'in=3 out=5 USD/1M')")
        n = step("reprice() on the coordinator", one, coord, "SELECT tokenledger.reprice()")[0]
        got = one(shards[1], "SELECT cost::text, tokenledger.amount(cost), price_id = (SELECT id FROM tokenledger.prices "
                             "WHERE model = 'acme-new') FROM tokenledger.usage WHERE request_id = 'late-price'")
        want = one(shards[1], "SELECT tokenledger.cost_of('in=7000 out=700', 'acme', 'acme-new', at => '2025-08-08')::text")[0]
        after = spent(coord)["everything"]
        check(n == 1 and got[0] == want and got[2] and after - before == got[1],
              f"reprice() on the coordinator prices the shard's unpriced call on the shard ({got[0]}), and the "
              f"coordinator's budget counts it ({before} -> {after})")

        # corrections through the coordinator: they land beside their call and are counted
        target = calls[1]                       # February: shard 1
        before = spent(coord)["everything"]
        adj = step("adjust() on the coordinator", one, coord,
                   "SELECT tokenledger.adjust(%s, '0.25 USD', 'credit note')", (ids[target["request_id"]],))[0]
        got = one(shards[0], "SELECT entry, adjusts, cost::text FROM tokenledger.usage WHERE id = %s", (adj,))
        after = spent(coord)["everything"]
        check(got == ("adjustment", ids[target["request_id"]], "0.25 USD") and after - before == Decimal("0.25"),
              f"adjust() on the coordinator appends the adjustment on the call's shard ({got}) and the "
              f"coordinator's budget counts it ({before} -> {after})")
        for conn in shards + [coord]:
            conn.execute("UPDATE tokenledger.prices SET rate = 'in=4 out=6 USD/1M' WHERE model = 'acme-new'")
        before = spent(coord)["everything"]
        n = step("rerate() on the coordinator", one, coord,
                 "SELECT tokenledger.rerate('acme', 'acme-new', '2025-01-01', '2026-01-01')")[0]
        got = one(shards[1], """SELECT tokenledger.amount(r.cost), tokenledger.amount(c.cost),
                                  tokenledger.amount(tokenledger.cost_of(c.tokens, 'acme', 'acme-new', at => c.occurred_at))
                                FROM tokenledger.usage r JOIN tokenledger.usage c ON c.id = r.adjusts
                                WHERE r.entry = 'rerate' AND c.request_id = 'late-price'""")
        after = spent(coord)["everything"]
        check(n == 1 and got is not None and got[0] == got[2] - got[1] and after - before == got[0],
              f"rerate() on the coordinator appends the difference on the call's shard ({got}) and the "
              f"coordinator's budget counts it ({before} -> {after})")

        # a call recorded straight on a shard
        straight = dict(stray, occurred_at=calls[0]["occurred_at"], request_id="straight-on-shard")
        err = refused(shards[0], INSERT_USAGE, straight)
        check(err is not None and err[0] == "23505",
              f"straight on a shard, a call takes the shard's own id sequence, whose ids the coordinator "
              f"already gave (23505: {err})")
        shards[0].execute("SELECT setval('tokenledger.usage_id_seq', 1000000000000)")
        before = spent(coord)["everything"]
        ledger_before = one(coord, "SELECT tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage")[0]
        shards[0].execute(INSERT_USAGE, straight)
        after = spent(coord)["everything"]
        ledger_after = one(coord, "SELECT tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage")[0]
        check(ledger_after > ledger_before and after == before,
              f"a call recorded straight on a shard is in the ledger the coordinator reads ({ledger_before} -> "
              f"{ledger_after}) but not in its budgets ({before} -> {after})")

        # the scheduler's create_partitions() on a coordinator whose shards hold months
        err = refused(coord, f"SELECT tokenledger.create_partitions('{RANGES[0][0]}', '1 month')")
        overlap = rows(coord, """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                 WHERE i.inhparent = 'tokenledger.usage'::regclass AND c.relkind = 'r'
                                   AND c.relname BETWEEN 'usage_2025_01' AND 'usage_2025_12'""")
        check(err is None and not overlap,
              f"create_partitions() on the coordinator makes no partition for the months the shards hold, "
              f"and no error ({err}; {overlap})")
    except Failed:
        pass
    finally:
        for s in shards:
            s.close()
        for db in (COORD, SINGLE):
            try:
                admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            except psycopg.Error as e:
                comment(f"could not drop {db}: {e}")
        out = subprocess.run(["sh", SHARDS_SH, "stop", work], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if out.returncode != 0:
            comment(f"scripts/shards.sh stop: {out.stdout}")
        if os.path.exists(work):
            comment(f"{work} was left")
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
