-- Behaviour 6: after logout the SDK rotates the UID (resetAnonymousUId);
-- events on the new UID form a fresh anonymous profile that does not attach
-- to the customer until the next identify.
SELECT cdp.track_event('uid-1', 'user', 'sign_in', t.sign_in('gina@example.com', '{}', t.ctx('gina-pc', 's1')), '2026-11-01 10:00Z') AS gina \gset
SELECT cdp.track_event('uid-1', 'pageview', 'view', jsonb_build_object('context', t.ctx('gina-pc', 's1')), '2026-11-01 10:05Z');

-- Logout: the SDK mints a new UID.
SELECT cdp.new_uid() AS fresh \gset
SELECT cdp.track_event(:'fresh', 'pageview', 'view', jsonb_build_object('context', t.ctx('gina-pc', 's2')), '2026-11-01 11:00Z') AS after_logout \gset
SELECT cdp.track_event(:'fresh', 'product', 'view', jsonb_build_object('context', t.ctx('gina-pc', 's2')), '2026-11-01 11:05Z');
SELECT t.ok(:after_logout <> :gina, 'events after logout form a fresh profile');
SELECT t.eq(cdp.profile(:after_logout)->>'kind', 'anonymous', 'the fresh profile is anonymous');
SELECT t.eq((cdp.profile(:gina)->>'event_count')::int, 2, 'the customer did not receive the events after logout');
SELECT t.eq((cdp.profile(:after_logout)->>'event_count')::int, 2, 'the anonymous profile has them');

-- More anonymous traffic on the same device does not attach either.
SELECT t.eq(cdp.track_event(:'fresh', 'pageview', 'view', jsonb_build_object('context', t.ctx('gina-pc', 's2')), '2026-11-01 11:10Z'),
            :after_logout::bigint, 'still anonymous before the next identify');

-- The next identify (on the same device) brings it in.
SELECT t.eq(cdp.track_event(:'fresh', 'user', 'sign_in', t.sign_in('gina@example.com', '{}', t.ctx('gina-pc', 's2')), '2026-11-02 09:00Z'),
            :gina::bigint, 'sign-in again returns the same customer');
SELECT t.eq(cdp.profile_of(:'fresh'), :gina::bigint, 'the new UID belongs to the customer now');
SELECT t.eq((cdp.profile(:gina)->>'event_count')::int, 6, 'all events together');
SELECT t.eq(length(:'fresh'), 36, 'new_uid is a UUID');
SELECT t.eq(substr(:'fresh', 15, 1), '7', 'new_uid is a version 7 UUID');
