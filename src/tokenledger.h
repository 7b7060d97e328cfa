/*
 * tokenledger.h
 *		Shared definitions of the tokenledger extension: the on-disk layouts of
 *		the cost, tokens and rate types, currency helpers and the setting
 *		tokenledger.currency.
 */
#ifndef TOKENLEDGER_H
#define TOKENLEDGER_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/numeric.h"

#ifndef HAVE_INT128
#error "tokenledger needs a compiler with a 128-bit integer type"
#endif

/* version differences between PostgreSQL 13 and 17 */
#include "compat.h"

/* One nano is 1e-9 of a currency unit. */
#define NANOS_PER_UNIT INT64CONST(1000000000)
#define NANO_DIGITS    9

/* Largest magnitude a cost or a price may hold, in nanos: 2^63 - 1. */
#define NANOS_MAX PG_INT64_MAX

/* ISO 4217 alphabetic code, NUL-terminated. */
#define CURRENCY_LEN 3

/*
 * cost: an amount in nanos of one currency.  16 bytes, passed by reference,
 * always built zeroed so that hashing and equality may read the bytes.
 */
typedef struct CostValue
{
	int64 nanos;
	char  currency[CURRENCY_LEN + 1];
	int32 reserved; /* always zero */
} CostValue;

/*
 * tokens: six non-negative counters.  reasoning is the part of output that
 * was reasoning; it is never billed apart.
 */
typedef struct Tokens
{
	int64 input;
	int64 output;
	int64 cache_read;
	int64 cache_write;
	int64 cache_write_1h;
	int64 reasoning;
} Tokens;

#define TOKENS_NFIELDS 6

/*
 * rate: prices in nanos per 1,000,000 tokens of each billed class, in one
 * currency.
 */
typedef struct Rate
{
	int64 input;
	int64 output;
	int64 cache_read;
	int64 cache_write;
	int64 cache_write_1h;
	char  currency[CURRENCY_LEN + 1];
	int32 reserved; /* always zero */
} Rate;

#define RATE_NPRICES 5

#define DatumGetCostP(X)    ((CostValue *) DatumGetPointer(X))
#define CostPGetDatum(X)    PointerGetDatum(X)
#define PG_GETARG_COST_P(n) DatumGetCostP(PG_GETARG_DATUM(n))
#define PG_RETURN_COST_P(x) return CostPGetDatum(x)

#define DatumGetTokensP(X)    ((Tokens *) DatumGetPointer(X))
#define TokensPGetDatum(X)    PointerGetDatum(X)
#define PG_GETARG_TOKENS_P(n) DatumGetTokensP(PG_GETARG_DATUM(n))
#define PG_RETURN_TOKENS_P(x) return TokensPGetDatum(x)

#define DatumGetRateP(X)    ((Rate *) DatumGetPointer(X))
#define RatePGetDatum(X)    PointerGetDatum(X)
#define PG_GETARG_RATE_P(n) DatumGetRateP(PG_GETARG_DATUM(n))
#define PG_RETURN_RATE_P(x) return RatePGetDatum(x)

/* text forms of tokens and rate: fields separated by spaces and/or commas */
static inline bool
is_field_separator(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* does name[0..len) spell a field, by its short or long name, in any case? */
static inline bool
field_name_is(const char *name, int len, const char *short_name, const char *long_name)
{
	return (strlen(short_name) == (size_t) len && pg_strncasecmp(name, short_name, len) == 0) ||
		   (long_name && strlen(long_name) == (size_t) len &&
			pg_strncasecmp(name, long_name, len) == 0);
}

/* tokenledger.c: the setting and currency codes */
extern char       *tokenledger_currency;
extern bool        currency_is_valid(const char *code);
extern bool        currency_normalize(const char *src, int len, char *dst);
extern const char *default_currency(void);

/* cost.c: shared numeric helpers */
extern char      *describe_received_code(const char *code);
extern CostValue *cost_make(int64 nanos, const char *currency);
extern Numeric    nanos_to_numeric(int64 nanos);
extern Numeric    nanos128_to_numeric(int128 nanos);
extern bool       numeric_to_nanos(Numeric units, int64 *nanos);
extern int        parse_decimal_nanos(const char *s, int64 *nanos, bool *out_of_range);
extern void       format_nanos(StringInfo buf, int64 nanos, int min_decimals);

/* rate.c */
extern CostValue *tokens_times_rate(const Tokens *t, const Rate *r);

/*
 * aggregates.c: the exact sum of costs in one currency, the state of
 * sum(cost) and avg(cost) and a part of the states of economics.c
 */
typedef struct CostAggState
{
	int128 sum;                        /* in nanos */
	int64  count;                      /* non-NULL inputs in the state */
	char   currency[CURRENCY_LEN + 1]; /* empty while count == 0 */
} CostAggState;

/* bytes in a serialized CostAggState: sum (2 x int64), count, currency */
#define COST_AGG_STATE_BYTES (8 + 8 + 8 + CURRENCY_LEN)

extern MemoryContext cost_agg_context(FunctionCallInfo fcinfo, const char *fname);
extern void          cost_agg_add(CostAggState *state, const CostValue *c);
extern void          cost_agg_merge(CostAggState *into, const CostAggState *from);
extern void          cost_agg_send(StringInfo buf, const CostAggState *state);
extern void          cost_agg_recv(StringInfo buf, CostAggState *state, const char *aggname);
extern Numeric       cost_agg_units(const CostAggState *state);

#endif /* TOKENLEDGER_H */
