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
-- (custom plans: on empty tables every index of the portal costs the same, and
-- a kept plan could read every merge of the portal to find one)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
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
    FROM cdp.merges m WHERE m.portal = record_decision.portal AND m.merge_id = record_decision.merge_id;
    PERFORM pg_catalog.pg_notify('cdp_identity_changes', record_decision.portal);
END
$$;

CREATE FUNCTION cdp.record_suggestion_accepted(portal text, suggestion_id bigint) RETURNS void
-- (custom plans: on empty tables every index of the portal costs the same, and
-- a kept plan could read every merge of the portal to find one)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    INSERT INTO cdp.identity_changes (portal, kind, profile_id, customer_profile, customer_id, merge_id, detail)
    SELECT s.portal, 'suggestion_accepted', s.profile_id, s.customer_profile,
           (SELECT p.customer_id FROM cdp.profiles p WHERE p.portal = s.portal AND p.profile_id = s.customer_profile),
           s.merge_id, jsonb_build_object('suggestion_id', s.suggestion_id, 'probability', s.probability)
    FROM cdp.match_suggestions s WHERE s.portal = record_suggestion_accepted.portal AND s.suggestion_id = record_suggestion_accepted.suggestion_id;
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
