#!/usr/bin/env bash
# How long ALTER EXTENSION cdp_identity UPDATE takes on a large database:
# a database at the previous release (its library built from its commit by
# tests/releases.sh) is bulk-loaded with EVENTS events and proportional
# visitors, customers and merges, analyzed, then updated to the current
# release; prints the sizes and the time. Runs on a private cluster with
# fsync on (port 54334). Assumes the current release is installed (the test
# command or bench/run.sh installs it).
#   bench/update_time.sh [events]      default 5000000
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-5000000}
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
EXTDIR=$($PG_CONFIG --sharedir)/extension
LIBDIR=$($PG_CONFIG --pkglibdir)
current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$EXTDIR/cdp_identity.control")
previous=$(grep -v '^#' sql/released/RELEASES | awk -v c="$current" '$1 != c {v = $1} END {print v}')
read -r _ lib name < <(tests/releases.sh | grep "^$previous ")
install -m 755 "$lib" "$LIBDIR/$name"
cp "sql/released/cdp_identity--$previous.sql" sql/cdp_identity--*--*.sql "$EXTDIR/"
[ -e "sql/released/cdp_identity--$previous.control" ] && cp "sql/released/cdp_identity--$previous.control" "$EXTDIR/"

export CDP_CLUSTER=update CDP_PGPORT=${CDP_UPDATE_PORT:-54334} CDP_FSYNC=on
scripts/cluster.sh destroy
scripts/cluster.sh start
trap 'scripts/cluster.sh destroy' EXIT
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
Q=(psql -X -q -A -t -v ON_ERROR_STOP=1 -d cdp_update)
psql -X -q -d postgres -c "CREATE DATABASE cdp_update"
"${Q[@]}" -c "CREATE EXTENSION cdp_identity VERSION '$previous'"
visitors=$((EVENTS / 5)); customers=$((visitors / 5))
start=$(date +%s)
# The previous release's schema (no portal column), filled the way the API fills it.
"${Q[@]}" <<SQL
INSERT INTO cdp.profiles (profile_id, customer_id, identified_at) SELECT g, 'c-' || g, now() FROM generate_series(1, $customers) g;
INSERT INTO cdp.profiles (profile_id, merged_into, merged_at, system, system_at)
SELECT $customers + g, CASE WHEN g % 2 = 0 THEN 1 + g % $customers END, CASE WHEN g % 2 = 0 THEN now() END,
       jsonb_build_object('user_agent', 'UA-' || g % 50, 'device_id', 'd-' || g), now()
FROM generate_series(1, $visitors) g;
SELECT FROM (SELECT setval('cdp.profiles_profile_id_seq', $customers + $visitors)) s;
INSERT INTO cdp.uids (uid, profile_id, last_device_id) SELECT 'u-' || g, $customers + g, 'd-' || g FROM generate_series(1, $visitors) g;
INSERT INTO cdp.identifiers (kind, value, profile_id) SELECT 'device_id', 'd-' || g, $customers + g FROM generate_series(1, $visitors) g;
INSERT INTO cdp.identifiers (kind, value, profile_id) SELECT 'email', 'p' || g || '@example.com', g FROM generate_series(1, $customers) g;
INSERT INTO cdp.profile_attributes (profile_id, key, value, set_at, source) SELECT g, 'name', to_jsonb('N' || g), now(), 'identify' FROM generate_series(1, $customers) g;
INSERT INTO cdp.merges (kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time)
SELECT 'merge', $customers + g, 1 + g % $customers, 'uid', 'u-' || g, 'u-' || g, 'exact', now() FROM generate_series(2, $visitors, 2) g;
INSERT INTO cdp.events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
SELECT $customers + 1 + g % $visitors, 'u-' || (1 + g % $visitors), 'pageview', 'view', now() - g * interval '1 second',
       's' || g / 10, 'm-' || g, jsonb_build_object('context', jsonb_build_object('page_url', 'https://shop.example/p/' || g % 97))
FROM generate_series(1, $EVENTS) g;
ANALYZE;
SQL
loaded=$(($(date +%s) - start))
size=$("${Q[@]}" -c "SELECT pg_size_pretty(pg_database_size('cdp_update'))")
relfile=$("${Q[@]}" -c "SELECT pg_relation_filenode('cdp.events')")
start=$(date +%s%N)
"${Q[@]}" -c "ALTER EXTENSION cdp_identity UPDATE"
took=$((($(date +%s%N) - start) / 1000000))
rewritten=$([ "$("${Q[@]}" -c "SELECT pg_relation_filenode('cdp.events')")" = "$relfile" ] && echo no || echo YES)
echo "update: $previous -> $current of a database with $EVENTS events, $visitors visitors, $customers customers ($size, loaded in ${loaded} s): ${took} ms; events table rewritten: $rewritten"
