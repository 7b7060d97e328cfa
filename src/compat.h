/*
 * compat.h
 *		What differs between the PostgreSQL releases tokenledger builds
 *		against (13 to 17), in one place: each shim gives the older releases
 *		the name the newer ones have.  Included by tokenledger.h, after
 *		postgres.h.  The one difference kept where it is used: the backend's
 *		number, MyBackendId (storage/backendid.h) up to 16 and MyProcNumber
 *		(storage/procnumber.h) from 17, in budget.c.
 */
#ifndef TOKENLEDGER_COMPAT_H
#define TOKENLEDGER_COMPAT_H

#include "utils/numeric.h"

/*
 * PostgreSQL 16 moved the varlena macros (VARDATA_ANY, VARSIZE_ANY_EXHDR,
 * SET_VARSIZE, ...) out of postgres.h into varatt.h.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * Soft input errors (pg_input_is_valid) exist from PostgreSQL 16 on; on
 * older servers every input error is a hard error.
 */
#if PG_VERSION_NUM < 160000
#define errsave(context, ...)        \
	do                               \
	{                                \
		(void) (context);            \
		ereport(ERROR, __VA_ARGS__); \
	} while (0)
#define ereturn(context, dummy_value, ...) \
	do                                     \
	{                                      \
		(void) (context);                  \
		ereport(ERROR, __VA_ARGS__);       \
		return (dummy_value);              \
	} while (0)
#define SOFT_ERROR_OCCURRED(escontext) ((void) (escontext), false)
#else
#include "nodes/miscnodes.h"
#endif

/*
 * PostgreSQL 14 added infinite numerics, numeric_is_inf() and
 * int64_to_numeric(); a numeric of 13 is never infinite.
 */
#if PG_VERSION_NUM < 140000
#include "utils/fmgrprotos.h"

static inline bool
numeric_is_inf(Numeric num)
{
	(void) num;
	return false;
}

static inline Numeric
int64_to_numeric(int64 val)
{
	return DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(val)));
}
#endif

#endif /* TOKENLEDGER_COMPAT_H */
