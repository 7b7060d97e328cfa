#!/bin/sh
# build.sh [ROLE]: builds the dashboard (dist/) from the database the libpq
# variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) name, where
# `CREATE EXTENSION tokenledger` has run.  As that (admin) user it makes ROLE
# (default dashboard) a login role in tokenledger_reader that sees every team
# (team_members '*'), with a new password; the build then reads the views as
# ROLE, as a BI tool's connection would.  Needs `npm ci` to have run here.
set -eu
cd "$(dirname "$0")"
role=${1:-dashboard}
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
psql -X -q -v ON_ERROR_STOP=1 -v role="$role" -v password="$password" <<'SQL'
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I LOGIN IN ROLE tokenledger_reader', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \gexec
INSERT INTO tokenledger.team_members (role_name, team) VALUES (:'role', '*') ON CONFLICT DO NOTHING;
SQL
# the data loader's output is cached by the source's age: read the views anew
rm -rf src/.observablehq/cache dist
# The page imports its libraries from node_modules (the lockfile's versions).
# Framework's client still names the libraries a page may import from a CDN
# (React, Arquero, ...) by version, resolving any it does not find in its
# cache from the npm registry's "latest": pin them, so the build asks no one.
for p in @observablehq/plot@0.6.17 @observablehq/sample-datasets@1.0.1 apache-arrow@21.2.0 arquero@8.0.3 \
	d3@7.9.0 d3-dsv@3.0.2 echarts@6.1.0 htl@1.0.0 leaflet@1.9.4 lodash@4.18.1 mapbox-gl@3.32.0 \
	parquet-wasm@0.8.0 react@19.3.1 react-dom@19.3.1 topojson-client@3.1.0; do
	mkdir -p "src/.observablehq/cache/_npm/$p"
done
PGUSER=$role PGPASSWORD=$password OBSERVABLE_TELEMETRY_DISABLE=true npx --no-install observable build
