-- cdp_identity 0.1.0 -> 0.1.1: no JIT, index plans whatever the statistics.
--  * every function pins jit = off (a generic plan whose estimate crosses
--    jit_above_cost on grown, unanalyzed tables was JIT-compiled on every call);
--  * the reads go from the profile family to its rows by index (LATERAL, OFFSET 0);
--  * merge_blocks gets an index on into_profile (identify reads it every call).
-- No table is rewritten; the data stays as it is.

CREATE INDEX merge_blocks_into_idx ON cdp.merge_blocks (into_profile);

CREATE OR REPLACE FUNCTION cdp.profile(profile_id bigint) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    WITH family AS (
        SELECT f.* FROM cdp.family_of($1) AS m(profile_id),
                        LATERAL (SELECT f.* FROM cdp.profiles f WHERE f.profile_id = m.profile_id OFFSET 0) AS f
    ), root AS (
        SELECT f.* FROM family f WHERE f.merged_into IS NULL
    ), activity AS (
        SELECT count(*) AS event_count,
               count(DISTINCT e.session_id) AS session_count,
               min(e.event_time) AS first_event,
               max(e.event_time) AS last_event
        FROM family f, LATERAL (SELECT e.session_id, e.event_time FROM cdp.events e
                                WHERE e.profile_id = f.profile_id OFFSET 0) AS e
    ), last_values AS (
        SELECT DISTINCT ON (kv.key) kv.key, kv.value
        FROM family f, jsonb_each(f.system) kv
        ORDER BY kv.key, f.system_at DESC NULLS LAST, f.profile_id DESC
    ), first_values AS (
        SELECT DISTINCT ON (kv.key) kv.key, kv.value
        FROM family f, jsonb_each(f.first_touch) kv
        ORDER BY kv.key, f.first_touch_at ASC NULLS LAST, f.profile_id
    )
    SELECT jsonb_build_object(
        'profile_id', r.profile_id,
        'customer_id', r.customer_id,
        'kind', CASE WHEN r.customer_id IS NULL THEN 'anonymous' ELSE 'customer' END,
        'uids', (SELECT coalesce(jsonb_agg(u.uid ORDER BY u.uid), '[]')
                 FROM family f, LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.profile_id = f.profile_id OFFSET 0) AS u),
        'merged_profiles', (SELECT coalesce(jsonb_agg(f.profile_id ORDER BY f.profile_id), '[]')
                            FROM family f WHERE f.profile_id <> r.profile_id),
        'attributes', (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
                       FROM cdp.profile_attributes a WHERE a.profile_id = r.profile_id),
        'system', (SELECT coalesce(jsonb_object_agg(v.key, v.value), '{}') FROM first_values v)
                  || (SELECT coalesce(jsonb_object_agg(v.key, v.value), '{}') FROM last_values v)
                  || jsonb_build_object('first_seen', least(a.first_event, r.identified_at),
                                        'last_seen', greatest(a.last_event, r.identified_at)),
        'event_count', a.event_count,
        'session_count', a.session_count,
        'first_seen', least(a.first_event, r.identified_at),
        'last_seen', greatest(a.last_event, r.identified_at),
        'identified_at', r.identified_at,
        'created_at', r.created_at
    )
    FROM root r, activity a
$$;

CREATE OR REPLACE FUNCTION cdp.events_of(profile_id bigint)
RETURNS TABLE (event_id bigint, uid text, category text, action text, event_time timestamptz, payload jsonb)
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload
    FROM cdp.family_of($1) AS f(profile_id),
         LATERAL (SELECT e.* FROM cdp.events e WHERE e.profile_id = f.profile_id OFFSET 0) AS e
    ORDER BY e.event_time, e.event_id
$$;

CREATE OR REPLACE FUNCTION cdp.explain(profile_id bigint) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    WITH root AS (
        SELECT r.* FROM cdp.profiles r WHERE r.profile_id = cdp.root_of($1)
    ), decision AS (
        SELECT m.merge_id, m.kind, m.from_profile, m.into_profile, m.reason, m.evidence, m.uid, m.identify_type,
               m.identify_time, m.merged_at, m.filled_attributes, m.uid_profile_before, m.undone_at,
               m.undone_by_cascade_of
        FROM cdp.merges m, root
        WHERE m.into_profile = root.profile_id OR m.from_profile = root.profile_id
    )
    SELECT jsonb_build_object(
        'profile_id', root.profile_id,
        'customer_id', root.customer_id,
        'kind', CASE WHEN root.customer_id IS NULL THEN 'anonymous' ELSE 'customer' END,
        'uids', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'uid', u.uid,
                        'first_seen', u.first_seen,
                        'profile', u.profile_id,
                        'via', CASE
                            WHEN u.profile_id <> root.profile_id THEN
                                (SELECT to_jsonb(d) - 'filled_attributes' FROM decision d
                                 WHERE d.kind = 'merge' AND d.from_profile = u.profile_id AND d.undone_at IS NULL
                                 ORDER BY d.merge_id DESC LIMIT 1)
                            ELSE coalesce(
                                (SELECT to_jsonb(d) - 'filled_attributes' FROM decision d
                                 WHERE d.kind = 'uid_reassigned' AND d.uid = u.uid AND d.into_profile = root.profile_id
                                   AND d.undone_at IS NULL
                                 ORDER BY d.merge_id DESC LIMIT 1),
                                CASE WHEN root.customer_id IS NULL
                                     THEN '{"rule": "first event of the UID"}'::jsonb
                                     ELSE '{"rule": "identified before it had an anonymous profile"}'::jsonb END)
                        END) ORDER BY u.uid), '[]')
                 FROM cdp.family_of(root.profile_id) AS f(profile_id),
                      LATERAL (SELECT u.* FROM cdp.uids u WHERE u.profile_id = f.profile_id OFFSET 0) AS u),
        'attributes', (SELECT coalesce(jsonb_object_agg(a.key, jsonb_build_object(
                              'value', a.value, 'source', a.source, 'set_at', a.set_at, 'from_profile', a.source_profile)), '{}')
                       FROM cdp.profile_attributes a WHERE a.profile_id = root.profile_id),
        'decisions', (SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.merge_id), '[]') FROM decision d)
    )
    FROM root
$$;

CREATE OR REPLACE FUNCTION cdp.export_customer(customer_id text) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    WITH c AS (
        SELECT p.profile_id FROM cdp.profiles p WHERE p.customer_id = $1
    ), family AS (
        SELECT cdp.family_of(c.profile_id) AS profile_id FROM c
    ), family_uids AS (
        SELECT u.* FROM family f, LATERAL (SELECT u.* FROM cdp.uids u WHERE u.profile_id = f.profile_id OFFSET 0) AS u
    )
    SELECT jsonb_build_object(
        'customer_id', $1,
        'exported_at', now(),
        'profile', cdp.profile(c.profile_id),
        'explain', cdp.explain(c.profile_id),
        'uids', (SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.uid), '[]') FROM family_uids u),
        'identifiers', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.kind, i.value, i.profile_id), '[]')
                        FROM family f, LATERAL (SELECT i.* FROM cdp.identifiers i WHERE i.profile_id = f.profile_id OFFSET 0) AS i),
        'attributes', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.profile_id, a.key), '[]')
                       FROM family f, LATERAL (SELECT a.* FROM cdp.profile_attributes a WHERE a.profile_id = f.profile_id OFFSET 0) AS a),
        'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.event_time, e.event_id), '[]')
                   FROM family f, LATERAL (SELECT e.* FROM cdp.events e WHERE e.profile_id = f.profile_id OFFSET 0) AS e),
        'identify_skips', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.skip_id), '[]')
                           FROM cdp.identify_skips s WHERE s.uid IN (SELECT u.uid FROM family_uids u)),
        'match_suggestions', (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.suggestion_id), '[]')
                              FROM cdp.match_suggestions m
                              WHERE m.customer_profile = c.profile_id
                                 OR m.profile_id IN (SELECT f.profile_id FROM family f))
    )
    FROM c
$$;

CREATE OR REPLACE VIEW cdp.customers WITH (security_invoker = true) AS
SELECT p.profile_id,
       p.customer_id,
       p.identified_at,
       p.created_at,
       ARRAY(SELECT u.uid FROM cdp.family_of(p.profile_id) AS f(profile_id),
                               LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.profile_id = f.profile_id OFFSET 0) AS u
             ORDER BY u.uid) AS uids,
       ARRAY(SELECT f.profile_id FROM cdp.profiles f
             WHERE f.merged_into = p.profile_id ORDER BY f.profile_id) AS merged_profiles,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.profile_id = p.profile_id) AS attributes
FROM cdp.profiles p
WHERE p.customer_id IS NOT NULL;

-- No statement of the extension is ever JIT-compiled. They are short OLTP
-- statements (key lookups, single-row writes) that run in microseconds, and
-- JIT compilation costs milliseconds per statement: when a generic plan's
-- estimate crosses jit_above_cost (tables grown but not analyzed yet, right
-- after a bulk import), every call would compile again, a 26x slowdown. The
-- setting is pinned on the functions themselves so it covers the statements
-- they run, foreign-key checks included, whatever the session sets.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'cdp'::regnamespace AND p.prokind = 'f' LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET jit = off', f);
    END LOOP;
END
$$;
