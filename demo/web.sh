#!/usr/bin/env bash
# The browser demo: a sample shop (demo/shop/) whose pages carry the web SDK's snippet, served by
# cdp-collector, which stores the shop's events in the demo database and serves the dashboard.
# Click through the seed's Day 1 / Day 3 / Day 7 story in a browser, then see the merged customer
# in the dashboard.
#
#   demo/web.sh          build what is missing, start (or reuse) the demo cluster and database,
#                        (re)start the collector; prints the URLs and the dashboard login
#   demo/web.sh stop     stops the collector (the cluster: CDP_CLUSTER=demo scripts/cluster.sh stop)
#
# Uses the cluster of scripts/demo.sh (CDP_CLUSTER=demo, port CDP_PGPORT, default 54330) and its
# database cdp_demo; creates the database with the extension when scripts/demo.sh has not run.
# Needs the extension installed in the system PostgreSQL 15 (scripts/demo.sh installs it).
# Settings: CDP_WEB_LISTEN (default 127.0.0.1:8330; 0.0.0.0:8330 to browse from another machine).
# Run as root (the cluster runs as postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
export CDP_CLUSTER=demo CDP_PGPORT=${CDP_PGPORT:-54330}
LISTEN=${CDP_WEB_LISTEN:-127.0.0.1:8330}
PGBIN=/usr/lib/postgresql/15/bin
DB=cdp_demo
STATE=/var/tmp/cdp_identity/demo/web
PIDFILE=$STATE/collector.pid
COLLECTOR_ROLE=demo_collector
ADMIN=demo_admin

stop_collector() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
    if kill -0 "$pid" 2>/dev/null && grep -q cdp-collector "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PIDFILE"
}

if [ "${1:-}" = stop ]; then
    stop_collector
    echo "web demo: the collector is stopped (the cluster: CDP_CLUSTER=demo scripts/cluster.sh stop)"
    exit 0
fi

if [ ! -f "$("$PGBIN/pg_config" --sharedir)/extension/cdp_identity.control" ]; then
    echo "web demo: the extension is not installed in PostgreSQL 15: run scripts/demo.sh first" >&2
    exit 1
fi

# ---------------------------------------------------------------- builds, when needed
sdk=sdk/web
if [ ! -s $sdk/dist/cdp.js ] || [ -n "$(find $sdk/src $sdk/build.mjs $sdk/package-lock.json -newer $sdk/dist/cdp.js 2>/dev/null | head -1)" ]; then
    echo "web demo: building the web SDK"
    stamp=$sdk/node_modules/.package-lock.sha256
    lock=$(sha256sum $sdk/package-lock.json | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
        (cd $sdk && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        echo "$lock" >"$stamp"
    fi
    (cd $sdk && npm run --silent build)
fi
echo "web demo: building the collector (cargo build --release -p cdp_collector)"
cargo build --release -q -p cdp_collector
BIN=$ROOT/target/release/cdp-collector

# ---------------------------------------------------------------- the cluster and the database
scripts/cluster.sh start
eval "$(scripts/cluster.sh env)"
PSQL=(psql -h "$PGHOST" -p "$PGPORT" -U postgres -X -q -v ON_ERROR_STOP=1)
export PGOPTIONS="-c client_min_messages=warning"
if [ "$("${PSQL[@]}" -d postgres -Atc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
    echo "web demo: creating database $DB (scripts/demo.sh fills it with the seed's story)"
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
fi
"${PSQL[@]}" -d $DB -c "CREATE EXTENSION IF NOT EXISTS cdp_identity"

# Passwords count: every role but postgres logs in with scram-sha-256 (postgres keeps trust, as
# scripts/demo.sh prints). Done once; the cluster keeps it.
hba=/var/tmp/cdp_identity/$CDP_CLUSTER/data/pg_hba.conf
if ! head -1 "$hba" | grep -q 'cdp web demo'; then
    { printf '# cdp web demo: passwords for every role but postgres\nlocal all postgres trust\nlocal all all scram-sha-256\n'; cat "$hba"; } >"$hba.new"
    cat "$hba.new" >"$hba" && rm -f "$hba.new"
    "${PSQL[@]}" -d postgres -Atc 'SELECT pg_reload_conf()' >/dev/null
fi

# Passwords: made once, kept (root only) so the login stays the same across runs.
mkdir -p "$STATE"
chmod 700 "$STATE"
[ -s "$STATE/passwords" ] || printf 'collector=%s\nadmin=%s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" \
    "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$STATE/passwords"
chmod 600 "$STATE/passwords"
collector_pw=$(sed -n 's/^collector=//p' "$STATE/passwords")
admin_pw=$(sed -n 's/^admin=//p' "$STATE/passwords")
"${PSQL[@]}" -d $DB >/dev/null <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$COLLECTOR_ROLE') THEN CREATE ROLE $COLLECTOR_ROLE LOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ADMIN') THEN CREATE ROLE $ADMIN LOGIN; END IF;
END \$\$;
ALTER ROLE $COLLECTOR_ROLE PASSWORD '$collector_pw';
ALTER ROLE $ADMIN PASSWORD '$admin_pw';
GRANT cdp_writer TO $COLLECTOR_ROLE;  -- the collector needs nothing else
GRANT cdp_admin TO $ADMIN;            -- the dashboard's Undo needs cdp_admin; cdp_reader would only read
SQL

# ---------------------------------------------------------------- the collector
mkdir -p "$STATE/site"
rm -rf "${STATE:?}/site/"*
cp demo/shop/* "$STATE/site/"
cp $sdk/dist/cdp.js "$STATE/site/cdp.js"
cat >"$STATE/collector.toml" <<TOML
# Written by demo/web.sh; every setting: collector/collector.example.toml
[server]
listen = "$LISTEN"
shutdown_timeout_secs = 5

[database]
url = "host=$PGHOST port=$PGPORT dbname=$DB user=$COLLECTOR_ROLE"
pool_size = 4

[portals.default]
write_keys = ["wk_demo_shop"]
# The shop is served by the collector itself, under whatever host name you browse it with.
allowed_origins = ["*"]

[dashboard]
enabled = true
path = "/dashboard"

[static_files]
dir = "$STATE/site"
path = "/"
TOML
stop_collector
CDP_COLLECTOR_DATABASE_PASSWORD=$collector_pw RUST_LOG= nohup "$BIN" --config "$STATE/collector.toml" \
    >/dev/null 2>"$STATE/collector.log" </dev/null &
echo $! >"$PIDFILE"
port=${LISTEN##*:}
host=${LISTEN%:*}
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
url=http://$host:$port
for _ in $(seq 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then cat "$STATE/collector.log" >&2; echo "web demo: the collector did not start" >&2; exit 1; fi
    sleep 0.1
done
curl -fsS "$url/healthz" >/dev/null || { cat "$STATE/collector.log" >&2; echo "web demo: the collector does not answer on $url" >&2; exit 1; }

cat <<TXT

The demo shop is running (collector pid $(cat "$PIDFILE"), log $STATE/collector.log):

    shop         $url/
    dashboard    $url/dashboard     role: $ADMIN   password: $admin_pw

The seed's story in your browser (tracking-users.txt: Day 1 / Day 3 / Day 7):
  Day 1  Open the shop and look at a product or two: the SDK gives this browser an anonymous UID
         (the footer shows it): Anonymous Profile 1.
  Day 3  Click "Come back another day (new UID)" in the footer (what an expired UID cookie does;
         the device id stays), browse again: a new UID, Anonymous Profile 2.
  Day 7  Sign in (top right) with any email: web_event.track("user", "sign_in", ...) with md5(email)
         as the customer id. A customer profile is created and both anonymous profiles merge into it.
  Then   Open the dashboard, log in as $ADMIN, search for the email: the customer's profile shows
         the merged profiles, the identity graph, the timeline of all three visits and an Undo
         button per merge. "Log out" in the shop calls web_event.resetAnonymousUId(): a new UID.

Database: psql -h $PGHOST -p $PGPORT -U postgres $DB
Stop:     demo/web.sh stop        (the cluster too: CDP_CLUSTER=demo scripts/cluster.sh stop)
TXT
