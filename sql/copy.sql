-- binary COPY round trip of the three types, and binary input validation
SET search_path = public, tokenledger;
CREATE TABLE copy_src (id int, c cost, t tokens, r rate);
INSERT INTO copy_src VALUES
	(1, '12.50 USD', 'in=1200 out=350 cache_read=800', 'in=3 out=15 cache_read=0.30 cache_write=3.75 cache_write_1h=6 USD/1M'),
	(2, '-9223372036.854775807 EUR', 'in=9223372036854775807 out=5 reasoning=5', 'in=0 out=0 JPY/1M'),
	(3, '0.000000001 GBP', 'in=0 out=0', 'in=0.000000001 out=9223372036.854775807 GBP/1M'),
	(4, NULL, NULL, NULL);
\copy copy_src TO 'results/copy_types.bin' WITH (FORMAT binary)
CREATE TABLE copy_dst (LIKE copy_src);
\copy copy_dst FROM 'results/copy_types.bin' WITH (FORMAT binary)
SELECT * FROM copy_dst ORDER BY id;
SELECT count(*) AS identical_rows
FROM copy_src s JOIN copy_dst d USING (id)
WHERE s.c = d.c AND s.t = d.t AND s.r = d.r;
-- text COPY round trip
\copy copy_src TO 'results/copy_types.txt'
TRUNCATE copy_dst;
\copy copy_dst FROM 'results/copy_types.txt'
SELECT count(*) AS identical_rows
FROM copy_src s JOIN copy_dst d USING (id)
WHERE s.c = d.c AND s.t = d.t AND s.r = d.r;

-- binary receive validates what it reads: a binary COPY stream holding one
-- field, built from its bytes and fed through printf
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
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE recv_cost (c cost);
CREATE TABLE recv_tokens (t tokens);
CREATE TABLE recv_rate (r rate);
SELECT what, pg_temp.copy_binary('recv_cost', field) FROM (VALUES
	('valid 12.5 USD', int8send(12500000000) || 'USD'::bytea),
	('amount -2^63', int8send(-9223372036854775807 - 1) || 'USD'::bytea),
	('unknown currency', int8send(1) || 'XYZ'::bytea),
	('lower-case currency', int8send(1) || 'usd'::bytea),
	('truncated', int8send(1) || 'US'::bytea),
	('trailing byte', int8send(1) || 'USDX'::bytea)) v(what, field);
SELECT c FROM recv_cost;
SELECT what, pg_temp.copy_binary('recv_tokens', field) FROM (VALUES
	('valid', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || int8send(2)),
	('negative cache_read', int8send(1) || int8send(2) || int8send(-3) || int8send(4) || int8send(5) || int8send(0)),
	('reasoning > output', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5) || int8send(3)),
	('five fields', int8send(1) || int8send(2) || int8send(3) || int8send(4) || int8send(5))) v(what, field);
SELECT t FROM recv_tokens;
SELECT what, pg_temp.copy_binary('recv_rate', field) FROM (VALUES
	('valid', int8send(3000000000) || int8send(15000000000) || int8send(0) || int8send(0) || int8send(0) || 'EUR'::bytea),
	('negative price', int8send(3000000000) || int8send(-1) || int8send(0) || int8send(0) || int8send(0) || 'EUR'::bytea),
	('bad currency', int8send(3000000000) || int8send(1) || int8send(0) || int8send(0) || int8send(0) || '???'::bytea)) v(what, field);
SELECT r FROM recv_rate;
DROP TABLE copy_src, copy_dst, recv_cost, recv_tokens, recv_rate;
