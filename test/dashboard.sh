#!/bin/sh
# The CFO dashboard (dashboard/) built on the demo's year and opened in
# Chromium: every panel draws its chart with data (as many bars or dots as
# the views have rows where the panel shows one mark a row), the headline
# figures the page shows equal the views' figures, the page raises no error,
# and its screenshot is saved (to $DASHBOARD_SCREENSHOT when set, as for the
# README's docs/dashboard.png; else beside the test's files).  Skipped where npm or
# chromium is missing, except in CI (CI=true), where that fails.  Uses a
# database of its own; prints TAP.
set -u
cd "$(dirname "$0")/.."
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
if ! command -v npm >/dev/null 2>&1 || [ ! -x "$CHROMIUM" ]; then
	if [ "${CI:-}" = true ]; then
		echo "1..1"
		echo "not ok 1 - npm and $CHROMIUM are needed for the dashboard test (sh scripts/install-deps.sh test installs them)"
		exit 1
	fi
	echo "1..0 # SKIP the dashboard needs npm and $CHROMIUM (sh scripts/install-deps.sh test installs them)"
	exit 0
fi

DB=tokenledger_dashboard_test
ROLE=tokenledger_dashboard_test
OUT=$(mktemp -d)
cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP ROLE IF EXISTS $ROLE" >/dev/null
	rm -rf "$OUT"
}
trap cleanup EXIT
PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
export PGDATABASE=$DB

. test/tap.sh
comment() { sed 's/^/# /' "$@"; }

echo "1..23"
psql -X -q -v ON_ERROR_STOP=1 -f demo/generate.sql >"$OUT/demo.log" 2>&1
r=$?
ok $r "the demo's year is recorded"
[ $r = 0 ] || comment "$OUT/demo.log"

sh dashboard/npm-ci.sh >"$OUT/npm.log" 2>&1
r=$?
ok $r "npm ci installs the dashboard's pinned dependencies from its lockfile"
[ $r = 0 ] || comment "$OUT/npm.log"

sh dashboard/build.sh "$ROLE" >"$OUT/build.log" 2>&1
r=$?
ok $r "the dashboard builds as static pages, reading the views as a tokenledger_reader"
[ $r = 0 ] || comment "$OUT/build.log"

SHOT=${DASHBOARD_SCREENSHOT:-$OUT/dashboard.png}
mkdir -p "$(dirname "$SHOT")"
node dashboard/check.mjs dashboard/dist "$SHOT" >"$OUT/page" 2>"$OUT/check.log"
r=$?
ok $r "chromium opens the built page and every panel draws its chart"
[ $r = 0 ] || comment "$OUT/check.log"

# what the page shows: shown figure NAME, marks panel NAME
shown() { awk -F '\t' -v k="$1" -v name="$2" '$1 == k && $2 == name { print $3 }' "$OUT/page"; }
# the views' figures, read as the superuser, formatted as the page formats money
q() { psql -X -A -t -q -c "SET TIME ZONE 'UTC'" -c "$1"; }
YEAR="day >= date_trunc('month', now()) - interval '12 months' AND day < date_trunc('month', now())"
MONTHS="month >= date_trunc('month', now()) - interval '12 months' AND month < date_trunc('month', now())"
LAST="month = date_trunc('month', now()) - interval '1 month'"
dollars="'\$' || to_char(round(%s), 'FM999,999,999,990')"

[ "$(q "SELECT tokenledger.report_currency()")" = USD ]
ok $? "the demo reports in USD, the currency the page shows"

figure() {
	expected=$(q "$2")
	got=$(shown figure "$1")
	[ -n "$expected" ] && [ "$got" = "$expected" ]
	ok $? "headline $1: the page shows '$got', the views give '$expected'"
}
figure spend "SELECT $(printf "$dollars" 'sum(spend)') FROM tokenledger.spend_daily WHERE currency = 'USD' AND $YEAR"
figure outcomes "SELECT to_char(sum(outcomes), 'FM999,999,999,990') FROM tokenledger.initiative_economics
	WHERE currency = 'USD' AND $MONTHS"
figure outcome-value "SELECT $(printf "$dollars" 'sum(outcome_value)') FROM tokenledger.initiative_economics
	WHERE currency = 'USD' AND $MONTHS"
figure cost-per-outcome "SELECT '\$' || to_char(round(s.spend / o.outcomes, 2), 'FM999,999,990.00')
	FROM (SELECT sum(spend) AS spend FROM tokenledger.spend_daily WHERE currency = 'USD' AND $YEAR) s,
	     (SELECT sum(outcomes) AS outcomes FROM tokenledger.initiative_economics WHERE currency = 'USD' AND $MONTHS) o"
figure shadow "SELECT $(printf "$dollars" 'sum(spend)') FROM tokenledger.spend_daily
	WHERE initiative IS NULL AND currency = 'USD' AND $YEAR"
figure token-maxing "SELECT $(printf "$dollars" 'sum(spend_without_outcome)') FROM tokenledger.token_maxing
	WHERE flagged AND currency = 'USD' AND $MONTHS"
figure rightsizing "SELECT $(printf "$dollars" 'sum(saving_on_short)') FROM tokenledger.model_rightsizing
	WHERE currency = 'USD' AND $LAST"

# every panel has data marks; where the panel draws one mark a row, as many
panel() {
	got=$(shown panel "$1")
	if [ -n "$2" ]; then
		expected=$(q "$2")
		[ -n "$got" ] && [ "$got" -gt 0 ] && [ "$got" = "$expected" ]
		ok $? "panel $1 draws $got marks, one for each of the view's $expected rows"
	else
		[ -n "$got" ] && [ "$got" -gt 0 ]
		ok $? "panel $1 draws ${got:-no} marks"
	fi
}
panel monthly-spend "SELECT count(*) FROM tokenledger.initiative_economics
	WHERE currency = 'USD' AND month >= date_trunc('month', now()) - interval '12 months'"
panel growth ""
panel initiatives "SELECT count(DISTINCT coalesce(initiative, '')) FROM tokenledger.initiative_economics
	WHERE currency = 'USD' AND $MONTHS"
panel cost-per-outcome ""
panel shadow "SELECT count(*) FROM (SELECT DISTINCT api_key, app, principal FROM tokenledger.unattributed_spend
	WHERE currency = 'USD' AND $MONTHS) k"
panel token-maxing ""
panel rightsizing ""
panel anomalies "SELECT count(*) FROM tokenledger.spend_anomalies WHERE spend > 0"
panel budgets ""

! grep -q '^error' "$OUT/page"
ok $? "the page raises no error and loads everything it asks for"
grep '^error' "$OUT/page" | comment

[ -s "$SHOT" ]
ok $? "the screenshot is saved to $SHOT"
[ "$failed" = 0 ]
