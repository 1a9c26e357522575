#!/usr/bin/env python3
"""The router's tests, on the topology router/test.sh starts: a router
(cdp_identity_router over PL/Proxy) and two nodes (cdp_identity), plus a
single-node reference database on node1's server.

Checks, in order:
  setup     the router extension installs; nodes added; portals placed 3 + 3;
  helpers   md5/sha256/new_uid here, the others on a node; node errors keep SQLSTATE, message, hint;
  equal     the seed story (router/seed_story.sql) and a generated workload over 6 portals give, per
            portal, the same profiles, merges, explanations, timelines and feed through the router as on
            a single node (same ids: every sequence starts each portal at the same value on both);
  grants    a role with only cdp_writer on the router tracks but cannot forget or read profiles (42501
            on the router), the node's grants still apply (a role the node does not know, a portal the
            role is not granted);
  down      node2 stopped mid-run: its portals fail with 57P03 within the timeout, node1's keep
            working; after the restart every accepted event is there exactly once;
  move      a portal moved node1 -> node2 under traffic: its calls fail with 55P03 (hint "portal X is
            being moved; retry shortly") while it moves, the client resends, nothing lost or doubled,
            other portals unaffected, untouched profiles read the same (same ids) after the move;
  feed      the change feed through the router returns every change of both nodes exactly once across
            the cursor (bigint router cursor and composite jsonb cursor), also across the move.
Prints one line per check and "router: N passed, M failed" last.
"""
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid

import psycopg
from psycopg.types.json import Jsonb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.environ.get("CDP_BASE_DIR", "/var/tmp/cdp_identity")
CLUSTERS = {"router": 54360, "node1": 54361, "node2": 54362}


def dsn(cluster, db, user="postgres"):
    return f"host={BASE}/{cluster}/socket port={CLUSTERS[cluster]} dbname={db} user={user}"


ROUTER_DB = "cdp_router"
NODE_DB = "cdp"
SINGLE = dsn("node1", "cdp_single")
T0 = "2026-11-20 12:00:00+00"
PORTALS = [f"shop-{i}" for i in range(1, 7)]

passed = 0
failed = 0
STARTED = time.monotonic()


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def connect(conninfo, **kw):
    return psycopg.connect(conninfo, autocommit=True, **kw)


def q(conn, sql, *args):
    return conn.execute(sql, args or None).fetchall()


def q1(conn, sql, *args):
    row = conn.execute(sql, args or None).fetchone()
    return None if row is None else row[0]


def cluster(name, action):
    env = dict(os.environ, CDP_CLUSTER=name, CDP_PGPORT=str(CLUSTERS[name]))
    subprocess.run([f"{ROOT}/scripts/cluster.sh", action], env=env, check=True)


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

ROLES = {  # login roles, the same on every server (roles are per server)
    "app_writer": "cdp_writer", "app_reader": "cdp_reader", "app_admin": "cdp_admin",
}


def setup():
    for node in ("node1", "node2"):
        with connect(dsn(node, "postgres")) as c:
            c.execute(f"CREATE DATABASE {NODE_DB}")
        with connect(dsn(node, NODE_DB)) as c:
            c.execute("CREATE EXTENSION cdp_identity")
    with connect(dsn("node1", "postgres")) as c:
        c.execute("CREATE DATABASE cdp_single")
    with connect(SINGLE) as c:
        c.execute("CREATE EXTENSION cdp_identity")
    with connect(dsn("router", "postgres")) as c:
        c.execute(f"CREATE DATABASE {ROUTER_DB}")
    with connect(dsn("router", ROUTER_DB)) as c:
        c.execute("CREATE EXTENSION cdp_identity_router CASCADE")
    for cl in CLUSTERS:
        with connect(dsn(cl, "postgres")) as c:
            for role, group in ROLES.items():
                c.execute(f"CREATE ROLE {role} LOGIN IN ROLE {group}")
            # a writer the nodes know as a writer, and one they do not know at all
            c.execute("CREATE ROLE w_only LOGIN IN ROLE cdp_writer")
            if cl == "router":
                c.execute("CREATE ROLE router_only LOGIN IN ROLE cdp_writer")
    r = connect(dsn("router", ROUTER_DB))
    for node in ("node1", "node2"):
        r.execute("SELECT cdp_router.add_node(%s, %s)", (node, f"host={BASE}/{node}/socket port={CLUSTERS[node]} dbname={NODE_DB}"))
    # three portals on each node, the story on node2
    for i, p in enumerate(PORTALS):
        r.execute("SELECT cdp_router.place_portal(%s, %s)", (p, "node1" if i % 2 == 0 else "node2"))
    r.execute("SELECT cdp_router.place_portal('story', 'node2')")
    admin = connect(dsn("router", ROUTER_DB, "app_admin"))
    s = connect(SINGLE)
    for p in PORTALS + ["story"]:
        admin.execute("SELECT cdp.create_portal(%s)", (p,))
        s.execute("SELECT cdp.create_portal(%s)", (p,))
        for role in ("app_writer", "app_reader", "w_only"):
            admin.execute("SELECT cdp.grant_portal(%s, %s)", (role, p))
    placed = dict(q(r, "SELECT portal, node FROM cdp_router.placement WHERE portal <> 'default'"))
    check("setup: portals pinned where placed (3 + 3, story on node2)",
          placed == {**{p: ("node1" if i % 2 == 0 else "node2") for i, p in enumerate(PORTALS)}, "story": "node2"}, str(placed))
    on_nodes = {}
    for node in ("node1", "node2"):
        with connect(dsn(node, NODE_DB)) as c:
            on_nodes[node] = sorted(x for (x,) in q(c, "SELECT portal FROM cdp.portal_settings"))
    check("setup: each portal created on its node only",
          on_nodes == {"node1": ["shop-1", "shop-3", "shop-5"], "node2": ["shop-2", "shop-4", "shop-6", "story"]}, str(on_nodes))
    keys = set()
    for node in ("node1", "node2"):
        with connect(dsn(node, NODE_DB)) as c:
            keys.add(q1(c, "SELECT key FROM cdp.install_key ORDER BY created_at, key LIMIT 1"))
    check("setup: add_node gave both nodes one erasure key", len(keys) == 1)
    listed = [x for (x,) in q(admin, "SELECT portal FROM cdp.portals")]
    check("setup: cdp.portals lists every portal once", listed == sorted(["default", "story"] + PORTALS), str(listed))
    usable = sorted(x for (x,) in q(connect(dsn("router", ROUTER_DB, "app_writer")), "SELECT cdp.usable_portals()"))
    check("setup: cdp.usable_portals for a writer: its granted portals and default", usable == sorted(["default", "story"] + PORTALS), str(usable))
    return r


def node_of(r, portal):
    return q1(r, "SELECT node FROM cdp_router.placement_of(%s)", portal)


def set_sequences(conn, base):
    """Every cdp sequence continues at base + 1 (so a portal's ids are the same here and on the router)."""
    for (seq,) in q(conn, "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences WHERE schemaname = 'cdp'"):
        conn.execute("SELECT setval(%s, %s)", (seq, base))


# ---------------------------------------------------------------------------
# helpers and errors
# ---------------------------------------------------------------------------

def helpers(r):
    w = connect(dsn("router", ROUTER_DB, "app_writer"))
    n = connect(dsn("node1", NODE_DB, "app_writer"))
    same = True
    for v in ["abc", "Ünïcode ✓", "", "User.A@Example.COM"]:
        for f in ["md5", "sha256", "normalize_email", "customer_id_for_email", "junk_reason"]:
            try:
                a = q1(w, f"SELECT cdp.{f}(%s)", v)
            except psycopg.Error as e:
                a = ("error", e.sqlstate)
            try:
                b = q1(n, f"SELECT cdp.{f}(%s)", v)
            except psycopg.Error as e:
                b = ("error", e.sqlstate)
            if a != b:
                same = False
                print(f"     {f}({v!r}): router {a!r}, node {b!r}")
    same &= q1(w, "SELECT cdp.normalize_phone('020 7946 0958', 'GB')") == q1(n, "SELECT cdp.normalize_phone('020 7946 0958', 'GB')")
    check("helpers: md5, sha256, normalize_*, customer_id_for_email, junk_reason answer as on a node", same)
    u = q1(w, "SELECT cdp.new_uid()")
    check("helpers: new_uid is a UUIDv7", uuid.UUID(u).version == 7, u)

    def err(conn, sql, *args):
        try:
            conn.execute(sql, args)
            return None
        except psycopg.Error as e:
            return (e.sqlstate, e.diag.message_primary, e.diag.message_hint)

    a = err(w, "SELECT cdp.track_event('', 'page', 'view', portal => 'shop-1')")
    b = err(connect(dsn("node1", NODE_DB, "app_writer")), "SELECT cdp.track_event('', 'page', 'view', portal => 'shop-1')")
    check("errors: a node's error comes through with its SQLSTATE and message", a == b and a[0] == "22023", f"{a} vs {b}")
    a = err(w, "SELECT cdp.track_event('u', 'page', 'view', portal => 'no-such-portal')")
    check("errors: an unknown portal is 22023 (from its hash node)", a is not None and a[0] == "22023", str(a))
    a = err(w, "SELECT cdp.identity_hash('x', portal => 'shop-1')")
    b = err(connect(dsn("node1", NODE_DB, "app_writer")), "SELECT cdp.identity_hash('x', portal => 'shop-1')")
    check("errors: hints come through (identity_hash without a secret: 55000)", a == b and a[0] == "55000" and a[2], f"{a} vs {b}")
    # the session's cdp.portal on the router selects the portal, like on a node
    w.execute("SET cdp.portal = 'shop-2'")
    p = q1(w, "SELECT cdp.track_event('session-portal-uid', 'page', 'view')")
    got = q1(connect(dsn("node2", NODE_DB)), "SELECT profile_id FROM cdp.uids WHERE portal = 'shop-2' AND uid = 'session-portal-uid'")
    check("portal: the router session's cdp.portal routes a call without the argument", p == got and p is not None, f"{p} {got}")
    check("portal: cdp.current_portal() on the router", q1(w, "SELECT cdp.current_portal()") == "shop-2")
    w.execute("RESET cdp.portal")
    check("portal: after RESET the portal is 'default'", q1(w, "SELECT cdp.current_portal()") == "default")


# ---------------------------------------------------------------------------
# the same input through the router and on a single node
# ---------------------------------------------------------------------------

WALLCLOCK = {"created_at", "merged_at", "changed_at", "skipped_at", "decided_at", "undone_at", "erased_at", "granted_at",
             "set_at", "updated_at", "cleared_at", "received_at", "exported_at"}


def scrub(v, parent=""):
    """Drops the keys that hold the wall-clock time of a write (not part of the input); an identifier's
    first_seen is when it was recorded."""
    if isinstance(v, dict):
        return {k: scrub(x, k) for k, x in v.items()
                if k not in WALLCLOCK and not (parent == "identifiers" and k in ("first_seen", "last_seen"))}
    if isinstance(v, list):
        return [scrub(x, parent) for x in v]
    return v


def workload(portal, seed):
    """A generated day of one portal: page views on known and new UIDs with devices, lead forms, sign-ins in
    payloads, direct identifies (some predicted), a shared browser, a batch, retries, an unmerge, erasures."""
    rnd = random.Random(seed)
    calls = []
    t = 0
    uids = [f"{portal}-u{i}" for i in range(30)]
    devices = [f"dev-{i}" for i in range(12)]
    customers = [f"cust-{i}" for i in range(10)]
    dev_of = {u: rnd.choice(devices) for u in uids}

    def ts():
        nonlocal t
        t += rnd.randint(5, 600)
        return t

    for step in range(110):
        u = rnd.choice(uids)
        k = rnd.random()
        ctx = {"device_id": dev_of[u], "session_id": f"s{step // 10}", "message_id": f"{portal}-m{step}",
               "user_agent": rnd.choice(["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
                                         "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"]),
               "ip": f"10.0.{rnd.randint(0, 3)}.{rnd.randint(1, 200)}"}
        if k < 0.55:
            calls.append(("track", u, "page", "view", {"context": ctx, "dims": {"page": {"n": step}}}, ts()))
        elif k < 0.65:
            email = f"{rnd.choice(customers)}@example.com"
            calls.append(("track", u, "form", "lead", {"context": ctx, "dims": {"customers": {"email": email, "name": "Lead"}}}, ts()))
        elif k < 0.78:
            c = rnd.choice(customers)
            calls.append(("track", u, "user", "sign_in",
                          {"context": ctx, "dims": {"customers": {"customer_id": c, "email": f"{c}@example.com", "tier": rnd.randint(1, 3)}}}, ts()))
        elif k < 0.9:
            c = rnd.choice(customers)
            calls.append(("identify", u, c, {"email": f"{c}@example.com", "score": rnd.randint(1, 99)},
                          rnd.choice(["exact", "exact", "predict"]), ts()))
        elif k < 0.95:
            batch = []
            for j in range(rnd.randint(2, 6)):
                bu = rnd.choice(uids)
                batch.append({"uid": bu, "category": "page", "action": "view", "event_time": None,
                              "payload": {"context": dict(ctx, message_id=f"{portal}-b{step}-{j}", device_id=dev_of[bu])}})
            calls.append(("batch", batch, ts()))
        else:  # a retry of an earlier message id
            calls.append(("track", u, "page", "view", {"context": dict(ctx, message_id=f"{portal}-m{max(0, step - 3)}")}, ts()))
        if step == 60:
            calls.append(("identify", uids[0], "shared-a", {}, "exact", ts()))
            calls.append(("identify", uids[0], "shared-b", {}, "exact", ts()))  # a shared browser
        if step == 95:
            calls.append(("forget_uid", uids[5]))
        if step == 100:
            calls.append(("forget_customer", customers[1]))
    return calls, uids, customers + ["shared-a", "shared-b"]


def run_workload(conn, portal, calls):
    """Runs the calls; returns what each answered (or its SQLSTATE)."""
    out = []
    for c in calls:
        try:
            if c[0] == "track":
                _, u, cat, act, payload, t = c
                out.append(q1(conn, "SELECT cdp.track_event(%s, %s, %s, %s, %s::timestamptz + make_interval(secs => %s), %s)",
                              u, cat, act, Jsonb(payload), T0, t, portal))
            elif c[0] == "identify":
                _, u, cid, attrs, typ, t = c
                out.append(q1(conn, "SELECT cdp.identify_outcome(%s, %s, %s, %s, %s::timestamptz + make_interval(secs => %s), %s)",
                              u, cid, Jsonb(attrs), typ, T0, t, portal))
            elif c[0] == "batch":
                _, batch, t = c
                items = [dict(it, event_time="2026-11-20T12:00:00Z") for it in batch]
                out.append(q1(conn, "SELECT cdp.track_batch(%s, %s)", Jsonb(items), portal))
            elif c[0] == "forget_uid":
                out.append(q1(conn, "SELECT cdp.forget_uid(%s, %s)", c[1], portal))
            elif c[0] == "forget_customer":
                out.append(q1(conn, "SELECT cdp.forget_customer(%s, %s)", c[1], portal))
        except psycopg.Error as e:
            out.append(("error", e.sqlstate))
    return out


def unmerge_some(conn, portal):
    """Undoes the first merge of the portal (read through the API: a customer's explain)."""
    for cid in ("cust-0", "cust-2", "cust-3", "cust-4"):
        prof = q1(conn, "SELECT cdp.customer_profile(%s, %s)", cid, portal)
        if not prof:
            continue
        ex = q1(conn, "SELECT cdp.explain(%s, %s)", prof["profile_id"], portal)
        merges = sorted(d["merge_id"] for d in ex.get("decisions", []) if d.get("kind") == "merge" and d.get("merge_id"))
        if merges:
            try:
                return q1(conn, "SELECT cdp.unmerge(%s, true, %s)", merges[0], portal)
            except psycopg.Error as e:
                return ("error", e.sqlstate)
    return None


def reads(conn, portal, uids, customers):
    """Every read function's answer for the portal's UIDs and customers."""
    out = {}
    for u in uids:
        pid = q1(conn, "SELECT cdp.profile_of(%s, %s)", u, portal)
        out[f"profile_of {u}"] = pid
        out[f"profile_at {u}"] = [q1(conn, "SELECT cdp.profile_at(%s, %s::timestamptz + make_interval(secs => %s), %s)", u, T0, s, portal)
                                  for s in (0, 10000, 30000, 10 ** 6)]
        if pid is None:
            continue
        out[f"profile {u}"] = scrub(q1(conn, "SELECT cdp.profile(%s, %s)", pid, portal))
        out[f"explain {u}"] = scrub(q1(conn, "SELECT cdp.explain(%s, %s)", pid, portal))
        out[f"root_of {u}"] = q1(conn, "SELECT cdp.root_of(%s, %s)", pid, portal)
        out[f"family_of {u}"] = sorted(x for (x,) in q(conn, "SELECT cdp.family_of(%s, %s)", pid, portal))
        out[f"events_of {u}"] = [tuple(r) for r in q(conn, "SELECT event_id, uid, category, action, event_time, payload "
                                                           "FROM cdp.events_of(%s, portal => %s)", pid, portal)]
        out[f"events_of newest {u}"] = [r[0] for r in q(conn, "SELECT event_id FROM cdp.events_of(%s, NULL, 5, true, %s)", pid, portal)]
    for c in customers:
        out[f"customer_profile {c}"] = scrub(q1(conn, "SELECT cdp.customer_profile(%s, %s)", c, portal))
        out[f"export_customer {c}"] = scrub(q1(conn, "SELECT cdp.export_customer(%s, %s)", c, portal))
    return out


def feed_of(conn, portal):
    rows, cur = [], 0
    while True:
        page = q(conn, "SELECT cursor, change_id, portal, kind, profile_id, customer_profile, customer_id, merge_id, detail "
                       "FROM cdp.changes_since(%s, 50)", cur)
        if not page:
            break
        cur = page[-1][0]
        rows += [tuple(x[1:8]) + (json.dumps(x[8], sort_keys=True),) for x in page if x[2] == portal]
    return rows


def first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if d:
                return d
        return ""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return ""
    return "" if a == b else f"{path}: {str(a)[:200]} / {str(b)[:200]}"


def diff(a, b):
    keys = sorted(set(a) | set(b))
    bad = [k for k in keys if a.get(k) != b.get(k)]
    if bad:
        return f"{len(bad)} answers differ (router / single), first {bad[0]} {first_difference(a.get(bad[0]), b.get(bad[0]))}"
    return ""


def scrub_lines(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.dumps(scrub(json.loads(line)), sort_keys=True))
        except ValueError:
            out.append(line)
    return out


def equality(r):
    admin = connect(dsn("router", ROUTER_DB, "app_admin"))
    single = connect(SINGLE)
    # the seed story, through psql, on both
    base = 10_000_000
    with connect(dsn(node_of(r, "story"), NODE_DB)) as n:
        set_sequences(n, base)
    set_sequences(single, base)
    outs = []
    for conninfo in (dsn("router", ROUTER_DB, "app_admin"), SINGLE):
        res = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "portal=story", "-v", f"t0={T0}", "-f", f"{ROOT}/router/seed_story.sql",
                              conninfo], capture_output=True, text=True)
        outs.append((res.returncode, res.stdout, res.stderr))
    check("equal: the seed story runs through the router", outs[0][0] == 0, outs[0][2][-500:])
    check("equal: the seed story prints the same through the router as on a single node (ids included)",
          scrub_lines(outs[0][1]) == scrub_lines(outs[1][1]) and outs[0][1].count("\n") > 10,
          first_difference(scrub_lines(outs[0][1]), scrub_lines(outs[1][1])))
    story_uids = ["uid-day-1", "uid-day-3", "uid-day-7"]
    story_customers = [q1(single, "SELECT cdp.md5('user.a@example.com')")]
    a, b = reads(admin, "story", story_uids, story_customers), reads(single, "story", story_uids, story_customers)
    prof = a.get("customer_profile " + story_customers[0]) or {}
    check("equal: the story's customer has merged both anonymous profiles", len(prof.get("merged_profiles", [])) == 2, str(prof)[:300])
    check("equal: the story's reads (profiles, explain, timeline, profile_at, export) equal a single node's", not diff(a, b), diff(a, b))
    # the generated workload over six portals
    all_same, reads_same, feeds_same, nonempty = True, True, True, 0
    for i, p in enumerate(PORTALS):
        base = (i + 2) * 10_000_000
        with connect(dsn(node_of(r, p), NODE_DB)) as n:
            set_sequences(n, base)
        set_sequences(single, base)
        calls, uids, customers = workload(p, 1000 + i)
        ra, rb = run_workload(admin, p, calls), run_workload(single, p, calls)
        ra.append(unmerge_some(admin, p))
        rb.append(unmerge_some(single, p))
        if ra != rb:
            all_same = False
            j = next(j for j in range(min(len(ra), len(rb))) if ra[j] != rb[j]) if any(x != y for x, y in zip(ra, rb)) else -1
            print(f"     {p}: call {j} answered {str(ra[j])[:200]} / {str(rb[j])[:200]}")
        a, b = reads(admin, p, uids, customers), reads(single, p, uids, customers)
        d = diff(a, b)
        if d:
            reads_same = False
            print(f"     {p}: {d}")
        nonempty += sum(1 for k, v in a.items() if k.startswith("events_of ") and v)
        fa, fb = feed_of(admin, p), feed_of(single, p)
        if fa != fb or not fa:
            feeds_same = False
            print(f"     {p}: feed router {len(fa)} rows, single {len(fb)}; first differing {next((x for x in zip(fa, fb) if x[0] != x[1]), None)}")
    check("equal: 6 portals' calls answer the same through the router as on a single node (ids included)", all_same)
    check(f"equal: 6 portals' reads (profiles, explain, timelines, profile_at, family, exports) are the same ({nonempty} timelines)",
          reads_same and nonempty > 50)
    check("equal: each portal's change feed through the router equals a single node's", feeds_same)


# ---------------------------------------------------------------------------
# grants
# ---------------------------------------------------------------------------

def grants(r):
    def sqlstate(conninfo, sql):
        try:
            with connect(conninfo) as c:
                c.execute(sql)
            return None
        except psycopg.Error as e:
            return e.sqlstate

    w = dsn("router", ROUTER_DB, "w_only")
    check("grants: a cdp_writer on the router tracks", sqlstate(w, "SELECT cdp.track_event('g-uid', 'page', 'view', portal => 'shop-1')") is None)
    check("grants: ... and identifies", sqlstate(w, "SELECT cdp.identify('g-uid', 'g-cust', portal => 'shop-1')") is None)
    check("grants: ... but cannot forget (42501 on the router)", sqlstate(w, "SELECT cdp.forget_customer('g-cust', 'shop-1')") == "42501")
    check("grants: ... nor forget through the PL/Proxy function", sqlstate(w, "SELECT cdp_router.forget_customer('g-cust', 'shop-1')") == "42501")
    check("grants: ... nor read a profile (42501)", sqlstate(w, "SELECT cdp.profile(1, 'shop-1')") == "42501")
    check("grants: ... nor follow the feed (42501)", sqlstate(w, "SELECT * FROM cdp.changes_since(0)") == "42501")
    check("grants: ... nor move a portal", sqlstate(w, "CALL cdp_router.move_portal('shop-1', 'node2')") == "42501")
    check("grants: ... nor read the router's tables", sqlstate(w, "SELECT * FROM cdp_router.nodes") == "42501")
    # the node checks too: the role the node does not know cannot even connect; a portal not granted is 42501 there
    st = sqlstate(dsn("router", ROUTER_DB, "router_only"), "SELECT cdp.track_event('g-uid', 'page', 'view', portal => 'shop-1')")
    check("grants: a writer only the router knows is refused by the node (28000: the node refused its connection)", st == "28000", str(st))
    with connect(dsn("router", ROUTER_DB, "app_admin")) as a:
        a.execute("SELECT cdp.create_portal('closed')")
    st = sqlstate(w, "SELECT cdp.track_event('g-uid', 'page', 'view', portal => 'closed')")
    check("grants: a portal the role is not granted is 42501 from the node", st == "42501", str(st))


# ---------------------------------------------------------------------------
# a node down
# ---------------------------------------------------------------------------

class Sender(threading.Thread):
    """Sends page views to one portal with message ids; resends a message on a 55P03 or 57P03 until it is
    accepted. Records what was accepted, every error and how long the failing calls took."""

    def __init__(self, portal, tag, user="app_writer", identify_every=0):
        super().__init__(daemon=True)
        self.portal, self.tag, self.identify_every = portal, tag, identify_every
        self.conn = connect(dsn("router", ROUTER_DB, user))
        self.stop_flag = threading.Event()
        self.accepted = []
        self.errors = []  # (sqlstate, message, hint, seconds, time)
        self.ok_times = []
        self.n = 0

    def run(self):
        while not self.stop_flag.is_set():
            mid = f"{self.tag}-{self.n}"
            uid = f"{self.tag}-uid-{self.n % 40}"
            payload = {"context": {"message_id": mid, "device_id": f"{self.tag}-dev-{self.n % 40}"}}
            if self.identify_every and self.n % self.identify_every == 0:
                payload["dims"] = {"customers": {"customer_id": f"{self.tag}-c{self.n % 7}"}}
            while True:
                t = time.monotonic()
                try:
                    self.conn.execute("SELECT cdp.track_event(%s, 'page', 'view', %s, portal => %s)", (uid, Jsonb(payload), self.portal))
                    self.accepted.append(mid)
                    self.ok_times.append(time.monotonic())
                    break
                except psycopg.Error as e:
                    self.errors.append((e.sqlstate, e.diag.message_primary, e.diag.message_hint, time.monotonic() - t, time.monotonic()))
                    if e.sqlstate not in ("55P03", "57P03"):
                        break
                    if self.stop_flag.is_set() and len(self.errors) > 10000:
                        break
                    time.sleep(0.05)
            self.n += 1
            time.sleep(0.002)

    def stop(self):
        self.stop_flag.set()
        self.join(60)


def stored_message_ids(node, portal, prefix):
    with connect(dsn(node, NODE_DB)) as c:
        return [m for (m,) in q(c, "SELECT payload->'context'->>'message_id' FROM cdp.events WHERE portal = %s "
                                   "AND payload->'context'->>'message_id' LIKE %s", portal, prefix + "-%")]


def node_down(r):
    senders = [Sender(p, f"down-{p}") for p in PORTALS]
    for s in senders:
        s.start()
    time.sleep(1.5)
    stopped_at = time.monotonic()
    cluster("node2", "stop")
    time.sleep(3)
    restart_at = time.monotonic()
    cluster("node2", "start")
    time.sleep(2)
    for s in senders:
        s.stop()
    down = [s for s in senders if node_of(r, s.portal) == "node2"]
    up = [s for s in senders if node_of(r, s.portal) == "node1"]
    errs = [e for s in down for e in s.errors]
    check("down: node2's portals failed while it was down", len(errs) > 0, f"{len(errs)} errors")
    check("down: ... every failure is 57P03 'node \"node2\" is unreachable' with a hint",
          errs and all(e[0] == "57P03" and 'node "node2" is unreachable' in e[1] and e[2] for e in errs),
          str(sorted({(e[0], e[1][:80]) for e in errs}))[:400])
    slowest = max((e[3] for e in errs), default=0)
    check(f"down: ... each within the connect timeout (slowest {slowest * 1000:.0f} ms, timeout 2 s)", slowest < 2.5)
    check("down: node1's portals never failed", all(not s.errors for s in up), str([s.errors[:2] for s in up]))
    during = sum(1 for s in up for t in s.ok_times if stopped_at + 0.2 < t < restart_at)
    check(f"down: node1's portals kept being accepted while node2 was down ({during} events)", during > 20)
    after = sum(1 for s in down for t in s.ok_times if t > restart_at + 1)
    check(f"down: node2's portals are accepted again after the restart ({after} events)", after > 0)
    whole = True
    for s in senders:
        stored = stored_message_ids(node_of(r, s.portal), s.portal, s.tag)
        if sorted(stored) != sorted(s.accepted):
            whole = False
            print(f"     {s.portal}: accepted {len(s.accepted)}, stored {len(stored)}, distinct stored {len(set(stored))}")
    check(f"down: every accepted event is stored exactly once ({sum(len(s.accepted) for s in senders)} events)", whole)


# ---------------------------------------------------------------------------
# moving a portal under traffic
# ---------------------------------------------------------------------------

def move(r):
    moving, other = "shop-1", "shop-3"  # both on node1; shop-1 goes to node2
    admin = connect(dsn("router", ROUTER_DB, "app_admin"))
    # some bulk so the copy takes a moment, and frozen UIDs no sender touches
    for k in range(10):
        admin.execute("SELECT cdp.track_batch(%s, 'shop-1')", (Jsonb([{"uid": f"bulk-{k}-{j}", "category": "page", "action": "view",
                                                                       "payload": {"context": {"message_id": f"bulk-{k}-{j}"}}}
                                                                      for j in range(300)]),))
    frozen = ["shop-1-u1", "shop-1-u2", "shop-1-u3", "shop-1-u7", "g-uid"]
    before = reads(admin, moving, frozen, ["cust-0", "cust-2", "g-cust"])
    feed_before = []
    cur = 0
    with connect(dsn("router", ROUTER_DB, "app_reader")) as rd:  # a consumer half-way through before the move
        page = q(rd, "SELECT * FROM cdp_router.changes_since('{}', 40)")
        feed_before = page
    senders = [Sender(moving, "mv-a", identify_every=5), Sender(moving, "mv-b"), Sender(other, "mv-other", identify_every=7)]
    for s in senders:
        s.start()
    time.sleep(1)
    t = time.monotonic()
    try:
        with connect(dsn("router", ROUTER_DB)) as su:
            move_id = q1(su, "CALL cdp_router.move_portal('shop-1', 'node2')")
        moved = True
    except psycopg.Error as e:
        moved = False
        print(f"     move failed: {e.sqlstate} {e}")
    took = time.monotonic() - t
    time.sleep(1.5)
    for s in senders:
        s.stop()
    check(f"move: cdp_router.move_portal moved shop-1 to node2 under traffic ({took:.2f} s)", moved and node_of(r, moving) == "node2")
    errs = [e for s in senders[:2] for e in s.errors]
    check(f"move: the moving portal's calls failed meanwhile with 55P03 and the hint ({len(errs)} refusals)",
          errs and all(e[0] == "55P03" and e[2] == "portal shop-1 is being moved; retry shortly" for e in errs),
          str(sorted({(e[0], e[1][:60], e[2]) for e in errs}))[:400])
    check("move: the other portal on the same node never failed", not senders[2].errors, str(senders[2].errors[:3]))
    whole = True
    for s in senders:
        stored = stored_message_ids(node_of(r, s.portal), s.portal, s.tag)
        if sorted(stored) != sorted(s.accepted):
            whole = False
            print(f"     {s.portal}/{s.tag}: accepted {len(s.accepted)}, stored {len(stored)}, distinct {len(set(stored))}")
    check(f"move: every accepted event of both portals stored exactly once ({sum(len(s.accepted) for s in senders)} events)", whole)
    with connect(dsn("node1", NODE_DB)) as c:
        left = {t: q1(c, f"SELECT count(*) FROM cdp.{t} WHERE portal = 'shop-1'") for t in
                ("profiles", "uids", "events", "identifiers", "merges", "profile_attributes", "portal_secrets")}
        stub = q1(c, "SELECT count(*) FROM cdp.identity_changes WHERE portal = 'shop-1'")
    check("move: node1 kept no data row of shop-1 (only its change-feed rows)", not any(left.values()), str(left))
    with connect(dsn("node2", NODE_DB)) as c:
        bulk = q1(c, "SELECT count(*) FROM cdp.events WHERE portal = 'shop-1' AND payload->'context'->>'message_id' LIKE 'bulk-%%'")
    check("move: the portal's earlier events came along (3000 bulk events)", bulk == 3000, str(bulk))
    after = reads(admin, moving, frozen, ["cust-0", "cust-2", "g-cust"])
    check("move: untouched profiles, explanations and timelines read the same after the move (same ids)", not diff(after, before),
          diff(after, before))
    # a resent event of before the move is recognized on the new node
    pid = q1(admin, "SELECT cdp.track_event('bulk-0-0', 'page', 'view', '{\"context\": {\"message_id\": \"bulk-0-0\"}}', portal => 'shop-1')")
    with connect(dsn("node2", NODE_DB)) as c:
        n = q1(c, "SELECT count(*) FROM cdp.events WHERE portal = 'shop-1' AND payload->'context'->>'message_id' = 'bulk-0-0'")
    check("move: an event resent after the move is stored once (its message id came along)", n == 1 and pid is not None)
    # new ids continue after the moved ones
    with connect(dsn("node2", NODE_DB)) as c:
        ok = q1(c, "SELECT max(event_id) FROM cdp.events WHERE portal = 'shop-1' AND payload->'context'->>'message_id' LIKE 'mv-a-%%'") \
            > q1(c, "SELECT max(event_id) FROM cdp.events WHERE portal = 'shop-1' AND payload->'context'->>'message_id' LIKE 'bulk-%%'")
    check("move: the portal's new event ids follow its moved ones", ok)
    rec = q(r, "SELECT from_node, to_node, copied->>'events', source_cleaned FROM cdp_router.moves")
    check("move: the move is recorded (cdp_router.moves)", len(rec) == 1 and rec[0][0] == "node1" and rec[0][3], str(rec))
    # moving to where it is, and to a node that does not exist, fail cleanly
    with connect(dsn("router", ROUTER_DB)) as su:
        try:
            su.execute("CALL cdp_router.move_portal('shop-1', 'node2')")
            st = None
        except psycopg.Error as e:
            st = e.sqlstate
    check("move: moving a portal where it is already is 22023", st == "22023", str(st))
    check("move: the portal is not left blocked", q1(r, "SELECT moving FROM cdp_router.placement WHERE portal = 'shop-1'") is False)
    return feed_before


# ---------------------------------------------------------------------------
# the change feed
# ---------------------------------------------------------------------------

def all_changes():
    out = []
    for node in ("node1", "node2"):
        with connect(dsn(node, NODE_DB)) as c:
            out += [(node, p, cid) for (p, cid) in q(c, "SELECT portal, change_id FROM cdp.identity_changes")]
    return out


def feed(r, feed_before):
    rd = connect(dsn("router", ROUTER_DB, "app_reader"))
    # bigint router cursors, small pages
    got, cur, pages = [], 0, 0
    while True:
        page = q(rd, "SELECT cursor, portal, change_id FROM cdp.changes_since(%s, 7)", cur)
        if not page:
            break
        pages += 1
        cur = page[-1][0]
        got += [(p, c) for (_, p, c) in page]
    # the reader may use every portal it was granted; it sees those portals' changes
    usable = {x for (x,) in q(rd, "SELECT cdp.usable_portals()")}
    expected = [(p, c) for (_, p, c) in all_changes() if p in usable]
    check(f"feed: every change of both nodes exactly once through the bigint cursor ({len(got)} changes, {pages} pages)",
          sorted(got) == sorted(expected) and len(set(got)) == len(got) and len(got) > 0,
          f"got {len(got)} ({len(set(got))} distinct), expected {len(expected)}")
    check("feed: an empty page at the end, and again from the last cursor",
          not q(rd, "SELECT * FROM cdp.changes_since(%s, 7)", cur))
    # the composite cursor, resumed from the consumer that stopped before the move
    pos = feed_before[-1][0] if feed_before else {}
    got2 = [(x[4], x[3]) for x in feed_before]
    nodes_of_moved = []
    while True:
        page = q(rd, "SELECT cursor, node, portal, change_id FROM cdp_router.changes_since(%s, 13)", Jsonb(pos))
        if not page:
            break
        pos = page[-1][0]
        got2 += [(p, c) for (_, _, p, c) in page]
        nodes_of_moved += [n for (_, n, p, _) in page if p == "shop-1"]
    check(f"feed: the composite cursor, resumed across the move, gives every change exactly once ({len(got2)})",
          sorted(got2) == sorted(expected), f"got {len(got2)} ({len(set(got2))} distinct), expected {len(expected)}")
    first2 = nodes_of_moved.index("node2") if "node2" in nodes_of_moved else len(nodes_of_moved)
    check("feed: the moved portal's changes kept on node1 came before its changes on node2",
          "node1" not in nodes_of_moved[first2:] and "node2" in nodes_of_moved, str(nodes_of_moved[:5]) + "..." + str(nodes_of_moved[-5:]))
    # with a node down, the feed goes on with the other one and loses nothing
    with connect(dsn("router", ROUTER_DB, "app_writer")) as w:
        w.execute("SELECT cdp.track_event('feed-uid-1', 'page', 'view', portal => 'shop-3')")
        w.execute("SELECT cdp.identify('feed-uid-1', 'feed-cust-1', portal => 'shop-3')")  # node1: a merge
        w.execute("SELECT cdp.track_event('feed-uid-2', 'page', 'view', '{\"context\": {\"device_id\": \"feed-dev\"}}', portal => 'shop-2')")
        w.execute("SELECT cdp.track_event('feed-uid-3', 'page', 'view', '{\"context\": {\"device_id\": \"feed-dev\"}}', portal => 'shop-2')")
        w.execute("SELECT cdp.identify('feed-uid-2', 'feed-cust-2', portal => 'shop-2')")  # node2: a merge of feed-uid-3's profile
    cluster("node2", "stop")
    page = q(rd, "SELECT cursor, node, portal, change_id FROM cdp_router.changes_since(%s, 100)", Jsonb(pos))
    check("feed: with node2 down, node1's new changes still come", page and all(x[1] == "node1" for x in page), str(page)[:300])
    if page:
        pos = page[-1][0]
    cluster("node2", "start")
    page = []
    for _ in range(3):
        try:
            page = q(rd, "SELECT cursor, node, portal, change_id FROM cdp_router.changes_since(%s, 100)", Jsonb(pos))
            break
        except psycopg.Error:
            time.sleep(0.3)  # the first call after a restart may meet the old connection
    check("feed: node2's changes follow once it is back", page and all(x[1] == "node2" for x in page) and len(page) >= 1, str(page)[:300])
    # prune through the router (admin), by router cursor
    with connect(dsn("router", ROUTER_DB, "app_admin")) as a:
        last = q(a, "SELECT cursor FROM cdp.changes_since(0, 100000)")[-1][0]
        pruned = q1(a, "SELECT cdp.prune_changes(%s, 'shop-1')", last)
    left = sum(1 for (_, p, _) in all_changes() if p == "shop-1")
    check(f"feed: prune_changes through the router prunes the portal on both nodes ({pruned} rows)", pruned > 0 and left == 0, f"{left} left")


def main():
    r = setup()
    helpers(r)
    equality(r)
    grants(r)
    node_down(r)
    feed_before = move(r)
    feed(r, feed_before)
    print(f"router tests took {time.monotonic() - STARTED:.0f} s")
    print(f"router: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
