#!/usr/bin/env bash
# The router's overhead per call against calling the node directly, and one
# portal's limits through the router, printed as markdown tables (the main
# benchmark includes them). Starts its own router + 2 nodes (ports 54360-54362,
# the test topology; do not run it beside router/test.sh) and stops them after.
#   router/bench.sh            (CDP_ROUTER_BENCH_CALLS=2000, CDP_ROUTER_BENCH_SECONDS=5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export PATH=/usr/lib/postgresql/15/bin:$PATH
"$here/install.sh" >/dev/null
venv=${CDP_ROUTER_VENV:-/var/tmp/cdp_identity/router-venv}
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "psycopg[binary]==3.3.9" "psycopg-binary==3.3.9" "typing_extensions==4.16.0"
fi
clusters=(router:54360 node1:54361 node2:54362)
unset CDP_BASE CDP_PGDATA  # (the caller's cluster; these are the router's own)
export CDP_FSYNC=on  # (the figures go into BENCHMARKS.md: durable commits, as in production)
cluster() { CDP_CLUSTER=${1%%:*} CDP_PGPORT=${1##*:} "$root/scripts/cluster.sh" "$2"; }
cleanup() { for c in "${clusters[@]}"; do cluster "$c" destroy >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
for c in "${clusters[@]}"; do cluster "$c" destroy; cluster "$c" start; done
"$venv/bin/python" "$here/bench_router.py"
