#!/usr/bin/python3
"""The roles of SPEC section 8, through real logins.

Each login is a member of one of the roles the extension creates
(tokenledger_writer, tokenledger_reader, tokenledger_admin) and connects
on its own, with its own password, as an app, a BI tool or an operator
would.  It does what the SPEC allows and tries what it forbids:

- a writer records (INSERT, record_usage, record_outcome, an unknown
  initiative), prices, checks and reserves, and may not read the ledger,
  write the catalog or the counters, give the columns the insert path sets,
  or release another role's reservation;
- a reader sees only the rows of its teams (through team_members, also as
  a member of a listed role), in the tables, the rollups and the views;
  an outcome is seen by its own team, also when that is not its
  initiative's; '*' sees every team and unattributed spend; a reader with
  no team_members row sees nothing; it writes nothing; every reading
  policy is a call of team_visible(team), with no subquery;
- an admin sees everything, writes the catalog, budgets and team_members,
  corrects with adjust(), and still cannot UPDATE, DELETE or TRUNCATE the
  ledger or write the counters;
- COPY into the ledger by a writer: PostgreSQL refuses COPY FROM into a
  table with row-level security for roles it applies to; a loading login
  with BYPASSRLS copies, and still reads nothing;
- even a superuser cannot UPDATE or DELETE the ledger in a replica session;
- every SECURITY DEFINER function pins its search_path, and none of the
  functions the roles are granted is executable by PUBLIC.

Uses a database and logins of its own.  Prints TAP.
"""
import sys

import psycopg
from tap import check, results


PLAN = 65
DB = "tokenledger_roles_test"
PASSWORD = "tl-roles-test"
LOGINS = {
    "tlt_app": "tokenledger_writer",
    "tlt_app2": "tokenledger_writer",
    "tlt_bulk": "tokenledger_writer",
    "tlt_fin": "tokenledger_reader",
    "tlt_fin_blue": "tokenledger_reader",
    "tlt_cfo": "tokenledger_reader",
    "tlt_nobody": "tokenledger_reader",
    "tlt_boss": "tokenledger_admin",
}


def login(dsn, user):
    return psycopg.connect(dsn, user=user, password=PASSWORD, autocommit=True)


def sqlstate(conn, sql, params=None):
    """The SQLSTATE a statement fails with; None when it succeeds."""
    try:
        conn.execute(sql, params)
        return None
    except psycopg.Error as e:
        return e.sqlstate


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def drop_logins(admin):
    for user in list(LOGINS) + ["tlt_blue_team"]:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone():
            admin.execute(f'DROP ROLE "{user}"')


def setup(dsn):
    su = psycopg.connect(dsn, autocommit=True)
    su.execute("CREATE EXTENSION tokenledger")
    for user, role in LOGINS.items():
        extra = " BYPASSRLS" if user == "tlt_bulk" else ""
        su.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'{extra} IN ROLE {role}")
    # a reader that sees blue through a role listed in team_members
    su.execute("CREATE ROLE tlt_blue_team NOLOGIN")
    su.execute("GRANT tlt_blue_team TO tlt_fin_blue")
    su.execute("""
        INSERT INTO tokenledger.prices (provider, model, effective_from, rate)
        VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M');
        INSERT INTO tokenledger.initiatives (name, team, value_per_outcome)
        VALUES ('red-bot', 'red', '2 USD'), ('blue-bot', 'blue', '3 USD');
        INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
        VALUES ('red block', 'team', 'red', 'total', '100 USD', 'block'),
               ('blue block', 'team', 'blue', 'total', '100 USD', 'block'),
               ('everyone', 'global', NULL, 'total', '1000 USD', 'alert');
        INSERT INTO tokenledger.team_members VALUES ('tlt_fin', 'red'), ('tlt_blue_team', 'blue'),
                                                    ('tlt_cfo', '*');
    """)
    return su


def writer(dsn, su):
    app = login(dsn, "tlt_app")
    check(one(app, "SELECT current_user") == "tlt_app", "the writer logs in as itself")
    ok = sqlstate(app, """
        INSERT INTO tokenledger.usage (provider, model, tokens, initiative)
        VALUES ('acme', 'm', 'in=1000000 out=0', 'red-bot'),
               ('acme', 'm', 'in=2000000 out=0', 'blue-bot'),
               ('acme', 'm', 'in=4000000 out=0', NULL),
               ('acme', 'm', 'in=8000000 out=0', 'green-new')""")
    check(ok is None, "a writer INSERTs usage rows, of any team and none")
    check(sqlstate(app, """INSERT INTO tokenledger.outcomes (initiative, metric, quantity)
                           VALUES ('red-bot', 'ticket', 3), ('blue-bot', 'ticket', 1)""") is None,
          "a writer INSERTs outcomes")
    rid = one(app, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 500000, "output_tokens": 0}',
                                                      request_id => 'roles-1', initiative => 'red-bot')""")
    again = one(app, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 500000, "output_tokens": 0}',
                                                        request_id => 'roles-1', initiative => 'red-bot')""")
    check(rid is not None and rid == again, "record_usage returns the id, and the same id on a replay")
    check(one(app, "SELECT tokenledger.record_outcome('red-bot', 'ticket', external_ref => 'roles-o1')") is not None,
          "record_outcome records for a writer")
    check(one(su, "SELECT count(*) FROM tokenledger.initiatives WHERE name = 'green-new' AND status = 'active'") == 1,
          "an unknown initiative named by a writer's row is registered, with no right on initiatives")
    check(str(one(app, "SELECT tokenledger.cost_of('in=1000000 out=0', 'acme', 'm')")) == "1.00 USD",
          "cost_of prices for a writer")
    check(one(app, "SELECT spent::text FROM tokenledger.budget_check(team => 'red')") == "1.50 USD",
          "budget_check reads the counters for a writer (spend of team red: 1.00 + 0.50 USD)")
    r1 = one(app, "SELECT tokenledger.budget_reserve(team => 'red', estimate => '5 USD')")
    check(r1 is not None, "budget_reserve for a writer")
    check(one(su, "SELECT reserved_by FROM tokenledger.budget_reservations WHERE id = %s", (r1,)) == "tlt_app",
          "the reservation records the role that took it")

    # what a writer may not do
    check(sqlstate(app, "SELECT count(*) FROM tokenledger.usage") == "42501", "a writer cannot read the ledger")
    check(sqlstate(app, "INSERT INTO tokenledger.prices (provider, model, rate) VALUES ('acme', 'x', 'in=1 out=1 USD/1M')") == "42501",
          "a writer cannot write prices")
    check(sqlstate(app, "UPDATE tokenledger.budgets SET amount = '1000000 USD'") == "42501",
          "a writer cannot rewrite a budget")
    check(sqlstate(app, "INSERT INTO tokenledger.budget_spend VALUES (1, '-infinity', 99, '-5 USD', 'USD')") == "42501",
          "a writer cannot write the counters")
    check(sqlstate(app, "DELETE FROM tokenledger.budget_holds") == "42501", "a writer cannot drop holds")
    check(sqlstate(app, "INSERT INTO tokenledger.initiatives (name) VALUES ('by-hand')") == "42501",
          "a writer cannot write initiatives directly")
    check(sqlstate(app, "SELECT tokenledger.adjust(1, '-1 USD', 'credit')") == "42501",
          "a writer cannot run adjust()")
    forged = [
        ("entry", "INSERT INTO tokenledger.usage (provider, model, tokens, team, entry, adjusts, cost) VALUES ('acme', 'm', 'in=0 out=0', 'red', 'adjustment', 1, '-999 USD')"),
        ("price_id", "INSERT INTO tokenledger.usage (provider, model, tokens, team, price_id, cost) VALUES ('acme', 'm', 'in=1 out=0', 'red', 1, '0 USD')"),
        ("attribution", "INSERT INTO tokenledger.usage (provider, model, tokens, attribution) VALUES ('acme', 'm', 'in=1 out=0', 'rule:7')"),
        ("recorded_at", "INSERT INTO tokenledger.usage (provider, model, tokens, recorded_at) VALUES ('acme', 'm', 'in=1 out=0', '2020-01-01')"),
    ]
    check(sqlstate(app, "INSERT INTO tokenledger.usage (provider, model, tokens, team, cost) VALUES ('acme', 'm', 'in=1 out=0', 'red', '-1000 USD')") == "22023"
          and sqlstate(app, "SELECT tokenledger.record_usage('acme', 'm', '{\"input\": 1, \"output\": 0}', team => 'red', cost => '-1000 USD')") == "22023",
          "a writer cannot lower the counters with a negative cost (22023; credits are adjust()'s)")
    for column, sql in forged:
        check(sqlstate(app, sql) == "42501", f"a writer cannot give {column} (42501)")
    check(one(su, "SELECT count(*) FROM tokenledger.usage WHERE entry <> 'call' OR recorded_at < '2021-01-01'") == 0,
          "none of the forged rows was recorded")
    for verb, sql in [("UPDATE", "UPDATE tokenledger.usage SET cost = NULL"),
                      ("DELETE", "DELETE FROM tokenledger.usage"),
                      ("TRUNCATE", "TRUNCATE tokenledger.usage")]:
        check(sqlstate(app, sql) == "42501", f"a writer cannot {verb} the ledger")

    # reservations are released by the role that took them
    app2 = login(dsn, "tlt_app2")
    su.execute("INSERT INTO tokenledger.usage (provider, model, tokens, team, request_id) VALUES ('acme', 'm', 'in=777 out=0', 'blue', 'blue-secret')")
    try:
        app2.execute("SELECT tokenledger.record_usage('acme', 'm', '{\"input_tokens\": 1}', request_id => 'blue-secret')")
        detail = None
    except psycopg.Error as e:
        detail = (e.sqlstate, e.diag.message_detail)
    check(detail is not None and detail[0] == "23505" and "777" not in (detail[1] or "") and "tokens" in (detail[1] or ""),
          f"a conflicting replay names what differs, not another team's recorded values ({detail})")
    check(sqlstate(app2, "SELECT tokenledger.budget_release(%s)", (r1,)) == "42501",
          "another writer cannot release the reservation (42501)")
    check(one(su, "SELECT released_at IS NULL FROM tokenledger.budget_reservations WHERE id = %s", (r1,)),
          "and it stays live")
    check(one(app, "SELECT tokenledger.budget_release(%s)", (r1,)) is True, "the writer that took it releases it")
    r2 = one(app2, "SELECT tokenledger.budget_reserve(team => 'red', estimate => '1 USD')")
    boss = login(dsn, "tlt_boss")
    check(one(boss, "SELECT tokenledger.budget_release(%s)", (r2,)) is True, "an admin releases any reservation")

    # COPY: refused by PostgreSQL under row-level security; BYPASSRLS copies
    err = None
    try:
        with app.cursor().copy("COPY tokenledger.usage (provider, model, tokens, team) FROM STDIN") as cp:
            cp.write_row(("acme", "m", "in=1 out=0", "red"))
    except psycopg.Error as e:
        err = e.sqlstate
    check(err == "0A000", "COPY FROM by a writer that row-level security applies to is refused (0A000)")
    bulk = login(dsn, "tlt_bulk")
    with bulk.cursor().copy("COPY tokenledger.usage (provider, model, tokens, team) FROM STDIN") as cp:
        for _ in range(3):
            cp.write_row(("acme", "m", "in=1000000 out=0", "copy-team"))
    check(one(su, "SELECT count(*) FROM tokenledger.usage WHERE team = 'copy-team' AND cost IS NOT NULL") == 3,
          "a writer login with BYPASSRLS COPYs rows, priced")
    check(sqlstate(bulk, "SELECT count(*) FROM tokenledger.usage") == "42501",
          "and still cannot read the ledger")
    for c in (app, app2, bulk, boss):
        c.close()


def readers(dsn, su):
    fin = login(dsn, "tlt_fin")
    teams = {r[0] for r in fin.execute("SELECT DISTINCT team FROM tokenledger.usage")}
    check(teams == {"red"}, f"a reader sees only its team's usage rows (saw {sorted(map(str, teams))})")
    outs = {r[0] for r in fin.execute("SELECT DISTINCT initiative FROM tokenledger.outcomes")}
    check(outs == {"red-bot"}, f"and only its team's outcomes (saw {sorted(outs)})")
    check(one(fin, "SELECT count(*) FROM tokenledger.unpriced_usage") == 0
          and one(fin, "SELECT count(*) FROM tokenledger.usage WHERE team IS NULL") == 0,
          "views and rows with no team are filtered too")
    check(one(fin, "SELECT spent FROM tokenledger.budget_status WHERE name = 'red block'") is not None,
          "a reader reads budget_status")
    names = {r[0] for r in fin.execute("SELECT name FROM tokenledger.budget_status")}
    check(names == {"red block"}, f"budget_status shows a reader the budgets of its teams only (saw {sorted(names)})")
    check(sqlstate(fin, "SELECT tokenledger.budget_position(b.id, '-infinity', 'USD') FROM tokenledger.budgets b WHERE b.name = 'blue block'") == "42501",
          "budget_position refuses another team's budget (42501)")
    check(sqlstate(fin, "SELECT count(*) FROM tokenledger.budget_spend") == "42501",
          "a reader cannot read the counters' table")
    check(sqlstate(fin, "INSERT INTO tokenledger.usage (provider, model, tokens) VALUES ('acme', 'm', 'in=1 out=0')") == "42501",
          "a reader cannot record")
    check(sqlstate(fin, "SELECT tokenledger.record_usage('acme', 'm', '{}')") == "42501",
          "a reader cannot run record_usage")
    check(sqlstate(fin, "SELECT tokenledger.recorded_usage('roles-1')") == "42501",
          "a reader cannot look rows up past row-level security with recorded_usage")
    check(sqlstate(fin, "INSERT INTO tokenledger.team_members VALUES ('tlt_fin', '*')") == "42501",
          "a reader cannot widen its own view")

    # an outcome is seen by its own team, which may differ from its initiative's
    su.execute("""INSERT INTO tokenledger.outcomes (initiative, metric, team, external_ref)
                  VALUES ('blue-bot', 'handoff', 'red', 'roles-o-red')""")
    check(one(fin, "SELECT count(*) FROM tokenledger.outcomes WHERE external_ref = 'roles-o-red'") == 1,
          "an outcome of another team's initiative, given the reader's team, is the reader's")
    roll = {tuple(r) for r in fin.execute("SELECT DISTINCT team, initiative FROM tokenledger.outcome_rollup")}
    check(roll == {("red", "red-bot"), ("red", "blue-bot")},
          f"the outcome rollup shows a reader its team's rows only (saw {sorted(roll)})")
    fin.close()

    blue = login(dsn, "tlt_fin_blue")
    teams = {r[0] for r in blue.execute("SELECT DISTINCT team FROM tokenledger.usage")}
    check(teams == {"blue"}, "a member of a role listed in team_members sees that role's team")
    check(one(blue, "SELECT count(*) FROM tokenledger.outcomes WHERE external_ref = 'roles-o-red'") == 0
          and one(blue, "SELECT count(*) FROM tokenledger.outcomes WHERE initiative = 'blue-bot'") >= 1,
          "and not the outcome its initiative gave to another team")
    blue.close()

    # the policies call a function, with no subquery (which Citus could not
    # distribute); the rollups' policies are the ledger's
    quals = su.execute("""SELECT tablename, qual FROM pg_policies
                        WHERE schemaname IN ('tokenledger', 'tokenledger_archive') AND cmd = 'SELECT'""").fetchall()
    check(len(quals) == 6 and all(q == "tokenledger.team_visible(team)" for _, q in quals),
          f"every reading policy of the ledger, the rollups and the archive is team_visible(team) ({len(quals)})",
          [f"{t}: {q}" for t, q in quals])

    cfo = login(dsn, "tlt_cfo")
    check(one(cfo, "SELECT count(*) FROM tokenledger.usage") == one(su, "SELECT count(*) FROM tokenledger.usage")
          and one(cfo, "SELECT count(*) FROM tokenledger.usage WHERE team IS NULL") >= 1
          and one(cfo, "SELECT count(DISTINCT team) FROM tokenledger.usage") == 3,
          "a '*' member sees every team and unattributed spend")
    cfo.close()

    nobody = login(dsn, "tlt_nobody")
    check(one(nobody, "SELECT count(*) FROM tokenledger.usage") == 0
          and one(nobody, "SELECT count(*) FROM tokenledger.outcomes") == 0,
          "a reader with no team_members row sees no rows")
    nobody.close()


def admin(dsn, su):
    boss = login(dsn, "tlt_boss")
    check(one(boss, "SELECT count(*) FROM tokenledger.usage") == one(su, "SELECT count(*) FROM tokenledger.usage")
          and one(boss, "SELECT count(*) FROM tokenledger.budget_status") == one(su, "SELECT count(*) FROM tokenledger.budgets"),
          "an admin sees every row and every budget")
    check(sqlstate(boss, "DELETE FROM tokenledger.model_aliases WHERE shipped") == "55000",
          "a shipped catalog row is not deleted (55000): a restore would bring it back")
    boss.execute("INSERT INTO tokenledger.model_aliases VALUES ('openai', 'chatgpt-4o-latest', 'gpt-5') ON CONFLICT DO NOTHING")
    check(one(su, "SELECT model || ' ' || shipped FROM tokenledger.model_aliases WHERE alias = 'chatgpt-4o-latest'") == "gpt-4o true",
          "an admin's INSERT ... ON CONFLICT DO NOTHING leaves a shipped row alone")
    ok = all(sqlstate(boss, sql) is None for sql in [
        "INSERT INTO tokenledger.prices (provider, model, effective_from, rate) VALUES ('acme', 'm2', '2020-01-01', 'in=2 out=0 USD/1M')",
        "INSERT INTO tokenledger.budgets (name, scope, period, amount) VALUES ('all', 'global', 'month', '1000 USD')",
        "INSERT INTO tokenledger.team_members VALUES ('tlt_nobody', 'green')",
        "UPDATE tokenledger.initiatives SET owner = 'ops' WHERE name = 'green-new'",
        "INSERT INTO tokenledger.fx_rates VALUES ('EUR', 'USD', 1.1, '2020-01-01')",
        "INSERT INTO tokenledger.attribution_rules (match_app, team) VALUES ('x', 'red')",
    ])
    check(ok, "an admin writes prices, budgets, team_members, initiatives, fx_rates and rules")
    uid = one(su, "SELECT min(id) FROM tokenledger.usage")
    check(one(boss, "SELECT tokenledger.adjust(%s, '-0.25 USD', 'credit')", (uid,)) is not None,
          "an admin corrects with adjust()")
    check(one(su, "SELECT count(*) FROM tokenledger.usage WHERE entry = 'adjustment'") == 1,
          "the adjustment is recorded")
    for verb, sql in [("UPDATE", "UPDATE tokenledger.usage SET team = 'x'"),
                      ("DELETE", "DELETE FROM tokenledger.outcomes"),
                      ("TRUNCATE", "TRUNCATE tokenledger.usage")]:
        check(sqlstate(boss, sql) == "42501", f"an admin cannot {verb} the ledger")
    check(sqlstate(boss, "UPDATE tokenledger.budget_spend SET spent = '0 USD'") == "42501"
          and sqlstate(boss, "DELETE FROM tokenledger.budget_alerts") == "42501",
          "an admin cannot write the counters or the alerts")
    boss.close()

    # even a superuser, in a replica session
    su.execute("SET session_replication_role = replica")
    check(sqlstate(su, "UPDATE tokenledger.usage SET team = 'x'") == "42501"
          and sqlstate(su, "DELETE FROM tokenledger.usage") == "42501",
          "UPDATE and DELETE of the ledger are refused in a replica session, even for a superuser")
    su.execute("RESET session_replication_role")


def definitions(su):
    unpinned = [r[0] for r in su.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'tokenledger'
        WHERE p.prosecdef
          AND NOT 'search_path=pg_catalog, tokenledger, pg_temp' = ANY (coalesce(p.proconfig, '{}'))""")]
    check(not unpinned, f"every SECURITY DEFINER function pins search_path (unpinned: {unpinned})")
    public = [r[0] for r in su.execute("""
        SELECT f FROM unnest(ARRAY['tokenledger.record_usage', 'tokenledger.record_outcome',
                                   'tokenledger.record_otel_span', 'tokenledger.cost_of',
                                   'tokenledger.budget_check', 'tokenledger.budget_reserve',
                                   'tokenledger.budget_release', 'tokenledger.adjust',
                                   'tokenledger.reprice', 'tokenledger.rerate',
                                   'tokenledger.import_prices_litellm', 'tokenledger.price_of',
                                   'tokenledger.replay_conflict', 'tokenledger.lock_budget',
                                   'tokenledger.budget_recount', 'tokenledger.budget_reserve_for',
                                   'tokenledger.budget_release_for']) f
        JOIN pg_proc p ON p.oid::regproc::text = f OR p.proname = split_part(f, '.', 2)
        WHERE p.pronamespace = 'tokenledger'::regnamespace
          AND has_function_privilege('public', p.oid, 'EXECUTE')""")]
    check(not public, f"PUBLIC cannot run the granted or internal functions (can: {public})")


def main():
    root = psycopg.connect("", autocommit=True)
    root.execute(f"DROP DATABASE IF EXISTS {DB}")
    drop_logins(root)
    root.execute(f"CREATE DATABASE {DB}")
    dsn = psycopg.conninfo.make_conninfo("", dbname=DB)
    print(f"1..{PLAN}")
    try:
        su = setup(dsn)
        writer(dsn, su)
        readers(dsn, su)
        admin(dsn, su)
        definitions(su)
        su.close()
    finally:
        root.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        drop_logins(root)
    return 0 if all(results) and len(results) == PLAN else 1


if __name__ == "__main__":
    sys.exit(main())
