#!/usr/bin/env python3
"""This build against release 0.1.0, side by side in one cluster and one run.

0.2 added what makes the extension safe to expose (SECURITY DEFINER functions
with a pinned search_path, the caller's portal checked on every call, a
portal in every key, input limits, the per-portal identity lock) and the
issue that asked for it set a budget: at most 10% off per-row ingest and
identify against 0.1.0. Both releases are installed at once (one library file
per release, as in a real upgrade), each in its own database of the same
cluster, and measured alternately:

  * per-row ingest: the benchmark's generated workload through
    cdp.track_event, one statement, into empty tables (server-side time);
  * identify throughput: identifies sent one by one from a client, each
    merging an anonymous profile with 5 events (wall time at the client).

The 0.1.0 library is built from its commit by tests/releases.sh (release
profile for the full run, the debug builds of the upgrade tests for
--smoke). Used by bench/run.py; prints the section when run alone:
    python3 bench/releases.py [--smoke]      (PGHOST/PGPORT/PGUSER: a cluster)
"""
import os
import shutil
import subprocess
import sys
import tempfile

from run import FULL, HERE, ROOT, SMOKE, median, psql, psql_file, wall

OLD = "0.1.0"
PG_CONFIG = "/usr/lib/postgresql/15/bin/pg_config"
GOAL = 0.9


def pg_config(flag):
    return subprocess.run([PG_CONFIG, flag], capture_output=True, text=True, check=True).stdout.strip()


def install_old(profile):
    """Installs the old release's library and scripts beside the current ones; returns the files to remove after."""
    env = dict(os.environ, CDP_RELEASES_PROFILE=profile)
    out = subprocess.run([os.path.join(ROOT, "tests", "releases.sh")], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"bench: tests/releases.sh failed:\n{out.stderr[-3000:]}")
    line = next((l.split() for l in out.stdout.splitlines() if l.startswith(OLD + " ")), None)
    if not line:
        sys.exit(f"bench: no {OLD} in sql/released/RELEASES")
    _, lib, name = line
    shutil.copy(lib, os.path.join(pg_config("--pkglibdir"), name))
    extdir = os.path.join(pg_config("--sharedir"), "extension")
    copied = []
    for ext in (".sql", ".control"):
        src = os.path.join(ROOT, "sql", "released", f"cdp_identity--{OLD}{ext}")
        if os.path.exists(src):
            dst = os.path.join(extdir, os.path.basename(src))
            shutil.copy(src, dst)
            copied.append(dst)
    return copied


def create_extension(version):
    """The statement that installs `version` (None: the current one)."""
    return "CREATE EXTENSION cdp_identity" + (f" VERSION '{version}'" if version else "") + ";"


def create(db, version):
    psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
    psql(f"CREATE DATABASE {db}", db="postgres")
    psql(create_extension(version), db=db)
    psql_file(os.path.join(HERE, "baselines.sql"), db=db)


def reset(db, version):
    psql("DROP EXTENSION cdp_identity CASCADE;" + create_extension(version) + "CHECKPOINT;", db=db)


def per_row(db, version, rows):
    reset(db, version)
    t = float(psql("SELECT time_ms($b$SELECT count(cdp.track_event(uid, category, action, payload, event_time)) "
                   "FROM (SELECT * FROM workload ORDER BY n) w$b$)", db=db).splitlines()[-1])
    return rows / (t / 1000)


def identifies(db, version, k, workdir):
    reset(db, version)
    psql(f"SELECT count(cdp.track_event('r-' || i, 'pageview', 'view', jsonb_build_object('context', jsonb_build_object('device_id', 'dv-r-' || i)))) "
         f"FROM generate_series(1, {k}) i, generate_series(1, 5) j", db=db)
    path = os.path.join(workdir, f"{db}.sql")
    with open(path, "w") as f:
        f.write("".join(f"SELECT cdp.identify('r-{i}', 'c-r-{i}', '{{\"plan\": \"pro\"}}');\n" for i in range(1, k + 1)))
    seconds, _ = wall(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-d", db, "-f", path])
    return k / seconds


def compare(cfg, smoke):
    """The section (Markdown) and whether every figure came out."""
    copied = install_old("debug" if smoke else "release")
    dbs = {OLD: "cdp_bench_old", "current": "cdp_bench_new"}
    try:
        for version, db in dbs.items():
            create(db, version if version != "current" else None)
            psql_file(os.path.join(HERE, "workload.sql"), db=db, variables={"events": cfg["events"]})
        rows = int(psql("SELECT count(*) FROM workload", db=dbs[OLD]))
        current = psql("SELECT extversion FROM pg_extension WHERE extname = 'cdp_identity'", db=dbs["current"])
        figures = {v: {"ingest": [], "identify": []} for v in dbs}
        with tempfile.TemporaryDirectory() as workdir:
            for _ in range(cfg["reps"]):
                for version, db in dbs.items():  # alternating, so both see the same machine
                    v = version if version != "current" else None
                    figures[version]["ingest"].append(per_row(db, v, rows))
                    figures[version]["identify"].append(identifies(db, v, cfg["identifies"], workdir))
    finally:
        for db in dbs.values():
            psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
        for path in copied:
            os.unlink(path)
    old, new = ({k: median(v) for k, v in figures[x].items()} for x in (OLD, "current"))
    lines = [f"## {current} against {OLD}", "",
             f"Both releases installed side by side (one library file each), each in its own database of this cluster, measured "
             f"alternately, medians of {cfg['reps']}{' (smoke run: debug build of ' + OLD + ')' if smoke else ''}: per-row ingest is "
             f"{rows:,} events of the generated workload through `cdp.track_event` in one statement into empty tables; identify "
             f"throughput is {cfg['identifies']} identifies sent one by one from a client, each merging an anonymous profile with "
             f"5 events. {current} adds SECURITY DEFINER functions with a pinned search_path, the portal check of every call, "
             "the portal in every key, input limits and the per-portal identity lock.", "",
             f"| measurement | {OLD} | {current} | {current} / {OLD} |", "|---|---:|---:|---:|",
             f"| per-row ingest, events/s | {old['ingest']:,.0f} | {new['ingest']:,.0f} | {new['ingest'] / old['ingest']:.2f} |",
             f"| identify throughput, identifies/s | {old['identify']:,.0f} | {new['identify']:,.0f} | {new['identify'] / old['identify']:.2f} |",
             ""]
    worst = min(new[k] / old[k] for k in new)
    lines.append(f"- at most 10% off {OLD} on per-row ingest and identify: {'met' if worst >= GOAL else '**missed**'} "
                 f"(the lower ratio: {worst:.2f})")
    ok = all(x > 0 for d in (old, new) for x in d.values())
    return "\n".join(lines) + "\n", ok


if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    text, ok = compare(SMOKE if smoke else FULL, smoke)
    print(text)
    sys.exit(0 if ok else 1)
