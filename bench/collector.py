#!/usr/bin/env python3
"""Collector end to end: events/s through cdp-collector (HTTP) against direct cdp.track_batch calls.

The same batches of 50 page views of known visitors (one UID per batch, as a browser's SDK sends
its queue) go, in the same run and alternating, (a) as POST /v1/batch to cdp-collector from C
HTTP clients (Python threads, http.client keep-alive, bodies prepared beforehand) and (b) as
`SELECT cdp.track_batch(...)` from C psql sessions. The direct batches carry the context.ip and
context.user_agent the collector adds, so the database does the same work; cdp.events is emptied
before every run. Reported: events/s of each, their ratio (goal: at least 0.7), p50/p99 latency of
a request (collector: HTTP round trip at the client; direct: psql's \\timing), and the CPU the
clients, the collector and the whole machine used, which shows whether the client side is a limit.

    python3 bench/collector.py                 full run (about 2 minutes): prints the section
    python3 bench/collector.py --smoke         seconds; ends with "collector bench smoke: N passed, M failed"
    python3 bench/collector.py --markdown F    also writes the section ("## Collector end to end") to F

Cluster: the one in PGHOST/PGPORT/PGUSER when set (bench/run.sh exports its own), where it creates
and drops database cdp_bench_collector; otherwise it starts a throwaway one (scripts/cluster.sh,
CDP_CLUSTER=bench_collector, port 54372, fsync on) and destroys it. Builds the collector
(cargo build --release -p cdp_collector) when target/release/cdp-collector is missing.
"""
import argparse
import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DB = "cdp_bench_collector"
ROLE = "bench_collector"
KEY = "wk_bench_collector_key"
BATCH = 50
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

FULL = dict(events=120_000, reps=5, clients=(4, 8), visitors=2_000)
SMOKE = dict(events=2_000, reps=1, clients=(4,), visitors=100)
GOAL = 0.7


def psql(sql, db=DB):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db], input=sql, capture_output=True, text=True,
                         env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    if out.returncode != 0:
        sys.exit(f"collector bench: psql failed:\n{sql[:400]}\n{out.stderr}")
    return out.stdout.strip()


# ---------------------------------------------------------------- the cluster, the database, the collector

class Cluster:
    """The cluster of the environment (bench/run.sh's), or a throwaway one of its own."""

    def __init__(self):
        self.own = not os.environ.get("PGHOST")
        if self.own:
            self.env = {k: v for k, v in os.environ.items() if k not in ("CDP_BASE", "CDP_PGDATA")}
            self.env.update(CDP_CLUSTER="bench_collector", CDP_PGPORT=os.environ.get("CDP_BENCH_COLLECTOR_PORT", "54372"), CDP_FSYNC="on")
            subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "destroy"], env=self.env, capture_output=True)
            subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "start"], env=self.env, check=True)
            out = subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "env"], env=self.env, capture_output=True, text=True, check=True)
            for assignment in out.stdout.split():
                name, _, value = assignment.partition("=")
                os.environ[name] = value

    def close(self):
        if self.own:
            subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "destroy"], env=self.env, capture_output=True)


def setup_database(visitors):
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", db="postgres")
    psql(f"CREATE DATABASE {DB}", db="postgres")
    psql(f"""CREATE EXTENSION cdp_identity;
             DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN CREATE ROLE {ROLE} LOGIN; END IF;
             END $$;
             GRANT cdp_writer TO {ROLE};""")
    # The known visitors: one earlier page view each, so that every benchmark event only appends.
    ctx = (f"jsonb_build_object('device_id', 'bd' || v, 'user_agent', '{UA}', 'ip', '127.0.0.1', 'locale', 'en-GB', "
           "'timezone', 'Europe/London', 'screen', '1920x1080')")
    psql(f"SELECT count(cdp.track_event('bv' || v, 'pageview', 'view', jsonb_build_object('context', {ctx}), now() - interval '1 day')) "
         f"FROM generate_series(1, {visitors}) v; ANALYZE;")


def collector_binary():
    binary = os.path.join(ROOT, "target", "release", "cdp-collector")
    if not os.path.exists(binary):
        print("collector bench: cargo build --release -p cdp_collector", flush=True)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "cdp_collector"], cwd=ROOT, check=True,
                       env=dict(os.environ, PATH=os.path.expanduser("~/.cargo/bin") + ":" + os.environ["PATH"]))
    return binary


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(work, pool_size):
    port = free_port()
    config = os.path.join(work, "collector.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
shutdown_timeout_secs = 5

[log]
level = "info"

[database]
url = "host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} user={ROLE}"
pool_size = {pool_size}

[rate_limit]
per_second = 0
burst = 1

[portals.default]
write_keys = ["{KEY}"]
allowed_origins = ["*"]

[dashboard]
enabled = false
""")
    log = open(os.path.join(work, "collector.log"), "w")
    proc = subprocess.Popen([collector_binary(), "--config", config], stdout=subprocess.DEVNULL, stderr=log,
                            env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit("collector bench: the collector did not start:\n" + open(os.path.join(work, "collector.log")).read()[-2000:])


# ---------------------------------------------------------------- the batches

def batches(events, visitors):
    """[(http_body, direct_items_json)]: the same 50 page views of one known visitor, as the SDK sends them
    (HTTP) and as the collector hands them to cdp.track_batch (with context.ip and user_agent)."""
    out = []
    base = time.time() - 3600
    for b in range(events // BATCH):
        v = 1 + (b * 7919) % visitors  # visitors spread over the run, neighbours far apart
        items = []
        for i in range(BATCH):
            t = time.gmtime(base + b * 0.01 + i * 0.0001)
            items.append({
                "uid": f"bv{v}", "category": "pageview", "action": "view",
                "event_time": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{(b * BATCH + i) % 1000:03d}Z",
                "payload": {"context": {
                    "page_url": f"https://shop.example/p/{(b + i) % 97}", "page_title": f"Product {(b + i) % 97}",
                    "referrer": "https://www.google.com/", "timezone": "Europe/London", "locale": "en-GB", "screen": "1920x1080",
                    "property_id": "web", "device_id": f"bd{v}", "session_id": f"bs{v}-{b // 20}", "message_id": f"bm-{b}-{i}",
                    "sdk": "cdp-web/0.1.0"}}})
        body = json.dumps({"batch": items, "sent_at": "2026-11-30T10:15:14.250Z"}, separators=(",", ":")).encode()
        for item in items:
            item["payload"]["context"].update(ip="127.0.0.1", user_agent=UA)
        out.append((body, json.dumps(items, separators=(",", ":"))))
    return out


# ---------------------------------------------------------------- measurements

def cpu_of(pid, children=False):
    """utime + stime of a process (and of its children it waited for), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def machine_ticks():
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Meter:
    """CPU of this process, its children, the collector and the whole machine over a run."""

    def __init__(self, collector_pid, children_before=0.0):
        self.pid = collector_pid
        self.children_before = children_before  # CPU the running children had used before the start

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.self0 = time.process_time()
        self.children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.collector0 = cpu_of(self.pid)
        self.machine0 = machine_ticks()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.client_cpu = (time.process_time() - self.self0) + (children.ru_utime + children.ru_stime - self.children0.ru_utime - self.children0.ru_stime - self.children_before)
        self.collector_cpu = cpu_of(self.pid) - self.collector0
        busy, total = machine_ticks()
        self.machine_busy = (busy - self.machine0[0]) / max(1, total - self.machine0[1])


def empty_events():
    psql("TRUNCATE cdp.events; CHECKPOINT;")


def stored_events():
    return int(psql("SELECT count(*) FROM cdp.events"))


def batch_durations(port):
    """(sum of seconds, count) of the collector's own request-duration histogram for /v1/batch."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    total = count = 0.0
    for line in text.splitlines():
        if 'route="/v1/batch"' in line:
            if line.startswith("cdp_collector_http_request_duration_seconds_sum"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith("cdp_collector_http_request_duration_seconds_count"):
                count += float(line.rsplit(" ", 1)[1])
    return total, count


def run_collector(port, work, per_client, collector_pid):
    """Each client posts its bodies one after the other on one keep-alive connection."""
    empty_events()
    n = len(per_client)
    latencies = [[] for _ in range(n)]
    errors = []
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(n)]
    for c in conns:
        c.connect()
    start = threading.Barrier(n + 1)
    headers = {"Content-Type": "text/plain;charset=UTF-8", "User-Agent": UA}
    path = f"/v1/batch?key={KEY}"

    def client(k):
        conn, lat = conns[k], latencies[k]
        start.wait()
        for body in per_client[k]:
            t0 = time.perf_counter()
            conn.request("POST", path, body, headers)
            r = conn.getresponse()
            data = r.read()
            lat.append(time.perf_counter() - t0)
            if r.status != 200 or b'"stored":50' not in data:
                errors.append(f"{r.status} {data[:200]!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    server0 = batch_durations(port)
    with Meter(collector_pid) as m:
        start.wait()
        for t in threads:
            t.join()
    for c in conns:
        c.close()
    server1 = batch_durations(port)
    # the collector's own mean time per request, to compare with the client's: the difference is the client side
    m.server_mean = (server1[0] - server0[0]) / max(1.0, server1[1] - server0[1])
    return m, [x for lat in latencies for x in lat], errors, 0


def run_direct(work, per_client, collector_pid):
    """Each psql session connects, runs one warm-up batch (the extension prepares its statements once per
    session, as the collector's pooled connections have), waits for the start, then runs its batches as
    SELECT cdp.track_batch(...) one after the other, timed by \\timing. Returns the events stored in the warm-up too."""
    empty_events()
    files = []
    fifos = []
    for k, docs in enumerate(per_client):
        path = os.path.join(work, f"direct-{k}.sql")
        ready, fifo = os.path.join(work, f"ready-{k}"), os.path.join(work, f"start-{k}")
        for old in (ready, fifo):
            if os.path.exists(old):
                os.unlink(old)
        os.mkfifo(fifo)
        fifos.append(fifo)
        warm = docs[0].replace('"message_id":"bm-', '"message_id":"warm-bm-')
        with open(path, "w") as f:
            f.write("SELECT cdp.track_batch('" + warm.replace("'", "''") + "'::jsonb)->>'stored';\n")
            # ready, then block (no CPU) until the start: EOF on this session's FIFO
            f.write(f"\\! touch {ready}; cat {fifo} >/dev/null\n")
            f.write("\\timing on\n")
            for doc in docs:
                f.write("SELECT cdp.track_batch('" + doc.replace("'", "''") + "'::jsonb)->>'stored';\n")
        files.append(path)
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    procs = [subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f", f], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for f in files]
    deadline = time.time() + 60
    while not all(os.path.exists(os.path.join(work, f"ready-{k}")) for k in range(len(files))):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            sys.exit("collector bench: the psql sessions did not get ready: " + "".join(p.communicate()[1][-300:] for p in procs))
        time.sleep(0.005)
    before = sum(cpu_of(p.pid, children=True) for p in procs)
    with Meter(collector_pid, before) as m:
        for fifo in fifos:
            open(fifo, "w").close()
        outs = [p.communicate() for p in procs]
    latencies, errors = [], []
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            errors.append(err[-300:])
        for line in out.splitlines():
            if line.startswith("Time: "):
                latencies.append(float(line.split()[1]) / 1000)
            elif line.strip() and line.strip() != str(BATCH):
                errors.append(line[:200])
    return m, latencies, errors, len(files) * BATCH


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000 if values else float("nan")


def measure(cfg, work, port, collector_pid, docs):
    """Per client count: medians over the repetitions, the two ways alternating."""
    rows, checks = [], []
    total = len(docs) * BATCH
    for clients in cfg["clients"]:
        per_client_http = [[d[0] for d in docs[k::clients]] for k in range(clients)]
        per_client_sql = [[d[1] for d in docs[k::clients]] for k in range(clients)]
        # warm-up: connections, caches, plans
        run_collector(port, work, [c[:2] for c in per_client_http], collector_pid)
        run_direct(work, [c[:2] for c in per_client_sql], collector_pid)
        res = {"collector": [], "direct": []}
        for rep in range(cfg["reps"]):
            order = ("direct", "collector") if rep % 2 == 0 else ("collector", "direct")
            for way in order:
                if way == "collector":
                    m, lat, errors, warm = run_collector(port, work, per_client_http, collector_pid)
                else:
                    m, lat, errors, warm = run_direct(work, per_client_sql, collector_pid)
                stored = stored_events() - warm
                checks.append((f"{way}, {clients} clients, run {rep + 1}: {stored} of {total} events stored, {len(errors)} errors",
                               stored == total and not errors))
                if errors:
                    print(f"collector bench: {way}: {errors[:3]}", file=sys.stderr)
                res[way].append(dict(rate=total / m.wall, lat=lat, client=m.client_cpu / m.wall, collector=m.collector_cpu / m.wall,
                                     busy=m.machine_busy, client_extra=(statistics.mean(lat) - getattr(m, "server_mean", 0)) * 1000))
                print(f"collector bench: {clients} clients, {way}: {total / m.wall:,.0f} events/s", flush=True)

        def med(way, key):
            return statistics.median(r[key] for r in res[way])

        # latencies of the median run of each way
        def median_run(way):
            return sorted(res[way], key=lambda r: r["rate"])[len(res[way]) // 2]

        c_run, d_run = median_run("collector"), median_run("direct")
        # the ratio of each repetition's pair (run back to back, so they share the machine's state), then their median
        ratio = statistics.median(c["rate"] / d["rate"] for c, d in zip(res["collector"], res["direct"]))
        rows.append(dict(clients=clients, direct=med("direct", "rate"), collector=med("collector", "rate"), ratio=ratio,
                         c_p50=pct(c_run["lat"], 50), c_p99=pct(c_run["lat"], 99), d_p50=pct(d_run["lat"], 50), d_p99=pct(d_run["lat"], 99),
                         c_client=med("collector", "client"), d_client=med("direct", "client"), c_collector=med("collector", "collector"),
                         c_busy=med("collector", "busy"), d_busy=med("direct", "busy"), c_extra=med("collector", "client_extra")))
    return rows, checks


def section(cfg, rows, visitors):
    lines = ["## Collector end to end", "",
             f"{cfg['events']:,} page views of {visitors:,} known visitors in batches of {BATCH} (one UID per batch, as a browser's SDK sends "
             "its queue), posted to `cdp-collector` (`POST /v1/batch`, `text/plain`, keep-alive; clients are Python threads with "
             "http.client and bodies built beforehand), against the same batches as `SELECT cdp.track_batch(...)` from as many psql "
             "sessions, in the same run, alternating, cdp.events emptied before each run "
             f"(medians of {cfg['reps']} runs; the ratio is the median of each repetition's pair of runs, which ran back to back). The direct batches carry the `context.ip` and `context.user_agent` the collector adds, so "
             "the database does the same work; the collector adds HTTP, reading and stamping the JSON, and a transaction of its own "
             "(`set_config` of the portal, then `track_batch`). Latency: one request at the client (collector) or one statement in psql "
             "(`\\timing`), in the median run. CPU in cores: clients (the Python process, or the psql processes), the collector process, "
             f"and the whole machine busy ({os.cpu_count()} cores; PostgreSQL is the rest). *Client side* is the mean request time at the "
             "client minus the collector's own mean (its request-duration histogram): what the HTTP clients add.", "",
             "| clients | direct track_batch events/s | through the collector events/s | ratio | collector p50 / p99 ms | direct p50 / p99 ms "
             "| client side ms | client CPU, collector / direct | collector CPU | machine busy, collector / direct |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['direct']:,.0f} | {r['collector']:,.0f} | {r['ratio']:.2f} "
                     f"| {r['c_p50']:.1f} / {r['c_p99']:.1f} | {r['d_p50']:.1f} / {r['d_p99']:.1f} | {r['c_extra']:.2f} "
                     f"| {r['c_client']:.2f} / {r['d_client']:.2f} | {r['c_collector']:.2f} | {r['c_busy']:.0%} / {r['d_busy']:.0%} |")
    worst = min(r["ratio"] for r in rows)
    verdict = f"met ({worst:.2f})" if worst >= GOAL else f"**missed** ({worst:.2f})"
    lines += ["", f"- through the collector at least {GOAL} of direct track_batch, at every client count: {verdict}", ""]
    return "\n".join(lines), worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long run, for the test command")
    parser.add_argument("--markdown", help="also write the section to this file")
    args = parser.parse_args()
    cfg = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    cluster = Cluster()
    collector = None
    try:
        with tempfile.TemporaryDirectory() as work:
            setup_database(cfg["visitors"])
            docs = batches(cfg["events"], cfg["visitors"])
            collector, port = start_collector(work, max(cfg["clients"]))
            rows, checks = measure(cfg, work, port, collector.pid, docs)
            collector.terminate()
            collector.wait(timeout=30)
            collector = None
            text, worst = section(cfg, rows, cfg["visitors"])
            psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", db="postgres")
    finally:
        if collector is not None:
            collector.kill()
        cluster.close()
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    print(text)
    print(f"(the collector benchmark took {time.perf_counter() - started:.0f} s)")
    if args.smoke:
        checks.append(("every figure is positive", all(r[k] > 0 for r in rows for k in ("direct", "collector", "c_p50", "c_p99"))))
        for name, ok in checks:
            print(("ok " if ok else "FAILED ") + name)
        passed = sum(ok for _, ok in checks)
        print(f"collector bench smoke: {passed} passed, {len(checks) - passed} failed")
        sys.exit(0 if passed == len(checks) else 1)
    sys.exit(0)


if __name__ == "__main__":
    main()
