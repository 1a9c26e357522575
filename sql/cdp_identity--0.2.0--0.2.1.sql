-- cdp_identity 0.2.0 -> 0.2.1
--
-- Every release has its own library file (see README, Upgrades): the
-- functions of 0.2.0 move to this release's, unchanged otherwise.
DO $$
DECLARE f oid;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'cdp'::regnamespace AND p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'c') LOOP
        EXECUTE pg_catalog.replace(pg_catalog.pg_get_functiondef(f), 'AS ''cdp_identity-0.2.0'',', 'AS ''cdp_identity-0.2.1'',');
    END LOOP;
END
$$;

-- The change feed's decision records are planned per call: 0.2.0 kept a plan
-- that, made while the tables were empty, could read every merge of the portal
-- to find one (the ORDER BY meant to steer it did not always).
CREATE OR REPLACE FUNCTION cdp.record_decision(portal text, merge_id bigint, undone boolean) RETURNS void
-- (custom plans: on empty tables every index of the portal costs the same, and
-- a kept plan could read every merge of the portal to find one)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    INSERT INTO cdp.identity_changes (portal, kind, profile_id, customer_profile, customer_id, merge_id, detail)
    SELECT m.portal,
           CASE WHEN NOT undone THEN m.kind WHEN m.kind = 'merge' THEN 'unmerge' ELSE 'uid_restored' END,
           CASE WHEN m.kind = 'merge' THEN m.from_profile ELSE m.uid_profile_before END,
           m.into_profile,
           (SELECT p.customer_id FROM cdp.profiles p WHERE p.portal = m.portal AND p.profile_id = m.into_profile),
           m.merge_id,
           jsonb_strip_nulls(jsonb_build_object(
               'reason', m.reason, 'uid', m.uid, 'identify_type', m.identify_type, 'identify_time', m.identify_time,
               'from_customer_profile', CASE WHEN m.kind = 'uid_reassigned' THEN m.from_profile END,
               'undone_by_cascade_of', m.undone_by_cascade_of))
    FROM cdp.merges m WHERE m.portal = record_decision.portal AND m.merge_id = record_decision.merge_id;
    PERFORM pg_catalog.pg_notify('cdp_identity_changes', record_decision.portal);
END
$$;

CREATE OR REPLACE FUNCTION cdp.record_suggestion_accepted(portal text, suggestion_id bigint) RETURNS void
-- (custom plans: on empty tables every index of the portal costs the same, and
-- a kept plan could read every merge of the portal to find one)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    INSERT INTO cdp.identity_changes (portal, kind, profile_id, customer_profile, customer_id, merge_id, detail)
    SELECT s.portal, 'suggestion_accepted', s.profile_id, s.customer_profile,
           (SELECT p.customer_id FROM cdp.profiles p WHERE p.portal = s.portal AND p.profile_id = s.customer_profile),
           s.merge_id, jsonb_build_object('suggestion_id', s.suggestion_id, 'probability', s.probability)
    FROM cdp.match_suggestions s WHERE s.portal = record_suggestion_accepted.portal AND s.suggestion_id = record_suggestion_accepted.suggestion_id;
    PERFORM pg_catalog.pg_notify('cdp_identity_changes', record_suggestion_accepted.portal);
END
$$;
-- (CREATE OR REPLACE resets what security.sql pins on every function)
ALTER FUNCTION cdp.record_decision(text, bigint, boolean) SET jit = off;
ALTER FUNCTION cdp.record_decision(text, bigint, boolean) SECURITY DEFINER;
ALTER FUNCTION cdp.record_suggestion_accepted(text, bigint) SET jit = off;
ALTER FUNCTION cdp.record_suggestion_accepted(text, bigint) SECURITY DEFINER;
