#!/usr/bin/env python3
"""The change feed never makes a consumer skip a change, whatever the commit
order. Real sessions (one psql each), forced into the order that breaks a
naive "after id N" poll: two identify decisions in two portals (so neither
waits for the other) whose changes are numbered in one order and committed in
the other, with the consumer polling between the two commits. Both xid orders
are tried (the late committer took its transaction id first, or second). The
consumer also LISTENs: each portal's commit notifies it.
Usage: tests/feed.py (needs the test cluster; see scripts/cluster.sh).
"""
import os
import subprocess
import sys

from cluster_env import env_of_cluster

DB = "cdp_feed"


class Session:
    """An interactive psql session: statements go in one at a time, and each
    answer is read up to a marker line."""

    def __init__(self, db=DB):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-d", db], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
        self.marker = 0
        self.log = []  # every line it printed (asynchronous notifications among them)

    def run(self, sql):
        self.marker += 1
        mark = f"__done_{self.marker}__"
        self.proc.stdin.write(f"{sql}\n\\echo {mark}\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"psql ended while running: {sql}\n{''.join(lines)}")
            if line.strip() == mark:
                self.log += lines
                return [l.rstrip("\n") for l in lines]
            lines.append(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


passed = failed = 0


def check(ok, label):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok {label}")
    else:
        failed += 1
        print(f"FAILED {label}")


def poll(consumer, cursor):
    rows = [r.split("|") for r in consumer.run(f"SELECT cursor, change_id, portal, kind FROM cdp.changes_since({cursor});") if "|" in r]
    new_cursor = max([int(r[0]) for r in rows], default=cursor)
    return rows, new_cursor


def scenario(admin, late_takes_xid_first, n):
    """Portal pa's change is numbered first and committed last."""
    pa, pb = f"pa{n}", f"pb{n}"
    admin.run(f"SELECT cdp.create_portal('{pa}'); SELECT cdp.create_portal('{pb}');")
    late, early, consumer = Session(), Session(), Session()
    consumer.run("LISTEN cdp_identity_changes;")
    _, cursor = poll(consumer, 0)
    late.run(f"SET cdp.portal = '{pa}';")
    early.run(f"SET cdp.portal = '{pb}';")
    early.run("BEGIN;")
    late.run("BEGIN;")
    if late_takes_xid_first:
        late.run("SELECT cdp.track_event('a-anon', 'page', 'view');")
        early.run("SELECT cdp.track_event('b-anon', 'page', 'view');")
    else:
        early.run("SELECT cdp.track_event('b-anon', 'page', 'view');")
        late.run("SELECT cdp.track_event('a-anon', 'page', 'view');")
    late.run("SELECT cdp.identify('a-anon', 'a-cust');")   # numbered first
    early.run("SELECT cdp.identify('b-anon', 'b-cust');")  # numbered second
    # (each session sees its own change before it commits)
    ids = {p: s.run(f"SELECT change_id FROM cdp.identity_changes WHERE portal = '{p}' AND kind = 'merge';")[0].strip()
           for p, s in ((pa, late), (pb, early))}
    xids = [l for l in late.run("SELECT pg_current_xact_id();") + early.run("SELECT pg_current_xact_id();") if l.strip()]
    early.run("COMMIT;")
    seen, cursor = poll(consumer, cursor)       # between the commits
    between = [r[2] for r in seen]
    late.run("COMMIT;")
    rows, cursor = poll(consumer, cursor)
    seen += rows
    rows, cursor = poll(consumer, cursor)       # and nothing more, nothing twice
    seen += rows
    consumer.run("SELECT 1;")
    notices = " ".join(consumer.log)
    order = "the late committer took its transaction id first" if late_takes_xid_first else "the late committer took its transaction id second"
    check(int(ids.get(pa, 0)) < int(ids.get(pb, 0)),
          f"{order}: {pa}'s change is numbered before {pb}'s ({ids}), xids {xids}, and committed after it")
    merges = sorted((r[2], r[1]) for r in seen if r[3] == "merge")
    check(merges == sorted([(pa, ids.get(pa)), (pb, ids.get(pb))]),
          f"{order}: the consumer got both changes exactly once (polled between the commits: {between or 'nothing yet'}; in all {merges})")
    check(f'payload "{pa}"' in notices and f'payload "{pb}"' in notices, f"{order}: LISTEN cdp_identity_changes heard both portals")
    for s in (late, early, consumer):
        s.close()


def main():
    env_of_cluster()
    admin_cmd = ["psql", "-X", "-q", "-d", "postgres"]
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(admin_cmd + ["-c", f"DROP DATABASE IF EXISTS {DB}", "-c", f"CREATE DATABASE {DB}"], check=True, env=env,
                   capture_output=True)
    admin = Session()
    admin.run("CREATE EXTENSION cdp_identity;")
    scenario(admin, True, 1)
    scenario(admin, False, 2)
    admin.close()
    subprocess.run(admin_cmd + ["-c", f"DROP DATABASE IF EXISTS {DB}"], env=env, capture_output=True)
    print(f"feed: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
