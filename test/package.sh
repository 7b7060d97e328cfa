#!/bin/sh
# The Debian package on a freshly made machine.  In a new Debian 12 root
# (../shared/tools/fresh-machine, which clones the checkout's committed HEAD),
# install what debian/control names for the build, run dpkg-buildpackage at
# the top of the clone as apt.postgresql.org does, check that the build leaves
# nothing git would track, remove the build dependencies (the server headers
# with them), install the .deb with apt, run debian/tests against it, and in a
# throwaway cluster create the extension (and 1.0 updated to the default
# version) and record priced calls.
# Prints TAP.  As root, from the checkout, after committing:
#   sh test/package.sh          (make test-package)
set -u

if [ "${1:-}" != --inside ]; then
	[ "$(id -u)" = 0 ] || { echo "Bail out! test/package.sh needs root (fresh-machine chroots)"; exit 1; }
	top=$(git rev-parse --show-toplevel) || { echo "Bail out! run it inside the project's checkout"; exit 1; }
	fm=$top/../shared/tools/fresh-machine
	[ -x "$fm" ] || { echo "Bail out! $fm not found"; exit 1; }
	cd "$top" && exec "$fm" 'sh test/package.sh --inside'
fi

# --- inside the fresh root, at the top of the clone ---
export DEBIAN_FRONTEND=noninteractive
log=/tmp/package-test.log
. test/tap.sh
bail() { echo "Bail out! $1 (log: $log)"; tail -40 "$log"; exit 1; }

apt-get update -q >"$log" 2>&1
apt-get build-dep -y -q ./ >>"$log" 2>&1
ok $? "apt-get build-dep installs the Build-Depends of debian/control"
dpkg-checkbuilddeps >>"$log" 2>&1
ok $? "dpkg-checkbuilddeps finds them all"

version=$(dpkg-parsechangelog -S Version)
deb=../postgresql-15-tokenledger_${version}_$(dpkg --print-architecture).deb
dpkg-buildpackage -us -uc -b >>"$log" 2>&1 || bail "dpkg-buildpackage -us -uc -b failed"
ok 0 "dpkg-buildpackage -us -uc -b builds, its regression suite included"
[ -s "$deb" ]
ok $? "it gives $deb"
[ -z "$(git status --porcelain --untracked-files=all)" ]
ok $? "the build leaves nothing in the tree that git would track"
grep -q 'All [0-9]* tests passed' "$log"
ok $? "the build ran pg_regress against the package's files (dh_pgxs_test)"

# the package must stand on its own: no build dependencies, no server headers
apt-get purge -y -q --autoremove debhelper postgresql-server-dev-all postgresql-server-dev-15 >>"$log" 2>&1
sharedir=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)
pkglibdir=$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)
[ ! -e /usr/include/postgresql/15/server/postgres.h ] && [ ! -e "$sharedir/extension/tokenledger.control" ] \
	&& [ ! -e "$pkglibdir/tokenledger.so" ]
ok $? "before the package: no server headers, and no tokenledger files in $sharedir or $pkglibdir"

apt-get install -y -q "./$deb" >>"$log" 2>&1
ok $? "apt-get install $deb (its Depends resolved by apt)"

# what it installed, against the tree: the module, the control file and every script
files=$(dpkg -L postgresql-15-tokenledger)
missing=""
for f in tokenledger.control tokenledger--*.sql; do
	echo "$files" | grep -qx "$sharedir/extension/$f" && cmp -s "$f" "$sharedir/extension/$f" || missing="$missing $f"
done
[ -z "$missing" ]
ok $? "the package holds tokenledger.control and $(ls tokenledger--*.sql | tr '\n' ' ')as in the tree${missing:+ (missing or different:$missing)}"
echo "$files" | grep -qx "$pkglibdir/tokenledger.so" && [ -s "$pkglibdir/tokenledger.so" ]
ok $? "the package holds $pkglibdir/tokenledger.so"

# debian/tests, as autopkgtest runs it: the regression suite against the
# installed package (it needs make and PGXS, its Depends)
apt-get install -y -q make postgresql-server-dev-all >>"$log" 2>&1 && sh debian/tests/installcheck >/tmp/autopkgtest.log 2>&1 \
	&& grep -q 'All [0-9]* tests passed' /tmp/autopkgtest.log
ok $? "debian/tests/installcheck: the regression suite passes against the installed package"
cat /tmp/autopkgtest.log >>"$log"

# use it: each check prints t or f, then its description
default_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" tokenledger.control)
# (pg_virtualenv says on stdout what it creates and drops: psql writes to a file)
pg_virtualenv sh -c "psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -v v='$default_version' >/tmp/package-checks.out" >>"$log" 2>&1 <<'SQL'
CREATE EXTENSION tokenledger;
SELECT extversion = :'v', 'CREATE EXTENSION tokenledger installs version ' || :'v'
FROM pg_extension WHERE extname = 'tokenledger';

-- a call inserted as an app does, priced by the catalog row recorded with it
INSERT INTO tokenledger.usage (provider, model, tokens, api_key, app)
VALUES ('openai', 'gpt-4o-2024-08-06', 'in=1200 out=350 cache_read=800', 'key-support-prod', 'helpdesk')
RETURNING id AS call_id \gset
SELECT u.cost IS NOT NULL AND p.model = 'gpt-4o'
       AND u.cost OPERATOR(tokenledger.=) (u.tokens OPERATOR(tokenledger.*) p.rate),
       'a recorded gpt-4o-2024-08-06 call costs its tokens times the rate of gpt-4o''s catalog row: '
       || u.cost::text
FROM tokenledger.usage u JOIN tokenledger.prices p ON p.id = u.price_id
WHERE u.id = :call_id;

-- an Anthropic usage object through record_usage
SELECT tokenledger.record_usage('anthropic', 'claude-sonnet-4-5-20250929',
         '{"input_tokens": 472, "cache_read_input_tokens": 20000, "output_tokens": 310}',
         request_id => 'msg_01XFDUDYJgAACzvnptvVoYEL', initiative => 'support-triage') AS call2_id \gset
SELECT u.tokens OPERATOR(tokenledger.=) 'in=472 out=310 cache_read=20000'::tokenledger.tokens
       AND u.cost OPERATOR(tokenledger.=) (u.tokens OPERATOR(tokenledger.*) p.rate)
       AND u.initiative = 'support-triage',
       'record_usage of an Anthropic usage object: its tokens, priced by the catalog: ' || u.cost::text
FROM tokenledger.usage u JOIN tokenledger.prices p ON p.id = u.price_id
WHERE u.id = :call2_id;

SELECT (SELECT sum(spend) FROM tokenledger.spend_daily)
       = (SELECT tokenledger.amount(tokenledger.sum(cost)) FROM tokenledger.usage),
       'spend_daily sums the ledger''s costs';

-- the 1.0 script and the update are in the package too
CREATE DATABASE from_1_0;
\c from_1_0
CREATE EXTENSION tokenledger VERSION '1.0';
ALTER EXTENSION tokenledger UPDATE;
SELECT extversion = :'v', 'CREATE EXTENSION tokenledger VERSION ''1.0'' and ALTER EXTENSION UPDATE reach ' || :'v'
FROM pg_extension WHERE extname = 'tokenledger';
SQL
[ $? = 0 ] || { cat /tmp/package-checks.out; bail "psql failed in the throwaway cluster"; }
while IFS='|' read -r result description; do
	[ "$result" = t ]
	ok $? "$description"
done </tmp/package-checks.out
echo "1..$n"
[ "$failed" = 0 ]
