#!/usr/bin/env python3
"""Crash recovery: the whole server is killed (kill -9 of the postmaster, then of
every process it left behind) while clients call the extension, and restarted
(crash recovery, fsync on). Two workloads, CDP_CRASH_ROUNDS rounds each
(default 3), crashing at a random moment once some calls were acknowledged:

  batch  4 clients sending cdp.track_batch of 200 events with unique message
         ids, one after the other (known UIDs, new ones, a lead form now and then);
  merge  4 clients tracking new anonymous UIDs that share devices and emails,
         identifying them as a small shared pool of customers (which merges
         them) and undoing merges with cdp.unmerge now and then.

A client writes an acknowledgement line to its log (flushed) only once its psql
printed the result of the call, an autocommit statement: the call committed.
After each recovery:
  * every call acknowledged so far (this round's and all earlier ones) is there:
    each batch's message ids all in cdp.events exactly once, each track_event's
    event stored once, each identify's UID resolving (cdp.profile_of) into that
    customer's profile family (unless an unmerge on record took it out), each
    unmerge's merge undone;
  * nothing is half-written: each batch is stored whole or not at all, no message
    id is stored twice (read from the heap), amcheck finds the indexes and heaps
    of schema cdp intact, and the invariants of tests/invariants.sql hold;
  * the extension works (a new track_event, identify and track_batch);
  * the calls in flight at the crash, resent with the same message ids (and one
    acknowledged batch resent), store each event exactly once: afterwards every
    message id and UID ever sent is stored exactly once (tests/invariants.sql).

It runs its own cluster (scripts/cluster.sh, name "crash", port 54342 or
CDP_CRASH_PGPORT, fsync on), never the shared test cluster, and stops it at the
end. Prints "ok ..." / "FAILED ..." lines and last "crash: N passed, M failed".
Usage: tests/crash.py   (env CDP_CRASH_ROUNDS, CDP_CRASH_SEED)
"""
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = "crash"
PORT = os.environ.get("CDP_CRASH_PGPORT", "54342")
BASE = f"/var/tmp/cdp_identity/{CLUSTER}"
PGDATA = f"{BASE}/data"
SERVER_LOG = f"{BASE}/server.log"
DB = "cdp_crash"
ROUNDS = int(os.environ.get("CDP_CRASH_ROUNDS") or (sys.argv[1] if len(sys.argv) > 1 else 3))
SEED = int(os.environ.get("CDP_CRASH_SEED") or random.SystemRandom().randrange(1, 1000000))
CLIENTS = 4
BATCH_ITEMS = 200
MIN_ACKS = 2 * CLIENTS          # the crash comes only after this many acknowledged calls...
CRASH_DELAY = (0.2, 2.5)        # ...and then after a random delay (seconds) from this range
LOST = ("server closed the connection", "connection to server was lost", "terminating connection",
        "could not send data to server", "no connection to the server", "This probably means",
        "before or while processing", "could not receive data from server")

# scripts/cluster.sh with this test's own cluster, whatever the caller's environment says.
CLUSTER_ENV = {k: v for k, v in os.environ.items() if k not in ("CDP_PGDATA", "CDP_BASE", "PGDATA")}
CLUSTER_ENV.update(CDP_CLUSTER=CLUSTER, CDP_PGPORT=PORT, CDP_FSYNC="on")
PG_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
PG_ENV.update(PGHOST=f"{BASE}/socket", PGPORT=PORT, PGUSER="postgres", PGOPTIONS="-c client_min_messages=error")

passed = failed = 0


def check(ok, label):
    global passed, failed
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    print(("ok " if ok else "FAILED ") + label, flush=True)
    return ok


def note(text):
    print(text, flush=True)


def lit(s):
    return "'" + s.replace("'", "''") + "'"


# ---------------------------------------------------------------- the server

def cluster(action):
    return subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), action], env=CLUSTER_ENV,
                          capture_output=True, text=True)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def server_processes():
    """Every live process of this cluster: a postgres whose working directory is its data directory."""
    data = os.path.realpath(PGDATA)
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/cwd") == data and os.path.basename(os.readlink(f"/proc/{name}/exe")) == "postgres":
                    found.append(int(name))
            except OSError:
                pass
    return found


def reaped(pid):
    """True once pid is no process any more (a zombie child of ours is reaped here)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    return proc_state(pid) is None


def postmaster_pid():
    with open(f"{PGDATA}/postmaster.pid") as f:
        lines = f.read().split("\n")
    pid = int(lines[0])
    if os.path.realpath(lines[1]) != os.path.realpath(PGDATA) or lines[3].strip() != PORT:
        raise RuntimeError(f"postmaster.pid of {PGDATA} names {lines[1]} port {lines[3]}")
    return pid


def crash():
    """kill -9 of the postmaster, then of every process of the cluster left behind (a whole-server
    crash: orphaned backends would keep the shared memory and PostgreSQL would not restart).
    Returns (postmaster pid, number of other processes killed)."""
    pm = postmaster_pid()
    if pm not in server_processes():
        raise RuntimeError(f"postmaster {pm} of {PGDATA} is not running")
    os.kill(pm, signal.SIGKILL)
    killed, deadline = set(), time.time() + 30
    while time.time() < deadline:
        live = [p for p in server_processes() if p != pm]
        for p in live:
            try:
                os.kill(p, signal.SIGKILL)
                killed.add(p)
            except ProcessLookupError:
                pass
        for p in killed:
            reaped(p)
        # the postmaster must be gone for good: a zombie would still "hold" postmaster.pid
        if not live and reaped(pm):
            return pm, len(killed)
        time.sleep(0.02)
    raise RuntimeError("the killed server's processes did not go away within 30 s")


def restart():
    """Starts the crashed cluster; returns (seconds until it accepted connections, the log lines it wrote)."""
    offset = os.path.getsize(SERVER_LOG) if os.path.exists(SERVER_LOG) else 0
    start = time.time()
    out = cluster("start")
    took = time.time() - start
    with open(SERVER_LOG, errors="replace") as f:
        f.seek(offset)
        log = f.read()
    if out.returncode != 0:
        raise RuntimeError(f"the cluster did not restart: {out.stderr.strip()} {log[-2000:]}")
    return took, log


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def recovery_summary(log):
    """What the server log of a restart says: (crash recovery ran?, a description of its phases)."""
    ran = "automatic recovery in progress" in log
    stamps, start, done, redo_s = {}, None, None, None
    for line in log.splitlines():
        try:
            at = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + float("0" + line[19:23])
        except ValueError:
            continue
        for key, marker in (("interrupted", "database system was interrupted"), ("redo", "automatic recovery in progress"),
                            ("done", "redo done at "), ("ready", "ready to accept connections")):
            if marker in line and key not in stamps:
                stamps[key] = at
        if "redo starts at " in line:
            start = lsn(line.split("redo starts at ")[1].split()[0])
        if "redo done at " in line:
            done = lsn(line.split("redo done at ")[1].split()[0])
            if "elapsed: " in line:
                redo_s = float(line.split("elapsed: ")[1].split()[0])
    parts = []
    if "interrupted" in stamps and "redo" in stamps:
        parts.append(f"syncing the data directory {stamps['redo'] - stamps['interrupted']:.2f} s")
    if start is not None and done is not None:
        parts.append(f"redo of {(done - start) / 1e6:.1f} MB of WAL" + (f" {redo_s:.2f} s" if redo_s is not None else ""))
    if "done" in stamps and "ready" in stamps:
        parts.append(f"end-of-recovery checkpoint {stamps['ready'] - stamps['done']:.2f} s")
    return ran, ", ".join(parts)


# ---------------------------------------------------------------- SQL

def psql(sql, db=DB, extra=(), env=None):
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, *extra], input=sql,
                          capture_output=True, text=True, env=env or PG_ENV)


def query(sql, settings=""):
    """The rows of `sql` as a list of dicts (through json_agg)."""
    out = psql(f"{settings}\nSELECT coalesce(json_agg(q), '[]') FROM ({sql}) q;")
    if out.returncode != 0:
        raise RuntimeError(f"query failed: {out.stderr.strip()[:500]}")
    return json.loads(out.stdout)


HEAP_ONLY = "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off;"


class Session:
    """One psql connection kept open. call(expr) runs SELECT expr in autocommit and answers
    ("ok", result text or None), ("error", lines) or ("lost", lines): the connection died."""

    def __init__(self):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", DB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, env=PG_ENV)
        self.n = 0

    def call(self, expr):
        self.n += 1
        n = self.n
        try:
            self.proc.stdin.write(f"SELECT format('R{n} %s', {expr});\n\\echo E{n}\n")
            self.proc.stdin.flush()
        except OSError:
            return "lost", []
        result, other = None, []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                break
            line = line.rstrip("\n")
            if line == f"E{n}":
                break
            if result is None and line.startswith(f"R{n} "):
                result = line[len(f"R{n} "):]
            else:
                other.append(line)
        if result is not None:  # psql printed the result: the statement committed
            return "ok", (result or None)
        return ("error" if line else "lost"), other

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- the workloads

def batch_events(key, n):
    """The items of batch `key` ("B<round>.<client>.<seq>"), the same every time it is (re)sent."""
    g, c, s = key[1:].split(".")
    s = int(s)
    rnd = random.Random(f"{SEED}:{key}")
    pool = 20 + 4 * s  # the client's UIDs so far: mostly known ones, a few new ones in each batch
    items = []
    for j in range(n):
        ctx = {"device_id": f"B{g}.{c}.d{rnd.randrange(30)}", "session_id": f"s{rnd.randrange(50)}",
               "message_id": f"{key}.{j}", "page_url": f"https://shop.example/p/{rnd.randrange(500)}"}
        payload = {"context": ctx}
        if j == 0 and s % 10 == 9:
            payload["dims"] = {"customers": {"email": f"b{g}.{c}.p{rnd.randrange(40)}@example.com"}}
        items.append({"uid": f"B{g}.{c}.u{rnd.randrange(pool)}", "category": "pageview", "action": "view", "payload": payload})
    return items


def batch_calls(g, c):
    s = 0
    while True:
        yield {"kind": "batch", "key": f"B{g}.{c}.{s}", "n": BATCH_ITEMS}
        s += 1


def merge_calls(g, c):
    """New anonymous UIDs on shared devices and emails, identified as a small shared pool of
    customers; each UID is identified once, by its own client; a few unmerges."""
    rnd = random.Random(f"{SEED}:merge:{g}:{c}")
    anonymous, known = [], []
    seq = 0
    while True:
        seq += 1
        r = rnd.random()
        msg = f"M{g}.{c}.{seq}"
        ctx = {"device_id": f"M{g}.d{rnd.randrange(10)}", "session_id": f"M{g}.s{rnd.randrange(40)}", "message_id": msg}
        if r < 0.45 or not anonymous:
            uid = f"M{g}.{c}.u{seq}"
            payload = {"context": ctx}
            if rnd.random() < 0.25:  # a lead form
                payload["dims"] = {"customers": {"email": f"m{g}.p{rnd.randrange(12)}@example.com"}}
            anonymous.append(uid)
            yield {"kind": "track", "uid": uid, "category": "pageview", "action": "view", "payload": payload, "msg": msg}
        elif r < 0.60:
            uid = rnd.choice(anonymous + known)
            yield {"kind": "track", "uid": uid, "category": "pageview", "action": "view", "payload": {"context": ctx}, "msg": msg}
        elif r < 0.96:
            uid = anonymous.pop(rnd.randrange(len(anonymous)))
            known.append(uid)
            attrs = {"email": f"m{g}.p{rnd.randrange(12)}@example.com", "seen": seq}
            yield {"kind": "identify", "uid": uid, "cid": f"M{g}.cust{rnd.randrange(8)}", "attrs": attrs}
        else:
            yield {"kind": "unmerge", "seed": rnd.randrange(1000000)}


def sql_of(call):
    kind = call["kind"]
    if kind == "batch":
        return f"cdp.track_batch({lit(json.dumps(batch_events(call['key'], call['n'])))})"
    if kind == "track":
        return f"cdp.track_event({lit(call['uid'])}, {lit(call['category'])}, {lit(call['action'])}, {lit(json.dumps(call['payload']))})"
    if kind == "identify":
        return f"cdp.identify({lit(call['uid'])}, {lit(call['cid'])}, {lit(json.dumps(call['attrs']))})"
    if kind == "unmerge":
        return f"crash_unmerge_some({call['seed']})"
    raise ValueError(kind)


class Acks:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    def add(self):
        with self.lock:
            self.count += 1


class Client(threading.Thread):
    """Sends its calls one after the other on one connection until the connection dies. Its log
    gets a "send" line before each call and an "ack" line (flushed) once psql printed the result."""

    def __init__(self, calls, log_path, acks):
        super().__init__(daemon=True)
        self.calls, self.log_path, self.acks = calls, log_path, acks
        self.errors = []          # (time, call, lines): errors while the server was up
        self.lost = None          # (time, lines) when the connection died
        self.stop = threading.Event()

    def run(self):
        session = Session()
        with open(self.log_path, "w") as log:
            for seq, call in enumerate(self.calls):
                if self.stop.is_set():
                    break
                log.write(json.dumps({"op": "send", "seq": seq, "at": time.time(), "call": call}) + "\n")
                log.flush()
                status, out = session.call(sql_of(call))
                if status == "ok":
                    log.write(json.dumps({"op": "ack", "seq": seq, "result": out}) + "\n")
                    log.flush()
                    self.acks.add()
                elif status == "error":
                    log.write(json.dumps({"op": "error", "seq": seq, "lines": out}) + "\n")
                    log.flush()
                    self.errors.append((time.time(), call, out))
                else:
                    self.lost = (time.time(), out)
                    break
        session.close()


def read_log(path):
    """[(call, time sent, acknowledged?, result)] in sending order."""
    sent, acked = {}, {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec["op"] == "send":
                sent[rec["seq"]] = (rec["call"], rec["at"])
            elif rec["op"] == "ack":
                acked[rec["seq"]] = rec["result"]
    return [(*sent[s], s in acked, acked.get(s)) for s in sorted(sent)]


# ---------------------------------------------------------------- what was acknowledged, what was sent

class Ledger:
    """Every call acknowledged so far (all rounds, retries and probes) and everything ever sent."""

    def __init__(self):
        self.batches = {}      # key -> items, acknowledged
        self.batches_sent = {}  # key -> items, sent
        self.tracks = []       # {"msg", "uid"}
        self.identifies = []   # {"uid", "cid", "ret", "at": time sent}
        self.unmerges = []     # merge ids undone
        self.messages, self.uids, self.customers = set(), set(), set()

    def sent(self, call):
        kind = call["kind"]
        if kind == "batch":
            self.batches_sent[call["key"]] = call["n"]
            for item in batch_events(call["key"], call["n"]):
                self.messages.add(item["payload"]["context"]["message_id"])
                self.uids.add(item["uid"])
        elif kind == "track":
            self.messages.add(call["msg"])
            self.uids.add(call["uid"])
        elif kind == "identify":
            self.uids.add(call["uid"])
            self.customers.add(call["cid"])

    def acked(self, call, result, at):
        kind = call["kind"]
        if kind == "batch":
            self.batches[call["key"]] = call["n"]
        elif kind == "track":
            self.tracks.append({"msg": call["msg"], "uid": call["uid"]})
        elif kind == "identify":
            self.identifies.append({"uid": call["uid"], "cid": call["cid"], "ret": int(result) if result else None, "at": at})
        elif kind == "unmerge" and result:
            self.unmerges.append(int(result))

    def total(self):
        return len(self.batches) + len(self.tracks) + len(self.identifies) + len(self.unmerges)


def answer_problem(call, result, first_send=True):
    """What is wrong with the answer of an acknowledged call, or None."""
    kind = call["kind"]
    if kind == "batch":
        r = json.loads(result or "null") or {}
        n = call["n"]
        want = {"accepted": n, "stored": n, "duplicates": 0} if first_send else {"accepted": n}
        if any(r.get(k) != v for k, v in want.items()) or r.get("rejected") != [] or len(r.get("profile_ids") or []) != n \
                or None in r["profile_ids"]:
            return f"batch {call['key']}: {str(r)[:200]}"
    elif kind in ("track", "identify"):
        if result is None or not result.isdigit():
            return f"{kind} of {call['uid']} answered {result!r}"
    elif kind == "unmerge" and result is not None and not result.isdigit():
        return f"unmerge answered {result!r}"
    return None


# ---------------------------------------------------------------- the checks

def stored_batches():
    """key -> (events, distinct message ids) for every batch in cdp.events, read from the heap."""
    rows = query("SELECT substring(message_id from '^(B[^.]+[.][^.]+[.][^.]+)[.][0-9]+$') AS k, count(*) AS n, "
                 "count(DISTINCT message_id) AS d FROM cdp.events WHERE message_id LIKE 'B%' GROUP BY 1", HEAP_ONLY)
    return {r["k"]: (r["n"], r["d"]) for r in rows}


def check_acknowledged(ledger, label, in_flight=()):
    """Every acknowledged call is there; every batch is whole or absent. Returns the stored batches."""
    batches = stored_batches()
    lost = [k for k, n in ledger.batches.items() if batches.get(k) != (n, n)]
    partial = [k for k, (n, d) in batches.items() if n != d or n != ledger.batches_sent.get(k)]
    flying = [c["key"] for c in in_flight if c["kind"] == "batch"]
    flying_stored = sum(1 for k in flying if k in batches)
    events = sum(ledger.batches.values())
    check(not lost, f"{label}: all {len(ledger.batches)} acknowledged batches so far ({events} events) stored, "
                    f"each message id exactly once" + (f"; NOT: {lost[:5]} (stored: {[batches.get(k) for k in lost[:5]]})" if lost else ""))
    check(not partial, f"{label}: every batch stored whole or not at all ({len(flying)} in flight at the crash: "
                       f"{flying_stored} stored, {len(flying) - flying_stored} absent)"
                       + (f"; NOT: {[(k, batches[k]) for k in partial[:5]]}" if partial else ""))
    if ledger.tracks:
        bad = query(f"""SELECT a.msg, a.uid, count(e.event_id) AS n, array_agg(e.uid) AS stored_uids
            FROM jsonb_to_recordset({lit(json.dumps(ledger.tracks))}::jsonb) AS a(msg text, uid text)
            LEFT JOIN cdp.events e ON e.message_id = a.msg
            GROUP BY a.msg, a.uid HAVING count(e.event_id) <> 1 OR bool_or(e.uid IS DISTINCT FROM a.uid)""", HEAP_ONLY)
        check(not bad, f"{label}: all {len(ledger.tracks)} acknowledged track_event calls so far stored exactly once"
                       + (f"; NOT ({len(bad)}): {bad[:5]}" if bad else ""))
    if ledger.identifies:
        # the UID is in its customer's family, unless an unmerge or a later move on record took it out since the call
        # (undone_at is the unmerge's transaction start: a second of slack for one that began just before):
        # its own profile's merge into the customer undone, or its reassignment to the customer undone
        rows = query(f"""SELECT a.uid, a.cid, a.ret, c.profile_id AS customer_profile, x.profile_of,
                   coalesce(x.profile_of IN (SELECT cdp.family_of(c.profile_id)), false) AS in_family,
                   EXISTS (SELECT FROM cdp.merges m
                           WHERE m.undone_at >= to_timestamp(a.at) - interval '1 second' AND m.into_profile = c.profile_id
                             AND ((m.kind = 'merge' AND m.from_profile IN (SELECT u.profile_id FROM cdp.uids u WHERE u.uid = a.uid))
                                  OR (m.kind = 'uid_reassigned' AND m.uid = a.uid)))
                   -- or a later decision on record moved the UID (a session on a shared device, another sign-in)
                   OR EXISTS (SELECT FROM cdp.merges m
                              WHERE m.kind = 'uid_reassigned' AND m.uid = a.uid AND m.undone_at IS NULL
                                AND m.merged_at >= to_timestamp(a.at) - interval '1 second') AS undone
            FROM jsonb_to_recordset({lit(json.dumps(ledger.identifies))}::jsonb) AS a(uid text, cid text, ret bigint, at float8)
            LEFT JOIN cdp.profiles c ON c.portal = 'default' AND c.customer_id = a.cid
            CROSS JOIN LATERAL (SELECT cdp.profile_of(a.uid) AS profile_of) x""")
        bad = [r for r in rows if r["customer_profile"] != r["ret"] or not (r["in_family"] or r["undone"])]
        undone = sum(1 for r in rows if not r["in_family"] and r["undone"])
        check(not bad, f"{label}: all {len(ledger.identifies)} acknowledged identify calls so far: the customer's profile "
                       f"is the one returned and the UID resolves into its family"
                       + (f" ({undone} UIDs taken out since by an unmerge or a later move on record)" if undone else "")
                       + (f"; NOT ({len(bad)}): {bad[:5]}" if bad else ""))
    if ledger.unmerges:
        bad = query(f"""SELECT m FROM unnest(ARRAY[{','.join(map(str, ledger.unmerges))}]::bigint[]) m
            WHERE NOT EXISTS (SELECT FROM cdp.merges x WHERE x.merge_id = m AND x.undone_at IS NOT NULL)""", HEAP_ONLY)
        check(not bad, f"{label}: all {len(ledger.unmerges)} acknowledged unmerges so far undone" + (f"; NOT: {bad[:5]}" if bad else ""))
    return batches


def check_intact(label):
    dups = query("SELECT portal, message_id, count(*) AS n FROM cdp.events WHERE message_id IS NOT NULL "
                 "GROUP BY 1, 2 HAVING count(*) > 1", HEAP_ONLY)
    check(not dups, f"{label}: no message id stored twice (read from the heap)" + (f"; NOT: {dups[:5]}" if dups else ""))
    out = psql("""SELECT count(*) FROM (SELECT bt_index_check(c.oid, true) FROM pg_index i
                      JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                      WHERE c.relnamespace = 'cdp'::regnamespace AND a.amname = 'btree') s;
                  SELECT count(DISTINCT c.oid) || ' ' || count(v.blkno) FROM pg_class c
                      LEFT JOIN LATERAL verify_heapam(c.oid) v ON true
                      WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind = 'r';""")
    lines = out.stdout.split()
    ok = out.returncode == 0 and len(lines) == 3 and lines[2] == "0"
    check(ok, f"{label}: amcheck finds schema cdp intact (" + (f"{lines[0]} btree indexes match their heaps, {lines[1]} heaps verified"
                                                             if ok else (out.stderr.strip() or out.stdout.strip())[:400]) + ")")


def check_invariants(label, variables=None):
    extra = []
    for name, value in (variables or {}).items():
        extra += ["-v", f"{name}={value}"]
    with open(os.path.join(ROOT, "tests", "invariants.sql")) as f:
        sql = f.read()
    out = psql(sql, extra=["-o", "/dev/null", *extra], env=dict(PG_ENV, PGOPTIONS="-c client_min_messages=notice"))
    held = out.stderr.count("NOTICE:  ok ")
    problems = " | ".join(line for line in out.stderr.splitlines() if "NOTICE:  ok " not in line)
    if out.returncode == 0:
        check(True, f"{label}: the {held} invariants of tests/invariants.sql hold")
    else:
        check(False, f"{label}: the invariants of tests/invariants.sql hold; NOT ({held} held before): {problems[:500]}")


def probe(ledger, g, label):
    """A new track_event, identify and track_batch after recovery. Returns the calls that failed (to be resent)."""
    s = Session()
    uid, cid, msg = f"P{g}.u", f"P{g}.cust", f"P{g}.m"
    track = {"kind": "track", "uid": uid, "category": "pageview", "action": "view",
             "payload": {"context": {"device_id": f"P{g}.d", "message_id": msg}}, "msg": msg}
    ident = {"kind": "identify", "uid": uid, "cid": cid, "attrs": {"email": f"p{g}@example.com"}}
    batch = {"kind": "batch", "key": f"B{g}.probe.0", "n": 3}
    answers = []
    for call in (track, ident, batch):
        ledger.sent(call)
        at = time.time()
        status, result = s.call(sql_of(call))
        answers.append((status, result))
        if status == "ok" and not answer_problem(call, result):
            ledger.acked(call, result, at)
    status, profile = s.call(f"cdp.profile_of({lit(uid)})")
    s.close()
    ok = all(st == "ok" for st, _ in answers) and not any(answer_problem(c, r) for c, (_, r) in zip((track, ident, batch), answers)) \
        and status == "ok" and profile == answers[1][1]
    check(ok, f"{label}: the extension works after recovery (a new track_event, identify and track_batch)"
              + ("" if ok else f"; answers: {answers}, profile_of: {profile}"))
    return [call for call, (st, _) in zip((track, ident, batch), answers) if st != "ok"]


def retry(ledger, pending, resend, stored, label):
    """Resends the calls in flight at the crash (their clients reconnect, all at once) with the same
    message ids, and `resend` (acknowledged batches resent). Each event must be stored once."""
    results = [None] * (len(pending) + len(resend))
    at = time.time()

    def run(i, call):
        s = Session()
        results[i] = s.call(sql_of(call))
        s.close()

    calls = pending + resend
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    problems, counts = [], {"stored": 0, "duplicates": 0, "other": 0}
    for call, res in zip(calls, results):
        status, result = res or ("lost", [])
        if status != "ok":
            problems.append(f"{call['kind']}: {status} {result}")
            continue
        if call["kind"] == "batch":
            r = json.loads(result)
            n = call["n"]
            # stored whole before the crash (or acknowledged): all duplicates; absent: all stored now
            want = (0, n) if call["key"] in stored else (n, 0)
            if (r.get("stored"), r.get("duplicates")) != want or r.get("accepted") != n or r.get("rejected") != []:
                problems.append(f"batch {call['key']}: stored {r.get('stored')}, duplicates {r.get('duplicates')}, expected {want}")
            counts["stored" if want[0] else "duplicates"] += 1
        else:
            problem = answer_problem(call, result)
            if problem:
                problems.append(problem)
            counts["other"] += 1
        ledger.acked(call, result, at)
    what = (f"{len(pending)} calls in flight at the crash resent with the same message ids"
            + (f" and {len(resend)} acknowledged batch resent" if resend else "")
            + f" (batches: {counts['stored']} stored now, {counts['duplicates']} answered as duplicates; other calls: {counts['other']})")
    check(not problems, f"{label}: {what}" + (f"; NOT: {problems[:5]}" if problems else ""))


# ---------------------------------------------------------------- one round

def run_round(kind, g, r, ledger, work):
    label = f"round {g} ({kind} {r}/{ROUNDS})"
    acks = Acks()
    gen = batch_calls if kind == "batch" else merge_calls
    clients = [Client(gen(g, c), os.path.join(work, f"r{g}-c{c}.log"), acks) for c in range(CLIENTS)]
    start = time.time()
    for c in clients:
        c.start()
    while acks.count < MIN_ACKS and time.time() - start < 60 and any(c.is_alive() for c in clients):
        time.sleep(0.01)
    if acks.count < MIN_ACKS:
        check(False, f"{label}: only {acks.count} calls acknowledged after {time.time() - start:.1f} s")
    time.sleep(random.Random(f"{SEED}:crash:{g}").uniform(*CRASH_DELAY))
    crash_time = time.time()
    pm, others = crash()
    for c in clients:
        c.stop.set()
        c.join(timeout=30)
    took, log = restart()
    ran, phases = recovery_summary(log)

    # what the clients sent and had acknowledged
    pending, resend, answers_bad, acked_n, acked_events, flying = [], [], [], 0, 0, 0
    for c in clients:
        for call, at, acked, result in read_log(c.log_path):
            ledger.sent(call)
            if acked:
                acked_n += 1
                acked_events += call.get("n", 0)
                problem = answer_problem(call, result)
                if problem:
                    answers_bad.append(problem)
                ledger.acked(call, result, at)
            else:
                flying += 1
                if call["kind"] != "unmerge":  # an unmerge carries no message id: not resent
                    pending.append(call)
    errors = [(t, call["kind"], lines) for c in clients for t, call, lines in c.errors]
    early_loss = [(c.lost[0] - crash_time, c.lost[1]) for c in clients if c.lost and c.lost[0] < crash_time]
    odd_loss = [c.lost[1] for c in clients if c.lost and c.lost[1] and not any(p in " ".join(c.lost[1]) for p in LOST)]
    note(f"{label}: crashed {crash_time - start:.2f} s in, {acked_n} calls acknowledged before the crash"
         + (f" ({acked_events} events)" if acked_events else "") + f", {flying} in flight; "
         f"crash recovery took {took:.2f} s ({phases})")
    check(ran, f"{label}: the whole server was killed (postmaster {pm} and {others} other processes) and ran crash recovery")
    check(not errors and not early_loss and not odd_loss and not answers_bad,
          f"{label}: no client saw an error before the crash and every acknowledged answer is as expected"
          + (f"; NOT: errors {errors[:3]}, lost early {early_loss[:3]}, odd {odd_loss[:3]}, answers {answers_bad[:3]}"
             if errors or early_loss or odd_loss or answers_bad else ""))

    # right after recovery, before anything new is written
    stored = check_acknowledged(ledger, label, pending)
    check_intact(label)
    check_invariants(f"{label} after recovery")
    pending += probe(ledger, g, label)

    # the retries
    if kind == "batch":
        mine = [k for k in ledger.batches if k.startswith(f"B{g}.") and ".probe." not in k]
        if mine:
            key = random.Random(f"{SEED}:resend:{g}").choice(sorted(mine))
            resend.append({"kind": "batch", "key": key, "n": BATCH_ITEMS})
    retry(ledger, pending, resend, stored, label)
    variables = {"sent_messages": len(ledger.messages), "sent_uids": len(ledger.uids)}
    if ledger.customers:
        variables.update(customers=len(ledger.customers), expect_identified=1)
    if ledger.unmerges:
        variables["expect_unmerges"] = 1
    check_invariants(f"{label} after the retries ({len(ledger.messages)} message ids, {len(ledger.uids)} UIDs sent)", variables)
    return acked_n


def setup():
    out = psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE); CREATE DATABASE {DB};", db="postgres")
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    out = psql("""CREATE EXTENSION cdp_identity; CREATE EXTENSION amcheck;
-- An operator undoing a merge: picking one happens before the call takes its lock, so another
-- client may have undone it already: only that answer is tolerated. Returns the merge undone.
CREATE FUNCTION crash_unmerge_some(seed int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE m bigint;
BEGIN
    SELECT merge_id INTO m FROM cdp.merges WHERE kind = 'merge' AND undone_at IS NULL
    ORDER BY hashint4(merge_id::int # seed) LIMIT 1;
    IF m IS NULL THEN RETURN NULL; END IF;
    PERFORM cdp.unmerge(m, cascade => true);
    RETURN m;
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    IF SQLERRM NOT LIKE '%already undone%' THEN RAISE; END IF;
    RETURN NULL;
END $$;""")
    if out.returncode != 0:
        raise RuntimeError(out.stderr)


def main():
    def terminate(signum, frame):
        raise SystemExit(f"crash: stopped by signal {signum}")
    signal.signal(signal.SIGTERM, terminate)
    # Orphans of our children (the postmaster once pg_ctl exits, backends once the postmaster is
    # killed) become our children, so that we can reap them: a zombie postmaster would still count
    # as running for pg_ctl and for the restarted postmaster's lock file check.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    note(f"crash: seed {SEED} (CDP_CRASH_SEED={SEED} repeats the workload and the crash delays), {ROUNDS} rounds per workload, "
         f"{CLIENTS} clients, cluster {PGDATA} port {PORT}")
    began = time.time()
    rounds = []
    work = tempfile.mkdtemp(prefix="cdp_crash.")
    try:
        cluster("stop")  # a fresh start: the postmaster is then our descendant
        for pid in server_processes():  # what an interrupted earlier run may have left behind
            os.kill(pid, signal.SIGKILL)
        out = cluster("start")
        if out.returncode != 0:
            raise RuntimeError(f"the cluster did not start: {out.stderr.strip()}")
        setup()
        ledger = Ledger()
        g = 0
        for kind in ("batch", "merge"):
            for r in range(1, ROUNDS + 1):
                g += 1
                acked = run_round(kind, g, r, ledger, work)
                rounds.append(f"{kind} {acked}")
        note(f"crash: {len(rounds)} crashes in {time.time() - began:.0f} s; acknowledged calls per round: {', '.join(rounds)}; "
             f"{ledger.total()} acknowledged calls in all")
    except Exception as e:  # a server that would not come back, a query that failed: a failure, reported
        check(False, f"crash test aborted: {type(e).__name__}: {e}"[:1500])
    finally:
        cluster("stop")
        if failed == 0:
            subprocess.run(["rm", "-rf", work])
        else:
            note(f"crash: client logs kept in {work}; the cluster's data in {PGDATA}, its log in {SERVER_LOG}")
    print(f"crash: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
