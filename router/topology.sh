# Sourced by router/test.sh and router/bench.sh: installs what the router
# needs (PL/Proxy, the router extension's files, a Python venv with psycopg),
# then starts a router and two nodes as separate clusters on ports
# 54360-54362 and destroys them when the caller exits. Sets $venv.
# (CDP_SHARED_BUFFERS and CDP_FSYNC, when the caller exports them, apply to
# the three clusters.)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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
cluster() { CDP_CLUSTER=${1%%:*} CDP_PGPORT=${1##*:} "$root/scripts/cluster.sh" "$2"; }
cleanup() { for c in "${clusters[@]}"; do cluster "$c" destroy >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
for c in "${clusters[@]}"; do cluster "$c" destroy; cluster "$c" start; done
