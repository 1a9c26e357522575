-- Fills a database at an old release with what a running install holds: the
-- seed story, more visitors and customers, a batch, a lead form, a shared
-- browser, a predicted match, an undone merge and an erasure. Only calls that
-- every released version has. Fixed times, so the reads are comparable.
\set ON_ERROR_STOP 1
\i demo/seed_story.sql
SELECT cdp.track_batch(jsonb_build_array(
    jsonb_build_object('uid', 'up-1', 'category', 'pageview', 'action', 'view', 'event_time', '2026-10-01T10:00:00Z',
                       'payload', '{"context": {"device_id": "up-dev-1", "session_id": "s1", "message_id": "up-m1", "ip": "10.1.2.3", "user_agent": "Mozilla/5.0 Firefox/120.0"}}'::jsonb),
    jsonb_build_object('uid', 'up-2', 'category', 'form', 'action', 'submit', 'event_time', '2026-10-01T10:01:00Z',
                       'payload', '{"dims": {"customers": {"email": "lead@example.com", "name": "Lee"}}, "context": {"device_id": "up-dev-2"}}'::jsonb),
    jsonb_build_object('uid', 'up-3', 'category', 'pageview', 'action', 'view', 'event_time', '2026-10-01T10:02:00Z',
                       'payload', '{"context": {"device_id": "up-dev-1", "message_id": "up-m3"}}'::jsonb)));
SELECT cdp.identify('up-1', 'cust-up', '{"email": "lead@example.com", "plan": "pro"}', 'exact', '2026-10-02 09:00:00+00');
SELECT cdp.identify('up-4', 'cust-other', '{}', 'exact', '2026-10-02 10:00:00+00');
SELECT cdp.identify('up-1', 'cust-other', '{}', 'exact', '2026-10-03 10:00:00+00');  -- a shared browser
SELECT cdp.track_event('up-5', 'pageview', 'view', '{"context": {"device_id": "up-dev-5", "ip": "10.1.2.9", "user_agent": "Mozilla/5.0 Firefox/120.0"}}', '2026-10-03 11:00:00+00');
SELECT cdp.identify('up-6', 'cust-up', '{}', 'predict', '2026-10-03 12:00:00+00');
SELECT cdp.unmerge((SELECT min(merge_id) FROM cdp.merges WHERE kind = 'merge' AND reason = 'email'), cascade => true);
SELECT cdp.track_event('up-gone', 'pageview', 'view', '{}', '2026-10-04 10:00:00+00');
SELECT cdp.identify('up-gone', 'cust-gone', '{"name": "Gone"}', 'exact', '2026-10-04 10:01:00+00');
SELECT cdp.forget_customer('cust-gone');
SELECT cdp.forget_uid('up-3');
SELECT cdp.track_event('undefined', 'pageview', 'view', '{}', '2026-10-05 10:00:00+00');  -- a page without a real UID
