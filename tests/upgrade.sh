#!/usr/bin/env bash
# Upgrades are part of the contract: sql/released/ keeps the install script of
# every released version, sql/cdp_identity--A--B.sql the upgrade scripts. For
# each released version this installs it, updates it to the current version
# (ALTER EXTENSION ... UPDATE) and checks that the schema equals a fresh
# install of the current build. For the current version itself it checks that
# the released script still gives today's schema, so a schema change without a
# new version and an upgrade script fails here.
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
EXTDIR=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension
current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$EXTDIR/cdp_identity.control")
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
Q=(psql -X -q -A -t -v ON_ERROR_STOP=1)
copied=()
trap 'rm -f "${copied[@]}"' EXIT
for script in sql/cdp_identity--*--*.sql; do
    [ -e "$script" ] || continue
    cp "$script" "$EXTDIR/"; copied+=("$EXTDIR/$(basename "$script")")
done

fingerprint() { "${Q[@]}" -d "$1" -f tests/schema_fingerprint.sql; }
passed=0; failed=0
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_fresh" -c "CREATE DATABASE cdp_upgrade_fresh" >/dev/null || exit 1
"${Q[@]}" -d cdp_upgrade_fresh -c "CREATE EXTENSION cdp_identity" >/dev/null || exit 1
fresh=$(fingerprint cdp_upgrade_fresh)
for released in sql/released/cdp_identity--*.sql; do
    version=$(basename "$released" .sql); version=${version#cdp_identity--}
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_old" -c "CREATE DATABASE cdp_upgrade_old" >/dev/null || exit 1
    if [ "$version" = "$current" ]; then
        label="released $version is today's schema"
        cp "$released" "$EXTDIR/cdp_identity--$version-released.sql"; copied+=("$EXTDIR/cdp_identity--$version-released.sql")
        steps="CREATE EXTENSION cdp_identity VERSION '$version-released'"
    else
        label="$version updated to $current equals a fresh $current"
        cp "$released" "$EXTDIR/"; copied+=("$EXTDIR/$(basename "$released")")
        steps="CREATE EXTENSION cdp_identity VERSION '$version'; ALTER EXTENSION cdp_identity UPDATE"
    fi
    if ! out=$("${Q[@]}" -d cdp_upgrade_old -c "$steps" 2>&1); then
        failed=$((failed + 1)); echo "FAILED $label: $out"; continue
    fi
    if [ "$(fingerprint cdp_upgrade_old)" = "$fresh" ]; then
        passed=$((passed + 1)); echo "ok $label"
    else
        failed=$((failed + 1)); echo "FAILED $label; schema differences (< released/updated, > fresh):"
        diff <(fingerprint cdp_upgrade_old) <(echo "$fresh") | sed 's/^/    /' | head -40
        echo "    A schema change needs a new version in Cargo.toml, sql/cdp_identity--$version--NEW.sql, and"
        echo "    the new release's script kept in sql/released/ (cargo pgrx schema)."
    fi
done
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_old" -c "DROP DATABASE IF EXISTS cdp_upgrade_fresh" >/dev/null
echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
