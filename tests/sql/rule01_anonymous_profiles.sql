-- Behaviour 1: the first event of an unknown UID creates an anonymous
-- profile; system events, custom events, system and custom user attributes
-- all land on it.
SELECT t.eq(cdp.profile_of('v1'), NULL::bigint, 'an unknown UID has no profile');
SELECT t.eq(cdp.profile(424242), NULL::jsonb, 'an unknown profile id answers NULL');
SELECT t.eq(cdp.customer_profile('nobody'), NULL::jsonb, 'an unknown customer id answers NULL');

SELECT cdp.track_event('v1', 'pageview', 'view', jsonb_build_object('context', jsonb_build_object(
    'device_id', 'dev-1', 'session_id', 'sess-1',
    'user_agent', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
    'locale', 'vi-VN', 'timezone', 'Asia/Ho_Chi_Minh', 'ip', '203.0.113.7',
    'page_url', 'https://shop.example/home', 'referrer', 'https://ads.example/', 'page_title', 'Home')),
    '2026-11-10 08:00Z') AS p \gset
SELECT t.eq(cdp.profile_of('v1'), :p::bigint, 'the first event created the profile and returned its id');
SELECT t.eq((SELECT count(*) FROM cdp.profiles), 1::bigint, 'exactly one profile');
SELECT t.eq(cdp.profile(:p)->>'kind', 'anonymous', 'it is anonymous');
SELECT t.eq(cdp.profile(:p)->'customer_id', 'null'::jsonb, 'customer_id is null');
SELECT t.eq(cdp.profile(:p)->'uids', '["v1"]'::jsonb, 'it holds the UID');

-- A custom event with custom user attributes (dims.users) and items.
SELECT t.eq(cdp.track_event('v1', 'video', 'play',
    '{"dims": {"users": {"favourite_genre": "jazz"}, "video": {"id": "v-9"}}, "items": [{"id": "v-9"}], "context": {"device_id": "dev-1", "session_id": "sess-2"}}',
    '2026-11-10 09:00Z'), :p::bigint, 'a custom event lands on the same profile');
-- A later event from another browser version updates the last-value system attributes.
SELECT cdp.track_event('v1', 'pageview', 'view', '{"context": {"session_id": "sess-2", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1", "page_url": "https://shop.example/later"}}', '2026-11-10 10:00Z');

SELECT cdp.profile(:p) AS prof \gset
SELECT t.eq((:'prof'::jsonb->>'event_count')::int, 3, 'three events counted');
SELECT t.eq((:'prof'::jsonb->>'session_count')::int, 2, 'two sessions counted');
SELECT t.eq(:'prof'::jsonb->'attributes', '{"favourite_genre": "jazz"}'::jsonb, 'custom user attribute stored');
SELECT t.eq(:'prof'::jsonb->'system'->>'os', 'iOS', 'OS derived from the user agent');
SELECT t.eq(:'prof'::jsonb->'system'->>'device_type', 'mobile', 'device type derived from the user agent');
SELECT t.eq(:'prof'::jsonb->'system'->>'browser', 'Chrome', 'browser is the latest one seen');
SELECT t.eq(:'prof'::jsonb->'system'->>'locale', 'vi-VN', 'locale kept');
SELECT t.eq(:'prof'::jsonb->'system'->>'timezone', 'Asia/Ho_Chi_Minh', 'timezone kept');
SELECT t.eq(:'prof'::jsonb->'system'->>'first_page_url', 'https://shop.example/home', 'first page is the first one');
SELECT t.eq(:'prof'::jsonb->'system'->>'first_referrer', 'https://ads.example/', 'first referrer kept');
SELECT t.eq((:'prof'::jsonb->'system'->>'first_seen')::timestamptz, '2026-11-10 08:00Z'::timestamptz, 'first seen');
SELECT t.eq((:'prof'::jsonb->'system'->>'last_seen')::timestamptz, '2026-11-10 10:00Z'::timestamptz, 'last seen');
SELECT t.ok(:'prof'::jsonb ?& ARRAY['profile_id', 'customer_id', 'kind', 'uids', 'merged_profiles', 'attributes',
    'system', 'event_count', 'session_count', 'first_seen', 'last_seen', 'identified_at'], 'every documented key is present');
SELECT t.eq((SELECT payload->'items' FROM cdp.events_of(:p) WHERE action = 'play'), '[{"id": "v-9"}]'::jsonb, 'the payload is stored whole');
SELECT t.eq((SELECT count(*) FROM cdp.identifiers WHERE kind = 'device_id' AND value = 'dev-1'), 1::bigint, 'the device id was recorded once');

-- Repeated page views with the same context write nothing to the profile row.
SELECT xmin::text AS before FROM cdp.profiles WHERE profile_id = :p \gset
SELECT cdp.track_event('v1', 'pageview', 'view', '{"context": {"session_id": "sess-2", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1", "page_url": "https://shop.example/again"}}', '2026-11-10 10:05Z');
SELECT t.eq((SELECT xmin::text FROM cdp.profiles WHERE profile_id = :p), :'before', 'an unchanged context does not update the profile row');

-- A second UID is a second anonymous profile.
SELECT t.ok(cdp.track_event('v2', 'pageview', 'view') <> :p, 'another UID gets its own profile');
SELECT t.eq((SELECT count(*) FROM cdp.anonymous_profiles), 2::bigint, 'two anonymous profiles listed');
SELECT t.eq(cdp.track_event(' v2 ', 'pageview', 'view'), cdp.profile_of('v2'), 'UIDs are trimmed');
