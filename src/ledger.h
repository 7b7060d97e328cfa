/*
 * ledger.h
 *		The catalog cache and the ledger triggers.
 */
#ifndef TOKENLEDGER_LEDGER_H
#define TOKENLEDGER_LEDGER_H

#include "access/htup.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

#include "tokenledger.h"

/* an attribution rule; NULL fields match anything */
typedef struct CachedRule
{
	int64  id;
	char  *api_key;
	char  *app;
	char  *principal;
	char  *model;
	Jsonb *tags;
	char  *initiative;
	char  *team;
} CachedRule;

typedef struct CachedInitiative
{
	char     *team;
	bool      has_value;
	CostValue value_per_outcome;
} CachedInitiative;

/* a budget's scope */
typedef enum BudgetScope
{
	SCOPE_GLOBAL,
	SCOPE_TEAM,
	SCOPE_INITIATIVE,
	SCOPE_PRINCIPAL,
	SCOPE_API_KEY,
	SCOPE_APP
} BudgetScope;

/* an active budget */
typedef struct CachedBudget
{
	int64       id;
	BudgetScope scope;
	char       *scope_value; /* NULL for global */
	bool        total;       /* period 'total': one period for all time */
	Datum       period;      /* text: day, week, month, quarter, year */
	Datum       time_zone;   /* text */
	CostValue   amount;
	int         nthresholds;
	int64      *thresholds; /* warn_at x amount, in nanos, ascending */
	Datum      *warn_at;    /* the warn_at values (numeric), in the same order */
	/* the last period looked up, [period_from, period_until): a cache */
	TimestampTz period_from;
	TimestampTz period_until;
} CachedBudget;

/* the extension's objects that the C code reads and writes */
typedef struct LedgerOids
{
	bool   valid;
	uint64 generation; /* changes whenever they are looked up again */
	Oid    nsp;
	Oid    owner;
	Oid    cost_type;
	Oid    usage;
	Oid    outcomes;
	Oid    usage_request_key;     /* the request_id index (1.1: of usage_keys) */
	Oid    outcomes_external_key; /* the external_ref index (1.1: of outcome_keys) */
	Oid    usage_keys;            /* 1.1: usage_request_ids; InvalidOid before */
	Oid    outcome_keys;          /* 1.1: outcome_external_refs; InvalidOid before */
	Oid    budget_spend;
	Oid    budget_spend_key;
	Oid    budget_holds;
	Oid    budget_holds_key;
	Oid    budget_alerts;
	Oid    budget_alerts_key;
	Oid    budgets;
} LedgerOids;

/* internal SQL as the extension's owner: see owner_sql_begin */
typedef struct OwnerSql
{
	Oid save_userid;
	int save_sec_context;
	int save_nestlevel;
} OwnerSql;

/* a kept SPI plan of the internal SQL, with the generation it was made for */
typedef struct KeptPlan
{
	SPIPlanPtr plan;
	uint64     generation;
} KeptPlan;

/*
 * Column numbers (0-based) of a trigger's table, by name: see map_columns
 * (ledger_trigger.c).
 */
#define COLUMN_MAP_MAX 24
typedef struct ColumnMap
{
	Oid relid;
	int natts;
	int attno[COLUMN_MAP_MAX];
} ColumnMap;

/* catalog.c */
extern const char *const budget_query;

/* the lock tag kind of replays of one key (see LOCK_KIND_SLOT in budget.c) */
#define LOCK_KIND_REPLAY 5

/* tokenledger.replays: what an INSERT or COPY of a recorded key does */
#define REPLAYS_ERROR 0
#define REPLAYS_SKIP  1
extern int               tokenledger_replays;
extern void              catalog_init(void);
extern const LedgerOids *ledger_oids(void);
extern void              owner_sql_begin(OwnerSql *s);
extern void              owner_sql_end(OwnerSql *s);
extern SPIPlanPtr owner_sql_plan(KeptPlan *cp, const char *sql, int nargs, const Oid *argtypes);
extern void budget_from_row(CachedBudget *b, HeapTuple tup, TupleDesc desc, MemoryContext cxt);
extern const CachedBudget *catalog_budget(int64 id);
extern Numeric             catalog_fx_rate(const char *from, const char *to, TimestampTz at);
extern TimestampTz         utc_hour_start(TimestampTz at);
extern TimestampTz         catalog_fx_stretch(const char *currency, TimestampTz at);
extern bool        catalog_convert(int64 nanos, const char *from, const char *to, TimestampTz at,
								   int64 *result);
extern const char *catalog_resolve_model(const char *provider, const char *model);
extern bool catalog_price(const char *provider, const char *model, const char *tier, TimestampTz at,
						  const Tokens *t, int64 requests, CostValue *cost, int64 *price_id);
extern const CachedRule       *catalog_rules(int *n);
extern const CachedInitiative *catalog_initiative(const char *name);
extern void                    catalog_register_initiative(const char *name);
extern const CachedBudget     *catalog_budgets(int *n);

/* budget.c */
extern void budget_init(void);
extern int  ledger_claim_slot(void);
extern bool ledger_try_lock_slot(int slot);
extern int  ledger_cap_lock_timeout(void);
extern bool ledger_fetch_newest(Relation rel, BlockNumber nblocks, const ItemPointerData *tid,
								HeapTuple tup, Buffer *buf);

/* bound.c: budget_bounds, opened for a series of bound_add_all or bound_below */
typedef struct BoundRel
{
	Relation    rel;
	BlockNumber nblocks;
	int         offsets[4]; /* of its columns in a row */
} BoundRel;

/* spend written into a budget period's counters, for its bound */
typedef struct BoundAdd
{
	int64           budget_id;
	TimestampTz     period_start;
	int64           nanos;  /* positive */
	bool            begun;  /* period_start is not after the present period */
	int64           limit;  /* the budget's lowest threshold (PG_INT64_MAX: none) */
	ItemPointerData tid;    /* the row's, found by bound_add_all */
	bool            leased; /* covered by this backend's lease (bound_add_all) */
} BoundAdd;
extern bool bound_open(BoundRel *br, LOCKMODE lockmode);
extern void bound_close(BoundRel *br);
extern void bound_add_all(const BoundRel *br, BoundAdd *adds, int n);
extern bool bound_below(const BoundRel *br, int64 budget_id, TimestampTz period_start,
						int64 amount);
extern void bound_set(int64 budget_id, bool active, TimestampTz period_start, int128 spend,
					  int128 ahead);

/* rollup.c */
extern void rollup_init(void);
extern void rollup_usage_row(Relation rel, TupleTableSlot *slot, bool inserted, int sign);
extern void rollup_flush(bool all);
extern bool rollup_pending(void);

/* ledger_trigger.c */
extern void  map_columns(ColumnMap *map, Relation rel, const char *const *names, int n);
extern char *text_or_null(Datum *values, bool *nulls, int col);

/* access.c */
extern bool ledger_privileged(Relation rel);
extern bool ledger_row_restored(Relation rel, TimestampTz recorded_at);
extern bool caller_sees_budget(int64 budget_id);

/* citus.c */
extern Oid  citus_rows_relid(Oid relid);
extern Oid  citus_table_of_shard(Relation rel);
extern bool citus_colocated_shard(Relation rel, Oid table, const char *index_name, Oid *shard,
								  Oid *shard_index);

/* jsonb_usage.c */
extern void usage_jsonb_to_tokens(Jsonb *jb, Tokens *t);

/* cost.c */
extern CostValue *cost_times_numeric(CostValue *a, Numeric f);

#endif /* TOKENLEDGER_LEDGER_H */
