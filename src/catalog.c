/*
 * catalog.c
 *		A backend-local cache of the price catalog, the model aliases, the
 *		attribution rules, the initiatives, the active budgets and the
 *		exchange rates, so that the insert trigger prices, attributes and
 *		counts a row without a query.
 *
 * Each part of the cache is valid on its own and is dropped when one of its
 * tables changes: a statement-level trigger on each table (catalog_changed)
 * sends a relcache invalidation for it, which reaches every backend when
 * the change commits, and this backend at its next command.  A part is
 * loaded after the pending invalidations have been accepted, under a fresh
 * snapshot (so that what it holds is what is committed now, whatever the
 * isolation level of the transaction that happens to load it), as the
 * extension's owner with a pinned search_path.
 *
 * Initiatives that the ledger names for the first time are registered
 * (catalog_register_initiative) and added to this backend's cache without
 * dropping it, and without invalidating other backends' caches: they
 * register the name themselves when they meet it.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "tokenledger.h"
#include "ledger.h"

/* one row of one price list */
typedef struct PriceRow
{
	int64       id;
	TimestampTz effective_from;
	int64       min_input_tokens;
	Rate        rate;
} PriceRow;

/* string-keyed hash entries: the key is a pointer to a string in the cache */
typedef struct PriceSet
{
	char     *key; /* provider \x1f model \x1f tier */
	int       nrows;
	PriceRow *rows; /* min_input_tokens desc, effective_from desc */
} PriceSet;

typedef struct AliasEntry
{
	char *key; /* provider \x1f alias */
	char *model;
} AliasEntry;

typedef struct ModelEntry
{
	char *key; /* provider \x1f model: has some price */
} ModelEntry;

typedef struct InitiativeEntry
{
	char            *key; /* name */
	CachedInitiative info;
} InitiativeEntry;

/* one exchange rate */
typedef struct FxRow
{
	TimestampTz effective_from;
	Numeric     rate;
} FxRow;

typedef struct FxSet
{
	char  *key; /* from \x1f to */
	int    nrows;
	FxRow *rows; /* effective_from desc */
} FxSet;

/* the parts of the cache, each loaded and dropped on its own */
typedef enum CachePart
{
	PART_PRICES, /* prices and model_aliases */
	PART_RULES,
	PART_INITIATIVES,
	PART_BUDGETS,
	PART_FX,
	NPARTS
} CachePart;

static const char *const part_tables[NPARTS][2] = {{"prices", "model_aliases"},
												   {"attribution_rules", NULL},
												   {"initiatives", NULL},
												   {"budgets", NULL},
												   {"fx_rates", NULL}};

typedef struct PartState
{
	bool          valid;
	bool          provisional; /* loaded under a statement's snapshot: this xact only */
	MemoryContext cxt;
	Oid           relids[2];
} PartState;

static PartState   parts[NPARTS];
static TimestampTz checked_at = 0;

static HTAB         *price_sets = NULL;
static HTAB         *priced_models = NULL;
static HTAB         *aliases = NULL;
static HTAB         *initiatives = NULL;
static CachedRule   *rules = NULL;
static int           nrules = 0;
static CachedBudget *budgets = NULL;
static int           nbudgets = 0;
static HTAB         *fx_sets = NULL;

/* initiatives registered by this transaction: forgotten if it aborts */
static bool registered_in_xact = false;
/* set while this backend registers an initiative (no invalidation then) */
static bool registering = false;

/* the extension's objects, looked up once and dropped with them */
static LedgerOids ledger_oids_cache;
static uint64     ledger_generation = 1;

static uint32
strptr_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
strptr_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(const char *const *) key1, *(const char *const *) key2);
}

static HTAB *
make_table(MemoryContext cxt, const char *name, Size entrysize, long nelem)
{
	HASHCTL ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = strptr_hash;
	ctl.match = strptr_match;
	ctl.hcxt = cxt;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* "a\x1fb" or "a\x1fb\x1fc" in buf */
static const char *
make_key(StringInfo buf, const char *a, const char *b, const char *c)
{
	resetStringInfo(buf);
	appendStringInfoString(buf, a);
	appendStringInfoChar(buf, '\x1f');
	appendStringInfoString(buf, b);
	if (c)
	{
		appendStringInfoChar(buf, '\x1f');
		appendStringInfoString(buf, c);
	}
	return buf->data;
}

/* Insert key into a string-keyed table, copying it into cxt. */
static void *
enter_key(MemoryContext cxt, HTAB *table, const char *key, bool *found)
{
	void *entry = hash_search(table, &key, HASH_ENTER, found);

	if (!*found)
		*(char **) entry = MemoryContextStrdup(cxt, key);
	return entry;
}

static void
catalog_inval_callback(Datum arg, Oid relid)
{
	LedgerOids *o = &ledger_oids_cache;

	for (int p = 0; p < NPARTS; p++)
		if (parts[p].valid &&
			(relid == InvalidOid || parts[p].relids[0] == relid || parts[p].relids[1] == relid))
			parts[p].valid = false;
	if (o->valid &&
		(relid == InvalidOid || relid == o->usage || relid == o->outcomes ||
		 relid == o->budget_spend || relid == o->budget_spend_key || relid == o->budget_holds ||
		 relid == o->budget_holds_key || relid == o->budget_alerts ||
		 relid == o->budget_alerts_key || relid == o->budgets || relid == o->usage_request_key ||
		 relid == o->outcomes_external_key || relid == o->usage_keys || relid == o->outcome_keys))
	{
		o->valid = false;
		ledger_generation++;
	}
}

/* the extension's schema was dropped or renamed */
static void
namespace_inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	catalog_inval_callback(arg, InvalidOid);
}

/* a provisional load, and an aborted registration, end with the transaction */
static void
catalog_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE)
		return;
	for (int p = 0; p < NPARTS; p++)
		if (parts[p].provisional)
			parts[p].valid = parts[p].provisional = false;
	if (event == XACT_EVENT_ABORT && registered_in_xact)
		parts[PART_INITIATIVES].valid = false;
	registered_in_xact = false;
	registering = false;
}

static void
catalog_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						 void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		registering = false;
		if (registered_in_xact)
			parts[PART_INITIATIVES].valid = false;
	}
}

/* Called from _PG_init. */
void
catalog_init(void)
{
	CacheRegisterRelcacheCallback(catalog_inval_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, namespace_inval_callback, (Datum) 0);
	RegisterXactCallback(catalog_xact_callback, NULL);
	RegisterSubXactCallback(catalog_subxact_callback, NULL);
}

static Oid
relid_in(Oid nsp, const char *name)
{
	Oid relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("relation \"tokenledger.%s\" does not exist", name),
						errhint("Update the extension: ALTER EXTENSION tokenledger UPDATE.")));
	return relid;
}

/*
 * The OIDs of the extension's schema, owner, types, and of the tables and
 * indexes the accounting reads and writes.  Looked up again after any of
 * them is dropped (DROP and CREATE EXTENSION in another session, say).
 */
const LedgerOids *
ledger_oids(void)
{
	LedgerOids *o = &ledger_oids_cache;
	HeapTuple   tup;
	Oid         nsp;

	if (o->valid)
		return o;
	nsp = get_namespace_oid("tokenledger", false);
	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	o->owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	o->nsp = nsp;
	o->cost_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("cost"),
								   ObjectIdGetDatum(nsp));
	o->usage = relid_in(nsp, "usage");
	o->outcomes = relid_in(nsp, "outcomes");
	o->usage_request_key = relid_in(nsp, "usage_request_id_key");
	o->outcomes_external_key = relid_in(nsp, "outcomes_external_ref_key");
	o->usage_keys = get_relname_relid("usage_request_ids", nsp);
	o->outcome_keys = get_relname_relid("outcome_external_refs", nsp);
	o->budget_spend = relid_in(nsp, "budget_spend");
	o->budget_spend_key = relid_in(nsp, "budget_spend_pkey");
	o->budget_holds = relid_in(nsp, "budget_holds");
	o->budget_holds_key = relid_in(nsp, "budget_holds_budget_idx");
	o->budget_alerts = relid_in(nsp, "budget_alerts");
	o->budget_alerts_key = relid_in(nsp, "budget_alerts_budget_id_period_start_threshold_key");
	o->budgets = relid_in(nsp, "budgets");
	o->generation = ledger_generation;
	o->valid = true;
	return o;
}

/*
 * Internal SQL runs as the extension's owner, with search_path pinned, so
 * that it needs no right of the recording role and cannot be redirected by
 * objects that role planted.  Transaction and subtransaction abort restore
 * both.
 */
void
owner_sql_begin(OwnerSql *s)
{
	const LedgerOids *o = ledger_oids();

	GetUserIdAndSecContext(&s->save_userid, &s->save_sec_context);
	SetUserIdAndSecContext(o->owner, s->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	s->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, tokenledger, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
owner_sql_end(OwnerSql *s)
{
	SPI_finish();
	AtEOXact_GUC(true, s->save_nestlevel);
	SetUserIdAndSecContext(s->save_userid, s->save_sec_context);
}

/*
 * Prepare (once per generation of the extension's objects) a statement of
 * the internal SQL; a plan made before DROP and CREATE EXTENSION would keep
 * the old types' OIDs.
 */
SPIPlanPtr
owner_sql_plan(KeptPlan *cp, const char *sql, int nargs, const Oid *argtypes)
{
	const LedgerOids *o = ledger_oids();

	if (cp->plan != NULL && cp->generation == o->generation)
		return cp->plan;
	if (cp->plan != NULL)
	{
		SPIPlanPtr old = cp->plan;

		cp->plan = NULL;
		SPI_freeplan(old);
	}
	cp->plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (cp->plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(cp->plan);
	cp->generation = o->generation;
	return cp->plan;
}

static char *
spi_text(MemoryContext cxt, HeapTuple tup, TupleDesc desc, int col)
{
	bool  isnull;
	Datum d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return NULL;
	return MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

static void
spi_read(const char *sql, const char *table)
{
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tokenledger.%s", table);
}

static void
load_prices(MemoryContext cxt)
{
	uint64         n;
	PriceSet      *current = NULL;
	int            capacity = 0;
	StringInfoData key;

	initStringInfo(&key);
	spi_read("SELECT provider, model, service_tier, id, effective_from, rate, min_input_tokens"
			 " FROM tokenledger.prices"
			 " ORDER BY provider, model, service_tier, min_input_tokens DESC, effective_from DESC,"
			 " id DESC",
			 "prices");
	n = SPI_processed;
	price_sets = make_table(cxt, "tokenledger prices", sizeof(PriceSet), Max(n, 64));
	priced_models = make_table(cxt, "tokenledger priced models", sizeof(ModelEntry), Max(n, 64));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool      isnull;
		bool      found;
		char     *provider = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		char     *model = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		char     *tier = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		PriceSet *set;
		PriceRow *row;

		set = enter_key(cxt, price_sets, make_key(&key, provider, model, tier), &found);
		if (!found)
		{
			set->nrows = 0;
			set->rows = NULL;
			(void) enter_key(cxt, priced_models, make_key(&key, provider, model, NULL), &found);
		}
		if (set != current)
		{
			current = set;
			capacity = 0;
		}
		if (set->nrows >= capacity)
		{
			capacity = Max(4, capacity * 2);
			set->rows = set->rows ? repalloc(set->rows, capacity * sizeof(PriceRow))
								  : MemoryContextAlloc(cxt, capacity * sizeof(PriceRow));
		}
		row = &set->rows[set->nrows++];
		row->id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		row->effective_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
		row->rate = *DatumGetRateP(SPI_getbinval(tup, desc, 6, &isnull));
		row->min_input_tokens = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	}

	spi_read("SELECT provider, alias, model FROM tokenledger.model_aliases", "model_aliases");
	n = SPI_processed;
	aliases = make_table(cxt, "tokenledger aliases", sizeof(AliasEntry), Max(n, 16));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple   tup = SPI_tuptable->vals[i];
		TupleDesc   desc = SPI_tuptable->tupdesc;
		bool        isnull;
		bool        found;
		AliasEntry *e;

		e = enter_key(cxt, aliases,
					  make_key(&key, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
							   TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)), NULL),
					  &found);
		e->model = spi_text(cxt, tup, desc, 3);
	}
}

static void
load_rules(MemoryContext cxt)
{
	uint64 n;

	spi_read("SELECT id, match_api_key, match_app, match_principal, match_model,"
			 " match_tags, initiative, team"
			 " FROM tokenledger.attribution_rules ORDER BY priority, id",
			 "attribution_rules");
	n = SPI_processed;
	nrules = (int) n;
	rules = MemoryContextAllocZero(cxt, sizeof(CachedRule) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple   tup = SPI_tuptable->vals[i];
		TupleDesc   desc = SPI_tuptable->tupdesc;
		CachedRule *r = &rules[i];
		bool        isnull;
		Datum       d;

		r->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		r->api_key = spi_text(cxt, tup, desc, 2);
		r->app = spi_text(cxt, tup, desc, 3);
		r->principal = spi_text(cxt, tup, desc, 4);
		r->model = spi_text(cxt, tup, desc, 5);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull)
		{
			Jsonb *jb = DatumGetJsonbP(d);

			r->tags = (Jsonb *) MemoryContextAlloc(cxt, VARSIZE(jb));
			memcpy(r->tags, jb, VARSIZE(jb));
		}
		r->initiative = spi_text(cxt, tup, desc, 7);
		r->team = spi_text(cxt, tup, desc, 8);
	}
}

static void
load_initiatives(MemoryContext cxt)
{
	uint64 n;

	spi_read("SELECT name, team, value_per_outcome FROM tokenledger.initiatives", "initiatives");
	n = SPI_processed;
	initiatives = make_table(cxt, "tokenledger initiatives", sizeof(InitiativeEntry), Max(n, 16));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple        tup = SPI_tuptable->vals[i];
		TupleDesc        desc = SPI_tuptable->tupdesc;
		bool             isnull;
		bool             found;
		InitiativeEntry *e;
		Datum            d;

		e = enter_key(cxt, initiatives, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
					  &found);
		e->info.team = spi_text(cxt, tup, desc, 2);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		e->info.has_value = !isnull;
		if (!isnull)
			e->info.value_per_outcome = *DatumGetCostP(d);
	}
}

/*
 * The budget query: each threshold as warn_at and in nanos of the amount
 * (a threshold beyond what a counter can hold is never reached, and never
 * an error).  Shared with budget_recount, so that both read a budget the
 * same way.
 */
const char *const budget_query =
	"SELECT b.id, b.scope, b.scope_value, b.period, b.time_zone, b.amount, t.warn_at, t.nanos"
	" FROM tokenledger.budgets b"
	" CROSS JOIN LATERAL (SELECT pg_catalog.array_agg(w ORDER BY w) AS warn_at,"
	"        pg_catalog.array_agg(LEAST(pg_catalog.round(tokenledger.amount(b.amount)"
	"            OPERATOR(pg_catalog.*) w OPERATOR(pg_catalog.*) 1000000000),"
	"            9223372036854775807)::pg_catalog.int8 ORDER BY w) AS nanos"
	"     FROM (SELECT DISTINCT w FROM pg_catalog.unnest(b.warn_at) AS w) d) t";

/* a budget from a row of budget_query, into cxt */
void
budget_from_row(CachedBudget *b, HeapTuple tup, TupleDesc desc, MemoryContext cxt)
{
	static const char *const scopes[] = {"global",    "team",    "initiative",
										 "principal", "api_key", "app"};
	bool                     isnull;
	char                    *scope;
	char                    *period;
	MemoryContext            old;
	Datum                    d;

	memset(b, 0, sizeof(*b));
	b->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	scope = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	for (int s = 0; s < (int) lengthof(scopes); s++)
		if (strcmp(scope, scopes[s]) == 0)
			b->scope = (BudgetScope) s;
	b->scope_value = spi_text(cxt, tup, desc, 3);
	period = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
	b->total = strcmp(period, "total") == 0;
	old = MemoryContextSwitchTo(cxt);
	b->period = CStringGetTextDatum(period);
	b->time_zone = CStringGetTextDatum(TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull)));
	MemoryContextSwitchTo(old);
	b->amount = *DatumGetCostP(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);
	if (!isnull)
	{
		ArrayType *warn = DatumGetArrayTypeP(d);
		ArrayType *nanos = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 8, &isnull));
		Datum     *welems;
		Datum     *nelems;
		int        n;

		deconstruct_array(warn, NUMERICOID, -1, false, TYPALIGN_INT, &welems, NULL, &n);
		deconstruct_array(nanos, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &nelems, NULL, &n);
		b->nthresholds = n;
		b->thresholds = MemoryContextAlloc(cxt, sizeof(int64) * Max(n, 1));
		b->warn_at = MemoryContextAlloc(cxt, sizeof(Datum) * Max(n, 1));
		old = MemoryContextSwitchTo(cxt);
		for (int t = 0; t < n; t++)
		{
			b->thresholds[t] = DatumGetInt64(nelems[t]);
			b->warn_at[t] = datumCopy(welems[t], false, -1);
		}
		MemoryContextSwitchTo(old);
	}
}

static void
load_budgets(MemoryContext cxt)
{
	StringInfoData q;
	uint64         n;

	initStringInfo(&q);
	appendStringInfo(&q, "%s WHERE b.active ORDER BY b.id", budget_query);
	spi_read(q.data, "budgets");
	n = SPI_processed;
	nbudgets = (int) n;
	budgets = MemoryContextAllocZero(cxt, sizeof(CachedBudget) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
		budget_from_row(&budgets[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc, cxt);
}

static void
load_fx(MemoryContext cxt)
{
	uint64         n;
	FxSet         *current = NULL;
	int            capacity = 0;
	StringInfoData key;

	initStringInfo(&key);
	spi_read("SELECT currency, to_currency, effective_from, rate FROM tokenledger.fx_rates"
			 " ORDER BY currency, to_currency, effective_from DESC",
			 "fx_rates");
	n = SPI_processed;
	fx_sets = make_table(cxt, "tokenledger fx rates", sizeof(FxSet), Max(n, 16));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple     tup = SPI_tuptable->vals[i];
		TupleDesc     desc = SPI_tuptable->tupdesc;
		bool          isnull;
		bool          found;
		FxSet        *set;
		MemoryContext old;

		set = enter_key(cxt, fx_sets,
						make_key(&key, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
								 TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)), NULL),
						&found);
		if (!found)
		{
			set->nrows = 0;
			set->rows = NULL;
		}
		if (set != current)
		{
			current = set;
			capacity = 0;
		}
		if (set->nrows >= capacity)
		{
			capacity = Max(4, capacity * 2);
			set->rows = set->rows ? repalloc(set->rows, capacity * sizeof(FxRow))
								  : MemoryContextAlloc(cxt, capacity * sizeof(FxRow));
		}
		set->rows[set->nrows].effective_from =
			DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
		old = MemoryContextSwitchTo(cxt);
		set->rows[set->nrows].rate =
			DatumGetNumeric(datumCopy(SPI_getbinval(tup, desc, 4, &isnull), false, -1));
		MemoryContextSwitchTo(old);
		set->nrows++;
	}
}

/*
 * Make sure a part of the cache is loaded and current.
 */
static void
catalog_ensure(CachePart p)
{
	PartState *ps = &parts[p];
	OwnerSql   owner;
	bool       parallel = IsInParallelMode();

	/*
	 * Changes that other backends committed since the statement began (once
	 * per statement: row triggers come here several times a row), and
	 * always before a part is loaded.
	 */
	if (GetCurrentStatementStartTimestamp() != checked_at || !ps->valid)
	{
		AcceptInvalidationMessages();
		checked_at = GetCurrentStatementStartTimestamp();
	}
	if (ps->valid)
		return;

	if (ps->cxt == NULL)
		ps->cxt = AllocSetContextCreate(CacheMemoryContext, "tokenledger catalog cache",
										ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(ps->cxt);
	switch (p)
	{
		case PART_PRICES:
			price_sets = priced_models = aliases = NULL;
			break;
		case PART_RULES:
			rules = NULL;
			nrules = 0;
			break;
		case PART_INITIATIVES:
			initiatives = NULL;
			break;
		case PART_BUDGETS:
			budgets = NULL;
			nbudgets = 0;
			break;
		case PART_FX:
			fx_sets = NULL;
			break;
		case NPARTS:
			break;
	}
	for (int i = 0; i < 2; i++)
		ps->relids[i] =
			part_tables[p][i] ? relid_in(ledger_oids()->nsp, part_tables[p][i]) : InvalidOid;

	/*
	 * Valid from here on: an invalidation that arrives during the load resets
	 * it.  The load reads what is committed now (and this transaction's own
	 * changes), not what the transaction's snapshot saw; during a parallel
	 * query no new snapshot may be taken, so the statement's serves, for
	 * this transaction only.
	 */
	ps->valid = true;
	ps->provisional = parallel;
	owner_sql_begin(&owner);
	PushActiveSnapshot(parallel ? GetActiveSnapshot() : GetLatestSnapshot());
	PG_TRY();
	{
		switch (p)
		{
			case PART_PRICES:
				load_prices(ps->cxt);
				break;
			case PART_RULES:
				load_rules(ps->cxt);
				break;
			case PART_INITIATIVES:
				load_initiatives(ps->cxt);
				break;
			case PART_BUDGETS:
				load_budgets(ps->cxt);
				break;
			case PART_FX:
				load_fx(ps->cxt);
				break;
			case NPARTS:
				break;
		}
	}
	PG_CATCH();
	{
		ps->valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	PopActiveSnapshot();
	owner_sql_end(&owner);
}

/*
 * Strip a trailing date snapshot suffix: -YYYY-MM-DD, -YYYYMMDD or
 * @YYYYMMDD.  Returns the stripped name, or NULL when there is none.
 */
static char *
strip_date_suffix(const char *model)
{
	size_t len = strlen(model);

	if (len > 11 && model[len - 11] == '-' && model[len - 6] == '-' && model[len - 3] == '-')
	{
		bool ok = true;

		for (size_t i = len - 10; i < len; i++)
			if (i != len - 6 && i != len - 3 && !isdigit((unsigned char) model[i]))
				ok = false;
		if (ok)
			return pnstrdup(model, len - 11);
	}
	if (len > 9 && (model[len - 9] == '-' || model[len - 9] == '@'))
	{
		for (size_t i = len - 8; i < len; i++)
			if (!isdigit((unsigned char) model[i]))
				return NULL;
		return pnstrdup(model, len - 9);
	}
	return NULL;
}

static bool
model_is_priced(StringInfo key, const char *provider, const char *model)
{
	bool        found;
	const char *k = make_key(key, provider, model, NULL);

	(void) hash_search(priced_models, &k, HASH_FIND, &found);
	return found;
}

static const char *
alias_target(StringInfo key, const char *provider, const char *model)
{
	const char *k = make_key(key, provider, model, NULL);
	AliasEntry *e = hash_search(aliases, &k, HASH_FIND, NULL);

	return e ? e->model : NULL;
}

/*
 * The catalog's name for a model: the name itself when it has prices, else
 * its alias, else the name without its date suffix (or that name's alias).
 * NULL when none of these has a price.
 */
const char *
catalog_resolve_model(const char *provider, const char *model)
{
	StringInfoData key;
	const char    *target;
	char          *stripped;

	catalog_ensure(PART_PRICES);
	initStringInfo(&key);
	if (model_is_priced(&key, provider, model))
		return model;
	target = alias_target(&key, provider, model);
	if (target && model_is_priced(&key, provider, target))
		return target;
	stripped = strip_date_suffix(model);
	if (stripped)
	{
		if (model_is_priced(&key, provider, stripped))
			return stripped;
		target = alias_target(&key, provider, stripped);
		if (target && model_is_priced(&key, provider, target))
			return target;
	}
	return NULL;
}

/*
 * Price a call: same provider, resolved model and service tier.  The price
 * list in effect at "at" starts at the newest base row (min_input_tokens 0)
 * with effective_from <= at: long-context rows older than it are retired
 * with the list they belonged to.  Of the rows in effect, the highest
 * min_input_tokens that the prompt per request exceeds, in its newest
 * version, prices the whole call.  Returns false when no price applies.
 */
bool
catalog_price(const char *provider, const char *model, const char *tier, TimestampTz at,
			  const Tokens *t, int64 requests, CostValue *cost, int64 *price_id)
{
	StringInfoData key;
	const char    *resolved;
	const char    *k;
	PriceSet      *set;
	int128         prompt;
	TimestampTz    list_from;

	resolved = catalog_resolve_model(provider, model);
	if (resolved == NULL)
		return false;
	initStringInfo(&key);
	k = make_key(&key, provider, resolved, tier);
	set = hash_search(price_sets, &k, HASH_FIND, NULL);
	if (set == NULL)
		return false;

	/* the base rows come last (min_input_tokens desc), newest first */
	TIMESTAMP_NOBEGIN(list_from);
	for (int i = set->nrows - 1; i >= 0 && set->rows[i].min_input_tokens == 0; i--)
		if (set->rows[i].effective_from <= at)
			list_from = set->rows[i].effective_from;

	prompt = (int128) t->input + t->cache_read + t->cache_write + t->cache_write_1h;
	if (requests > 1)
		prompt /= requests;
	for (int i = 0; i < set->nrows; i++)
	{
		PriceRow *row = &set->rows[i];

		if (row->effective_from > at || row->effective_from < list_from)
			continue;
		if (row->min_input_tokens > 0 && prompt <= row->min_input_tokens)
			continue;
		*cost = *tokens_times_rate(t, &row->rate);
		*price_id = row->id;
		return true;
	}
	return false;
}

/* The cached rules, in priority order. */
const CachedRule *
catalog_rules(int *n)
{
	catalog_ensure(PART_RULES);
	*n = nrules;
	return rules;
}

/* The active budgets, by id. */
const CachedBudget *
catalog_budgets(int *n)
{
	catalog_ensure(PART_BUDGETS);
	*n = nbudgets;
	return budgets;
}

/* An active budget by id, or NULL. */
const CachedBudget *
catalog_budget(int64 id)
{
	int                 n;
	const CachedBudget *b = catalog_budgets(&n);

	for (int i = 0; i < n; i++)
		if (b[i].id == id)
			return &b[i];
	return NULL;
}

/* A known initiative, or NULL. */
const CachedInitiative *
catalog_initiative(const char *name)
{
	InitiativeEntry *e;

	catalog_ensure(PART_INITIATIVES);
	e = hash_search(initiatives, &name, HASH_FIND, NULL);
	return e ? &e->info : NULL;
}

/*
 * Register an initiative that a usage or outcome row names for the first
 * time (status 'active'), as the extension's owner: the recording role needs
 * no right on initiatives.  The name joins this backend's cache; other
 * backends are not made to reload theirs (catalog_changed is quiet during a
 * registration), as they register the name themselves when they meet it.
 * If the transaction aborts, the cache forgets it.
 */
void
catalog_register_initiative(const char *name)
{
	static KeptPlan plan;
	OwnerSql        owner;
	Oid             argtypes[1] = {TEXTOID};
	Datum           values[1];
	volatile int    rc = 0;

	registered_in_xact = true;
	owner_sql_begin(&owner);
	registering = true;
	values[0] = CStringGetTextDatum(name);
	for (int attempt = 1;; attempt++)
	{
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		volatile bool again = false;

		/*
		 * As committed now.  A name that a transaction registers and commits
		 * while this one waits for it is newer than the snapshot taken
		 * before: under REPEATABLE READ that is a serialization failure, and
		 * another try with a new snapshot finds the name.
		 */
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());

			rc = SPI_execute_snapshot(owner_sql_plan(&plan,
													 "INSERT INTO tokenledger.initiatives (name)"
													 " VALUES ($1) ON CONFLICT (name) DO NOTHING",
													 1, argtypes),
									  values, NULL, snapshot, InvalidSnapshot, false, true, 0);
			UnregisterSnapshot(snapshot);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
		}
		PG_CATCH();
		{
			ErrorData *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
			if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE || attempt >= 3)
				ReThrowError(edata);
			FreeErrorData(edata);
			registering = true;
			again = true;
		}
		PG_END_TRY();
		if (!again)
			break;
	}
	registering = false;
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not register initiative \"%s\"", name);
	owner_sql_end(&owner);

	/*
	 * Known from now on.  If someone else registered or created it first, and
	 * committed, the invalidation that came with it has dropped the cache,
	 * which the next lookup reloads with the row as it is.
	 */
	if (parts[PART_INITIATIVES].valid)
	{
		bool             found;
		InitiativeEntry *e = enter_key(parts[PART_INITIATIVES].cxt, initiatives, name, &found);

		if (!found)
		{
			e->info.team = NULL;
			e->info.has_value = false;
		}
	}
}

/*
 * Convert nanos of one currency into another at the exchange rate in effect
 * at "at": fx_rates' newest rate from -> to, else the inverse of the newest
 * to -> from, rounded half away from zero to the nano (as convert() does).
 * Returns false when no rate applies; raises 22003 when the result does not
 * fit.
 */
/*
 * The exchange rate from -> to in effect at "at": fx_rates' newest rate
 * from -> to, else the inverse of the newest to -> from; NULL when none.
 * The currencies differ.
 */
Numeric
catalog_fx_rate(const char *from, const char *to, TimestampTz at)
{
	StringInfoData key;
	const char    *k;
	FxSet         *set;
	Numeric        rate = NULL;

	catalog_ensure(PART_FX);
	initStringInfo(&key);
	k = make_key(&key, from, to, NULL);
	set = hash_search(fx_sets, &k, HASH_FIND, NULL);
	for (int i = 0; set && i < set->nrows && rate == NULL; i++)
		if (set->rows[i].effective_from <= at)
			rate = set->rows[i].rate;
	if (rate == NULL)
	{
		k = make_key(&key, to, from, NULL);
		set = hash_search(fx_sets, &k, HASH_FIND, NULL);
		for (int i = 0; set && i < set->nrows && rate == NULL; i++)
			if (set->rows[i].effective_from <= at)
				rate = DatumGetNumeric(DirectFunctionCall2(
					numeric_div, DirectFunctionCall1(int4_numeric, Int32GetDatum(1)),
					NumericGetDatum(set->rows[i].rate)));
	}
	return rate;
}

/* the start of the UTC clock hour of "at" (infinity stays as it is) */
TimestampTz
utc_hour_start(TimestampTz at)
{
	TimestampTz into = at % USECS_PER_HOUR;

	if (TIMESTAMP_NOT_FINITE(at))
		return at;
	return at - into - (into < 0 ? USECS_PER_HOUR : 0);
}

/*
 * The start of the stretch of time that "at" falls in within which no rate
 * of "currency" (to or from any other) changes and the clock hour (UTC) is
 * the same: the later of the hour's start and the newest effective_from of
 * such a rate at or before "at".  Spend of that currency in one stretch is
 * converted at one rate, whatever the currency reported in.
 */
TimestampTz
catalog_fx_stretch(const char *currency, TimestampTz at)
{
	TimestampTz     start = utc_hour_start(at);
	HASH_SEQ_STATUS seq;
	FxSet          *set;
	size_t          len = strlen(currency);

	/* infinity is its own stretch */
	if (TIMESTAMP_NOT_FINITE(at))
		return at;
	catalog_ensure(PART_FX);
	hash_seq_init(&seq, fx_sets);
	while ((set = hash_seq_search(&seq)) != NULL)
	{
		/* the key is from \x1f to */
		const char *sep = strchr(set->key, '\x1f');

		if (sep == NULL ||
			!((sep - set->key == (ptrdiff_t) len && strncmp(set->key, currency, len) == 0) ||
			  strcmp(sep + 1, currency) == 0))
			continue;
		for (int i = 0; i < set->nrows; i++)
			if (set->rows[i].effective_from <= at)
			{
				if (set->rows[i].effective_from > start)
					start = set->rows[i].effective_from;
				break;
			}
	}
	return start;
}

bool
catalog_convert(int64 nanos, const char *from, const char *to, TimestampTz at, int64 *result)
{
	Numeric rate;
	Numeric converted;

	if (strcmp(from, to) == 0)
	{
		*result = nanos;
		return true;
	}
	rate = catalog_fx_rate(from, to, at);
	if (rate == NULL)
		return false;
	converted = DatumGetNumeric(DirectFunctionCall2(
		numeric_mul, NumericGetDatum(nanos_to_numeric(nanos)), NumericGetDatum(rate)));
	if (!numeric_to_nanos(converted, result))
		ereport(
			ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("%s in %s is out of range for type cost",
					DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(converted))),
					to)));
	return true;
}

/*
 * convert(cost, to_currency, at): a cost in another currency at the exchange
 * rate in effect at the given time; raises 22023 when no rate applies.
 */
PG_FUNCTION_INFO_V1(cost_convert);
Datum
cost_convert(PG_FUNCTION_ARGS)
{
	CostValue  *c;
	char        to[CURRENCY_LEN + 1];
	text       *to_text;
	TimestampTz at;
	int64       nanos;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	c = PG_GETARG_COST_P(0);
	to_text = PG_GETARG_TEXT_PP(1);
	at = PG_ARGISNULL(2) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(2);
	if (!currency_normalize(VARDATA_ANY(to_text), VARSIZE_ANY_EXHDR(to_text), to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not an ISO 4217 currency code", text_to_cstring(to_text))));
	if (!catalog_convert(c->nanos, c->currency, to, at, &nanos))
		ereport(
			ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("no exchange rate from %s to %s on %s", c->currency, to,
					DatumGetCString(DirectFunctionCall1(
						date_out, DirectFunctionCall1(timestamptz_date, TimestampTzGetDatum(at))))),
			 errhint("Add one: INSERT INTO tokenledger.fx_rates VALUES ('%s', '%s', <rate>, "
					 "<effective_from>).",
					 c->currency, to)));
	PG_RETURN_COST_P(cost_make(nanos, to));
}

/*
 * Statement-level trigger on the cached tables: drop every backend's copy
 * of that part when the change commits (and this backend's at its next
 * command).  An initiative's registration by the insert path is quiet.
 */
PG_FUNCTION_INFO_V1(catalog_changed);
Datum
catalog_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "catalog_changed: not called by the trigger manager");
	if (!registering)
	{
		/* (on a Citus node the trigger is a shard's: the table's cache goes) */
		Oid table = citus_table_of_shard(trigdata->tg_relation);

		CacheInvalidateRelcache(trigdata->tg_relation);
		catalog_inval_callback((Datum) 0, RelationGetRelid(trigdata->tg_relation));
		if (OidIsValid(table))
		{
			CacheInvalidateRelcacheByRelid(table);
			catalog_inval_callback((Datum) 0, table);
		}
	}
	return PointerGetDatum(NULL);
}

/*
 * cost_of(tokens, provider, model, service_tier, at): what the catalog
 * charges for a call, without recording it; NULL when no price applies.
 */
PG_FUNCTION_INFO_V1(cost_of);
Datum
cost_of(PG_FUNCTION_ARGS)
{
	Tokens   *t;
	CostValue cost;
	int64     price_id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	t = PG_GETARG_TOKENS_P(0);
	if (!catalog_price(text_to_cstring(PG_GETARG_TEXT_PP(1)), text_to_cstring(PG_GETARG_TEXT_PP(2)),
					   PG_ARGISNULL(3) ? "standard" : text_to_cstring(PG_GETARG_TEXT_PP(3)),
					   PG_ARGISNULL(4) ? GetCurrentTransactionStartTimestamp()
									   : PG_GETARG_TIMESTAMPTZ(4),
					   t, 1, &cost, &price_id))
		PG_RETURN_NULL();
	PG_RETURN_COST_P(cost_make(cost.nanos, cost.currency));
}

/*
 * price_of(tokens, provider, model, service_tier, at, requests): the id of
 * the price row that would price the call, or NULL.
 */
PG_FUNCTION_INFO_V1(price_of);
Datum
price_of(PG_FUNCTION_ARGS)
{
	CostValue cost;
	int64     price_id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	if (!catalog_price(text_to_cstring(PG_GETARG_TEXT_PP(1)), text_to_cstring(PG_GETARG_TEXT_PP(2)),
					   text_to_cstring(PG_GETARG_TEXT_PP(3)), PG_GETARG_TIMESTAMPTZ(4),
					   PG_GETARG_TOKENS_P(0), PG_ARGISNULL(5) ? 1 : PG_GETARG_INT64(5), &cost,
					   &price_id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(price_id);
}

/* resolve_model(provider, model): the catalog's name for a model, or NULL */
PG_FUNCTION_INFO_V1(resolve_model);
Datum
resolve_model(PG_FUNCTION_ARGS)
{
	const char *m = catalog_resolve_model(text_to_cstring(PG_GETARG_TEXT_PP(0)),
										  text_to_cstring(PG_GETARG_TEXT_PP(1)));

	if (m == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(m));
}
