-- Behaviour 11: merging costs the same whatever the number of events on the
-- merged profiles (event rows are never rewritten) and keeps what an undo needs.
SELECT count(cdp.track_event('heavy', 'pageview', 'view', jsonb_build_object('context', t.ctx('heavy-dev', 's' || (i % 7))),
                             '2026-11-01'::timestamptz + i * interval '1 minute'))
FROM generate_series(1, 2000) AS i;
SELECT cdp.profile_of('heavy') AS heavy \gset
SELECT cdp.track_event('heavy', 'form', 'submit', '{"dims": {"customers": {"plan": "free"}}}', '2026-11-03 00:00Z');
SELECT cdp.track_event('light', 'pageview', 'view', '{}', '2026-11-01 00:00Z') AS light \gset

CREATE TEMP TABLE before_merge AS SELECT event_id, ctid AS row_ctid, xmin::text AS row_xmin, profile_id FROM cdp.events;
SELECT cdp.identify('heavy', 'merge-cost', '{"plan": "pro"}', 'exact', '2026-11-04 00:00Z') AS c \gset
SELECT cdp.identify('light', 'merge-cost', '{}', 'exact', '2026-11-04 00:01Z');

SELECT t.eq((SELECT count(*) FROM cdp.events e JOIN before_merge b USING (event_id)
             WHERE e.ctid = b.row_ctid AND e.xmin::text = b.row_xmin AND e.profile_id = b.profile_id),
            (SELECT count(*) FROM before_merge), 'no event row was rewritten by the merges');
SELECT t.eq((cdp.profile(:c)->>'event_count')::int, 2002, 'yet every event belongs to the customer');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:c)), 2002::bigint, 'and is on its timeline');
SELECT t.eq((cdp.profile(:c)->>'session_count')::int, 7, 'sessions counted across the merge');

-- What an unmerge needs is kept: the merged profile with its own UID, attributes and events.
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :heavy), :c::bigint, 'the merged profile row is kept, pointing at the customer');
SELECT t.eq((SELECT array_agg(uid) FROM cdp.uids WHERE profile_id = :heavy), ARRAY['heavy'], 'its UID still points at it');
SELECT t.eq((SELECT value FROM cdp.profile_attributes WHERE profile_id = :heavy AND key = 'plan'), '"free"'::jsonb, 'its own attributes are kept');
SELECT t.eq(cdp.profile(:c)->'attributes'->>'plan', 'pro', 'while the customer''s value wins');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE profile_id = :heavy), 2001::bigint, 'its events still name it');
SELECT t.eq((SELECT count(*) FROM cdp.merges WHERE into_profile = :c), 2::bigint, 'one merge row per merged profile');
SELECT t.ok((SELECT bool_and(identify_time IS NOT NULL AND merged_at IS NOT NULL AND uid IS NOT NULL) FROM cdp.merges), 'merge rows carry time and cause');
