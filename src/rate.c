/*
 * rate.c
 *		The rate type: a model's prices per 1,000,000 tokens of each billed
 *		class (input, output, cache_read, cache_write, cache_write_1h) in one
 *		currency, exact to 1e-9 units per 1M tokens, and tokens * rate.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "tokenledger.h"

#define TOKENS_PER_PRICE_UNIT INT64CONST(1000000)

typedef struct PriceField
{
	const char *name;
	const char *longname;
	size_t      offset;
	size_t      tokens_offset; /* the tokens field it bills */
} PriceField;

static const PriceField price_fields[RATE_NPRICES] = {
	{"in", "input", offsetof(Rate, input), offsetof(Tokens, input)},
	{"out", "output", offsetof(Rate, output), offsetof(Tokens, output)},
	{"cache_read", NULL, offsetof(Rate, cache_read), offsetof(Tokens, cache_read)},
	{"cache_write", NULL, offsetof(Rate, cache_write), offsetof(Tokens, cache_write)},
	{"cache_write_1h", NULL, offsetof(Rate, cache_write_1h), offsetof(Tokens, cache_write_1h)},
};

#define PRICE(r, i)  (*(int64 *) ((char *) (r) + price_fields[i].offset))
#define BILLED(t, i) (*(const int64 *) ((const char *) (t) + price_fields[i].tokens_offset))

static int
price_field_index(const char *name, int len)
{
	for (int i = 0; i < RATE_NPRICES; i++)
	{
		const PriceField *f = &price_fields[i];

		if (field_name_is(name, len, f->name, f->longname))
			return i;
	}
	return -1;
}

#define RATE_SYNTAX_ERROR(escontext, str, ...)                                  \
	ereturn((escontext), false,                                                 \
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),                      \
			 errmsg("invalid input syntax for type %s: \"%s\"", "rate", (str)), \
			 errdetail(__VA_ARGS__)))

/*
 * Parse "in=3 out=15 cache_read=0.30 USD/1M": prices in any order, each at
 * most once, then optionally the currency, optionally followed by "/1M".
 */
static bool
rate_parse(const char *str, Rate *result, Node *escontext)
{
	const char *p = str;
	bool        seen[RATE_NPRICES] = {false};
	int         nseen = 0;
	bool        have_code = false;

	memset(result, 0, sizeof(Rate));
	for (;;)
	{
		const char *name;
		int         namelen;
		int         idx;
		const char *eq;
		const char *num;
		int64       nanos;
		bool        neg = false;
		bool        oor = false;
		int         n;

		while (is_field_separator(*p))
			p++;
		if (*p == '\0')
			break;

		name = p;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			   *p == '_')
			p++;
		namelen = (int) (p - name);
		if (namelen == 0)
			RATE_SYNTAX_ERROR(escontext, str, "A price is expected at \"%s\".", p);

		/* "=" may have blanks around it, as in tokens */
		eq = p;
		while (*eq == ' ' || *eq == '\t')
			eq++;
		if (*eq != '=')
		{
			/* the currency, last */
			const char *q = p;

			if (price_field_index(name, namelen) >= 0)
				RATE_SYNTAX_ERROR(escontext, str, "Price \"%.*s\" has no \"=\" and number.",
								  namelen, name);
			if (!currency_normalize(name, namelen, result->currency))
				RATE_SYNTAX_ERROR(
					escontext, str,
					"\"%.*s\" is neither a price field nor an ISO 4217 currency code.", namelen,
					name);
			if (pg_strncasecmp(q, "/1M", 3) == 0)
				q += 3;
			while (is_field_separator(*q))
				q++;
			if (*q != '\0')
				RATE_SYNTAX_ERROR(escontext, str, "Unexpected \"%s\" after the currency.", q);
			have_code = true;
			break;
		}

		idx = price_field_index(name, namelen);
		if (idx < 0)
			ereturn(escontext, false,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: \"%s\"", "rate", str),
					 errdetail("Unknown price field \"%.*s\".", namelen, name),
					 errhint("The fields are in, out, cache_read, cache_write and cache_write_1h, "
							 "prices per 1M tokens.")));
		if (seen[idx])
			RATE_SYNTAX_ERROR(escontext, str, "Price \"%s\" is given more than once.",
							  price_fields[idx].name);
		seen[idx] = true;
		nseen++;
		p = eq + 1;
		while (*p == ' ' || *p == '\t')
			p++;

		/* a sign, then the number; "-0" is zero */
		num = p;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		n = parse_decimal_nanos(p, &nanos, &oor);
		p += n;
		if (n == 0 || (*p != '\0' && !is_field_separator(*p)))
		{
			const char *end = p;

			while (*end && !is_field_separator(*end))
				end++;
			if (end == num)
				RATE_SYNTAX_ERROR(escontext, str, "Price \"%s\" has no number after \"=\".",
								  price_fields[idx].name);
			RATE_SYNTAX_ERROR(escontext, str, "Price \"%.*s\" of \"%s\" is not a number.",
							  (int) (end - num), num, price_fields[idx].name);
		}
		if (neg && (oor || nanos != 0))
			RATE_SYNTAX_ERROR(escontext, str, "Price \"%.*s\" of \"%s\" is negative.",
							  (int) (p - num), num, price_fields[idx].name);
		if (oor)
			ereturn(escontext, false,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value \"%.*s\" is out of range for type rate", (int) (p - num), num),
					 errdetail("A price must be below 9223372036.854775808 units per 1M tokens.")));
		PRICE(result, idx) = nanos;
	}

	if (nseen == 0)
		RATE_SYNTAX_ERROR(escontext, str, "No price is given; write e.g. \"in=3 out=15 USD/1M\".");
	if (!have_code)
		memcpy(result->currency, default_currency(), CURRENCY_LEN);
	return true;
}

/* Text input. */
PG_FUNCTION_INFO_V1(rate_in);
Datum
rate_in(PG_FUNCTION_ARGS)
{
	char *str = PG_GETARG_CSTRING(0);
	Rate *result = (Rate *) palloc0(sizeof(Rate));

	if (!rate_parse(str, result, fcinfo->context))
		PG_RETURN_NULL();
	PG_RETURN_RATE_P(result);
}

/* Text output: in and out, then the non-zero cache prices, then "CUR/1M". */
PG_FUNCTION_INFO_V1(rate_out);
Datum
rate_out(PG_FUNCTION_ARGS)
{
	Rate          *r = PG_GETARG_RATE_P(0);
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < RATE_NPRICES; i++)
	{
		if (i >= 2 && PRICE(r, i) == 0)
			continue;
		if (i > 0)
			appendStringInfoChar(&buf, ' ');
		appendStringInfo(&buf, "%s=", price_fields[i].name);
		format_nanos(&buf, PRICE(r, i), 0);
	}
	appendStringInfo(&buf, " %s/1M", r->currency);
	PG_RETURN_CSTRING(buf.data);
}

/* bytes of the binary form: five int64 prices, then the currency code */
#define RATE_BINARY_LEN (RATE_NPRICES * 8 + CURRENCY_LEN)

/* Binary input: five int64 prices in nanos, then the currency code. */
PG_FUNCTION_INFO_V1(rate_recv);
Datum
rate_recv(PG_FUNCTION_ARGS)
{
	StringInfo  buf = (StringInfo) PG_GETARG_POINTER(0);
	Rate       *r = (Rate *) palloc0(sizeof(Rate));
	const char *code;

	if (buf->len - buf->cursor != RATE_BINARY_LEN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid external rate value: %d bytes, %d expected",
							   buf->len - buf->cursor, RATE_BINARY_LEN)));
	for (int i = 0; i < RATE_NPRICES; i++)
	{
		PRICE(r, i) = pq_getmsgint64(buf);
		if (PRICE(r, i) < 0)
			ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
							errmsg("invalid external rate value: price \"%s\" is negative",
								   price_fields[i].name)));
	}
	code = pq_getmsgbytes(buf, CURRENCY_LEN);
	if (!currency_normalize(code, CURRENCY_LEN, r->currency) ||
		memcmp(code, r->currency, CURRENCY_LEN) != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid external rate value: currency %s is not an ISO 4217 code",
							   describe_received_code(code))));
	PG_RETURN_RATE_P(r);
}

/* Binary output. */
PG_FUNCTION_INFO_V1(rate_send);
Datum
rate_send(PG_FUNCTION_ARGS)
{
	Rate          *r = PG_GETARG_RATE_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	for (int i = 0; i < RATE_NPRICES; i++)
		pq_sendint64(&buf, PRICE(r, i));
	pq_sendbytes(&buf, r->currency, CURRENCY_LEN);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * The cost of t at rate r: the exact sum of count x price over the billed
 * classes, divided by 1,000,000 and rounded once, half away from zero, to
 * the nano.  Raises 22003 when the result does not fit a cost.
 */
CostValue *
tokens_times_rate(const Tokens *t, const Rate *r)
{
	/* a result must stay below 2^63 nanos, i.e. the sum below 2^63 * 1e6 */
	const int128 limit = (int128) NANOS_MAX * TOKENS_PER_PRICE_UNIT;
	int128       sum = 0;
	int128       nanos;

	for (int i = 0; i < RATE_NPRICES; i++)
	{
		/* both factors are below 2^63, so each product is below 2^126 */
		sum += (int128) BILLED(t, i) * (int128) PRICE(r, i);
		if (sum > limit)
			break;
	}
	nanos = (sum + TOKENS_PER_PRICE_UNIT / 2) / TOKENS_PER_PRICE_UNIT;
	if (nanos > (int128) NANOS_MAX)
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						errmsg("cost out of range in currency %s", r->currency),
						errdetail("The tokens times the rate exceed 9223372036.854775807 units.")));
	return cost_make((int64) nanos, r->currency);
}

/* tokens * rate -> cost */
PG_FUNCTION_INFO_V1(tokens_mul_rate);
Datum
tokens_mul_rate(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(tokens_times_rate(PG_GETARG_TOKENS_P(0), PG_GETARG_RATE_P(1)));
}

/* rate * tokens -> cost */
PG_FUNCTION_INFO_V1(rate_mul_tokens);
Datum
rate_mul_tokens(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(tokens_times_rate(PG_GETARG_TOKENS_P(1), PG_GETARG_RATE_P(0)));
}

/* rate * numeric -> rate: every price scaled, rounded to the nano */
PG_FUNCTION_INFO_V1(rate_mul_numeric);
Datum
rate_mul_numeric(PG_FUNCTION_ARGS)
{
	Rate   *r = PG_GETARG_RATE_P(0);
	Numeric f = PG_GETARG_NUMERIC(1);
	Rate   *result = (Rate *) palloc0(sizeof(Rate));

	if (numeric_is_nan(f) || numeric_is_inf(f) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(f),
										  NumericGetDatum(int64_to_numeric(0)))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot multiply a rate by %s",
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(f)))),
				 errdetail("A rate's factor must be a finite number, zero or more.")));
	for (int i = 0; i < RATE_NPRICES; i++)
	{
		Numeric prod;

		prod = DatumGetNumeric(DirectFunctionCall2(
			numeric_mul, NumericGetDatum(nanos_to_numeric(PRICE(r, i))), NumericGetDatum(f)));
		if (!numeric_to_nanos(prod, &PRICE(result, i)))
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							errmsg("rate out of range: price \"%s\" times the factor is too large",
								   price_fields[i].name)));
	}
	memcpy(result->currency, r->currency, CURRENCY_LEN);
	PG_RETURN_RATE_P(result);
}

#define RATE_ACCESSOR(fname, field)                         \
	PG_FUNCTION_INFO_V1(fname);                             \
	Datum fname(PG_FUNCTION_ARGS)                           \
	{                                                       \
		Rate *r = PG_GETARG_RATE_P(0);                      \
		PG_RETURN_COST_P(cost_make(r->field, r->currency)); \
	}

/* input_price(rate) and the other price accessors: cost per 1M tokens */
RATE_ACCESSOR(rate_input_price, input)
RATE_ACCESSOR(rate_output_price, output)
RATE_ACCESSOR(rate_cache_read_price, cache_read)
RATE_ACCESSOR(rate_cache_write_price, cache_write)
RATE_ACCESSOR(rate_cache_write_1h_price, cache_write_1h)

/* rate = rate */
PG_FUNCTION_INFO_V1(rate_eq);
Datum
rate_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memcmp(PG_GETARG_RATE_P(0), PG_GETARG_RATE_P(1), sizeof(Rate)) == 0);
}

/* rate <> rate */
PG_FUNCTION_INFO_V1(rate_ne);
Datum
rate_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memcmp(PG_GETARG_RATE_P(0), PG_GETARG_RATE_P(1), sizeof(Rate)) != 0);
}

/* hash support function 1 */
PG_FUNCTION_INFO_V1(rate_hash);
Datum
rate_hash(PG_FUNCTION_ARGS)
{
	return hash_any((const unsigned char *) PG_GETARG_RATE_P(0), sizeof(Rate));
}

/* hash support function 2 */
PG_FUNCTION_INFO_V1(rate_hash_extended);
Datum
rate_hash_extended(PG_FUNCTION_ARGS)
{
	return hash_any_extended((const unsigned char *) PG_GETARG_RATE_P(0), sizeof(Rate),
							 (uint64) PG_GETARG_INT64(1));
}
