#!/usr/bin/env bash
# The router's tests: a router and two nodes as separate PostgreSQL clusters on
# ports 54360-54362 (scripts/cluster.sh: CDP_CLUSTER=router/node1/node2), the
# node extension in each node, plproxy + cdp_identity_router on the router, and
# a single-node reference database on node1's server. Everything the checks are
# is in router/test_router.py; the last line is "router: N passed, M failed".
# Needs: cdp_identity installed (cargo pgrx install), postgresql-15-plproxy,
# python3-venv. Takes about two minutes.
set -euo pipefail
export CDP_SHARED_BUFFERS=64MB
. "$(dirname "$0")/topology.sh"
"$venv/bin/python" "$here/test_router.py"
