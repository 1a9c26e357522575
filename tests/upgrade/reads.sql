-- What a filled database answers through the read API and the tables, as one
-- document: it must read the same before and after ALTER EXTENSION UPDATE.
-- (Columns a later release adds, such as the portal, are left out: the
-- existing data must read the same, and new columns hold the defaults the
-- upgrade gives them, which tests/upgrade.sh checks through the schema.)
-- A UID's first_seen became business time in 0.2.0 (its first event's time):
-- left out here, checked by tests/upgrade.sh.
SELECT regexp_replace(jsonb_pretty(jsonb_build_object(
    'customers', (SELECT jsonb_agg(jsonb_build_object(
                      'customer_id', c.customer_id,
                      'profile', cdp.customer_profile(c.customer_id) - 'created_at',
                      'explain', cdp.explain(c.profile_id) - 'shared',  -- (a key 0.2.0 added)
                      'timeline', (SELECT jsonb_agg(to_jsonb(e) ORDER BY e.event_time, e.event_id) FROM cdp.events_of(c.profile_id) e))
                    ORDER BY c.customer_id) FROM cdp.customers c),
    'anonymous', (SELECT jsonb_agg(to_jsonb(a) - 'created_at' - 'portal' ORDER BY a.profile_id) FROM cdp.anonymous_profiles a),
    'uids', (SELECT jsonb_agg(jsonb_build_object('uid', u.uid, 'profile', cdp.profile_of(u.uid),
                                                                                                  -- (0.2.0 answers past moments in business time, so only now compares)
                                                 'now', cdp.profile_at(u.uid, now())) ORDER BY u.uid) FROM cdp.uids u),
    'merges', (SELECT jsonb_agg(to_jsonb(m) - 'merged_at' - 'undone_at' - 'portal' ORDER BY m.merge_id) FROM cdp.merges m),
    'merge_blocks', (SELECT jsonb_agg(to_jsonb(b) - 'blocked_at' - 'portal' ORDER BY b.merge_id) FROM cdp.merge_blocks b),
    'suggestions', (SELECT jsonb_agg(to_jsonb(s) - 'created_at' - 'portal' ORDER BY s.suggestion_id) FROM cdp.match_suggestions s),
        -- (0.2.0 renamed the hash columns: compared by position, not by name)
    'erasures', (SELECT jsonb_agg(jsonb_build_array(e.erasure_id, e.kind, (to_jsonb(e)->>'subject_sha256') || (to_jsonb(e)->>'subject_hash'), e.counts)
                                  ORDER BY e.erasure_id) FROM cdp.erasures e),
    'erased_uids', (SELECT jsonb_agg(jsonb_build_array(h.hash, e.erasure_id) ORDER BY h.hash)
                    FROM cdp.erased_uids e, LATERAL (SELECT coalesce(to_jsonb(e)->>'uid_sha256', to_jsonb(e)->>'uid_hash') AS hash) h),
    'skips', (SELECT jsonb_agg(to_jsonb(s) - 'skipped_at' - 'portal' ORDER BY s.skip_id) FROM cdp.identify_skips s),
    'event_count', (SELECT count(*) FROM cdp.events))), '"first_seen": "[^"]*"', '"first_seen": "-"', 'g');
