#!/usr/bin/env bash
# Erasure under concurrent traffic: clients keep appending events for a UID
# while it is erased. Afterwards none of its events may be left: those in
# flight are waited for and erased, later ones are suppressed.
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
DB=cdp_erasure_race
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
passed=0; failed=0
for round in 1 2 3; do
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null || exit 1
    psql -X -q -d $DB -c "CREATE EXTENSION cdp_identity" \
        -c "SELECT cdp.track_event('victim', 'pageview', 'view', '{\"context\": {\"device_id\": \"v-pc\"}}')" \
        -c "SELECT cdp.track_event('bystander', 'pageview', 'view')" >/dev/null || exit 1
    pids=()
    for c in 1 2 3 4; do
        (for i in $(seq 1 250); do
             echo "SELECT cdp.track_event('victim', 'pageview', 'view', '{\"context\": {\"device_id\": \"v-pc\"}}');"
             echo "SELECT cdp.track_event('bystander', 'pageview', 'view');"
         done) | psql -X -q -v ON_ERROR_STOP=1 -o /dev/null -d $DB 2>>"/tmp/erasure_race.$$" &
        pids+=($!)
    done
    (sleep 0.$((2 + round)); psql -X -q -v ON_ERROR_STOP=1 -o /dev/null -d $DB -c "SELECT cdp.forget_uid('victim')") 2>>"/tmp/erasure_race.$$" &
    pids+=($!)
    errors=0
    for pid in "${pids[@]}"; do wait "$pid" || errors=$((errors + 1)); done
    left=$(psql -X -q -A -t -d $DB -c "SELECT count(*) FROM cdp.events WHERE uid = 'victim'")
    bystander=$(psql -X -q -A -t -d $DB -c "SELECT count(*) FROM cdp.events WHERE uid = 'bystander'")
    erasures=$(psql -X -q -A -t -d $DB -c "SELECT count(*) FROM cdp.erasures")
    if [ "$errors" -eq 0 ] && [ "$left" = 0 ] && [ "$bystander" = 1001 ] && [ "$erasures" = 1 ]; then
        passed=$((passed + 1)); echo "ok round $round: no event of the erased UID left, the bystander's 1001 events kept"
    else
        failed=$((failed + 1)); echo "FAILED round $round: $errors errors, $left victim events left, $bystander bystander events, $erasures erasures"
        sed 's/^/    /' "/tmp/erasure_race.$$" | head -5
    fi
done
rm -f "/tmp/erasure_race.$$"
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB" >/dev/null
echo "erasure race: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
