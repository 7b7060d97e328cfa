/*
 * catalog.c
 *		A backend-local cache of the price catalog, the model aliases, the
 *		attribution rules and the initiatives, so that the insert trigger
 *		prices and attributes a row without a query.
 *
 * The cache is loaded with SPI on first use and dropped when any of the four
 * tables changes: a statement-level trigger on each of them
 * (catalog_changed) sends a relcache invalidation for its table, which
 * reaches every backend when the change commits, and this backend at once.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "tokenledger.h"
#include "ledger.h"

/* one version of one price tier */
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

static MemoryContext catalog_cxt = NULL;
static bool          catalog_valid = false;
static TimestampTz   catalog_checked_at = 0;
static HTAB         *price_sets = NULL;
static HTAB         *priced_models = NULL;
static HTAB         *aliases = NULL;
static HTAB         *initiatives = NULL;
static CachedRule   *rules = NULL;
static int           nrules = 0;
static CachedBudget *budgets = NULL;
static int           nbudgets = 0;

/* the tables whose changes drop the cache */
#define NCATALOG_TABLES 4
static const char *const catalog_tables[NCATALOG_TABLES] = {"prices", "model_aliases",
															"attribution_rules", "initiatives"};
static Oid               catalog_relids[NCATALOG_TABLES];

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
make_table(const char *name, Size entrysize, long nelem)
{
	HASHCTL ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = strptr_hash;
	ctl.match = strptr_match;
	ctl.hcxt = catalog_cxt;
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

/* Insert key into a string-keyed table, copying it into the cache. */
static void *
enter_key(HTAB *table, const char *key, bool *found)
{
	void *entry = hash_search(table, &key, HASH_ENTER, found);

	if (!*found)
		*(char **) entry = MemoryContextStrdup(catalog_cxt, key);
	return entry;
}

static void
catalog_inval_callback(Datum arg, Oid relid)
{
	if (!catalog_valid)
		return;
	if (relid == InvalidOid)
	{
		catalog_valid = false;
		return;
	}
	for (int i = 0; i < NCATALOG_TABLES; i++)
		if (catalog_relids[i] == relid)
			catalog_valid = false;
}

/* Called from _PG_init. */
void
catalog_init(void)
{
	CacheRegisterRelcacheCallback(catalog_inval_callback, (Datum) 0);
}

static char *
spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool  isnull;
	Datum d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return NULL;
	return MemoryContextStrdup(catalog_cxt, TextDatumGetCString(d));
}

static void
load_prices(StringInfo key)
{
	uint64    n;
	PriceSet *current = NULL;
	int       capacity = 0;

	if (SPI_execute(
			"SELECT provider, model, service_tier, id, effective_from, rate, min_input_tokens"
			" FROM tokenledger.prices"
			" ORDER BY provider, model, service_tier, min_input_tokens DESC, effective_from DESC, "
			"id DESC",
			true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tokenledger.prices");
	n = SPI_processed;
	price_sets = make_table("tokenledger prices", sizeof(PriceSet), Max(n, 64));
	priced_models = make_table("tokenledger priced models", sizeof(ModelEntry), Max(n, 64));
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

		set = enter_key(price_sets, make_key(key, provider, model, tier), &found);
		if (!found)
		{
			set->nrows = 0;
			set->rows = NULL;
			capacity = 0;
			(void) enter_key(priced_models, make_key(key, provider, model, NULL), &found);
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
								  : MemoryContextAlloc(catalog_cxt, capacity * sizeof(PriceRow));
		}
		row = &set->rows[set->nrows++];
		row->id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		row->effective_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
		row->rate = *DatumGetRateP(SPI_getbinval(tup, desc, 6, &isnull));
		row->min_input_tokens = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	}
}

static void
load_aliases(StringInfo key)
{
	uint64 n;

	if (SPI_execute("SELECT provider, alias, model FROM tokenledger.model_aliases", true, 0) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not read tokenledger.model_aliases");
	n = SPI_processed;
	aliases = make_table("tokenledger aliases", sizeof(AliasEntry), Max(n, 16));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple   tup = SPI_tuptable->vals[i];
		TupleDesc   desc = SPI_tuptable->tupdesc;
		bool        isnull;
		bool        found;
		AliasEntry *e;

		e = enter_key(aliases,
					  make_key(key, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
							   TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)), NULL),
					  &found);
		e->model = spi_text(tup, desc, 3);
	}
}

static void
load_rules(void)
{
	uint64 n;

	if (SPI_execute("SELECT id, match_api_key, match_app, match_principal, match_model,"
					" match_tags, initiative, team"
					" FROM tokenledger.attribution_rules ORDER BY priority, id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tokenledger.attribution_rules");
	n = SPI_processed;
	nrules = (int) n;
	rules = MemoryContextAllocZero(catalog_cxt, sizeof(CachedRule) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple   tup = SPI_tuptable->vals[i];
		TupleDesc   desc = SPI_tuptable->tupdesc;
		CachedRule *r = &rules[i];
		bool        isnull;
		Datum       d;

		r->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		r->api_key = spi_text(tup, desc, 2);
		r->app = spi_text(tup, desc, 3);
		r->principal = spi_text(tup, desc, 4);
		r->model = spi_text(tup, desc, 5);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull)
		{
			Jsonb        *jb = DatumGetJsonbP(d);
			MemoryContext old = MemoryContextSwitchTo(catalog_cxt);

			r->tags = (Jsonb *) palloc(VARSIZE(jb));
			memcpy(r->tags, jb, VARSIZE(jb));
			MemoryContextSwitchTo(old);
		}
		r->initiative = spi_text(tup, desc, 7);
		r->team = spi_text(tup, desc, 8);
	}
}

static void
load_initiatives(void)
{
	uint64 n;

	if (SPI_execute("SELECT name, team, value_per_outcome, status FROM tokenledger.initiatives",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tokenledger.initiatives");
	n = SPI_processed;
	initiatives = make_table("tokenledger initiatives", sizeof(InitiativeEntry), Max(n, 16));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple        tup = SPI_tuptable->vals[i];
		TupleDesc        desc = SPI_tuptable->tupdesc;
		bool             isnull;
		bool             found;
		InitiativeEntry *e;
		Datum            d;

		e = enter_key(initiatives, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
					  &found);
		e->info.team = spi_text(tup, desc, 2);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		e->info.has_value = !isnull;
		if (!isnull)
			e->info.value_per_outcome = *DatumGetCostP(d);
	}
}

static void
load_budgets(void)
{
	static const char *const scopes[] = {"global",    "team",    "initiative",
										 "principal", "api_key", "app"};
	uint64                   n;

	if (SPI_execute("SELECT id, scope, scope_value, period, time_zone, amount,"
					" ARRAY(SELECT DISTINCT (tokenledger.amount(amount) * w * 1000000000)::bigint"
					"       FROM unnest(warn_at) w ORDER BY 1)"
					" FROM tokenledger.budgets WHERE active ORDER BY id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tokenledger.budgets");
	n = SPI_processed;
	nbudgets = (int) n;
	budgets = MemoryContextAllocZero(catalog_cxt, sizeof(CachedBudget) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple     tup = SPI_tuptable->vals[i];
		TupleDesc     desc = SPI_tuptable->tupdesc;
		CachedBudget *b = &budgets[i];
		bool          isnull;
		char         *scope;
		char         *period;
		MemoryContext old;

		b->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		scope = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		for (int s = 0; s < (int) lengthof(scopes); s++)
			if (strcmp(scope, scopes[s]) == 0)
				b->scope = (BudgetScope) s;
		b->scope_value = spi_text(tup, desc, 3);
		period = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		b->total = strcmp(period, "total") == 0;
		old = MemoryContextSwitchTo(catalog_cxt);
		b->period = CStringGetTextDatum(period);
		b->time_zone =
			CStringGetTextDatum(TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull)));
		MemoryContextSwitchTo(old);
		b->amount = *DatumGetCostP(SPI_getbinval(tup, desc, 6, &isnull));
		{
			ArrayType *arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 7, &isnull));
			Datum     *elems;
			int        nelems;

			deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, NULL,
							  &nelems);
			b->nthresholds = nelems;
			b->thresholds = MemoryContextAlloc(catalog_cxt, sizeof(int64) * Max(nelems, 1));
			for (int t = 0; t < nelems; t++)
				b->thresholds[t] = DatumGetInt64(elems[t]);
		}
	}
}

/*
 * Make sure the cache is loaded and current.
 */
static void
catalog_ensure(void)
{
	Oid            nsp;
	StringInfoData key;
	MemoryContext  old;

	/*
	 * Pick up changes that other backends committed since the statement
	 * began (once per statement: row triggers call this for every row).
	 */
	if (GetCurrentStatementStartTimestamp() != catalog_checked_at)
	{
		AcceptInvalidationMessages();
		catalog_checked_at = GetCurrentStatementStartTimestamp();
	}
	if (catalog_valid)
		return;

	if (catalog_cxt == NULL)
		catalog_cxt = AllocSetContextCreate(CacheMemoryContext, "tokenledger catalog cache",
											ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(catalog_cxt);
	price_sets = priced_models = aliases = initiatives = NULL;
	rules = NULL;
	nrules = 0;
	budgets = NULL;
	nbudgets = 0;

	nsp = get_namespace_oid("tokenledger", false);
	for (int i = 0; i < NCATALOG_TABLES; i++)
		catalog_relids[i] = get_relname_relid(catalog_tables[i], nsp);

	/* valid from here on: an invalidation during the load resets it */
	catalog_valid = true;
	old = MemoryContextSwitchTo(catalog_cxt);
	initStringInfo(&key);
	MemoryContextSwitchTo(old);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		load_prices(&key);
		load_aliases(&key);
		load_rules();
		load_initiatives();
		load_budgets();
	}
	PG_CATCH();
	{
		catalog_valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
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

	catalog_ensure();
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
 * Price a call: same provider, resolved model and service tier; among the
 * rows in effect at "at" (effective_from <= at), the highest
 * min_input_tokens that the prompt per request exceeds, in its newest
 * version.  The whole call is priced at that row.  Returns false when no
 * price applies.
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

	resolved = catalog_resolve_model(provider, model);
	if (resolved == NULL)
		return false;
	initStringInfo(&key);
	k = make_key(&key, provider, resolved, tier);
	set = hash_search(price_sets, &k, HASH_FIND, NULL);
	if (set == NULL)
		return false;

	prompt = (int128) t->input + t->cache_read + t->cache_write + t->cache_write_1h;
	if (requests > 1)
		prompt /= requests;
	for (int i = 0; i < set->nrows; i++)
	{
		PriceRow *row = &set->rows[i];

		if (row->effective_from > at)
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
	catalog_ensure();
	*n = nrules;
	return rules;
}

/* The active budgets, by id. */
const CachedBudget *
catalog_budgets(int *n)
{
	catalog_ensure();
	*n = nbudgets;
	return budgets;
}

/* A known initiative, or NULL. */
const CachedInitiative *
catalog_initiative(const char *name)
{
	InitiativeEntry *e;

	catalog_ensure();
	e = hash_search(initiatives, &name, HASH_FIND, NULL);
	return e ? &e->info : NULL;
}

/*
 * Register an initiative that a usage or outcome row names for the first
 * time (status 'active').  The cache is reloaded after it.
 */
void
catalog_register_initiative(const char *name)
{
	static SPIPlanPtr plan = NULL;
	Datum             values[1];

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
	{
		Oid argtypes[1] = {TEXTOID};

		plan = SPI_prepare_cursor("INSERT INTO tokenledger.initiatives (name) VALUES ($1)"
								  " ON CONFLICT (name) DO NOTHING",
								  1, argtypes, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "could not prepare the initiative registration");
		SPI_keepplan(plan);
	}
	values[0] = CStringGetTextDatum(name);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not register initiative \"%s\"", name);
	SPI_finish();
	catalog_valid = false;
}

/*
 * Statement-level trigger on the catalog tables: drop every backend's
 * cache when the change commits (and this backend's at once).
 */
PG_FUNCTION_INFO_V1(catalog_changed);
Datum
catalog_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "catalog_changed: not called by the trigger manager");
	CacheInvalidateRelcache(trigdata->tg_relation);
	catalog_valid = false;
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
