-- Behaviour 7: the identify's own attributes win by identify_time, so an
-- older identify never overwrites a newer value (out-of-order delivery); on
-- merge the customer's values win and the merged profile only fills gaps;
-- first-seen style system attributes keep the earliest value.
SELECT cdp.identify('u1', 'hana', '{"name": "Hana", "tier": "gold"}', 'exact', '2026-11-10 12:00Z') AS hana \gset

-- An older identify arrives late: it cannot overwrite, but fills a missing key.
SELECT cdp.identify('u1', 'hana', '{"name": "Hana Old", "city": "Hue"}', 'exact', '2026-11-01 12:00Z');
SELECT t.eq(cdp.profile(:hana)->'attributes', '{"name": "Hana", "tier": "gold", "city": "Hue"}'::jsonb,
            'an older identify does not overwrite newer values, and fills a missing one');

-- A newer identify wins.
SELECT cdp.identify('u1', 'hana', '{"tier": "platinum"}', 'exact', '2026-11-11 12:00Z');
SELECT t.eq(cdp.profile(:hana)->>'tier', NULL, 'sanity: tier is an attribute, not a top-level key');
SELECT t.eq(cdp.profile(:hana)->'attributes'->>'tier', 'platinum', 'a newer identify wins');
SELECT t.eq((SELECT set_at FROM cdp.profile_attributes WHERE profile_id = :hana AND key = 'tier'), '2026-11-11 12:00Z'::timestamptz,
            'the value carries its time');

-- JSON null never erases a stored value.
SELECT cdp.identify('u1', 'hana', '{"tier": null}', 'exact', '2026-11-12 12:00Z');
SELECT t.eq(cdp.profile(:hana)->'attributes'->>'tier', 'platinum', 'a null attribute is ignored');

-- Merge: the anonymous profile has a conflicting name, and a phone the customer lacks.
SELECT cdp.track_event('u2', 'form', 'submit', '{"dims": {"customers": {"name": "H.", "phone": "+84 90 555 1234", "newsletter": true}}}',
                       '2026-11-13 08:00Z') AS anon \gset
SELECT cdp.identify('u2', 'hana', '{}', 'exact', '2026-11-13 09:00Z');
SELECT t.eq(cdp.profile(:hana)->'attributes',
            '{"name": "Hana", "tier": "platinum", "city": "Hue", "phone": "+84 90 555 1234", "newsletter": true}'::jsonb,
            'on merge the customer''s values win and the anonymous profile fills gaps');
SELECT t.eq((SELECT filled_attributes FROM cdp.merges WHERE from_profile = :anon), ARRAY['newsletter', 'phone'],
            'the merge records which keys it filled (for undo)');
SELECT t.eq((SELECT source || ':' || source_profile FROM cdp.profile_attributes WHERE profile_id = :hana AND key = 'phone'),
            'merge:' || :anon, 'a filled value says where it came from');
SELECT t.eq((SELECT value FROM cdp.profile_attributes WHERE profile_id = :anon AND key = 'name'), '"H."'::jsonb,
            'the merged profile keeps its own attributes (undo needs them)');

-- An event of a customer's UID with customer attributes and a newer time updates them.
SELECT cdp.track_event('u1', 'profile', 'update', '{"dims": {"customers": {"city": "Da Nang"}}}', '2026-11-14 00:00Z');
SELECT t.eq(cdp.profile(:hana)->'attributes'->>'city', 'Da Nang', 'a newer event attribute updates the customer');
SELECT cdp.track_event('u1', 'profile', 'update', '{"dims": {"customers": {"city": "Old Town"}}}', '2026-11-01 00:00Z');
SELECT t.eq(cdp.profile(:hana)->'attributes'->>'city', 'Da Nang', 'a late, older event attribute does not');

-- First-seen style attributes keep the earliest value, even when the earliest event arrives last.
SELECT cdp.track_event('u3', 'pageview', 'view', '{"context": {"page_url": "https://x.example/second", "referrer": "https://b.example/"}}', '2026-11-20 10:00Z') AS p3 \gset
SELECT cdp.track_event('u3', 'pageview', 'view', '{"context": {"page_url": "https://x.example/first", "referrer": "https://a.example/"}}', '2026-11-20 09:00Z');
SELECT cdp.track_event('u3', 'pageview', 'view', '{"context": {"page_url": "https://x.example/third"}}', '2026-11-20 11:00Z');
SELECT t.eq(cdp.profile(:p3)->'system'->>'first_page_url', 'https://x.example/first', 'the earliest event gives the first page');
SELECT t.eq(cdp.profile(:p3)->'system'->>'first_referrer', 'https://a.example/', 'and the first referrer');
SELECT t.eq((cdp.profile(:p3)->'system'->>'first_seen')::timestamptz, '2026-11-20 09:00Z'::timestamptz, 'first seen is the earliest event');

-- Across a merge too: the customer's first touch is the earliest of its profiles.
SELECT cdp.track_event('u4', 'pageview', 'view', '{"context": {"page_url": "https://x.example/later", "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"}}', '2026-11-21 10:00Z');
SELECT cdp.identify('u4', 'ivy', '{}', 'exact', '2026-11-21 10:30Z') AS ivy \gset
SELECT cdp.identify('u3', 'ivy', '{}', 'exact', '2026-11-21 10:31Z');
SELECT t.eq(cdp.profile(:ivy)->'system'->>'first_page_url', 'https://x.example/first', 'the earliest first touch of all merged profiles wins');
SELECT t.eq(cdp.profile(:ivy)->'system'->>'browser', 'Firefox', 'last-value system attributes come from the latest profile that has them');
