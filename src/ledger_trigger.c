/*
 * ledger_trigger.c
 *		The triggers of the ledger tables usage and outcomes.
 *
 * usage_before (BEFORE INSERT OR UPDATE, per row):
 *	- on INSERT it validates the row, prices it from the catalog unless a
 *	  cost is given (recording price_id), keeps an explicit initiative/team,
 *	  else applies the first matching attribution rule, else marks the row
 *	  unattributed; fills team from the initiative, registers unknown
 *	  initiatives.  A given cost is kept.  Only the table's owner (the
 *	  extension's own functions, a restore) may give the columns the trigger
 *	  sets: entries other than calls, price_id, attribution, recorded_at;
 *	  a row whose recorded_at is not now is a restored row, kept as it is;
 *	- on UPDATE it allows one thing only: filling the cost of a row that has
 *	  none (what reprice() does), with the catalog's price.
 * outcome_before (BEFORE INSERT, per row): registers unknown initiatives and
 *	values the outcome at quantity x value_per_outcome when no value is given
 *	(restored rows, again, are kept as they are).
 * append_only (BEFORE UPDATE, DELETE or TRUNCATE, per statement; BEFORE
 *	DELETE or UPDATE per row, which partitions inherit): refuses (an UPDATE
 *	by the table's owner passes when the trigger has an argument), even when
 *	no row would be touched; create_partitions() moving rows is let through.
 *
 * Both insert triggers write the row's idempotency key into its key table
 * (register_key), refuse an infinite occurred_at, take the ledger's lock
 * when fired on a partition straight, and, with tokenledger.replays = skip,
 * leave out a replay of a recorded key (replayed).  On a foreign partition
 * (a shard) they only register the key: the shard records the row.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/tupconvert.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "lib/stringinfo.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "common/hashfn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "tokenledger.h"
#include "ledger.h"

PGDLLEXPORT Datum cost_out(PG_FUNCTION_ARGS);

/* the usage columns the trigger reads or writes */
enum
{
	U_OCCURRED_AT,
	U_RECORDED_AT,
	U_PROVIDER,
	U_MODEL,
	U_SERVICE_TIER,
	U_TOKENS,
	U_REQUESTS,
	U_COST,
	U_PRICE_ID,
	U_TEAM,
	U_INITIATIVE,
	U_PRINCIPAL,
	U_API_KEY,
	U_APP,
	U_TAGS,
	U_ATTRIBUTION,
	U_ENTRY,
	U_ID,
	U_REQUEST_ID,
	U_NCOLS
};

static const char *const usage_columns[U_NCOLS] = {
	"occurred_at", "recorded_at", "provider", "model",      "service_tier", "tokens",  "requests",
	"cost",        "price_id",    "team",     "initiative", "principal",    "api_key", "app",
	"tags",        "attribution", "entry",    "id",         "request_id"};

enum
{
	O_INITIATIVE,
	O_QUANTITY,
	O_VALUE,
	O_ATTRIBUTES,
	O_RECORDED_AT,
	O_ID,
	O_OCCURRED_AT,
	O_EXTERNAL_REF,
	O_NCOLS
};

static const char *const outcome_columns[O_NCOLS] = {"initiative",  "quantity",    "value",
													 "attributes",  "recorded_at", "id",
													 "occurred_at", "external_ref"};

/* '{}' */
static Datum
empty_jsonb_object(void)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
}

/*
 * Column numbers (0-based) by name, cached per relation and rebuilt when the
 * row type differs (partitions may differ from their parent).
 */
void
map_columns(ColumnMap *map, Relation rel, const char *const *names, int n)
{
	TupleDesc desc = RelationGetDescr(rel);

	Assert(n <= COLUMN_MAP_MAX);
	if (map->relid == RelationGetRelid(rel) && map->natts == desc->natts)
		return;
	for (int i = 0; i < n; i++)
	{
		int attno = SPI_fnumber(desc, names[i]);

		if (attno <= 0)
			ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
							errmsg("table \"%s\" has no column \"%s\"",
								   RelationGetRelationName(rel), names[i])));
		map->attno[i] = attno - 1;
	}
	map->relid = RelationGetRelid(rel);
	map->natts = desc->natts;
}

/* a text column's value, or NULL for SQL NULL */
char *
text_or_null(Datum *values, bool *nulls, int col)
{
	return nulls[col] ? NULL : TextDatumGetCString(values[col]);
}

static void
set_text(Datum *values, bool *nulls, bool *repl, int col, const char *s)
{
	values[col] = s ? CStringGetTextDatum(s) : (Datum) 0;
	nulls[col] = (s == NULL);
	repl[col] = true;
}

/*
 * The ledger table a row is refused from: for a partition, the table the
 * user knows (usage, outcomes), not the month it landed in.
 */
static const char *
ledger_name(Relation rel)
{
	if (rel->rd_rel->relispartition)
	{
		List *ancestors = get_partition_ancestors(RelationGetRelid(rel));
		char *name = get_rel_name(llast_oid(ancestors));

		if (name != NULL)
			return name;
	}
	return RelationGetRelationName(rel);
}

/*
 * A column the insert path sets itself, given by a role that is not the
 * table's owner: refused, naming the column and the value.
 */
static void
refuse_given(Relation rel, const char *column, const char *value, const char *hint)
{
	ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					errmsg("%s of \"%s\" is set by tokenledger, not by the inserting role: %s",
						   column, ledger_name(rel), value),
					errhint("%s", hint)));
}

/*
 * Whether a row carries a recorded_at of another transaction (a restored
 * row); refused unless the inserting role owns the table.
 */
static bool
restored_row(Relation rel, Datum recorded_at, bool isnull)
{
	if (isnull || !ledger_row_restored(rel, DatumGetTimestampTz(recorded_at)))
		return false;
	if (!ledger_privileged(rel))
		refuse_given(rel, "recorded_at",
					 DatumGetCString(DirectFunctionCall1(timestamptz_out, recorded_at)),
					 "Leave recorded_at out: it is the time of recording; occurred_at is the "
					 "time of the call.");
	return true;
}

/*
 * Refuse an api_key that looks like a secret key rather than a key's id or
 * name: a known secret prefix followed by a long token.
 */
static void
check_api_key(const char *key)
{
	static const char *const prefixes[] = {"sk-",  "sk_",   "rk-",    "rk_",  "AIza",
										   "AKIA", "ASIA",  "xai-",   "gsk_", "hf_",
										   "r8_",  "pplx-", "nvapi-", "csk-", NULL};
	size_t                   len = strlen(key);

	if (len < 24)
		return;
	for (const char *const *p = prefixes; *p; p++)
	{
		size_t plen = strlen(*p);

		if (strncmp(key, *p, plen) == 0)
		{
			bool tokenlike = true;

			for (size_t i = plen; i < len; i++)
				if (!(isalnum((unsigned char) key[i]) || key[i] == '-' || key[i] == '_'))
					tokenlike = false;
			if (tokenlike)
				ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("api_key \"%.*s...\" looks like a secret key",
									   (int) Min(plen + 4, len), key),
								errdetail("tokenledger never stores API secrets."),
								errhint("Record the key's id or name instead (e.g. \"%s...%s\" or "
										"the provider's key id).",
										*p, key + len - 4)));
		}
	}
}

/*
 * The ledger rows' CHECK constraints (usage_row_check, outcomes_row_check),
 * one function each: a constraint is compiled for every statement that
 * inserts, so one call of C costs a fraction of five SQL expressions.  A
 * row that breaks a rule is refused with 23514 naming the column and the
 * value; NULLs pass, as they pass a CHECK (the columns are NOT NULL).
 */
static void
refuse_row(const char *table, const char *column, const char *value, const char *rule)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION), errmsg("%s.%s %s: %s", table, column, rule, value),
			 err_generic_string(PG_DIAG_TABLE_NAME, table),
			 err_generic_string(PG_DIAG_COLUMN_NAME, column),
			 err_generic_string(PG_DIAG_CONSTRAINT_NAME, psprintf("%s_row_check", table))));
}

static void
check_object(const char *table, const char *column, Jsonb *j)
{
	if (!JB_ROOT_IS_OBJECT(j))
		refuse_row(table, column, JsonbToCString(NULL, &j->root, VARSIZE(j)),
				   "must be a JSON object");
}

PG_FUNCTION_INFO_V1(usage_row_check);
Datum
usage_row_check(PG_FUNCTION_ARGS)
{
	/* requests bigint, tags jsonb, attribution text, entry text, adjusts bigint */
	if (!PG_ARGISNULL(0) && PG_GETARG_INT64(0) < 0)
		refuse_row("usage", "requests", psprintf(INT64_FORMAT, PG_GETARG_INT64(0)),
				   "cannot be negative");
	if (!PG_ARGISNULL(1))
		check_object("usage", "tags", PG_GETARG_JSONB_P(1));
	if (!PG_ARGISNULL(2))
	{
		char *a = text_to_cstring(PG_GETARG_TEXT_PP(2));
		bool  ok = strcmp(a, "explicit") == 0 || strcmp(a, "unattributed") == 0;

		if (!ok && strncmp(a, "rule:", 5) == 0 && a[5] != '\0')
		{
			ok = true;
			for (const char *d = a + 5; *d; d++)
				ok = ok && isdigit((unsigned char) *d);
		}
		if (!ok)
			refuse_row("usage", "attribution", a,
					   "must be explicit, unattributed or rule:<attribution_rules.id>");
	}
	if (!PG_ARGISNULL(3))
	{
		char *e = text_to_cstring(PG_GETARG_TEXT_PP(3));
		bool  call = strcmp(e, "call") == 0;

		if (!call && strcmp(e, "adjustment") != 0 && strcmp(e, "rerate") != 0)
			refuse_row("usage", "entry", e, "must be call, adjustment or rerate");
		if (call && !PG_ARGISNULL(4))
			refuse_row("usage", "adjusts", psprintf(INT64_FORMAT, PG_GETARG_INT64(4)),
					   "is for corrections, not calls");
		if (!call && PG_ARGISNULL(4))
			refuse_row("usage", "adjusts", "NULL",
					   psprintf("must name the call that the %s corrects", e));
	}
	PG_RETURN_BOOL(true);
}

PG_FUNCTION_INFO_V1(outcome_row_check);
Datum
outcome_row_check(PG_FUNCTION_ARGS)
{
	/* quantity numeric, attributes jsonb */
	if (!PG_ARGISNULL(0) &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, PG_GETARG_DATUM(0),
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) < 0)
		refuse_row("outcomes", "quantity",
				   DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(0))),
				   "cannot be negative");
	if (!PG_ARGISNULL(1))
		check_object("outcomes", "attributes", PG_GETARG_JSONB_P(1));
	PG_RETURN_BOOL(true);
}

/* the row's values of the columns rules match on, as C strings (NULL: none) */
typedef struct RuleSubject
{
	char *fields[4]; /* api_key, app, principal, model */
} RuleSubject;

static void
rule_subject(RuleSubject *s, Datum *values, bool *nulls)
{
	s->fields[0] = text_or_null(values, nulls, U_API_KEY);
	s->fields[1] = text_or_null(values, nulls, U_APP);
	s->fields[2] = text_or_null(values, nulls, U_PRINCIPAL);
	s->fields[3] = text_or_null(values, nulls, U_MODEL);
}

static bool
rule_matches(const CachedRule *r, const RuleSubject *s, Datum *values, bool *nulls)
{
	const char *fields[4] = {r->api_key, r->app, r->principal, r->model};

	for (int i = 0; i < 4; i++)
		if (fields[i] != NULL && (s->fields[i] == NULL || strcmp(s->fields[i], fields[i]) != 0))
			return false;
	if (r->tags != NULL)
	{
		if (nulls[U_TAGS])
			return false;
		if (!DatumGetBool(
				DirectFunctionCall2(jsonb_contains, values[U_TAGS], JsonbPGetDatum(r->tags))))
			return false;
	}
	return true;
}

static void
register_if_unknown(const char *initiative)
{
	if (initiative != NULL && catalog_initiative(initiative) == NULL)
		catalog_register_initiative(initiative);
}

/* fill team from the initiative when the row has none */
static void
fill_team(Datum *values, bool *nulls, bool *repl)
{
	char                   *initiative = text_or_null(values, nulls, U_INITIATIVE);
	const CachedInitiative *ini;

	if (initiative == NULL || !nulls[U_TEAM])
		return;
	ini = catalog_initiative(initiative);
	if (ini && ini->team)
		set_text(values, nulls, repl, U_TEAM, pstrdup(ini->team));
}

/* price the row into cost and price_id; false when no price applies */
static bool
price_row(Datum *values, bool *nulls, bool *repl)
{
	CostValue   cost;
	int64       price_id;
	TimestampTz at;

	at = nulls[U_OCCURRED_AT] ? GetCurrentTransactionStartTimestamp()
							  : DatumGetTimestampTz(values[U_OCCURRED_AT]);
	if (nulls[U_TOKENS] || nulls[U_PROVIDER] || nulls[U_MODEL] ||
		!catalog_price(
			TextDatumGetCString(values[U_PROVIDER]), TextDatumGetCString(values[U_MODEL]),
			nulls[U_SERVICE_TIER] ? "standard" : TextDatumGetCString(values[U_SERVICE_TIER]), at,
			DatumGetTokensP(values[U_TOKENS]),
			nulls[U_REQUESTS] ? 1 : DatumGetInt64(values[U_REQUESTS]), &cost, &price_id))
		return false;
	values[U_COST] = CostPGetDatum(cost_make(cost.nanos, cost.currency));
	nulls[U_COST] = false;
	repl[U_COST] = true;
	values[U_PRICE_ID] = Int64GetDatum(price_id);
	nulls[U_PRICE_ID] = false;
	repl[U_PRICE_ID] = true;
	return true;
}

/*
 * The ledger's idempotency keys live in a table of their own, beside the
 * partitioned ledger (whose unique indexes would have to include the time):
 * a row's key is written there in the row's own transaction, by its
 * trigger, and a key recorded before fails the table's unique index (23505)
 * as an index on the ledger would.  Before version 1.1 there is no such
 * table (keys is InvalidOid) and the ledger's own index does it.
 */
static void
register_key(Oid keys, Datum key, Datum id, Datum occurred_at)
{
	Relation  rel;
	Datum     values[3];
	bool      nulls[3] = {false, false, false};
	HeapTuple tup;

	if (!OidIsValid(keys))
		return;
	rel = table_open(keys, RowExclusiveLock);
	/* the key tables' columns: the key, id, occurred_at */
	values[0] = key;
	values[1] = id;
	values[2] = occurred_at;
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	CatalogTupleInsert(rel, tup);
	heap_freetuple(tup);
	table_close(rel, NoLock);
}

static Datum ledger_row(Oid ledger, int64 id, TimestampTz at, bool *found);

/*
 * A replay of a recorded key whose content differs: refused, naming the
 * key and the fields that differ, not the recorded values (the row may be
 * one the replaying role cannot read).  record_usage() and record_outcome()
 * raise it through replay_conflict(), the insert trigger directly.
 */
static void
refuse_replay(const char *what, const char *key, const char *differs)
{
	ereport(ERROR, (errcode(ERRCODE_UNIQUE_VIOLATION),
					errmsg("%s \"%s\" was already recorded with different content", what, key),
					errdetail("The replay differs in: %s.", differs),
					errhint("A replay must repeat the original; record a correction with "
							"tokenledger.adjust() instead.")));
}

/* replay_conflict(what, key, recorded, replayed): refuse_replay for the SQL functions */
PG_FUNCTION_INFO_V1(replay_conflict);
Datum
replay_conflict(PG_FUNCTION_ARGS)
{
	refuse_replay(PG_ARGISNULL(0) ? "<NULL>" : text_to_cstring(PG_GETARG_TEXT_PP(0)),
				  PG_ARGISNULL(1) ? "<NULL>" : text_to_cstring(PG_GETARG_TEXT_PP(1)),
				  PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PG_RETURN_VOID();
}

/* the row a key table names for a key: its id and occurred_at (columns 2, 3) */
static void
key_names_row(HeapTuple tup, TupleDesc desc, int64 *id, TimestampTz *at)
{
	bool isnull;

	*id = DatumGetInt64(heap_getattr(tup, 2, desc, &isnull));
	*at = DatumGetTimestampTz(heap_getattr(tup, 3, desc, &isnull));
}

/*
 * tokenledger.replays = skip: a row whose key is recorded already (by a
 * committed transaction, or by this one) is left out when it repeats the
 * recorded row's compared columns (and its given one, when given), and
 * refused with 23505 when it differs, as record_usage() does: a bulk load
 * (INSERT ... SELECT, COPY) can be replayed whole.  A key that another
 * transaction is recording is waited for.  Returns whether to leave the row
 * out.
 */
static bool
replayed(Relation rel, HeapTuple tuple, Oid ledger, Oid keys, Oid key_index, Datum key,
		 const char *keyname, const char *const *compared, int ncompared, const char *given)
{
	Relation        krel;
	bool            found = false;
	int64           id = 0;
	TimestampTz     at = 0;
	Datum           old;
	HeapTupleHeader oldhdr;
	TupleDesc       olddesc;
	HeapTupleData   oldtup;
	TupleDesc       desc = RelationGetDescr(rel);
	StringInfoData  differs;

	if (!OidIsValid(keys))
		return false;
	/*
	 * Replays of one key are taken one at a time, to the end of the
	 * transaction: between this look and the key's entry no other replay of
	 * it can slip in (a lock tag of the extension's own, not SQL's, see
	 * budget.c, keyed by the key's hash and the ledger)
	 */
	{
		LOCKTAG tag;
		uint32 h = DatumGetUInt32(hash_any((const unsigned char *) VARDATA_ANY(DatumGetTextPP(key)),
										   VARSIZE_ANY_EXHDR(DatumGetTextPP(key))));

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) ledger, h, LOCK_KIND_REPLAY);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	krel = table_open(keys, AccessShareLock);
	for (;;)
	{
		SnapshotData    dirty;
		ScanKeyData     skey;
		SysScanDesc     scan;
		HeapTuple       tup;
		TransactionId   xwait = InvalidTransactionId;
		ItemPointerData tid;

		InitDirtySnapshot(dirty);
		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, key);
		scan = systable_beginscan(krel, key_index, true, &dirty, 1, &skey);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			tid = tup->t_self;
			xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
			if (!TransactionIdIsValid(xwait))
			{
				found = true;
				key_names_row(tup, RelationGetDescr(krel), &id, &at);
			}
		}
		systable_endscan(scan);
		if (!TransactionIdIsValid(xwait))
			break;
		XactLockTableWait(xwait, krel, &tid, XLTW_InsertIndex);
	}
	table_close(krel, AccessShareLock);
	if (!found)
		return false;

	old = ledger_row(ledger, id, at, &found);
	if (!found)
		return true; /* a month dropped from the archive: recorded once, ever */
	oldhdr = DatumGetHeapTupleHeader(old);
	olddesc =
		lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(oldhdr), HeapTupleHeaderGetTypMod(oldhdr));
	oldtup.t_len = HeapTupleHeaderGetDatumLength(oldhdr);
	ItemPointerSetInvalid(&oldtup.t_self);
	oldtup.t_tableOid = InvalidOid;
	oldtup.t_data = oldhdr;
	initStringInfo(&differs);
	for (int i = 0; i <= ncompared; i++)
	{
		const char *col = i < ncompared ? compared[i] : given;
		int         attno = SPI_fnumber(desc, col);
		int         oldattno = SPI_fnumber(olddesc, col);
		char       *a = SPI_getvalue(tuple, desc, attno);
		char       *b = SPI_getvalue(&oldtup, olddesc, oldattno);

		if (i == ncompared && a == NULL)
			continue;
		if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
			appendStringInfo(&differs, "%s%s", differs.len > 0 ? ", " : "", col);
	}
	ReleaseTupleDesc(olddesc);
	if (differs.len > 0)
		refuse_replay(keyname, TextDatumGetCString(key), differs.data);
	return true;
}

/*
 * A call or an outcome happened at a time: infinity and -infinity are
 * refused (no month holds them, and the reports' day arithmetic cannot).
 */
static void
check_finite(Relation rel, Datum at, bool isnull)
{
	if (!isnull && TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(at)))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("occurred_at of \"%s\" must be a finite time, not %s", ledger_name(rel),
						DatumGetCString(DirectFunctionCall1(timestamptz_out, at))),
				 errhint("Give the time the call or outcome happened, or leave occurred_at out "
						 "(now).")));
}

/*
 * A row inserted straight into a partition (not through the ledger) takes
 * the lock on the ledger that recorders hold, so that the recounts, which
 * lock the ledger against recorders, wait for it too.
 */
static void
lock_ledger(Relation rel, Oid ledger)
{
	if (RelationGetRelid(rel) != ledger)
		LockRelationOid(ledger, RowExclusiveLock);
}

/* a partition that is a foreign table: the ledger of another server (a shard) */
static bool
on_shard(Relation rel)
{
	return rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE;
}

static HeapTuple
usage_insert(Relation rel, HeapTuple tuple, ColumnMap *map)
{
	TupleDesc desc = RelationGetDescr(rel);
	int       natts = desc->natts;
	Datum    *all_values = palloc(natts * sizeof(Datum));
	bool     *all_nulls = palloc(natts * sizeof(bool));
	Datum     values[U_NCOLS];
	bool      nulls[U_NCOLS];
	bool      repl[U_NCOLS] = {false};
	char     *entry;
	char     *api_key;
	int       cols[U_NCOLS];
	Datum     new_values[U_NCOLS];
	bool      new_nulls[U_NCOLS];
	int       nrepl = 0;

	heap_deform_tuple(tuple, desc, all_values, all_nulls);
	for (int i = 0; i < U_NCOLS; i++)
	{
		values[i] = all_values[map->attno[i]];
		nulls[i] = all_nulls[map->attno[i]];
	}

	entry = text_or_null(values, nulls, U_ENTRY);
	if (entry == NULL)
	{
		entry = "call";
		set_text(values, nulls, repl, U_ENTRY, entry);
	}
	api_key = text_or_null(values, nulls, U_API_KEY);
	if (api_key)
		check_api_key(api_key);
	/* no tags is no tags: an ETL that writes NULL for them loses nothing */
	if (nulls[U_TAGS])
	{
		values[U_TAGS] = empty_jsonb_object();
		nulls[U_TAGS] = false;
		repl[U_TAGS] = true;
	}

	/*
	 * A row for a shard is priced, attributed and stamped there, by the
	 * shard's own trigger: it goes with no recorded_at, which the shard sets
	 * (and its cost, team and attribution come back to this server's AFTER
	 * triggers with it).  Its key is registered here, where every shard's
	 * keys are.
	 */
	if (on_shard(rel))
	{
		register_if_unknown(text_or_null(values, nulls, U_INITIATIVE));
		nulls[U_RECORDED_AT] = true;
		repl[U_RECORDED_AT] = true;
		goto done;
	}

	/* a restored row comes back as it was recorded: not priced, attributed or counted again */
	if (restored_row(rel, values[U_RECORDED_AT], nulls[U_RECORDED_AT]))
		goto done;
	check_finite(rel, values[U_OCCURRED_AT], nulls[U_OCCURRED_AT]);

	/*
	 * Corrections, prices and attributions are the extension's to record:
	 * from any other role a row is a call, priced and attributed here.
	 */
	if ((strcmp(entry, "call") != 0 || !nulls[U_PRICE_ID] || !nulls[U_ATTRIBUTION]) &&
		!ledger_privileged(rel))
	{
		if (strcmp(entry, "call") != 0)
			refuse_given(rel, "entry", entry,
						 "Record corrections with tokenledger.adjust(usage_id, delta, reason) or "
						 "tokenledger.rerate().");
		if (!nulls[U_PRICE_ID])
			refuse_given(rel, "price_id",
						 DatumGetCString(DirectFunctionCall1(int8out, values[U_PRICE_ID])),
						 "Leave price_id out: the catalog prices the call, or give its cost.");
		refuse_given(rel, "attribution", text_or_null(values, nulls, U_ATTRIBUTION),
					 "Leave attribution out: give initiative or team, or let the attribution "
					 "rules decide.");
	}

	/* a call costs something or nothing: credits are corrections (adjust()) */
	if (strcmp(entry, "call") == 0 && !nulls[U_COST] && DatumGetCostP(values[U_COST])->nanos < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a call's cost cannot be negative: %s",
						DatumGetCString(DirectFunctionCall1(cost_out, values[U_COST]))),
				 errhint("Record a credit or refund as a correction: tokenledger.adjust(usage_id, "
						 "delta, reason).")));

	/*
	 * The catalog prices calls that come without a cost.  A row that carries
	 * its cost keeps it, with the price_id it came with (normally none; a
	 * restored row's own).
	 */
	if (strcmp(entry, "call") == 0 && nulls[U_COST])
	{
		if (!price_row(values, nulls, repl))
		{
			nulls[U_PRICE_ID] = true;
			repl[U_PRICE_ID] = true;
		}
	}

	/*
	 * Attribution, unless the row carries one (adjustments copy the
	 * original's; restored rows their own): an explicit initiative or team,
	 * else the first matching rule, else none.
	 */
	if (nulls[U_ATTRIBUTION])
	{
		const char *attribution = "unattributed";
		char        buf[32];

		if (!nulls[U_INITIATIVE] || !nulls[U_TEAM])
			attribution = "explicit";
		else if (strcmp(entry, "call") == 0)
		{
			int               n;
			const CachedRule *rules = catalog_rules(&n);
			RuleSubject       subject;

			rule_subject(&subject, values, nulls);
			for (int i = 0; i < n; i++)
			{
				if (!rule_matches(&rules[i], &subject, values, nulls))
					continue;
				if (rules[i].initiative)
					set_text(values, nulls, repl, U_INITIATIVE, pstrdup(rules[i].initiative));
				if (rules[i].team)
					set_text(values, nulls, repl, U_TEAM, pstrdup(rules[i].team));
				snprintf(buf, sizeof(buf), "rule:" INT64_FORMAT, rules[i].id);
				attribution = buf;
				break;
			}
		}
		set_text(values, nulls, repl, U_ATTRIBUTION, pstrdup(attribution));
	}

	register_if_unknown(text_or_null(values, nulls, U_INITIATIVE));
	fill_team(values, nulls, repl);

	if (nulls[U_RECORDED_AT])
	{
		values[U_RECORDED_AT] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		nulls[U_RECORDED_AT] = false;
		repl[U_RECORDED_AT] = true;
	}

done:
	if (!nulls[U_REQUEST_ID] && !nulls[U_ID] && !nulls[U_OCCURRED_AT])
		register_key(ledger_oids()->usage_keys, values[U_REQUEST_ID], values[U_ID],
					 values[U_OCCURRED_AT]);
	for (int i = 0; i < U_NCOLS; i++)
		if (repl[i])
		{
			cols[nrepl] = map->attno[i] + 1;
			new_values[nrepl] = values[i];
			new_nulls[nrepl] = nulls[i];
			nrepl++;
		}
	return heap_modify_tuple_by_cols(tuple, desc, nrepl, cols, new_values, new_nulls);
}

static void
refuse_change(Relation rel, const char *what)
{
	ereport(
		ERROR,
		(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		 errmsg("%s of \"%s\" is not allowed: the ledger is append-only", what, ledger_name(rel)),
		 errhint("Record a correction instead: tokenledger.adjust(usage_id, delta, reason).")));
}

/*
 * UPDATE of usage: only filling a missing cost from the catalog, with every
 * other column unchanged.  Returns the row to store, or NULL to skip it when
 * no price applies yet.
 */
static HeapTuple
usage_update(Relation rel, HeapTuple oldtup, HeapTuple newtup, ColumnMap *map)
{
	TupleDesc desc = RelationGetDescr(rel);
	int       natts = desc->natts;
	Datum    *ov = palloc(natts * sizeof(Datum));
	bool     *on = palloc(natts * sizeof(bool));
	Datum    *nv = palloc(natts * sizeof(Datum));
	bool     *nn = palloc(natts * sizeof(bool));
	Datum     values[U_NCOLS];
	bool      nulls[U_NCOLS];
	bool      repl[U_NCOLS] = {false};
	char     *entry;
	int       cols[2];
	Datum     new_values[2];
	bool      new_nulls[2] = {false, false};

	heap_deform_tuple(oldtup, desc, ov, on);
	heap_deform_tuple(newtup, desc, nv, nn);
	entry = on[map->attno[U_ENTRY]] ? NULL : TextDatumGetCString(ov[map->attno[U_ENTRY]]);
	if (!on[map->attno[U_COST]] || entry == NULL || strcmp(entry, "call") != 0)
		refuse_change(rel, "UPDATE");
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || i == map->attno[U_COST] || i == map->attno[U_PRICE_ID])
			continue;
		if (on[i] != nn[i] || (!on[i] && !datumIsEqual(ov[i], nv[i], att->attbyval, att->attlen)))
			refuse_change(rel, "UPDATE");
	}

	for (int i = 0; i < U_NCOLS; i++)
	{
		values[i] = ov[map->attno[i]];
		nulls[i] = on[map->attno[i]];
	}
	if (!price_row(values, nulls, repl))
		return NULL;
	cols[0] = map->attno[U_COST] + 1;
	new_values[0] = values[U_COST];
	cols[1] = map->attno[U_PRICE_ID] + 1;
	new_values[1] = values[U_PRICE_ID];
	return heap_modify_tuple_by_cols(oldtup, desc, 2, cols, new_values, new_nulls);
}

/* BEFORE INSERT OR UPDATE trigger of usage */
PG_FUNCTION_INFO_V1(usage_before);
Datum
usage_before(PG_FUNCTION_ARGS)
{
	static ColumnMap map = {InvalidOid, 0, {0}};
	TriggerData     *trigdata = (TriggerData *) fcinfo->context;
	Relation         rel;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "usage_before: must be fired before, for each row");
	rel = trigdata->tg_relation;
	map_columns(&map, rel, usage_columns, U_NCOLS);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		const LedgerOids *o = ledger_oids();

		lock_ledger(rel, o->usage);
		if (tokenledger_replays == REPLAYS_SKIP)
		{
			static const char *const compared[] = {"provider", "model", "service_tier", "tokens"};
			bool                     no_key;
			Datum                    key;

			key = heap_getattr(trigdata->tg_trigtuple, map.attno[U_REQUEST_ID] + 1,
							   RelationGetDescr(rel), &no_key);
			if (!no_key &&
				replayed(rel, trigdata->tg_trigtuple, o->usage, o->usage_keys, o->usage_request_key,
						 key, "request_id", compared, lengthof(compared), "cost"))
				return PointerGetDatum(NULL);
		}
		return PointerGetDatum(usage_insert(rel, trigdata->tg_trigtuple, &map));
	}
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return PointerGetDatum(
			usage_update(rel, trigdata->tg_trigtuple, trigdata->tg_newtuple, &map));
	refuse_change(rel, "DELETE");
	return PointerGetDatum(NULL);
}

/* BEFORE INSERT trigger of outcomes */
PG_FUNCTION_INFO_V1(outcome_before);
Datum
outcome_before(PG_FUNCTION_ARGS)
{
	static ColumnMap map = {InvalidOid, 0, {0}};
	static Oid       team_rel = InvalidOid;
	static int       team_natts = 0;
	static int       team_att = 0; /* 0: no team column (a table of 1.0) */
	TriggerData     *trigdata = (TriggerData *) fcinfo->context;
	Relation         rel;
	TupleDesc        desc;
	HeapTuple        tuple;
	bool             isnull;
	Datum            d;
	char            *initiative;
	int              cols[4];
	Datum            values[4];
	bool             nulls[4] = {false, false, false, false};
	int              n = 0;
	bool             restored;
	Datum            key;
	Datum            id;
	Datum            at;
	bool             no_key;
	bool             no_id;
	bool             no_at;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "outcome_before: must be fired before insert, for each row");
	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	tuple = trigdata->tg_trigtuple;
	map_columns(&map, rel, outcome_columns, O_NCOLS);
	if (team_rel != map.relid || team_natts != map.natts)
	{
		team_att = Max(SPI_fnumber(desc, "team"), 0);
		team_rel = map.relid;
		team_natts = map.natts;
	}
	lock_ledger(rel, ledger_oids()->outcomes);

	key = heap_getattr(tuple, map.attno[O_EXTERNAL_REF] + 1, desc, &no_key);
	if (tokenledger_replays == REPLAYS_SKIP && !no_key)
	{
		static const char *const compared[] = {"initiative", "metric", "quantity"};
		const LedgerOids        *o = ledger_oids();

		if (replayed(rel, tuple, o->outcomes, o->outcome_keys, o->outcomes_external_key, key,
					 "external_ref", compared, lengthof(compared), "value"))
			return PointerGetDatum(NULL);
	}
	id = heap_getattr(tuple, map.attno[O_ID] + 1, desc, &no_id);
	at = heap_getattr(tuple, map.attno[O_OCCURRED_AT] + 1, desc, &no_at);
	if (!no_key && !no_id && !no_at)
		register_key(ledger_oids()->outcome_keys, key, id, at);

	/* a shard values and stamps its outcomes itself (see usage_insert) */
	if (on_shard(rel))
	{
		d = heap_getattr(tuple, map.attno[O_INITIATIVE] + 1, desc, &isnull);
		if (!isnull)
			register_if_unknown(TextDatumGetCString(d));
		cols[n] = map.attno[O_RECORDED_AT] + 1;
		nulls[n++] = true;
		return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, n, cols, values, nulls));
	}

	d = heap_getattr(tuple, map.attno[O_RECORDED_AT] + 1, desc, &isnull);
	restored = restored_row(rel, d, isnull);
	if (!restored)
		check_finite(rel, at, no_at);
	if (isnull)
	{
		cols[n] = map.attno[O_RECORDED_AT] + 1;
		values[n++] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	}
	d = heap_getattr(tuple, map.attno[O_INITIATIVE] + 1, desc, &isnull);
	initiative = isnull ? NULL : TextDatumGetCString(d);
	if (!restored)
		register_if_unknown(initiative);

	/* the team: as given, else the initiative's */
	if (team_att > 0 && initiative != NULL && !restored)
	{
		(void) heap_getattr(tuple, team_att, desc, &isnull);
		if (isnull)
		{
			const CachedInitiative *ini = catalog_initiative(initiative);

			if (ini && ini->team)
			{
				cols[n] = team_att;
				values[n++] = CStringGetTextDatum(ini->team);
			}
		}
	}

	(void) heap_getattr(tuple, map.attno[O_VALUE] + 1, desc, &isnull);
	if (isnull && initiative != NULL && !restored)
	{
		const CachedInitiative *ini = catalog_initiative(initiative);
		Datum                   q = heap_getattr(tuple, map.attno[O_QUANTITY] + 1, desc, &isnull);

		if (ini && ini->has_value && !isnull)
		{
			CostValue per = ini->value_per_outcome;

			cols[n] = map.attno[O_VALUE] + 1;
			values[n++] = CostPGetDatum(cost_times_numeric(&per, DatumGetNumeric(q)));
		}
	}
	(void) heap_getattr(tuple, map.attno[O_ATTRIBUTES] + 1, desc, &isnull);
	if (isnull)
	{
		cols[n] = map.attno[O_ATTRIBUTES] + 1;
		values[n++] = empty_jsonb_object();
	}
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, n, cols, values, nulls));
}

/*
 * BEFORE INSERT, per row, on tables whose rows carry the time they were
 * recorded (the trigger's argument names the column): only the table's
 * owner gives one of another transaction, and such a row is a restored one,
 * which the recount triggers leave alone.
 */
PG_FUNCTION_INFO_V1(restored_guard);
Datum
restored_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation     rel;
	int          attno;
	bool         isnull;
	Datum        d;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || trigdata->tg_trigger->tgnargs != 1)
		elog(ERROR, "restored_guard: must be fired before insert, for each row, with a column");
	rel = trigdata->tg_relation;
	attno = SPI_fnumber(RelationGetDescr(rel), trigdata->tg_trigger->tgargs[0]);
	if (attno <= 0)
		elog(ERROR, "restored_guard: no column \"%s\"", trigdata->tg_trigger->tgargs[0]);
	d = heap_getattr(trigdata->tg_trigtuple, attno, RelationGetDescr(rel), &isnull);
	if (!isnull && ledger_row_restored(rel, DatumGetTimestampTz(d)) && !ledger_privileged(rel))
		refuse_given(rel, trigdata->tg_trigger->tgargs[0],
					 DatumGetCString(DirectFunctionCall1(timestamptz_out, d)),
					 "Leave it out: it is the time the row is recorded.");
	return PointerGetDatum(trigdata->tg_trigtuple);
}

/*
 * Rows leave the ledger in one case: create_partitions() moves the rows a
 * default partition holds for a month into the month's new partition (they
 * go back in through the ledger, as restored rows, keeping every column).
 * tokenledger.moving_rows(true) lets this transaction's deletes of
 * partitions by the ledger's owner through, until moving_rows(false) or the
 * transaction's end.  No role but the owner may execute it.
 */
static bool moving_rows = false;
static bool moving_callback = false;

static void
moving_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		moving_rows = false;
}

PG_FUNCTION_INFO_V1(moving_rows_set);
Datum
moving_rows_set(PG_FUNCTION_ARGS)
{
	if (!moving_callback)
	{
		RegisterXactCallback(moving_xact_callback, NULL);
		moving_callback = true;
	}
	moving_rows = PG_GETARG_BOOL(0);
	PG_RETURN_VOID();
}

/*
 * BEFORE UPDATE, DELETE or TRUNCATE, for each statement, and BEFORE DELETE
 * (or UPDATE) for each row (partitions inherit row triggers, not statement
 * ones): refuse
 */
PG_FUNCTION_INFO_V1(append_only);
Datum
append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool         per_row;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "append_only: not called by the trigger manager");
	per_row = TRIGGER_FIRED_FOR_ROW(trigdata->tg_event);
	/* given an argument: the owner may update (the row trigger says what) */
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && trigdata->tg_trigger->tgnargs > 0 &&
		ledger_privileged(trigdata->tg_relation))
		return PointerGetDatum(per_row ? trigdata->tg_newtuple : NULL);
	/* a row moved to its month's partition */
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) && moving_rows &&
		trigdata->tg_relation->rd_rel->relispartition && ledger_privileged(trigdata->tg_relation))
		return PointerGetDatum(per_row ? trigdata->tg_trigtuple : NULL);
	refuse_change(trigdata->tg_relation, TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? "UPDATE"
										 : TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)
											 ? "DELETE"
											 : "TRUNCATE");
	return PointerGetDatum(NULL);
}

/*
 * The row the ledger holds under an id and time, as committed now (and as
 * this transaction wrote it), in the ledger's type; found through each
 * partition's primary key.  A partition with none (a shard's foreign table,
 * one made by hand) is read with SQL, which sees what the transaction's
 * snapshot sees.
 */
static Datum
ledger_row(Oid ledger, int64 id, TimestampTz at, bool *found)
{
	Relation  parent = table_open(ledger, AccessShareLock);
	TupleDesc pdesc = RelationGetDescr(parent);
	List     *leaves = find_all_inheritors(ledger, AccessShareLock, NULL);
	Oid       archive = get_namespace_oid("tokenledger_archive", true);
	ListCell *lc;
	bool      unread = false;
	Datum     result = (Datum) 0;

	/* archived months are still the ledger's */
	if (OidIsValid(archive))
		archive = get_relname_relid(RelationGetRelationName(parent), archive);
	if (OidIsValid(archive))
		leaves = list_concat(leaves, find_all_inheritors(archive, AccessShareLock, NULL));
	*found = false;
	foreach (lc, leaves)
	{
		Oid                 leaf = lfirst_oid(lc);
		Relation            rel;
		ScanKeyData         key;
		SysScanDesc         scan;
		HeapTuple           tup;
		TupleConversionMap *map;
		int                 idattno;
		int                 atattno;

		if (get_rel_relkind(leaf) != RELKIND_RELATION)
		{
			unread |= get_rel_relkind(leaf) == RELKIND_FOREIGN_TABLE;
			continue;
		}
		rel = table_open(leaf, AccessShareLock);
		list_free(RelationGetIndexList(rel));
		if (!OidIsValid(rel->rd_pkindex))
		{
			unread = true;
			table_close(rel, AccessShareLock);
			continue;
		}
		idattno = SPI_fnumber(RelationGetDescr(rel), "id");
		atattno = SPI_fnumber(RelationGetDescr(rel), "occurred_at");
		ScanKeyInit(&key, idattno, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
		scan = systable_beginscan(rel, rel->rd_pkindex, true, SnapshotSelf, 1, &key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			bool  isnull;
			Datum d = heap_getattr(tup, atattno, RelationGetDescr(rel), &isnull);

			if (isnull || DatumGetTimestampTz(d) != at)
				continue;
			map = convert_tuples_by_name(RelationGetDescr(rel), pdesc);
			if (map != NULL)
				tup = execute_attr_map_tuple(tup, map);
			result = heap_copy_tuple_as_datum(tup, pdesc);
			*found = true;
			break;
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		if (*found)
			break;
	}
	if (!*found && unread)
	{
		Oid   argtypes[2] = {INT8OID, TIMESTAMPTZOID};
		Datum args[2] = {Int64GetDatum(id), TimestampTzGetDatum(at)};
		char *sql =
			psprintf("SELECT t FROM %s t WHERE t.id OPERATOR(pg_catalog.=) $1"
					 " AND t.occurred_at OPERATOR(pg_catalog.=) $2",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(parent)),
												RelationGetRelationName(parent)));

		OwnerSql owner;

		/* as the ledger's owner (every team's rows), as committed now */
		owner_sql_begin(&owner);
		PushActiveSnapshot(GetLatestSnapshot());
		if (SPI_execute_with_args(sql, 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the ledger row %lld", (long long) id);
		if (SPI_processed > 0)
		{
			bool  isnull;
			Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				result = SPI_datumTransfer(d, false, -1);
				*found = true;
			}
		}
		PopActiveSnapshot();
		owner_sql_end(&owner);
	}
	table_close(parent, AccessShareLock);
	return result;
}

/*
 * The row of a table that holds an idempotency key, as committed now (and
 * as this transaction wrote it), whatever the transaction's snapshot: a
 * replay under REPEATABLE READ finds the row that a concurrent recording
 * committed.  NULL when there is none.  From version 1.1 the key is looked
 * up in its key table (keys, keys_index), which names the row's id and time.
 */
static Datum
row_by_key(FunctionCallInfo fcinfo, Oid relid, Oid indexid, Oid keys, const char *column)
{
	Relation    rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple   tup;
	Datum       result = (Datum) 0;
	Oid         scanned = OidIsValid(keys) ? keys : relid;
	bool        found = false;
	int64       id = 0;
	TimestampTz at = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
	rel = table_open(scanned, AccessShareLock);
	ScanKeyInit(&key, SPI_fnumber(RelationGetDescr(rel), column), BTEqualStrategyNumber, F_TEXTEQ,
				PG_GETARG_DATUM(0));
	/* no snapshot: callable in a parallel query, and no predicate locks */
	scan = systable_beginscan(rel, indexid, true, SnapshotSelf, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup) && OidIsValid(keys))
	{
		key_names_row(tup, RelationGetDescr(rel), &id, &at);
		found = true;
	}
	else if (HeapTupleIsValid(tup))
		result = heap_copy_tuple_as_datum(tup, RelationGetDescr(rel));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (found)
		result = ledger_row(relid, id, at, &found);
	if (result == (Datum) 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/* recorded_usage(request_id): the usage row recorded under a request_id */
PG_FUNCTION_INFO_V1(recorded_usage);
Datum
recorded_usage(PG_FUNCTION_ARGS)
{
	const LedgerOids *o = ledger_oids();

	return row_by_key(fcinfo, o->usage, o->usage_request_key, o->usage_keys, "request_id");
}

/* recorded_outcome(external_ref): the outcome recorded under an external_ref */
PG_FUNCTION_INFO_V1(recorded_outcome);
Datum
recorded_outcome(PG_FUNCTION_ARGS)
{
	const LedgerOids *o = ledger_oids();

	return row_by_key(fcinfo, o->outcomes, o->outcomes_external_key, o->outcome_keys,
					  "external_ref");
}
