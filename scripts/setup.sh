#!/usr/bin/env bash
# Installs what building and testing cdp_identity needs, skipping what is
# already there: PostgreSQL 15 with its server headers and PL/Proxy, clang (for
# pgrx's bindings), sudo, python3 (test workload generator), Node.js and npm,
# Debian's chromium (browser tests) and cargo-pgrx 0.18.0
# wired to the system PostgreSQL. Needs root (or sudo) for apt-get, and a
# Rust toolchain (cargo) on the machine.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
PGRX_VERSION=0.18.0
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
# (nodejs/npm: the web SDK's build and tests and the Node example; python3-venv: the Python example;
# chromium: the browser tests; postgresql-15-plproxy: the multi-node router)
for pkg in postgresql-15 postgresql-server-dev-15 postgresql-client-15 libclang-dev clang sudo python3 python3-venv \
           postgresql-15-plproxy chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo (a Rust toolchain, 1.88 or newer) is required and cannot be installed by this script" >&2
    exit 1
fi
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION (takes several minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --force >/dev/null 2>&1 \
        || cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --force
fi
if ! grep -qs '^pg15 *= *"'"$PG_CONFIG"'"' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    echo "setup: pointing pgrx at the system PostgreSQL 15"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi
