-- Bad input: a precise message, the right SQLSTATE, nothing half-written.
SELECT cdp.track_event('good', 'pageview', 'view');

-- track_event
SELECT t.raises($$SELECT cdp.track_event(NULL, 'a', 'b')$$, '22004', 'NULL uid', 'uid must not be NULL');
SELECT t.raises($$SELECT cdp.track_event('', 'a', 'b')$$, '22023', 'empty uid', 'uid must not be empty');
SELECT t.raises($$SELECT cdp.track_event('   ', 'a', 'b')$$, '22023', 'blank uid', 'uid must not be empty');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L)', repeat('u', 256), 'a', 'b'), '22001', 'uid over 255 characters', '256 characters');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L)', 'bad' || chr(10) || 'uid', 'a', 'b'), '22023', 'uid with a newline', 'control character');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L)', 'bad' || chr(7) || 'uid', 'a', 'b'), '22023', 'uid with a bell', 'control character');
SELECT t.raises($$SELECT cdp.track_event('u', NULL, 'b')$$, '22004', 'NULL category', 'category');
SELECT t.raises($$SELECT cdp.track_event('u', '', 'b')$$, '22023', 'empty category', 'category must not be empty');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', '')$$, '22023', 'empty action', 'action must not be empty');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', NULL)$$, '22004', 'NULL action', 'action');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '[1, 2]')$$, '22023', 'payload array', 'payload must be a JSON object');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '"text"')$$, '22023', 'payload string', 'payload must be a JSON object');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '{"dims": []}')$$, '22023', 'dims not an object', 'payload.dims');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '{"context": {"device_id": [1]}}')$$, '22023', 'device_id not a string', 'payload.context.device_id');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '{"extra": {"identify_id": "c-1", "identify_type": "fuzzy"}}')$$, '22023', 'unknown identify_type', 'identify_type');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '{"extra": {"identify_id": "c-1", "identify_time": "yesterday"}}')$$, '22007', 'unparsable identify_time', 'identify_time');
SELECT t.raises($$SELECT cdp.track_event('u', 'a', 'b', '{"extra": {"identify_id": "c-1", "identify_time": "2026-02-30 10:00:00"}}')$$, '22007', 'impossible date', 'identify_time');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'u', 'a', 'b', jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object('customer_id', repeat('c', 300))))),
                '22001', 'customer id over 255 characters in an event', 'customer_id');
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'u', 'a', 'b', jsonb_build_object('big', repeat('x', 1100000))),
                '54000', 'payload over the default 1 MB limit', 'cdp.max_payload_bytes');
SET cdp.max_payload_bytes = 2048;
SELECT t.raises(format('SELECT cdp.track_event(%L, %L, %L, %L)', 'u', 'a', 'b', jsonb_build_object('big', repeat('x', 3000))),
                '54000', 'payload over a lowered limit', 'allows 2048');
RESET cdp.max_payload_bytes;
SELECT t.raises('SET cdp.max_payload_bytes = 10', '22023', 'a payload limit below 1 kB is refused');
SELECT t.raises('SET cdp.device_linking = maybe', '22023', 'device_linking is a boolean');
SELECT t.eq(cdp.track_event('good', 'a', 'b', NULL, NULL), cdp.profile_of('good'), 'NULL payload and time mean {} and now()');

-- identify
SELECT t.raises($$SELECT cdp.identify(NULL, 'c-1')$$, '22004', 'identify NULL uid', 'uid must not be NULL');
SELECT t.raises($$SELECT cdp.identify('good', NULL)$$, '22004', 'identify NULL customer id', 'customer_id must not be NULL');
SELECT t.raises($$SELECT cdp.identify('good', '')$$, '22023', 'identify empty customer id', 'customer_id must not be empty');
SELECT t.raises(format('SELECT cdp.identify(%L, %L)', 'good', repeat('c', 256)), '22001', 'identify customer id over 255', 'customer_id');
SELECT t.raises(format('SELECT cdp.identify(%L, %L)', 'good', 'c' || chr(9) || '1'), '22023', 'identify customer id with a tab', 'control character');
SELECT t.raises($$SELECT cdp.identify('good', 'c-1', '[]')$$, '22023', 'identify attributes not an object', 'attributes must be a JSON object');
SELECT t.raises($$SELECT cdp.identify('good', 'c-1', '{}', 'probably')$$, '22023', 'identify unknown identify_type', 'identify_type');
SELECT t.raises($$SELECT cdp.identify('good', 'undefined')$$, '22023', 'identify junk customer id', 'cannot identify');
SELECT cdp.identify('good', 'c-1', NULL, NULL, NULL) AS c1 \gset
SELECT t.eq(cdp.profile_of('good'), :c1::bigint, 'NULL attributes, type and time mean the defaults');
SELECT t.eq((SELECT identify_type FROM cdp.merges), 'exact', 'NULL identify_type is exact');

-- Helpers
SELECT t.eq(cdp.md5('ann@example.com'), md5('ann@example.com'), 'cdp.md5 matches PostgreSQL md5');
SELECT t.eq(cdp.sha256('ann@example.com'), encode(sha256('ann@example.com'), 'hex'), 'cdp.sha256 is lowercase hex');
SELECT t.eq(cdp.normalize_email('  Ann@Example.COM '), 'ann@example.com', 'normalize_email');
SELECT t.eq(cdp.normalize_email('not an email'), NULL, 'normalize_email of garbage is NULL');
SELECT t.eq(cdp.normalize_phone('+1 (415) 555-0100'), '+14155550100', 'normalize_phone');
SELECT t.eq(cdp.normalize_phone('12'), NULL, 'normalize_phone of garbage is NULL');
SELECT t.eq(cdp.md5(NULL), NULL, 'helpers are strict');
SELECT t.ok(cdp.new_uid() <> cdp.new_uid(), 'new_uid is fresh each time');
