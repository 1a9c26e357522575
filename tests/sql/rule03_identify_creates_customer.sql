-- Behaviour 3: identify creates the customer profile when the CID is new,
-- even if nothing was ever tracked for the UID or the CID; a CID seen before
-- links to its existing customer (a second device joins the same customer).
SELECT cdp.identify('never-seen-uid', 'cust-new', '{"name": "Ann"}', 'exact', '2026-11-01 10:00Z') AS c \gset
SELECT t.eq(cdp.profile(:c)->>'kind', 'customer', 'a customer profile was created from nothing');
SELECT t.eq(cdp.profile(:c)->'uids', '["never-seen-uid"]'::jsonb, 'the UID belongs to it');
SELECT t.eq(cdp.profile(:c)->'merged_profiles', '[]'::jsonb, 'nothing was merged');
SELECT t.eq((cdp.profile(:c)->>'event_count')::int, 0, 'no events');
SELECT t.eq((cdp.profile(:c)->>'first_seen')::timestamptz, '2026-11-01 10:00Z'::timestamptz, 'first seen is the identify');
SELECT t.eq(cdp.profile_of('never-seen-uid'), :c::bigint, 'profile_of the UID is the customer');
SELECT t.eq(cdp.track_event('never-seen-uid', 'pageview', 'view'), :c::bigint, 'later events of the UID land on the customer');

-- The same call again changes nothing.
SELECT t.eq(cdp.identify('never-seen-uid', 'cust-new'), :c::bigint, 'identify is idempotent');
SELECT t.eq((SELECT count(*) FROM cdp.profiles), 1::bigint, 'still one profile');
SELECT t.eq((SELECT count(*) FROM cdp.merges), 0::bigint, 'no merge recorded');

-- A second device: its anonymous profile joins the existing customer.
SELECT cdp.track_event('phone-uid', 'pageview', 'view', '{"context": {"device_id": "phone"}}', '2026-11-02 08:00Z') AS phone \gset
SELECT t.eq(cdp.identify('phone-uid', 'cust-new', '{}', 'exact', '2026-11-02 08:05Z'), :c::bigint, 'a known CID links to its customer');
SELECT t.eq(cdp.profile(:c)->'uids', '["never-seen-uid", "phone-uid"]'::jsonb, 'both devices'' UIDs on the customer');
SELECT t.eq(cdp.profile(:c)->'merged_profiles', jsonb_build_array(:phone), 'the phone''s anonymous profile was merged');
SELECT t.eq((cdp.profile(:c)->>'event_count')::int, 2, 'events of both devices');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 1::bigint, 'one customer');

-- identified_at keeps the earliest identify, even when an older one arrives late.
SELECT cdp.identify('phone-uid', 'cust-new', '{}', 'exact', '2026-10-15 00:00Z');
SELECT t.eq((cdp.profile(:c)->>'identified_at')::timestamptz, '2026-10-15 00:00Z'::timestamptz, 'identified_at is the earliest identify');

-- A customer with no UID of its own events at all, found by customer_profile.
SELECT t.eq(cdp.customer_profile('cust-new')->>'profile_id', :'c', 'customer_profile finds it');
SELECT t.eq((SELECT uids FROM cdp.customers WHERE customer_id = 'cust-new'), ARRAY['never-seen-uid', 'phone-uid'], 'the customers view lists its UIDs');
