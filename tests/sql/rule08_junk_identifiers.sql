-- Behaviour 8: junk identifiers never merge people. identify refuses them
-- with a clear error and writes nothing; an event carrying one is stored but
-- does not identify, and the skip is recorded where an operator can query it.
SELECT cdp.track_event('j1', 'pageview', 'view', jsonb_build_object('context', t.ctx('shared-pc')), '2026-11-01 00:00Z') AS j1 \gset
SELECT cdp.track_event('j2', 'pageview', 'view', jsonb_build_object('context', t.ctx('shared-pc')), '2026-11-01 00:01Z') AS j2 \gset

-- Every kind of junk is refused by identify with 22023, nothing written.
SELECT t.raises(format('SELECT cdp.identify(%L, %L)', 'j1', junk), '22023', 'identify refuses ' || quote_literal(junk), 'cannot identify')
FROM unnest(ARRAY['null', 'NULL', 'undefined', 'None', 'nan', '0', '-1', 'true', 'false', 'anonymous', 'Guest',
                  'unknown', '[object Object]', 'n/a', '000000', '0-0-0', '--',
                  md5(''), upper(md5('')), md5('undefined'), md5('null'),
                  cdp.sha256(''), cdp.sha256('undefined'), cdp.sha256('null')]) AS junk;

SELECT t.eq(cdp.junk_reason(md5('')), 'hash of an empty or placeholder value', 'junk_reason explains a hash of nothing');
SELECT t.eq(cdp.junk_reason('c-1001'), NULL, 'a real id is not junk');

-- An event with md5('') as customer id (the email was missing): stored, nobody identified.
SELECT t.eq(cdp.track_event('j1', 'user', 'sign_in', t.sign_in('', '{}', t.ctx('shared-pc')), '2026-11-01 00:02Z'),
            :j1::bigint, 'the event is stored on the anonymous profile');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'j1'), 2::bigint, 'the event was stored');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 0::bigint, 'no customer was created');
SELECT t.eq(cdp.profile_of('j2'), :j2::bigint, 'the other profile on the device was not merged');
SELECT t.eq((SELECT field || ' ' || value || ' ' || reason FROM cdp.identify_skips s JOIN cdp.events e USING (event_id) WHERE s.field LIKE '%customer_id'),
            'payload.dims.customers.customer_id ' || md5('') || ' hash of an empty or placeholder value',
            'the skip is recorded with the event, the field, the value and why');

-- Junk through extra.identify_id alone, and a plain placeholder string.
SELECT cdp.track_event('j2', 'user', 'identify', '{"extra": {"identify_id": "undefined"}}', '2026-11-01 00:03Z');
SELECT cdp.track_event('j2', 'user', 'identify', '{"dims": {"customers": {"customer_id": " NULL "}}}', '2026-11-01 00:04Z');
SELECT t.eq((SELECT count(*) FROM cdp.identify_skips WHERE uid = 'j2'), 2::bigint, 'both skips recorded');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 0::bigint, 'still no customer');

-- A junk CID with real attributes: the attributes still land on the anonymous profile (like a lead form).
SELECT cdp.track_event('j1', 'user', 'sign_in', '{"dims": {"customers": {"customer_id": "undefined", "name": "Kim"}}}', '2026-11-01 00:05Z');
SELECT t.eq(cdp.profile(:j1)->'attributes'->>'name', 'Kim', 'attributes of a junk sign-in are kept on the anonymous profile');

-- Junk emails, phones and device ids never link anybody.
SELECT cdp.track_event('k1', 'form', 'submit', '{"dims": {"customers": {"email": "undefined", "phone": "0000000"}}, "context": {"device_id": "undefined"}}', '2026-11-02 00:00Z') AS k1 \gset
SELECT cdp.track_event('k2', 'form', 'submit', '{"dims": {"customers": {"email": "undefined", "phone": "0000000"}}, "context": {"device_id": "undefined"}}', '2026-11-02 00:01Z') AS k2 \gset
SELECT cdp.identify('k2', 'kai', '{"email": "null", "phone": "-1"}', 'exact', '2026-11-02 00:02Z') AS kai \gset
SELECT t.eq(cdp.profile_of('k1'), :k1::bigint, 'a profile sharing only junk email, phone and device id is not merged');
SELECT t.eq((SELECT count(*) FROM cdp.identifiers WHERE value IN ('undefined', 'null', '0000000', '-1')), 0::bigint, 'junk is never stored as an identifier');
SELECT t.ok((SELECT count(*) FROM cdp.identify_skips WHERE field IN ('attributes.email', 'attributes.phone')) >= 4, 'junk emails and phones are recorded as skips');
