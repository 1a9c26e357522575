-- Portals are separate identity spaces: the same customer ids, UIDs and
-- message ids in two portals are two people, through identify, merges,
-- unmerge, erasure and export; nothing is read or written across portals.
SELECT t.eq(cdp.current_portal(), 'default', 'calls work in the portal ''default'' unless the session chooses (SET cdp.portal)');
SELECT t.eq(cdp.create_portal('shop-a')->>'portal', 'shop-a', 'create_portal');
SELECT cdp.create_portal('shop-b', '{"max_batch_items": 2}');
SELECT t.raises($$SELECT cdp.create_portal('shop-a')$$, '42710', 'a portal that exists already', 'already exists');
SELECT t.raises($$SELECT cdp.create_portal('bad portal!')$$, '22023', 'an unusable portal name', 'not usable');
SELECT t.raises($$SELECT cdp.create_portal('shop-c', '{"max_payload_bytes": 5}')$$, '22023', 'a bad setting names its key', 'max_payload_bytes');
SELECT t.eq((SELECT array_agg(portal ORDER BY portal) FROM cdp.portals), ARRAY['default', 'shop-a', 'shop-b'], 'cdp.portals lists them');

-- The same story in both portals: the same UIDs, customer ids and message ids.
CREATE FUNCTION pg_temp.story() RETURNS void LANGUAGE sql AS $$
    SELECT cdp.track_event('u-day1', 'pageview', 'view', '{"context": {"device_id": "pc", "message_id": "m-1"}}', '2026-11-01 10:00Z');
    SELECT cdp.track_event('u-day3', 'pageview', 'view', '{"context": {"device_id": "pc", "message_id": "m-2"}}', '2026-11-03 10:00Z');
    SELECT cdp.track_event('u-day7', 'user', 'sign_in',
        t.sign_in('ann@example.com', '{"name": "Ann"}', '{"device_id": "pc", "message_id": "m-3"}'), '2026-11-07 10:00Z');
$$;
SET cdp.portal = 'shop-a';
SELECT pg_temp.story();
SELECT cdp.customer_profile(cdp.md5('ann@example.com')) AS ann_a \gset
SET cdp.portal = 'shop-b';
SELECT t.eq(cdp.customer_profile(cdp.md5('ann@example.com')), NULL::jsonb, 'portal shop-b does not see shop-a''s customer');
SELECT t.eq(cdp.profile_of('u-day1'), NULL::bigint, 'nor its UIDs');
SELECT t.eq(cdp.profile((:'ann_a'::jsonb->>'profile_id')::bigint), NULL::jsonb, 'nor its profiles by id');
SELECT pg_temp.story();
SELECT cdp.customer_profile(cdp.md5('ann@example.com')) AS ann_b \gset
SELECT t.ok((:'ann_a'::jsonb->>'profile_id') <> (:'ann_b'::jsonb->>'profile_id'), 'the same customer id is two customers');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE message_id = 'm-1'), 2::bigint, 'the same message id is stored once per portal');
SELECT t.eq(jsonb_array_length(:'ann_b'::jsonb->'merged_profiles'), 2, 'shop-b merged its own two anonymous profiles');
SELECT t.eq((SELECT count(*) FROM cdp.merges WHERE portal = 'shop-b'), 2::bigint, 'shop-b''s merges');
SELECT t.ok(NOT EXISTS (SELECT FROM cdp.merges m JOIN cdp.profiles p ON p.profile_id = m.from_profile WHERE p.portal <> m.portal),
            'no merge crosses portals');

-- Unmerge in shop-b leaves shop-a alone; a merge id of another portal is unknown.
SELECT merge_id AS b_merge FROM cdp.merges WHERE portal = 'shop-b' ORDER BY merge_id LIMIT 1 \gset
SELECT merge_id AS a_merge FROM cdp.merges WHERE portal = 'shop-a' ORDER BY merge_id LIMIT 1 \gset
SELECT t.raises(format('SELECT cdp.unmerge(%s)', :a_merge), '22023', 'shop-a''s merge is unknown in shop-b', 'does not exist');
SELECT cdp.unmerge(:b_merge, cascade => true);
SET cdp.portal = 'shop-a';
SELECT t.eq(jsonb_array_length(cdp.customer_profile(cdp.md5('ann@example.com'))->'merged_profiles'), 2, 'shop-a keeps both merges');

-- Export and erasure stay in their portal.
SELECT t.eq(jsonb_array_length(cdp.export_customer(cdp.md5('ann@example.com'))->'events'), 3, 'export: shop-a''s three events only');
SELECT cdp.forget_customer(cdp.md5('ann@example.com'));
SELECT t.eq(cdp.customer_profile(cdp.md5('ann@example.com')), NULL::jsonb, 'Ann is erased from shop-a');
SET cdp.portal = 'shop-b';
SELECT t.eq(cdp.customer_profile(cdp.md5('ann@example.com'))->>'customer_id', cdp.md5('ann@example.com'), 'Ann of shop-b is untouched');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE portal = 'shop-b'), 3::bigint, 'and so are her events');
SELECT t.eq(cdp.track_event('u-day1', 'pageview', 'view') IS NOT NULL, true, 'an erased UID of shop-a is not suppressed in shop-b');

-- Settings are per portal: shop-b allows batches of 2.
SELECT t.raises($$SELECT cdp.track_batch('[{"uid": "x", "category": "c", "action": "a"}, {"uid": "x", "category": "c", "action": "a"}, {"uid": "x", "category": "c", "action": "a"}]')$$,
                '54000', 'shop-b''s own max_batch_items', 'the portal''s max_batch_items allows 2');
SET cdp.portal = 'default';
SELECT t.eq((cdp.track_batch('[{"uid": "x", "category": "c", "action": "a"}, {"uid": "x", "category": "c", "action": "a"}, {"uid": "x", "category": "c", "action": "a"}]')->>'stored')::int,
            3, 'the default portal keeps the server default');
SELECT cdp.configure_portal('shop-b', '{"max_batch_items": null}');
SET cdp.portal = 'shop-b';
SELECT t.eq((cdp.track_batch('[{"uid": "y", "category": "c", "action": "a"}, {"uid": "y", "category": "c", "action": "a"}, {"uid": "y", "category": "c", "action": "a"}]')->>'stored')::int,
            3, 'a setting set to null goes back to the server default, at once (the cache follows)');
SELECT t.raises($$SELECT cdp.configure_portal('shop-b', '{"predict_review": 0.99, "predict_auto_merge": 0.9}')$$, '22023',
                'contradicting predict thresholds', 'predict_review');
SELECT t.raises($$SELECT cdp.configure_portal('shop-b', '{"colour": "blue"}')$$, '22023', 'an unknown setting', 'unknown portal setting "colour"');
SELECT t.raises($$SELECT cdp.configure_portal('nowhere', '{}')$$, '22023', 'an unknown portal', 'portal "nowhere" does not exist');

-- A session on an unknown portal gets a clear error, and nothing is written.
SET cdp.portal = 'nowhere';
SELECT t.raises($$SELECT cdp.track_event('u', 'c', 'a')$$, '22023', 'tracking in an unknown portal', 'portal "nowhere" does not exist');
SELECT t.raises($$SELECT cdp.profile_of('u')$$, '22023', 'reading in an unknown portal', 'portal "nowhere" does not exist');
RESET cdp.portal;
SELECT t.raises($$SET cdp.portl = 'x'$$, '42602', 'a misspelt cdp. setting is an error');

-- Every public function takes its portal as an optional last argument (for a router, or Citus delegation):
-- the same call as under SET cdp.portal, checked the same way.
SELECT cdp.create_portal('by_arg');
SELECT cdp.track_event('arg-uid', 'pageview', 'view', '{}', now(), portal => 'by_arg') AS arg_p \gset
SELECT t.eq((SELECT portal FROM cdp.events WHERE uid = 'arg-uid'), 'by_arg', 'track_event(..., portal => ...) writes in that portal');
SELECT t.eq(cdp.profile_of('arg-uid'), NULL::bigint, 'the session''s portal does not see it');
SELECT t.eq(cdp.profile_of('arg-uid', 'by_arg'), :arg_p::bigint, 'profile_of(uid, portal) does');
SELECT cdp.identify('arg-uid', 'arg-cust', '{}', 'exact', now(), 'by_arg') AS arg_c \gset
SELECT t.eq(cdp.customer_profile('arg-cust', 'by_arg')->>'kind', 'customer', 'identify and customer_profile by argument');
SELECT t.eq((cdp.track_batch('[{"uid": "arg-uid", "category": "p", "action": "v"}]', 'by_arg')->>'stored')::int, 1, 'track_batch by argument');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:arg_c, NULL, NULL, false, 'by_arg')), 2::bigint, 'events_of by argument');
SELECT t.eq(cdp.explain(:arg_c, 'by_arg')->>'customer_id', 'arg-cust', 'explain by argument');
SELECT t.ok(cdp.export_customer('arg-cust', 'by_arg') IS NOT NULL, 'export_customer by argument');
SELECT t.eq(cdp.profile_at('arg-uid', now(), 'by_arg'), :arg_c::bigint, 'profile_at by argument');
SELECT t.eq(cdp.current_portal('by_arg'), 'by_arg', 'current_portal(portal) checks and answers it');
SELECT t.raises($$SELECT cdp.track_event('u', 'c', 'a', '{}', now(), 'no_such_portal')$$, '22023', 'an unknown portal by argument', 'no_such_portal');
SELECT t.eq((cdp.forget_uid('arg-uid', 'by_arg')->>'events')::int, 2, 'forget_uid by argument');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE portal = 'by_arg' AND uid = 'arg-uid'), 0::bigint, 'and erases in that portal');
