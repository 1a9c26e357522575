#!/usr/bin/env bash
# pg_dump keeps the extension's data: every table and sequence is registered
# with pg_extension_config_dump. Dump a database with the seed story, restore
# it into a new one, compare, and check that ids continue after the restore.
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
Q=(psql -X -q -A -t -v ON_ERROR_STOP=1)
dump=$(mktemp); trap 'rm -f "$dump" "$dump.log"' EXIT
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_dump_src" -c "DROP DATABASE IF EXISTS cdp_dump_dst" \
    -c "CREATE DATABASE cdp_dump_src" -c "CREATE DATABASE cdp_dump_dst" >/dev/null || exit 1
"${Q[@]}" -d cdp_dump_src -c "CREATE EXTENSION cdp_identity" -f demo/seed_story.sql >/dev/null || exit 1
# An erasure (keyed hashes under the install key) and the change feed must survive too.
"${Q[@]}" -d cdp_dump_src -c "SELECT cdp.track_event('gone-uid', 'pageview', 'view')" -c "SELECT cdp.forget_uid('gone-uid')" >/dev/null || exit 1
# (pg_dump warns about the self-referencing profiles.merged_into; rows of one
# table are restored by one COPY, whose foreign keys are checked at its end.)
pg_dump -Fc -d cdp_dump_src -f "$dump" 2>"$dump.log" && pg_restore -d cdp_dump_dst "$dump" || { cat "$dump.log"; exit 1; }

state="SELECT (SELECT count(*) FROM cdp.events) || ' events, ' || (SELECT count(*) FROM cdp.profiles) || ' profiles, '
       || (SELECT count(*) FROM cdp.merges) || ' merges, ' || (SELECT count(*) FROM cdp.identifiers) || ' identifiers, '
       || (SELECT count(*) FROM cdp.profile_attributes) || ' attributes | '
       || cdp.customer_profile(cdp.md5('user.a@example.com'))::text"
passed=0; failed=0
check() { if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok $1"; else failed=$((failed + 1)); echo "FAILED $1: '$2' vs '$3'"; fi; }
src=$("${Q[@]}" -d cdp_dump_src -c "$state"); dst=$("${Q[@]}" -d cdp_dump_dst -c "$state")
check "restored data and customer profile equal the original" "$src" "$dst"
check "the restored database has the merged customer" "$("${Q[@]}" -d cdp_dump_dst -c "SELECT cdp.profile(cdp.profile_of('uid-day-1'))->>'kind'")" "customer"
new_event=$("${Q[@]}" -d cdp_dump_dst -c "SELECT cdp.track_event('after-restore', 'pageview', 'view')" 2>&1)
check "sequences continue after restore (a new profile gets a new id)" "$new_event" "$("${Q[@]}" -d cdp_dump_dst -c "SELECT max(profile_id) FROM cdp.profiles")"
feed="SELECT string_agg(kind || ':' || coalesce(customer_id, '-'), ',' ORDER BY change_id) FROM cdp.identity_changes"
check "the change feed is restored as it was, not recorded again" "$("${Q[@]}" -d cdp_dump_src -c "$feed")" "$("${Q[@]}" -d cdp_dump_dst -c "$feed")"
check "the install key is the original (the oldest row wins), so an erased UID stays suppressed" \
    "$("${Q[@]}" -d cdp_dump_dst -c "SELECT cdp.track_event('gone-uid', 'pageview', 'view') IS NULL")" "t"
"${ADMIN[@]}" -c "DROP DATABASE cdp_dump_src" -c "DROP DATABASE cdp_dump_dst" >/dev/null
echo "dump/restore: $passed passed, $failed failed"
[ $failed -eq 0 ]
