-- tokenledger 1.0: install script
\echo Use "CREATE EXTENSION tokenledger" to load this file. \quit

-- ---------------------------------------------------------------------------
-- cost: money with a currency
-- ---------------------------------------------------------------------------

CREATE TYPE @extschema@.cost;

-- input depends on tokenledger.currency for bare amounts, hence STABLE
CREATE FUNCTION @extschema@.cost_in(cstring) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_out(@extschema@.cost) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_recv(internal) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_send(@extschema@.cost) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.cost (
	INTERNALLENGTH = 16,
	INPUT = @extschema@.cost_in,
	OUTPUT = @extschema@.cost_out,
	RECEIVE = @extschema@.cost_recv,
	SEND = @extschema@.cost_send,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE @extschema@.cost IS
	'money with an ISO 4217 currency, exact to 1e-9 of the unit, e.g. ''12.50 USD''';

CREATE FUNCTION @extschema@.cost(amount numeric, currency text) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'cost_from_numeric_currency' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cost(numeric, text) IS
	'a cost of the amount (rounded half away from zero to 1e-9) in the currency';
CREATE FUNCTION @extschema@.amount(@extschema@.cost) RETURNS numeric
	AS 'MODULE_PATHNAME', 'cost_amount' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.amount(@extschema@.cost) IS
	'the amount of a cost in currency units, as numeric with 9 decimals';
CREATE FUNCTION @extschema@.currency(@extschema@.cost) RETURNS text
	AS 'MODULE_PATHNAME', 'cost_currency' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.currency(@extschema@.cost) IS
	'the ISO 4217 currency code of a cost';

CREATE FUNCTION @extschema@.numeric_to_cost(numeric) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE CAST (@extschema@.cost AS numeric)
	WITH FUNCTION @extschema@.amount(@extschema@.cost);
CREATE CAST (numeric AS @extschema@.cost)
	WITH FUNCTION @extschema@.numeric_to_cost(numeric) AS ASSIGNMENT;

-- arithmetic
CREATE FUNCTION @extschema@.cost_add(@extschema@.cost, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_sub(@extschema@.cost, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_neg(@extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_mul_numeric(@extschema@.cost, numeric) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.numeric_mul_cost(numeric, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_mul_int8(@extschema@.cost, bigint) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.int8_mul_cost(bigint, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_div_numeric(@extschema@.cost, numeric) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_div_int8(@extschema@.cost, bigint) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_mul_int4(@extschema@.cost, integer) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.int4_mul_cost(integer, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_div_int4(@extschema@.cost, integer) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_div_cost(@extschema@.cost, @extschema@.cost) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR @extschema@.+ (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost,
	FUNCTION = @extschema@.cost_add, COMMUTATOR = OPERATOR(@extschema@.+)
);
CREATE OPERATOR @extschema@.- (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost,
	FUNCTION = @extschema@.cost_sub
);
CREATE OPERATOR @extschema@.- (
	RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_neg
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.cost, RIGHTARG = numeric,
	FUNCTION = @extschema@.cost_mul_numeric, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = numeric, RIGHTARG = @extschema@.cost,
	FUNCTION = @extschema@.numeric_mul_cost, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.cost, RIGHTARG = bigint,
	FUNCTION = @extschema@.cost_mul_int8, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = bigint, RIGHTARG = @extschema@.cost,
	FUNCTION = @extschema@.int8_mul_cost, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@./ (
	LEFTARG = @extschema@.cost, RIGHTARG = numeric,
	FUNCTION = @extschema@.cost_div_numeric
);
CREATE OPERATOR @extschema@./ (
	LEFTARG = @extschema@.cost, RIGHTARG = bigint,
	FUNCTION = @extschema@.cost_div_int8
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.cost, RIGHTARG = integer,
	FUNCTION = @extschema@.cost_mul_int4, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = integer, RIGHTARG = @extschema@.cost,
	FUNCTION = @extschema@.int4_mul_cost, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@./ (
	LEFTARG = @extschema@.cost, RIGHTARG = integer,
	FUNCTION = @extschema@.cost_div_int4
);
CREATE OPERATOR @extschema@./ (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost,
	FUNCTION = @extschema@.cost_div_cost
);

-- comparison: a total order (currency code, then amount) that never raises
CREATE FUNCTION @extschema@.cost_cmp(@extschema@.cost, @extschema@.cost) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_lt(@extschema@.cost, @extschema@.cost) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_le(@extschema@.cost, @extschema@.cost) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_eq(@extschema@.cost, @extschema@.cost) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_ne(@extschema@.cost, @extschema@.cost) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_ge(@extschema@.cost, @extschema@.cost) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_gt(@extschema@.cost, @extschema@.cost) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_hash(@extschema@.cost) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_hash_extended(@extschema@.cost, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_smaller(@extschema@.cost, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_larger(@extschema@.cost, @extschema@.cost) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR @extschema@.< (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_lt,
	COMMUTATOR = OPERATOR(@extschema@.>), NEGATOR = OPERATOR(@extschema@.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR @extschema@.<= (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_le,
	COMMUTATOR = OPERATOR(@extschema@.>=), NEGATOR = OPERATOR(@extschema@.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR @extschema@.= (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_eq,
	COMMUTATOR = OPERATOR(@extschema@.=), NEGATOR = OPERATOR(@extschema@.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR @extschema@.<> (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_ne,
	COMMUTATOR = OPERATOR(@extschema@.<>), NEGATOR = OPERATOR(@extschema@.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR @extschema@.>= (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_ge,
	COMMUTATOR = OPERATOR(@extschema@.<=), NEGATOR = OPERATOR(@extschema@.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR @extschema@.> (
	LEFTARG = @extschema@.cost, RIGHTARG = @extschema@.cost, FUNCTION = @extschema@.cost_gt,
	COMMUTATOR = OPERATOR(@extschema@.<), NEGATOR = OPERATOR(@extschema@.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR CLASS @extschema@.cost_ops
	DEFAULT FOR TYPE @extschema@.cost USING btree AS
		OPERATOR 1 @extschema@.<,
		OPERATOR 2 @extschema@.<=,
		OPERATOR 3 @extschema@.=,
		OPERATOR 4 @extschema@.>=,
		OPERATOR 5 @extschema@.>,
		FUNCTION 1 @extschema@.cost_cmp(@extschema@.cost, @extschema@.cost);

CREATE OPERATOR CLASS @extschema@.cost_hash_ops
	DEFAULT FOR TYPE @extschema@.cost USING hash AS
		OPERATOR 1 @extschema@.=,
		FUNCTION 1 @extschema@.cost_hash(@extschema@.cost),
		FUNCTION 2 @extschema@.cost_hash_extended(@extschema@.cost, bigint);

-- aggregates: an exact 128-bit sum with a count
CREATE FUNCTION @extschema@.cost_sum_accum(internal, @extschema@.cost) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_sum_inv(internal, @extschema@.cost) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_sum_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_sum_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_sum_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_sum_final(internal) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cost_avg_final(internal) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE @extschema@.sum(@extschema@.cost) (
	SFUNC = @extschema@.cost_sum_accum,
	STYPE = internal,
	SSPACE = 48,
	FINALFUNC = @extschema@.cost_sum_final,
	COMBINEFUNC = @extschema@.cost_sum_combine,
	SERIALFUNC = @extschema@.cost_sum_serialize,
	DESERIALFUNC = @extschema@.cost_sum_deserialize,
	MSFUNC = @extschema@.cost_sum_accum,
	MINVFUNC = @extschema@.cost_sum_inv,
	MSTYPE = internal,
	MSSPACE = 48,
	MFINALFUNC = @extschema@.cost_sum_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.sum(@extschema@.cost) IS
	'exact sum of costs in one currency; NULL over no rows';

CREATE AGGREGATE @extschema@.avg(@extschema@.cost) (
	SFUNC = @extschema@.cost_sum_accum,
	STYPE = internal,
	SSPACE = 48,
	FINALFUNC = @extschema@.cost_avg_final,
	COMBINEFUNC = @extschema@.cost_sum_combine,
	SERIALFUNC = @extschema@.cost_sum_serialize,
	DESERIALFUNC = @extschema@.cost_sum_deserialize,
	MSFUNC = @extschema@.cost_sum_accum,
	MINVFUNC = @extschema@.cost_sum_inv,
	MSTYPE = internal,
	MSSPACE = 48,
	MFINALFUNC = @extschema@.cost_avg_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.avg(@extschema@.cost) IS
	'average of costs in one currency, rounded half away from zero to 1e-9';

CREATE AGGREGATE @extschema@.min(@extschema@.cost) (
	SFUNC = @extschema@.cost_smaller,
	STYPE = @extschema@.cost,
	COMBINEFUNC = @extschema@.cost_smaller,
	SORTOP = OPERATOR(@extschema@.<),
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.min(@extschema@.cost) IS
	'smallest cost in the total order (currency code, then amount)';

CREATE AGGREGATE @extschema@.max(@extschema@.cost) (
	SFUNC = @extschema@.cost_larger,
	STYPE = @extschema@.cost,
	COMBINEFUNC = @extschema@.cost_larger,
	SORTOP = OPERATOR(@extschema@.>),
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.max(@extschema@.cost) IS
	'largest cost in the total order (currency code, then amount)';

-- ---------------------------------------------------------------------------
-- tokens: a usage vector
-- ---------------------------------------------------------------------------

CREATE TYPE @extschema@.tokens;

CREATE FUNCTION @extschema@.tokens_in(cstring) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_out(@extschema@.tokens) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_recv(internal) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_send(@extschema@.tokens) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.tokens (
	INTERNALLENGTH = 48,
	INPUT = @extschema@.tokens_in,
	OUTPUT = @extschema@.tokens_out,
	RECEIVE = @extschema@.tokens_recv,
	SEND = @extschema@.tokens_send,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE @extschema@.tokens IS
	'token usage of a call: in, out, cache_read, cache_write, cache_write_1h, reasoning, e.g. ''in=1200 out=350''';

CREATE FUNCTION @extschema@.tokens(input bigint, output bigint,
		cache_read bigint DEFAULT 0, cache_write bigint DEFAULT 0,
		reasoning bigint DEFAULT 0, cache_write_1h bigint DEFAULT 0)
	RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME', 'tokens_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.tokens(bigint, bigint, bigint, bigint, bigint, bigint) IS
	'a tokens value from its counts';

CREATE FUNCTION @extschema@.input(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_input' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.input(@extschema@.tokens) IS
	'prompt tokens not served from or written to a cache';
CREATE FUNCTION @extschema@.output(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_output' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.output(@extschema@.tokens) IS
	'completion tokens, reasoning included';
CREATE FUNCTION @extschema@.cache_read(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_cache_read' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cache_read(@extschema@.tokens) IS
	'prompt tokens read from the prompt cache';
CREATE FUNCTION @extschema@.cache_write(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_cache_write' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cache_write(@extschema@.tokens) IS
	'prompt tokens written to the default (short-lived) prompt cache';
CREATE FUNCTION @extschema@.cache_write_1h(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_cache_write_1h' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cache_write_1h(@extschema@.tokens) IS
	'prompt tokens written to the 1-hour prompt cache';
CREATE FUNCTION @extschema@.reasoning(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_reasoning' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.reasoning(@extschema@.tokens) IS
	'the part of output that was reasoning (informational)';
CREATE FUNCTION @extschema@.total(@extschema@.tokens) RETURNS bigint
	AS 'MODULE_PATHNAME', 'tokens_total' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.total(@extschema@.tokens) IS
	'input + output + cache_read + cache_write + cache_write_1h';

CREATE FUNCTION @extschema@.tokens_add(@extschema@.tokens, @extschema@.tokens) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_mul_int8(@extschema@.tokens, bigint) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.int8_mul_tokens(bigint, @extschema@.tokens) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_eq(@extschema@.tokens, @extschema@.tokens) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_ne(@extschema@.tokens, @extschema@.tokens) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_hash(@extschema@.tokens) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_hash_extended(@extschema@.tokens, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OPERATOR @extschema@.+ (
	LEFTARG = @extschema@.tokens, RIGHTARG = @extschema@.tokens,
	FUNCTION = @extschema@.tokens_add, COMMUTATOR = OPERATOR(@extschema@.+)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.tokens, RIGHTARG = bigint,
	FUNCTION = @extschema@.tokens_mul_int8, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = bigint, RIGHTARG = @extschema@.tokens,
	FUNCTION = @extschema@.int8_mul_tokens, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.= (
	LEFTARG = @extschema@.tokens, RIGHTARG = @extschema@.tokens, FUNCTION = @extschema@.tokens_eq,
	COMMUTATOR = OPERATOR(@extschema@.=), NEGATOR = OPERATOR(@extschema@.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES
);
CREATE OPERATOR @extschema@.<> (
	LEFTARG = @extschema@.tokens, RIGHTARG = @extschema@.tokens, FUNCTION = @extschema@.tokens_ne,
	COMMUTATOR = OPERATOR(@extschema@.<>), NEGATOR = OPERATOR(@extschema@.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR CLASS @extschema@.tokens_hash_ops
	DEFAULT FOR TYPE @extschema@.tokens USING hash AS
		OPERATOR 1 @extschema@.=,
		FUNCTION 1 @extschema@.tokens_hash(@extschema@.tokens),
		FUNCTION 2 @extschema@.tokens_hash_extended(@extschema@.tokens, bigint);

CREATE FUNCTION @extschema@.tokens_sum_accum(@extschema@.tokens, @extschema@.tokens) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.tokens_sum_inv(@extschema@.tokens, @extschema@.tokens) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE @extschema@.sum(@extschema@.tokens) (
	SFUNC = @extschema@.tokens_sum_accum,
	STYPE = @extschema@.tokens,
	COMBINEFUNC = @extschema@.tokens_sum_accum,
	MSFUNC = @extschema@.tokens_sum_accum,
	MINVFUNC = @extschema@.tokens_sum_inv,
	MSTYPE = @extschema@.tokens,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.sum(@extschema@.tokens) IS
	'field-by-field sum of tokens values; NULL over no rows';

-- ---------------------------------------------------------------------------
-- rate: prices per 1M tokens
-- ---------------------------------------------------------------------------

CREATE TYPE @extschema@.rate;

CREATE FUNCTION @extschema@.rate_in(cstring) RETURNS @extschema@.rate
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_out(@extschema@.rate) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_recv(internal) RETURNS @extschema@.rate
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_send(@extschema@.rate) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.rate (
	INTERNALLENGTH = 48,
	INPUT = @extschema@.rate_in,
	OUTPUT = @extschema@.rate_out,
	RECEIVE = @extschema@.rate_recv,
	SEND = @extschema@.rate_send,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE @extschema@.rate IS
	'a model''s prices per 1M tokens, e.g. ''in=3 out=15 cache_read=0.30 USD/1M''';

CREATE FUNCTION @extschema@.tokens_mul_rate(@extschema@.tokens, @extschema@.rate) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_mul_tokens(@extschema@.rate, @extschema@.tokens) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_mul_numeric(@extschema@.rate, numeric) RETURNS @extschema@.rate
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_eq(@extschema@.rate, @extschema@.rate) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_ne(@extschema@.rate, @extschema@.rate) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_hash(@extschema@.rate) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION @extschema@.rate_hash_extended(@extschema@.rate, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.tokens, RIGHTARG = @extschema@.rate,
	FUNCTION = @extschema@.tokens_mul_rate, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.rate, RIGHTARG = @extschema@.tokens,
	FUNCTION = @extschema@.rate_mul_tokens, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.* (
	LEFTARG = @extschema@.rate, RIGHTARG = numeric,
	FUNCTION = @extschema@.rate_mul_numeric
);
CREATE OPERATOR @extschema@.= (
	LEFTARG = @extschema@.rate, RIGHTARG = @extschema@.rate, FUNCTION = @extschema@.rate_eq,
	COMMUTATOR = OPERATOR(@extschema@.=), NEGATOR = OPERATOR(@extschema@.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES
);
CREATE OPERATOR @extschema@.<> (
	LEFTARG = @extschema@.rate, RIGHTARG = @extschema@.rate, FUNCTION = @extschema@.rate_ne,
	COMMUTATOR = OPERATOR(@extschema@.<>), NEGATOR = OPERATOR(@extschema@.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR CLASS @extschema@.rate_hash_ops
	DEFAULT FOR TYPE @extschema@.rate USING hash AS
		OPERATOR 1 @extschema@.=,
		FUNCTION 1 @extschema@.rate_hash(@extschema@.rate),
		FUNCTION 2 @extschema@.rate_hash_extended(@extschema@.rate, bigint);

CREATE FUNCTION @extschema@.input_price(@extschema@.rate) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'rate_input_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.input_price(@extschema@.rate) IS 'price of 1M input tokens';
CREATE FUNCTION @extschema@.output_price(@extschema@.rate) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'rate_output_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.output_price(@extschema@.rate) IS 'price of 1M output tokens';
CREATE FUNCTION @extschema@.cache_read_price(@extschema@.rate) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'rate_cache_read_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cache_read_price(@extschema@.rate) IS 'price of 1M cache-read tokens';
CREATE FUNCTION @extschema@.cache_write_price(@extschema@.rate) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'rate_cache_write_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cache_write_price(@extschema@.rate) IS 'price of 1M cache-write tokens';
CREATE FUNCTION @extschema@.cache_write_1h_price(@extschema@.rate) RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME', 'rate_cache_write_1h_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cache_write_1h_price(@extschema@.rate) IS 'price of 1M 1-hour cache-write tokens';
