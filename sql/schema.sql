-- cdp_identity schema: every table, index and trigger of the extension (the read
-- functions and views are in read_api.sql).
--
-- Security notes
--  * Every function here and in Rust runs with `search_path = pg_catalog, pg_temp`
--    and names its objects schema-qualified, so objects a user creates in other
--    schemas can never be picked up by the extension.
--  * No function is SECURITY DEFINER: callers need ordinary privileges on the
--    `cdp` tables (the installing role owns them; GRANT as your site requires).
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

CREATE TABLE cdp.profiles (
    profile_id     bigserial PRIMARY KEY,
    customer_id    text UNIQUE,
    merged_into    bigint REFERENCES cdp.profiles (profile_id),
    merged_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    identified_at  timestamptz,
    -- last-value system attributes (browser, os, ...) and the event time they are from
    system         jsonb NOT NULL DEFAULT '{}',
    system_at      timestamptz,
    -- first-touch system attributes (first referrer, first page, ...) and their time
    first_touch    jsonb NOT NULL DEFAULT '{}',
    first_touch_at timestamptz,
    CHECK (customer_id IS NULL OR merged_into IS NULL),
    CHECK (merged_into IS DISTINCT FROM profile_id)
);
CREATE INDEX profiles_merged_into_idx ON cdp.profiles (merged_into) WHERE merged_into IS NOT NULL;
COMMENT ON TABLE cdp.profiles IS 'One row per anonymous or customer profile; merged profiles point at their customer';

CREATE TABLE cdp.uids (
    uid            text PRIMARY KEY,
    profile_id     bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    first_seen     timestamptz NOT NULL DEFAULT now(),
    -- the last device id recorded for this UID: repeated page views on one
    -- device then cost no identifier write
    last_device_id text
);
CREATE INDEX uids_profile_idx ON cdp.uids (profile_id);
COMMENT ON TABLE cdp.uids IS 'Which profile each UID writes its events to';

CREATE TABLE cdp.events (
    event_id    bigserial PRIMARY KEY,
    profile_id  bigint NOT NULL,
    uid         text NOT NULL,
    category    text NOT NULL,
    action      text NOT NULL,
    event_time  timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    session_id  text,
    message_id  text,
    payload     jsonb NOT NULL
);
CREATE INDEX events_profile_time_idx ON cdp.events (profile_id, event_time, event_id);
CREATE UNIQUE INDEX events_message_id_key ON cdp.events (message_id) WHERE message_id IS NOT NULL;
COMMENT ON TABLE cdp.events IS 'Append-only event log; profile_id is the profile at arrival and is never rewritten';

-- Person-level identifiers (normalized email, phone, identify id) and device ids
-- seen on a profile. Merges leave them where they are: lookups resolve the
-- profile to its customer.
CREATE TABLE cdp.identifiers (
    kind       text NOT NULL CHECK (kind IN ('email', 'phone', 'identify_id', 'device_id')),
    value      text NOT NULL,
    profile_id bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value, profile_id)
);
CREATE INDEX identifiers_profile_idx ON cdp.identifiers (profile_id);

-- Customer and custom user attributes, one row per key. `set_at` is the time
-- the value is from (identify_time or event_time) and orders competing writes.
CREATE TABLE cdp.profile_attributes (
    profile_id     bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    key            text NOT NULL,
    value          jsonb NOT NULL,
    set_at         timestamptz NOT NULL,
    source         text NOT NULL CHECK (source IN ('identify', 'event', 'merge')),
    source_profile bigint,
    PRIMARY KEY (profile_id, key)
);

-- One row per identity decision. kind 'merge': from_profile (anonymous) was
-- merged into into_profile (a customer). kind 'uid_reassigned': a UID of the
-- customer from_profile identified as into_profile (a shared browser without
-- logout); nothing was merged. The undo columns (filled_attributes,
-- uid_profile_before) keep what undoing the decision needs.
CREATE TABLE cdp.merges (
    merge_id          bigserial PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('merge', 'uid_reassigned')),
    from_profile      bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    into_profile      bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    reason            text NOT NULL CHECK (reason IN ('uid', 'device_id', 'email', 'phone', 'identify_id', 'predict')),
    evidence          text NOT NULL,
    uid               text,
    identify_type     text NOT NULL CHECK (identify_type IN ('exact', 'predict')),
    identify_time     timestamptz NOT NULL,
    merged_at         timestamptz NOT NULL DEFAULT now(),
    filled_attributes text[] NOT NULL DEFAULT '{}',
    -- uid_reassigned rows: the profile the UID wrote its events to before
    uid_profile_before bigint REFERENCES cdp.profiles (profile_id),
    -- set by cdp.unmerge
    undone_at         timestamptz,
    undone_by_cascade_of bigint REFERENCES cdp.merges (merge_id)
);
CREATE INDEX merges_from_idx ON cdp.merges (from_profile);
CREATE INDEX merges_into_idx ON cdp.merges (into_profile);
COMMENT ON TABLE cdp.merges IS 'One row per merge or UID reassignment, with the rule and evidence that caused it';
CREATE INDEX merges_uid_idx ON cdp.merges (uid) WHERE kind = 'uid_reassigned';

-- Decisions an unmerge remembers: the evidence that merged from_profile into
-- into_profile no longer merges them; new evidence (or, for the UID itself,
-- a later sign-in) still does.
CREATE TABLE cdp.merge_blocks (
    from_profile bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    into_profile bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    evidence     text[] NOT NULL,
    merge_id     bigint NOT NULL REFERENCES cdp.merges (merge_id),
    blocked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (from_profile, into_profile, merge_id)
);
-- identify reads the blocks of its customer on every call
CREATE INDEX merge_blocks_into_idx ON cdp.merge_blocks (into_profile);

-- Identifiers an event carried that were refused as junk (or as malformed
-- emails and phones): the event was stored, nobody was identified or merged.
CREATE TABLE cdp.identify_skips (
    skip_id    bigserial PRIMARY KEY,
    uid        text NOT NULL,
    event_id   bigint,
    field      text NOT NULL,
    value      text NOT NULL,
    reason     text NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now()
);

-- Predicted matches (identify_type 'predict') between the auto-merge and the
-- review threshold, for a person to accept or reject.
CREATE TABLE cdp.match_suggestions (
    suggestion_id    bigserial PRIMARY KEY,
    profile_id       bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    customer_profile bigint NOT NULL REFERENCES cdp.profiles (profile_id),
    probability      double precision NOT NULL,
    signals          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    merge_id         bigint REFERENCES cdp.merges (merge_id)
);
CREATE UNIQUE INDEX match_suggestions_open_key ON cdp.match_suggestions (profile_id, customer_profile) WHERE status = 'open';

-- Erasures (cdp.forget_customer, cdp.forget_uid): of an erased person only
-- non-reversible facts are kept, the SHA-256 of the subject and row counts.
CREATE TABLE cdp.erasures (
    erasure_id     bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('customer', 'uid')),
    subject_sha256 text NOT NULL,
    counts         jsonb NOT NULL,
    erased_at      timestamptz NOT NULL DEFAULT now()
);
-- UIDs whose events are suppressed after an erasure (by SHA-256); a new
-- identify of the UID lifts it.
CREATE TABLE cdp.erased_uids (
    uid_sha256 text PRIMARY KEY,
    erasure_id bigint NOT NULL REFERENCES cdp.erasures (erasure_id)
);

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
