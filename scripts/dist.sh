#!/bin/sh
# dist.sh: the PGXN distribution, tokenledger-<version>.zip of the committed
# HEAD (git archive), after checking that META.json, tokenledger.control and
# debian/changelog name one version: META.json's version and its provides'
# are the control file's default_version with a third digit (1.1 -> 1.1.x),
# and debian/changelog's upstream version is META.json's.
# Usage: sh scripts/dist.sh [DIR]   (DIR: where to write the zip; default .)
set -eu
out=$(cd "${1:-.}" && pwd)
cd "$(dirname "$0")/.."
ext=tokenledger
default_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" $ext.control)
meta_version=$(python3 -c 'import json; print(json.load(open("META.json"))["version"])')
provides_version=$(python3 -c 'import json, sys; print(json.load(open("META.json"))["provides"][sys.argv[1]]["version"])' $ext)
deb_version=$(sed -n '1s/^[^(]*(\([^)-]*\)-[^)]*).*/\1/p' debian/changelog)
fail() { echo "dist: $*" >&2; exit 1; }
case "$meta_version" in
"$default_version".[0-9]*) ;;
*) fail "META.json has version $meta_version, $ext.control default_version $default_version: META.json's must be $default_version.N" ;;
esac
[ "$provides_version" = "$meta_version" ] || fail "META.json: provides.$ext.version $provides_version differs from version $meta_version"
[ "$deb_version" = "$meta_version" ] || fail "debian/changelog has upstream version $deb_version, META.json $meta_version"
[ -z "$(git status --porcelain --untracked-files=no)" ] || echo "dist: note: uncommitted changes are not in the zip (it is HEAD)" >&2
zip=$out/$ext-$meta_version.zip
git archive --format zip --prefix="$ext-$meta_version/" -o "$zip" HEAD
echo "$zip"
