#!/usr/bin/env python3
"""Interleavings of identity calls in REAL sessions, forced into a chosen order.

Each scenario drives two psql sessions interactively (one backend each, fed
statement by statement). The barrier: session A opens a transaction and runs
its call without committing; session B starts its call; the test waits until
B is observed blocked (pg_locks: a lock of B's pid with granted = false, or
pg_stat_activity.wait_event_type = 'Lock', and A's pid among
pg_blocking_pids(B)), or observed finished when the design says it must not
wait; then A commits (or B does, for the erasure-polls cases) and the outcome
is asserted on the data:

  a. identify vs identify on one new customer id: one customer, both UIDs;
  b. identify vs track_event on one UID: a page view does not wait and joins the
     customer's family; an event with a new device id or a lead form waits and
     lands on the customer;
  c. two customer ids claiming one anonymous profile (lead-form email): the
     first takes it, the second never does;
  d. unmerge vs a merge into the same customer: both stand, the unmerged
     profile stays unmerged (blocked);
  e. forget_customer vs track_event of a new UID: the new UID waits and is
     stored; nothing of the erased customer remains; meanwhile the open
     erasure holds no lock on cdp.events but its DELETE's, and a page view of
     another known UID (a third session) does not wait for it;
  f. forget_customer vs track_event of a known UID of that customer, both
     orders, and the erasure's bounded poll (55P03 with a hint, nothing erased).

Usage: tests/interleave.py (needs the test cluster, see scripts/cluster.sh env).
Prints "ok ..." / "FAILED ..." lines, last "interleave: N passed, M failed".
"""
import json
import os
import queue
import subprocess
import sys
import threading
import time

from cluster_env import env_of_cluster

DB = "cdp_interleave"
PSQL = ["psql", "-X", "-q", "-A", "-t", "-d", DB]
BLOCK_TIMEOUT = 4.0    # seconds to see a session blocked (the portal's lock_timeout is 5 s)
CALL_TIMEOUT = 20.0    # seconds any single call may take before the test gives up on it


class Result:
    def __init__(self, rows, sqlstate, stderr, elapsed):
        self.rows, self.sqlstate, self.stderr, self.elapsed = rows, sqlstate, stderr, elapsed

    @property
    def ok(self):
        return self.sqlstate == "00000"

    @property
    def value(self):
        """The single value the call printed ('' for NULL)."""
        return self.rows[-1] if self.rows else None

    def __repr__(self):
        return f"<{self.sqlstate} {self.rows} {self.stderr.strip()[:300]!r}>"


class Session:
    """One psql process (one backend) fed statements interactively. After each
    statement psql echoes a marker with :SQLSTATE to stdout and to stderr, so
    output and errors are read up to that statement exactly."""

    def __init__(self, name):
        self.name = name
        self.proc = subprocess.Popen(PSQL, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     bufsize=1, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning",
                                                         PGAPPNAME=f"interleave-{name}"))
        self.out, self.err = queue.Queue(), queue.Queue()
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()
        self.seq = 0
        self.pending = None
        self.pid = int(self.run("SELECT pg_backend_pid()").value)

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def send(self, sql):
        """Starts a statement; its result is collected by result()."""
        assert self.pending is None, f"{self.name}: a statement is still running"
        self.seq += 1
        marker = f"__end_{self.name}_{self.seq}__"
        self.proc.stdin.write(f"{sql.rstrip().rstrip(';')};\n\\echo {marker} :SQLSTATE\n\\warn {marker}\n")
        self.proc.stdin.flush()
        self.pending = (marker, time.monotonic(), [], None)

    def _drain(self, timeout):
        """Reads stdout up to the pending marker; True when it arrived."""
        marker, started, rows, state = self.pending
        deadline = time.monotonic() + timeout
        while state is None:
            try:
                line = self.out.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                state = "EXIT"
            elif line.startswith(marker):
                state = line[len(marker):].strip() or "?"
            else:
                rows.append(line)
            self.pending = (marker, started, rows, state)
        return True

    def finished(self):
        return self.pending is None or self._drain(0)

    def result(self, timeout=CALL_TIMEOUT):
        if not self._drain(timeout):
            raise TimeoutError(f"session {self.name}: no answer within {timeout} s")
        marker, started, rows, state = self.pending
        elapsed = time.monotonic() - started
        errors = []
        while True:
            try:
                line = self.err.get(timeout=5)
            except queue.Empty:
                break
            if line is None or line.startswith(marker):
                break
            errors.append(line)
        self.pending = None
        return Result(rows, state, "\n".join(errors), elapsed)

    def run(self, sql, timeout=CALL_TIMEOUT):
        self.send(sql)
        return self.result(timeout)

    def state(self, monitor):
        return monitor.value(f"SELECT state FROM pg_stat_activity WHERE pid = {self.pid}")

    def close(self):
        try:
            if self.pending is None:
                self.proc.stdin.write("ROLLBACK;\n\\q\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Monitor(Session):
    """An autocommit session for setup, assertions and watching the others."""

    def value(self, sql):
        r = self.run(sql)
        if not r.ok:
            raise RuntimeError(f"monitor: {sql!r} failed: {r.stderr}")
        return r.value

    def values(self, sql):
        r = self.run(sql)
        if not r.ok:
            raise RuntimeError(f"monitor: {sql!r} failed: {r.stderr}")
        return r.rows

    def lock_wait(self, waiter, holder):
        """(blocked, blocked by the holder, what it waits for) of the waiter's backend."""
        row = self.value(
            f"SELECT (EXISTS (SELECT FROM pg_locks WHERE pid = {waiter.pid} AND NOT granted)"
            f"        OR EXISTS (SELECT FROM pg_stat_activity WHERE pid = {waiter.pid} AND wait_event_type = 'Lock'))::text"
            f" || '|' || ({holder.pid} = ANY (pg_blocking_pids({waiter.pid})))::text"
            f" || '|' || coalesce((SELECT string_agg(DISTINCT locktype || ':' || mode, ',') FROM pg_locks"
            f"                     WHERE pid = {waiter.pid} AND NOT granted), '')"
            # a session waiting for a row lock holds the tuple lock of that row: which table's row
            f" || coalesce(' on a row of ' || (SELECT string_agg(DISTINCT relation::regclass::text, ',') FROM pg_locks"
            f"                                 WHERE pid = {waiter.pid} AND locktype = 'tuple'), '')")
        blocked, by_holder, what = row.split("|", 2)
        return blocked == "true", by_holder == "true", what

    def wait_blocked(self, waiter, holder, timeout=BLOCK_TIMEOUT):
        """Waits until the waiter is seen blocked by the holder ('blocked'), or
        finished ('finished'), or neither within the timeout ('running')."""
        deadline = time.monotonic() + timeout
        while True:
            if waiter.finished():
                return "finished", ""
            blocked, by_holder, what = self.lock_wait(waiter, holder)
            if blocked and by_holder:
                return "blocked", what
            if time.monotonic() > deadline:
                return "running", what
            time.sleep(0.02)


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, label):
        if ok:
            self.passed += 1
            print(f"ok {label}", flush=True)
        else:
            self.failed += 1
            print(f"FAILED {label}", flush=True)
        return ok


def identity_wait(seen, what):
    """Blocked by A, waiting for the row of cdp.portal_settings (the portal's identity lock)."""
    return seen == "blocked" and what.endswith("on a row of cdp.portal_settings")


def count(m, sql):
    return int(m.value(f"SELECT count(*) FROM ({sql}) AS x"))


def quoted(text):
    return "'" + text.replace("'", "''") + "'"


def js(obj):
    return quoted(json.dumps(obj))


def family(m, profile):
    return sorted(int(v) for v in m.values(f"SELECT cdp.family_of({profile})"))


# ---------------------------------------------------------------- scenarios

def scenario_a(m, A, B, c):
    """identify vs identify on one new customer id."""
    m.run("SELECT cdp.track_event('a-u1', 'pageview', 'view'), cdp.track_event('a-u2', 'pageview', 'view')")
    p1, p2 = int(m.value("SELECT cdp.profile_of('a-u1')")), int(m.value("SELECT cdp.profile_of('a-u2')"))
    A.run("BEGIN")
    ra = A.run("SELECT cdp.identify('a-u1', 'a-customer')")
    B.send("SELECT cdp.identify('a-u2', 'a-customer')")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    customers = m.values("SELECT profile_id FROM cdp.profiles WHERE customer_id = 'a-customer'")
    cust = int(customers[0]) if len(customers) == 1 else None
    c.check(identity_wait(seen, what), f"a. identify vs identify (one new CID): B waited for A's identity lock ({seen} {what})")
    c.check(ra.ok and rb.ok and len(customers) == 1 and ra.value == rb.value == str(cust),
            f"a. one customer profile for the CID (A -> {ra.value}, B -> {rb.value}, customer rows {customers})")
    ok = cust is not None and m.value("SELECT cdp.profile_of('a-u1')") == m.value("SELECT cdp.profile_of('a-u2')") == str(cust) \
        and family(m, cust) == sorted([cust, p1, p2])
    c.check(ok, f"a. both UIDs (and their anonymous profiles {p1}, {p2}) in it: family {family(m, cust) if cust else None}")


def scenario_b_page_view(m, A, B, c):
    """identify vs a plain page view of the same known UID: no wait."""
    m.run("SELECT cdp.track_event('b-u1', 'pageview', 'view')")
    own = int(m.value("SELECT cdp.profile_of('b-u1')"))
    A.run("BEGIN")
    ra = A.run("SELECT cdp.identify('b-u1', 'b-customer')")
    B.send("SELECT cdp.track_event('b-u1', 'pageview', 'view', '{\"extra\": {\"tag\": \"b-i\"}}')")
    seen, what = m.wait_blocked(B, A)
    rb = B.result() if seen == "finished" else None
    a_open = A.state(m) == "idle in transaction"
    A.run("COMMIT")
    if rb is None:
        rb = B.result()
    cust = int(ra.value)
    c.check(seen == "finished" and a_open and rb.ok,
            f"b(i). a page view of the known UID did not wait for the open identify ({seen} {what}, {rb.elapsed:.3f}s, "
            f"A still open: {a_open}, returned {rb.value})")
    on = m.value("SELECT string_agg(profile_id::text, ',') FROM cdp.events WHERE uid = 'b-u1' AND payload -> 'extra' ->> 'tag' = 'b-i'")
    in_timeline = count(m, f"SELECT FROM cdp.events_of({cust}) WHERE uid = 'b-u1' AND payload -> 'extra' ->> 'tag' = 'b-i'")
    c.check(on == str(own) and own in family(m, cust) and in_timeline == 1 and m.value("SELECT cdp.profile_of('b-u1')") == str(cust),
            f"b(i). after A commits the page view belongs to the customer's family (stored on {on}, family {family(m, cust)}, "
            f"in the customer's timeline: {in_timeline})")


def scenario_b_changes(m, A, B, c):
    """identify vs events that change the profile: a new device id, a lead form."""
    m.run("SELECT cdp.track_event('b2-u1', 'pageview', 'view', '{\"context\": {\"device_id\": \"b2-dev1\"}}')")
    m.run("SELECT cdp.track_event('b3-u1', 'pageview', 'view')")
    own2, own3 = int(m.value("SELECT cdp.profile_of('b2-u1')")), int(m.value("SELECT cdp.profile_of('b3-u1')"))

    A.run("BEGIN")
    cust = int(A.run("SELECT cdp.identify('b2-u1', 'b2-customer')").value)
    B.send("SELECT cdp.track_event('b2-u1', 'pageview', 'view', '{\"context\": {\"device_id\": \"b2-dev2\"}, \"extra\": {\"tag\": \"b-ii\"}}')")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    c.check(identity_wait(seen, what), f"b(ii). an event with a new device id waited for the open identify ({seen} {what})")
    stored = m.value("SELECT string_agg(profile_id::text, ',') FROM cdp.events WHERE uid = 'b2-u1' AND payload -> 'extra' ->> 'tag' = 'b-ii'")
    device = count(m, f"SELECT FROM cdp.identifiers WHERE kind = 'device_id' AND value = 'b2-dev2' AND profile_id = {own2}")
    last = m.value("SELECT last_device_id FROM cdp.uids WHERE uid = 'b2-u1'")
    c.check(rb.ok and rb.value == str(cust) and stored == str(own2) and own2 in family(m, cust) and device == 1 and last == "b2-dev2",
            f"b(ii). it lands on the customer (returned {rb.value}, customer {cust}, stored on {stored}, new device recorded: {device}, "
            f"last device {last})")

    A.run("BEGIN")
    cust = int(A.run("SELECT cdp.identify('b3-u1', 'b3-customer')").value)
    lead = {"dims": {"customers": {"email": "B3.Lead@Example.com", "name": "Bee Three"}}, "extra": {"tag": "b-ii-lead"}}
    B.send(f"SELECT cdp.track_event('b3-u1', 'form', 'submit', {js(lead)})")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    c.check(identity_wait(seen, what), f"b(ii). a lead form waited for the open identify ({seen} {what})")
    name = m.value(f"SELECT cdp.profile({cust}) -> 'attributes' ->> 'name'")
    email = count(m, f"SELECT FROM cdp.identifiers WHERE kind = 'email' AND value = 'b3.lead@example.com' AND profile_id = {own3}")
    stored = m.value("SELECT string_agg(profile_id::text, ',') FROM cdp.events WHERE uid = 'b3-u1' AND payload -> 'extra' ->> 'tag' = 'b-ii-lead'")
    c.check(rb.ok and rb.value == str(cust) and name == "Bee Three" and email == 1 and stored == str(own3) and own3 in family(m, cust),
            f"b(ii). the lead form lands on the customer (returned {rb.value}, customer {cust}, name {name!r}, email identifier {email}, "
            f"stored on {stored})")


def scenario_c(m, A, B, c):
    """Two customer ids claiming the same anonymous profile."""
    email = "c-shared@example.com"
    m.run(f"SELECT cdp.track_event('c-ux', 'form', 'submit', {js({'dims': {'customers': {'email': email}}})})")
    m.run("SELECT cdp.track_event('c-ua', 'pageview', 'view'), cdp.track_event('c-ub', 'pageview', 'view')")
    px, pa, pb = (int(m.value(f"SELECT cdp.profile_of('{u}')")) for u in ("c-ux", "c-ua", "c-ub"))
    A.run("BEGIN")
    ra = A.run(f"SELECT cdp.identify('c-ua', 'c-c1', {js({'email': email})})")
    B.send(f"SELECT cdp.identify('c-ub', 'c-c2', {js({'email': email})})")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    c.check(identity_wait(seen, what), f"c. the second claim waited for the first ({seen} {what})")
    c1, c2 = int(ra.value), int(rb.value) if rb.ok and rb.value else None
    into = m.value(f"SELECT merged_into FROM cdp.profiles WHERE profile_id = {px}")
    to_c2 = count(m, f"SELECT FROM cdp.merges WHERE from_profile = {px} AND into_profile = {c2 or 0}")
    customers_merged = count(m, "SELECT FROM cdp.profiles WHERE customer_id IN ('c-c1', 'c-c2') AND merged_into IS NOT NULL")
    ok = rb.ok and c1 != c2 and into == str(c1) and to_c2 == 0 and family(m, c1) == sorted([c1, px, pa]) \
        and family(m, c2) == sorted([c2, pb]) and customers_merged == 0
    c.check(ok, f"c. the anonymous profile {px} is merged into c1 only (merged_into {into}, c1 family {family(m, c1)}, "
                f"c2 family {family(m, c2) if c2 else None}, merges into c2: {to_c2}, customers merged: {customers_merged}) {rb.stderr}")


def scenario_d(m, A, B, c):
    """unmerge vs a merge into the same customer."""
    email = "d-person@example.com"
    m.run(f"SELECT cdp.track_event('d-u1', 'form', 'submit', {js({'dims': {'customers': {'email': email}}})})")
    p1 = int(m.value("SELECT cdp.profile_of('d-u1')"))
    cust = int(m.value(f"SELECT cdp.identify('d-u0', 'd-customer', {js({'email': email})})"))
    m.run("SELECT cdp.track_event('d-u3', 'pageview', 'view')")
    p2 = int(m.value("SELECT cdp.profile_of('d-u3')"))
    merge_id = m.value(f"SELECT merge_id FROM cdp.merges WHERE kind = 'merge' AND from_profile = {p1} AND into_profile = {cust}")
    if not c.check(merge_id and family(m, cust) == sorted([cust, p1]),
                   f"d. setup: the lead-form profile {p1} was merged into the customer by email (merge {merge_id})"):
        return
    A.run("BEGIN")
    ra = A.run(f"SELECT cdp.unmerge({merge_id})")
    B.send(f"SELECT cdp.identify('d-u3', 'd-customer', {js({'email': email})})")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    c.check(identity_wait(seen, what), f"d. the identify that merges into the same customer waited for the open unmerge ({seen} {what})")
    undone = m.value(f"SELECT undone_at IS NOT NULL FROM cdp.merges WHERE merge_id = {merge_id}")
    p1_into = m.value(f"SELECT coalesce(merged_into::text, 'none') FROM cdp.profiles WHERE profile_id = {p1}")
    blocks = count(m, f"SELECT FROM cdp.merge_blocks WHERE from_profile = {p1} AND into_profile = {cust}")
    remerged = count(m, f"SELECT FROM cdp.merges WHERE from_profile = {p1} AND into_profile = {cust} AND undone_at IS NULL")
    new_merge = count(m, f"SELECT FROM cdp.merges WHERE kind = 'merge' AND from_profile = {p2} AND into_profile = {cust} AND undone_at IS NULL")
    ok = ra.ok and rb.ok and rb.value == str(cust) and undone == "t" and p1_into == "none" and blocks == 1 and remerged == 0 \
        and new_merge == 1 and family(m, cust) == sorted([cust, p2]) and m.value("SELECT cdp.profile_of('d-u1')") == str(p1)
    c.check(ok, f"d. both stand: merge {merge_id} undone ({undone}), profile {p1} unmerged (merged_into {p1_into}, blocks {blocks}, "
                f"merged again {remerged}), the new merge of {p2} stands ({new_merge}); family {family(m, cust)} {ra.stderr} {rb.stderr}")


def customer_footprint(m, profiles, uids):
    """Rows anywhere about these profiles or UIDs."""
    ids = "ARRAY[" + ",".join(str(p) for p in profiles) + "]::bigint[]"
    names = "ARRAY[" + ",".join(quoted(u) for u in uids) + "]::text[]"
    parts = {
        "profiles": f"SELECT FROM cdp.profiles WHERE profile_id = ANY({ids})",
        "uids": f"SELECT FROM cdp.uids WHERE uid = ANY({names}) OR profile_id = ANY({ids})",
        "events": f"SELECT FROM cdp.events WHERE uid = ANY({names}) OR profile_id = ANY({ids})",
        "identifiers": f"SELECT FROM cdp.identifiers WHERE profile_id = ANY({ids})",
        "attributes": f"SELECT FROM cdp.profile_attributes WHERE profile_id = ANY({ids}) OR source_profile = ANY({ids})",
        "merges": f"SELECT FROM cdp.merges WHERE from_profile = ANY({ids}) OR into_profile = ANY({ids})",
        "skips": f"SELECT FROM cdp.identify_skips WHERE uid = ANY({names})",
    }
    return {k: count(m, v) for k, v in parts.items() if count(m, v)}


def make_customer(m, prefix, events=3):
    """A customer with two UIDs (one merged by device id), a lead form and a few events."""
    u1, u2 = f"{prefix}-u1", f"{prefix}-u2"
    m.run(f"SELECT cdp.track_event('{u1}', 'pageview', 'view', '{{\"context\": {{\"device_id\": \"{prefix}-dev\"}}}}') FROM generate_series(1, {events})")
    m.run(f"SELECT cdp.track_event('{u2}', 'form', 'submit', "
          f"{js({'dims': {'customers': {'email': prefix + '@example.com'}}, 'context': {'device_id': prefix + '-dev'}})})")
    cust = int(m.value(f"SELECT cdp.identify('{u1}', '{prefix}-customer', '{{\"plan\": \"gold\"}}')"))
    profiles = family(m, cust)
    return cust, profiles, [u1, u2]


def scenario_e(m, A, B, c):
    """forget_customer vs track_event of a new UID."""
    cust, profiles, uids = make_customer(m, "e")
    m.run("SELECT cdp.track_event('e-bystander', 'pageview', 'view')")
    before = customer_footprint(m, profiles, uids)
    A.run("BEGIN")
    ra = A.run("SELECT cdp.forget_customer('e-customer')")
    modes = m.value(f"SELECT coalesce(string_agg(mode, ',' ORDER BY mode), 'none') FROM pg_locks"
                    f" WHERE pid = {A.pid} AND locktype = 'relation' AND relation = 'cdp.events'::regclass")
    C = Session("C")
    try:
        C.send("SELECT cdp.track_event('e-bystander', 'pageview', 'view')")
        seen_c, what_c = m.wait_blocked(C, A)
        rc = C.result() if seen_c == "finished" else None
    finally:
        C.close()
    c.check(ra.ok and set(modes.split(",")) <= {"RowExclusiveLock", "AccessShareLock"} and seen_c == "finished" and rc.ok,
            f"e. the open erasure holds only its DELETE's lock on cdp.events ({modes}) and a page view of another known UID "
            f"does not wait for it ({seen_c} {what_c})")
    B.send("SELECT cdp.track_event('e-new', 'pageview', 'view', '{\"context\": {\"device_id\": \"e-dev\"}}')")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    c.check(identity_wait(seen, what), f"e. track_event of a new UID waited for the open forget_customer ({seen} {what})")
    stored = count(m, "SELECT FROM cdp.events WHERE uid = 'e-new'")
    c.check(rb.ok and rb.value not in (None, "") and stored == 1 and m.value("SELECT cdp.profile_of('e-new')") == rb.value,
            f"e. the new UID's event is stored after A commits (returned {rb.value}, stored {stored}) {rb.stderr}")
    after = customer_footprint(m, profiles, uids)
    gone = count(m, "SELECT FROM cdp.profiles WHERE customer_id = 'e-customer'")
    c.check(ra.ok and not after and gone == 0 and before.get("events", 0) == 4 and len(profiles) == 3,
            f"e. nothing of the erased customer remains (before {before}, after {after}, customer rows {gone}) {ra.stderr}")


def scenario_f_append_first(m, A, B, c):
    """An append of a known UID in an open transaction, then forget_customer: the erasure polls until it commits."""
    cust, profiles, uids = make_customer(m, "f1")
    events_before = count(m, f"SELECT FROM cdp.events WHERE profile_id IN ({','.join(map(str, profiles))})")
    B.run("BEGIN")
    rb = B.run("SELECT cdp.track_event('f1-u1', 'pageview', 'view', '{\"extra\": {\"tag\": \"f-i\"}}')")
    c.check(rb.ok and rb.value == str(cust) and rb.elapsed < 2,
            f"f(i). the page view of the known UID is appended at once in B's open transaction (returned {rb.value}, {rb.elapsed:.3f}s)")
    A.send("SELECT cdp.forget_customer('f1-customer')")
    time.sleep(1.0)
    polling = not A.finished() and A.state(m) == "active"
    lock_wait = m.lock_wait(A, B)
    c.check(polling and not lock_wait[0],
            f"f(i). forget_customer waits (polls, no lock wait) while B's append is uncommitted "
            f"(still running after 1 s: {polling}, lock wait: {lock_wait})")
    B.run("COMMIT")
    ra = A.result()
    report = json.loads(ra.value) if ra.ok else {}
    left = count(m, "SELECT FROM cdp.events WHERE uid IN ('f1-u1', 'f1-u2')")
    tagged = count(m, "SELECT FROM cdp.events WHERE payload -> 'extra' ->> 'tag' = 'f-i'")
    c.check(ra.ok and report.get("events") == events_before + 1 and left == 0 and tagged == 0 and not customer_footprint(m, profiles, uids),
            f"f(i). after B commits the erasure finishes ({ra.elapsed:.2f}s) and B's event is erased too "
            f"(erased {report.get('events')} of {events_before}+1, left {left}) {ra.stderr}")


def scenario_f_erasure_first(m, A, B, c):
    """forget_customer open, then an append of a known UID of that customer: waits, then suppressed."""
    cust, profiles, uids = make_customer(m, "f2")
    A.run("BEGIN")
    ra = A.run("SELECT cdp.forget_customer('f2-customer')")
    B.send("SELECT cdp.track_event('f2-u1', 'pageview', 'view', '{\"extra\": {\"tag\": \"f-ii\"}}')")
    seen, what = m.wait_blocked(B, A)
    A.run("COMMIT")
    rb = B.result()
    c.check(ra.ok and seen == "blocked" and what.endswith("on a row of cdp.uids"), f"f(ii). the page view of an erased UID waited on the UID row for the open erasure ({seen} {what})")
    left = count(m, "SELECT FROM cdp.events WHERE uid IN ('f2-u1', 'f2-u2')")
    c.check(rb.ok and rb.value == "" and left == 0 and not customer_footprint(m, profiles, uids),
            f"f(ii). after A commits it returns NULL (suppressed: {rb.value!r}) and no event of the UID remains ({left}) {rb.stderr}")
    later = m.run("SELECT cdp.track_event('f2-u2', 'pageview', 'view')")
    c.check(later.ok and later.value == "" and count(m, "SELECT FROM cdp.events WHERE uid = 'f2-u2'") == 0,
            f"f(ii). a later event of the other erased UID is suppressed too ({later.value!r})")


def scenario_f_timeout(m, A, B, c):
    """The erasure's poll is bounded by the portal's lock_timeout: 55P03 with a hint, nothing erased."""
    cust, profiles, uids = make_customer(m, "f3")
    conf = m.run("SELECT cdp.configure_portal('default', '{\"lock_timeout\": 500}')")
    try:
        if not c.check(conf.ok, f"f(iii). lock_timeout of portal 'default' set to 500 ms {conf.stderr}"):
            return
        before = customer_footprint(m, profiles, uids)
        erasures = count(m, "SELECT FROM cdp.erasures")
        B.run("BEGIN")
        rb = B.run("SELECT cdp.track_event('f3-u2', 'pageview', 'view', '{\"extra\": {\"tag\": \"f-iii\"}}')")
        A.send("\\set VERBOSITY default\nSELECT cdp.forget_customer('f3-customer')")
        ra = A.result()
        b_open = B.state(m) == "idle in transaction"
        B.run("COMMIT")
        after = customer_footprint(m, profiles, uids)
        ok = rb.ok and b_open and ra.sqlstate == "55P03" and "HINT" in ra.stderr and 0.4 <= ra.elapsed < 3
        c.check(ok, f"f(iii). with B's append open longer than lock_timeout, forget_customer fails with {ra.sqlstate} after "
                    f"{ra.elapsed:.2f}s: {ra.stderr.strip().replace(chr(10), ' | ')[:300]}")
        expected = dict(before, events=before.get("events", 0) + 1)
        c.check(after == expected and count(m, "SELECT FROM cdp.erasures") == erasures
                and count(m, "SELECT FROM cdp.profiles WHERE customer_id = 'f3-customer'") == 1,
                f"f(iii). and nothing was erased (before {before} + B's event, after {after})")
    finally:
        m.run("SELECT cdp.configure_portal('default', '{\"lock_timeout\": null}')")


SCENARIOS = [scenario_a, scenario_b_page_view, scenario_b_changes, scenario_c, scenario_d, scenario_e,
             scenario_f_append_first, scenario_f_erasure_first, scenario_f_timeout]


def main():
    env_of_cluster()
    started = time.monotonic()
    admin = ["psql", "-X", "-q", "-d", "postgres"]
    subprocess.run(admin + ["-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", "-c", f"CREATE DATABASE {DB}"], check=True, capture_output=True)
    c = Checks()
    m = Monitor("monitor")
    r = m.run("CREATE EXTENSION cdp_identity")
    if not r.ok:
        c.check(False, f"setup: CREATE EXTENSION failed: {r.stderr}")
        print(f"interleave: {c.passed} passed, {c.failed} failed")
        sys.exit(1)
    m.run("SELECT cdp.track_event('warm-up', 'pageview', 'view')")
    for scenario in SCENARIOS:
        A, B = Session("A"), Session("B")
        try:
            scenario(m, A, B, c)
        except Exception as e:  # a hung or broken scenario fails alone
            c.check(False, f"{scenario.__name__}: {type(e).__name__}: {e}")
        finally:
            for s in (A, B):
                s.close()
            m.run(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({A.pid}, {B.pid})")
    m.close()
    subprocess.run(admin + ["-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"], capture_output=True)
    print(f"interleave took {time.monotonic() - started:.1f} s", file=sys.stderr)
    print(f"interleave: {c.passed} passed, {c.failed} failed")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
