-- Roles, privileges and the settings every function pins. Runs last in the
-- install script, once every function exists.
--
-- Three NOLOGIN group roles (created when missing; roles belong to the whole
-- server, so a second database reuses them):
--   cdp_writer  tracks and identifies: track_event, track_batch, identify, profile_of;
--   cdp_reader  reads: the read functions, the views, and SELECT on the data
--               tables, row-level security limiting every row to the portals it may use;
--   cdp_admin   everything: it is a member of both, and runs unmerge, erasure,
--               export, suggestion review and the portal configuration.
-- A DBA grants them to login roles: GRANT cdp_writer TO app_backend.
--
-- Why SECURITY DEFINER is safe here: every function runs as the extension's
-- owner with search_path pinned to pg_catalog, pg_temp and names every
-- object schema-qualified; no statement is built from input; each function
-- checks the caller's portal (cdp.current_portal) before it reads or
-- writes. So a caller needs no table privilege and cannot reach a table or a
-- portal the function would not show it. PUBLIC gets nothing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cdp_writer') THEN
        CREATE ROLE cdp_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cdp_reader') THEN
        CREATE ROLE cdp_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cdp_admin') THEN
        CREATE ROLE cdp_admin NOLOGIN;
    END IF;
END
$$;
GRANT cdp_writer, cdp_reader TO cdp_admin;

REVOKE ALL ON SCHEMA cdp FROM PUBLIC;
GRANT USAGE ON SCHEMA cdp TO cdp_writer, cdp_reader, cdp_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA cdp FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cdp FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cdp FROM PUBLIC;

-- The write functions run the same few statements over and over: plan them
-- once per backend (generic plans) instead of planning identify's larger
-- statements again for every call. Every lookup in them is by key.
ALTER FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.track_batch(jsonb, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.identify(text, text, jsonb, text, timestamptz, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.identify_outcome(text, text, jsonb, text, timestamptz, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.unmerge(bigint, boolean, text) SET plan_cache_mode = force_generic_plan;

-- Every function runs as the owner, with the settings it relies on pinned:
-- * search_path: see above;
-- * jit = off: no statement of the extension is ever JIT-compiled. They are
--   short OLTP statements (key lookups, single-row writes) that run in
--   microseconds, and JIT compilation costs milliseconds per statement: when
--   a generic plan's estimate crosses jit_above_cost (tables grown but not
--   analyzed yet, right after a bulk import), every call would compile again,
--   a 26x slowdown. Pinned on the functions, it covers the statements they
--   run, foreign-key checks included, whatever the session sets.
DO $$
DECLARE f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS fn, p.prorettype = 'trigger'::regtype AS is_trigger
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'cdp'::regnamespace AND p.prokind = 'f' LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET jit = off', f.fn);
        IF NOT f.is_trigger THEN
            EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', f.fn);
        END IF;
    END LOOP;
END
$$;
-- Helpers that read no data: every group role.
GRANT EXECUTE ON FUNCTION cdp.md5(text), cdp.sha256(text), cdp.normalize_email(text), cdp.normalize_phone(text, text), cdp.customer_id_for_email(text),
    cdp.junk_reason(text), cdp.new_uid(), cdp.current_portal(text), cdp.usable_portals(), cdp.version()
    TO cdp_writer, cdp_reader, cdp_admin;

GRANT EXECUTE ON FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz, text), cdp.track_batch(jsonb, text), cdp.identity_hash(text, text),
    cdp.identify(text, text, jsonb, text, timestamptz, text), cdp.identify_outcome(text, text, jsonb, text, timestamptz, text), cdp.profile_of(text, text)
    TO cdp_writer;

GRANT EXECUTE ON FUNCTION cdp.profile_of(text, text), cdp.root_of(bigint, text), cdp.family_of(bigint, text), cdp.profile(bigint, text),
    cdp.customer_profile(text, text), cdp.events_of(bigint, bigint, integer, boolean, text), cdp.profile_at(text, timestamptz, text), cdp.explain(bigint, text),
    cdp.changes_since(bigint, integer)
    TO cdp_reader;
GRANT SELECT ON cdp.customers, cdp.anonymous_profiles, cdp.devices TO cdp_reader;
GRANT SELECT ON cdp.portals TO cdp_writer, cdp_reader;

GRANT EXECUTE ON FUNCTION cdp.unmerge(bigint, boolean, text), cdp.forget_customer(text, text), cdp.forget_uid(text, text),
    cdp.export_customer(text, text), cdp.accept_suggestion(bigint, text), cdp.reject_suggestion(bigint, text),
    cdp.create_portal(text, jsonb), cdp.configure_portal(text, jsonb), cdp.grant_portal(text, text), cdp.revoke_portal(text, text),
    cdp.prune_changes(bigint, text), cdp.clear_shared(text, text, text)
    TO cdp_admin;

-- Data people query the tables directly: cdp_reader may SELECT them, and
-- row-level security shows it the rows of the portals it may use. The
-- functions run as the owner, who is not subject to these policies (the
-- portal checks are in the functions). Portal settings, secrets and grants
-- are not readable (cdp.portals shows what may be shown).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['profiles', 'uids', 'events', 'identifiers', 'profile_attributes', 'merges', 'merge_blocks',
                             'identify_skips', 'match_suggestions', 'erasures', 'erased_uids', 'identity_changes',
                             'identified_on', 'shared_devices', 'profile_signals', 'signal_counts'] LOOP
        EXECUTE pg_catalog.format('ALTER TABLE cdp.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE pg_catalog.format(
            'CREATE POLICY usable_portals ON cdp.%I FOR SELECT TO cdp_reader USING (portal IN (SELECT cdp.usable_portals()))', t);
        EXECUTE pg_catalog.format('GRANT SELECT ON cdp.%I TO cdp_reader', t);
    END LOOP;
END
$$;
