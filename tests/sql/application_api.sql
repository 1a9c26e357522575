-- The application API: customer ids from emails, identify outcomes, timeline
-- paging, the change feed (single session; the concurrent case is in
-- tests/feed.py) and strict batch items.

-- ------------------------------------------------------------------------
-- customer_id_for_email: md5 of the normalized email, the one derivation.
SELECT t.eq(cdp.customer_id_for_email(' Jo.Hn+shop@GoogleMail.com '), md5('john@gmail.com'),
            'customer_id_for_email is md5(normalize_email(email)): Gmail dots and +tags go, googlemail is gmail');
SELECT t.eq(cdp.customer_id_for_email('Ana@Bücher.DE'), md5('ana@xn--bcher-kva.de'), 'the domain in IDNA form');
SELECT t.ok(cdp.customer_id_for_email('Jo.Hn@gmail.com') <> md5(lower('Jo.Hn@gmail.com')),
            'it differs from md5(lower(email)) for a Gmail address with dots (the README says when)');
SELECT t.eq(cdp.customer_id_for_email('user.a@example.com'), md5('user.a@example.com'), 'and equals the seed''s md5(email) for a plain lowercase address');
SELECT t.raises($$SELECT cdp.customer_id_for_email('not an email')$$, '22023', 'not an address', 'not a usable email address');
SELECT t.raises($$SELECT cdp.customer_id_for_email('undefined@example.com')$$, '22023', 'a placeholder address', 'not a usable email address');
SELECT t.eq(cdp.customer_id_for_email(NULL), NULL, 'NULL in, NULL out');

-- ------------------------------------------------------------------------
-- identify_outcome: what happened to the UID, and what was merged.
SELECT cdp.track_event('o-anon', 'page', 'view', jsonb_build_object('context', t.ctx('o-dev')), '2026-11-01 10:00Z') AS o_anon \gset
SELECT cdp.track_event('o-other', 'page', 'view', jsonb_build_object('context', t.ctx('o-dev')), '2026-11-01 10:01Z') AS o_other \gset
SELECT cdp.identify_outcome('o-anon', 'o-cust', '{"name": "O"}', 'exact', '2026-11-01 10:05Z') AS r \gset
SELECT t.eq(:'r'::jsonb->>'outcome', 'created', 'a new customer id: created');
SELECT t.eq((:'r'::jsonb->>'profile_id')::bigint, (SELECT profile_id FROM cdp.profiles WHERE customer_id = 'o-cust'), 'with the customer profile id');
SELECT t.eq(:'r'::jsonb->'merged_profiles', jsonb_build_array(:o_anon, :o_other), 'merged_profiles: the UID''s own anonymous profile and the one on its device');
SELECT t.eq(:'r'::jsonb->'reassigned_from', 'null'::jsonb, 'not reassigned');
SELECT t.eq(:'r'::jsonb->'skipped', '[]'::jsonb, 'nothing skipped');
SELECT (:'r'::jsonb->>'profile_id')::bigint AS o_cust \gset
SELECT cdp.identify_outcome('o-new-uid', 'o-cust', '{}', 'exact', '2026-11-01 10:06Z') AS r \gset
SELECT t.eq(:'r'::jsonb - 'profile_id', '{"outcome": "linked", "merged_profiles": [], "reassigned_from": null, "skipped": []}'::jsonb,
            'a new UID of a known customer: linked, nothing merged');
SELECT cdp.track_event('o-third', 'form', 'submit', '{"dims": {"customers": {"email": "o@example.com"}}}', '2026-11-01 10:07Z') AS o_third \gset
SELECT cdp.identify_outcome('o-new-uid', 'o-cust', '{"email": "o@example.com"}', 'exact', '2026-11-01 10:08Z') AS r \gset
SELECT t.eq(:'r'::jsonb->>'outcome', 'unchanged', 'the UID was already this customer''s: unchanged');
SELECT t.eq(:'r'::jsonb->'merged_profiles', jsonb_build_array(:o_third), 'merged_profiles whatever the outcome: the lead form''s profile');
SELECT cdp.identify_outcome('o-anon', 'o-cust-2', '{}', 'exact', '2026-11-02 10:00Z') AS r \gset
SELECT t.eq(:'r'::jsonb->>'outcome', 'reassigned', 'a UID of another customer: reassigned');
SELECT t.eq((:'r'::jsonb->>'reassigned_from')::bigint, :o_cust::bigint, 'reassigned_from: the customer it moved from');
SELECT cdp.identify_outcome('undefined', 'o-cust', '{"email": "not-an-email"}') AS r \gset
SELECT t.eq(:'r'::jsonb->>'outcome', 'unchanged', 'a junk UID is not attached: unchanged');
SELECT t.eq((SELECT jsonb_agg(x->>'field' ORDER BY x->>'field') FROM jsonb_array_elements(:'r'::jsonb->'skipped') x), '["attributes.email", "uid"]'::jsonb,
            'skipped lists the junk UID and the unusable email');
SELECT t.eq(cdp.identify('o-new-uid', 'o-cust'), :o_cust::bigint, 'identify answers the same profile id');
SELECT t.raises($$SELECT cdp.identify_outcome('u', 'null')$$, '22023', 'identify_outcome refuses what identify refuses', 'cannot identify');

-- ------------------------------------------------------------------------
-- events_of paging: pages put together equal the direct query, both ways.
SELECT cdp.identify('pg-a', 'pager') AS pager \gset
SELECT cdp.track_batch((SELECT jsonb_agg(jsonb_build_object('uid', CASE WHEN g % 3 = 0 THEN 'pg-b' ELSE 'pg-a' END,
                                                            'category', 'page', 'action', 'view',
                                                            'event_time', to_char((timestamptz '2026-11-01 00:00Z' + (g / 4) * interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
                        FROM generate_series(1, 50) g));
SELECT cdp.identify('pg-b', 'pager');
CREATE TEMP TABLE direct AS
SELECT row_number() OVER (ORDER BY e.event_time, e.event_id) AS n, e.event_id
FROM cdp.events e WHERE e.profile_id IN (SELECT cdp.family_of(:pager));
CREATE TEMP TABLE paged (n serial, event_id bigint);
DO $$
DECLARE
    last bigint;
    got int;
    pages int := 0;
BEGIN
    LOOP
        INSERT INTO paged (event_id) SELECT e.event_id FROM cdp.events_of(cdp.profile_of('pg-a'), last, 7) e;
        GET DIAGNOSTICS got = ROW_COUNT;
        EXIT WHEN got = 0;
        pages := pages + 1;
        last := (SELECT event_id FROM paged ORDER BY n DESC LIMIT 1);
    END LOOP;
    PERFORM t.eq(pages, 8, 'oldest first: 50 events in pages of 7 are 8 pages');
END
$$;
SELECT t.eq((SELECT array_agg(event_id ORDER BY n) FROM paged), (SELECT array_agg(event_id ORDER BY n) FROM direct),
            'oldest first: the pages put together are the direct query, ties on event_time included');
TRUNCATE paged;
DO $$
DECLARE last bigint; got int;
BEGIN
    LOOP
        INSERT INTO paged (event_id) SELECT e.event_id FROM cdp.events_of(cdp.profile_of('pg-a'), last, 9, newest_first => true) e;
        GET DIAGNOSTICS got = ROW_COUNT;
        EXIT WHEN got = 0;
        last := (SELECT event_id FROM paged ORDER BY n DESC LIMIT 1);
    END LOOP;
END
$$;
SELECT t.eq((SELECT array_agg(event_id ORDER BY n) FROM paged), (SELECT array_agg(event_id ORDER BY n DESC) FROM direct),
            'newest first: the pages put together are the direct query reversed');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:pager)), 50::bigint, 'without paging arguments: the whole timeline');
SELECT t.eq((SELECT array_agg(event_id) FROM cdp.events_of(:pager, NULL, 3, true)),
            (SELECT array_agg(event_id ORDER BY n DESC) FROM (SELECT * FROM direct ORDER BY n DESC LIMIT 3) d), 'the latest 3');
SELECT t.raises($$SELECT * FROM cdp.events_of(1, -5)$$, '22023', 'an unknown after_event', 'not an event');
SELECT t.raises($$SELECT * FROM cdp.events_of(1, NULL, -1)$$, '22023', 'a negative max_rows', 'max_rows');

-- ------------------------------------------------------------------------
-- The change feed, in one session (every decision kind, cursors, scrubbing on erasure).
SELECT coalesce(max(cursor), 0) AS c0 FROM cdp.changes_since(0, 100000) \gset
SELECT cdp.track_event('f-anon', 'page', 'view', jsonb_build_object('context', t.ctx('f-dev')), '2026-11-01 10:00Z') AS f_anon \gset
SELECT cdp.identify('f-anon', 'f-cust', '{}', 'exact', '2026-11-01 10:05Z') AS f_cust \gset
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(kind, profile_id, customer_profile, customer_id, detail->>'reason')) FROM cdp.changes_since(:c0)),
            jsonb_build_array(jsonb_build_array('merge', :f_anon, :f_cust, 'f-cust', 'uid')), 'a merge is one change with its profiles and customer id');
SELECT max(cursor) AS c1 FROM cdp.changes_since(:c0) \gset
SELECT t.eq((SELECT count(*) FROM cdp.changes_since(:c1)), 0::bigint, 'after its cursor, nothing');
SELECT cdp.unmerge((SELECT merge_id FROM cdp.merges WHERE from_profile = :f_anon));
SELECT cdp.identify('f-anon', 'f-cust-2', '{}', 'exact', '2026-11-02 10:00Z') AS f_cust2 \gset
SELECT t.eq((SELECT jsonb_agg(kind ORDER BY cursor, change_id) FROM cdp.changes_since(:c1)), '["unmerge", "merge"]'::jsonb,
            'an unmerge, then the merge into the second customer');
SELECT cdp.identify('f-anon', 'f-cust-3') AS f_cust3 \gset
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(kind, customer_id, (detail->>'from_customer_profile')::bigint)) FROM cdp.changes_since(:c1) WHERE kind = 'uid_reassigned'),
            jsonb_build_array(jsonb_build_array('uid_reassigned', 'f-cust-3', :f_cust2)), 'a shared-browser reassignment, with the customer it came from');
SELECT cdp.unmerge((SELECT merge_id FROM cdp.merges WHERE kind = 'uid_reassigned' AND uid = 'f-anon'));
SELECT t.ok((SELECT bool_or(kind = 'uid_restored') FROM cdp.changes_since(:c1)), 'undoing it is a uid_restored change');
SELECT max(cursor) AS c2 FROM cdp.changes_since(:c1) \gset
-- a predicted suggestion, accepted
INSERT INTO cdp.match_suggestions (portal, profile_id, customer_profile, probability, signals)
SELECT 'default', cdp.track_event('f-sugg', 'page', 'view'), :f_cust3, 0.8, '{}';
SELECT cdp.accept_suggestion((SELECT max(suggestion_id) FROM cdp.match_suggestions));
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(kind, detail->>'reason') ORDER BY change_id) FROM cdp.changes_since(:c2)),
            '[["merge", "predict"], ["suggestion_accepted", null]]'::jsonb, 'an accepted suggestion: a predicted merge and the acceptance');
SELECT max(cursor) AS c3 FROM cdp.changes_since(:c2) \gset
SELECT cdp.forget_customer('f-cust-2');
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(kind, customer_id, detail->>'subject')) FROM cdp.changes_since(:c3)),
            '[["erasure", null, "customer"]]'::jsonb, 'an erasure is announced without personal data');
SELECT t.ok((SELECT (detail->'profiles') @> jsonb_build_array(:f_cust2) FROM cdp.changes_since(:c3)), 'with the erased profile ids');
SELECT t.eq((SELECT count(*) FROM cdp.identity_changes WHERE customer_id = 'f-cust-2' OR detail::text LIKE '%f-anon%' AND customer_profile = :f_cust2),
            0::bigint, 'earlier changes about the erased customer no longer hold its customer id');
SELECT t.raises($$SELECT * FROM cdp.changes_since(-1)$$, '22023', 'a negative cursor', 'cursor');
SELECT t.raises($$SELECT * FROM cdp.changes_since(0, 0)$$, '22023', 'max_rows 0', 'max_rows');
SELECT t.eq(cdp.prune_changes(:c1) > 0, true, 'prune_changes removes what a consumer followed');
SELECT t.eq((SELECT count(*) FROM cdp.changes_since(0) WHERE cursor <= :c1), 0::bigint, 'and only that');

-- ------------------------------------------------------------------------
-- Strict batch items: an unknown key, a number as uid, an object as customer id reject their item alone.
SELECT cdp.track_batch('[
    {"uid": "s-1", "category": "page", "action": "view", "timestamp": "2026-11-01T10:00:00Z"},
    {"uid": 42, "category": "page", "action": "view"},
    {"uid": "s-1", "category": 7, "action": "view"},
    {"uid": "s-1", "category": "user", "action": "sign_in", "payload": {"dims": {"customers": {"customer_id": {"id": 1}}}}},
    {"uid": "s-1", "category": "page", "action": "view", "event_time": "2026-11-01T10:00:00Z"}
]') AS r \gset
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(x->'index', x->>'sqlstate') ORDER BY (x->>'index')::int) FROM jsonb_array_elements(:'r'::jsonb->'rejected') x),
            '[[0, "22023"], [1, "22023"], [2, "22023"], [3, "22023"]]'::jsonb, 'each bad item is rejected alone');
SELECT t.ok((SELECT x->>'message' LIKE '%unknown key "timestamp"%event_time%' FROM jsonb_array_elements(:'r'::jsonb->'rejected') x WHERE (x->>'index')::int = 0),
            'the unknown key is named, with the accepted ones');
SELECT t.eq((:'r'::jsonb->>'stored')::int, 1, 'the good item is stored');
