-- Times sent inside JSON keep their full precision on every path, and mean
-- the same instant whatever the session's TimeZone (a pooled connection may
-- have any): ISO 8601 with any offset, the SDK's local form read in
-- context.timezone (else cdp.default_timezone, UTC), epoch milliseconds.

-- 1. Batch event_time: ISO with Z and with an offset and a fraction, what
--    Date.toISOString() sends, and Date.now() epoch milliseconds.
SET TimeZone = 'America/Los_Angeles';
SELECT cdp.track_batch('[
    {"uid": "tb", "category": "pageview", "action": "z",      "event_time": "2024-01-01T10:11:12Z"},
    {"uid": "tb", "category": "pageview", "action": "offset", "event_time": "2024-01-01T10:11:12.345+02:00"},
    {"uid": "tb", "category": "pageview", "action": "node",   "event_time": "2026-11-30T09:08:07.654Z"},
    {"uid": "tb", "category": "pageview", "action": "millis", "event_time": 1704103872345},
    {"uid": "tb", "category": "pageview", "action": "local-tz", "event_time": "2026-11-30 17:15:09.25",
     "payload": {"context": {"timezone": "Asia/Ho_Chi_Minh"}}},
    {"uid": "tb", "category": "pageview", "action": "local-default", "event_time": "2026-11-30 17:15:09"}
]') AS r \gset
SELECT t.eq((:'r'::jsonb->>'stored')::int, 6, 'all six batch items stored');
SELECT t.eq((SELECT jsonb_object_agg(action, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')) FROM cdp.events WHERE uid = 'tb'),
            '{"z": "2024-01-01 10:11:12.000000", "offset": "2024-01-01 08:11:12.345000", "node": "2026-11-30 09:08:07.654000",
              "millis": "2024-01-01 10:11:12.345000", "local-tz": "2026-11-30 10:15:09.250000",
              "local-default": "2026-11-30 17:15:09.000000"}'::jsonb,
            'batch event_time keeps seconds and fractions in every form; local times in context.timezone, else UTC');

-- 2. extra.identify_time in track_event (the seed's sign-in), with seconds.
SELECT cdp.track_event('ti', 'user', 'sign_in',
    t.sign_in('times@example.com', '{"plan": "pro"}', '{"timezone": "Europe/Paris"}', '2026-07-01 12:34:56.789'));
SELECT t.eq((SELECT to_char(identified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM cdp.profiles WHERE customer_id = cdp.md5('times@example.com')),
            '2026-07-01 10:34:56.789', 'identify_time in the SDK local form is read in context.timezone, seconds kept');
SELECT t.eq((SELECT to_char(set_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') FROM cdp.profile_attributes a JOIN cdp.profiles p USING (profile_id)
             WHERE p.customer_id = cdp.md5('times@example.com') AND key = 'plan'),
            '10:34:56.789', 'attribute times are the identify_time to the millisecond');
SELECT cdp.track_event('ti2', 'user', 'identify',
    t.sign_in('times2@example.com', '{}', '{}', '2024-01-01T10:11:12.345+02:00'));
SELECT t.eq((SELECT to_char(identified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM cdp.profiles WHERE customer_id = cdp.md5('times2@example.com')),
            '2024-01-01 08:11:12.345', 'identify_time in ISO 8601 with an offset keeps its seconds');
SELECT cdp.track_event('ti3', 'user', 'identify', jsonb_build_object('extra', jsonb_build_object('identify_id', 'cust-ms', 'identify_time', 1704103872345)));
SELECT t.eq((SELECT to_char(identified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM cdp.profiles WHERE customer_id = 'cust-ms'),
            '2024-01-01 10:11:12.345', 'identify_time as epoch milliseconds');

-- 3. Batch identify_time, and order inside one minute: the later sign-in's attribute wins.
SELECT cdp.track_batch(jsonb_build_array(
    jsonb_build_object('uid', 'tbi', 'category', 'user', 'action', 'sign_in',
                       'payload', t.sign_in('order@example.com', '{"name": "Later"}', '{}', '2026-11-30T10:00:59Z')),
    jsonb_build_object('uid', 'tbi', 'category', 'user', 'action', 'identify',
                       'payload', t.sign_in('order@example.com', '{"name": "Earlier"}', '{}', '2026-11-30T10:00:01Z'))));
SELECT t.eq(cdp.customer_profile(cdp.md5('order@example.com'))->'attributes'->>'name', 'Later',
            'two identifies in one minute: the later identify_time wins although it arrived first');
SELECT t.eq((SELECT to_char(identified_at AT TIME ZONE 'UTC', 'HH24:MI:SS') FROM cdp.profiles WHERE customer_id = cdp.md5('order@example.com')),
            '10:00:01', 'identified_at is the earliest identify_time, to the second');

-- 4. identify() with a timestamptz keeps it as given.
SELECT cdp.identify('tid', 'cust-tid', '{"tier": "gold"}', 'exact', '2024-05-06 07:08:09.123456+00');
SELECT t.eq((SELECT to_char(identified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM cdp.profiles WHERE customer_id = 'cust-tid'),
            '2024-05-06 07:08:09.123456', 'identify keeps microseconds');

-- 5. The same local time from connections with different TimeZone settings is the same instant.
SET TimeZone = 'Asia/Tokyo';
SELECT cdp.track_batch('[{"uid": "tz1", "category": "c", "action": "a", "event_time": "2026-06-01 08:00:00"}]');
SET TimeZone = 'America/New_York';
SELECT cdp.track_batch('[{"uid": "tz2", "category": "c", "action": "a", "event_time": "2026-06-01 08:00:00"}]');
RESET TimeZone;
SELECT t.eq((SELECT count(DISTINCT event_time) FROM cdp.events WHERE uid IN ('tz1', 'tz2')), 1::bigint,
            'one local time, sent on connections in Tokyo and New York, is one instant');
SELECT t.eq((SELECT event_time FROM cdp.events WHERE uid = 'tz1'), '2026-06-01 08:00:00+00'::timestamptz,
            'read in cdp.default_timezone (UTC)');
SET cdp.default_timezone = 'Asia/Tokyo';
SELECT cdp.track_batch('[{"uid": "tz3", "category": "c", "action": "a", "event_time": "2026-06-01 08:00:00"}]');
RESET cdp.default_timezone;
SELECT t.eq((SELECT event_time FROM cdp.events WHERE uid = 'tz3'), '2026-06-01 08:00:00+09'::timestamptz,
            'a server-wide cdp.default_timezone is used when the event has no context.timezone');

-- 6. Impossible and unusable times.
SELECT cdp.track_batch('[
    {"uid": "tbad", "category": "c", "action": "gap", "event_time": "2026-03-29 02:30:00", "payload": {"context": {"timezone": "Europe/Paris"}}},
    {"uid": "tbad", "category": "c", "action": "zone", "event_time": "2026-03-29 02:30:00", "payload": {"context": {"timezone": "Mars/Olympus"}}},
    {"uid": "tbad", "category": "c", "action": "huge", "event_time": 1e300},
    {"uid": "tbad", "category": "c", "action": "bool", "event_time": true},
    {"uid": "tbad", "category": "c", "action": "iso-zone-ignored", "event_time": "2026-03-29T02:30:00+01:00", "payload": {"context": {"timezone": "Mars/Olympus"}}}
]') AS bad \gset
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(x->'index', x->>'sqlstate') ORDER BY (x->>'index')::int) FROM jsonb_array_elements(:'bad'::jsonb->'rejected') x),
            '[[0, "22007"], [1, "22023"], [2, "22008"], [3, "22023"]]'::jsonb,
            'DST gap 22007, unknown context.timezone 22023, out of range 22008, not a time 22023; each item alone');
SELECT t.eq((SELECT action FROM cdp.events WHERE uid = 'tbad'), 'iso-zone-ignored', 'a time with its own offset needs no zone');
SELECT t.raises($$SELECT cdp.track_event('u', 'user', 'sign_in', '{"extra": {"identify_id": "c-gap", "identify_time": "2026-03-08 02:30:00"}, "context": {"timezone": "America/New_York"}}')$$,
                '22007', 'a local identify_time inside a DST gap', 'does not exist in time zone America/New_York');
SELECT t.raises($$SELECT cdp.track_event('u', 'user', 'sign_in', '{"extra": {"identify_id": "c-tz", "identify_time": "2026-03-08 02:30:00"}, "context": {"timezone": "Nowhere/Land"}}')$$,
                '22023', 'an unknown context.timezone for a local identify_time', 'payload.context.timezone');
SELECT t.raises($$SELECT cdp.track_event('u', 'user', 'sign_in', '{"extra": {"identify_id": "c-ms", "identify_time": 1e300}}')$$,
                '22008', 'epoch milliseconds out of range', 'identify_time');
CREATE ROLE cdp_tz_tester;
SET ROLE cdp_tz_tester;
DO $$
BEGIN
    SET cdp.default_timezone = 'Asia/Tokyo';
    RAISE EXCEPTION 'FAILED: a normal role changed cdp.default_timezone';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'ok a normal role cannot change cdp.default_timezone (42501)';
END
$$;
RESET ROLE;
DROP ROLE cdp_tz_tester;
