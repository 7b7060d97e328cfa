/*
 * bound.c
 *		An upper bound of each budget's spend in a period, so that a commit
 *		far below a budget's thresholds need not read its counters.
 *
 * budget_bounds holds one row per active budget: (budget_id, period_start,
 * bound, ahead).  budget_recount inserts it with the exact spend of the
 * present period (bound) and of the periods after it (ahead), recordings
 * held off meanwhile, and budget deletion removes it; in between it is kept
 * in place, outside MVCC, by every transaction that writes spend into its
 * counter slot, after the counters and before its commit-time alert check
 * (bound_add_all), under the page's exclusive lock from the read to the
 * write.  Of the spend written into a period (when positive, in the
 * budget's currency):
 *   - spend in the row's period is added to bound;
 *   - spend in a later period that has not begun is added to ahead;
 *   - spend in a later period that has begun moves the row to that period,
 *     its bound ahead plus that spend (ahead stays: it still covers the
 *     periods after);
 *   - spend in an earlier period leaves the row alone.
 * So, by induction over those steps, whenever the row names a period its
 * bound is at least the spend that any transaction, committed, in progress
 * or since aborted, has written into that period's counters, and ahead at
 * least what was written into the periods after it: spend reaches the
 * counters only through the insert path, which takes one of those steps
 * for it, or through a recount, which sets the row exactly (SQL writes to
 * budget_spend, a replication's apply say, remove the budget's row by a
 * trigger).  Spend of a transaction that aborts stays in the row, which
 * then errs towards checking, as the dirty read of the counters does; no
 * step reads the counters, so none depends on what a concurrent read sees.
 *
 * The alert check skips a period only when the row names that period and
 * its bound is below the budget's lowest threshold; with no row (a budget
 * not recounted since the update to 1.1, a restored database), or for
 * another period, it reads the counters.  The writes are WAL-logged as
 * generic records, one per page and statement: logical decoding passes
 * over those, where a heap inplace record would make every recording a
 * catalog change to it.  The table is not dumped: it is rebuilt by the
 * recounts, and a dump could read a row in the middle of a write.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/generic_xlog.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "tokenledger.h"
#include "ledger.h"

/* the columns, in this order, all fixed-width and NOT NULL */
enum
{
	BOUND_BUDGET_ID,
	BOUND_PERIOD_START,
	BOUND_BOUND,
	BOUND_AHEAD,
	BOUND_NCOLS
};

/*
 * A budget's row as this backend last found it, and the lease it holds on
 * it: spend of "lease_period" that this backend may still write without
 * raising the bound, which already counts it.  The lease is on the row
 * version this backend raised (its TID and xmin): a recount replaces the
 * row (a new xmin), and the lease lapses with it.
 */
typedef struct BoundTid
{
	int64           budget_id;
	ItemPointerData tid;
	TransactionId   xmin;
	TimestampTz     lease_period;
	int64           lease;
	/* a lease being written: held only once its page write is done */
	bool          pending;
	TransactionId pending_xmin;
	TimestampTz   pending_period;
	int64         pending_lease;
} BoundTid;

/*
 * A raise adds a lease of as much again as the spend it raises by for this
 * many more recordings, and at most this share of what is left below the
 * lowest threshold.
 */
#define BOUND_LEASE_RECORDINGS 16
#define BOUND_LEASE_SHARE      32

static HTAB  *bound_tids = NULL;
static uint64 bound_tids_generation = 0;
static Oid    bound_relid = InvalidOid;
static Oid    bound_index = InvalidOid;

/* budget_bounds and its primary key, or false in a database at 1.0 */
static bool
bound_rel_known(void)
{
	const LedgerOids *o = ledger_oids();

	if (bound_tids != NULL && bound_tids_generation != o->generation)
	{
		hash_destroy(bound_tids);
		bound_tids = NULL;
	}
	if (bound_tids == NULL)
	{
		HASHCTL ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(BoundTid);
		ctl.hcxt = TopMemoryContext;
		bound_tids = hash_create("tokenledger budget bounds", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		bound_tids_generation = o->generation;
		bound_relid = get_relname_relid("budget_bounds", o->nsp);
		bound_index = get_relname_relid("budget_bounds_pkey", o->nsp);
	}
	return OidIsValid(bound_relid) && OidIsValid(bound_index);
}

/* the byte offset of each column in a row (no nulls, fixed widths) */
static void
column_offsets(TupleDesc desc, int *offsets)
{
	int off = 0;

	if (desc->natts != BOUND_NCOLS)
		elog(ERROR, "budget_bounds has %d columns, not %d", desc->natts, BOUND_NCOLS);
	for (int i = 0; i < BOUND_NCOLS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attlen != sizeof(int64) || att->attisdropped)
			elog(ERROR, "budget_bounds column %d is not a fixed 8-byte column", i + 1);
		off = att_align_nominal(off, att->attalign);
		offsets[i] = off;
		off += att->attlen;
	}
}

/* a row's column data */
static inline char *
row_data(HeapTupleHeader htup)
{
	return (char *) htup + htup->t_hoff;
}

/* open budget_bounds for a series of bound_add_all or bound_below; false in a database at 1.0 */
bool
bound_open(BoundRel *br, LOCKMODE lockmode)
{
	if (!bound_rel_known())
		return false;
	br->rel = table_open(bound_relid, lockmode);
	br->nblocks = RelationGetNumberOfBlocks(br->rel);
	column_offsets(RelationGetDescr(br->rel), br->offsets);
	return true;
}

void
bound_close(BoundRel *br)
{
	table_close(br->rel, NoLock);
}

/* the TID of a budget's row: remembered, else from the index; false if none */
static bool
bound_tid(const BoundRel *br, int64 budget_id, bool refresh, ItemPointerData *tid)
{
	BoundTid *t;
	bool      found;

	t = hash_search(bound_tids, &budget_id, HASH_ENTER, &found);
	/*
	 * A remembered TID past the table's end (a recount moved the row and
	 * VACUUM truncated the table) is looked up again, as a refresh is.
	 */
	if (!found || refresh ||
		(ItemPointerIsValid(&t->tid) && ItemPointerGetBlockNumber(&t->tid) >= br->nblocks))
	{
		ItemPointerSetInvalid(&t->tid);
		t->lease = 0;
		t->pending = false;
	}
	if (!ItemPointerIsValid(&t->tid))
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple   indexed;

		ScanKeyInit(&key, BOUND_BUDGET_ID + 1, BTEqualStrategyNumber, F_INT8EQ,
					Int64GetDatum(budget_id));
		scan = systable_beginscan(br->rel, bound_index, true, SnapshotSelf, 1, &key);
		if (HeapTupleIsValid(indexed = systable_getnext(scan)))
			t->tid = indexed->t_self;
		systable_endscan(scan);
	}
	*tid = t->tid;
	return ItemPointerIsValid(tid) && ItemPointerGetBlockNumber(tid) < br->nblocks;
}

/*
 * The row's period and bound, if its row at tid is there, visible and the
 * budget's.  The values are read from "values_page" when given: the copy of
 * the page that this statement's earlier adds have written into, so that
 * two adds to one row (two periods, two subtransactions) add up.
 */
static bool
row_on_page(const BoundRel *br, Buffer buf, Page values_page, const ItemPointerData *tid,
			int64 budget_id, TimestampTz *period, int64 *bound, int64 *ahead, TransactionId *xmin)
{
	HeapTupleData tup;
	Page          page = BufferGetPage(buf);
	OffsetNumber  off = ItemPointerGetOffsetNumber(tid);
	ItemId        lp;
	int64         id;
	char         *data;

	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page) ||
		!ItemIdIsNormal(lp = PageGetItemId(page, off)))
		return false;
	tup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
	tup.t_len = ItemIdGetLength(lp);
	tup.t_tableOid = RelationGetRelid(br->rel);
	tup.t_self = *tid;
	if (HeapTupleHasNulls(&tup) || !HeapTupleSatisfiesVisibility(&tup, SnapshotSelf, buf))
		return false;
	data =
		values_page == NULL
			? row_data(tup.t_data)
			: row_data((HeapTupleHeader) PageGetItem(values_page, PageGetItemId(values_page, off)));
	memcpy(&id, data + br->offsets[BOUND_BUDGET_ID], sizeof(id));
	memcpy(period, data + br->offsets[BOUND_PERIOD_START], sizeof(*period));
	memcpy(bound, data + br->offsets[BOUND_BOUND], sizeof(*bound));
	memcpy(ahead, data + br->offsets[BOUND_AHEAD], sizeof(*ahead));
	*xmin = HeapTupleHeaderGetRawXmin(tup.t_data);
	return id == budget_id;
}

static int
add_block_cmp(const void *a, const void *b)
{
	BlockNumber x = ItemPointerGetBlockNumber(&((const BoundAdd *) a)->tid);
	BlockNumber y = ItemPointerGetBlockNumber(&((const BoundAdd *) b)->tid);

	return x < y ? -1 : x > y ? 1 : 0;
}

static int64
plus(int64 a, int64 b)
{
	return a > PG_INT64_MAX - b ? PG_INT64_MAX : a + b;
}

/*
 * Whether spend is covered by this backend's lease on the budget's row as
 * it stands (same version, same period); the lease is then drawn on.
 */
static bool
draw_on_lease(const BoundRel *br, Buffer buf, BoundAdd *a)
{
	BoundTid     *t = hash_search(bound_tids, &a->budget_id, HASH_FIND, NULL);
	TimestampTz   period;
	int64         bound;
	int64         ahead;
	TransactionId xmin;

	if (t == NULL || t->lease < a->nanos || t->lease_period != a->period_start ||
		!ItemPointerEquals(&t->tid, &a->tid) ||
		!row_on_page(br, buf, NULL, &a->tid, a->budget_id, &period, &bound, &ahead, &xmin) ||
		xmin != t->xmin || period != a->period_start)
		return false;
	t->lease -= a->nanos;
	return true;
}

/*
 * Raise a bound by spend, and by a share of what is left below the lowest
 * threshold, which this backend then holds as its lease on the row.
 */
static int64
raise_bound(BoundAdd *a, int64 bound, TimestampTz period, TransactionId xmin)
{
	BoundTid     *t = hash_search(bound_tids, &a->budget_id, HASH_FIND, NULL);
	int64         lease = 0;
	TransactionId held_xmin = InvalidTransactionId;
	TimestampTz   held_period = 0;
	int64         held = 0;

	/* the lease this backend holds, or the one this statement is writing */
	if (t != NULL)
	{
		held_xmin = t->pending ? t->pending_xmin : t->xmin;
		held_period = t->pending ? t->pending_period : t->lease_period;
		held = t->pending ? t->pending_lease : t->lease;
	}
	/* what is left of a lease on this row and period is in the bound already */
	if (held > 0 && held_xmin == xmin && held_period == period)
		bound = plus(bound, a->nanos - Min(held, a->nanos));
	else
		bound = plus(bound, a->nanos);
	if (bound < a->limit)
		lease = Min((a->limit - bound) / BOUND_LEASE_SHARE,
					a->nanos > PG_INT64_MAX / BOUND_LEASE_RECORDINGS
						? PG_INT64_MAX
						: a->nanos * BOUND_LEASE_RECORDINGS);
	if (t != NULL)
	{
		t->pending = true;
		t->pending_xmin = xmin;
		t->pending_period = period;
		t->pending_lease = lease;
	}
	return bound + lease;
}

/*
 * Apply the additions of one statement's counters to the budgets' bounds
 * (called by the insert path after the counters are written), each page's
 * rows under its buffer's exclusive lock from the read to the write, and
 * one generic WAL record a page (logical decoding passes over those, where
 * a heap record would mark every recording a catalog change).  Spend in
 * the row's period is added to its bound, spend in a later period to its
 * ahead; a later period that has begun takes the row, its bound the ahead
 * (which holds all the spend written into it so far) plus the spend; an
 * earlier period leaves the row alone.
 *
 * Leases.  A raise of the row's period also adds a lease, which this
 * backend holds: 16 times the spend it raises by (its next recordings, if
 * they cost about as much), and at most 1/32 of what is then left below the
 * budget's lowest threshold.  The backend's later spend in that period, up
 * to the lease, is already in the bound, and needs only a read of the row
 * (under a share lock) to see that the row is still the version the lease
 * is on and names that period.  The bound stays an upper bound (a lease is
 * spend that may never come: at most 16 recordings' worth a backend) and
 * below the threshold until the spend nears it (each raise leaves 31/32 of
 * what was left), so a commit skips the counters about as often as before,
 * and the page is written and WAL-logged about once in 16 recordings of a
 * backend instead of at each.  A raise counts what is left of the backend's
 * lease on the row, so nothing of it is lost to the bound.
 */
void
bound_add_all(const BoundRel *br, BoundAdd *adds, int n)
{
	BoundAdd *retry = palloc(Max(n, 1) * sizeof(BoundAdd));

	/* a second pass for rows no longer where they were remembered */
	for (int pass = 0; pass < 2 && n > 0; pass++)
	{
		int nvalid = 0;
		int nretry = 0;

		for (int i = 0; i < n; i++)
			if (bound_tid(br, adds[i].budget_id, pass > 0, &adds[i].tid))
				adds[nvalid++] = adds[i];
		qsort(adds, nvalid, sizeof(BoundAdd), add_block_cmp);
		for (int i = 0; i < nvalid;)
		{
			BlockNumber       blk = ItemPointerGetBlockNumber(&adds[i].tid);
			Buffer            buf = ReadBuffer(br->rel, blk);
			GenericXLogState *state = NULL;
			Page              copy = NULL;
			int               unleased = 0;
			bool              changed = false;
			int               j;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			for (j = i; j < nvalid && ItemPointerGetBlockNumber(&adds[j].tid) == blk; j++)
			{
				BoundTid *t = hash_search(bound_tids, &adds[j].budget_id, HASH_FIND, NULL);

				/* a lease left pending by a call that failed was never written */
				if (t != NULL)
					t->pending = false;
				adds[j].leased = draw_on_lease(br, buf, &adds[j]);
				if (!adds[j].leased)
					unleased++;
			}
			LockBuffer(buf, BUFFER_LOCK_UNLOCK);
			if (unleased > 0)
			{
				LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
				state = GenericXLogStart(br->rel);
				copy = GenericXLogRegisterBuffer(state, buf, 0);
			}
			for (int k = i; k < j && unleased > 0; k++)
			{
				BoundAdd       *a = &adds[k];
				TimestampTz     period;
				int64           bound;
				int64           ahead;
				TransactionId   xmin;
				HeapTupleHeader htup;
				char           *data;

				if (a->leased)
					continue;
				if (!row_on_page(br, buf, copy, &a->tid, a->budget_id, &period, &bound, &ahead,
								 &xmin))
				{
					retry[nretry++] = *a;
					continue;
				}
				if (a->period_start == period)
					bound = raise_bound(a, bound, period, xmin);
				else if (a->period_start > period && a->begun)
				{
					/* the spend written ahead includes this period's so far */
					period = a->period_start;
					bound = raise_bound(a, ahead, period, xmin);
				}
				else if (a->period_start > period)
					ahead = plus(ahead, a->nanos);
				else
					continue;
				changed = true;
				htup = (HeapTupleHeader) PageGetItem(
					copy, PageGetItemId(copy, ItemPointerGetOffsetNumber(&a->tid)));
				data = row_data(htup);
				memcpy(data + br->offsets[BOUND_PERIOD_START], &period, sizeof(period));
				memcpy(data + br->offsets[BOUND_BOUND], &bound, sizeof(bound));
				memcpy(data + br->offsets[BOUND_AHEAD], &ahead, sizeof(ahead));
			}
			if (changed)
			{
				GenericXLogFinish(state);
				/* the leases written are held from now on */
				for (int k = i; k < j; k++)
				{
					BoundTid *t = hash_search(bound_tids, &adds[k].budget_id, HASH_FIND, NULL);

					if (t != NULL && t->pending)
					{
						t->xmin = t->pending_xmin;
						t->lease_period = t->pending_period;
						t->lease = t->pending_lease;
						t->pending = false;
					}
				}
			}
			else if (state != NULL)
				GenericXLogAbort(state);
			if (unleased > 0)
				UnlockReleaseBuffer(buf);
			else
				ReleaseBuffer(buf);
			i = j;
		}
		memcpy(adds, retry, nretry * sizeof(BoundAdd));
		n = nretry;
	}
	pfree(retry);
}

/*
 * Is the budget's spend in a period surely below an amount?  Only when its
 * row names that period and its bound is below the amount.
 */
bool
bound_below(const BoundRel *br, int64 budget_id, TimestampTz period_start, int64 amount)
{
	ItemPointerData tid;
	TimestampTz     period;
	int64           bound;
	int64           ahead;
	TransactionId   xmin;

	for (int pass = 0; pass < 2; pass++)
	{
		Buffer buf;
		bool   found;

		if (!bound_tid(br, budget_id, pass > 0, &tid))
			return false;
		buf = ReadBuffer(br->rel, ItemPointerGetBlockNumber(&tid));
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		found = row_on_page(br, buf, NULL, &tid, budget_id, &period, &bound, &ahead, &xmin);
		UnlockReleaseBuffer(buf);
		if (found)
			return period == period_start && bound < amount;
	}
	return false;
}

static int64
clamp_nanos(int128 v)
{
	return v < 0 ? 0 : v > PG_INT64_MAX ? PG_INT64_MAX : (int64) v;
}

/*
 * Set a budget's bound (by budget_recount, while no transaction records):
 * its row is replaced by one with the exact spend of the present period and
 * of the periods after it, or removed when the budget is not active (or is
 * deleted).
 */
void
bound_set(int64 budget_id, bool active, TimestampTz period_start, int128 spend, int128 ahead)
{
	Relation    rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple   tup;

	if (!bound_rel_known())
		return;
	rel = table_open(bound_relid, RowExclusiveLock);
	ScanKeyInit(&key, BOUND_BUDGET_ID + 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(budget_id));
	scan = systable_beginscan(rel, bound_index, true, SnapshotSelf, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		simple_heap_delete(rel, &tup->t_self);
	systable_endscan(scan);
	(void) hash_search(bound_tids, &budget_id, HASH_REMOVE, NULL);
	if (active)
	{
		Datum             values[BOUND_NCOLS];
		bool              nulls[BOUND_NCOLS] = {false, false, false, false};
		CatalogIndexState indstate;

		values[BOUND_BUDGET_ID] = Int64GetDatum(budget_id);
		values[BOUND_PERIOD_START] = TimestampTzGetDatum(period_start);
		values[BOUND_BOUND] = Int64GetDatum(clamp_nanos(spend));
		values[BOUND_AHEAD] = Int64GetDatum(clamp_nanos(ahead));
		tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
		indstate = CatalogOpenIndexes(rel);
		CatalogTupleInsertWithInfo(rel, tup, indstate);
		CatalogCloseIndexes(indstate);
		heap_freetuple(tup);
	}
	table_close(rel, NoLock);
	CommandCounterIncrement();
}
