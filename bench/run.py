#!/usr/bin/env python3
"""cdp_identity benchmark: every figure as a ratio to its baseline, measured in
one run on one cluster, medians of several repetitions.

Run through bench/run.sh (which sets up the machine and the cluster):
    bench/run.sh            full run, writes BENCHMARKS.md
    bench/run.sh --smoke    seconds-long run of every measurement, for the test suite
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DB = "cdp_bench"

FULL = dict(events=100_000, reps=3, batch=1000, pgbench_seconds=5, clients=(1, 4, 8),
            merge_sizes=(10, 1_000, 100_000), identifies=300, read_uids=100, read_events=100_000,
            mixed_calls=1500, predict_sizes=(10_000, 1_000_000), accuracy=True)
SMOKE = dict(events=2_000, reps=1, batch=200, pgbench_seconds=1, clients=(1, 2),
             merge_sizes=(10, 200), identifies=20, read_uids=5, read_events=1_000, mixed_calls=100,
             predict_sizes=(1_000, 10_000), accuracy=False)


def psql(sql, db=DB, variables=None, quiet_notices=True):
    """Runs SQL, returns stdout (unaligned, tuples only)."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db]
    for k, v in (variables or {}).items():
        cmd += ["-v", f"{k}={v}"]
    env = dict(os.environ)
    if quiet_notices:
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c client_min_messages=warning").strip()
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"bench: psql failed:\n{sql[:500]}\n{out.stderr}")
    return out.stdout.strip()


def psql_file(path, db=DB, variables=None):
    with open(path) as f:
        return psql(f.read(), db, variables)


def ms(statement, warmup=None):
    """Server-side time of one statement, in ms (no client round trip). A
    warm-up statement runs first in the same session, so that the time does
    not include what a new connection pays once (planning kept statements)."""
    sql = (warmup + ";\n" if warmup else "") + f"SELECT time_ms($bench${statement}$bench$)"
    return float(psql(sql).splitlines()[-1])


def wall(cmd, env=None):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - t0, out.stdout


def median(values):
    return statistics.median(values)


def fresh_database():
    psql(f"DROP DATABASE IF EXISTS {DB}", db="postgres")
    psql(f"CREATE DATABASE {DB}", db="postgres")
    psql("CREATE EXTENSION cdp_identity")
    psql_file(os.path.join(HERE, "baselines.sql"))


def reset_tables():
    """Empties the extension's tables and the baselines, so every run inserts into empty tables."""
    psql("DROP EXTENSION cdp_identity CASCADE; CREATE EXTENSION cdp_identity;"
         "TRUNCATE plain_events RESTART IDENTITY; CHECKPOINT;")


# ---------------------------------------------------------------- measurements

def ingest(cfg):
    """Rows/s of each way to ingest the workload, into empty tables."""
    psql_file(os.path.join(HERE, "workload.sql"), variables={"events": cfg["events"]})
    rows = int(psql("SELECT count(*) FROM workload"))
    copy_file = os.path.join(tempfile.gettempdir(), "cdp_bench_copy.csv")
    psql(f"""COPY (SELECT DISTINCT ON (payload->'context'->>'message_id') hashtext(uid)::bigint, uid, category, action,
                   event_time, payload->'context'->>'session_id', payload->'context'->>'message_id', payload
              FROM workload ORDER BY payload->'context'->>'message_id', n) TO '{copy_file}' WITH (FORMAT csv)""")
    psql(f"DROP TABLE IF EXISTS batches; CREATE TABLE batches AS "
         f"SELECT (row_number() OVER (ORDER BY n) - 1) / {cfg['batch']} AS b, n, uid, category, action, payload, event_time FROM workload;"
         f"CREATE TABLE batch_docs AS SELECT b, jsonb_agg(jsonb_build_object('uid', uid, 'category', category, 'action', action,"
         f" 'payload', payload, 'event_time', event_time) ORDER BY n) AS doc FROM batches GROUP BY b;")
    methods = {
        "INSERT ... SELECT into a plain table (baseline)":
            """INSERT INTO plain_events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
               SELECT hashtext(uid), uid, category, action, event_time, payload->'context'->>'session_id',
                      payload->'context'->>'message_id', payload FROM workload ORDER BY n
               ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING""",
        "COPY into a plain table":
            f"COPY plain_events (profile_id, uid, category, action, event_time, session_id, message_id, payload) FROM '{copy_file}' WITH (FORMAT csv)",
        "cdp.track_event per row, one statement":
            "SELECT count(cdp.track_event(uid, category, action, payload, event_time)) FROM (SELECT * FROM workload ORDER BY n) w",
        f"cdp.track_batch, {cfg['batch']} events per call":
            "SELECT count(cdp.track_batch(doc)) FROM (SELECT doc FROM batch_docs ORDER BY b) d",
    }
    results = {}
    for name, statement in methods.items():
        times = []
        for _ in range(cfg["reps"]):
            reset_tables()
            times.append(ms(statement))
        results[name] = rows / (median(times) / 1000)
    psql("DROP TABLE batches; DROP TABLE batch_docs;")
    os.unlink(copy_file) if os.path.exists(copy_file) else None
    return rows, results


def known_uid_batches(cfg):
    """cdp.track_batch of page views of known UIDs (the bulk of real traffic: each event only appends), in batches of
    1,000 events from 100 visitors, against INSERT ... SELECT of the same rows, read from the same JSON documents,
    into a plain indexed table. Events/s of each."""
    visitors, batches = 1000, max(cfg["events"] // 1000, 2)
    ctx = ("jsonb_build_object('device_id', 'kd' || v, 'user_agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', "
           "'locale', 'en-GB', 'timezone', 'Europe/London', 'screen', '1920x1080')")
    psql(f"""SELECT count(cdp.track_event('ku' || v, 'pageview', 'view', jsonb_build_object('context', {ctx}), now() - interval '1 day'))
             FROM generate_series(1, {visitors}) v;
             DROP TABLE IF EXISTS known_docs;
             CREATE TABLE known_docs AS
             SELECT b, jsonb_agg(jsonb_build_object('uid', 'ku' || v, 'category', 'pageview', 'action', 'view',
                        'event_time', to_char((now() - interval '1 hour' + i * interval '1 second') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                        'payload', jsonb_build_object('context', {ctx} || jsonb_build_object('session_id', 's' || v || '-' || b, 'message_id', 'km-' || b || '-' || i,
                                                               'page_url', 'https://shop.example/p/' || (i % 97), 'page_title', 'Product ' || (i % 97)),
                                                      'dims', jsonb_build_object('products', jsonb_build_object('id', i % 97)))) ORDER BY i) AS doc
             FROM generate_series(0, {batches - 1}) b, generate_series(1, 1000) i,
                  LATERAL (SELECT 1 + (b * 100 + i % 100) % {visitors} AS v) AS pick
             GROUP BY b;
             ANALYZE;""")
    rows = batches * 1000
    ours_sql = "SELECT count(cdp.track_batch(doc)) FROM (SELECT doc FROM known_docs ORDER BY b) d"
    base_sql = """INSERT INTO plain_events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
                  SELECT hashtext(e->>'uid'), e->>'uid', e->>'category', e->>'action', (e->>'event_time')::timestamptz,
                         e->'payload'->'context'->>'session_id', e->'payload'->'context'->>'message_id', e->'payload'
                  FROM (SELECT doc FROM known_docs ORDER BY b) d, jsonb_array_elements(d.doc) e
                  ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING"""
    ours, base = [], []
    for _ in range(max(cfg["reps"], 3)):
        psql("TRUNCATE cdp.events; TRUNCATE plain_events; CHECKPOINT;")
        ours.append(ms(ours_sql))
        base.append(ms(base_sql))
    stored = int(psql("SELECT count(*) FROM cdp.events"))
    psql("DROP TABLE known_docs;")
    return rows, stored, rows / (median(ours) / 1000), rows / (median(base) / 1000)


def pgbench(cfg):
    """Transactions/s of single calls from concurrent clients."""
    reset_tables()
    scripts = {"cdp.track_event": os.path.join(HERE, "pgbench_track.sql"),
               "INSERT one row into a plain table (baseline)": os.path.join(HERE, "pgbench_plain.sql")}
    results = {}
    for sync in ("on", "off"):
        for clients in cfg["clients"]:
            for name, script in scripts.items():
                tps = []
                for _ in range(cfg["reps"]):
                    env = dict(os.environ, PGOPTIONS=f"-c synchronous_commit={sync}")
                    _, out = wall(["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients),
                                   "-T", str(cfg["pgbench_seconds"]), "-f", script, DB], env=env)
                    tps.append(float(re.search(r"tps = ([0-9.]+)", out).group(1)))
                results[(sync, clients, name)] = median(tps)
    return results


def merge_cost(cfg):
    """Time of an identify that merges an anonymous profile holding N events."""
    results = {}
    for size in cfg["merge_sizes"]:
        times = []
        for rep in range(max(cfg["reps"], 3)):
            uid, cid = f"mc-{size}-{rep}", f"mc-customer-{size}-{rep}"
            psql(f"""SELECT cdp.track_event('{uid}', 'pageview', 'view', '{{"context": {{"session_id": "s"}}}}');
                     INSERT INTO cdp.events (portal, profile_id, uid, category, action, event_time, session_id, payload)
                     SELECT 'default', cdp.profile_of('{uid}'), '{uid}', 'pageview', 'view', now() - i * interval '1 second', 's' || i / 10, '{{}}'
                     FROM generate_series(1, {size - 1}) i; ANALYZE cdp.events;""")
            warmup = f"SELECT cdp.track_event('warm-{uid}', 'pageview', 'view'), cdp.identify('warm-{uid}', 'warm-{cid}')"
            times.append(ms(f"SELECT cdp.identify('{uid}', '{cid}')", warmup))
        results[size] = median(times)
    return results


def identify_throughput(cfg):
    """Identifies per second sent from a client, each merging an anonymous
    profile with 5 events: cdp.identify, the PL/pgSQL baseline, PostHog-style statements."""
    k = cfg["identifies"]
    scripts_dir = tempfile.mkdtemp()
    results = {}
    systems = ("cdp.identify", "PL/pgSQL baseline (bench/baselines.sql)", "PostHog-style merge statements from the client")
    for system in systems:
        rates = []
        for rep in range(cfg["reps"]):
            prefix = f"it{rep}-{systems.index(system)}"
            if system == systems[0]:
                psql(f"SELECT count(cdp.track_event('{prefix}-' || i, 'pageview', 'view', jsonb_build_object('context', jsonb_build_object('device_id', 'dv{prefix}-' || i)))) "
                     f"FROM generate_series(1, {k}) i, generate_series(1, 5) j")
                lines = [f"SELECT cdp.identify('{prefix}-{i}', 'c{prefix}-{i}', '{{\"plan\": \"pro\"}}');" for i in range(1, k + 1)]
            elif system == systems[1]:
                psql(f"SELECT count(plbase.track_event('{prefix}-' || i, 'pageview', 'view', jsonb_build_object('context', jsonb_build_object('device_id', 'dv{prefix}-' || i)), now())) "
                     f"FROM generate_series(1, {k}) i, generate_series(1, 5) j")
                lines = [f"SELECT plbase.identify('{prefix}-{i}', 'c{prefix}-{i}', '{{\"plan\": \"pro\"}}');" for i in range(1, k + 1)]
            else:
                psql(f"""WITH p AS (INSERT INTO posthog.person (properties) SELECT '{{"plan": "free"}}' FROM generate_series(1, {2 * k}) RETURNING id),
                              n AS (SELECT id, row_number() OVER (ORDER BY id) AS r FROM p)
                         INSERT INTO posthog.distinct_id SELECT CASE WHEN r % 2 = 1 THEN '{prefix}-' || (r + 1) / 2 ELSE 'c{prefix}-' || r / 2 END, id FROM n;
                         INSERT INTO posthog.events (distinct_id, event, timestamp, properties)
                         SELECT '{prefix}-' || i, 'pageview', now(), '{{}}' FROM generate_series(1, {k}) i, generate_series(1, 5) j;""")
                lines = []
                for i in range(1, k + 1):
                    src, dst = f"{prefix}-{i}", f"c{prefix}-{i}"
                    lines += ["BEGIN;",
                              f"SELECT person_id AS src FROM posthog.distinct_id WHERE distinct_id = '{src}' \\gset",
                              f"SELECT person_id AS dst FROM posthog.distinct_id WHERE distinct_id = '{dst}' \\gset",
                              "SELECT id FROM posthog.person WHERE id IN (:src, :dst) ORDER BY id FOR UPDATE;",
                              "UPDATE posthog.person t SET properties = s.properties || t.properties, is_identified = true "
                              "FROM posthog.person s WHERE t.id = :dst AND s.id = :src;",
                              "UPDATE posthog.distinct_id SET person_id = :dst WHERE person_id = :src;",
                              "DELETE FROM posthog.person WHERE id = :src;",
                              "COMMIT;"]
            path = os.path.join(scripts_dir, f"{prefix}.sql")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            seconds, _ = wall(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-d", DB, "-f", path])
            rates.append(k / seconds)
        results[system] = median(rates)
    return results


def reads(cfg):
    """cdp.customer_profile and cdp.events_of for a customer with many UIDs and
    events, against the same aggregates over a plain indexed table."""
    uids, events = cfg["read_uids"], cfg["read_events"]
    per_uid = events // uids
    psql(f"""SELECT count(cdp.track_event('rd-' || i, 'pageview', 'view', '{{"context": {{"session_id": "s0"}}}}')) FROM generate_series(1, {uids}) i;
             INSERT INTO cdp.events (portal, profile_id, uid, category, action, event_time, session_id, payload)
             SELECT 'default', cdp.profile_of('rd-' || i), 'rd-' || i, 'pageview', 'view', now() - j * interval '1 second', 's' || j / 20, '{{"context": {{}}}}'
             FROM generate_series(1, {uids}) i, generate_series(1, {per_uid - 1}) j;
             SELECT count(cdp.identify('rd-' || i, 'rd-customer')) FROM generate_series(1, {uids}) i;
             -- a visitor whose timeline is one profile, as long as the customer's
             SELECT cdp.track_event('rd-solo', 'pageview', 'view');
             INSERT INTO cdp.events (portal, profile_id, uid, category, action, event_time, session_id, payload)
             SELECT 'default', cdp.profile_of('rd-solo'), 'rd-solo', 'pageview', 'view', now() - j * interval '1 second', 's' || j / 20, '{{"context": {{}}}}'
             FROM generate_series(1, {events - 1}) j;
             INSERT INTO plain_events (profile_id, uid, category, action, event_time, session_id, payload)
             SELECT 777, 'rd-' || i, 'pageview', 'view', now() - j * interval '1 second', 's' || j / 20, '{{"context": {{}}}}'
             FROM generate_series(1, {uids}) i, generate_series(1, {per_uid}) j;
             ANALYZE;""")
    customer = psql("SELECT cdp.customer_profile('rd-customer')->>'profile_id'")
    solo = psql("SELECT cdp.profile_of('rd-solo')")
    # A page in the middle: after the 1,000th newest event (the cursor a client would hold).
    mid_c = psql(f"SELECT event_id FROM cdp.events_of({customer}, NULL, 1000, true) ORDER BY event_time, event_id LIMIT 1")
    mid_s = psql(f"SELECT event_id FROM cdp.events_of({solo}, NULL, 1000, true) ORDER BY event_time, event_id LIMIT 1")
    mid_p = psql("SELECT event_time || '|' || event_id FROM (SELECT * FROM plain_events WHERE profile_id = 777 "
                 "ORDER BY event_time DESC, event_id DESC LIMIT 1000) t ORDER BY event_time, event_id LIMIT 1").split("|")
    plain_page = ("SELECT count(*) FROM (SELECT * FROM plain_events WHERE profile_id = 777 AND (event_time, event_id) < "
                  f"('{mid_p[0]}', {mid_p[1]}) ORDER BY event_time DESC, event_id DESC LIMIT 20) t")
    checks = psql(f"SELECT jsonb_array_length(cdp.profile({customer})->'uids') || ' ' || (cdp.profile({customer})->>'event_count')")
    n = max(cfg["reps"], 5)
    cases = {
        "cdp.customer_profile": ("SELECT cdp.customer_profile('rd-customer')",
                                 "SELECT count(*), count(DISTINCT session_id), min(event_time), max(event_time) FROM plain_events WHERE profile_id = 777"),
        "cdp.events_of (whole timeline)": (f"SELECT count(*) FROM (SELECT * FROM cdp.events_of({customer})) t",
                                           "SELECT count(*) FROM (SELECT * FROM plain_events WHERE profile_id = 777 ORDER BY event_time, event_id) t"),
        # Keyset paging: a page of 20, newest first, after a cursor 1,000 events deep, against the same page read
        # from one index (what a hand-written query on a single table costs).
        "cdp.events_of, a page of 20 (one-profile timeline)": (f"SELECT count(*) FROM cdp.events_of({solo}, {mid_s}, 20, true)", plain_page),
        f"cdp.events_of, a page of 20 ({uids}-profile customer)": (f"SELECT count(*) FROM cdp.events_of({customer}, {mid_c}, 20, true)", plain_page),
    }
    results = {}
    for name, (ours, base) in cases.items():
        ours_ms = median([ms(ours, ours) for _ in range(n)])
        base_ms = median([ms(base, base) for _ in range(n)])
        results[name] = (ours_ms, base_ms)
    return checks, results


def predict_cost(cfg):
    """cdp.identify with identify_type 'predict' among n anonymous profiles, for each n of predict_sizes: each in
    its own portal, the profiles (and their signals and value counts) loaded in bulk, 50 visitor values per
    user agent and IP network, so the candidates' lookups meet popular values. Median ms per identify."""
    results = {}
    for n in cfg["predict_sizes"]:
        portal = f"predict_{n}"
        psql(f"""SELECT cdp.create_portal('{portal}');
                 INSERT INTO cdp.profiles (portal, system, system_at)
                 SELECT '{portal}', jsonb_build_object('user_agent', 'UA-' || g % 50, 'ip', '10.9.' || g % 50 || '.1', 'device_id', 'pd-' || g,
                                                       'screen', '390x844', 'timezone', 'Asia/Ho_Chi_Minh', 'locale', 'vi-VN'),
                        now() - (g % 20) * interval '1 day'
                 FROM generate_series(1, {n}) g;
                 INSERT INTO cdp.profile_signals (portal, profile_id, signal, value, seen_at)
                 SELECT p.portal, p.profile_id, k.signal, k.value, p.system_at
                 FROM cdp.profiles p, LATERAL (VALUES ('user_agent', p.system ->> 'user_agent'), ('device_id', p.system ->> 'device_id'),
                                                      ('ip_network', regexp_replace(p.system ->> 'ip', '[.][0-9]+$', '')),
                                                      ('screen', p.system ->> 'screen'), ('timezone', p.system ->> 'timezone'),
                                                      ('locale', p.system ->> 'locale')) AS k(signal, value)
                 WHERE p.portal = '{portal}';
                 INSERT INTO cdp.signal_counts (portal, signal, value, day, profiles)
                 SELECT portal, signal, v.value, (seen_at AT TIME ZONE 'UTC')::date, count(*)
                 FROM cdp.profile_signals, LATERAL (VALUES (value), ('*')) AS v(value) WHERE portal = '{portal}' GROUP BY 1, 2, 3, 4;
                 ANALYZE;""")
        calls = [f"SET cdp.portal = '{portal}'; SELECT cdp.track_event('pq-{i}', 'page', 'view', "
                 f"'{{\"context\": {{\"user_agent\": \"UA-{i % 50}\", \"ip\": \"10.9.{i % 50}.7\", \"device_id\": \"pq-dev-{i}\", "
                 f"\"screen\": \"390x844\", \"timezone\": \"Asia/Ho_Chi_Minh\", \"locale\": \"vi-VN\"}}}}')"
                 for i in range(max(cfg["reps"], 5) * 4)]
        times = []
        for i, track in enumerate(calls):
            times.append(ms(f"SELECT cdp.identify('pq-{i}', 'pq-customer-{i}', '{{}}', 'predict')", track))
        results[n] = median(times)
    return results


def accuracy():
    """The accuracy simulations, in their full size; each writes its table in Markdown."""
    sections = []
    for script in ("shared_devices_sim.py", "predict_eval.py"):
        with tempfile.NamedTemporaryFile(suffix=".md") as f:
            out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", script), "--markdown", f.name], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"bench: tests/{script} failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
            sections.append(open(f.name).read().strip())
    return "\n\n".join(sections)


def mixed(cfg):
    """8 concurrent clients of track_event / identify / track_batch, with the invariants checked afterwards."""
    out = subprocess.run([os.path.join(ROOT, "tests", "concurrency.sh"), "8", str(cfg["mixed_calls"])],
                         capture_output=True, text=True)
    text = out.stdout + out.stderr
    m = re.search(r"(\d+) clients x (\d+) calls in (\d+) ms, (\d+) clients saw an error", text)
    inv = re.search(r"concurrency: (\d+) passed, (\d+) failed", text)
    if not m or not inv:
        sys.exit(f"bench: the mixed run printed no result:\n{text}")
    calls, elapsed_ms, errors = int(m.group(1)) * int(m.group(2)), int(m.group(3)), int(m.group(4))
    return dict(calls=calls, per_second=calls / (elapsed_ms / 1000), client_errors=errors,
                invariants_held=int(inv.group(1)), invariants_failed=int(inv.group(2)), ok=out.returncode == 0)


# ---------------------------------------------------------------- report

def machine():
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    version = psql("SHOW server_version", db="postgres")
    settings = psql("SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings "
                    "WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit', 'wal_level', 'max_wal_size')", db="postgres")
    return dict(cpus=os.cpu_count(), mem=mem, kernel=platform.release(), pg=version, settings=settings)


def verdict(ok, text):
    return f"met ({text})" if ok else f"**missed** ({text})"


def report(cfg, ing_rows, ing, pgb, merge, ident, rd_checks, rd, mix):
    lines = []
    base = ing["INSERT ... SELECT into a plain table (baseline)"]
    m = machine()
    lines += ["# cdp_identity benchmarks", "",
              f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with `bench/run.sh` on {m['cpus']} cores, {m['mem']}, "
              f"Linux {m['kernel']}, PostgreSQL {m['pg']} ({m['settings']}), release build. "
              f"Medians of {cfg['reps']} runs; every figure is also given as a ratio to its baseline measured in the same run, "
              "because absolute times on these shared machines drift.", ""]
    lines += ["## Ingest", "", f"{ing_rows:,} events of the generated workload (visitors with several devices, lost cookies, "
              "sign-ins, lead forms, shared browsers, 3% SDK retries), into empty tables.", "",
              "| method | events/s | ratio to INSERT ... SELECT |", "|---|---:|---:|"]
    for name, rate in ing.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")
    lines += ["", "## Single calls from concurrent clients (pgbench, prepared statements)", "",
              "| synchronous_commit | clients | cdp.track_event tps | plain INSERT tps | ratio |", "|---|---:|---:|---:|---:|"]
    for sync in ("on", "off"):
        for c in cfg["clients"]:
            ours = pgb[(sync, c, "cdp.track_event")]
            plain = pgb[(sync, c, "INSERT one row into a plain table (baseline)")]
            lines.append(f"| {sync} | {c} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.2f} |")
    smallest = merge[min(merge)]
    lines += ["", "## Merge cost against events on the merged profile", "",
              "| events on the anonymous profile | identify + merge (ms) | ratio to the smallest |", "|---:|---:|---:|"]
    for size, t in merge.items():
        lines.append(f"| {size:,} | {t:.2f} | {t / smallest:.2f} |")
    ours_rate = ident["cdp.identify"]
    lines += ["", f"## Identify throughput ({cfg['identifies']} identifies sent one by one from a client, each merging an anonymous profile with 5 events)", "",
              "| system | identifies/s | cdp.identify is faster by |", "|---|---:|---:|"]
    for name, rate in ident.items():
        lines.append(f"| {name} | {rate:,.0f} | {ours_rate / rate:.2f}x |")
    lines += ["", f"## Reads of a customer with {cfg['read_uids']} UIDs and {cfg['read_events']:,} events ({rd_checks.split()[0]} UIDs, {rd_checks.split()[1]} events found)", "",
              "| read | ms | same aggregate over a plain indexed table (ms) | ratio |", "|---|---:|---:|---:|"]
    for name, (ours, plain) in rd.items():
        lines.append(f"| {name} | {ours:.1f} | {plain:.1f} | {ours / plain:.2f} |")
    lines += ["", "## Mixed workload, 8 clients", "",
              f"{mix['calls']:,} calls (track_event, lead forms, exact and predict sign-ins, identify, track_batch, retries, unmerges, suggestion reviews) over a shared pool "
              f"of 40 UIDs, 12 devices and 10 customers: {mix['per_second']:,.0f} calls/s, {mix['client_errors']} clients saw an error, "
              f"{mix['invariants_held']} invariants held, {mix['invariants_failed']} failed "
              "(one profile per UID and per CID, every message id stored once, merges consistent).", ""]
    batch_ratio = ing[f"cdp.track_batch, {cfg['batch']} events per call"] / base
    row_ratio = ing["cdp.track_event per row, one statement"] / base
    merge_ratio = merge[max(merge)] / smallest
    plbase_ratio = ours_rate / ident["PL/pgSQL baseline (bench/baselines.sql)"]
    lines += ["## Goals", "",
              f"- batch ingest at least 0.6 of INSERT ... SELECT: {verdict(batch_ratio >= 0.6, f'{batch_ratio:.2f}')}",
              f"- per-row track_event at least 0.5 of it: {verdict(row_ratio >= 0.5, f'{row_ratio:.2f}')}",
              f"- merge at {max(merge):,} events within 1.5x of {min(merge)}: {verdict(merge_ratio <= 1.5, f'{merge_ratio:.2f}x')}",
              f"- identify at least 1.5x the PL/pgSQL baseline: {verdict(plbase_ratio >= 1.5, f'{plbase_ratio:.2f}x')}",
              f"- zero errors in the mixed run: {verdict(mix['ok'] and mix['client_errors'] == 0, str(mix['client_errors']) + ' errors')}",
              ""]
    return "\n".join(lines), dict(batch=batch_ratio, row=row_ratio, merge=merge_ratio, plbase=plbase_ratio, mixed_ok=mix["ok"])


def collector_section(smoke):
    """bench/collector.py on this run's cluster: the section, and whether its smoke checks passed."""
    with tempfile.NamedTemporaryFile(suffix=".md") as f:
        out = subprocess.run([sys.executable, os.path.join(HERE, "collector.py"), "--markdown", f.name] + (["--smoke"] if smoke else []),
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"bench: bench/collector.py failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
            return "", False
        return open(f.name).read().strip(), True


def router_section():
    """router/bench.sh (its own router and two nodes): the router's overhead per call and one portal's limits."""
    out = subprocess.run([os.path.join(ROOT, "router", "bench.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: router/bench.sh failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    tables = out.stdout[out.stdout.find("Router overhead"):].strip()
    return ("## Several nodes: the router\n\n"
            "A router database (`cdp_identity_router`, PL/Proxy) and two nodes, three clusters on this machine "
            "(router/bench.sh; see router/README.md).\n\n" + tables)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    cfg = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    fresh_database()
    print("bench: ingest", flush=True)
    ing_rows, ing = ingest(cfg)
    print("bench: track_batch of known UIDs' page views", flush=True)
    reset_tables()
    known = known_uid_batches(cfg)
    print("bench: pgbench", flush=True)
    pgb = pgbench(cfg)
    print("bench: merge cost", flush=True)
    reset_tables()
    merge = merge_cost(cfg)
    print("bench: identify throughput", flush=True)
    ident = identify_throughput(cfg)
    print("bench: reads", flush=True)
    reset_tables()
    rd_checks, rd = reads(cfg)
    print("bench: mixed workload", flush=True)
    mix = mixed(cfg)
    print("bench: predict identify cost by number of anonymous profiles", flush=True)
    pred = predict_cost(cfg)
    print("bench: the collector end to end", flush=True)
    coll, coll_ok = collector_section(args.smoke)
    import releases  # (here: it imports this module's helpers)
    print(f"bench: this release against {releases.OLD}", flush=True)
    rel, rel_ok = releases.compare(cfg, args.smoke)
    text, ratios = report(cfg, ing_rows, ing, pgb, merge, ident, rd_checks, rd, mix)
    k_rows, k_stored, k_ours, k_base = known
    text += (f"\n## track_batch of page views of known UIDs\n\n"
             f"{k_rows:,} page views of 1,000 known visitors in batches of 1,000 events (100 visitors per batch), each only appending "
             f"({k_stored:,} stored), against INSERT ... SELECT of the same rows from the same JSON documents into a plain indexed table:\n\n"
             "| method | events/s | ratio to INSERT ... SELECT |\n|---|---:|---:|\n"
             f"| INSERT ... SELECT into a plain table (baseline) | {k_base:,.0f} | 1.00 |\n"
             f"| cdp.track_batch | {k_ours:,.0f} | {k_ours / k_base:.2f} |\n")
    small, large = min(pred), max(pred)
    text += (f"\n## Predicted matching: cost by number of anonymous profiles\n\n"
             "`cdp.identify(..., 'predict')` of a visitor whose user agent and IP network are each shared by 1 in 50 profiles, "
             "candidates found by index (the latest 200 per value within the predict window):\n\n"
             "| anonymous profiles | ms per identify | ratio to the smallest |\n|---:|---:|---:|\n"
             + "".join(f"| {n:,} | {t:.2f} | {t / pred[small]:.2f} |\n" for n, t in sorted(pred.items()))
             + f"\nFrom {small:,} to {large:,} profiles the cost changes by {pred[large] / pred[small]:.2f}x.\n")
    text += "\n" + rel + "\n" + coll + "\n"
    if not args.smoke:
        print("bench: the router", flush=True)
        text += "\n" + router_section() + "\n"
    if cfg["accuracy"]:
        print("bench: accuracy simulations", flush=True)
        text += "\n" + accuracy() + "\n"

    text += f"\nThe whole run took {time.perf_counter() - started:.0f} s.\n\n"
    with open(os.path.join(HERE, "analysis.md")) as f:
        text += f.read()
    psql(f"DROP DATABASE IF EXISTS {DB}", db="postgres")
    if args.smoke:
        print(text)
        figures = [*ing.values(), *pgb.values(), *merge.values(), *ident.values(), *(v for pair in rd.values() for v in pair), *pred.values(), known[2], known[3]]
        checks = [all(f > 0 for f in figures), ratios["mixed_ok"], rd_checks == f"{cfg['read_uids']} {cfg['read_events']}", coll_ok, rel_ok]
        print(f"bench smoke: {sum(checks)} passed, {len(checks) - sum(checks)} failed")
        sys.exit(0 if all(checks) else 1)
    text += growth_section(args.out)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


def growth_section(path):
    """The section bench/growth.py keeps in the same file, carried over as it is."""
    try:
        old = open(path).read()
    except OSError:
        return ""
    begin, end = old.find("<!-- growth:begin -->"), old.find("<!-- growth:end -->")
    return "\n" + old[begin:end + len("<!-- growth:end -->")] + "\n" if 0 <= begin < end else ""


if __name__ == "__main__":
    main()
