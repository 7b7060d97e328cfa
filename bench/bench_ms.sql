-- bench/bench_ms.sql: the timing function the SQL benchmarks share (\ir it)
-- median wall time in ms of running q n times (after one warm-up run)
CREATE OR REPLACE FUNCTION pg_temp.bench_ms(q text, n int) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	times numeric[] := '{}';
BEGIN
	EXECUTE q;
	FOR i IN 1 .. n LOOP
		t0 := clock_timestamp();
		EXECUTE q;
		times := times || (extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric;
	END LOOP;
	RETURN (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x);
END $$;
