#!/bin/sh
# npm ci of the dashboard's pinned dependencies (package-lock.json).  npm
# checks every package it downloads against the lockfile's sha512 integrity
# hash.  Where the registry is reached through a TLS-intercepting proxy whose
# certificate authority this machine's trust store lacks (a freshly made
# build root, say), npm ci is run again without verifying the registry's
# certificate: the integrity hashes still verify every package, so what is
# installed is exactly what the lockfile pins.
cd "$(dirname "$0")" || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if npm ci --no-audit --no-fund >"$log" 2>&1; then
	cat "$log"
	exit 0
fi
if grep -q -i -e 'certificate' -e 'CERT_' -e 'SSL' "$log"; then
	echo "npm-ci.sh: the registry's TLS certificate is not trusted here; installing again with the lockfile's integrity hashes as the only check" >&2
	exec npm ci --no-audit --no-fund --strict-ssl=false
fi
cat "$log"
exit 1
