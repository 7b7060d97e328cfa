-- bench/naive_setup.sql: the ledger a user would write by hand instead, as
-- the second baseline of bench/ingest.sh.  Plain tables, money as numeric,
-- and a PL/pgSQL trigger that per row queries the price and the first
-- matching attribution rule, computes the cost, and upserts a daily rollup
-- (no budgets: the hand-written ledger has none).  It holds the same price
-- list and the same ten rules as the benchmarked ledger.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS naive_usage, naive_daily, naive_prices, naive_rules CASCADE;

CREATE TABLE naive_prices (
	provider text NOT NULL, model text NOT NULL, service_tier text NOT NULL,
	effective_from timestamptz NOT NULL,
	input numeric NOT NULL, output numeric NOT NULL, cache_read numeric NOT NULL,
	cache_write numeric NOT NULL,
	PRIMARY KEY (provider, model, service_tier, effective_from)
);
INSERT INTO naive_prices
SELECT provider, model, service_tier, effective_from,
	   tokenledger.amount(tokenledger.input_price(rate)), tokenledger.amount(tokenledger.output_price(rate)),
	   tokenledger.amount(tokenledger.cache_read_price(rate)), tokenledger.amount(tokenledger.cache_write_price(rate))
FROM tokenledger.prices WHERE min_input_tokens = 0;

CREATE TABLE naive_rules (
	id bigserial PRIMARY KEY, priority int NOT NULL,
	match_api_key text, match_app text, match_tags jsonb, initiative text NOT NULL
);
INSERT INTO naive_rules (priority, match_api_key, match_app, match_tags, initiative)
SELECT priority, match_api_key, match_app, match_tags, initiative FROM tokenledger.attribution_rules;

-- the same columns and indexes as the ledger, tokens and cost as plain columns
CREATE TABLE naive_usage (
	id bigserial PRIMARY KEY,
	occurred_at timestamptz NOT NULL DEFAULT now(),
	recorded_at timestamptz NOT NULL DEFAULT now(),
	request_id text, provider text NOT NULL, model text NOT NULL,
	service_tier text NOT NULL DEFAULT 'standard',
	input_tokens bigint NOT NULL DEFAULT 0, output_tokens bigint NOT NULL DEFAULT 0,
	cache_read_tokens bigint NOT NULL DEFAULT 0, cache_write_tokens bigint NOT NULL DEFAULT 0,
	requests bigint NOT NULL DEFAULT 1, cost numeric, team text, initiative text, principal text,
	api_key text, app text, environment text, run_id text, tags jsonb NOT NULL DEFAULT '{}',
	attribution text NOT NULL DEFAULT 'unattributed'
);
CREATE UNIQUE INDEX ON naive_usage (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX ON naive_usage USING brin (occurred_at);
CREATE INDEX ON naive_usage (id) WHERE cost IS NULL;

CREATE TABLE naive_daily (
	day date NOT NULL, initiative text NOT NULL, model text NOT NULL,
	requests bigint NOT NULL, tokens bigint NOT NULL, spend numeric NOT NULL,
	PRIMARY KEY (day, initiative, model)
);

CREATE FUNCTION naive_price_and_attribute() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	p naive_prices;
	r naive_rules;
BEGIN
	-- the price: a query per row (a dated snapshot name falls back to its base model)
	SELECT * INTO p FROM naive_prices
	WHERE provider = NEW.provider AND model IN (NEW.model, regexp_replace(NEW.model, '-\d{4}-\d{2}-\d{2}$', ''))
	  AND service_tier = NEW.service_tier AND effective_from <= NEW.occurred_at
	ORDER BY model = NEW.model DESC, effective_from DESC LIMIT 1;
	IF FOUND AND NEW.cost IS NULL THEN
		NEW.cost := round((NEW.input_tokens * p.input + NEW.output_tokens * p.output
						   + NEW.cache_read_tokens * p.cache_read + NEW.cache_write_tokens * p.cache_write)
						  / 1000000, 9);
	END IF;
	-- the rule: a query per row
	IF NEW.initiative IS NULL THEN
		SELECT * INTO r FROM naive_rules
		WHERE (match_api_key IS NULL OR match_api_key = NEW.api_key)
		  AND (match_app IS NULL OR match_app = NEW.app)
		  AND (match_tags IS NULL OR NEW.tags @> match_tags)
		ORDER BY priority LIMIT 1;
		IF FOUND THEN
			NEW.initiative := r.initiative;
			NEW.attribution := 'rule:' || r.id;
		END IF;
	END IF;
	RETURN NEW;
END $$;

CREATE FUNCTION naive_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- one rollup upsert per row
	INSERT INTO naive_daily AS d VALUES
		(NEW.occurred_at::date, coalesce(NEW.initiative, ''), NEW.model, NEW.requests,
		 NEW.input_tokens + NEW.output_tokens + NEW.cache_read_tokens + NEW.cache_write_tokens,
		 coalesce(NEW.cost, 0))
	ON CONFLICT (day, initiative, model) DO UPDATE
	SET requests = d.requests + EXCLUDED.requests, tokens = d.tokens + EXCLUDED.tokens,
		spend = d.spend + EXCLUDED.spend;
	RETURN NULL;
END $$;

CREATE TRIGGER naive_before BEFORE INSERT ON naive_usage
	FOR EACH ROW EXECUTE FUNCTION naive_price_and_attribute();
CREATE TRIGGER naive_after AFTER INSERT ON naive_usage
	FOR EACH ROW EXECUTE FUNCTION naive_rollup();
