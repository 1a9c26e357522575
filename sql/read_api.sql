-- Read side of cdp_identity: unified profiles, timelines and views.
-- Plain SQL so the planner sees through them. A profile's "family" is the
-- profile itself and every profile merged into it; asking for a profile that
-- was merged away answers with the profile that absorbed it.

-- The surviving profile id of any profile (itself when it was never merged).
CREATE FUNCTION cdp.root_of(profile_id bigint) RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(p.merged_into, p.profile_id) FROM cdp.profiles p WHERE p.profile_id = $1
$$;

-- The current unified profile of a UID; NULL if the UID was never seen.
CREATE FUNCTION cdp.profile_of(uid text) RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(p.merged_into, p.profile_id)
    FROM cdp.uids u JOIN cdp.profiles p ON p.profile_id = u.profile_id
    WHERE u.uid = $1
$$;

-- The profile ids whose events and UIDs make up the unified profile.
CREATE FUNCTION cdp.family_of(profile_id bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE ROWS 4
SET search_path = pg_catalog, pg_temp AS $$
    SELECT f.profile_id FROM cdp.profiles f WHERE f.profile_id = cdp.root_of($1)
    UNION ALL
    SELECT f.profile_id FROM cdp.profiles f WHERE f.merged_into = cdp.root_of($1)
$$;

CREATE FUNCTION cdp.profile(profile_id bigint) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    WITH family AS (
        SELECT f.* FROM cdp.profiles f WHERE f.profile_id IN (SELECT cdp.family_of($1))
    ), root AS (
        SELECT f.* FROM family f WHERE f.merged_into IS NULL
    ), activity AS (
        SELECT count(*) AS event_count,
               count(DISTINCT e.session_id) AS session_count,
               min(e.event_time) AS first_event,
               max(e.event_time) AS last_event
        FROM cdp.events e WHERE e.profile_id IN (SELECT f.profile_id FROM family f)
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
                 FROM cdp.uids u WHERE u.profile_id IN (SELECT f.profile_id FROM family f)),
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

CREATE FUNCTION cdp.customer_profile(customer_id text) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT cdp.profile(p.profile_id) FROM cdp.profiles p WHERE p.customer_id = $1
$$;

-- The whole timeline of a profile and of every profile merged into it, oldest first.
CREATE FUNCTION cdp.events_of(profile_id bigint)
RETURNS TABLE (event_id bigint, uid text, category text, action text, event_time timestamptz, payload jsonb)
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload
    FROM cdp.events e
    WHERE e.profile_id IN (SELECT cdp.family_of($1))
    ORDER BY e.event_time, e.event_id
$$;

CREATE VIEW cdp.customers WITH (security_invoker = true) AS
SELECT p.profile_id,
       p.customer_id,
       p.identified_at,
       p.created_at,
       ARRAY(SELECT u.uid FROM cdp.uids u
             WHERE u.profile_id IN (SELECT cdp.family_of(p.profile_id)) ORDER BY u.uid) AS uids,
       ARRAY(SELECT f.profile_id FROM cdp.profiles f
             WHERE f.merged_into = p.profile_id ORDER BY f.profile_id) AS merged_profiles,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.profile_id = p.profile_id) AS attributes
FROM cdp.profiles p
WHERE p.customer_id IS NOT NULL;

CREATE VIEW cdp.anonymous_profiles WITH (security_invoker = true) AS
SELECT p.profile_id,
       p.created_at,
       ARRAY(SELECT u.uid FROM cdp.uids u WHERE u.profile_id = p.profile_id ORDER BY u.uid) AS uids,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.profile_id = p.profile_id) AS attributes,
       p.system
FROM cdp.profiles p
WHERE p.customer_id IS NULL AND p.merged_into IS NULL;

-- The write functions run the same few statements over and over: plan them
-- once per backend (generic plans) instead of planning identify's larger
-- statements again for every call. Every lookup in them is by key.
ALTER FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.track_batch(jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.identify(text, text, jsonb, text, timestamptz) SET plan_cache_mode = force_generic_plan;
