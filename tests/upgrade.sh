#!/usr/bin/env bash
# Upgrades are part of the contract. sql/released/ keeps the install script
# of every released version and sql/released/RELEASES the commit each was
# released from; sql/cdp_identity--A--B.sql are the upgrade scripts.
#
# For each release older than the current version, the whole in-place
# upgrade a DBA runs:
#   1. that release's library (built from its commit, tests/releases.sh) is
#      installed, and a database is created at that release and filled with
#      data (tests/upgrade/fill.sql);
#   2. the current library is installed beside it (it is, by the test
#      command): the database still runs its own release's library and reads
#      the same (tests/upgrade/reads.sql: profiles, explanations, timelines,
#      merges, erasures) — the mixed state between installing a package and
#      ALTER EXTENSION UPDATE;
#   3. ALTER EXTENSION cdp_identity UPDATE, from a session that used the old
#      library: that session is told to reconnect (never served by mismatched
#      code), new sessions read the same data, keep tracking and identifying,
#      and the schema equals a fresh install of the current build
#      (tests/upgrade/schema_fingerprint.sql).
# For the current version itself, if released, it checks that the released
# script still gives today's schema, so a schema change without a new
# version and an upgrade script fails here.
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
EXTDIR=$($PG_CONFIG --sharedir)/extension
LIBDIR=$($PG_CONFIG --pkglibdir)
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
if ! tests/releases.sh >"$work/releases" 2>"$work/releases.log"; then
    cat "$work/releases.log"; echo "upgrade: 0 passed, 1 failed"; exit 1
fi

fingerprint() { "${Q[@]}" -d "$1" -f tests/upgrade/schema_fingerprint.sql; }
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAILED $1"; }
same() {  # same LABEL FILE_A FILE_B
    if [ -s "$2" ] && cmp -s "$2" "$3"; then ok "$1 ($(wc -l <"$2") lines compared)"; else
        fail "$1 (< before, > after):"; diff "$2" "$3" | sed 's/^/    /' | head -30; fi
}
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_fresh" -c "CREATE DATABASE cdp_upgrade_fresh" >/dev/null || exit 1
"${Q[@]}" -d cdp_upgrade_fresh -c "CREATE EXTENSION cdp_identity" >/dev/null || exit 1
fresh=$(fingerprint cdp_upgrade_fresh)

for released in sql/released/cdp_identity--*.sql; do
    version=$(basename "$released" .sql); version=${version#cdp_identity--}
    db=cdp_upgrade_old
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null || exit 1
    if [ "$version" = "$current" ]; then
        cp "$released" "$EXTDIR/cdp_identity--$version-released.sql"; copied+=("$EXTDIR/cdp_identity--$version-released.sql")
        if out=$("${Q[@]}" -d $db -c "CREATE EXTENSION cdp_identity VERSION '$version-released'" 2>&1) \
            && [ "$(fingerprint $db)" = "$fresh" ]; then
            ok "released $version is today's schema"
        else
            fail "released $version is not today's schema: $out"
            diff <(fingerprint $db) <(echo "$fresh") | sed 's/^/    /' | head -40
        fi
        continue
    fi
    read -r _ lib name < <(grep "^$version " "$work/releases") || { fail "$version has no line in sql/released/RELEASES"; continue; }
    # 1. The old release, installed and filled.
    install -m 755 "$lib" "$LIBDIR/$name"
    cp "$released" "$EXTDIR/"; copied+=("$EXTDIR/$(basename "$released")")
    if [ -e "${released%.sql}.control" ]; then  # the module_pathname of a release before 0.2.0
        cp "${released%.sql}.control" "$EXTDIR/"; copied+=("$EXTDIR/$(basename "${released%.sql}.control")")
    fi
    if ! out=$("${Q[@]}" -d $db -c "CREATE EXTENSION cdp_identity VERSION '$version'" -f tests/upgrade/fill.sql 2>&1 >/dev/null); then
        fail "$version installs and fills: $out"; continue
    fi
    "${Q[@]}" -d $db -f tests/upgrade/reads.sql >"$work/before" 2>&1
    # 2. The current library is installed too: the old database runs its own.
    probin=$("${Q[@]}" -d $db -c "SELECT string_agg(DISTINCT probin, ',') FROM pg_proc WHERE pronamespace = 'cdp'::regnamespace AND prolang = 13")
    # (0.1.x catalogs name '$libdir/cdp_identity', later ones their file without the directory)
    if [ -e "$LIBDIR/cdp_identity-$current.so" ] && { [ "$probin" = "\$libdir/${name%.so}" ] || [ "$probin" = "${name%.so}" ]; }; then
        ok "with $current installed, the $version database still calls its own library ($probin)"
    else
        fail "the $version database points at '$probin', not its own ${name%.so} (or $current is not installed)"
    fi
    "${Q[@]}" -d $db -f tests/upgrade/reads.sql >"$work/mixed" 2>&1
    same "a filled $version database reads the same with $current installed beside it" "$work/before" "$work/mixed"
    # 3. The update, from a session that used the old library.
    start=$(date +%s%N)
    out=$(psql -X -q -A -t -d $db -c "SELECT cdp.md5('loads the old library')" -c "ALTER EXTENSION cdp_identity UPDATE" \
              -c "SELECT cdp.track_event('same-session', 'pageview', 'view')" 2>&1)
    took=$((($(date +%s%N) - start) / 1000000))
    if grep -q "Reconnect" <<<"$out" && [ "$("${Q[@]}" -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'cdp_identity'")" = "$current" ]; then
        ok "ALTER EXTENSION UPDATE $version -> $current (${took} ms); the session that had loaded $version is asked to reconnect"
    else
        fail "updating $version -> $current: $out"; continue
    fi
    "${Q[@]}" -d $db -f tests/upgrade/reads.sql >"$work/after" 2>&1
    same "a filled $version database reads the same after ALTER EXTENSION UPDATE to $current" "$work/before" "$work/after"
    if out=$("${Q[@]}" -d $db -c "SELECT cdp.track_event('after-update', 'pageview', 'view')" \
                 -c "SELECT cdp.identify('after-update', 'cust-after-update')" \
                 -c "SELECT cdp.profile_of('after-update')" -c "SELECT cdp.version()->>'matches'" 2>&1) \
        && [ "$(sed -n 2p <<<"$out")" = "$(sed -n 3p <<<"$out")" ] && [ "$(sed -n 1p <<<"$out")" != "$(sed -n 3p <<<"$out")" ] \
        && [ "$(sed -n 4p <<<"$out")" = true ]; then
        ok "the updated $version database keeps tracking and identifying; cdp.version() matches"
    else
        fail "the updated $version database cannot track or identify: $out"
    fi
        # What 0.2.0 changed about existing data: point-in-time answers in business
    # time (a shared browser's UID was up-1's customer's, then the other's),
    # placeholder UIDs quarantined.
    if out=$("${Q[@]}" -d $db -c "SELECT cdp.profile_at('up-1', '2026-10-01 10:30+00') NOT IN (SELECT profile_id FROM cdp.profiles WHERE customer_id IS NOT NULL)" \
                 -c "SELECT cdp.profile_at('up-1', '2026-10-02 12:00+00') = (SELECT profile_id FROM cdp.profiles WHERE customer_id = 'cust-up')" \
                 -c "SELECT cdp.profile_at('up-1', '2026-10-03 10:30+00') = (SELECT profile_id FROM cdp.profiles WHERE customer_id = 'cust-other')" \
                 -c "SELECT quarantined FROM cdp.profiles WHERE profile_id = cdp.profile_of('undefined')" \
                 -c "SELECT cdp.track_event('up-3', 'pageview', 'view') IS NULL" 2>&1) \
        && [ "$(tr '\n' ' ' <<<"$out")" = "t t t t t " ]; then
        ok "after the update, profile_at answers in business time, the placeholder UID is quarantined, a UID erased by $version stays suppressed"
    else
        fail "business-time profile_at or quarantine after the update: $(tr '\n' ' ' <<<"$out")"
    fi
    if [ "$(fingerprint $db)" = "$fresh" ]; then
        ok "$version updated to $current equals a fresh $current"
    else
        fail "$version updated to $current differs from a fresh $current (< updated, > fresh):"
        diff <(fingerprint $db) <(echo "$fresh") | sed 's/^/    /' | head -40
        echo "    A schema change needs a new version in Cargo.toml, sql/cdp_identity--$version--NEW.sql, and"
        echo "    the new release's script kept in sql/released/ (cargo pgrx schema)."
    fi
done
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_upgrade_old" -c "DROP DATABASE IF EXISTS cdp_upgrade_fresh" >/dev/null
echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
