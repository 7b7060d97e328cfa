/*
 * budget.c
 *		Accounting of the ledger's spend against budgets.
 *
 * budget_account (AFTER INSERT OR UPDATE, per row) adds each priced row's cost
 * to a backend-local sum per (budget, period) for every active budget the row
 * falls under; a cost that reprice() fills in counts then too.  Rows that
 * carry a reservation_id are noted for settlement.
 *
 * budget_account_flush (AFTER INSERT OR UPDATE, per statement) adds the sums
 * to budget_spend in one statement: into this backend's slot of each period
 * (slots, one per backend while there are no more than 64, keep concurrent
 * recorders off each other's rows; their sum is the
 * period's spend).  In the same statement it queues a commit-time alert check
 * (budget_checks) for every period whose spend, as this transaction sees it,
 * has reached or comes within a fifth of the budget of a threshold not yet
 * alerted.  The check runs at commit under the budget's lock, so the last of
 * several concurrent recorders sees them all.
 *
 * Everything is part of the recording transaction: a rollback leaves no
 * accounting, no settlement and no alert behind.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "tokenledger.h"
#include "ledger.h"

/* slots a period's counter is split into */
#define BUDGET_SLOTS 64

typedef struct PendingKey
{
	int64       budget_id;
	TimestampTz period_start;
} PendingKey;

typedef struct PendingSpend
{
	PendingKey key;
	int128     nanos;
	char       currency[CURRENCY_LEN + 1];
} PendingSpend;

typedef struct PendingSettle
{
	pg_uuid_t reservation;
	int64     usage_id;
} PendingSettle;

static HTAB          *pending = NULL;
static PendingSettle *settles = NULL;
static int            nsettles = 0;
static int            settles_size = 0;
static Oid            cost_typid = InvalidOid;
static bool           callbacks_registered = false;

/* the usage columns accounting reads */
enum
{
	A_ID,
	A_OCCURRED_AT,
	A_COST,
	A_TEAM,
	A_INITIATIVE,
	A_PRINCIPAL,
	A_API_KEY,
	A_APP,
	A_RESERVATION_ID,
	A_NCOLS
};

static const char *const account_columns[A_NCOLS] = {"id",      "occurred_at", "cost",
													 "team",    "initiative",  "principal",
													 "api_key", "app",         "reservation_id"};

static void
pending_reset(void)
{
	if (pending != NULL)
	{
		hash_destroy(pending);
		pending = NULL;
	}
	nsettles = 0;
}

/* a failed statement or transaction leaves nothing pending */
static void
budget_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		pending_reset();
}

static void
budget_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		pending_reset();
}

static void
ensure_pending(void)
{
	HASHCTL ctl;

	if (!callbacks_registered)
	{
		RegisterXactCallback(budget_xact_callback, NULL);
		RegisterSubXactCallback(budget_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (pending != NULL)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(PendingKey);
	ctl.entrysize = sizeof(PendingSpend);
	ctl.hcxt = TopMemoryContext;
	pending = hash_create("tokenledger pending budget spend", 16, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* the row's value of each scope's column, as C strings (NULL: none) */
static void
scope_values(char *out[], const Datum *values, const bool *nulls)
{
	static const int cols[] = {-1, A_TEAM, A_INITIATIVE, A_PRINCIPAL, A_API_KEY, A_APP};

	for (int s = SCOPE_GLOBAL; s <= SCOPE_APP; s++)
		out[s] = (cols[s] < 0 || nulls[cols[s]]) ? NULL : TextDatumGetCString(values[cols[s]]);
}

static bool
scope_matches(const CachedBudget *b, char *const row_scopes[])
{
	if (b->scope == SCOPE_GLOBAL)
		return true;
	return b->scope_value != NULL && row_scopes[b->scope] != NULL &&
		   strcmp(row_scopes[b->scope], b->scope_value) == 0;
}

static ColumnMap account_map = {InvalidOid, 0, {0}};

/* count a row's cost against its budgets, and note its reservation */
static void
account_row(Relation rel, HeapTuple tuple)
{
	TupleDesc           desc = RelationGetDescr(rel);
	Datum               values[A_NCOLS];
	bool                nulls[A_NCOLS];
	char               *row_scopes[SCOPE_APP + 1];
	int                 n;
	const CachedBudget *budgets;
	const CostValue    *c;

	map_columns(&account_map, rel, account_columns, A_NCOLS);
	cost_typid = TupleDescAttr(desc, account_map.attno[A_COST])->atttypid;
	for (int i = 0; i < A_NCOLS; i++)
		values[i] = heap_getattr(tuple, account_map.attno[i] + 1, desc, &nulls[i]);

	ensure_pending();
	if (!nulls[A_RESERVATION_ID])
	{
		if (nsettles >= settles_size)
		{
			settles_size = Max(16, settles_size * 2);
			settles = settles ? repalloc(settles, settles_size * sizeof(PendingSettle))
							  : MemoryContextAlloc(TopMemoryContext,
												   settles_size * sizeof(PendingSettle));
		}
		settles[nsettles].reservation = *DatumGetUUIDP(values[A_RESERVATION_ID]);
		settles[nsettles].usage_id = DatumGetInt64(values[A_ID]);
		nsettles++;
	}

	if (nulls[A_COST])
		return;
	c = DatumGetCostP(values[A_COST]);
	budgets = catalog_budgets(&n);
	if (n > 0)
		scope_values(row_scopes, values, nulls);
	for (int i = 0; i < n; i++)
	{
		const CachedBudget *b = &budgets[i];
		PendingKey          key;
		PendingSpend       *entry;
		bool                found;

		if (memcmp(b->amount.currency, c->currency, CURRENCY_LEN) != 0 ||
			!scope_matches(b, row_scopes))
			continue;
		memset(&key, 0, sizeof(key));
		key.budget_id = b->id;
		if (b->total)
			TIMESTAMP_NOBEGIN(key.period_start);
		else
			key.period_start = DatumGetTimestampTz(DirectFunctionCall3(
				timestamptz_trunc_zone, b->period, values[A_OCCURRED_AT], b->time_zone));
		entry = hash_search(pending, &key, HASH_ENTER, &found);
		if (!found)
		{
			entry->nanos = 0;
			memcpy(entry->currency, c->currency, sizeof(entry->currency));
		}
		entry->nanos += c->nanos;
	}
}

/* AFTER INSERT OR UPDATE trigger of usage, per row */
PG_FUNCTION_INFO_V1(budget_account);
Datum
budget_account(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "budget_account: must be fired after, for each row");

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		account_row(trigdata->tg_relation, trigdata->tg_trigtuple);
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		/* the one update the ledger allows: a missing cost filled in */
		Relation  rel = trigdata->tg_relation;
		TupleDesc desc = RelationGetDescr(rel);
		bool      old_null;
		bool      new_null;

		map_columns(&account_map, rel, account_columns, A_NCOLS);
		(void) heap_getattr(trigdata->tg_trigtuple, account_map.attno[A_COST] + 1, desc, &old_null);
		(void) heap_getattr(trigdata->tg_newtuple, account_map.attno[A_COST] + 1, desc, &new_null);
		if (old_null && !new_null)
			account_row(rel, trigdata->tg_newtuple);
	}
	return PointerGetDatum(NULL);
}

/*
 * What this backend knows of a period's alerts: the highest threshold (in
 * nanos) already alerted, and whether this transaction queued a check.
 * Alerts are never removed, so what is known stays true.
 */
typedef struct AlertKnowledge
{
	PendingKey    key;
	int64         alerted;    /* -1: none known */
	TransactionId checked_in; /* the transaction that queued a check */
} AlertKnowledge;

static HTAB *alert_knowledge = NULL;

static AlertKnowledge *
knowledge_for(const PendingKey *key)
{
	AlertKnowledge *k;
	bool            found;

	if (alert_knowledge == NULL)
	{
		HASHCTL ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(PendingKey);
		ctl.entrysize = sizeof(AlertKnowledge);
		ctl.hcxt = TopMemoryContext;
		alert_knowledge = hash_create("tokenledger budget alerts known", 64, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	k = hash_search(alert_knowledge, key, HASH_ENTER, &found);
	if (!found)
	{
		k->alerted = -1;
		k->checked_in = InvalidTransactionId;
	}
	return k;
}

/*
 * The lowest threshold above what is known to be alerted that spend "total"
 * has reached or comes within a tenth of the budget of; -1 when none.
 */
static int64
threshold_near(const CachedBudget *b, int64 alerted, int128 total)
{
	int128 margin = b->amount.nanos / 10;

	for (int i = 0; i < b->nthresholds; i++)
		if (b->thresholds[i] > alerted && total + margin >= b->thresholds[i])
			return b->thresholds[i];
	return -1;
}

static const CachedBudget *
budget_by_id(int64 id)
{
	int                 n;
	const CachedBudget *budgets = catalog_budgets(&n);

	for (int i = 0; i < n; i++)
		if (budgets[i].id == id)
			return &budgets[i];
	return NULL;
}

/*
 * A period's spend is near a threshold not known to be alerted: learn which
 * are alerted, and if one still is not, queue the commit-time check once per
 * transaction.
 */
static void
maybe_queue_check(const CachedBudget *b, const PendingKey *key, int128 total)
{
	static SPIPlanPtr alerted_plan = NULL;
	static SPIPlanPtr queue_plan = NULL;
	AlertKnowledge   *k = knowledge_for(key);
	Datum             args[2];
	bool              isnull;

	if (threshold_near(b, k->alerted, total) < 0 || k->checked_in == GetCurrentTransactionId())
		return;

	if (alerted_plan == NULL)
	{
		Oid argtypes[2] = {INT8OID, TIMESTAMPTZOID};

		alerted_plan = SPI_prepare_cursor(
			"SELECT max((tokenledger.amount(b.amount) * a.threshold * 1000000000)::bigint)"
			" FROM tokenledger.budget_alerts a JOIN tokenledger.budgets b ON b.id = a.budget_id"
			" WHERE a.budget_id = $1 AND a.period_start = $2",
			2, argtypes, CURSOR_OPT_GENERIC_PLAN);
		queue_plan = SPI_prepare_cursor("INSERT INTO tokenledger.budget_checks VALUES ($1, $2)", 2,
										argtypes, CURSOR_OPT_GENERIC_PLAN);
		if (alerted_plan == NULL || queue_plan == NULL)
			elog(ERROR, "could not prepare the budget alert statements");
		SPI_keepplan(alerted_plan);
		SPI_keepplan(queue_plan);
	}
	args[0] = Int64GetDatum(key->budget_id);
	args[1] = TimestampTzGetDatum(key->period_start);
	if (SPI_execute_plan(alerted_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read budget alerts");
	if (SPI_processed == 1)
	{
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			k->alerted = Max(k->alerted, DatumGetInt64(d));
	}
	if (threshold_near(b, k->alerted, total) < 0)
		return;
	if (SPI_execute_plan(queue_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not queue a budget alert check");
	k->checked_in = GetCurrentTransactionId();
}

/*
 * budget_spend opened for reading the periods' slots through its primary key
 * with the latest snapshot: what this transaction now sees (committed spend,
 * and its own counting so far).
 */
typedef struct SpendReader
{
	Relation rel;
	Oid      index;
	int      attno; /* of spent */
	Snapshot snapshot;
} SpendReader;

static void
spend_reader_open(SpendReader *r)
{
	Oid nsp = get_namespace_oid("tokenledger", false);

	r->rel = table_open(get_relname_relid("budget_spend", nsp), AccessShareLock);
	r->index = get_relname_relid("budget_spend_pkey", nsp);
	r->attno = SPI_fnumber(RelationGetDescr(r->rel), "spent");
	r->snapshot = RegisterSnapshot(GetLatestSnapshot());
}

static void
spend_reader_close(SpendReader *r)
{
	UnregisterSnapshot(r->snapshot);
	table_close(r->rel, AccessShareLock);
}

/* a period's spend: the sum of its slots */
static int128
period_spend(const SpendReader *r, const PendingKey *key)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple   tuple;
	int128      total = 0;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(key->budget_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_TIMESTAMP_EQ,
				TimestampTzGetDatum(key->period_start));
	scan = systable_beginscan(r->rel, r->index, true, r->snapshot, 2, keys);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool  isnull;
		Datum d = heap_getattr(tuple, r->attno, RelationGetDescr(r->rel), &isnull);

		if (!isnull)
			total += DatumGetCostP(d)->nanos;
	}
	systable_endscan(scan);
	return total;
}

static void
flush_spend(void)
{
	SpendReader       reader;
	static SPIPlanPtr plan = NULL;
	long              n = hash_get_num_entries(pending);
	Datum            *ids = palloc(n * sizeof(Datum));
	Datum            *starts = palloc(n * sizeof(Datum));
	Datum            *costs = palloc(n * sizeof(Datum));
	HASH_SEQ_STATUS   seq;
	PendingSpend     *entry;
	Datum             args[4];
	long              i = 0;

	hash_seq_init(&seq, pending);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (entry->nanos > (int128) NANOS_MAX || entry->nanos < -(int128) NANOS_MAX)
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							errmsg("spend of one statement against budget " INT64_FORMAT
								   " is out of range",
								   entry->key.budget_id)));
		ids[i] = Int64GetDatum(entry->key.budget_id);
		starts[i] = TimestampTzGetDatum(entry->key.period_start);
		costs[i] = CostPGetDatum(cost_make((int64) entry->nanos, entry->currency));
		i++;
	}

	if (plan == NULL)
	{
		Oid argtypes[4] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, get_array_type(cost_typid), INT2OID};

		plan = SPI_prepare_cursor(
			"INSERT INTO tokenledger.budget_spend AS s (budget_id, period_start, slot, spent)"
			" SELECT budget_id, period_start, $4, delta"
			" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3))"
			"      AS d(budget_id, period_start, delta)"
			" ON CONFLICT (budget_id, period_start, slot)"
			" DO UPDATE SET spent = s.spent OPERATOR(tokenledger.+) excluded.spent",
			4, argtypes, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "could not prepare the budget accounting statement");
		SPI_keepplan(plan);
	}
	args[0] = PointerGetDatum(
		construct_array(ids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = PointerGetDatum(
		construct_array(starts, (int) n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(
		construct_array(costs, (int) n, cost_typid, sizeof(CostValue), false, TYPALIGN_DOUBLE));
	args[3] = Int16GetDatum((int16) (MyBackendId % BUDGET_SLOTS));
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not count spend against budgets");

	/* queue alert checks where a threshold is near */
	spend_reader_open(&reader);
	hash_seq_init(&seq, pending);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		const CachedBudget *b = budget_by_id(entry->key.budget_id);

		if (b != NULL)
			maybe_queue_check(b, &entry->key, period_spend(&reader, &entry->key));
	}
	spend_reader_close(&reader);
}

static void
flush_settles(void)
{
	static SPIPlanPtr plan = NULL;
	Datum            *rids = palloc(nsettles * sizeof(Datum));
	Datum            *uids = palloc(nsettles * sizeof(Datum));
	Datum             args[2];

	for (int i = 0; i < nsettles; i++)
	{
		pg_uuid_t *u = palloc(sizeof(pg_uuid_t));

		*u = settles[i].reservation;
		rids[i] = UUIDPGetDatum(u);
		uids[i] = Int64GetDatum(settles[i].usage_id);
	}
	if (plan == NULL)
	{
		Oid argtypes[2] = {get_array_type(UUIDOID), INT8ARRAYOID};

		plan = SPI_prepare_cursor("SELECT tokenledger.budget_settle($1, $2)", 2, argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "could not prepare the settlement statement");
		SPI_keepplan(plan);
	}
	args[0] =
		PointerGetDatum(construct_array(rids, nsettles, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(
		construct_array(uids, nsettles, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(plan, args, NULL, false, 0) < 0)
		elog(ERROR, "could not settle reservations");
}

/* AFTER INSERT OR UPDATE trigger of usage, per statement */
PG_FUNCTION_INFO_V1(budget_account_flush);
Datum
budget_account_flush(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool         have_spend;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		elog(ERROR, "budget_account_flush: must be fired after, for each statement");

	have_spend = pending != NULL && hash_get_num_entries(pending) > 0;
	if (!have_spend && nsettles == 0)
		return PointerGetDatum(NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (have_spend)
		flush_spend();
	if (nsettles > 0)
		flush_settles();
	SPI_finish();
	pending_reset();
	return PointerGetDatum(NULL);
}
