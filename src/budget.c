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
 * (slots spread concurrent recorders over several rows; their sum is the
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

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "tokenledger.h"
#include "ledger.h"

/* slots a period's counter is split into */
#define BUDGET_SLOTS 16

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

static bool
scope_matches(const CachedBudget *b, const Datum *values, const bool *nulls)
{
	int   col;
	char *v;

	switch (b->scope)
	{
		case SCOPE_GLOBAL:
			return true;
		case SCOPE_TEAM:
			col = A_TEAM;
			break;
		case SCOPE_INITIATIVE:
			col = A_INITIATIVE;
			break;
		case SCOPE_PRINCIPAL:
			col = A_PRINCIPAL;
			break;
		case SCOPE_API_KEY:
			col = A_API_KEY;
			break;
		case SCOPE_APP:
			col = A_APP;
			break;
		default:
			return false;
	}
	if (nulls[col] || b->scope_value == NULL)
		return false;
	v = TextDatumGetCString(values[col]);
	return strcmp(v, b->scope_value) == 0;
}

static void
account_row(Relation rel, HeapTuple tuple, bool count_cost)
{
	static int          attno[A_NCOLS];
	static Oid          mapped_relid = InvalidOid;
	static int          mapped_natts = 0;
	TupleDesc           desc = RelationGetDescr(rel);
	Datum               values[A_NCOLS];
	bool                nulls[A_NCOLS];
	int                 n;
	const CachedBudget *budgets;

	if (mapped_relid != RelationGetRelid(rel) || mapped_natts != desc->natts)
	{
		for (int i = 0; i < A_NCOLS; i++)
		{
			attno[i] = SPI_fnumber(desc, account_columns[i]);
			if (attno[i] <= 0)
				elog(ERROR, "table \"%s\" has no column \"%s\"", RelationGetRelationName(rel),
					 account_columns[i]);
		}
		cost_typid = TupleDescAttr(desc, attno[A_COST] - 1)->atttypid;
		mapped_relid = RelationGetRelid(rel);
		mapped_natts = desc->natts;
	}
	for (int i = 0; i < A_NCOLS; i++)
		values[i] = heap_getattr(tuple, attno[i], desc, &nulls[i]);

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

	if (!count_cost || nulls[A_COST])
		return;
	budgets = catalog_budgets(&n);
	for (int i = 0; i < n; i++)
	{
		const CachedBudget *b = &budgets[i];
		const CostValue    *c = DatumGetCostP(values[A_COST]);
		PendingKey          key;
		PendingSpend       *entry;
		bool                found;

		if (memcmp(b->amount.currency, c->currency, CURRENCY_LEN) != 0 ||
			!scope_matches(b, values, nulls))
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
		account_row(trigdata->tg_relation, trigdata->tg_trigtuple, true);
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		/* the one update the ledger allows: a missing cost filled in */
		bool old_null;
		bool new_null;
		int  attno = SPI_fnumber(RelationGetDescr(trigdata->tg_relation), "cost");

		(void) heap_getattr(trigdata->tg_trigtuple, attno, RelationGetDescr(trigdata->tg_relation),
							&old_null);
		(void) heap_getattr(trigdata->tg_newtuple, attno, RelationGetDescr(trigdata->tg_relation),
							&new_null);
		if (old_null && !new_null)
			account_row(trigdata->tg_relation, trigdata->tg_newtuple, true);
	}
	return PointerGetDatum(NULL);
}

static void
flush_spend(void)
{
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

		plan = SPI_prepare(
			"WITH d AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
			"pg_catalog.unnest($3))"
			"                 AS d(budget_id, period_start, delta)),"
			" up AS (INSERT INTO tokenledger.budget_spend AS s (budget_id, period_start, slot, "
			"spent)"
			"        SELECT budget_id, period_start, $4, delta FROM d"
			"        ON CONFLICT (budget_id, period_start, slot)"
			"        DO UPDATE SET spent = s.spent OPERATOR(tokenledger.+) excluded.spent)"
			" INSERT INTO tokenledger.budget_checks (budget_id, period_start)"
			" SELECT d.budget_id, d.period_start FROM d JOIN tokenledger.budgets b ON b.id = "
			"d.budget_id"
			" CROSS JOIN LATERAL (SELECT tokenledger.amount(tokenledger.budget_spent(d.budget_id, "
			"d.period_start))"
			"                            + tokenledger.amount(d.delta) AS spent) t"
			" WHERE EXISTS (SELECT 1 FROM pg_catalog.unnest(b.warn_at) w"
			"               WHERE t.spent >= (w - 0.2) * tokenledger.amount(b.amount)"
			"                 AND NOT EXISTS (SELECT 1 FROM tokenledger.budget_alerts a"
			"                                 WHERE a.budget_id = d.budget_id"
			"                                   AND a.period_start = d.period_start AND "
			"a.threshold = w))",
			4, argtypes);
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
	args[3] = Int16GetDatum((int16) (MyProcPid % BUDGET_SLOTS));
	if (SPI_execute_plan(plan, args, NULL, false, 0) < 0)
		elog(ERROR, "could not count spend against budgets");
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

		plan = SPI_prepare("SELECT tokenledger.budget_settle($1, $2)", 2, argtypes);
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
