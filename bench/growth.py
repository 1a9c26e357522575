#!/usr/bin/env python3
"""cdp_identity growth benchmark: the same calls measured as one database grows
to 10k, 100k, 1M and 5M events; every cost as a ratio to its cost at 10k in
the same run. Writes the "Growth" section of BENCHMARKS.md (between
<!-- growth:begin --> and <!-- growth:end -->) and the chart bench/growth.svg.

Run through bench/growth.sh (which installs a release build and starts a
private cluster):
    bench/growth.sh            full run (7 to 12 minutes on this 2-core machine after the build)
    bench/growth.sh --smoke    the same code at 2k and 10k events, seconds long;
                               writes nothing into the repository; ends with
                               "growth: N passed, M failed"

THE DATA. One database is grown step by step; each step bulk-loads the rows
the API would have produced, with set-based INSERT ... SELECT straight into
the cdp tables (no API call), in blocks of 20 visitors and 4 customers:

  * 20 visitor UIDs per block, one anonymous profile each (created by the UID's
    first event), with a device id identifier, system attributes exactly as
    track_event derives them from the context (probed once from the installed
    build: browser, OS, device type, locale, timezone, ip, screen, device id)
    and a first-touch page. UIDs, device ids and message ids are UUIDs.
  * 4 customers per block (1 customer per 5 visitors), each with name, email
    and plan attributes (source identify) and email and identify_id identifiers.
  * 8 of the 20 visitors (40%) are merged into the customers: customer 0 has 1
    merged profile, customers 1 and 2 have 2, customer 3 has 3. The first
    profile of each customer was merged by its UID (its last event is the
    sign-in event, dims.customers.customer_id + extra.identify_id), the others
    by a shared device id, customer 3's third by the email of a lead form
    (which filled `lead_source` on the customer, recorded in
    filled_attributes). merged_at / identify_time = the sign-in event's time.
  * 12 visitors stay anonymous: two of them share a device and a third filled
    a lead form with the same person's email (one person, not signed in yet);
    the others are plain visitors.
  * Customer 0 also has a UID of its own (identified before it had an anonymous
    profile: the UID maps to the customer and its events carry the customer's
    profile id); in one block in 20 that customer is heavy: 200 events (the
    timeline reads use them).
  * Undone decisions and history, one block in 10 each: a device merge that an
    operator undid (merges row with undone_at and a merge_blocks row), a shared
    browser (a uid_reassigned merge row and its UID), an open match suggestion,
    a junk identify skipped (identify_skips), a customer erasure with 3 erased
    UIDs and a UID erasure with 1 (erasures, erased_uids).
  * Events: 1 to 9 per visitor UID (2 to 9 for UIDs that signed in), about 5.5
    per UID overall with the heavy customers, interleaved in time as they
    would arrive (each UID's k-th event follows every UID's (k-1)-th), with the
    SDK payload: context (device_id, session_id, message_id, user_agent, ip,
    page_url, locale, timezone, screen), dims.products and items on one event
    in 11, the sign-in and lead-form payloads on theirs. Times are in 2025.

Assumptions: merges never rewrite events, so a merged profile's events keep
its profile id (as the API does); profile ids, merge ids and erasure ids are
taken above the sequences' values and the sequences set past them afterwards,
so API calls between the steps get fresh ids; received_at is the load time (a
bulk import). The proportions do not depend on the size, so 5M events is
about 900k UIDs, 850k anonymous profiles (340k of them merged), 170k
customers and 350k merge rows: a 5.4 GB database, built in 3 to 6 minutes
(the last step is most of it).

STATISTICS. Nothing is analyzed: autovacuum is switched off on the cdp tables
for the whole run (ALTER TABLE ... SET (autovacuum_enabled = off)), so every
size is measured the way a database is right after a bulk import, before any
ANALYZE (plans from page counts only). The only ANALYZE is the explicit one at
the largest size, for the "5M analyzed" column and the identify throughput
after ANALYZE. `--autovacuum` leaves autovacuum on instead (the report says
which tables it analyzed).

THE MEASUREMENT. Per size, every operation runs in 3 rounds one after the
other; in each round one new psql session makes a few warm-up calls (which
plan the extension's statements in that backend) and then its share of the
calls, each call its own transaction (autocommit), wrapped as
`SELECT growth.time_ms($$<call>$$)`: the server-side time of the call, taken
with clock_timestamp() around it, without the client round trip and the
commit. An operation's figure is the lowest of its 3 round medians, so that a
burst of other work on this shared 2-core machine during one round does not
count (a reference statement that touches no cdp table shows what is left of
that noise). The session also reads pg_stat_database and pg_stat_wal before
and after its timed calls (flushing its own statistics first): buffers, reads
from outside shared_buffers, WAL bytes and full-page images per call, which
say where a cost that grows comes from. Calls that need fresh UIDs or
customers get fresh ones; calls that need existing ones (a known UID, a
customer with anonymous profiles to merge, a merge to undo, a customer to
forget) get rows of the loaded data that no other call has used, spread over
the whole database. pgbench is not used because it cannot hand every
transaction a different existing target without a lookup inside the measured
transaction. A call slower than 60 s (statement_timeout) fails its
operation, which is then not tried at the larger sizes: a pathological plan
cannot hang the run. Identify throughput is measured apart, as the best of 3 rounds
of identifies sent one by one from a new connection, commit included: on
empty tables (the first seconds; that database is then dropped and the
growth starts from empty tables), right after the last bulk load, after the
measurements (still before any ANALYZE) and after ANALYZE.

The library the functions load is pinned for the run (growth.py copies it
into the cluster's directory and points the database's C functions at the
copy), so that another install on this shared machine during the run does not
change the build being measured; the report names the build (size, time,
sha256).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DB = "cdp_growth"

FULL = dict(sizes=(10_000, 100_000, 1_000_000, 5_000_000), throughput_identifies=300)
SMOKE = dict(sizes=(2_000, 10_000), throughput_identifies=10)

EVENTS_PER_BLOCK = 117.25  # expected events of one block (see the docstring), to size the steps
BASE_TIME = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
PORTAL = "default"  # the portal the calls work in (newer schemas), the session's cdp.portal
# Columns that differ between versions of the schema, found by setup_database.
SCHEMA = dict(portal=False, trusted=False, subject="subject_sha256", erased_uid="uid_sha256")

# One page of a customer's timeline. The API has no paging yet: this reads the
# whole timeline and keeps the newest 20. Switch it to the paging arguments here.
TIMELINE_PAGE_SQL = "SELECT * FROM cdp.events_of({profile_id}) ORDER BY event_time DESC, event_id DESC LIMIT 20"

# The user agents of the loaded visitors, with the context that goes with them.
AGENTS = [
    dict(user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
         locale="en-GB", timezone="Europe/London", screen="1920x1080"),
    dict(user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
         locale="vi-VN", timezone="Asia/Ho_Chi_Minh", screen="390x844"),
    dict(user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0",
         locale="de-DE", timezone="Europe/Berlin", screen="1440x900"),
    dict(user_agent="Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
         locale="en-US", timezone="America/New_York", screen="412x915"),
]


# ---------------------------------------------------------------- psql

class CallFailed(Exception):
    pass


def psql(sql, db=DB, check=True, timing=False):
    """Runs a script in one session; returns stdout (unaligned, tuples only)."""
    env = dict(os.environ)
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c client_min_messages=warning").strip()
    script = ("\\timing on\n" if timing else "") + sql
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db],
                         input=script, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        if check:
            sys.exit(f"growth: psql failed:\n{sql[:800]}\n{out.stderr[-3000:]}")
        errors = [line[:500] for line in out.stderr.splitlines() if line.startswith(("ERROR:", "DETAIL:", "HINT:"))]
        raise CallFailed(" ".join(errors) if errors else out.stderr.strip()[-1500:])
    return out.stdout.strip()


def q(text):
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def md5_uuid(text):
    """What md5(text)::uuid::text gives in SQL."""
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))


def md5_hex(text):
    return hashlib.md5(text.encode()).hexdigest()


def ip_of(seed):
    return f"10.{seed // 65536 % 256}.{seed // 256 % 256}.{seed % 256}"


def label(n):
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000:
        return f"{n / 1_000:g}k"
    return str(n)


# ---------------------------------------------------------------- the data

class Step:
    """One bulk load: blocks [b0, b0 + nb), ids above pb (profiles), mb (merges), eb (erasures)."""

    def __init__(self, b0, nb, pb, mb, eb, t):
        self.b0, self.nb, self.pb, self.mb, self.eb, self.t = b0, nb, pb, mb, eb, t
        self.nu = 22 * nb  # UID slots: 20 visitors, 1 customer UID, 1 shared browser per block

    def window(self):
        return 9 * self.nu


class Data:
    """The loaded data, as the measurements need to address it."""

    def __init__(self):
        self.steps = []
        self.blocks = 0
        self.used = {}
        self.t = 0  # seconds after BASE_TIME where the next step's events start

    def step_of(self, block):
        for s in self.steps:
            if s.b0 <= block < s.b0 + s.nb:
                return s
        raise KeyError(block)

    # the rows of block B, position p (visitors 0..19) or j (customers 0..3)
    @staticmethod
    def gv(block, p):
        return 20 * block + p

    @staticmethod
    def owner(block, p):
        """The visitor whose device (and so user agent and ip) visitor p uses."""
        if p in (2, 4, 6, 9):
            return 20 * block + p - 1
        if p == 12 and block % 10 == 3:
            return 20 * block + 5
        return 20 * block + p

    def visitor_uid(self, block, p):
        return md5_uuid(f"u{self.gv(block, p)}")

    def visitor_context(self, block, p):
        own = self.owner(block, p)
        agent = AGENTS[own % 4]
        return dict(device_id=md5_uuid(f"d{own}"), user_agent=agent["user_agent"], ip=ip_of(own),
                    locale=agent["locale"], timezone=agent["timezone"], screen=agent["screen"])

    def visitor_profile(self, block, p):
        s = self.step_of(block)
        return s.pb + 4 * s.nb + 1 + 20 * (block - s.b0) + p

    def customer_profile(self, block, j):
        s = self.step_of(block)
        return s.pb + 1 + 4 * (block - s.b0) + j

    @staticmethod
    def customer_email(block, j):
        return f"customer{4 * block + j}@example.com"

    def customer_id(self, block, j):
        return md5_hex(self.customer_email(block, j))

    def merge_id(self, block, p):
        s = self.step_of(block)
        return s.mb + 1 + 20 * (block - s.b0) + p

    def pick(self, role, n, eligible=lambda b: True, consume=True):
        """n blocks for a role, spread evenly over the whole database; a
        consumed block is never given to the same role again."""
        used = self.used.setdefault(role, set())
        candidates = [b for b in range(self.blocks) if eligible(b) and (not consume or b not in used)]
        if not candidates or (consume and len(candidates) < n):
            raise CallFailed(f"not enough loaded blocks for {role}: {len(candidates)} for {n} calls")
        if len(candidates) >= n:
            chosen = [candidates[i * len(candidates) // n] for i in range(n)]
        else:
            chosen = [candidates[i % len(candidates)] for i in range(n)]
        if consume:
            used.update(chosen)
        return chosen


LIBRARY = {}  # the library the measured functions load: path (and whether it is a pinned copy)


def pin_library():
    """Points the database's C functions at a private copy of their library
    (in $CDP_GROWTH_PIN_DIR, set by bench/growth.sh): another install on this
    shared machine during the run then does not change the build measured.
    The copy is of $CDP_GROWTH_BUILD (the build growth.sh just installed)
    when set, else of the installed library the functions name."""
    probin = psql("SELECT DISTINCT probin FROM pg_proc WHERE pronamespace = 'cdp'::regnamespace AND probin IS NOT NULL")
    if "\n" in probin or not probin:
        sys.exit(f"growth: the cdp functions load no single library: {probin!r}")
    libdir = psql("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")
    installed = probin.replace("$libdir", libdir) if "/" in probin else os.path.join(libdir, probin)
    installed += "" if installed.endswith(".so") else ".so"
    source = os.environ.get("CDP_GROWTH_BUILD") or installed
    pin_dir = os.environ.get("CDP_GROWTH_PIN_DIR")
    LIBRARY.update(path=source)
    if not pin_dir:
        return
    os.makedirs(pin_dir, exist_ok=True)
    pinned = os.path.join(pin_dir, "cdp_identity_pinned.so")
    shutil.copy2(source, pinned)
    for path in (pin_dir, pinned):
        os.chmod(path, 0o755)
    psql(f"UPDATE pg_catalog.pg_proc SET probin = {q(pinned)} WHERE probin = {q(probin)}")
    LIBRARY.update(path=pinned)


def setup_database(autovacuum):
    psql(f"DROP DATABASE IF EXISTS {DB}", db="postgres")
    psql(f"CREATE DATABASE {DB}", db="postgres")
    psql("CREATE EXTENSION cdp_identity")
    columns = lambda table: psql(f"SELECT attname FROM pg_attribute WHERE attrelid = 'cdp.{table}'::regclass "
                                 f"AND attnum > 0 AND NOT attisdropped").split()
    SCHEMA["portal"] = "portal" in columns("profiles")
    SCHEMA["trusted"] = "trusted" in columns("identifiers")
    SCHEMA["subject"] = next(c for c in columns("erasures") if c.startswith("subject"))
    SCHEMA["erased_uid"] = next(c for c in columns("erased_uids") if c.startswith("uid"))
    SCHEMA["paging"] = psql("SELECT count(*) > 0 FROM pg_proc WHERE proname = 'events_of' AND pronamespace = 'cdp'::regnamespace "
                            "AND 'newest_first' = ANY(proargnames)") == "t"
    pin_library()
    if not autovacuum:
        psql("SELECT format('ALTER TABLE %s SET (autovacuum_enabled = off)', c.oid::regclass) FROM pg_class c "
             "WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind = 'r' \\gexec")
    psql("""
CREATE SCHEMA growth;
-- Server-side time of one call, in ms (no client round trip, no commit).
CREATE FUNCTION growth.time_ms(statement text) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE statement;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
CREATE TABLE growth.agents (idx int PRIMARY KEY, user_agent text, locale text, timezone text, screen text, system jsonb);
CREATE TABLE growth.commit_reference (x int);
""")
    # The system attributes track_event derives from each user agent's context,
    # probed from the installed build (and rolled back), so that the loaded
    # profiles look exactly like the API's and known-UID page views stay on the hot path.
    for idx, agent in enumerate(AGENTS, start=1):
        ctx = json.dumps({"context": dict(agent, device_id="probe-device", ip="10.0.0.1", page_url="https://shop.example/")})
        system = psql(f"""BEGIN;
SELECT cdp.track_event('growth-probe', 'pageview', 'view', {q(ctx)}) \\gset
SELECT system - 'device_id' - 'ip' FROM cdp.profiles WHERE profile_id = cdp.profile_of('growth-probe');
ROLLBACK;""")
        psql(f"INSERT INTO growth.agents VALUES ({idx}, {q(agent['user_agent'])}, {q(agent['locale'])}, "
             f"{q(agent['timezone'])}, {q(agent['screen'])}, {q(system)})")


def load_sql(s):
    """The INSERT ... SELECTs of one step (see the docstring for the shape)."""
    B0, NB, PB, MB, EB, NU, T = s.b0, s.nb, s.pb, s.mb, s.eb, s.nu, int(BASE_TIME.timestamp()) + s.t
    ts = lambda k, u: f"to_timestamp({T} + ({k})::bigint * {NU} + ({u}))"
    # Columns of newer schemas: the portal of every row, whether an identifier is trusted.
    PC, PV = ("portal, ", f"{q(PORTAL)}, ") if SCHEMA["portal"] else ("", "")
    TRUSTED_COL, TRUSTED_VAL = (", trusted", ", t.trusted") if SCHEMA["trusted"] else ("", "")
    return f"""
SET client_min_messages = warning;
DROP TABLE IF EXISTS growth.v, growth.c, growth.u, growth.uu, growth.heavy;
-- visitors: block b (bg overall), position p, device owner, customer j it is merged into, the sign-in visitor si
CREATE UNLOGGED TABLE growth.v AS
SELECT s.*, md5('u' || s.gv)::uuid::text AS uid, md5('d' || s.own)::uuid::text AS device,
       CASE WHEN s.p IN (0, 1, 3, 5) THEN 2 + s.gv % 8 ELSE 1 + s.gv % 9 END AS cnt,
       {PB} + 4 * {NB} + 1 + s.i AS profile_id,
       CASE WHEN s.j IS NOT NULL THEN {PB} + 1 + 4 * s.b + s.j END AS customer_profile,
       CASE WHEN s.j IS NOT NULL THEN 4 * s.bg + s.j END AS gc,
       CASE WHEN s.p IN (0, 1, 3, 5) THEN 'uid' WHEN s.p IN (2, 4, 6) THEN 'device_id' WHEN s.p = 7 THEN 'email' END AS reason,
       CASE s.p WHEN 7 THEN 'customer' || (4 * s.bg + 3) || '@example.com' WHEN 10 THEN 'person' || s.bg || '@example.com' END AS lead_email,
       {ts("1 + (s.gv - s.i + s.si) % 8", "s.si")} AS merge_time
FROM (SELECT i, i / 20 AS b, {B0} + i / 20 AS bg, i % 20 AS p, 20 * ({B0} + i / 20) + i % 20 AS gv,
             20 * ({B0} + i / 20) + CASE WHEN i % 20 IN (2, 4, 6, 9) THEN i % 20 - 1
                                         WHEN i % 20 = 12 AND ({B0} + i / 20) % 10 = 3 THEN 5
                                         ELSE i % 20 END AS own,
             CASE WHEN i % 20 = 0 THEN 0 WHEN i % 20 IN (1, 2) THEN 1 WHEN i % 20 IN (3, 4) THEN 2 WHEN i % 20 IN (5, 6, 7) THEN 3 END AS j,
             i - i % 20 + CASE WHEN i % 20 = 0 THEN 0 WHEN i % 20 IN (1, 2) THEN 1 WHEN i % 20 IN (3, 4) THEN 3
                               WHEN i % 20 IN (5, 6, 7) THEN 5 END AS si
      FROM generate_series(0, 20 * {NB} - 1) AS i) s;
-- customers: j 0..3 of each block; customer 0 was identified before its own UID's first event
CREATE UNLOGGED TABLE growth.c AS
SELECT s.*, {PB} + 1 + s.ci AS profile_id, 'customer' || s.gc || '@example.com' AS email,
       md5('customer' || s.gc || '@example.com') AS cid,
       {ts("1 + (20 * s.bg + s.sp) % 8", "20 * s.b + s.sp")} AS signin_time,
       CASE WHEN s.j = 0 THEN to_timestamp({T} + 20 * {NB} + s.b - 0.5)
            ELSE {ts("1 + (20 * s.bg + s.sp) % 8", "20 * s.b + s.sp")} END AS identified_at
FROM (SELECT ci, ci / 4 AS b, {B0} + ci / 4 AS bg, ci % 4 AS j, 4 * ({B0} + ci / 4) + ci % 4 AS gc,
             (ARRAY[0, 1, 3, 5])[ci % 4 + 1] AS sp
      FROM generate_series(0, 4 * {NB} - 1) AS ci) s;
-- every UID of the step: visitors, customers' own UIDs, shared browsers (customer 0's, then customer 1's from event 3 on)
CREATE UNLOGGED TABLE growth.u AS
SELECT v.i AS u_idx, v.uid, v.profile_id, NULL::bigint AS profile_after, NULL::int AS switch_k, v.device,
       v.own % 4 + 1 AS agent, v.own AS ip_seed, v.cnt, false AS heavy,
       CASE WHEN v.p IN (0, 1, 3, 5) THEN v.cnt - 1 ELSE -1 END AS signin_k, v.gc AS signin_gc,
       CASE WHEN v.lead_email IS NOT NULL THEN 0 ELSE -1 END AS lead_k, v.lead_email, v.gv AS seed
FROM growth.v v
UNION ALL
SELECT 20 * {NB} + c.b, md5('cu' || c.gc)::uuid::text, c.profile_id, NULL, NULL, md5('cd' || c.gc)::uuid::text,
       c.gc % 4 + 1, 1000000000 + c.gc, CASE WHEN c.bg % 20 = 0 THEN 200 ELSE 1 + c.gc % 9 END, c.bg % 20 = 0,
       -1, NULL, -1, NULL, c.gc
FROM growth.c c WHERE c.j = 0
UNION ALL
SELECT 21 * {NB} + c0.b, md5('sb' || c0.bg)::uuid::text, c0.profile_id, c1.profile_id, 3, md5('sbd' || c0.bg)::uuid::text,
       c0.bg % 4 + 1, 2000000000 + c0.bg, 5, false, -1, NULL, -1, NULL, c0.bg
FROM growth.c c0 JOIN growth.c c1 ON c1.ci = c0.ci + 1 WHERE c0.j = 0 AND c0.bg % 10 = 7;
CREATE UNLOGGED TABLE growth.uu AS
SELECT u.*, a.user_agent, a.locale, a.timezone, a.screen,
       '10.' || (u.ip_seed / 65536) % 256 || '.' || (u.ip_seed / 256) % 256 || '.' || u.ip_seed % 256 AS ip,
       a.system || jsonb_build_object('device_id', u.device,
                                      'ip', '10.' || (u.ip_seed / 65536) % 256 || '.' || (u.ip_seed / 256) % 256 || '.' || u.ip_seed % 256) AS system,
       jsonb_build_object('first_page_url', 'https://shop.example/p/' || u.seed % 17) AS first_touch,
       {ts(0, "u.u_idx")} AS first_time,
       CASE WHEN u.heavy THEN to_timestamp({T} + (199 * 9 * {NU}::bigint) / 200 + u.u_idx) ELSE {ts("u.cnt - 1", "u.u_idx")} END AS last_time
FROM growth.u u JOIN growth.agents a ON a.idx = u.agent;
CREATE INDEX ON growth.uu (u_idx);
CREATE UNLOGGED TABLE growth.heavy AS SELECT * FROM growth.uu WHERE heavy;
ANALYZE growth.v, growth.c, growth.uu, growth.heavy;

BEGIN;
INSERT INTO cdp.profiles ({PC}profile_id, customer_id, created_at, identified_at, system, system_at, first_touch, first_touch_at)
SELECT {PV}t.* FROM (
SELECT c.profile_id, c.cid, c.identified_at, c.identified_at,
       coalesce(d0.system, d1.system, '{{}}'), coalesce(d0.last_time, d1.last_time),
       coalesce(d0.first_touch, d1.first_touch, '{{}}'), coalesce(d0.first_time, d1.first_time + 3 * {NU} * interval '1 second')
FROM growth.c c
LEFT JOIN growth.uu d0 ON c.j = 0 AND d0.u_idx = 20 * {NB} + c.b
LEFT JOIN growth.uu d1 ON c.j = 1 AND d1.u_idx = 21 * {NB} + c.b
ORDER BY c.profile_id
) AS t;
INSERT INTO cdp.profiles ({PC}profile_id, merged_into, merged_at, created_at, system, system_at, first_touch, first_touch_at)
SELECT {PV}t.* FROM (
SELECT v.profile_id, v.customer_profile, v.merge_time, u.first_time, u.system, u.last_time, u.first_touch, u.first_time
FROM growth.v v JOIN growth.uu u ON u.u_idx = v.i
ORDER BY v.profile_id
) AS t;
INSERT INTO cdp.uids ({PC}uid, profile_id, first_seen, last_device_id)
SELECT {PV}t.* FROM (
SELECT u.uid, coalesce(u.profile_after, u.profile_id), u.first_time, u.device FROM growth.uu u ORDER BY u.u_idx
) AS t;
INSERT INTO cdp.identifiers ({PC}kind, value, profile_id, first_seen{TRUSTED_COL})
SELECT {PV}t.kind, t.value, t.profile_id, t.first_seen{TRUSTED_VAL} FROM (
SELECT 'device_id' AS kind, u.device AS value, u.profile_id, u.first_time AS first_seen, true AS trusted FROM growth.uu u
UNION ALL SELECT 'email', v.lead_email, v.profile_id, to_timestamp({T} + v.i), false FROM growth.v v WHERE v.lead_email IS NOT NULL
UNION ALL SELECT 'email', c.email, c.profile_id, c.signin_time, true FROM growth.c c
UNION ALL SELECT 'identify_id', c.cid, c.profile_id, c.signin_time, true FROM growth.c c
) AS t;
INSERT INTO cdp.profile_attributes ({PC}profile_id, key, value, set_at, source, source_profile)
SELECT {PV}t.* FROM (
SELECT c.profile_id, a.key, a.value, c.signin_time, 'identify', NULL::bigint
FROM growth.c c, LATERAL (VALUES ('email', to_jsonb(c.email)), ('name', to_jsonb('Customer ' || c.gc)),
                                 ('plan', to_jsonb(CASE WHEN c.gc % 3 = 0 THEN 'pro' ELSE 'free' END))) AS a(key, value)
UNION ALL
SELECT v.profile_id, a.key, a.value, to_timestamp({T} + v.i), 'event', NULL
FROM growth.v v, LATERAL (VALUES ('email', to_jsonb(v.lead_email)), ('lead_source', '"newsletter"'::jsonb)) AS a(key, value)
WHERE v.lead_email IS NOT NULL
UNION ALL
SELECT v.customer_profile, 'lead_source', '"newsletter"', to_timestamp({T} + v.i), 'merge', v.profile_id
FROM growth.v v WHERE v.p = 7
) AS t;
INSERT INTO cdp.merges ({PC}merge_id, kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time,
                        merged_at, filled_attributes, uid_profile_before, undone_at)
SELECT {PV}t.* FROM (
SELECT {MB} + 1 + v.i, 'merge', v.profile_id, v.customer_profile, v.reason,
       CASE v.reason WHEN 'uid' THEN v.uid WHEN 'device_id' THEN v.device ELSE v.lead_email END,
       md5('u' || (v.gv - v.i + v.si))::uuid::text, 'exact', v.merge_time, v.merge_time,
       CASE WHEN v.p = 7 THEN ARRAY['lead_source'] ELSE '{{}}'::text[] END, NULL::bigint, NULL::timestamptz
FROM growth.v v WHERE v.p < 8
UNION ALL
SELECT {MB} + 1 + v.i, 'merge', v.profile_id, {PB} + 1 + 4 * v.b + 3, 'device_id', v.device,
       md5('u' || (v.gv - 7))::uuid::text, 'exact', {ts("1 + (v.gv - 7) % 8", "v.i - 7")}, {ts("1 + (v.gv - 7) % 8", "v.i - 7")},
       '{{}}', NULL, {ts("1 + (v.gv - 7) % 8", "v.i - 7")} + interval '1 day'
FROM growth.v v WHERE v.p = 12 AND v.bg % 10 = 3
UNION ALL
SELECT {MB} + 1 + u.u_idx - {NB}, 'uid_reassigned', u.profile_id, u.profile_after, 'uid', u.uid, u.uid, 'exact',
       {ts(3, "u.u_idx")} - interval '0.5 seconds', {ts(3, "u.u_idx")} - interval '0.5 seconds', '{{}}', u.profile_id, NULL
FROM growth.uu u WHERE u.switch_k IS NOT NULL
ORDER BY 1
) AS t;
INSERT INTO cdp.merge_blocks ({PC}from_profile, into_profile, evidence, merge_id, blocked_at)
SELECT {PV}t.* FROM (
SELECT v.profile_id, {PB} + 1 + 4 * v.b + 3, ARRAY['device_id:' || v.device, 'uid:' || v.uid, 'predict'], {MB} + 1 + v.i,
       {ts("1 + (v.gv - 7) % 8", "v.i - 7")} + interval '1 day'
FROM growth.v v WHERE v.p = 12 AND v.bg % 10 = 3
) AS t;
INSERT INTO cdp.match_suggestions ({PC}profile_id, customer_profile, probability, signals, status, created_at)
SELECT {PV}t.* FROM (
SELECT v.profile_id, {PB} + 1 + 4 * v.b + 2, 0.8,
       '{{"user_agent": "agree", "ip_network": "agree", "device_id": "disagree", "recent": "agree"}}'::jsonb, 'open', to_timestamp({T} + v.i)
FROM growth.v v WHERE v.p = 15 AND v.bg % 10 = 5
) AS t;
INSERT INTO cdp.identify_skips ({PC}uid, field, value, reason, skipped_at)
SELECT {PV}t.* FROM (
SELECT v.uid, 'payload.dims.customers.customer_id', 'undefined', 'placeholder value', to_timestamp({T} + v.i)
FROM growth.v v WHERE v.p = 19 AND v.bg % 10 = 9
) AS t;
INSERT INTO cdp.erasures ({PC}erasure_id, kind, {SCHEMA["subject"]}, counts, erased_at)
SELECT {PV}t.* FROM (
SELECT {EB} + 1 + b, CASE WHEN ({B0} + b) % 10 = 1 THEN 'customer' ELSE 'uid' END,
       encode(sha256(convert_to('forgotten-' || ({B0} + b), 'UTF8')), 'hex'),
       CASE WHEN ({B0} + b) % 10 = 1
            THEN '{{"profiles": 3, "uids": 3, "events": 16, "identifiers": 5, "attributes": 3, "merges": 2, "merge_blocks": 0, "identify_skips": 0, "match_suggestions": 0}}'
            ELSE '{{"profiles": 1, "uids": 1, "events": 5, "identifiers": 1, "attributes": 0, "merges": 0, "merge_blocks": 0, "identify_skips": 0, "match_suggestions": 0}}' END::jsonb,
       to_timestamp({T} + {9 * NU})
FROM generate_series(0, {NB} - 1) AS b WHERE ({B0} + b) % 10 IN (1, 6)
) AS t;
INSERT INTO cdp.erased_uids ({PC}{SCHEMA["erased_uid"]}, erasure_id)
SELECT {PV}t.* FROM (
SELECT encode(sha256(convert_to('forgotten-uid-' || ({B0} + b) || '-' || n, 'UTF8')), 'hex'), {EB} + 1 + b
FROM generate_series(0, {NB} - 1) AS b, generate_series(1, 3) AS n
WHERE ({B0} + b) % 10 = 1 OR (({B0} + b) % 10 = 6 AND n = 1)
) AS t;
-- events, in arrival order: every UID's k-th event after every UID's (k-1)-th
INSERT INTO cdp.events ({PC}profile_id, uid, category, action, event_time, session_id, message_id, payload)
SELECT {PV}t.* FROM (
SELECT CASE WHEN e.k >= e.switch_k THEN e.profile_after ELSE e.profile_id END, e.uid,
       CASE e.kind WHEN 's' THEN 'user' WHEN 'l' THEN 'form' WHEN 'p' THEN 'product' ELSE 'pageview' END,
       CASE e.kind WHEN 's' THEN 'sign_in' WHEN 'l' THEN 'submit' WHEN 'p' THEN 'view_item' ELSE 'view' END,
       e.t, e.sid, e.mid,
       jsonb_build_object('context', jsonb_build_object(
           'device_id', e.device, 'session_id', e.sid, 'message_id', e.mid, 'user_agent', e.user_agent, 'ip', e.ip,
           'page_url', 'https://shop.example/p/' || (e.seed + e.k) % 17, 'locale', e.locale, 'timezone', e.timezone,
           'screen', e.screen))
       || CASE e.kind
            WHEN 's' THEN jsonb_build_object(
                'dims', jsonb_build_object('customers', jsonb_build_object(
                    'customer_id', md5('customer' || e.signin_gc || '@example.com'), 'email', 'customer' || e.signin_gc || '@example.com',
                    'name', 'Customer ' || e.signin_gc, 'plan', CASE WHEN e.signin_gc % 3 = 0 THEN 'pro' ELSE 'free' END)),
                'extra', jsonb_build_object('identify_id', md5('customer' || e.signin_gc || '@example.com'),
                                            'identify_event', 'user_sign_in', 'identify_type', 'exact'))
            WHEN 'l' THEN jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object(
                'email', e.lead_email, 'lead_source', 'newsletter')))
            WHEN 'p' THEN jsonb_build_object(
                'dims', jsonb_build_object('products', jsonb_build_object('sku', 'sku-' || (e.seed + e.k) % 500, 'price', 19.9)),
                'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || (e.seed + e.k) % 500, 'quantity', 1)))
            ELSE '{{}}'::jsonb
          END
FROM (SELECT u.*, k,
             CASE WHEN k = u.signin_k THEN 's' WHEN k = u.lead_k THEN 'l' WHEN (u.seed + k) % 11 = 5 THEN 'p' ELSE 'v' END AS kind,
             CASE WHEN u.heavy THEN to_timestamp({T} + (k * 9 * {NU}::bigint) / 200 + u.u_idx) ELSE {ts("k", "u.u_idx")} END AS t,
             left(u.uid, 8) || '-' || k / 3 AS sid,
             md5(u.uid || '/' || k)::uuid::text AS mid
      FROM generate_series(0, 199) AS k,
           LATERAL (SELECT * FROM growth.uu u WHERE k < 9 AND k < u.cnt
                    UNION ALL
                    SELECT * FROM growth.heavy u WHERE k >= 9 AND k < u.cnt) AS u) AS e
) AS t;
SELECT setval('cdp.profiles_profile_id_seq', greatest((SELECT max(profile_id) FROM cdp.profiles), (SELECT last_value FROM cdp.profiles_profile_id_seq)));
SELECT setval('cdp.merges_merge_id_seq', greatest((SELECT max(merge_id) FROM cdp.merges), (SELECT last_value FROM cdp.merges_merge_id_seq)));
SELECT setval('cdp.erasures_erasure_id_seq', greatest((SELECT max(erasure_id) FROM cdp.erasures), (SELECT last_value FROM cdp.erasures_erasure_id_seq)));
COMMIT;
DROP TABLE growth.v, growth.c, growth.u, growth.uu, growth.heavy;
"""


def counts():
    """Rows per table (from the statistics counters: no scan) and the database size."""
    rows = psql("SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = 'cdp'")
    found = {name: int(n) for name, n in (line.split("|") for line in rows.splitlines())}
    found["database_bytes"] = int(psql(f"SELECT pg_database_size('{DB}')"))
    found["analyzed"] = psql("SELECT coalesce(string_agg(relname, ', ' ORDER BY relname), '') FROM pg_stat_user_tables "
                             "WHERE schemaname = 'cdp' AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)")
    return found


def wait_for_counters(expected_events):
    """The statistics counters are flushed by backends when they go idle or exit: wait (shortly) until they show the load."""
    for _ in range(50):
        if counts()["events"] >= expected_events:
            return
        time.sleep(0.1)


def grow(data, target):
    """Bulk-loads the next step so that the database holds about `target` events; returns the build time in s."""
    before = counts()["events"]
    nb = max(1, round((target - before) / EVENTS_PER_BLOCK))
    ids = psql("SELECT greatest(coalesce((SELECT max(profile_id) FROM cdp.profiles), 0), (SELECT last_value FROM cdp.profiles_profile_id_seq)),"
               " greatest(coalesce((SELECT max(merge_id) FROM cdp.merges), 0), (SELECT last_value FROM cdp.merges_merge_id_seq)),"
               " greatest(coalesce((SELECT max(erasure_id) FROM cdp.erasures), 0), (SELECT last_value FROM cdp.erasures_erasure_id_seq))")
    pb, mb, eb = (int(x) for x in ids.split("|"))
    step = Step(data.blocks, nb, pb, mb, eb, data.t)
    t0 = time.perf_counter()
    psql(load_sql(step))
    loaded = time.perf_counter() - t0
    psql("CHECKPOINT", db="postgres")
    seconds = time.perf_counter() - t0
    data.steps.append(step)
    data.blocks += nb
    data.t += step.window() + 3600
    wait_for_counters(before + 1)
    return dict(seconds=seconds, load_seconds=loaded, checkpoint_seconds=seconds - loaded, blocks=nb)


# ---------------------------------------------------------------- the operations

def pw(alias=""):
    """The portal condition of the checks' lookups (newer schemas lead every key with the portal)."""
    return f" AND {alias}portal = {q(PORTAL)}" if SCHEMA["portal"] else ""


def arr(values):
    return "ARRAY[" + ", ".join(q(v) for v in values) + "]::text[]"


def arr_int(values):
    return "ARRAY[" + ", ".join(str(v) for v in values) + "]::bigint[]"


def live_context(data, block, p, i):
    uid = data.visitor_uid(block, p)
    return uid, dict(data.visitor_context(block, p), session_id=f"{uid[:8]}-live", message_id=str(uuid.uuid4()),
                     page_url=f"https://shop.example/p/{i % 17}")


def untouched(data, profiles):
    """No loaded profile row was written (the calls took the append-only path)."""
    loaded_until = int(BASE_TIME.timestamp()) + data.t
    return f"NOT EXISTS (SELECT FROM cdp.profiles WHERE profile_id = ANY({arr_int(profiles)}){pw()} AND system_at > to_timestamp({loaded_until}))"


def op_reference(data, n, tag):
    return ["SELECT count(*) FROM generate_series(1, 1000)"] * n, None


def op_track_known(data, n, tag):
    stmts, mids, profiles = [], [], []
    for i, b in enumerate(data.pick("known", n, consume=False)):
        p = 16 + i % 4
        uid, ctx = live_context(data, b, p, i)
        stmts.append(f"SELECT cdp.track_event({q(uid)}, 'pageview', 'view', {q(json.dumps({'context': ctx}))})")
        mids.append(ctx["message_id"])
        profiles.append(data.visitor_profile(b, p))
    return stmts, f"SELECT (SELECT count(*) FROM cdp.events WHERE message_id = ANY({arr(mids)}){pw()}) = {n} AND {untouched(data, profiles)}"


def op_track_new(data, n, tag):
    stmts, uids = [], []
    for i in range(n):
        uid = str(uuid.uuid4())
        agent = AGENTS[i % 4]
        ctx = dict(agent, device_id=str(uuid.uuid4()), session_id=f"{uid[:8]}-0", message_id=str(uuid.uuid4()),
                   ip=f"192.0.2.{i % 250}", page_url="https://shop.example/")
        stmts.append(f"SELECT cdp.track_event({q(uid)}, 'pageview', 'view', {q(json.dumps({'context': ctx}))})")
        uids.append(uid)
    return stmts, f"SELECT count(*) = {n} FROM cdp.uids WHERE uid = ANY({arr(uids)}){pw()}"


BATCH = 50


def page_view_items(data, count, start):
    items, mids, profiles = [], [], []
    for i, b in enumerate(data.pick("known", count, consume=False)):
        p = 16 + (start + i) % 4
        uid, ctx = live_context(data, b, p, start + i)
        items.append({"uid": uid, "category": "pageview", "action": "view", "payload": {"context": ctx}})
        mids.append(ctx["message_id"])
        profiles.append(data.visitor_profile(b, p))
    return items, mids, profiles


def op_batch_pages(data, n, tag):
    stmts, mids, profiles = [], [], []
    for c in range(n):
        items, m, p = page_view_items(data, BATCH, c * BATCH)
        stmts.append(f"SELECT cdp.track_batch({q(json.dumps(items))})")
        mids += m
        profiles += p
    return stmts, f"SELECT (SELECT count(*) FROM cdp.events WHERE message_id = ANY({arr(mids)}){pw()}) = {n * BATCH} AND {untouched(data, profiles)}"


def op_batch_mixed(data, n, tag):
    """50 items: 42 page views and 2 product views of known UIDs, the first page
    views of 3 new UIDs, a lead form, a sign-in of an anonymous visitor as a new
    customer (merges its profile) and an SDK retry of the first item."""
    stmts, cids, leads = [], [], []
    for c, b in enumerate(data.pick("batch_mixed", n)):
        items, _, _ = page_view_items(data, 44, c * 44)
        for item in items[42:]:
            item.update(category="product", action="view_item")
            item["payload"].update(dims={"products": {"sku": f"sku-{c % 500}", "price": 19.9}}, items=[{"sku": f"sku-{c % 500}", "quantity": 1}])
        for k in range(3):
            uid = str(uuid.uuid4())
            ctx = dict(AGENTS[k], device_id=str(uuid.uuid4()), session_id=f"{uid[:8]}-0", message_id=str(uuid.uuid4()),
                       ip=f"192.0.2.{k}", page_url="https://shop.example/")
            items.insert(10 + 15 * k, {"uid": uid, "category": "pageview", "action": "view", "payload": {"context": ctx}})
        uid, ctx = live_context(data, b, 13, c)
        lead = f"lead{b}-{tag}@example.com".lower()
        items.insert(20, {"uid": uid, "category": "form", "action": "submit",
                          "payload": {"dims": {"customers": {"email": lead, "name": f"Lead {b}"}}, "context": ctx}})
        uid, ctx = live_context(data, b, 14, c)
        email = f"batch{b}-{tag}@example.com"
        cid = md5_hex(email)
        items.insert(30, {"uid": uid, "category": "user", "action": "sign_in",
                          "payload": {"dims": {"customers": {"customer_id": cid, "email": email, "name": f"Batch {b}"}},
                                      "extra": {"identify_id": cid, "identify_event": "user_sign_in"}, "context": ctx}})
        items.append(items[0])
        assert len(items) == BATCH
        stmts.append(f"SELECT cdp.track_batch({q(json.dumps(items))})")
        cids.append(cid)
        leads.append(lead)
    return stmts, (f"SELECT (SELECT count(*) FROM cdp.profiles c WHERE c.customer_id = ANY({arr(cids)}){pw('c.')}"
                   f"          AND EXISTS (SELECT FROM cdp.merges m WHERE m.into_profile = c.profile_id{pw('m.')})) = {n}"
                   f"   AND (SELECT count(*) FROM cdp.identifiers WHERE kind = 'email' AND value = ANY({arr(leads)}){pw()}) = {n}")


def op_identify_new(data, n, tag):
    stmts, cids = [], []
    for i in range(n):
        email = f"new-{tag}-{i}@example.com"
        cids.append(md5_hex(email))
        attrs = json.dumps({"email": email, "name": f"New {i}", "plan": "free"})
        stmts.append(f"SELECT cdp.identify({q(str(uuid.uuid4()))}, {q(cids[-1])}, {q(attrs)})")
    return stmts, f"SELECT count(*) = {n} FROM cdp.profiles WHERE customer_id = ANY({arr(cids)}){pw()}"


def op_identify_known(data, n, tag):
    """An anonymous visitor signs in as a known customer (its profile is merged)."""
    stmts, merged = [], []
    for b in data.pick("identify_known", n, eligible=lambda b: b % 20 != 0):
        stmts.append(f"SELECT cdp.identify({q(data.visitor_uid(b, 11))}, {q(data.customer_id(b, 0))}, '{{\"plan\": \"pro\"}}')")
        merged.append(data.visitor_profile(b, 11))
    return stmts, f"SELECT count(*) = {n} FROM cdp.profiles WHERE profile_id = ANY({arr_int(merged)}){pw()} AND merged_into IS NOT NULL"


def op_identify_merges(data, n, tag):
    """A person with two UIDs on one device and a lead form signs up: a new
    customer, and 3 anonymous profiles merged (by UID, device id and email)."""
    stmts, uids = [], []
    for b in data.pick("identify_merges", n):
        uid = data.visitor_uid(b, 8)
        email = f"person{b}@example.com"
        attrs = json.dumps({"email": email, "name": f"Person {b}"})
        stmts.append(f"SELECT cdp.identify({q(uid)}, {q(md5_hex(email))}, {q(attrs)})")
        uids.append(uid)
    return stmts, (f"SELECT sum((SELECT count(*) FROM cdp.merges m WHERE m.into_profile = cdp.profile_of(u){pw('m.')})) = {3 * n} "
                   f"FROM unnest({arr(uids)}) AS u")


def op_identify_repeat(data, n, tag):
    """A customer's UID identifies again as the same customer (every sign-in does)."""
    stmts, customers = [], []
    for b in data.pick("identify_repeat", n, consume=False):
        stmts.append(f"SELECT cdp.identify({q(data.visitor_uid(b, 1))}, {q(data.customer_id(b, 1))}, '{{\"plan\": \"pro\"}}')")
        customers.append(data.customer_profile(b, 1))
    loaded_until = int(BASE_TIME.timestamp()) + data.t
    return stmts, (f"SELECT NOT EXISTS (SELECT FROM unnest({arr_int(customers)}) AS c, "
                   f"LATERAL (SELECT FROM cdp.merges m WHERE m.into_profile = c{pw('m.')} AND m.merged_at > to_timestamp({loaded_until})) x)")


def op_customer_profile(data, n, tag):
    blocks = data.pick("profile_read", n, consume=False)
    stmts = [f"SELECT cdp.customer_profile({q(data.customer_id(b, 1))})" for b in blocks]
    return stmts, f"SELECT (cdp.customer_profile({q(data.customer_id(blocks[0], 1))})->>'event_count')::int > 1"


def op_timeline(data, n, tag):
    blocks = data.pick("timeline", n, eligible=lambda b: b % 20 == 0, consume=False)
    stmts = [TIMELINE_PAGE_SQL.format(profile_id=data.customer_profile(b, 0)) for b in blocks]
    first = data.customer_profile(blocks[0], 0)
    return stmts, (f"SELECT (SELECT count(*) FROM ({TIMELINE_PAGE_SQL.format(profile_id=first)}) AS page) = 20"
                   f"   AND (SELECT count(*) FROM cdp.events_of({first})) >= 200")


# The same page through the paging arguments of cdp.events_of (builds that have them).
TIMELINE_PAGED_SQL = "SELECT * FROM cdp.events_of({profile_id}, max_rows => 20, newest_first => true)"


def op_timeline_paged(data, n, tag):
    blocks = data.pick("timeline", n, eligible=lambda b: b % 20 == 0, consume=False)
    stmts = [TIMELINE_PAGED_SQL.format(profile_id=data.customer_profile(b, 0)) for b in blocks]
    first = data.customer_profile(blocks[0], 0)
    return stmts, (f"SELECT (SELECT array_agg(event_id) FROM ({TIMELINE_PAGED_SQL.format(profile_id=first)}) AS page) = "
                   f"(SELECT array_agg(event_id) FROM ({TIMELINE_PAGE_SQL.format(profile_id=first)}) AS page)")


def op_unmerge(data, n, tag):
    """Undo a device-id merge of a customer with 2 merged profiles."""
    ids = [data.merge_id(b, 4) for b in data.pick("unmerge", n)]
    return ([f"SELECT cdp.unmerge({m})" for m in ids],
            f"SELECT count(*) = {n} FROM cdp.merges WHERE merge_id = ANY({arr_int(ids)}){pw()} AND undone_at IS NOT NULL")


def op_forget(data, n, tag):
    """Erase a customer with 3 merged profiles (about 20 events)."""
    cids = [data.customer_id(b, 3) for b in data.pick("forget", n)]
    return ([f"SELECT cdp.forget_customer({q(c)})" for c in cids],
            f"SELECT NOT EXISTS (SELECT FROM cdp.profiles WHERE customer_id = ANY({arr(cids)}){pw()})")


class Op:
    def __init__(self, key, name, short, make, calls, warmup, chart=True, needs=None):
        self.key, self.name, self.short, self.make, self.calls, self.warmup, self.chart = key, name, short, make, calls, warmup, chart
        self.needs = needs  # a feature of SCHEMA the build must have, else the operation is left out


OPS = [
    Op("track_known", "track_event, known UID (page view)", "track_event, known UID", op_track_known, 201, 5),
    Op("track_new", "track_event, new UID", "track_event, new UID", op_track_new, 201, 5),
    Op("batch_pages", f"track_batch, {BATCH} page views of known UIDs", f"track_batch, {BATCH} page views", op_batch_pages, 60, 2),
    Op("batch_mixed", f"track_batch, {BATCH} mixed (new UIDs, lead form, sign-in, retry)", f"track_batch, {BATCH} mixed",
       op_batch_mixed, 45, 2),
    Op("identify_new", "identify, new customer (new UID)", "identify, new customer", op_identify_new, 60, 3),
    Op("identify_known", "identify, known customer (merges the visitor)", "identify, known customer", op_identify_known, 45, 2),
    Op("identify_merges", "identify, new customer with 3 merges (UID, device, email)", "identify, with 3 merges",
       op_identify_merges, 45, 2),
    Op("identify_repeat", "identify, repeat of a customer's UID", "identify, repeat", op_identify_repeat, 60, 3),
    Op("customer_profile", "customer_profile (2 merged profiles)", "customer_profile", op_customer_profile, 90, 5),
    Op("timeline", "timeline page: 20 newest events of a customer with 200+", "timeline page (20 of 200+ events)",
       op_timeline, 90, 5),
    Op("timeline_paged", "timeline page by the paging arguments (max_rows 20, newest_first)", "timeline page, paging arguments",
       op_timeline_paged, 90, 5, needs="paging"),
    Op("unmerge", "unmerge (a device-id merge)", "unmerge", op_unmerge, 21, 2),
    Op("forget", "forget_customer (3 merged profiles)", "forget_customer", op_forget, 12, 1),
    Op("reference", "reference: a statement on no cdp table (count of 1,000 generated rows)", "reference (no cdp table)",
       op_reference, 150, 5, chart=False),
]


ROUNDS = 3


CALL_TIMEOUT_S = 60  # a call slower than this fails (statement_timeout), and its operation is not tried at larger sizes
COUNTERS = ("hit", "read", "wal_records", "wal_fpi", "wal_bytes")
SNAPSHOT = ("SELECT pg_stat_force_next_flush();\n"
            "SELECT 'counters', d.blks_hit, d.blks_read, w.wal_records, w.wal_fpi, w.wal_bytes "
            "FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database();")


def timed(stmts, warmup, timing=False):
    """Runs the calls in one session, each its own transaction, wrapped in
    growth.time_ms; returns the server-side ms of the calls after the first
    `warmup`, the client-side ms (with `timing`) and the counters per timed
    call: buffer hits and reads of the database, WAL records, full-page images
    and bytes. The session flushes its statistics before reading them, so the
    counters are those of the timed calls (and of the two reads)."""
    wrap = lambda s: f"SELECT growth.time_ms($growth${s}$growth$);"
    script = "\n".join([f"SET statement_timeout = '{CALL_TIMEOUT_S}s';"] + [wrap(s) for s in stmts[:warmup]]
                       + [SNAPSHOT, "\\timing on" if timing else ""]
                       + [wrap(s) for s in stmts[warmup:]] + ["\\timing off", SNAPSHOT])
    out = psql(script, check=False)
    snaps = [[float(x) for x in line.split("|")[1:]] for line in out.splitlines() if line.startswith("counters|")]
    client = [float(m) for m in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
    values = [float(line) for line in out.splitlines() if line and not line.startswith(("counters|", "Time:"))]
    n = len(stmts) - warmup
    if len(snaps) != 2 or len(values) != len(stmts):
        raise CallFailed(f"unexpected output: {out[-500:]}")
    per_call = {k: (b - a) / n for k, a, b in zip(COUNTERS, snaps[0], snaps[1])}
    return values[warmup:], client, per_call


def measure(data, op, calls, warmup, tag):
    """Server-side ms of `calls` calls (after `warmup` calls), one session, each call its own transaction."""
    try:
        stmts, check = op.make(data, warmup + calls, tag)
        times, _, per_call = timed(stmts, warmup)
        if check and psql(check, check=False) != "t":
            raise CallFailed(f"check failed: {check[:300]}")
    except CallFailed as e:
        error = str(e)
        if "statement timeout" in error:
            TIMED_OUT[op.key] = tag.rsplit("r", 1)[0]
            error = f"a call took over {CALL_TIMEOUT_S} s (statement_timeout)"
        return None, None, error
    return times, per_call, None


TIMED_OUT = {}  # operation key -> the size at which a call took over CALL_TIMEOUT_S


def measure_all(data, cfg, tag, smoke):
    """Every operation, in ROUNDS rounds one after the other (each round a new
    session per operation, with its warm-up calls). An operation's figure is
    the lowest of its round medians, so that a burst of other work on this
    shared machine during one round does not count; the counters are per
    timed call over all rounds."""
    ops = [op for op in OPS if not op.needs or SCHEMA.get(op.needs)]
    results = {op.key: dict(rounds=[], times=[], counters=None, calls=0) for op in ops}
    for op in ops:
        if op.key in TIMED_OUT:
            results[op.key]["error"] = f"not measured: a call took over {CALL_TIMEOUT_S} s at a smaller size"
    for r in range(ROUNDS):
        for op in ops:
            res = results[op.key]
            if "error" in res:
                continue
            calls = 1 if smoke else -(-op.calls // ROUNDS)
            warmup = 1 if smoke else op.warmup
            times, per_call, error = measure(data, op, calls, warmup, f"{tag}r{r}")
            if error:
                res["error"] = error
                print(f"growth:   {op.name}: FAILED: {error[:300]}", flush=True)
                continue
            res["rounds"].append(statistics.median(times))
            res["times"] += times
            res["calls"] += calls
            res["counters"] = {k: (res["counters"] or {}).get(k, 0) + v * calls for k, v in per_call.items()}
    for op in ops:
        res = results[op.key]
        if "error" in res:
            print(f"growth:   {op.name}: FAILED: {res['error'][:300]}", flush=True)
            continue
        res["median"] = min(res["rounds"])
        res["per_call"] = {k: v / res["calls"] for k, v in res["counters"].items()}
        pc = res["per_call"]
        print(f"growth:   {op.name}: {res['median']:.3f} ms (rounds: {', '.join(f'{m:.3f}' for m in res['rounds'])}; "
              f"per call: {pc['hit'] + pc['read']:.0f} buffers, {pc['read']:.1f} read, {pc['wal_bytes'] / 1024:.1f} kB WAL, "
              f"{pc['wal_fpi']:.2f} FPI)", flush=True)
    return results


def identify_throughput(k, tag):
    """Identifies/s in the best of ROUNDS rounds (see identify_round)."""
    best = None
    for r in range(ROUNDS):
        result = identify_round(k, f"{tag}r{r}")
        if "error" in result:
            return result
        best = result if best is None or result["rate"] > best["rate"] else best
    return best


def identify_round(k, tag):
    """k identifies sent one by one from one new connection, each its own
    transaction (commit included), each merging an anonymous profile with 5
    events into a new customer: identifies/s, and the median server time."""
    uids = [str(uuid.uuid4()) for _ in range(k)]
    values = ", ".join(f"({q(u)}, {q(md5_uuid('device-' + u))})" for u in uids)
    psql(f"""SELECT count(cdp.track_event(v.uid, 'pageview', 'view', jsonb_build_object('context', jsonb_build_object(
                 'device_id', v.dev, 'user_agent', {q(AGENTS[0]['user_agent'])}, 'page_url', 'https://shop.example/p/' || j))))
             FROM (VALUES {values}) AS v(uid, dev), generate_series(1, 5) AS j""")
    stmts = []
    for i, u in enumerate(uids):
        email = f"it-{tag}-{i}@example.com"
        attrs = json.dumps({"email": email, "plan": "pro"})
        stmts.append(f"SELECT cdp.identify({q(u)}, {q(md5_hex(email))}, {q(attrs)})")
    try:
        server, client, per_call = timed(stmts, 0, timing=True)
        # The same moment's cost of a commit that does nothing of ours: a one-row INSERT into a plain table.
        plain = psql("\\timing on\n" + "INSERT INTO growth.commit_reference VALUES (1);\n" * 100, check=False)
    except CallFailed as e:
        return dict(error=str(e))
    if len(client) != k:
        return dict(error=f"expected {k} client timings, got {len(client)}")
    plain_ms = statistics.median(float(m) for m in re.findall(r"^Time: ([0-9.]+) ms", plain, re.M))
    return dict(rate=k / (sum(client) / 1000), server_median=statistics.median(server), client_median=statistics.median(client), k=k,
                per_call=per_call, plain_commit=plain_ms)


# ---------------------------------------------------------------- report

def build():
    """Which build is measured: the library the functions load, its size and time."""
    path = LIBRARY.get("path", "")
    try:
        st = os.stat(path)
    except OSError:
        return "build unknown"
    kind = "release build" if st.st_size < 20 * 2**20 else "**debug build**"
    when = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return f"{kind} (library of {when:%Y-%m-%d %H:%M} UTC, {st.st_size / 2**20:.1f} MB, sha256 {digest}…, pinned for the run)"


def machine():
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    version = psql("SHOW server_version", db="postgres")
    settings = psql("SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
                    "WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit', 'wal_level', 'max_wal_size')", db="postgres")
    return dict(cpus=os.cpu_count(), mem=mem, kernel=platform.release(), pg=version, settings=settings, build=build(),
                shared_buffers=psql("SHOW shared_buffers", db="postgres"))


COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
          "#000000", "#393b79", "#008080", "#c51b7d", "#d4a017"]
DASHES = ["", "6,3", "2,2", "8,3,2,3"]


def svg_chart(sizes, series, subtitle):
    """A line chart: x = events (log), y = ratio to the first size (log), one
    line per operation, a dashed line at the 1.5x goal. Plain SVG."""
    import math
    W, H = 1000, 600
    left, right, top, bottom = 80, 640, 70, 520
    xs = [math.log10(s) for s in sizes]
    x0, x1 = xs[0] - 0.12 * (xs[-1] - xs[0]), xs[-1] + 0.08 * (xs[-1] - xs[0])
    values = [v for s in series for v in s["values"] if v]
    lo, hi = min([0.5] + [v / 1.15 for v in values]), max([2.0] + [v * 1.15 for v in values])
    ly0, ly1 = math.log10(lo), math.log10(hi)
    X = lambda v: left + (math.log10(v) - x0) / (x1 - x0) * (right - left)
    Y = lambda r: bottom - (math.log10(r) - ly0) / (ly1 - ly0) * (bottom - top)
    esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="13">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="{left}" y="28" font-size="18" font-weight="bold">Cost per call as the data grows, as a ratio to its cost at {label(sizes[0])} events</text>',
           f'<text x="{left}" y="50" fill="#555">{esc(subtitle)}</text>']
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
             if lo <= t <= hi]
    for t in ticks:
        y = Y(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{t:g}x</text>')
    for s in sizes:
        x = X(s)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 20}" text-anchor="middle">{label(s)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#999"/>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{bottom + 45}" text-anchor="middle">events in the database (log scale)</text>')
    out.append(f'<text transform="translate(22 {(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f'ratio to the cost at {label(sizes[0])} (log scale)</text>')
    out.append(f'<line x1="{left}" y1="{Y(1):.1f}" x2="{right}" y2="{Y(1):.1f}" stroke="#777" stroke-width="1.2"/>')
    out.append(f'<line x1="{left}" y1="{Y(1.5):.1f}" x2="{right}" y2="{Y(1.5):.1f}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="8,5"/>')
    for s in series:
        pts = [(X(size), Y(v)) for size, v in zip(sizes, s["values"]) if v]
        dash = f' stroke-dasharray="{s["dash"]}"' if s["dash"] else ""
        out.append(f'<polyline fill="none" stroke="{s["color"]}" stroke-width="{s["width"]}"{dash} '
                   f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{s["color"]}"/>')
    # the goal's label, over the lines
    out.append(f'<rect x="{left + 4}" y="{Y(1.5) - 19:.1f}" width="136" height="16" fill="#ffffff" fill-opacity="0.9"/>')
    out.append(f'<text x="{left + 8}" y="{Y(1.5) - 6:.1f}" fill="#d62728">goal: at most 1.5x</text>')
    lx, ly = right + 25, top + 5
    out.append(f'<text x="{lx}" y="{ly}" font-weight="bold">at {label(sizes[-1])} events</text>')
    for i, s in enumerate(sorted(series, key=lambda s: -(s["values"][-1] or 0))):
        y = ly + 24 + i * 22
        dash = f' stroke-dasharray="{s["dash"]}"' if s["dash"] else ""
        out.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 30}" y2="{y - 4}" stroke="{s["color"]}" stroke-width="{s["width"]}"{dash}/>')
        out.append(f'<circle cx="{lx + 15}" cy="{y - 4}" r="3.5" fill="{s["color"]}"/>')
        last = s["values"][-1]
        out.append(f'<text x="{lx + 38}" y="{y}">{esc(s["label"])}: {f"{last:.2f}x" if last else s.get("failed", "failed")}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ops_in(results):
    """The operations a run measured (a build without a feature leaves some out)."""
    first = next(iter(results.values()))
    return [op for op in OPS if op.key in first]


def fmt_ms(r):
    if "median" not in r:
        return f"over {CALL_TIMEOUT_S} s" if "took over" in r.get("error", "") else "failed"
    m = r["median"]
    return f"{m:.3f}" if m < 10 else f"{m:.1f}" if m < 1000 else f"{m:,.0f}"


def ratio(r, base):
    if "median" not in r or "median" not in base:
        return None
    return r["median"] / base["median"]


def report(args, cfg, m, sizes, builds, results, throughput, stats, seconds, analyze_seconds, run_at):
    first, last = label(sizes[0]), label(sizes[-1])
    cols = [label(s) for s in sizes] + [f"{last} analyzed"]
    lines = ["## Growth: the same calls as the data grows", "",
             f"Run {run_at} UTC with `bench/growth.sh{' --smoke' if args.smoke else ''}` "
             f"on {m['cpus']} cores, {m['mem']}, Linux {m['kernel']}, PostgreSQL {m['pg']} ({m['settings']}), {m['build']}. "
             f"One database grown step by step to {', '.join(label(s) for s in sizes[:-1])} and {last} events by bulk loads "
             "(set-based INSERT ... SELECT straight into the cdp tables, rows as the API writes them; the generator and its "
             "assumptions are described at the top of `bench/growth.py`): per 20 visitor UIDs (about 5.5 events each), 4 customers "
             "with 8 of the 20 anonymous profiles merged into them (by UID, device id, lead-form email), one customer in 80 with "
             "200 events; one block of 20 visitors in 10 has an undone merge, a shared browser, a match suggestion, a skipped junk id "
             "and erasures. "
             + ("Autovacuum is off on the cdp tables and nothing is analyzed until the last column: every size is measured the way "
                "the database is right after a bulk import, before any ANALYZE. " if not args.autovacuum else
                "Autovacuum runs as configured; nothing else analyzes. ")
             + f"Each figure is the server-side time of one call in ms, each call its own transaction, and in brackets its ratio to the "
             f"same operation at {first} in this run: the calls run in {ROUNDS} rounds (a new session each, with warm-up calls that plan "
             f"the statements first) and the figure is the lowest of the {ROUNDS} round medians, so that a burst of other work on this "
             f"shared machine does not count. The cluster is the one scripts/cluster.sh makes (shared_buffers "
             f"{m['shared_buffers']}; `CDP_SHARED_BUFFERS=6GB bench/growth.sh` changes it): from 1M events on, most of the database "
             f"is outside shared_buffers, in the OS page cache.", ""]
    lines += ["| size | events | UIDs | profiles | merges | identifiers | database | built in | tables analyzed | load average after measuring |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for s in sizes:
        c, b = stats[label(s)], builds[label(s)]
        lines.append(f"| {label(s)} | {c['events']:,} | {c['uids']:,} | {c['profiles']:,} | {c['merges']:,} | {c['identifiers']:,} | "
                     f"{c['database_bytes'] / 2**20:,.0f} MB | {b['seconds']:.1f} s | {c['analyzed'] or 'none'} | {c.get('load', 0):.2f} |")
    total_build = sum(b["seconds"] for b in builds.values())
    lines += ["", f"Building the {last} database took {total_build:.0f} s in all ({builds[last]['seconds']:.0f} s for the last step, "
              f"of which {builds[last]['checkpoint_seconds']:.0f} s the CHECKPOINT after it); the ANALYZE before the last column took "
              f"{analyze_seconds:.1f} s.", ""]
    lines += ["| operation | calls | " + " | ".join(cols) + f" | {last} within 1.5x of {first} |",
              "|---|---:|" + "---:|" * len(cols) + "---|"]
    goal_missed = []
    for op in ops_in(results):
        row = results[first][op.key]
        cells = []
        for col in cols:
            r = results[col][op.key]
            x = ratio(r, row)
            cells.append(fmt_ms(r) if col == first else f"{fmt_ms(r)} ({x:.2f}x)" if x else fmt_ms(r))
        x = ratio(results[last][op.key], row)
        if op.chart:
            verdict = "failed" if x is None else "met" if x <= 1.5 else "**missed**"
            if verdict != "met":
                goal_missed.append(f"{op.name} ({x:.2f}x)" if x else op.name)
        else:
            verdict = "(machine noise)"
        lines.append(f"| {op.name} | {len(row.get('times', []))} | " + " | ".join(cells) + f" | {verdict} |")
    lines += ["", "![growth](bench/growth.svg)", ""]
    size_cols = [label(x) for x in sizes]
    lines += [f"Where the time goes, per timed call (pg_stat_database and pg_stat_wal read by the measuring session before and after "
              f"its timed calls, which adds a few hundred buffers per session): buffers touched (shared_buffers hits + reads) at each "
              f"size; reads (pages not in shared_buffers, from the OS page cache or the disk; extending a table counts as one); WAL "
              f"written and full-page images (the first change of a page after a checkpoint writes the whole page to the WAL; each size "
              f"is measured right after the CHECKPOINT that ends its load). An operation whose buffers stay flat does the same work "
              f"at every size: what grows is the share of its pages that must be read in and written whole.", "",
              "| operation | " + " | ".join(f"buffers {c}" for c in size_cols) + f" | reads {first} → {last} | WAL kB {first} → {last} | "
              f"FPI {first} → {last} | reading |",
              "|---|" + "---:|" * len(size_cols) + "---:|---:|---:|---|"]
    for op in ops_in(results):
        pcs = [results[c][op.key].get("per_call") for c in size_cols]
        if not all(pcs):
            continue
        a, b = pcs[0], pcs[-1]
        lines.append(f"| {op.name} | " + " | ".join(f"{pc['hit'] + pc['read']:,.0f}" for pc in pcs)
                     + f" | {a['read']:,.1f} → {b['read']:,.1f} | {a['wal_bytes'] / 1024:,.1f} → {b['wal_bytes'] / 1024:,.1f} | "
                     f"{a['wal_fpi']:.2f} → {b['wal_fpi']:.2f} | {reading(op, results, size_cols)} |")
    lines += ["", f"### Identify throughput after a bulk import", "",
              f"{cfg['throughput_identifies']} identifies sent one by one from one new connection, each its own transaction "
              "(commit included: synchronous_commit=on, fsync=on), each merging an anonymous profile with 5 events into a new customer; "
              f"the best of {ROUNDS} such rounds. The commit waits for the WAL flush, which other work on this shared machine slows "
              "down: the one-row INSERT into a plain table, timed by the same client right after, shows what a commit cost at that "
              "moment, and the server-side time per call is the steadier figure.", "",
              "| state | identifies/s | median per call, server (ms) | median per call, client incl. commit (ms) | "
              "a one-row INSERT into a plain table, same moment (ms) | WAL kB per identify | FPI per identify | ratio to the first seconds |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = throughput.get("first", {})
    names = {"first": "first seconds: empty tables",
             "bulk": f"{last} events, right after the bulk load (and its CHECKPOINT), before any ANALYZE",
             "later": f"{last} events, after the measurements above, still before any ANALYZE",
             "analyzed": f"{last} events, after ANALYZE"}
    for key, name in names.items():
        t = throughput.get(key, {})
        if "rate" in t:
            pc = t["per_call"]
            lines.append(f"| {name} | {t['rate']:,.0f} | {t['server_median']:.3f} | {t['client_median']:.3f} | {t['plain_commit']:.3f} | "
                         f"{pc['wal_bytes'] / 1024:,.1f} | "
                         f"{pc['wal_fpi']:.2f} | " + (f"{t['rate'] / base['rate']:.2f} |" if "rate" in base else " |"))
        else:
            lines.append(f"| {name} | failed | | | | | | |")
    bulk = throughput.get("bulk", {})
    tp_ratio = bulk["rate"] / base["rate"] if "rate" in bulk and "rate" in base else None
    server_ratio = bulk["server_median"] / base["server_median"] if tp_ratio else None
    lines += ["", "### Goals", "",
              f"- every operation's cost at {last} events within 1.5x of its cost at {first}: "
              + ("met" if not goal_missed else "**missed** by " + ", ".join(goal_missed)),
              f"- identify throughput after a bulk import, before any ANALYZE, within 1.5x of the first seconds': "
              + ("failed" if tp_ratio is None else
                 (f"met ({tp_ratio:.2f} of it" if tp_ratio >= 1 / 1.5 else f"**missed** ({tp_ratio:.2f} of it")
                 + f"; the server-side time per identify is {server_ratio:.2f}x the first seconds'; the client's time also "
                   f"counts the round trip and the commit's wait for the WAL flush)"),
              "", f"The whole run took {seconds:.0f} s (the release build before it not included)."]
    return "\n".join(lines) + "\n", goal_missed, tp_ratio


def reading(op, results, cols):
    """What the counters say about an operation's growth, in a few words."""
    pcs = {c: results[c][op.key]["per_call"] for c in cols}
    buffers = {c: pc["hit"] + pc["read"] for c, pc in pcs.items()}
    first, last = cols[0], cols[-1]
    x = ratio(results[last][op.key], results[first][op.key]) or 0
    grows = buffers[last] / buffers[first]
    notes = []
    worst = max(cols, key=buffers.get)
    if worst != last and buffers[worst] > 1000 and buffers[worst] > 4 * buffers[last]:
        notes.append(f"at {worst} {buffers[worst]:,.0f} buffers per call, {buffers[worst] / buffers[last]:,.0f}x what {last} needs: "
                     f"a plan that reads far more rows than the call uses")
    if grows > 1.5:
        settled = next(c for c in cols if all(0.8 <= buffers[d] / buffers[last] <= 1.25 for d in cols[cols.index(c):]))
        notes.append(f"reads {grows:,.1f}x the buffers of {first} at {last}" + (f", flat from {settled} on" if settled != last else
                     ": the work grows with the data"))
    elif x > 1.5:
        notes.append(f"same work; the extra time is {pcs[last]['read']:,.0f} reads from outside shared_buffers and "
                     f"{pcs[last]['wal_fpi']:.1f} full-page images per call")
    elif not notes:
        notes.append("flat")
    return "; ".join(notes)


def write_section(path, section):
    begin, end = "<!-- growth:begin -->", "<!-- growth:end -->"
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{begin}\n{section}{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few calls; writes into a temporary directory")
    parser.add_argument("--sizes", help="comma-separated event counts (default 10000,100000,1000000,5000000)")
    parser.add_argument("--autovacuum", action="store_true", help="leave autovacuum on for the cdp tables")
    parser.add_argument("--out", help="the Markdown file to write the section into (default BENCHMARKS.md)")
    parser.add_argument("--svg", help="the chart (default bench/growth.svg)")
    parser.add_argument("--results", help="where to save the figures as JSON (default /var/tmp/cdp_identity/growth-results.json)")
    parser.add_argument("--replot", metavar="JSON", help="write the section and the chart again from saved figures, measure nothing")
    args = parser.parse_args()
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.sizes:
        cfg["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    sizes = sorted(cfg["sizes"])
    scratch = tempfile.mkdtemp(prefix="cdp_growth_") if args.smoke else None
    out = args.out or (os.path.join(scratch, "BENCHMARKS.md") if scratch else os.path.join(ROOT, "BENCHMARKS.md"))
    svg = args.svg or (os.path.join(scratch, "growth.svg") if scratch else os.path.join(HERE, "growth.svg"))
    saved = args.results or (os.path.join(scratch, "growth-results.json") if scratch else "/var/tmp/cdp_identity/growth-results.json")
    if args.replot:
        with open(args.replot) as f:
            sys.exit(publish(json.load(f), out, svg))
    started = time.perf_counter()

    builds, results, stats, throughput = {}, {}, {}, {}
    k = cfg["throughput_identifies"]
    print(f"growth: identify throughput on empty tables ({ROUNDS} x {k} identifies)", flush=True)
    setup_database(args.autovacuum)
    throughput["first"] = identify_throughput(k, "first")
    setup_database(args.autovacuum)  # the growth starts from empty tables again
    m = machine()
    data = Data()
    analyze_seconds = 0.0
    for i, size in enumerate(sizes):
        name = label(size)
        print(f"growth: building {name} events", flush=True)
        builds[name] = grow(data, size)
        stats[name] = counts()
        print(f"growth: {name}: {stats[name]['events']:,} events, {stats[name]['uids']:,} UIDs, built in {builds[name]['seconds']:.1f} s "
              f"(checkpoint {builds[name]['checkpoint_seconds']:.1f} s), database {stats[name]['database_bytes'] / 2**20:,.0f} MB, "
              f"analyzed: {stats[name]['analyzed'] or 'none'}", flush=True)
        largest = i == len(sizes) - 1
        if largest:
            print("growth: identify throughput right after the bulk load, before any ANALYZE", flush=True)
            throughput["bulk"] = identify_throughput(k, "bulk")
        print(f"growth: measuring at {name}", flush=True)
        results[name] = measure_all(data, cfg, name, args.smoke)
        stats[name]["load"] = os.getloadavg()[0]
        if largest:
            print("growth: identify throughput after the measurements, still before any ANALYZE", flush=True)
            throughput["later"] = identify_throughput(k, "later")
            t0 = time.perf_counter()
            psql("ANALYZE")
            analyze_seconds = time.perf_counter() - t0
            print(f"growth: ANALYZE took {analyze_seconds:.1f} s; identify throughput after it", flush=True)
            throughput["analyzed"] = identify_throughput(k, "analyzed")
            print(f"growth: measuring at {name}, analyzed", flush=True)
            results[f"{name} analyzed"] = measure_all(data, cfg, f"{name}a", args.smoke)
    for key, t in throughput.items():
        print(f"growth: identify throughput {key}: " + (f"{t['rate']:,.0f}/s, median {t['server_median']:.3f} ms" if "rate" in t else f"FAILED: {t['error']}"))
    run = dict(smoke=args.smoke, autovacuum=args.autovacuum, cfg=cfg, machine=m, sizes=sizes, builds=builds, results=results,
               throughput=throughput, stats=stats, seconds=time.perf_counter() - started, analyze_seconds=analyze_seconds,
               run_at=f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}", timed_out=TIMED_OUT)
    with open(saved, "w") as f:
        json.dump(run, f, indent=1)
    status = publish(run, out, svg)
    if scratch and not (args.out or args.svg or args.results):
        shutil.rmtree(scratch)  # a smoke run leaves nothing behind
    else:
        print(f"growth: the figures are in {saved} (bench/growth.py --replot {saved} writes the report again)")
    sys.exit(status)


def publish(run, out, svg):
    """Writes the section and the chart of a run; returns the exit status."""
    args = argparse.Namespace(smoke=run["smoke"], autovacuum=run["autovacuum"])
    sizes, results, throughput = run["sizes"], run["results"], run["throughput"]
    section, goal_missed, tp_ratio = report(args, run["cfg"], run["machine"], sizes, run["builds"], results, throughput,
                                            run["stats"], run["seconds"], run["analyze_seconds"], run["run_at"])
    first = label(sizes[0])
    series = []
    for i, op in enumerate(ops_in(results)):
        values = [ratio(results[label(s)][op.key], results[first][op.key]) for s in sizes]
        failed = (f"over {CALL_TIMEOUT_S} s a call from {run['timed_out'][op.key]}" if op.key in run["timed_out"] else "failed")
        series.append(dict(label=op.short, values=values, failed=failed,
                           color=COLORS[i % len(COLORS)] if op.chart else "#aaaaaa",
                           dash=DASHES[i % len(DASHES)] if op.chart else "3,3", width=2 if op.chart else 1.5))
    subtitle = (f"median server-side time per call, as the lowest of {ROUNDS} round medians"
                + ("; tables never analyzed" if not args.autovacuum else "")
                + f"; bench/growth.sh, {run['run_at'][:10]}")
    with open(svg, "w") as f:
        f.write(svg_chart(sizes, series, subtitle))
    write_section(out, section)
    print(section)
    print(f"growth: wrote {out} and {svg}")
    passed = failed = 0
    for op in ops_in(results):
        ok = all("median" in results[col][op.key] for col in results)
        passed, failed = passed + ok, failed + (not ok)
        if not ok:
            for col in results:
                if "error" in results[col][op.key]:
                    print(f"growth: FAILED {op.name} at {col}: {results[col][op.key]['error']}")
    ok = all("rate" in t for t in throughput.values())
    passed, failed = passed + ok, failed + (not ok)
    print(f"growth: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
