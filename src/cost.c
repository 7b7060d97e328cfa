/*
 * cost.c
 *		The cost type: a fixed-point amount, exact to 1e-9 of a currency unit,
 *		with an ISO 4217 currency code.
 *
 * The amount is an int64 count of nanos whose magnitude stays below 2^63, so
 * negation never overflows.  Arithmetic is checked; products and quotients
 * by numeric are computed in numeric and rounded once, half away from zero,
 * exactly as round(numeric_result, 9).
 */
#include "postgres.h"

#include <limits.h>

#include "common/hashfn.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "tokenledger.h"
#include "ledger.h"

/* UTF-8 currency symbols accepted on input */
#define EURO_SIGN  "\xe2\x82\xac"
#define POUND_SIGN "\xc2\xa3"

/*
 * Build a zeroed cost.  currency must be a valid, NUL-terminated code.
 */
CostValue *
cost_make(int64 nanos, const char *currency)
{
	CostValue *result = (CostValue *) palloc0(sizeof(CostValue));

	result->nanos = nanos;
	memcpy(result->currency, currency, CURRENCY_LEN);
	return result;
}

static inline bool
same_currency(const CostValue *a, const CostValue *b)
{
	return memcmp(a->currency, b->currency, CURRENCY_LEN) == 0;
}

static void
check_same_currency(const CostValue *a, const CostValue *b, const char *what)
{
	if (!same_currency(a, b))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("cannot %s costs in different currencies: %s and %s", what,
							   a->currency, b->currency),
						errhint("Convert one of them first, e.g. with convert().")));
}

static void report_cost_out_of_range(const char *currency) pg_attribute_noreturn();
static void report_division_by_zero(void) pg_attribute_noreturn();

static void
report_cost_out_of_range(const char *currency)
{
	ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					errmsg("cost out of range in currency %s", currency),
					errdetail("A cost's magnitude must be below 9223372036.854775808 units.")));
}

/*
 * Parse an unsigned decimal number ("12", "12.5", ".5", "12.") at s into
 * nanos.  Digits past the ninth decimal round half away from zero.  Returns
 * the number of bytes consumed, 0 when s does not start with a number.  Sets
 * *out_of_range when the magnitude reaches 2^63 nanos (all digits are still
 * consumed).
 */
int
parse_decimal_nanos(const char *s, int64 *nanos, bool *out_of_range)
{
	const char *p = s;
	uint64      units = 0;
	int64       frac = 0;
	int         ndigits = 0;
	bool        big = false;
	bool        round_up = false;
	uint64      magnitude;

	while (*p >= '0' && *p <= '9')
	{
		if (!big)
		{
			units = units * 10 + (*p - '0');
			/* 2^63 nanos is about 9.2e9 units: anything past 1e10 is out */
			if (units >= UINT64CONST(10000000000))
				big = true;
		}
		ndigits++;
		p++;
	}
	if (*p == '.')
	{
		int nfrac = 0;

		p++;
		while (*p >= '0' && *p <= '9')
		{
			if (nfrac < NANO_DIGITS)
				frac = frac * 10 + (*p - '0');
			else if (nfrac == NANO_DIGITS)
				round_up = (*p >= '5');
			nfrac++;
			ndigits++;
			p++;
		}
		/* pad to nine decimals */
		for (int i = Min(nfrac, NANO_DIGITS); i < NANO_DIGITS; i++)
			frac *= 10;
	}
	if (ndigits == 0)
		return 0;

	magnitude = units * (uint64) NANOS_PER_UNIT + (uint64) frac + (round_up ? 1 : 0);
	*out_of_range = big || magnitude > (uint64) NANOS_MAX;
	*nanos = *out_of_range ? 0 : (int64) magnitude;
	return (int) (p - s);
}

/*
 * Append nanos as a decimal number with at least min_decimals and at most
 * nine decimals (trailing zeros trimmed past min_decimals).
 */
void
format_nanos(StringInfo buf, int64 nanos, int min_decimals)
{
	uint64 mag;
	uint64 units;
	uint64 frac;
	char   digits[NANO_DIGITS + 1];
	int    ndec;

	if (nanos < 0)
	{
		appendStringInfoChar(buf, '-');
		mag = (uint64) (-(nanos + 1)) + 1;
	}
	else
		mag = (uint64) nanos;
	units = mag / (uint64) NANOS_PER_UNIT;
	frac = mag % (uint64) NANOS_PER_UNIT;
	appendStringInfo(buf, UINT64_FORMAT, units);

	snprintf(digits, sizeof(digits), "%09" INT64_MODIFIER "u", frac);
	ndec = NANO_DIGITS;
	while (ndec > min_decimals && digits[ndec - 1] == '0')
		ndec--;
	if (ndec > 0)
	{
		appendStringInfoChar(buf, '.');
		appendBinaryStringInfo(buf, digits, ndec);
	}
}

/*
 * An amount in nanos as a numeric in units, with scale 9.
 */
Numeric
nanos_to_numeric(int64 nanos)
{
#if PG_VERSION_NUM >= 140000
	return int64_div_fast_to_numeric(nanos, NANO_DIGITS);
#else
	return nanos128_to_numeric((int128) nanos);
#endif
}

/*
 * A 128-bit amount in nanos as a numeric in units, with scale 9.
 */
Numeric
nanos128_to_numeric(int128 nanos)
{
	char    buf[64];
	char   *p = buf + sizeof(buf);
	uint128 mag;
	int     n = 0;

	mag = nanos < 0 ? (uint128) (-(nanos + 1)) + 1 : (uint128) nanos;
	*--p = '\0';
	do
	{
		if (n == NANO_DIGITS)
			*--p = '.';
		*--p = (char) ('0' + (int) (mag % 10));
		mag /= 10;
		n++;
	} while (mag > 0 || n <= NANO_DIGITS);
	if (nanos < 0)
		*--p = '-';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(p),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/*
 * A numeric in units, rounded half away from zero to the nano.  Returns false
 * when it is NaN, infinite or out of the cost range.
 */
bool
numeric_to_nanos(Numeric units, int64 *nanos)
{
	Numeric     rounded;
	char       *str;
	const char *p;
	bool        neg = false;
	bool        oor = false;
	int         len;

	if (numeric_is_nan(units) || numeric_is_inf(units))
		return false;
	rounded = DatumGetNumeric(
		DirectFunctionCall2(numeric_round, NumericGetDatum(units), Int32GetDatum(NANO_DIGITS)));
	str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(rounded)));
	p = str;
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	len = parse_decimal_nanos(p, nanos, &oor);
	if (len == 0 || p[len] != '\0' || oor)
		return false;
	if (neg)
		*nanos = -*nanos;
	return true;
}

/* Skip white space. */
static const char *
skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
		p++;
	return p;
}

static inline bool
is_ascii_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * Read a run of letters at p as a currency code into code.  Returns the
 * number of letters read (0 when none); *valid tells whether they form an
 * ISO 4217 code.
 */
static int
read_currency(const char *p, char *code, bool *valid)
{
	int n = 0;

	while (is_ascii_letter(p[n]))
		n++;
	if (n > 0)
		*valid = currency_normalize(p, n, code);
	return n;
}

/*
 * Read a currency symbol at p: $, or in a UTF-8 database the euro sign or the
 * pound sign (in another encoding their UTF-8 bytes are other characters).
 */
static int
read_symbol(const char *p, char *code)
{
	if (*p == '$')
	{
		strcpy(code, "USD");
		return 1;
	}
	if (GetDatabaseEncoding() != PG_UTF8)
		return 0;
	if (strncmp(p, EURO_SIGN, 3) == 0)
	{
		strcpy(code, "EUR");
		return 3;
	}
	if (strncmp(p, POUND_SIGN, 2) == 0)
	{
		strcpy(code, "GBP");
		return 2;
	}
	return 0;
}

#define COST_SYNTAX_ERROR(escontext, str, ...)                                  \
	ereturn((escontext), false,                                                 \
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),                      \
			 errmsg("invalid input syntax for type %s: \"%s\"", "cost", (str)), \
			 errdetail(__VA_ARGS__)))

/*
 * Parse the text form of a cost:
 *		12.50 USD | USD 12.50 | -0.25 EUR | $1.50 | -$1.50 | 1.50 (default currency)
 */
static bool
cost_parse(const char *str, CostValue *result, Node *escontext)
{
	const char *p = skip_space(str);
	char        code[CURRENCY_LEN + 1] = {0};
	char        other[CURRENCY_LEN + 1];
	bool        have_code = false;
	bool        code_first = false;
	bool        valid = false;
	bool        neg = false;
	bool        have_sign = false;
	bool        oor = false;
	int         n;
	int64       nanos;

	/* currency code before the amount */
	n = read_currency(p, code, &valid);
	if (n > 0)
	{
		if (!valid)
			COST_SYNTAX_ERROR(escontext, str, "\"%.*s\" is not an ISO 4217 currency code.", n, p);
		have_code = true;
		code_first = true;
		p = skip_space(p + n);
	}

	/* sign and symbol, in either order */
	if (*p == '-' || *p == '+')
	{
		neg = (*p++ == '-');
		have_sign = true;
	}
	n = read_symbol(p, other);
	if (n > 0)
	{
		if (have_code && strcmp(code, other) != 0)
			COST_SYNTAX_ERROR(escontext, str, "The currency is given twice, as %s and as %s.", code,
							  other);
		memcpy(code, other, sizeof(code));
		have_code = true;
		p += n;
		if (*p == '-' || *p == '+')
		{
			if (have_sign)
				COST_SYNTAX_ERROR(escontext, str, "The sign is given twice.");
			neg = (*p++ == '-');
		}
	}
	p = skip_space(p);

	n = parse_decimal_nanos(p, &nanos, &oor);
	if (n == 0)
		COST_SYNTAX_ERROR(escontext, str, "An amount is expected, such as \"12.50 USD\".");
	p += n;
	if (*p == 'e' || *p == 'E')
		COST_SYNTAX_ERROR(escontext, str, "Exponents are not accepted; write the amount in full.");

	/* currency code after the amount */
	p = skip_space(p);
	n = read_currency(p, other, &valid);
	if (n > 0)
	{
		if (!valid)
			COST_SYNTAX_ERROR(escontext, str, "\"%.*s\" is not an ISO 4217 currency code.", n, p);
		if (code_first)
			COST_SYNTAX_ERROR(escontext, str, "The currency code is given twice.");
		if (have_code && strcmp(code, other) != 0)
			COST_SYNTAX_ERROR(escontext, str, "The currency is given twice, as %s and as %s.", code,
							  other);
		memcpy(code, other, sizeof(code));
		have_code = true;
		p = skip_space(p + n);
	}
	if (*p != '\0')
		COST_SYNTAX_ERROR(escontext, str, "Unexpected \"%s\" after the amount.", p);

	if (!have_code)
		memcpy(code, default_currency(), sizeof(code));

	if (oor)
		ereturn(escontext, false,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value \"%s\" is out of range for type %s", str, "cost"),
				 errdetail("A cost's magnitude must be below 9223372036.854775808 units.")));

	memset(result, 0, sizeof(CostValue));
	result->nanos = neg ? -nanos : nanos;
	memcpy(result->currency, code, CURRENCY_LEN);
	return true;
}

/* Text input. */
PG_FUNCTION_INFO_V1(cost_in);
Datum
cost_in(PG_FUNCTION_ARGS)
{
	char      *str = PG_GETARG_CSTRING(0);
	CostValue *result = (CostValue *) palloc0(sizeof(CostValue));

	if (!cost_parse(str, result, fcinfo->context))
		PG_RETURN_NULL();
	PG_RETURN_COST_P(result);
}

/* Text output: at least 2 and at most 9 decimals, a space, the code. */
PG_FUNCTION_INFO_V1(cost_out);
Datum
cost_out(PG_FUNCTION_ARGS)
{
	CostValue     *c = PG_GETARG_COST_P(0);
	StringInfoData buf;

	initStringInfo(&buf);
	format_nanos(&buf, c->nanos, 2);
	appendStringInfoChar(&buf, ' ');
	appendStringInfoString(&buf, c->currency);
	PG_RETURN_CSTRING(buf.data);
}

/* bytes of the binary form: int64 nanos, then the three-letter code */
#define COST_BINARY_LEN (8 + CURRENCY_LEN)

/*
 * A received currency code for a message: quoted when it is printable
 * ASCII, else as hex, so that no byte invalid in an encoding reaches it.
 * (cost_recv and rate_recv)
 */
char *
describe_received_code(const char *code)
{
	for (int i = 0; i < CURRENCY_LEN; i++)
		if ((unsigned char) code[i] < 0x20 || (unsigned char) code[i] > 0x7e)
			return psprintf("0x%02x%02x%02x", (unsigned char) code[0], (unsigned char) code[1],
							(unsigned char) code[2]);
	return psprintf("\"%.*s\"", CURRENCY_LEN, code);
}

/* Binary input: int64 nanos, then the three-letter code. */
PG_FUNCTION_INFO_V1(cost_recv);
Datum
cost_recv(PG_FUNCTION_ARGS)
{
	StringInfo  buf = (StringInfo) PG_GETARG_POINTER(0);
	int64       nanos;
	const char *code;
	char        cur[CURRENCY_LEN + 1];

	if (buf->len - buf->cursor != COST_BINARY_LEN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid external cost value: %d bytes, %d expected",
							   buf->len - buf->cursor, COST_BINARY_LEN)));
	nanos = pq_getmsgint64(buf);
	code = pq_getmsgbytes(buf, CURRENCY_LEN);
	if (nanos == PG_INT64_MIN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid external cost value: amount out of range")));
	if (!currency_normalize(code, CURRENCY_LEN, cur) || memcmp(code, cur, CURRENCY_LEN) != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						errmsg("invalid external cost value: currency %s is not an ISO 4217 code",
							   describe_received_code(code))));
	PG_RETURN_COST_P(cost_make(nanos, cur));
}

/* Binary output. */
PG_FUNCTION_INFO_V1(cost_send);
Datum
cost_send(PG_FUNCTION_ARGS)
{
	CostValue     *c = PG_GETARG_COST_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, c->nanos);
	pq_sendbytes(&buf, c->currency, CURRENCY_LEN);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* cost(amount numeric, currency text): build a cost. */
PG_FUNCTION_INFO_V1(cost_from_numeric_currency);
Datum
cost_from_numeric_currency(PG_FUNCTION_ARGS)
{
	Numeric amount = PG_GETARG_NUMERIC(0);
	text   *cur = PG_GETARG_TEXT_PP(1);
	char    code[CURRENCY_LEN + 1];
	int64   nanos;

	if (!currency_normalize(VARDATA_ANY(cur), VARSIZE_ANY_EXHDR(cur), code))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("\"%s\" is not an ISO 4217 currency code", text_to_cstring(cur))));
	if (!numeric_to_nanos(amount, &nanos))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount %s is out of range for type cost",
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(amount)))),
				 errdetail("A cost's magnitude must be below 9223372036.854775808 units.")));
	PG_RETURN_COST_P(cost_make(nanos, code));
}

/* numeric -> cost (assignment cast): the amount in the default currency. */
PG_FUNCTION_INFO_V1(numeric_to_cost);
Datum
numeric_to_cost(PG_FUNCTION_ARGS)
{
	Numeric amount = PG_GETARG_NUMERIC(0);
	int64   nanos;

	if (!numeric_to_nanos(amount, &nanos))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount %s is out of range for type cost",
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(amount)))),
				 errdetail("A cost's magnitude must be below 9223372036.854775808 units.")));
	PG_RETURN_COST_P(cost_make(nanos, default_currency()));
}

/* amount(cost): the amount in units as numeric, scale 9. */
PG_FUNCTION_INFO_V1(cost_amount);
Datum
cost_amount(PG_FUNCTION_ARGS)
{
	CostValue *c = PG_GETARG_COST_P(0);

	PG_RETURN_NUMERIC(nanos_to_numeric(c->nanos));
}

/* currency(cost): the ISO 4217 code. */
PG_FUNCTION_INFO_V1(cost_currency);
Datum
cost_currency(PG_FUNCTION_ARGS)
{
	CostValue *c = PG_GETARG_COST_P(0);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(c->currency, CURRENCY_LEN));
}

/* cost + cost */
PG_FUNCTION_INFO_V1(cost_add);
Datum
cost_add(PG_FUNCTION_ARGS)
{
	CostValue *a = PG_GETARG_COST_P(0);
	CostValue *b = PG_GETARG_COST_P(1);
	int64      r;

	check_same_currency(a, b, "add");
	if (pg_add_s64_overflow(a->nanos, b->nanos, &r) || r == PG_INT64_MIN)
		report_cost_out_of_range(a->currency);
	PG_RETURN_COST_P(cost_make(r, a->currency));
}

/* cost - cost */
PG_FUNCTION_INFO_V1(cost_sub);
Datum
cost_sub(PG_FUNCTION_ARGS)
{
	CostValue *a = PG_GETARG_COST_P(0);
	CostValue *b = PG_GETARG_COST_P(1);
	int64      r;

	check_same_currency(a, b, "subtract");
	if (pg_sub_s64_overflow(a->nanos, b->nanos, &r) || r == PG_INT64_MIN)
		report_cost_out_of_range(a->currency);
	PG_RETURN_COST_P(cost_make(r, a->currency));
}

/* - cost */
PG_FUNCTION_INFO_V1(cost_neg);
Datum
cost_neg(PG_FUNCTION_ARGS)
{
	CostValue *a = PG_GETARG_COST_P(0);

	PG_RETURN_COST_P(cost_make(-a->nanos, a->currency));
}

/* A cost times an integer: exact. */
static CostValue *
cost_times_int(const CostValue *a, int64 f)
{
	int64 r;

	if (pg_mul_s64_overflow(a->nanos, f, &r) || r == PG_INT64_MIN)
		report_cost_out_of_range(a->currency);
	return cost_make(r, a->currency);
}

/* cost * bigint */
PG_FUNCTION_INFO_V1(cost_mul_int8);
Datum
cost_mul_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_times_int(PG_GETARG_COST_P(0), PG_GETARG_INT64(1)));
}

/* bigint * cost */
PG_FUNCTION_INFO_V1(int8_mul_cost);
Datum
int8_mul_cost(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_times_int(PG_GETARG_COST_P(1), PG_GETARG_INT64(0)));
}

/* cost * integer (an integer literal would match both bigint and numeric) */
PG_FUNCTION_INFO_V1(cost_mul_int4);
Datum
cost_mul_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_times_int(PG_GETARG_COST_P(0), PG_GETARG_INT32(1)));
}

/* integer * cost */
PG_FUNCTION_INFO_V1(int4_mul_cost);
Datum
int4_mul_cost(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_times_int(PG_GETARG_COST_P(1), PG_GETARG_INT32(0)));
}

/*
 * Turn a numeric result in units into a cost, rounding to the nano; raise
 * 22003 when it does not fit.
 */
static CostValue *
numeric_result_to_cost(Numeric units, const char *currency)
{
	int64 nanos;

	if (!numeric_to_nanos(units, &nanos))
		report_cost_out_of_range(currency);
	return cost_make(nanos, currency);
}

static void
check_numeric_factor(Numeric n, const char *op)
{
	if (numeric_is_nan(n) || numeric_is_inf(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot %s a cost by %s", op,
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n))))));
}

CostValue *
cost_times_numeric(CostValue *a, Numeric f)
{
	Numeric prod;

	check_numeric_factor(f, "multiply");
	prod = DatumGetNumeric(DirectFunctionCall2(
		numeric_mul, NumericGetDatum(nanos_to_numeric(a->nanos)), NumericGetDatum(f)));
	return numeric_result_to_cost(prod, a->currency);
}

/* cost * numeric, rounded half away from zero to the nano */
PG_FUNCTION_INFO_V1(cost_mul_numeric);
Datum
cost_mul_numeric(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_times_numeric(PG_GETARG_COST_P(0), PG_GETARG_NUMERIC(1)));
}

/* numeric * cost */
PG_FUNCTION_INFO_V1(numeric_mul_cost);
Datum
numeric_mul_cost(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_times_numeric(PG_GETARG_COST_P(1), PG_GETARG_NUMERIC(0)));
}

static void
report_division_by_zero(void)
{
	ereport(ERROR, (errcode(ERRCODE_DIVISION_BY_ZERO), errmsg("division by zero")));
}

/*
 * Divide a cost by a numeric, as round(amount / divisor, 9) in numeric.
 */
static CostValue *
cost_div_by_numeric(CostValue *a, Numeric d)
{
	Numeric quot;

	check_numeric_factor(d, "divide");
	if (DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(d),
										 NumericGetDatum(int64_to_numeric(0)))))
		report_division_by_zero();
	quot = DatumGetNumeric(DirectFunctionCall2(
		numeric_div, NumericGetDatum(nanos_to_numeric(a->nanos)), NumericGetDatum(d)));
	return numeric_result_to_cost(quot, a->currency);
}

/* cost / numeric */
PG_FUNCTION_INFO_V1(cost_div_numeric);
Datum
cost_div_numeric(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_div_by_numeric(PG_GETARG_COST_P(0), PG_GETARG_NUMERIC(1)));
}

/*
 * A cost divided by an integer, rounded exactly as the numeric division.
 */
static CostValue *
cost_div_by_int(CostValue *a, int64 d)
{
	if (d == 0)
		report_division_by_zero();
	/* exact quotients need no rounding rule (and -1 cannot overflow) */
	if (a->nanos % d == 0)
		return cost_make(a->nanos / d, a->currency);
	return cost_div_by_numeric(a, int64_to_numeric(d));
}

/* cost / bigint */
PG_FUNCTION_INFO_V1(cost_div_int8);
Datum
cost_div_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_div_by_int(PG_GETARG_COST_P(0), PG_GETARG_INT64(1)));
}

/* cost / integer */
PG_FUNCTION_INFO_V1(cost_div_int4);
Datum
cost_div_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_COST_P(cost_div_by_int(PG_GETARG_COST_P(0), PG_GETARG_INT32(1)));
}

/* cost / cost -> numeric (same currency) */
PG_FUNCTION_INFO_V1(cost_div_cost);
Datum
cost_div_cost(PG_FUNCTION_ARGS)
{
	CostValue *a = PG_GETARG_COST_P(0);
	CostValue *b = PG_GETARG_COST_P(1);

	check_same_currency(a, b, "divide");
	if (b->nanos == 0)
		report_division_by_zero();
	PG_RETURN_DATUM(DirectFunctionCall2(numeric_div, NumericGetDatum(nanos_to_numeric(a->nanos)),
										NumericGetDatum(nanos_to_numeric(b->nanos))));
}

/*
 * The total order of the default btree class: by currency code, then by
 * amount.  Never raises.
 */
static inline int
cost_cmp_internal(const CostValue *a, const CostValue *b)
{
	int c = memcmp(a->currency, b->currency, CURRENCY_LEN);

	if (c != 0)
		return c < 0 ? -1 : 1;
	if (a->nanos < b->nanos)
		return -1;
	if (a->nanos > b->nanos)
		return 1;
	return 0;
}

/* btree support function 1 */
PG_FUNCTION_INFO_V1(cost_cmp);
Datum
cost_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(cost_cmp_internal(PG_GETARG_COST_P(0), PG_GETARG_COST_P(1)));
}

#define COST_CMP_FUNCTION(name, op)                                                       \
	PG_FUNCTION_INFO_V1(name);                                                            \
	Datum name(PG_FUNCTION_ARGS)                                                          \
	{                                                                                     \
		PG_RETURN_BOOL(cost_cmp_internal(PG_GETARG_COST_P(0), PG_GETARG_COST_P(1)) op 0); \
	}

/* cost < cost, and the other comparisons */
COST_CMP_FUNCTION(cost_lt, <)
COST_CMP_FUNCTION(cost_le, <=)
COST_CMP_FUNCTION(cost_eq, ==)
COST_CMP_FUNCTION(cost_ne, !=)
COST_CMP_FUNCTION(cost_ge, >=)
COST_CMP_FUNCTION(cost_gt, >)

/* the smaller of two costs in the total order (min aggregate) */
PG_FUNCTION_INFO_V1(cost_smaller);
Datum
cost_smaller(PG_FUNCTION_ARGS)
{
	CostValue *a = PG_GETARG_COST_P(0);
	CostValue *b = PG_GETARG_COST_P(1);

	PG_RETURN_COST_P(cost_cmp_internal(a, b) <= 0 ? a : b);
}

/* the larger of two costs in the total order (max aggregate) */
PG_FUNCTION_INFO_V1(cost_larger);
Datum
cost_larger(PG_FUNCTION_ARGS)
{
	CostValue *a = PG_GETARG_COST_P(0);
	CostValue *b = PG_GETARG_COST_P(1);

	PG_RETURN_COST_P(cost_cmp_internal(a, b) >= 0 ? a : b);
}

/* hash support function 1: over the amount and the code */
PG_FUNCTION_INFO_V1(cost_hash);
Datum
cost_hash(PG_FUNCTION_ARGS)
{
	CostValue *c = PG_GETARG_COST_P(0);

	return hash_any((const unsigned char *) c, offsetof(CostValue, currency) + CURRENCY_LEN);
}

/* hash support function 2: seeded 64-bit hash */
PG_FUNCTION_INFO_V1(cost_hash_extended);
Datum
cost_hash_extended(PG_FUNCTION_ARGS)
{
	CostValue *c = PG_GETARG_COST_P(0);
	uint64     seed = (uint64) PG_GETARG_INT64(1);

	return hash_any_extended((const unsigned char *) c,
							 offsetof(CostValue, currency) + CURRENCY_LEN, seed);
}
