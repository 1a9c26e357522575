-- demo/seed_story.sql, adapted for the router test: every call names its
-- portal (psql variable :portal) and every time is relative to a fixed
-- instant (:t0) instead of now(), so the same input gives the same answers on
-- the router and on a single node. Run: psql -v portal=story -v t0='2026-11-30 12:00:00+00' -f seed_story.sql
\set ON_ERROR_STOP 1
\pset pager off
-- Day 1: User A opens the website: a UID and Anonymous Profile 1
SELECT cdp.track_event('uid-day-1', 'pageview', 'view',
    '{"context": {"device_id": "browser-of-A", "session_id": "day1", "page_url": "https://shop.example/",
      "referrer": "https://search.example/?q=shoes",
      "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0",
      "locale": "en-GB", "timezone": "Europe/London"}}',
    :'t0'::timestamptz - interval '6 days', portal => :'portal') AS anonymous_profile_1;
SELECT cdp.track_event('uid-day-1', 'product', 'view',
    '{"dims": {"product": {"sku": "RUN-42"}}, "context": {"device_id": "browser-of-A", "session_id": "day1"}}',
    :'t0'::timestamptz - interval '6 days' + interval '3 minutes', portal => :'portal');
-- Day 3: User A comes back with a new UID: Anonymous Profile 2
SELECT cdp.track_event('uid-day-3', 'pageview', 'view',
    '{"context": {"device_id": "browser-of-A", "session_id": "day3", "page_url": "https://shop.example/sale"}}',
    :'t0'::timestamptz - interval '4 days', portal => :'portal') AS anonymous_profile_2;
SELECT cdp.track_event('uid-day-3', 'cart', 'add_to_cart',
    '{"items": [{"sku": "RUN-42", "qty": 1}], "context": {"device_id": "browser-of-A", "session_id": "day3"}}',
    :'t0'::timestamptz - interval '4 days' + interval '5 minutes', portal => :'portal');
-- Day 7: User A signs up: web_event.track("user", "sign_in", {dims: {customers: ...}, extra: {...}})
SELECT cdp.track_event('uid-day-7', 'user', 'sign_in', jsonb_build_object(
    'dims', jsonb_build_object('customers', jsonb_build_object(
        'customer_id', cdp.md5(cdp.normalize_email('User.A@example.com')),
        'name', 'User A', 'email', 'User.A@example.com', 'phone', '+44 20 7946 0958')),
    'extra', jsonb_build_object(
        'identify_id', cdp.md5(cdp.normalize_email('User.A@example.com')),
        'identify_time', to_char(:'t0'::timestamptz AT TIME ZONE 'Europe/London', 'YYYY-MM-DD HH24:MI:SS'),
        'identify_event', 'user_sign_in', 'identify_type', 'exact'),
    'context', jsonb_build_object('device_id', 'browser-of-A', 'session_id', 'day7', 'timezone', 'Europe/London')),
    :'t0'::timestamptz, portal => :'portal') AS customer_profile;
-- The merged customer profile, the merges that built it, its timeline
SELECT cdp.customer_profile(cdp.md5('user.a@example.com'), portal => :'portal') AS customer_profile;
SELECT cdp.explain(cdp.profile_of('uid-day-1', portal => :'portal'), portal => :'portal') AS explain;
SELECT event_id, uid, category, action, event_time FROM cdp.events_of(cdp.profile_of('uid-day-1', portal => :'portal'), portal => :'portal');
