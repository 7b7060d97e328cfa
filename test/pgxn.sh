#!/bin/sh
# pgxn install from the distribution zip that make dist builds (the committed
# HEAD), offline: pgxnclient builds it and installs it under a temporary
# DESTDIR, so the system's installation is left alone; pgxn load, reading
# META.json's provides, creates the extension in a database of its own whose
# sessions load it from there (extension_destdir); a recorded call is priced.
# Needs a running server and a superuser (make prove runs it in
# pg_virtualenv); prints TAP.
set -u
cd "$(dirname "$0")/.."
if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
	echo "1..0 # SKIP not a git checkout: make dist archives the committed HEAD"
	exit 0
fi
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DB=tokenledger_pgxn_test
T=$(mktemp -d /tmp/tokenledger-pgxn.XXXXXX)
chmod 755 "$T" # the server (postgres, under root) reads the installed files
cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
. test/tap.sh

zip=$(sh scripts/dist.sh "$T" 2>"$T/dist.err")
ok $? "make dist builds $(basename "$zip") (META.json, the control file and debian/changelog agree on the version)"
[ -s "$zip" ] || { echo "Bail out! no zip: $(cat "$T/dist.err")"; exit 1; }
version=$(python3 -c 'import json; print(json.load(open("META.json"))["version"])')
top=$(python3 -c 'import sys, zipfile; print(sorted({n.split("/")[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()}))' "$zip")
[ "$top" = "['tokenledger-$version']" ]
ok $? "every file of the zip is under tokenledger-$version/ ($top)"

# pgxn asks for a sudo program when pg_config's libdir is not writable; the
# install goes to a temporary DESTDIR, so env (which runs make as is) will do
sudo=""
[ "$(id -u)" = 0 ] || sudo="--sudo env"
# a mirror that cannot answer: the install must not need the network
DESTDIR="$T/root" pgxn install --mirror http://127.0.0.1:1/ --pg_config "$PG_CONFIG" $sudo "$zip" >"$T/install.log" 2>&1
rc=$?
ok $rc "pgxn install $(basename "$zip") builds it and installs it offline"
[ $rc = 0 ] || sed 's/^/# /' "$T/install.log" | tail -20

sharedir=$T/root$("$PG_CONFIG" --sharedir)
pkglibdir=$T/root$("$PG_CONFIG" --pkglibdir)
missing=""
for f in tokenledger.control tokenledger--*.sql; do
	cmp -s "$f" "$sharedir/extension/$f" || missing="$missing $f"
done
[ -z "$missing" ] && [ -s "$pkglibdir/tokenledger.so" ]
ok $? "it installed tokenledger.so, tokenledger.control and every script of the tree under the DESTDIR${missing:+ (missing or different:$missing)}"

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null 2>&1
# pgxn load looks for the control file in pg_config --sharedir: a pg_config
# that answers with the DESTDIR's
cat >"$T/pg_config" <<EOF
#!/bin/sh
[ "\$1" = --sharedir ] && { echo "$sharedir"; exit 0; }
exec "$PG_CONFIG" "\$@"
EOF
chmod +x "$T/pg_config"
PGOPTIONS="-c extension_destdir=$T/root" pgxn load --yes -d "$DB" --pg_config "$T/pg_config" "$zip" >"$T/load.log" 2>&1
rc=$?
[ $rc = 0 ] && [ "$(psql -X -A -t -d "$DB" -c "SELECT count(*) FROM pg_extension WHERE extname = 'tokenledger'")" = 1 ]
ok $? "pgxn load -d $DB $(basename "$zip") creates the extension that META.json provides"
[ $rc = 0 ] || sed "s/^/# /" "$T/load.log"

default_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" tokenledger.control)
out=$(PGOPTIONS="-c extension_destdir=$T/root" psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -d "$DB" \
	-v v="$default_version" -v lib="$pkglibdir/tokenledger.so" 2>&1 <<'SQL'
SELECT extversion = :'v', 'the database has tokenledger ' || extversion || ', the control file''s default_version'
FROM pg_extension WHERE extname = 'tokenledger';
INSERT INTO tokenledger.usage (provider, model, tokens, api_key, app)
VALUES ('openai', 'gpt-4o-2024-08-06', 'in=1200 out=350 cache_read=800', 'key-support-prod', 'helpdesk')
RETURNING id AS call_id \gset
SELECT u.cost IS NOT NULL AND p.model = 'gpt-4o'
       AND u.cost OPERATOR(tokenledger.=) (u.tokens OPERATOR(tokenledger.*) p.rate),
       'a recorded call costs its tokens times the rate of the catalog row that priced it: ' || u.cost::text
FROM tokenledger.usage u JOIN tokenledger.prices p ON p.id = u.price_id
WHERE u.id = :call_id;
SELECT position(:'lib' IN pg_read_file('/proc/self/maps')) > 0,
       'the session runs the tokenledger.so that pgxn installed'
WHERE (pg_stat_file('/proc/self/maps', true)).modification IS NOT NULL;
SQL
)
[ $? = 0 ] || { echo "$out"; echo "Bail out! psql failed"; exit 1; }
while IFS='|' read -r result description; do
	[ "$result" = t ]
	ok $? "$description"
done <<EOF
$out
EOF
echo "1..$n"
[ "$failed" = 0 ]
