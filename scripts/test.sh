#!/usr/bin/env bash
# Runs every test of cdp_identity, installing what is missing first:
#   0. lint: cargo fmt --check, cargo clippy -D warnings
#   1. cargo pgrx test: Rust unit tests and #[pg_test] tests inside PostgreSQL
#   2. SQL scenario tests (tests/sql/*.sql), one fresh database each
#   3. the concurrency tests: real concurrent connections, then invariants
#      (tests/concurrency.sh, tests/erasure_race.sh), the identity lock
#      (tests/locks.py: 20 rounds of 8 sessions), roles and portals with
#      real login roles (tests/roles.py)
#   4. the components: the HTTP collector (collector/test.sh), the web SDK
#      (sdk/web/test.sh), a real browser through both to the database and the
#      dashboard (tests/browser/test.sh), a router and two nodes (router/test.sh)
#   5. no JIT and index plans on grown tables (tests/plans.py)
#   6. pg_dump / pg_restore of the extension's data
#   7. every released version, filled with data, updated to the current one (tests/upgrade.sh)
#   8. seconds-long runs of the benchmarks (bench/growth.sh, bench/run.sh --smoke), so they cannot rot
# Ends with one line "all: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh || exit 1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
STATE=/var/tmp/cdp_identity
mkdir -p "$STATE"; chown postgres:postgres "$STATE" 2>/dev/null || true
log=$(mktemp -d)
trap 'CDP_CLUSTER=test scripts/cluster.sh stop; rm -rf "$log"' EXIT

passed=0; failed=0
tally() {  # tally NAME LOGFILE STATUS [all]: add a stage's "N passed, M failed" (the last line, or with "all" every line)
    local lines p f
    lines=$(grep -Eo '[0-9]+ passed[;,] [0-9]+ failed' "$2")
    [ "${4:-}" = all ] || lines=$(tail -1 <<<"$lines")
    p=$(grep -Eo '^[0-9]+' <<<"$lines" | awk '{s += $1} END {print s + 0}')
    f=$(grep -Eo '[0-9]+ failed' <<<"$lines" | awk '{s += $1} END {print s + 0}')
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    echo "== $1: $p passed, $f failed"
}

echo "== lint"
if cargo fmt --check >"$log/fmt" 2>&1; then echo "ok cargo fmt --check"; l1=0; else head -40 "$log/fmt"; l1=1; fi
if cargo clippy --all-targets -- -D warnings >"$log/clippy" 2>&1; then echo "ok cargo clippy"; l2=0; else grep -E '^(error|warning)' -A8 "$log/clippy" | head -60; l2=1; fi
echo "lint: $((2 - l1 - l2)) passed, $((l1 + l2)) failed" >"$log/lint"; tally "lint" "$log/lint" 0

echo "== cargo pgrx test"
if [ "$(id -u)" = 0 ]; then
    # initdb refuses root: the test cluster runs as postgres, outside /root.
    export CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$STATE/pgrx-test-data"
fi
cargo pgrx test pg15 2>&1 | tee "$log/pgrx" | grep -E '^test |test result|^error|panicked|FAILED' 
tally "cargo pgrx test" "$log/pgrx" "${PIPESTATUS[0]}" all

echo "== install the extension"
if ! cargo pgrx install --pg-config "$PG_CONFIG" >"$log/install" 2>&1; then
    cat "$log/install"; echo "all: $passed passed, $((failed + 1)) failed"; exit 1
fi
CDP_CLUSTER=test scripts/cluster.sh start || { echo "all: $passed passed, $((failed + 1)) failed"; exit 1; }

echo "== SQL scenarios"
tests/run_sql.sh 2>&1 | tee "$log/sql"; tally "SQL scenarios" "$log/sql" "${PIPESTATUS[0]}"
echo "== concurrency"
tests/concurrency.sh 8 1000 2>&1 | tee "$log/conc"; tally "concurrency" "$log/conc" "${PIPESTATUS[0]}"
echo "== erasure under concurrent traffic"
tests/erasure_race.sh 2>&1 | tee "$log/erasure"; tally "erasure race" "$log/erasure" "${PIPESTATUS[0]}"
echo "== the identity lock: bounded waits, no deadlocks"
python3 tests/locks.py 20 2>&1 | tee "$log/locks"; tally "locks" "$log/locks" "${PIPESTATUS[0]}"
echo "== roles and portals, real login roles"
python3 tests/roles.py 2>&1 | tee "$log/roles"; tally "roles" "$log/roles" "${PIPESTATUS[0]}"
echo "== the change feed: out-of-order commits, LISTEN"
python3 tests/feed.py 2>&1 | tee "$log/feed"; tally "change feed" "$log/feed" "${PIPESTATUS[0]}"
echo "== fuzz: generated input at every public function"
python3 tests/fuzz.py 2>&1 | tee "$log/fuzz" | grep -v '^ok '; tally "fuzz" "$log/fuzz" "${PIPESTATUS[0]}"
echo "== value frequencies under concurrent writes"
python3 tests/signal_counts.py 2>&1 | tee "$log/counts"; tally "signal counts" "$log/counts" "${PIPESTATUS[0]}"
echo "== predicted matching on a realistic population (small)"
python3 tests/predict_eval.py --smoke --expect-goals 2>&1 | tee "$log/peval" | grep -E '^(ok|FAILED|predict eval)'; tally "predict eval" "$log/peval" "${PIPESTATUS[0]}"
echo "== shared computers: accuracy on a simulated population (small)"
python3 tests/shared_devices_sim.py --smoke 2>&1 | tee "$log/sim" | grep -E '^(ok|FAILED|\||shared devices)'; tally "shared devices" "$log/sim" "${PIPESTATUS[0]}"
echo "== forced interleavings of real sessions"
python3 tests/interleave.py 2>&1 | tee "$log/interleave"; tally "interleave" "$log/interleave" "${PIPESTATUS[0]}"
echo "== erasure under load"
python3 tests/erasure_load.py 2>&1 | tee "$log/eload"; tally "erasure load" "$log/eload" "${PIPESTATUS[0]}"
echo "== crash recovery: kill -9 during batches and merges"
python3 tests/crash.py 2>&1 | tee "$log/crash"; tally "crash" "$log/crash" "${PIPESTATUS[0]}"
echo "== HTTP collector and dashboard"
collector/test.sh 2>&1 | tee "$log/collector" | grep -Ev '^ok '; tally "collector" "$log/collector" "${PIPESTATUS[0]}"
echo "== web SDK: unit tests and bundle size"
sdk/web/test.sh 2>&1 | tee "$log/sdk" | tail -15; tally "web SDK" "$log/sdk" "${PIPESTATUS[0]}"
echo "== a real browser: the SDK, the collector, the database and the dashboard"
tests/browser/test.sh 2>&1 | tee "$log/browser" | grep -E '^(✖|not ok|browser:|\(builds)'; tally "browser" "$log/browser" "${PIPESTATUS[0]}"
echo "== several nodes: the PL/Proxy router (a router and two nodes)"
router/test.sh 2>&1 | tee "$log/router" | grep -Ev '^ok '; tally "router" "$log/router" "${PIPESTATUS[0]}"
echo "== application examples (python, node)"
tests/examples.sh 2>&1 | tee "$log/examples"; tally "examples" "$log/examples" "${PIPESTATUS[0]}"
echo "== no JIT, index plans on grown tables"
python3 tests/plans.py 2>&1 | tee "$log/plans"; tally "plans" "$log/plans" "${PIPESTATUS[0]}"
echo "== dump and restore"
tests/dump_restore.sh 2>&1 | tee "$log/dump"; tally "dump/restore" "$log/dump" "${PIPESTATUS[0]}"

echo "== upgrades"
tests/upgrade.sh 2>&1 | tee "$log/upgrade"; tally "upgrades" "$log/upgrade" "${PIPESTATUS[0]}"
echo "== growth benchmark smoke run"
CDP_BENCH_INSTALLED=1 bench/growth.sh --smoke 2>&1 | tee "$log/growth" | grep -E '^(ok|FAILED|growth:)'; tally "growth smoke" "$log/growth" "${PIPESTATUS[0]}"
echo "== benchmark smoke run"
CDP_BENCH_INSTALLED=1 bench/run.sh --smoke 2>&1 | tee "$log/bench" | grep -E '^bench|^\|' | tail -40
tally "benchmark smoke" "$log/bench" "${PIPESTATUS[0]}"

echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
