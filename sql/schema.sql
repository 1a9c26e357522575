-- cdp_identity schema: every table, index and trigger of the extension (the
-- read functions and views are in read_api.sql, roles and privileges in
-- security.sql).
--
-- Portals
--  * Every row belongs to a portal (an identity space: a site, a brand, a
--    tenant). Every key and index leads with the portal and no statement
--    touches two portals, so the tables can be distributed by portal
--    (Citus: create_distributed_table(..., 'portal'), see README).
--  * Ids (profile_id, event_id, ...) come from global sequences, so an id
--    names one row whatever its portal; lookups still always give the portal.
--
-- Security notes
--  * Every function runs as the extension's owner (SECURITY DEFINER) with
--    `search_path = pg_catalog, pg_temp` and names its objects schema-
--    qualified, so objects a caller creates elsewhere are never picked up.
--  * Nothing here is granted to PUBLIC. The group roles cdp_writer,
--    cdp_reader and cdp_admin get EXECUTE on their functions and cdp_reader
--    SELECT on the data tables through row-level security limited to the
--    portals it may use (security.sql). portal_secrets and
--    portal_settings are never readable by any group role.
--  * No SQL is ever built from input: every statement is a fixed text with
--    parameters.
--
-- Data model (see README "How it works")
--  * profiles: one row per profile. An anonymous profile that has been merged
--    keeps its row and points at its customer through `merged_into`; customers
--    are never merged, so the chain is at most one step long.
--  * uids: the UID -> profile map. A UID points at the profile its events are
--    written to (its own anonymous profile, or a customer profile directly).
--  * events: append-only. `profile_id` is the profile the UID pointed at when
--    the event arrived; merges never rewrite it, a profile's timeline is the
--    union over the profile and the profiles merged into it.

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

CREATE TABLE cdp.profiles (
    portal         text NOT NULL,
    profile_id     bigserial NOT NULL,
    customer_id    text,
    merged_into    bigint,
    merged_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    identified_at  timestamptz,
    -- last-value system attributes (browser, os, ...) and the event time they are from
    system         jsonb NOT NULL DEFAULT '{}',
    system_at      timestamptz,
    -- first-touch system attributes (first referrer, first page, ...) and their time
    first_touch    jsonb NOT NULL DEFAULT '{}',
        first_touch_at timestamptz,
    -- the profile of a placeholder UID ('undefined', 'null', ...): it keeps
    -- that UID's events but never merges into a customer and never links
    quarantined    boolean NOT NULL DEFAULT false,
    CONSTRAINT profiles_pkey PRIMARY KEY (portal, profile_id),
    CONSTRAINT profiles_customer_id_key UNIQUE (portal, customer_id),
    CONSTRAINT profiles_merged_into_fkey FOREIGN KEY (portal, merged_into) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT profiles_check CHECK (customer_id IS NULL OR merged_into IS NULL),
    CONSTRAINT profiles_check1 CHECK (merged_into IS DISTINCT FROM profile_id)
);
CREATE INDEX profiles_merged_into_idx ON cdp.profiles (portal, merged_into) WHERE merged_into IS NOT NULL;
COMMENT ON TABLE cdp.profiles IS 'One row per anonymous or customer profile; merged profiles point at their customer';

CREATE TABLE cdp.uids (
    portal         text NOT NULL,
    uid            text NOT NULL,
        profile_id     bigint NOT NULL,
    -- the business time the UID was first seen: its first event's event_time
    -- or its identify's identify_time (0.1 recorded the arrival time)
    first_seen     timestamptz NOT NULL DEFAULT now(),
    -- the last device id recorded for this UID: repeated page views on one
    -- device then cost no identifier write
    last_device_id text,
    -- the UID, or its device, is used by several people (cdp.shared_devices):
    -- its events take the general path, where each new session starts a new
    -- anonymous profile
    shared         boolean NOT NULL DEFAULT false,
    -- a shared UID's current session: its session id and latest event time
    -- (kept for shared UIDs only, on their general path)
    last_session_id text,
    last_event_at   timestamptz,
    CONSTRAINT uids_pkey PRIMARY KEY (portal, uid),
    CONSTRAINT uids_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id)
);
CREATE INDEX uids_profile_idx ON cdp.uids (portal, profile_id);
-- the UIDs of a device, when the device turns out to be shared
CREATE INDEX uids_device_idx ON cdp.uids (portal, last_device_id) WHERE last_device_id IS NOT NULL;
COMMENT ON TABLE cdp.uids IS 'Which profile each UID writes its events to';

CREATE TABLE cdp.events (
    portal      text NOT NULL,
    event_id    bigserial NOT NULL,
    profile_id  bigint NOT NULL,
    uid         text NOT NULL,
    category    text NOT NULL,
    action      text NOT NULL,
    event_time  timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    session_id  text,
    message_id  text,
    payload     jsonb NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (portal, event_id)
);
CREATE INDEX events_profile_time_idx ON cdp.events (portal, profile_id, event_time, event_id);
-- No index on uid: erasure finds a UID's events through the profiles it wrote to
-- (cdp.uids and its uid_reassigned decisions), and appends stay cheaper.

CREATE UNIQUE INDEX events_message_id_key ON cdp.events (portal, message_id) WHERE message_id IS NOT NULL;
COMMENT ON TABLE cdp.events IS 'Append-only event log; profile_id is the profile at arrival and is never rewritten';

-- Person-level identifiers (normalized email, phone, identify id) and device ids
-- seen on a profile. Merges leave them where they are: lookups resolve the
-- profile to its customer. `trusted` is false for an email or phone from a
-- payload without a verified identity (a lead form): the portal's
-- contact_linking policy decides whether such evidence merges.
CREATE TABLE cdp.identifiers (
    portal     text NOT NULL,
    kind       text NOT NULL,
    value      text NOT NULL,
    profile_id bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    trusted    boolean NOT NULL,
    CONSTRAINT identifiers_pkey PRIMARY KEY (portal, kind, value, profile_id),
    CONSTRAINT identifiers_kind_check CHECK (kind IN ('email', 'phone', 'identify_id', 'device_id')),
    CONSTRAINT identifiers_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id)
);
CREATE INDEX identifiers_profile_idx ON cdp.identifiers (portal, profile_id);

-- Customer and custom user attributes, one row per key. `set_at` is the time
-- the value is from (identify_time or event_time) and orders competing writes.
CREATE TABLE cdp.profile_attributes (
    portal         text NOT NULL,
    profile_id     bigint NOT NULL,
    key            text NOT NULL,
    value          jsonb NOT NULL,
    set_at         timestamptz NOT NULL,
    source         text NOT NULL,
    source_profile bigint,
    CONSTRAINT profile_attributes_pkey PRIMARY KEY (portal, profile_id, key),
    CONSTRAINT profile_attributes_source_check CHECK (source IN ('identify', 'event', 'merge')),
    CONSTRAINT profile_attributes_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id)
);
-- unmerge and erasure find what a profile filled on its customer
CREATE INDEX profile_attributes_source_idx ON cdp.profile_attributes (portal, source_profile) WHERE source_profile IS NOT NULL;

-- One row per identity decision. kind 'merge': from_profile (anonymous) was
-- merged into into_profile (a customer). kind 'uid_reassigned': a UID of the
-- customer from_profile identified as into_profile (a shared browser without
-- logout); nothing was merged. The undo columns (filled_attributes,
-- uid_profile_before) keep what undoing the decision needs.
CREATE TABLE cdp.merges (
    portal            text NOT NULL,
    merge_id          bigserial NOT NULL,
    kind              text NOT NULL,
    from_profile      bigint NOT NULL,
    into_profile      bigint NOT NULL,
    reason            text NOT NULL,
    evidence          text NOT NULL,
    uid               text,
    identify_type     text NOT NULL,
    identify_time     timestamptz NOT NULL,
    merged_at         timestamptz NOT NULL DEFAULT now(),
    filled_attributes text[] NOT NULL DEFAULT '{}',
    -- uid_reassigned rows: the profile the UID wrote its events to before
    uid_profile_before bigint,
    -- set by cdp.unmerge
    undone_at         timestamptz,
    undone_by_cascade_of bigint,
    CONSTRAINT merges_pkey PRIMARY KEY (portal, merge_id),
    CONSTRAINT merges_kind_check CHECK (kind IN ('merge', 'uid_reassigned')),
    -- 'session': a UID on a shared device started a new session, so a new
    -- anonymous profile (a uid_reassigned row; evidence 'session:<id>' or 'idle')
    CONSTRAINT merges_reason_check CHECK (reason IN ('uid', 'device_id', 'email', 'phone', 'identify_id', 'predict', 'session')),
    CONSTRAINT merges_identify_type_check CHECK (identify_type IN ('exact', 'predict')),
    CONSTRAINT merges_from_profile_fkey FOREIGN KEY (portal, from_profile) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT merges_into_profile_fkey FOREIGN KEY (portal, into_profile) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT merges_uid_profile_before_fkey FOREIGN KEY (portal, uid_profile_before) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT merges_undone_by_cascade_of_fkey FOREIGN KEY (portal, undone_by_cascade_of) REFERENCES cdp.merges (portal, merge_id)
);
CREATE INDEX merges_from_idx ON cdp.merges (portal, from_profile);
CREATE INDEX merges_into_idx ON cdp.merges (portal, into_profile);
CREATE INDEX merges_uid_idx ON cdp.merges (portal, uid) WHERE kind = 'uid_reassigned';
-- erasure finds every decision that names a profile it removes
CREATE INDEX merges_uid_profile_before_idx ON cdp.merges (portal, uid_profile_before) WHERE uid_profile_before IS NOT NULL;
CREATE INDEX merges_undone_by_cascade_of_idx ON cdp.merges (portal, undone_by_cascade_of) WHERE undone_by_cascade_of IS NOT NULL;
COMMENT ON TABLE cdp.merges IS 'One row per merge or UID reassignment, with the rule and evidence that caused it';

-- Decisions an unmerge remembers: the evidence that merged from_profile into
-- into_profile no longer merges them; new evidence (or, for the UID itself,
-- a later sign-in) still does.
CREATE TABLE cdp.merge_blocks (
    portal       text NOT NULL,
    from_profile bigint NOT NULL,
    into_profile bigint NOT NULL,
    evidence     text[] NOT NULL,
    merge_id     bigint NOT NULL,
    blocked_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT merge_blocks_pkey PRIMARY KEY (portal, from_profile, into_profile, merge_id),
    CONSTRAINT merge_blocks_from_profile_fkey FOREIGN KEY (portal, from_profile) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT merge_blocks_into_profile_fkey FOREIGN KEY (portal, into_profile) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT merge_blocks_merge_id_fkey FOREIGN KEY (portal, merge_id) REFERENCES cdp.merges (portal, merge_id)
);
-- identify reads the blocks of its customer on every call
CREATE INDEX merge_blocks_into_idx ON cdp.merge_blocks (portal, into_profile);
CREATE INDEX merge_blocks_merge_idx ON cdp.merge_blocks (portal, merge_id);

-- Identifiers an event carried that were refused as junk (or as malformed
-- emails and phones, or unverified claims): the event was stored, nobody was
-- identified or merged.
CREATE TABLE cdp.identify_skips (
    portal     text NOT NULL,
    skip_id    bigserial NOT NULL,
    uid        text NOT NULL,
    event_id   bigint,
    field      text NOT NULL,
    value      text NOT NULL,
    reason     text NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT identify_skips_pkey PRIMARY KEY (portal, skip_id)
);
CREATE INDEX identify_skips_uid_idx ON cdp.identify_skips (portal, uid);

-- Predicted matches (identify_type 'predict') between the auto-merge and the
-- review threshold, and unverified contact evidence under contact_linking
-- 'suggest', for a person to accept or reject.
CREATE TABLE cdp.match_suggestions (
    portal           text NOT NULL,
    suggestion_id    bigserial NOT NULL,
    profile_id       bigint NOT NULL,
    customer_profile bigint NOT NULL,
    probability      double precision NOT NULL,
    signals          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'open',
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    merge_id         bigint,
    CONSTRAINT match_suggestions_pkey PRIMARY KEY (portal, suggestion_id),
    CONSTRAINT match_suggestions_status_check CHECK (status IN ('open', 'accepted', 'rejected')),
    CONSTRAINT match_suggestions_profile_id_fkey FOREIGN KEY (portal, profile_id) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT match_suggestions_customer_profile_fkey FOREIGN KEY (portal, customer_profile) REFERENCES cdp.profiles (portal, profile_id),
    CONSTRAINT match_suggestions_merge_id_fkey FOREIGN KEY (portal, merge_id) REFERENCES cdp.merges (portal, merge_id)
);
CREATE UNIQUE INDEX match_suggestions_open_key ON cdp.match_suggestions (portal, profile_id, customer_profile) WHERE status = 'open';
CREATE INDEX match_suggestions_profile_idx ON cdp.match_suggestions (portal, profile_id);
CREATE INDEX match_suggestions_customer_idx ON cdp.match_suggestions (portal, customer_profile);
CREATE INDEX match_suggestions_merge_idx ON cdp.match_suggestions (portal, merge_id) WHERE merge_id IS NOT NULL;

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
CREATE INDEX profile_signals_value_idx ON cdp.profile_signals (portal, signal, value, seen_at);

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
CREATE INDEX identified_on_customer_idx ON cdp.identified_on (portal, customer_profile);

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

-- Erasures (cdp.forget_customer, cdp.forget_uid): of an erased person only
-- non-reversible facts are kept, a keyed hash of the subject and row counts.
-- The hashes are HMAC-SHA256 under the install's own key (install_key), so
-- nobody can find a person in them by hashing candidate emails; erasures made
-- before 0.2.0 keep the plain SHA-256 they were recorded with.
CREATE TABLE cdp.erasures (
    portal         text NOT NULL,
    erasure_id     bigserial NOT NULL,
    kind           text NOT NULL,
    subject_hash   text NOT NULL,
    counts         jsonb NOT NULL,
    erased_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT erasures_pkey PRIMARY KEY (portal, erasure_id),
    CONSTRAINT erasures_kind_check CHECK (kind IN ('customer', 'uid'))
);
-- UIDs whose events are suppressed after an erasure (by keyed hash); a new
-- trusted identify of the UID (cdp.identify from a backend) lifts it.
CREATE TABLE cdp.erased_uids (
    portal     text NOT NULL,
    uid_hash   text NOT NULL,
    erasure_id bigint NOT NULL,
    CONSTRAINT erased_uids_pkey PRIMARY KEY (portal, uid_hash),
        CONSTRAINT erased_uids_erasure_id_fkey FOREIGN KEY (portal, erasure_id) REFERENCES cdp.erasures (portal, erasure_id)
);
CREATE INDEX erased_uids_erasure_idx ON cdp.erased_uids (portal, erasure_id);

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

-- A customer id is the customer's identity: it is never changed, only created.
CREATE FUNCTION cdp.forbid_customer_id_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.customer_id IS NOT NULL AND NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
        RAISE EXCEPTION 'customer_id of profile % is immutable', OLD.profile_id
            USING ERRCODE = '55000',
                  DETAIL = format('It is %L; a customer id never changes once assigned.', OLD.customer_id),
                  HINT = 'Identify the UID as the other customer instead: cdp.identify(uid, customer_id).';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER profiles_customer_id_immutable
    BEFORE UPDATE OF customer_id ON cdp.profiles
    FOR EACH ROW EXECUTE FUNCTION cdp.forbid_customer_id_change();

-- pg_dump must keep the data of every table (the schema comes from CREATE EXTENSION).
SELECT pg_catalog.pg_extension_config_dump('cdp.portal_settings', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.portal_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.portal_grants', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.profiles', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.profiles_profile_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.uids', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.events', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.events_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identifiers', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.profile_attributes', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.merges', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.merges_merge_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identify_skips', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identify_skips_skip_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.merge_blocks', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.match_suggestions', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.match_suggestions_suggestion_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.erasures', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.erasures_erasure_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.erased_uids', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.install_key', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.profile_signals', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.signal_counts', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identified_on', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.shared_devices', '');
