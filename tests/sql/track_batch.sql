-- cdp.track_batch: the rules of track_event for an array of events; one bad
-- item never loses the good ones.
SELECT cdp.track_batch('[
    {"uid": "b1", "category": "pageview", "action": "view", "event_time": "2026-11-01T10:00:00Z",
     "payload": {"context": {"device_id": "dev-b1", "session_id": "s1", "message_id": "bm-1"}}},
    {"category": "pageview", "action": "view"},
    {"uid": "b1", "category": "pageview", "action": "view", "event_time": "2026-11-01T10:01:00Z",
     "payload": {"context": {"device_id": "dev-b1", "session_id": "s1", "message_id": "bm-2"}}},
    {"uid": "b1", "category": "pageview", "action": "view", "event_time": "2026-11-01T10:01:00Z",
     "payload": {"context": {"device_id": "dev-b1", "session_id": "s1", "message_id": "bm-2"}}},
    "not an object",
    {"uid": "b2", "category": "pageview", "action": "view", "event_time": "yesterday"},
    {"uid": "b2", "category": "", "action": "view"},
    {"uid": "b2", "category": "pageview", "action": "view", "payload": [1]}
]') AS r \gset
SELECT t.eq((:'r'::jsonb->>'accepted')::int, 3, 'three items accepted');
SELECT t.eq((:'r'::jsonb->>'stored')::int, 2, 'two stored');
SELECT t.eq((:'r'::jsonb->>'duplicates')::int, 1, 'a duplicate message id inside one batch is stored once');
SELECT t.eq((SELECT jsonb_agg(jsonb_build_array(x->'index', x->>'sqlstate') ORDER BY (x->>'index')::int) FROM jsonb_array_elements(:'r'::jsonb->'rejected') x),
            '[[1, "22004"], [4, "22023"], [5, "22007"], [6, "22023"], [7, "22023"]]'::jsonb,
            'each bad item is rejected with its index and SQLSTATE');
SELECT t.ok((SELECT bool_and(length(x->>'message') > 10) FROM jsonb_array_elements(:'r'::jsonb->'rejected') x), 'and a message');
SELECT t.eq(:'r'::jsonb->'profile_ids'->0, to_jsonb(cdp.profile_of('b1')), 'profile ids per item');
SELECT t.eq(:'r'::jsonb->'profile_ids'->3, :'r'::jsonb->'profile_ids'->2, 'the duplicate answers with the same profile');
SELECT t.eq(:'r'::jsonb->'profile_ids'->1, 'null'::jsonb, 'a rejected item has no profile');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'b1'), 2::bigint, 'the good events were stored');
SELECT t.eq(cdp.profile_of('b2'), NULL, 'nothing was written for the rejected UID');

-- Payloads are stored as sent; a missing or null payload is {}.
SELECT cdp.track_batch('[{"uid": "b1", "category": "c", "action": "null-payload", "payload": null},
                         {"uid": "b1", "category": "c", "action": "no-payload"},
                         {"uid": "b1", "category": "c", "action": "with-payload", "payload": {"items": [{"sku": "é-1"}], "context": {"page_url": "https://x.example/?a=1&b=\"2\""}}}]');
SELECT t.eq((SELECT jsonb_object_agg(action, payload) FROM cdp.events WHERE uid = 'b1' AND category = 'c'),
            '{"null-payload": {}, "no-payload": {}, "with-payload": {"items": [{"sku": "é-1"}], "context": {"page_url": "https://x.example/?a=1&b=\"2\""}}}'::jsonb,
            'payloads are stored as sent, a missing or null one as {}');
SELECT cdp.track_event('b1', 'c', 'single', '{"items": [{"sku": "é-1"}], "n": 1.50}');
SELECT t.eq((SELECT payload FROM cdp.events WHERE action = 'single'), '{"items": [{"sku": "é-1"}], "n": 1.50}'::jsonb, 'track_event stores its jsonb as it is');

-- A retry of a stored message id in a later batch.
SELECT cdp.track_batch('[{"uid": "b1", "category": "pageview", "action": "view", "payload": {"context": {"message_id": "bm-1"}}}]') AS r2 \gset
SELECT t.eq((:'r2'::jsonb->>'duplicates')::int, 1, 'a retry across batches is a duplicate');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'b1' AND category <> 'c'), 2::bigint, 'and not stored again');

-- Order inside a batch: page views, a sign-in, then a page view that lands on the customer.
SELECT cdp.track_batch(jsonb_build_array(
    jsonb_build_object('uid', 'b3', 'category', 'pageview', 'action', 'view', 'event_time', '2026-11-02T09:00:00Z',
                       'payload', jsonb_build_object('context', t.ctx('dev-b3', 's9', 'b3-1'))),
    jsonb_build_object('uid', 'b3', 'category', 'form', 'action', 'submit', 'event_time', '2026-11-02T09:01:00Z',
                       'payload', '{"dims": {"customers": {"phone": "+84 90 111 2222"}}}'::jsonb),
    jsonb_build_object('uid', 'b3', 'category', 'user', 'action', 'sign_in', 'event_time', '2026-11-02T09:02:00Z',
                       'payload', t.sign_in('batch@example.com', '{"name": "Bea"}', t.ctx('dev-b3', 's9', 'b3-2'))),
    jsonb_build_object('uid', 'b3', 'category', 'pageview', 'action', 'view', 'event_time', '2026-11-02T09:03:00Z',
                       'payload', jsonb_build_object('context', t.ctx('dev-b3', 's9', 'b3-3'))),
    jsonb_build_object('uid', 'b4', 'category', 'user', 'action', 'sign_in', 'event_time', '2026-11-02T09:04:00Z',
                       'payload', '{"dims": {"customers": {"customer_id": "undefined"}}}'::jsonb)
)) AS r3 \gset
SELECT cdp.customer_profile(cdp.md5('batch@example.com')) AS bea \gset
SELECT t.eq((:'r3'::jsonb->>'stored')::int, 5, 'all five stored');
SELECT t.eq(:'r3'::jsonb->'profile_ids'->3, :'bea'::jsonb->'profile_id', 'the page view after the sign-in belongs to the customer');
SELECT t.eq(to_jsonb(cdp.root_of((:'r3'::jsonb->'profile_ids'->>0)::bigint)), :'bea'::jsonb->'profile_id',
            'the earlier page view answered with its anonymous profile, as track_event would have, which is now merged into the customer');
SELECT t.eq((:'bea'::jsonb->>'event_count')::int, 4, 'all of b3''s events on the customer');
SELECT t.eq(:'bea'::jsonb->'attributes', '{"name": "Bea", "email": "batch@example.com", "phone": "+84 90 111 2222"}'::jsonb,
            'the lead form filled the customer''s gap on merge');
SELECT t.eq((SELECT count(*) FROM cdp.identify_skips WHERE uid = 'b4'), 1::bigint, 'a junk customer id in a batch is recorded as a skip');
SELECT t.eq(cdp.profile(cdp.profile_of('b4'))->>'kind', 'anonymous', 'and identifies nobody');

-- The same events through track_event and through track_batch give the same profiles.
CREATE TEMP TABLE stream AS
SELECT i, 'v' || (i % 7) AS visitor, '2026-11-03'::timestamptz + i * interval '1 minute' AS at,
       CASE WHEN i % 29 = 0 THEN t.sign_in('p' || (i % 7) || '@example.com', '{}', t.ctx('d' || (i % 5)))
            WHEN i % 13 = 0 THEN jsonb_build_object('dims', jsonb_build_object('customers', jsonb_build_object('email', 'p' || (i % 7) || '@example.com')), 'context', t.ctx('d' || (i % 5)))
            ELSE jsonb_build_object('context', t.ctx('d' || (i % 5), 's' || (i / 10)) || jsonb_build_object('user_agent', CASE WHEN i % 2 = 0 THEN 'Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0' ELSE 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1' END))
       END AS payload
FROM generate_series(1, 300) i;
-- one database, two namespaces: customer ids and devices carry the prefix too
SELECT count(cdp.track_event('one-' || visitor, 'e', 'x', replace(payload::text, 'd', 'one-d')::jsonb, at)) FROM (SELECT * FROM stream ORDER BY i) s;
SELECT cdp.track_batch(jsonb_agg(jsonb_build_object('uid', 'two-' || visitor, 'category', 'e', 'action', 'x',
                                                    'payload', replace(payload::text, 'd', 'two-d')::jsonb, 'event_time', at) ORDER BY i)) AS r4
FROM stream \gset
SELECT t.eq((:'r4'::jsonb->>'stored')::int, 300, 'the batch stored all 300');
CREATE TEMP TABLE shapes AS
SELECT side, v, p - 'profile_id' - 'uids' - 'merged_profiles' - 'customer_id' - 'created_at' - 'identified_at' AS shape,
       jsonb_array_length(p->'merged_profiles') AS merged
FROM (SELECT side, v, cdp.profile(cdp.profile_of(side || '-v' || v)) AS p FROM unnest(ARRAY['one', 'two']) side, generate_series(0, 6) v) x;
SELECT t.eq((SELECT count(*) FROM shapes a JOIN shapes b ON a.v = b.v AND a.side = 'one' AND b.side = 'two'
             WHERE a.merged = b.merged AND (a.shape - 'system') = (b.shape - 'system')
               AND (a.shape->'system') - 'device_id' = (b.shape->'system') - 'device_id'), 7::bigint,
            'every visitor''s profile is the same whichever way the events came');

-- Bad batches fail whole, with a clear error.
SELECT t.raises($$SELECT cdp.track_batch(NULL)$$, '22004', 'NULL batch');
SELECT t.raises($$SELECT cdp.track_batch('{"uid": "x"}')$$, '22023', 'a batch that is not an array', 'JSON array');
SET cdp.max_batch_items = 2;
SELECT t.raises($$SELECT cdp.track_batch('[{}, {}, {}]')$$, '54000', 'more items than cdp.max_batch_items', 'cdp.max_batch_items');
RESET cdp.max_batch_items;
SELECT t.eq(cdp.track_batch('[]')->>'accepted', '0', 'an empty batch is fine');

-- 10,000 items in one call.
SELECT cdp.track_batch(jsonb_agg(jsonb_build_object('uid', 'big-' || (i % 500), 'category', 'pageview', 'action', 'view',
                                                    'payload', jsonb_build_object('context', t.ctx('bd' || (i % 500), 'bs' || (i / 50), 'big-m' || i)))))
       AS r5
FROM generate_series(1, 10000) i \gset
SELECT t.eq((:'r5'::jsonb->>'stored')::int, 10000, 'a 10,000-item batch is stored whole');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid LIKE 'big-%'), 10000::bigint, 'all 10,000 events are there');
SELECT t.eq((SELECT count(*) FROM cdp.uids WHERE uid LIKE 'big-%'), 500::bigint, 'one profile per UID');
SELECT t.eq(jsonb_array_length(:'r5'::jsonb->'profile_ids'), 10000, 'a profile id per item');

-- A batch means what its events mean one by one, in order: a UID first seen
-- after a sign-in in the same batch does not exist yet when the sign-in links
-- profiles by device (on a family computer, it is the next person after a logout).
SELECT cdp.create_portal('one_by_one');
SELECT cdp.track_batch('[{"uid": "ord-a", "category": "user", "action": "sign_in", "payload": {"dims": {"customers": {"customer_id": "ord-c1"}}, "context": {"device_id": "ord-dev"}}},
                         {"uid": "ord-b", "category": "pageview", "action": "view", "payload": {"context": {"device_id": "ord-dev"}}}]') AS r \gset
SET cdp.portal = 'one_by_one';
SELECT cdp.track_event('ord-a', 'user', 'sign_in', '{"dims": {"customers": {"customer_id": "ord-c1"}}, "context": {"device_id": "ord-dev"}}');
SELECT cdp.track_event('ord-b', 'pageview', 'view', '{"context": {"device_id": "ord-dev"}}');
SELECT (SELECT count(*) FROM cdp.merges WHERE portal = 'one_by_one') AS one_by_one_merges \gset
RESET cdp.portal;
SELECT t.eq((SELECT count(*) FROM cdp.merges m JOIN cdp.uids u ON u.profile_id = m.from_profile WHERE u.uid = 'ord-b'), :one_by_one_merges::bigint,
            'the later UID is merged in the batch exactly as when the events come one by one');
SELECT t.ok((:'r'::jsonb->'profile_ids'->>1)::bigint <> (:'r'::jsonb->'profile_ids'->>0)::bigint, 'it keeps its own profile');
