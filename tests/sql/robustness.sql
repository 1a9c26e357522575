-- Nothing lost, nothing stalls: erasure removes exactly its subject, junk
-- UIDs are quarantined, lookalike identifiers are one person, input is
-- bounded item by item, and point-in-time answers use business time.

-- ------------------------------------------------------------------------
-- The family browser. Dad signs in on it and shops; Kid signs in on the same
-- browser (the UID moves to Kid). Erasing Kid leaves Dad's history alone.
SELECT cdp.track_event('family', 'pageview', 'view', '{}', '2026-11-01 09:00Z') AS family_anon \gset
SELECT cdp.identify('family', 'dad', '{"name": "Dad"}', 'exact', '2026-11-01 09:05Z') AS dad \gset
SELECT cdp.track_event('family', 'cart', 'add', '{}', '2026-11-01 09:10Z');
SELECT cdp.track_event('family', 'order', 'paid', '{}', '2026-11-01 09:20Z');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:dad)), 3::bigint, 'Dad''s timeline has his 3 events of the family browser');
SELECT cdp.identify('family', 'kid', '{"name": "Kid"}', 'exact', '2026-11-02 16:00Z') AS kid \gset
SELECT t.eq(cdp.profile_of('family'), :kid::bigint, 'the shared browser''s UID moved to Kid');
SELECT cdp.track_event('family', 'game', 'play', '{}', '2026-11-02 16:10Z');
SELECT cdp.track_event('family', 'game', 'play', '{}', '2026-11-02 16:20Z');
SELECT cdp.forget_customer('kid') AS r \gset
SELECT t.eq((:'r'::jsonb->>'events')::int, 2, 'forget_customer(kid) removed Kid''s 2 events');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:dad)), 3::bigint, 'Dad''s timeline still has his 3 events of that UID');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE profile_id = :kid), 0::bigint, 'nothing of Kid is left');
SELECT t.eq(cdp.customer_profile('dad')->'attributes'->>'name', 'Dad', 'Dad''s profile is whole');

-- forget_uid of a UID that moved between customers: its events on its
-- current customer and on anonymous profiles go; those it left on the
-- customer it moved away from stay (they are that customer's history).
SELECT cdp.identify('tablet', 'mum', '{}', 'exact', '2026-11-01 08:00Z') AS mum \gset
SELECT cdp.track_event('tablet', 'page', 'view', '{}', '2026-11-01 08:01Z');
SELECT cdp.identify('tablet', 'gran', '{}', 'exact', '2026-11-03 08:00Z') AS gran \gset
SELECT cdp.track_event('tablet', 'page', 'view', '{}', '2026-11-03 08:01Z');
SELECT cdp.forget_uid('tablet') AS r \gset
SELECT t.eq((:'r'::jsonb->>'events')::int, 1, 'forget_uid removed the UID''s event on its current customer');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'tablet' AND profile_id = :mum), 1::bigint, 'and kept the one on the customer it left');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'tablet' AND profile_id = :gran), 0::bigint, 'none left on its current customer');

-- ------------------------------------------------------------------------
-- Point-in-time identity answers in business time: an identify replayed from
-- history is in force from its identify_time, not from when it was imported.
SELECT cdp.track_event('hist', 'page', 'view', '{}', '2024-01-01 10:00Z') AS hist_anon \gset
SELECT cdp.identify('hist', 'c-hist', '{}', 'exact', '2024-03-01 10:00Z') AS hist_cust \gset
SELECT t.eq(cdp.profile_at('hist', '2024-02-01'), :hist_anon::bigint, 'profile_at before the historical identify: anonymous');
SELECT t.eq(cdp.profile_at('hist', '2024-04-01'), :hist_cust::bigint, 'profile_at after the historical identify: the customer');
SELECT t.eq((SELECT (d->>'identify_time')::timestamptz FROM jsonb_array_elements(cdp.explain(:hist_cust)->'decisions') d),
            '2024-03-01 10:00Z'::timestamptz, 'explain shows the identify_time');
SELECT t.ok((SELECT (d->>'merged_at')::timestamptz > '2026-01-01' FROM jsonb_array_elements(cdp.explain(:hist_cust)->'decisions') d),
            'and keeps the moment the decision was made');

-- ------------------------------------------------------------------------
-- Junk UIDs: a page that sends "undefined" for every visitor.
SELECT cdp.track_event('undefined', 'page', 'view', jsonb_build_object('context', t.ctx('dev-a')), '2026-11-01 10:00Z') AS junk \gset
SELECT cdp.track_event('undefined', 'page', 'view', jsonb_build_object('context', t.ctx('dev-b')), '2026-11-01 10:01Z');
SELECT t.ok((SELECT quarantined FROM cdp.profiles WHERE profile_id = :junk), 'a junk UID''s events go to a quarantined profile');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE profile_id = :junk), 2::bigint, 'its events are stored');
SELECT t.eq((SELECT count(*) FROM cdp.identifiers WHERE profile_id = :junk), 0::bigint, 'its device ids link nobody');
SELECT cdp.identify('undefined', 'first-signer') AS first_signer \gset
SELECT t.eq(cdp.profile_of('undefined'), :junk::bigint, 'identify(junk UID, cid) does not attach the UID');
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :junk), NULL::bigint, 'nor merge its history into the customer');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:first_signer)), 0::bigint, 'the first customer to sign in gets nobody else''s events');
SELECT t.eq((SELECT reason FROM cdp.identify_skips WHERE uid = 'undefined' AND field = 'uid'), 'placeholder value', 'the skip is recorded');
SELECT cdp.track_event('real-a', 'page', 'view', jsonb_build_object('context', t.ctx('dev-a')), '2026-11-01 10:02Z');
SELECT cdp.track_event('real-a', 'user', 'sign_in', t.sign_in('dev-a-owner@example.com', '{}', t.ctx('dev-a')), '2026-11-01 10:03Z');
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :junk), NULL::bigint, 'the quarantined profile never links by device');
-- An identifying event sent with a junk UID lands on the customer.
SELECT cdp.track_event('undefined', 'user', 'sign_in', t.sign_in('zed@example.com'), '2026-11-01 11:00Z') AS zed \gset
SELECT t.eq(:zed::bigint, (SELECT profile_id FROM cdp.profiles WHERE customer_id = cdp.md5('zed@example.com')), 'the event answers with the customer');
SELECT t.eq((SELECT profile_id FROM cdp.events WHERE uid = 'undefined' AND action = 'sign_in'), :zed::bigint, 'and is stored on the customer');
SELECT t.eq(cdp.profile_of('undefined'), :junk::bigint, 'the junk UID stays where it was');
-- Junk UIDs in a batch go to the quarantined profile too.
SELECT cdp.track_batch('[{"uid": "null", "category": "page", "action": "view"}, {"uid": "[object Object]", "category": "page", "action": "view"}]') AS r \gset
SELECT t.ok((SELECT bool_and(p.quarantined) FROM cdp.uids u JOIN cdp.profiles p USING (portal, profile_id) WHERE u.uid IN ('null', '[object Object]')),
            'batch: junk UIDs get quarantined profiles');

-- The junk values seen in the wild, for customer ids and UIDs alike.
SELECT t.ok(cdp.junk_reason(junk) IS NOT NULL, 'junk: ' || junk)
FROM unnest(ARRAY['distinct_id', 'distinctid', 'id', 'email', 'user_id', 'not_authenticated', 'anonymous', 'guest',
                  '[object Object]', 'None', 'NaN', 'true', 'false', '"undefined"', '''null''', ' "None" ']) AS junk;
SELECT t.raises(format('SELECT cdp.identify(%L, %L)', 'someone', junk), '22023', 'identify refuses customer id ' || junk, 'cannot identify')
FROM unnest(ARRAY['distinct_id', 'not_authenticated', '"undefined"', '''null''']) AS junk;

-- ------------------------------------------------------------------------
-- Lookalike identifiers.
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L)', 'zw' || chr(8203) || 'uid', 'a', 'b'), '22023', 'zero-width space in a UID', 'format character');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L)', chr(65279) || 'uid', 'a', 'b'), '22023', 'BOM in a UID', 'format character');
SELECT t.raises(format('SELECT cdp.identify(%L, %L)', 'u', 'c' || chr(8238) || '1'), '22023', 'bidi override in a customer id', 'format character');
SELECT t.raises(format('SELECT cdp.identify(%L, %L)', 'u', 'c' || chr(8232) || '1'), '22023', 'line separator in a customer id', 'line or paragraph separator');
SELECT cdp.identify('wide-1', 'ＡＢＣ') AS abc \gset
SELECT t.eq((SELECT customer_id FROM cdp.profiles WHERE profile_id = :abc), 'ABC', 'full-width ＡＢＣ is stored as ABC (NFKC)');
SELECT t.eq(cdp.identify('wide-2', 'ABC'), :abc::bigint, 'and ABC is the same customer');
SELECT cdp.identify('ｗｉｄｅ-3', 'ABC');
SELECT t.eq(cdp.profile_of('wide-3'), :abc::bigint, 'UIDs are NFKC-normalized too');
SELECT cdp.identify('hex-1', upper(md5('hexy'))) AS hexy \gset
SELECT t.eq((SELECT customer_id FROM cdp.profiles WHERE profile_id = :hexy), md5('hexy'), 'an md5 customer id is folded to lowercase');
SELECT t.eq(cdp.identify('hex-2', md5('hexy')), :hexy::bigint, 'upper and lower case md5 are one customer');
SELECT t.eq(cdp.normalize_email('  Ana@Bücher.DE '), 'ana@xn--bcher-kva.de', 'emails: trimmed, lowercased, domain in IDNA form');
SELECT t.eq(cdp.normalize_phone('020 7946 0958', 'GB'), '+442079460958', 'a national number with a region is E.164');
SELECT t.eq(cdp.normalize_phone('+44 20 7946 0958'), '+442079460958', 'an international number needs no region');
SELECT t.eq(cdp.normalize_phone('020 7946 0958'), '02079460958', 'without a region a national number keeps its digits');
SELECT t.eq(cdp.normalize_phone('+44 20 7946 095'), NULL, 'an invalid international number is not a phone');
SELECT cdp.configure_portal('default', '{"default_phone_region": "GB", "contact_linking": "merge"}');
SELECT cdp.track_event('phone-anon', 'form', 'submit', '{"dims": {"customers": {"phone": "020 7946 0958"}}}', '2026-11-01 12:00Z') AS phone_anon \gset
SELECT t.eq((SELECT value FROM cdp.identifiers WHERE profile_id = :phone_anon AND kind = 'phone'), '+442079460958', 'the portal''s region makes the lead form phone E.164');
SELECT cdp.identify('phone-cust', 'c-phone', '{"phone": "+44 20 7946 0958"}') AS phone_cust \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :phone_anon), :phone_cust::bigint, 'the same number written two ways is one person');
-- Constant device ids link nobody, and a portal adds its own.
SELECT cdp.configure_portal('default', '{"constant_device_ids": ["kiosk-7"]}');
SELECT cdp.track_event('stranger-' || d, 'page', 'view', jsonb_build_object('context', t.ctx(d)), '2026-11-01 13:00Z')
FROM unnest(ARRAY['web', '00000000-0000-0000-0000-000000000000', '9774d56d682e549c', 'kiosk-7']) AS d;
SELECT cdp.track_event('signer-' || d, 'user', 'sign_in', t.sign_in(md5(d) || '@example.com', '{}', t.ctx(d)), '2026-11-01 13:05Z')
FROM unnest(ARRAY['web', '00000000-0000-0000-0000-000000000000', '9774d56d682e549c', 'kiosk-7']) AS d;
SELECT t.eq((SELECT count(*) FROM cdp.profiles p JOIN cdp.uids u USING (portal, profile_id) WHERE u.uid LIKE 'stranger-%' AND p.merged_into IS NOT NULL),
            0::bigint, 'constant device ids (built in and the portal''s own) link no stranger');
SELECT cdp.configure_portal('default', '{"constant_device_ids": null, "contact_linking": null, "default_phone_region": null}');

-- ------------------------------------------------------------------------
-- Bounded input: each bad batch item is rejected alone, never XX000.
SELECT '{"v": 1}'::jsonb AS deep \gset
SELECT ('{"a": ' || repeat('[', 200) || '1' || repeat(']', 200) || '}')::jsonb AS deep200 \gset
SELECT jsonb_build_array(
    jsonb_build_object('uid', 'lim-1', 'category', 'page', 'action', 'view', 'payload', :'deep200'::jsonb),
    jsonb_build_object('uid', 'lim-1', 'category', 'page', 'action', 'view', 'payload', jsonb_build_object('context', jsonb_build_object('message_id', repeat('m', 5000)))),
    jsonb_build_object('uid', 'lim-1', 'category', 'page', 'action', 'view', 'payload', '{"n": 1e400, "p": 1.10}'::jsonb),
    jsonb_build_object('uid', 'lim-1', 'category', 'page', 'action', 'view', 'event_time', 'infinity'),
    jsonb_build_object('uid', 'lim-1', 'category', 'page', 'action', 'view', 'payload', jsonb_build_object('dims', jsonb_build_object('customers',
        (SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 201) g))))
) AS batch \gset
SELECT cdp.track_batch(:'batch') AS r \gset
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(x->'index', x->>'sqlstate') ORDER BY (x->>'index')::int) FROM jsonb_array_elements(:'r'::jsonb->'rejected') x),
            '[[0, "54000"], [1, "22001"], [3, "22008"], [4, "54000"]]'::jsonb,
            'a 200-deep payload, a 5,000-character message_id, infinity and 201 attributes each reject their item alone');
SELECT t.eq((:'r'::jsonb->>'stored')::int, 1, 'the good item is stored');
SELECT t.eq((SELECT payload FROM cdp.events WHERE uid = 'lim-1')::text, '{"n": 1' || repeat('0', 400) || ', "p": 1.10}', 'numbers exactly as sent (batch)');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b', :'deep200'), '54000', 'track_event: nesting over 32 levels', '32');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b',
                jsonb_build_object('context', jsonb_build_object('session_id', repeat('s', 256)))), '22001', 'session_id over 255', '255');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b',
                jsonb_build_object('context', jsonb_build_object('device_id', repeat('d', 256)))), '22001', 'device_id over 255', '255');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b',
                jsonb_build_object('extra', jsonb_build_object('identify_id', repeat('i', 256)))), '22001', 'identify_id over 255', '255');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b',
                jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object(repeat('k', 256), 1)))), '22001', 'attribute key over 255', '255');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b',
                jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object('email', repeat('e', 250) || '@example.com')))),
                '22001', 'email over 255', '255');
SELECT t.raises(format('SELECT cdp.identify(%L, %L, %L)', 'lim-2', 'c-lim',
                (SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 201) g)), '54000', 'identify: 201 attributes', '200');
SELECT t.raises($$SELECT cdp.track_event('lim-2', 'a', 'b', '{}', 'infinity')$$, '22008', 'event_time infinity', 'infinity');
SELECT t.raises($$SELECT cdp.track_event('lim-2', 'a', 'b', '{}', now() + interval '25 hours')$$, '22008', 'event_time past the clock skew', 'future');
SELECT t.raises($$SELECT cdp.identify('lim-2', 'c-lim', '{}', 'exact', now() + interval '2 days')$$, '22008', 'identify_time past the clock skew', 'future');
SELECT t.ok(cdp.track_event('lim-2', 'a', 'b', '{}', now() + interval '23 hours') IS NOT NULL, 'a clock a few hours ahead is fine');
SELECT t.ok(cdp.track_event('lim-2', 'a', 'b', ('{"x": ' || repeat('[', 31) || '1' || repeat(']', 31) || '}')::jsonb) IS NOT NULL, '32 levels are accepted');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'lim-2', 'a', 'b', '{"x": ' || repeat('[', 32) || '1' || repeat(']', 32) || '}'),
                '54000', '33 levels are refused', '32');
SELECT cdp.identify('lim-3', 'c-exact', '{"price": 1.10, "huge": 1e400}') AS exact \gset
SELECT t.eq(cdp.profile(:exact)->'attributes'->>'price', '1.10', 'numbers exactly as sent (identify attributes)');
SELECT t.ok(cdp.profile(:exact)->'attributes'->'huge' = '1e400'::jsonb, 'even beyond double precision');
SELECT cdp.track_event('lim-4', 'form', 'submit', '{"dims": {"customers": {"price": 1.10}}}') AS lead \gset
SELECT t.eq(cdp.profile(:lead)->'attributes'->>'price', '1.10', 'numbers exactly as sent (lead form)');
SELECT cdp.configure_portal('default', '{"max_batch_bytes": 2048}');
SELECT t.raises(format('SELECT cdp.track_batch(%L)', (SELECT jsonb_agg(jsonb_build_object('uid', 'lim-5', 'category', 'page', 'action', 'view'))
                                                       FROM generate_series(1, 100))), '54000', 'a batch over max_batch_bytes', 'max_batch_bytes');
SELECT cdp.configure_portal('default', '{"max_batch_bytes": null}');

-- ------------------------------------------------------------------------
-- Profiles about a customer that were not merged are exported and erased with it.
SELECT cdp.configure_portal('default', '{"contact_linking": "suggest"}');
SELECT cdp.track_event('rita-lead', 'form', 'submit', '{"dims": {"customers": {"email": "rita@example.com"}}}', '2026-11-01 14:00Z') AS rita_lead \gset
SELECT cdp.identify('rita-web', 'rita', '{"email": "rita@example.com"}', 'exact', '2026-11-01 14:05Z') AS rita \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :rita_lead), NULL::bigint, 'the lead form profile was only suggested');
SELECT t.eq((SELECT jsonb_agg((x->'profile'->>'profile_id')::bigint) FROM jsonb_array_elements(cdp.export_customer('rita')->'related_profiles') x),
            jsonb_build_array(:rita_lead), 'export_customer includes the unmerged profile with her email');
SELECT t.eq(jsonb_array_length(cdp.export_customer('rita')->'related_profiles'->0->'events'), 1, 'with its events');
SELECT cdp.forget_customer('rita');
SELECT t.eq((SELECT count(*) FROM cdp.profiles WHERE profile_id = :rita_lead), 0::bigint, 'forget_customer erases it too');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'rita-lead'), 0::bigint, 'with its events');
SELECT cdp.configure_portal('default', '{"contact_linking": null}');

-- ------------------------------------------------------------------------
-- Suppression: a page's claim does not bring an erased UID back; a backend's identify does.
SELECT cdp.track_event('sup-1', 'page', 'view', '{}', '2026-11-01 15:00Z');
SELECT cdp.forget_uid('sup-1');
SELECT t.eq(cdp.track_event('sup-1', 'user', 'sign_in', t.sign_in('sup@example.com'), '2026-11-01 15:10Z'), NULL::bigint,
            'an identifying event of an erased UID is suppressed');
SELECT t.eq((SELECT count(*) FROM cdp.uids WHERE uid = 'sup-1'), 0::bigint, 'and does not bring the UID back');
SELECT t.eq(cdp.track_event('sup-1', 'page', 'view', '{}', '2026-11-01 15:11Z'), NULL::bigint, 'later events stay suppressed');
SELECT cdp.identify('sup-1', 'c-sup') AS sup \gset
SELECT t.eq(cdp.track_event('sup-1', 'page', 'view', '{}', '2026-11-01 15:20Z'), :sup::bigint, 'a backend identify lifts the suppression');
SELECT t.ok((SELECT count(*) = 0 FROM cdp.erasures e WHERE e.subject_hash = cdp.sha256('sup-1') OR position('sup-1' IN e::text) > 0),
            'the erasure record cannot be matched by hashing the UID');
