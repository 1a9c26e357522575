#!/usr/bin/env python3
"""Roles and portals, with real login roles (one connection per role).

Login roles: app (member of cdp_writer), analyst (cdp_reader), ops
(cdp_admin), nobody (no membership), tenant_app (cdp_writer, granted only the
portal 'tenant'), tenant_analyst (cdp_reader, granted only 'tenant').
Every statement below runs as each role inside a transaction that is rolled
back; the test checks that a role gets 42501 exactly where its set ends:
  * writer: tracking, identify, profile_of, the helpers;
  * reader: the read functions, the views, SELECT on the data tables (rows of
    its portals only);
  * admin: everything, including unmerge, erasure, export, review and the
    portal configuration;
  * no membership: 42501 on every function and table;
  * nobody reads a portal's secret; nobody but a superuser changes a limit.
Usage: tests/roles.py (needs the test cluster; see scripts/cluster.sh).
"""
import os
import re
import subprocess
import sys

from cluster_env import env_of_cluster

DB = "cdp_roles"
ROLES = {"app": "cdp_writer", "analyst": "cdp_reader", "ops": "cdp_admin", "nobody": None,
         "tenant_app": "cdp_writer", "tenant_analyst": "cdp_reader"}

SETUP = """
CREATE EXTENSION cdp_identity;
SELECT cdp.track_event('u1', 'pageview', 'view', '{"context": {"device_id": "d1"}}');
SELECT cdp.track_event('u2', 'pageview', 'view', '{"context": {"device_id": "d1"}}');
SELECT cdp.identify('u2', 'c1', '{"name": "Ann"}');
SELECT cdp.create_portal('tenant');
SET cdp.portal = 'tenant';
SELECT cdp.track_event('t1', 'pageview', 'view');
SELECT cdp.identify('t1', 'tc1');
RESET cdp.portal;
"""

# (label, statement, the roles that may run it)
W, R, A = "writer", "reader", "admin"
CALLS = [
    ("track_event", "SELECT cdp.track_event('x1', 'pageview', 'view')", {W, A}),
    ("track_batch", """SELECT cdp.track_batch('[{"uid": "x2", "category": "c", "action": "a"}]')""", {W, A}),
    ("identify", "SELECT cdp.identify('x3', 'cx3')", {W, A}),
    ("identify_outcome", "SELECT cdp.identify_outcome('x4', 'cx4')", {W, A}),
    ("profile_of", "SELECT cdp.profile_of('u1')", {W, R, A}),
    ("identity_hash", "SELECT cdp.identity_hash('c1')", {W, A}),
    ("helpers", "SELECT cdp.md5('a'), cdp.sha256('a'), cdp.normalize_email('a@b.co'), cdp.normalize_phone('+14155550100'), cdp.junk_reason('x'), cdp.new_uid(), cdp.customer_id_for_email('a@b.co')", {W, R, A}),
    ("version", "SELECT cdp.version()", {W, R, A}),
    ("current_portal", "SELECT cdp.current_portal()", {W, R, A}),
    ("cdp.portals", "SELECT count(*) FROM cdp.portals", {W, R, A}),
    ("profile", "SELECT cdp.profile(cdp.root_of(1))", {R, A}),
    ("customer_profile", "SELECT cdp.customer_profile('c1')", {R, A}),
    ("events_of", "SELECT count(*) FROM cdp.events_of(1)", {R, A}),
    ("events_of a page", "SELECT count(*) FROM cdp.events_of(1, NULL, 20, true)", {R, A}),
    ("changes_since", "SELECT count(*) FROM cdp.changes_since(0)", {R, A}),
    ("table identity_changes", "SELECT count(*) FROM cdp.identity_changes", {R, A}),
    ("table install_key", "SELECT count(*) FROM cdp.install_key", set()),
    ("feed_page (internal)", "SELECT count(*) FROM cdp.feed_page(0, 10)", set()),
    ("family_of", "SELECT count(*) FROM cdp.family_of(1)", {R, A}),
    ("profile_at", "SELECT cdp.profile_at('u1', now())", {R, A}),
    ("explain", "SELECT cdp.explain(1)", {R, A}),
    ("cdp.customers", "SELECT count(*) FROM cdp.customers", {R, A}),
    ("cdp.anonymous_profiles", "SELECT count(*) FROM cdp.anonymous_profiles", {R, A}),
    ("table events", "SELECT count(*) FROM cdp.events", {R, A}),
    ("table profiles", "SELECT count(*) FROM cdp.profiles", {R, A}),
    ("table merges", "SELECT count(*) FROM cdp.merges", {R, A}),
    ("insert into events", "INSERT INTO cdp.events (portal, profile_id, uid, category, action, event_time, payload) VALUES ('default', 1, 'u', 'c', 'a', now(), '{}')", set()),
    ("update profiles", "UPDATE cdp.profiles SET system = '{}'", set()),
    ("delete events", "DELETE FROM cdp.events", set()),
    ("portal_secrets", "SELECT * FROM cdp.portal_secrets", set()),
    ("portal_settings", "SELECT * FROM cdp.portal_settings", set()),
    ("lock the identity lock", "SELECT * FROM cdp.portal_settings FOR UPDATE", set()),
    ("export_customer", "SELECT cdp.export_customer('c1')", {A}),
    ("unmerge", "SELECT cdp.unmerge((SELECT 1))", {A}),
    ("forget_uid", "SELECT cdp.forget_uid('u1')", {A}),
    ("forget_customer", "SELECT cdp.forget_customer('c1')", {A}),
    ("accept_suggestion", "SELECT cdp.accept_suggestion(1)", {A}),
    ("reject_suggestion", "SELECT cdp.reject_suggestion(1)", {A}),
    ("create_portal", "SELECT cdp.create_portal('p-new')", {A}),
    ("configure_portal", """SELECT cdp.configure_portal('default', '{"max_batch_items": 10}')""", {A}),
    ("grant_portal", "SELECT cdp.grant_portal('app', 'tenant')", {A}),
    ("revoke_portal", "SELECT cdp.revoke_portal('app', 'tenant')", {A}),
    ("prune_changes", "SELECT cdp.prune_changes(0)", {A}),
    ("clear_shared", "SELECT cdp.clear_shared('device_id', 'd1')", {A}),
    ("cdp.devices", "SELECT count(*) FROM cdp.devices", {R, A}),
    ("table shared_devices", "SELECT count(*) FROM cdp.shared_devices", {R, A}),
    ("SET a limit", "SELECT cdp.md5('loads the library'); SET cdp.max_payload_bytes = '10MB'", set()),
    ("SET a default policy", "SELECT cdp.md5('loads the library'); SET cdp.identity_verification = 'off'", set()),]


def psql(sql, user="postgres", db=DB, check=True):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-U", user, "-d", db, "-v", "VERBOSITY=sqlstate"],
                         input="\\set VERBOSITY sqlstate\n" + sql, capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"roles: psql as {user} failed: {out.stderr}")
    return out


def sqlstate_of(user, statement, portal=None):
    """The SQLSTATE the statement ends with as `user` (None when it succeeds), rolled back."""
    setp = f"SET cdp.portal = '{portal}';\n" if portal else ""
    out = psql(f"BEGIN;\n{setp}{statement};\nROLLBACK;\n", user=user, check=False)
    m = re.search(r"ERROR:\s+([0-9A-Z]{5})", out.stderr)
    return m.group(1) if m else None


def main():
    env_of_cluster()
    admin = ["psql", "-X", "-q", "-d", "postgres"]
    subprocess.run(admin + ["-c", f"DROP DATABASE IF EXISTS {DB}", "-c", f"CREATE DATABASE {DB}"], check=True,
                   env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"), capture_output=True)
    psql(SETUP)
    for role, group in ROLES.items():
        psql(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;" + (f"GRANT {group} TO {role};" if group else ""), db="postgres")
        # 'default' is open to the group roles; a SaaS keeps tenants out of it by
    # taking it back from the groups and granting it to its own roles.
    psql("SELECT cdp.grant_portal('tenant_app', 'tenant'); SELECT cdp.grant_portal('tenant_analyst', 'tenant');"
         "SELECT cdp.revoke_portal('cdp_writer', 'default'); SELECT cdp.revoke_portal('cdp_reader', 'default');"
         "SELECT cdp.grant_portal('app', 'default'); SELECT cdp.grant_portal('analyst', 'default');")
    passed = failed = 0

    def check(ok, label):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok {label}")
        else:
            failed += 1
            print(f"FAILED {label}")

    kind = {"app": W, "analyst": R, "ops": A, "nobody": None}
    for role, rolekind in kind.items():
        wrong = []
        for label, statement, allowed in CALLS:
            state = sqlstate_of(role, statement)
            permitted = rolekind in allowed
            if permitted and state == "42501" or not permitted and state != "42501":
                wrong.append(f"{label}: {'expected to be allowed' if permitted else 'expected 42501'}, got {state or 'success'}")
        check(not wrong, f"{role} ({ROLES[role] or 'no membership'}) can do exactly its set ({len(CALLS)} statements)"
              + "".join(f"\n    {w}" for w in wrong))

    # Portals: granted ones only, closed by default.
    check(sqlstate_of("tenant_app", "SELECT cdp.track_event('tx', 'c', 'a')", portal="tenant") is None,
          "a writer granted the portal 'tenant' tracks in it")
    check(sqlstate_of("app", "SELECT cdp.track_event('tx', 'c', 'a')", portal="tenant") == "42501",
          "a writer not granted 'tenant' gets 42501 there")
    check(sqlstate_of("analyst", "SELECT cdp.customer_profile('tc1')", portal="tenant") == "42501",
          "a reader not granted 'tenant' gets 42501 from the read functions there")
    rows = psql("SELECT string_agg(DISTINCT portal, ',' ORDER BY portal) FROM cdp.events", user="tenant_analyst").stdout.strip()
    check(rows == "tenant", f"row-level security: a reader of 'tenant' sees only its rows in cdp.events ({rows!r})")
    rows = psql("SELECT string_agg(DISTINCT portal, ',' ORDER BY portal) FROM cdp.customers", user="analyst").stdout.strip()
    check(rows == "default", f"a reader of 'default' sees only 'default' customers in cdp.customers ({rows!r})")
    rows = psql("SELECT string_agg(DISTINCT portal, ',' ORDER BY portal) FROM cdp.events", user="ops").stdout.strip()
    check(rows == "default,tenant", f"an admin reads every portal ({rows!r})")
    rows = psql("SELECT string_agg(portal, ',' ORDER BY portal) FROM cdp.portals", user="tenant_app").stdout.strip()
    check(rows == "tenant", f"cdp.portals lists the caller's portals only ({rows!r})")
    psql("SELECT cdp.revoke_portal('tenant_app', 'tenant')")
    check(sqlstate_of("tenant_app", "SELECT cdp.track_event('tx', 'c', 'a')", portal="tenant") == "42501",
          "after cdp.revoke_portal the role gets 42501 (the cache follows the change)")
    check(sqlstate_of("ops", "SELECT cdp.grant_portal('no_such_role', 'tenant')") == "42704", "granting to an unknown role: 42704")
    out = psql("SET cdp.max_payload_bytes = '100MB'; SELECT cdp.track_event('big', 'c', 'a', jsonb_build_object('x', repeat('y', 2000000)))",
               user="app", check=False)
    check("54000" in out.stderr, "a limit SET before the library loads is ignored: the server's 1MB still applies")
    check(sqlstate_of("ops", "SELECT cdp.revoke_portal('cdp_admin', 'tenant')") == "22023", "cdp_admin cannot lose a portal")
    psql("SELECT cdp.grant_portal('cdp_writer', 'default')")
    check(sqlstate_of("tenant_app", "SELECT cdp.track_event('back', 'c', 'a')") is None, "granting 'default' back to cdp_writer reopens it")
    # The secret is write-only.
    psql("""SELECT cdp.configure_portal('tenant', '{"identity_secret": "tenant-secret-0123456789"}')""")
    leaks = [r for r in ("app", "analyst", "ops")
             for s in ("SELECT * FROM cdp.portals", "SELECT cdp.export_customer('tc1')", "SELECT * FROM cdp.portal_secrets")
             if "tenant-secret" in psql(f"SET cdp.portal = 'tenant'; {s}", user=r, check=False).stdout]
    check(not leaks, f"no role reads the identity secret through views, exports or tables ({leaks})")
    # The key of the erasure hashes: no role reads it, so nobody can test candidate emails against them.
    readers = [r for r in ("app", "analyst", "ops") if sqlstate_of(r, "SELECT key FROM cdp.install_key") != "42501"]
    check(not readers, f"no role reads the install key of the erasure hashes ({readers or 'each gets 42501'})")
    for role in ROLES:
        psql(f"DROP OWNED BY {role}; DROP ROLE {role};", db=DB, check=False)
        psql(f"DROP ROLE IF EXISTS {role};", db="postgres", check=False)
    subprocess.run(admin + ["-c", f"DROP DATABASE IF EXISTS {DB}"], capture_output=True)
    print(f"roles: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
