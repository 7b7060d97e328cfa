/*
 * jsonb_usage.c
 *		jsonb -> tokens: provider usage objects normalised to the six
 *		counters, so that no token is billed twice and none is dropped.
 *
 * Recognised: OpenAI Chat Completions and Responses usage, OpenAI
 * organization usage export rows, Anthropic Messages usage, Gemini/Vertex
 * usageMetadata, Bedrock Converse usage, OpenTelemetry GenAI span attributes
 * and the canonical object.  A whole response body (or a streaming event
 * that wraps one) is accepted too.
 */
#include "postgres.h"

#include "common/int.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "tokenledger.h"
#include "ledger.h"

static void usage_error(JsonbContainer *obj, const char *what, const char *detail);

/* A member of an object, or NULL when absent or JSON null. */
static bool
get_member(JsonbContainer *obj, const char *key, JsonbValue *v)
{
	if (getKeyJsonValueFromContainer(obj, key, strlen(key), v) == NULL)
		return false;
	return v->type != jbvNull;
}

static bool
has_member(JsonbContainer *obj, const char *key)
{
	JsonbValue v;

	return get_member(obj, key, &v);
}

/* A member that is an object, or NULL. */
static JsonbContainer *
get_object(JsonbContainer *obj, const char *key)
{
	JsonbValue v;

	if (!get_member(obj, key, &v) || v.type != jbvBinary ||
		!JsonContainerIsObject(v.val.binary.data))
		return NULL;
	return v.val.binary.data;
}

/*
 * A token count: absent or null is 0; anything but a non-negative integer
 * is an error naming the key.
 */
static int64
get_count(JsonbContainer *obj, const char *key)
{
	JsonbValue v;
	Numeric    n;
	char      *str;
	int64      result;

	if (obj == NULL || !get_member(obj, key, &v))
		return 0;
	if (v.type != jbvNumeric)
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("invalid usage object: \"%s\" is not a number", key)));
	n = v.val.numeric;
	str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	if (numeric_is_nan(n) || numeric_is_inf(n) ||
		!DatumGetBool(DirectFunctionCall2(
			numeric_eq, NumericGetDatum(n),
			DirectFunctionCall2(numeric_trunc, NumericGetDatum(n), Int32GetDatum(0)))))
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("invalid usage object: \"%s\" is %s, not a whole number of tokens",
							   key, str)));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  NumericGetDatum(int64_to_numeric(0)))) < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("invalid usage object: \"%s\" is negative (%s)", key, str)));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  NumericGetDatum(int64_to_numeric(PG_INT64_MAX)))) > 0)
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						errmsg("invalid usage object: \"%s\" (%s) is out of range for type tokens",
							   key, str)));
	result = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
	return result;
}

/* part must not exceed whole: "cached more than the prompt" */
static void
check_part(int64 part, const char *partkey, int64 whole, const char *wholekey)
{
	if (part > whole)
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("inconsistent usage object: \"%s\" (" INT64_FORMAT
							   ") exceeds \"%s\" (" INT64_FORMAT ")",
							   partkey, part, wholekey, whole),
						errdetail("\"%s\" is counted inside \"%s\".", partkey, wholekey)));
}

static int64
add_counts(int64 a, int64 b)
{
	int64 r;

	if (pg_add_s64_overflow(a, b, &r))
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						errmsg("invalid usage object: token counts out of range for type tokens")));
	return r;
}

/*
 * OpenAI Chat Completions: prompt_tokens includes the cached and the
 * cache-write tokens of prompt_tokens_details.
 */
static void
read_openai_chat(JsonbContainer *u, Tokens *t)
{
	JsonbContainer *details = get_object(u, "prompt_tokens_details");
	int64           prompt = get_count(u, "prompt_tokens");
	int64           completion = get_count(u, "completion_tokens");
	int64           cached = get_count(details, "cached_tokens");
	int64           written = get_count(details, "cache_write_tokens");
	int64 reasoning = get_count(get_object(u, "completion_tokens_details"), "reasoning_tokens");

	check_part(add_counts(cached, written),
			   "prompt_tokens_details.cached_tokens + cache_write_tokens", prompt, "prompt_tokens");
	check_part(reasoning, "completion_tokens_details.reasoning_tokens", completion,
			   "completion_tokens");
	t->input = prompt - cached - written;
	t->cache_read = cached;
	t->cache_write = written;
	t->output = completion;
	t->reasoning = reasoning;
}

/* OpenAI Responses: input_tokens includes cached and cache-write tokens */
static void
read_openai_responses(JsonbContainer *u, Tokens *t)
{
	JsonbContainer *in = get_object(u, "input_tokens_details");
	int64           input = get_count(u, "input_tokens");
	int64           output = get_count(u, "output_tokens");
	int64           cached = get_count(in, "cached_tokens");
	int64           written = get_count(in, "cache_write_tokens");
	int64 reasoning = get_count(get_object(u, "output_tokens_details"), "reasoning_tokens");

	check_part(add_counts(cached, written),
			   "input_tokens_details.cached_tokens + cache_write_tokens", input, "input_tokens");
	check_part(reasoning, "output_tokens_details.reasoning_tokens", output, "output_tokens");
	t->input = input - cached - written;
	t->cache_read = cached;
	t->cache_write = written;
	t->output = output;
	t->reasoning = reasoning;
}

/*
 * OpenAI organization usage export row: input_uncached_tokens,
 * input_cached_tokens and input_cache_write_tokens partition input_tokens.
 * When the parts come to less than input_tokens, the rest is billed as
 * uncached input: none is dropped.
 */
static void
read_openai_org_usage(JsonbContainer *u, Tokens *t)
{
	int64 cached = get_count(u, "input_cached_tokens");
	int64 written = get_count(u, "input_cache_write_tokens");

	if (has_member(u, "input_uncached_tokens"))
	{
		t->input = get_count(u, "input_uncached_tokens");
		if (has_member(u, "input_tokens"))
		{
			int64 parts = add_counts(add_counts(t->input, cached), written);
			int64 input = get_count(u, "input_tokens");

			check_part(parts,
					   "input_uncached_tokens + input_cached_tokens + input_cache_write_tokens",
					   input, "input_tokens");
			t->input += input - parts;
		}
	}
	else
	{
		int64 input = get_count(u, "input_tokens");

		check_part(add_counts(cached, written), "input_cached_tokens + input_cache_write_tokens",
				   input, "input_tokens");
		t->input = input - cached - written;
	}
	t->cache_read = cached;
	t->cache_write = written;
	t->output = get_count(u, "output_tokens");
}

/*
 * Anthropic Messages: input_tokens excludes cache reads and writes;
 * cache_creation splits the writes into the 5-minute and 1-hour caches.
 */
static void
read_anthropic(JsonbContainer *u, Tokens *t)
{
	JsonbContainer *cc = get_object(u, "cache_creation");
	int64           written = get_count(u, "cache_creation_input_tokens");
	int64           written_1h = get_count(cc, "ephemeral_1h_input_tokens");

	if (cc != NULL && !has_member(u, "cache_creation_input_tokens"))
		written = add_counts(get_count(cc, "ephemeral_5m_input_tokens"), written_1h);
	check_part(written_1h, "cache_creation.ephemeral_1h_input_tokens", written,
			   "cache_creation_input_tokens");
	t->input = get_count(u, "input_tokens");
	t->cache_read = get_count(u, "cache_read_input_tokens");
	t->cache_write = written - written_1h;
	t->cache_write_1h = written_1h;
	t->output = get_count(u, "output_tokens");
	t->reasoning = get_count(get_object(u, "output_tokens_details"), "thinking_tokens");
	check_part(t->reasoning, "output_tokens_details.thinking_tokens", t->output, "output_tokens");
}

/*
 * Gemini / Vertex usageMetadata: promptTokenCount includes
 * cachedContentTokenCount; toolUsePromptTokenCount is further input;
 * thoughtsTokenCount is billed as output but not in candidatesTokenCount.
 */
static void
read_gemini(JsonbContainer *u, Tokens *t)
{
	int64 prompt = get_count(u, "promptTokenCount");
	int64 cached = get_count(u, "cachedContentTokenCount");
	int64 thoughts = get_count(u, "thoughtsTokenCount");

	check_part(cached, "cachedContentTokenCount", prompt, "promptTokenCount");
	t->input = add_counts(prompt - cached, get_count(u, "toolUsePromptTokenCount"));
	t->cache_read = cached;
	t->output = add_counts(get_count(u, "candidatesTokenCount"), thoughts);
	t->reasoning = thoughts;
}

/* Bedrock Converse: inputTokens excludes cache reads and writes */
static void
read_bedrock(JsonbContainer *u, Tokens *t)
{
	t->input = get_count(u, "inputTokens");
	t->output = get_count(u, "outputTokens");
	/* some clients repeat the cache counts as ...Count: count them once */
	t->cache_read = has_member(u, "cacheReadInputTokens")
						? get_count(u, "cacheReadInputTokens")
						: get_count(u, "cacheReadInputTokenCount");
	t->cache_write = has_member(u, "cacheWriteInputTokens")
						 ? get_count(u, "cacheWriteInputTokens")
						 : get_count(u, "cacheWriteInputTokenCount");
}

/* the first of several keys that is present, or NULL */
static const char *
first_key(JsonbContainer *u, const char *const *keys)
{
	for (; *keys; keys++)
		if (has_member(u, *keys))
			return *keys;
	return NULL;
}

/*
 * OpenTelemetry GenAI attributes: gen_ai.usage.input_tokens includes cache
 * reads and cache creation; output_tokens includes reasoning.  Emitters'
 * older names (prompt_tokens, completion_tokens, cache_read_input_tokens,
 * cache_creation_input_tokens) are read where the standard one is absent.
 */
static void
read_otel(JsonbContainer *u, Tokens *t)
{
	static const char *const input_keys[] = {"gen_ai.usage.input_tokens",
											 "gen_ai.usage.prompt_tokens", NULL};
	static const char *const output_keys[] = {"gen_ai.usage.output_tokens",
											  "gen_ai.usage.completion_tokens", NULL};
	static const char *const read_keys[] = {"gen_ai.usage.cache_read.input_tokens",
											"gen_ai.usage.cache_read_input_tokens",
											"gen_ai.usage.cached_tokens", NULL};
	static const char *const write_keys[] = {"gen_ai.usage.cache_creation.input_tokens",
											 "gen_ai.usage.cache_creation_input_tokens", NULL};
	static const char *const reasoning_keys[] = {"gen_ai.usage.reasoning.output_tokens",
												 "gen_ai.usage.reasoning_tokens", NULL};
	const char              *ik = first_key(u, input_keys);
	const char              *ok = first_key(u, output_keys);
	const char              *rk = first_key(u, read_keys);
	const char              *wk = first_key(u, write_keys);
	const char              *qk = first_key(u, reasoning_keys);
	int64                    input = ik ? get_count(u, ik) : 0;
	int64                    cached = rk ? get_count(u, rk) : 0;
	int64                    written = wk ? get_count(u, wk) : 0;

	if (ik == NULL && ok == NULL)
		usage_error(
			u, "OpenTelemetry GenAI attributes",
			"No gen_ai.usage.input_tokens or gen_ai.usage.output_tokens attribute is present.");
	check_part(add_counts(cached, written), "cache read + cache creation input tokens", input,
			   ik ? ik : "gen_ai.usage.input_tokens");
	t->input = input - cached - written;
	t->cache_read = cached;
	t->cache_write = written;
	t->output = ok ? get_count(u, ok) : 0;
	t->reasoning = qk ? get_count(u, qk) : 0;
	check_part(t->reasoning, qk ? qk : "reasoning", t->output,
			   ok ? ok : "gen_ai.usage.output_tokens");
}

static const char *const canonical_keys[] = {
	"input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning", NULL};

/* the canonical object: the six counters by name */
static void
read_canonical(JsonbContainer *u, Tokens *t)
{
	t->input = get_count(u, "input");
	t->output = get_count(u, "output");
	t->cache_read = get_count(u, "cache_read");
	t->cache_write = get_count(u, "cache_write");
	t->cache_write_1h = get_count(u, "cache_write_1h");
	t->reasoning = get_count(u, "reasoning");
	check_part(t->reasoning, "reasoning", t->output, "output");
}

/* the object's keys, for error messages */
static char *
list_keys(JsonbContainer *obj)
{
	StringInfoData     buf;
	JsonbIterator     *it = JsonbIteratorInit(obj);
	JsonbValue         v;
	JsonbIteratorToken tok;
	int                level = 0;
	int                n = 0;

	initStringInfo(&buf);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			level++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			level--;
		else if (tok == WJB_KEY && level == 1)
		{
			if (n++ > 0)
				appendStringInfoString(&buf, ", ");
			if (n > 12)
			{
				appendStringInfoString(&buf, "...");
				break;
			}
			appendBinaryStringInfo(&buf, v.val.string.val, v.val.string.len);
		}
	}
	return n == 0 ? pstrdup("(none)") : buf.data;
}

static void
usage_error(JsonbContainer *obj, const char *what, const char *detail)
{
	ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					errmsg("unrecognised usage object: %s", what),
					errdetail("%s Keys seen: %s.", detail, list_keys(obj)),
					errhint("Pass a provider's usage object (OpenAI, Anthropic, Gemini, Bedrock, "
							"OpenTelemetry GenAI) or {\"input\": …, \"output\": …}.")));
}

/* does the object have a key starting with prefix? */
/* the first key of an object that starts with prefix, or NULL */
static char *
key_with_prefix(JsonbContainer *obj, const char *prefix)
{
	JsonbIterator     *it = JsonbIteratorInit(obj);
	JsonbValue         v;
	JsonbIteratorToken tok;
	int                level = 0;
	size_t             plen = strlen(prefix);

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT)
			level++;
		else if (tok == WJB_END_OBJECT)
			level--;
		else if (tok == WJB_KEY && level == 1 && (size_t) v.val.string.len >= plen &&
				 strncmp(v.val.string.val, prefix, plen) == 0)
			return pnstrdup(v.val.string.val, v.val.string.len);
	}
	return NULL;
}

static bool
has_key_prefix(JsonbContainer *obj, const char *prefix)
{
	return key_with_prefix(obj, prefix) != NULL;
}

/* is every key of the object one of keys? */
static bool
only_keys(JsonbContainer *obj, const char *const *keys, const char **bad)
{
	JsonbIterator     *it = JsonbIteratorInit(obj);
	JsonbValue         v;
	JsonbIteratorToken tok;
	int                level = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT)
			level++;
		else if (tok == WJB_END_OBJECT)
			level--;
		else if (tok == WJB_KEY && level == 1)
		{
			const char *const *k;

			for (k = keys; *k; k++)
				if (strlen(*k) == (size_t) v.val.string.len &&
					strncmp(*k, v.val.string.val, v.val.string.len) == 0)
					break;
			if (*k == NULL)
			{
				*bad = pnstrdup(v.val.string.val, v.val.string.len);
				return false;
			}
		}
	}
	return true;
}

/*
 * Find the usage object inside a response body or streaming event: the
 * object itself, or its "usage" / "usageMetadata" member, or that of its
 * "response" or "message" member.
 */
static JsonbContainer *
find_usage(JsonbContainer *root)
{
	static const char *const wrappers[] = {"response", "message", NULL};
	JsonbContainer          *u;

	if ((u = get_object(root, "usage")) != NULL)
		return u;
	if ((u = get_object(root, "usageMetadata")) != NULL)
		return u;
	for (const char *const *w = wrappers; *w; w++)
	{
		JsonbContainer *inner = get_object(root, *w);

		if (inner && (u = get_object(inner, "usage")) != NULL)
			return u;
	}
	return root;
}

/*
 * The token fields of each usage shape (fields that count tokens, not
 * totals or ids).  An object whose token fields belong to more than one
 * shape cannot be read without dropping some of them, so it is refused.
 * OpenAI organization usage rows share input_tokens and output_tokens with
 * the Responses and Anthropic shapes, so those count as one shape here.
 */
typedef struct UsageShape
{
	const char *name;
	const char *keys[8];
} UsageShape;

static const UsageShape usage_shapes[] = {
	{"OpenAI Chat Completions",
	 {"prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details",
	  NULL}},
	{"OpenAI Responses, Anthropic Messages or an OpenAI organization usage row",
	 {"input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details",
	  "cache_read_input_tokens", "cache_creation_input_tokens", "input_uncached_tokens", NULL}},
	{"Gemini usageMetadata",
	 {"promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount",
	  "toolUsePromptTokenCount", "thoughtsTokenCount", NULL}},
	{"Bedrock Converse",
	 {"inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens", NULL}},
	{"the canonical object",
	 {"input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning", NULL}},
};

/* refuse an object whose token fields belong to more than one shape */
static void
check_one_shape(JsonbContainer *u)
{
	const char *seen_key = NULL;
	const char *seen_shape = NULL;
	char       *otel = key_with_prefix(u, "gen_ai.usage.");

	if (otel != NULL)
	{
		seen_key = otel;
		seen_shape = "OpenTelemetry GenAI attributes";
	}
	for (int i = 0; i < (int) lengthof(usage_shapes); i++)
	{
		const char *key = NULL;

		for (int k = 0; usage_shapes[i].keys[k] != NULL && key == NULL; k++)
			if (has_member(u, usage_shapes[i].keys[k]))
				key = usage_shapes[i].keys[k];
		if (key == NULL)
			continue;
		if (seen_key != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid usage object: \"%s\" and \"%s\" belong to different usage "
							"shapes",
							seen_key, key),
					 errdetail("\"%s\" is a field of %s, \"%s\" of %s; reading one shape would "
							   "drop the other's tokens.",
							   seen_key, seen_shape, key, usage_shapes[i].name)));
		seen_key = key;
		seen_shape = usage_shapes[i].name;
	}
}

/* Normalise a usage object into t; raises 22P02 for unknown shapes. */
void
usage_jsonb_to_tokens(Jsonb *jb, Tokens *t)
{
	JsonbContainer *u;
	JsonbValue      v;
	const char     *bad = NULL;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("unrecognised usage object: a JSON object is expected")));
	u = find_usage(&jb->root);
	memset(t, 0, sizeof(Tokens));
	check_one_shape(u);

	if (get_member(u, "object", &v) && v.type == jbvString &&
		!(v.val.string.len == (int) strlen("organization.usage.completions.result") &&
		  strncmp(v.val.string.val, "organization.usage.completions.result", v.val.string.len) ==
			  0))
		usage_error(u, "not a completions usage row",
					"Only organization.usage.completions.result rows carry token usage.");

	if (has_key_prefix(u, "gen_ai."))
		read_otel(u, t);
	else if (has_member(u, "input_uncached_tokens") || has_member(u, "input_cached_tokens") ||
			 has_member(u, "num_model_requests") || has_member(u, "object"))
		read_openai_org_usage(u, t);
	else if (has_member(u, "promptTokenCount") || has_member(u, "candidatesTokenCount") ||
			 has_member(u, "totalTokenCount"))
		read_gemini(u, t);
	else if (has_member(u, "inputTokens") || has_member(u, "outputTokens"))
		read_bedrock(u, t);
	else if (has_member(u, "prompt_tokens") || has_member(u, "completion_tokens"))
		read_openai_chat(u, t);
	else if (has_member(u, "input_tokens") || has_member(u, "output_tokens"))
	{
		JsonbContainer *od = get_object(u, "output_tokens_details");

		if (has_member(u, "input_tokens_details") ||
			(od != NULL && has_member(od, "reasoning_tokens")))
			read_openai_responses(u, t);
		else
			read_anthropic(u, t);
	}
	else if (only_keys(u, canonical_keys, &bad) && first_key(u, canonical_keys) != NULL)
		read_canonical(u, t);
	else if (bad != NULL && first_key(u, canonical_keys) != NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("invalid usage object: unknown key \"%s\"", bad),
						errhint("The canonical keys are input, output, cache_read, cache_write, "
								"cache_write_1h and reasoning.")));
	else
		usage_error(u, "no known token counts",
					"The object has none of the keys of a known usage shape.");
}

/* jsonb -> tokens cast */
PG_FUNCTION_INFO_V1(jsonb_to_tokens);
Datum
jsonb_to_tokens(PG_FUNCTION_ARGS)
{
	Jsonb  *jb = PG_GETARG_JSONB_P(0);
	Tokens *t = (Tokens *) palloc0(sizeof(Tokens));

	usage_jsonb_to_tokens(jb, t);
	PG_RETURN_TOKENS_P(t);
}
