/*
 * rollup.c
 *		The hourly rollups of the ledger that the reporting views read.
 *
 * usage_rollup and outcome_rollup hold, per stretch of time (a UTC clock
 * hour, cut where an exchange rate of the row's currency takes effect: see
 * catalog_fx_stretch) and per key of the views, the sums of the ledger's
 * rows: calls, unpriced calls, the six token classes and the spend in its
 * own currency; outcomes and their value.  A view over them returns what
 * the same query over the ledger returns, at every moment:
 *
 * - they are kept in the recording transaction, by the same path as the
 *	 budgets' counters: the row triggers add each row to a backend-local sum
 *	 per key and subtransaction, written when the statement ends (and,
 *	 for what is left, before the transaction commits or is prepared).  A
 *	 rollback, of the transaction or of a subtransaction, takes its sums
 *	 with it; late rows for an old hour, adjustments and rerate entries are
 *	 rows like any other; reprice(), the one UPDATE the ledger allows, moves
 *	 a call from its unpriced key to its priced one;
 * - a transaction writes into its own slot (budget.c's ledger_claim_slot),
 *	 so no recorder waits for another on a rollup row; a row of one slot is
 *	 found where this backend last wrote it (else through the rollup's
 *	 index) and updated in place, with no SQL, on pages left half free so
 *	 that the update is HOT;
 * - restored rows (see ledger_row_restored) come with the rollups dumped
 *	 with them, so they are not added again;
 * - when exchange rates change, rollup_recount() counts the hours they
 *	 take effect in again from the ledger; rollup_compact() merges the rows
 *	 that several slots hold for one key and hour.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "tokenledger.h"
#include "ledger.h"

typedef enum RollupKind
{
	ROLLUP_USAGE,
	ROLLUP_OUTCOMES,
	NROLLUPS
} RollupKind;

/* the key columns of each rollup after stretch and slot, in index order */
#define MAX_KEYS 7
static const char *const key_columns[NROLLUPS][MAX_KEYS] = {
	{"provider", "model", "service_tier", "currency", "team", "initiative", "environment"},
	{"team", "initiative", "currency", NULL, NULL, NULL, NULL}};
static const int nkeys[NROLLUPS] = {7, 3};

/* the bigint sums of each rollup, and the numeric ones */
#define MAX_SUMS 9
static const char *const sum_columns[NROLLUPS][MAX_SUMS] = {
	{"entries", "requests", "unpriced_requests", "input_tokens", "output_tokens",
	 "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens"},
	{"entries"}};
static const int nsums[NROLLUPS] = {9, 1};
/* the money column (numeric, in units of its currency) and the quantity */
static const char *const money_column[NROLLUPS] = {"spend", "outcome_value"};
static const char *const quantity_column[NROLLUPS] = {NULL, "outcomes"};

static const char *const table_names[NROLLUPS] = {"usage_rollup", "outcome_rollup"};
static const char *const index_names[NROLLUPS] = {"usage_rollup_key", "outcome_rollup_key"};

typedef struct RollupKey
{
	RollupKind       kind;
	Oid              target; /* the rollup's Citus shard to write, or InvalidOid */
	SubTransactionId subid;
	TimestampTz      stretch;
	const char      *keys[MAX_KEYS]; /* NULL for SQL NULL */
} RollupKey;

typedef struct RollupEntry
{
	RollupKey key;
	Oid       target_index; /* the index of key.target */
	int128    sums[MAX_SUMS];
	int128    nanos;
	Numeric   quantity; /* NULL for none yet */
} RollupEntry;

static HTAB         *pending = NULL;
static MemoryContext pending_cxt = NULL;

/* the rollup tables of this database: InvalidOid before version 1.1 */
typedef struct RollupRel
{
	Oid        relid;
	Oid        index;
	int        natts;
	AttrNumber stretch;
	AttrNumber slot;
	AttrNumber keys[MAX_KEYS];
	AttrNumber sums[MAX_SUMS];
	AttrNumber money;
	AttrNumber quantity;
} RollupRel;

static RollupRel rollup_rels[NROLLUPS];
static uint64    rels_generation = 0;
static bool      rels_known = false;

static uint32
key_hash(const void *key, Size keysize)
{
	const RollupKey *k = key;
	uint32           h = hash_bytes((const unsigned char *) &k->stretch, sizeof(k->stretch));

	h = hash_combine(h, (uint32) k->kind);
	h = hash_combine(h, (uint32) k->target);
	h = hash_combine(h, (uint32) k->subid);
	for (int i = 0; i < nkeys[k->kind]; i++)
		h = hash_combine(h, k->keys[i]
								? hash_bytes((const unsigned char *) k->keys[i], strlen(k->keys[i]))
								: 0x9e3779b9);
	return h;
}

static int
key_match(const void *key1, const void *key2, Size keysize)
{
	const RollupKey *a = key1;
	const RollupKey *b = key2;

	if (a->kind != b->kind || a->target != b->target || a->subid != b->subid ||
		a->stretch != b->stretch)
		return 1;
	for (int i = 0; i < nkeys[a->kind]; i++)
	{
		if ((a->keys[i] == NULL) != (b->keys[i] == NULL))
			return 1;
		if (a->keys[i] && strcmp(a->keys[i], b->keys[i]) != 0)
			return 1;
	}
	return 0;
}

/* a hash table in cxt whose entries start with a RollupKey */
static HTAB *
key_table(const char *name, Size entrysize, long nelem, MemoryContext cxt)
{
	HASHCTL ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(RollupKey);
	ctl.entrysize = entrysize;
	ctl.hash = key_hash;
	ctl.match = key_match;
	ctl.hcxt = cxt;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static void
ensure_pending(void)
{
	if (pending != NULL)
		return;
	if (pending_cxt == NULL)
		pending_cxt =
			AllocSetContextCreate(TopMemoryContext, "tokenledger rollups", ALLOCSET_DEFAULT_SIZES);
	pending = key_table("tokenledger pending rollups", sizeof(RollupEntry), 64, pending_cxt);
}

static void
rollup_reset(void)
{
	pending = NULL;
	if (pending_cxt != NULL)
		MemoryContextReset(pending_cxt);
}

bool
rollup_pending(void)
{
	return pending != NULL && hash_get_num_entries(pending) > 0;
}

static AttrNumber
attno_of(Relation rel, const char *name)
{
	AttrNumber a = get_attnum(RelationGetRelid(rel), name);

	if (a == InvalidAttrNumber)
		elog(ERROR, "table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), name);
	return a;
}

/* find the rollup tables; false in a database still at version 1.0 */
static bool
rollups_known(void)
{
	const LedgerOids *o = ledger_oids();

	if (rels_known && rels_generation == o->generation)
		return OidIsValid(rollup_rels[ROLLUP_USAGE].relid);
	for (int k = 0; k < NROLLUPS; k++)
	{
		RollupRel *r = &rollup_rels[k];

		memset(r, 0, sizeof(*r));
		r->relid = get_relname_relid(table_names[k], o->nsp);
		r->index = get_relname_relid(index_names[k], o->nsp);
		if (!OidIsValid(r->relid) || !OidIsValid(r->index))
		{
			r->relid = InvalidOid;
			continue;
		}
	}
	rels_known = true;
	rels_generation = o->generation;
	return OidIsValid(rollup_rels[ROLLUP_USAGE].relid);
}

/* the column numbers of an open rollup table */
static void
map_rollup(RollupRel *r, Relation rel, RollupKind kind)
{
	if (r->natts == RelationGetDescr(rel)->natts)
		return;
	r->stretch = attno_of(rel, "stretch");
	r->slot = attno_of(rel, "slot");
	for (int i = 0; i < nkeys[kind]; i++)
		r->keys[i] = attno_of(rel, key_columns[kind][i]);
	for (int i = 0; i < nsums[kind]; i++)
		r->sums[i] = attno_of(rel, sum_columns[kind][i]);
	r->money = attno_of(rel, money_column[kind]);
	r->quantity = quantity_column[kind] ? attno_of(rel, quantity_column[kind]) : InvalidAttrNumber;
	r->natts = RelationGetDescr(rel)->natts;
}

/*
 * Where the rollup of a row of rel goes: InvalidOid for the rollup table
 * itself; on a Citus node where rel is a shard of the ledger, the rollup's
 * shard beside it (see citus.c), remembered per relation.
 */
typedef struct RollupTarget
{
	Oid fired;
	Oid target[NROLLUPS];
	Oid index[NROLLUPS];
} RollupTarget;

static HTAB  *targets = NULL;
static uint64 targets_generation = 0;

static Oid
rollup_target(Relation rel, RollupKind kind, Oid *index)
{
	static Oid        last_fired = InvalidOid;
	static uint64     last_generation = 0;
	static Oid        last_target[NROLLUPS];
	static Oid        last_index[NROLLUPS];
	const LedgerOids *o = ledger_oids();
	RollupTarget     *t;
	bool              found;

	if (last_fired != RelationGetRelid(rel) || last_generation != o->generation)
	{
		if (targets != NULL && targets_generation != o->generation)
		{
			hash_destroy(targets);
			targets = NULL;
		}
		if (targets == NULL)
		{
			HASHCTL ctl;

			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = sizeof(Oid);
			ctl.entrysize = sizeof(RollupTarget);
			ctl.hcxt = TopMemoryContext;
			targets = hash_create("tokenledger rollup targets", 16, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			targets_generation = o->generation;
		}
		t = hash_search(targets, &RelationGetRelid(rel), HASH_ENTER, &found);
		if (!found)
			for (int k = 0; k < NROLLUPS; k++)
			{
				t->target[k] = InvalidOid;
				t->index[k] = InvalidOid;
				if (OidIsValid(rollup_rels[k].relid) &&
					!citus_colocated_shard(rel, rollup_rels[k].relid, index_names[k], &t->target[k],
										   &t->index[k]))
					t->target[k] = t->index[k] = InvalidOid;
			}
		last_fired = RelationGetRelid(rel);
		last_generation = o->generation;
		memcpy(last_target, t->target, sizeof(last_target));
		memcpy(last_index, t->index, sizeof(last_index));
	}
	*index = last_index[kind];
	return last_target[kind];
}

static const char *
copy_key(const char *s)
{
	return s ? MemoryContextStrdup(pending_cxt, s) : NULL;
}

/* the entry of a key, made when new (its strings copied) */
static RollupEntry *
entry_for(RollupKey *key)
{
	RollupEntry *e;
	bool         found;

	ensure_pending();
	e = hash_search(pending, key, HASH_ENTER, &found);
	if (!found)
	{
		for (int i = 0; i < nkeys[key->kind]; i++)
			e->key.keys[i] = copy_key(key->keys[i]);
		memset(e->sums, 0, sizeof(e->sums));
		e->nanos = 0;
		e->quantity = NULL;
	}
	return e;
}

/* the usage columns the rollup reads */
enum
{
	U_OCCURRED_AT,
	U_RECORDED_AT,
	U_PROVIDER,
	U_MODEL,
	U_TIER,
	U_TOKENS,
	U_REQUESTS,
	U_COST,
	U_TEAM,
	U_INITIATIVE,
	U_ENVIRONMENT,
	U_ENTRY,
	U_NCOLS
};
static const char *const usage_columns[U_NCOLS] = {
	"occurred_at", "recorded_at", "provider", "model",      "service_tier", "tokens",
	"requests",    "cost",        "team",     "initiative", "environment",  "entry"};
static ColumnMap usage_map = {InvalidOid, 0, {0}};

/*
 * Add a usage row (sign 1) or take it away (sign -1, the row as it was
 * before reprice() filled its cost in).
 */
void
rollup_usage_row(Relation rel, TupleTableSlot *slot, bool inserted, int sign)
{
	Datum            values[U_NCOLS];
	bool             nulls[U_NCOLS];
	RollupKey        key;
	RollupEntry     *e;
	const CostValue *c = NULL;
	const Tokens    *t;
	const char      *model;
	const char      *resolved;
	int64            requests;
	bool             call;
	TimestampTz      at;
	Oid              target_index;

	if (!rollups_known())
		return;
	map_columns(&usage_map, rel, usage_columns, U_NCOLS);
	slot_getallattrs(slot);
	for (int i = 0; i < U_NCOLS; i++)
	{
		values[i] = slot->tts_values[usage_map.attno[i]];
		nulls[i] = slot->tts_isnull[usage_map.attno[i]];
	}
	if (inserted && !nulls[U_RECORDED_AT] &&
		ledger_row_restored(rel, DatumGetTimestampTz(values[U_RECORDED_AT])))
		return;

	at = DatumGetTimestampTz(values[U_OCCURRED_AT]);
	if (!nulls[U_COST])
		c = DatumGetCostP(values[U_COST]);
	ensure_pending();
	memset(&key, 0, sizeof(key));
	key.kind = ROLLUP_USAGE;
	key.target = rollup_target(rel, ROLLUP_USAGE, &target_index);
	key.subid = GetCurrentSubTransactionId();
	key.stretch = c ? catalog_fx_stretch(c->currency, at) : utc_hour_start(at);
	key.keys[0] = text_or_null(values, nulls, U_PROVIDER);
	model = text_or_null(values, nulls, U_MODEL);
	/* the catalog model of a call with a cost; an unpriced one's as recorded */
	resolved = c ? catalog_resolve_model(key.keys[0], model) : NULL;
	key.keys[1] = resolved ? resolved : model;
	key.keys[2] = text_or_null(values, nulls, U_TIER);
	key.keys[3] = c ? c->currency : NULL;
	key.keys[4] = text_or_null(values, nulls, U_TEAM);
	key.keys[5] = text_or_null(values, nulls, U_INITIATIVE);
	key.keys[6] = text_or_null(values, nulls, U_ENVIRONMENT);
	e = entry_for(&key);
	e->target_index = target_index;

	t = DatumGetTokensP(values[U_TOKENS]);
	requests = DatumGetInt64(values[U_REQUESTS]);
	call = strcmp(TextDatumGetCString(values[U_ENTRY]), "call") == 0;
	e->sums[0] += sign;
	if (call)
	{
		e->sums[1] += (int128) sign * requests;
		if (c == NULL)
			e->sums[2] += (int128) sign * requests;
	}
	e->sums[3] += (int128) sign * t->input;
	e->sums[4] += (int128) sign * t->output;
	e->sums[5] += (int128) sign * t->cache_read;
	e->sums[6] += (int128) sign * t->cache_write;
	e->sums[7] += (int128) sign * t->cache_write_1h;
	e->sums[8] += (int128) sign * t->reasoning;
	if (c)
		e->nanos += (int128) sign * c->nanos;
}

/* the outcomes columns the rollup reads */
enum
{
	O_OCCURRED_AT,
	O_RECORDED_AT,
	O_TEAM,
	O_INITIATIVE,
	O_QUANTITY,
	O_VALUE,
	O_NCOLS
};
static const char *const outcome_columns[O_NCOLS] = {"occurred_at", "recorded_at", "team",
													 "initiative",  "quantity",    "value"};
static ColumnMap         outcome_map = {InvalidOid, 0, {0}};

static void
rollup_outcome_row(Relation rel, HeapTuple tuple)
{
	TupleDesc        desc = RelationGetDescr(rel);
	Datum            values[O_NCOLS];
	bool             nulls[O_NCOLS];
	RollupKey        key;
	RollupEntry     *e;
	const CostValue *v = NULL;
	MemoryContext    old;
	Oid              target_index;

	if (!rollups_known() || !OidIsValid(rollup_rels[ROLLUP_OUTCOMES].relid))
		return;
	map_columns(&outcome_map, rel, outcome_columns, O_NCOLS);
	for (int i = 0; i < O_NCOLS; i++)
		values[i] = heap_getattr(tuple, outcome_map.attno[i] + 1, desc, &nulls[i]);
	if (!nulls[O_RECORDED_AT] &&
		ledger_row_restored(rel, DatumGetTimestampTz(values[O_RECORDED_AT])))
		return;
	if (!nulls[O_VALUE])
		v = DatumGetCostP(values[O_VALUE]);
	ensure_pending();
	memset(&key, 0, sizeof(key));
	key.kind = ROLLUP_OUTCOMES;
	key.target = rollup_target(rel, ROLLUP_OUTCOMES, &target_index);
	key.subid = GetCurrentSubTransactionId();
	key.stretch = v ? catalog_fx_stretch(v->currency, DatumGetTimestampTz(values[O_OCCURRED_AT]))
					: utc_hour_start(DatumGetTimestampTz(values[O_OCCURRED_AT]));
	key.keys[0] = text_or_null(values, nulls, O_TEAM);
	key.keys[1] = text_or_null(values, nulls, O_INITIATIVE);
	key.keys[2] = v ? v->currency : NULL;
	e = entry_for(&key);
	e->target_index = target_index;
	e->sums[0] += 1;
	if (v)
		e->nanos += v->nanos;
	old = MemoryContextSwitchTo(pending_cxt);
	e->quantity = e->quantity ? DatumGetNumeric(DirectFunctionCall2(
									numeric_add, NumericGetDatum(e->quantity), values[O_QUANTITY]))
							  : DatumGetNumeric(datumCopy(values[O_QUANTITY], false, -1));
	MemoryContextSwitchTo(old);
}

/* old + delta, a numeric column's value (NULL counting as 0) */
static Datum
numeric_plus(Datum old, bool isnull, Numeric delta)
{
	if (isnull)
		return NumericGetDatum(delta);
	return DirectFunctionCall2(numeric_add, old, NumericGetDatum(delta));
}

static bool
entry_is_zero(const RollupEntry *e)
{
	for (int i = 0; i < nsums[e->key.kind]; i++)
		if (e->sums[i] != 0)
			return false;
	return e->nanos == 0 && e->quantity == NULL;
}

/*
 * Where each key's row of a slot was last written by this backend (the key's
 * subid holding the slot): a backend mostly records into the same slot, so
 * the next statement finds the row by its TID, without the index.  A TID is
 * only a hint: the row found there is used only when it is visible, is the
 * newest version, and has that slot and key; else the index is searched.
 */
typedef struct TidEntry
{
	RollupKey       key;
	ItemPointerData tid;
} TidEntry;

#define TID_CACHE_MAX 4096
static HTAB         *tid_cache = NULL;
static MemoryContext tid_cxt = NULL;
static uint64        tid_generation = 0;

static TidEntry *
tid_entry(const RollupEntry *e, int slot, bool create)
{
	const LedgerOids *o = ledger_oids();
	RollupKey         k = e->key;
	TidEntry         *t;
	bool              found;

	if (tid_cache != NULL &&
		(tid_generation != o->generation || hash_get_num_entries(tid_cache) >= TID_CACHE_MAX))
	{
		hash_destroy(tid_cache);
		tid_cache = NULL;
		MemoryContextReset(tid_cxt);
	}
	if (tid_cache == NULL)
	{
		if (!create)
			return NULL;
		if (tid_cxt == NULL)
			tid_cxt = AllocSetContextCreate(TopMemoryContext, "tokenledger rollup rows",
											ALLOCSET_DEFAULT_SIZES);
		tid_cache = key_table("tokenledger rollup rows", sizeof(TidEntry), 256, tid_cxt);
		tid_generation = o->generation;
	}
	k.subid = (SubTransactionId) slot;
	t = hash_search(tid_cache, &k, create ? HASH_ENTER : HASH_FIND, &found);
	if (create && !found)
		for (int i = 0; i < nkeys[k.kind]; i++)
			t->key.keys[i] = k.keys[i] ? MemoryContextStrdup(tid_cxt, k.keys[i]) : NULL;
	return t;
}

/* the row at a remembered TID, if it is still the slot's row of the key */
static bool
fetch_by_tid(Relation rel, BlockNumber nblocks, RollupRel *r, const RollupEntry *e, int slot,
			 HeapTuple tup, Buffer *buf)
{
	TupleDesc desc = RelationGetDescr(rel);
	TidEntry *t = tid_entry(e, slot, false);
	bool      isnull;

	if (t == NULL || !ledger_fetch_newest(rel, nblocks, &t->tid, tup, buf))
		return false;
	if (DatumGetTimestampTz(heap_getattr(tup, r->stretch, desc, &isnull)) != e->key.stretch ||
		DatumGetInt16(heap_getattr(tup, r->slot, desc, &isnull)) != slot)
	{
		ReleaseBuffer(*buf);
		*buf = InvalidBuffer;
		return false;
	}
	for (int i = 0; i < nkeys[e->key.kind]; i++)
	{
		Datum d = heap_getattr(tup, r->keys[i], desc, &isnull);

		if (isnull != (e->key.keys[i] == NULL) ||
			(!isnull && strcmp(TextDatumGetCString(d), e->key.keys[i]) != 0))
		{
			ReleaseBuffer(*buf);
			*buf = InvalidBuffer;
			return false;
		}
	}
	return true;
}

/* add one entry into its slot's row: found through the index, else made */
static void
write_entry(Relation rel, BlockNumber nblocks, CatalogIndexState indstate, RollupRel *r,
			const RollupEntry *e, int slot)
{
	TupleDesc       desc = RelationGetDescr(rel);
	RollupKind      kind = e->key.kind;
	ScanKeyData     keys[2 + MAX_KEYS];
	int             n = 0;
	Relation        index = NULL;
	IndexScanDesc   scan = NULL;
	TupleTableSlot *found = NULL;
	HeapTuple       tup = NULL;
	HeapTupleData   by_tid;
	Buffer          buf = InvalidBuffer;
	HeapTuple       written;
	bool            should_free = false;
	Datum          *values = palloc0(desc->natts * sizeof(Datum));
	bool           *nulls = palloc(desc->natts * sizeof(bool));
	Numeric         money = nanos128_to_numeric(e->nanos);

	/*
	 * The index's columns are stretch, slot and the keys in order.  Scanned
	 * directly (not by systable_beginscan, which reads the heap instead when
	 * ignore_system_indexes is set), with each text key compared in its
	 * column's collation, as the index is ordered.
	 */
	if (fetch_by_tid(rel, nblocks, r, e, slot, &by_tid, &buf))
		tup = &by_tid;
	else
	{
		index = index_open(r->index, AccessShareLock);
		found = table_slot_create(rel, NULL);
	}
	ScanKeyInit(&keys[n++], 1, BTEqualStrategyNumber, F_TIMESTAMPTZ_EQ,
				TimestampTzGetDatum(e->key.stretch));
	ScanKeyInit(&keys[n++], 2, BTEqualStrategyNumber, F_INT2EQ, Int16GetDatum((int16) slot));
	for (int i = 0; i < nkeys[kind]; i++)
	{
		AttrNumber attno = (AttrNumber) (3 + i);

		if (e->key.keys[i] == NULL)
			ScanKeyEntryInitialize(&keys[n++], SK_ISNULL | SK_SEARCHNULL, attno, InvalidStrategy,
								   InvalidOid, InvalidOid, InvalidOid, (Datum) 0);
		else
			ScanKeyEntryInitialize(&keys[n++], 0, attno, BTEqualStrategyNumber, InvalidOid,
								   TupleDescAttr(desc, r->keys[i] - 1)->attcollation, F_TEXTEQ,
								   CStringGetTextDatum(e->key.keys[i]));
	}
	if (tup == NULL)
	{
		scan = index_beginscan(rel, index, SnapshotSelf, n, 0);
		index_rescan(scan, keys, n, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, found))
			tup = ExecFetchSlotHeapTuple(found, false, &should_free);
	}
	if (tup != NULL)
	{
		HeapTuple newtup;

		/* the row's columns, read once; the sums added to them */
		heap_deform_tuple(tup, desc, values, nulls);
		for (int i = 0; i < nsums[kind]; i++)
		{
			int128 v = nulls[r->sums[i] - 1] ? 0 : DatumGetInt64(values[r->sums[i] - 1]);

			v += e->sums[i];
			if (v > PG_INT64_MAX || v < PG_INT64_MIN)
				ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								errmsg("%s of one hour's rollup is out of range for bigint",
									   sum_columns[kind][i])));
			values[r->sums[i] - 1] = Int64GetDatum((int64) v);
			nulls[r->sums[i] - 1] = false;
		}
		if (e->nanos != 0)
		{
			values[r->money - 1] = numeric_plus(values[r->money - 1], nulls[r->money - 1], money);
			nulls[r->money - 1] = false;
		}
		if (e->quantity)
		{
			values[r->quantity - 1] =
				numeric_plus(values[r->quantity - 1], nulls[r->quantity - 1], e->quantity);
			nulls[r->quantity - 1] = false;
		}
		newtup = heap_form_tuple(desc, values, nulls);
		CatalogTupleUpdateWithInfo(rel, &tup->t_self, newtup, indstate);
		written = newtup;
	}
	else
	{
		HeapTuple newtup;

		for (int i = 0; i < desc->natts; i++)
			nulls[i] = true;
		values[r->stretch - 1] = TimestampTzGetDatum(e->key.stretch);
		nulls[r->stretch - 1] = false;
		values[r->slot - 1] = Int16GetDatum((int16) slot);
		nulls[r->slot - 1] = false;
		for (int i = 0; i < nkeys[kind]; i++)
			if (e->key.keys[i] != NULL)
			{
				values[r->keys[i] - 1] = CStringGetTextDatum(e->key.keys[i]);
				nulls[r->keys[i] - 1] = false;
			}
		for (int i = 0; i < nsums[kind]; i++)
		{
			if (e->sums[i] > PG_INT64_MAX || e->sums[i] < PG_INT64_MIN)
				ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								errmsg("%s of one hour's rollup is out of range for bigint",
									   sum_columns[kind][i])));
			values[r->sums[i] - 1] = Int64GetDatum((int64) e->sums[i]);
			nulls[r->sums[i] - 1] = false;
		}
		values[r->money - 1] = NumericGetDatum(money);
		nulls[r->money - 1] = false;
		if (r->quantity != InvalidAttrNumber)
		{
			values[r->quantity - 1] = e->quantity
										  ? NumericGetDatum(e->quantity)
										  : DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
			nulls[r->quantity - 1] = false;
		}
		newtup = heap_form_tuple(desc, values, nulls);
		CatalogTupleInsertWithInfo(rel, newtup, indstate);
		written = newtup;
	}
	/* the new version's place, for the next statement of this backend */
	tid_entry(e, slot, true)->tid = written->t_self;
	heap_freetuple(written);
	if (should_free)
		heap_freetuple(tup);
	if (BufferIsValid(buf))
		ReleaseBuffer(buf);
	if (scan != NULL)
		index_endscan(scan);
	if (found != NULL)
		ExecDropSingleTupleTableSlot(found);
	if (index != NULL)
		index_close(index, AccessShareLock);
	pfree(values);
	pfree(nulls);
}

/* a rollup table (or a Citus shard of one) opened for writing */
typedef struct OpenRollup
{
	RollupKind        kind;
	Oid               target;
	Relation          rel;
	CatalogIndexState indstate;
	BlockNumber       nblocks;
	RollupRel         r;
} OpenRollup;

/*
 * Write the pending sums of the current subtransaction, or all of them,
 * into this transaction's slot.
 */
void
rollup_flush(bool all)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	HASH_SEQ_STATUS  seq;
	RollupEntry     *e;
	OpenRollup      *open = NULL;
	int              nopen = 0;
	int              open_size = 0;
	int              slot = -1;
	bool             snapshot_pushed = false;
	List            *done = NIL;
	ListCell        *lc;

	if (!rollup_pending())
		return;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_pushed = true;
	}
	hash_seq_init(&seq, pending);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		RollupKind  kind = e->key.kind;
		OpenRollup *t = NULL;

		if (!all && e->key.subid != cur)
			continue;
		done = lappend(done, e);
		if (entry_is_zero(e))
			continue;
		if (slot < 0)
			slot = ledger_claim_slot();
		for (int i = 0; i < nopen && t == NULL; i++)
			if (open[i].kind == kind && open[i].target == e->key.target)
				t = &open[i];
		if (t == NULL)
		{
			if (nopen == open_size)
			{
				open_size = Max(4, 2 * open_size);
				open = open ? repalloc(open, open_size * sizeof(OpenRollup))
							: palloc(open_size * sizeof(OpenRollup));
			}
			t = &open[nopen++];
			t->kind = kind;
			t->target = e->key.target;
			t->r = rollup_rels[kind];
			if (OidIsValid(e->key.target))
			{
				t->r.relid = e->key.target;
				t->r.index = e->target_index;
				t->r.natts = 0;
			}
			t->rel = table_open(t->r.relid, RowExclusiveLock);
			map_rollup(&t->r, t->rel, kind);
			if (!OidIsValid(e->key.target))
				rollup_rels[kind] = t->r; /* (its column numbers, kept) */
			t->indstate = CatalogOpenIndexes(t->rel);
			t->nblocks = RelationGetNumberOfBlocks(t->rel);
		}
		write_entry(t->rel, t->nblocks, t->indstate, &t->r, e, slot);
	}
	foreach (lc, done)
	{
		RollupEntry *d = lfirst(lc);

		(void) hash_search(pending, &d->key, HASH_REMOVE, NULL);
	}
	list_free(done);
	for (int i = 0; i < nopen; i++)
	{
		CatalogCloseIndexes(open[i].indstate);
		table_close(open[i].rel, NoLock);
	}
	if (open)
		pfree(open);
	if (slot >= 0)
		CommandCounterIncrement();
	if (snapshot_pushed)
		PopActiveSnapshot();
}

static void
rollup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			rollup_flush(true);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			rollup_reset();
			break;
		default:
			break;
	}
}

/*
 * A subtransaction that aborts takes its sums with it; one that commits
 * hands them to its parent.
 */
static void
rollup_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						void *arg)
{
	HASH_SEQ_STATUS seq;
	RollupEntry    *e;
	List           *mine = NIL;
	ListCell       *lc;

	if ((event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) ||
		!rollup_pending())
		return;
	hash_seq_init(&seq, pending);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->key.subid == mySubid)
		{
			RollupEntry *copy = MemoryContextAlloc(pending_cxt, sizeof(RollupEntry));

			*copy = *e;
			mine = lappend(mine, copy);
		}
	foreach (lc, mine)
	{
		RollupEntry *m = lfirst(lc);

		(void) hash_search(pending, &m->key, HASH_REMOVE, NULL);
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			RollupEntry *into;

			m->key.subid = parentSubid;
			into = entry_for(&m->key);
			for (int i = 0; i < MAX_SUMS; i++)
				into->sums[i] += m->sums[i];
			into->nanos += m->nanos;
			if (m->quantity)
			{
				MemoryContext old = MemoryContextSwitchTo(pending_cxt);

				into->quantity = into->quantity ? DatumGetNumeric(DirectFunctionCall2(
													  numeric_add, NumericGetDatum(into->quantity),
													  NumericGetDatum(m->quantity)))
												: m->quantity;
				MemoryContextSwitchTo(old);
			}
		}
	}
	list_free(mine);
}

void
rollup_init(void)
{
	RegisterXactCallback(rollup_xact_callback, NULL);
	RegisterSubXactCallback(rollup_subxact_callback, NULL);
}

/* AFTER INSERT trigger of outcomes, per row */
PG_FUNCTION_INFO_V1(rollup_outcome);
Datum
rollup_outcome(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "rollup_outcome: must be fired after insert, for each row");
	rollup_outcome_row(trigdata->tg_relation, trigdata->tg_trigtuple);
	return PointerGetDatum(NULL);
}

/* AFTER INSERT trigger of outcomes, per statement */
PG_FUNCTION_INFO_V1(rollup_outcome_flush);
Datum
rollup_outcome_flush(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		elog(ERROR, "rollup_outcome_flush: must be fired for each statement");
	rollup_flush(false);
	return PointerGetDatum(NULL);
}

/*
 * rollup_compact(before): merge the rollup rows of the stretches before
 * "before" (default: the current UTC hour) that several slots hold into
 * one row per key (slot -1), so that a key's hour costs one row however
 * many connections recorded it.  A slot is merged only while its lock is
 * free (a transaction that is recording, or a prepared one, keeps its
 * rows for the next run); the ledger's rows and every figure of the views
 * stay as they were.  Returns the number of rollup rows it saved.
 */
PG_FUNCTION_INFO_V1(rollup_compact);
Datum
rollup_compact(PG_FUNCTION_ARGS)
{
	static const char *const merge[NROLLUPS] = {
		"WITH gone AS (DELETE FROM tokenledger.usage_rollup r"
		"  WHERE r.stretch OPERATOR(pg_catalog.<) $1"
		"    AND (r.slot OPERATOR(pg_catalog.=) -1 OR r.slot OPERATOR(pg_catalog.=) ANY ($2))"
		"  RETURNING r.*)"
		" INSERT INTO tokenledger.usage_rollup"
		" SELECT g.stretch, -1, g.provider, g.model, g.service_tier, g.currency, g.team,"
		"        g.initiative, g.environment, pg_catalog.sum(g.entries), "
		"pg_catalog.sum(g.requests),"
		"        pg_catalog.sum(g.unpriced_requests), pg_catalog.sum(g.input_tokens),"
		"        pg_catalog.sum(g.output_tokens), pg_catalog.sum(g.cache_read_tokens),"
		"        pg_catalog.sum(g.cache_write_tokens), pg_catalog.sum(g.cache_write_1h_tokens),"
		"        pg_catalog.sum(g.reasoning_tokens), pg_catalog.sum(g.spend)"
		" FROM gone g"
		" GROUP BY g.stretch, g.provider, g.model, g.service_tier, g.currency, g.team,"
		"          g.initiative, g.environment"
		" HAVING pg_catalog.sum(g.entries) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.requests) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.unpriced_requests) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.input_tokens) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.output_tokens) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.cache_read_tokens) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.cache_write_tokens) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.cache_write_1h_tokens) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.reasoning_tokens) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.spend) OPERATOR(pg_catalog.<>) 0",
		"WITH gone AS (DELETE FROM tokenledger.outcome_rollup r"
		"  WHERE r.stretch OPERATOR(pg_catalog.<) $1"
		"    AND (r.slot OPERATOR(pg_catalog.=) -1 OR r.slot OPERATOR(pg_catalog.=) ANY ($2))"
		"  RETURNING r.*)"
		" INSERT INTO tokenledger.outcome_rollup"
		" SELECT g.stretch, -1, g.team, g.initiative, g.currency, pg_catalog.sum(g.entries),"
		"        pg_catalog.sum(g.outcomes), pg_catalog.sum(g.outcome_value)"
		" FROM gone g GROUP BY g.stretch, g.team, g.initiative, g.currency"
		" HAVING pg_catalog.sum(g.entries) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.outcomes) OPERATOR(pg_catalog.<>) 0"
		"     OR pg_catalog.sum(g.outcome_value) OPERATOR(pg_catalog.<>) 0"};
	const LedgerOids *o = ledger_oids();
	TimestampTz       before;
	OwnerSql          owner;
	Oid               argtypes[2] = {TIMESTAMPTZOID, INT2ARRAYOID};
	Datum             args[2];
	Datum            *slots;
	int               nslots = 0;
	int64             saved = 0;

	if (PG_ARGISNULL(0))
	{
		before = utc_hour_start(GetCurrentTransactionStartTimestamp());
	}
	else
		before = PG_GETARG_TIMESTAMPTZ(0);
	if (!rollups_known())
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("tokenledger has no rollups before version 1.1"),
						errhint("Update the extension: ALTER EXTENSION tokenledger UPDATE.")));

	/* this transaction's own sums first; then queue behind rollup_recount */
	rollup_flush(true);
	LockRelationOid(o->usage, RowExclusiveLock);
	LockRelationOid(o->outcomes, RowExclusiveLock);

	owner_sql_begin(&owner);
	args[0] = TimestampTzGetDatum(before);
	if (SPI_execute_with_args("SELECT DISTINCT s.slot FROM ("
							  " SELECT r.slot FROM tokenledger.usage_rollup r"
							  "  WHERE r.stretch OPERATOR(pg_catalog.<) $1"
							  " UNION ALL"
							  " SELECT r.slot FROM tokenledger.outcome_rollup r"
							  "  WHERE r.stretch OPERATOR(pg_catalog.<) $1) s"
							  " WHERE s.slot OPERATOR(pg_catalog.>=) 0 ORDER BY 1",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the rollups' slots");
	slots = palloc(Max(SPI_processed, 1) * sizeof(Datum));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool  isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (ledger_try_lock_slot(DatumGetInt16(d)))
			slots[nslots++] = d;
	}
	args[1] = PointerGetDatum(
		construct_array(slots, nslots, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
	for (int k = 0; k < NROLLUPS; k++)
	{
		StringInfoData q;
		bool           isnull;
		int64          merged;

		initStringInfo(&q);
		appendStringInfo(&q,
						 "SELECT pg_catalog.count(*) FROM tokenledger.%s r"
						 " WHERE r.stretch OPERATOR(pg_catalog.<) $1"
						 "   AND (r.slot OPERATOR(pg_catalog.=) -1"
						 "        OR r.slot OPERATOR(pg_catalog.=) ANY ($2))",
						 table_names[k]);
		if (SPI_execute_with_args(q.data, 2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not count the rollups of %s", table_names[k]);
		merged =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (SPI_execute_with_args(merge[k], 2, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not merge the rollups of %s", table_names[k]);
		saved += merged - (int64) SPI_processed;
	}
	owner_sql_end(&owner);
	PG_RETURN_INT64(saved);
}

/*
 * Lock the ledger's two tables against recorders (SHARE ROW EXCLUSIVE) for
 * a recount.  Recorders take them in either order, so this never waits for
 * one while holding the other: it waits for one, tries the other, and lets
 * go and waits for that one when it is taken.  5 seconds at most (or
 * lock_timeout when shorter), then 55P03.
 */
static void
lock_ledger_for_recount(const LedgerOids *o)
{
	Oid         rels[2] = {o->usage, o->outcomes};
	int         nest = ledger_cap_lock_timeout();
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LockTimeout);
	for (int first = 0;; first = 1 - first)
	{
		LockRelationOid(rels[first], ShareRowExclusiveLock);
		if (ConditionalLockRelationOid(rels[1 - first], ShareRowExclusiveLock))
			break;
		UnlockRelationOid(rels[first], ShareRowExclusiveLock);
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not count the rollups again: transactions recording usage and "
							"outcomes stayed open"),
					 errhint("Retry the change when they have ended.")));
	}
	AtEOXact_GUC(true, nest);
}

/*
 * rollup_recount(hours, currencies): count the rollups of the UTC hours
 * that the given times fall in, and of the given currencies (all when
 * NULL), again from the ledger.  It waits for the transactions that are
 * recording and holds new ones off until it ends; the ledger is read as
 * committed after that wait, whatever the transaction's isolation.
 * Returns the rollup rows written.
 */
PG_FUNCTION_INFO_V1(rollup_recount);
Datum
rollup_recount(PG_FUNCTION_ARGS)
{
	static const char *const sql[4] = {
		"DELETE FROM tokenledger.usage_rollup r"
		" WHERE ($1 IS NULL OR pg_catalog.date_trunc('hour', r.stretch AT TIME ZONE 'UTC')"
		"                      AT TIME ZONE 'UTC' OPERATOR(pg_catalog.=) ANY ($1))"
		"   AND ($2 IS NULL OR r.currency OPERATOR(pg_catalog.=) ANY ($2))",
		"INSERT INTO tokenledger.usage_rollup"
		" SELECT tokenledger.fx_stretch(tokenledger.currency(u.cost), u.occurred_at), -1, "
		"u.provider,"
		"        CASE WHEN u.cost IS NULL THEN u.model"
		"             ELSE coalesce(tokenledger.resolve_model(u.provider, u.model), "
		"u.model) END,"
		"        u.service_tier, tokenledger.currency(u.cost), u.team, u.initiative, u.environment,"
		"        pg_catalog.count(*),"
		"        coalesce(pg_catalog.sum(u.requests)"
		"                            FILTER (WHERE u.entry OPERATOR(pg_catalog.=) 'call'), 0),"
		"        coalesce(pg_catalog.sum(u.requests)"
		"                            FILTER (WHERE u.entry OPERATOR(pg_catalog.=) 'call' AND "
		"u.cost IS NULL), 0),"
		"        pg_catalog.sum(tokenledger.input(u.tokens)), "
		"pg_catalog.sum(tokenledger.output(u.tokens)),"
		"        pg_catalog.sum(tokenledger.cache_read(u.tokens)),"
		"        pg_catalog.sum(tokenledger.cache_write(u.tokens)),"
		"        pg_catalog.sum(tokenledger.cache_write_1h(u.tokens)),"
		"        pg_catalog.sum(tokenledger.reasoning(u.tokens)),"
		"        coalesce(pg_catalog.sum(tokenledger.amount(u.cost)), 0)"
		" FROM (SELECT x.* FROM tokenledger_archive.all_usage x WHERE $1 IS NULL"
		"       UNION ALL"
		"       SELECT x.* FROM (SELECT DISTINCT pg_catalog.unnest($1) AS h) hh"
		"       JOIN tokenledger_archive.all_usage x ON x.occurred_at OPERATOR(pg_catalog.>=) hh.h"
		"        AND x.occurred_at OPERATOR(pg_catalog.<)"
		"            (hh.h OPERATOR(pg_catalog.+) interval '1 hour')) u"
		" WHERE $2 IS NULL OR tokenledger.currency(u.cost) OPERATOR(pg_catalog.=) ANY ($2)"
		" GROUP BY 1, 3, 4, 5, 6, 7, 8, 9",
		"DELETE FROM tokenledger.outcome_rollup r"
		" WHERE ($1 IS NULL OR pg_catalog.date_trunc('hour', r.stretch AT TIME ZONE 'UTC')"
		"                      AT TIME ZONE 'UTC' OPERATOR(pg_catalog.=) ANY ($1))"
		"   AND ($2 IS NULL OR r.currency OPERATOR(pg_catalog.=) ANY ($2))",
		"INSERT INTO tokenledger.outcome_rollup"
		" SELECT tokenledger.fx_stretch(tokenledger.currency(o.value), o.occurred_at), -1, "
		"o.team, o.initiative,"
		"        tokenledger.currency(o.value), pg_catalog.count(*), pg_catalog.sum(o.quantity),"
		"        coalesce(pg_catalog.sum(tokenledger.amount(o.value)), 0)"
		" FROM (SELECT x.* FROM tokenledger_archive.all_outcomes x WHERE $1 IS NULL"
		"       UNION ALL"
		"       SELECT x.* FROM (SELECT DISTINCT pg_catalog.unnest($1) AS h) hh"
		"       JOIN tokenledger_archive.all_outcomes x ON x.occurred_at OPERATOR(pg_catalog.>=) "
		"hh.h"
		"        AND x.occurred_at OPERATOR(pg_catalog.<)"
		"            (hh.h OPERATOR(pg_catalog.+) interval '1 hour')) o"
		" WHERE $2 IS NULL OR tokenledger.currency(o.value) OPERATOR(pg_catalog.=) ANY ($2)"
		" GROUP BY 1, 3, 4, 5"};
	const LedgerOids *o = ledger_oids();
	Oid               argtypes[2] = {TIMESTAMPTZARRAYOID, TEXTARRAYOID};
	Datum             args[2] = {(Datum) 0, (Datum) 0};
	char              nulls[2] = {PG_ARGISNULL(0) ? 'n' : ' ', PG_ARGISNULL(1) ? 'n' : ' '};
	OwnerSql          owner;
	Snapshot          snapshot;
	int64             written = 0;

	if (!rollups_known())
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("tokenledger has no rollups before version 1.1"),
						errhint("Update the extension: ALTER EXTENSION tokenledger UPDATE.")));
	if (!PG_ARGISNULL(0))
	{
		/* the hours the times fall in */
		ArrayType *a = PG_GETARG_ARRAYTYPE_P(0);
		Datum     *elems;
		bool      *elem_nulls;
		int        n;

		deconstruct_array(a, TIMESTAMPTZOID, sizeof(TimestampTz), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, &elem_nulls, &n);
		for (int i = 0; i < n; i++)
			if (!elem_nulls[i])
			{
				elems[i] = TimestampTzGetDatum(utc_hour_start(DatumGetTimestampTz(elems[i])));
			}
		args[0] = PointerGetDatum(construct_md_array(elems, elem_nulls, 1, &n, (int[]){1},
													 TIMESTAMPTZOID, sizeof(TimestampTz),
													 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	}
	if (!PG_ARGISNULL(1))
		args[1] = PG_GETARG_DATUM(1);

	/* this transaction's own sums are written first, then counted again */
	rollup_flush(true);
	lock_ledger_for_recount(o);
	owner_sql_begin(&owner);
	/* the ledger as committed now that no recorder is in flight */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	for (int i = 0; i < 4; i++)
	{
		SPIPlanPtr plan = SPI_prepare(sql[i], 2, argtypes);
		int        rc;

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql[i], SPI_result_code_string(SPI_result));
		rc = SPI_execute_snapshot(plan, args, nulls, snapshot, InvalidSnapshot, false, true, 0);
		if (rc != SPI_OK_DELETE && rc != SPI_OK_INSERT)
			elog(ERROR, "could not count the rollups again: %s", SPI_result_code_string(rc));
		if (rc == SPI_OK_INSERT)
			written += (int64) SPI_processed;
		SPI_freeplan(plan);
	}
	UnregisterSnapshot(snapshot);
	owner_sql_end(&owner);
	PG_RETURN_INT64(written);
}
