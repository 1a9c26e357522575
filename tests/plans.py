#!/usr/bin/env python3
"""No JIT, no plan flips: every statement the public functions run keeps an
index plan as the tables grow, and none is ever JIT-compiled.

How: the calls below run with auto_explain (nested statements, JSON plans,
sent to the client as NOTICEs) in a session where JIT is forced on for every
statement (jit_above_cost = 0). The test fails when
  * any statement run inside a public function was JIT-compiled (the
    functions pin jit = off; a control query in the same session proves JIT
    is available and would be seen), or
  * a statement of the hot paths (tracking, identify, the reads, unmerge,
    export and erasure) plans a sequential scan on one of the extension's
    tables, or an index scan for `customer_id IS NULL` (every anonymous
    profile: a scan in disguise, estimated at one row on unanalyzed tables).

The tables are grown to realistic statistics by loading data (40,000 visitors
with a device each, 8,000 customers, half of the visitors merged, 2,000
undone merges, 20,000 predicted matches, 10,000 devices identified on and 1,000 shared, 5,000 erased UIDs, 400,000 events, 500 portals), with autovacuum off, like a fresh install under load or right after a
bulk import. Three states are checked, each the way a real backend meets it:
  1. plans made while the tables were empty, kept by the backend and used
     after the growth (nothing invalidates them until an ANALYZE);
  2. plans made by a new backend on the grown tables before any ANALYZE
     (estimates from page counts only: how the JIT cliff happened);
  3. plans made after ANALYZE.
Usage: tests/plans.py (needs the test cluster; see scripts/cluster.sh).
"""
import json
import os
import re
import subprocess
import sys

from cluster_env import env_of_cluster

DB = "cdp_plans"
TABLES = ("profiles", "uids", "events", "identifiers", "profile_attributes", "merges", "merge_blocks",
          "identify_skips", "match_suggestions", "erasures", "erased_uids")

# Tables of one row by design, where a scan is the right plan.
ONE_ROW = {"install_key"}
# Statements that list a whole small table on purpose: every portal (for a superuser's change feed).
LISTINGS = ("SELECT portal FROM cdp.portal_settings UNION SELECT 'default'",)

# Profile ids from 100,001 up, clear of the profiles the first round made.
GROW = """
-- a SaaS with 500 portals (the test's calls work in 'default')
INSERT INTO cdp.portal_settings (portal, settings) SELECT 'shop-' || g, '{"max_batch_items": 500}' FROM generate_series(1, 500) g;
INSERT INTO cdp.portal_settings (portal) VALUES ('default') ON CONFLICT DO NOTHING;
INSERT INTO cdp.portal_secrets (portal, identity_secret) SELECT 'shop-' || g, md5(g::text) || md5(g::text) FROM generate_series(1, 500) g;
INSERT INTO cdp.portal_grants (portal, role, granted) SELECT 'shop-' || g, 'tenant_' || g, true FROM generate_series(1, 500) g;
INSERT INTO cdp.profiles (portal, profile_id, customer_id, identified_at, created_at)
SELECT 'default', 100000 + g, 'gc-' || g, now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, 8000) g;
INSERT INTO cdp.profiles (portal, profile_id, merged_into, merged_at, system, system_at)
SELECT 'default', 108000 + g, CASE WHEN g % 2 = 0 THEN 100001 + g % 8000 END, CASE WHEN g % 2 = 0 THEN now() END,
       jsonb_build_object('user_agent', 'UA-' || g % 50, 'ip', '10.0.' || g % 200 || '.' || g % 250,
                          'device_id', 'g-dev-' || g), now() - interval '2 days'
FROM generate_series(1, 40000) g;
SELECT setval('cdp.profiles_profile_id_seq', 148000);
INSERT INTO cdp.uids (portal, uid, profile_id, last_device_id) SELECT 'default', 'g-uid-' || g, 108000 + g, 'g-dev-' || g FROM generate_series(1, 40000) g;
INSERT INTO cdp.identifiers (portal, kind, value, profile_id, trusted) SELECT 'default', 'device_id', 'g-dev-' || g, 108000 + g, true FROM generate_series(1, 40000) g;
INSERT INTO cdp.identifiers (portal, kind, value, profile_id, trusted) SELECT 'default', 'email', 'g' || g || '@example.com', 100000 + g, true FROM generate_series(1, 8000) g;
INSERT INTO cdp.identifiers (portal, kind, value, profile_id, trusted) SELECT 'default', 'identify_id', 'gc-' || g, 100000 + g, true FROM generate_series(1, 8000) g;
INSERT INTO cdp.merges (portal, kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time)
SELECT 'default', 'merge', 108000 + g, 100001 + g % 8000, 'uid', 'g-uid-' || g, 'g-uid-' || g, 'exact', now() - interval '1 day'
FROM generate_series(2, 40000, 2) g;
-- operators undid some merges: 2,000 remembered decisions
INSERT INTO cdp.merges (portal, kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time, undone_at)
SELECT 'default', 'merge', 108000 + g, 100001 + g % 8000, 'device_id', 'g-dev-' || g, 'g-uid-' || g, 'exact', now() - interval '1 day', now()
FROM generate_series(1, 40000, 20) g;
INSERT INTO cdp.merge_blocks (portal, from_profile, into_profile, evidence, merge_id)
SELECT 'default', from_profile, into_profile, ARRAY['device_id:' || evidence], merge_id FROM cdp.merges WHERE undone_at IS NOT NULL AND reason = 'device_id';
-- the change feed of those decisions
-- (each decision in its own transaction, as identifies are: the xid is set by hand)
INSERT INTO cdp.identity_changes (portal, kind, profile_id, customer_profile, customer_id, merge_id, xact_id)
SELECT 'default', 'merge', m.from_profile, m.into_profile, 'gc-' || (m.into_profile - 100000), m.merge_id, (3 + m.merge_id)::text::xid8
FROM cdp.merges m;
-- where customers signed in (10,000 devices and UIDs), 1,000 devices found shared
INSERT INTO cdp.identified_on (portal, kind, value, customer_profile, first_at, last_at)
SELECT 'default', k, CASE k WHEN 'device_id' THEN 'g-dev-' ELSE 'g-uid-' END || g, 100001 + g % 8000, now() - interval '2 days', now() - interval '1 day'
FROM generate_series(1, 40000, 4) g, unnest(ARRAY['device_id', 'uid']) k;
INSERT INTO cdp.shared_devices (portal, kind, value, detected_at, evidence)
SELECT 'default', 'device_id', 'g-dev-' || g, now() - interval '1 day', '{"customers": 2}' FROM generate_series(20003, 40000, 20) g;
UPDATE cdp.uids SET shared = true WHERE portal = 'default' AND last_device_id IN (SELECT value FROM cdp.shared_devices);
-- the visitors' signals for predicted matching, and how common each value is
INSERT INTO cdp.profile_signals (portal, profile_id, signal, value, seen_at)
SELECT 'default', 108000 + g, k.signal, k.value, now() - interval '2 days'
FROM generate_series(1, 40000) g,
     LATERAL (VALUES ('device_id', 'g-dev-' || g), ('user_agent', 'UA-' || g % 50), ('ip_network', '10.0.' || g % 200)) AS k(signal, value);
INSERT INTO cdp.signal_counts (portal, signal, value, day, profiles)
SELECT portal, signal, v.value, (seen_at AT TIME ZONE 'UTC')::date, count(*)
FROM cdp.profile_signals, LATERAL (VALUES (value), ('*')) AS v(value) WHERE profile_id > 108000 GROUP BY 1, 2, 3, 4
ON CONFLICT (portal, signal, value, day) DO UPDATE SET profiles = cdp.signal_counts.profiles + excluded.profiles;
-- predicted matches waiting for review or rejected: 20,000
INSERT INTO cdp.match_suggestions (portal, profile_id, customer_profile, probability, signals, status)
SELECT 'default', 108000 + g, 100001 + g % 8000, 0.7, '{}', CASE WHEN g % 3 = 0 THEN 'rejected' ELSE 'open' END
FROM generate_series(1, 40000, 2) g;
INSERT INTO cdp.profile_attributes (portal, profile_id, key, value, set_at, source)
SELECT 'default', 100000 + g, k, to_jsonb('v' || g), now() - interval '1 day', 'identify'
FROM generate_series(1, 8000) g, unnest(ARRAY['name', 'plan', 'email']) k;
INSERT INTO cdp.identify_skips (portal, uid, field, value, reason)
SELECT 'default', 'g-uid-' || g, 'attributes.email', 'x', 'not a usable email address' FROM generate_series(1, 40000, 20) g;
INSERT INTO cdp.erasures (portal, erasure_id, kind, subject_hash, counts)
SELECT 'default', 100 + g, 'uid', md5(g::text), '{}' FROM generate_series(1, 2000) g;
SELECT setval('cdp.erasures_erasure_id_seq', 2100);
INSERT INTO cdp.erased_uids (portal, uid_hash, erasure_id) SELECT 'default', encode(sha256(('erased-' || g)::bytea), 'hex'), 101 + g % 2000 FROM generate_series(1, 5000) g;
INSERT INTO cdp.events (portal, profile_id, uid, category, action, event_time, session_id, message_id, payload)
SELECT 'default', 108001 + g % 40000, 'g-uid-' || (1 + g % 40000), 'pageview', 'view', now() - interval '2 days' + g * interval '10 ms',
       's' || g / 10, 'gm-' || g, '{"context": {"page_url": "https://shop.example/p"}}'
FROM generate_series(1, 400000) g;
"""

SESSION = """
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET auto_explain.log_verbose = on;
SET auto_explain.log_format = json;
SET auto_explain.log_level = notice;
SET jit = on;
SET jit_above_cost = 0;
SET jit_inline_above_cost = 0;
SET jit_optimize_above_cost = 0;
SET client_min_messages = notice;
"""


def calls(r):
    """The public calls of one round (r makes new UIDs and customers unique)."""
    ctx = lambda dev, msg: json.dumps({"context": {"device_id": dev, "message_id": msg, "user_agent": "Mozilla/5.0 Firefox/115.0"}})
    sign_in = json.dumps({"dims": {"customers": {"customer_id": f"sc-{r}", "email": f"s{r}@example.com", "name": "S"}},
                          "extra": {"identify_id": f"sc-{r}", "identify_time": "2026-11-30T10:00:00Z"},
                          "context": {"device_id": f"g-dev-{101 + 2 * r}"}})
    batch_views = json.dumps([{"uid": f"g-uid-{301 + i}", "category": "pageview", "action": "view",
                               "payload": {"context": {"device_id": f"g-dev-{301 + i}", "message_id": f"bv-{r}-{i}"}}} for i in range(20)])
    batch_mixed = json.dumps([
        {"uid": f"bn-{r}", "category": "pageview", "action": "view", "payload": {"context": {"device_id": f"bn-dev-{r}"}}},
        {"uid": f"g-uid-{401 + r}", "category": "form", "action": "submit", "payload": {"dims": {"customers": {"email": f"lead{r}@example.com"}}}},
        {"uid": f"g-uid-{501 + 2 * r}", "category": "user", "action": "sign_in",
         "payload": {"dims": {"customers": {"customer_id": f"bc-{r}"}}, "context": {"device_id": f"g-dev-{501 + 2 * r}"}}},
    ])
    q = lambda s: "'" + s.replace("'", "''") + "'"
    hot = [
        ("track_event known UID", f"SELECT cdp.track_event('g-uid-{201 + r}', 'pageview', 'view', {q(ctx(f'g-dev-{201 + r}', f'k-{r}'))})"),
        ("track_event retry", f"SELECT cdp.track_event('g-uid-{201 + r}', 'pageview', 'view', {q(ctx(f'g-dev-{201 + r}', f'k-{r}'))})"),
        ("track_event new UID", f"SELECT cdp.track_event('new-{r}', 'pageview', 'view', {q(ctx(f'new-dev-{r}', f'n-{r}'))})"),
        ("track_event on a shared device", f"SELECT cdp.track_event('g-uid-{20003 + 20 * r}', 'pageview', 'view', '{{\"context\": {{\"session_id\": \"new-{r}\"}}}}')"),
        ("track_event new device", f"SELECT cdp.track_event('g-uid-{211 + r}', 'pageview', 'view', {q(ctx(f'other-dev-{r}', f'o-{r}'))})"),
        ("track_event lead form", f"SELECT cdp.track_event('g-uid-{221 + r}', 'form', 'submit', '{{\"dims\": {{\"customers\": {{\"phone\": \"+84 90 555 {1000 + r}\"}}}}}}')"),
        ("track_event sign-in", f"SELECT cdp.track_event('g-uid-{101 + 2 * r}', 'user', 'sign_in', {q(sign_in)})"),
        ("track_batch page views", f"SELECT cdp.track_batch({q(batch_views)})"),
        ("track_batch mixed", f"SELECT cdp.track_batch({q(batch_mixed)})"),
        ("identify new customer", f"SELECT cdp.identify('ni-{r}', 'nc-{r}', '{{\"plan\": \"free\"}}')"),
        ("identify known customer with merges", f"SELECT cdp.identify('g-uid-{601 + 2 * r}', 'gc-{7000 + r}', '{{\"email\": \"g{7000 + r}@example.com\"}}')"),
        ("identify repeat", f"SELECT cdp.identify('g-uid-{601 + 2 * r}', 'gc-{7000 + r}')"),
        ("identify merging a new visitor", f"SELECT cdp.identify('new-{r}', 'nm-{r}')"),
        ("identify shared browser", f"SELECT cdp.identify('g-uid-{601 + 2 * r}', 'gc-{7100 + r}')"),
        ("profile_of", f"SELECT cdp.profile_of('g-uid-{701 + r}')"),
        ("profile", f"SELECT cdp.profile(cdp.profile_of('g-uid-{702 + 2 * r}'))"),
        ("customer_profile", f"SELECT cdp.customer_profile('gc-{10 + r}')"),
        ("events_of", f"SELECT count(*) FROM cdp.events_of(cdp.profile_of('g-uid-{704 + 2 * r}'))"),
        ("events_of a page", f"SELECT count(*) FROM cdp.events_of(cdp.profile_of('g-uid-{704 + 2 * r}'), NULL, 20, true)"),
        ("identify_outcome", f"SELECT cdp.identify_outcome('g-uid-{731 + 2 * r}', 'gc-{7200 + r}')"),
        ("changes_since", "SELECT count(*) FROM cdp.changes_since(0, 100)"),
        ("root_of / family_of", f"SELECT cdp.root_of(cdp.profile_of('g-uid-{708 + r}')), (SELECT count(*) FROM cdp.family_of(cdp.profile_of('g-uid-{710 + 2 * r}')))"),
        ("profile_at", f"SELECT cdp.profile_at('g-uid-{706 + 2 * r}', now())"),
        ("explain", f"SELECT cdp.explain(cdp.profile_of('g-uid-{720 + 2 * r}'))"),
        ("unmerge", f"SELECT cdp.unmerge((SELECT max(merge_id) FROM cdp.merges WHERE kind = 'merge' AND undone_at IS NULL), cascade => true)"),
        # Erasure and export find every row by index too (erasure never scans events).
        ("erasure subjects", f"SELECT cdp.track_event('g-uid-{901 + r}', 'pageview', 'view'), cdp.identify('g-uid-{951 + r}', 'gc-{30 + r}')"),
        ("export_customer", f"SELECT cdp.export_customer('gc-{20 + r}')"),
        ("forget_uid", f"SELECT cdp.forget_uid('g-uid-{901 + r}')"),
        ("forget_uid of a shared browser", f"SELECT cdp.forget_uid('g-uid-{601 + 2 * r}')"),
        ("forget_customer", f"SELECT cdp.forget_customer('gc-{30 + r}')"),
        # Predicted matching finds its candidates by index, a bounded number per signal value.
        ("identify predict", f"SELECT cdp.identify('g-uid-{801 + 2 * r}', 'pc-{r}', '{{}}', 'predict')"),
    ]
    jit_only = [
        ("helpers", "SELECT cdp.md5('a'), cdp.sha256('a'), cdp.normalize_email('A@b.co'), cdp.normalize_phone('+1 415 555 0100'), cdp.junk_reason('null'), cdp.new_uid()"),
    ]
    if r == 0:
        # Round 0 runs on empty tables, before the fixtures exist: other names, so the growth does not collide.
        rename = lambda sql: sql.replace("gc-", "ec-").replace("g-uid-", "e-uid-").replace("g-dev-", "e-dev-").replace("@example", "@empty.example")
        hot, jit_only = [(l, rename(q)) for l, q in hot], [(l, rename(q)) for l, q in jit_only]
    return hot, jit_only


def psql(sql, capture=True):
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB], input=sql, text=True,
                         capture_output=capture, env=env)
    if out.returncode != 0:
        sys.exit(f"plans: psql failed: {out.stderr[-3000:]}")
    return out


def explained(script):
    """Runs the script in one session; returns [(marker, plan json)] in order."""
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB], input=script, text=True,
                         capture_output=True)
    if out.returncode != 0:
        sys.exit(f"plans: a call failed: {out.stderr[-3000:]}")
    decoder = json.JSONDecoder()
    found = []
    text = out.stderr
    for m in re.finditer(r"NOTICE:  (?:marker (.*)|duration: [0-9.]+ ms  plan:\n)", text):
        if m.group(1) is not None:
            found.append((m.group(1), None))
            continue
        plan, _ = decoder.raw_decode(text, m.end())
        found.append((None, plan))
    return found


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def round_script(r, hot, jit_only):
    lines = [SESSION]
    for label, sql in hot + jit_only:
        lines.append(f"DO $m$ BEGIN RAISE NOTICE 'marker {label}'; END $m$;")
        lines.append(sql + ";")
    lines.append("DO $m$ BEGIN RAISE NOTICE 'marker control'; END $m$;")
    lines.append("SELECT sum(g) FROM generate_series(1, 1000) g;")
    return "\n".join(lines)


PARTIAL = set()  # the extension's partial indexes (filled by main)


def index_columns():
    """{index name: [its key columns, in order]} for the extension's indexes."""
    out = psql("\\pset tuples_only on\n\\pset format unaligned\nSELECT c.relname, string_agg(a.attname, ',' ORDER BY k.n) FROM pg_index i "
               "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace "
               "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
               "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
               "WHERE ns.nspname = 'cdp' GROUP BY c.relname").stdout
    return {name: cols.split(",") for name, cols in (line.split("|") for line in out.splitlines() if line)}


def skipped_leading_column(node, columns):
    """The index columns an index scan constrains after one it leaves free, if any."""
    cond = node.get("Index Cond")
    cols = columns.get(node.get("Index Name"))
    if not cond or not cols or "= ANY ('{}'" in cond:
        return None  # (a condition on an empty array: the scan reads nothing)
    constrained = set(re.findall(r"\((?:\w+\.)?(\w+) (?:=|<|>|<=|>=|~~|IS) ", cond))
    leading = 0
    while leading < len(cols) and cols[leading] in constrained:
        leading += 1
    later = [c for c in cols[leading:] if c in constrained]
    if later:
        return f"{node['Index Name']} ({', '.join(cols)}) constrains {', '.join(later)} but not {cols[leading]}"
    # (a partial index holds only the rows of its predicate, a subset the planner costs)
    if leading == 1 and cols[0] == "portal" and len(cols) > 1 and node.get("Index Name") not in PARTIAL:
        return f"{node['Index Name']} ({', '.join(cols)}) constrains the portal only: every row of the portal"
    return None


def check(state, found, hot_labels, top_level, failures, columns):
    label = None
    jit_seen_in_control = False
    for marker, plan in found:
        if marker is not None:
            label = marker
            continue
        text = plan.get("Query Text", "")
        jit = "JIT" in plan
        if label == "control":
            jit_seen_in_control |= jit
            continue
        if " ".join(text.split()).rstrip(";") in top_level:
            continue  # the test's own statement, outside the functions (JIT is forced on in this session)
        if jit:
            failures.append(f"{state}: {label}: JIT-compiled: {text.strip()[:160]}")
        if label in hot_labels:
            for node in nodes(plan["Plan"]):
                # An index scan for `customer_id IS NULL` reads every anonymous profile: a scan in disguise.
                if "customer_id IS NULL" in node.get("Index Cond", ""):
                    failures.append(f"{state}: {label}: index scan of every anonymous profile ({node['Index Name']}) in: {' '.join(text.split())[:200]}")
                skipped = skipped_leading_column(node, columns)
                if skipped:
                    failures.append(f"{state}: {label}: an index range scan: {skipped} ({node['Node Type']}: {node['Index Cond']}"
                                    f"{'; filter ' + node['Filter'] if node.get('Filter') else ''}), in: {' '.join(text.split())[:200]}")
                if node.get("Node Type") == "Seq Scan" and node.get("Schema") == "cdp" and node["Relation Name"] not in ONE_ROW \
                        and not any(text.lstrip().startswith(listing) for listing in LISTINGS):
                    failures.append(f"{state}: {label}: Seq Scan on cdp.{node['Relation Name']} in: {' '.join(text.split())[:200]}")
    return jit_seen_in_control


def connect_to_test_cluster():
    env_of_cluster()


def main():
    connect_to_test_cluster()
    admin = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(admin + ["-c", f"DROP DATABASE IF EXISTS {DB}", "-c", f"CREATE DATABASE {DB}"], check=True, env=env)
    psql("CREATE EXTENSION cdp_identity;" + "".join(f"ALTER TABLE cdp.{t} SET (autovacuum_enabled = off);" for t in TABLES))
    passed = failed = 0
    states = []

    # State 1: one backend plans on empty tables, the tables grow meanwhile, the same backend goes on.
    hot0, jit0 = calls(0)
    hot1, jit1 = calls(1)
    script = round_script(0, hot0, []) + "\nSET auto_explain.log_min_duration = -1; SET jit = off;\nDO $m$ BEGIN RAISE NOTICE 'marker grown'; END $m$;\n" + GROW + round_script(1, hot1, jit1)
    found = explained(script)
    after = found[[i for i, (m, _) in enumerate(found) if m == "grown"][0] + 1:]
    states.append(("plans kept from empty tables, used on grown ones", after, {h for h, _ in hot1}))

    # State 2: a new backend on grown tables that were never analyzed.
    hot2, jit2 = calls(2)
    states.append(("grown tables, no statistics yet", explained(round_script(2, hot2, jit2)), {h for h, _ in hot2}))

    # State 3: after ANALYZE.
    psql("ANALYZE;")
    hot3, jit3 = calls(3)
    states.append(("grown tables, analyzed", explained(round_script(3, hot3, jit3)), {h for h, _ in hot3}))

    top_level = {" ".join(sql.split()) for r in range(4) for part in calls(r) for _, sql in part}
    columns = index_columns()
    PARTIAL.update(psql("\\pset tuples_only on\n\\pset format unaligned\nSELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                        "WHERE c.relnamespace = 'cdp'::regnamespace AND i.indpred IS NOT NULL").stdout.split())
    for state, found, hot_labels in states:
        failures = []
        control = check(state, found, hot_labels, top_level, failures, columns)
        statements = sum(1 for m, p in found if p is not None)
        if not control:
            failures.append(f"{state}: the control query was not JIT-compiled: JIT is unavailable, the test proves nothing")
        if failures:
            failed += 1
            print(f"FAILED {state} ({statements} statements explained):")
            for f in failures:
                print("    " + f)
        else:
            passed += 1
            print(f"ok {state}: {statements} statements explained, none JIT-compiled, no sequential or index range scan on the hot paths")
    subprocess.run(admin + ["-c", f"DROP DATABASE IF EXISTS {DB}"], env=env)
    print(f"plans: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
