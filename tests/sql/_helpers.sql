-- Test helpers, loaded into the template database of the SQL scenario tests.
-- (Test code only: t.raises runs the statement text it is given.)
CREATE SCHEMA t;

-- Fails the scenario unless actual equals expected; counts one assertion.
CREATE FUNCTION t.eq(actual anycompatible, expected anycompatible, label text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF actual IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'FAILED: % -- expected %, got %', label, expected, actual;
    END IF;
    RAISE NOTICE 'ok %', label;
END
$$;

CREATE FUNCTION t.ok(condition boolean, label text) RETURNS void
LANGUAGE sql AS $$ SELECT t.eq(condition, true, label) $$;

-- Row counts of every table of the extension (found in the catalog, so a new
-- table is counted too), to prove a failed call wrote nothing.
CREATE FUNCTION t.row_counts() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    counts jsonb := '{}';
    n bigint;
    tbl record;
BEGIN
    FOR tbl IN SELECT c.oid::regclass AS rel, c.relname FROM pg_class c
               WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind = 'r' ORDER BY c.relname LOOP
        EXECUTE format('SELECT count(*) FROM %s', tbl.rel) INTO n;
        counts := counts || jsonb_build_object(tbl.relname, n);
    END LOOP;
    IF counts = '{}' THEN
        RAISE EXCEPTION 'FAILED: t.row_counts found no table of the extension';
    END IF;
    RETURN counts;
END
$$;

-- Fails unless the statement raises the SQLSTATE (and, if given, a message
-- containing message_part) and leaves every table of the extension as it was.
CREATE FUNCTION t.raises(statement text, expected_state text, label text, message_part text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    before jsonb := t.row_counts();
    state text;
    msg text;
BEGIN
    BEGIN
        EXECUTE statement;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    IF state IS NULL THEN
        RAISE EXCEPTION 'FAILED: % -- expected SQLSTATE %, but the statement succeeded', label, expected_state;
    END IF;
    IF state <> expected_state THEN
        RAISE EXCEPTION 'FAILED: % -- expected SQLSTATE %, got % (%)', label, expected_state, state, msg;
    END IF;
    IF message_part IS NOT NULL AND position(message_part IN msg) = 0 THEN
        RAISE EXCEPTION 'FAILED: % -- message "%" does not mention "%"', label, msg, message_part;
    END IF;
    PERFORM t.eq(t.row_counts(), before, label || ' (nothing written)');
END
$$;

-- The SDK's sign-in / identify payload, as in the product description.
CREATE FUNCTION t.sign_in(email text, attrs jsonb DEFAULT '{}', context jsonb DEFAULT '{}',
                          identify_time text DEFAULT NULL, event text DEFAULT 'user_sign_in') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'dims', jsonb_build_object('customers',
            jsonb_build_object('customer_id', cdp.md5(email), 'email', email) || attrs),
        'extra', jsonb_strip_nulls(jsonb_build_object(
            'identify_id', cdp.md5(email),
            'identify_time', identify_time,
            'identify_event', event,
            'identify_type', 'exact')),
        'context', context)
$$;

-- A context object with a device id (and optional session and message ids).
CREATE FUNCTION t.ctx(device text, session text DEFAULT NULL, message text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('device_id', device, 'session_id', session, 'message_id', message))
$$;

-- A line for the test output (measurements such as precision and recall).
CREATE FUNCTION t.report(line text) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'report %', line; END $$;
