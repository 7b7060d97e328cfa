/*
 * report.c
 *		What the reporting views need from the module: the exchange rate in
 *		effect at a time, the stretch of time the rollups keep together, and
 *		whether the session's calendar days are whole clock hours.
 *
 * The views report money in the currency of tokenledger.currency, each row
 * converted at its own time.  Spend of one currency within one stretch (a
 * clock hour, cut where a rate of that currency takes effect) converts at
 * one rate, so the rollups keep a stretch's spend together and the views
 * convert it once, exactly as row by row: a numeric product is exact, and
 * the views round once, at the end.
 */
#include "postgres.h"

#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "tokenledger.h"
#include "ledger.h"

/* an ISO 4217 code from text, or an error naming it */
static void
currency_arg(text *t, char *out)
{
	if (!currency_normalize(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), out))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("\"%s\" is not an ISO 4217 currency code", text_to_cstring(t))));
}

/*
 * fx_rate(from, to, at): units of "to" one unit of "from" is worth at "at"
 * (1 when they are the same), or NULL when no rate applies.
 */
PG_FUNCTION_INFO_V1(fx_rate);
Datum
fx_rate(PG_FUNCTION_ARGS)
{
	char    from[CURRENCY_LEN + 1];
	char    to[CURRENCY_LEN + 1];
	Numeric rate;

	static Datum one = (Datum) 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	currency_arg(PG_GETARG_TEXT_PP(0), from);
	currency_arg(PG_GETARG_TEXT_PP(1), to);
	if (strcmp(from, to) == 0)
	{
		/* the views call this once per rollup row: 1 is made once */
		if (one == (Datum) 0)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			one = DirectFunctionCall1(int4_numeric, Int32GetDatum(1));
			MemoryContextSwitchTo(old);
		}
		PG_RETURN_DATUM(one);
	}
	rate = catalog_fx_rate(from, to, PG_GETARG_TIMESTAMPTZ(2));
	if (rate == NULL)
		PG_RETURN_NULL();
	/* a copy: the cache may be reloaded before the caller is done with it */
	PG_RETURN_DATUM(datumCopy(NumericGetDatum(rate), false, -1));
}

/* fx_stretch(currency, at): see catalog_fx_stretch */
PG_FUNCTION_INFO_V1(fx_stretch);
Datum
fx_stretch(PG_FUNCTION_ARGS)
{
	char        cur[CURRENCY_LEN + 1];
	TimestampTz at;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	at = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(at))
		PG_RETURN_TIMESTAMPTZ(at);
	if (PG_ARGISNULL(0))
		PG_RETURN_TIMESTAMPTZ(utc_hour_start(at));
	currency_arg(PG_GETARG_TEXT_PP(0), cur);
	PG_RETURN_TIMESTAMPTZ(catalog_fx_stretch(cur, at));
}

/*
 * whole_hour_zone(): true when every UTC offset the session's TimeZone has
 * had since 1970, or has until 2100, is a whole number of hours, so that a
 * calendar day there is a run of whole UTC clock hours (true of UTC and of
 * most zones; false of India, Nepal, Newfoundland, parts of Australia).
 * The views read the hourly rollups where it holds, the ledger elsewhere.
 */
PG_FUNCTION_INFO_V1(whole_hour_zone);
Datum
whole_hour_zone(PG_FUNCTION_ARGS)
{
	static const pg_tz *checked = NULL;
	static bool         whole = false;
	pg_time_t           t = 0;
	const pg_time_t     until = INT64CONST(4102444800); /* 2100-01-01 */

	if (checked == session_timezone)
		PG_RETURN_BOOL(whole);
	whole = true;
	while (whole && t < until)
	{
		long int  before_off;
		long int  after_off;
		int       before_dst;
		int       after_dst;
		pg_time_t boundary;
		int       r = pg_next_dst_boundary(&t, &before_off, &before_dst, &boundary, &after_off,
										   &after_dst, session_timezone);

		if (r < 0)
		{
			whole = false;
			break;
		}
		if (before_off % SECS_PER_HOUR != 0)
			whole = false;
		if (r == 0)
			break;
		if (after_off % SECS_PER_HOUR != 0 || boundary <= t)
			whole = false;
		t = boundary;
	}
	checked = session_timezone;
	PG_RETURN_BOOL(whole);
}
