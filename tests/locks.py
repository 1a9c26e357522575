#!/usr/bin/env python3
"""The identity lock: per portal, taken only by the extension, bounded waits,
one lock order for every path. Real concurrent sessions (one psql each):

  1. advisory locks on any key (the key 0.1 used among them) block neither
     ingestion nor identify;
  2. while a transaction holds portal A's identity lock, identify in portal B
     runs (portals never wait for each other) and identify in A fails with
     55P03 after A's lock_timeout, with a hint, instead of hanging;
  3. track_event followed by identify inside one explicit transaction, from
     8 sessions at once on overlapping UIDs and customer ids, never deadlocks
     (ROUNDS rounds);
  4. track_event of new UIDs while forget_uid / forget_customer run, never
     deadlocks and leaves nothing of the erased UIDs (ROUNDS rounds).
Usage: tests/locks.py [rounds] (default 20; needs the test cluster).
"""
import os
import random
import subprocess
import sys
import time

from cluster_env import env_of_cluster

DB = "cdp_locks"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def psql(sql, check=True):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", DB], input=sql,
                         capture_output=True, text=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    if check and out.returncode != 0:
        sys.exit(f"locks: psql failed: {out.stderr}")
    return out


def session(sql):
    """A psql session running `sql` in the background."""
    return subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", DB], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def run_all(scripts, timeout=300):
    procs = [session(s) for s in scripts]
    outs = [p.communicate(s, timeout=timeout) for p, s in zip(procs, scripts)]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def stop(holder):
    """Ends a holding session and its backend (a killed psql leaves its backend sleeping)."""
    holder.kill()
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
         " AND query LIKE '%pg_sleep(30)%'")
    time.sleep(0.3)


def main():
    env_of_cluster()
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", "-c", f"CREATE DATABASE {DB}"],
                   check=True, capture_output=True)
    psql("CREATE EXTENSION cdp_identity; SELECT cdp.create_portal('a', '{\"lock_timeout\": 300}'); SELECT cdp.create_portal('b');")
    passed = failed = 0

    def check(ok, label):
        nonlocal passed, failed
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(("ok " if ok else "FAILED ") + label)

    # 1. Advisory locks held by anybody block nothing.
    holder = session("")
    holder.stdin.write("SELECT pg_advisory_lock(x'43445001'::int, 0), pg_advisory_lock(1), pg_advisory_lock(x'43445001'::int::bigint);\n"
                       "SELECT pg_advisory_lock_shared(0); SELECT pg_sleep(30);\n")
    holder.stdin.flush()
    time.sleep(0.5)
    out = psql("SET statement_timeout = '5s'; SELECT cdp.track_event('adv-new', 'pageview', 'view', '{\"context\": {\"device_id\": \"adv\"}}');"
               "SELECT cdp.identify('adv-new', 'adv-customer') IS NOT NULL;", check=False)
    stop(holder)
    check(out.returncode == 0, f"advisory locks on any key (0.1's among them) block neither ingestion nor identify {out.stderr.strip()}")

    # 2. A portal's lock: other portals do not wait, its own calls fail with 55P03 after lock_timeout.
    holder = session("")
    holder.stdin.write("SET cdp.portal = 'a'; BEGIN; SELECT cdp.identify('hold', 'holder'); SELECT pg_sleep(30);\n")
    holder.stdin.flush()
    time.sleep(1.0)
    start = time.time()
    other = psql("SET statement_timeout = '5s'; SET cdp.portal = 'b'; SELECT cdp.identify('b-uid', 'b-customer') IS NOT NULL;", check=False)
    check(other.returncode == 0 and time.time() - start < 3, "portal b identifies while portal a's lock is held")
    start = time.time()
    blocked = psql("\\set VERBOSITY verbose\nSET statement_timeout = '10s'; SET cdp.portal = 'a'; SELECT cdp.identify('a-uid', 'a-customer');",
                   check=False)
    waited = time.time() - start
    stop(holder)
    check(blocked.returncode != 0 and "55P03" in blocked.stderr and "lock_timeout (300 ms)" in blocked.stderr and "HINT" in blocked.stderr
          and waited < 5, f"portal a: the wait ends after its lock_timeout with a clear error and a hint ({waited:.2f}s): "
          + blocked.stderr.strip().replace("\n", " | ")[:200])
    state = psql("SET cdp.portal = 'a'; DO $$ BEGIN PERFORM cdp.identify('a-uid2', 'a-customer2'); END $$;", check=False)
    check(state.returncode == 0, "and once the holder is gone, the portal works again")

    # 3. track_event then identify in one transaction, 8 sessions, overlapping UIDs and customers.
    deadlocks = errors = 0
    for r in range(ROUNDS):
        rnd = random.Random(r)
        scripts = []
        for c in range(8):
            lines = []
            for i in range(15):
                uid, cid, dev = f"r{r}-u{rnd.randrange(12)}", f"r{r}-c{rnd.randrange(6)}", f"r{r}-d{rnd.randrange(5)}"
                ctx = '{"context": {"device_id": "%s", "message_id": "r%d-c%d-%d"}}' % (dev, r, c, i)
                lines.append(f"BEGIN; SELECT cdp.track_event('{uid}', 'pageview', 'view', '{ctx}');"
                             f" SELECT cdp.identify('{uid}', '{cid}', '{{\"seen\": {i}}}'); COMMIT;")
            scripts.append("\n".join(lines) + "\n")
        for code, _, err in run_all(scripts):
            deadlocks += "deadlock" in err
            errors += code != 0
    check(deadlocks == 0 and errors == 0,
          f"track_event then identify in one transaction, 8 sessions x 15 transactions x {ROUNDS} rounds: {deadlocks} deadlocks, {errors} errors")
    bad = psql("SELECT count(*) FROM cdp.uids u JOIN cdp.profiles p ON p.portal = u.portal AND p.profile_id = u.profile_id "
               "WHERE u.uid LIKE 'r%-u%' AND coalesce(p.merged_into, p.profile_id) NOT IN "
               "(SELECT profile_id FROM cdp.profiles WHERE customer_id IS NOT NULL)").stdout.strip()
    check(bad == "0", f"every UID of those transactions belongs to a customer afterwards ({bad} do not)")

    # 4. New UIDs tracked while UIDs and customers are erased.
    deadlocks = errors = leftovers = 0
    for r in range(ROUNDS):
        psql(f"SELECT cdp.track_event('e{r}-victim-' || i, 'pageview', 'view') FROM generate_series(1, 5) i;"
             f"SELECT cdp.identify('e{r}-victim-1', 'e{r}-customer');")
        writers = ["\n".join(f"SELECT cdp.track_event('e{r}-new-{c}-{i}', 'pageview', 'view', '{{\"context\": {{\"device_id\": \"e{r}-d{i % 3}\"}}}}');"
                             f" SELECT cdp.track_event('e{r}-victim-{2 + i % 4}', 'pageview', 'view');" for i in range(40)) + "\n"
                   for c in range(4)]
        erasers = [f"SELECT pg_sleep(0.0{r % 5}); SELECT cdp.forget_customer('e{r}-customer');"
                   + "".join(f" SELECT cdp.forget_uid('e{r}-victim-{k}');" for k in (2, 3)) + "\n"]
        for code, _, err in run_all(writers + erasers):
            deadlocks += "deadlock" in err
            errors += code != 0
        left = psql(f"SELECT count(*) FROM cdp.events WHERE uid IN ('e{r}-victim-1', 'e{r}-victim-2', 'e{r}-victim-3')").stdout.strip()
        leftovers += int(left)
    check(deadlocks == 0 and errors == 0,
          f"new UIDs tracked while forget_customer and forget_uid run, {ROUNDS} rounds: {deadlocks} deadlocks, {errors} errors")
    check(leftovers == 0, f"and nothing of the erased UIDs is left ({leftovers} events)")

    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"], capture_output=True)
    print(f"locks: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
