/*
 * tokenledger.c
 *		Module entry point, the setting tokenledger.currency and ISO 4217
 *		currency codes.
 */
#include "postgres.h"

#include <ctype.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "tokenledger.h"
#include "ledger.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/* The currency of bare amounts and of the views' money columns. */
char *tokenledger_currency = NULL;

/* The billing account focus_export names; empty is the database's name. */
static char *tokenledger_billing_account = NULL;

/*
 * spend_anomalies: the score from which a day is a spike, and the repeats of
 * one prompt within one run and clock hour from which they are a loop.  The
 * view reads them as text (the threshold compared as numeric, never money as
 * a float).
 */
static double tokenledger_anomaly_threshold = 5.0;
static int    tokenledger_loop_threshold = 200;
int           tokenledger_replays = REPLAYS_ERROR;

static const struct config_enum_entry replays_options[] = {
	{"error", REPLAYS_ERROR, false}, {"skip", REPLAYS_SKIP, false}, {NULL, 0, false}};

/*
 * ISO 4217 alphabetic codes (current list, funds and precious metals
 * included), sorted for bsearch.
 */
static const char *const iso4217[] = {
	"AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
	"BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
	"CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
	"CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
	"GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
	"INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
	"KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
	"MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
	"NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
	"RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
	"SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
	"TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
	"VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR",
	"XOF", "XPD", "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG", "ZWL"};

static int
currency_cmp(const void *key, const void *elem)
{
	return strncmp((const char *) key, *(const char *const *) elem, CURRENCY_LEN);
}

/* Is code (three upper-case letters) an ISO 4217 code? */
bool
currency_is_valid(const char *code)
{
	return bsearch(code, iso4217, lengthof(iso4217), sizeof(iso4217[0]), currency_cmp) != NULL;
}

/*
 * Copy a len-byte currency code from src into dst (CURRENCY_LEN + 1 bytes),
 * upper-cased and NUL-terminated.  Returns false, leaving dst undefined, when
 * src is not a known ISO 4217 code.
 */
bool
currency_normalize(const char *src, int len, char *dst)
{
	int i;

	if (len != CURRENCY_LEN)
		return false;
	for (i = 0; i < CURRENCY_LEN; i++)
	{
		unsigned char ch = (unsigned char) src[i];

		if (ch >= 'a' && ch <= 'z')
			ch -= 'a' - 'A';
		if (ch < 'A' || ch > 'Z')
			return false;
		dst[i] = (char) ch;
	}
	dst[CURRENCY_LEN] = '\0';
	return currency_is_valid(dst);
}

/* The currency of bare amounts: the setting tokenledger.currency. */
const char *
default_currency(void)
{
	return tokenledger_currency ? tokenledger_currency : "USD";
}

static bool
check_currency(char **newval, void **extra, GucSource source)
{
	char code[CURRENCY_LEN + 1];

	if (*newval == NULL || !currency_normalize(*newval, strlen(*newval), code))
	{
		GUC_check_errdetail("\"%s\" is not an ISO 4217 currency code.", *newval ? *newval : "");
		return false;
	}
	/* the setting is stored upper-cased */
	memcpy(*newval, code, CURRENCY_LEN);
	return true;
}

void
_PG_init(void)
{
	DefineCustomStringVariable("tokenledger.currency", "Currency of bare amounts and of reports.",
							   "An ISO 4217 code such as USD or EUR.", &tokenledger_currency, "USD",
							   PGC_USERSET, 0, check_currency, NULL, NULL);
	DefineCustomStringVariable("tokenledger.billing_account", "Billing account of focus_export.",
							   "Empty means the database's name.", &tokenledger_billing_account, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("tokenledger.anomaly_threshold",
							 "Score from which spend_anomalies reports a day as a spike.",
							 "The score is (spend - baseline) / (1.4826 x mad).",
							 &tokenledger_anomaly_threshold, 5.0, 0.0, 1e6, PGC_USERSET, 0, NULL,
							 NULL, NULL);
	DefineCustomIntVariable("tokenledger.loop_threshold",
							"Calls of one run repeating one prompt_hash within a clock hour from "
							"which spend_anomalies reports a loop.",
							NULL, &tokenledger_loop_threshold, 200, 1, INT_MAX, PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("tokenledger.replays",
							 "What an INSERT or COPY of an already recorded request_id or "
							 "external_ref does.",
							 "error: a unique violation (23505); skip: the row is left out when it "
							 "repeats the recorded one, refused when it differs.",
							 &tokenledger_replays, REPLAYS_ERROR, replays_options, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	catalog_init();
	budget_init();
	rollup_init();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("tokenledger");
#else
	EmitWarningsOnPlaceholders("tokenledger");
#endif
}
