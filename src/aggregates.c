/*
 * aggregates.c
 *		sum(cost) and avg(cost): an exact 128-bit sum and a count, with
 *		combine, serialize and deserialize functions for parallel plans and an
 *		inverse transition function for moving window frames.  The sum and its
 *		binary form (cost_agg_*) are also parts of the states of economics.c.
 */
#include "postgres.h"

#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "tokenledger.h"

/* CostAggState and COST_AGG_STATE_BYTES are in tokenledger.h */

/* The aggregate's memory context; an error when fname is not called by one. */
MemoryContext
cost_agg_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext aggcontext;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return aggcontext;
}

static CostAggState *
make_state(MemoryContext aggcontext)
{
	return (CostAggState *) MemoryContextAllocZero(aggcontext, sizeof(CostAggState));
}

static void
mixed_currencies(const char *a, const char *b)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot aggregate costs in different currencies: %s and %s", a, b),
			 errhint("Group by currency(cost), or convert the costs first with convert().")));
}

/* Take on the currency of a cost, or check that it matches. */
static inline void
state_currency(CostAggState *state, const char *currency)
{
	if (state->count == 0)
		memcpy(state->currency, currency, CURRENCY_LEN + 1);
	else if (memcmp(state->currency, currency, CURRENCY_LEN) != 0)
		mixed_currencies(state->currency, currency);
}

/* Add a cost to a sum (raises 22023 for another currency). */
void
cost_agg_add(CostAggState *state, const CostValue *c)
{
	state_currency(state, c->currency);
	state->sum += c->nanos;
	state->count++;
}

/* Add the sum from to the sum into (raises 22023 for another currency). */
void
cost_agg_merge(CostAggState *into, const CostAggState *from)
{
	if (from->count == 0)
		return;
	state_currency(into, from->currency);
	into->sum += from->sum;
	into->count += from->count;
}

/* The sum in units, as a numeric of scale 9. */
Numeric
cost_agg_units(const CostAggState *state)
{
	return nanos128_to_numeric(state->sum);
}

/* Append a sum in its binary form: COST_AGG_STATE_BYTES bytes. */
void
cost_agg_send(StringInfo buf, const CostAggState *state)
{
	uint128 u = (uint128) state->sum;

	pq_sendint64(buf, (int64) (uint64) (u >> 64));
	pq_sendint64(buf, (int64) (uint64) u);
	pq_sendint64(buf, state->count);
	pq_sendbytes(buf, state->currency, CURRENCY_LEN);
}

static void invalid_state(const char *aggname, const char *fmt, ...) pg_attribute_noreturn()
	pg_attribute_printf(2, 3);

static void
invalid_state(const char *aggname, const char *fmt, ...)
{
	char    what[256];
	va_list args;

	va_start(args, fmt);
	vsnprintf(what, sizeof(what), fmt, args);
	va_end(args);
	ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					errmsg("invalid serialized %s state: %s", aggname, what)));
}

/*
 * Read a sum written by cost_agg_send (the caller has checked that the bytes
 * are there) and check it: a count that is not negative, no sum and no
 * currency without values, an ISO 4217 code, and a sum that values of the
 * cost range can reach.  aggname names the aggregate in the errors.
 */
void
cost_agg_recv(StringInfo buf, CostAggState *state, const char *aggname)
{
	uint64      hi;
	uint64      lo;
	const char *code;

	hi = (uint64) pq_getmsgint64(buf);
	lo = (uint64) pq_getmsgint64(buf);
	state->sum = (int128) (((uint128) hi << 64) | (uint128) lo);
	state->count = pq_getmsgint64(buf);
	code = pq_getmsgbytes(buf, CURRENCY_LEN);
	memset(state->currency, 0, sizeof(state->currency));

	if (state->count < 0)
		invalid_state(aggname, "negative count " INT64_FORMAT, state->count);
	if (state->count == 0)
	{
		if (state->sum != 0 || code[0] != '\0' || code[1] != '\0' || code[2] != '\0')
			invalid_state(aggname, "a sum or a currency without values");
		return;
	}
	if (!(currency_normalize(code, CURRENCY_LEN, state->currency) &&
		  memcmp(code, state->currency, CURRENCY_LEN) == 0))
		invalid_state(aggname, "currency %s is not an ISO 4217 code", describe_received_code(code));
	/* each value is at most NANOS_MAX in magnitude; count < 2^63 */
	if (state->sum > (int128) state->count * NANOS_MAX ||
		state->sum < -(int128) state->count * NANOS_MAX)
		invalid_state(aggname, "sum %s is beyond " INT64_FORMAT " values",
					  DatumGetCString(DirectFunctionCall1(
						  numeric_out, NumericGetDatum(nanos128_to_numeric(state->sum)))),
					  state->count);
}

/* transition function of sum(cost) and avg(cost) */
PG_FUNCTION_INFO_V1(cost_sum_accum);
Datum
cost_sum_accum(PG_FUNCTION_ARGS)
{
	CostAggState *state;

	state = PG_ARGISNULL(0) ? NULL : (CostAggState *) PG_GETARG_POINTER(0);
	if (state == NULL)
		state = make_state(cost_agg_context(fcinfo, "cost_sum_accum"));
	if (!PG_ARGISNULL(1))
		cost_agg_add(state, PG_GETARG_COST_P(1));
	PG_RETURN_POINTER(state);
}

/* inverse transition function: removes a value leaving a window frame */
PG_FUNCTION_INFO_V1(cost_sum_inv);
Datum
cost_sum_inv(PG_FUNCTION_ARGS)
{
	CostAggState *state;

	state = PG_ARGISNULL(0) ? NULL : (CostAggState *) PG_GETARG_POINTER(0);
	if (state == NULL)
		elog(ERROR, "cost_sum_inv called with a NULL state");
	if (!PG_ARGISNULL(1))
	{
		CostValue *c = PG_GETARG_COST_P(1);

		if (state->count <= 0 || memcmp(state->currency, c->currency, CURRENCY_LEN) != 0)
			elog(ERROR, "cost_sum_inv called with a value not in the state");
		state->sum -= c->nanos;
		state->count--;
		if (state->count == 0)
			memset(state->currency, 0, sizeof(state->currency));
	}
	PG_RETURN_POINTER(state);
}

/* combine function: merges two partial states; either may be NULL */
PG_FUNCTION_INFO_V1(cost_sum_combine);
Datum
cost_sum_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = cost_agg_context(fcinfo, "cost_sum_combine");
	CostAggState *s1 = PG_ARGISNULL(0) ? NULL : (CostAggState *) PG_GETARG_POINTER(0);
	CostAggState *s2 = PG_ARGISNULL(1) ? NULL : (CostAggState *) PG_GETARG_POINTER(1);

	if (s2 == NULL || s2->count == 0)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
	{
		s1 = make_state(aggcontext);
		*s1 = *s2;
		PG_RETURN_POINTER(s1);
	}
	cost_agg_merge(s1, s2);
	PG_RETURN_POINTER(s1);
}

/* serialize function: the state as bytea for a parallel worker's result */
PG_FUNCTION_INFO_V1(cost_sum_serialize);
Datum
cost_sum_serialize(PG_FUNCTION_ARGS)
{
	CostAggState  *state;
	StringInfoData buf;

	(void) cost_agg_context(fcinfo, "cost_sum_serialize");
	state = (CostAggState *) PG_GETARG_POINTER(0);
	pq_begintypsend(&buf);
	cost_agg_send(&buf, state);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* deserialize function: validates the bytes it reads */
PG_FUNCTION_INFO_V1(cost_sum_deserialize);
Datum
cost_sum_deserialize(PG_FUNCTION_ARGS)
{
	bytea         *sstate;
	CostAggState  *state;
	StringInfoData buf;

	(void) cost_agg_context(fcinfo, "cost_sum_deserialize");
	sstate = PG_GETARG_BYTEA_PP(0);
	if (VARSIZE_ANY_EXHDR(sstate) != COST_AGG_STATE_BYTES)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid serialized cost aggregate state: %d bytes, expected %d",
							   (int) VARSIZE_ANY_EXHDR(sstate), COST_AGG_STATE_BYTES)));

	buf.data = VARDATA_ANY(sstate);
	buf.len = VARSIZE_ANY_EXHDR(sstate);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	state = (CostAggState *) palloc0(sizeof(CostAggState));
	cost_agg_recv(&buf, state, "cost aggregate");
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(state);
}

/* final function of sum(cost): NULL over no rows */
PG_FUNCTION_INFO_V1(cost_sum_final);
Datum
cost_sum_final(PG_FUNCTION_ARGS)
{
	CostAggState *state = PG_ARGISNULL(0) ? NULL : (CostAggState *) PG_GETARG_POINTER(0);

	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();
	if (state->sum > (int128) NANOS_MAX || state->sum < -(int128) NANOS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("sum of costs out of range in currency %s", state->currency),
				 errdetail("The sum is %s.",
						   DatumGetCString(DirectFunctionCall1(
							   numeric_out, NumericGetDatum(nanos128_to_numeric(state->sum))))),
				 errhint("A cost's magnitude must be below 9223372036.854775808 units.")));
	PG_RETURN_COST_P(cost_make((int64) state->sum, state->currency));
}

/*
 * final function of avg(cost): the exact sum divided by the count, rounded
 * half away from zero to the nano (as round(sum / count, 9) in numeric).
 */
PG_FUNCTION_INFO_V1(cost_avg_final);
Datum
cost_avg_final(PG_FUNCTION_ARGS)
{
	CostAggState *state = PG_ARGISNULL(0) ? NULL : (CostAggState *) PG_GETARG_POINTER(0);
	Numeric       quot;
	int64         nanos;

	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();
	if (state->sum % state->count == 0)
		PG_RETURN_COST_P(cost_make((int64) (state->sum / state->count), state->currency));
	quot = DatumGetNumeric(DirectFunctionCall2(numeric_div,
											   NumericGetDatum(nanos128_to_numeric(state->sum)),
											   NumericGetDatum(int64_to_numeric(state->count))));
	if (!numeric_to_nanos(quot, &nanos))
		elog(ERROR, "average of costs out of range"); /* cannot happen */
	PG_RETURN_COST_P(cost_make(nanos, state->currency));
}
