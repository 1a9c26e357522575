#!/usr/bin/env bash
# Builds cdp-collector and runs its tests:
#   1. lint: cargo fmt --check and cargo clippy -D warnings of the crate
#   2. unit tests (cargo test --bins)
#   3. the end-to-end test (tests/e2e.rs) against a real, fresh PostgreSQL 15
#      cluster (scripts/cluster.sh, CDP_CLUSTER=collector, port CDP_COLLECTOR_PGPORT or 54350)
#      where every role but postgres logs in with a password (scram-sha-256),
#      with the collector binary started on a free port
# Needs the extension installed in the system PostgreSQL 15 (scripts/test.sh
# or `cargo pgrx install` does it). Run as root (the cluster runs as postgres).
# Ends with one line "collector: N passed, M failed"; exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Its own cluster whatever the caller's cluster settings are (CDP_BASE / CDP_PGPORT name the caller's).
unset CDP_BASE CDP_PGDATA
export CDP_CLUSTER=collector CDP_PGPORT=${CDP_COLLECTOR_PGPORT:-54350}
PGBIN=/usr/lib/postgresql/15/bin
log=$(mktemp -d)
trap 'scripts/cluster.sh stop >/dev/null 2>&1; rm -rf "$log"' EXIT

passed=0; failed=0
count() {  # count NAME LOGFILE STATUS: add the last "N passed, M failed" / "N passed; M failed" of a log
    local line p f
    line=$(grep -Eo '[0-9]+ passed[;,] [0-9]+ failed' "$2" | tail -1)
    p=$(grep -Eo '^[0-9]+' <<<"$line"); f=$(grep -Eo '[0-9]+ failed' <<<"$line" | grep -Eo '^[0-9]+')
    p=${p:-0}; f=${f:-0}
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    echo "== $1: $p passed, $f failed"
}
one() {  # one NAME STATUS: a single check
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok $1"; else failed=$((failed + 1)); echo "FAILED $1"; fi
}
done_() {
    echo "collector: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

echo "== lint"
cargo fmt -p cdp_collector --check >"$log/fmt" 2>&1; s=$?; [ $s -eq 0 ] || head -40 "$log/fmt"; one "cargo fmt --check" $s
cargo clippy -p cdp_collector --all-targets -- -D warnings >"$log/clippy" 2>&1; s=$?
[ $s -eq 0 ] || grep -E '^(error|warning)' -A8 "$log/clippy" | head -60; one "cargo clippy -D warnings" $s

echo "== build"
if ! cargo build -p cdp_collector --bins --tests >"$log/build" 2>&1; then
    tail -40 "$log/build"; failed=$((failed + 1)); done_
fi

echo "== unit tests"
cargo test -p cdp_collector --bins 2>&1 | tee "$log/unit" | grep -E '^test |test result|panicked'
count "unit tests" "$log/unit" "${PIPESTATUS[0]}"

echo "== end-to-end (PostgreSQL cluster '$CDP_CLUSTER' on port $CDP_PGPORT)"
if [ ! -f "$("$PGBIN/pg_config" --sharedir)/extension/cdp_identity.control" ]; then
    echo "the extension is not installed in $PGBIN: run scripts/test.sh or cargo pgrx install first"
    failed=$((failed + 1)); done_
fi
scripts/cluster.sh destroy >/dev/null 2>&1
if ! scripts/cluster.sh start; then failed=$((failed + 1)); done_; fi
# Passwords count: every role but postgres logs in with scram-sha-256.
hba=/var/tmp/cdp_identity/$CDP_CLUSTER/data/pg_hba.conf
{ printf 'local all postgres trust\nlocal all all scram-sha-256\n'; cat "$hba"; } >"$log/hba"
cat "$log/hba" >"$hba"
scripts/cluster.sh psql -qAt -c 'SELECT pg_reload_conf()' >/dev/null
CDP_COLLECTOR_E2E=1 CDP_ROOT="$PWD" cargo test -p cdp_collector --test e2e 2>&1 | tee "$log/e2e" | grep -Ev '^\s*(Compiling|Finished|Running)'
count "end-to-end" "$log/e2e" "${PIPESTATUS[0]}"
scripts/cluster.sh stop
done_
