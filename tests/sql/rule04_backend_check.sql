-- Behaviour 4: in the same transaction, identify merges every still-anonymous
-- profile of the person: the identifying UID's own profile, anonymous
-- profiles seen with the same device id, and anonymous profiles carrying the
-- same normalized email or phone or the same identify id. A profile that
-- belongs to another customer is never taken. Device linking can be switched off.

-- Bob, a customer, used the laptop first, long enough ago (more than the
-- shared_device_window of 30 days) that the laptop does not count as shared
-- (tests/sql/shared_devices.sql covers a device two customers use).
SELECT cdp.track_event('bob-uid', 'user', 'sign_in', t.sign_in('bob@example.com', '{}', t.ctx('laptop')), '2026-09-15 04:00Z') AS bob \gset
-- Anonymous profiles of Ann, each reachable by one kind of evidence.
SELECT cdp.track_event('ann-laptop-old', 'pageview', 'view', jsonb_build_object('context', t.ctx('laptop')), '2026-11-01 00:00Z') AS by_device \gset
SELECT cdp.track_event('ann-work', 'form', 'submit', '{"dims": {"customers": {"email": "A.N.N+promo@gmail.com"}}}', '2026-11-01 01:00Z') AS by_email \gset
SELECT cdp.track_event('ann-tablet', 'form', 'submit', '{"dims": {"customers": {"phone": "0044 20 7946 0958"}}}', '2026-11-01 02:00Z') AS by_phone \gset
-- Someone else's anonymous profile.
SELECT cdp.track_event('stranger', 'pageview', 'view', jsonb_build_object('context', t.ctx('stranger-device')), '2026-11-01 03:00Z') AS stranger \gset
SELECT cdp.track_event('ann-laptop', 'pageview', 'view', jsonb_build_object('context', t.ctx('laptop')), '2026-11-02 00:00Z') AS own \gset

-- Ann signs in on the laptop with her email and phone.
SELECT cdp.track_event('ann-laptop', 'user', 'sign_in',
    t.sign_in('ann@gmail.com', '{"phone": "+44 20 7946 0958"}', t.ctx('laptop')), '2026-11-02 00:01Z') AS ann \gset

SELECT t.eq((SELECT array_agg(from_profile || ':' || reason ORDER BY from_profile) FROM cdp.merges WHERE into_profile = :ann AND kind = 'merge'),
            ARRAY[:by_device || ':device_id', :by_email || ':email', :by_phone || ':phone', :own || ':uid'],
            'own UID, device, email (normalized) and phone (normalized) profiles merged, each with its reason');
SELECT t.eq(cdp.profile_of('stranger'), :stranger::bigint, 'an unrelated anonymous profile is left alone');
SELECT t.eq(cdp.profile(:stranger)->>'kind', 'anonymous', 'it stays anonymous');
SELECT t.eq(cdp.profile_of('bob-uid'), :bob::bigint, 'another customer''s profile is never taken, even on the same device');
SELECT t.eq(cdp.profile(:bob)->>'customer_id', cdp.md5('bob@example.com'), 'Bob keeps his customer id');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 2::bigint, 'two customers');
SELECT t.eq((SELECT evidence FROM cdp.merges WHERE from_profile = :by_email), 'ann@gmail.com', 'the evidence is the normalized identifier');

-- Identify id: an anonymous profile carrying the same identify id.
SELECT cdp.track_event('carol-old', 'pageview', 'view', '{}', '2026-11-03 00:00Z') AS carol_old \gset
INSERT INTO cdp.identifiers (portal, kind, value, profile_id, trusted) VALUES ('default', 'identify_id', 'carol-iid', :carol_old, true);
SELECT cdp.track_event('carol-new', 'user', 'identify', '{"dims": {"customers": {"customer_id": "carol"}}, "extra": {"identify_id": "carol-iid"}}', '2026-11-03 01:00Z') AS carol \gset
SELECT t.eq(cdp.profile_of('carol-old'), :carol::bigint, 'a profile with the same identify id was merged');
SELECT t.eq((SELECT reason FROM cdp.merges WHERE from_profile = :carol_old), 'identify_id', 'reason identify_id');

-- Later identifies keep checking: a new anonymous profile with Ann's email joins at her next identify.
SELECT cdp.track_event('ann-phone', 'form', 'submit', '{"dims": {"customers": {"email": "ann@gmail.com"}}}', '2026-11-04 00:00Z') AS late \gset
SELECT t.eq(cdp.profile(:late)->>'kind', 'anonymous', 'a lead form alone merges nobody');
SELECT cdp.identify('ann-laptop', cdp.md5('ann@gmail.com'), '{}', 'exact', '2026-11-04 01:00Z');
SELECT t.eq(cdp.profile_of('ann-phone'), :ann::bigint, 'the next identify merges it by the customer''s known email');

-- Device linking off: a profile that shares only the device stays anonymous.
SET cdp.device_linking = off;
SELECT cdp.track_event('dave-old', 'pageview', 'view', jsonb_build_object('context', t.ctx('kiosk')), '2026-11-05 00:00Z') AS dave_old \gset
SELECT cdp.track_event('dave-new', 'user', 'sign_in', t.sign_in('dave@example.com', '{}', t.ctx('kiosk')), '2026-11-05 01:00Z') AS dave \gset
SELECT t.eq(cdp.profile_of('dave-old'), :dave_old::bigint, 'with cdp.device_linking off the device does not merge');
RESET cdp.device_linking;
SELECT cdp.track_event('erin-old', 'pageview', 'view', jsonb_build_object('context', t.ctx('kiosk-2')), '2026-11-05 00:00Z') AS erin_old \gset
SELECT cdp.track_event('erin-new', 'user', 'sign_in', t.sign_in('erin@example.com', '{}', t.ctx('kiosk-2')), '2026-11-05 01:00Z') AS erin \gset
SELECT t.eq(cdp.profile_of('erin-old'), :erin::bigint, 'with the default (on) the device merges');

-- One transaction: a failure after identify leaves nothing merged.
SELECT cdp.track_event('frank-old', 'pageview', 'view', jsonb_build_object('context', t.ctx('frank-pc')), '2026-11-06 00:00Z') AS frank_old \gset
SELECT t.raises($$SELECT cdp.track_event('frank-new', 'user', 'sign_in',
    t.sign_in('frank@example.com', '{}', t.ctx('frank-pc'), 'not a time'), '2026-11-06 01:00Z')$$,
    '22007', 'a sign-in with a bad identify_time fails whole');
SELECT t.eq(cdp.profile_of('frank-old'), :frank_old::bigint, 'and merged nothing');
