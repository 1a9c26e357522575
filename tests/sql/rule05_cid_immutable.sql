-- Behaviour 5: a CID never changes once assigned and two customers are never
-- merged automatically. A UID of customer A that identifies as B (a shared
-- browser without logout): A keeps its CID and all history up to that moment,
-- the UID counts for B from then on, and the conflict is its own kind of row
-- in cdp.merges. A direct attempt to change a customer's CID fails.
SELECT cdp.track_event('shared', 'pageview', 'view', '{}', '2026-11-01 09:00Z') AS anon \gset
SELECT cdp.identify('shared', 'alice', '{"name": "Alice"}', 'exact', '2026-11-01 09:01Z') AS alice \gset
SELECT cdp.track_event('shared', 'cart', 'add', '{}', '2026-11-01 09:02Z');

-- Bob signs in on the same browser without Alice logging out.
SELECT cdp.identify('shared', 'bob', '{"name": "Bob"}', 'exact', '2026-11-01 10:00Z') AS bob \gset
SELECT cdp.track_event('shared', 'cart', 'add', '{}', '2026-11-01 10:01Z');

SELECT t.ok(:alice <> :bob, 'two customers');
SELECT t.eq(cdp.profile(:alice)->>'customer_id', 'alice', 'Alice keeps her CID');
SELECT t.eq(cdp.profile(:bob)->>'customer_id', 'bob', 'Bob has his');
SELECT t.eq(cdp.profile_of('shared'), :bob::bigint, 'the UID counts for Bob from now on');
SELECT t.eq((SELECT array_agg(action || '@' || to_char(event_time AT TIME ZONE 'UTC', 'HH24:MI') ORDER BY event_time) FROM cdp.events_of(:alice)),
            ARRAY['view@09:00', 'add@09:02'], 'Alice keeps all history up to the switch');
SELECT t.eq((SELECT array_agg(action || '@' || to_char(event_time AT TIME ZONE 'UTC', 'HH24:MI') ORDER BY event_time) FROM cdp.events_of(:bob)),
            ARRAY['add@10:01'], 'Bob gets what came after');
SELECT t.eq(cdp.profile(:alice)->'attributes', '{"name": "Alice"}'::jsonb, 'Alice''s attributes are untouched');
SELECT t.eq(cdp.profile(:bob)->'attributes', '{"name": "Bob"}'::jsonb, 'Bob''s attributes are his own');
SELECT t.eq((SELECT kind || ' ' || from_profile || '->' || into_profile || ' ' || evidence FROM cdp.merges WHERE kind = 'uid_reassigned'),
            'uid_reassigned ' || :alice || '->' || :bob || ' shared', 'the conflict is a uid_reassigned row in cdp.merges');
SELECT t.eq((SELECT uid_profile_before FROM cdp.merges WHERE kind = 'uid_reassigned'), :anon::bigint,
            'the row keeps the profile the UID wrote to before (undo needs it)');
SELECT t.eq((SELECT count(*) FROM cdp.profiles WHERE merged_into IS NOT NULL AND customer_id IS NOT NULL), 0::bigint, 'no customer was merged');
SELECT t.eq(cdp.profile(:anon)->>'customer_id', 'alice', 'the anonymous profile from before stays with Alice');

-- Switching back is another reassignment, not a merge of customers.
SELECT t.eq(cdp.identify('shared', 'alice'), :alice::bigint, 'Alice signs in again');
SELECT t.eq(cdp.profile_of('shared'), :alice::bigint, 'the UID counts for Alice again');
SELECT t.eq((SELECT count(*) FROM cdp.merges WHERE kind = 'uid_reassigned'), 2::bigint, 'two reassignment rows');
SELECT t.eq((SELECT uid_profile_before FROM cdp.merges WHERE kind = 'uid_reassigned' ORDER BY merge_id DESC LIMIT 1), :bob::bigint,
            'switching back records that the UID wrote to Bob in between');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 2::bigint, 'still two customers');

-- Customers sharing an email are not merged either.
SELECT cdp.identify('c-uid', 'carl', '{"email": "family@example.com"}') AS carl \gset
SELECT cdp.identify('d-uid', 'dora', '{"email": "family@example.com"}') AS dora \gset
SELECT t.ok(:carl <> :dora, 'two customers with one email stay two customers');
SELECT t.eq((SELECT count(*) FROM cdp.profiles WHERE profile_id IN (:carl, :dora) AND merged_into IS NULL), 2::bigint, 'neither was merged');

-- A direct attempt to change a CID fails, with the right SQLSTATE and a clear message.
SELECT t.raises(format('UPDATE cdp.profiles SET customer_id = %L WHERE profile_id = %s', 'mallory', :alice),
                '55000', 'changing a customer id is refused', 'immutable');
SELECT t.raises(format('UPDATE cdp.profiles SET customer_id = NULL WHERE profile_id = %s', :alice),
                '55000', 'removing a customer id is refused', 'immutable');
SELECT t.eq(cdp.identify('x-uid', '  alice  '), :alice::bigint, 'customer ids are trimmed, so " alice " is Alice');
