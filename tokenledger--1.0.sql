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

-- ---------------------------------------------------------------------------
-- provider usage objects
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.jsonb_to_tokens(jsonb) RETURNS @extschema@.tokens
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.jsonb_to_tokens(jsonb) IS
	'a provider usage object (OpenAI, Anthropic, Gemini, Bedrock, OpenTelemetry GenAI or canonical) as tokens';
CREATE CAST (jsonb AS @extschema@.tokens) WITH FUNCTION @extschema@.jsonb_to_tokens(jsonb);

-- ---------------------------------------------------------------------------
-- the price catalog, initiatives and attribution rules
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.prices (
	id bigserial PRIMARY KEY,
	provider text NOT NULL,
	model text NOT NULL,
	service_tier text NOT NULL DEFAULT 'standard',
	effective_from timestamptz NOT NULL DEFAULT now(),
	rate @extschema@.rate NOT NULL,
	min_input_tokens bigint NOT NULL DEFAULT 0 CHECK (min_input_tokens >= 0),
	source text,
	shipped boolean NOT NULL DEFAULT false,
	UNIQUE (provider, model, service_tier, min_input_tokens, effective_from)
);
COMMENT ON TABLE @extschema@.prices IS
	'versioned price catalog: a call is priced at the newest row in effect at its time, the highest min_input_tokens its prompt exceeds';
COMMENT ON COLUMN @extschema@.prices.service_tier IS 'standard, batch, flex, priority, ...';
COMMENT ON COLUMN @extschema@.prices.effective_from IS 'the row prices calls from this time on, until a newer row of the same tier';
COMMENT ON COLUMN @extschema@.prices.min_input_tokens IS 'long-context tier: applies to calls whose prompt exceeds this many tokens (the whole call is priced at it)';
COMMENT ON COLUMN @extschema@.prices.source IS 'where the price comes from';
COMMENT ON COLUMN @extschema@.prices.shipped IS 'true for rows installed with the extension (not dumped by pg_dump)';

CREATE TABLE @extschema@.model_aliases (
	provider text NOT NULL,
	alias text NOT NULL,
	model text NOT NULL,
	shipped boolean NOT NULL DEFAULT false,
	PRIMARY KEY (provider, alias)
);
COMMENT ON TABLE @extschema@.model_aliases IS
	'model names that resolve to a catalog model (after an exact match, before the date-suffix rule)';

CREATE TABLE @extschema@.initiatives (
	id bigserial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	team text,
	owner text,
	status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'abandoned')),
	outcome_metric text,
	value_per_outcome @extschema@.cost CHECK (@extschema@.amount(value_per_outcome) >= 0),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.initiatives IS
	'business uses of AI meant to produce outcomes; usage and outcome rows name them, and unknown names are registered on first use';

CREATE TABLE @extschema@.attribution_rules (
	id bigserial PRIMARY KEY,
	priority integer NOT NULL DEFAULT 100,
	match_api_key text,
	match_app text,
	match_principal text,
	match_model text,
	match_tags jsonb CHECK (match_tags IS NULL OR jsonb_typeof(match_tags) = 'object'),
	initiative text,
	team text,
	CHECK (initiative IS NOT NULL OR team IS NOT NULL)
);
COMMENT ON TABLE @extschema@.attribution_rules IS
	'how usage without an explicit initiative or team is attributed: the lowest priority that matches wins; NULL matches anything; tags match by containment';

-- ---------------------------------------------------------------------------
-- the ledger
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.usage (
	id bigserial PRIMARY KEY,
	occurred_at timestamptz NOT NULL DEFAULT now(),
	recorded_at timestamptz NOT NULL DEFAULT now(),
	request_id text,
	provider text NOT NULL,
	model text NOT NULL,
	service_tier text NOT NULL DEFAULT 'standard',
	tokens @extschema@.tokens NOT NULL DEFAULT 'in=0 out=0',
	requests bigint NOT NULL DEFAULT 1 CHECK (requests >= 0),
	cost @extschema@.cost,
	price_id bigint,
	team text,
	initiative text,
	principal text,
	api_key text,
	app text,
	environment text,
	run_id text,
	prompt_hash text,
	tags jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
	attribution text NOT NULL CHECK (attribution ~ '^(explicit|unattributed|rule:[0-9]+)$'),
	reservation_id uuid,
	entry text NOT NULL DEFAULT 'call' CHECK (entry IN ('call', 'adjustment', 'rerate')),
	adjusts bigint,
	reason text,
	-- corrections name the call they correct; calls name none
	CONSTRAINT usage_link_check CHECK ((entry = 'call') = (adjusts IS NULL))
);
COMMENT ON TABLE @extschema@.usage IS
	'the ledger: one row per model call (or pre-aggregated batch), priced and attributed on insert; append-only';
COMMENT ON COLUMN @extschema@.usage.occurred_at IS 'when the call happened (prices and budget periods follow it)';
COMMENT ON COLUMN @extschema@.usage.recorded_at IS 'when the row was recorded';
COMMENT ON COLUMN @extschema@.usage.request_id IS 'idempotency key: a call is recorded once';
COMMENT ON COLUMN @extschema@.usage.tokens IS 'token counts of the call';
COMMENT ON COLUMN @extschema@.usage.requests IS 'calls the row stands for (more than 1 for pre-aggregated batches)';
COMMENT ON COLUMN @extschema@.usage.cost IS 'what the call cost: given (e.g. provider-billed) or priced from the catalog; NULL when no price applies yet';
COMMENT ON COLUMN @extschema@.usage.price_id IS 'the prices row that priced the call';
COMMENT ON COLUMN @extschema@.usage.attribution IS 'explicit, rule:<id> or unattributed';
COMMENT ON COLUMN @extschema@.usage.entry IS 'call, adjustment (a correction) or rerate (a price correction)';
COMMENT ON COLUMN @extschema@.usage.adjusts IS 'for adjustment and rerate entries: the call they correct';
CREATE UNIQUE INDEX usage_request_id_key ON @extschema@.usage (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX usage_occurred_at_idx ON @extschema@.usage USING brin (occurred_at);
CREATE INDEX usage_adjusts_idx ON @extschema@.usage (adjusts) WHERE adjusts IS NOT NULL;
CREATE INDEX usage_unpriced_idx ON @extschema@.usage (id) WHERE cost IS NULL;

CREATE TABLE @extschema@.outcomes (
	id bigserial PRIMARY KEY,
	occurred_at timestamptz NOT NULL DEFAULT now(),
	recorded_at timestamptz NOT NULL DEFAULT now(),
	initiative text NOT NULL,
	metric text NOT NULL,
	quantity numeric NOT NULL DEFAULT 1 CHECK (quantity >= 0),
	value @extschema@.cost,
	run_id text,
	external_ref text,
	attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object')
);
COMMENT ON TABLE @extschema@.outcomes IS
	'business results (a ticket resolved, a lead enriched); append-only';
COMMENT ON COLUMN @extschema@.outcomes.value IS 'what the outcome is worth; quantity x the initiative''s value_per_outcome when not given';
COMMENT ON COLUMN @extschema@.outcomes.external_ref IS 'idempotency key: an outcome is recorded once';
CREATE UNIQUE INDEX outcomes_external_ref_key ON @extschema@.outcomes (external_ref) WHERE external_ref IS NOT NULL;
CREATE INDEX outcomes_occurred_at_idx ON @extschema@.outcomes USING brin (occurred_at);

-- ---------------------------------------------------------------------------
-- triggers
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.usage_before() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE FUNCTION @extschema@.outcome_before() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE FUNCTION @extschema@.append_only() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE FUNCTION @extschema@.catalog_changed() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;

CREATE TRIGGER usage_before BEFORE INSERT OR UPDATE ON @extschema@.usage
	FOR EACH ROW EXECUTE FUNCTION @extschema@.usage_before();
CREATE TRIGGER usage_append_only BEFORE DELETE ON @extschema@.usage
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only();
CREATE TRIGGER usage_no_truncate BEFORE TRUNCATE ON @extschema@.usage
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only();
CREATE TRIGGER outcome_before BEFORE INSERT ON @extschema@.outcomes
	FOR EACH ROW EXECUTE FUNCTION @extschema@.outcome_before();
CREATE TRIGGER outcomes_append_only BEFORE UPDATE OR DELETE ON @extschema@.outcomes
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only();
CREATE TRIGGER outcomes_no_truncate BEFORE TRUNCATE ON @extschema@.outcomes
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.append_only();
-- the append-only rules hold in replica sessions too
ALTER TABLE @extschema@.usage ENABLE ALWAYS TRIGGER usage_append_only;
ALTER TABLE @extschema@.usage ENABLE ALWAYS TRIGGER usage_no_truncate;
ALTER TABLE @extschema@.outcomes ENABLE ALWAYS TRIGGER outcomes_append_only;
ALTER TABLE @extschema@.outcomes ENABLE ALWAYS TRIGGER outcomes_no_truncate;

CREATE TRIGGER prices_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.prices
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.catalog_changed();
CREATE TRIGGER model_aliases_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.model_aliases
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.catalog_changed();
CREATE TRIGGER attribution_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.attribution_rules
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.catalog_changed();
CREATE TRIGGER initiatives_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.initiatives
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.catalog_changed();

-- pg_dump keeps the rows users add; shipped catalog rows come with the extension
SELECT pg_catalog.pg_extension_config_dump('@extschema@.prices', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.prices_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.model_aliases', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.initiatives', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.initiatives_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.attribution_rules', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.attribution_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.usage', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.usage_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outcomes_id_seq', '');

-- ---------------------------------------------------------------------------
-- pricing functions
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.cost_of(tokens @extschema@.tokens, provider text, model text,
		service_tier text DEFAULT 'standard', at timestamptz DEFAULT now())
	RETURNS @extschema@.cost
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.cost_of(@extschema@.tokens, text, text, text, timestamptz) IS
	'what the catalog charges for a call, without recording it; NULL when no price applies';
CREATE FUNCTION @extschema@.price_of(tokens @extschema@.tokens, provider text, model text,
		service_tier text, at timestamptz, requests bigint DEFAULT 1)
	RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.price_of(@extschema@.tokens, text, text, text, timestamptz, bigint) IS
	'the id of the prices row that would price a call; NULL when none applies';
CREATE FUNCTION @extschema@.resolve_model(provider text, model text) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.resolve_model(text, text) IS
	'the catalog model a name resolves to (exact, alias, or without its date suffix); NULL when none has a price';

-- ---------------------------------------------------------------------------
-- recording and correcting
-- ---------------------------------------------------------------------------

-- the conflict error of a replayed key with different content
CREATE FUNCTION @extschema@.replay_conflict(what text, key text, recorded text, replayed text)
	RETURNS void LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
BEGIN
	RAISE EXCEPTION '% "%" was already recorded with different content', what, key
		USING ERRCODE = 'unique_violation',
			  DETAIL = format('Recorded: %s. Replayed: %s.', recorded, replayed),
			  HINT = 'A replay must repeat the original; record a correction with tokenledger.adjust() instead.';
END $$;

CREATE FUNCTION @extschema@.record_usage(provider text, model text, usage jsonb,
		request_id text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
		service_tier text DEFAULT NULL, requests bigint DEFAULT NULL,
		cost @extschema@.cost DEFAULT NULL, team text DEFAULT NULL, initiative text DEFAULT NULL,
		principal text DEFAULT NULL, api_key text DEFAULT NULL, app text DEFAULT NULL,
		environment text DEFAULT NULL, run_id text DEFAULT NULL, prompt_hash text DEFAULT NULL,
		tags jsonb DEFAULT NULL, reservation_id uuid DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	t tokens := record_usage.usage::tokens;
	n bigint := coalesce(record_usage.requests,
						 (record_usage.usage ->> 'num_model_requests')::bigint, 1);
	tier text := coalesce(record_usage.service_tier, 'standard');
	old record;
	new_id bigint;
BEGIN
	-- the second round is for a call recorded concurrently under the same key
	FOR attempt IN 1 .. 2 LOOP
		IF record_usage.request_id IS NOT NULL THEN
			SELECT u.id, u.provider, u.model, u.service_tier, u.tokens, u.cost, u.price_id INTO old
			FROM usage u WHERE u.request_id = record_usage.request_id;
			IF FOUND THEN
				IF old.provider <> record_usage.provider OR old.model <> record_usage.model
				   OR old.service_tier <> tier OR old.tokens <> t
				   OR (record_usage.cost IS NOT NULL AND old.cost IS DISTINCT FROM record_usage.cost) THEN
					PERFORM replay_conflict('request_id', record_usage.request_id,
						format('%s %s (%s) %s, cost %s', old.provider, old.model, old.service_tier, old.tokens, coalesce(old.cost::text, 'none')),
						format('%s %s (%s) %s, cost %s', record_usage.provider, record_usage.model, tier, t, coalesce(record_usage.cost::text, 'none')));
				END IF;
				RETURN old.id;
			END IF;
		END IF;
		BEGIN
			INSERT INTO usage (occurred_at, request_id, provider, model, service_tier, tokens,
							   requests, cost, team, initiative, principal, api_key, app,
							   environment, run_id, prompt_hash, tags, reservation_id)
			VALUES (coalesce(record_usage.occurred_at, now()), record_usage.request_id,
					record_usage.provider, record_usage.model, tier, t, n, record_usage.cost,
					record_usage.team, record_usage.initiative, record_usage.principal,
					record_usage.api_key, record_usage.app, record_usage.environment,
					record_usage.run_id, record_usage.prompt_hash,
					coalesce(record_usage.tags, '{}'), record_usage.reservation_id)
			RETURNING id INTO new_id;
			RETURN new_id;
		EXCEPTION WHEN unique_violation THEN
			IF record_usage.request_id IS NULL OR attempt = 2 THEN
				RAISE;
			END IF;
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION @extschema@.record_usage(text, text, jsonb, text, timestamptz, text, bigint, @extschema@.cost, text, text, text, text, text, text, text, text, jsonb, uuid) IS
	'record a call from a provider usage object; idempotent on request_id (returns the existing id; a different replay is refused with 23505)';

CREATE FUNCTION @extschema@.record_outcome(initiative text, metric text, quantity numeric DEFAULT 1,
		occurred_at timestamptz DEFAULT NULL, value @extschema@.cost DEFAULT NULL,
		run_id text DEFAULT NULL, external_ref text DEFAULT NULL, attributes jsonb DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	old record;
	new_id bigint;
BEGIN
	-- the second round is for an outcome recorded concurrently under the same key
	FOR attempt IN 1 .. 2 LOOP
		IF record_outcome.external_ref IS NOT NULL THEN
			SELECT o.id, o.initiative, o.metric, o.quantity, o.value INTO old
			FROM outcomes o WHERE o.external_ref = record_outcome.external_ref;
			IF FOUND THEN
				IF old.initiative <> record_outcome.initiative OR old.metric <> record_outcome.metric
				   OR old.quantity <> record_outcome.quantity
				   OR (record_outcome.value IS NOT NULL AND old.value IS DISTINCT FROM record_outcome.value) THEN
					PERFORM replay_conflict('external_ref', record_outcome.external_ref,
						format('%s %s x %s, value %s', old.initiative, old.metric, old.quantity, coalesce(old.value::text, 'none')),
						format('%s %s x %s, value %s', record_outcome.initiative, record_outcome.metric, record_outcome.quantity, coalesce(record_outcome.value::text, 'none')));
				END IF;
				RETURN old.id;
			END IF;
		END IF;
		BEGIN
			INSERT INTO outcomes (occurred_at, initiative, metric, quantity, value, run_id, external_ref, attributes)
			VALUES (coalesce(record_outcome.occurred_at, now()), record_outcome.initiative,
					record_outcome.metric, record_outcome.quantity, record_outcome.value,
					record_outcome.run_id, record_outcome.external_ref,
					coalesce(record_outcome.attributes, '{}'))
			RETURNING id INTO new_id;
			RETURN new_id;
		EXCEPTION WHEN unique_violation THEN
			IF record_outcome.external_ref IS NULL OR attempt = 2 THEN
				RAISE;
			END IF;
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION @extschema@.record_outcome(text, text, numeric, timestamptz, @extschema@.cost, text, text, jsonb) IS
	'record a business outcome; idempotent on external_ref (returns the existing id; a different replay is refused with 23505)';

CREATE FUNCTION @extschema@.adjust(usage_id bigint, delta @extschema@.cost, reason text)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	o usage;
	new_id bigint;
BEGIN
	IF delta IS NULL THEN
		RAISE EXCEPTION 'an adjustment needs a delta' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'an adjustment needs a reason' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Say why the cost changes, e.g. ''provider credit, ticket 1234''.';
	END IF;
	SELECT * INTO o FROM usage u WHERE u.id = usage_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'usage row % does not exist', usage_id USING ERRCODE = 'foreign_key_violation';
	END IF;
	IF o.cost IS NOT NULL AND currency(o.cost) <> currency(delta) THEN
		RAISE EXCEPTION 'cannot adjust usage row % priced in % by an amount in %',
			usage_id, currency(o.cost), currency(delta)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO usage (occurred_at, provider, model, service_tier, tokens, requests, cost,
					   team, initiative, principal, api_key, app, environment, run_id,
					   prompt_hash, tags, attribution, entry, adjusts, reason)
	VALUES (o.occurred_at, o.provider, o.model, o.service_tier, 'in=0 out=0', 0, delta,
			o.team, o.initiative, o.principal, o.api_key, o.app, o.environment, o.run_id,
			o.prompt_hash, o.tags, o.attribution, 'adjustment', o.id, reason)
	RETURNING id INTO new_id;
	RETURN new_id;
END $$;
COMMENT ON FUNCTION @extschema@.adjust(bigint, @extschema@.cost, text) IS
	'append a correction to a usage row: zero tokens, cost = delta, the original''s attribution and time';

CREATE FUNCTION @extschema@.reprice() RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	n bigint;
BEGIN
	-- the usage trigger fills each cost from the catalog and skips rows
	-- that still have no price; it allows no other change
	UPDATE usage SET price_id = NULL WHERE cost IS NULL AND entry = 'call';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION @extschema@.reprice() IS
	'price the calls recorded without a price, now that prices exist; returns how many were priced (costs already set never change)';

CREATE FUNCTION @extschema@.rerate(provider text, model text, since timestamptz, until timestamptz)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	n bigint;
BEGIN
	INSERT INTO usage (occurred_at, provider, model, service_tier, tokens, requests, cost, price_id,
					   team, initiative, principal, api_key, app, environment, run_id,
					   prompt_hash, tags, attribution, entry, adjusts, reason)
	SELECT d.occurred_at, d.provider, d.model, d.service_tier, 'in=0 out=0', 0, d.delta, d.new_price_id,
		   d.team, d.initiative, d.principal, d.api_key, d.app, d.environment, d.run_id,
		   d.prompt_hash, d.tags, d.attribution, 'rerate', d.id,
		   format('rerate: price %s charges %s, was %s', d.new_price_id, d.new_cost, d.charged)
	FROM (
		SELECT c.*, c.new_cost - c.charged AS delta
		FROM (
			SELECT u.*, p.id AS new_price_id, u.tokens * p.rate AS new_cost,
				   u.cost + coalesce((SELECT sum(r.cost) FROM usage r
									  WHERE r.adjusts = u.id AND r.entry = 'rerate'), u.cost * 0) AS charged
			FROM usage u
			JOIN prices p ON p.id = price_of(u.tokens, u.provider, u.model, u.service_tier,
											 u.occurred_at, u.requests)
			WHERE u.entry = 'call' AND u.price_id IS NOT NULL
			  AND u.provider = rerate.provider
			  AND (u.model = rerate.model OR resolve_model(u.provider, u.model) = rerate.model)
			  AND u.occurred_at >= rerate.since AND u.occurred_at < rerate.until
		) c
	) d
	WHERE amount(d.delta) <> 0;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION @extschema@.rerate(text, text, timestamptz, timestamptz) IS
	're-price catalog-priced calls of a model in [since, until) against the prices as they now stand, appending one rerate entry per call for the difference';

CREATE VIEW @extschema@.unpriced_usage AS
SELECT u.id, u.occurred_at, u.provider, u.model, u.service_tier,
	   @extschema@.resolve_model(u.provider, u.model) AS catalog_model,
	   CASE WHEN @extschema@.resolve_model(u.provider, u.model) IS NULL
			THEN 'model not in the price catalog'
			ELSE 'no price for this service tier and time' END AS reason,
	   u.requests,
	   @extschema@.input(u.tokens) AS input_tokens,
	   @extschema@.output(u.tokens) AS output_tokens,
	   @extschema@.cache_read(u.tokens) AS cache_read_tokens,
	   @extschema@.cache_write(u.tokens) AS cache_write_tokens,
	   @extschema@.cache_write_1h(u.tokens) AS cache_write_1h_tokens,
	   u.team, u.initiative, u.principal, u.api_key, u.app, u.request_id
FROM @extschema@.usage u
WHERE u.cost IS NULL AND u.entry = 'call';
COMMENT ON VIEW @extschema@.unpriced_usage IS
	'calls recorded without a price (unknown model, tier or date); reprice() prices them once prices exist';
COMMENT ON COLUMN @extschema@.unpriced_usage.catalog_model IS 'the catalog model the name resolves to, if any';
COMMENT ON COLUMN @extschema@.unpriced_usage.reason IS 'why no price applied';
COMMENT ON COLUMN @extschema@.unpriced_usage.input_tokens IS 'uncached prompt tokens';
COMMENT ON COLUMN @extschema@.unpriced_usage.output_tokens IS 'completion tokens, reasoning included';
COMMENT ON COLUMN @extschema@.unpriced_usage.cache_read_tokens IS 'prompt tokens read from the cache';
COMMENT ON COLUMN @extschema@.unpriced_usage.cache_write_tokens IS 'prompt tokens written to the cache';
COMMENT ON COLUMN @extschema@.unpriced_usage.cache_write_1h_tokens IS 'prompt tokens written to the 1-hour cache';

-- ---------------------------------------------------------------------------
-- the shipped catalog: list prices per 1M tokens, in USD, from the providers'
-- pricing pages; batch tiers at the providers' batch discount (50%)
-- ---------------------------------------------------------------------------

INSERT INTO @extschema@.prices (provider, model, service_tier, effective_from, rate, min_input_tokens, source, shipped)
SELECT provider, model, tier, timestamptz '2023-01-01 00:00:00+00', rate::@extschema@.rate, min_input, source, true
FROM (VALUES
	-- OpenAI
	('openai', 'gpt-5', 'standard', 'in=1.25 out=10 cache_read=0.125 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5', 'batch', 'in=0.625 out=5 cache_read=0.0625 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5', 'flex', 'in=0.625 out=5 cache_read=0.0625 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5', 'priority', 'in=2.5 out=20 cache_read=0.25 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5-mini', 'standard', 'in=0.25 out=2 cache_read=0.025 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5-mini', 'batch', 'in=0.125 out=1 cache_read=0.0125 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5-mini', 'flex', 'in=0.125 out=1 cache_read=0.0125 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5-mini', 'priority', 'in=0.45 out=3.6 cache_read=0.045 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5-nano', 'standard', 'in=0.05 out=0.4 cache_read=0.005 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-5-nano', 'batch', 'in=0.025 out=0.2 cache_read=0.0025 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4.1', 'standard', 'in=2 out=8 cache_read=0.5 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4.1', 'batch', 'in=1 out=4 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4.1-mini', 'standard', 'in=0.4 out=1.6 cache_read=0.1 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4.1-mini', 'batch', 'in=0.2 out=0.8 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4.1-nano', 'standard', 'in=0.1 out=0.4 cache_read=0.025 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4.1-nano', 'batch', 'in=0.05 out=0.2 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4o', 'standard', 'in=2.5 out=10 cache_read=1.25 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4o', 'batch', 'in=1.25 out=5 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4o', 'priority', 'in=4.25 out=17 cache_read=2.125 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4o-mini', 'standard', 'in=0.15 out=0.6 cache_read=0.075 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4o-mini', 'batch', 'in=0.075 out=0.3 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o3', 'standard', 'in=2 out=8 cache_read=0.5 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o3', 'batch', 'in=1 out=4 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o3', 'flex', 'in=1 out=4 cache_read=0.25 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o3-pro', 'standard', 'in=20 out=80 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o4-mini', 'standard', 'in=1.1 out=4.4 cache_read=0.275 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o4-mini', 'batch', 'in=0.55 out=2.2 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o4-mini', 'flex', 'in=0.55 out=2.2 cache_read=0.1375 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o3-mini', 'standard', 'in=1.1 out=4.4 cache_read=0.55 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'o1', 'standard', 'in=15 out=60 cache_read=7.5 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-4-turbo', 'standard', 'in=10 out=30 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'gpt-3.5-turbo', 'standard', 'in=0.5 out=1.5 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'text-embedding-3-small', 'standard', 'in=0.02 out=0 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'text-embedding-3-small', 'batch', 'in=0.01 out=0 USD/1M', 0, 'https://openai.com/api/pricing/'),
	('openai', 'text-embedding-3-large', 'standard', 'in=0.13 out=0 USD/1M', 0, 'https://openai.com/api/pricing/'),
	-- Anthropic: cache writes at 1.25x (5 minutes) and 2x (1 hour) the input price, reads at 0.1x
	('anthropic', 'claude-opus-4-5', 'standard', 'in=5 out=25 cache_read=0.5 cache_write=6.25 cache_write_1h=10 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-opus-4-5', 'batch', 'in=2.5 out=12.5 cache_read=0.25 cache_write=3.125 cache_write_1h=5 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-opus-4-1', 'standard', 'in=15 out=75 cache_read=1.5 cache_write=18.75 cache_write_1h=30 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-opus-4-1', 'batch', 'in=7.5 out=37.5 cache_read=0.75 cache_write=9.375 cache_write_1h=15 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-opus-4', 'standard', 'in=15 out=75 cache_read=1.5 cache_write=18.75 cache_write_1h=30 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-opus-4', 'batch', 'in=7.5 out=37.5 cache_read=0.75 cache_write=9.375 cache_write_1h=15 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-sonnet-4-5', 'standard', 'in=3 out=15 cache_read=0.3 cache_write=3.75 cache_write_1h=6 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-sonnet-4-5', 'standard', 'in=6 out=22.5 cache_read=0.6 cache_write=7.5 cache_write_1h=12 USD/1M', 200000, 'https://docs.anthropic.com/en/docs/about-claude/pricing (prompts over 200k tokens)'),
	('anthropic', 'claude-sonnet-4-5', 'batch', 'in=1.5 out=7.5 cache_read=0.15 cache_write=1.875 cache_write_1h=3 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-sonnet-4-5', 'batch', 'in=3 out=11.25 cache_read=0.3 cache_write=3.75 cache_write_1h=6 USD/1M', 200000, 'https://docs.anthropic.com/en/docs/about-claude/pricing (prompts over 200k tokens)'),
	('anthropic', 'claude-sonnet-4', 'standard', 'in=3 out=15 cache_read=0.3 cache_write=3.75 cache_write_1h=6 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-sonnet-4', 'standard', 'in=6 out=22.5 cache_read=0.6 cache_write=7.5 cache_write_1h=12 USD/1M', 200000, 'https://docs.anthropic.com/en/docs/about-claude/pricing (prompts over 200k tokens)'),
	('anthropic', 'claude-sonnet-4', 'batch', 'in=1.5 out=7.5 cache_read=0.15 cache_write=1.875 cache_write_1h=3 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-3-7-sonnet', 'standard', 'in=3 out=15 cache_read=0.3 cache_write=3.75 cache_write_1h=6 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-3-7-sonnet', 'batch', 'in=1.5 out=7.5 cache_read=0.15 cache_write=1.875 cache_write_1h=3 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-3-5-sonnet', 'standard', 'in=3 out=15 cache_read=0.3 cache_write=3.75 cache_write_1h=6 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-haiku-4-5', 'standard', 'in=1 out=5 cache_read=0.1 cache_write=1.25 cache_write_1h=2 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-haiku-4-5', 'batch', 'in=0.5 out=2.5 cache_read=0.05 cache_write=0.625 cache_write_1h=1 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-3-5-haiku', 'standard', 'in=0.8 out=4 cache_read=0.08 cache_write=1 cache_write_1h=1.6 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-3-5-haiku', 'batch', 'in=0.4 out=2 cache_read=0.04 cache_write=0.5 cache_write_1h=0.8 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	('anthropic', 'claude-3-haiku', 'standard', 'in=0.25 out=1.25 cache_read=0.03 cache_write=0.3 cache_write_1h=0.5 USD/1M', 0, 'https://docs.anthropic.com/en/docs/about-claude/pricing'),
	-- Google Gemini API: long-context prices apply to prompts over 200k (2.5 Pro, 3 Pro) or 128k (1.5) tokens
	('google', 'gemini-3-pro-preview', 'standard', 'in=2 out=12 cache_read=0.2 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-3-pro-preview', 'standard', 'in=4 out=18 cache_read=0.4 USD/1M', 200000, 'https://ai.google.dev/gemini-api/docs/pricing (prompts over 200k tokens)'),
	('google', 'gemini-2.5-pro', 'standard', 'in=1.25 out=10 cache_read=0.125 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.5-pro', 'standard', 'in=2.5 out=15 cache_read=0.25 USD/1M', 200000, 'https://ai.google.dev/gemini-api/docs/pricing (prompts over 200k tokens)'),
	('google', 'gemini-2.5-pro', 'batch', 'in=0.625 out=5 cache_read=0.0625 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.5-pro', 'batch', 'in=1.25 out=7.5 cache_read=0.125 USD/1M', 200000, 'https://ai.google.dev/gemini-api/docs/pricing (prompts over 200k tokens)'),
	('google', 'gemini-2.5-flash', 'standard', 'in=0.3 out=2.5 cache_read=0.03 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.5-flash', 'batch', 'in=0.15 out=1.25 cache_read=0.015 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.5-flash-lite', 'standard', 'in=0.1 out=0.4 cache_read=0.01 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.5-flash-lite', 'batch', 'in=0.05 out=0.2 cache_read=0.005 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.0-flash', 'standard', 'in=0.1 out=0.4 cache_read=0.025 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.0-flash', 'batch', 'in=0.05 out=0.2 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-2.0-flash-lite', 'standard', 'in=0.075 out=0.3 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-1.5-pro', 'standard', 'in=1.25 out=5 cache_read=0.3125 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-1.5-pro', 'standard', 'in=2.5 out=10 cache_read=0.625 USD/1M', 128000, 'https://ai.google.dev/gemini-api/docs/pricing (prompts over 128k tokens)'),
	('google', 'gemini-1.5-flash', 'standard', 'in=0.075 out=0.3 cache_read=0.01875 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing'),
	('google', 'gemini-1.5-flash', 'standard', 'in=0.15 out=0.6 cache_read=0.0375 USD/1M', 128000, 'https://ai.google.dev/gemini-api/docs/pricing (prompts over 128k tokens)'),
	('google', 'text-embedding-004', 'standard', 'in=0 out=0 USD/1M', 0, 'https://ai.google.dev/gemini-api/docs/pricing')
) AS v(provider, model, tier, rate, min_input, source);

INSERT INTO @extschema@.model_aliases (provider, alias, model, shipped)
SELECT provider, alias, model, true
FROM (VALUES
	('openai', 'chatgpt-4o-latest', 'gpt-4o'),
	('openai', 'gpt-5-chat-latest', 'gpt-5'),
	('anthropic', 'claude-opus-4-1-latest', 'claude-opus-4-1'),
	('anthropic', 'claude-opus-4-0', 'claude-opus-4'),
	('anthropic', 'claude-sonnet-4-0', 'claude-sonnet-4'),
	('anthropic', 'claude-3-7-sonnet-latest', 'claude-3-7-sonnet'),
	('anthropic', 'claude-3-5-sonnet-latest', 'claude-3-5-sonnet'),
	('anthropic', 'claude-3-5-haiku-latest', 'claude-3-5-haiku'),
	('google', 'gemini-2.5-pro-preview-06-05', 'gemini-2.5-pro'),
	('google', 'gemini-2.5-pro-preview-05-06', 'gemini-2.5-pro'),
	('google', 'gemini-flash-latest', 'gemini-2.5-flash'),
	('google', 'gemini-flash-lite-latest', 'gemini-2.5-flash-lite'),
	('google', 'gemini-2.0-flash-001', 'gemini-2.0-flash'),
	('google', 'gemini-1.5-pro-002', 'gemini-1.5-pro'),
	('google', 'gemini-1.5-flash-002', 'gemini-1.5-flash')
) AS v(provider, alias, model);

-- ---------------------------------------------------------------------------
-- real-world formats: OpenTelemetry spans, the LiteLLM price map
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.record_otel_span(attributes jsonb,
		occurred_at timestamptz DEFAULT NULL, request_id text DEFAULT NULL,
		initiative text DEFAULT NULL, team text DEFAULT NULL, principal text DEFAULT NULL,
		api_key text DEFAULT NULL, app text DEFAULT NULL, environment text DEFAULT NULL,
		run_id text DEFAULT NULL, tags jsonb DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	a jsonb := record_otel_span.attributes;
	system text := lower(coalesce(a ->> 'gen_ai.provider.name', a ->> 'gen_ai.system'));
	provider text;
	model text := coalesce(a ->> 'gen_ai.response.model', a ->> 'gen_ai.request.model');
	tier text := lower(coalesce(a ->> 'gen_ai.openai.response.service_tier',
								a ->> 'gen_ai.openai.request.service_tier',
								a ->> 'gen_ai.request.service_tier'));
BEGIN
	IF system IS NULL THEN
		RAISE EXCEPTION 'span has no gen_ai.provider.name or gen_ai.system attribute'
			USING ERRCODE = 'invalid_text_representation';
	END IF;
	IF model IS NULL THEN
		RAISE EXCEPTION 'span has no gen_ai.response.model or gen_ai.request.model attribute'
			USING ERRCODE = 'invalid_text_representation';
	END IF;
	-- the semantic conventions' provider names, as the price catalog names them
	provider := CASE
		WHEN system IN ('gcp.gemini', 'gcp.vertex_ai', 'gcp.gen_ai', 'vertex_ai', 'gemini', 'google') THEN 'google'
		WHEN system IN ('aws.bedrock', 'bedrock') THEN 'bedrock'
		WHEN system IN ('azure.ai.openai', 'az.ai.openai', 'azure.ai.inference', 'azure') THEN 'azure'
		ELSE system END;
	IF tier IS NULL OR tier IN ('default', 'auto') THEN
		tier := 'standard';
	END IF;
	RETURN record_usage(provider, model, a,
		request_id => coalesce(record_otel_span.request_id, a ->> 'gen_ai.response.id'),
		occurred_at => record_otel_span.occurred_at,
		service_tier => tier,
		initiative => record_otel_span.initiative,
		team => record_otel_span.team,
		principal => coalesce(record_otel_span.principal, a ->> 'enduser.id', a ->> 'user.id'),
		api_key => record_otel_span.api_key,
		app => coalesce(record_otel_span.app, a ->> 'service.name'),
		environment => coalesce(record_otel_span.environment, a ->> 'deployment.environment.name',
								a ->> 'deployment.environment'),
		run_id => coalesce(record_otel_span.run_id, a ->> 'gen_ai.conversation.id'),
		tags => record_otel_span.tags);
END $$;
COMMENT ON FUNCTION @extschema@.record_otel_span(jsonb, timestamptz, text, text, text, text, text, text, text, text, jsonb) IS
	'record a call from OpenTelemetry GenAI span attributes; idempotent on gen_ai.response.id';

CREATE FUNCTION @extschema@.import_prices_litellm(catalog jsonb,
		effective_from timestamptz DEFAULT now())
	RETURNS integer LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	entry record;
	v jsonb;
	provider text;
	model text;
	tiers text[][] := ARRAY[['', 'standard'], ['_batches', 'batch'], ['_flex', 'flex'], ['_priority', 'priority']];
	thresholds bigint[];
	th bigint;
	lc text;
	ts text;
	f_in numeric; f_out numeric; f_cr numeric; f_cw numeric; f_cw1h numeric;
	b_in numeric; b_cr numeric; b_cw numeric; b_cw1h numeric;
	written integer := 0;
	n integer;
BEGIN
	IF jsonb_typeof(catalog) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'the LiteLLM price map must be a JSON object of models'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR entry IN SELECT key, value FROM jsonb_each(catalog) ORDER BY key LOOP
		v := entry.value;
		CONTINUE WHEN entry.key = 'sample_spec' OR jsonb_typeof(v) <> 'object'
			OR jsonb_typeof(v -> 'litellm_provider') <> 'string'
			OR (jsonb_typeof(v -> 'input_cost_per_token') IS DISTINCT FROM 'number'
				AND jsonb_typeof(v -> 'output_cost_per_token') IS DISTINCT FROM 'number');
		provider := v ->> 'litellm_provider';
		model := entry.key;
		-- "gemini/gemini-2.5-pro" is model "gemini-2.5-pro" of provider "gemini"
		-- (the prefixed name stays usable as an alias), unless the map has an
		-- entry of that name and provider of its own
		IF starts_with(model, provider || '/')
		   AND (catalog -> substr(model, length(provider) + 2) ->> 'litellm_provider') IS DISTINCT FROM provider THEN
			model := substr(model, length(provider) + 2);
			INSERT INTO model_aliases (provider, alias, model)
			VALUES (provider, entry.key, model) ON CONFLICT DO NOTHING;
		END IF;
		-- long-context thresholds named in the entry (_above_<N>k_tokens)
		SELECT array_agg(DISTINCT m[1]::bigint * 1000) INTO thresholds
		FROM jsonb_object_keys(v) k, regexp_matches(k, '^(?:input|output)_cost_per_token_above_(\d+)k_tokens') m;
		thresholds := array_prepend(0::bigint, coalesce(thresholds, '{}'));
		FOREACH th IN ARRAY thresholds LOOP
			lc := CASE WHEN th = 0 THEN '' ELSE '_above_' || (th / 1000) || 'k_tokens' END;
			-- the standard tier at this threshold: the base other tiers scale
			b_in := (v ->> ('input_cost_per_token' || lc))::numeric;
			b_cr := (v ->> ('cache_read_input_token_cost' || lc))::numeric;
			b_cw := (v ->> ('cache_creation_input_token_cost' || lc))::numeric;
			b_cw1h := (v ->> ('cache_creation_input_token_cost_above_1hr' || lc))::numeric;
			FOR i IN 1 .. array_length(tiers, 1) LOOP
				ts := tiers[i][1];
				f_in := (v ->> ('input_cost_per_token' || lc || ts))::numeric;
				f_out := (v ->> ('output_cost_per_token' || lc || ts))::numeric;
				CONTINUE WHEN f_in IS NULL AND f_out IS NULL;
				f_cr := (v ->> ('cache_read_input_token_cost' || lc || ts))::numeric;
				f_cw := (v ->> ('cache_creation_input_token_cost' || lc || ts))::numeric;
				f_cw1h := (v ->> ('cache_creation_input_token_cost_above_1hr' || lc || ts))::numeric;
				IF ts <> '' THEN
					-- a tier without its own cache prices gets the standard ones
					-- at the tier's discount on input
					f_cr := coalesce(f_cr, b_cr * f_in / nullif(b_in, 0));
					f_cw := coalesce(f_cw, b_cw * f_in / nullif(b_in, 0));
					f_cw1h := coalesce(f_cw1h, b_cw1h * f_in / nullif(b_in, 0));
				END IF;
				INSERT INTO prices (provider, model, service_tier, effective_from, rate, min_input_tokens, source)
				VALUES (provider, model, tiers[i][2], import_prices_litellm.effective_from,
						format('in=%s out=%s cache_read=%s cache_write=%s cache_write_1h=%s USD/1M',
							   round(coalesce(f_in, 0) * 1000000, 9), round(coalesce(f_out, 0) * 1000000, 9),
							   round(coalesce(f_cr, 0) * 1000000, 9), round(coalesce(f_cw, 0) * 1000000, 9),
							   round(coalesce(f_cw1h, 0) * 1000000, 9))::rate,
						th, 'LiteLLM model price map: ' || entry.key)
				ON CONFLICT DO NOTHING;
				GET DIAGNOSTICS n = ROW_COUNT;
				written := written + n;
			END LOOP;
		END LOOP;
	END LOOP;
	RETURN written;
END $$;
COMMENT ON FUNCTION @extschema@.import_prices_litellm(jsonb, timestamptz) IS
	'load the LiteLLM model price map as a price version effective from the given time; returns the rows written';

-- ---------------------------------------------------------------------------
-- currencies
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.fx_rates (
	currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
	to_currency text NOT NULL CHECK (to_currency ~ '^[A-Z]{3}$' AND to_currency <> currency),
	rate numeric NOT NULL CHECK (rate > 0),
	effective_from timestamptz NOT NULL,
	PRIMARY KEY (currency, to_currency, effective_from)
);
COMMENT ON TABLE @extschema@.fx_rates IS
	'exchange rates: 1 unit of currency is rate units of to_currency from effective_from on';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.fx_rates', '');

CREATE FUNCTION @extschema@.convert(amount @extschema@.cost, to_currency text,
		at timestamptz DEFAULT now())
	RETURNS @extschema@.cost LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	src text := currency(amount);
	dst text := upper(to_currency);
	r numeric;
BEGIN
	IF amount IS NULL OR to_currency IS NULL THEN
		RETURN NULL;
	END IF;
	IF src = dst THEN
		RETURN amount;
	END IF;
	SELECT f.rate INTO r FROM fx_rates f
	WHERE f.currency = src AND f.to_currency = dst AND f.effective_from <= at
	ORDER BY f.effective_from DESC LIMIT 1;
	IF r IS NULL THEN
		SELECT 1 / f.rate INTO r FROM fx_rates f
		WHERE f.currency = dst AND f.to_currency = src AND f.effective_from <= at
		ORDER BY f.effective_from DESC LIMIT 1;
	END IF;
	IF r IS NULL THEN
		RAISE EXCEPTION 'no exchange rate from % to % on %', src, dst, at::date
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('Add one: INSERT INTO tokenledger.fx_rates VALUES (%L, %L, <rate>, <effective_from>).', src, dst);
	END IF;
	RETURN cost(amount(amount) * r, dst);
END $$;
COMMENT ON FUNCTION @extschema@.convert(@extschema@.cost, text, timestamptz) IS
	'a cost in another currency at the exchange rate in effect at the given time (rounded half away from zero to 1e-9)';

-- ---------------------------------------------------------------------------
-- budgets
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.is_time_zone(name text) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM timestamptz '2000-01-01 00:00:00+00' AT TIME ZONE name;
	RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
	RETURN false;
END $$;
COMMENT ON FUNCTION @extschema@.is_time_zone(text) IS 'whether a name is a time zone PostgreSQL knows';

CREATE TABLE @extschema@.budgets (
	id bigserial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	scope text NOT NULL CHECK (scope IN ('global', 'team', 'initiative', 'principal', 'api_key', 'app')),
	scope_value text,
	period text NOT NULL CHECK (period IN ('day', 'week', 'month', 'quarter', 'year', 'total')),
	time_zone text NOT NULL DEFAULT 'UTC' CHECK (@extschema@.is_time_zone(time_zone)),
	amount @extschema@.cost NOT NULL CHECK (@extschema@.amount(amount) > 0),
	warn_at numeric[] NOT NULL DEFAULT '{0.5,0.8,1.0}'
		CHECK (array_position(warn_at, NULL) IS NULL AND 0 < ALL (warn_at)),
	mode text NOT NULL DEFAULT 'alert' CHECK (mode IN ('alert', 'block')),
	active boolean NOT NULL DEFAULT true,
	created_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT budgets_scope_value_check CHECK ((scope = 'global') = (scope_value IS NULL))
);
COMMENT ON TABLE @extschema@.budgets IS
	'spending limits per scope and calendar period (in the budget''s time zone; weeks start on Monday); block budgets refuse reservations beyond the amount';

-- the period a time falls in, in a time zone
CREATE FUNCTION @extschema@.period_start(period text, at timestamptz, time_zone text DEFAULT 'UTC')
	RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN period = 'total' THEN '-infinity'::timestamptz
				ELSE pg_catalog.date_trunc(period, at, time_zone) END;
CREATE FUNCTION @extschema@.period_end(period text, at timestamptz, time_zone text DEFAULT 'UTC')
	RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN period = 'total' THEN 'infinity'::timestamptz
				ELSE pg_catalog.timezone(time_zone,
						pg_catalog.timezone(time_zone, pg_catalog.date_trunc(period, at, time_zone))
						+ CASE period WHEN 'quarter' THEN interval '3 months'
							   ELSE pg_catalog.concat('1 ', period)::interval END) END;
COMMENT ON FUNCTION @extschema@.period_start(text, timestamptz, text) IS 'start of the calendar period (day, week, month, quarter, year, total) containing a time, in a time zone';
COMMENT ON FUNCTION @extschema@.period_end(text, timestamptz, text) IS 'end (exclusive) of the calendar period containing a time, in a time zone';

-- spend per budget and period, split across slots so that concurrent
-- recorders do not queue on one row; the slots add up to the ledger's sums
CREATE TABLE @extschema@.budget_spend (
	budget_id bigint NOT NULL REFERENCES @extschema@.budgets ON DELETE CASCADE,
	period_start timestamptz NOT NULL,
	slot smallint NOT NULL,
	spent @extschema@.cost NOT NULL,
	PRIMARY KEY (budget_id, period_start, slot)
);
COMMENT ON TABLE @extschema@.budget_spend IS
	'spend counted against each budget and period, kept by the ledger''s insert path (the slots of a period add up to its spend)';

CREATE TABLE @extschema@.budget_reservations (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	team text,
	initiative text,
	principal text,
	api_key text,
	app text,
	estimate @extschema@.cost NOT NULL CHECK (@extschema@.amount(estimate) >= 0),
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	settled_at timestamptz,
	settled_by bigint,
	released_at timestamptz
);
COMMENT ON TABLE @extschema@.budget_reservations IS
	'reservations taken before costly calls; live until settled by a usage row, released or expired';

-- what a live reservation holds against each budget it falls under
CREATE TABLE @extschema@.budget_holds (
	reservation_id uuid NOT NULL REFERENCES @extschema@.budget_reservations ON DELETE CASCADE,
	budget_id bigint NOT NULL REFERENCES @extschema@.budgets ON DELETE CASCADE,
	period_start timestamptz NOT NULL,
	amount @extschema@.cost NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (reservation_id, budget_id)
);
CREATE INDEX budget_holds_budget_idx ON @extschema@.budget_holds (budget_id, period_start, expires_at);
COMMENT ON TABLE @extschema@.budget_holds IS 'the part of live reservations held against each budget';

CREATE TABLE @extschema@.budget_alerts (
	id bigserial PRIMARY KEY,
	budget_id bigint NOT NULL REFERENCES @extschema@.budgets ON DELETE CASCADE,
	period_start timestamptz NOT NULL,
	threshold numeric NOT NULL,
	spent @extschema@.cost NOT NULL,
	amount @extschema@.cost NOT NULL,
	raised_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (budget_id, period_start, threshold)
);
COMMENT ON TABLE @extschema@.budget_alerts IS
	'one row per budget, period and warn_at threshold crossed; each is also sent with NOTIFY on channel tokenledger_budget at commit';

-- budgets whose thresholds must be checked when the recording transaction commits
CREATE UNLOGGED TABLE @extschema@.budget_checks (
	budget_id bigint NOT NULL,
	period_start timestamptz NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.budgets', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.budgets_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.budget_spend', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.budget_reservations', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.budget_holds', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.budget_alerts', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.budget_alerts_id_seq', '');

CREATE TRIGGER budgets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.budgets
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.catalog_changed();

-- the spend of a budget's period (committed, and this transaction's own)
CREATE FUNCTION @extschema@.budget_spent(budget_id bigint, period_start timestamptz)
	RETURNS @extschema@.cost LANGUAGE sql STABLE PARALLEL SAFE
	BEGIN ATOMIC
		SELECT coalesce(@extschema@.sum(s.spent),
						(SELECT b.amount OPERATOR(@extschema@.*) 0 FROM @extschema@.budgets b WHERE b.id = budget_spent.budget_id))
		FROM @extschema@.budget_spend s
		WHERE s.budget_id = budget_spent.budget_id AND s.period_start = budget_spent.period_start;
	END;
CREATE FUNCTION @extschema@.budget_reserved(budget_id bigint, period_start timestamptz)
	RETURNS @extschema@.cost LANGUAGE sql STABLE PARALLEL SAFE
	BEGIN ATOMIC
		SELECT coalesce(@extschema@.sum(h.amount),
						(SELECT b.amount OPERATOR(@extschema@.*) 0 FROM @extschema@.budgets b WHERE b.id = budget_reserved.budget_id))
		FROM @extschema@.budget_holds h
		WHERE h.budget_id = budget_reserved.budget_id AND h.period_start = budget_reserved.period_start
		  AND h.expires_at > pg_catalog.now();
	END;
COMMENT ON FUNCTION @extschema@.budget_spent(bigint, timestamptz) IS 'spend counted against a budget in the period starting at period_start';
COMMENT ON FUNCTION @extschema@.budget_reserved(bigint, timestamptz) IS 'live reservations held against a budget in the period starting at period_start';

-- does a budget apply to a call with these attributes?
CREATE FUNCTION @extschema@.budget_applies(b @extschema@.budgets, team text, initiative text,
		principal text, api_key text, app text)
	RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN b.active AND CASE b.scope
		WHEN 'global' THEN true
		WHEN 'team' THEN b.scope_value = team
		WHEN 'initiative' THEN b.scope_value = initiative
		WHEN 'principal' THEN b.scope_value = principal
		WHEN 'api_key' THEN b.scope_value = api_key
		WHEN 'app' THEN b.scope_value = app
		ELSE false END;

CREATE FUNCTION @extschema@.budget_check(team text DEFAULT NULL, initiative text DEFAULT NULL,
		principal text DEFAULT NULL, api_key text DEFAULT NULL, app text DEFAULT NULL,
		estimate @extschema@.cost DEFAULT NULL)
	RETURNS TABLE (budget_id bigint, name text, allowed boolean, status text,
				   spent @extschema@.cost, reserved @extschema@.cost, amount @extschema@.cost,
				   remaining @extschema@.cost, period_start timestamptz, period_end timestamptz)
	LANGUAGE sql STABLE
	SET search_path = @extschema@, pg_temp
	BEGIN ATOMIC
		SELECT c.id, c.name,
			   c.mode = 'alert' OR c.spent + c.reserved + coalesce(budget_check.estimate, c.amount * 0) <= c.amount,
			   CASE WHEN c.spent >= c.amount THEN 'exceeded'
					WHEN c.spent >= c.amount * (SELECT min(t) FROM unnest(c.warn_at) t) THEN 'warning'
					ELSE 'ok' END,
			   c.spent, c.reserved, c.amount, c.amount - c.spent - c.reserved, c.ps, c.pe
		FROM (SELECT b.id, b.name, b.mode, b.amount, b.warn_at,
					 budget_spent(b.id, period_start(b.period, now(), b.time_zone)) AS spent,
					 budget_reserved(b.id, period_start(b.period, now(), b.time_zone)) AS reserved,
					 period_start(b.period, now(), b.time_zone) AS ps,
					 period_end(b.period, now(), b.time_zone) AS pe
			  FROM budgets b
			  WHERE budget_applies(b, budget_check.team, budget_check.initiative, budget_check.principal,
								   budget_check.api_key, budget_check.app)) c
		ORDER BY c.id;
	END;
COMMENT ON FUNCTION @extschema@.budget_check(text, text, text, text, text, @extschema@.cost) IS
	'every active budget that applies to a call with these attributes, and whether a call of the estimated cost is allowed';

-- advisory lock key space of the extension: (0x746c, budget id)
CREATE FUNCTION @extschema@.lock_budget(budget_id bigint) RETURNS void
	LANGUAGE sql
	RETURN pg_catalog.pg_advisory_xact_lock(29804, (budget_id % 2147483647)::integer);

CREATE FUNCTION @extschema@.budget_reserve(team text DEFAULT NULL, initiative text DEFAULT NULL,
		principal text DEFAULT NULL, api_key text DEFAULT NULL, app text DEFAULT NULL,
		estimate @extschema@.cost DEFAULT NULL, ttl interval DEFAULT '10 minutes')
	RETURNS uuid LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
#variable_conflict use_column
DECLARE
	b budgets;
	ps timestamptz;
	spent cost;
	reserved cost;
	rid uuid;
	expires timestamptz := now() + budget_reserve.ttl;
BEGIN
	IF budget_reserve.estimate IS NULL THEN
		RAISE EXCEPTION 'a reservation needs an estimate' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Estimate the call first, e.g. with tokenledger.cost_of(tokens, provider, model).';
	END IF;
	IF amount(budget_reserve.estimate) < 0 THEN
		RAISE EXCEPTION 'a reservation''s estimate cannot be negative: %', budget_reserve.estimate
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF budget_reserve.ttl IS NULL OR budget_reserve.ttl <= interval '0' THEN
		RAISE EXCEPTION 'a reservation needs a positive ttl' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO budget_reservations (team, initiative, principal, api_key, app, estimate, expires_at)
	VALUES (budget_reserve.team, budget_reserve.initiative, budget_reserve.principal,
			budget_reserve.api_key, budget_reserve.app, budget_reserve.estimate, expires)
	RETURNING id INTO rid;
	-- every applicable budget, in id order (block budgets are locked in that
	-- order, so concurrent reservers cannot deadlock)
	FOR b IN SELECT * FROM budgets x
			 WHERE budget_applies(x, budget_reserve.team, budget_reserve.initiative,
								  budget_reserve.principal, budget_reserve.api_key, budget_reserve.app)
			 ORDER BY x.id LOOP
		CONTINUE WHEN currency(b.amount) <> currency(budget_reserve.estimate);
		ps := period_start(b.period, now(), b.time_zone);
		IF b.mode = 'block' THEN
			PERFORM lock_budget(b.id);
			-- after the lock: this statement's snapshot sees every reservation
			-- and every spend committed before it
			DELETE FROM budget_holds h WHERE h.budget_id = b.id AND h.expires_at <= now();
			spent := budget_spent(b.id, ps);
			reserved := budget_reserved(b.id, ps);
			IF spent + reserved + budget_reserve.estimate > b.amount THEN
				RAISE EXCEPTION 'budget "%" would be exceeded', b.name
					USING ERRCODE = 'TL001',
						  DETAIL = format('Spent %s and reserved %s of %s this %s; the estimate is %s.',
										  spent, reserved, b.amount, b.period, budget_reserve.estimate),
						  HINT = 'Wait for the next period, raise the budget, or release reservations no longer needed.';
			END IF;
		END IF;
		INSERT INTO budget_holds (reservation_id, budget_id, period_start, amount, expires_at)
		VALUES (rid, b.id, ps, budget_reserve.estimate, expires);
	END LOOP;
	RETURN rid;
END $$;
COMMENT ON FUNCTION @extschema@.budget_reserve(text, text, text, text, text, @extschema@.cost, interval) IS
	'reserve an estimated cost against every applicable budget before a call; refused with SQLSTATE TL001 when a block budget would be exceeded';

CREATE FUNCTION @extschema@.budget_release(reservation uuid) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
BEGIN
	UPDATE budget_reservations SET released_at = now()
	WHERE id = reservation AND released_at IS NULL AND settled_at IS NULL;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	DELETE FROM budget_holds WHERE reservation_id = reservation;
	RETURN true;
END $$;
COMMENT ON FUNCTION @extschema@.budget_release(uuid) IS
	'free a reservation that will not be used; false when it was already settled or released';

-- settle reservations named by recorded usage rows
CREATE FUNCTION @extschema@.budget_settle(reservations uuid[], usage_ids bigint[]) RETURNS void
	LANGUAGE sql
	BEGIN ATOMIC
		UPDATE @extschema@.budget_reservations r SET settled_at = pg_catalog.now(), settled_by = s.usage_id
		FROM ROWS FROM (pg_catalog.unnest(budget_settle.reservations), pg_catalog.unnest(budget_settle.usage_ids)) AS s(reservation_id, usage_id)
		WHERE r.id = s.reservation_id AND r.settled_at IS NULL AND r.released_at IS NULL;
		DELETE FROM @extschema@.budget_holds h WHERE h.reservation_id = ANY (budget_settle.reservations);
	END;

-- at commit: raise the alerts of every threshold the period's spend has
-- reached, once, under the budget's lock so that concurrent recorders that
-- cross a threshold together are seen
CREATE FUNCTION @extschema@.budget_check_alerts() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
DECLARE
	b budgets;
	spent cost;
	t numeric;
	alert_id bigint;
BEGIN
	DELETE FROM budget_checks WHERE budget_id = NEW.budget_id AND period_start = NEW.period_start;
	SELECT * INTO b FROM budgets WHERE id = NEW.budget_id;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	PERFORM lock_budget(b.id);
	spent := budget_spent(b.id, NEW.period_start);
	FOREACH t IN ARRAY (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(b.warn_at) x) LOOP
		EXIT WHEN spent < b.amount * t;
		INSERT INTO budget_alerts (budget_id, period_start, threshold, spent, amount)
		VALUES (b.id, NEW.period_start, t, spent, b.amount)
		ON CONFLICT (budget_id, period_start, threshold) DO NOTHING
		RETURNING id INTO alert_id;
		IF alert_id IS NOT NULL THEN
			PERFORM pg_notify('tokenledger_budget', json_build_object(
				'alert_id', alert_id, 'budget_id', b.id, 'budget', b.name, 'scope', b.scope,
				'scope_value', b.scope_value, 'period', b.period, 'period_start', NEW.period_start,
				'threshold', t, 'spent', amount(spent), 'amount', amount(b.amount),
				'currency', currency(b.amount), 'mode', b.mode)::text);
		END IF;
		alert_id := NULL;
	END LOOP;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER budget_checks_at_commit AFTER INSERT ON @extschema@.budget_checks
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION @extschema@.budget_check_alerts();

CREATE VIEW @extschema@.budget_status AS
SELECT b.id AS budget_id, b.name, b.scope, b.scope_value, b.period, b.time_zone, b.mode, b.active,
	   c.ps AS period_start, c.pe AS period_end,
	   @extschema@.amount(c.spent) AS spent,
	   @extschema@.amount(c.reserved) AS reserved,
	   @extschema@.amount(b.amount) AS amount,
	   @extschema@.amount(b.amount) - @extschema@.amount(c.spent) - @extschema@.amount(c.reserved) AS remaining,
	   @extschema@.currency(b.amount) AS currency,
	   round(@extschema@.amount(c.spent) / @extschema@.amount(b.amount), 4) AS used_share,
	   CASE WHEN NOT b.active THEN 'inactive'
			WHEN c.spent OPERATOR(@extschema@.>=) b.amount THEN 'exceeded'
			WHEN @extschema@.amount(c.spent) >= @extschema@.amount(b.amount) * (SELECT min(t) FROM unnest(b.warn_at) t) THEN 'warning'
			ELSE 'ok' END AS status
FROM @extschema@.budgets b
CROSS JOIN LATERAL (
	SELECT @extschema@.period_start(b.period, now(), b.time_zone) AS ps,
		   @extschema@.period_end(b.period, now(), b.time_zone) AS pe,
		   @extschema@.budget_spent(b.id, @extschema@.period_start(b.period, now(), b.time_zone)) AS spent,
		   @extschema@.budget_reserved(b.id, @extschema@.period_start(b.period, now(), b.time_zone)) AS reserved
) c;
COMMENT ON VIEW @extschema@.budget_status IS 'every budget''s current period: spent, reserved, amount, remaining and status';
COMMENT ON COLUMN @extschema@.budget_status.spent IS 'spend counted in the current period, in the budget''s currency';
COMMENT ON COLUMN @extschema@.budget_status.reserved IS 'live reservations held in the current period';
COMMENT ON COLUMN @extschema@.budget_status.amount IS 'the budget''s amount';
COMMENT ON COLUMN @extschema@.budget_status.remaining IS 'amount - spent - reserved';
COMMENT ON COLUMN @extschema@.budget_status.currency IS 'ISO 4217 code of the money columns';
COMMENT ON COLUMN @extschema@.budget_status.used_share IS 'spent / amount';
COMMENT ON COLUMN @extschema@.budget_status.status IS 'ok, warning (past the lowest warn_at), exceeded, or inactive';

-- accounting of the ledger's spend against budgets (C): rows accumulate per
-- budget and period, and each statement adds them to the counters once
CREATE FUNCTION @extschema@.budget_account() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE FUNCTION @extschema@.budget_account_flush() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE TRIGGER usage_budget_account AFTER INSERT OR UPDATE ON @extschema@.usage
	FOR EACH ROW EXECUTE FUNCTION @extschema@.budget_account();
CREATE TRIGGER usage_budget_flush AFTER INSERT OR UPDATE ON @extschema@.usage
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.budget_account_flush();

-- a new or changed budget counts the spend already in the ledger
CREATE FUNCTION @extschema@.budget_backfill() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = @extschema@, pg_temp AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND (OLD.scope, OLD.scope_value, OLD.period, OLD.time_zone, currency(OLD.amount), OLD.active)
		IS NOT DISTINCT FROM (NEW.scope, NEW.scope_value, NEW.period, NEW.time_zone, currency(NEW.amount), NEW.active) THEN
		RETURN NULL;
	END IF;
	DELETE FROM budget_spend WHERE budget_id = NEW.id;
	INSERT INTO budget_spend (budget_id, period_start, slot, spent)
	SELECT NEW.id, period_start(NEW.period, u.occurred_at, NEW.time_zone), 0, sum(u.cost)
	FROM usage u
	WHERE u.cost IS NOT NULL AND currency(u.cost) = currency(NEW.amount)
	  AND budget_applies(NEW, u.team, u.initiative, u.principal, u.api_key, u.app)
	GROUP BY 2;
	RETURN NULL;
END $$;
CREATE TRIGGER budgets_backfill AFTER INSERT OR UPDATE ON @extschema@.budgets
	FOR EACH ROW EXECUTE FUNCTION @extschema@.budget_backfill();
