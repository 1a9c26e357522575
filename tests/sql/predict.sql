-- Predicted matching (identify_type 'predict'): frequency-aware weights, the
-- strong-signal rule, review, undo and settings. (The accuracy on a realistic
-- population is measured by tests/predict_eval.py.)
CREATE FUNCTION pg_temp.ctx(ua text, ip text, screen text, tz text, locale text, device text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('context', jsonb_build_object('user_agent', ua, 'ip', ip, 'screen', screen, 'timezone', tz,
                                                            'locale', locale, 'device_id', device))
$$;
\set iphone 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'

-- The stranger, in a fresh portal (no frequencies known yet): the most common
-- phone, the same carrier /24, an hour apart, different device ids.
SELECT cdp.track_event('stranger-phone', 'page', 'view', pg_temp.ctx(:'iphone', '100.64.7.21', '390x844', 'Asia/Ho_Chi_Minh', 'vi-VN', 'dev-stranger'), now() - interval '70 minutes') AS stranger \gset
SELECT cdp.track_event('alice-phone', 'page', 'view', pg_temp.ctx(:'iphone', '100.64.7.88', '390x844', 'Asia/Ho_Chi_Minh', 'vi-VN', 'dev-alice'), now() - interval '10 minutes');
SELECT cdp.identify('alice-phone', 'cust-alice', '{}', 'predict') AS alice \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :stranger), NULL::bigint,
            'the stranger on the same popular phone and carrier network is never auto-merged (no strong signal)');
SELECT t.ok((SELECT bool_and(s.probability < 0.95 OR s.signals->'device_id'->>'agrees' = 'false') FROM cdp.match_suggestions s WHERE s.profile_id = :stranger),
            'at most a suggestion for review, whose signals show the device ids disagree');

-- The same stranger in a portal that has seen that phone and network a lot: agreement on them weighs little.
SELECT cdp.create_portal('market');
SET cdp.portal = 'market';
SELECT count(cdp.track_event('crowd-' || g, 'page', 'view',
                             pg_temp.ctx(CASE WHEN g % 3 = 0 THEN :'iphone' ELSE 'UA-rare-' || g END, '100.64.7.' || (g % 250), CASE WHEN g % 3 = 0 THEN '390x844' ELSE '1920x1080' END,
                                         'Asia/Ho_Chi_Minh', 'vi-VN', 'crowd-dev-' || g), now() - interval '2 days'))
FROM generate_series(1, 300) g;
SELECT t.eq((SELECT sum(profiles) FROM cdp.signal_counts WHERE portal = 'market' AND signal = 'user_agent' AND value = :'iphone'), 100::bigint,
            'signal_counts: 100 profiles recorded with the popular phone');
SELECT t.eq((SELECT sum(profiles) FROM cdp.signal_counts WHERE portal = 'market' AND signal = 'user_agent' AND value = '*'), 300::bigint,
            'and 300 with a user agent at all');
SELECT cdp.track_event('stranger-phone', 'page', 'view', pg_temp.ctx(:'iphone', '100.64.7.21', '390x844', 'Asia/Ho_Chi_Minh', 'vi-VN', 'dev-stranger'), now() - interval '70 minutes') AS m_stranger \gset
SELECT cdp.track_event('alice-phone', 'page', 'view', pg_temp.ctx(:'iphone', '100.64.7.88', '390x844', 'Asia/Ho_Chi_Minh', 'vi-VN', 'dev-alice'), now() - interval '10 minutes');
SELECT cdp.identify('alice-phone', 'cust-alice', '{}', 'predict');
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :m_stranger), NULL::bigint, 'in a busy market the stranger is not merged either');
SELECT t.ok(coalesce((SELECT max(probability) FROM cdp.match_suggestions WHERE portal = 'market' AND profile_id = :m_stranger), 0) < 0.6,
            'and agreement on a common phone and network is weak evidence: not even a suggestion');
SELECT t.ok((SELECT (signals->'user_agent'->>'u')::float > 0.2 FROM cdp.match_suggestions WHERE portal = 'market' LIMIT 1) IS NOT FALSE,
            'an agreement''s u is the value''s frequency');

-- Same person, two browsers on one laptop (different device ids, same network,
-- screen, zone and locale): by the rule, a suggestion for review, never an auto-merge.
SELECT cdp.track_event('bob-firefox', 'page', 'view', pg_temp.ctx('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', '203.0.113.9', '2560x1440', 'Europe/Berlin', 'de-DE', 'dev-bob-ff'), now() - interval '2 hours') AS bob_ff \gset
SELECT cdp.track_event('bob-chrome', 'page', 'view', pg_temp.ctx('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36', '203.0.113.9', '2560x1440', 'Europe/Berlin', 'de-DE', 'dev-bob-ch'), now() - interval '5 minutes');
SELECT cdp.identify('bob-chrome', 'cust-bob', '{}', 'predict') AS bob \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :bob_ff), NULL::bigint, 'the other browser is not auto-merged');
SELECT t.eq((SELECT status FROM cdp.match_suggestions WHERE profile_id = :bob_ff AND customer_profile = :bob), 'open', 'it is suggested for review');

-- A strong signal: the same device id under another UID (cookie lost), with device linking off so only predict can link it.
SELECT cdp.configure_portal('market', '{"device_linking": false}');
SELECT cdp.track_event('cara-old-cookie', 'page', 'view', pg_temp.ctx('UA-cara', '198.51.100.4', '1366x768', 'Asia/Ho_Chi_Minh', 'vi-VN', 'dev-cara'), now() - interval '3 hours') AS cara_old \gset
SELECT cdp.track_event('cara-new-cookie', 'page', 'view', pg_temp.ctx('UA-cara', '198.51.100.4', '1366x768', 'Asia/Ho_Chi_Minh', 'vi-VN', 'dev-cara'), now() - interval '2 minutes');
SELECT cdp.identify('cara-new-cookie', 'cust-cara', '{}', 'predict') AS cara \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :cara_old), :cara::bigint, 'the same device id is strong: predicted auto-merge');
SELECT t.eq((SELECT reason || '/' || identify_type FROM cdp.merges WHERE from_profile = :cara_old), 'predict/predict', 'recorded as a predicted merge');
SELECT t.ok((SELECT evidence ~ '^p=[01][.][0-9]{3} [{].*"device_id": *[{]"agrees": *true' FROM cdp.merges WHERE from_profile = :cara_old),
            'the evidence holds the probability and what each signal did');

-- A predicted merge is undoable, and the same prediction does not redo it.
SELECT merge_id AS pm FROM cdp.merges WHERE from_profile = :cara_old \gset
SELECT cdp.unmerge(:pm);
SELECT t.eq(cdp.root_of(:cara_old), :cara_old::bigint, 'a predicted merge is undone');
SELECT cdp.identify('cara-new-cookie', 'cust-cara', '{}', 'predict');
SELECT t.eq(cdp.root_of(:cara_old), :cara_old::bigint, 'and the next predict identify does not redo it');

-- Review: accept one suggestion, reject another.
SELECT suggestion_id AS s1, profile_id AS s1_profile, customer_profile AS s1_customer FROM cdp.match_suggestions WHERE portal = 'market' AND profile_id = :bob_ff \gset
SELECT cdp.accept_suggestion(:s1) AS accepted \gset
SELECT t.eq(cdp.root_of(:s1_profile), :s1_customer::bigint, 'an accepted suggestion merges the profile');
SELECT t.eq((SELECT reason || '/' || identify_type FROM cdp.merges WHERE merge_id = (:'accepted'::jsonb->>'merge_id')::bigint), 'predict/predict', 'as a predicted merge');
SELECT t.raises(format('SELECT cdp.accept_suggestion(%s)', :s1), '55000', 'accepting twice', 'already accepted');
RESET cdp.portal;
SELECT suggestion_id AS s2, profile_id AS s2_profile, customer_profile AS s2_customer FROM cdp.match_suggestions WHERE portal = 'default' AND status = 'open' ORDER BY suggestion_id LIMIT 1 \gset
SELECT t.eq(cdp.reject_suggestion(:s2)->>'status', 'rejected', 'a suggestion can be rejected');
SELECT t.raises(format('SELECT cdp.reject_suggestion(%s)', :s2), '55000', 'rejecting twice', 'already rejected');
SELECT cdp.identify('alice-phone', 'cust-alice', '{}', 'predict');
SELECT t.eq((SELECT count(*) FROM cdp.match_suggestions WHERE profile_id = :s2_profile AND customer_profile = :s2_customer AND status = 'open'), 0::bigint,
            'a rejected pair is not suggested again');
SELECT t.ok(jsonb_array_length(cdp.export_customer('cust-alice')->'match_suggestions') >= 1, 'the export of a customer lists the predicted matches about it');
SELECT t.raises('SELECT cdp.accept_suggestion(987654)', '22023', 'an unknown suggestion', 'does not exist');
SELECT t.raises('SELECT cdp.accept_suggestion(NULL)', '22004', 'a NULL suggestion id');
SELECT t.eq((SELECT count(*) FROM cdp.merges m JOIN cdp.profiles p ON p.profile_id = m.from_profile WHERE p.customer_id IS NOT NULL), 0::bigint,
            'no customer profile was ever merged');

-- Without the strong-signal rule (an explicit choice of the portal) weak signals can auto-merge.
SELECT cdp.create_portal('no_strong_rule', '{"predict_strong_signals": []}');
SET cdp.portal = 'no_strong_rule';
SELECT cdp.track_event('dan-ff', 'page', 'view', pg_temp.ctx('UA-dan', '192.0.2.7', '2560x1440', 'Europe/Oslo', 'nb-NO', 'dev-dan-1'), now() - interval '2 hours') AS dan_ff \gset
SELECT cdp.track_event('dan-ch', 'page', 'view', pg_temp.ctx('UA-dan', '192.0.2.7', '2560x1440', 'Europe/Oslo', 'nb-NO', 'dev-dan-2'), now() - interval '5 minutes');
SELECT cdp.identify('dan-ch', 'cust-dan', '{}', 'predict') AS dan \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :dan_ff), :dan::bigint, 'predict_strong_signals = []: weak signals alone may auto-merge');
RESET cdp.portal;

-- Settings: thresholds in range, review not above auto-merge, weights and strong signals well-formed.
SELECT t.raises('SET cdp.predict_auto_merge = 1.5', '22023', 'an auto-merge threshold above 1');
SELECT t.raises('SET cdp.predict_review = -0.1', '22023', 'a review threshold below 0');
SET cdp.predict_review = 0.99;
SET cdp.predict_auto_merge = 0.9;
SELECT t.raises($$SELECT cdp.identify('alice-phone', 'cust-alice', '{}', 'predict')$$, '22023', 'review above auto-merge', 'must not be above');
RESET cdp.predict_review; RESET cdp.predict_auto_merge;
SET cdp.predict_weights = '{"user_agent": [1.5, 0.1]}';
SELECT t.raises($$SELECT cdp.identify('alice-phone', 'cust-alice', '{}', 'predict')$$, '22023', 'malformed weights', 'cdp.predict_weights');
SET cdp.predict_weights = '{"user_agent": [0.9, 0.02], "ip_network": [0.75, 0.01]}';
SELECT t.eq(cdp.identify('alice-phone', 'cust-alice', '{}', 'predict'), cdp.profile_of('alice-phone'), 'custom weights are used');
RESET cdp.predict_weights;
SELECT t.raises($$SELECT cdp.configure_portal('market', '{"predict_strong_signals": ["shoe_size"]}')$$, '22023', 'an unknown strong signal', 'shoe_size');
SELECT t.raises($$SELECT cdp.configure_portal('market', '{"predict_window": 60}')$$, '22023', 'a predict window under an hour', 'predict_window');
SET cdp.predict_strong_signals = 'shoe_size';
SELECT t.raises($$SELECT cdp.identify('alice-phone', 'cust-alice', '{}', 'predict')$$, '22023', 'an unknown strong signal in the server default', 'shoe_size');
RESET cdp.predict_strong_signals;
