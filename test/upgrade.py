#!/usr/bin/python3
"""1.0 -> 1.1: an updated database equals a new 1.1 installation, object by object.

Database A installs 1.0, records a ledger (user prices and an alias, an
initiative, attribution rules, priced and unpriced calls, an adjustment,
calls and outcomes over five months under request_ids and external_refs,
a monthly budget, an alert and a block budget with spend that crossed thresholds,
a reservation, an exchange rate) and is updated with ALTER EXTENSION
tokenledger UPDATE.  Database B installs 1.1 afresh.

- Every member of the extension (pg_depend deptype 'e', and 'x'), and what
  hangs off the members (columns, constraints, indexes, triggers, policies,
  rules, sequences' options, view definitions, comments, privileges, initial
  privileges, owners), the extension's own row (extconfig/extcondition
  resolved to names), default privileges and the roles the extension
  creates (tokenledger_*), with their memberships, are read from the
  catalogs of A and B; so are the schema and the objects in it that are not
  members.  Each object that differs is one failing test, with a diff of
  both versions.  Roles belong to the cluster: when the update created
  them, they are dropped (with A) before B installs, so that both creations
  are compared; when they existed before the test, both see the same roles.
  Roles the test created are dropped at the end.
- The update leaves A's data as it was: every user-data table (usage,
  outcomes, prices and aliases users added, initiatives, attribution_rules,
  fx_rates, budgets, budget_spend summed per budget, period and currency
  (the slots may differ), budget_reservations, budget_holds, budget_alerts) and the
  sequences are read before and after, over the columns they had in 1.0.  The data is in the budgets'
  currency, so the recount the update runs must find the same sums.
- The shipped catalog rows (prices, model_aliases WHERE shipped) of A and B
  are the same rows, ids included.

- The updated ledger is partitioned by month: the 1.0 rows of usage and
  outcomes are in the default partitions, every request_id and external_ref
  is in the key tables, the sequences go on where 1.0 left them, a replay
  of a 1.0 key returns its id (a plain INSERT of it fails), and
  create_partitions(since => the first month) moves the rows into their
  months with every column unchanged and counted once.  (Checked after the
  catalogs are read: the month partitions are not the extension's.)

sql/upgrade.sql tests the behaviour across the update; this is the
object-by-object comparison.  Uses databases of its own.  Prints TAP (the
plan at the end: the count of objects is not known before).
"""
import difflib
import sys

import psycopg
from psycopg.sql import Identifier
from tap import check, comment, results, Failed, step


DB_A = "tokenledger_upgrade_a"
DB_B = "tokenledger_upgrade_b"


def connect(db):
    conn = psycopg.connect(psycopg.conninfo.make_conninfo("", dbname=db), autocommit=True)
    # everything the catalogs print comes out schema-qualified and in UTC
    conn.execute("SET search_path = pg_catalog")
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    conn.execute("SET extra_float_digits = 3")
    return conn


def rows(conn, sql, params=None):
    return conn.execute(sql, params).fetchall()


# ---------------------------------------------------------------------------
# the catalog snapshot: {object identity: {attribute: text}}
# ---------------------------------------------------------------------------

# an ACL as sorted "grantee=privilege[*]/grantor" items; NULL is the default ACL
def acl_sql(acl, kind, owner):
    return f"""(SELECT coalesce(string_agg(
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                    || '=' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
                    || '/' || a.grantor::regrole::text, ', ' ORDER BY 1), '(none)')
               FROM aclexplode(coalesce({acl}, acldefault('{kind}', {owner}))) a)"""


# a column ACL: NULL is no grant at all
def col_acl_sql(acl):
    return f"""(SELECT string_agg(
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                    || '=' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
                    || '/' || a.grantor::regrole::text, ', ' ORDER BY 1)
               FROM aclexplode({acl}) a)"""


def txt(v):
    return "NULL" if v is None else str(v)


def put(snap, key, attrs):
    if key in snap:  # two objects described alike: keep both
        n = 2
        while f"{key} #{n}" in snap:
            n += 1
        key = f"{key} #{n}"
    snap[key] = attrs


def one_row_attrs(conn, sql, params):
    cur = conn.execute(sql, params)
    names = [d.name for d in cur.description]
    row = cur.fetchone()
    if row is None:
        return {"(missing)": "no row"}
    return {n: ("NULL" if v is None else str(v)) for n, v in zip(names, row)}


def list_attr(conn, sql, params):
    """Rows of a query, each as one line: for lists of sub-objects."""
    out = rows(conn, sql, params)
    return "\n".join(" | ".join("NULL" if v is None else str(v) for v in r) for r in out) or "(none)"


def proc_attrs(conn, oid):
    a = one_row_attrs(conn, f"""
        SELECT p.prokind AS kind,
               CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END AS definition,
               pg_get_function_identity_arguments(p.oid) AS identity_arguments,
               pg_get_function_arguments(p.oid) AS arguments,
               pg_get_function_result(p.oid) AS result,
               l.lanname AS language,
               p.proconfig AS config, p.prosecdef AS security_definer, p.provolatile AS volatility,
               p.proparallel AS parallel, p.proisstrict AS strict, p.proleakproof AS leakproof,
               p.procost AS cost, p.prorows AS rows, p.prosupport::regprocedure::text AS support,
               p.proowner::regrole::text AS owner,
               {acl_sql('p.proacl', 'f', 'p.proowner')} AS acl,
               obj_description(p.oid, 'pg_proc') AS comment
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = %s""", (oid,))
    if a.get("kind") == "a":
        a.update(one_row_attrs(conn, """
            SELECT g.aggkind, g.aggnumdirectargs, g.aggtransfn::regprocedure::text AS transfn,
                   g.aggfinalfn::regprocedure::text AS finalfn, g.aggcombinefn::regprocedure::text AS combinefn,
                   g.aggserialfn::regprocedure::text AS serialfn, g.aggdeserialfn::regprocedure::text AS deserialfn,
                   g.aggmtransfn::regprocedure::text AS mtransfn, g.aggminvtransfn::regprocedure::text AS minvtransfn,
                   g.aggmfinalfn::regprocedure::text AS mfinalfn, g.aggfinalextra, g.aggmfinalextra,
                   g.aggfinalmodify, g.aggmfinalmodify, g.aggsortop::regoperator::text AS sortop,
                   g.aggtranstype::regtype::text AS transtype, g.aggtransspace,
                   g.aggmtranstype::regtype::text AS mtranstype, g.aggmtransspace,
                   g.agginitval, g.aggminitval
            FROM pg_aggregate g WHERE g.aggfnoid = %s""", (oid,)))
    return a


def relation_attrs(conn, oid):
    kind = rows(conn, "SELECT relkind FROM pg_class WHERE oid = %s", (oid,))[0][0]
    a = one_row_attrs(conn, f"""
        SELECT c.relkind AS kind, c.relpersistence AS persistence, c.relowner::regrole::text AS owner,
               {acl_sql('c.relacl', 's' if kind == 'S' else 'r', 'c.relowner')} AS acl,
               c.relrowsecurity AS row_security, c.relforcerowsecurity AS force_row_security,
               c.relreplident AS replica_identity, c.reloptions AS options, c.relispartition AS is_partition,
               coalesce(t.spcname, '(default)') AS tablespace,
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
               (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                FROM pg_inherits i WHERE i.inhrelid = c.oid) AS inherits,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END AS view_definition,
               c.reloftype::regtype::text AS of_type,
               obj_description(c.oid, 'pg_class') AS comment
        FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.oid = %s""", (oid,))
    a["columns"] = list_attr(conn, f"""
        SELECT row_number() OVER (ORDER BY a.attnum), a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'null' END,
               'default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-'),
               'collate ' || coalesce(co.collname, '-'),
               'identity ' || a.attidentity::text, 'generated ' || a.attgenerated::text,
               'storage ' || a.attstorage::text, 'compression ' || a.attcompression::text,
               'stattarget ' || a.attstattarget,
               -- pg_attver is the server's own attribute version (back branches), not an option
               'options ' || coalesce((SELECT array_agg(o ORDER BY o)::text FROM unnest(a.attoptions) o
                                       WHERE o NOT LIKE 'pg\\_attver=%%'), '-'),
               'acl ' || coalesce({col_acl_sql('a.attacl')}, '-'),
               'comment ' || coalesce(col_description(a.attrelid, a.attnum), '-')
        FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
        WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""", (oid,))
    if kind == "S":
        a.update(one_row_attrs(conn, """
            SELECT s.seqtypid::regtype::text AS seq_type, s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
                   s.seqcache, s.seqcycle,
                   (SELECT d.refobjid::regclass::text || '.' || quote_ident(at.attname)
                    FROM pg_depend d JOIN pg_attribute at ON at.attrelid = d.refobjid AND at.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) AS owned_by
            FROM pg_sequence s WHERE s.seqrelid = %s""", (oid,)))
    return a


def relation_parts(conn, oid, rel):
    """Sub-objects of a relation, each its own entry: constraints, indexes,
    triggers, policies, rules, statistics objects."""
    parts = {}
    for name, attrs in constraint_entries(conn, "conrelid", oid):
        parts[f"constraint {name} on {rel}"] = attrs
    for r in rows(conn, """
            SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisclustered,
                   i.indisreplident, obj_description(i.indexrelid, 'pg_class'),
                   coalesce(t.spcname, '(default)')
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            LEFT JOIN pg_tablespace t ON t.oid = ic.reltablespace
            WHERE i.indrelid = %s""", (oid,)):
        parts[f"index {r[0]} on {rel}"] = {"definition": r[1], "valid": txt(r[2]), "clustered": txt(r[3]),
                                           "replica_identity": txt(r[4]), "comment": txt(r[5]),
                                           "tablespace": r[6]}
    for r in rows(conn, """
            SELECT tgname, pg_get_triggerdef(oid, true), tgenabled, obj_description(oid, 'pg_trigger')
            FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal""", (oid,)):
        parts[f"trigger {r[0]} on {rel}"] = {"definition": r[1], "enabled": r[2], "comment": txt(r[3])}
    for r in rows(conn, """
            SELECT p.polname, p.polcmd, p.polpermissive,
                   (SELECT string_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END, ', ' ORDER BY 1)
                    FROM unnest(p.polroles) x),
                   pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
                   obj_description(p.oid, 'pg_policy')
            FROM pg_policy p WHERE p.polrelid = %s""", (oid,)):
        parts[f"policy {r[0]} on {rel}"] = {"command": r[1], "permissive": txt(r[2]), "roles": txt(r[3]),
                                            "using": txt(r[4]), "with_check": txt(r[5]), "comment": txt(r[6])}
    for r in rows(conn, """
            SELECT rulename, pg_get_ruledef(oid, true), ev_enabled FROM pg_rewrite
            WHERE ev_class = %s AND rulename <> '_RETURN'""", (oid,)):
        parts[f"rule {r[0]} on {rel}"] = {"definition": r[1], "enabled": r[2]}
    for r in rows(conn, """
            SELECT stxname, pg_get_statisticsobjdef(oid), stxstattarget FROM pg_statistic_ext
            WHERE stxrelid = %s""", (oid,)):
        parts[f"statistics {r[0]} on {rel}"] = {"definition": r[1], "stattarget": txt(r[2])}
    return parts


def constraint_entries(conn, column, oid):
    for r in rows(conn, f"""
            SELECT conname, contype, pg_get_constraintdef(oid, true), condeferrable, condeferred,
                   convalidated, connoinherit, obj_description(oid, 'pg_constraint')
            FROM pg_constraint WHERE {column} = %s ORDER BY conname""", (oid,)):
        yield r[0], {"type": r[1], "definition": r[2], "deferrable": txt(r[3]), "deferred": txt(r[4]),
                     "validated": txt(r[5]), "no_inherit": txt(r[6]), "comment": txt(r[7])}


def type_attrs(conn, oid):
    a = one_row_attrs(conn, f"""
        SELECT t.typtype AS kind, t.typlen AS length, t.typbyval AS by_value, t.typalign AS align,
               t.typstorage AS storage, t.typcategory AS category, t.typispreferred AS preferred,
               t.typdelim AS delimiter, t.typinput::regprocedure::text AS input,
               t.typoutput::regprocedure::text AS output, t.typreceive::regprocedure::text AS receive,
               t.typsend::regprocedure::text AS send, t.typmodin::regprocedure::text AS typmod_in,
               t.typmodout::regprocedure::text AS typmod_out, t.typanalyze::regprocedure::text AS analyze,
               t.typsubscript::regprocedure::text AS subscript, t.typelem::regtype::text AS element,
               t.typarray::regtype::text AS array_type, t.typbasetype::regtype::text AS base_type,
               t.typnotnull AS not_null, t.typdefault AS default_value,
               (SELECT collname FROM pg_collation WHERE oid = t.typcollation) AS collation,
               t.typowner::regrole::text AS owner,
               {acl_sql('t.typacl', 'T', 't.typowner')} AS acl,
               obj_description(t.oid, 'pg_type') AS comment
        FROM pg_type t WHERE t.oid = %s""", (oid,))
    if a.get("kind") == "e":
        a["labels"] = list_attr(conn, "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder",
                                (oid,))
    if a.get("kind") == "c":
        relid = rows(conn, "SELECT typrelid FROM pg_type WHERE oid = %s", (oid,))[0][0]
        a["attributes"] = relation_attrs(conn, relid)["columns"]
    if a.get("kind") == "d":
        a["constraints"] = "\n".join(f"{n}: {c['definition']} validated={c['validated']}"
                                     for n, c in constraint_entries(conn, "contypid", oid)) or "(none)"
    return a


def operator_attrs(conn, oid):
    return one_row_attrs(conn, """
        SELECT o.oprkind AS kind, o.oprleft::regtype::text AS left_type, o.oprright::regtype::text AS right_type,
               o.oprresult::regtype::text AS result, o.oprcode::regprocedure::text AS function,
               o.oprcom::regoperator::text AS commutator, o.oprnegate::regoperator::text AS negator,
               o.oprrest::regprocedure::text AS restrict, o.oprjoin::regprocedure::text AS join,
               o.oprcanmerge AS merges, o.oprcanhash AS hashes, o.oprowner::regrole::text AS owner,
               obj_description(o.oid, 'pg_operator') AS comment
        FROM pg_operator o WHERE o.oid = %s""", (oid,))


def opfamily_members(conn, family_oid):
    return list_attr(conn, """
        SELECT pg_describe_object('pg_amop'::regclass, oid, 0) || ' purpose ' || amoppurpose::text
               || CASE WHEN amopsortfamily <> 0
                       THEN ' sortfamily ' || pg_describe_object('pg_opfamily'::regclass, amopsortfamily, 0)
                       ELSE '' END
        FROM pg_amop WHERE amopfamily = %s
        UNION ALL
        SELECT pg_describe_object('pg_amproc'::regclass, oid, 0) FROM pg_amproc WHERE amprocfamily = %s
        ORDER BY 1""", (family_oid, family_oid))


def opclass_attrs(conn, oid):
    a = one_row_attrs(conn, """
        SELECT am.amname AS method, c.opcintype::regtype::text AS input_type, c.opcdefault AS is_default,
               c.opckeytype::regtype::text AS key_type,
               pg_describe_object('pg_opfamily'::regclass, c.opcfamily, 0) AS family,
               c.opcowner::regrole::text AS owner, obj_description(c.oid, 'pg_opclass') AS comment
        FROM pg_opclass c JOIN pg_am am ON am.oid = c.opcmethod WHERE c.oid = %s""", (oid,))
    return a


def opfamily_attrs(conn, oid):
    a = one_row_attrs(conn, """
        SELECT am.amname AS method, f.opfowner::regrole::text AS owner,
               obj_description(f.oid, 'pg_opfamily') AS comment
        FROM pg_opfamily f JOIN pg_am am ON am.oid = f.opfmethod WHERE f.oid = %s""", (oid,))
    a["members"] = opfamily_members(conn, oid)
    return a


def cast_attrs(conn, oid):
    return one_row_attrs(conn, """
        SELECT c.castfunc::regprocedure::text AS function, c.castcontext AS context, c.castmethod AS method,
               obj_description(c.oid, 'pg_cast') AS comment
        FROM pg_cast c WHERE c.oid = %s""", (oid,))


def event_trigger_attrs(conn, oid):
    return one_row_attrs(conn, """
        SELECT e.evtevent AS event, e.evtfoid::regprocedure::text AS function, e.evtenabled AS enabled,
               e.evttags AS tags, e.evtowner::regrole::text AS owner,
               obj_description(e.oid, 'pg_event_trigger') AS comment
        FROM pg_event_trigger e WHERE e.oid = %s""", (oid,))


def namespace_attrs(conn, oid):
    return one_row_attrs(conn, f"""
        SELECT n.nspowner::regrole::text AS owner, {acl_sql('n.nspacl', 'n', 'n.nspowner')} AS acl,
               obj_description(n.oid, 'pg_namespace') AS comment
        FROM pg_namespace n WHERE n.oid = %s""", (oid,))


DETAIL = {
    "pg_proc": proc_attrs,
    "pg_class": relation_attrs,
    "pg_type": type_attrs,
    "pg_operator": operator_attrs,
    "pg_opclass": opclass_attrs,
    "pg_opfamily": opfamily_attrs,
    "pg_cast": cast_attrs,
    "pg_event_trigger": event_trigger_attrs,
    "pg_namespace": namespace_attrs,
}


def catalog_snapshot(conn):
    snap = {}
    ext = rows(conn, "SELECT oid FROM pg_extension WHERE extname = 'tokenledger'")
    if not ext:
        return {"extension tokenledger": {"(missing)": "not installed"}}
    ext_oid = ext[0][0]
    members = rows(conn, """
        SELECT d.classid::regclass::text, d.objid, d.objsubid, d.deptype,
               pg_describe_object(d.classid, d.objid, d.objsubid)
        FROM pg_depend d
        WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = %s AND d.deptype IN ('e', 'x')
        ORDER BY 5""", (ext_oid,))
    for catalog, objid, subid, deptype, ident in members:
        if deptype == "x":
            put(snap, f"depends on extension (x): {ident}", {"member": "no (auto-extension dependency)"})
            continue
        fn = DETAIL.get(catalog)
        attrs = fn(conn, objid) if fn else {"member": f"yes ({catalog})"}
        put(snap, ident, attrs)
        if catalog == "pg_class":
            for k, v in relation_parts(conn, objid, ident.split(" ", 1)[1] if " " in ident else ident).items():
                put(snap, k, v)

    # objects in the extension's schema that are not members of it
    for r in rows(conn, """
            SELECT pg_describe_object(x.classid, x.oid, 0) FROM (
                SELECT 'pg_class'::regclass AS classid, c.oid FROM pg_class c
                WHERE c.relnamespace IN (SELECT n.oid FROM pg_namespace n WHERE n.nspname IN ('tokenledger', 'tokenledger_archive'))
                  AND c.relkind NOT IN ('i', 'I', 't')
                UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p WHERE p.pronamespace = 'tokenledger'::regnamespace
                UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t WHERE t.typnamespace = 'tokenledger'::regnamespace
                UNION ALL SELECT 'pg_operator'::regclass, o.oid FROM pg_operator o WHERE o.oprnamespace = 'tokenledger'::regnamespace
            ) x
            WHERE NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = x.classid AND d.objid = x.oid
                              AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
              -- row types and array types belong to their relation or element type
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = x.classid AND d.objid = x.oid
                              AND d.deptype = 'i')
            ORDER BY 1"""):
        put(snap, f"not a member but in the extension's schemas: {r[0]}", {"member": "no"})

    # the extension's own row
    a = one_row_attrs(conn, """
        SELECT e.extversion AS version, e.extowner::regrole::text AS owner, e.extrelocatable AS relocatable,
               e.extnamespace::regnamespace::text AS schema,
               obj_description(e.oid, 'pg_extension') AS comment
        FROM pg_extension e WHERE e.oid = %s""", (ext_oid,))
    a["config (extconfig: extcondition)"] = list_attr(conn, """
        SELECT c.cfg::regclass::text, coalesce(c.cond, 'NULL')
        FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS c(cfg, cond)
        WHERE e.oid = %s ORDER BY 1""", (ext_oid,))
    put(snap, "extension tokenledger", a)
    if "schema tokenledger" not in snap:  # the schema the control file names, member or not
        put(snap, "schema tokenledger", namespace_attrs(conn, rows(conn, "SELECT 'tokenledger'::regnamespace::oid")[0][0]))

    # initial privileges of the members (what pg_dump takes as the extension's own)
    for r in rows(conn, """
            SELECT pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype,
                   (SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                                      || '=' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
                                      || '/' || a.grantor::regrole::text, ', ' ORDER BY 1)
                    FROM aclexplode(i.initprivs) a)
            FROM pg_init_privs i
            WHERE EXISTS (SELECT FROM pg_depend d WHERE d.classid = i.classoid AND d.objid = i.objoid
                          AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = %s AND d.deptype = 'e')
            ORDER BY 1""", (ext_oid,)):
        put(snap, f"initial privileges of {r[0]}", {"privtype": r[1], "acl": txt(r[2])})

    # default privileges anywhere in the database (none expected, in both)
    for r in rows(conn, """
            SELECT d.defaclrole::regrole::text, coalesce(d.defaclnamespace::regnamespace::text, '(all)'),
                   d.defaclobjtype, d.defaclacl::text FROM pg_default_acl d ORDER BY 1, 2, 3"""):
        put(snap, f"default privileges of {r[0]} in {r[1]} on {r[2]}", {"acl": r[3]})
    return snap


def roles_snapshot(conn):
    snap = {}
    for r in rows(conn, r"""
            SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                   r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil, r.rolconfig,
                   shobj_description(r.oid, 'pg_authid')
            FROM pg_roles r WHERE r.rolname LIKE 'tokenledger\_%' ORDER BY 1"""):
        snap[f"role {r[0]}"] = {
            "super": txt(r[1]), "inherit": txt(r[2]), "createrole": txt(r[3]), "createdb": txt(r[4]),
            "login": txt(r[5]), "replication": txt(r[6]), "bypassrls": txt(r[7]), "connlimit": txt(r[8]),
            "valid_until": txt(r[9]), "config": txt(r[10]), "comment": txt(r[11])}
    for r in rows(conn, r"""
            SELECT m.roleid::regrole::text, m.member::regrole::text, m.admin_option
            FROM pg_auth_members m
            WHERE m.roleid::regrole::text LIKE 'tokenledger\_%' OR m.member::regrole::text LIKE 'tokenledger\_%'
            ORDER BY 1, 2"""):
        snap[f"membership of {r[1]} in {r[0]}"] = {"admin_option": txt(r[2])}
    return snap


def render(attrs):
    lines = []
    for k, v in attrs.items():
        v = str(v).split("\n")
        lines.append(f"{k}: {v[0]}")
        lines.extend(f"    {x}" for x in v[1:])
    return lines


def compare_snapshots(a, b, what, name_a="updated 1.0", name_b="new 1.1"):
    """One test per object; returns how many differ."""
    differing = 0
    for key in sorted(set(a) | set(b)):
        if key not in b:
            check(False, f"{what}: {key}", f"only in the {name_a} database:\n" + "\n".join(render(a[key])))
            differing += 1
        elif key not in a:
            check(False, f"{what}: {key}", f"only in the {name_b} database:\n" + "\n".join(render(b[key])))
            differing += 1
        elif a[key] != b[key]:
            diff = difflib.unified_diff(render(a[key]), render(b[key]), name_a, name_b, n=1, lineterm="")
            check(False, f"{what}: {key}", "\n".join(diff))
            differing += 1
        else:
            check(True, f"{what}: {key}")
    return differing


# ---------------------------------------------------------------------------
# data fingerprints
# ---------------------------------------------------------------------------

USER_TABLES = [  # (table, filter)
    ("usage", ""), ("outcomes", ""), ("prices", "WHERE NOT shipped"), ("model_aliases", "WHERE NOT shipped"),
    ("initiatives", ""), ("attribution_rules", ""), ("fx_rates", ""), ("budgets", ""),
    ("budget_reservations", ""), ("budget_holds", ""), ("budget_alerts", ""),
]


def table_columns(conn, table):
    return [r[0] for r in rows(conn, """
        SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum""", (f"tokenledger.{table}",))]


def primary_key(conn, table):
    return [r[0] for r in rows(conn, """
        SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, n)
        JOIN pg_attribute a ON a.attnum = k.attnum
        WHERE i.indrelid = %s::regclass AND i.indisprimary AND a.attrelid = i.indrelid ORDER BY k.n""",
                                (f"tokenledger.{table}",))]


def data_fingerprint(conn, columns):
    """{table: [row text, ...]} in primary-key order, over the given columns."""
    fp = {}
    for table, where in USER_TABLES:
        cols = columns[table]
        order = ", ".join(Identifier(c).as_string(conn) for c in (primary_key(conn, table) or cols))
        select = ", ".join(f"{Identifier(c).as_string(conn)}::text" for c in cols)
        fp[table] = [tuple(r) for r in rows(conn, f"SELECT {select} FROM tokenledger.{table} {where} ORDER BY {order}")]
    fp["budget_spend (summed per budget, period, currency)"] = [tuple(r) for r in rows(conn, """
        SELECT budget_id, period_start::text, tokenledger.currency(spent), tokenledger.sum(spent)::text
        FROM tokenledger.budget_spend GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")]
    fp["sequences"] = [tuple(r) for r in rows(conn, """
        SELECT c.relname, coalesce(pg_sequence_last_value(c.oid)::text, 'not called') FROM pg_class c
        WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind = 'S' ORDER BY 1""")]
    return fp


def compare_rows(label, before, after, name_a, name_b):
    only_a = [r for r in before if r not in after]
    only_b = [r for r in after if r not in before]
    ok = before == after
    diag = None
    if not ok:
        diag = (f"{len(before)} rows in {name_a}, {len(after)} in {name_b}; "
                f"{len(only_a)} only in {name_a}, {len(only_b)} only in {name_b}\n")
        if only_a:
            diag += f"first only in {name_a}: {only_a[0]}\n"
        if only_b:
            diag += f"first only in {name_b}: {only_b[0]}\n"
        if not only_a and not only_b:
            diag += "same rows, in another order or repeated\n"
    check(ok, label, diag)


# ---------------------------------------------------------------------------
# the 1.0 ledger
# ---------------------------------------------------------------------------

def record_1_0(conn):
    x = conn.execute
    x("SET search_path = tokenledger, public")
    x("SET TimeZone = 'UTC'")
    x("""INSERT INTO prices (provider, model, effective_from, rate, min_input_tokens, source) VALUES
         ('acme', 'm', '2020-01-01', 'in=1 out=2 USD/1M', 0, 'upgrade test'),
         ('acme', 'm', '2020-01-01', 'in=2 out=4 USD/1M', 100000, 'upgrade test: long context')""")
    x("INSERT INTO model_aliases (provider, alias, model) VALUES ('acme', 'acme-latest', 'm')")
    x("""INSERT INTO initiatives (name, team, owner, outcome_metric, value_per_outcome)
         VALUES ('support-triage', 'support', 'ann', 'ticket_resolved', '2 USD')""")
    x("""INSERT INTO attribution_rules (priority, match_app, initiative) VALUES (10, 'helpdesk', 'support-triage')""")
    x("""INSERT INTO attribution_rules (priority, match_api_key, team) VALUES (20, 'key-lab', 'research')""")
    x("""INSERT INTO fx_rates VALUES ('EUR', 'USD', 1.1, '2020-01-01')""")
    x("""INSERT INTO budgets (name, scope, scope_value, period, amount, mode, warn_at) VALUES
         ('support total', 'team', 'support', 'total', '10 USD', 'alert', '{0.5,0.8,1.0}'),
         ('research block', 'team', 'research', 'total', '20 USD', 'block', '{0.25,0.5}'),
         ('everything today', 'global', NULL, 'day', '1000 USD', 'alert', '{0.5}')""")
    x("""INSERT INTO usage (provider, model, tokens, app, occurred_at) VALUES
         ('acme', 'm', 'in=3000000 out=1000000', 'helpdesk', now()),
         ('acme', 'acme-latest', 'in=1000000 out=0', 'helpdesk', now())""")       # $5 + $1 via rule 1
    x("""INSERT INTO usage (provider, model, tokens, api_key) VALUES
         ('acme', 'm-2024-08-06', 'in=6000000 out=0', 'key-lab')""")             # $6 via rule 2
    x("""INSERT INTO usage (provider, model, tokens, team, api_key) VALUES
         ('nobody', 'unknown-model', 'in=10 out=10', 'research', 'key-x')""")   # unpriced
    x("""SELECT record_usage('acme', 'm', '{"input_tokens": 200000, "output_tokens": 1000}',
                             request_id => 'req-1', initiative => 'new-initiative', principal => 'bob')""")
    x("""SELECT record_usage('acme', 'm', '{"input_tokens": 5, "output_tokens": 5}', request_id => 'req-2',
                             cost => '0.75 USD', team => 'support')""")           # a given cost
    uid = x("SELECT min(id) FROM usage").fetchone()[0]
    x("SELECT adjust(%s, '-0.50 USD', 'credit from the provider')", (uid,))
    x("SELECT record_outcome('support-triage', 'ticket_resolved', 3, external_ref => 'zd-1')")
    x("SELECT record_outcome('support-triage', 'ticket_resolved', 1, value => '5 USD', external_ref => 'zd-2')")
    x("SELECT record_outcome('new-initiative', 'lead', 2)")
    x("SELECT budget_reserve(team => 'research', estimate => '1.5 USD', ttl => '1 day')")
    # calls and outcomes over five months, under request_ids and external_refs, and a monthly budget
    x("""INSERT INTO budgets (name, scope, scope_value, period, amount, mode, warn_at)
         VALUES ('support monthly', 'team', 'support', 'month', '3 USD', 'alert', '{0.5,1.0}')""")
    x("""SELECT record_usage('acme', 'm', format('{"input_tokens": %s, "output_tokens": 1000}', 100000 * (g + 1))::jsonb,
                             request_id => 'req-month-' || g, occurred_at => now() - g * interval '31 days',
                             app => 'helpdesk', principal => 'ann', run_id => 'run-' || g)
         FROM generate_series(0, 4) g""")
    x("""INSERT INTO usage (occurred_at, request_id, provider, model, tokens, api_key)
         SELECT now() - g * interval '29 days' - interval '1 hour', 'req-lab-' || g, 'acme', 'm', 'in=50000 out=5000', 'key-lab'
         FROM generate_series(1, 4) g""")
    x("""SELECT record_outcome('support-triage', 'ticket_resolved', g + 1, occurred_at => now() - g * interval '31 days',
                              run_id => 'run-' || g, external_ref => 'zd-month-' || g)
         FROM generate_series(0, 4) g""")


def placement(conn, table):
    return [tuple(r) for r in rows(conn, f"""
        SELECT t.id, t.tableoid::regclass::text FROM tokenledger.{table} t ORDER BY t.id""")]


def partitioned_1_0(a, columns, after):
    """The updated ledger is partitioned: the 1.0 rows wait in the default
    partitions, their keys are in the key tables, replays are still
    answered, and create_partitions() moves them into their months."""
    for table in ("usage", "outcomes"):
        where = sorted({r[1] for r in placement(a, table)})
        check(where == [f"tokenledger.{table}_default"] and len(placement(a, table)) >= 5,
              f"the 1.0 rows of {table} are in {table}_default after the update ({len(placement(a, table))} rows)", where)
    for table, keys, key in (("usage", "usage_request_ids", "request_id"),
                             ("outcomes", "outcome_external_refs", "external_ref")):
        held = rows(a, f"SELECT {key}, id, occurred_at FROM tokenledger.{keys} ORDER BY 1")
        ledger = rows(a, f"SELECT {key}, id, occurred_at FROM tokenledger.{table} WHERE {key} IS NOT NULL ORDER BY 1")
        check(held == ledger and len(held) >= 5, f"tokenledger.{keys} holds every {key} of the 1.0 ledger ({len(held)})",
              [f"key table: {held}", f"ledger: {ledger}"])
    # 1.0's outcomes take their initiative's team (none where it has none)
    teams = rows(a, """SELECT o.external_ref, o.initiative, o.team, i.team FROM tokenledger.outcomes o
                       LEFT JOIN tokenledger.initiatives i ON i.name = o.initiative ORDER BY o.id""")
    check(all(r[2] == r[3] for r in teams) and sum(r[2] == "support" for r in teams) >= 7
          and any(r[2] is None for r in teams),
          f"the update gives each 1.0 outcome its initiative's team ({len(teams)} outcomes)", [str(r) for r in teams])
    # the sequences go on where 1.0 left them
    last = dict((r[0], r[1]) for r in after["sequences"])
    new_id = rows(a, """INSERT INTO tokenledger.usage (provider, model, tokens, team)
                        VALUES ('acme', 'm', 'in=1 out=1', 'support') RETURNING id""")[0][0]
    check(str(new_id) == str(int(last["usage_id_seq"]) + 1),
          f"the next call takes the id after 1.0's last ({new_id}, 1.0's last {last['usage_id_seq']})")
    # replays of 1.0 keys
    old_id = rows(a, "SELECT id FROM tokenledger.usage WHERE request_id = 'req-month-2'")[0][0]
    replay = rows(a, """SELECT tokenledger.record_usage('acme', 'm', '{"input_tokens": 300000, "output_tokens": 1000}',
                           request_id => 'req-month-2', occurred_at => now())""")[0][0]
    check(replay == old_id, f"record_usage() replaying a 1.0 request_id (another month) returns its id ({replay} = {old_id})")
    try:
        a.execute("""INSERT INTO tokenledger.usage (provider, model, tokens, request_id)
                     VALUES ('acme', 'm', 'in=1 out=1', 'req-month-3')""")
        state = None
    except psycopg.Error as e:
        state = e.sqlstate
    check(state == "23505", f"a plain INSERT of a 1.0 request_id fails ({state})")
    old_id = rows(a, "SELECT id FROM tokenledger.outcomes WHERE external_ref = 'zd-month-3'")[0][0]
    replay = rows(a, """SELECT tokenledger.record_outcome('support-triage', 'ticket_resolved', 4, external_ref => 'zd-month-3')""")[0][0]
    check(replay == old_id, f"record_outcome() replaying a 1.0 external_ref returns its id ({replay} = {old_id})")
    # into months
    cols = {t: columns[t] + [c for c in table_columns(a, t) if c not in columns[t]] for t in ("usage", "outcomes")}
    before = {t: [tuple(r) for r in rows(a, f"SELECT t::text FROM tokenledger.{t} t ORDER BY t.id")] for t in cols}
    spend = [tuple(r) for r in rows(a, """SELECT budget_id, period_start::text, tokenledger.sum(spent)::text
                                          FROM tokenledger.budget_spend GROUP BY 1, 2 ORDER BY 1, 2""")]
    first = rows(a, "SELECT min(occurred_at) FROM tokenledger.usage")[0][0]
    made = rows(a, "SELECT tokenledger.create_partitions(since => %s)", (first,))[0][0]
    parts = rows(a, """SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent IN ('tokenledger.usage'::regclass, 'tokenledger.outcomes'::regclass)
                         AND c.relname ~ '_[0-9]{4}_[0-9]{2}$'""")[0][0]
    check(made == parts and made >= 2 * 8, f"create_partitions(since => the first month) makes {made} month partitions")
    for table in ("usage", "outcomes"):
        moved = [tuple(r) for r in rows(a, f"SELECT t::text FROM tokenledger.{table} t ORDER BY t.id")]
        compare_rows(f"create_partitions() moves the 1.0 rows of {table} unchanged, every column", before[table], moved,
                     "before", "after")
        wrong = [r for r in rows(a, f"""
            SELECT t.id, t.tableoid::regclass::text FROM tokenledger.{table} t
            WHERE t.tableoid::regclass::text <> 'tokenledger.{table}_' || to_char(t.occurred_at AT TIME ZONE 'UTC', 'YYYY_MM')""")]
        check(not wrong, f"every row of {table} is in its month's partition", [str(r) for r in wrong])
    compare_rows("the budgets count the moved rows once", spend,
                 [tuple(r) for r in rows(a, """SELECT budget_id, period_start::text, tokenledger.sum(spent)::text
                                               FROM tokenledger.budget_spend GROUP BY 1, 2 ORDER BY 1, 2""")],
                 "before", "after")


def main():
    admin = psycopg.connect("", autocommit=True)
    for db in (DB_A, DB_B):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
    roles_at_start = roles_snapshot(admin)
    created_roles = []
    try:
        admin.execute(f"CREATE DATABASE {DB_A}")
        a = connect(DB_A)
        step("CREATE EXTENSION tokenledger VERSION '1.0'", a.execute, "CREATE EXTENSION tokenledger VERSION '1.0'")
        rec = psycopg.connect(psycopg.conninfo.make_conninfo("", dbname=DB_A), autocommit=True)
        step("recording a ledger in 1.0", record_1_0, rec)
        rec.close()
        columns = {t: table_columns(a, t) for t, _ in USER_TABLES}
        before = data_fingerprint(a, columns)
        n_alerts = len(before["budget_alerts"])
        check(n_alerts >= 3 and len(before["budget_holds"]) >= 1
              and any(r[columns["usage"].index("cost")] is None for r in before["usage"]),
              f"the 1.0 ledger has alerts ({n_alerts}), a held reservation and an unpriced call")
        step("ALTER EXTENSION tokenledger UPDATE", a.execute, "ALTER EXTENSION tokenledger UPDATE")
        version = rows(a, "SELECT extversion FROM pg_extension WHERE extname = 'tokenledger'")[0][0]
        default = rows(a, "SELECT default_version FROM pg_available_extensions WHERE name = 'tokenledger'")[0][0]
        check(version == default, f"ALTER EXTENSION tokenledger UPDATE brings A to the default version "
                                  f"({version}, default {default})")
        after = data_fingerprint(a, columns)
        for table in before:
            compare_rows(f"the update leaves {table} as it was", before[table], after[table],
                         "A before the update", "A after the update")
        snap_a = catalog_snapshot(a)
        roles_a = roles_snapshot(a)
        partitioned_1_0(a, columns, after)
        shipped_a = {t: [tuple(r) for r in rows(a, f"SELECT x::text FROM tokenledger.{t} x WHERE shipped ORDER BY {o}")]
                     for t, o in (("prices", "id"), ("model_aliases", "provider, alias"))}
        a.close()

        # roles the update created are dropped (with A) before B installs, so
        # that B creates them too and both creations can be compared
        created_roles = [k.split(" ", 1)[1] for k in roles_a if k.startswith("role ") and k not in roles_at_start]
        if created_roles:
            admin.execute(f"DROP DATABASE {DB_A} WITH (FORCE)")
            for r in created_roles:
                admin.execute(f'DROP ROLE IF EXISTS "{r}"')
            comment(f"the update created {', '.join(created_roles)}: dropped with A, for B to create them again")
        elif [k for k in roles_a if k.startswith("role ")]:
            comment("tokenledger_* roles existed before the test: both databases see the same roles")
        else:
            comment("no tokenledger_* roles")

        admin.execute(f"CREATE DATABASE {DB_B}")
        b = connect(DB_B)
        step("CREATE EXTENSION tokenledger (1.1)", b.execute, "CREATE EXTENSION tokenledger")
        snap_b = catalog_snapshot(b)
        roles_b = roles_snapshot(b)
        shipped_b = {t: [tuple(r) for r in rows(b, f"SELECT x::text FROM tokenledger.{t} x WHERE shipped ORDER BY {o}")]
                     for t, o in (("prices", "id"), ("model_aliases", "provider, alias"))}
        b.close()

        covered = ["table tokenledger.usage", "table tokenledger.usage_default", "table tokenledger.outcomes_default",
                   "table tokenledger.usage_request_ids", "table tokenledger.outcome_external_refs",
                   "schema tokenledger_archive", "table tokenledger_archive.usage", "table tokenledger_archive.outcomes",
                   "table tokenledger_archive.usage_default", "view tokenledger_archive.all_usage",
                   "view tokenledger_archive.all_outcomes"]
        missing = [k for k in covered if k not in snap_a or k not in snap_b]
        check(not missing, "the comparison covers the partitions, the key tables and the archive schema", missing)
        check(len(snap_a) > 100 and len(snap_b) > 100,
              f"the catalogs were read ({len(snap_a)} objects in A, {len(snap_b)} in B)")
        differing = compare_snapshots(snap_a, snap_b, "same object")
        differing += compare_snapshots(roles_a, roles_b, "same role")
        comment(f"{differing} of {len(set(snap_a) | set(snap_b) | set(roles_a) | set(roles_b))} objects differ")
        for t in shipped_a:
            compare_rows(f"the shipped rows of {t} are the same, ids included", shipped_a[t], shipped_b[t],
                         "updated 1.0", "new 1.1")
    except Failed:
        pass
    finally:
        for db in (DB_A, DB_B):
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        # leave the cluster's roles as they were found
        for key in roles_snapshot(admin):
            if key.startswith("role ") and key not in roles_at_start:
                try:
                    admin.execute(f'DROP ROLE "{key.split(" ", 1)[1]}"')
                except psycopg.Error:
                    pass
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
