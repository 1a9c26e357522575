-- Behaviour 9: an event whose context.message_id was already stored is not
-- stored again (SDK retries are normal) and the call returns the same profile.
SELECT cdp.track_event('r1', 'pageview', 'view', jsonb_build_object('context', t.ctx('d', 's', 'msg-1')), '2026-11-01 00:00Z') AS first \gset
SELECT t.eq(cdp.track_event('r1', 'pageview', 'view', jsonb_build_object('context', t.ctx('d', 's', 'msg-1')), '2026-11-01 00:00Z'),
            :first::bigint, 'a retry returns the same profile');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE payload->'context'->>'message_id' = 'msg-1'), 1::bigint, 'and is stored once');

-- A retried sign-in neither stores twice nor identifies twice.
SELECT cdp.track_event('r1', 'user', 'sign_in', t.sign_in('lan@example.com', '{}', t.ctx('d', 's', 'msg-2')), '2026-11-01 00:01Z') AS lan \gset
SELECT count(*) AS merges_before FROM cdp.merges \gset
SELECT t.eq(cdp.track_event('r1', 'user', 'sign_in', t.sign_in('lan@example.com', '{}', t.ctx('d', 's', 'msg-2')), '2026-11-01 00:01Z'),
            :lan::bigint, 'a retried sign-in returns the customer');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE payload->'context'->>'message_id' = 'msg-2'), 1::bigint, 'the sign-in is stored once');
SELECT t.eq((SELECT count(*) FROM cdp.merges), :merges_before::bigint, 'no second merge');

-- The retry of an event stored before a merge answers with the customer it now belongs to.
SELECT t.eq(cdp.track_event('r1', 'pageview', 'view', jsonb_build_object('context', t.ctx('d', 's', 'msg-1'))), :lan::bigint,
            'a late retry of an anonymous event answers with the customer');
SELECT t.eq((SELECT count(*) FROM cdp.events), 2::bigint, 'two events in all');
-- Events without a message id are never deduplicated.
SELECT cdp.track_event('r1', 'pageview', 'view', '{}', '2026-11-01 00:02Z');
SELECT cdp.track_event('r1', 'pageview', 'view', '{}', '2026-11-01 00:02Z');
SELECT t.eq((SELECT count(*) FROM cdp.events), 4::bigint, 'events without message id are all kept');
