#!/usr/bin/env bash
# Installs the router extension's files into PostgreSQL's extension directory:
#   router/install.sh [path/to/pg_config]
# Then, in the router database: CREATE EXTENSION cdp_identity_router CASCADE;
# (CASCADE creates plproxy and dblink; the Debian package postgresql-15-plproxy
# provides plproxy, postgresql-contrib dblink.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PG_CONFIG=${1:-${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}}
dir=$("$PG_CONFIG" --sharedir)/extension
install -m 644 "$here/cdp_identity_router.control" "$here"/cdp_identity_router--*.sql "$dir/"
echo "installed cdp_identity_router into $dir"
