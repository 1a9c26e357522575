-- Predicted matching (identify_type 'predict') on a generated population whose
-- true identities are known: precision and recall of the predicted merges.
-- 150 people, each with two earlier anonymous visits from new UIDs and new
-- device ids (no exact evidence links them) but the same browser, network,
-- screen, time zone and locale; 300 other visitors drawn from the same pools.
CREATE TEMP TABLE people AS
SELECT k,
       format('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%s.0.0.0 Safari/537.36', 100 + k % 37) AS ua,
       format('10.0.%s.%s', k % 60, 1 + k % 200) AS ip,
       (ARRAY['1920x1080', '1366x768', '1536x864', '390x844', '2560x1440'])[1 + k % 5] AS screen,
       (ARRAY['Asia/Ho_Chi_Minh', 'Europe/London', 'America/New_York', 'Asia/Tokyo', 'Europe/Berlin', 'Asia/Singapore', 'Australia/Sydney', 'America/Chicago'])[1 + k % 8] AS tz,
       (ARRAY['vi-VN', 'en-GB', 'en-US', 'ja-JP', 'de-DE', 'en-SG'])[1 + k % 6] AS locale
FROM generate_series(1, 150) k;
CREATE FUNCTION pg_temp.ctx(ua text, ip text, screen text, tz text, locale text, device text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('context', jsonb_build_object('user_agent', ua, 'ip', ip, 'screen', screen, 'timezone', tz,
                                                            'locale', locale, 'device_id', device))
$$;
-- the people's anonymous visits, a few hours before they sign in
SELECT count(cdp.track_event(format('pp-%s-%s', k, v), 'pageview', 'view',
                             pg_temp.ctx(ua, ip, screen, tz, locale, format('dev-%s-%s', k, v)), now() - interval '5 hours' + v * interval '1 hour'))
FROM people, generate_series(1, 2) v;
-- other visitors from the same pools (same browsers, networks, zones), half of them days ago
SELECT count(cdp.track_event(format('noise-%s', n), 'pageview', 'view',
                             pg_temp.ctx(format('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%s.0.0.0 Safari/537.36', 100 + (n * 7) % 37),
                                         format('10.0.%s.%s', (n * 13) % 60, 1 + n % 200),
                                         (ARRAY['1920x1080', '1366x768', '1536x864', '390x844', '2560x1440'])[1 + (n * 3) % 5],
                                         (ARRAY['Asia/Ho_Chi_Minh', 'Europe/London', 'America/New_York', 'Asia/Tokyo', 'Europe/Berlin', 'Asia/Singapore', 'Australia/Sydney', 'America/Chicago'])[1 + (n * 5) % 8],
                                         (ARRAY['vi-VN', 'en-GB', 'en-US', 'ja-JP', 'de-DE', 'en-SG'])[1 + (n * 11) % 6],
                                         format('noise-dev-%s', n)),
                             now() - CASE WHEN n % 2 = 0 THEN interval '3 days' ELSE interval '2 hours' END))
FROM generate_series(1, 300) n;
-- each person signs in (predict) on a new UID
SELECT count(cdp.track_event(format('pp-%s-login', k), 'pageview', 'view', pg_temp.ctx(ua, ip, screen, tz, locale, format('dev-%s-login', k)), now() - interval '1 minute'))
FROM people;
SELECT count(cdp.track_event(format('pp-%s-login', k), 'user', 'sign_in',
                             jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object('customer_id', format('person-%s', k))),
                                                'extra', jsonb_build_object('identify_type', 'predict')) || pg_temp.ctx(ua, ip, screen, tz, locale, format('dev-%s-login', k)),
                             now()))
FROM people;

CREATE TEMP TABLE predicted AS
SELECT m.merge_id, split_part(u.uid, '-', 2) AS true_person, split_part(c.customer_id, '-', 2) AS predicted_person
FROM cdp.merges m JOIN cdp.profiles c ON c.profile_id = m.into_profile
JOIN cdp.uids u ON u.profile_id = m.from_profile
WHERE m.reason = 'predict' AND m.undone_at IS NULL;
SELECT count(*) FILTER (WHERE true_person = predicted_person) AS tp, count(*) AS predicted FROM predicted \gset
SELECT t.report(format('predicted matching on 150 people x 2 anonymous visits + 300 others: %s predicted merges, precision %s, recall %s, %s suggestions for review',
                       :predicted, round(:tp::numeric / greatest(:predicted, 1), 3), round(:tp::numeric / 300, 3),
                       (SELECT count(*) FROM cdp.match_suggestions WHERE status = 'open')));
SELECT t.ok(:tp::numeric / greatest(:predicted, 1) >= 0.95, 'precision of predicted merges is at least 0.95');
SELECT t.ok(:tp::numeric / 300 >= 0.5, 'recall of predicted merges is at least 0.5');
SELECT t.eq((SELECT count(*) FROM cdp.merges m JOIN cdp.profiles p ON p.profile_id = m.from_profile
             WHERE m.reason = 'predict' AND m.identify_type <> 'predict'), 0::bigint, 'predicted merges are recorded as predict');
SELECT t.ok((SELECT bool_and(evidence LIKE 'p=0.9%') FROM cdp.merges WHERE reason = 'predict'), 'the evidence holds the probability');

-- Review: accept one suggestion, reject another.
SELECT suggestion_id AS s1, profile_id AS s1_profile, customer_profile AS s1_customer FROM cdp.match_suggestions WHERE status = 'open' ORDER BY probability DESC, suggestion_id LIMIT 1 \gset
SELECT suggestion_id AS s2, profile_id AS s2_profile, customer_profile AS s2_customer FROM cdp.match_suggestions WHERE status = 'open' AND suggestion_id <> :s1 AND profile_id <> :s1_profile ORDER BY probability DESC, suggestion_id LIMIT 1 \gset
SELECT cdp.accept_suggestion(:s1) AS accepted \gset
SELECT t.eq(cdp.root_of(:s1_profile), :s1_customer::bigint, 'an accepted suggestion merges the profile');
SELECT t.eq((SELECT reason || '/' || identify_type FROM cdp.merges WHERE merge_id = (:'accepted'::jsonb->>'merge_id')::bigint), 'predict/predict', 'as a predicted merge');
SELECT t.raises(format('SELECT cdp.accept_suggestion(%s)', :s1), '55000', 'accepting twice', 'already accepted');
SELECT t.eq(cdp.reject_suggestion(:s2)->>'status', 'rejected', 'a suggestion can be rejected');
SELECT t.raises(format('SELECT cdp.reject_suggestion(%s)', :s2), '55000', 'rejecting twice', 'already rejected');
SELECT t.ok(jsonb_array_length(cdp.export_customer((SELECT customer_id FROM cdp.profiles WHERE profile_id = :s2_customer))->'match_suggestions') >= 1,
            'the export of a customer lists the predicted matches about it');
SELECT t.raises('SELECT cdp.accept_suggestion(987654)', '22023', 'an unknown suggestion', 'does not exist');
SELECT t.raises('SELECT cdp.accept_suggestion(NULL)', '22004', 'a NULL suggestion id');
-- A predicted merge is undoable, and the same prediction does not redo it.
SELECT merge_id AS pm, from_profile AS pm_profile, into_profile AS pm_customer FROM cdp.merges WHERE reason = 'predict' AND undone_at IS NULL ORDER BY merge_id LIMIT 1 \gset
SELECT cdp.unmerge(:pm, cascade => true);
SELECT t.eq(cdp.root_of(:pm_profile), :pm_profile::bigint, 'a predicted merge is undone');
SELECT cdp.identify((SELECT u.uid FROM cdp.uids u WHERE cdp.root_of(u.profile_id) = :pm_customer AND u.uid LIKE '%login'),
                    (SELECT customer_id FROM cdp.profiles WHERE profile_id = :pm_customer), '{}', 'predict');
SELECT t.eq(cdp.root_of(:pm_profile), :pm_profile::bigint, 'and the next predict identify does not redo it');
SELECT t.eq((SELECT count(*) FROM cdp.match_suggestions WHERE profile_id = :s2_profile AND customer_profile = :s2_customer AND status = 'open'), 0::bigint,
            'a rejected pair is not suggested again');
-- A predicted merge never takes a customer's profile: customers are never candidates.
SELECT t.eq((SELECT count(*) FROM cdp.merges m JOIN cdp.profiles p ON p.profile_id = m.from_profile WHERE p.customer_id IS NOT NULL), 0::bigint,
            'no customer profile was ever merged');

-- Settings: thresholds in range, review not above auto-merge, weights well-formed.
SELECT t.raises('SET cdp.predict_auto_merge = 1.5', '22023', 'an auto-merge threshold above 1');
SELECT t.raises('SET cdp.predict_review = -0.1', '22023', 'a review threshold below 0');
SET cdp.predict_review = 0.99;
SET cdp.predict_auto_merge = 0.9;
SELECT t.raises($$SELECT cdp.identify('pp-1-login', 'person-1', '{}', 'predict')$$, '22023', 'review above auto-merge', 'must not be above');
RESET cdp.predict_review; RESET cdp.predict_auto_merge;
SET cdp.predict_weights = '{"user_agent": [1.5, 0.1]}';
SELECT t.raises($$SELECT cdp.identify('pp-1-login', 'person-1', '{}', 'predict')$$, '22023', 'malformed weights', 'cdp.predict_weights');
SET cdp.predict_weights = '{"user_agent": [0.9, 0.02], "ip_network": [0.75, 0.01]}';
SELECT t.eq(cdp.identify('pp-1-login', 'person-1', '{}', 'predict'), cdp.profile_of('pp-1-login'), 'custom weights are used');
RESET cdp.predict_weights;
