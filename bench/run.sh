#!/usr/bin/env bash
# The benchmark: builds and installs a release build, starts a fresh cluster
# of its own (fsync on, port 54331) and runs bench/run.py, which writes
# BENCHMARKS.md. `bench/run.sh --smoke` runs every measurement for seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${CDP_BENCH_INSTALLED:-}" ]; then  # the test suite runs the smoke run on the build it installed
    scripts/setup.sh
    echo "bench: building and installing a release build"
    cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null
fi
unset CDP_BASE CDP_PGDATA  # (the caller's cluster; this one is the benchmark's own)
export CDP_CLUSTER=bench CDP_PGPORT=${CDP_BENCH_PORT:-54331} CDP_FSYNC=on
scripts/cluster.sh destroy
scripts/cluster.sh start
trap 'scripts/cluster.sh destroy' EXIT
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
python3 bench/run.py "$@"
