#!/usr/bin/env bash
# The application examples, run as an application runs them: examples/python (psycopg 3 with psycopg_pool) and
# examples/node (node-postgres), each against a fresh database cdp_examples on the cluster of scripts/cluster.sh
# (started when it is not running, and stopped again then), each with its own least-privilege login roles:
#   cdp_ex_<example>_app   member of cdp_writer, plus CREATE on the database (the example's own schema and orders table)
#   cdp_ex_<example>_feed  member of cdp_reader: timelines and the change feed
# Each example asserts what it gets back and exits non-zero on the first mismatch.
# Installs what is missing first, idempotently and quietly: a venv at /var/tmp/cdp_identity/examples-venv with
# examples/python/requirements.txt, `npm ci` in examples/node; python3-venv, nodejs and npm with apt-get when missing.
# Prints "ok python example" / "ok node example" (or FAILED with the output), drops the database and the roles, and
# ends with one line "examples: N passed, M failed"; exits non-zero on any failure.
#   tests/examples.sh [python|node]
set -uo pipefail
cd "$(dirname "$0")/.."
STATE=/var/tmp/cdp_identity
VENV=$STATE/examples-venv
DB=cdp_examples
EXAMPLES=${1:-python node}
ROLES="cdp_ex_python_app cdp_ex_python_feed cdp_ex_node_app cdp_ex_node_feed"
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
log=$(mktemp -d)
passed=0; failed=0
started_cluster=0

cleanup() {
    "${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    for role in $ROLES; do "${ADMIN[@]}" -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1; done
    [ "$started_cluster" = 1 ] && scripts/cluster.sh stop
    rm -rf "$log"
}
trap cleanup EXIT

finish() {
    echo "examples: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

fail_all() {  # fail_all MESSAGE: every example fails for the same reason
    for name in $EXAMPLES; do echo "FAILED $name example: $1"; failed=$((failed + 1)); done
    finish
}

apt_install() {  # apt_install PACKAGE...: quietly; only as root on a machine with apt-get
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >"$log/apt" 2>&1 && return 0
    apt-get update -qq >>"$log/apt" 2>&1 && apt-get install -y -qq "$@" >>"$log/apt" 2>&1
}

# --- dependencies ----------------------------------------------------------------------------------------------------
why=""
setup_python() {  # the venv with the pinned requirements, rebuilt only when requirements.txt changed
    local req=examples/python/requirements.txt stamp
    stamp=$(sha256sum "$req" | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$stamp" ] \
        && "$VENV/bin/python" -c 'import psycopg, psycopg_pool' 2>/dev/null; then
        return 0
    fi
    if ! command -v python3 >/dev/null; then
        apt_install python3 python3-venv
        if ! command -v python3 >/dev/null; then why="python3 missing (apt-get install python3 python3-venv failed)"; return 1; fi
    fi
    mkdir -p "$STATE"; rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >"$log/venv" 2>&1; then
        rm -rf "$VENV"  # Debian's python3 without python3-venv: no ensurepip
        if ! apt_install python3-venv || ! python3 -m venv "$VENV" >"$log/venv" 2>&1; then
            rm -rf "$VENV"; why="python3 -m venv missing (apt-get install python3-venv failed)"; return 1
        fi
    fi
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req" >"$log/pip" 2>&1; then
        why="pip install -r $req failed: $(tail -3 "$log/pip")"; return 1
    fi
    echo "$stamp" >"$VENV/.requirements.sha256"
}

setup_node() {  # node and npm, then `npm ci`, redone only when package.json or package-lock.json changed
    local stamp major
    if { ! command -v node || ! command -v npm; } >/dev/null; then
        apt_install nodejs npm
        if { ! command -v node || ! command -v npm; } >/dev/null; then
            why="node or npm missing (apt-get install nodejs npm failed)"; return 1
        fi
    fi
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then why="node $(node --version) is too old (18 or later is needed)"; return 1; fi
    stamp=$(cat examples/node/package.json examples/node/package-lock.json | sha256sum | cut -d' ' -f1)
    [ "$(cat examples/node/node_modules/.cdp-examples-stamp 2>/dev/null)" = "$stamp" ] && return 0
    if ! (cd examples/node && npm ci --no-audit --no-fund --loglevel=error) >"$log/npm" 2>&1; then
        why="npm ci failed: $(tail -3 "$log/npm")"; return 1
    fi
    echo "$stamp" >examples/node/node_modules/.cdp-examples-stamp
}

# --- the database ----------------------------------------------------------------------------------------------------
if ! scripts/cluster.sh status >/dev/null 2>&1; then
    scripts/cluster.sh start >"$log/cluster" 2>&1 || fail_all "the cluster does not start: $(tail -3 "$log/cluster")"
    started_cluster=1
fi
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >"$log/db" 2>&1 \
    || fail_all "CREATE DATABASE $DB: $(cat "$log/db")"
{
    echo "CREATE EXTENSION cdp_identity;"
    for name in python node; do
        echo "DROP ROLE IF EXISTS cdp_ex_${name}_app; DROP ROLE IF EXISTS cdp_ex_${name}_feed;"
        echo "CREATE ROLE cdp_ex_${name}_app LOGIN IN ROLE cdp_writer;"
        echo "CREATE ROLE cdp_ex_${name}_feed LOGIN IN ROLE cdp_reader;"
        echo "GRANT CREATE ON DATABASE $DB TO cdp_ex_${name}_app;"
    done
} | env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >"$log/db" 2>&1 \
    || fail_all "setting up $DB: $(cat "$log/db")"

# --- the examples ----------------------------------------------------------------------------------------------------
run_example() {  # run_example NAME COMMAND...: the example as its own roles, at most 60 s
    local name=$1 status
    shift
    timeout 60 env PGDATABASE="$DB" PGUSER="cdp_ex_${name}_app" CDP_READER_USER="cdp_ex_${name}_feed" "$@" >"$log/$name" 2>&1
    status=$?
    if [ $status -eq 0 ] && grep -q "^$name example: all checks passed$" "$log/$name"; then
        echo "ok $name example"; passed=$((passed + 1))
    else
        [ $status -eq 124 ] && echo "    (timed out after 60 s)" >>"$log/$name"
        echo "FAILED $name example (exit status $status):"; sed 's/^/    /' "$log/$name"; failed=$((failed + 1))
    fi
}

for name in $EXAMPLES; do
    case $name in
        python)
            if setup_python; then run_example python "$VENV/bin/python" examples/python/cdp_example.py
            else echo "FAILED python example: $why"; failed=$((failed + 1)); fi ;;
        node)
            if setup_node; then run_example node node examples/node/example.js
            else echo "FAILED node example: $why"; failed=$((failed + 1)); fi ;;
        *) echo "FAILED $name example: no such example (python, node)"; failed=$((failed + 1)) ;;
    esac
done
finish
