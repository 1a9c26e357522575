#!/usr/bin/env bash
# End-to-end tests in a real browser: Debian's chromium (headless, driven by
# playwright-core; no browser is ever downloaded) loads a small test site that
# uses the web SDK's snippet, the SDK sends to cdp-collector, the collector to
# PostgreSQL; the tests assert on the database (psql), and drive the dashboard.
#
#   tests/browser/test.sh [NAME...]   (from anywhere; as root, with the extension
#                                      installed in the system PostgreSQL 15)
#   NAME: run only NAME.test.mjs (e.g. `tests/browser/test.sh delivery`); default: every file
#
# It installs the node packages (npm ci, only when package-lock.json changed),
# builds the SDK (sdk/web/dist/cdp.js) and the collector (release) when needed,
# starts its own cluster (scripts/cluster.sh, CDP_CLUSTER=browser, port CDP_BROWSER_PGPORT or 54370,
# password logins for every role but postgres), creates the database, a
# collector role that is only cdp_writer, a reader and an admin dashboard role,
# portal 'verified' (identity_verification = required), writes the collector
# config, starts the collector serving tests/browser/site/ (and demo/shop/ under
# /shop/) and the dashboard,
# runs tests/browser/*.test.mjs with node's test runner and stops everything.
# Artifacts (the dashboard screenshot, the collector log) go to
# tests/browser/artifacts/. Ends with one line "browser: N passed, M failed";
# exits non-zero on failure.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
# Its own cluster whatever the caller's cluster settings are (CDP_BASE / CDP_PGPORT name the caller's).
unset CDP_BASE CDP_PGDATA
export CDP_CLUSTER=browser CDP_PGPORT=${CDP_BROWSER_PGPORT:-54370}
PGBIN=/usr/lib/postgresql/15/bin
CHROMIUM=${CDP_CHROMIUM:-/usr/bin/chromium}
DB=cdp_browser
COLLECTOR_ROLE=browser_collector
READER=browser_reader
ADMIN=browser_admin
ARTIFACTS=$HERE/artifacts
work=$(mktemp -d)
collector_pid=

cleanup() {
    if [ -n "$collector_pid" ]; then
        kill -TERM "$collector_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$collector_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$collector_pid" 2>/dev/null
    fi
    [ -f "$work/collector.log" ] && cp "$work/collector.log" "$ARTIFACTS/collector.log" 2>/dev/null
    scripts/cluster.sh stop >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

fail() {  # fail WHY: a setup step failed
    echo "$1" >&2
    echo "browser: 0 passed, 1 failed"
    exit 1
}

t0=$(date +%s)
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png "$ARTIFACTS/collector.log"

# ---------------------------------------------------------------- prerequisites
command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || fail "Node.js 20 or later is needed"
[ -x "$CHROMIUM" ] || fail "no chromium at $CHROMIUM (apt-get install chromium; scripts/setup.sh does it)"
[ -f "$("$PGBIN/pg_config" --sharedir)/extension/cdp_identity.control" ] ||
    fail "the extension is not installed in $PGBIN: run scripts/test.sh or cargo pgrx install first"

npm_ci() {  # npm_ci DIR: npm ci there when its package-lock.json changed since the last install
    local stamp=$1/node_modules/.package-lock.sha256 lock
    lock=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
        (cd "$1" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) || return 1
        echo "$lock" >"$stamp"
    fi
}
echo "== node packages"
npm_ci "$HERE" || fail "npm ci failed in tests/browser"

echo "== the web SDK"
sdk=sdk/web
if [ ! -s $sdk/dist/cdp.js ] || [ -n "$(find $sdk/src $sdk/build.mjs $sdk/package-lock.json -newer $sdk/dist/cdp.js 2>/dev/null | head -1)" ]; then
    npm_ci $sdk || fail "npm ci failed in sdk/web"
    (cd $sdk && npm run --silent build) || fail "the SDK build failed"
fi

echo "== the collector"
cargo build --release -p cdp_collector >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "cargo build -p cdp_collector failed"; }
BIN=$ROOT/target/release/cdp-collector
t_built=$(date +%s)

# ---------------------------------------------------------------- the cluster
echo "== cluster '$CDP_CLUSTER' on port $CDP_PGPORT"
scripts/cluster.sh destroy >/dev/null 2>&1
scripts/cluster.sh start || fail "the cluster did not start"
eval "$(scripts/cluster.sh env)"
export PGHOST PGPORT PGUSER PGDATABASE=$DB
# Passwords count: every role but postgres logs in with scram-sha-256.
hba=/var/tmp/cdp_identity/$CDP_CLUSTER/data/pg_hba.conf
{ printf 'local all postgres trust\nlocal all all scram-sha-256\n'; cat "$hba"; } >"$work/hba"
cat "$work/hba" >"$hba"
psql -X -q -d postgres -c 'SELECT pg_reload_conf()' >/dev/null || fail "reload failed"

collector_pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
dash_pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres >"$work/setup.log" 2>&1 <<SQL || { cat "$work/setup.log"; fail "database setup failed"; }
CREATE DATABASE $DB;
\c $DB
CREATE EXTENSION cdp_identity;
CREATE ROLE $COLLECTOR_ROLE LOGIN PASSWORD '$collector_pw';
GRANT cdp_writer TO $COLLECTOR_ROLE;
CREATE ROLE $READER LOGIN PASSWORD '$dash_pw';
GRANT cdp_reader TO $READER;
CREATE ROLE $ADMIN LOGIN PASSWORD '$dash_pw';
GRANT cdp_admin TO $ADMIN;
SELECT cdp.create_portal('verified', '{"identity_verification": "required", "identity_secret": "$secret"}');
SELECT cdp.grant_portal('$COLLECTOR_ROLE', 'verified');
SELECT cdp.grant_portal('$READER', 'verified');
SQL

# ---------------------------------------------------------------- the collector
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$port
mkdir -p "$work/site"
cp "$HERE"/site/* "$work/site/"
cp $sdk/dist/cdp.js "$work/site/cdp.js"
# The demo shop (demo/shop/, demo/web.sh) under /shop/, so its click-through is tested too.
mkdir -p "$work/site/shop"
cp demo/shop/* "$work/site/shop/"
cp $sdk/dist/cdp.js "$work/site/shop/cdp.js"
cat >"$work/collector.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
shutdown_timeout_secs = 5
retry_after_secs = 1

[log]
level = "info,tower_http=warn"

[database]
url = "host=$PGHOST port=$PGPORT dbname=$DB user=$COLLECTOR_ROLE"
pool_size = 4

[rate_limit]
per_second = 1000
burst = 1000

[portals.default]
write_keys = ["wk_browser_default", "wk_demo_shop"]
allowed_origins = ["$BASE"]

[portals.verified]
write_keys = ["wk_browser_verified"]
allowed_origins = ["$BASE"]

[dashboard]
enabled = true
path = "/dashboard"
login_attempts_per_minute = 60

[static_files]
dir = "$work/site"
path = "/"
TOML
echo "== collector on $BASE"
CDP_COLLECTOR_DATABASE_PASSWORD=$collector_pw RUST_LOG= "$BIN" --config "$work/collector.toml" >/dev/null 2>"$work/collector.log" &
collector_pid=$!
up=
for _ in $(seq 100); do
    if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$collector_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$up" ] || { cat "$work/collector.log"; fail "the collector did not start"; }

# ---------------------------------------------------------------- the tests
echo "== browser tests"
files=("$HERE"/*.test.mjs)
[ $# -gt 0 ] && files=("${@/#/$HERE/}") && files=("${files[@]/%/.test.mjs}")
tap=$work/tap
CDP_BROWSER_BASE=$BASE CDP_CHROMIUM=$CHROMIUM CDP_ARTIFACTS=$ARTIFACTS \
CDP_ADMIN_ROLE=$ADMIN CDP_READER_ROLE=$READER CDP_DASH_PASSWORD=$dash_pw \
    node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" "${files[@]}"
status=$?
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap")
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap")
passed=${passed:-0}
failed=${failed:-0}
todo=$(sed -n 's/^# todo \([0-9]*\)$/\1/p' "$tap")
[ "${todo:-0}" -gt 0 ] && echo "($todo todo: known issues, listed with their reason above; not counted)"
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1 # the runner itself failed
if [ "$failed" -ne 0 ]; then
    echo "-- collector log (last 30 lines; all of it in tests/browser/artifacts/collector.log)"
    tail -30 "$work/collector.log"
fi
echo "(builds $((t_built - t0)) s, cluster and tests $(($(date +%s) - t_built)) s)"
echo "browser: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
