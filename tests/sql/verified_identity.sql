-- Verified identity: with identity_verification 'required', a customer id in
-- an event payload identifies only with extra.identify_hash, the HMAC-SHA256
-- of the id under the portal's secret. A forged claim (md5 of a victim's
-- email, which anybody can compute) does not join the victim's customer;
-- the event is kept on the UID's own profile and the skip recorded.
SELECT cdp.create_portal('secure');
SELECT t.raises($$SELECT cdp.configure_portal('secure', '{"identity_verification": "required"}')$$, '22023',
                'required without a secret is refused', 'needs an identity_secret');
SELECT t.raises($$SELECT cdp.configure_portal('secure', '{"identity_secret": "short"}')$$, '22023',
                'a short secret is refused without repeating it', 'at least 16 characters');
SELECT cdp.configure_portal('secure', '{"identity_verification": "required", "identity_secret": "s3cret-of-the-shop-backend"}') AS conf \gset
SELECT t.eq(:'conf'::jsonb->'identity_secret_set', 'true'::jsonb, 'the answer says a secret is set');
SELECT t.ok(position('s3cret' IN :'conf') = 0, 'and never shows it');
SELECT t.ok((SELECT position('s3cret' IN p::text) = 0 FROM cdp.portals p WHERE portal = 'secure'), 'cdp.portals never shows it');
SET cdp.portal = 'secure';

-- The victim signs in through the backend (trusted).
SELECT cdp.identify('victim-uid', cdp.md5('victim@example.com'), '{"email": "victim@example.com", "name": "Vic"}') AS victim \gset

-- The attacker's browser claims the victim's customer id without a hash, with a wrong one, a malformed one.
SELECT cdp.track_event('attacker-uid', 'pageview', 'view', '{"context": {"device_id": "attacker-pc"}}') AS attacker \gset
SELECT t.eq(cdp.track_event('attacker-uid', 'user', 'sign_in', t.sign_in('victim@example.com', '{"name": "Mallory"}')), :attacker::bigint,
            'a claim without identify_hash: the event lands on the attacker''s own profile');
SELECT t.eq(cdp.track_event('attacker-uid', 'user', 'sign_in',
              t.sign_in('victim@example.com') || jsonb_build_object('extra', jsonb_build_object('identify_hash', cdp.sha256('guess')))), :attacker::bigint,
            'a wrong hash does not identify');
SELECT t.eq(cdp.track_event('attacker-uid', 'user', 'sign_in',
              jsonb_set(t.sign_in('victim@example.com'), '{extra,identify_hash}', '"zz-not-hex"')), :attacker::bigint,
            'a malformed hash is not valid, and no crash');
SELECT t.eq(cdp.track_event('attacker-uid', 'user', 'sign_in',
              jsonb_set(t.sign_in('victim@example.com'), '{extra,identify_hash}', to_jsonb(cdp.identity_hash('someone-else')))), :attacker::bigint,
            'a valid hash of another customer id does not identify as the victim');
SELECT t.eq(cdp.profile_of('attacker-uid'), :attacker::bigint, 'the attacker''s UID did not join the victim');
SELECT t.eq(cdp.profile(:victim)->'uids', '["victim-uid"]'::jsonb, 'the victim''s customer has only the victim''s UID');
SELECT t.eq(cdp.profile(:victim)->'attributes'->>'name', 'Vic', 'and the victim''s name');
SELECT t.eq((SELECT count(*) FROM cdp.identify_skips WHERE portal = 'secure' AND uid = 'attacker-uid' AND reason = 'unverified'), 4::bigint,
            'every unverified claim is recorded as a skip');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE portal = 'secure' AND uid = 'attacker-uid'), 5::bigint, 'and every event was kept');

-- The victim's own browser, with the hash the backend handed to the page, joins.
SELECT t.eq(cdp.track_event('victim-phone', 'user', 'sign_in',
              jsonb_set(t.sign_in('victim@example.com'), '{extra,identify_hash}', to_jsonb(cdp.identity_hash(cdp.md5('victim@example.com'))))),
            :victim::bigint, 'a correctly signed claim identifies');
SELECT t.ok(cdp.identity_hash('x') ~ '^[0-9a-f]{64}$', 'identity_hash: the HMAC-SHA256 as 64 lowercase hex digits (unit-tested against RFC 4231)');

-- The forged sign-ins left the victim's email on the attacker's profile (as a lead
-- form would). By default a verified portal does not let such an email merge:
-- the victim's next sign-in only suggests the attacker's profile.
SELECT t.eq(cdp.identify('victim-uid', cdp.md5('victim@example.com')), :victim::bigint, 'the victim signs in again');
SELECT t.eq(cdp.profile_of('attacker-uid'), :attacker::bigint, 'default contact_linking here (suggest): the forger''s UID stays out');
SELECT t.eq(cdp.profile(:victim)->'uids', '["victim-phone", "victim-uid"]'::jsonb, 'the customer''s UIDs are the victim''s own');
SELECT t.eq((SELECT count(*) FROM cdp.match_suggestions WHERE portal = 'secure' AND profile_id = :attacker AND customer_profile = :victim AND status = 'open'),
            1::bigint, 'the attacker''s profile is only a suggestion for review');

-- Lead forms without a verified identity link by contact_linking.
SELECT cdp.track_event('lead-uid', 'form', 'submit', '{"dims": {"customers": {"email": "victim@example.com"}}}') AS lead \gset
SELECT cdp.configure_portal('secure', '{"contact_linking": "suggest"}');
SELECT cdp.identify('victim-uid', cdp.md5('victim@example.com'));
SELECT t.eq(cdp.profile_of('lead-uid'), :lead::bigint, 'suggest: an unverified lead-form email does not merge');
SELECT t.eq((SELECT count(*) FROM cdp.match_suggestions WHERE portal = 'secure' AND profile_id = :lead AND customer_profile = :victim AND status = 'open'),
            1::bigint, 'it becomes a suggestion for review');
SELECT cdp.configure_portal('secure', '{"contact_linking": "off"}');
SELECT cdp.track_event('lead-2', 'form', 'submit', '{"dims": {"customers": {"email": "victim@example.com"}}}') AS lead2 \gset
SELECT cdp.identify('victim-uid', cdp.md5('victim@example.com'));
SELECT t.eq(cdp.profile_of('lead-2'), :lead2::bigint, 'off: it never links');
SELECT t.eq((SELECT count(*) FROM cdp.match_suggestions WHERE profile_id = :lead2), 0::bigint, 'not even as a suggestion');
SELECT cdp.configure_portal('secure', '{"contact_linking": "merge"}');
SELECT cdp.identify('victim-uid', cdp.md5('victim@example.com'));
SELECT t.eq(cdp.profile_of('lead-2'), :victim::bigint, 'merge: it merges, as without verification');

-- In a portal without verification (the default) a claim identifies as before.
RESET cdp.portal;
SELECT cdp.track_event('plain-uid', 'user', 'sign_in', t.sign_in('plain@example.com')) AS plain \gset
SELECT t.eq(cdp.profile(:plain)->>'customer_id', cdp.md5('plain@example.com'), 'identity_verification off: payload claims identify');
SELECT t.raises($$SELECT cdp.identity_hash('x')$$, '55000', 'identity_hash without a secret', 'has no identity_secret');
