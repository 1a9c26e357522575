#!/usr/bin/env bash
# Behaviour 10: many sessions calling track_event / identify at once for
# overlapping UIDs and customer ids. Real concurrent connections (one psql
# each); afterwards the invariants are checked in SQL. Any error reaching a
# client (deadlock, serialization failure, unique violation, ...) fails the test.
#   tests/concurrency.sh [clients] [calls per client]
set -uo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cluster.sh env)"; export PGHOST PGPORT PGUSER
CLIENTS=${1:-8}
CALLS=${2:-400}
DB=cdp_concurrency
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ADMIN=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres)
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null || exit 1
psql -X -q -d $DB -c "CREATE EXTENSION cdp_identity" >/dev/null || exit 1
# Operators undo merges (and review predicted matches) while traffic goes on. Picking a merge happens before
# the call takes its lock, so another client may have undone it already: only
# that answer is tolerated.
psql -X -q -d $DB >/dev/null <<'SQL' || exit 1
CREATE FUNCTION unmerge_some(seed int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE m bigint;
BEGIN
    SELECT merge_id INTO m FROM cdp.merges WHERE kind = 'merge' AND undone_at IS NULL
    ORDER BY hashint4(merge_id::int # seed) LIMIT 1;
    IF m IS NOT NULL THEN
        PERFORM cdp.unmerge(m, cascade => true);
    END IF;
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    IF SQLERRM NOT LIKE '%already undone%' THEN RAISE; END IF;
END $$;
-- Reviewers accept or reject predicted matches meanwhile; a suggestion decided
-- or a profile merged by someone else in between is the only tolerated answer.
CREATE FUNCTION review_some(seed int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
    SELECT suggestion_id INTO s FROM cdp.match_suggestions WHERE status = 'open'
    ORDER BY hashint4(suggestion_id::int # seed) LIMIT 1;
    IF s IS NOT NULL THEN
        IF seed % 2 = 0 THEN PERFORM cdp.accept_suggestion(s); ELSE PERFORM cdp.reject_suggestion(s); END IF;
    END IF;
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    IF SQLERRM NOT LIKE '%already%' AND SQLERRM NOT LIKE '%no longer anonymous%' THEN RAISE; END IF;
END $$;
SQL

# Each client replays a random mix (with some unmerges) over a small shared pool of UIDs, devices
# and customers, so clients collide all the time: the same new UID at once,
# the same customer signing in on two UIDs, the same anonymous profile wanted
# by two customers (shared devices), shared browsers, retries of one message id.
python3 - "$WORK" "$CLIENTS" "$CALLS" <<'PY'
import json, random, sys
work, clients, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def lit(s): return "'" + s.replace("'", "''") + "'"
for c in range(clients):
    rnd = random.Random(1000 + c)
    lines = []
    for i in range(calls):
        uid = f"u{rnd.randrange(40)}"
        device = f"d{rnd.randrange(12)}"
        # a retry: the same message id as another client's call is likely
        msg = f"m{rnd.randrange(calls * clients // 2)}" if rnd.random() < 0.5 else f"c{c}-{i}"
        ctx = {"device_id": device, "session_id": f"s{rnd.randrange(30)}", "message_id": msg}
        r = rnd.random()
        if r < 0.08:
            # a batch of page views and lead forms over the shared pool
            items = []
            for j in range(rnd.randrange(2, 25)):
                bctx = {"device_id": f"d{rnd.randrange(12)}", "session_id": f"s{rnd.randrange(30)}",
                        "message_id": f"m{rnd.randrange(calls * clients // 2)}" if rnd.random() < 0.5 else f"c{c}-{i}-{j}"}
                bpayload = {"context": bctx}
                if rnd.random() < 0.1:
                    bpayload["dims"] = {"customers": {"email": f"p{rnd.randrange(15)}@example.com"}}
                items.append({"uid": f"u{rnd.randrange(40)}", "category": "pageview", "action": "view", "payload": bpayload})
            lines.append(f"SELECT cdp.track_batch({lit(json.dumps(items))});")
        elif r < 0.10:
            lines.append(f"SELECT unmerge_some({rnd.randrange(1000000)});")
        elif r < 0.11:
            lines.append(f"SELECT review_some({rnd.randrange(1000000)});")
        elif r < 0.65:
            payload = {"context": ctx}
            lines.append(f"SELECT cdp.track_event({lit(uid)}, 'pageview', 'view', {lit(json.dumps(payload))});")
        elif r < 0.75:
            payload = {"dims": {"customers": {"email": f"p{rnd.randrange(15)}@example.com"}}, "context": ctx}
            lines.append(f"SELECT cdp.track_event({lit(uid)}, 'form', 'submit', {lit(json.dumps(payload))});")
        elif r < 0.93:
            cid = f"cust{rnd.randrange(10)}"
            payload = {"dims": {"customers": {"customer_id": cid, "email": f"p{rnd.randrange(15)}@example.com", "seen": i}},
                       "extra": {"identify_id": cid, "identify_type": rnd.choice(["exact", "predict"])},
                       "context": dict(ctx, user_agent=f"UA-{rnd.randrange(3)}", ip=f"10.0.{rnd.randrange(4)}.{rnd.randrange(250)}")}
            lines.append(f"SELECT cdp.track_event({lit(uid)}, 'user', 'sign_in', {lit(json.dumps(payload))});")
        else:
            cid = f"cust{rnd.randrange(10)}"
            lines.append(f"SELECT cdp.identify({lit(uid)}, {lit(cid)}, {lit(json.dumps({'n': i}))});")
    open(f"{work}/client{c}.sql", "w").write("\n".join(lines) + "\n")
PY

start=$(date +%s%N)
for c in $(seq 0 $((CLIENTS - 1))); do
    psql -X -q -v ON_ERROR_STOP=1 -d $DB -f "$WORK/client$c.sql" >/dev/null 2>"$WORK/client$c.err" &
    echo $! >"$WORK/client$c.pid"
done
errors=0
for c in $(seq 0 $((CLIENTS - 1))); do
    if ! wait "$(cat "$WORK/client$c.pid")"; then errors=$((errors + 1)); fi
    if [ -s "$WORK/client$c.err" ]; then sed "s/^/    client $c: /" "$WORK/client$c.err" | head -5; fi
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
echo "concurrency: $CLIENTS clients x $CALLS calls in ${elapsed_ms} ms, $errors clients saw an error"

# The invariants, each one assertion (tests/invariants.sql, shared with tests/crash.py).
sent_messages=$(cat "$WORK"/client*.sql | grep -o '"message_id": "[^"]*"' | sort -u | wc -l)
sent_uids=$(cat "$WORK"/client*.sql | grep -oE "cdp\.[a-z_]*\('u[0-9]+'|\"uid\": \"u[0-9]+\"" | grep -oE "u[0-9]+" | sort -u | wc -l)
out=$(psql -X -q -o /dev/null -v ON_ERROR_STOP=1 -d $DB -v sent_messages="$sent_messages" -v sent_uids="$sent_uids" \
          -v customers=10 -v expect_unmerges=1 -v expect_identified=1 <tests/invariants.sql 2>&1)
status=$?
checks=$(grep -c 'NOTICE:  ok ' <<<"$out")
grep -v 'NOTICE:  ok ' <<<"$out" | sed 's/^/    /'
failed=$errors
[ $status -ne 0 ] && failed=$((failed + 1))
echo "concurrency: $checks invariants held"
echo "concurrency: $((checks)) passed, $failed failed"
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB" >/dev/null
[ $failed -eq 0 ]
