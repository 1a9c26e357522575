#!/usr/bin/env bash
# SQL scenario tests: each tests/sql/*.sql file runs in a fresh database made
# from a template with the extension and tests/sql/_helpers.sql installed.
# Every t.eq/t.ok/t.raises assertion prints "ok ..."; a failed one stops the file.
# Needs a running cluster (scripts/cluster.sh start) with the extension installed.
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
filter=${1:-}

"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS cdp_template" -c "CREATE DATABASE cdp_template" >/dev/null || exit 1
"${PSQL[@]}" -d cdp_template -c "CREATE EXTENSION cdp_identity" -f tests/sql/_helpers.sql >/dev/null || exit 1

passed=0; failed=0; assertions=0
for file in tests/sql/[!_]*.sql; do
    name=$(basename "$file" .sql)
    [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && continue
    db="cdp_test_$name"
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE cdp_template" >/dev/null
    out=$("${PSQL[@]}" -d "$db" -f "$file" 2>&1 >/dev/null)
    status=$?
    count=$(grep -c '^psql:.*NOTICE:  ok \|^NOTICE:  ok ' <<<"$out")
    assertions=$((assertions + count))
    grep -o 'NOTICE:  report .*' <<<"$out" | sed 's/NOTICE:  report /    /'
    if [ $status -eq 0 ] && ! grep -q 'ERROR' <<<"$out"; then
        passed=$((passed + 1)); echo "PASS $name ($count assertions)"
    else
        failed=$((failed + 1)); echo "FAIL $name ($count assertions passed before the failure)"
        grep -v 'NOTICE:  ok ' <<<"$out" | sed 's/^/    /' | tail -20
    fi
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $db" >/dev/null
done
echo "sql scenarios: $assertions assertions"
echo "sql: $passed passed, $failed failed"
[ $failed -eq 0 ]
