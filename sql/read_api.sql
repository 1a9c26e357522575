-- Read side of cdp_identity: unified profiles, timelines and views.
-- A profile's "family" is the profile itself and every profile merged into
-- it; asking for a profile that was merged away answers with the profile that
-- absorbed it.
--
-- Portals: every function reads one portal only: its optional last argument
-- `portal`, else the session's setting cdp.portal (cdp.current_portal checks
-- either against the caller's grants, 42501 otherwise); a profile id of
-- another portal is unknown here. The functions run as the extension's owner (SECURITY
-- DEFINER), the views as the caller, whose rows row-level security limits to
-- the portals it may use.
--
-- Plans: every read goes from the family (a handful of profiles) to the rows
-- of each member by index, written as LATERAL subqueries fenced with OFFSET 0
-- so the planner cannot turn them into a scan and a hash join when its
-- estimates are off (tables grown but not analyzed yet). tests/plans.py
-- checks that no read plans a sequential scan on grown tables.

-- The surviving profile id of any profile (itself when it was never merged).
CREATE FUNCTION cdp.root_of(profile_id bigint, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(p.merged_into, p.profile_id) FROM cdp.profiles p WHERE p.portal = cdp.current_portal($2) AND p.profile_id = $1
$$;

-- The current unified profile of a UID; NULL if the UID was never seen.
CREATE FUNCTION cdp.profile_of(uid text, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(p.merged_into, p.profile_id)
    FROM cdp.uids u JOIN cdp.profiles p ON p.portal = u.portal AND p.profile_id = u.profile_id
    WHERE u.portal = cdp.current_portal($2) AND u.uid = $1
$$;

-- The profile ids whose events and UIDs make up the unified profile.
CREATE FUNCTION cdp.family_of(profile_id bigint, portal text DEFAULT NULL) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER ROWS 4
SET search_path = pg_catalog, pg_temp AS $$
    SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = cdp.current_portal($2) AND f.profile_id = cdp.root_of($1, $2)
    UNION ALL
    SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = cdp.current_portal($2) AND f.merged_into = cdp.root_of($1, $2)
$$;

CREATE FUNCTION cdp.profile(profile_id bigint, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH family AS (
        SELECT f.* FROM cdp.family_of($1, $2) AS m(profile_id),
                        LATERAL (SELECT f.* FROM cdp.profiles f WHERE f.portal = cdp.current_portal($2) AND f.profile_id = m.profile_id OFFSET 0) AS f
    ), root AS (
        SELECT f.* FROM family f WHERE f.merged_into IS NULL
    ), activity AS (
        SELECT count(*) AS event_count,
               count(DISTINCT e.session_id) AS session_count,
               min(e.event_time) AS first_event,
               max(e.event_time) AS last_event
        FROM family f, LATERAL (SELECT e.session_id, e.event_time FROM cdp.events e
                                WHERE e.portal = f.portal AND e.profile_id = f.profile_id OFFSET 0) AS e
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
                 FROM family f, LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.portal = f.portal AND u.profile_id = f.profile_id OFFSET 0) AS u),
        'merged_profiles', (SELECT coalesce(jsonb_agg(f.profile_id ORDER BY f.profile_id), '[]')
                            FROM family f WHERE f.profile_id <> r.profile_id),
        'attributes', (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
                       FROM cdp.profile_attributes a WHERE a.portal = r.portal AND a.profile_id = r.profile_id),
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

CREATE FUNCTION cdp.customer_profile(customer_id text, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT cdp.profile(p.profile_id, p.portal) FROM cdp.profiles p WHERE p.portal = cdp.current_portal($2) AND p.customer_id = $1
$$;

-- The timeline of a profile and of every profile merged into it, oldest first
-- (newest first with newest_first), a page at a time: at most max_rows events
-- (NULL: all), after the event after_event (the last one of the previous page)
-- in that order. Each profile's events are read from its index in order and
-- only as many as the page needs, so a page costs what the same query on
-- cdp.events does.
CREATE FUNCTION cdp.events_of(profile_id bigint, after_event bigint DEFAULT NULL, max_rows integer DEFAULT NULL,
                              newest_first boolean DEFAULT false, portal text DEFAULT NULL)
RETURNS TABLE (event_id bigint, uid text, category text, action text, event_time timestamptz, payload jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    here text := cdp.current_portal(events_of.portal);
    newest boolean := coalesce(events_of.newest_first, false);
    root bigint;
    members bigint[];
    after_time timestamptz;
    after_id bigint := events_of.after_event;
BEGIN
    IF events_of.max_rows < 0 THEN
        RAISE EXCEPTION 'max_rows must not be negative' USING ERRCODE = '22023';
    END IF;
    -- The family, read here rather than through cdp.family_of: a SQL function
    -- that cannot be inlined is planned again on every call.
    SELECT coalesce(p.merged_into, p.profile_id) INTO root FROM cdp.profiles p WHERE p.portal = here AND p.profile_id = events_of.profile_id;
    IF root IS NULL THEN
        RETURN;
    END IF;
    members := ARRAY(SELECT root UNION ALL SELECT p.profile_id FROM cdp.profiles p WHERE p.portal = here AND p.merged_into = root);
    IF after_id IS NOT NULL THEN
        SELECT e.event_time INTO after_time FROM cdp.events e WHERE e.portal = here AND e.event_id = after_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'after_event % is not an event of portal "%"', after_id, here USING ERRCODE = '22023';
        END IF;
    ELSIF newest THEN
        after_time := 'infinity'; after_id := 9223372036854775807;
    ELSE
        after_time := '-infinity'; after_id := -9223372036854775808;
    END IF;
    IF cardinality(members) = 1 AND newest THEN
        -- One profile: exactly the direct index query.
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload FROM cdp.events e
        WHERE e.portal = here AND e.profile_id = root AND (e.event_time, e.event_id) < (after_time, after_id)
        ORDER BY e.event_time DESC, e.event_id DESC LIMIT events_of.max_rows;
    ELSIF cardinality(members) = 1 THEN
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload FROM cdp.events e
        WHERE e.portal = here AND e.profile_id = root AND (e.event_time, e.event_id) > (after_time, after_id)
        ORDER BY e.event_time, e.event_id LIMIT events_of.max_rows;
    ELSIF newest THEN
        -- Several: each profile's page from its index, merged.
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload
        FROM pg_catalog.unnest(members) AS f(member),
             LATERAL (SELECT e.* FROM cdp.events e
                      WHERE e.portal = here AND e.profile_id = f.member AND (e.event_time, e.event_id) < (after_time, after_id)
                      ORDER BY e.event_time DESC, e.event_id DESC LIMIT events_of.max_rows) AS e
        ORDER BY e.event_time DESC, e.event_id DESC LIMIT events_of.max_rows;
    ELSE
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload
        FROM pg_catalog.unnest(members) AS f(member),
             LATERAL (SELECT e.* FROM cdp.events e
                      WHERE e.portal = here AND e.profile_id = f.member AND (e.event_time, e.event_id) > (after_time, after_id)
                      ORDER BY e.event_time, e.event_id LIMIT events_of.max_rows) AS e
        ORDER BY e.event_time, e.event_id LIMIT events_of.max_rows;
    END IF;
END
$$;

-- The profile a UID belonged to at a past moment: its own profile then
-- (shared-browser reassignments in force at that time move it), and the
-- customer that profile was merged into then. A decision is in force from
-- its identify_time (the business time the caller gave, so identifies
-- replayed from history answer as of when they happened; cdp.explain keeps
-- the moment each was decided, merged_at) until it was undone. NULL when the
-- UID had not been seen yet.
CREATE FUNCTION cdp.profile_at(uid text, at timestamptz, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH seen AS (
        SELECT u.portal, u.profile_id FROM cdp.uids u WHERE u.portal = cdp.current_portal($3) AND u.uid = $1 AND u.first_seen <= $2
    ), own AS (
        SELECT seen.portal, coalesce(
            (SELECT m.into_profile FROM cdp.merges m
             WHERE m.portal = seen.portal AND m.kind = 'uid_reassigned' AND m.uid = $1 AND m.identify_time <= $2
               AND (m.undone_at IS NULL OR m.undone_at > $2)
             ORDER BY m.identify_time DESC, m.merge_id DESC LIMIT 1),
            (SELECT m.uid_profile_before FROM cdp.merges m
             WHERE m.portal = seen.portal AND m.kind = 'uid_reassigned' AND m.uid = $1
             ORDER BY m.identify_time, m.merge_id LIMIT 1),
            seen.profile_id) AS profile_id
        FROM seen
    )
    SELECT coalesce(
        (SELECT m.into_profile FROM cdp.merges m
         WHERE m.portal = own.portal AND m.kind = 'merge' AND m.from_profile = own.profile_id AND m.identify_time <= $2
           AND (m.undone_at IS NULL OR m.undone_at > $2)
         ORDER BY m.identify_time DESC, m.merge_id DESC LIMIT 1),
        own.profile_id)
    FROM own
$$;

-- Why a profile looks as it does: each UID and the decision that brought it
-- in, each attribute with the source and time of its value, and every
-- identity decision about the profile (undone ones included).
CREATE FUNCTION cdp.explain(profile_id bigint, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH root AS (
        SELECT r.* FROM cdp.profiles r WHERE r.portal = cdp.current_portal($2) AND r.profile_id = cdp.root_of($1, $2)
    ), decision AS (
        SELECT m.merge_id, m.kind, m.from_profile, m.into_profile, m.reason, m.evidence, m.uid, m.identify_type,
               m.identify_time, m.merged_at, m.filled_attributes, m.uid_profile_before, m.undone_at,
               m.undone_by_cascade_of
        FROM root, LATERAL (
            SELECT m.* FROM cdp.merges m WHERE m.portal = root.portal AND m.into_profile = root.profile_id
            UNION
            SELECT m.* FROM cdp.merges m WHERE m.portal = root.portal AND m.from_profile = root.profile_id) AS m
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
                 FROM cdp.family_of(root.profile_id, root.portal) AS f(profile_id),
                      LATERAL (SELECT u.* FROM cdp.uids u WHERE u.portal = root.portal AND u.profile_id = f.profile_id OFFSET 0) AS u),
        'attributes', (SELECT coalesce(jsonb_object_agg(a.key, jsonb_build_object(
                              'value', a.value, 'source', a.source, 'set_at', a.set_at, 'from_profile', a.source_profile)), '{}')
                       FROM cdp.profile_attributes a WHERE a.portal = root.portal AND a.profile_id = root.profile_id),
        'decisions', (SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.merge_id), '[]') FROM decision d),
        -- The profile's UIDs and devices found shared: the decision, its evidence,
        -- and the customer profiles identified on them.
        'shared', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'kind', s.kind, 'value', s.value, 'shared', s.cleared_at IS NULL, 'detected_at', s.detected_at,
                          'decided_at', s.decided_at, 'evidence', s.evidence, 'cleared_at', s.cleared_at, 'cleared_by', s.cleared_by,
                          'customer_profiles', (SELECT jsonb_agg(o.customer_profile ORDER BY o.first_at) FROM cdp.identified_on o
                                                WHERE o.portal = s.portal AND o.kind = s.kind AND o.value = s.value))
                      ORDER BY s.kind, s.value), '[]')
                   FROM (SELECT DISTINCT s.* FROM cdp.family_of(root.profile_id, root.portal) AS f(profile_id),
                              LATERAL (SELECT u.* FROM cdp.uids u WHERE u.portal = root.portal AND u.profile_id = f.profile_id OFFSET 0) AS u,
                              LATERAL (SELECT s.* FROM cdp.shared_devices s WHERE s.portal = root.portal AND s.kind = 'uid' AND s.value = u.uid
                                       UNION ALL
                                       SELECT s.* FROM cdp.shared_devices s
                                       WHERE s.portal = root.portal AND s.kind = 'device_id' AND s.value = u.last_device_id) AS s) AS s)
    )
    FROM root
$$;

-- Live anonymous profiles that carry an email, phone or identify id of a
-- customer (of its own profile or of one merged into it) but are not part of
-- it: the merge cap was reached, the merge was undone, or a suggestion waits.
-- They are about that person, so export_customer shows them and
-- forget_customer erases them. Internal (not granted): callers are the
-- SECURITY DEFINER functions that already checked the portal.
CREATE FUNCTION cdp.unmerged_profiles_about(portal text, customer_profile bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp AS $$
    -- From the family's identifiers to the profiles carrying them, each step a
    -- lookup by key (fenced: never from `customer_id IS NULL`, which every
    -- anonymous profile matches).
    SELECT DISTINCT other.profile_id
    FROM (SELECT $2 AS profile_id
          UNION ALL
          SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = $1 AND f.merged_into = $2) AS fam,
         -- (the kind is checked outside the fence: inside it, the primary key
         -- (portal, kind, value, profile_id) would look like a match and read
         -- every email of the portal to find this profile's)
         LATERAL (SELECT i.kind, i.value FROM cdp.identifiers i
                  WHERE i.portal = $1 AND i.profile_id = fam.profile_id OFFSET 0) AS mine,
         LATERAL (SELECT t.profile_id FROM cdp.identifiers t
                  WHERE t.portal = $1 AND t.kind = mine.kind AND t.value = mine.value OFFSET 0) AS theirs,
         LATERAL (SELECT o.* FROM cdp.profiles o WHERE o.portal = $1 AND o.profile_id = theirs.profile_id OFFSET 0) AS other
    WHERE mine.kind IN ('email', 'phone', 'identify_id') AND other.customer_id IS NULL AND other.merged_into IS NULL
$$;

-- Everything held about a customer, in one document (for a data subject
-- access request): the unified profile, the explanation, the UIDs,
-- identifiers, attributes (of every merged profile too), every event, the
-- skipped identifiers and the predicted matches about them. NULL for an
-- unknown customer.
CREATE FUNCTION cdp.export_customer(customer_id text, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH c AS (
        SELECT p.portal, p.profile_id FROM cdp.profiles p WHERE p.portal = cdp.current_portal($2) AND p.customer_id = $1
    ), family AS (
        SELECT c.portal, cdp.family_of(c.profile_id, c.portal) AS profile_id FROM c
        ), family_uids AS (
        SELECT u.* FROM family f, LATERAL (SELECT u.* FROM cdp.uids u WHERE u.portal = f.portal AND u.profile_id = f.profile_id OFFSET 0) AS u
    ), related AS (
        SELECT c.portal, r.profile_id FROM c, LATERAL cdp.unmerged_profiles_about(c.portal, c.profile_id) AS r(profile_id)
    )
    SELECT jsonb_build_object(
        'customer_id', $1,
        'exported_at', now(),
        'profile', cdp.profile(c.profile_id, c.portal),
        'explain', cdp.explain(c.profile_id, c.portal),
        'uids', (SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.uid), '[]') FROM family_uids u),
        'identifiers', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.kind, i.value, i.profile_id), '[]')
                        FROM family f, LATERAL (SELECT i.* FROM cdp.identifiers i WHERE i.portal = f.portal AND i.profile_id = f.profile_id OFFSET 0) AS i),
        'attributes', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.profile_id, a.key), '[]')
                       FROM family f, LATERAL (SELECT a.* FROM cdp.profile_attributes a WHERE a.portal = f.portal AND a.profile_id = f.profile_id OFFSET 0) AS a),
        'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.event_time, e.event_id), '[]')
                   FROM family f, LATERAL (SELECT e.* FROM cdp.events e WHERE e.portal = f.portal AND e.profile_id = f.profile_id OFFSET 0) AS e),
        'identify_skips', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.skip_id), '[]')
                           FROM family_uids u,
                                LATERAL (SELECT s.* FROM cdp.identify_skips s WHERE s.portal = c.portal AND s.uid = u.uid OFFSET 0) AS s),
        'match_suggestions', (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.suggestion_id), '[]')
                              FROM (SELECT m.* FROM cdp.match_suggestions m WHERE m.portal = c.portal AND m.customer_profile = c.profile_id
                                    UNION
                                    SELECT m.* FROM family f, LATERAL (SELECT m.* FROM cdp.match_suggestions m
                                                                      WHERE m.portal = f.portal AND m.profile_id = f.profile_id OFFSET 0) AS m) AS m),
        -- Anonymous profiles with this customer's email, phone or identify id that were not merged.
        'related_profiles', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                 'profile', cdp.profile(r.profile_id, r.portal),
                                 'identifiers', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.kind, i.value), '[]')
                                                 FROM cdp.identifiers i WHERE i.portal = r.portal AND i.profile_id = r.profile_id),
                                 'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.event_time, e.event_id), '[]')
                                            FROM cdp.events e WHERE e.portal = r.portal AND e.profile_id = r.profile_id))
                             ORDER BY r.profile_id), '[]')
                             FROM related r)
    )
    FROM c
$$;

-- The views run as the caller: a member of cdp_reader sees the rows of the
-- portals it may use (row-level security, see security.sql).
CREATE VIEW cdp.customers WITH (security_invoker = true) AS
SELECT p.portal,
       p.profile_id,
       p.customer_id,
       p.identified_at,
       p.created_at,
       ARRAY(SELECT u.uid FROM (SELECT p.profile_id UNION ALL
                                SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = p.portal AND f.merged_into = p.profile_id) AS m,
                               LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.portal = p.portal AND u.profile_id = m.profile_id OFFSET 0) AS u
             ORDER BY u.uid) AS uids,
       ARRAY(SELECT f.profile_id FROM cdp.profiles f
             WHERE f.portal = p.portal AND f.merged_into = p.profile_id ORDER BY f.profile_id) AS merged_profiles,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.portal = p.portal AND a.profile_id = p.profile_id) AS attributes
FROM cdp.profiles p
WHERE p.customer_id IS NOT NULL;

CREATE VIEW cdp.anonymous_profiles WITH (security_invoker = true) AS
SELECT p.portal,
       p.profile_id,
       p.created_at,
       ARRAY(SELECT u.uid FROM cdp.uids u WHERE u.portal = p.portal AND u.profile_id = p.profile_id ORDER BY u.uid) AS uids,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.portal = p.portal AND a.profile_id = p.profile_id) AS attributes,
       p.system
FROM cdp.profiles p
WHERE p.customer_id IS NULL AND p.merged_into IS NULL;

-- Device ids and UIDs with the customers identified on them, and whether they
-- are shared (see cdp.shared_devices).
CREATE VIEW cdp.devices WITH (security_invoker = true) AS
SELECT o.portal, o.kind, o.value,
       array_agg(p.customer_id ORDER BY o.first_at) AS customers,
       min(o.first_at) AS first_identified, max(o.last_at) AS last_identified,
       coalesce(bool_or(s.cleared_at IS NULL AND s.value IS NOT NULL), false) AS shared,
       max(s.detected_at) AS shared_since, max(s.cleared_at) AS cleared_at
FROM cdp.identified_on o
JOIN cdp.profiles p ON p.portal = o.portal AND p.profile_id = o.customer_profile
LEFT JOIN cdp.shared_devices s ON s.portal = o.portal AND s.kind = o.kind AND s.value = o.value
GROUP BY o.portal, o.kind, o.value;

-- The portals the caller may use, with their settings (never their secret).
CREATE VIEW cdp.portals AS
SELECT s.portal, s.settings, s.created_at, s.updated_at,
       EXISTS (SELECT FROM cdp.portal_secrets k WHERE k.portal = s.portal) AS identity_secret_set,
              ARRAY(SELECT g.role FROM cdp.portal_grants g WHERE g.portal = s.portal AND g.granted
             UNION
             SELECT d.role FROM unnest(ARRAY['cdp_writer', 'cdp_reader']::name[]) AS d(role)
             WHERE s.portal = 'default'
               AND NOT EXISTS (SELECT FROM cdp.portal_grants g WHERE g.portal = 'default' AND g.role = d.role AND NOT g.granted)
             ORDER BY 1) AS granted_to
FROM (SELECT p.portal, p.settings, p.created_at, p.updated_at FROM cdp.portal_settings p
      UNION ALL
      SELECT 'default', '{}', NULL, NULL WHERE NOT EXISTS (SELECT FROM cdp.portal_settings WHERE portal = 'default')) AS s
WHERE s.portal IN (SELECT cdp.usable_portals());
