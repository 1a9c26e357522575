#!/usr/bin/env python3
"""The router's cost and one portal's limits, on the topology router/bench.sh starts (a router and two
nodes on this machine, as router/test.sh).

1. Overhead per call: the same call sent straight to the node and through the router, alternating call
   by call in one run (so both see the same machine load): track_event of a known UID (a page view) and
   identify (a new UID joining an existing customer). Median and 90th percentile of the client-side
   latency over N calls each.
2. One portal's limits through the router: page views of known UIDs with track_batch (1,000 events a
   batch) from 1 and 2 clients, and identifies per second from 1 and 4 clients (identify holds the
   portal's identity lock until it commits, so one portal's identifies run one at a time).
Prints markdown tables.
"""
import os
import statistics
import sys
import threading
import time

from psycopg.types.json import Jsonb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_router import BASE, CLUSTERS, NODE_DB, ROUTER_DB, connect, dsn, q1  # noqa: E402

N = int(os.environ.get("CDP_ROUTER_BENCH_CALLS", "2000"))
SECONDS = float(os.environ.get("CDP_ROUTER_BENCH_SECONDS", "5"))
MOVE_EVENTS = int(os.environ.get("CDP_ROUTER_BENCH_MOVE_EVENTS", "100000"))


def setup():
    for node in ("node1", "node2"):
        with connect(dsn(node, "postgres")) as c:
            c.execute(f"CREATE DATABASE {NODE_DB}")
        with connect(dsn(node, NODE_DB)) as c:
            c.execute("CREATE EXTENSION cdp_identity")
    with connect(dsn("router", "postgres")) as c:
        c.execute(f"CREATE DATABASE {ROUTER_DB}")
    r = connect(dsn("router", ROUTER_DB))
    r.execute("CREATE EXTENSION cdp_identity_router CASCADE")
    for node in ("node1", "node2"):
        r.execute("SELECT cdp_router.add_node(%s, %s)", (node, f"host={BASE}/{node}/socket port={CLUSTERS[node]} dbname={NODE_DB}"))
    r.execute("SELECT cdp_router.place_portal('bench', 'node1')")
    r.execute("SELECT cdp_router.place_portal('other', 'node2')")
    r.execute("SELECT cdp.create_portal('bench')")
    r.execute("SELECT cdp.create_portal('other')")
    # known UIDs and customers
    for k in range(5):
        r.execute("SELECT cdp.track_batch(%s, 'bench')", (Jsonb([{"uid": f"known-{k * 1000 + j}", "category": "page", "action": "view"}
                                                                 for j in range(1000)]),))
    for j in range(50):
        r.execute("SELECT cdp.identify(%s, %s, portal => 'bench')", (f"known-{j}", f"cust-{j}"))


def overhead():
    direct = connect(dsn("node1", NODE_DB))
    routed = connect(dsn("router", ROUTER_DB))
    rows = []
    calls = {
        "track_event (page view of a known UID)":
            ("SELECT cdp.track_event(%s, 'page', 'view', '{\"dims\": {\"page\": {\"path\": \"/\"}}}', portal => 'bench')",
             lambda i, tag: (f"known-{1000 + (i % 4000)}",)),
        "identify (a new UID joins an existing customer)":
            ("SELECT cdp.identify(%s, %s, portal => 'bench')", lambda i, tag: (f"new-{tag}-{i}", f"cust-{i % 50}")),
    }
    for name, (sql, args) in calls.items():
        n = N if name.startswith("track") else max(200, N // 4)
        for conn in (direct, routed):  # warm both (plans, the PL/Proxy connection)
            for i in range(20):
                conn.execute(sql, args(i, "warm" + str(id(conn))))
        lat = {"direct": [], "router": []}
        for i in range(n):
            for label, conn in (("direct", direct), ("router", routed)) if i % 2 == 0 else (("router", routed), ("direct", direct)):
                t = time.perf_counter()
                conn.execute(sql, args(i, label)).fetchone()
                lat[label].append((time.perf_counter() - t) * 1e6)
        d, r = statistics.median(lat["direct"]), statistics.median(lat["router"])
        d90 = statistics.quantiles(lat["direct"], n=10)[-1]
        r90 = statistics.quantiles(lat["router"], n=10)[-1]
        rows.append((name, n, d, r, r - d, d90, r90))
    return rows


def throughput(fn, clients, seconds):
    stop = threading.Event()
    counts = [0] * clients

    def worker(k):
        conn = connect(dsn("router", ROUTER_DB))
        i = 0
        while not stop.is_set():
            counts[k] += fn(conn, k, i)
            i += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - t)


def batch(conn, k, i):
    items = [{"uid": f"known-{(i * 1000 + j + k * 333) % 5000}", "category": "page", "action": "view",
              "payload": {"dims": {"page": {"path": f"/p/{j % 50}"}}}} for j in range(1000)]
    rep = q1(conn, "SELECT cdp.track_batch(%s, 'bench')", Jsonb(items))
    return rep["stored"]


def identify(conn, k, i):
    conn.execute("SELECT cdp.identify(%s, %s, portal => 'bench')", (f"tp-{k}-{i}", f"cust-{(i * 7 + k) % 50}"))
    return 1


def main():
    setup()
    rows = overhead()
    print(f"Router overhead per call (median and 90th percentile of {N} calls each, client-side latency in microseconds, "
          "node and router calls alternating in one run; router, node1 and node2 on this machine):\n")
    print("| call | calls | node direct (median) | through the router (median) | router overhead | node p90 | router p90 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, d, r, o, d90, r90 in rows:
        print(f"| {name} | {n} | {d:.0f} µs | {r:.0f} µs | +{o:.0f} µs ({r / d:.2f}x) | {d90:.0f} µs | {r90:.0f} µs |")
    print()
    print(f"One portal's limits through the router ({SECONDS:.0f} s each; one portal lives on one node):\n")
    print("| workload | clients | per second |")
    print("|---|---:|---:|")
    for c in (1, 2):
        print(f"| track_batch, 1,000 page views of known UIDs a batch | {c} | {throughput(batch, c, SECONDS):,.0f} events |")
    for c in (1, 4):
        print(f"| identify, a new UID joining an existing customer | {c} | {throughput(identify, c, SECONDS):,.0f} identifies |")
    # moving a portal: 'other' with MOVE_EVENTS events (and their UIDs, profiles) from node2 to node1
    r = connect(dsn("router", ROUTER_DB))
    for k in range(MOVE_EVENTS // 1000):
        r.execute("SELECT cdp.track_batch(%s, 'other')", (Jsonb([{"uid": f"m-{(k * 1000 + j) % (MOVE_EVENTS // 10)}", "category": "page",
                                                                 "action": "view", "payload": {"dims": {"page": {"path": f"/p/{j}"}}}}
                                                                for j in range(1000)]),))
    rows = sum(v for v in q1(r, "SELECT to_jsonb(c) - 'node' - 'portal' FROM cdp_router.portal_counts() c WHERE portal = 'other'").values())
    t = time.perf_counter()
    r.execute("CALL cdp_router.move_portal('other', 'node1')")
    took = time.perf_counter() - t
    copied = q1(r, "SELECT copied FROM cdp_router.moves ORDER BY move_id DESC LIMIT 1")
    total = sum(copied.values())
    print()
    print(f"Moving a portal (cdp_router.move_portal, node2 to node1, no traffic): {MOVE_EVENTS:,} events, {total:,} rows in all, "
          f"{took:.1f} s ({total / took:,.0f} rows/s); the portal's calls are refused (55P03) for that long.")


if __name__ == "__main__":
    main()
