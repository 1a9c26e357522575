#!/usr/bin/env bash
# A private PostgreSQL 15 cluster owned by the postgres OS user (initdb refuses
# root), on its own port and socket directory so it never touches a system one.
#   scripts/cluster.sh start|stop|status|psql [args]
# Settings: CDP_PGDATA (default /var/tmp/cdp_identity/<name>/data), CDP_PGPORT
# (default 54329), CDP_CLUSTER (name, default "test"), CDP_FSYNC (default off:
# test clusters are throwaway), CDP_SHARED_BUFFERS (default 256MB).
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
NAME=${CDP_CLUSTER:-test}
BASE=${CDP_BASE:-/var/tmp/cdp_identity/$NAME}
PGDATA=${CDP_PGDATA:-$BASE/data}
PGPORT=${CDP_PGPORT:-54329}
SOCKDIR=$BASE/socket

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres "$@"; fi
}

start() {
    mkdir -p "$BASE" "$SOCKDIR"
    chown postgres:postgres "$BASE" "$SOCKDIR" 2>/dev/null || true
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$BASE/initdb.log"
    fi
    if ! as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$BASE/server.log" -w -t 60 start \
            -o "-p $PGPORT -k $SOCKDIR -c listen_addresses='' -c max_connections=60 -c fsync=${CDP_FSYNC:-off} -c shared_buffers=${CDP_SHARED_BUFFERS:-256MB}" >/dev/null
    fi
}

stop() {
    if [ -s "$PGDATA/PG_VERSION" ]; then
        as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    destroy) stop; rm -rf "$BASE" ;;
    status) as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" status ;;
    env) echo "PGHOST=$SOCKDIR PGPORT=$PGPORT PGUSER=postgres" ;;
    psql) shift; exec psql -h "$SOCKDIR" -p "$PGPORT" -U postgres "$@" ;;
    *) echo "usage: $0 start|stop|destroy|status|env|psql [args]" >&2; exit 2 ;;
esac
