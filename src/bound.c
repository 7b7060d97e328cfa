/*
 * bound.c
 *		An upper bound of each budget's spend in its latest period, so that
 *		a commit far below a budget's thresholds need not read its counters.
 *
 * budget_bounds holds one row per budget: (budget_id, period_start, bound).
 * The row is inserted by budget_recount, with the exact spend of the latest
 * period that has spend (recordings are held off meanwhile), and is then
 * kept in place, outside MVCC: every transaction that writes spend into its
 * counter slot adds that spend (when positive, in the budget's currency) to
 * the bound, the row's buffer exclusive-locked from the read to the
 * WAL-logged write, before it checks alerts.  A period later than the row's
 * starts a new bound with that spend; spend in an earlier period leaves the
 * row alone.  So, by induction over the order of those additions, whenever the
 * row names a period its bound is at least the spend that any transaction,
 * committed, in progress or since aborted, has written into that period's
 * counters: spend reaches the counters only through the insert path (which
 * adds it here) or through a recount (which sets the row exactly).  Spend
 * of a transaction that aborts stays in the bound, which then errs towards
 * checking, as the dirty read of the counters does.
 *
 * The alert check skips a period only when the row names that period and
 * its bound is below the budget's lowest threshold; with no row, or for an
 * earlier period, it reads the counters as before.  The additions are
 * inplace updates of the heap (see bound_write and compat.h); 17.0 keeps no
 * bounds.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/heapam_xlog.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xloginsert.h"
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
	BOUND_NCOLS
};

typedef struct BoundTid
{
	int64           budget_id;
	ItemPointerData tid;
} BoundTid;

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
row_data(const HeapTupleData *tup)
{
	return (char *) tup->t_data + tup->t_data->t_hoff;
}

/*
 * The budget's row at a TID, its buffer locked as asked, if it is there and
 * visible (committed and not deleted, or this transaction's own): filled
 * into *tup (pointing into the page), else false with the buffer released.
 */
static bool
row_at(const BoundRel *br, const ItemPointerData *tid, int64 budget_id, int lockmode, Buffer *buf,
	   HeapTupleData *tup)
{
	Page         page;
	ItemId       lp;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	int64        id;

	if (ItemPointerGetBlockNumber(tid) >= br->nblocks)
		return false;
	*buf = ReadBuffer(br->rel, ItemPointerGetBlockNumber(tid));
	LockBuffer(*buf, lockmode);
	page = BufferGetPage(*buf);
	if (off >= FirstOffsetNumber && off <= PageGetMaxOffsetNumber(page) &&
		ItemIdIsNormal(lp = PageGetItemId(page, off)))
	{
		tup->t_data = (HeapTupleHeader) PageGetItem(page, lp);
		tup->t_len = ItemIdGetLength(lp);
		tup->t_tableOid = RelationGetRelid(br->rel);
		tup->t_self = *tid;
		if (!HeapTupleHasNulls(tup) && HeapTupleSatisfiesVisibility(tup, SnapshotSelf, *buf))
		{
			memcpy(&id, row_data(tup) + br->offsets[BOUND_BUDGET_ID], sizeof(id));
			if (id == budget_id)
				return true;
		}
	}
	UnlockReleaseBuffer(*buf);
	*buf = InvalidBuffer;
	return false;
}

/* the budget's row, locked as asked, or false: by its remembered TID, else by the index */
static bool
bound_row(const BoundRel *br, int64 budget_id, int lockmode, Buffer *buf, HeapTupleData *tup)
{
	BoundTid   *t;
	bool        found;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple   indexed;

	t = hash_search(bound_tids, &budget_id, HASH_ENTER, &found);
	if (!found)
		ItemPointerSetInvalid(&t->tid);
	if (ItemPointerIsValid(&t->tid) && row_at(br, &t->tid, budget_id, lockmode, buf, tup))
		return true;
	ItemPointerSetInvalid(&t->tid);
	ScanKeyInit(&key, BOUND_BUDGET_ID + 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(budget_id));
	scan = systable_beginscan(br->rel, bound_index, true, SnapshotSelf, 1, &key);
	if (HeapTupleIsValid(indexed = systable_getnext(scan)))
		t->tid = indexed->t_self;
	systable_endscan(scan);
	return ItemPointerIsValid(&t->tid) && row_at(br, &t->tid, budget_id, lockmode, buf, tup);
}

/* open budget_bounds for a series of bound_add or bound_below; false in a database at 1.0 */
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

/*
 * Add spend written into a period's counters to the budget's bound (called
 * by the insert path after the counters are written).
 */
#ifdef BOUNDS_INPLACE_LOCK
static void
release_pin(void *arg)
{
	ReleaseBuffer(*(Buffer *) arg);
}
#endif

/*
 * The budget's row, its buffer pinned and exclusive-locked (and the row
 * locked for an inplace update, where the server has that lock), or false.
 */
static bool
bound_row_for_update(const BoundRel *br, int64 budget_id, Buffer *buf, HeapTupleData *tup)
{
#if defined(BOUNDS_OWN_RECORD)
	return bound_row(br, budget_id, BUFFER_LOCK_EXCLUSIVE, buf, tup);
#elif defined(BOUNDS_INPLACE_LOCK)
	for (int tries = 0; tries < 100; tries++)
	{
		if (!bound_row(br, budget_id, BUFFER_LOCK_SHARE, buf, tup))
			return false;
		LockBuffer(*buf, BUFFER_LOCK_UNLOCK);
		/* the pin keeps the row where it is */
		if (heap_inplace_lock(br->rel, tup, *buf, release_pin, buf))
			return true;
		CHECK_FOR_INTERRUPTS();
	}
	elog(ERROR, "could not lock the bound of budget " INT64_FORMAT, budget_id);
#endif
	return false;
}

/*
 * Write a row's new data over its old one, WAL-logged, and unlock it.  Up
 * to 16 the buffer's exclusive lock, held since the row was read, makes the
 * read and the write one step for every writer; the record is the one the
 * server writes for an inplace update, so recovery and standbys replay it.
 */
static void
bound_write(const BoundRel *br, HeapTupleData *tup, Buffer buf, const char *newdata)
{
#if defined(BOUNDS_OWN_RECORD)
	uint32 len = tup->t_len - tup->t_data->t_hoff;

	START_CRIT_SECTION();
	memcpy(row_data(tup), newdata, len);
	MarkBufferDirty(buf);
	if (RelationNeedsWAL(br->rel))
	{
		xl_heap_inplace xlrec;
		XLogRecPtr      recptr;

		xlrec.offnum = ItemPointerGetOffsetNumber(&tup->t_self);
		XLogBeginInsert();
		XLogRegisterData((char *) &xlrec, SizeOfHeapInplace);
		XLogRegisterBuffer(0, buf, REGBUF_STANDARD);
		XLogRegisterBufData(0, row_data(tup), len);
		recptr = XLogInsert(RM_HEAP_ID, XLOG_HEAP_INPLACE);
		PageSetLSN(BufferGetPage(buf), recptr);
	}
	END_CRIT_SECTION();
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
#elif defined(BOUNDS_INPLACE_LOCK)
	HeapTuple newtup = heap_copytuple(tup);

	memcpy(row_data(newtup), newdata, tup->t_len - tup->t_data->t_hoff);
	heap_inplace_update_and_unlock(br->rel, tup, newtup, buf);
	heap_freetuple(newtup);
#endif
}

/* leave a row as it is, and unlock it */
static void
bound_unlock(const BoundRel *br, HeapTupleData *tup, Buffer buf)
{
#if defined(BOUNDS_INPLACE_LOCK)
	heap_inplace_unlock(br->rel, tup, buf);
#else
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
#endif
}

/*
 * Add spend written into a period's counters to the budget's bound (called
 * by the insert path after the counters are written).
 */
void
bound_add(const BoundRel *br, int64 budget_id, TimestampTz period_start, int64 nanos)
{
	Buffer        buf;
	HeapTupleData tup;
	char          newdata[3 * sizeof(int64)];
	TimestampTz   period;
	int64         bound;

	if (nanos <= 0 || !bound_row_for_update(br, budget_id, &buf, &tup))
		return;
	Assert(tup.t_len - tup.t_data->t_hoff <= sizeof(newdata));
	memcpy(newdata, row_data(&tup), tup.t_len - tup.t_data->t_hoff);
	memcpy(&period, newdata + br->offsets[BOUND_PERIOD_START], sizeof(period));
	memcpy(&bound, newdata + br->offsets[BOUND_BOUND], sizeof(bound));
	if (period_start < period)
		bound_unlock(br, &tup, buf);
	else
	{
		if (period_start > period)
			bound = 0;
		bound = bound > PG_INT64_MAX - nanos ? PG_INT64_MAX : bound + nanos;
		memcpy(newdata + br->offsets[BOUND_PERIOD_START], &period_start, sizeof(period_start));
		memcpy(newdata + br->offsets[BOUND_BOUND], &bound, sizeof(bound));
		bound_write(br, &tup, buf, newdata);
	}
	ReleaseBuffer(buf);
}

/*
 * Is the budget's spend in a period surely below an amount?  Only when its
 * row names that period and its bound is below the amount.
 */
bool
bound_below(const BoundRel *br, int64 budget_id, TimestampTz period_start, int64 amount)
{
	Buffer        buf;
	HeapTupleData tup;
	TimestampTz   period;
	int64         bound;
	bool          below = false;

#if !defined(BOUNDS_OWN_RECORD) && !defined(BOUNDS_INPLACE_LOCK)
	return false; /* the bounds are not kept */
#endif
	if (bound_row(br, budget_id, BUFFER_LOCK_SHARE, &buf, &tup))
	{
		memcpy(&period, row_data(&tup) + br->offsets[BOUND_PERIOD_START], sizeof(period));
		memcpy(&bound, row_data(&tup) + br->offsets[BOUND_BOUND], sizeof(bound));
		below = period == period_start && bound < amount;
		UnlockReleaseBuffer(buf);
	}
	return below;
}

/*
 * Set a budget's bound (by budget_recount, while no transaction records):
 * its row is replaced by one with the exact spend of its latest period with
 * spend, or removed when the budget is not active.
 */
void
bound_set(int64 budget_id, bool active, TimestampTz period_start, int128 spend)
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
		bool              nulls[BOUND_NCOLS] = {false, false, false};
		CatalogIndexState indstate;

		values[BOUND_BUDGET_ID] = Int64GetDatum(budget_id);
		values[BOUND_PERIOD_START] = TimestampTzGetDatum(period_start);
		values[BOUND_BOUND] = Int64GetDatum(spend < 0              ? 0
											: spend > PG_INT64_MAX ? PG_INT64_MAX
																   : (int64) spend);
		tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
		indstate = CatalogOpenIndexes(rel);
		CatalogTupleInsertWithInfo(rel, tup, indstate);
		CatalogCloseIndexes(indstate);
		heap_freetuple(tup);
	}
	table_close(rel, NoLock);
	CommandCounterIncrement();
}
