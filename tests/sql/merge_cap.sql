-- A cap on how many anonymous profiles one identify merges: a public computer
-- must not fold its visitors into one customer. What exceeds it is recorded.
SELECT count(cdp.track_event('kiosk-' || i, 'pageview', 'view', jsonb_build_object('context', t.ctx('library-kiosk')),
                             '2026-11-01'::timestamptz + i * interval '1 hour'))
FROM generate_series(1, 6) i;
SELECT cdp.track_event('kiosk-me', 'pageview', 'view', jsonb_build_object('context', t.ctx('library-kiosk')), '2026-11-02') AS own \gset
SELECT t.eq(current_setting('cdp.max_merges_per_identify'), '50', 'the default cap is 50');
SET cdp.max_merges_per_identify = 3;
SELECT cdp.track_event('kiosk-me', 'user', 'sign_in', t.sign_in('reader@example.com', '{}', t.ctx('library-kiosk')), '2026-11-02 00:01Z') AS reader \gset
SELECT t.eq((SELECT count(*) FROM cdp.merges WHERE into_profile = :reader), 3::bigint, 'only 3 profiles were merged');
SELECT t.eq((SELECT reason FROM cdp.merges WHERE from_profile = :own), 'uid', 'the identifying UID''s own profile comes first');
SELECT t.eq((SELECT count(*) FROM cdp.identify_skips WHERE field = 'merge_cap' AND uid = 'kiosk-me'), 4::bigint,
            'the 4 over the cap are recorded');
SELECT t.ok((SELECT bool_and(reason = 'over cdp.max_merges_per_identify (3)' AND value LIKE 'profile % (device_id: library-kiosk)')
             FROM cdp.identify_skips WHERE field = 'merge_cap'), 'with the profile, the evidence and why');
SELECT t.eq((SELECT count(*) FROM cdp.anonymous_profiles), 4::bigint, 'and stay anonymous');
RESET cdp.max_merges_per_identify;
SELECT t.raises('SET cdp.max_merges_per_identify = 0', '22023', 'a cap below 1 is refused');
