/*
 * economics.c
 *		cost_per_outcome(spend cost, outcomes numeric) -> cost and
 *		roi(spend cost, value cost) -> numeric: what the money bought.
 *
 *		Both keep exact sums: the costs as 128-bit sums of nanos with their
 *		currency (CostAggState, shared with sum(cost) in aggregates.c), the
 *		outcomes as a numeric.  A NULL argument is left out of its own sum
 *		only, so cost_per_outcome(s, o) is round(sum(s) / sum(o), 9) and
 *		roi(s, v) is (sum(v) - sum(s)) / sum(s), a sum over no values
 *		counting as 0.  Both are parallel safe, with combine, serialize and
 *		deserialize functions; deserialize checks every byte it reads.
 */
#include "postgres.h"

#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "tokenledger.h"

typedef struct CostPerOutcomeState
{
	CostAggState spend;
	Numeric      outcomes; /* sum in the aggregate's context; NULL while none */
} CostPerOutcomeState;

typedef struct RoiState
{
	CostAggState spend;
	CostAggState value;
} RoiState;

/* the header of numeric's binary form: ndigits, weight, sign, dscale */
#define NUMERIC_SEND_HEADER_BYTES 8

/* bytes in a serialized roi state: the two sums */
#define ROI_STATE_BYTES (2 * COST_AGG_STATE_BYTES)

static char *
numeric_text(Numeric n)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
}

/* sign of n compared with zero; n is neither NaN nor infinite */
static int
numeric_sign_of(Numeric n)
{
	static Numeric zero = NULL;

	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		MemoryContextSwitchTo(old);
	}
	return DatumGetInt32(
		DirectFunctionCall2(numeric_cmp, NumericGetDatum(n), NumericGetDatum(zero)));
}

/* can n be a number of outcomes (finite, not negative)? */
static inline bool
outcomes_are_valid(Numeric n)
{
	return !numeric_is_nan(n) && !numeric_is_inf(n) && numeric_sign_of(n) >= 0;
}

/* Add n outcomes to *sum, kept in aggcontext. */
static void
add_outcomes(Numeric *sum, Numeric n, MemoryContext aggcontext)
{
	MemoryContext old = MemoryContextSwitchTo(aggcontext);
	Numeric       prev = *sum;

	if (prev == NULL)
		*sum = DatumGetNumeric(datumCopy(NumericGetDatum(n), false, -1));
	else
	{
		*sum = numeric_add_opt_error(prev, n, NULL);
		pfree(prev);
	}
	MemoryContextSwitchTo(old);
}

/* transition function of cost_per_outcome(spend cost, outcomes numeric) */
PG_FUNCTION_INFO_V1(cost_per_outcome_accum);
Datum
cost_per_outcome_accum(PG_FUNCTION_ARGS)
{
	MemoryContext        aggcontext = cost_agg_context(fcinfo, "cost_per_outcome_accum");
	CostPerOutcomeState *state;

	state = PG_ARGISNULL(0) ? NULL : (CostPerOutcomeState *) PG_GETARG_POINTER(0);
	if (state == NULL)
		state =
			(CostPerOutcomeState *) MemoryContextAllocZero(aggcontext, sizeof(CostPerOutcomeState));
	if (!PG_ARGISNULL(1))
		cost_agg_add(&state->spend, PG_GETARG_COST_P(1));
	if (!PG_ARGISNULL(2))
	{
		Numeric n = PG_GETARG_NUMERIC(2);

		if (!outcomes_are_valid(n))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("cost_per_outcome cannot count %s outcomes", numeric_text(n)),
							errdetail("A number of outcomes is finite and zero or more."),
							errhint("Leave out or net the rows that take outcomes back before "
									"aggregating.")));
		add_outcomes(&state->outcomes, n, aggcontext);
	}
	PG_RETURN_POINTER(state);
}

/* combine function of cost_per_outcome: either state may be NULL */
PG_FUNCTION_INFO_V1(cost_per_outcome_combine);
Datum
cost_per_outcome_combine(PG_FUNCTION_ARGS)
{
	MemoryContext        aggcontext = cost_agg_context(fcinfo, "cost_per_outcome_combine");
	CostPerOutcomeState *s1;
	CostPerOutcomeState *s2;

	s1 = PG_ARGISNULL(0) ? NULL : (CostPerOutcomeState *) PG_GETARG_POINTER(0);
	s2 = PG_ARGISNULL(1) ? NULL : (CostPerOutcomeState *) PG_GETARG_POINTER(1);
	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	/* s2 may live in a shorter-lived context (deserialized): copy, never share */
	if (s1 == NULL)
		s1 =
			(CostPerOutcomeState *) MemoryContextAllocZero(aggcontext, sizeof(CostPerOutcomeState));
	cost_agg_merge(&s1->spend, &s2->spend);
	if (s2->outcomes != NULL)
		add_outcomes(&s1->outcomes, s2->outcomes, aggcontext);
	PG_RETURN_POINTER(s1);
}

/*
 * serialize function of cost_per_outcome: the spend as cost_agg_send writes
 * it, then the sum of outcomes in numeric's binary form (0 while none, which
 * adds nothing, not even a scale)
 */
PG_FUNCTION_INFO_V1(cost_per_outcome_serialize);
Datum
cost_per_outcome_serialize(PG_FUNCTION_ARGS)
{
	CostPerOutcomeState *state;
	StringInfoData       buf;
	bytea               *outcomes;

	(void) cost_agg_context(fcinfo, "cost_per_outcome_serialize");
	state = (CostPerOutcomeState *) PG_GETARG_POINTER(0);
	outcomes = DatumGetByteaPP(DirectFunctionCall1(
		numeric_send,
		NumericGetDatum(state->outcomes != NULL ? state->outcomes : int64_to_numeric(0))));

	pq_begintypsend(&buf);
	cost_agg_send(&buf, &state->spend);
	pq_sendbytes(&buf, VARDATA_ANY(outcomes), VARSIZE_ANY_EXHDR(outcomes));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* deserialize function of cost_per_outcome: checks every byte */
PG_FUNCTION_INFO_V1(cost_per_outcome_deserialize);
Datum
cost_per_outcome_deserialize(PG_FUNCTION_ARGS)
{
	bytea               *sstate;
	CostPerOutcomeState *state;
	StringInfoData       buf;
	int                  ndigits;
	int                  expected;

	(void) cost_agg_context(fcinfo, "cost_per_outcome_deserialize");
	sstate = PG_GETARG_BYTEA_PP(0);
	buf.data = VARDATA_ANY(sstate);
	buf.len = VARSIZE_ANY_EXHDR(sstate);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	if (buf.len < COST_AGG_STATE_BYTES + NUMERIC_SEND_HEADER_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid serialized cost_per_outcome state: %d bytes, at least %d expected",
						buf.len, COST_AGG_STATE_BYTES + NUMERIC_SEND_HEADER_BYTES)));
	/* the numeric's digits must be exactly the bytes left */
	ndigits = ((unsigned char) buf.data[COST_AGG_STATE_BYTES] << 8) |
			  (unsigned char) buf.data[COST_AGG_STATE_BYTES + 1];
	expected = COST_AGG_STATE_BYTES + NUMERIC_SEND_HEADER_BYTES + 2 * ndigits;
	if (buf.len != expected)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid serialized cost_per_outcome state: %d bytes, %d expected",
							   buf.len, expected)));

	state = (CostPerOutcomeState *) palloc0(sizeof(CostPerOutcomeState));
	cost_agg_recv(&buf, &state->spend, "cost_per_outcome");
	/* numeric_recv checks the length, sign, scale and every digit */
	state->outcomes = DatumGetNumeric(DirectFunctionCall3(
		numeric_recv, PointerGetDatum(&buf), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	pq_getmsgend(&buf);
	if (!outcomes_are_valid(state->outcomes))
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid serialized cost_per_outcome state: %s outcomes",
							   numeric_text(state->outcomes))));
	PG_RETURN_POINTER(state);
}

/*
 * final function of cost_per_outcome: the spend divided by the outcomes,
 * exactly as round(sum / outcomes, 9) in numeric; NULL without spend or
 * without outcomes
 */
PG_FUNCTION_INFO_V1(cost_per_outcome_final);
Datum
cost_per_outcome_final(PG_FUNCTION_ARGS)
{
	CostPerOutcomeState *state;
	Numeric              spend;
	Numeric              quot;
	int64                nanos;

	state = PG_ARGISNULL(0) ? NULL : (CostPerOutcomeState *) PG_GETARG_POINTER(0);
	if (state == NULL || state->spend.count == 0 || state->outcomes == NULL ||
		numeric_sign_of(state->outcomes) == 0)
		PG_RETURN_NULL();
	spend = cost_agg_units(&state->spend);
	quot = numeric_div_opt_error(spend, state->outcomes, NULL);
	if (!numeric_to_nanos(quot, &nanos))
		ereport(
			ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("cost per outcome out of range in currency %s", state->spend.currency),
			 errdetail("%s %s over %s outcomes is %s per outcome.", numeric_text(spend),
					   state->spend.currency, numeric_text(state->outcomes), numeric_text(quot)),
			 errhint("A cost's magnitude must be below 9223372036.854775808 units.")));
	PG_RETURN_COST_P(cost_make(nanos, state->spend.currency));
}

/* transition function of roi(spend cost, value cost) */
PG_FUNCTION_INFO_V1(roi_accum);
Datum
roi_accum(PG_FUNCTION_ARGS)
{
	RoiState *state;

	state = PG_ARGISNULL(0) ? NULL : (RoiState *) PG_GETARG_POINTER(0);
	if (state == NULL)
		state = (RoiState *) MemoryContextAllocZero(cost_agg_context(fcinfo, "roi_accum"),
													sizeof(RoiState));
	if (!PG_ARGISNULL(1))
		cost_agg_add(&state->spend, PG_GETARG_COST_P(1));
	if (!PG_ARGISNULL(2))
		cost_agg_add(&state->value, PG_GETARG_COST_P(2));
	PG_RETURN_POINTER(state);
}

/* combine function of roi: either state may be NULL */
PG_FUNCTION_INFO_V1(roi_combine);
Datum
roi_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = cost_agg_context(fcinfo, "roi_combine");
	RoiState     *s1 = PG_ARGISNULL(0) ? NULL : (RoiState *) PG_GETARG_POINTER(0);
	RoiState     *s2 = PG_ARGISNULL(1) ? NULL : (RoiState *) PG_GETARG_POINTER(1);

	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
		s1 = (RoiState *) MemoryContextAllocZero(aggcontext, sizeof(RoiState));
	cost_agg_merge(&s1->spend, &s2->spend);
	cost_agg_merge(&s1->value, &s2->value);
	PG_RETURN_POINTER(s1);
}

/* serialize function of roi: the spend, then the value (cost_agg_send) */
PG_FUNCTION_INFO_V1(roi_serialize);
Datum
roi_serialize(PG_FUNCTION_ARGS)
{
	RoiState      *state;
	StringInfoData buf;

	(void) cost_agg_context(fcinfo, "roi_serialize");
	state = (RoiState *) PG_GETARG_POINTER(0);
	pq_begintypsend(&buf);
	cost_agg_send(&buf, &state->spend);
	cost_agg_send(&buf, &state->value);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* deserialize function of roi: checks every byte */
PG_FUNCTION_INFO_V1(roi_deserialize);
Datum
roi_deserialize(PG_FUNCTION_ARGS)
{
	bytea         *sstate;
	RoiState      *state;
	StringInfoData buf;

	(void) cost_agg_context(fcinfo, "roi_deserialize");
	sstate = PG_GETARG_BYTEA_PP(0);
	if (VARSIZE_ANY_EXHDR(sstate) != ROI_STATE_BYTES)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid serialized roi state: %d bytes, %d expected",
							   (int) VARSIZE_ANY_EXHDR(sstate), ROI_STATE_BYTES)));
	buf.data = VARDATA_ANY(sstate);
	buf.len = VARSIZE_ANY_EXHDR(sstate);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	state = (RoiState *) palloc0(sizeof(RoiState));
	cost_agg_recv(&buf, &state->spend, "roi");
	cost_agg_recv(&buf, &state->value, "roi");
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(state);
}

/*
 * final function of roi: (value - spend) / spend, exactly as that numeric
 * expression over the sums in units; NULL without spend or when it sums to 0
 */
PG_FUNCTION_INFO_V1(roi_final);
Datum
roi_final(PG_FUNCTION_ARGS)
{
	RoiState *state = PG_ARGISNULL(0) ? NULL : (RoiState *) PG_GETARG_POINTER(0);
	Numeric   spend;
	Numeric   gain;

	if (state == NULL)
		PG_RETURN_NULL();
	if (state->spend.count > 0 && state->value.count > 0 &&
		memcmp(state->spend.currency, state->value.currency, CURRENCY_LEN) != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("cannot compute roi of spend in %s and value in %s",
							   state->spend.currency, state->value.currency),
						errhint("Convert the value or the spend first with convert().")));
	if (state->spend.count == 0 || state->spend.sum == 0)
		PG_RETURN_NULL();
	spend = cost_agg_units(&state->spend);
	gain = numeric_sub_opt_error(cost_agg_units(&state->value), spend, NULL);
	PG_RETURN_NUMERIC(numeric_div_opt_error(gain, spend, NULL));
}
