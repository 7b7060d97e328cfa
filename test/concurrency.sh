#!/bin/sh
# 16 pgbench clients reserve $1 at a time against one block budget of $50 and
# settle half of their reservations with usage rows.  However the
# reservations interleave, spend plus live reservations never exceed the
# amount through reservations, and the budget's counters equal the ledger.
# Uses a database of its own; prints TAP.
set -u
DB=tokenledger_concurrency_test
PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION tokenledger;
INSERT INTO tokenledger.prices (provider, model, effective_from, rate) VALUES ('acme', 'm', '2020-01-01', 'in=1 out=0 USD/1M');
INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
VALUES ('tight', 'app', 'conc', 'total', '50 USD', 'block'), ('all', 'global', NULL, 'day', '1000000 USD', 'alert');
CREATE FUNCTION public.try_reserve() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	r uuid;
BEGIN
	BEGIN
		r := tokenledger.budget_reserve(app => 'conc', estimate => '1 USD');
	EXCEPTION WHEN SQLSTATE 'TL001' THEN
		INSERT INTO public.refusals VALUES (now());
		RETURN;
	END;
	IF random() < 0.5 THEN
		INSERT INTO tokenledger.usage (provider, model, tokens, app, reservation_id)
		VALUES ('acme', 'm', 'in=1000000 out=0', 'conc', r);
	END IF;
END $$;
CREATE TABLE public.refusals (at timestamptz);
SQL
printf 'SELECT public.try_reserve();\n' > /tmp/tokenledger-conc.sql
pgbench -n -c 16 -j 2 -T 5 -f /tmp/tokenledger-conc.sql "$DB" >/tmp/tokenledger-conc.out 2>&1
rm -f /tmp/tokenledger-conc.sql

echo "1..5"
n=0
check() {
	n=$((n + 1))
	if [ "$(psql -X -A -t -d "$DB" -c "$1")" = t ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
check "SELECT (SELECT count(*) FROM tokenledger.budget_reservations) = 50" \
	"exactly 50 reservations of \$1 were granted against the \$50 block budget"
check "SELECT count(*) > 100 FROM public.refusals" "the other attempts were refused with TL001"
check "SELECT tokenledger.amount(s.spent) + tokenledger.amount(s.reserved) <= 50 AND s.name = 'tight'
       FROM tokenledger.budget_check(app => 'conc') s WHERE s.name = 'tight'" \
	"spent plus live reservations stay within the amount"
check "SELECT (SELECT count(*) FROM tokenledger.budget_reservations WHERE settled_at IS NOT NULL)
            = (SELECT count(*) FROM tokenledger.usage WHERE app = 'conc')
          AND (SELECT count(*) FROM tokenledger.budget_holds h JOIN tokenledger.budgets b ON b.id = h.budget_id AND b.name = 'tight')
              = (SELECT count(*) FROM tokenledger.budget_reservations WHERE settled_at IS NULL)" \
	"each usage row settled its reservation; the rest are still held"
check "SELECT bool_and(coalesce((SELECT tokenledger.sum(x.spent) FROM tokenledger.budget_spend x WHERE x.budget_id = b.id),
                               tokenledger.cost(0, 'USD'))
                      OPERATOR(tokenledger.=) (SELECT coalesce(tokenledger.sum(u.cost), tokenledger.cost(0, 'USD'))
                                               FROM tokenledger.usage u WHERE tokenledger.budget_applies(b, u.team, u.initiative, u.principal, u.api_key, u.app)))
       FROM tokenledger.budgets b" \
	"every budget's counters equal the ledger's sums after the concurrent run"
