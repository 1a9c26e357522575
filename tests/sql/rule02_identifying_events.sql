-- Behaviour 2: an event identifies when dims.customers.customer_id (else
-- extra.identify_id) is present; dims.customers without a CID (a lead form)
-- sets attributes and identifiers on the anonymous profile.

-- Lead form: attributes and identifiers on the anonymous profile, nobody identified.
SELECT cdp.track_event('lead-uid', 'form', 'submit',
    '{"dims": {"customers": {"email": "Lead.Person@Example.com", "phone": "+84 90 123 4567", "name": "Lee"}}}',
    '2026-11-01 10:00Z') AS lead \gset
SELECT t.eq(cdp.profile(:lead)->>'kind', 'anonymous', 'a lead form does not identify');
SELECT t.eq(cdp.profile(:lead)->'attributes', '{"email": "Lead.Person@Example.com", "phone": "+84 90 123 4567", "name": "Lee"}'::jsonb,
            'lead form attributes stored as sent');
SELECT t.eq((SELECT array_agg(kind || '=' || value ORDER BY kind) FROM cdp.identifiers WHERE profile_id = :lead),
            ARRAY['email=lead.person@example.com', 'phone=+84901234567'], 'normalized email and phone recorded as identifiers');
SELECT t.eq((SELECT count(*) FROM cdp.customers), 0::bigint, 'no customer yet');

-- dims.customers.customer_id identifies; the rest of dims.customers are the attributes.
SELECT cdp.track_event('signin-uid', 'user', 'sign_in',
    '{"dims": {"customers": {"customer_id": "cust-1", "name": "Ann", "gender": "f"}},
      "extra": {"identify_id": "cust-1", "identify_time": "2026-11-02T10:00:00+07:00", "identify_event": "user_sign_in", "identify_type": "exact"}}',
    '2026-11-02 03:00:30Z') AS c1 \gset
SELECT t.eq(cdp.profile(:c1)->>'customer_id', 'cust-1', 'customer_id identifies');
SELECT t.eq(cdp.profile(:c1)->'attributes', '{"name": "Ann", "gender": "f"}'::jsonb, 'attributes without customer_id');
SELECT t.eq((cdp.profile(:c1)->>'identified_at')::timestamptz, '2026-11-02 03:00Z'::timestamptz, 'ISO 8601 identify_time with offset');
SELECT t.eq((SELECT set_at FROM cdp.profile_attributes WHERE profile_id = :c1 AND key = 'name'), '2026-11-02 03:00Z'::timestamptz,
            'attributes are stamped with identify_time');
SELECT t.eq((SELECT profile_id FROM cdp.events WHERE action = 'sign_in'), :c1::bigint, 'the sign-in event itself belongs to the customer');
SELECT t.eq((SELECT value FROM cdp.identifiers WHERE profile_id = :c1 AND kind = 'identify_id'), 'cust-1', 'identify id recorded');

-- extra.identify_id alone identifies too (identify_type defaults to exact).
SELECT cdp.track_event('iid-uid', 'pageview', 'view', '{}', '2026-11-02 23:00Z');
SELECT cdp.track_event('iid-uid', 'user', 'identify', '{"extra": {"identify_id": "cust-2"}}', '2026-11-03 00:00Z') AS c2 \gset
SELECT t.eq(cdp.profile(:c2)->>'customer_id', 'cust-2', 'extra.identify_id identifies when customer_id is absent');
SELECT t.eq((SELECT identify_type FROM cdp.merges WHERE into_profile = :c2), 'exact', 'identify_type defaults to exact');

-- The SDK's local time form is read in context.timezone, else in cdp.default_timezone (UTC), never in the
-- session's TimeZone; an unknown context.timezone is an error (issue: times you can trust).
SELECT cdp.track_event('local-uid', 'user', 'identify',
    '{"dims": {"customers": {"customer_id": "cust-3"}}, "extra": {"identify_time": "2026-11-04 09:30:00"}, "context": {"timezone": "Asia/Ho_Chi_Minh"}}') AS c3 \gset
SELECT t.eq((cdp.profile(:c3)->>'identified_at')::timestamptz, '2026-11-04 02:30Z'::timestamptz, 'local identify_time read in context.timezone');
SET TimeZone = 'America/New_York';
SELECT t.raises($$SELECT cdp.track_event('local-uid-2', 'user', 'identify',
    '{"dims": {"customers": {"customer_id": "cust-4"}}, "extra": {"identify_time": "2026-11-04 09:30:00"}, "context": {"timezone": "Not/AZone"}}')$$,
    '22023', 'an unknown context.timezone is refused, not replaced by the session TimeZone', 'Not/AZone');
SELECT cdp.track_event('local-uid-2', 'user', 'identify',
    '{"dims": {"customers": {"customer_id": "cust-4"}}, "extra": {"identify_time": "2026-11-04 09:30:00"}}') AS c4 \gset
SELECT t.eq((cdp.profile(:c4)->>'identified_at')::timestamptz, '2026-11-04 09:30Z'::timestamptz, 'no zone: cdp.default_timezone (UTC), not the session TimeZone');
RESET TimeZone;

-- identify_type predict is recorded on the merge.
SELECT cdp.track_event('predict-uid', 'pageview', 'view', '{}', '2026-11-05 00:00Z') AS pa \gset
SELECT cdp.track_event('predict-uid', 'user', 'identify', '{"extra": {"identify_id": "cust-5", "identify_type": "predict"}}', '2026-11-05 00:01Z') AS c5 \gset
SELECT t.eq((SELECT identify_type || '/' || reason FROM cdp.merges WHERE from_profile = :pa), 'predict/uid', 'predict is recorded on the merge');
