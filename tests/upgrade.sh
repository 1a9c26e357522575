#!/usr/bin/env bash
# Upgrades are part of the contract: sql/released/ keeps the install script of
# every released version, sql/cdp_identity--A--B.sql the upgrade scripts.
# For each released version older than the current one:
#   * a database installed at that version and filled with data
#     (tests/upgrade/fill.sql) reads the same after ALTER EXTENSION ... UPDATE
#     (tests/upgrade/reads.sql: profiles, explanations, timelines, merges,
#     erasures), and keeps working (a new event, a new identify);
#   * its schema then equals a fresh install of the current build
#     (tests/upgrade/schema_fingerprint.sql).
# For the current version itself it checks that the released script still
# gives today's schema, so a schema change without a new version and an
# upgrade script fails here.
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
EXTDIR=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension
current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$EXTDIR/cdp_identity.control")
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
Q=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -v ON_ERROR_STOP=1)
work=$(mktemp -d)
copied=()
trap 'rm -f "${copied[@]}"; rm -rf "$work"' EXIT
for script in sql/cdp_identity--*--*.sql; do
    [ -e "$script" ] || continue
    cp "$script" "$EXTDIR/"; copied+=("$EXTDIR/$(basename "$script")")
done

fingerprint() { "${Q[@]}" -d "$1" -f tests/upgrade/schema_fingerprint.sql; }
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAILED $1"; }
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_fresh" -c "CREATE DATABASE cdp_upgrade_fresh" >/dev/null || exit 1
"${Q[@]}" -d cdp_upgrade_fresh -c "CREATE EXTENSION cdp_identity" >/dev/null || exit 1
fresh=$(fingerprint cdp_upgrade_fresh)
for released in sql/released/cdp_identity--*.sql; do
    version=$(basename "$released" .sql); version=${version#cdp_identity--}
    db=cdp_upgrade_old
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null || exit 1
    if [ "$version" = "$current" ]; then
        cp "$released" "$EXTDIR/cdp_identity--$version-released.sql"; copied+=("$EXTDIR/cdp_identity--$version-released.sql")
        if ! out=$("${Q[@]}" -d $db -c "CREATE EXTENSION cdp_identity VERSION '$version-released'" 2>&1); then
            fail "released $version installs: $out"; continue
        fi
        label="released $version is today's schema"
    else
        cp "$released" "$EXTDIR/"; copied+=("$EXTDIR/$(basename "$released")")
        if ! out=$("${Q[@]}" -d $db -c "CREATE EXTENSION cdp_identity VERSION '$version'" -f tests/upgrade/fill.sql 2>&1 >/dev/null); then
            fail "$version installs and fills: $out"; continue
        fi
        "${Q[@]}" -d $db -f tests/upgrade/reads.sql >"$work/before" 2>&1
        start=$(date +%s%N)
        if ! out=$("${Q[@]}" -d $db -c "ALTER EXTENSION cdp_identity UPDATE" 2>&1); then
            fail "$version updates to $current: $out"; continue
        fi
        took=$((($(date +%s%N) - start) / 1000000))
        "${Q[@]}" -d $db -f tests/upgrade/reads.sql >"$work/after" 2>&1
        if [ -s "$work/before" ] && cmp -s "$work/before" "$work/after"; then
            ok "a filled $version database reads the same after ALTER EXTENSION UPDATE to $current (${took} ms, $(wc -l <"$work/before") lines compared)"
        else
            fail "a filled $version database reads differently after the update (< before, > after):"
            diff "$work/before" "$work/after" | sed 's/^/    /' | head -30
        fi
        if out=$("${Q[@]}" -d $db -c "SELECT cdp.track_event('after-update', 'pageview', 'view')" \
                     -c "SELECT cdp.identify('after-update', 'cust-after-update')" \
                     -c "SELECT cdp.profile_of('after-update')" 2>&1) \
            && [ "$(sed -n 2p <<<"$out")" = "$(sed -n 3p <<<"$out")" ] && [ "$(sed -n 1p <<<"$out")" != "$(sed -n 3p <<<"$out")" ]; then
            ok "the updated $version database keeps tracking and identifying"
        else
            fail "the updated $version database cannot track or identify: $out"
        fi
        label="$version updated to $current equals a fresh $current"
    fi
    if [ "$(fingerprint $db)" = "$fresh" ]; then
        ok "$label"
    else
        fail "$label; schema differences (< released/updated, > fresh):"
        diff <(fingerprint $db) <(echo "$fresh") | sed 's/^/    /' | head -40
        echo "    A schema change needs a new version in Cargo.toml, sql/cdp_identity--$version--NEW.sql, and"
        echo "    the new release's script kept in sql/released/ (cargo pgrx schema)."
    fi
done
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_old" -c "DROP DATABASE IF EXISTS cdp_upgrade_fresh" >/dev/null
echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
