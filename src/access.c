/*
 * access.c
 *		Who may do what: the roles' view of the ledger and the functions that
 *		act for the calling role.
 *
 * - ledger_privileged: the table's owner (or a superuser) writes the
 *	 columns the insert path otherwise sets itself (a restore does);
 * - ledger_row_restored: a row recorded in another transaction, brought
 *	 back by a restore, is kept as it is and not counted again;
 * - team_visible(team): whether the calling role sees a row of a team, the
 *	 row-level security policies of the ledger and its rollups (a function
 *	 call, not a subquery, so that a policy can be distributed with its
 *	 table: see the README's Citus section); visible_teams(), the same as
 *	 an array; budget_visible() for budget_status and budget_position (a
 *	 budget's spend is its teams');
 * - budget_reserve() and budget_release() run their SQL as the extension's
 *	 owner, telling it which role called: a reservation is released only by
 *	 the role that took it (or a role with its rights, or an admin).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "nodes/pg_list.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "tokenledger.h"
#include "ledger.h"

/* the role whose members see every team and write the catalog */
#define ADMIN_ROLE "tokenledger_admin"

bool
ledger_privileged(Relation rel)
{
	return has_privs_of_role(GetUserId(), rel->rd_rel->relowner);
}

/*
 * Rows recorded now carry this transaction's start time (the default, or
 * what the insert trigger sets); a row that carries another time was
 * recorded before, elsewhere, and is being restored.  A row that a shard
 * (a foreign partition) recorded carries the shard's time: it is new.
 */
bool
ledger_row_restored(Relation rel, TimestampTz recorded_at)
{
	return rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE &&
		   recorded_at != GetCurrentTransactionStartTimestamp();
}

/*
 * The teams whose ledger rows the current role sees: *all for every team
 * (superusers, the extension's owner, admins and '*' members), else those
 * team_members lists for it or for a role whose rights it has.
 */
static List *
caller_teams(bool *all)
{
	const LedgerOids *o = ledger_oids();
	Oid               user = GetUserId();
	Oid               admin = get_role_oid(ADMIN_ROLE, true);
	Oid               relid;
	Relation          rel;
	TableScanDesc     scan;
	HeapTuple         tup;
	TupleDesc         desc;
	int               role_att;
	int               team_att;
	List             *teams = NIL;

	*all =
		has_privs_of_role(user, o->owner) || (OidIsValid(admin) && has_privs_of_role(user, admin));
	relid = get_relname_relid("team_members", o->nsp);
	if (*all || !OidIsValid(relid))
		return NIL;
	rel = table_open(citus_rows_relid(relid), AccessShareLock);
	desc = RelationGetDescr(rel);
	role_att = SPI_fnumber(desc, "role_name");
	team_att = SPI_fnumber(desc, "team");
	if (role_att <= 0 || team_att <= 0)
		elog(ERROR, "tokenledger.team_members lacks its columns");
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (!*all && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool  isnull;
		Datum role = heap_getattr(tup, role_att, desc, &isnull);
		Datum team;
		Oid   member;

		if (isnull)
			continue;
		member = get_role_oid(TextDatumGetCString(role), true);
		if (!OidIsValid(member) || !has_privs_of_role(user, member))
			continue;
		team = heap_getattr(tup, team_att, desc, &isnull);
		if (isnull)
			continue;
		if (strcmp(TextDatumGetCString(team), "*") == 0)
			*all = true;
		else
			teams = lappend(teams, TextDatumGetCString(team));
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return teams;
}

/* visible_teams(): caller_teams as text[]; '{*}' for every team */
PG_FUNCTION_INFO_V1(visible_teams);
Datum
visible_teams(PG_FUNCTION_ARGS)
{
	bool      all;
	List     *teams = caller_teams(&all);
	Datum    *elems;
	int       n = 0;
	ListCell *lc;

	if (all)
	{
		Datum star = CStringGetTextDatum("*");

		PG_RETURN_ARRAYTYPE_P(construct_array(&star, 1, TEXTOID, -1, false, TYPALIGN_INT));
	}
	elems = palloc(Max(1, list_length(teams)) * sizeof(Datum));
	foreach (lc, teams)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* what team_visible() knows of the calling role, for one query */
typedef struct VisibleTeams
{
	Oid    user;
	bool   all;
	int    n;
	char **teams;
} VisibleTeams;

/*
 * team_visible(team): whether the current role sees the ledger rows of a
 * team (NULL: rows with no team, seen only by those that see every team).
 * The policies call it for every row: the role's teams are read on the
 * first call of a query and kept with the call site until the query ends,
 * as the subquery of an InitPlan would be.
 */
PG_FUNCTION_INFO_V1(team_visible);
Datum
team_visible(PG_FUNCTION_ARGS)
{
	VisibleTeams *v = (VisibleTeams *) fcinfo->flinfo->fn_extra;
	text         *team;

	if (v == NULL || v->user != GetUserId())
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		bool          all;
		List         *teams;
		ListCell     *lc;

		if (v == NULL)
			v = palloc0(sizeof(VisibleTeams));
		MemoryContextSwitchTo(old);
		teams = caller_teams(&all);
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		v->user = GetUserId();
		v->all = all;
		v->n = 0;
		v->teams = palloc(Max(1, list_length(teams)) * sizeof(char *));
		foreach (lc, teams)
			v->teams[v->n++] = pstrdup((char *) lfirst(lc));
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = v;
	}
	if (v->all)
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	team = PG_GETARG_TEXT_PP(0);
	for (int i = 0; i < v->n; i++)
	{
		size_t len = strlen(v->teams[i]);

		if (len == VARSIZE_ANY_EXHDR(team) && memcmp(v->teams[i], VARDATA_ANY(team), len) == 0)
			PG_RETURN_BOOL(true);
	}
	PG_RETURN_BOOL(false);
}

/*
 * Whether the current role sees a budget's spend: every budget for those
 * that see every team; otherwise a budget of one of its teams (scope team,
 * or an initiative of that team).  Budgets of other scopes (global, a
 * principal, a key, an app) sum spend across teams: only the former see them.
 */
bool
caller_sees_budget(int64 budget_id)
{
	static KeptPlan plan;
	bool            all;
	List           *teams = caller_teams(&all);
	const Oid       argtypes[1] = {INT8OID};
	Datum           args[1];
	OwnerSql        owner;
	char           *team = NULL;
	ListCell       *lc;

	if (all)
		return true;
	if (teams == NIL)
		return false;
	args[0] = Int64GetDatum(budget_id);
	owner_sql_begin(&owner);
	if (SPI_execute_plan(
			owner_sql_plan(
				&plan,
				"SELECT CASE b.scope WHEN 'team' THEN b.scope_value"
				"       WHEN 'initiative' THEN (SELECT i.team FROM tokenledger.initiatives i"
				"                               WHERE i.name OPERATOR(pg_catalog.=) b.scope_value)"
				"       END"
				" FROM tokenledger.budgets b WHERE b.id OPERATOR(pg_catalog.=) $1",
				1, argtypes),
			args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read budget " INT64_FORMAT, budget_id);
	if (SPI_processed == 1)
	{
		bool  isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			team = TextDatumGetCString(d); /* palloc'd in the caller's context */
	}
	owner_sql_end(&owner);
	if (team == NULL)
		return false;
	foreach (lc, teams)
		if (strcmp((char *) lfirst(lc), team) == 0)
			return true;
	return false;
}

/* budget_visible(budget_id): caller_sees_budget, for the views */
PG_FUNCTION_INFO_V1(budget_visible);
Datum
budget_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(caller_sees_budget(PG_GETARG_INT64(0)));
}

/*
 * Call a function of the internal SQL as the extension's owner, with the
 * calling role as its first argument and this function's arguments after
 * it; returns its result (a by-value type or one of fixed length typlen).
 */
static Datum
call_for_caller(FunctionCallInfo fcinfo, KeptPlan *plan, const char *sql, const Oid *argtypes,
				int typlen, bool typbyval, bool *isnull)
{
	Oid      caller = GetUserId();
	int      nargs = PG_NARGS();
	Datum    args[FUNC_MAX_ARGS];
	char     nulls[FUNC_MAX_ARGS];
	OwnerSql owner;
	Datum    result;

	Assert(nargs + 1 <= FUNC_MAX_ARGS);
	args[0] = ObjectIdGetDatum(caller);
	nulls[0] = ' ';
	for (int i = 0; i < nargs; i++)
	{
		args[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	owner_sql_begin(&owner);
	if (SPI_execute_plan(owner_sql_plan(plan, sql, nargs + 1, argtypes), args, nulls, false, 1) !=
			SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "tokenledger: internal call failed: %s", sql);
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (!*isnull)
		result = SPI_datumTransfer(result, typbyval, typlen);
	owner_sql_end(&owner);
	return result;
}

/* budget_reserve(team, initiative, principal, api_key, app, estimate, ttl) */
PG_FUNCTION_INFO_V1(budget_reserve);
Datum
budget_reserve(PG_FUNCTION_ARGS)
{
	static KeptPlan plan;
	const Oid       argtypes[8] = {
			  OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, ledger_oids()->cost_type, INTERVALOID};
	bool  isnull;
	Datum d;

	if (PG_NARGS() != 7)
		elog(ERROR, "budget_reserve: wrong number of arguments");
	d = call_for_caller(fcinfo, &plan,
						"SELECT tokenledger.budget_reserve_for($1, $2, $3, $4, $5, $6, $7, $8)",
						argtypes, UUID_LEN, false, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}

/* budget_release(reservation) */
PG_FUNCTION_INFO_V1(budget_release);
Datum
budget_release(PG_FUNCTION_ARGS)
{
	static KeptPlan plan;
	const Oid       argtypes[2] = {OIDOID, UUIDOID};
	bool            isnull;
	Datum           d;

	if (PG_NARGS() != 1)
		elog(ERROR, "budget_release: wrong number of arguments");
	d = call_for_caller(fcinfo, &plan, "SELECT tokenledger.budget_release_for($1, $2)", argtypes, 1,
						true, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}
