-- Erasure and export: every row of the person goes, only hashes and counts
CREATE EXTENSION IF NOT EXISTS pgcrypto;
-- stay, later events for the erased UIDs are suppressed; others are untouched.
-- Olga: someone else, whose data must survive.
SELECT cdp.track_event('olga-old', 'form', 'submit', jsonb_build_object('dims', '{"customers": {"city": "Riga"}}'::jsonb, 'context', t.ctx('olga-pc')), '2026-11-01 08:00Z');
SELECT cdp.track_event('olga-new', 'user', 'sign_in', t.sign_in('olga@example.com', '{}', t.ctx('olga-pc')), '2026-11-01 09:00Z') AS olga \gset
SELECT cdp.track_event('olga-new', 'pageview', 'view', '{}', '2026-11-01 09:05Z');
-- Pia: an anonymous visit with a lead form, a sign-in on the same PC, a junk identify, more events.
SELECT cdp.track_event('pia-old', 'form', 'submit', jsonb_build_object('dims', '{"customers": {"email": "pia@example.com", "newsletter": true}}'::jsonb, 'context', t.ctx('pia-pc')), '2026-11-02 08:00Z') AS pia_old \gset
SELECT cdp.track_event('pia-new', 'user', 'sign_in', t.sign_in('pia@example.com', '{"name": "Pia"}', t.ctx('pia-pc')), '2026-11-02 09:00Z') AS pia \gset
SELECT cdp.track_event('pia-new', 'user', 'identify', '{"dims": {"customers": {"customer_id": "undefined"}}}', '2026-11-02 09:01Z');
SELECT cdp.track_event('pia-new', 'pageview', 'view', '{}', '2026-11-02 09:02Z');
SELECT cdp.customer_profile(cdp.md5('pia@example.com'))->>'customer_id' AS pia_cid \gset

CREATE TEMP TABLE olga_before AS SELECT t.row_counts() AS total, (SELECT count(*) FROM cdp.events WHERE uid LIKE 'olga%') AS olga_events;

-- Export: everything held about Pia in one document.
SELECT cdp.export_customer(:'pia_cid') AS x \gset
SELECT t.eq(jsonb_array_length(:'x'::jsonb->'events'), 4, 'export: all 4 of Pia''s events, from both UIDs');
SELECT t.eq((SELECT jsonb_agg(u->>'uid' ORDER BY u->>'uid') FROM jsonb_array_elements(:'x'::jsonb->'uids') u), '["pia-new", "pia-old"]'::jsonb, 'export: both UIDs');
SELECT t.ok((:'x'::jsonb->'identifiers')::text LIKE '%pia@example.com%' AND (:'x'::jsonb->'identifiers')::text LIKE '%pia-pc%', 'export: identifiers');
SELECT t.eq(:'x'::jsonb->'profile'->'attributes', '{"name": "Pia", "email": "pia@example.com", "newsletter": true}'::jsonb, 'export: the unified profile');
SELECT t.eq(jsonb_array_length(:'x'::jsonb->'identify_skips'), 1, 'export: the skipped junk identify');
SELECT t.eq(jsonb_array_length(:'x'::jsonb->'explain'->'decisions'), 1, 'export: the merge decision');
SELECT t.eq(:'x'::jsonb->'match_suggestions', '[]'::jsonb, 'export: predicted matches about Pia (none)');
SELECT t.eq(cdp.export_customer('nobody'), NULL::jsonb, 'export of an unknown customer is NULL');

-- Forget Pia.
SELECT cdp.forget_customer(:'pia_cid') AS f \gset
SELECT t.eq(:'f'::jsonb - 'erasure_id', '{"profiles": 2, "uids": 2, "events": 4, "identifiers": 5, "attributes": 5, "merges": 1, "merge_blocks": 0, "identify_skips": 1, "match_suggestions": 0}'::jsonb,
            'the counts of what was erased');
SELECT t.eq((SELECT count(*) FROM cdp.profiles WHERE profile_id IN (:pia, :pia_old) OR customer_id = :'pia_cid'), 0::bigint, 'no profile of Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.uids WHERE uid LIKE 'pia%'), 0::bigint, 'no UID of Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid LIKE 'pia%' OR profile_id IN (:pia, :pia_old)), 0::bigint, 'no event of Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.identifiers WHERE value LIKE '%pia%' OR profile_id IN (:pia, :pia_old)), 0::bigint, 'no identifier of Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.profile_attributes WHERE profile_id IN (:pia, :pia_old) OR source_profile IN (:pia, :pia_old)), 0::bigint, 'no attribute of Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.merges WHERE :pia IN (from_profile, into_profile) OR :pia_old IN (from_profile, into_profile) OR uid LIKE 'pia%'), 0::bigint, 'no decision about Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.identify_skips WHERE uid LIKE 'pia%'), 0::bigint, 'no skip of Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.merge_blocks WHERE :pia IN (from_profile, into_profile) OR :pia_old IN (from_profile, into_profile)), 0::bigint, 'no block about Pia left');
SELECT t.eq((SELECT count(*) FROM cdp.erasures), 1::bigint, 'one erasure record');
SELECT t.ok((SELECT position('pia' IN lower(e::text)) = 0 AND position(:'pia_cid' IN e::text) = 0 FROM cdp.erasures e), 'the record holds no identifier of Pia, only hashes and counts');
SELECT t.ok((SELECT subject_hash <> cdp.sha256(:'pia_cid') AND length(subject_hash) = 64 FROM cdp.erasures), 'the subject is not its plain SHA-256');
SELECT t.eq((SELECT subject_hash FROM cdp.erasures), encode(hmac(:'pia_cid', (SELECT key FROM cdp.install_key ORDER BY created_at LIMIT 1), 'sha256'), 'hex'),
            'it is the HMAC-SHA256 of the customer id under the install key');
SELECT t.eq((SELECT count(*) FROM cdp.erased_uids), 2::bigint, 'both UIDs are suppressed by hash');
SELECT t.eq((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(t.row_counts()) k),
            (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class WHERE relnamespace = 'cdp'::regnamespace AND relkind = 'r'),
            'sanity: row_counts covers every table of the extension');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid LIKE 'olga%'), (SELECT olga_events FROM olga_before), 'Olga''s events are untouched');
SELECT t.eq(cdp.profile(:olga)->'attributes', '{"city": "Riga", "email": "olga@example.com"}'::jsonb, 'Olga''s profile is untouched');

-- Later events for the erased UIDs are suppressed.
SELECT t.eq(cdp.track_event('pia-old', 'pageview', 'view', '{}', '2026-11-03 10:00Z'), NULL::bigint, 'a late event of an erased UID returns NULL');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid LIKE 'pia%'), 0::bigint, 'and is not stored');
SELECT t.eq(cdp.track_batch('[{"uid": "pia-new", "category": "pageview", "action": "view"}, {"uid": "fresh", "category": "pageview", "action": "view"}]')->>'suppressed',
            '1', 'a batch suppresses it too');
SELECT t.eq((SELECT count(*) FROM cdp.uids WHERE uid LIKE 'pia%'), 0::bigint, 'no UID was created for it');
-- A new sign-in is a new decision: the UID counts again.
SELECT cdp.identify('pia-new', 'pia-returns', '{}', 'exact', '2026-11-04 10:00Z') AS back \gset
SELECT t.eq(cdp.track_event('pia-new', 'pageview', 'view', '{}', '2026-11-04 10:01Z'), :back::bigint, 'after a new identify its events count again');

-- forget_uid: an anonymous UID, a UID merged into a customer, a UID of a customer.
SELECT cdp.track_event('anon-x', 'pageview', 'view', jsonb_build_object('context', t.ctx('x-pc')), '2026-11-05') AS anon_x \gset
SELECT t.eq(cdp.forget_uid('anon-x')->>'events', '1', 'forget_uid of an anonymous UID erases its event');
SELECT t.eq((SELECT count(*) FROM cdp.profiles WHERE profile_id = :anon_x), 0::bigint, 'and its profile');
SELECT t.eq((SELECT count(*) FROM cdp.identifiers WHERE value = 'x-pc'), 0::bigint, 'and its identifiers');
SELECT cdp.forget_uid('olga-old') AS fo \gset
SELECT t.eq((:'fo'::jsonb->>'profiles')::int, 1, 'forget_uid of a merged UID erases its own profile');
SELECT t.eq(cdp.profile(:olga)->'attributes', '{"email": "olga@example.com"}'::jsonb, 'with what it had filled on the customer');
SELECT t.eq(cdp.customer_profile(cdp.md5('olga@example.com'))->'uids', '["olga-new"]'::jsonb, 'the customer keeps its other UID');
SELECT cdp.forget_uid('olga-new') AS fn \gset
SELECT t.eq((:'fn'::jsonb->>'profiles')::int, 0, 'forget_uid of a customer''s own UID keeps the customer profile');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'olga-new'), 0::bigint, 'but erases the UID''s events');
SELECT t.eq(cdp.customer_profile(cdp.md5('olga@example.com'))->>'kind', 'customer', 'the customer is still there');

-- Bad calls.
SELECT t.raises($$SELECT cdp.forget_customer('nobody')$$, '22023', 'erasing an unknown customer', 'unknown');
SELECT t.raises($$SELECT cdp.forget_uid('nobody')$$, '22023', 'erasing an unknown UID', 'unknown');
SELECT t.raises($$SELECT cdp.forget_customer(NULL)$$, '22004', 'a NULL customer id');
