-- cdp_identity 0.1.1 -> 0.2.0: portals, roles and verified identity.
-- Carries the data: every existing row goes into the portal 'default'.
-- No table is rewritten (the new columns are added with a default, which
-- PostgreSQL stores in the catalog); the keys and indexes that now lead with
-- the portal are built again, which reads each table once.

-- Portals and their configuration. The row of a portal is also its identity
-- lock: identity decisions lock it (FOR NO KEY UPDATE), and no role but the
-- extension's owner can read or lock it. The portal 'default' always exists:
-- its row is made the first time it is configured or locked (so that
-- pg_dump/pg_restore never meet a row the install script made too).
CREATE TABLE cdp.portal_settings (
    portal     text PRIMARY KEY CHECK (portal ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
    -- validated by cdp.configure_portal; never holds a secret
    settings   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz
);
COMMENT ON TABLE cdp.portal_settings IS 'Portals (identity spaces) and their settings; each row is also the portal''s identity lock';

-- Write-only secrets of a portal (the identity verification key).
CREATE TABLE cdp.portal_secrets (
    portal          text PRIMARY KEY REFERENCES cdp.portal_settings (portal),
    identity_secret text NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now()
);

-- Which roles may use a portal (besides superusers and members of cdp_admin).
-- The portal 'default' is open to cdp_writer and cdp_reader without a row; a
-- row with granted = false takes it back from one of them.
CREATE TABLE cdp.portal_grants (
    portal     text NOT NULL REFERENCES cdp.portal_settings (portal),
    role       name NOT NULL,
    granted    boolean NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portal, role)
);


-- Every row belongs to a portal; the existing ones to 'default'.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['profiles', 'uids', 'events', 'identifiers', 'profile_attributes', 'merges', 'merge_blocks',
                             'identify_skips', 'match_suggestions', 'erasures', 'erased_uids'] LOOP
        EXECUTE pg_catalog.format('ALTER TABLE cdp.%I ADD COLUMN portal text NOT NULL DEFAULT ''default''', t);
        EXECUTE pg_catalog.format('ALTER TABLE cdp.%I ALTER COLUMN portal DROP DEFAULT', t);
    END LOOP;
END
$$;
-- Identifiers known so far came from any source: trusted, as 0.1 treated them.
ALTER TABLE cdp.identifiers ADD COLUMN trusted boolean NOT NULL DEFAULT true;
ALTER TABLE cdp.identifiers ALTER COLUMN trusted DROP DEFAULT;
-- Placeholder UIDs ('undefined', ...) get quarantined profiles from now on.
ALTER TABLE cdp.profiles ADD COLUMN quarantined boolean NOT NULL DEFAULT false;
-- Erasure hashes are keyed from now on (those 0.1 recorded stay plain SHA-256
-- and are still looked up): the columns say hash, not sha256.
ALTER TABLE cdp.erasures RENAME COLUMN subject_sha256 TO subject_hash;
ALTER TABLE cdp.erased_uids RENAME COLUMN uid_sha256 TO uid_hash;

-- The install's key for erasure hashes, made at install from PostgreSQL's
-- strong random source and never readable by any group role. The oldest row
-- is the key: a restored dump brings the original key back beside the one
-- CREATE EXTENSION made, and the original (older) one wins, so suppression
-- and erasure records keep matching.
CREATE TABLE cdp.install_key (
    key        text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
INSERT INTO cdp.install_key (key)
SELECT pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', '');



-- Keys and indexes lead with the portal. Dropping a primary key drops the
-- foreign keys that use it; all are made again below with the same names.
ALTER TABLE cdp.erased_uids DROP CONSTRAINT erased_uids_pkey, DROP CONSTRAINT erased_uids_erasure_id_fkey;
ALTER TABLE cdp.erasures DROP CONSTRAINT erasures_pkey;
ALTER TABLE cdp.match_suggestions DROP CONSTRAINT match_suggestions_pkey, DROP CONSTRAINT match_suggestions_profile_id_fkey,
    DROP CONSTRAINT match_suggestions_customer_profile_fkey, DROP CONSTRAINT match_suggestions_merge_id_fkey;
DROP INDEX cdp.match_suggestions_open_key;
ALTER TABLE cdp.identify_skips DROP CONSTRAINT identify_skips_pkey;
ALTER TABLE cdp.merge_blocks DROP CONSTRAINT merge_blocks_pkey, DROP CONSTRAINT merge_blocks_from_profile_fkey,
    DROP CONSTRAINT merge_blocks_into_profile_fkey, DROP CONSTRAINT merge_blocks_merge_id_fkey;
DROP INDEX cdp.merge_blocks_into_idx;
ALTER TABLE cdp.merges DROP CONSTRAINT merges_undone_by_cascade_of_fkey, DROP CONSTRAINT merges_from_profile_fkey,
    DROP CONSTRAINT merges_into_profile_fkey, DROP CONSTRAINT merges_uid_profile_before_fkey, DROP CONSTRAINT merges_pkey;
DROP INDEX cdp.merges_from_idx, cdp.merges_into_idx, cdp.merges_uid_idx;
ALTER TABLE cdp.profile_attributes DROP CONSTRAINT profile_attributes_pkey, DROP CONSTRAINT profile_attributes_profile_id_fkey;
ALTER TABLE cdp.identifiers DROP CONSTRAINT identifiers_pkey, DROP CONSTRAINT identifiers_profile_id_fkey;
DROP INDEX cdp.identifiers_profile_idx;
ALTER TABLE cdp.events DROP CONSTRAINT events_pkey;
DROP INDEX cdp.events_profile_time_idx, cdp.events_message_id_key;
ALTER TABLE cdp.uids DROP CONSTRAINT uids_pkey, DROP CONSTRAINT uids_profile_id_fkey;
DROP INDEX cdp.uids_profile_idx;
ALTER TABLE cdp.profiles DROP CONSTRAINT profiles_merged_into_fkey, DROP CONSTRAINT profiles_customer_id_key, DROP CONSTRAINT profiles_pkey;
DROP INDEX cdp.profiles_merged_into_idx;

ALTER TABLE cdp.profiles ADD CONSTRAINT profiles_pkey PRIMARY KEY (portal, profile_id),
    ADD CONSTRAINT profiles_customer_id_key UNIQUE (portal, customer_id),
    ADD CONSTRAINT profiles_merged_into_fkey FOREIGN KEY (portal, merged_into) REFERENCES cdp.profiles (portal, profile_id);
ALTER TABLE cdp.uids ADD CONSTRAINT uids_pkey PRIMARY KEY (portal, uid),
    ADD CONSTRAINT uids_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id);
ALTER TABLE cdp.events ADD CONSTRAINT events_pkey PRIMARY KEY (portal, event_id);
ALTER TABLE cdp.identifiers ADD CONSTRAINT identifiers_pkey PRIMARY KEY (portal, kind, value, profile_id),
    ADD CONSTRAINT identifiers_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id);
ALTER TABLE cdp.profile_attributes ADD CONSTRAINT profile_attributes_pkey PRIMARY KEY (portal, profile_id, key),
    ADD CONSTRAINT profile_attributes_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id);
ALTER TABLE cdp.merges ADD CONSTRAINT merges_pkey PRIMARY KEY (portal, merge_id),
    ADD CONSTRAINT merges_from_profile_fkey FOREIGN KEY (portal, from_profile) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT merges_into_profile_fkey FOREIGN KEY (portal, into_profile) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT merges_uid_profile_before_fkey FOREIGN KEY (portal, uid_profile_before) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT merges_undone_by_cascade_of_fkey FOREIGN KEY (portal, undone_by_cascade_of) REFERENCES cdp.merges (portal, merge_id);
ALTER TABLE cdp.merge_blocks ADD CONSTRAINT merge_blocks_pkey PRIMARY KEY (portal, from_profile, into_profile, merge_id),
    ADD CONSTRAINT merge_blocks_from_profile_fkey FOREIGN KEY (portal, from_profile) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT merge_blocks_into_profile_fkey FOREIGN KEY (portal, into_profile) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT merge_blocks_merge_id_fkey FOREIGN KEY (portal, merge_id) REFERENCES cdp.merges (portal, merge_id);
ALTER TABLE cdp.identify_skips ADD CONSTRAINT identify_skips_pkey PRIMARY KEY (portal, skip_id);
ALTER TABLE cdp.match_suggestions ADD CONSTRAINT match_suggestions_pkey PRIMARY KEY (portal, suggestion_id),
    ADD CONSTRAINT match_suggestions_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT match_suggestions_customer_profile_fkey FOREIGN KEY (portal, customer_profile) REFERENCES cdp.profiles (portal, profile_id),
    ADD CONSTRAINT match_suggestions_merge_id_fkey FOREIGN KEY (portal, merge_id) REFERENCES cdp.merges (portal, merge_id);
ALTER TABLE cdp.erasures ADD CONSTRAINT erasures_pkey PRIMARY KEY (portal, erasure_id);
ALTER TABLE cdp.erased_uids ADD CONSTRAINT erased_uids_pkey PRIMARY KEY (portal, uid_hash),
    ADD CONSTRAINT erased_uids_erasure_id_fkey FOREIGN KEY (portal, erasure_id) REFERENCES cdp.erasures (portal, erasure_id);


-- Shared computers (new tables; their indexes are made below with the others).
ALTER TABLE cdp.uids ADD COLUMN shared boolean NOT NULL DEFAULT false, ADD COLUMN last_session_id text, ADD COLUMN last_event_at timestamptz;
ALTER TABLE cdp.merges DROP CONSTRAINT merges_reason_check,
    ADD CONSTRAINT merges_reason_check CHECK (reason IN ('uid', 'device_id', 'email', 'phone', 'identify_id', 'predict', 'session'));
-- Shared computers. Every identify notes which customer was identified on
-- which device id and UID, as of its identify_time; a device id or UID
-- identified as two or more customers within the portal's
-- shared_device_window is shared: it no longer links anonymous profiles by
-- device, and its UIDs start a new anonymous profile per session.
CREATE TABLE cdp.identified_on (
    portal           text NOT NULL,
    kind             text NOT NULL,
    value            text NOT NULL,
    customer_profile bigint NOT NULL,
    first_at         timestamptz NOT NULL,
    last_at          timestamptz NOT NULL,
    CONSTRAINT identified_on_pkey PRIMARY KEY (portal, kind, value, customer_profile),
    CONSTRAINT identified_on_kind_check CHECK (kind IN ('device_id', 'uid')),
    CONSTRAINT identified_on_customer_profile_fkey FOREIGN KEY (portal, customer_profile) REFERENCES cdp.profiles (portal, profile_id)
);

-- The decision that a device id or UID is shared, with its evidence (how many
-- customers, within which window); an admin clears it with cdp.clear_shared
-- (then only identifies after cleared_at count as evidence again).
CREATE TABLE cdp.shared_devices (
    portal      text NOT NULL,
    kind        text NOT NULL,
    value       text NOT NULL,
    -- the identify_time of the identify that revealed it, and when that ran
    detected_at timestamptz NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    evidence    jsonb NOT NULL,
    cleared_at  timestamptz,
    cleared_by  text,
    CONSTRAINT shared_devices_pkey PRIMARY KEY (portal, kind, value),
    CONSTRAINT shared_devices_kind_check CHECK (kind IN ('device_id', 'uid'))
);

SELECT pg_catalog.pg_extension_config_dump('cdp.identified_on', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.shared_devices', '');
-- Predicted matching: each profile's context signals (the last value of each:
-- device id, user agent, IP network, screen, timezone, locale) and when that
-- value was recorded, so that candidates are found by index, a bounded number
-- per value, whatever the number of profiles.
CREATE TABLE cdp.profile_signals (
    portal     text NOT NULL,
    profile_id bigint NOT NULL,
    signal     text NOT NULL,
    value      text NOT NULL,
    seen_at    timestamptz NOT NULL,
    CONSTRAINT profile_signals_pkey PRIMARY KEY (portal, profile_id, signal),
    CONSTRAINT profile_signals_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id)
);

-- How common each signal value is: profiles recorded with it per day (value
-- '*': all profiles with the signal), maintained as profiles are written, so
-- an agreement's weight reflects the value's frequency (see predict.rs).
-- No personal data: counts only.
CREATE TABLE cdp.signal_counts (
    portal   text NOT NULL,
    signal   text NOT NULL,
    value    text NOT NULL,
    day      date NOT NULL,
    profiles integer NOT NULL,
    CONSTRAINT signal_counts_pkey PRIMARY KEY (portal, signal, value, day)
);

SELECT pg_catalog.pg_extension_config_dump('cdp.profile_signals', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.signal_counts', '');

-- The signals and their counts, from the profiles 0.1 recorded (as of their
-- system attributes' time).
INSERT INTO cdp.profile_signals (portal, profile_id, signal, value, seen_at)
SELECT p.portal, p.profile_id, k.signal, k.value, coalesce(p.system_at, p.created_at)
FROM cdp.profiles p,
     LATERAL (VALUES ('device_id', p.system ->> 'device_id'), ('user_agent', p.system ->> 'user_agent'),
                     ('screen', p.system ->> 'screen'), ('timezone', p.system ->> 'timezone'), ('locale', p.system ->> 'locale'),
                     ('ip_network', CASE WHEN p.system ->> 'ip' ~ '^[0-9]{1,3}([.][0-9]{1,3}){3}$'
                                         THEN pg_catalog.regexp_replace(p.system ->> 'ip', '[.][0-9]+$', '')
                                         WHEN pg_catalog.array_length(pg_catalog.string_to_array(p.system ->> 'ip', ':'), 1) >= 3
                                         THEN pg_catalog.array_to_string((pg_catalog.string_to_array(p.system ->> 'ip', ':'))[1:3], ':')
                                    END)) AS k(signal, value)
WHERE k.value IS NOT NULL AND k.value <> '';
INSERT INTO cdp.signal_counts (portal, signal, value, day, profiles)
SELECT s.portal, s.signal, v.value, (s.seen_at AT TIME ZONE 'UTC')::date, count(*)
FROM cdp.profile_signals s, LATERAL (VALUES (s.value), ('*')) AS v(value)
GROUP BY 1, 2, 3, 4;
-- Indexes: those of 0.1 again, leading with the portal, and new ones on
-- every column erasure and unmerge find rows by.
CREATE INDEX profiles_merged_into_idx ON cdp.profiles (portal, merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX uids_profile_idx ON cdp.uids (portal, profile_id);
CREATE INDEX uids_device_idx ON cdp.uids (portal, last_device_id) WHERE last_device_id IS NOT NULL;
CREATE INDEX events_profile_time_idx ON cdp.events (portal, profile_id, event_time, event_id);
CREATE UNIQUE INDEX events_message_id_key ON cdp.events (portal, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX identifiers_profile_idx ON cdp.identifiers (portal, profile_id);
CREATE INDEX profile_attributes_source_idx ON cdp.profile_attributes (portal, source_profile) WHERE source_profile IS NOT NULL;
CREATE INDEX merges_from_idx ON cdp.merges (portal, from_profile);
CREATE INDEX merges_into_idx ON cdp.merges (portal, into_profile);
CREATE INDEX merges_uid_idx ON cdp.merges (portal, uid) WHERE kind = 'uid_reassigned';
CREATE INDEX merges_uid_profile_before_idx ON cdp.merges (portal, uid_profile_before) WHERE uid_profile_before IS NOT NULL;
CREATE INDEX merges_undone_by_cascade_of_idx ON cdp.merges (portal, undone_by_cascade_of) WHERE undone_by_cascade_of IS NOT NULL;
CREATE INDEX merge_blocks_into_idx ON cdp.merge_blocks (portal, into_profile);
CREATE INDEX merge_blocks_merge_idx ON cdp.merge_blocks (portal, merge_id);
CREATE INDEX identify_skips_uid_idx ON cdp.identify_skips (portal, uid);
CREATE UNIQUE INDEX match_suggestions_open_key ON cdp.match_suggestions (portal, profile_id, customer_profile) WHERE status = 'open';
CREATE INDEX match_suggestions_profile_idx ON cdp.match_suggestions (portal, profile_id);
CREATE INDEX match_suggestions_customer_idx ON cdp.match_suggestions (portal, customer_profile);
CREATE INDEX match_suggestions_merge_idx ON cdp.match_suggestions (portal, merge_id) WHERE merge_id IS NOT NULL;
CREATE INDEX profile_signals_value_idx ON cdp.profile_signals (portal, signal, value, seen_at);
CREATE INDEX identified_on_customer_idx ON cdp.identified_on (portal, customer_profile);
CREATE INDEX erased_uids_erasure_idx ON cdp.erased_uids (portal, erasure_id);

-- pg_dump keeps the new tables' data too.
SELECT pg_catalog.pg_extension_config_dump('cdp.portal_settings', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.portal_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.portal_grants', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.install_key', '');

-- Every public function takes an optional last argument `portal` now: the
-- 0.1 signatures go, and the functions are made again below (with the views
-- that used them).
DROP VIEW cdp.customers;
DROP VIEW cdp.anonymous_profiles;
DROP FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz), cdp.track_batch(jsonb),
    cdp.identify(text, text, jsonb, text, timestamptz), cdp.unmerge(bigint, boolean), cdp.forget_customer(text),
    cdp.forget_uid(text), cdp.accept_suggestion(bigint), cdp.reject_suggestion(bigint),
    cdp.profile_of(text), cdp.root_of(bigint), cdp.family_of(bigint), cdp.profile(bigint), cdp.customer_profile(text),
    cdp.profile_at(text, timestamptz), cdp.explain(bigint), cdp.export_customer(text);

-- Every release has its own library file (see README, Upgrades): the
-- functions of 0.1 move to this release's, unchanged otherwise.
DO $$
DECLARE f oid;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'cdp'::regnamespace AND p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'c') LOOP
        EXECUTE pg_catalog.replace(pg_catalog.pg_get_functiondef(f), 'AS ''$libdir/cdp_identity'',', 'AS ''cdp_identity-0.2.0'',');
    END LOOP;
END
$$;

-- normalize_phone takes a region now (E.164 with libphonenumber's rules).
DROP FUNCTION cdp.normalize_phone(text);

-- New in 0.2.0: the portal of a call, versions, verified identity, portal configuration.
CREATE FUNCTION cdp."track_event"(
	"uid" TEXT, /* Option < & str > */
	"category" TEXT, /* Option < & str > */
	"action" TEXT, /* Option < & str > */
	"payload" jsonb DEFAULT '{}', /* Option < JsonbArg > */
	"event_time" timestamp with time zone DEFAULT now(), /* Option < TimestampWithTimeZone > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS bigint /* Option < i64 > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'track_event_wrapper';

CREATE FUNCTION cdp."track_batch"(
	"events" jsonb, /* Option < JsonbArg > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'track_batch_wrapper';

CREATE FUNCTION cdp."identify"(
	"uid" TEXT, /* Option < & str > */
	"customer_id" TEXT, /* Option < & str > */
	"attributes" jsonb DEFAULT '{}', /* Option < JsonbArg > */
	"identify_type" TEXT DEFAULT 'exact', /* Option < & str > */
	"identify_time" timestamp with time zone DEFAULT now(), /* Option < TimestampWithTimeZone > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'identify_wrapper';

CREATE FUNCTION cdp."unmerge"(
	"merge_id" bigint, /* Option < i64 > */
	"cascade" bool DEFAULT false, /* Option < bool > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'unmerge_wrapper';

CREATE FUNCTION cdp."forget_customer"(
	"customer_id" TEXT, /* Option < & str > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'forget_customer_wrapper';

CREATE FUNCTION cdp."forget_uid"(
	"uid" TEXT, /* Option < & str > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'forget_uid_wrapper';

CREATE FUNCTION cdp."accept_suggestion"(
	"suggestion_id" bigint, /* Option < i64 > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'accept_suggestion_wrapper';

CREATE FUNCTION cdp."reject_suggestion"(
	"suggestion_id" bigint, /* Option < i64 > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'reject_suggestion_wrapper';

CREATE FUNCTION cdp."normalize_phone"(
	"input" TEXT, /* Option < & str > */
	"region" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TEXT /* Option < String > */
IMMUTABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'normalize_phone_wrapper';

CREATE FUNCTION cdp."customer_id_for_email"(
	"email" TEXT /* & str */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'customer_id_for_email_wrapper';

CREATE FUNCTION cdp."identify_outcome"(
	"uid" TEXT, /* Option < & str > */
	"customer_id" TEXT, /* Option < & str > */
	"attributes" jsonb DEFAULT '{}', /* Option < JsonbArg > */
	"identify_type" TEXT DEFAULT 'exact', /* Option < & str > */
	"identify_time" timestamp with time zone DEFAULT now(), /* Option < TimestampWithTimeZone > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'identify_outcome_wrapper';

CREATE FUNCTION cdp."clear_shared"(
	"kind" TEXT, /* Option < & str > */
	"value" TEXT, /* Option < & str > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'clear_shared_wrapper';

CREATE FUNCTION cdp."current_portal"(
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TEXT /* String */
STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'current_portal_wrapper';

CREATE FUNCTION cdp."usable_portals"() RETURNS SETOF TEXT /* String */
STRICT STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'usable_portals_wrapper';

CREATE FUNCTION cdp."version"() RETURNS jsonb /* JsonB */
STRICT STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'version_wrapper';

CREATE FUNCTION cdp."identity_hash"(
	"customer_id" TEXT, /* Option < & str > */
	"portal" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TEXT /* String */
STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'identity_hash_wrapper';

CREATE FUNCTION cdp."create_portal"(
	"portal" TEXT, /* Option < & str > */
	"settings" jsonb DEFAULT '{}' /* Option < JsonbArg > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'create_portal_wrapper';

CREATE FUNCTION cdp."configure_portal"(
	"portal" TEXT, /* Option < & str > */
	"settings" jsonb /* Option < JsonbArg > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'configure_portal_wrapper';

CREATE FUNCTION cdp."grant_portal"(
	"role" TEXT, /* Option < & str > */
	"portal" TEXT /* Option < & str > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'grant_portal_wrapper';

CREATE FUNCTION cdp."revoke_portal"(
	"role" TEXT, /* Option < & str > */
	"portal" TEXT /* Option < & str > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'cdp_identity-0.2.0', 'revoke_portal_wrapper';


-- The read functions and views work in the caller's portal; events_of pages.
DROP FUNCTION cdp.events_of(bigint);
CREATE OR REPLACE FUNCTION cdp.root_of(profile_id bigint, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(p.merged_into, p.profile_id) FROM cdp.profiles p WHERE p.portal = cdp.current_portal($2) AND p.profile_id = $1
$$;

CREATE OR REPLACE FUNCTION cdp.profile_of(uid text, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(p.merged_into, p.profile_id)
    FROM cdp.uids u JOIN cdp.profiles p ON p.portal = u.portal AND p.profile_id = u.profile_id
    WHERE u.portal = cdp.current_portal($2) AND u.uid = $1
$$;

CREATE OR REPLACE FUNCTION cdp.family_of(profile_id bigint, portal text DEFAULT NULL) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER ROWS 4
SET search_path = pg_catalog, pg_temp AS $$
    SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = cdp.current_portal($2) AND f.profile_id = cdp.root_of($1, $2)
    UNION ALL
    SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = cdp.current_portal($2) AND f.merged_into = cdp.root_of($1, $2)
$$;

CREATE OR REPLACE FUNCTION cdp.profile(profile_id bigint, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH family AS (
        SELECT f.* FROM cdp.family_of($1, $2) AS m(profile_id),
                        LATERAL (SELECT f.* FROM cdp.profiles f WHERE f.portal = cdp.current_portal($2) AND f.profile_id = m.profile_id OFFSET 0) AS f
    ), root AS (
        SELECT f.* FROM family f WHERE f.merged_into IS NULL
    ), activity AS (
        SELECT count(*) AS event_count,
               count(DISTINCT e.session_id) AS session_count,
               min(e.event_time) AS first_event,
               max(e.event_time) AS last_event
        FROM family f, LATERAL (SELECT e.session_id, e.event_time FROM cdp.events e
                                WHERE e.portal = f.portal AND e.profile_id = f.profile_id OFFSET 0) AS e
    ), last_values AS (
        SELECT DISTINCT ON (kv.key) kv.key, kv.value
        FROM family f, jsonb_each(f.system) kv
        ORDER BY kv.key, f.system_at DESC NULLS LAST, f.profile_id DESC
    ), first_values AS (
        SELECT DISTINCT ON (kv.key) kv.key, kv.value
        FROM family f, jsonb_each(f.first_touch) kv
        ORDER BY kv.key, f.first_touch_at ASC NULLS LAST, f.profile_id
    )
    SELECT jsonb_build_object(
        'profile_id', r.profile_id,
        'customer_id', r.customer_id,
        'kind', CASE WHEN r.customer_id IS NULL THEN 'anonymous' ELSE 'customer' END,
        'uids', (SELECT coalesce(jsonb_agg(u.uid ORDER BY u.uid), '[]')
                 FROM family f, LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.portal = f.portal AND u.profile_id = f.profile_id OFFSET 0) AS u),
        'merged_profiles', (SELECT coalesce(jsonb_agg(f.profile_id ORDER BY f.profile_id), '[]')
                            FROM family f WHERE f.profile_id <> r.profile_id),
        'attributes', (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
                       FROM cdp.profile_attributes a WHERE a.portal = r.portal AND a.profile_id = r.profile_id),
        'system', (SELECT coalesce(jsonb_object_agg(v.key, v.value), '{}') FROM first_values v)
                  || (SELECT coalesce(jsonb_object_agg(v.key, v.value), '{}') FROM last_values v)
                  || jsonb_build_object('first_seen', least(a.first_event, r.identified_at),
                                        'last_seen', greatest(a.last_event, r.identified_at)),
        'event_count', a.event_count,
        'session_count', a.session_count,
        'first_seen', least(a.first_event, r.identified_at),
        'last_seen', greatest(a.last_event, r.identified_at),
        'identified_at', r.identified_at,
        'created_at', r.created_at
    )
    FROM root r, activity a
$$;

CREATE OR REPLACE FUNCTION cdp.customer_profile(customer_id text, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT cdp.profile(p.profile_id, p.portal) FROM cdp.profiles p WHERE p.portal = cdp.current_portal($2) AND p.customer_id = $1
$$;

CREATE OR REPLACE FUNCTION cdp.events_of(profile_id bigint, after_event bigint DEFAULT NULL, max_rows integer DEFAULT NULL,
                              newest_first boolean DEFAULT false, portal text DEFAULT NULL)
RETURNS TABLE (event_id bigint, uid text, category text, action text, event_time timestamptz, payload jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    here text := cdp.current_portal(events_of.portal);
    newest boolean := coalesce(events_of.newest_first, false);
    root bigint;
    members bigint[];
    after_time timestamptz;
    after_id bigint := events_of.after_event;
BEGIN
    IF events_of.max_rows < 0 THEN
        RAISE EXCEPTION 'max_rows must not be negative' USING ERRCODE = '22023';
    END IF;
    -- The family, read here rather than through cdp.family_of: a SQL function
    -- that cannot be inlined is planned again on every call.
    SELECT coalesce(p.merged_into, p.profile_id) INTO root FROM cdp.profiles p WHERE p.portal = here AND p.profile_id = events_of.profile_id;
    IF root IS NULL THEN
        RETURN;
    END IF;
    members := ARRAY(SELECT root UNION ALL SELECT p.profile_id FROM cdp.profiles p WHERE p.portal = here AND p.merged_into = root);
    IF after_id IS NOT NULL THEN
        SELECT e.event_time INTO after_time FROM cdp.events e WHERE e.portal = here AND e.event_id = after_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'after_event % is not an event of portal "%"', after_id, here USING ERRCODE = '22023';
        END IF;
    ELSIF newest THEN
        after_time := 'infinity'; after_id := 9223372036854775807;
    ELSE
        after_time := '-infinity'; after_id := -9223372036854775808;
    END IF;
    IF cardinality(members) = 1 AND newest THEN
        -- One profile: exactly the direct index query.
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload FROM cdp.events e
        WHERE e.portal = here AND e.profile_id = root AND (e.event_time, e.event_id) < (after_time, after_id)
        ORDER BY e.event_time DESC, e.event_id DESC LIMIT events_of.max_rows;
    ELSIF cardinality(members) = 1 THEN
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload FROM cdp.events e
        WHERE e.portal = here AND e.profile_id = root AND (e.event_time, e.event_id) > (after_time, after_id)
        ORDER BY e.event_time, e.event_id LIMIT events_of.max_rows;
    ELSIF newest THEN
        -- Several: each profile's page from its index, merged.
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload
        FROM pg_catalog.unnest(members) AS f(member),
             LATERAL (SELECT e.* FROM cdp.events e
                      WHERE e.portal = here AND e.profile_id = f.member AND (e.event_time, e.event_id) < (after_time, after_id)
                      ORDER BY e.event_time DESC, e.event_id DESC LIMIT events_of.max_rows) AS e
        ORDER BY e.event_time DESC, e.event_id DESC LIMIT events_of.max_rows;
    ELSE
        RETURN QUERY
        SELECT e.event_id, e.uid, e.category, e.action, e.event_time, e.payload
        FROM pg_catalog.unnest(members) AS f(member),
             LATERAL (SELECT e.* FROM cdp.events e
                      WHERE e.portal = here AND e.profile_id = f.member AND (e.event_time, e.event_id) > (after_time, after_id)
                      ORDER BY e.event_time, e.event_id LIMIT events_of.max_rows) AS e
        ORDER BY e.event_time, e.event_id LIMIT events_of.max_rows;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION cdp.profile_at(uid text, at timestamptz, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH seen AS (
        SELECT u.portal, u.profile_id FROM cdp.uids u WHERE u.portal = cdp.current_portal($3) AND u.uid = $1 AND u.first_seen <= $2
    ), own AS (
        SELECT seen.portal, coalesce(
            (SELECT m.into_profile FROM cdp.merges m
             WHERE m.portal = seen.portal AND m.kind = 'uid_reassigned' AND m.uid = $1 AND m.identify_time <= $2
               AND (m.undone_at IS NULL OR m.undone_at > $2)
             ORDER BY m.identify_time DESC, m.merge_id DESC LIMIT 1),
            (SELECT m.uid_profile_before FROM cdp.merges m
             WHERE m.portal = seen.portal AND m.kind = 'uid_reassigned' AND m.uid = $1
             ORDER BY m.identify_time, m.merge_id LIMIT 1),
            seen.profile_id) AS profile_id
        FROM seen
    )
    SELECT coalesce(
        (SELECT m.into_profile FROM cdp.merges m
         WHERE m.portal = own.portal AND m.kind = 'merge' AND m.from_profile = own.profile_id AND m.identify_time <= $2
           AND (m.undone_at IS NULL OR m.undone_at > $2)
         ORDER BY m.identify_time DESC, m.merge_id DESC LIMIT 1),
        own.profile_id)
    FROM own
$$;

CREATE OR REPLACE FUNCTION cdp.explain(profile_id bigint, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH root AS (
        SELECT r.* FROM cdp.profiles r WHERE r.portal = cdp.current_portal($2) AND r.profile_id = cdp.root_of($1, $2)
    ), decision AS (
        SELECT m.merge_id, m.kind, m.from_profile, m.into_profile, m.reason, m.evidence, m.uid, m.identify_type,
               m.identify_time, m.merged_at, m.filled_attributes, m.uid_profile_before, m.undone_at,
               m.undone_by_cascade_of
        FROM root, LATERAL (
            SELECT m.* FROM cdp.merges m WHERE m.portal = root.portal AND m.into_profile = root.profile_id
            UNION
            SELECT m.* FROM cdp.merges m WHERE m.portal = root.portal AND m.from_profile = root.profile_id) AS m
    )
    SELECT jsonb_build_object(
        'profile_id', root.profile_id,
        'customer_id', root.customer_id,
        'kind', CASE WHEN root.customer_id IS NULL THEN 'anonymous' ELSE 'customer' END,
        'uids', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'uid', u.uid,
                        'first_seen', u.first_seen,
                        'profile', u.profile_id,
                        'via', CASE
                            WHEN u.profile_id <> root.profile_id THEN
                                (SELECT to_jsonb(d) - 'filled_attributes' FROM decision d
                                 WHERE d.kind = 'merge' AND d.from_profile = u.profile_id AND d.undone_at IS NULL
                                 ORDER BY d.merge_id DESC LIMIT 1)
                            ELSE coalesce(
                                (SELECT to_jsonb(d) - 'filled_attributes' FROM decision d
                                 WHERE d.kind = 'uid_reassigned' AND d.uid = u.uid AND d.into_profile = root.profile_id
                                   AND d.undone_at IS NULL
                                 ORDER BY d.merge_id DESC LIMIT 1),
                                CASE WHEN root.customer_id IS NULL
                                     THEN '{"rule": "first event of the UID"}'::jsonb
                                     ELSE '{"rule": "identified before it had an anonymous profile"}'::jsonb END)
                        END) ORDER BY u.uid), '[]')
                 FROM cdp.family_of(root.profile_id, root.portal) AS f(profile_id),
                      LATERAL (SELECT u.* FROM cdp.uids u WHERE u.portal = root.portal AND u.profile_id = f.profile_id OFFSET 0) AS u),
        'attributes', (SELECT coalesce(jsonb_object_agg(a.key, jsonb_build_object(
                              'value', a.value, 'source', a.source, 'set_at', a.set_at, 'from_profile', a.source_profile)), '{}')
                       FROM cdp.profile_attributes a WHERE a.portal = root.portal AND a.profile_id = root.profile_id),
        'decisions', (SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.merge_id), '[]') FROM decision d),
        -- The profile's UIDs and devices found shared: the decision, its evidence,
        -- and the customer profiles identified on them.
        'shared', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'kind', s.kind, 'value', s.value, 'shared', s.cleared_at IS NULL, 'detected_at', s.detected_at,
                          'decided_at', s.decided_at, 'evidence', s.evidence, 'cleared_at', s.cleared_at, 'cleared_by', s.cleared_by,
                          'customer_profiles', (SELECT jsonb_agg(o.customer_profile ORDER BY o.first_at) FROM cdp.identified_on o
                                                WHERE o.portal = s.portal AND o.kind = s.kind AND o.value = s.value))
                      ORDER BY s.kind, s.value), '[]')
                   FROM (SELECT DISTINCT s.* FROM cdp.family_of(root.profile_id, root.portal) AS f(profile_id),
                              LATERAL (SELECT u.* FROM cdp.uids u WHERE u.portal = root.portal AND u.profile_id = f.profile_id OFFSET 0) AS u,
                              LATERAL (SELECT s.* FROM cdp.shared_devices s WHERE s.portal = root.portal AND s.kind = 'uid' AND s.value = u.uid
                                       UNION ALL
                                       SELECT s.* FROM cdp.shared_devices s
                                       WHERE s.portal = root.portal AND s.kind = 'device_id' AND s.value = u.last_device_id) AS s) AS s)
    )
    FROM root
$$;

CREATE OR REPLACE FUNCTION cdp.unmerged_profiles_about(portal text, customer_profile bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp AS $$
    -- From the family's identifiers to the profiles carrying them, each step a
    -- lookup by key (fenced: never from `customer_id IS NULL`, which every
    -- anonymous profile matches).
    SELECT DISTINCT other.profile_id
    FROM (SELECT $2 AS profile_id
          UNION ALL
          SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = $1 AND f.merged_into = $2) AS fam,
         -- (the kind is checked outside the fence: inside it, the primary key
         -- (portal, kind, value, profile_id) would look like a match and read
         -- every email of the portal to find this profile's)
         LATERAL (SELECT i.kind, i.value FROM cdp.identifiers i
                  WHERE i.portal = $1 AND i.profile_id = fam.profile_id OFFSET 0) AS mine,
         LATERAL (SELECT t.profile_id FROM cdp.identifiers t
                  WHERE t.portal = $1 AND t.kind = mine.kind AND t.value = mine.value OFFSET 0) AS theirs,
         LATERAL (SELECT o.* FROM cdp.profiles o WHERE o.portal = $1 AND o.profile_id = theirs.profile_id OFFSET 0) AS other
    WHERE mine.kind IN ('email', 'phone', 'identify_id') AND other.customer_id IS NULL AND other.merged_into IS NULL
$$;

CREATE OR REPLACE FUNCTION cdp.export_customer(customer_id text, portal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    WITH c AS (
        SELECT p.portal, p.profile_id FROM cdp.profiles p WHERE p.portal = cdp.current_portal($2) AND p.customer_id = $1
    ), family AS (
        SELECT c.portal, cdp.family_of(c.profile_id, c.portal) AS profile_id FROM c
        ), family_uids AS (
        SELECT u.* FROM family f, LATERAL (SELECT u.* FROM cdp.uids u WHERE u.portal = f.portal AND u.profile_id = f.profile_id OFFSET 0) AS u
    ), related AS (
        SELECT c.portal, r.profile_id FROM c, LATERAL cdp.unmerged_profiles_about(c.portal, c.profile_id) AS r(profile_id)
    )
    SELECT jsonb_build_object(
        'customer_id', $1,
        'exported_at', now(),
        'profile', cdp.profile(c.profile_id, c.portal),
        'explain', cdp.explain(c.profile_id, c.portal),
        'uids', (SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.uid), '[]') FROM family_uids u),
        'identifiers', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.kind, i.value, i.profile_id), '[]')
                        FROM family f, LATERAL (SELECT i.* FROM cdp.identifiers i WHERE i.portal = f.portal AND i.profile_id = f.profile_id OFFSET 0) AS i),
        'attributes', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.profile_id, a.key), '[]')
                       FROM family f, LATERAL (SELECT a.* FROM cdp.profile_attributes a WHERE a.portal = f.portal AND a.profile_id = f.profile_id OFFSET 0) AS a),
        'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.event_time, e.event_id), '[]')
                   FROM family f, LATERAL (SELECT e.* FROM cdp.events e WHERE e.portal = f.portal AND e.profile_id = f.profile_id OFFSET 0) AS e),
        'identify_skips', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.skip_id), '[]')
                           FROM family_uids u,
                                LATERAL (SELECT s.* FROM cdp.identify_skips s WHERE s.portal = c.portal AND s.uid = u.uid OFFSET 0) AS s),
        'match_suggestions', (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.suggestion_id), '[]')
                              FROM (SELECT m.* FROM cdp.match_suggestions m WHERE m.portal = c.portal AND m.customer_profile = c.profile_id
                                    UNION
                                    SELECT m.* FROM family f, LATERAL (SELECT m.* FROM cdp.match_suggestions m
                                                                      WHERE m.portal = f.portal AND m.profile_id = f.profile_id OFFSET 0) AS m) AS m),
        -- Anonymous profiles with this customer's email, phone or identify id that were not merged.
        'related_profiles', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                 'profile', cdp.profile(r.profile_id, r.portal),
                                 'identifiers', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.kind, i.value), '[]')
                                                 FROM cdp.identifiers i WHERE i.portal = r.portal AND i.profile_id = r.profile_id),
                                 'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.event_time, e.event_id), '[]')
                                            FROM cdp.events e WHERE e.portal = r.portal AND e.profile_id = r.profile_id))
                             ORDER BY r.profile_id), '[]')
                             FROM related r)
    )
    FROM c
$$;

-- The views run as the caller: a member of cdp_reader sees the rows of the
-- portals it may use (row-level security, see security.sql).
CREATE VIEW cdp.customers WITH (security_invoker = true) AS
SELECT p.portal,
       p.profile_id,
       p.customer_id,
       p.identified_at,
       p.created_at,
       ARRAY(SELECT u.uid FROM (SELECT p.profile_id UNION ALL
                                SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = p.portal AND f.merged_into = p.profile_id) AS m,
                               LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.portal = p.portal AND u.profile_id = m.profile_id OFFSET 0) AS u
             ORDER BY u.uid) AS uids,
       ARRAY(SELECT f.profile_id FROM cdp.profiles f
             WHERE f.portal = p.portal AND f.merged_into = p.profile_id ORDER BY f.profile_id) AS merged_profiles,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.portal = p.portal AND a.profile_id = p.profile_id) AS attributes
FROM cdp.profiles p
WHERE p.customer_id IS NOT NULL;

CREATE VIEW cdp.anonymous_profiles WITH (security_invoker = true) AS
SELECT p.portal,
       p.profile_id,
       p.created_at,
       ARRAY(SELECT u.uid FROM cdp.uids u WHERE u.portal = p.portal AND u.profile_id = p.profile_id ORDER BY u.uid) AS uids,
       (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}')
        FROM cdp.profile_attributes a WHERE a.portal = p.portal AND a.profile_id = p.profile_id) AS attributes,
       p.system
FROM cdp.profiles p
WHERE p.customer_id IS NULL AND p.merged_into IS NULL;

-- Device ids and UIDs with the customers identified on them, and whether they
-- are shared (see cdp.shared_devices).
CREATE VIEW cdp.devices WITH (security_invoker = true) AS
SELECT o.portal, o.kind, o.value,
       array_agg(p.customer_id ORDER BY o.first_at) AS customers,
       min(o.first_at) AS first_identified, max(o.last_at) AS last_identified,
       coalesce(bool_or(s.cleared_at IS NULL AND s.value IS NOT NULL), false) AS shared,
       max(s.detected_at) AS shared_since, max(s.cleared_at) AS cleared_at
FROM cdp.identified_on o
JOIN cdp.profiles p ON p.portal = o.portal AND p.profile_id = o.customer_profile
LEFT JOIN cdp.shared_devices s ON s.portal = o.portal AND s.kind = o.kind AND s.value = o.value
GROUP BY o.portal, o.kind, o.value;

-- The portals the caller may use, with their settings (never their secret).
CREATE VIEW cdp.portals AS
SELECT s.portal, s.settings, s.created_at, s.updated_at,
       EXISTS (SELECT FROM cdp.portal_secrets k WHERE k.portal = s.portal) AS identity_secret_set,
              ARRAY(SELECT g.role FROM cdp.portal_grants g WHERE g.portal = s.portal AND g.granted
             UNION
             SELECT d.role FROM unnest(ARRAY['cdp_writer', 'cdp_reader']::name[]) AS d(role)
             WHERE s.portal = 'default'
               AND NOT EXISTS (SELECT FROM cdp.portal_grants g WHERE g.portal = 'default' AND g.role = d.role AND NOT g.granted)
             ORDER BY 1) AS granted_to
FROM (SELECT p.portal, p.settings, p.created_at, p.updated_at FROM cdp.portal_settings p
      UNION ALL
      SELECT 'default', '{}', NULL, NULL WHERE NOT EXISTS (SELECT FROM cdp.portal_settings WHERE portal = 'default')) AS s
WHERE s.portal IN (SELECT cdp.usable_portals());


-- Anonymous profiles of placeholder UIDs ('undefined', ...) that 0.1 made are
-- quarantined now, so they stop merging into whoever signs in next. (Ones
-- already merged stay merged: cdp.unmerge undoes them.)
UPDATE cdp.profiles p SET quarantined = true
FROM cdp.uids u
WHERE u.portal = p.portal AND u.profile_id = p.profile_id AND p.customer_id IS NULL AND p.merged_into IS NULL
  AND cdp.junk_reason(u.uid) IS NOT NULL;

-- profile_at answers in business time now: a UID was first seen at its
-- earliest event (0.1 recorded when it arrived). One read of the events.
UPDATE cdp.uids u SET first_seen = e.first_event
FROM (SELECT portal, uid, min(event_time) AS first_event FROM cdp.events GROUP BY portal, uid) AS e
WHERE e.portal = u.portal AND e.uid = u.uid AND e.first_event < u.first_seen;

-- The change feed: one row per identity decision, written in the transaction
-- that makes it, for downstream systems (warehouse, CRM, audiences) that must
-- follow merges, unmerges, shared-browser reassignments and erasures.
--
-- Following it without missing a change: change ids are handed out when a
-- decision is written, not when its transaction commits, so a poll "after id
-- N" would skip a change whose transaction committed after a later-numbered
-- one. Each row therefore records its transaction (xact_id), and a poll only
-- hands out rows of transactions older than every transaction still running
-- (the snapshot's xmin): those are final, nothing can appear among them later.
-- The cursor is the transaction id of the last row handed out, and a page
-- never splits a transaction. A transaction left open delays the feed (never
-- loses from it).
CREATE TABLE cdp.identity_changes (
    portal           text NOT NULL,
    change_id        bigserial NOT NULL,
    -- merge (reason predict: a predicted merge), unmerge, uid_reassigned,
    -- uid_restored (a reassignment undone), suggestion_accepted, erasure
    kind             text NOT NULL,
    -- the profile the decision moved (merged, restored), NULL for an erasure
    profile_id       bigint,
    -- the customer profile it concerns
    customer_profile bigint,
    customer_id      text,
    merge_id         bigint,
    -- reason, uid, identify_type, identify_time (decisions); erasure_id,
    -- subject kind and the erased profile ids (erasures: no personal data)
    detail           jsonb NOT NULL DEFAULT '{}',
    xact_id          xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    changed_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT identity_changes_pkey PRIMARY KEY (portal, change_id),
    CONSTRAINT identity_changes_kind_check
        CHECK (kind IN ('merge', 'unmerge', 'uid_reassigned', 'uid_restored', 'suggestion_accepted', 'erasure'))
);
CREATE INDEX identity_changes_feed_idx ON cdp.identity_changes (portal, xact_id, change_id);
-- an erasure removes the customer id and details from the rows about its profiles
CREATE INDEX identity_changes_profile_idx ON cdp.identity_changes (portal, profile_id) WHERE profile_id IS NOT NULL;
CREATE INDEX identity_changes_customer_idx ON cdp.identity_changes (portal, customer_profile) WHERE customer_profile IS NOT NULL;
CREATE INDEX identity_changes_merge_idx ON cdp.identity_changes (portal, merge_id) WHERE merge_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_changes', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_changes_change_id_seq', '');

-- Each decision is recorded by the statement module that makes it
-- (src/tables/merges.rs, suggestions.rs) calling these, in its transaction;
-- erasures by the erasure statement itself (it knows the erased profiles).
-- (Not triggers: restoring a dump copies the rows of cdp.merges and of this
-- table, and must not record the decisions a second time.)
CREATE FUNCTION cdp.record_decision(portal text, merge_id bigint, undone boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO cdp.identity_changes (portal, kind, profile_id, customer_profile, customer_id, merge_id, detail)
    SELECT m.portal,
           CASE WHEN NOT undone THEN m.kind WHEN m.kind = 'merge' THEN 'unmerge' ELSE 'uid_restored' END,
           CASE WHEN m.kind = 'merge' THEN m.from_profile ELSE m.uid_profile_before END,
           m.into_profile,
           (SELECT p.customer_id FROM cdp.profiles p WHERE p.portal = m.portal AND p.profile_id = m.into_profile),
           m.merge_id,
           jsonb_strip_nulls(jsonb_build_object(
               'reason', m.reason, 'uid', m.uid, 'identify_type', m.identify_type, 'identify_time', m.identify_time,
               'from_customer_profile', CASE WHEN m.kind = 'uid_reassigned' THEN m.from_profile END,
               'undone_by_cascade_of', m.undone_by_cascade_of))
    FROM cdp.merges m WHERE m.portal = record_decision.portal AND m.merge_id = record_decision.merge_id
    -- (the order only the primary key gives: a plan made while the tables were
    -- empty, when every index costs the same, takes the key, not another index
    -- of the portal read whole)
    ORDER BY m.portal, m.merge_id LIMIT 1;
    PERFORM pg_catalog.pg_notify('cdp_identity_changes', record_decision.portal);
END
$$;

CREATE FUNCTION cdp.record_suggestion_accepted(portal text, suggestion_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO cdp.identity_changes (portal, kind, profile_id, customer_profile, customer_id, merge_id, detail)
    SELECT s.portal, 'suggestion_accepted', s.profile_id, s.customer_profile,
           (SELECT p.customer_id FROM cdp.profiles p WHERE p.portal = s.portal AND p.profile_id = s.customer_profile),
           s.merge_id, jsonb_build_object('suggestion_id', s.suggestion_id, 'probability', s.probability)
    FROM cdp.match_suggestions s WHERE s.portal = record_suggestion_accepted.portal AND s.suggestion_id = record_suggestion_accepted.suggestion_id
    ORDER BY s.portal, s.suggestion_id LIMIT 1;  -- (as in record_decision)
    PERFORM pg_catalog.pg_notify('cdp_identity_changes', record_suggestion_accepted.portal);
END
$$;

-- One page of the feed after the transaction `after_xact` (see above).
-- Internal: cdp.changes_since is the API.
CREATE FUNCTION cdp.feed_page(after_cursor bigint, page_rows integer)
RETURNS TABLE (change_cursor bigint, change_id bigint, portal text, kind text, profile_id bigint, customer_profile bigint,
               customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    after_xact xid8;
    horizon xid8 := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    last_xact xid8;
    portals text[] := ARRAY(SELECT cdp.usable_portals());
BEGIN
    IF after_cursor IS NULL OR after_cursor < 0 THEN
        RAISE EXCEPTION 'cursor must be 0 or a cursor cdp.changes_since returned' USING ERRCODE = '22023';
    END IF;
    IF page_rows IS NULL OR page_rows < 1 OR page_rows > 100000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 100000' USING ERRCODE = '22023';
    END IF;
    after_xact := after_cursor::text::xid8;
    -- The transaction of the page's last row: each portal's first page_rows rows, merged.
    SELECT max(x.xact_id) INTO last_xact
    FROM (SELECT c.xact_id
          FROM pg_catalog.unnest(portals) AS p(name),
               LATERAL (SELECT c.xact_id, c.change_id FROM cdp.identity_changes c
                        WHERE c.portal = p.name AND c.xact_id > after_xact AND c.xact_id < horizon
                        ORDER BY c.xact_id, c.change_id LIMIT page_rows) AS c
          ORDER BY c.xact_id, c.change_id LIMIT page_rows) AS x;
    IF last_xact IS NULL THEN
        RETURN;
    END IF;
    -- Planned for these values (a generic plan cannot know how narrow the range is).
    RETURN QUERY EXECUTE
        'SELECT c.xact_id::text::bigint, c.change_id, c.portal, c.kind, c.profile_id, c.customer_profile, c.customer_id,
                c.merge_id, c.detail, c.changed_at
         FROM pg_catalog.unnest($1) AS p(name),
              LATERAL (SELECT c.* FROM cdp.identity_changes c
                       WHERE c.portal = p.name AND c.xact_id > $2 AND c.xact_id <= $3
                       ORDER BY c.xact_id, c.change_id) AS c
         ORDER BY c.xact_id, c.change_id'
        USING portals, after_xact, last_xact;
END
$$;

-- The changes after `cursor` (0: from the start) of every portal the caller
-- may use, oldest first, at most about max_rows (a transaction's changes are
-- never split, so a page may hold a few more). Pass back the last `cursor`
-- received; an empty answer means nothing new is final yet.
CREATE FUNCTION cdp.changes_since(cursor bigint DEFAULT 0, max_rows integer DEFAULT 1000)
RETURNS TABLE (cursor bigint, change_id bigint, portal text, kind text, profile_id bigint, customer_profile bigint,
               customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM cdp.feed_page($1, $2)
$$;

-- Removes the changes a consumer has followed (up to and including `cursor`)
-- in the caller's portal; returns how many. The feed otherwise keeps every change.
CREATE FUNCTION cdp.prune_changes(cursor bigint, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    removed bigint;
BEGIN
    IF prune_changes.cursor IS NULL OR prune_changes.cursor < 0 THEN
        RAISE EXCEPTION 'cursor must be a cursor cdp.changes_since returned' USING ERRCODE = '22023';
    END IF;
    DELETE FROM cdp.identity_changes c WHERE c.portal = cdp.current_portal(prune_changes.portal) AND c.xact_id <= prune_changes.cursor::text::xid8;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

-- Roles, privileges and pinned settings, as a fresh 0.2.0 install has them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cdp_writer') THEN
        CREATE ROLE cdp_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cdp_reader') THEN
        CREATE ROLE cdp_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cdp_admin') THEN
        CREATE ROLE cdp_admin NOLOGIN;
    END IF;
END
$$;
GRANT cdp_writer, cdp_reader TO cdp_admin;

REVOKE ALL ON SCHEMA cdp FROM PUBLIC;
GRANT USAGE ON SCHEMA cdp TO cdp_writer, cdp_reader, cdp_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA cdp FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cdp FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cdp FROM PUBLIC;

-- The write functions run the same few statements over and over: plan them
-- once per backend (generic plans) instead of planning identify's larger
-- statements again for every call. Every lookup in them is by key.
ALTER FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.track_batch(jsonb, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.identify(text, text, jsonb, text, timestamptz, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.identify_outcome(text, text, jsonb, text, timestamptz, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION cdp.unmerge(bigint, boolean, text) SET plan_cache_mode = force_generic_plan;

-- Every function runs as the owner, with the settings it relies on pinned:
-- * search_path: see above;
-- * jit = off: no statement of the extension is ever JIT-compiled. They are
--   short OLTP statements (key lookups, single-row writes) that run in
--   microseconds, and JIT compilation costs milliseconds per statement: when
--   a generic plan's estimate crosses jit_above_cost (tables grown but not
--   analyzed yet, right after a bulk import), every call would compile again,
--   a 26x slowdown. Pinned on the functions, it covers the statements they
--   run, foreign-key checks included, whatever the session sets.
DO $$
DECLARE f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS fn, p.prorettype = 'trigger'::regtype AS is_trigger
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'cdp'::regnamespace AND p.prokind = 'f' LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET jit = off', f.fn);
        IF NOT f.is_trigger THEN
            EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', f.fn);
        END IF;
    END LOOP;
END
$$;
-- Helpers that read no data: every group role.
GRANT EXECUTE ON FUNCTION cdp.md5(text), cdp.sha256(text), cdp.normalize_email(text), cdp.normalize_phone(text, text), cdp.customer_id_for_email(text),
    cdp.junk_reason(text), cdp.new_uid(), cdp.current_portal(text), cdp.usable_portals(), cdp.version()
    TO cdp_writer, cdp_reader, cdp_admin;

GRANT EXECUTE ON FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz, text), cdp.track_batch(jsonb, text), cdp.identity_hash(text, text),
    cdp.identify(text, text, jsonb, text, timestamptz, text), cdp.identify_outcome(text, text, jsonb, text, timestamptz, text), cdp.profile_of(text, text)
    TO cdp_writer;

GRANT EXECUTE ON FUNCTION cdp.profile_of(text, text), cdp.root_of(bigint, text), cdp.family_of(bigint, text), cdp.profile(bigint, text),
    cdp.customer_profile(text, text), cdp.events_of(bigint, bigint, integer, boolean, text), cdp.profile_at(text, timestamptz, text), cdp.explain(bigint, text),
    cdp.changes_since(bigint, integer)
    TO cdp_reader;
GRANT SELECT ON cdp.customers, cdp.anonymous_profiles, cdp.devices TO cdp_reader;
GRANT SELECT ON cdp.portals TO cdp_writer, cdp_reader;

GRANT EXECUTE ON FUNCTION cdp.unmerge(bigint, boolean, text), cdp.forget_customer(text, text), cdp.forget_uid(text, text),
    cdp.export_customer(text, text), cdp.accept_suggestion(bigint, text), cdp.reject_suggestion(bigint, text),
    cdp.create_portal(text, jsonb), cdp.configure_portal(text, jsonb), cdp.grant_portal(text, text), cdp.revoke_portal(text, text),
    cdp.prune_changes(bigint, text), cdp.clear_shared(text, text, text)
    TO cdp_admin;

-- Data people query the tables directly: cdp_reader may SELECT them, and
-- row-level security shows it the rows of the portals it may use. The
-- functions run as the owner, who is not subject to these policies (the
-- portal checks are in the functions). Portal settings, secrets and grants
-- are not readable (cdp.portals shows what may be shown).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['profiles', 'uids', 'events', 'identifiers', 'profile_attributes', 'merges', 'merge_blocks',
                             'identify_skips', 'match_suggestions', 'erasures', 'erased_uids', 'identity_changes',
                             'identified_on', 'shared_devices', 'profile_signals', 'signal_counts'] LOOP
        EXECUTE pg_catalog.format('ALTER TABLE cdp.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE pg_catalog.format(
            'CREATE POLICY usable_portals ON cdp.%I FOR SELECT TO cdp_reader USING (portal IN (SELECT cdp.usable_portals()))', t);
        EXECUTE pg_catalog.format('GRANT SELECT ON cdp.%I TO cdp_reader', t);
    END LOOP;
END
$$;
