-- The product description's example: User A visits on Day 1 and Day 3 with a
-- new UID each time, signs up on Day 7; both anonymous profiles end up in the
-- one customer profile, with the whole history.
SELECT cdp.track_event('a-day1', 'pageview', 'view',
    jsonb_build_object('context', t.ctx('browser-A', 's1') || '{"user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0", "page_url": "https://shop.example/", "referrer": "https://search.example/"}'),
    '2026-11-01 09:00Z') AS day1 \gset
SELECT cdp.track_event('a-day1', 'product', 'view', jsonb_build_object('context', t.ctx('browser-A', 's1')), '2026-11-01 09:05Z');
SELECT cdp.track_event('a-day3', 'pageview', 'view', jsonb_build_object('context', t.ctx('browser-A', 's2')), '2026-11-03 18:00Z') AS day3 \gset
SELECT cdp.track_event('a-day3', 'cart', 'add', jsonb_build_object('context', t.ctx('browser-A', 's2'), 'items', '[{"id": "sku-1"}]'::jsonb), '2026-11-03 18:02Z');
SELECT t.ok(:day1 <> :day3, 'Day 1 and Day 3 are two anonymous profiles');
SELECT t.eq((SELECT count(*) FROM cdp.anonymous_profiles), 2::bigint, 'two anonymous profiles before sign-up');
SELECT t.eq(cdp.profile(:day1)->>'kind', 'anonymous', 'Day 1 profile is anonymous');

-- Day 7: a new UID, sign-up with a CID.
SELECT cdp.track_event('a-day7', 'pageview', 'view', jsonb_build_object('context', t.ctx('browser-A', 's3')), '2026-11-07 10:00Z') AS day7 \gset
SELECT cdp.track_event('a-day7', 'user', 'sign_in',
    t.sign_in('user.a@example.com', '{"name": "User A"}', t.ctx('browser-A', 's3'), '2026-11-07T10:01:00Z'),
    '2026-11-07 10:01Z') AS customer \gset

SELECT t.eq(cdp.customer_profile(cdp.md5('user.a@example.com'))->>'profile_id', :'customer', 'customer_profile finds the customer');
SELECT t.ok(:customer NOT IN (:day1, :day3, :day7), 'the customer profile is a new profile');
SELECT t.eq(cdp.profile_of('a-day1'), :customer::bigint, 'Day 1 UID now resolves to the customer');
SELECT t.eq(cdp.profile_of('a-day3'), :customer::bigint, 'Day 3 UID now resolves to the customer');
SELECT t.eq(cdp.profile_of('a-day7'), :customer::bigint, 'Day 7 UID now resolves to the customer');

SELECT cdp.profile(:customer) AS p \gset
SELECT t.eq(:'p'::jsonb->>'kind', 'customer', 'kind is customer');
SELECT t.eq(:'p'::jsonb->'uids', '["a-day1", "a-day3", "a-day7"]'::jsonb, 'all three UIDs, sorted');
SELECT t.eq(:'p'::jsonb->'merged_profiles', jsonb_build_array(:day1, :day3, :day7), 'the three anonymous profiles were merged');
SELECT t.eq((:'p'::jsonb->>'event_count')::int, 6, 'all six events on the customer');
SELECT t.eq((:'p'::jsonb->>'session_count')::int, 3, 'three sessions');
SELECT t.eq((:'p'::jsonb->>'first_seen')::timestamptz, '2026-11-01 09:00Z'::timestamptz, 'first seen on Day 1');
SELECT t.eq((:'p'::jsonb->>'last_seen')::timestamptz, '2026-11-07 10:01Z'::timestamptz, 'last seen on Day 7');
SELECT t.eq(:'p'::jsonb->'attributes', '{"name": "User A", "email": "user.a@example.com"}'::jsonb, 'customer attributes');
SELECT t.eq(:'p'::jsonb->'system'->>'browser', 'Firefox', 'system attributes of the Day 1 visit survive the merge');
SELECT t.eq(:'p'::jsonb->'system'->>'first_referrer', 'https://search.example/', 'first referrer from Day 1');
SELECT t.eq(cdp.profile(:day1), cdp.profile(:customer), 'a merged-away profile answers with the customer');

SELECT t.eq((SELECT array_agg(e.uid || ':' || e.action ORDER BY e.event_time) FROM cdp.events_of(:customer) e),
            ARRAY['a-day1:view', 'a-day1:view', 'a-day3:view', 'a-day3:add', 'a-day7:view', 'a-day7:sign_in'],
            'the timeline holds every event, oldest first');
SELECT t.eq((SELECT array_agg(m.from_profile || ':' || m.reason ORDER BY m.from_profile) FROM cdp.merges m WHERE m.into_profile = :customer),
            ARRAY[:day1 || ':device_id', :day3 || ':device_id', :day7 || ':uid'], 'one merge row per anonymous profile, with its reason');
SELECT t.eq((SELECT count(*) FROM cdp.anonymous_profiles), 0::bigint, 'no anonymous profile left');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 1::bigint, 'one customer');
