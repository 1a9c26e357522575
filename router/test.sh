#!/usr/bin/env bash
# The router's tests: a router and two nodes as separate PostgreSQL clusters on
# ports 54360-54362 (scripts/cluster.sh: CDP_CLUSTER=router/node1/node2), the
# node extension in each node, plproxy + cdp_identity_router on the router, and
# a single-node reference database on node1's server. Everything the checks are
# is in router/test_router.py; the last line is "router: N passed, M failed".
# Needs: cdp_identity installed (cargo pgrx install), postgresql-15-plproxy,
# python3-venv. Takes about two minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export PATH=/usr/lib/postgresql/15/bin:$PATH

if [ ! -f /usr/share/postgresql/15/extension/plproxy.control ]; then
    apt-get install -y -q postgresql-15-plproxy >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q postgresql-15-plproxy >/dev/null; }
fi
"$here/install.sh" >/dev/null

venv=${CDP_ROUTER_VENV:-/var/tmp/cdp_identity/router-venv}
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "psycopg[binary]==3.3.9" "psycopg-binary==3.3.9" "typing_extensions==4.16.0"
fi

clusters=(router:54360 node1:54361 node2:54362)
unset CDP_BASE CDP_PGDATA  # (the caller's cluster; these are the router's own)
cluster() { CDP_CLUSTER=${1%%:*} CDP_PGPORT=${1##*:} CDP_SHARED_BUFFERS=64MB "$root/scripts/cluster.sh" "$2"; }
cleanup() { for c in "${clusters[@]}"; do cluster "$c" destroy >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
for c in "${clusters[@]}"; do cluster "$c" destroy; cluster "$c" start; done

"$venv/bin/python" "$here/test_router.py"
