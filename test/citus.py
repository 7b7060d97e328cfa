#!/usr/bin/python3
"""Citus: the ledger distributed by team over two workers, set up exactly as
the README's Citus section says, recorded and reported through the
coordinator.

Runs where Citus is installed for the PostgreSQL 15 on this machine (it is
not in Debian's archive: where it is missing, the test is skipped, as in CI).
scripts/shards.sh makes three throwaway clusters with Citus preloaded: a
coordinator and two workers, each with a database `ledger`.

- CREATE EXTENSION tokenledger on the coordinator reaches the workers; the
  catalog becomes reference tables; usage, outcomes and both rollups are
  distributed by team, co-located, once the month partitions' primary keys
  include team; create_partitions() afterwards makes months whose primary
  key includes team, and Citus distributes them.
- Recording through the coordinator (a multi-row INSERT, record_usage,
  record_outcome) lands each row on the worker of its team, priced and
  attributed there from the reference tables, stamped by the worker, with
  the coordinator's ids; record_outcome gives an outcome its initiative's
  team before the row is routed.
- A request_id replayed for the same team is refused with 23505 and
  recorded once.
- sum(cost) per team runs whole on the workers (EXPLAIN VERBOSE: the
  aggregate in the task's query), per model as partial sums combined on
  the coordinator; cost_per_outcome over usage joined to outcomes by team
  is one co-located query; every figure equals the one computed here.
- Row-level security is distributed with the tables: a reader sees its
  team's rows only.

What the README lists as not holding on Citus (rollups, budgets, the views
that read the rollups, replays answered with the id) is printed as comments
from what the cluster does, not checked.

TOKENLEDGER_CITUS_PORT: the first of the three clusters' ports (default:
the first three free ports from 55500).  Removes its clusters, also on
failure.  Prints TAP.
"""
import os
import socket
import subprocess
import sys
import tempfile
from decimal import Decimal

import psycopg
from psycopg.conninfo import make_conninfo
from tap import check, comment, results, Failed, step

SHARDS_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "shards.sh")
PG_CONFIG = "/usr/lib/postgresql/15/bin/pg_config"

# the catalog tables, replicated to every node
REFERENCE = ["prices", "model_aliases", "initiatives", "attribution_rules", "fx_rates", "team_members", "model_tiers"]
# the tables distributed by team, co-located with usage
DISTRIBUTED = ["usage", "outcomes", "usage_rollup", "outcome_rollup"]

# the README's set-up, after CREATE EXTENSION tokenledger (one statement each)
SETUP = [f"SELECT create_reference_table('tokenledger.{t}')" for t in REFERENCE] + [
    """DO $$
DECLARE
	p record;
BEGIN
	FOR p IN SELECT c.conrelid::regclass AS part, c.conname
			 FROM pg_constraint c JOIN pg_inherits i ON i.inhrelid = c.conrelid
			 WHERE c.contype = 'p' AND i.inhparent IN ('tokenledger.usage'::regclass, 'tokenledger.outcomes'::regclass) LOOP
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD PRIMARY KEY (id, team)', p.part, p.conname);
	END LOOP;
END $$""",
    "SELECT create_distributed_table('tokenledger.usage', 'team')",
] + [f"SELECT create_distributed_table('tokenledger.{t}', 'team', colocate_with => 'tokenledger.usage')"
     for t in DISTRIBUTED[1:]]

CATALOG = """
INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
VALUES ('acme', 'acme-large', '2020-01-01', 'in=1 out=2 USD/1M');
INSERT INTO tokenledger.initiatives (name, team, value_per_outcome)
VALUES ('support-bot', 'support', '2 USD'), ('lead-gen', 'sales', '5 USD');
INSERT INTO tokenledger.attribution_rules (match_app, initiative) VALUES ('helpdesk', 'support-bot');
"""
TEAMS = ["support", "sales", "search", "research"]
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5-20250929"), ("acme", "acme-large")]


def calls():
    """24 calls in October 2026, four teams, three models."""
    out = []
    for i in range(24):
        provider, model = MODELS[i % 3]
        out.append(dict(occurred_at=f"2026-10-{1 + i:02d} {i % 24:02d}:15:00+00", request_id=f"call-{i}",
                        provider=provider, model=model, tokens=f"in={1000 * (i + 1)} out={100 * (i + 3)}",
                        team=TEAMS[i % 4], app="helpdesk" if i % 4 == 0 else "notebook"))
    return out


def free_ports(n):
    base = 55500
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


def sqlstate(conn, sql, params=None):
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        return e.sqlstate
    return None


def citus_installed():
    libdir = subprocess.run([PG_CONFIG, "--pkglibdir"], stdout=subprocess.PIPE, text=True).stdout.strip()
    return os.path.exists(os.path.join(libdir, "citus.so"))


def setup_cluster(coord, workers, ports):
    for c in [coord] + workers:
        c.execute("CREATE EXTENSION citus")
    coord.execute("SELECT citus_set_coordinator_host('localhost', %s)", (ports[0],))
    for p in ports[1:]:
        coord.execute("SELECT citus_add_node('localhost', %s)", (p,))
    coord.execute("SET client_min_messages = warning")
    coord.execute("CREATE EXTENSION tokenledger")
    coord.execute("SELECT tokenledger.create_partitions('2026-09-01', '1 month')")
    # the ledger's triggers run on the shards (and create_partitions() gives
    # new months their own): for every session, pg_cron's included
    coord.execute("ALTER DATABASE ledger SET citus.enable_unsafe_triggers = on")
    coord.execute("SET citus.enable_unsafe_triggers = on")
    for sql in SETUP:
        coord.execute(sql)
    coord.execute(CATALOG)


def main():
    if not citus_installed():
        print("1..0 # SKIP Citus is not installed for PostgreSQL 15 here (it is not in Debian's archive)")
        return 0
    work = tempfile.mkdtemp(prefix="tokenledger-citus-")
    base = int(os.environ.get("TOKENLEDGER_CITUS_PORT") or free_ports(3))
    ports = [base, base + 1, base + 2]
    try:
        out = subprocess.run(["sh", SHARDS_SH, "start", work, "3", str(base)], env=dict(os.environ, SHARDS_PRELOAD="citus"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        check(out.returncode == 0, f"scripts/shards.sh started three clusters with Citus on ports {base}-{base + 2}",
              out.stdout)
        if out.returncode != 0:
            raise Failed()
        dsn = [dict(host=work, port=p, user="postgres") for p in ports]
        for d in dsn:
            connect(dbname="postgres", **d).execute("CREATE DATABASE ledger")
        coord, *workers = [connect(dbname="ledger", **d) for d in dsn]
        step("Citus on three nodes, tokenledger, the README's set-up", setup_cluster, coord, workers, ports)

        # -- the set-up ----------------------------------------------------------
        versions = [one(w, "SELECT extversion FROM pg_extension WHERE extname = 'tokenledger'") for w in workers]
        check(versions == [("1.1",), ("1.1",)], f"CREATE EXTENSION tokenledger on the coordinator reaches both workers {versions}")
        kinds = dict(rows(coord, """SELECT logicalrelid::regclass::text, partmethod::text || ':' || colocationid
                                     FROM pg_dist_partition"""))
        check(all(kinds.get(f"tokenledger.{t}", "").startswith("n") for t in REFERENCE),
              "the catalog tables are reference tables", [f"{k}: {v}" for k, v in sorted(kinds.items())])
        coloc = {kinds.get(f"tokenledger.{t}") for t in DISTRIBUTED}
        check(len(coloc) == 1 and next(iter(coloc)).startswith("h:"),
              f"usage, outcomes and both rollups are hash-distributed by team, co-located ({coloc})")
        made = one(coord, "SELECT tokenledger.create_partitions('2026-09-01', '4 months')")[0]
        newest = one(coord, """SELECT c.oid::regclass::text, pg_get_constraintdef(k.oid),
                                      EXISTS (SELECT FROM pg_dist_partition d WHERE d.logicalrelid = c.oid)
                               FROM pg_class c JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p'
                               WHERE c.relname ~ '^usage_[0-9]{4}_[0-9]{2}$' ORDER BY c.relname DESC LIMIT 1""")
        check(made >= 2 and newest[1] == "PRIMARY KEY (id, team)" and newest[2],
              f"create_partitions() after distributing makes months keyed on (id, team), distributed by Citus ({made}: {newest})")

        # -- recording through the coordinator -------------------------------------
        cs = calls()
        values = ", ".join(psycopg.ClientCursor(coord).mogrify(
            "(%(occurred_at)s, %(request_id)s, %(provider)s, %(model)s, %(tokens)s, %(team)s, %(app)s)", c)
            for c in cs[:16])
        got = dict(rows(coord, "INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team, app) "
                               f"VALUES {values} RETURNING request_id, id"))
        for c in cs[16:]:
            got[c["request_id"]] = one(coord, """SELECT tokenledger.record_usage(%(provider)s, %(model)s,
                jsonb_build_object('input_tokens', tokenledger.input(%(tokens)s::tokenledger.tokens),
                                   'output_tokens', tokenledger.output(%(tokens)s::tokenledger.tokens)),
                request_id => %(request_id)s, occurred_at => %(occurred_at)s, team => %(team)s, app => %(app)s)""", c)[0]
        check(len(got) == 24 and sorted(got.values()) == list(range(1, 25)),
              "24 calls recorded through the coordinator (INSERT and record_usage) take the coordinator's ids 1..24")
        # (cost_of() is called on the coordinator: a function that reads the
        # catalog cannot run inside a query over the distributed ledger)
        recorded = {}
        for r in rows(coord, """SELECT request_id, cost::text, tokens::text, provider, model, service_tier, occurred_at,
                                       attribution, initiative, recorded_at IS NOT NULL FROM tokenledger.usage"""):
            priced = one(coord, "SELECT tokenledger.cost_of(%s::tokenledger.tokens, %s, %s, %s, %s)::text", r[2:7])[0]
            recorded[r[0]] = (r[1], priced, r[7], r[8], r[9])
        wrong = [f"{k}: {v}" for k, v in recorded.items() if v[0] is None or v[0] != v[1] or not v[4]]
        check(len(recorded) == 24 and not wrong, "every call is priced on its worker as cost_of() prices it, and stamped",
              wrong)
        # a price added on the coordinator after the set-up prices on the workers
        coord.execute("""INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
                         VALUES ('acme', 'acme-large', '2026-10-20', 'in=10 out=20 USD/1M')""")
        later = one(coord, """INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team)
                              VALUES ('2026-10-25', 'call-late', 'acme', 'acme-large', 'in=1000000 out=0', 'research')
                              RETURNING cost::text""")[0]
        check(later == "10.00 USD", f"a price added on the coordinator prices the next call on its worker ({later})")
        nodes = {r[0] for r in rows(coord, """
            SELECT n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
            JOIN pg_dist_node n USING (groupid)
            WHERE s.logicalrelid = 'tokenledger.usage'::regclass
              AND s.shardid = ANY (SELECT get_shard_id_for_distribution_column('tokenledger.usage', t)
                                  FROM unnest(%s::text[]) t)""", (TEAMS,))}
        check(nodes and nodes <= set(ports[1:]), f"the teams' rows are on the workers (ports {sorted(nodes)})")
        ref = [one(coord, "SELECT tokenledger.record_outcome('support-bot', 'ticket', 3, occurred_at => '2026-10-05', external_ref => 'o-1')")[0],
               one(coord, "SELECT tokenledger.record_outcome('lead-gen', 'lead', 2, occurred_at => '2026-10-06', external_ref => 'o-2')")[0],
               one(coord, "SELECT tokenledger.record_outcome('lead-gen', 'lead', 1, occurred_at => '2026-10-07', team => 'search')")[0]]
        outs = rows(coord, "SELECT id, team, value::text FROM tokenledger.outcomes ORDER BY id")
        check([tuple(r) for r in outs] == [(ref[0], "support", "6.00 USD"), (ref[1], "sales", "10.00 USD"),
                                           (ref[2], "search", "5.00 USD")],
              "record_outcome routes an outcome by its initiative's team (or the one given), valued on the worker",
              [str(r) for r in outs])

        # -- idempotency --------------------------------------------------------------
        state = sqlstate(coord, """INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team)
                                   VALUES ('2026-10-20', 'call-1', 'openai', 'gpt-4o', 'in=1 out=1', 'sales')""")
        check(state == "23505" and one(coord, "SELECT count(*) FROM tokenledger.usage WHERE request_id = 'call-1'")[0] == 1,
              f"a request_id replayed for its team is refused ({state}) and recorded once")

        # -- reports --------------------------------------------------------------------
        want = {}
        for team, cost in rows(coord, "SELECT team, tokenledger.amount(cost) FROM tokenledger.usage"):
            want[team] = want.get(team, Decimal(0)) + cost
        per_team = {t: Decimal(s) for t, s in rows(coord, """
            SELECT team, tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage GROUP BY team""")}
        check(per_team == want, f"sum(cost) per team equals the calls' costs ({len(per_team)} teams)")
        p = plan(coord, "SELECT team, tokenledger.sum(cost) FROM tokenledger.usage GROUP BY team")
        check("Query: SELECT team, tokenledger.sum(cost)" in p and "remote_scan.sum)" not in p,
              "grouped by team, sum(cost) runs whole on the workers (EXPLAIN VERBOSE)", p)
        p = plan(coord, "SELECT model, tokenledger.sum(cost) FROM tokenledger.usage GROUP BY model")
        check("tokenledger.sum(cost) AS" in p and "tokenledger.sum(remote_scan." in p,
              "grouped by model, the workers sum and the coordinator combines their sums (EXPLAIN VERBOSE)", p)
        sql = """SELECT u.team, tokenledger.cost_per_outcome(u.spend, o.n)
                 FROM (SELECT team, tokenledger.sum(cost) AS spend FROM tokenledger.usage GROUP BY team) u
                 JOIN (SELECT team, sum(quantity) AS n FROM tokenledger.outcomes GROUP BY team) o USING (team)
                 GROUP BY u.team"""
        got = {t: Decimal(str(v).split()[0]) for t, v in rows(coord, sql)}
        n = {"support": 3, "sales": 2, "search": 1}
        expect = {t: (want[t] / n[t]).quantize(Decimal("1e-9")) for t in n}
        p = plan(coord, sql)
        check(got == expect and "Task Count" in p and "repartition" not in p.lower(),
              f"cost_per_outcome of usage joined to outcomes by team is one co-located query ({got})", p)

        # -- row-level security --------------------------------------------------------
        coord.execute("CREATE ROLE tlt_citus_reader LOGIN")
        coord.execute("GRANT tokenledger_reader TO tlt_citus_reader")
        coord.execute("INSERT INTO tokenledger.team_members VALUES ('tlt_citus_reader', 'sales')")
        reader = connect(dbname="ledger", host=work, port=ports[0], user="tlt_citus_reader")
        seen = {r[0] for r in rows(reader, "SELECT DISTINCT team FROM tokenledger.usage")}
        seen_o = {r[0] for r in rows(reader, "SELECT DISTINCT team FROM tokenledger.outcomes")}
        check(seen == {"sales"} and seen_o == {"sales"},
              f"a reader of team sales sees its team's calls and outcomes only, through Citus ({seen}, {seen_o})")
        reader.close()

        # -- rollups --------------------------------------------------------------------
        got = [tuple(r) for r in rows(coord, """
            SELECT team, sum(entries), sum(requests), sum(input_tokens), sum(spend) FROM tokenledger.usage_rollup
            GROUP BY team ORDER BY team""")]
        want_r = [tuple(r) for r in rows(coord, """
            SELECT team, count(*), sum(requests), sum(tokenledger.input(tokens)), sum(tokenledger.amount(cost))
            FROM tokenledger.usage GROUP BY team ORDER BY team""")]
        shells = [one(w, "SELECT pg_relation_size('tokenledger.usage_rollup') + pg_relation_size('tokenledger.outcome_rollup')")[0]
                  for w in workers]
        check(got == want_r and len(got) == 4 and shells == [0, 0],
              f"usage_rollup per team, read through Citus, equals the ledger: the workers write the rollup's "
              f"co-located shard, not its shell (shell bytes {shells})", [f"rollup: {got}", f"ledger: {want_r}"])
        got = [tuple(r) for r in rows(coord, """SELECT team, initiative, sum(entries), sum(outcomes), sum(outcome_value)
                                                FROM tokenledger.outcome_rollup GROUP BY 1, 2 ORDER BY 1, 2""")]
        want_o = [tuple(r) for r in rows(coord, """SELECT team, initiative, count(*), sum(quantity), sum(tokenledger.amount(value))
                                                   FROM tokenledger.outcomes GROUP BY 1, 2 ORDER BY 1, 2""")]
        check(got == want_o and len(got) == 3, "outcome_rollup per team and initiative equals the outcomes",
              [f"rollup: {got}", f"ledger: {want_o}"])

        # -- what the README says does not hold ---------------------------------------
        c17 = next(c for c in cs if c["request_id"] == "call-17")
        views = ["spend_daily", "initiative_economics", "spend_vs_outcome_growth", "run_economics",
                 "unattributed_spend", "token_maxing", "focus_export", "model_rightsizing", "spend_anomalies",
                 "budget_status"]
        coord.execute("""INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
                         VALUES ('sales', 'team', 'sales', 'total', '100 USD', 'block')""")
        coord.execute("""INSERT INTO tokenledger.usage (occurred_at, request_id, provider, model, tokens, team)
                         VALUES ('2026-10-26', 'call-budget', 'acme', 'acme-large', 'in=1000000 out=0', 'sales')""")
        for what, sql in [(v, f"SELECT count(*) FROM tokenledger.{v}") for v in views] + [
                          ("budget_check for team sales after 10 USD of its calls",
                           "SELECT name || ': ' || spent::text FROM tokenledger.budget_check(team => 'sales')"),
                          ("a call with no team", """INSERT INTO tokenledger.usage (provider, model, tokens)
                                                     VALUES ('acme', 'acme-large', 'in=1 out=1')"""),
                          ("record_usage replay", psycopg.ClientCursor(coord).mogrify("""
                              SELECT tokenledger.record_usage(%(provider)s, %(model)s,
                                jsonb_build_object('input_tokens', tokenledger.input(%(tokens)s::tokenledger.tokens),
                                                   'output_tokens', tokenledger.output(%(tokens)s::tokenledger.tokens)),
                                request_id => %(request_id)s, occurred_at => %(occurred_at)s, team => %(team)s)""", c17))]:
            try:
                cur = coord.execute(sql)
                got = cur.fetchone() if cur.description else None
                comment(f"not checked (README, Citus): {what} ran" + (f": {got[0]}" if got else ""))
            except psycopg.Error as e:
                comment(f"not checked (README, Citus): {what}: {e.sqlstate} {str(e).splitlines()[0]}")
    except Failed:
        pass
    finally:
        subprocess.run(["sh", SHARDS_SH, "stop", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
