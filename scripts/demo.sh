#!/usr/bin/env bash
# Sets up everything, builds and installs the extension, starts a throwaway
# local cluster, replays the seed's Day 1 / Day 3 / Day 7 story and prints the
# merged customer profile; then starts the collector with a sample shop and the
# dashboard (demo/web.sh) and prints their URLs, to click through the same story
# in a browser. Everything keeps running so you can explore it.
#   scripts/demo.sh            the SQL story, then the shop and the dashboard
#   scripts/demo.sh --sql      the SQL story only
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
echo "demo: building and installing cdp_identity"
cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null
export CDP_CLUSTER=demo CDP_PGPORT=${CDP_PGPORT:-54330}
scripts/cluster.sh start
PSQL=(scripts/cluster.sh psql -X -q -v ON_ERROR_STOP=1)
PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS cdp_demo" -c "CREATE DATABASE cdp_demo"
"${PSQL[@]}" -d cdp_demo -c "CREATE EXTENSION cdp_identity"
"${PSQL[@]}" -d cdp_demo -f demo/seed_story.sql
eval "$(scripts/cluster.sh env)"
cat <<TXT

The demo database is running. Connect with:
    psql -h $PGHOST -p $PGPORT -U postgres cdp_demo
Stop it with:
    CDP_CLUSTER=demo scripts/cluster.sh stop      (destroy: ... destroy)
TXT
[ "${1:-}" = --sql ] || exec demo/web.sh
