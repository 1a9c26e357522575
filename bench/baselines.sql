-- Baselines the benchmark compares cdp_identity against. Benchmark code only.

-- 1. A plain table with the same columns and indexes as cdp.events: what a
--    user would insert into anyway. The limit for ingest.
CREATE TABLE plain_events (
    event_id bigserial PRIMARY KEY, profile_id bigint NOT NULL, uid text NOT NULL, category text NOT NULL,
    action text NOT NULL, event_time timestamptz NOT NULL, received_at timestamptz NOT NULL DEFAULT now(),
    session_id text, message_id text, payload jsonb NOT NULL);
CREATE INDEX ON plain_events (profile_id, event_time, event_id);
CREATE UNIQUE INDEX ON plain_events (message_id) WHERE message_id IS NOT NULL;

-- 2. The same identity rules written in plain PL/pgSQL: what a user would
--    write instead of the extension (UID's own profile and device-linked
--    anonymous profiles merged, the customer's attributes win, events never
--    rewritten, one identity decision at a time).
CREATE SCHEMA plbase;
CREATE TABLE plbase.profiles (profile_id bigserial PRIMARY KEY, customer_id text UNIQUE,
    merged_into bigint REFERENCES plbase.profiles, attributes jsonb NOT NULL DEFAULT '{}');
CREATE INDEX ON plbase.profiles (merged_into);
CREATE TABLE plbase.uids (uid text PRIMARY KEY, profile_id bigint NOT NULL REFERENCES plbase.profiles);
CREATE TABLE plbase.identifiers (kind text, value text, profile_id bigint REFERENCES plbase.profiles,
    PRIMARY KEY (kind, value, profile_id));
CREATE TABLE plbase.events (event_id bigserial PRIMARY KEY, profile_id bigint NOT NULL, uid text NOT NULL,
    category text NOT NULL, action text NOT NULL, event_time timestamptz NOT NULL, payload jsonb NOT NULL);
CREATE INDEX ON plbase.events (profile_id, event_time);
CREATE TABLE plbase.merges (merge_id bigserial PRIMARY KEY, from_profile bigint, into_profile bigint,
    reason text, merged_at timestamptz DEFAULT now());

CREATE FUNCTION plbase.track_event(p_uid text, p_category text, p_action text, p_payload jsonb, p_time timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_profile bigint; v_device text := p_payload->'context'->>'device_id';
BEGIN
    SELECT profile_id INTO v_profile FROM plbase.uids WHERE uid = p_uid;
    IF v_profile IS NULL THEN
        INSERT INTO plbase.profiles DEFAULT VALUES RETURNING profile_id INTO v_profile;
        INSERT INTO plbase.uids VALUES (p_uid, v_profile);
    END IF;
    IF v_device IS NOT NULL THEN
        INSERT INTO plbase.identifiers VALUES ('device_id', v_device, v_profile) ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO plbase.events (profile_id, uid, category, action, event_time, payload)
    VALUES (v_profile, p_uid, p_category, p_action, p_time, p_payload);
    RETURN v_profile;
END $$;

CREATE FUNCTION plbase.identify(p_uid text, p_customer_id text, p_attributes jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_customer bigint; v_own bigint; v_root bigint; v_candidate record;
BEGIN
    PERFORM pg_advisory_xact_lock(42);
    SELECT profile_id INTO v_customer FROM plbase.profiles WHERE customer_id = p_customer_id;
    IF v_customer IS NULL THEN
        INSERT INTO plbase.profiles (customer_id) VALUES (p_customer_id) RETURNING profile_id INTO v_customer;
    END IF;
    UPDATE plbase.profiles SET attributes = attributes || p_attributes WHERE profile_id = v_customer;
    SELECT u.profile_id, coalesce(p.merged_into, p.profile_id) INTO v_own, v_root
    FROM plbase.uids u JOIN plbase.profiles p USING (profile_id) WHERE u.uid = p_uid;
    IF v_own IS NULL THEN
        INSERT INTO plbase.uids VALUES (p_uid, v_customer);
        RETURN v_customer;
    END IF;
    FOR v_candidate IN
        SELECT r.profile_id FROM plbase.profiles r
        WHERE r.customer_id IS NULL AND r.merged_into IS NULL
          AND (r.profile_id = v_root OR r.profile_id IN (
               SELECT i2.profile_id FROM plbase.identifiers i1
               JOIN plbase.identifiers i2 ON i2.kind = i1.kind AND i2.value = i1.value
               WHERE i1.profile_id = v_own))
        ORDER BY r.profile_id FOR UPDATE
    LOOP
        UPDATE plbase.profiles c SET attributes = a.attributes || c.attributes
        FROM plbase.profiles a WHERE c.profile_id = v_customer AND a.profile_id = v_candidate.profile_id;
        UPDATE plbase.profiles SET merged_into = v_customer WHERE profile_id = v_candidate.profile_id;
        INSERT INTO plbase.merges (from_profile, into_profile, reason) VALUES (v_candidate.profile_id, v_customer, 'uid_or_device');
    END LOOP;
    RETURN v_customer;
END $$;

-- 3. PostHog-style persons: a person row per person, a distinct_id -> person
--    map; a merge is statements sent by the client in one transaction (lock
--    both persons, move the distinct ids, merge the properties, delete the
--    source person). Events keep their distinct id and are not rewritten.
CREATE SCHEMA posthog;
CREATE TABLE posthog.person (id bigserial PRIMARY KEY, properties jsonb NOT NULL DEFAULT '{}', is_identified boolean NOT NULL DEFAULT false);
CREATE TABLE posthog.distinct_id (distinct_id text PRIMARY KEY, person_id bigint NOT NULL REFERENCES posthog.person);
CREATE INDEX ON posthog.distinct_id (person_id);
CREATE TABLE posthog.events (uuid bigserial PRIMARY KEY, distinct_id text NOT NULL, event text NOT NULL,
    timestamp timestamptz NOT NULL, properties jsonb NOT NULL);

-- Times one statement inside the server (no client round trip), in ms.
CREATE FUNCTION time_ms(statement text) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE statement;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
