/*
 * budget.c
 *		Accounting of the ledger's spend against budgets, settlement of
 *		reservations, and budget alerts.
 *
 * Accounting.  budget_account (AFTER INSERT OR UPDATE of usage, per row,
 * cloned to partitions) adds each priced row's cost to a backend-local sum
 * per (budget, period, currency, subtransaction) for every active budget the
 * row falls under; a cost that reprice() fills in counts then too.  Spend
 * in another currency than the budget's is converted through fx_rates at
 * the row's occurred_at (as the views convert it); spend that no rate
 * converts is counted apart, in its own currency, never dropped.  Rows that
 * carry a reservation_id are noted for settlement.
 *
 * The sums are written when the statement ends (budget_account_flush, a
 * statement trigger, for the sums of the current subtransaction) and, for
 * whatever is left (rows inserted into a table with no statement trigger,
 * such as a partition), before the transaction commits or is prepared.  A
 * subtransaction that aborts takes its own sums with it, and only those; a
 * subtransaction that commits hands them to its parent.
 *
 * Counters.  budget_spend holds a period's spend in slots: a transaction
 * that writes spend first claims a slot, with a lock of its own that lasts
 * until it ends (and that a prepared transaction keeps), and then updates
 * its slot's rows through the heap and the primary key, with no SQL and no
 * snapshot: no other transaction writes that slot meanwhile, so no
 * recorder waits for another, and REPEATABLE READ recorders never meet a
 * serialization failure.  A period's spend is the sum of its slots.
 *
 * Recounts.  budget_recount counts a budget again from the ledger when its
 * definition or the exchange rates change, after the transactions that are
 * recording have ended (5 seconds at most, then 55P03), and writes the
 * difference into its own slot: one row per period, so a reader sees the
 * counters before or after it, never between.
 *
 * Alerts.  Before the transaction commits, for each (budget, period) it
 * counted spend against, in budget id order, unless the budget's bound
 * (bound.c, raised by write_counters) shows the period below the lowest
 * threshold: the period's spend including what concurrent transactions
 * have written but not committed (a dirty read) is compared with the
 * thresholds; when one that has no alert yet is
 * reached, the budget's lock is taken (waited for a second at most, then
 * noted in the server log and left to the next recording), the spend is
 * read again as committed now plus this transaction's own, and the alert
 * rows are added with a NOTIFY.  Reservations take the same locks in the
 * same order.  The check runs in a subtransaction: if it fails the
 * recording still commits, with a WARNING, and the next recording against
 * that period raises the alert.  A
 * transaction that is prepared for two-phase commit does not check (NOTIFY
 * cannot be prepared, and a lock held by a prepared transaction would stall
 * every recorder); the next recording after COMMIT PREPARED raises its
 * alerts.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#if PG_VERSION_NUM >= 170000
#define BACKEND_NUMBER MyProcNumber
#else
#include "storage/backendid.h"
#define BACKEND_NUMBER MyBackendId
#endif

#include "tokenledger.h"
#include "ledger.h"

/* slots a period's counter is split into */
#define BUDGET_SLOTS 64

/*
 * Lock tags of the extension.  Advisory lock tags whose fourth field is not
 * 1 or 2 cannot be taken from SQL, so no role can stall recording or
 * reservations by holding them.
 */
#define LOCK_KIND_SLOT   3
#define LOCK_KIND_BUDGET 4

typedef struct PendingKey
{
	int64            budget_id;
	TimestampTz      period_start;
	char             currency[CURRENCY_LEN + 1]; /* of the counter */
	SubTransactionId subid;
} PendingKey;

typedef struct PendingSpend
{
	PendingKey key;
	int128     nanos;
	bool       budget_currency; /* the counter is in the budget's currency */
} PendingSpend;

typedef struct PendingSettle
{
	pg_uuid_t        reservation;
	int64            usage_id;
	SubTransactionId subid;
} PendingSettle;

typedef struct PeriodKey
{
	int64       budget_id;
	TimestampTz period_start;
} PeriodKey;

static HTAB          *pending = NULL;
static PendingSettle *settles = NULL;
static int            nsettles = 0;
static int            settles_size = 0;
static HTAB          *touched = NULL; /* PeriodKey: periods whose alerts to check */
static int            claimed_slot = -1;

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
	A_RECORDED_AT,
	A_NCOLS
};

static const char *const account_columns[A_NCOLS] = {
	"id",        "occurred_at", "cost", "team",           "initiative",
	"principal", "api_key",     "app",  "reservation_id", "recorded_at"};

/* the budget_spend columns */
enum
{
	S_BUDGET_ID,
	S_PERIOD_START,
	S_SLOT,
	S_SPENT,
	S_NCOLS,
	S_CURRENCY = S_NCOLS /* not in the 1.0 schema: see spend_currency_attno */
};

static const char *const spend_columns[S_NCOLS] = {"budget_id", "period_start", "slot", "spent"};

static HTAB *
make_hash(const char *name, Size keysize, Size entrysize, MemoryContext cxt)
{
	HASHCTL ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cxt;
	return hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* are there sums or settlements not yet written? */
static bool
have_pending(void)
{
	return (pending != NULL && hash_get_num_entries(pending) > 0) || nsettles > 0;
}

/* an active snapshot for the internal work: the transaction's, if none is */
static bool
push_snapshot_if_none(void)
{
	if (ActiveSnapshotSet())
		return false;
	PushActiveSnapshot(GetTransactionSnapshot());
	return true;
}

static void
budget_state_reset(void)
{
	if (pending != NULL)
		hash_destroy(pending);
	if (touched != NULL)
		hash_destroy(touched);
	pending = touched = NULL;
	nsettles = 0;
	claimed_slot = -1;
}

static void   flush_pending(bool all);
static void   check_alerts(void);
static int128 period_total(const LedgerOids *o, int64 budget_id, TimestampTz period_start,
						   const char *currency, Snapshot snapshot, StringInfo others);

static void
budget_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (have_pending())
				flush_pending(true);
			if (touched != NULL && hash_get_num_entries(touched) > 0)
				check_alerts();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (have_pending())
				flush_pending(true);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			budget_state_reset();
			break;
		default:
			break;
	}
}

/*
 * A subtransaction that aborts takes its sums and settlements with it; one
 * that commits hands them to its parent.
 */
static void
budget_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	if (pending != NULL && hash_get_num_entries(pending) > 0)
	{
		HASH_SEQ_STATUS seq;
		PendingSpend   *e;
		List           *moved = NIL;
		ListCell       *lc;

		hash_seq_init(&seq, pending);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			if (e->key.subid != mySubid)
				continue;
			if (event == SUBXACT_EVENT_COMMIT_SUB)
			{
				PendingSpend *copy = MemoryContextAlloc(TopMemoryContext, sizeof(PendingSpend));

				*copy = *e;
				moved = lappend(moved, copy);
			}
			(void) hash_search(pending, &e->key, HASH_REMOVE, NULL);
		}
		foreach (lc, moved)
		{
			PendingSpend *m = lfirst(lc);
			PendingSpend *into;
			bool          found;

			m->key.subid = parentSubid;
			into = hash_search(pending, &m->key, HASH_ENTER, &found);
			if (!found)
			{
				into->nanos = 0;
				into->budget_currency = m->budget_currency;
			}
			into->nanos += m->nanos;
			pfree(m);
		}
		list_free(moved);
	}
	for (int i = 0; i < nsettles; i++)
		if (settles[i].subid == mySubid)
		{
			if (event == SUBXACT_EVENT_COMMIT_SUB)
				settles[i].subid = parentSubid;
			else
				settles[i--] = settles[--nsettles];
		}
}

/* Called from _PG_init: every transaction's end resets the state above. */
void
budget_init(void)
{
	RegisterXactCallback(budget_xact_callback, NULL);
	RegisterSubXactCallback(budget_subxact_callback, NULL);
}

/*
 * Scope matching: the one definition, used by the accounting, the recount
 * and budget_applies() (so by budget_check and budget_reserve).
 */
static const char *const scope_names[] = {"global",    "team",    "initiative",
										  "principal", "api_key", "app"};

static bool
scope_matches(BudgetScope scope, const char *scope_value, const char *const row_scopes[])
{
	if (scope == SCOPE_GLOBAL)
		return true;
	return scope_value != NULL && row_scopes[scope] != NULL &&
		   strcmp(row_scopes[scope], scope_value) == 0;
}

/* truncated to a budget's period in its time zone */
static TimestampTz
trunc_period(const CachedBudget *b, TimestampTz at)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_trunc_zone, b->period,
												   TimestampTzGetDatum(at), b->time_zone));
}

/*
 * The start of the period a time falls in: the one definition.  Rows come
 * in time order, so the last period found is kept on the budget and the
 * time zone is consulted only when a row falls outside it.
 */
static TimestampTz
period_of(const CachedBudget *b, TimestampTz at)
{
	CachedBudget *cache = unconstify(CachedBudget *, b);
	TimestampTz   start;
	int64         longest; /* a period's longest length, daylight saving included */
	char         *period;

	if (b->total)
	{
		TIMESTAMP_NOBEGIN(start);
		return start;
	}
	if (b->period_from < b->period_until && at >= b->period_from && at < b->period_until)
		return b->period_from;
	start = trunc_period(b, at);
	if (TIMESTAMP_NOT_FINITE(start) || TIMESTAMP_NOT_FINITE(at))
		return start;

	/*
	 * The next period starts where "start + longest" falls, which is within
	 * the next period; that it does (the microsecond before it is still in
	 * this period) is checked, and nothing is kept if it is not.
	 */
	period = TextDatumGetCString(b->period);
	if (strcmp(period, "day") == 0)
		longest = 26 * USECS_PER_HOUR;
	else if (strcmp(period, "week") == 0)
		longest = 8 * USECS_PER_DAY;
	else if (strcmp(period, "month") == 0)
		longest = 32 * USECS_PER_DAY;
	else if (strcmp(period, "quarter") == 0)
		longest = 93 * USECS_PER_DAY;
	else
		longest = 367 * USECS_PER_DAY;
	pfree(period);
	cache->period_from = cache->period_until = 0;
	if (start < END_TIMESTAMP - longest)
	{
		TimestampTz next = trunc_period(b, start + longest);

		if (next > start && trunc_period(b, next - 1) == start)
		{
			cache->period_from = start;
			cache->period_until = next;
		}
	}
	return start;
}

/*
 * Count a cost against a budget into a table of PendingSpend: converted to
 * the budget's currency at the row's time, or in its own currency when no
 * rate converts it.
 */
static void
count_into(HTAB *into, const CachedBudget *b, TimestampTz at, const CostValue *c,
		   SubTransactionId subid)
{
	PendingKey    key;
	PendingSpend *entry;
	bool          found;
	int64         nanos = c->nanos;
	bool          converted = true;

	if (memcmp(b->amount.currency, c->currency, CURRENCY_LEN) != 0)
		converted = catalog_convert(c->nanos, c->currency, b->amount.currency, at, &nanos);
	memset(&key, 0, sizeof(key));
	key.budget_id = b->id;
	key.period_start = period_of(b, at);
	memcpy(key.currency, converted ? b->amount.currency : c->currency, CURRENCY_LEN);
	key.subid = subid;
	entry = hash_search(into, &key, HASH_ENTER, &found);
	if (!found)
	{
		entry->nanos = 0;
		entry->budget_currency = converted;
	}
	entry->nanos += nanos; /* the cost's own nanos when not converted */
}

static ColumnMap account_map = {InvalidOid, 0, {0}};

/* the row's value of each scope's column, as C strings (NULL: none) */
static void
scope_values(const char *out[], const Datum *values, const bool *nulls)
{
	static const int cols[] = {-1, A_TEAM, A_INITIATIVE, A_PRINCIPAL, A_API_KEY, A_APP};

	for (int s = SCOPE_GLOBAL; s <= SCOPE_APP; s++)
		out[s] = (cols[s] < 0 || nulls[cols[s]]) ? NULL : TextDatumGetCString(values[cols[s]]);
}

/* count a row's cost against its budgets, and note its reservation */
static void
account_row(Relation rel, TupleTableSlot *slot, bool inserted)
{
	Datum               values[A_NCOLS];
	bool                nulls[A_NCOLS];
	const char         *row_scopes[SCOPE_APP + 1];
	int                 n;
	const CachedBudget *budgets;
	const CostValue    *c;
	TimestampTz         at;
	SubTransactionId    subid = GetCurrentSubTransactionId();

	map_columns(&account_map, rel, account_columns, A_NCOLS);
	slot_getallattrs(slot);
	for (int i = 0; i < A_NCOLS; i++)
	{
		values[i] = slot->tts_values[account_map.attno[i]];
		nulls[i] = slot->tts_isnull[account_map.attno[i]];
	}

	/* a restored row was counted where it was first recorded */
	if (inserted && !nulls[A_RECORDED_AT] &&
		ledger_row_restored(rel, DatumGetTimestampTz(values[A_RECORDED_AT])))
		return;

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
		settles[nsettles].subid = subid;
		nsettles++;
	}

	if (nulls[A_COST])
		return;
	c = DatumGetCostP(values[A_COST]);
	at = DatumGetTimestampTz(values[A_OCCURRED_AT]);
	budgets = catalog_budgets(&n);
	if (n == 0)
		return;
	scope_values(row_scopes, values, nulls);
	for (int i = 0; i < n; i++)
	{
		if (!scope_matches(budgets[i].scope, budgets[i].scope_value, row_scopes))
			continue;
		if (pending == NULL)
			pending = make_hash("tokenledger pending budget spend", sizeof(PendingKey),
								sizeof(PendingSpend), TopMemoryContext);
		count_into(pending, &budgets[i], at, c, subid);
	}
}

/*
 * AFTER INSERT OR UPDATE trigger of usage, per row.  The row is read from
 * the trigger's slot, deformed once for the budgets and the rollups.
 */
PG_FUNCTION_INFO_V1(budget_account);
Datum
budget_account(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "budget_account: must be fired after, for each row");

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		account_row(trigdata->tg_relation, trigdata->tg_trigslot, true);
		rollup_usage_row(trigdata->tg_relation, trigdata->tg_trigslot, true, 1);
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		/* the one update the ledger allows: a missing cost filled in */
		Relation rel = trigdata->tg_relation;
		int      cost_att;

		/* the rollups move the row from what it was to what it is */
		rollup_usage_row(rel, trigdata->tg_trigslot, false, -1);
		rollup_usage_row(rel, trigdata->tg_newslot, false, 1);
		map_columns(&account_map, rel, account_columns, A_NCOLS);
		cost_att = account_map.attno[A_COST];
		slot_getallattrs(trigdata->tg_trigslot);
		slot_getallattrs(trigdata->tg_newslot);
		if (trigdata->tg_trigslot->tts_isnull[cost_att] &&
			!trigdata->tg_newslot->tts_isnull[cost_att])
			account_row(rel, trigdata->tg_newslot, false);
	}
	return PointerGetDatum(NULL);
}

static void
lock_tag(LOCKTAG *tag, uint16 kind, int64 key)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) ((uint64) key >> 32), (uint32) key, kind);
}

/*
 * The slot this transaction writes its spend into, locked until the
 * transaction ends (a prepared transaction keeps it): the first free one of
 * the shared slots, from the backend's own on; when all are taken, a slot of
 * the backend's own beyond them (so a period has at most BUDGET_SLOTS +
 * max_connections rows).  A recorder waits only when a prepared transaction
 * holds that one.
 */
int
ledger_claim_slot(void)
{
	LOCKTAG       tag;
	int           own = (int) BACKEND_NUMBER;
	int           start;
	ResourceOwner save_owner;

	if (claimed_slot >= 0)
		return claimed_slot;
	if (own < 0)
		own = 0;
	start = own % BUDGET_SLOTS;

	/*
	 * The lock belongs to the top transaction: a subtransaction that rolls
	 * back must not give up a slot that the transaction goes on writing.
	 */
	save_owner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	for (int i = 0; i < BUDGET_SLOTS && claimed_slot < 0; i++)
	{
		int s = (start + i) % BUDGET_SLOTS;

		lock_tag(&tag, LOCK_KIND_SLOT, s);
		if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			claimed_slot = s;
	}
	if (claimed_slot < 0)
	{
		lock_tag(&tag, LOCK_KIND_SLOT, BUDGET_SLOTS + own);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		claimed_slot = BUDGET_SLOTS + own;
	}
	CurrentResourceOwner = save_owner;
	return claimed_slot;
}

/*
 * Take a slot's lock for the rest of the transaction if it is free now:
 * while this transaction holds it, no other writes that slot's counters
 * and rollup rows (rollup_compact merges them).
 */
bool
ledger_try_lock_slot(int slot)
{
	LOCKTAG           tag;
	ResourceOwner     save_owner = CurrentResourceOwner;
	LockAcquireResult r;

	lock_tag(&tag, LOCK_KIND_SLOT, slot);
	CurrentResourceOwner = TopTransactionResourceOwner;
	r = LockAcquire(&tag, ExclusiveLock, false, true);
	CurrentResourceOwner = save_owner;
	return r != LOCKACQUIRE_NOT_AVAIL;
}

static ColumnMap spend_map = {InvalidOid, 0, {0}};

/*
 * budget_spend's currency column, or 0 in a database still at version 1.0
 * (where counters hold the budget's currency only, as 1.0 counted them),
 * so that the module serves it until ALTER EXTENSION tokenledger UPDATE.
 */
static AttrNumber spend_currency_attno = 0;

/* map budget_spend's columns, once per relation */
static void
map_spend(Relation rel)
{
	Oid relid = spend_map.relid;
	int natts = spend_map.natts;

	map_columns(&spend_map, rel, spend_columns, S_NCOLS);
	if (spend_map.relid != relid || spend_map.natts != natts || relid == InvalidOid)
	{
		int attno = SPI_fnumber(RelationGetDescr(rel), "currency");

		spend_currency_attno = attno > 0 ? (AttrNumber) attno : 0;
	}
}

/* the heap attribute number of a column (scan keys name heap columns) */
static AttrNumber
column_attno(Relation rel, const char *name)
{
	int attno = SPI_fnumber(RelationGetDescr(rel), name);

	if (attno <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), name),
				 errhint("Update the extension: ALTER EXTENSION tokenledger UPDATE.")));
	return (AttrNumber) attno;
}

/* scan keys for one budget's period: budget_id and period_start, by column number */
static void
init_period_keys_at(ScanKeyData *keys, AttrNumber budget_att, AttrNumber period_att,
					int64 budget_id, TimestampTz period_start)
{
	ScanKeyInit(&keys[0], budget_att, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(budget_id));
	ScanKeyInit(&keys[1], period_att, BTEqualStrategyNumber, F_TIMESTAMP_EQ,
				TimestampTzGetDatum(period_start));
}

/* the same, by column name */
static void
init_period_keys(ScanKeyData *keys, Relation rel, int64 budget_id, TimestampTz period_start)
{
	init_period_keys_at(keys, column_attno(rel, "budget_id"), column_attno(rel, "period_start"),
						budget_id, period_start);
}

/* the same for budget_spend, whose columns are mapped */
static void
init_spend_period_keys(ScanKeyData *keys, int64 budget_id, TimestampTz period_start)
{
	init_period_keys_at(keys, spend_map.attno[S_BUDGET_ID] + 1, spend_map.attno[S_PERIOD_START] + 1,
						budget_id, period_start);
}

/*
 * The row version at a remembered TID, when it is visible (committed, or
 * this transaction's own) and the newest of its row: pinned in *buf.  The
 * page is pruned first, as an index fetch would, so that the versions this
 * backend leaves behind are removed and its next update fits on the page
 * (HOT, no index entry); before the fetch, as pruning moves tuples.
 */
bool
ledger_fetch_newest(Relation rel, BlockNumber nblocks, const ItemPointerData *tid, HeapTuple tup,
					Buffer *buf)
{
	*buf = InvalidBuffer;
	if (!ItemPointerIsValid(tid) || ItemPointerGetBlockNumber(tid) >= nblocks)
		return false;
	*buf = ReadBuffer(rel, ItemPointerGetBlockNumber(tid));
	heap_page_prune_opt(rel, *buf);
	ReleaseBuffer(*buf);
	*buf = InvalidBuffer;
	tup->t_self = *tid;
	if (!heap_fetch(rel, SnapshotSelf, tup, buf, false))
		return false;
	if (ItemPointerEquals(&tup->t_self, &tup->t_data->t_ctid))
		return true;
	ReleaseBuffer(*buf);
	*buf = InvalidBuffer;
	return false;
}

/*
 * Where this backend last wrote each counter row of its slot (the key's
 * subid holding the slot): a backend mostly records into the same slot, so
 * the next statement finds the row by its TID, without the index.  A TID is
 * only a hint: the row found there is used only when it is visible, is the
 * newest version, and has that budget, period, slot and currency; else the
 * index is searched.
 */
typedef struct SpendTid
{
	PendingKey      key;
	ItemPointerData tid;
} SpendTid;

#define SPEND_TIDS_MAX 4096
static HTAB  *spend_tids = NULL;
static uint64 spend_tids_generation = 0;

static SpendTid *
spend_tid(const PendingKey *counter, int slot, bool create)
{
	uint64     generation = ledger_oids()->generation;
	PendingKey k = *counter;

	if (spend_tids != NULL &&
		(spend_tids_generation != generation || hash_get_num_entries(spend_tids) >= SPEND_TIDS_MAX))
	{
		hash_destroy(spend_tids);
		spend_tids = NULL;
	}
	if (spend_tids == NULL)
	{
		if (!create)
			return NULL;
		spend_tids = make_hash("tokenledger counter rows", sizeof(PendingKey), sizeof(SpendTid),
							   TopMemoryContext);
		spend_tids_generation = generation;
	}
	k.subid = (SubTransactionId) slot;
	return hash_search(spend_tids, &k, create ? HASH_ENTER : HASH_FIND, NULL);
}

/* the counter row at a remembered TID, if it is still the slot's row of the counter */
static bool
spend_row_by_tid(Relation rel, BlockNumber nblocks, const PendingKey *counter, int slot,
				 HeapTuple tup, Buffer *buf)
{
	TupleDesc desc = RelationGetDescr(rel);
	SpendTid *t = spend_tid(counter, slot, false);
	bool      isnull;
	bool      same;

	if (t == NULL || !ledger_fetch_newest(rel, nblocks, &t->tid, tup, buf))
		return false;
	same = DatumGetInt64(heap_getattr(tup, spend_map.attno[S_BUDGET_ID] + 1, desc, &isnull)) ==
			   counter->budget_id &&
		   DatumGetTimestampTz(heap_getattr(tup, spend_map.attno[S_PERIOD_START] + 1, desc,
											&isnull)) == counter->period_start &&
		   DatumGetInt16(heap_getattr(tup, spend_map.attno[S_SLOT] + 1, desc, &isnull)) == slot;
	if (same)
	{
		Datum d = heap_getattr(tup, spend_map.attno[S_SPENT] + 1, desc, &isnull);

		same = !isnull && memcmp(DatumGetCostP(d)->currency, counter->currency, CURRENCY_LEN) == 0;
	}
	if (!same)
	{
		ReleaseBuffer(*buf);
		*buf = InvalidBuffer;
	}
	return same;
}

/*
 * Add to one counter row of a slot (creating it when absent) as much of
 * "delta" as the row can hold; returns the rest.
 */
static int128
add_to_slot_row(Relation rel, BlockNumber nblocks, CatalogIndexState indstate, const LedgerOids *o,
				const PendingSpend *e, int slot, int128 delta)
{
	TupleDesc     desc = RelationGetDescr(rel);
	ScanKeyData   keys[4];
	SysScanDesc   scan = NULL;
	HeapTuple     tup = NULL;
	HeapTupleData by_tid;
	Buffer        buf = InvalidBuffer;
	AttrNumber    currency_attno = spend_currency_attno;
	int128        before = 0;
	int128        after;

	if (spend_row_by_tid(rel, nblocks, &e->key, slot, &by_tid, &buf))
		tup = &by_tid;
	else
	{
		init_spend_period_keys(keys, e->key.budget_id, e->key.period_start);
		ScanKeyInit(&keys[2], spend_map.attno[S_SLOT] + 1, BTEqualStrategyNumber, F_INT2EQ,
					Int16GetDatum((int16) slot));
		if (currency_attno > 0)
			ScanKeyInit(&keys[3], currency_attno, BTEqualStrategyNumber, F_TEXTEQ,
						CStringGetTextDatum(e->key.currency));
		scan = systable_beginscan(rel, o->budget_spend_key, true, SnapshotSelf,
								  currency_attno > 0 ? 4 : 3, keys);
		tup = systable_getnext(scan);
	}
	if (HeapTupleIsValid(tup))
	{
		bool  isnull;
		Datum d = heap_getattr(tup, spend_map.attno[S_SPENT] + 1, desc, &isnull);

		if (!isnull)
			before = DatumGetCostP(d)->nanos;
	}
	after = before + delta;
	if (after > (int128) NANOS_MAX)
		after = NANOS_MAX;
	else if (after < -(int128) NANOS_MAX)
		after = -NANOS_MAX;
	if (after != before && HeapTupleIsValid(tup))
	{
		int       col = spend_map.attno[S_SPENT] + 1;
		Datum     v = CostPGetDatum(cost_make((int64) after, e->key.currency));
		bool      n = false;
		HeapTuple newtup = heap_modify_tuple_by_cols(tup, desc, 1, &col, &v, &n);

		CatalogTupleUpdateWithInfo(rel, &tup->t_self, newtup, indstate);
		spend_tid(&e->key, slot, true)->tid = newtup->t_self;
		heap_freetuple(newtup);
	}
	else if (after != before)
	{
		Datum    *values = palloc(desc->natts * sizeof(Datum));
		bool     *nulls = palloc(desc->natts * sizeof(bool));
		HeapTuple newtup;

		for (int i = 0; i < desc->natts; i++)
			nulls[i] = true;
		values[spend_map.attno[S_BUDGET_ID]] = Int64GetDatum(e->key.budget_id);
		values[spend_map.attno[S_PERIOD_START]] = TimestampTzGetDatum(e->key.period_start);
		values[spend_map.attno[S_SLOT]] = Int16GetDatum((int16) slot);
		values[spend_map.attno[S_SPENT]] = CostPGetDatum(cost_make((int64) after, e->key.currency));
		for (int i = 0; i < S_NCOLS; i++)
			nulls[spend_map.attno[i]] = false;
		if (currency_attno > 0)
		{
			values[currency_attno - 1] = CStringGetTextDatum(e->key.currency);
			nulls[currency_attno - 1] = false;
		}
		newtup = heap_form_tuple(desc, values, nulls);
		CatalogTupleInsertWithInfo(rel, newtup, indstate);
		spend_tid(&e->key, slot, true)->tid = newtup->t_self;
		heap_freetuple(newtup);
	}
	if (BufferIsValid(buf))
		ReleaseBuffer(buf);
	if (scan != NULL)
		systable_endscan(scan);
	return delta - (after - before);
}

/*
 * Add nanos to this transaction's slot of a counter.  A counter row holds
 * at most what a cost can; spend beyond it goes on in further rows of the
 * same slot (slot + k x SLOT_SPILL), which only this transaction writes
 * either, so recording never fails because a counter is full.
 */
#define SLOT_SPILL 10000

static void
add_to_slot(Relation rel, BlockNumber nblocks, CatalogIndexState indstate, const LedgerOids *o,
			const PendingSpend *e, int slot)
{
	int128 remaining = e->nanos;

	for (int k = 0; remaining != 0; k++)
	{
		if (slot + k * SLOT_SPILL > PG_INT16_MAX)
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							errmsg("spend counted against budget " INT64_FORMAT
								   " in one period is out of range",
								   e->key.budget_id)));
		remaining = add_to_slot_row(rel, nblocks, indstate, o, e, slot + k * SLOT_SPILL, remaining);
	}
}

/* write counted spend into the counters; each entry's key is its counter */
static void
write_counters(PendingSpend **entries, int n, bool note_touched)
{
	const LedgerOids *o = ledger_oids();
	Relation          rel;
	CatalogIndexState indstate;
	BlockNumber       nblocks;
	BoundRel          bounds;
	bool              have_bounds;
	BoundAdd         *adds;
	int               nadds = 0;
	int               slot;

	if (n == 0)
		return;
	adds = palloc(n * sizeof(BoundAdd));
	slot = ledger_claim_slot();
	rel = table_open(o->budget_spend, RowExclusiveLock);
	map_spend(rel);
	indstate = CatalogOpenIndexes(rel);
	nblocks = RelationGetNumberOfBlocks(rel);
	have_bounds = note_touched && bound_open(&bounds, RowExclusiveLock);
	for (int i = 0; i < n; i++)
	{
		PendingSpend *e = entries[i];

		if (e->nanos != 0 && (e->budget_currency || spend_currency_attno > 0))
			add_to_slot(rel, nblocks, indstate, o, e, slot);
		if (have_bounds && e->budget_currency && e->nanos > 0)
		{
			BoundAdd           *a = &adds[nadds++];
			const CachedBudget *b = catalog_budget(e->key.budget_id);

			a->budget_id = e->key.budget_id;
			a->period_start = e->key.period_start;
			a->nanos = e->nanos > PG_INT64_MAX ? PG_INT64_MAX : (int64) e->nanos;
			a->begun = b != NULL && e->key.period_start <= period_of(b, GetCurrentTimestamp());
			a->limit = b != NULL && b->nthresholds > 0 ? b->thresholds[0] : PG_INT64_MAX;
		}
		if (note_touched && e->budget_currency)
		{
			PeriodKey k;

			memset(&k, 0, sizeof(k));
			k.budget_id = e->key.budget_id;
			k.period_start = e->key.period_start;
			if (touched == NULL)
				touched = make_hash("tokenledger budget periods to check", sizeof(PeriodKey),
									sizeof(PeriodKey), TopMemoryContext);
			(void) hash_search(touched, &k, HASH_ENTER, NULL);
		}
	}
	CatalogCloseIndexes(indstate);
	table_close(rel, NoLock);
	CommandCounterIncrement();
	if (have_bounds)
	{
		bound_add_all(&bounds, adds, nadds);
		bound_close(&bounds);
	}
}

/* settle the reservations that recorded rows name */
static void
flush_settles(PendingSettle *batch, int n)
{
	static KeptPlan settle_plan;
	static KeptPlan release_plan;
	OwnerSql        owner;
	Datum          *rids = palloc(n * sizeof(Datum));
	Datum          *uids = palloc(n * sizeof(Datum));
	Oid             argtypes[2] = {UUIDARRAYOID, INT8ARRAYOID};
	Datum           args[2];
	Snapshot        snapshot;

	for (int i = 0; i < n; i++)
	{
		pg_uuid_t *u = palloc(sizeof(pg_uuid_t));

		*u = batch[i].reservation;
		rids[i] = UUIDPGetDatum(u);
		uids[i] = Int64GetDatum(batch[i].usage_id);
	}
	args[0] = PointerGetDatum(construct_array(rids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] =
		PointerGetDatum(construct_array(uids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	owner_sql_begin(&owner);
	/* the reservations as committed now, whatever the transaction's snapshot */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	if (SPI_execute_snapshot(
			owner_sql_plan(&settle_plan,
						   "UPDATE tokenledger.budget_reservations r"
						   " SET settled_at = pg_catalog.now(), settled_by = s.usage_id"
						   " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
						   "      AS s(reservation_id, usage_id)"
						   " WHERE r.id OPERATOR(pg_catalog.=) s.reservation_id"
						   "   AND r.settled_at IS NULL AND r.released_at IS NULL",
						   2, argtypes),
			args, NULL, snapshot, InvalidSnapshot, false, true, 0) < 0 ||
		SPI_execute_snapshot(
			owner_sql_plan(&release_plan,
						   "DELETE FROM tokenledger.budget_holds h"
						   " WHERE h.reservation_id OPERATOR(pg_catalog.=) ANY ($1)",
						   1, argtypes),
			args, NULL, snapshot, InvalidSnapshot, false, true, 0) < 0)
		elog(ERROR, "could not settle reservations");
	UnregisterSnapshot(snapshot);
	owner_sql_end(&owner);
}

/*
 * Write the pending sums (of the current subtransaction, or all of them)
 * and settle the pending reservations.
 */
static void
flush_pending(bool all)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	bool             snapshot_pushed = push_snapshot_if_none();

	if (pending != NULL && hash_get_num_entries(pending) > 0)
	{
		HASH_SEQ_STATUS seq;
		PendingSpend   *e;
		PendingSpend  **batch = palloc(hash_get_num_entries(pending) * sizeof(PendingSpend *));
		int             n = 0;

		hash_seq_init(&seq, pending);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (all || e->key.subid == cur)
			{
				PendingSpend *copy = palloc(sizeof(PendingSpend));

				*copy = *e;
				batch[n++] = copy;
			}
		write_counters(batch, n, true);
		for (int i = 0; i < n; i++)
			(void) hash_search(pending, &batch[i]->key, HASH_REMOVE, NULL);
	}
	if (nsettles > 0)
	{
		PendingSettle *mine = palloc(nsettles * sizeof(PendingSettle));
		int            nmine = 0;

		for (int i = 0; i < nsettles; i++)
			if (all || settles[i].subid == cur)
			{
				mine[nmine++] = settles[i];
				settles[i--] = settles[--nsettles];
			}
		if (nmine > 0)
			flush_settles(mine, nmine);
	}
	if (snapshot_pushed)
		PopActiveSnapshot();
}

/* AFTER INSERT OR UPDATE trigger of usage, per statement */
PG_FUNCTION_INFO_V1(budget_account_flush);
Datum
budget_account_flush(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		elog(ERROR, "budget_account_flush: must be fired after, for each statement");
	if (have_pending())
		flush_pending(false);
	rollup_flush(false);
	return PointerGetDatum(NULL);
}

/*
 * A period's spend in one currency, as a snapshot sees it; the other
 * currencies' spend, when asked for, as text ("1.50 EUR, 2.00 GBP").
 */
static int128
period_total(const LedgerOids *o, int64 budget_id, TimestampTz period_start, const char *currency,
			 Snapshot snapshot, StringInfo others)
{
	Relation    rel = table_open(o->budget_spend, AccessShareLock);
	TupleDesc   desc = RelationGetDescr(rel);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple   tup;
	int128      total = 0;
	HTAB       *other = NULL;

	map_spend(rel);
	init_spend_period_keys(keys, budget_id, period_start);
	scan = systable_beginscan(rel, o->budget_spend_key, true, snapshot, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool       isnull;
		Datum      d = heap_getattr(tup, spend_map.attno[S_SPENT] + 1, desc, &isnull);
		CostValue *c;

		if (isnull)
			continue;
		c = DatumGetCostP(d);
		if (memcmp(c->currency, currency, CURRENCY_LEN) == 0)
			total += c->nanos;
		else if (others != NULL)
		{
			PendingSpend *e;
			PendingKey    k;
			bool          found;

			if (other == NULL)
				other = make_hash("other currencies", sizeof(PendingKey), sizeof(PendingSpend),
								  CurrentMemoryContext);
			memset(&k, 0, sizeof(k));
			memcpy(k.currency, c->currency, CURRENCY_LEN);
			e = hash_search(other, &k, HASH_ENTER, &found);
			if (!found)
				e->nanos = 0;
			e->nanos += c->nanos;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (other != NULL)
	{
		/* in currency order */
		for (;;)
		{
			HASH_SEQ_STATUS seq;
			PendingSpend   *e;
			PendingSpend   *first = NULL;

			hash_seq_init(&seq, other);
			while ((e = hash_seq_search(&seq)) != NULL)
				if (first == NULL || strcmp(e->key.currency, first->key.currency) < 0)
					first = e;
			if (first == NULL)
				break;
			if (first->nanos != 0)
			{
				if (others->len > 0)
					appendStringInfoString(others, ", ");
				format_nanos(others, (int64) first->nanos, 2);
				appendStringInfo(others, " %s", first->key.currency);
			}
			(void) hash_search(other, &first->key, HASH_REMOVE, NULL);
		}
		hash_destroy(other);
	}
	return total;
}

/* the warn_at values of a budget that have alerts in a period */
static void
alerted_thresholds(const LedgerOids *o, const CachedBudget *b, TimestampTz period_start,
				   Snapshot snapshot, bool *alerted)
{
	Relation    rel = table_open(o->budget_alerts, AccessShareLock);
	TupleDesc   desc = RelationGetDescr(rel);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple   tup;
	int         attno = SPI_fnumber(RelationGetDescr(rel), "threshold");

	for (int t = 0; t < b->nthresholds; t++)
		alerted[t] = false;
	init_period_keys(keys, rel, b->id, period_start);
	scan = systable_beginscan(rel, o->budget_alerts_key, true, snapshot, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool  isnull;
		Datum d = heap_getattr(tup, attno, desc, &isnull);

		for (int t = 0; !isnull && t < b->nthresholds; t++)
			if (DatumGetBool(DirectFunctionCall2(numeric_eq, d, b->warn_at[t])))
				alerted[t] = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* is a threshold that has no alert reached by spend? */
static bool
alert_due(const CachedBudget *b, const bool *alerted, int128 spend)
{
	for (int t = 0; t < b->nthresholds; t++)
		if (!alerted[t] && spend >= b->thresholds[t])
			return true;
	return false;
}

static void
lock_budget_id(int64 budget_id)
{
	LOCKTAG tag;

	lock_tag(&tag, LOCK_KIND_BUDGET, budget_id);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * The budget's lock for a commit-time alert check: waited for a second at
 * most.  Concurrent committers and reservers hold it for milliseconds; one
 * that holds it longer (a prepared reserver, or one whose own commit checks
 * budgets in another order) must not stall this commit, and the next
 * recording against the period raises what this one could not.
 */
static bool
lock_budget_briefly(int64 budget_id)
{
	LOCKTAG tag;

	lock_tag(&tag, LOCK_KIND_BUDGET, budget_id);
	for (int i = 0; i < 100; i++)
	{
		if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
	ereport(
		LOG,
		(errmsg("budget alerts of budget " INT64_FORMAT " were not checked: another transaction "
				"holds the budget",
				budget_id),
		 errdetail("The spend is recorded and counted."),
		 errhint("A transaction that reserved against the budget is still open (prepared, or "
				 "idle); the next recording after it ends raises the alerts.")));
	return false;
}

static void
raise_alert(const CachedBudget *b, TimestampTz period_start, Datum warn_at, int64 spent)
{
	static KeptPlan   plan;
	const LedgerOids *o = ledger_oids();
	Oid      argtypes[5] = {INT8OID, TIMESTAMPTZOID, NUMERICOID, o->cost_type, o->cost_type};
	Datum    args[5];
	OwnerSql owner;

	args[0] = Int64GetDatum(b->id);
	args[1] = TimestampTzGetDatum(period_start);
	args[2] = warn_at;
	args[3] = CostPGetDatum(cost_make(spent, b->amount.currency));
	args[4] = CostPGetDatum(cost_make(b->amount.nanos, b->amount.currency));
	owner_sql_begin(&owner);
	if (SPI_execute_plan(
			owner_sql_plan(
				&plan,
				"WITH a AS (INSERT INTO tokenledger.budget_alerts AS a"
				"    (budget_id, period_start, threshold, spent, amount)"
				"  SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT FROM tokenledger.budgets x"
				"                                          WHERE x.id OPERATOR(pg_catalog.=) $1)"
				"  ON CONFLICT (budget_id, period_start, threshold) DO NOTHING RETURNING a.id)"
				" SELECT pg_catalog.pg_notify('tokenledger_budget', pg_catalog.json_build_object("
				"  'alert_id', a.id, 'budget_id', b.id, 'budget', b.name, 'scope', b.scope,"
				"  'scope_value', b.scope_value, 'period', b.period, 'period_start', $2,"
				"  'threshold', $3, 'spent', tokenledger.amount($4),"
				"  'amount', tokenledger.amount($5), 'currency', tokenledger.currency($5),"
				"  'mode', b.mode)::pg_catalog.text)"
				" FROM a, tokenledger.budgets b WHERE b.id OPERATOR(pg_catalog.=) $1",
				5, argtypes),
			args, NULL, false, 0) < 0)
		elog(ERROR, "could not raise a budget alert");
	owner_sql_end(&owner);
}

static int
period_key_cmp(const void *a, const void *b)
{
	const PeriodKey *x = a;
	const PeriodKey *y = b;

	if (x->budget_id != y->budget_id)
		return x->budget_id < y->budget_id ? -1 : 1;
	if (x->period_start != y->period_start)
		return x->period_start < y->period_start ? -1 : 1;
	return 0;
}

/* the alerts of the periods this transaction counted spend against */
static void
check_periods(PeriodKey *keys, int n)
{
	const LedgerOids *o = ledger_oids();
	SnapshotData      dirty;
	BoundRel          bounds;
	bool              have_bounds = bound_open(&bounds, AccessShareLock);

	InitDirtySnapshot(dirty);
	for (int i = 0; i < n; i++)
	{
		const CachedBudget *b = catalog_budget(keys[i].budget_id);
		bool               *alerted;
		int128              spend;

		if (b == NULL || b->nthresholds == 0)
			continue;
		/* far below the thresholds: the counters need not be read */
		if (have_bounds && bound_below(&bounds, b->id, keys[i].period_start, b->thresholds[0]))
			continue;
		/*
		 * Committed, in progress elsewhere, and this transaction's own.  (A
		 * row being updated by a transaction in progress is seen in both its
		 * versions: the estimate errs towards checking.)
		 */
		spend = period_total(o, b->id, keys[i].period_start, b->amount.currency, &dirty, NULL);
		if (spend < b->thresholds[0])
			continue;
		alerted = palloc(sizeof(bool) * b->nthresholds);
		alerted_thresholds(o, b, keys[i].period_start, SnapshotSelf, alerted);
		if (!alert_due(b, alerted, spend))
			continue;

		/*
		 * What is committed once the budget is ours, and this transaction's
		 * own.  The reads take no snapshot (so no predicate locks under
		 * SERIALIZABLE): each transaction's spend in a period is one row, so
		 * they see each transaction's spend whole or not at all.
		 */
		if (!lock_budget_briefly(b->id))
			continue;
		spend =
			period_total(o, b->id, keys[i].period_start, b->amount.currency, SnapshotSelf, NULL);
		alerted_thresholds(o, b, keys[i].period_start, SnapshotSelf, alerted);
		for (int t = 0; t < b->nthresholds; t++)
			if (!alerted[t] && spend >= b->thresholds[t])
				raise_alert(b, keys[i].period_start, b->warn_at[t],
							spend > NANOS_MAX ? NANOS_MAX : (int64) spend);
	}
	if (have_bounds)
		bound_close(&bounds);
}

/*
 * Before commit: check the alerts, in budget id order, in a subtransaction
 * whose failure never fails the recording.
 */
static void
check_alerts(void)
{
	MemoryContext   oldcontext = CurrentMemoryContext;
	ResourceOwner   oldowner = CurrentResourceOwner;
	HASH_SEQ_STATUS seq;
	PeriodKey      *k;
	PeriodKey      *keys;
	int             n = 0;

	keys = palloc(hash_get_num_entries(touched) * sizeof(PeriodKey));
	hash_seq_init(&seq, touched);
	while ((k = hash_seq_search(&seq)) != NULL)
		keys[n++] = *k;
	qsort(keys, n, sizeof(PeriodKey), period_key_cmp);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		bool snapshot_pushed = push_snapshot_if_none();

		check_periods(keys, n);
		if (snapshot_pushed)
			PopActiveSnapshot();
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("budget alerts were not checked: %s", edata->message),
				 errdetail("The spend is recorded and counted."),
				 errhint("The next recording against the budget raises the alerts it reaches.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (touched != NULL)
		hash_destroy(touched);
	touched = NULL;
}

/*
 * budget_applies(budgets, team, initiative, principal, api_key, app): does an
 * active budget apply to a call with these attributes?
 */
PG_FUNCTION_INFO_V1(budget_applies);
Datum
budget_applies(PG_FUNCTION_ARGS)
{
	HeapTupleHeader b;
	bool            isnull;
	Datum           d;
	const char     *row_scopes[SCOPE_APP + 1];
	char           *scope;
	char           *scope_value = NULL;
	int             s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	b = PG_GETARG_HEAPTUPLEHEADER(0);
	d = GetAttributeByName(b, "active", &isnull);
	if (isnull || !DatumGetBool(d))
		PG_RETURN_BOOL(false);
	d = GetAttributeByName(b, "scope", &isnull);
	if (isnull)
		PG_RETURN_BOOL(false);
	scope = TextDatumGetCString(d);
	for (s = 0; s < (int) lengthof(scope_names); s++)
		if (strcmp(scope, scope_names[s]) == 0)
			break;
	if (s == (int) lengthof(scope_names))
		PG_RETURN_BOOL(false);
	d = GetAttributeByName(b, "scope_value", &isnull);
	if (!isnull)
		scope_value = TextDatumGetCString(d);
	row_scopes[SCOPE_GLOBAL] = NULL;
	for (int i = 1; i <= SCOPE_APP; i++)
		row_scopes[i] = PG_ARGISNULL(i) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(i));
	PG_RETURN_BOOL(scope_matches((BudgetScope) s, scope_value, row_scopes));
}

/*
 * budget_position(budget_id, period_start, currency): a period's spent and
 * live reserved amounts in the budget's currency, read together in one
 * fresh snapshot (what is committed now, and this transaction's own), and
 * the spend no exchange rate converts (NULL when none).
 */
PG_FUNCTION_INFO_V1(budget_position);
Datum
budget_position(PG_FUNCTION_ARGS)
{
	int64             budget_id = PG_GETARG_INT64(0);
	TimestampTz       period_start = PG_GETARG_TIMESTAMPTZ(1);
	char              currency[CURRENCY_LEN + 1];
	text             *cur = PG_GETARG_TEXT_PP(2);
	const LedgerOids *o = ledger_oids();
	TupleDesc         rdesc;
	StringInfoData    others;
	Snapshot          snapshot;
	int128            spent;
	int128            reserved = 0;
	Relation          rel;
	ScanKeyData       keys[3];
	SysScanDesc       scan;
	HeapTuple         tup;
	int               amount_att;
	Datum             values[3];
	bool              nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &rdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "budget_position: return type must be a row type");
	/* a budget's spend is its teams': readers of budgets that see them see it */
	if (pg_class_aclcheck(o->budgets, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "budgets");
	if (!caller_sees_budget(budget_id))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("role \"%s\" does not see the spend of budget " INT64_FORMAT,
							   GetUserNameFromId(GetUserId(), false), budget_id),
						errhint("A budget's spend is seen by the roles that see its team "
								"(tokenledger.team_members); budgets of other scopes by admins and "
								"'*' members.")));
	if (!currency_normalize(VARDATA_ANY(cur), VARSIZE_ANY_EXHDR(cur), currency))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("\"%s\" is not an ISO 4217 currency code", text_to_cstring(cur))));
	/*
	 * Committed now, and this transaction's own, in one fresh snapshot.
	 * Under SERIALIZABLE the read takes no snapshot instead (so no predicate
	 * locks, which would make recorders fail): each transaction's spend in a
	 * period is one counter row, a recount writes a difference into one row
	 * per period, and a settlement removes holds and adds spend, so
	 * the holds are read first: a settlement that commits in between is
	 * counted twice, never missed.
	 */
	snapshot = IsolationIsSerializable() || IsInParallelMode()
				   ? SnapshotSelf
				   : RegisterSnapshot(GetLatestSnapshot());
	rel = table_open(o->budget_holds, AccessShareLock);
	amount_att = SPI_fnumber(RelationGetDescr(rel), "amount");
	init_period_keys(keys, rel, budget_id, period_start);
	ScanKeyInit(&keys[2], column_attno(rel, "expires_at"), BTGreaterStrategyNumber, F_TIMESTAMP_GT,
				TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
	scan = systable_beginscan(rel, o->budget_holds_key, true, snapshot, 3, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool  isnull;
		Datum d = heap_getattr(tup, amount_att, RelationGetDescr(rel), &isnull);

		if (!isnull && memcmp(DatumGetCostP(d)->currency, currency, CURRENCY_LEN) == 0)
			reserved += DatumGetCostP(d)->nanos;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	initStringInfo(&others);
	spent = period_total(o, budget_id, period_start, currency, snapshot, &others);
	if (snapshot != SnapshotSelf)
		UnregisterSnapshot(snapshot);

	/*
	 * Spend beyond what a cost holds is beyond any budget's amount: shown at
	 * the largest cost, so that reports go on and reservations are refused
	 * with TL001.
	 */
	spent = Min(Max(spent, -(int128) NANOS_MAX), (int128) NANOS_MAX);
	reserved = Min(reserved, (int128) NANOS_MAX);
	values[0] = CostPGetDatum(cost_make((int64) spent, currency));
	values[1] = CostPGetDatum(cost_make((int64) reserved, currency));
	if (others.len > 0)
		values[2] = CStringGetTextDatum(others.data);
	else
		nulls[2] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(rdesc), values, nulls)));
}

/*
 * lock_budget(budget_id): the budget's lock, until the transaction ends.
 * Reservations of block budgets and the commit-time alert checks take it,
 * always in budget id order.
 */
PG_FUNCTION_INFO_V1(lock_budget);
Datum
lock_budget(PG_FUNCTION_ARGS)
{
	lock_budget_id(PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}

static void
budget_change_context(void *arg)
{
	errcontext("waiting for the transactions recording usage to end, to count budgets again");
}

/*
 * Wait for the transactions that are recording usage to end, and keep new
 * ones off until this transaction ends: they counted under the budgets as
 * they were.  Budget changes queue on it too (the lock conflicts with
 * itself).  Waited for 5 seconds at most, or lock_timeout when shorter: a
 * recorder that stays open (prepared, or idle in a transaction) must not
 * stall all recording behind a budget change, which then fails with 55P03
 * and can be made again.
 */
/*
 * lock_timeout capped at 5 seconds for the waits of a change that holds
 * recorders off (budget and rollup recounts), until AtEOXact_GUC(true, n)
 * of the level returned.
 */
int
ledger_cap_lock_timeout(void)
{
	int nest = NewGUCNestLevel();

	if (LockTimeout == 0 || LockTimeout > 5000)
		(void) set_config_option("lock_timeout", "5s", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	return nest;
}

static void
lock_ledger_for_budget_change(const LedgerOids *o)
{
	ErrorContextCallback context;
	int                  nest = ledger_cap_lock_timeout();

	context.callback = budget_change_context;
	context.arg = NULL;
	context.previous = error_context_stack;
	error_context_stack = &context;
	LockRelationOid(o->usage, ShareRowExclusiveLock);
	error_context_stack = context.previous;
	AtEOXact_GUC(true, nest);
}

/*
 * BEFORE DELETE trigger of budgets, per row: a budget is deleted (with its
 * counters, holds and alerts) once no transaction that may be counting
 * against it is still recording.  Per row, so that the budget's row is
 * locked first (a transaction that reserved against it, and then records,
 * ends before the ledger is waited for).
 */
PG_FUNCTION_INFO_V1(budget_delete_waits);
Datum
budget_delete_waits(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc    desc;
	bool         isnull;
	Datum        id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "budget_delete_waits: must be fired for each row");
	lock_ledger_for_budget_change(ledger_oids());
	/* its bound goes with it */
	desc = RelationGetDescr(trigdata->tg_relation);
	id = heap_getattr(trigdata->tg_trigtuple, column_attno(trigdata->tg_relation, "id"), desc,
					  &isnull);
	if (!isnull)
		bound_set(DatumGetInt64(id), false, 0, 0, 0);
	return PointerGetDatum(trigdata->tg_trigtuple);
}

/*
 * budget_recount(budget_id): count a budget's spend again from the ledger,
 * by the same rules as the insert path.  It waits for the transactions that
 * are recording, and holds new recordings off until this transaction ends
 * (it is run at commit by the budgets and fx_rates triggers): recorders
 * that start after it see the budget as it now is.
 */
PG_FUNCTION_INFO_V1(budget_recount);
Datum
budget_recount(PG_FUNCTION_ARGS)
{
	static KeptPlan   budget_plan;
	int64             budget_id = PG_GETARG_INT64(0);
	const LedgerOids *o = ledger_oids();
	OwnerSql          owner;
	CachedBudget      b = {0};
	HTAB             *sums;
	bool              active;
	Relation          rel;
	ScanKeyData       keys[1];
	SysScanDesc       scan;
	HeapTuple         tup;
	Oid               argtypes[1] = {INT8OID};
	Datum             args[1];
	StringInfoData    q;
	int64             rows = 0;

	lock_ledger_for_budget_change(o);
	owner_sql_begin(&owner);
	PushActiveSnapshot(GetLatestSnapshot());

	/* the budget as this transaction now has it (its columns, then active) */
	args[0] = Int64GetDatum(budget_id);
	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT q.*, (SELECT x.active FROM tokenledger.budgets x"
					 "             WHERE x.id OPERATOR(pg_catalog.=) q.id)"
					 " FROM (%s WHERE b.id OPERATOR(pg_catalog.=) $1) q",
					 budget_query);
	if (SPI_execute_plan(owner_sql_plan(&budget_plan, q.data, 1, argtypes), args, NULL, true, 0) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not read budget " INT64_FORMAT, budget_id);
	active = false;
	if (SPI_processed == 1)
	{
		bool isnull;

		active =
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 9, &isnull));
		budget_from_row(&b, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, CurrentMemoryContext);
	}

	/*
	 * Forget what was counted, including what this transaction has not
	 * written yet: the ledger scan below sees its rows.
	 */
	if (pending != NULL)
	{
		HASH_SEQ_STATUS seq;
		PendingSpend   *e;

		hash_seq_init(&seq, pending);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (e->key.budget_id == budget_id)
				(void) hash_search(pending, &e->key, HASH_REMOVE, NULL);
	}
	/*
	 * The count is written as a difference: minus what the counters hold
	 * (all of it committed: no recorder is in flight), plus what the ledger
	 * gives, into this transaction's slot, one row per period and currency.
	 * So a reader that takes no snapshot sees the counters before or after
	 * the recount, never between, and nothing is deleted under it.
	 */
	sums = make_hash("tokenledger recount", sizeof(PendingKey), sizeof(PendingSpend),
					 CurrentMemoryContext);
	rel = table_open(o->budget_spend, AccessShareLock);
	map_spend(rel);
	ScanKeyInit(&keys[0], spend_map.attno[S_BUDGET_ID] + 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(budget_id));
	scan = systable_beginscan(rel, o->budget_spend_key, true, SnapshotSelf, 1, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool  isnull;
		Datum d = heap_getattr(tup, spend_map.attno[S_SPENT] + 1, RelationGetDescr(rel), &isnull);
		PendingKey    k;
		PendingSpend *e;
		bool          found;

		if (isnull)
			continue;
		memset(&k, 0, sizeof(k));
		k.budget_id = budget_id;
		k.period_start = DatumGetTimestampTz(
			heap_getattr(tup, spend_map.attno[S_PERIOD_START] + 1, RelationGetDescr(rel), &isnull));
		memcpy(k.currency, DatumGetCostP(d)->currency, CURRENCY_LEN);
		e = hash_search(sums, &k, HASH_ENTER, &found);
		if (!found)
		{
			e->nanos = 0;
			e->budget_currency = memcmp(k.currency, b.amount.currency, CURRENCY_LEN) == 0;
		}
		e->nanos -= DatumGetCostP(d)->nanos;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (active)
	{
		static const char *const scope_cols[] = {NULL,        "team",    "initiative",
												 "principal", "api_key", "app"};
		Portal                   portal;

		resetStringInfo(&q);
		appendStringInfoString(&q,
							   "SELECT occurred_at, cost, team, initiative, principal, api_key,"
							   " app FROM tokenledger_archive.all_usage WHERE cost IS NOT NULL");
		if (b.scope != SCOPE_GLOBAL)
			appendStringInfo(&q, " AND %s OPERATOR(pg_catalog.=) $1", scope_cols[b.scope]);
		args[0] = b.scope_value ? CStringGetTextDatum(b.scope_value) : (Datum) 0;
		{
			Oid texttype[1] = {TEXTOID};

			portal = SPI_cursor_open_with_args(NULL, q.data, b.scope == SCOPE_GLOBAL ? 0 : 1,
											   texttype, args, NULL, true, 0);
		}
		for (;;)
		{
			SPI_cursor_fetch(portal, true, 10000);
			if (SPI_processed == 0)
				break;
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				HeapTuple   row = SPI_tuptable->vals[i];
				TupleDesc   desc = SPI_tuptable->tupdesc;
				bool        isnull;
				const char *row_scopes[SCOPE_APP + 1];

				row_scopes[SCOPE_GLOBAL] = NULL;
				for (int s = 1; s <= SCOPE_APP; s++)
				{
					Datum d = SPI_getbinval(row, desc, s + 2, &isnull);

					row_scopes[s] = isnull ? NULL : TextDatumGetCString(d);
				}
				if (!scope_matches(b.scope, b.scope_value, row_scopes))
					continue;
				count_into(sums, &b, DatumGetTimestampTz(SPI_getbinval(row, desc, 1, &isnull)),
						   DatumGetCostP(SPI_getbinval(row, desc, 2, &isnull)), 0);
				rows++;
			}
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
	}

	{
		HASH_SEQ_STATUS seq;
		PendingSpend   *e;
		PendingSpend  **batch;
		int             n = 0;

		batch = palloc(Max(hash_get_num_entries(sums), 1) * sizeof(PendingSpend *));
		hash_seq_init(&seq, sums);
		while ((e = hash_seq_search(&seq)) != NULL)
			batch[n++] = e;
		write_counters(batch, n, false);
	}

	/*
	 * Rows that now hold nothing go: a reader with or without a snapshot
	 * sums the same whether it sees them or not.
	 */
	rel = table_open(o->budget_spend, RowExclusiveLock);
	scan = systable_beginscan(rel, o->budget_spend_key, true, SnapshotSelf, 1, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool  isnull;
		Datum d = heap_getattr(tup, spend_map.attno[S_SPENT] + 1, RelationGetDescr(rel), &isnull);

		if (!isnull && DatumGetCostP(d)->nanos == 0)
			simple_heap_delete(rel, &tup->t_self);
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
	CommandCounterIncrement();

	/* the bound: exactly the spend of the present period, and of those after it */
	if (active)
	{
		TimestampTz     present = period_of(&b, GetCurrentTimestamp());
		int128          ahead = 0;
		HASH_SEQ_STATUS seq;
		PendingSpend   *e;

		/* each period with counters is a key of sums, once in the budget's currency */
		hash_seq_init(&seq, sums);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (e->budget_currency && e->key.period_start > present)
				ahead += period_total(o, budget_id, e->key.period_start, b.amount.currency,
									  SnapshotSelf, NULL);
		bound_set(budget_id, true, present,
				  period_total(o, budget_id, present, b.amount.currency, SnapshotSelf, NULL),
				  ahead);
	}
	else
		bound_set(budget_id, false, 0, 0, 0);
	PopActiveSnapshot();
	owner_sql_end(&owner);
	PG_RETURN_INT64(rows);
}
