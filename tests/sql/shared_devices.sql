-- Shared computers: detection, no device linking through them, one anonymous
-- profile per session, undo, clearing, and the portal switch.

-- Ann signs in on the family computer (UID "fam", device "family-pc"), then Ben on the same browser.
SELECT cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 's1')), '2026-11-01 09:00Z');
SELECT cdp.track_event('fam', 'user', 'sign_in', t.sign_in('ann@example.com', '{}', t.ctx('family-pc', 's1')), '2026-11-01 09:05Z') AS ann \gset
SELECT t.eq((SELECT count(*) FROM cdp.shared_devices), 0::bigint, 'one customer on a device: not shared');
SELECT cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 's2')), '2026-11-02 18:00Z');
SELECT cdp.track_event('fam', 'user', 'sign_in', t.sign_in('ben@example.com', '{}', t.ctx('family-pc', 's2')), '2026-11-02 18:05Z') AS ben \gset
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(kind, value, evidence->'customers') ORDER BY kind) FROM cdp.shared_devices WHERE cleared_at IS NULL),
            '[["device_id", "family-pc", 2], ["uid", "fam", 2]]'::jsonb, 'two customers within the window: the device id and the UID are shared');
SELECT t.eq((SELECT detected_at FROM cdp.shared_devices WHERE kind = 'device_id'), '2026-11-02 18:05Z'::timestamptz, 'detected as of the sign-in that revealed it');
SELECT t.eq((SELECT jsonb_build_array(customers, shared) FROM cdp.devices WHERE kind = 'device_id' AND value = 'family-pc'),
            jsonb_build_array(jsonb_build_array(cdp.md5('ann@example.com'), cdp.md5('ben@example.com')), true), 'cdp.devices lists its customers and that it is shared');
SELECT t.eq((SELECT jsonb_agg(x->>'kind' ORDER BY x->>'kind') FROM jsonb_array_elements(cdp.explain(:ben)->'shared') x), '["device_id", "uid"]'::jsonb,
            'cdp.explain shows the decision with its evidence');
SELECT t.eq((SELECT x->'customer_profiles' FROM jsonb_array_elements(cdp.explain(:ben)->'shared') x WHERE x->>'kind' = 'device_id'),
            jsonb_build_array(:ann, :ben), 'and the customers identified on the device');
SELECT t.ok((SELECT shared FROM cdp.uids WHERE uid = 'fam'), 'the UID is flagged: its events take the session path');

-- No device linking through a shared device: a child's anonymous visits on it stay anonymous when Cleo signs in there.
SELECT cdp.track_event('kid-cookie', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 'k1')), '2026-11-03 15:00Z') AS kid \gset
SELECT t.ok((SELECT shared FROM cdp.uids WHERE uid = 'kid-cookie'), 'a new cookie on a shared device is shared from its start');
SELECT cdp.track_event('cleo-cookie', 'user', 'sign_in', t.sign_in('cleo@example.com', '{}', t.ctx('family-pc', 'c1')), '2026-11-03 16:00Z') AS cleo \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :kid), NULL::bigint, 'an anonymous profile reached only through the shared device is not merged');
SELECT t.eq((SELECT evidence->'customers' FROM cdp.shared_devices WHERE kind = 'device_id'), '2'::jsonb, 'the evidence stays as decided');

-- Sessions: each new session of a shared UID starts a new anonymous profile.
SELECT cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 's3')), '2026-11-04 10:00Z') AS s3 \gset
SELECT t.ok(:s3::bigint NOT IN (:ann, :ben), 'a new session on the shared UID is a new anonymous profile');
SELECT t.eq((SELECT reason || ' ' || evidence FROM cdp.merges WHERE kind = 'uid_reassigned' AND uid = 'fam' AND into_profile = :s3), 'session session:s3',
            'recorded as a decision with the session as evidence');
SELECT t.eq(cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 's3')), '2026-11-04 10:10Z'), :s3::bigint, 'the same session stays on it');
SELECT cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 's4')), '2026-11-05 20:00Z') AS s4 \gset
SELECT t.ok(:s4::bigint <> :s3::bigint, 'the next session is another profile');
SELECT t.eq(cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 's3')), '2026-11-04 10:20Z'), :s3::bigint,
            'a late event of the earlier session goes to that session''s profile');
SELECT t.eq(cdp.profile_of('fam'), :s4::bigint, 'the UID stays in its current session');
-- Dan signs in during session s4: he gets session s4's visits, not s3's.
SELECT cdp.track_event('fam', 'user', 'sign_in', t.sign_in('dan@example.com', '{}', t.ctx('family-pc', 's4')), '2026-11-05 20:05Z') AS dan \gset
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :s4), :dan::bigint, 'the sign-in merges the current session''s profile');
SELECT t.eq((SELECT merged_into FROM cdp.profiles WHERE profile_id = :s3), NULL::bigint, 'an earlier session stays anonymous');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:dan)), 2::bigint, 'Dan''s timeline: his session only');
-- A sign-in that starts a new session identifies that session only.
SELECT cdp.track_event('fam', 'user', 'sign_in', t.sign_in('ann@example.com', '{}', t.ctx('family-pc', 's5')), '2026-11-06 08:00Z');
SELECT t.eq((SELECT count(*) FROM cdp.events_of(:dan)), 2::bigint, 'Ann signing in next morning takes nothing of Dan''s');
SELECT t.eq(cdp.profile_of('fam'), :ann::bigint, 'the UID counts for Ann now');

-- Without a usable session id an idle gap ends a session (junk session ids count as none).
SELECT cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc', 'undefined')), '2026-11-06 09:00Z') AS idle1 \gset
SELECT t.ok(:idle1::bigint <> :ann::bigint, 'a junk session id after an hour idle: a new session');
SELECT t.eq(cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc')), '2026-11-06 09:20Z'), :idle1::bigint, '20 minutes later: the same session');
SELECT t.ok(cdp.track_event('fam', 'page', 'view', jsonb_build_object('context', t.ctx('family-pc')), '2026-11-06 10:00Z') <> :idle1::bigint, '40 minutes idle: a new one');
SELECT t.eq((SELECT evidence FROM cdp.merges WHERE kind = 'uid_reassigned' AND uid = 'fam' ORDER BY merge_id DESC LIMIT 1), 'idle:40m', 'with the idle gap as evidence');

-- Undoable and point-in-time: the split is a decision like any other.
SELECT merge_id AS split FROM cdp.merges WHERE kind = 'uid_reassigned' AND uid = 'fam' ORDER BY merge_id DESC LIMIT 1 \gset
SELECT t.eq(cdp.unmerge(:split)->>'kind', 'uid_reassigned', 'a session split can be undone');
SELECT t.eq(cdp.profile_of('fam'), :idle1::bigint, 'the UID is back in the earlier session');
SELECT t.eq(cdp.profile_at('fam', '2026-11-04 10:05Z'), :s3::bigint, 'profile_at knows which session profile the UID was on');

-- An admin clears the device: it links again, for new evidence only.
SELECT t.eq(cdp.clear_shared('device_id', 'family-pc'), true, 'clear_shared clears the decision');
SELECT t.eq((SELECT cleared_by IS NOT NULL AND cleared_at IS NOT NULL FROM cdp.shared_devices WHERE kind = 'device_id'), true, 'it records who and when');
SELECT t.eq((SELECT shared FROM cdp.uids WHERE uid = 'kid-cookie'), false, 'UIDs shared only through the device are unflagged');
SELECT t.eq((SELECT shared FROM cdp.uids WHERE uid = 'fam'), true, 'a UID shared itself stays flagged');
SELECT t.eq(cdp.clear_shared('device_id', 'family-pc'), false, 'clearing twice: false');
SELECT t.raises($$SELECT cdp.clear_shared('browser', 'x')$$, '22023', 'an unknown kind', 'kind');
SELECT t.raises($$SELECT cdp.clear_shared(NULL, 'x')$$, '22004', 'a NULL kind', 'kind');

-- Constant device ids never count as evidence of sharing.
SELECT cdp.track_event('w1', 'user', 'sign_in', t.sign_in('w1@example.com', '{}', t.ctx('web')), '2026-11-01 10:00Z');
SELECT cdp.track_event('w2', 'user', 'sign_in', t.sign_in('w2@example.com', '{}', t.ctx('web')), '2026-11-01 11:00Z');
SELECT t.eq((SELECT count(*) FROM cdp.identified_on WHERE value = 'web'), 0::bigint, 'a constant device id is not noted');

-- The portal switch: no detection, today's rules.
SELECT cdp.create_portal('no_detection', '{"shared_device_detection": false}');
SET cdp.portal = 'no_detection';
SELECT cdp.track_event('fam', 'user', 'sign_in', t.sign_in('ann@example.com', '{}', t.ctx('family-pc', 's1')), '2026-11-01 09:05Z');
SELECT cdp.track_event('fam', 'user', 'sign_in', t.sign_in('ben@example.com', '{}', t.ctx('family-pc', 's2')), '2026-11-02 18:05Z');
SELECT t.eq((SELECT count(*) FROM cdp.shared_devices WHERE portal = 'no_detection'), 0::bigint, 'shared_device_detection = false: nothing is detected');
RESET cdp.portal;

-- Erasure removes what it noted about the subject.
SELECT cdp.forget_customer(cdp.md5('ben@example.com'));
SELECT t.eq((SELECT count(*) FROM cdp.identified_on WHERE customer_profile = :ben), 0::bigint, 'erasing Ben removes where he was identified');

-- Many cookies on one device (logouts, cleared cookies) can count as evidence too, when a portal asks for it.
SELECT cdp.create_portal('churn', '{"shared_device_uids": 3}');
SET cdp.portal = 'churn';
SELECT cdp.track_event('kiosk-' || g, 'page', 'view', jsonb_build_object('context', t.ctx('kiosk-pc')), '2026-11-01 10:00Z'::timestamptz + g * interval '1 hour')
FROM generate_series(1, 3) g;
SELECT cdp.track_event('kiosk-3', 'user', 'sign_in', t.sign_in('kiosk-user@example.com', '{}', t.ctx('kiosk-pc')), '2026-11-01 14:00Z');
SELECT t.eq((SELECT evidence->'uids' FROM cdp.shared_devices WHERE portal = 'churn' AND value = 'kiosk-pc'), '3'::jsonb,
            'shared_device_uids: three cookies on one device make it shared, with the count as evidence');
SELECT t.eq((SELECT count(*) FROM cdp.merges WHERE portal = 'churn' AND reason = 'device_id'), 0::bigint, 'and it links nobody by device');
RESET cdp.portal;
