/*
 * tokens.c
 *		The tokens type: six non-negative 64-bit counters of one call or of a
 *		batch of calls (input, output, cache_read, cache_write, cache_write_1h,
 *		reasoning).  reasoning is the part of output that was reasoning, so
 *		reasoning <= output always holds.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

#include "tokenledger.h"

typedef struct TokenField
{
	const char *name;     /* output name */
	const char *longname; /* also accepted on input */
	size_t      offset;
} TokenField;

/* in output order */
static const TokenField token_fields[TOKENS_NFIELDS] = {
	{"in", "input", offsetof(Tokens, input)},
	{"out", "output", offsetof(Tokens, output)},
	{"cache_read", NULL, offsetof(Tokens, cache_read)},
	{"cache_write", NULL, offsetof(Tokens, cache_write)},
	{"cache_write_1h", NULL, offsetof(Tokens, cache_write_1h)},
	{"reasoning", NULL, offsetof(Tokens, reasoning)},
};

#define FIELD(t, i) (*(int64 *) ((char *) (t) + token_fields[i].offset))

static Tokens *
tokens_alloc(void)
{
	return (Tokens *) palloc0(sizeof(Tokens));
}

/* Field index for name[0..len), or -1. */
static int
token_field_index(const char *name, int len)
{
	for (int i = 0; i < TOKENS_NFIELDS; i++)
	{
		const TokenField *f = &token_fields[i];

		if (field_name_is(name, len, f->name, f->longname))
			return i;
	}
	return -1;
}

static inline bool
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

#define TOKENS_SYNTAX_ERROR(escontext, str, ...)                                  \
	ereturn((escontext), false,                                                   \
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),                        \
			 errmsg("invalid input syntax for type %s: \"%s\"", "tokens", (str)), \
			 errdetail(__VA_ARGS__)))

/*
 * Parse "in=1200 out=350 cache_read=800": fields in any order, separated by
 * spaces and/or commas, each at most once; a missing field is zero.
 */
static bool
tokens_parse(const char *str, Tokens *result, Node *escontext)
{
	const char *p = str;
	bool        seen[TOKENS_NFIELDS] = {false};
	int         nseen = 0;

	memset(result, 0, sizeof(Tokens));
	for (;;)
	{
		const char *name;
		int         namelen;
		int         idx;
		const char *num;
		uint64      val = 0;
		bool        neg = false;
		bool        oor = false;

		while (is_field_separator(*p))
			p++;
		if (*p == '\0')
			break;

		name = p;
		while (is_name_char(*p))
			p++;
		namelen = (int) (p - name);
		if (namelen == 0)
			TOKENS_SYNTAX_ERROR(escontext, str, "A field name is expected at \"%s\".", p);
		idx = token_field_index(name, namelen);
		if (idx < 0)
			ereturn(escontext, false,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: \"%s\"", "tokens", str),
					 errdetail("Unknown field \"%.*s\".", namelen, name),
					 errhint("The fields are in, out, cache_read, cache_write, cache_write_1h and "
							 "reasoning.")));
		if (seen[idx])
			TOKENS_SYNTAX_ERROR(escontext, str, "Field \"%s\" is given more than once.",
								token_fields[idx].name);
		seen[idx] = true;
		nseen++;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			TOKENS_SYNTAX_ERROR(escontext, str, "Field \"%.*s\" has no \"=\" and count.", namelen,
								name);
		p++;
		while (*p == ' ' || *p == '\t')
			p++;

		/* a sign, then digits; "-0" is zero */
		num = p;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		if (!(*p >= '0' && *p <= '9'))
			TOKENS_SYNTAX_ERROR(escontext, str, "Field \"%s\" needs a whole number of tokens.",
								token_fields[idx].name);
		while (*p >= '0' && *p <= '9')
		{
			if (val > (uint64) PG_INT64_MAX / 10 ||
				val * 10 + (uint64) (*p - '0') > (uint64) PG_INT64_MAX)
				oor = true;
			else
				val = val * 10 + (uint64) (*p - '0');
			p++;
		}
		if (*p != '\0' && !is_field_separator(*p))
		{
			const char *end = p;

			while (*end && !is_field_separator(*end))
				end++;
			TOKENS_SYNTAX_ERROR(escontext, str,
								"Count \"%.*s\" of field \"%s\" is not a whole number.",
								(int) (end - num), num, token_fields[idx].name);
		}
		if (neg && (oor || val != 0))
			TOKENS_SYNTAX_ERROR(escontext, str, "Count \"%.*s\" of field \"%s\" is negative.",
								(int) (p - num), num, token_fields[idx].name);
		if (oor)
			ereturn(escontext, false,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value \"%.*s\" is out of range for type tokens", (int) (p - num), num),
					 errdetail("Field \"%s\" must be at most 9223372036854775807.",
							   token_fields[idx].name)));
		FIELD(result, idx) = (int64) val;
	}

	if (nseen == 0)
		TOKENS_SYNTAX_ERROR(escontext, str, "No field is given; write e.g. \"in=1200 out=350\".");
	if (result->reasoning > result->output)
		TOKENS_SYNTAX_ERROR(escontext, str,
							"reasoning (" INT64_FORMAT ") exceeds output (" INT64_FORMAT
							"); reasoning tokens are part of output.",
							result->reasoning, result->output);
	return true;
}

/* Text input. */
PG_FUNCTION_INFO_V1(tokens_in);
Datum
tokens_in(PG_FUNCTION_ARGS)
{
	char   *str = PG_GETARG_CSTRING(0);
	Tokens *result = tokens_alloc();

	if (!tokens_parse(str, result, fcinfo->context))
		PG_RETURN_NULL();
	PG_RETURN_TOKENS_P(result);
}

/* Text output: in and out, then the other non-zero fields. */
PG_FUNCTION_INFO_V1(tokens_out);
Datum
tokens_out(PG_FUNCTION_ARGS)
{
	Tokens        *t = PG_GETARG_TOKENS_P(0);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "in=" INT64_FORMAT " out=" INT64_FORMAT, t->input, t->output);
	for (int i = 2; i < TOKENS_NFIELDS; i++)
		if (FIELD(t, i) != 0)
			appendStringInfo(&buf, " %s=" INT64_FORMAT, token_fields[i].name, FIELD(t, i));
	PG_RETURN_CSTRING(buf.data);
}

/*
 * Validate counters that did not come through the text parser; code is the
 * SQLSTATE to raise.
 */
static void
tokens_validate(const Tokens *t, int code, const char *context)
{
	for (int i = 0; i < TOKENS_NFIELDS; i++)
		if (FIELD(t, i) < 0)
			ereport(ERROR,
					(errcode(code), errmsg("%s: count " INT64_FORMAT " of field \"%s\" is negative",
										   context, FIELD(t, i), token_fields[i].name)));
	if (t->reasoning > t->output)
		ereport(ERROR, (errcode(code),
						errmsg("%s: reasoning (" INT64_FORMAT ") exceeds output (" INT64_FORMAT ")",
							   context, t->reasoning, t->output),
						errdetail("Reasoning tokens are part of output.")));
}

/* bytes of the binary form */
#define TOKENS_BINARY_LEN (TOKENS_NFIELDS * 8)

/* Binary input: six int64 in the order input, output, cache_read,
 * cache_write, cache_write_1h, reasoning. */
PG_FUNCTION_INFO_V1(tokens_recv);
Datum
tokens_recv(PG_FUNCTION_ARGS)
{
	StringInfo buf = (StringInfo) PG_GETARG_POINTER(0);
	Tokens    *t = tokens_alloc();

	if (buf->len - buf->cursor != TOKENS_BINARY_LEN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid external tokens value: %d bytes, %d expected",
							   buf->len - buf->cursor, TOKENS_BINARY_LEN)));
	for (int i = 0; i < TOKENS_NFIELDS; i++)
		FIELD(t, i) = pq_getmsgint64(buf);
	tokens_validate(t, ERRCODE_INVALID_BINARY_REPRESENTATION, "invalid external tokens value");
	PG_RETURN_TOKENS_P(t);
}

/* Binary output. */
PG_FUNCTION_INFO_V1(tokens_send);
Datum
tokens_send(PG_FUNCTION_ARGS)
{
	Tokens        *t = PG_GETARG_TOKENS_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	for (int i = 0; i < TOKENS_NFIELDS; i++)
		pq_sendint64(&buf, FIELD(t, i));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * tokens(input, output, cache_read, cache_write, reasoning, cache_write_1h)
 */
PG_FUNCTION_INFO_V1(tokens_make);
Datum
tokens_make(PG_FUNCTION_ARGS)
{
	Tokens *t = tokens_alloc();

	t->input = PG_GETARG_INT64(0);
	t->output = PG_GETARG_INT64(1);
	t->cache_read = PG_GETARG_INT64(2);
	t->cache_write = PG_GETARG_INT64(3);
	t->reasoning = PG_GETARG_INT64(4);
	t->cache_write_1h = PG_GETARG_INT64(5);
	tokens_validate(t, ERRCODE_INVALID_TEXT_REPRESENTATION, "invalid tokens value");
	PG_RETURN_TOKENS_P(t);
}

#define TOKENS_ACCESSOR(fname, field)                  \
	PG_FUNCTION_INFO_V1(fname);                        \
	Datum fname(PG_FUNCTION_ARGS)                      \
	{                                                  \
		PG_RETURN_INT64(PG_GETARG_TOKENS_P(0)->field); \
	}

/* input(tokens) and the other field accessors */
TOKENS_ACCESSOR(tokens_input, input)
TOKENS_ACCESSOR(tokens_output, output)
TOKENS_ACCESSOR(tokens_cache_read, cache_read)
TOKENS_ACCESSOR(tokens_cache_write, cache_write)
TOKENS_ACCESSOR(tokens_cache_write_1h, cache_write_1h)
TOKENS_ACCESSOR(tokens_reasoning, reasoning)

/* total(tokens): every billed token (reasoning is inside output) */
PG_FUNCTION_INFO_V1(tokens_total);
Datum
tokens_total(PG_FUNCTION_ARGS)
{
	Tokens *t = PG_GETARG_TOKENS_P(0);
	int64   sum = t->input;

	if (pg_add_s64_overflow(sum, t->output, &sum) ||
		pg_add_s64_overflow(sum, t->cache_read, &sum) ||
		pg_add_s64_overflow(sum, t->cache_write, &sum) ||
		pg_add_s64_overflow(sum, t->cache_write_1h, &sum))
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						errmsg("total of tokens value is out of range for type bigint")));
	PG_RETURN_INT64(sum);
}

/* Add b into a, field by field; raise 22003 on overflow. */
static void
tokens_accumulate(Tokens *a, const Tokens *b)
{
	for (int i = 0; i < TOKENS_NFIELDS; i++)
		if (pg_add_s64_overflow(FIELD(a, i), FIELD(b, i), &FIELD(a, i)))
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							errmsg("tokens out of range: field \"%s\" exceeds 9223372036854775807",
								   token_fields[i].name)));
}

/* tokens + tokens */
PG_FUNCTION_INFO_V1(tokens_add);
Datum
tokens_add(PG_FUNCTION_ARGS)
{
	Tokens *result = tokens_alloc();

	*result = *PG_GETARG_TOKENS_P(0);
	tokens_accumulate(result, PG_GETARG_TOKENS_P(1));
	PG_RETURN_TOKENS_P(result);
}

static Tokens *
tokens_scale(const Tokens *t, int64 f)
{
	Tokens *result = tokens_alloc();

	if (f < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("cannot multiply tokens by a negative number: " INT64_FORMAT, f)));
	for (int i = 0; i < TOKENS_NFIELDS; i++)
		if (pg_mul_s64_overflow(FIELD(t, i), f, &FIELD(result, i)))
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							errmsg("tokens out of range: field \"%s\" times " INT64_FORMAT
								   " exceeds 9223372036854775807",
								   token_fields[i].name, f)));
	return result;
}

/* tokens * bigint */
PG_FUNCTION_INFO_V1(tokens_mul_int8);
Datum
tokens_mul_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_TOKENS_P(tokens_scale(PG_GETARG_TOKENS_P(0), PG_GETARG_INT64(1)));
}

/* bigint * tokens */
PG_FUNCTION_INFO_V1(int8_mul_tokens);
Datum
int8_mul_tokens(PG_FUNCTION_ARGS)
{
	PG_RETURN_TOKENS_P(tokens_scale(PG_GETARG_TOKENS_P(1), PG_GETARG_INT64(0)));
}

/* tokens = tokens */
PG_FUNCTION_INFO_V1(tokens_eq);
Datum
tokens_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memcmp(PG_GETARG_TOKENS_P(0), PG_GETARG_TOKENS_P(1), sizeof(Tokens)) == 0);
}

/* tokens <> tokens */
PG_FUNCTION_INFO_V1(tokens_ne);
Datum
tokens_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memcmp(PG_GETARG_TOKENS_P(0), PG_GETARG_TOKENS_P(1), sizeof(Tokens)) != 0);
}

/* hash support function 1 */
PG_FUNCTION_INFO_V1(tokens_hash);
Datum
tokens_hash(PG_FUNCTION_ARGS)
{
	return hash_any((const unsigned char *) PG_GETARG_TOKENS_P(0), sizeof(Tokens));
}

/* hash support function 2 */
PG_FUNCTION_INFO_V1(tokens_hash_extended);
Datum
tokens_hash_extended(PG_FUNCTION_ARGS)
{
	return hash_any_extended((const unsigned char *) PG_GETARG_TOKENS_P(0), sizeof(Tokens),
							 (uint64) PG_GETARG_INT64(1));
}

/*
 * Transition and combine function of sum(tokens).  The state is a tokens
 * value in the aggregate context (the first input, copied there by the
 * executor), updated in place.
 */
PG_FUNCTION_INFO_V1(tokens_sum_accum);
Datum
tokens_sum_accum(PG_FUNCTION_ARGS)
{
	Tokens *state = PG_GETARG_TOKENS_P(0);
	Tokens *t = PG_GETARG_TOKENS_P(1);

	if (!AggCheckCallContext(fcinfo, NULL))
	{
		Tokens *copy = tokens_alloc();

		*copy = *state;
		state = copy;
	}
	tokens_accumulate(state, t);
	PG_RETURN_TOKENS_P(state);
}

/* inverse transition function of sum(tokens) for moving window frames */
PG_FUNCTION_INFO_V1(tokens_sum_inv);
Datum
tokens_sum_inv(PG_FUNCTION_ARGS)
{
	Tokens *state = PG_GETARG_TOKENS_P(0);
	Tokens *t = PG_GETARG_TOKENS_P(1);

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "tokens_sum_inv called in non-aggregate context");
	for (int i = 0; i < TOKENS_NFIELDS; i++)
		FIELD(state, i) -= FIELD(t, i);
	PG_RETURN_TOKENS_P(state);
}
