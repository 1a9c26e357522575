-- cdp.unmerge, cdp.profile_at, cdp.explain: merges are explainable and undoable.
SELECT cdp.track_event('p-uid', 'pageview', 'view', jsonb_build_object('context', t.ctx('family-pc', 's1')), '2026-11-01 10:00Z') AS p \gset
SELECT cdp.track_event('p-uid', 'form', 'submit', '{"dims": {"customers": {"newsletter": true, "city": "Hue"}}}', '2026-11-01 10:01Z');
SELECT cdp.track_event('p-uid', 'pageview', 'view', '{}', '2026-11-01 10:02Z');

SELECT cdp.track_event('c-uid', 'user', 'sign_in', t.sign_in('mai@example.com', '{"name": "Mai"}', t.ctx('family-pc', 's2')), '2026-11-02 09:00Z') AS c \gset

SELECT merge_id AS m FROM cdp.merges WHERE from_profile = :p \gset
SELECT t.eq((SELECT reason FROM cdp.merges WHERE merge_id = :m), 'device_id', 'the family PC merged p-uid''s profile by device');
SELECT cdp.profile(:c) AS merged_profile \gset
SELECT array_agg(event_id ORDER BY event_id) AS merged_timeline FROM cdp.events_of(:c) \gset
SELECT t.eq(cdp.profile(:c)->'attributes', '{"name": "Mai", "email": "mai@example.com", "newsletter": true, "city": "Hue"}'::jsonb, 'gaps filled on merge');

-- explain: each UID with the decision that brought it, each attribute with its source.
SELECT cdp.explain(:c) AS e \gset
SELECT t.eq((SELECT x->'via'->>'reason' FROM jsonb_array_elements(:'e'::jsonb->'uids') x WHERE x->>'uid' = 'p-uid'), 'device_id', 'explain: p-uid came in by device');
SELECT t.eq((SELECT x->'via'->>'evidence' FROM jsonb_array_elements(:'e'::jsonb->'uids') x WHERE x->>'uid' = 'p-uid'), 'family-pc', 'explain: with its evidence');
SELECT t.eq((SELECT x->'via'->>'rule' FROM jsonb_array_elements(:'e'::jsonb->'uids') x WHERE x->>'uid' = 'c-uid'), 'identified before it had an anonymous profile', 'explain: c-uid signed in directly');
SELECT t.eq(:'e'::jsonb->'attributes'->'city'->>'source', 'merge', 'explain: city came from the merge');
SELECT t.eq((:'e'::jsonb->'attributes'->'city'->>'from_profile')::bigint, :p::bigint, 'explain: from p-uid''s profile');
SELECT t.eq(:'e'::jsonb->'attributes'->'name'->>'source', 'identify', 'explain: name came from the identify');
SELECT t.eq(jsonb_array_length(:'e'::jsonb->'decisions'), 1, 'explain lists the decision');

-- unmerge restores the profile with its UID, attributes and events, and reports what moved.
SELECT cdp.unmerge(:m) AS r \gset
SELECT t.eq(:'r'::jsonb - 'merge_id', jsonb_build_object('kind', 'merge', 'restored_profile', :p, 'customer_profile', :c,
            'uids', '["p-uid"]'::jsonb, 'events', 3, 'attributes_removed', '["city", "newsletter"]'::jsonb, 'cascaded', '[]'::jsonb),
            'the report says what moved');
SELECT t.eq(cdp.profile_of('p-uid'), :p::bigint, 'the UID is back on its own profile');
SELECT t.eq(cdp.profile(:p)->>'kind', 'anonymous', 'which is anonymous again');
SELECT t.eq(cdp.profile(:p)->'attributes', '{"newsletter": true, "city": "Hue"}'::jsonb, 'with its own attributes');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:p)), 3::bigint, 'and its events');
SELECT t.eq(cdp.profile(:c)->'attributes', '{"name": "Mai", "email": "mai@example.com"}'::jsonb, 'the filled attributes left the customer');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:c)), 1::bigint, 'the customer keeps only its own events');
SELECT t.ok((SELECT undone_at IS NOT NULL FROM cdp.merges WHERE merge_id = :m), 'the merge row is marked undone');
SELECT now() AS after_unmerge \gset

-- profile_at honours the merge (from its identify_time, 2026-11-02 09:00) and the unmerge (from when it was done).
SELECT t.eq(cdp.profile_at('p-uid', '2026-11-02 08:59Z'), :p::bigint, 'profile_at before the merge: its own profile');
SELECT t.eq(cdp.profile_at('p-uid', '2026-11-02 09:00Z'), :c::bigint, 'profile_at between merge and unmerge: the customer');
SELECT t.eq(cdp.profile_at('p-uid', :'after_unmerge'), :p::bigint, 'profile_at after the unmerge: its own profile again');
SELECT t.eq(cdp.profile_at('p-uid', '2020-01-01'), NULL::bigint, 'profile_at before the UID was seen: NULL');

-- The undone decision is remembered: the same evidence does not merge them again.
SELECT cdp.track_event('c-uid', 'user', 'identify', t.sign_in('mai@example.com', '{}', t.ctx('family-pc', 's3')), '2026-11-03 09:00Z');
SELECT t.eq(cdp.profile_of('p-uid'), :p::bigint, 'the same device no longer merges p-uid into Mai');
SELECT t.eq(cdp.track_event('p-uid', 'pageview', 'view', jsonb_build_object('context', t.ctx('family-pc', 's4')), '2026-11-03 10:00Z'),
            :p::bigint, 'nor does the next event of the UID');
-- New evidence does: p-uid fills in Mai's email.
SELECT cdp.track_event('p-uid', 'form', 'submit', '{"dims": {"customers": {"email": "MAI@example.com"}}}', '2026-11-04 10:00Z');
SELECT cdp.identify('c-uid', cdp.md5('mai@example.com'), '{}', 'exact', '2026-11-04 11:00Z');
SELECT t.eq(cdp.profile_of('p-uid'), :c::bigint, 'new evidence (the same email) merges again');
SELECT t.eq((SELECT reason FROM cdp.merges WHERE from_profile = :p AND undone_at IS NULL), 'email', 'recorded as an email merge');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:c)), 7::bigint, 'merge, unmerge, merge: every event of both is on the customer');
SELECT t.ok((SELECT array_agg(event_id ORDER BY event_id) FROM cdp.events_of(:c)) @> :'merged_timeline'::bigint[], 'including the whole timeline of before');

-- Bad calls: clear errors, nothing done.
SELECT t.raises(format('SELECT cdp.unmerge(%s)', :m), '55000', 'undoing a merge twice', 'already undone');
SELECT t.raises('SELECT cdp.unmerge(987654)', '22023', 'an unknown merge id', 'does not exist');
SELECT t.raises('SELECT cdp.unmerge(NULL)', '22004', 'a NULL merge id', 'merge_id');

-- Later merges that built on a merge: fail naming them, or unwind with cascade.
SELECT cdp.track_event('q-uid', 'form', 'submit', jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object('email', 'kai@example.com')), 'context', t.ctx('kai-tablet')), '2026-11-05 10:00Z') AS q \gset
SELECT cdp.identify('kai-1', 'kai', '{}', 'exact', '2026-11-05 11:00Z') AS kai \gset
SELECT cdp.track_event('kai-1', 'user', 'identify', jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object('customer_id', 'kai')), 'context', t.ctx('kai-tablet')), '2026-11-05 11:01Z');
SELECT merge_id AS mq FROM cdp.merges WHERE from_profile = :q \gset
SELECT cdp.track_event('r-uid', 'form', 'submit', '{"dims": {"customers": {"email": "kai@example.com"}}}', '2026-11-05 12:00Z') AS r_profile \gset
SELECT cdp.identify('kai-1', 'kai', '{}', 'exact', '2026-11-05 13:00Z');
SELECT merge_id AS mr FROM cdp.merges WHERE from_profile = :r_profile \gset
SELECT t.eq((SELECT reason || ':' || evidence FROM cdp.merges WHERE merge_id = :mr), 'email:kai@example.com', 'r-uid merged by the email that q-uid brought');
SELECT t.raises(format('SELECT cdp.unmerge(%s)', :mq), '55000', 'unmerging what a later merge built on fails', format('later merge(s) %s', :mr));
SELECT t.eq(cdp.profile_of('r-uid'), :kai::bigint, 'and changes nothing');
SELECT cdp.unmerge(:mq, cascade => true) AS rc \gset
SELECT t.eq(:'rc'::jsonb->'cascaded', jsonb_build_array(:mr::bigint), 'with cascade the later merge is undone too');
SELECT t.eq(cdp.profile_of('q-uid'), :q::bigint, 'q-uid restored');
SELECT t.eq(cdp.profile_of('r-uid'), :r_profile::bigint, 'r-uid restored');
SELECT t.eq((SELECT undone_by_cascade_of FROM cdp.merges WHERE merge_id = :mr), :mq::bigint, 'the cascaded undo says why');

-- A shared-browser reassignment can be undone: the UID goes back.
SELECT cdp.identify('shared', 'ann', '{}', 'exact', '2026-11-06 09:00Z') AS ann \gset
SELECT '2026-11-06 09:30Z' AS ann_time \gset
SELECT cdp.identify('shared', 'ben', '{}', 'exact', '2026-11-06 10:00Z') AS ben \gset
SELECT '2026-11-06 10:30Z' AS ben_time \gset
SELECT merge_id AS mre FROM cdp.merges WHERE kind = 'uid_reassigned' AND uid = 'shared' \gset
SELECT t.eq(cdp.profile_at('shared', :'ann_time'), :ann::bigint, 'profile_at: Ann''s before the reassignment');
SELECT t.eq(cdp.profile_at('shared', :'ben_time'), :ben::bigint, 'profile_at: Ben''s after it');
SELECT t.eq(cdp.unmerge(:mre)->>'kind', 'uid_reassigned', 'undoing a reassignment');
SELECT t.eq(cdp.profile_of('shared'), :ann::bigint, 'the UID is Ann''s again');
SELECT t.eq(cdp.profile_at('shared', now()), :ann::bigint, 'profile_at now: Ann''s');
SELECT t.eq(cdp.profile_at('shared', :'ben_time'), :ben::bigint, 'profile_at still knows it was Ben''s in between');
SELECT cdp.identify('shared', 'ben', '{}', 'exact', '2026-11-06 10:00Z');
SELECT t.eq(cdp.profile_of('shared'), :ann::bigint, 'a replay of the undone identify does not redo it');
SELECT cdp.identify('shared', 'ben', '{}', 'exact', now() + interval '1 second');
SELECT t.eq(cdp.profile_of('shared'), :ben::bigint, 'a later sign-in as Ben does');
