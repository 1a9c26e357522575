#!/usr/bin/env python3
"""Erasure under load: cdp.forget_customer of a customer with 100,000 events
while 4 client sessions keep ingesting.

Setup: the big customer (10 UIDs, each first seen anonymously on its own
device, then identified; 100,000 events in all, most through cdp.track_batch
in batches of 1,000), 300 other customers with 2 UIDs each, 500 anonymous
visitors. Load: 4 psql sessions, each fed one cdp.track_event call at a time
(\\timing on, so every call's latency is measured on the client side): page
views of known UIDs (85%), first page views of new UIDs (10%), sign-ins of
those new UIDs as other customers, new or existing (5%); every call carries
its own context.message_id. After a warm-up, a fifth session runs
cdp.forget_customer of the big customer; the clients go on for a while after
it and then stop.

Asserted: the erasure succeeds and removes the customer's 100,000 events and
everything else of it; no ingest call failed or was suppressed; every ingest
call's event is stored (its message id, counted); page views of known UIDs
completed while the erasure ran (appends take no identity lock and the
erasure never locks cdp.events). Reported, not asserted: the erasure's
duration and the latencies of the ingest calls that overlapped it (longest,
median, count; by kind), and of all ingest calls.

Usage: tests/erasure_load.py (needs the test cluster, see scripts/cluster.sh env).
Prints "ok ..." / "FAILED ..." lines, one "report ..." line, last
"erasure load: N passed, M failed".
"""
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

from cluster_env import env_of_cluster

DB = "cdp_erasure_load"
BIG_EVENTS = 100_000
BIG_UIDS = 10
BATCH = 1000
OTHER_CUSTOMERS = 300
VISITORS = 500
CLIENTS = 4
WARM_UP = 1.5      # seconds of load before the erasure starts
TAIL = 1.5         # seconds of load after it ended
IN_FLIGHT = 4      # statements queued ahead in each client's psql
TIME_LINE = re.compile(r"^Time: ([0-9.]+) ms")


def psql(sql, db=DB):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db], input=sql, capture_output=True, text=True,
                         env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()[:500]}")
    return out.stdout.strip()


def lit(text):
    return "'" + text.replace("'", "''") + "'"


def context_of(uid):
    """The context a UID's browser sends with every event (the same each time)."""
    n = sum(map(ord, uid)) % 200
    return ('{"device_id": "dev-%s", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
            'Chrome/120.0.0.0 Safari/537.36", "locale": "en-US", "timezone": "Europe/Berlin", "screen": "1920x1080", '
            '"ip": "203.0.113.%d"' % (uid, n))


def event_payload(uid, message_id, page, extra=None):
    ctx = context_of(uid) + ', "page_url": "https://shop.example.com/%s", "message_id": "%s"}' % (page, message_id)
    dims = ', "dims": %s' % extra if extra else ""
    return '{"context": %s, "extra": {"cart_value": %d}%s}' % (ctx, len(message_id) * 7, dims)


# ---------------------------------------------------------------- setup

def setup():
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", "-c", f"CREATE DATABASE {DB}"],
                   check=True, capture_output=True)
    psql("CREATE EXTENSION cdp_identity")
    # The big customer: each UID first seen anonymously on its own device, then signed in.
    first = []
    for i in range(BIG_UIDS):
        uid = f"big-u{i}"
        first.append(f"SELECT cdp.track_event('{uid}', 'pageview', 'view', {lit(event_payload(uid, f'big-first-{i}', 'home'))});")
    for i in range(BIG_UIDS):
        first.append(f"SELECT cdp.identify('big-u{i}', 'big-customer', '{{\"email\": \"big@example.com\", \"name\": \"Big Spender\"}}');")
    psql("\n".join(first))
    # The rest of its 100,000 events in batches of 1,000 page views of its UIDs, in two
    # sessions at once (page-view batches take no lock) ...
    batches = [[], []]
    remaining, b = BIG_EVENTS - BIG_UIDS, 0
    while remaining > 0:
        n = min(BATCH, remaining)
        batches[b % 2].append(
            "SELECT cdp.track_batch((SELECT jsonb_agg(jsonb_build_object('uid', 'big-u' || (i % 10), 'category', 'pageview', 'action', 'view',"
            " 'payload', jsonb_build_object('context', jsonb_build_object('page_url', 'https://shop.example.com/p/' || i,"
            f" 'message_id', 'big-{b}-' || i), 'extra', jsonb_build_object('n', i)))) FROM generate_series(1, {n}) i)) ->> 'stored';")
        remaining -= n
        b += 1
    # ... while a third makes the other customers (2 UIDs each) and anonymous visitors,
    # each UID with its own browser context.
    other_uids = [f"o{k}-{s}" for k in range(OTHER_CUSTOMERS) for s in "ab"]
    visitors = [f"v{k}" for k in range(VISITORS)]
    others = [f"SELECT cdp.track_event('{uid}', 'pageview', 'view', {lit(event_payload(uid, 'setup-' + uid, 'landing'))});"
              for uid in other_uids + visitors]
    others += [f"SELECT cdp.identify('o{k}-{s}', 'o-customer-{k}', '{{\"email\": \"o{k}@example.com\"}}');"
               for k in range(OTHER_CUSTOMERS) for s in "ab"]
    results = [None] * 3

    def run(i, lines):
        try:
            psql("\n".join(lines))
        except RuntimeError as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, lines)) for i, lines in enumerate(batches + [others])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in results:
        if e:
            raise e
    psql("ANALYZE")
    big = psql("SELECT profile_id FROM cdp.profiles WHERE customer_id = 'big-customer'")
    family = psql(f"SELECT string_agg(id::text, ',') FROM cdp.family_of({big}) id")
    return other_uids + visitors, family


# ---------------------------------------------------------------- load

class Client:
    """One psql session fed one statement at a time (at most IN_FLIGHT queued)."""

    def __init__(self, n, known, stop):
        self.n, self.known, self.stop = n, list(known), stop
        self.rand = random.Random(n)
        self.calls = []           # [kind, message_id, sent, ended, latency ms, result]
        self.errors = []
        self.slots = threading.Semaphore(IN_FLIGHT)
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", DB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning", PGAPPNAME=f"ingest-{n}"))
        self.proc.stdin.write("\\timing on\n")
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.feed, self.read, self.read_errors)]
        self.unidentified = []

    def start(self):
        for t in self.threads:
            t.start()

    def next_call(self, i):
        mid = f"load-{self.n}-{i}"
        r = self.rand.random()
        if r < 0.10 or not self.unidentified:
            uid = f"new-{self.n}-{i}"
            self.unidentified.append(uid)
            self.known.append(uid)
            return "new UID", mid, f"SELECT cdp.track_event('{uid}', 'pageview', 'view', {lit(event_payload(uid, mid, 'landing'))});"
        if r < 0.15:
            # each new UID signs in once (a second customer on it would be a shared browser,
            # whose later page views change the customer's profile and so take the identity lock)
            uid = self.unidentified.pop(self.rand.randrange(len(self.unidentified)))
            cid = f"o-customer-{self.rand.randrange(OTHER_CUSTOMERS)}" if self.rand.random() < 0.5 else f"new-customer-{self.n}-{i}"
            dims = '{"customers": {"customer_id": "%s", "name": "Client %d"}}' % (cid, self.n)
            return "identify", mid, f"SELECT cdp.track_event('{uid}', 'account', 'login', {lit(event_payload(uid, mid, 'login', dims))});"
        uid = self.rand.choice(self.known)
        return "page view", mid, f"SELECT cdp.track_event('{uid}', 'pageview', 'view', {lit(event_payload(uid, mid, 'p/' + str(i)))});"

    def feed(self):
        i = 0
        while not self.stop.is_set():
            self.slots.acquire()
            kind, mid, sql = self.next_call(i)
            self.calls.append([kind, mid, time.monotonic(), None, None, []])
            self.proc.stdin.write(sql + "\n")
            self.proc.stdin.flush()
            i += 1
        self.proc.stdin.close()

    def read(self):
        k = 0
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            m = TIME_LINE.match(line)
            if m:
                call = self.calls[k]
                call[3], call[4] = time.monotonic(), float(m.group(1))
                k += 1
                self.slots.release()
            elif k < len(self.calls):
                self.calls[k][5].append(line)

    def read_errors(self):
        for line in self.proc.stderr:
            self.errors.append(line.rstrip("\n"))

    def join(self):
        for t in self.threads:
            t.join(timeout=120)
        self.proc.wait(timeout=60)


class Sampler:
    """Watches the ingest sessions through pg_stat_activity while the load runs:
    every sample of one waiting for a heavyweight lock, with the call's message
    id, the table of the row it waits for and who blocks it.

    pg_stat_activity's query text is a snapshot taken before the wait event is
    read, so a wait could be paired with the session's previous statement; a
    second look right after keeps only the waits whose session still runs the
    same statement (each statement has its own message id)."""

    WAITS = ("SELECT a.pid || '|' || coalesce(substring(a.query from 'load-[0-9]+-[0-9]+'), '') || '|' || coalesce(a.wait_event, '')"
             " || '|' || coalesce((SELECT string_agg(DISTINCT coalesce(l.relation::regclass::text, l.classid::regclass::text || ' ' || l.objid),"
             "                                         ',') FROM pg_locks l"
             "                     WHERE l.pid = a.pid AND (l.locktype = 'tuple' OR (NOT l.granted AND l.locktype IN ('relation', 'extend', 'object')))),"
             "                    '')"
             " || '|' || coalesce((SELECT string_agg(DISTINCT b.application_name, ',') FROM pg_stat_activity b"
             "                     WHERE b.pid = ANY (pg_blocking_pids(a.pid))), '')"
             " FROM pg_stat_activity a WHERE a.datname = current_database() AND a.application_name LIKE 'ingest-%'"
             " AND a.wait_event_type = 'Lock';")
    AGAIN = ("SELECT pid || '|' || coalesce(substring(query from 'load-[0-9]+-[0-9]+'), '') FROM pg_stat_activity"
             " WHERE pid IN ({});")

    def __init__(self, stop):
        self.stop, self.samples, self.waits, self.unconfirmed = stop, 0, [], 0
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", DB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1, env=dict(os.environ, PGAPPNAME="sampler"))
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def ask(self, sql):
        self.proc.stdin.write(sql + "\n\\echo __sample__\n")
        self.proc.stdin.flush()
        rows = []
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line == "__sample__":
                break
            if line:
                rows.append(line.split("|"))
        return rows

    def run(self):
        while not self.stop.is_set():
            at = time.monotonic()
            waits = self.ask(self.WAITS)
            if waits:
                still = {pid: mid for pid, mid in self.ask(self.AGAIN.format(",".join(w[0] for w in waits)))}
                for pid, mid, event, table, blockers in waits:
                    if mid and still.get(pid) == mid:
                        self.waits.append((at, mid, event, table, blockers))
                    else:
                        self.unconfirmed += 1
            self.samples += 1
            time.sleep(0.002)
        self.proc.stdin.close()
        self.proc.wait()


def run_erasure():
    """forget_customer in its own session, timed by psql (\\timing) and by this process."""
    proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", DB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning",
                                                                       PGAPPNAME="eraser"))
    # Connect and load the library first, so the window is the erasure alone.
    proc.stdin.write("\\timing on\nSELECT cdp.version() IS NOT NULL;\n")
    proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line or line.startswith("Time:"):
            break
    started = time.monotonic()
    proc.stdin.write("SELECT cdp.forget_customer('big-customer');\n")
    proc.stdin.flush()
    report, ms = None, None
    for line in proc.stdout:
        m = TIME_LINE.match(line)
        if m:
            ms = float(m.group(1))
            break
        report = line.strip() or report
    ended = time.monotonic()
    proc.stdin.close()
    err = proc.stderr.read()
    proc.wait()
    return started, ended, ms, report, err


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else 0.0


def main():
    env_of_cluster()
    began = time.monotonic()
    passed = failed = 0

    def check(ok, label):
        nonlocal passed, failed
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(("ok " if ok else "FAILED ") + label, flush=True)
        return ok

    try:
        known, family = setup()
    except RuntimeError as e:
        check(False, f"setup: {e}")
        print(f"erasure load: {passed} passed, {failed} failed")
        sys.exit(1)
    setup_s = time.monotonic() - began
    big_events = int(psql(f"SELECT count(*) FROM cdp.events WHERE profile_id IN ({family})"))
    check(big_events == BIG_EVENTS and len(family.split(",")) == BIG_UIDS + 1,
          f"setup: the big customer has {big_events} events on {len(family.split(','))} profiles, "
          f"{OTHER_CUSTOMERS} other customers, {VISITORS} visitors ({setup_s:.1f}s)")
    events_before = int(psql("SELECT count(*) FROM cdp.events"))

    stop = threading.Event()
    clients = [Client(n, known, stop) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    sampler = Sampler(stop)
    time.sleep(WARM_UP)
    e_start, e_end, e_ms, report, e_err = run_erasure()
    time.sleep(TAIL)
    stop.set()
    for c in clients:
        c.join()
    sampler.thread.join(timeout=30)

    # The erasure.
    m = re.search(r'"events": (\d+)', report or "")
    erased = int(m.group(1)) if m else None
    left = psql(f"SELECT (SELECT count(*) FROM cdp.events WHERE profile_id IN ({family}) OR uid LIKE 'big-%')"
                f" || ',' || (SELECT count(*) FROM cdp.profiles WHERE profile_id IN ({family}))"
                f" || ',' || (SELECT count(*) FROM cdp.uids WHERE uid LIKE 'big-%')"
                f" || ',' || (SELECT count(*) FROM cdp.identifiers WHERE profile_id IN ({family}))"
                f" || ',' || (SELECT count(*) FROM cdp.profile_attributes WHERE profile_id IN ({family}))"
                f" || ',' || (SELECT count(*) FROM cdp.merges WHERE from_profile IN ({family}) OR into_profile IN ({family}))")
    check(not e_err and erased == BIG_EVENTS and left == "0,0,0,0,0,0",
          f"forget_customer removed all {BIG_EVENTS} events of the customer under load (erased {erased}; left events, profiles, "
          f"uids, identifiers, attributes, merges: {left}) {e_err.strip()[:300]}")

    # The ingest calls.
    calls = [call for c in clients for call in c.calls]
    errors = [e for c in clients for e in c.errors]
    unanswered = [call for call in calls if call[4] is None]
    bad = [call for call in calls if call[4] is not None and not (len(call[5]) == 1 and call[5][0].isdigit())]
    check(not errors and not unanswered and not bad,
          f"no ingest call failed or was suppressed ({len(calls)} calls, {len(errors)} error lines, {len(unanswered)} unanswered, "
          f"{len(bad)} without a profile id) {' | '.join(errors[:3])}")
    stored = set(psql("SELECT message_id FROM cdp.events WHERE message_id LIKE 'load-%'").split())
    sent = {call[1] for call in calls}
    total_after = int(psql("SELECT count(*) FROM cdp.events"))
    check(stored == sent and total_after == events_before - BIG_EVENTS + len(calls),
          f"every ingest call's event is stored ({len(stored)} of {len(sent)} message ids; events {events_before} - {BIG_EVENTS} + "
          f"{len(calls)} = {total_after}; missing {sorted(sent - stored)[:5]}, unexpected {sorted(stored - sent)[:5]})")

    # Latencies: a call overlaps the erasure when it started before the erasure
    # ended and ended after it started (its start is its end minus its latency).
    def overlaps(call):
        return call[3] - call[4] / 1000 < e_end and call[3] > e_start

    during = [call for call in calls if call[4] is not None and overlaps(call)]
    inside_pv = [call for call in during if call[0] == "page view" and call[3] - call[4] / 1000 >= e_start and call[3] <= e_end
                 and call not in bad]
    check(len(inside_pv) > 0,
          f"page views of known UIDs went on while the erasure ran ({len(inside_pv)} started and succeeded inside its "
          f"{(e_end - e_start) * 1000:.0f} ms window)")

    # Lock waits seen by the sampler, by the kind of call that waited.
    kind_of = {call[1]: call[0] for call in calls}
    waited, holders = {}, {}
    for at, mid, event, table, blockers in sampler.waits:
        # a row lock wait shows as transactionid (the holder's transaction) or tuple, with the row's table
        what = ("row of " + table if event in ("transactionid", "tuple") else event + (" " + table if table else "")) if table else event
        key = (kind_of.get(mid, "?"), what)
        waited.setdefault(key, set()).add(mid)
        holders.setdefault(key, set()).update(re.sub(r"-\d+$", "", b) for b in blockers.split(",") if b)
    # 'extend' is the relation extension lock (two inserts growing cdp.events at once), not a row or table lock
    pv_waits = {k: v for k, v in waited.items() if k[0] == "page view" and not k[1].startswith("extend")}
    seen = "; ".join(f"{len(v)} {k[0]} calls for {k[1]} (held by {', '.join(sorted(holders[k])) or '?'})" for k, v in sorted(waited.items()))
    check(not pv_waits,
          f"no page view of a known UID was seen waiting for a row or table lock ({sampler.samples} samples of pg_stat_activity, "
          f"{sampler.unconfirmed} waits dropped as the session had moved on; calls seen waiting: {seen or 'none'})")

    def figures(rows):
        lat = [r[4] for r in rows]
        if not lat:
            return "0 calls"
        worst = max(rows, key=lambda r: r[4])
        return f"{len(lat)} calls, longest {worst[4]:.1f} ms ({worst[0]}), median {statistics.median(lat):.2f} ms"

    by_kind = "; ".join(f"{label}: {figures([c for c in during if c[0] == kind])}"
                        for kind, label in (("page view", "page views of known UIDs"), ("new UID", "new UIDs"), ("identify", "sign-ins")))
    everything = [c for c in calls if c[4] is not None]
    lat_all = [c[4] for c in everything]
    load_s = max(c[3] for c in everything) - min(c[2] for c in everything) if everything else 0
    print(f"report erasure of {erased} events: {e_ms or 0:.1f} ms (psql \\timing; {(e_end - e_start) * 1000:.1f} ms wall); "
          f"ingest calls during it: {figures(during)} [{by_kind}]; all ingest calls: {len(lat_all)} in {load_s:.1f} s "
          f"by {CLIENTS} clients, median {statistics.median(lat_all) if lat_all else 0:.2f} ms, p99 {percentile(lat_all, 99):.2f} ms, "
          f"longest {max(lat_all) if lat_all else 0:.1f} ms; setup {setup_s:.1f} s", flush=True)

    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"], capture_output=True)
    print(f"erasure load took {time.monotonic() - began:.1f} s", file=sys.stderr)
    print(f"erasure load: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
