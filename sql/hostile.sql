-- hostile input: malformed literals of cost, tokens and rate, usage objects
-- for jsonb::tokens, binary input of truncated and random bytes, and bytes
-- that are not characters.  Every refusal is an error with the SQLSTATE the
-- README lists (22P02, 22003, 22P03), or the encoding layer's before the
-- type sees the value; never XX000, never a crash.
SET search_path = public, tokenledger;
SELECT current_database() AS regress_db \gset

-- a value fit to print: control and non-ASCII characters as \uXXXX, long
-- values shortened
CREATE FUNCTION pg_temp.vis(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN length(v) > 200
				THEN left(v, 60) || '...' || right(v, 60) || format(' (%s characters)', length(v))
				ELSE v END
	FROM (SELECT coalesce(string_agg(CASE WHEN ascii(c) BETWEEN 32 AND 126 THEN c
										  ELSE format('\u%s', lpad(to_hex(ascii(c)), 4, '0')) END,
									 '' ORDER BY i), '')
		  FROM (SELECT substr(s, i, 1), i FROM generate_series(1, length(s)) i) x(c, i)) y(v)
$$;
-- the value of lit as type typ, printed; or the error's SQLSTATE, message
-- and detail
CREATE FUNCTION pg_temp.try(typ text, lit text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
	detail text;
BEGIN
	EXECUTE format('SELECT $1::%s::text', typ) INTO r USING lit;
	RETURN 'ok: ' || r;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || pg_temp.vis(SQLERRM) || coalesce(' | ' || nullif(pg_temp.vis(detail), ''), '');
END $$;
-- the same for a value given as bytes in the database's encoding
CREATE FUNCTION pg_temp.try_bytes(typ text, bytes bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('SELECT convert_from($1, current_setting(''server_encoding''))::%s::text', typ) INTO r USING bytes;
	RETURN 'ok: ' || r;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || pg_temp.vis(SQLERRM);
END $$;
CREATE TEMP TABLE hostile (typ text, n serial, lit text, result text);

-- cost: refused
INSERT INTO hostile (typ, lit) SELECT 'cost', unnest(ARRAY[
	-- empty and blank
	'', ' ', E'\t\n\r\f\u000b',
	-- exponents, NaN, infinities
	'1e400', '1e400 USD', '-1E-5 USD', 'NaN', 'nan USD', 'Infinity', '-Infinity USD', 'inf USD',
	-- 2^63 nanos and past: |amount| < 9223372036.854775808
	'9223372036.854775808 USD', '-9223372036.854775808 USD', '9223372036.8547758075 USD',
	'-9223372036.8547758075 USD', '18446744073.709551616 USD', '10000000000', repeat('9', 400) || ' USD',
	-- currency codes: unknown, too short or long, not letters
	'12.50 XYZ', '12.50 US', '12.50 U', '12.50 USDX', '12.50 usdx', 'abc 1', '5 USD1', 'usd',
	-- repeated or contradictory fields
	'USD 5 USD', 'usd 5 USD', 'USD $5 USD', 'USD 5 EUR', '$5 EUR', '$$5', '5 USD USD', '--5',
	'-$-5', '+-5', '1.2.3 USD', '5..0 USD',
	-- control characters
	E'5\u0001 USD', E'\u0007 5 USD', E'5 USD\u007f', E'5\u001bUSD', E'5 U\bSD',
	-- characters that only look like digits, blanks, codes or symbols
	U&'\FF15 USD', U&'5\00A0USD', U&'5\2003USD', U&'\0665 USD', U&'5 \FF35\FF33\FF24',
	U&'\00DCSD 5', U&'5 \20AC', U&'\00A55', U&'\20AC\20AC5',
	-- other notations
	'0x1F USD', '1_000 USD', '1,000.00 USD', '(5) USD', '5-', '+', '-', '.', '$.', '5 USD/1M'
]);
-- cost: accepted edges (-0 is zero; more than 9 decimals round half away
-- from zero; 2^63 - 1 nanos is the largest magnitude)
INSERT INTO hostile (typ, lit) SELECT 'cost', unnest(ARRAY[
	'-0', '-0 USD', '-0.000000000 EUR', '-0.0000000004 USD', '1.0000000005 USD',
	'-1.0000000005 USD', '1.' || repeat('9', 300) || ' USD', '9223372036.854775807 USD',
	'-9223372036.854775807 USD', '9223372036.8547758074 USD', '0000000000000000000001 USD',
	'usd 5', '$1 USD', E'\t 5 \n USD \r'
]);

-- tokens: refused
INSERT INTO hostile (typ, lit) SELECT 'tokens', unnest(ARRAY[
	-- empty and blank
	'', ' ', E'\t\n\r', ',', ', ,',
	-- names and "=" out of place
	'in', 'in=', '=5', 'in==5', 'in=5=5', 'in 5', 'in=5 out',
	-- exponents, NaN, infinities, fractions
	'in=1e400', 'in=1E3', 'in=NaN', 'in=Infinity', 'in=-Infinity', 'in=1.5', 'in=1.0', 'in=5.', 'in=.5',
	-- negative counts, 2^63 and past
	'in=-1', 'out=-9223372036854775808', 'in=9223372036854775808', 'out=18446744073709551616',
	'in=' || repeat('9', 400), 'in=--1', 'in=+-1', 'in=-', 'in=+',
	-- repeated and unknown fields
	'in=5 in=6', 'in=5 input=6', 'out=1 OUTPUT=1', 'cache_read=1 cache_read=1', 'in=5 foo=1',
	'inp=5', 'cached=5', 'in=5 USD',
	-- reasoning is part of output
	'reasoning=1', 'out=1 reasoning=2',
	-- separators that are not
	'in=5;out=6', 'in=5|out=6', 'in=5/out=6',
	-- control characters
	E'in=5\u0001', E'\u0001in=5', E'in=5\u007f', E'in=5\fout=6', E'in=5\vout=6',
	-- other notations and look-alike characters
	'in=0x10', 'in=1_000', U&'in=\FF15', U&'in=5 out=\0666', U&'\00EDn=5', U&'in=5\00A0out=6'
]);
-- tokens: accepted edges (-0 is zero)
INSERT INTO hostile (typ, lit) SELECT 'tokens', unnest(ARRAY[
	'in=-0', 'out=-0 reasoning=-0', 'in=+5', 'in = 5', 'IN=5 OUTPUT=3',
	'in=9223372036854775807 out=9223372036854775807 reasoning=9223372036854775807',
	'in=000000000000000000000000000001', E'\tin=1,,out=2\n'
]);

-- rate: refused
INSERT INTO hostile (typ, lit) SELECT 'rate', unnest(ARRAY[
	-- empty and blank, no price
	'', ' ', E'\t\n\r', 'USD', 'USD/1M', '/1M',
	-- names and "=" out of place
	'in', 'in=', 'in=.', '=3', 'in==3', 'in=3=3',
	-- exponents, NaN, infinities
	'in=1e400', 'in=1E3 USD/1M', 'in=NaN', 'in=Infinity', 'in=-Infinity',
	-- negative prices, 2^63 nanos and past
	'in=-1', 'in=-0.000000001', 'in=-0.0000000005', 'in=9223372036.854775808', 'out=9223372036.8547758075',
	'in=18446744073.709551616', 'in=' || repeat('9', 400), 'in=--1', 'in=+-1',
	-- repeated and unknown fields
	'in=3 in=3', 'in=3 input=4', 'in=3 USD EUR', 'in=3 USD USD', 'in=3 USD in=4', 'reasoning=1',
	'in=3 foo=1',
	-- currency codes and units
	'in=3 XYZ', 'in=3 usdx/1M', 'in=3 US', 'in=3 USD/1K', 'in=3 USD/1M/1M', 'in=3 USD /1M',
	'in=3 USD/', 'in=$3', 'in=3$', 'in=3USD', U&'in=3 \20AC', U&'in=3 EUR\20AC',
	-- separators that are not, control characters
	'in=3;out=4', E'in=3\u0001', E'in=3\u007f USD', E'in=3\fout=4',
	-- other notations and look-alike characters
	'in=0x10', 'in=1_000', U&'in=\FF13', 'in=3 out=15 USD/1M extra'
]);
-- rate: accepted edges (-0 and what rounds to zero are zero)
INSERT INTO hostile (typ, lit) SELECT 'rate', unnest(ARRAY[
	'in=-0', 'in=-0.0000000004 out=+1', 'in = 3', 'in= 3 out =4', 'in=0.0000000005',
	'in=9223372036.854775807 out=9223372036.854775807 cache_write_1h=9223372036.8547758074 USD/1M',
	'in=3 usd/1m', 'in=3,USD'
]);

UPDATE hostile SET result = pg_temp.try(typ, lit);
SELECT typ, pg_temp.vis(lit) AS literal, result FROM hostile ORDER BY n;

-- what each type refused, by SQLSTATE: nothing but 22P02 and 22003
SELECT typ, count(*) AS literals, count(*) FILTER (WHERE result LIKE 'ok:%') AS accepted,
	   count(*) FILTER (WHERE result LIKE '22P02:%') AS "22P02",
	   count(*) FILTER (WHERE result LIKE '22003:%') AS "22003",
	   count(*) FILTER (WHERE result NOT LIKE 'ok:%' AND left(result, 5) NOT IN ('22P02', '22003')) AS other
FROM hostile GROUP BY typ ORDER BY typ;

-- pg_input_is_valid-style soft errors do not exist on 15, but a failing cast
-- inside an expression leaves the session usable
SELECT '5 USD'::cost, 'in=1 out=2'::tokens, 'in=1 out=2 USD/1M'::rate;

-- jsonb::tokens: shapes refused, and what is accepted at the edges
SELECT pg_temp.vis(j) AS usage, pg_temp.try('jsonb::tokens', j)
FROM unnest(ARRAY[
	'[]', '"usage"', '17', 'null', '{}', '{"usage": 5}', '{"usage": {}}',
	'{"input": 1e400}', '{"input": -1}', '{"input": 1.5}', '{"input": "5"}', '{"input": true}',
	'{"input": [5]}', '{"input": {"n": 5}}', '{"input": 9223372036854775808}',
	'{"input": 1, "bogus": 2}', '{"input": 1, "prompt_tokens": 2}',
	'{"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 6}}',
	'{"prompt_tokens": 9223372036854775807, "prompt_tokens_details": {"cached_tokens": 9223372036854775807, "cache_write_tokens": 1}}',
	'{"promptTokenCount": 9223372036854775807, "toolUsePromptTokenCount": 1}',
	'{"candidatesTokenCount": 9223372036854775807, "thoughtsTokenCount": 1}',
	'{"input_tokens": 1, "output_tokens": 2, "output_tokens_details": {"thinking_tokens": 3}}',
	'{"gen_ai.usage.input_tokens": 1, "gen_ai.usage.cache_read.input_tokens": 2}',
	'{"gen_ai.system": "openai"}', '{"object": "organization.usage.images.result", "images": 3}',
	'{"input": -0, "output": 5.000}', '{"input": 1e2, "output": 0.0e5}',
	'{"input": 9223372036854775807, "output": 9223372036854775807, "reasoning": 9223372036854775807}',
	'{"usage": null, "input": 3}', '{"response": {"usage": {"input_tokens": 4, "output_tokens": 5}}}'
]) j;

-- bytes that are not UTF-8 never reach the types: the encoding layer
-- refuses them (22021) in a UTF-8 database
SELECT typ, bytes, pg_temp.try_bytes(typ, bytes) FROM (VALUES
	('cost', '\xff35'::bytea), ('cost', '\x3520555344c3'), ('cost', '\xc2a335'), ('cost', '\xe282ac35'),
	('tokens', '\x696e3dc0af35'), ('tokens', '\x696e3d35eda080'), ('tokens', '\x696e3d350020'),
	('rate', '\x696e3d3320e282'), ('rate', '\x696e3d33f4908080')) v(typ, bytes);

-- binary input, through binary COPY: a stream holding one field, built
-- from its bytes and fed through printf
CREATE FUNCTION pg_temp.copy_binary(tbl text, field bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	stream bytea := '\x5047434f50590aff0d0a00'::bytea		-- signature
		|| '\x0000000000000000'::bytea						-- flags, extension
		|| '\x0001'::bytea || int4send(length(field)) || field	-- one tuple
		|| '\xffff'::bytea;									-- trailer
	oct text := '';
	b int;
BEGIN
	FOR i IN 0 .. length(stream) - 1 LOOP
		b := get_byte(stream, i);
		oct := oct || '\' || (b >> 6) || ((b >> 3) & 7) || (b & 7);
	END LOOP;
	EXECUTE format('COPY %I FROM PROGRAM %L WITH (FORMAT binary)', tbl, 'printf ''' || oct || '''');
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || pg_temp.vis(SQLERRM);
END $$;
CREATE TEMP TABLE recv_cost (c cost);
CREATE TEMP TABLE recv_tokens (t tokens);
CREATE TEMP TABLE recv_rate (r rate);
CREATE TEMP TABLE recv_costs (c cost[]);

SELECT what, pg_temp.copy_binary('recv_cost', field) FROM (VALUES
	('no bytes', ''::bytea),
	('one byte', '\x00'::bytea),
	('amount only', int8send(1)),
	('code cut short', int8send(1) || '\x5553'::bytea),
	('a byte too many', int8send(1) || 'USD '::bytea),
	('twice the bytes', int8send(1) || 'USD'::bytea || int8send(1) || 'USD'::bytea),
	('all zero', '\x0000000000000000000000'::bytea),
	('all 0xff', '\xffffffffffffffffffffff'::bytea),
	('NUL code', int8send(1) || '\x000000'::bytea),
	('code with NUL', int8send(1) || '\x555300'::bytea),
	('non-ASCII code', int8send(1) || '\xfffefd'::bytea),
	('UTF-8 euro sign as code', int8send(1) || '\xe282ac'::bytea),
	('lower-case code', int8send(1) || 'usd'::bytea),
	('unknown code', int8send(1) || 'XYZ'::bytea),
	('amount -2^63', int8send(-9223372036854775807 - 1) || 'USD'::bytea),
	('amount 2^63 - 1', int8send(9223372036854775807) || 'USD'::bytea),
	('amount -(2^63 - 1)', int8send(-9223372036854775807) || 'EUR'::bytea)) v(what, field);
SELECT c FROM recv_cost ORDER BY c;

SELECT what, pg_temp.copy_binary('recv_tokens', field) FROM (VALUES
	('no bytes', ''::bytea),
	('five counts', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5)),
	('six counts and a byte', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || int8send(0) || '\x00'::bytea),
	('47 bytes', substr(int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || int8send(0), 1, 47)),
	('all 0xff (-1 each)', decode(repeat('ff', 48), 'hex')),
	('input -2^63', int8send(-9223372036854775807 - 1) || int8send(0) || int8send(0) || int8send(0) || int8send(0) || int8send(0)),
	('reasoning -1', int8send(0) || int8send(0) || int8send(0) || int8send(0) || int8send(0) || int8send(-1)),
	('reasoning > output', int8send(0) || int8send(1) || int8send(0) || int8send(0) || int8send(0) || int8send(2)),
	('all 2^63 - 1', int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807))) v(what, field);
SELECT t FROM recv_tokens;

SELECT what, pg_temp.copy_binary('recv_rate', field) FROM (VALUES
	('no bytes', ''::bytea),
	('prices only', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5)),
	('code cut short', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || 'US'::bytea),
	('a byte too many', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || 'USDX'::bytea),
	('all 0xff', decode(repeat('ff', 43), 'hex')),
	('price -2^63', int8send(-9223372036854775807 - 1) || int8send(0) || int8send(0) || int8send(0) || int8send(0) || 'USD'::bytea),
	('non-ASCII code', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || '\x80c3a9'::bytea),
	('lower-case code', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || 'eur'::bytea),
	('all 2^63 - 1', int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(9223372036854775807) || 'JPY'::bytea)) v(what, field);
SELECT r FROM recv_rate;

-- an array element goes through the same receive function
SELECT what, pg_temp.copy_binary('recv_costs', field) FROM (VALUES
	('one valid element', int4send(1) || int4send(0) || int4send('cost'::regtype::oid::int) || int4send(1) || int4send(1)
		|| int4send(11) || int8send(5) || 'GBP'::bytea),
	('element cut short', int4send(1) || int4send(0) || int4send('cost'::regtype::oid::int) || int4send(1) || int4send(1)
		|| int4send(5) || '\x0000000005'::bytea)) v(what, field);
SELECT c FROM recv_costs;

-- random bytes of every length from 0 to 99 (md5 of a counter, so the same
-- each run): counted by outcome
SELECT typ, count(*) AS streams, count(*) FILTER (WHERE r = 'ok') AS accepted,
	   count(*) FILTER (WHERE r LIKE '22P03:%') AS "22P03",
	   count(*) FILTER (WHERE r <> 'ok' AND r NOT LIKE '22P03:%') AS other
FROM (SELECT typ, pg_temp.copy_binary('recv_' || typ,
			 substr(decode(md5(typ || i) || md5(typ || i || 'a') || md5(typ || i || 'b')
						   || md5(typ || i || 'c') || md5(typ || i || 'd') || md5(typ || i || 'e')
						   || md5(typ || i || 'f'), 'hex'), 1, i)) AS r
	  FROM unnest(ARRAY['cost', 'tokens', 'rate']) typ, generate_series(0, 99) i) s
GROUP BY typ ORDER BY typ;
-- random bytes of exactly the right length: only the checks of the values
-- can refuse them
SELECT typ, count(*) AS streams, count(*) FILTER (WHERE r = 'ok') AS accepted,
	   count(*) FILTER (WHERE r LIKE '22P03:%') AS "22P03",
	   count(*) FILTER (WHERE r <> 'ok' AND r NOT LIKE '22P03:%') AS other
FROM (SELECT typ, pg_temp.copy_binary('recv_' || typ,
			 substr(decode(md5(typ || i) || md5(typ || i || 'a') || md5(typ || i || 'b'), 'hex'), 1, len)) AS r
	  FROM (VALUES ('cost', 11), ('tokens', 48), ('rate', 43)) t(typ, len), generate_series(1, 100) i) s
GROUP BY typ ORDER BY typ;
-- cost values whose code bytes are a real code: the amount decides
SELECT count(*) AS streams, count(*) FILTER (WHERE r = 'ok') AS accepted
FROM (SELECT pg_temp.copy_binary('recv_cost', substr(decode(md5('n' || i), 'hex'), 1, 8) || 'CHF'::bytea) AS r
	  FROM generate_series(1, 50) i) s;

-- a database whose encoding takes every byte: non-UTF-8 bytes reach the
-- parsers, which refuse them (and the UTF-8 bytes of the euro sign are not
-- a euro sign there)
DROP DATABASE IF EXISTS tokenledger_hostile_latin1;
CREATE DATABASE tokenledger_hostile_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c tokenledger_hostile_latin1
SET client_encoding = 'UTF8';
SET client_min_messages = warning;
CREATE EXTENSION tokenledger;
RESET client_min_messages;
SET search_path = public, tokenledger;
CREATE FUNCTION pg_temp.vis(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(string_agg(CASE WHEN ascii(c) BETWEEN 32 AND 126 THEN c
									ELSE format('\u%s', lpad(to_hex(ascii(c)), 4, '0')) END,
							   '' ORDER BY i), '')
	FROM (SELECT substr(s, i, 1), i FROM generate_series(1, length(s)) i) x(c, i)
$$;
CREATE FUNCTION pg_temp.try(typ text, lit text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
	detail text;
BEGIN
	EXECUTE format('SELECT $1::%s::text', typ) INTO r USING lit;
	RETURN 'ok: ' || r;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || pg_temp.vis(SQLERRM) || coalesce(' | ' || nullif(pg_temp.vis(detail), ''), '');
END $$;
-- the same for a value given as bytes in the database's encoding
CREATE FUNCTION pg_temp.try_bytes(typ text, bytes bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('SELECT convert_from($1, current_setting(''server_encoding''))::%s::text', typ) INTO r USING bytes;
	RETURN 'ok: ' || r;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || pg_temp.vis(SQLERRM);
END $$;
SELECT typ, bytes, pg_temp.try_bytes(typ, bytes) FROM (VALUES
	('cost', '\xff35'::bytea), ('cost', '\x3520555344c3'), ('cost', '\xc2a335'), ('cost', '\xe282ac35'),
	('cost', '\xa335'), ('cost', '\x2435'),
	('tokens', '\x696e3dc0af35'), ('tokens', '\x696e3d35eda080'), ('tokens', '\x696e3d35a0'),
	('rate', '\x696e3d3320e282'), ('rate', '\x696e3d33f4908080'), ('rate', '\x696e3d33204555528e')) v(typ, bytes);
-- every byte from 0x80 to 0xff before, inside and after a valid literal
SELECT typ, count(*) AS literals, count(*) FILTER (WHERE r LIKE 'ok:%') AS accepted,
	   count(*) FILTER (WHERE r LIKE '22P02:%') AS "22P02",
	   count(*) FILTER (WHERE r NOT LIKE 'ok:%' AND r NOT LIKE '22P02:%') AS other
FROM (SELECT typ, pg_temp.try_bytes(typ, decode(replace(tmpl, '??', lpad(to_hex(b), 2, '0')), 'hex')) AS r
	  FROM (VALUES ('cost', '??3520555344'), ('cost', '35??20555344'), ('cost', '3520555344??'),
				   ('tokens', '??696e3d35'), ('tokens', '696e3d??35'), ('tokens', '696e3d35??'),
				   ('rate', '??696e3d33'), ('rate', '696e3d33??'), ('rate', '696e3d3320555344??')) t(typ, tmpl),
		   generate_series(128, 255) b) s
GROUP BY typ ORDER BY typ;
\c :regress_db
DROP DATABASE tokenledger_hostile_latin1;
