#!/usr/bin/env bash
# The router's overhead per call against calling the node directly, and one
# portal's limits through the router, printed as markdown tables (the main
# benchmark includes them). Starts its own router + 2 nodes (ports 54360-54362,
# the test topology; do not run it beside router/test.sh) and stops them after.
#   router/bench.sh            (CDP_ROUTER_BENCH_CALLS=2000, CDP_ROUTER_BENCH_SECONDS=5)
set -euo pipefail
export CDP_FSYNC=on  # (the figures go into BENCHMARKS.md: durable commits, as in production)
. "$(dirname "$0")/topology.sh"
"$venv/bin/python" "$here/bench_router.py"
