#!/usr/bin/env bash
# The growth benchmark: builds and installs a release build, starts a fresh
# cluster of its own (fsync on, port 54333), grows one database from 10k to
# 5M events and measures every operation at each size (bench/growth.py), then
# writes the "Growth" section of BENCHMARKS.md and bench/growth.svg.
# `bench/growth.sh --smoke` runs the same code at tiny sizes in seconds and
# writes nothing into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${CDP_BENCH_INSTALLED:-}" ]; then  # the test suite runs the smoke run on the build it installed
    scripts/setup.sh
    echo "growth: building and installing a release build"
    cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null
    export CDP_GROWTH_BUILD="$PWD/target/release/libcdp_identity.so"  # the build just installed, whatever is installed after it
fi
# The run is long and this machine is shared: growth.py pins the build it
# measures (a copy of the library in this directory, which the benchmark
# database's functions load), so that an install of another build in the
# middle of the run does not change what is measured.
export CDP_GROWTH_PIN_DIR=${CDP_BASE:-/var/tmp/cdp_identity/growth}/lib
unset CDP_BASE CDP_PGDATA  # (the caller's cluster; this one is the benchmark's own)
export CDP_CLUSTER=growth CDP_PGPORT=${CDP_GROWTH_PORT:-54333} CDP_FSYNC=on
scripts/cluster.sh destroy
scripts/cluster.sh start
trap 'scripts/cluster.sh destroy' EXIT
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
python3 bench/growth.py "$@"
