#!/usr/bin/env python3
"""The value frequencies of predicted matching stay right under concurrent
writes: 6 sessions create visitors at once (single events and batches, from
a few shared user agents, screens and networks, some visitors changing
browser later), then every count in cdp.signal_counts must equal what the
profiles recorded: for each value, the profiles recorded with it (a change
of value counts the new one), and for each signal ('*'), all of them.
Usage: tests/signal_counts.py (needs the test cluster; see scripts/cluster.sh).
"""
import json
import os
import random
import subprocess
import sys

from cluster_env import env_of_cluster

DB = "cdp_signal_counts"
SESSIONS, VISITORS = 6, 150


def psql_args(db):
    return ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db]


def ctx(rng, v):
    return {"context": {"user_agent": f"UA-{rng.randrange(4)}", "screen": rng.choice(["390x844", "1920x1080"]),
                        "ip": f"10.{rng.randrange(3)}.0.{v % 250}", "timezone": "Asia/Ho_Chi_Minh", "locale": "vi-VN",
                        "device_id": f"dev-{v}"}}


def script(session, rng):
    lines = []
    for i in range(VISITORS):
        uid = f"s{session}-v{i}"
        if i % 3 == 0:
            batch = [{"uid": uid, "category": "page", "action": "view", "payload": ctx(rng, i)},
                     {"uid": f"{uid}b", "category": "page", "action": "view", "payload": ctx(rng, i + 1000)}]
            lines.append(f"SELECT cdp.track_batch($j${json.dumps(batch)}$j$);")
        else:
            lines.append(f"SELECT cdp.track_event('{uid}', 'page', 'view', $j${json.dumps(ctx(rng, i))}$j$);")
        if i % 10 == 5:  # an earlier visitor switches browser (a new value for its profile)
            later = ctx(rng, i - 5)
            later["context"]["user_agent"] = f"UA-new-{rng.randrange(2)}"
            lines.append(f"SELECT cdp.track_event('s{session}-v{i - 5}', 'page', 'view', $j${json.dumps(later)}$j$, now() + interval '1 minute');")
    return "\n".join(lines) + "\n"


def main():
    env_of_cluster()
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(psql_args("postgres") + ["-c", f"DROP DATABASE IF EXISTS {DB}", "-c", f"CREATE DATABASE {DB}"], check=True, env=env)
    subprocess.run(psql_args(DB) + ["-c", "CREATE EXTENSION cdp_identity"], check=True, env=env)
    seed = int(os.environ.get("CDP_COUNTS_SEED", "20261130"))
    print(f"signal counts: seed {seed}, {SESSIONS} sessions at once")
    procs = []
    for s in range(SESSIONS):
        rng = random.Random(seed * 100 + s)
        p = subprocess.Popen(psql_args(DB), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        p.stdin.write(script(s, rng))
        p.stdin.close()
        procs.append(p)
    errors = [p.stderr.read() for p in procs if p.wait() != 0]
    passed = failed = 0

    def check(ok, label):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(("ok " if ok else "FAILED ") + label)

    check(not errors, f"every session ran without an error {errors[:1]}")
    # Each profile's recorded values: its current ones plus each value it changed from (from its events' contexts).
    out = subprocess.run(psql_args(DB), input="""
        WITH recorded AS (
            -- every distinct value a profile was seen with, in event order: the first one and each change
            SELECT DISTINCT e.profile_id, k.signal, k.value
            FROM cdp.events e,
                 LATERAL (VALUES ('user_agent', e.payload #>> '{context,user_agent}'), ('screen', e.payload #>> '{context,screen}'),
                                 ('timezone', e.payload #>> '{context,timezone}'), ('locale', e.payload #>> '{context,locale}'),
                                 ('device_id', e.payload #>> '{context,device_id}'),
                                 ('ip_network', regexp_replace(e.payload #>> '{context,ip}', '[.][0-9]+$', ''))) AS k(signal, value)
        ), expected AS (
            SELECT signal, value, count(*) AS n FROM recorded GROUP BY 1, 2
            UNION ALL SELECT signal, '*', count(*) FROM recorded GROUP BY 1
        ), counted AS (
            SELECT signal, value, sum(profiles) AS n FROM cdp.signal_counts GROUP BY 1, 2
        )
        SELECT count(*) FILTER (WHERE e.n IS DISTINCT FROM c.n), count(*),
               (SELECT count(*) FROM cdp.profiles), (SELECT sum(profiles) FROM cdp.signal_counts WHERE signal = 'user_agent' AND value = '*')
        FROM expected e FULL JOIN counted c USING (signal, value);
        """, capture_output=True, text=True, env=env)
    wrong, values, profiles, ua_total = (int(x) for x in out.stdout.strip().split("|"))
    check(wrong == 0 and values > 0, f"every count equals the profiles recorded with its value ({values} values and totals, {wrong} wrong)")
    visitors = SESSIONS * (VISITORS + len(range(0, VISITORS, 3)))
    changes = SESSIONS * len(range(5, VISITORS, 10))
    check(profiles == visitors and ua_total == visitors + changes,
          f"{profiles} profiles of {visitors}, {ua_total} user-agent recordings of {visitors + changes} (each browser change counts its new value)")
    subprocess.run(psql_args("postgres") + ["-c", f"DROP DATABASE IF EXISTS {DB}"], env=env)
    print(f"signal counts: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
