-- cdp_identity_router 0.1.0: the cdp_identity API on a router database.
--
-- Applications connect to the router and call cdp.track_event, cdp.identify,
-- cdp.profile, ... exactly as on a single node. Each call is forwarded with
-- PL/Proxy to the node that owns the call's portal (the portal argument, else
-- the router session's cdp.portal setting, else 'default'). See README.md in
-- this folder: placement, moving a portal, failures, the change feed's cursor.
--
-- Layers:
--   cdp.*          the public API (same names, argument names, types and
--                  defaults as the node's); plpgsql wrappers that resolve the
--                  portal and give node failures one clear error;
--   cdp_router.*   the PL/Proxy functions (one per node function, RUN ON the
--                  portal's partition), placement, nodes, moves, the feed;
--   plproxy.*      PL/Proxy's cluster configuration functions for the
--                  cluster 'cdp', read from cdp_router.nodes and .settings.
--
-- Everything that forwards runs as the caller (SECURITY INVOKER): PL/Proxy
-- connects to the node as CURRENT_USER, so the node checks the same role a
-- single server would (its grants, its portal grants). Only the placement
-- lookup and the configuration functions are SECURITY DEFINER (they read the
-- router's tables and return a partition number or connect strings).
\echo Use "CREATE EXTENSION cdp_identity_router CASCADE" to load this file. \quit

CREATE SCHEMA cdp_router;
CREATE SCHEMA cdp;
CREATE SCHEMA plproxy;

-- ---------------------------------------------------------------------------
-- Nodes, placement, settings
-- ---------------------------------------------------------------------------

-- The nodes: a node's partition number (idx) is fixed when it is added
-- (cdp_router.add_node); partitions are 0..n-1 in idx order.
CREATE TABLE cdp_router.nodes (
    node     text PRIMARY KEY CHECK (node ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    idx      integer NOT NULL UNIQUE CHECK (idx >= 0),
    -- libpq connect string without user= (PL/Proxy adds the calling user)
    connstr  text NOT NULL CHECK (connstr !~ '(^|\s)user\s*='),
    added_at timestamptz NOT NULL DEFAULT now()
);

-- Portals pinned to a node. A portal without a row is placed by a hash of its
-- name over the nodes (cdp_router.portal_hash); add_node pins every existing
-- portal first, so adding a node never moves one.
CREATE TABLE cdp_router.placement (
    portal    text PRIMARY KEY,
    node      text NOT NULL REFERENCES cdp_router.nodes (node),
    -- set while cdp_router.move_portal copies the portal: its calls fail with 55P03
    moving    boolean NOT NULL DEFAULT false,
    placed_at timestamptz NOT NULL DEFAULT now()
);

-- Every completed move. The portal's change-feed rows stay on from_node (see
-- README.md, "The change feed"): from_last_change is the transaction of its
-- last change there (NULL: none), to_first_xact the copy's transaction on
-- to_node (every later change of the portal there is newer).
CREATE TABLE cdp_router.moves (
    move_id          bigserial PRIMARY KEY,
    portal           text NOT NULL,
    from_node        text NOT NULL REFERENCES cdp_router.nodes (node),
    to_node          text NOT NULL REFERENCES cdp_router.nodes (node),
    from_last_change bigint,
    to_first_xact    bigint NOT NULL,
    copied           jsonb NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now(),
    source_cleaned   boolean NOT NULL DEFAULT false
);
CREATE INDEX moves_to_node_idx ON cdp_router.moves (to_node, portal);
CREATE INDEX moves_portal_idx ON cdp_router.moves (portal);

-- PL/Proxy settings of the cluster (seconds). connect_timeout goes into every
-- connect string that has none; the others are PL/Proxy cluster options.
CREATE TABLE cdp_router.settings (
    key   text PRIMARY KEY CHECK (key IN ('connect_timeout', 'query_timeout', 'connection_lifetime', 'disable_binary',
                                          'keepalive_idle', 'keepalive_interval', 'keepalive_count')),
    value text NOT NULL
);
INSERT INTO cdp_router.settings VALUES ('connect_timeout', '2'), ('query_timeout', '60'), ('connection_lifetime', '1800');

-- PL/Proxy reloads a cluster's configuration when its version changes.
CREATE TABLE cdp_router.cluster_version (version integer NOT NULL);
INSERT INTO cdp_router.cluster_version VALUES (1);

CREATE FUNCTION cdp_router.bump_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE cdp_router.cluster_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER nodes_version AFTER INSERT OR UPDATE OR DELETE ON cdp_router.nodes
    FOR EACH STATEMENT EXECUTE FUNCTION cdp_router.bump_version();
CREATE TRIGGER settings_version AFTER INSERT OR UPDATE OR DELETE ON cdp_router.settings
    FOR EACH STATEMENT EXECUTE FUNCTION cdp_router.bump_version();

-- Router cursors of cdp.changes_since(bigint): each stands for a composite
-- position (node -> node cursor), see cdp_router.changes_since.
CREATE TABLE cdp_router.feed_cursors (
    cursor   bigserial PRIMARY KEY,
    place    jsonb NOT NULL UNIQUE,
    made_at  timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('cdp_router.nodes', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.placement', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.moves', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.moves_move_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.settings', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.cluster_version', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.feed_cursors', '');
SELECT pg_catalog.pg_extension_config_dump('cdp_router.feed_cursors_cursor_seq', '');

-- ---------------------------------------------------------------------------
-- PL/Proxy cluster configuration (cluster 'cdp')
-- ---------------------------------------------------------------------------

CREATE FUNCTION plproxy.get_cluster_version(cluster_name text) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF cluster_name = 'cdp' THEN
        RETURN (SELECT v.version FROM cdp_router.cluster_version v);
    END IF;
    RAISE EXCEPTION 'unknown PL/Proxy cluster "%"', cluster_name USING ERRCODE = '42704',
        HINT = 'cdp_identity_router defines the cluster ''cdp'' only; define other clusters with SQL/MED (CREATE SERVER ... FOREIGN DATA WRAPPER plproxy).';
END
$$;

-- One partition per node, in idx order. PL/Proxy needs a power of two
-- partitions unless modular_mapping is on; it is (get_cluster_config), so 3
-- nodes are 3 partitions and RUN ON ALL runs once on each node.
CREATE FUNCTION plproxy.get_cluster_partitions(cluster_name text) RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    timeout text := (SELECT s.value FROM cdp_router.settings s WHERE s.key = 'connect_timeout');
BEGIN
    IF cluster_name <> 'cdp' THEN
        RAISE EXCEPTION 'unknown PL/Proxy cluster "%"', cluster_name USING ERRCODE = '42704';
    END IF;
    RETURN QUERY
        SELECT CASE WHEN n.connstr ~ '(^|\s)connect_timeout\s*=' OR timeout IS NULL THEN n.connstr
                    ELSE n.connstr || ' connect_timeout=' || timeout END
        FROM cdp_router.nodes n ORDER BY n.idx;
END
$$;

CREATE FUNCTION plproxy.get_cluster_config(IN cluster_name text, OUT key text, OUT val text) RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF cluster_name <> 'cdp' THEN
        RAISE EXCEPTION 'unknown PL/Proxy cluster "%"', cluster_name USING ERRCODE = '42704';
    END IF;
    key := 'modular_mapping'; val := '1'; RETURN NEXT;
    RETURN QUERY SELECT s.key, s.value FROM cdp_router.settings s WHERE s.key <> 'connect_timeout';
END
$$;

-- ---------------------------------------------------------------------------
-- Which node: portal resolution, placement, the moving flag
-- ---------------------------------------------------------------------------

-- The call's portal: the argument, else the router session's cdp.portal
-- (a placeholder setting here: the router has no cdp_identity), else 'default'.
CREATE FUNCTION cdp_router.portal(portal text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(portal, nullif(pg_catalog.current_setting('cdp.portal', true), ''), 'default')
$$;

-- A stable hash of a portal's name (md5-based: the same on every PostgreSQL version).
CREATE FUNCTION cdp_router.portal_hash(portal text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || substr(pg_catalog.md5(portal), 1, 7))::bit(28)::integer
$$;

-- Where a portal lives: its pinned node, else its hash placement.
CREATE FUNCTION cdp_router.placement_of(portal text, OUT node text, OUT idx integer, OUT moving boolean, OUT pinned boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n_nodes integer;
BEGIN
    SELECT p.node, n.idx, p.moving, true INTO node, idx, moving, pinned
    FROM cdp_router.placement p JOIN cdp_router.nodes n ON n.node = p.node
    WHERE p.portal = placement_of.portal;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT count(*) INTO n_nodes FROM cdp_router.nodes;
    IF n_nodes = 0 THEN
        RAISE EXCEPTION 'the router has no nodes' USING ERRCODE = '55000',
            HINT = 'A superuser adds them: SELECT cdp_router.add_node(''node1'', ''host=... dbname=...'');';
    END IF;
    SELECT n.node, n.idx, false, false INTO node, idx, moving, pinned
    FROM cdp_router.nodes n WHERE n.idx = cdp_router.portal_hash(coalesce(placement_of.portal, '')) % n_nodes;
END
$$;

-- The advisory lock class of the router's per-portal call lock (partition_of
-- has it written out).
CREATE FUNCTION cdp_router.lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1667526770 $$;

-- RUN ON: the partition of the call's portal. Every forwarded call holds the
-- portal's call lock (shared, until its router transaction ends) and reads the
-- moving flag after taking it, so cdp_router.move_portal, which sets the flag
-- and then takes the lock exclusively, knows when no call is in flight.
CREATE FUNCTION cdp_router.partition_of(portal text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock_shared(1667526770, pg_catalog.hashtext(portal));
    SELECT pl.node, n.idx, pl.moving INTO p
    FROM cdp_router.placement pl JOIN cdp_router.nodes n ON n.node = pl.node WHERE pl.portal = partition_of.portal;
    IF NOT FOUND THEN
        SELECT * INTO p FROM cdp_router.placement_of(portal);
    END IF;
    IF p.moving THEN
        RAISE EXCEPTION 'portal "%" is being moved', portal USING ERRCODE = '55P03',
            DETAIL = format('Its data is being copied from node %s to another node; nothing was written.', p.node),
            HINT = format('portal %s is being moved; retry shortly', portal);
    END IF;
    RETURN p.idx;
END
$$;

-- A node failure as one clear error (57P03), else the node's error as the
-- node raised it (PL/Proxy's "f(n): [db] REMOTE ERROR: " prefix removed; the
-- SQLSTATE, detail and hint are the node's). Never returns.
CREATE FUNCTION cdp_router.reraise(node text, portal text, state text, message text, detail text, hint text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    msg text;
BEGIN
    IF state = 'XX000' AND message LIKE 'PL/Proxy function %'
       AND message ~ 'FATAL: +(role .* does not exist|password authentication failed|no pg_hba\.conf entry|.*authentication)' THEN
        node := coalesce(node, (SELECT p.node FROM cdp_router.placement_of(portal) p));
        RAISE EXCEPTION 'node "%" refused the connection of role "%"', node, current_user
            USING ERRCODE = '28000', DETAIL = message,
                  HINT = 'The router connects to the node as the calling role: create the role on every node with the same memberships, and let it authenticate from the router (password file, certificate, or a pooler).';
    END IF;
    -- (PL/Proxy's other errors, e.g. a result of the wrong shape, are bugs: they keep their own code)
    IF (state = 'XX000' AND message LIKE 'PL/Proxy function %' AND message ~* '(connect|connection|server closed|timeout|timed out|lost|terminat)')
       OR (state IN ('57P01', '57P02', '57P03') AND message ~ '\] REMOTE FATAL: ')
       OR state LIKE '08%' THEN
        node := coalesce(node, (SELECT p.node FROM cdp_router.placement_of(portal) p));
        RAISE EXCEPTION 'node "%" is unreachable%', node, CASE WHEN portal IS NULL THEN '' ELSE format(' (portal "%s")', portal) END
            USING ERRCODE = '57P03', DETAIL = message,
                  HINT = 'Calls of the portals on that node fail until it is back; other portals keep working. Retry later: an event resent with the same context.message_id is stored once.';
    END IF;
    msg := regexp_replace(message, '^\S+\(\d+\): \[[^]]*\] REMOTE [A-Z]+: ', '');
    detail := regexp_replace(detail, '^Remote detail: ', '');
    hint := regexp_replace(hint, '^Remote hint: ', '');
    IF coalesce(detail, '') <> '' AND coalesce(hint, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg, DETAIL = detail, HINT = hint;
    ELSIF coalesce(detail, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg, DETAIL = detail;
    ELSIF coalesce(hint, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg, HINT = hint;
    END IF;
    RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg;
END
$$;

-- Whether an error is a node failure (for callers that go on with other nodes).
CREATE FUNCTION cdp_router.is_node_failure(state text, message text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (state = 'XX000' AND message LIKE 'PL/Proxy function %')
        OR (state IN ('57P01', '57P02', '57P03') AND message ~ '\] REMOTE FATAL: ')
        OR state LIKE '08%'
$$;

-- ---------------------------------------------------------------------------
-- PL/Proxy functions: one per node function, run on the portal's partition
-- ---------------------------------------------------------------------------

CREATE FUNCTION cdp_router.track_event(uid text, category text, action text, payload jsonb, event_time timestamptz, portal text)
RETURNS bigint LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.track_event; $$;
CREATE FUNCTION cdp_router.track_batch(events jsonb, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.track_batch; $$;
CREATE FUNCTION cdp_router.identify(uid text, customer_id text, attributes jsonb, identify_type text, identify_time timestamptz, portal text)
RETURNS bigint LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.identify; $$;
CREATE FUNCTION cdp_router.identify_outcome(uid text, customer_id text, attributes jsonb, identify_type text, identify_time timestamptz, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.identify_outcome; $$;
CREATE FUNCTION cdp_router.profile_of(uid text, portal text)
RETURNS bigint LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.profile_of; $$;
CREATE FUNCTION cdp_router.profile(profile_id bigint, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.profile; $$;
CREATE FUNCTION cdp_router.customer_profile(customer_id text, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.customer_profile; $$;
CREATE FUNCTION cdp_router.events_of(profile_id bigint, after_event bigint, max_rows integer, newest_first boolean, portal text)
RETURNS TABLE (event_id bigint, uid text, category text, action text, event_time timestamptz, payload jsonb)
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.events_of; $$;
CREATE FUNCTION cdp_router.profile_at(uid text, at timestamptz, portal text)
RETURNS bigint LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.profile_at; $$;
CREATE FUNCTION cdp_router.explain(profile_id bigint, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.explain; $$;
CREATE FUNCTION cdp_router.root_of(profile_id bigint, portal text)
RETURNS bigint LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.root_of; $$;
CREATE FUNCTION cdp_router.family_of(profile_id bigint, portal text)
RETURNS SETOF bigint LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.family_of; $$;
CREATE FUNCTION cdp_router.unmerge(merge_id bigint, "cascade" boolean, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.unmerge; $$;
CREATE FUNCTION cdp_router.forget_customer(customer_id text, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.forget_customer; $$;
CREATE FUNCTION cdp_router.forget_uid(uid text, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.forget_uid; $$;
CREATE FUNCTION cdp_router.export_customer(customer_id text, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.export_customer; $$;
CREATE FUNCTION cdp_router.accept_suggestion(suggestion_id bigint, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.accept_suggestion; $$;
CREATE FUNCTION cdp_router.reject_suggestion(suggestion_id bigint, portal text)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.reject_suggestion; $$;
CREATE FUNCTION cdp_router.clear_shared(kind text, value text, portal text)
RETURNS boolean LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.clear_shared; $$;
CREATE FUNCTION cdp_router.identity_hash(customer_id text, portal text)
RETURNS text LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.identity_hash; $$;
CREATE FUNCTION cdp_router.current_portal(portal text)
RETURNS text LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.current_portal; $$;
CREATE FUNCTION cdp_router.create_portal(portal text, settings jsonb)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.create_portal; $$;
CREATE FUNCTION cdp_router.configure_portal(portal text, settings jsonb)
RETURNS jsonb LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON cdp_router.partition_of(portal); TARGET cdp.configure_portal; $$;
-- helpers that read no data: any node
CREATE FUNCTION cdp_router.normalize_email(input text)
RETURNS text LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON ANY; TARGET cdp.normalize_email; $$;
CREATE FUNCTION cdp_router.normalize_phone(input text, region text)
RETURNS text LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON ANY; TARGET cdp.normalize_phone; $$;
CREATE FUNCTION cdp_router.customer_id_for_email(email text)
RETURNS text LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON ANY; TARGET cdp.customer_id_for_email; $$;
CREATE FUNCTION cdp_router.junk_reason(input text)
RETURNS text LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON ANY; TARGET cdp.junk_reason; $$;

-- Per-node calls (RUN ON the node's partition number), for what spans portals.
CREATE FUNCTION cdp_router.node_usable_portals(part integer) RETURNS SETOF text
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part; SELECT u AS node_usable_portals FROM cdp.usable_portals() AS u; $$;
CREATE FUNCTION cdp_router.node_portals(part integer)
RETURNS TABLE (portal text, settings jsonb, created_at timestamptz, updated_at timestamptz, identity_secret_set boolean, granted_to name[])
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part;
    SELECT p.portal, p.settings, p.created_at, p.updated_at, p.identity_secret_set, p.granted_to FROM cdp.portals AS p; $$;
CREATE FUNCTION cdp_router.node_version(part integer) RETURNS jsonb
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part; SELECT cdp.version() AS node_version; $$;
CREATE FUNCTION cdp_router.node_grant_portal(part integer, role text, portal text) RETURNS boolean
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part; SELECT cdp.grant_portal(role, portal) AS node_grant_portal; $$;
CREATE FUNCTION cdp_router.node_revoke_portal(part integer, role text, portal text) RETURNS boolean
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part; SELECT cdp.revoke_portal(role, portal) AS node_revoke_portal; $$;
CREATE FUNCTION cdp_router.node_prune_changes(part integer, cursor bigint, portal text) RETURNS bigint
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part; SELECT cdp.prune_changes(cursor, portal) AS node_prune_changes; $$;
-- rows per portal the caller may read (cdp_reader: row-level security applies)
CREATE FUNCTION cdp_router.node_counts(part integer)
RETURNS TABLE (portal text, profiles bigint, customers bigint, uids bigint, events bigint, merges bigint, changes bigint)
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part;
    SELECT u.portal,
           (SELECT count(*) FROM cdp.profiles x WHERE x.portal = u.portal) AS profiles,
           (SELECT count(*) FROM cdp.profiles x WHERE x.portal = u.portal AND x.customer_id IS NOT NULL) AS customers,
           (SELECT count(*) FROM cdp.uids x WHERE x.portal = u.portal) AS uids,
           (SELECT count(*) FROM cdp.events x WHERE x.portal = u.portal) AS events,
           (SELECT count(*) FROM cdp.merges x WHERE x.portal = u.portal) AS merges,
           (SELECT count(*) FROM cdp.identity_changes x WHERE x.portal = u.portal) AS changes
    FROM cdp.usable_portals() AS u(portal); $$;

-- The change feed of one node, and its pending changes of a portal in a range.
CREATE TYPE cdp_router.change AS (cursor bigint, change_id bigint, portal text, kind text, profile_id bigint,
                                  customer_profile bigint, customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz);
CREATE FUNCTION cdp_router.node_changes(part integer, after_cursor bigint, max_rows integer) RETURNS SETOF cdp_router.change
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part;
    SELECT c.cursor, c.change_id, c.portal, c.kind, c.profile_id, c.customer_profile, c.customer_id, c.merge_id, c.detail, c.changed_at
    FROM cdp.changes_since(after_cursor, max_rows) AS c; $$;
CREATE FUNCTION cdp_router.node_pending_changes(part integer, portal text, after_cursor bigint, upto_cursor bigint) RETURNS bigint
LANGUAGE plproxy AS $$ CLUSTER 'cdp'; RUN ON part;
    SELECT count(*) AS node_pending_changes FROM cdp.identity_changes AS c
    WHERE c.portal = portal AND c.xact_id > after_cursor::text::xid8 AND c.xact_id <= upto_cursor::text::xid8; $$;

-- ---------------------------------------------------------------------------
-- The public API (schema cdp): same signatures as the node's
-- ---------------------------------------------------------------------------

CREATE FUNCTION cdp.track_event(uid text, category text, action text, payload jsonb DEFAULT '{}', event_time timestamptz DEFAULT now(), portal text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.track_event(uid, category, action, payload, event_time, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.track_batch(events jsonb, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.track_batch(events, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.identify(uid text, customer_id text, attributes jsonb DEFAULT '{}', identify_type text DEFAULT 'exact',
                             identify_time timestamptz DEFAULT now(), portal text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.identify(uid, customer_id, attributes, identify_type, identify_time, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.identify_outcome(uid text, customer_id text, attributes jsonb DEFAULT '{}', identify_type text DEFAULT 'exact',
                                     identify_time timestamptz DEFAULT now(), portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.identify_outcome(uid, customer_id, attributes, identify_type, identify_time, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.profile_of(uid text, portal text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.profile_of(uid, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.profile(profile_id bigint, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.profile(profile_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.customer_profile(customer_id text, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.customer_profile(customer_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.events_of(profile_id bigint, after_event bigint DEFAULT NULL, max_rows integer DEFAULT NULL,
                              newest_first boolean DEFAULT false, portal text DEFAULT NULL)
RETURNS TABLE (event_id bigint, uid text, category text, action text, event_time timestamptz, payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN QUERY SELECT * FROM cdp_router.events_of(profile_id, after_event, max_rows, newest_first, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.profile_at(uid text, at timestamptz, portal text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.profile_at(uid, at, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.explain(profile_id bigint, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.explain(profile_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.root_of(profile_id bigint, portal text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.root_of(profile_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.family_of(profile_id bigint, portal text DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN QUERY SELECT * FROM cdp_router.family_of(profile_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.unmerge(merge_id bigint, "cascade" boolean DEFAULT false, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.unmerge(merge_id, "cascade", p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.forget_customer(customer_id text, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.forget_customer(customer_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.forget_uid(uid text, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.forget_uid(uid, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.export_customer(customer_id text, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.export_customer(customer_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.accept_suggestion(suggestion_id bigint, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.accept_suggestion(suggestion_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.reject_suggestion(suggestion_id bigint, portal text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.reject_suggestion(suggestion_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.clear_shared(kind text, value text, portal text DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.clear_shared(kind, value, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.identity_hash(customer_id text, portal text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.identity_hash(customer_id, p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.current_portal(portal text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE p text := cdp_router.portal(portal); s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.current_portal(p);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, p, s, m, d, h);
END
$$;

-- Portals: create_portal pins the new portal to its node (its explicit
-- placement from cdp_router.place_portal, else its hash node) before
-- creating it there, so it never moves when nodes are added.
CREATE FUNCTION cdp_router.pin(portal text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    SELECT * INTO p FROM cdp_router.placement_of(portal);
    IF NOT p.pinned AND portal ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$' THEN
        INSERT INTO cdp_router.placement (portal, node) VALUES (portal, p.node) ON CONFLICT DO NOTHING;
    END IF;
    RETURN p.node;
END
$$;

CREATE FUNCTION cdp.create_portal(portal text, settings jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    PERFORM cdp_router.pin(portal);
    RETURN cdp_router.create_portal(portal, settings);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, portal, s, m, d, h);
END
$$;

CREATE FUNCTION cdp.configure_portal(portal text, settings jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.configure_portal(portal, settings);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise(NULL, portal, s, m, d, h);
END
$$;

-- The nodes a portal's change-feed rows may still be on besides its own:
-- the sources of its moves (see "The change feed" in README.md).
CREATE FUNCTION cdp_router.feed_nodes(portal text) RETURNS TABLE (node text, idx integer, current boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.node, p.idx, true FROM cdp_router.placement_of(portal) p
    UNION
    SELECT m.from_node, n.idx, false FROM cdp_router.moves m JOIN cdp_router.nodes n ON n.node = m.from_node
    WHERE m.portal = feed_nodes.portal AND m.from_node <> (SELECT p.node FROM cdp_router.placement_of(portal) p)
$$;

-- Grants go to the portal's node, and to the nodes that keep its earlier
-- change-feed rows (so a reader granted the portal reads all of its feed).
CREATE FUNCTION cdp_router.set_grant(role text, portal text, grant_it boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    n record; result boolean; s text; m text; d text; h text;
BEGIN
    PERFORM cdp_router.partition_of(portal);  -- the moving check
    FOR n IN SELECT * FROM cdp_router.feed_nodes(portal) ORDER BY current DESC, idx LOOP
        BEGIN
            IF n.current THEN
                result := CASE WHEN grant_it THEN cdp_router.node_grant_portal(n.idx, role, portal)
                               ELSE cdp_router.node_revoke_portal(n.idx, role, portal) END;
            ELSE
                PERFORM CASE WHEN grant_it THEN cdp_router.node_grant_portal(n.idx, role, portal)
                             ELSE cdp_router.node_revoke_portal(n.idx, role, portal) END;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            IF NOT n.current AND s = '22023' THEN
                CONTINUE;  -- that node's leftover rows of the portal were dropped
            END IF;
            PERFORM cdp_router.reraise(n.node, portal, s, m, d, h);
        END;
    END LOOP;
    RETURN result;
END
$$;

CREATE FUNCTION cdp.grant_portal(role text, portal text)
RETURNS boolean LANGUAGE sql AS $$ SELECT cdp_router.set_grant(role, portal, true) $$;
CREATE FUNCTION cdp.revoke_portal(role text, portal text)
RETURNS boolean LANGUAGE sql AS $$ SELECT cdp_router.set_grant(role, portal, false) $$;

-- Helpers. md5, sha256 and new_uid run here; the others on any node.
CREATE FUNCTION cdp.md5(input text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_catalog.md5(input) $$;
CREATE FUNCTION cdp.sha256(input text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(input, 'UTF8')), 'hex') $$;
-- a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, 74 random bits
CREATE FUNCTION cdp.new_uid() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT pg_catalog.encode(pg_catalog.set_bit(pg_catalog.set_bit(overlay(
               pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
               PLACING substring(pg_catalog.int8send((extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint) FROM 3)
               FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text
$$;
CREATE FUNCTION cdp.normalize_email(input text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.normalize_email(input);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise('(any)', NULL, s, m, d, h);
END
$$;
CREATE FUNCTION cdp.normalize_phone(input text, region text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.normalize_phone(input, region);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise('(any)', NULL, s, m, d, h);
END
$$;
CREATE FUNCTION cdp.customer_id_for_email(email text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.customer_id_for_email(email);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise('(any)', NULL, s, m, d, h);
END
$$;
CREATE FUNCTION cdp.junk_reason(input text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    RETURN cdp_router.junk_reason(input);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    PERFORM cdp_router.reraise('(any)', NULL, s, m, d, h);
END
$$;

-- ---------------------------------------------------------------------------
-- What spans portals: every node, answers merged
-- ---------------------------------------------------------------------------

CREATE FUNCTION cdp_router.node_list() RETURNS TABLE (node text, idx integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT n.node, n.idx FROM cdp_router.nodes n ORDER BY n.idx
$$;

-- Each portal once, from its own node (a node may also list 'default' and
-- the portals whose change-feed rows it keeps after a move).
CREATE FUNCTION cdp_router.portals()
RETURNS TABLE (node text, portal text, settings jsonb, created_at timestamptz, updated_at timestamptz,
               identity_secret_set boolean, granted_to name[], moving boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n record; r record; pl record; s text; m text; d text; h text;
BEGIN
    FOR n IN SELECT * FROM cdp_router.node_list() LOOP
        BEGIN
            FOR r IN SELECT * FROM cdp_router.node_portals(n.idx) LOOP
                SELECT * INTO pl FROM cdp_router.placement_of(r.portal);
                IF pl.node = n.node THEN
                    node := n.node; portal := r.portal; settings := r.settings; created_at := r.created_at;
                    updated_at := r.updated_at; identity_secret_set := r.identity_secret_set; granted_to := r.granted_to;
                    moving := pl.moving;
                    RETURN NEXT;
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            PERFORM cdp_router.reraise(n.node, NULL, s, m, d, h);
        END;
    END LOOP;
END
$$;

CREATE VIEW cdp.portals AS
    SELECT p.portal, p.settings, p.created_at, p.updated_at, p.identity_secret_set, p.granted_to
    FROM cdp_router.portals() p ORDER BY p.portal;

CREATE FUNCTION cdp.usable_portals() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    n record; s text; m text; d text; h text;
BEGIN
    FOR n IN SELECT * FROM cdp_router.node_list() LOOP
        BEGIN
            RETURN QUERY SELECT u FROM cdp_router.node_usable_portals(n.idx) u
                         WHERE (SELECT p.node FROM cdp_router.placement_of(u) p) = n.node;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            PERFORM cdp_router.reraise(n.node, NULL, s, m, d, h);
        END;
    END LOOP;
END
$$;

-- Rows per portal (of the portals the caller may use), from the portal's node.
CREATE FUNCTION cdp_router.portal_counts()
RETURNS TABLE (node text, portal text, profiles bigint, customers bigint, uids bigint, events bigint, merges bigint, changes bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n record; s text; m text; d text; h text;
BEGIN
    FOR n IN SELECT * FROM cdp_router.node_list() LOOP
        BEGIN
            RETURN QUERY SELECT n.node, c.* FROM cdp_router.node_counts(n.idx) c
                         WHERE (SELECT p.node FROM cdp_router.placement_of(c.portal) p) = n.node;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            PERFORM cdp_router.reraise(n.node, NULL, s, m, d, h);
        END;
    END LOOP;
END
$$;

-- {"router": "0.1.0", "nodes": {"node1": <cdp.version() there>, ...}, "matches": every node's library matches its catalog and all run one release}
CREATE FUNCTION cdp.version() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    n record; nodes jsonb := '{}'; v jsonb; s text; m text; d text; h text;
BEGIN
    FOR n IN SELECT * FROM cdp_router.node_list() LOOP
        BEGIN
            v := cdp_router.node_version(n.idx);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            PERFORM cdp_router.reraise(n.node, NULL, s, m, d, h);
        END;
        nodes := nodes || jsonb_build_object(n.node, v);
    END LOOP;
    RETURN jsonb_build_object(
        'router', (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'cdp_identity_router'),
        'nodes', nodes,
        'matches', coalesce((SELECT bool_and((x.value->>'matches')::boolean) AND count(DISTINCT x.value->>'catalog') = 1
                             FROM jsonb_each(nodes) x), false));
END
$$;

-- ---------------------------------------------------------------------------
-- The change feed across nodes
-- ---------------------------------------------------------------------------

-- Moves into a node whose source still may hold older changes of the portal.
CREATE FUNCTION cdp_router.moves_into(node text)
RETURNS TABLE (portal text, from_node text, from_idx integer, from_last_change bigint, to_first_xact bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.portal, m.from_node, n.idx, m.from_last_change, m.to_first_xact
    FROM cdp_router.moves m JOIN cdp_router.nodes n ON n.node = m.from_node
    WHERE m.to_node = moves_into.node AND m.from_last_change IS NOT NULL
$$;

-- The composite feed. The cursor is a JSON object of node cursors,
-- {"node1": 1234, "node2": 987} ({} or NULL: from the start). Each node's
-- changes come from its own cdp.changes_since with its own cursor (transaction
-- ids of different servers are never compared), about max_rows / nodes rows
-- from each node per page. Every row carries the cursor to pass back after it:
-- the input cursor with the entries of the nodes read so far advanced.
-- A node that is down is skipped with a WARNING (its entry stays as it was,
-- so its changes follow when it is back); nothing is lost or repeated.
-- After a move, a portal's newer changes on its new node are held back until
-- the reader has passed the portal's changes that stayed on the old node, so
-- each portal's changes arrive in order.
CREATE FUNCTION cdp_router.composite_page(after_position jsonb, page_rows integer)
RETURNS TABLE (cursor jsonb, node text, node_cursor bigint, change_id bigint, portal text, kind text, profile_id bigint,
               customer_profile bigint, customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    pos jsonb := coalesce($1, '{}');
    n record; mv record; c cdp_router.change;
    page cdp_router.change[];
    budget integer;
    cut bigint;
    after_n bigint;
    held boolean;
    first_held bigint;
    pending jsonb := '{}';   -- gate results per move within this call
    k text; s text; m text; d text; h text;
BEGIN
    IF jsonb_typeof(pos) <> 'object' THEN
        RAISE EXCEPTION 'cursor must be {} or a cursor cdp_router.changes_since returned' USING ERRCODE = '22023';
    END IF;
    FOR k IN SELECT jsonb_object_keys(pos) LOOP
        IF jsonb_typeof(pos->k) <> 'number' OR (pos->>k) !~ '^\d+$' THEN
            RAISE EXCEPTION 'cursor entry "%" must be a non-negative integer', k USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF page_rows IS NULL OR page_rows < 1 OR page_rows > 100000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 100000' USING ERRCODE = '22023';
    END IF;
    budget := greatest(1, ceil(page_rows::numeric / greatest(1, (SELECT count(*) FROM cdp_router.node_list()))))::integer;
    FOR n IN SELECT * FROM cdp_router.node_list() LOOP
        after_n := coalesce((pos->>n.node)::bigint, 0);
        BEGIN
            SELECT array_agg(ROW(x.cursor, x.change_id, x.portal, x.kind, x.profile_id, x.customer_profile, x.customer_id,
                                 x.merge_id, x.detail, x.changed_at)::cdp_router.change ORDER BY x.ordinality)
            INTO page FROM cdp_router.node_changes(n.idx, after_n, budget) WITH ORDINALITY AS x;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            IF cdp_router.is_node_failure(s, m) THEN
                RAISE WARNING 'node "%" is unreachable: its changes follow when it is back', n.node USING DETAIL = m;
                CONTINUE;
            END IF;
            PERFORM cdp_router.reraise(n.node, NULL, s, m, d, h);
        END;
        IF page IS NULL THEN
            CONTINUE;
        END IF;
        -- Hold back (read after the page, so a move that made a row is seen):
        -- a row of a portal moved here, newer than the move, while the portal's
        -- changes on the old node are not all passed yet.
        cut := NULL;
        FOR mv IN SELECT * FROM cdp_router.moves_into(n.node) LOOP
            IF coalesce((pos->>mv.from_node)::bigint, 0) >= mv.from_last_change THEN
                CONTINUE;
            END IF;
            SELECT min(x.cursor) INTO first_held FROM unnest(page) x WHERE x.portal = mv.portal AND x.cursor > mv.to_first_xact;
            IF first_held IS NULL OR (cut IS NOT NULL AND first_held >= cut) THEN
                CONTINUE;
            END IF;
            k := mv.portal || '/' || mv.from_node || '/' || mv.from_last_change;
            IF pending ? k THEN
                held := (pending->>k)::boolean;
            ELSE
                BEGIN
                    held := cdp_router.node_pending_changes(mv.from_idx, mv.portal, coalesce((pos->>mv.from_node)::bigint, 0), mv.from_last_change) > 0;
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
                    IF NOT cdp_router.is_node_failure(s, m) THEN
                        PERFORM cdp_router.reraise(mv.from_node, NULL, s, m, d, h);
                    END IF;
                    held := true;   -- the old node is down: wait for it
                END;
                pending := pending || jsonb_build_object(k, held);
            END IF;
            IF held THEN
                cut := first_held;
            END IF;
        END LOOP;
        FOREACH c IN ARRAY page LOOP
            EXIT WHEN cut IS NOT NULL AND c.cursor >= cut;
            pos := pos || jsonb_build_object(n.node, c.cursor);
            cursor := pos; node := n.node; node_cursor := c.cursor; change_id := c.change_id; portal := c.portal;
            kind := c.kind; profile_id := c.profile_id; customer_profile := c.customer_profile; customer_id := c.customer_id;
            merge_id := c.merge_id; detail := c.detail; changed_at := c.changed_at;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$$;

CREATE FUNCTION cdp_router.changes_since(cursor jsonb DEFAULT '{}', max_rows integer DEFAULT 1000)
RETURNS TABLE (cursor jsonb, node text, node_cursor bigint, change_id bigint, portal text, kind text, profile_id bigint,
               customer_profile bigint, customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM cdp_router.composite_page($1, $2)
$$;

-- Router cursors (bigint) for the composite positions: cdp.changes_since keeps
-- the node's signature and contract (pass back the last cursor received).
CREATE FUNCTION cdp_router.cursor_position(cursor bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p jsonb;
BEGIN
    IF cursor = 0 THEN
        RETURN '{}';
    END IF;
    SELECT f.place INTO p FROM cdp_router.feed_cursors f WHERE f.cursor = cursor_position.cursor;
    IF p IS NULL THEN
        RAISE EXCEPTION 'cursor must be 0 or a cursor cdp.changes_since returned' USING ERRCODE = '22023';
    END IF;
    RETURN p;
END
$$;

CREATE FUNCTION cdp_router.cursor_ids(positions jsonb[]) RETURNS TABLE (place jsonb, cursor bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO cdp_router.feed_cursors (place)
    SELECT DISTINCT x FROM unnest(positions) x ORDER BY 1
    -- (a cursor in use stays young: prune_cursors removes the ones nobody asked for lately)
    ON CONFLICT ON CONSTRAINT feed_cursors_place_key DO UPDATE SET made_at = now();
    RETURN QUERY SELECT f.place, f.cursor FROM cdp_router.feed_cursors f WHERE f.place = ANY (positions);
END
$$;

CREATE FUNCTION cdp_router.bigint_page(after_cursor bigint, page_rows integer)
RETURNS TABLE (cursor bigint, change_id bigint, portal text, kind text, profile_id bigint, customer_profile bigint,
               customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    pos jsonb;
BEGIN
    IF $1 IS NULL OR $1 < 0 THEN
        RAISE EXCEPTION 'cursor must be 0 or a cursor cdp.changes_since returned' USING ERRCODE = '22023';
    END IF;
    pos := cdp_router.cursor_position($1);
    RETURN QUERY
        WITH page AS (SELECT * FROM cdp_router.changes_since(pos, $2) WITH ORDINALITY AS c),
             ids AS (SELECT * FROM cdp_router.cursor_ids(ARRAY(SELECT DISTINCT p.cursor FROM page p)))
        SELECT i.cursor, p.change_id, p.portal, p.kind, p.profile_id, p.customer_profile, p.customer_id, p.merge_id,
               p.detail, p.changed_at
        FROM page p JOIN ids i ON i.place = p.cursor
        ORDER BY p.ordinality;
END
$$;

CREATE FUNCTION cdp.changes_since(cursor bigint DEFAULT 0, max_rows integer DEFAULT 1000)
RETURNS TABLE (cursor bigint, change_id bigint, portal text, kind text, profile_id bigint, customer_profile bigint,
               customer_id text, merge_id bigint, detail jsonb, changed_at timestamptz)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM cdp_router.bigint_page($1, $2)
$$;

-- Prunes the portal's changes up to a composite cursor on every node that
-- holds some of them (its node and the sources of its moves).
CREATE FUNCTION cdp_router.prune_changes(cursor jsonb, portal text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    p text := cdp_router.portal(portal); n record; total bigint := 0; s text; m text; d text; h text;
BEGIN
    IF jsonb_typeof(prune_changes.cursor) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'cursor must be a cursor cdp_router.changes_since returned' USING ERRCODE = '22023';
    END IF;
    PERFORM cdp_router.partition_of(p);  -- the moving check
    FOR n IN SELECT * FROM cdp_router.feed_nodes(p) ORDER BY current DESC, idx LOOP
        CONTINUE WHEN NOT prune_changes.cursor ? n.node;
        BEGIN
            total := total + cdp_router.node_prune_changes(n.idx, (prune_changes.cursor->>n.node)::bigint, p);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
            CONTINUE WHEN NOT n.current AND s = '22023';  -- that node's leftover rows were dropped
            PERFORM cdp_router.reraise(n.node, p, s, m, d, h);
        END;
    END LOOP;
    RETURN total;
END
$$;

CREATE FUNCTION cdp.prune_changes(cursor bigint, portal text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF $1 IS NULL OR $1 < 0 THEN
        RAISE EXCEPTION 'cursor must be a cursor cdp.changes_since returned' USING ERRCODE = '22023';
    END IF;
    RETURN cdp_router.prune_changes(cdp_router.cursor_position($1), portal);
END
$$;

-- Router cursors nobody will pass back any more (older than `older_than`).
CREATE FUNCTION cdp_router.prune_cursors(older_than interval) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH d AS (DELETE FROM cdp_router.feed_cursors f WHERE f.made_at < now() - older_than RETURNING 1)
    SELECT count(*) FROM d
$$;

-- ---------------------------------------------------------------------------
-- Administration (superuser): nodes, placement, moving a portal
-- ---------------------------------------------------------------------------
-- These connect to the nodes with dblink as the calling superuser (the
-- node's connect string plus user=<current_user>). dblink's schema is put on
-- their search_path at the end of this script.

CREATE FUNCTION cdp_router.admin_connstr(node text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c text := (SELECT n.connstr FROM cdp_router.nodes n WHERE n.node = admin_connstr.node);
BEGIN
    IF c IS NULL THEN
        RAISE EXCEPTION 'unknown node "%"', node USING ERRCODE = '22023';
    END IF;
    RETURN c || ' user=' || pg_catalog.quote_ident(current_user) || ' application_name=cdp_router_admin';
END
$$;

CREATE FUNCTION cdp_router.require_superuser() RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser may change the router''s nodes and placement' USING ERRCODE = '42501';
    END IF;
END
$$;

-- Adds a node (a database with the same cdp_identity release). The first
-- node's erasure key (cdp.install_key) is given to every later node, so a UID
-- erased on one node stays suppressed when its portal moves to another; a
-- node that already has erasures under another key is refused. Every portal
-- already on a node is pinned where it is, so adding a node moves nothing.
CREATE FUNCTION cdp_router.add_node(node text, connstr text) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_conn text := connstr || ' user=' || quote_ident(current_user) || ' application_name=cdp_router_admin';
    ref record; new_version text; ref_version text; new_key text; ref_key text; erasures bigint; i integer;
    n record;
BEGIN
    PERFORM cdp_router.require_superuser();
    SELECT v INTO new_version FROM dblink(new_conn, 'SELECT cdp.version()->>''catalog''') AS t(v text);
    SELECT k INTO new_key FROM dblink(new_conn, 'SELECT key FROM cdp.install_key ORDER BY created_at, key LIMIT 1') AS t(k text);
    SELECT * INTO ref FROM cdp_router.nodes ORDER BY idx LIMIT 1;
    IF FOUND THEN
        SELECT v INTO ref_version FROM dblink(cdp_router.admin_connstr(ref.node), 'SELECT cdp.version()->>''catalog''') AS t(v text);
        IF ref_version IS DISTINCT FROM new_version THEN
            RAISE EXCEPTION 'node "%" runs cdp_identity %, node "%" runs %', node, new_version, ref.node, ref_version
                USING ERRCODE = '55000', HINT = 'Every node runs one release: ALTER EXTENSION cdp_identity UPDATE.';
        END IF;
        SELECT k INTO ref_key FROM dblink(cdp_router.admin_connstr(ref.node),
                                          'SELECT key FROM cdp.install_key ORDER BY created_at, key LIMIT 1') AS t(k text);
        IF ref_key IS DISTINCT FROM new_key THEN
            SELECT c INTO erasures FROM dblink(new_conn, 'SELECT count(*) FROM cdp.erasures') AS t(c bigint);
            IF erasures > 0 THEN
                RAISE EXCEPTION 'node "%" has erasures under another install key', node USING ERRCODE = '55000',
                    HINT = 'Its erasure hashes would not match on the other nodes; add a node without erasures.';
            END IF;
            PERFORM dblink_exec(new_conn, format(
                'BEGIN; DELETE FROM cdp.install_key; INSERT INTO cdp.install_key (key, created_at) '
                'SELECT key, created_at FROM (VALUES (%L, %L::timestamptz)) AS k(key, created_at); COMMIT',
                ref_key, (SELECT t FROM dblink(cdp_router.admin_connstr(ref.node),
                          'SELECT created_at::text FROM cdp.install_key ORDER BY created_at, key LIMIT 1') AS x(t text))));
        END IF;
        -- pin every portal where it is now
        FOR n IN SELECT * FROM cdp_router.nodes LOOP
            INSERT INTO cdp_router.placement (portal, node)
            SELECT p, pl.node
            FROM dblink(cdp_router.admin_connstr(n.node), 'SELECT portal FROM cdp.portal_settings UNION SELECT ''default''') AS t(p text),
                 LATERAL cdp_router.placement_of(p) pl
            WHERE pl.node = n.node
            ON CONFLICT (portal) DO NOTHING;
        END LOOP;
    END IF;
    SELECT count(*) INTO i FROM cdp_router.nodes;
    INSERT INTO cdp_router.nodes (node, idx, connstr) VALUES (node, i, connstr);
    RETURN i;
END
$$;

-- Pins a portal to a node. Only for a portal that has nothing yet where it
-- would go now (else cdp_router.move_portal).
CREATE FUNCTION cdp_router.place_portal(portal text, node text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now_on record; has_rows boolean;
BEGIN
    PERFORM cdp_router.require_superuser();
    IF NOT EXISTS (SELECT FROM cdp_router.nodes n WHERE n.node = place_portal.node) THEN
        RAISE EXCEPTION 'unknown node "%"', node USING ERRCODE = '22023';
    END IF;
    SELECT * INTO now_on FROM cdp_router.placement_of(portal);
    IF now_on.node = node THEN
        INSERT INTO cdp_router.placement (portal, node) VALUES (portal, node) ON CONFLICT DO NOTHING;
        RETURN true;
    END IF;
    SELECT x INTO has_rows FROM dblink(cdp_router.admin_connstr(now_on.node), format(
        'SELECT EXISTS (SELECT FROM cdp.portal_settings WHERE portal = %1$L) OR EXISTS (SELECT FROM cdp.profiles WHERE portal = %1$L)',
        portal)) AS t(x boolean);
    IF has_rows THEN
        RAISE EXCEPTION 'portal "%" has data on node "%"', portal, now_on.node USING ERRCODE = '55000',
            HINT = 'Move it: CALL cdp_router.move_portal(portal, node).';
    END IF;
    INSERT INTO cdp_router.placement (portal, node) VALUES (portal, node)
    ON CONFLICT ON CONSTRAINT placement_pkey DO UPDATE SET node = EXCLUDED.node, placed_at = now();
    RETURN true;
END
$$;

-- The tables a move copies: every cdp table with a portal column, except the
-- portal's own rows (copied first), the change feed (stays on the source) and
-- the install key. Read from the node's catalog, so new tables come along.
CREATE FUNCTION cdp_router.portal_tables(conn text) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT t FROM dblink(conn,
        'SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
         WHERE c.relnamespace = ''cdp''::regnamespace AND c.relkind = ''r'' AND a.attname = ''portal'' AND NOT a.attisdropped
           AND c.relname NOT IN (''portal_settings'', ''portal_secrets'', ''portal_grants'', ''identity_changes'')
         ORDER BY 1') AS x(t text);
END
$$;

-- Deletes a portal's rows from a node (over a dblink connection, in its open
-- transaction): every data table; its secret; with everything, also its
-- grants, its portal row and its change-feed rows.
CREATE FUNCTION cdp_router.delete_portal_rows(conn_name text, portal text, everything boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    PERFORM dblink_exec(conn_name, 'SET LOCAL session_replication_role = replica');
    FOR t IN SELECT * FROM cdp_router.portal_tables(conn_name) LOOP
        PERFORM dblink_exec(conn_name, format('DELETE FROM cdp.%I WHERE portal = %L', t, portal));
    END LOOP;
    PERFORM dblink_exec(conn_name, format('DELETE FROM cdp.portal_secrets WHERE portal = %L', portal));
    IF everything THEN
        PERFORM dblink_exec(conn_name, format('DELETE FROM cdp.identity_changes WHERE portal = %L', portal));
        PERFORM dblink_exec(conn_name, format('DELETE FROM cdp.portal_grants WHERE portal = %L', portal));
        PERFORM dblink_exec(conn_name, format('DELETE FROM cdp.portal_settings WHERE portal = %L', portal));
    END IF;
    PERFORM dblink_exec(conn_name, 'SET LOCAL session_replication_role = origin');
END
$$;

-- Step 1: block the portal (its calls fail with 55P03 from now on).
CREATE FUNCTION cdp_router.move_begin(portal text, to_node text) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    PERFORM cdp_router.require_superuser();
    IF NOT EXISTS (SELECT FROM cdp_router.nodes n WHERE n.node = to_node) THEN
        RAISE EXCEPTION 'unknown node "%"', to_node USING ERRCODE = '22023';
    END IF;
    SELECT * INTO p FROM cdp_router.placement_of(portal);
    IF p.moving THEN
        RAISE EXCEPTION 'portal "%" is being moved already', portal USING ERRCODE = '55000',
            HINT = format('If that move died, run SELECT cdp_router.abort_move(%L, <the node it was moving to>).', portal);
    END IF;
    IF p.node = to_node THEN
        RAISE EXCEPTION 'portal "%" is on node "%" already', portal, to_node USING ERRCODE = '22023';
    END IF;
    INSERT INTO cdp_router.placement AS pl (portal, node, moving) VALUES (portal, p.node, true)
    ON CONFLICT ON CONSTRAINT placement_pkey DO UPDATE SET moving = true;
    RETURN p.node;
END
$$;

-- Step 2: wait until no call of the portal is in flight on the router (the
-- calls hold the portal's call lock shared), then let the lock go at once, so
-- new calls fail fast on the moving flag instead of queueing.
CREATE FUNCTION cdp_router.move_quiesce(portal text, lock_wait interval) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('lock_timeout', (extract(epoch FROM lock_wait) * 1000)::bigint::text, true);
    PERFORM pg_advisory_lock(cdp_router.lock_class(), hashtext(portal));
    PERFORM pg_advisory_unlock(cdp_router.lock_class(), hashtext(portal));
    PERFORM set_config('lock_timeout', '0', true);
END
$$;

-- Step 3: the copy. Opens dblink connections cdp_move_src / cdp_move_dst.
-- Source, in one transaction kept open: the portal's identity lock, then
-- every UID row (waits for appends in flight, blocks new ones), so nothing of
-- the portal changes there until it commits. Target, in one transaction: the
-- portal's row, secret and grants, every data table's rows (no trigger or
-- foreign-key check: the rows come whole from a consistent source), sequences
-- advanced past the copied ids, row counts checked against the source's; then
-- the source's rows are deleted (still uncommitted) and the target commits.
-- Returns what the router records.
CREATE FUNCTION cdp_router.move_copy(portal text, from_node text, to_node text, lock_wait interval, batch_rows integer)
RETURNS jsonb LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text; chunk jsonb; n_src bigint; n_dst bigint; copied jsonb := '{}'; seq record;
    src_version text; dst_version text; src_key text; dst_key text; last_change bigint; first_xact bigint;
BEGIN
    PERFORM dblink_connect('cdp_move_src', cdp_router.admin_connstr(from_node));
    PERFORM dblink_connect('cdp_move_dst', cdp_router.admin_connstr(to_node));
    SELECT v, k INTO src_version, src_key FROM dblink('cdp_move_src',
        'SELECT cdp.version()->>''catalog'', (SELECT key FROM cdp.install_key ORDER BY created_at, key LIMIT 1)') AS x(v text, k text);
    SELECT v, k INTO dst_version, dst_key FROM dblink('cdp_move_dst',
        'SELECT cdp.version()->>''catalog'', (SELECT key FROM cdp.install_key ORDER BY created_at, key LIMIT 1)') AS x(v text, k text);
    IF src_version IS DISTINCT FROM dst_version OR src_key IS DISTINCT FROM dst_key THEN
        RAISE EXCEPTION 'nodes "%" and "%" differ in cdp_identity release or install key', from_node, to_node USING ERRCODE = '55000',
            HINT = 'Nodes are added with cdp_router.add_node, which checks both.';
    END IF;

    PERFORM dblink_exec('cdp_move_src', 'BEGIN');
    PERFORM dblink_exec('cdp_move_src', format('SET LOCAL lock_timeout = %L', (extract(epoch FROM lock_wait) * 1000)::bigint || 'ms'));
    PERFORM dblink_exec('cdp_move_src', format('INSERT INTO cdp.portal_settings (portal) VALUES (%L) ON CONFLICT DO NOTHING', portal));
    PERFORM * FROM dblink('cdp_move_src', format('SELECT portal FROM cdp.portal_settings WHERE portal = %L FOR UPDATE', portal)) AS x(p text);
    PERFORM * FROM dblink('cdp_move_src', format('SELECT count(*) FROM (SELECT FROM cdp.uids WHERE portal = %L FOR UPDATE) u', portal)) AS x(n bigint);

    PERFORM dblink_exec('cdp_move_dst', 'BEGIN');
    PERFORM dblink_exec('cdp_move_dst', 'SET LOCAL session_replication_role = replica');
    FOR t IN SELECT * FROM cdp_router.portal_tables('cdp_move_src') LOOP
        SELECT c INTO n_dst FROM dblink('cdp_move_dst', format('SELECT count(*) FROM cdp.%I WHERE portal = %L', t, portal)) AS x(c bigint);
        IF n_dst > 0 THEN
            RAISE EXCEPTION 'node "%" has % rows of portal "%" in cdp.% already', to_node, n_dst, portal, t USING ERRCODE = '55000';
        END IF;
    END LOOP;

    -- the portal's own rows: settings (upsert), secret and grants (replaced)
    SELECT j INTO chunk FROM dblink('cdp_move_src', format(
        'SELECT to_jsonb(s) FROM cdp.portal_settings s WHERE s.portal = %L', portal)) AS x(j jsonb);
    PERFORM dblink_exec('cdp_move_dst', format(
        'INSERT INTO cdp.portal_settings SELECT * FROM jsonb_populate_record(NULL::cdp.portal_settings, %L)
         ON CONFLICT (portal) DO UPDATE SET settings = EXCLUDED.settings, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at',
        chunk));
    PERFORM dblink_exec('cdp_move_dst', format('DELETE FROM cdp.portal_secrets WHERE portal = %L', portal));
    PERFORM dblink_exec('cdp_move_dst', format('DELETE FROM cdp.portal_grants WHERE portal = %L', portal));
    FOREACH t IN ARRAY ARRAY['portal_secrets', 'portal_grants'] LOOP
        SELECT j INTO chunk FROM dblink('cdp_move_src', format(
            'SELECT jsonb_agg(to_jsonb(s)) FROM cdp.%I s WHERE s.portal = %L', t, portal)) AS x(j jsonb);
        IF chunk IS NOT NULL THEN
            PERFORM dblink_exec('cdp_move_dst', format(
                'INSERT INTO cdp.%I SELECT * FROM jsonb_populate_recordset(NULL::cdp.%I, %L)', t, t, chunk));
        END IF;
    END LOOP;

    -- every data table, batch_rows rows at a time
    FOR t IN SELECT * FROM cdp_router.portal_tables('cdp_move_src') LOOP
        PERFORM dblink_open('cdp_move_src', 'cdp_move_rows', format('SELECT to_jsonb(r) FROM cdp.%I r WHERE r.portal = %L', t, portal));
        LOOP
            SELECT jsonb_agg(j) INTO chunk FROM dblink_fetch('cdp_move_src', 'cdp_move_rows', batch_rows) AS x(j jsonb);
            EXIT WHEN chunk IS NULL;
            PERFORM dblink_exec('cdp_move_dst', format(
                'INSERT INTO cdp.%I SELECT * FROM jsonb_populate_recordset(NULL::cdp.%I, %L)', t, t, chunk));
        END LOOP;
        PERFORM dblink_close('cdp_move_src', 'cdp_move_rows');
        SELECT c INTO n_src FROM dblink('cdp_move_src', format('SELECT count(*) FROM cdp.%I WHERE portal = %L', t, portal)) AS x(c bigint);
        SELECT c INTO n_dst FROM dblink('cdp_move_dst', format('SELECT count(*) FROM cdp.%I WHERE portal = %L', t, portal)) AS x(c bigint);
        IF n_src <> n_dst THEN
            RAISE EXCEPTION 'copy of cdp.% for portal "%": % rows on "%", % on "%"', t, portal, n_src, from_node, n_dst, to_node
                USING ERRCODE = 'XX001';
        END IF;
        copied := copied || jsonb_build_object(t, n_src);
    END LOOP;

    -- ids stay what they were; each sequence of the target goes past the
    -- portal's ids (change ids too: the portal's change ids keep increasing)
    FOR seq IN SELECT * FROM dblink('cdp_move_src',
        'SELECT c.relname::text, a.attname::text, pg_catalog.pg_get_serial_sequence(''cdp.'' || quote_ident(c.relname), a.attname)
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
         WHERE c.relnamespace = ''cdp''::regnamespace AND c.relkind = ''r'' AND a.attnum > 0 AND NOT a.attisdropped
           AND pg_catalog.pg_get_serial_sequence(''cdp.'' || quote_ident(c.relname), a.attname) IS NOT NULL')
        AS x(tab text, col text, seqname text) LOOP
        SELECT c INTO n_src FROM dblink('cdp_move_src', format('SELECT max(%I) FROM cdp.%I WHERE portal = %L', seq.col, seq.tab, portal)) AS x(c bigint);
        IF n_src IS NOT NULL THEN
            PERFORM * FROM dblink('cdp_move_dst', format(
                'SELECT pg_catalog.setval(%L, greatest(%s, (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s)))',
                seq.seqname, n_src, seq.seqname)) AS x(v bigint);
        END IF;
    END LOOP;

    SELECT c INTO last_change FROM dblink('cdp_move_src', format(
        'SELECT max(xact_id)::text::bigint FROM cdp.identity_changes WHERE portal = %L', portal)) AS x(c bigint);
    SELECT c INTO first_xact FROM dblink('cdp_move_dst', 'SELECT pg_current_xact_id()::text::bigint') AS x(c bigint);

    -- the source's rows go (uncommitted until the router has switched)
    PERFORM cdp_router.delete_portal_rows('cdp_move_src', portal, false);
    PERFORM dblink_exec('cdp_move_dst', 'COMMIT');
    RETURN jsonb_build_object('copied', copied, 'from_last_change', last_change, 'to_first_xact', first_xact);
END
$$;

-- Closes the move's connections; rolls back what is still open.
CREATE FUNCTION cdp_router.move_disconnect() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c text;
BEGIN
    FOREACH c IN ARRAY ARRAY['cdp_move_src', 'cdp_move_dst'] LOOP
        IF c = ANY (coalesce(dblink_get_connections(), '{}')) THEN
            BEGIN
                PERFORM dblink_exec(c, 'ROLLBACK');
            EXCEPTION WHEN OTHERS THEN
                NULL;
            END;
            PERFORM dblink_disconnect(c);
        END IF;
    END LOOP;
END
$$;

-- Step 5: the source commits its deletion (a failure leaves the rows there,
-- unused: cdp_router.clean_source removes them later).
CREATE FUNCTION cdp_router.move_finish_source(move_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM dblink_exec('cdp_move_src', 'COMMIT');
    PERFORM dblink_disconnect('cdp_move_src');
    UPDATE cdp_router.moves m SET source_cleaned = true WHERE m.move_id = move_finish_source.move_id;
    RETURN true;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'the source node kept its rows of the moved portal: %', SQLERRM
        USING HINT = 'Remove them with SELECT cdp_router.clean_source(move_id).';
    PERFORM cdp_router.move_disconnect();
    RETURN false;
END
$$;

-- Moves a portal to another node (superuser; CALL it outside a transaction
-- block). The portal's calls fail with 55P03 ("portal X is being moved; retry
-- shortly") while it runs; other portals are not touched. Nothing is lost or
-- doubled: every call accepted before the flag is in the copy, every call
-- refused during it wrote nothing, and message ids stay unique (a resent
-- event finds its copy). The portal's change-feed rows stay on the source
-- (README.md, "The change feed"). Returns the move's row in cdp_router.moves.
CREATE PROCEDURE cdp_router.move_portal(portal text, to_node text, lock_wait interval DEFAULT '10s',
                                        batch_rows integer DEFAULT 5000, INOUT move_id bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    from_node text; started timestamptz := clock_timestamp(); result jsonb;
    failed boolean := false; s text; m text; d text; h text;
BEGIN
    from_node := cdp_router.move_begin(portal, to_node);
    COMMIT;
    BEGIN
        PERFORM cdp_router.move_quiesce(portal, lock_wait);
        result := cdp_router.move_copy(portal, from_node, to_node, lock_wait, batch_rows);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
        failed := true;
    END;
    IF failed THEN
        PERFORM cdp_router.move_disconnect();
        UPDATE cdp_router.placement pl SET moving = false WHERE pl.portal = move_portal.portal;
        COMMIT;
        RAISE EXCEPTION 'moving portal "%" to node "%" failed: %', portal, to_node, m USING ERRCODE = s,
            DETAIL = 'Nothing was changed: the portal stays on node ' || from_node || '.' || coalesce(' ' || nullif(d, ''), ''),
            HINT = coalesce(nullif(h, ''), 'Fix the cause and call it again.');
    END IF;
    -- Step 4: switch (the target has committed its copy)
    UPDATE cdp_router.placement pl SET node = to_node WHERE pl.portal = move_portal.portal;
    INSERT INTO cdp_router.moves (portal, from_node, to_node, from_last_change, to_first_xact, copied, started_at)
    VALUES (portal, from_node, to_node, (result->>'from_last_change')::bigint, (result->>'to_first_xact')::bigint,
            result->'copied', started)
    RETURNING moves.move_id INTO move_id;
    COMMIT;
    PERFORM cdp_router.move_finish_source(move_id);
    PERFORM cdp_router.move_disconnect();
    -- Step 6: unblock
    UPDATE cdp_router.placement pl SET moving = false WHERE pl.portal = move_portal.portal;
    COMMIT;
END
$$;

-- Removes what a move left on its source: the data rows when the source's
-- commit failed, and, with feed => true, the portal's change-feed rows, grants
-- and portal row too (once every consumer has passed them).
CREATE FUNCTION cdp_router.clean_source(move_id bigint, feed boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mv record;
BEGIN
    PERFORM cdp_router.require_superuser();
    SELECT * INTO mv FROM cdp_router.moves m WHERE m.move_id = clean_source.move_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown move %', move_id USING ERRCODE = '22023';
    END IF;
    IF (SELECT p.node FROM cdp_router.placement_of(mv.portal) p) = mv.from_node THEN
        RAISE EXCEPTION 'portal "%" is on node "%" again', mv.portal, mv.from_node USING ERRCODE = '55000';
    END IF;
    PERFORM dblink_connect('cdp_clean', cdp_router.admin_connstr(mv.from_node));
    PERFORM dblink_exec('cdp_clean', 'BEGIN');
    PERFORM cdp_router.delete_portal_rows('cdp_clean', mv.portal, feed);
    PERFORM dblink_exec('cdp_clean', 'COMMIT');
    PERFORM dblink_disconnect('cdp_clean');
    UPDATE cdp_router.moves m SET source_cleaned = true WHERE m.move_id = clean_source.move_id;
    RETURN true;
END
$$;

-- After a move that died with the router (the portal still blocked): if the
-- target committed a copy but the router did not switch, the copy is removed
-- (the source still has everything); then the portal is unblocked.
CREATE FUNCTION cdp_router.abort_move(portal text, to_node text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    PERFORM cdp_router.require_superuser();
    SELECT * INTO p FROM cdp_router.placement_of(portal);
    IF NOT p.moving THEN
        RETURN false;
    END IF;
    IF p.node <> to_node THEN
        PERFORM dblink_connect('cdp_clean', cdp_router.admin_connstr(to_node));
        PERFORM dblink_exec('cdp_clean', 'BEGIN');
        PERFORM cdp_router.delete_portal_rows('cdp_clean', portal, false);
        PERFORM dblink_exec('cdp_clean', 'COMMIT');
        PERFORM dblink_disconnect('cdp_clean');
    END IF;
    UPDATE cdp_router.placement pl SET moving = false WHERE pl.portal = abort_move.portal;
    RETURN true;
END
$$;

-- Changes the PL/Proxy settings (connect_timeout, query_timeout, ...).
CREATE FUNCTION cdp_router.set_setting(key text, value text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM cdp_router.require_superuser();
    IF value IS NULL THEN
        DELETE FROM cdp_router.settings s WHERE s.key = set_setting.key;
    ELSE
        INSERT INTO cdp_router.settings AS s VALUES (key, value) ON CONFLICT ON CONSTRAINT settings_pkey DO UPDATE SET value = EXCLUDED.value;
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Roles and privileges: as on a node (sql/security.sql of cdp_identity)
-- ---------------------------------------------------------------------------
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

REVOKE ALL ON SCHEMA cdp, cdp_router, plproxy FROM PUBLIC;
GRANT USAGE ON SCHEMA cdp, cdp_router, plproxy TO cdp_writer, cdp_reader, cdp_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA cdp, cdp_router FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cdp_router FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cdp, cdp_router, plproxy FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA cdp_router FROM PUBLIC;

-- What every forwarded call needs (PL/Proxy calls these as the caller).
GRANT EXECUTE ON FUNCTION plproxy.get_cluster_version(text), plproxy.get_cluster_partitions(text),
    plproxy.get_cluster_config(text), cdp_router.portal(text), cdp_router.portal_hash(text), cdp_router.placement_of(text),
    cdp_router.lock_class(), cdp_router.partition_of(text), cdp_router.reraise(text, text, text, text, text, text),
    cdp_router.is_node_failure(text, text), cdp_router.node_list(), cdp_router.feed_nodes(text)
    TO cdp_writer, cdp_reader, cdp_admin;

-- Helpers that read no data: every group role.
GRANT EXECUTE ON FUNCTION cdp.md5(text), cdp.sha256(text), cdp.normalize_email(text), cdp.normalize_phone(text, text), cdp.customer_id_for_email(text),
    cdp.junk_reason(text), cdp.new_uid(), cdp.current_portal(text), cdp.usable_portals(), cdp.version(),
    cdp_router.normalize_email(text), cdp_router.normalize_phone(text, text), cdp_router.customer_id_for_email(text),
    cdp_router.junk_reason(text), cdp_router.current_portal(text), cdp_router.node_usable_portals(integer), cdp_router.node_version(integer)
    TO cdp_writer, cdp_reader, cdp_admin;

GRANT EXECUTE ON FUNCTION cdp.track_event(text, text, text, jsonb, timestamptz, text), cdp.track_batch(jsonb, text), cdp.identity_hash(text, text),
    cdp.identify(text, text, jsonb, text, timestamptz, text), cdp.identify_outcome(text, text, jsonb, text, timestamptz, text), cdp.profile_of(text, text),
    cdp_router.track_event(text, text, text, jsonb, timestamptz, text), cdp_router.track_batch(jsonb, text), cdp_router.identity_hash(text, text),
    cdp_router.identify(text, text, jsonb, text, timestamptz, text), cdp_router.identify_outcome(text, text, jsonb, text, timestamptz, text),
    cdp_router.profile_of(text, text)
    TO cdp_writer;

GRANT EXECUTE ON FUNCTION cdp.profile_of(text, text), cdp.root_of(bigint, text), cdp.family_of(bigint, text), cdp.profile(bigint, text),
    cdp.customer_profile(text, text), cdp.events_of(bigint, bigint, integer, boolean, text), cdp.profile_at(text, timestamptz, text), cdp.explain(bigint, text),
    cdp.changes_since(bigint, integer),
    cdp_router.profile_of(text, text), cdp_router.root_of(bigint, text), cdp_router.family_of(bigint, text), cdp_router.profile(bigint, text),
    cdp_router.customer_profile(text, text), cdp_router.events_of(bigint, bigint, integer, boolean, text), cdp_router.profile_at(text, timestamptz, text),
    cdp_router.explain(bigint, text), cdp_router.changes_since(jsonb, integer), cdp_router.composite_page(jsonb, integer),
    cdp_router.bigint_page(bigint, integer), cdp_router.node_changes(integer, bigint, integer),
    cdp_router.node_pending_changes(integer, text, bigint, bigint), cdp_router.moves_into(text), cdp_router.cursor_position(bigint),
    cdp_router.cursor_ids(jsonb[]), cdp_router.portal_counts(), cdp_router.node_counts(integer)
    TO cdp_reader;
GRANT SELECT ON cdp.portals TO cdp_writer, cdp_reader;
GRANT EXECUTE ON FUNCTION cdp_router.portals(), cdp_router.node_portals(integer) TO cdp_writer, cdp_reader;

GRANT EXECUTE ON FUNCTION cdp.unmerge(bigint, boolean, text), cdp.forget_customer(text, text), cdp.forget_uid(text, text),
    cdp.export_customer(text, text), cdp.accept_suggestion(bigint, text), cdp.reject_suggestion(bigint, text),
    cdp.create_portal(text, jsonb), cdp.configure_portal(text, jsonb), cdp.grant_portal(text, text), cdp.revoke_portal(text, text),
    cdp.prune_changes(bigint, text), cdp.clear_shared(text, text, text),
    cdp_router.unmerge(bigint, boolean, text), cdp_router.forget_customer(text, text), cdp_router.forget_uid(text, text),
    cdp_router.export_customer(text, text), cdp_router.accept_suggestion(bigint, text), cdp_router.reject_suggestion(bigint, text),
    cdp_router.create_portal(text, jsonb), cdp_router.configure_portal(text, jsonb), cdp_router.pin(text),
    cdp_router.set_grant(text, text, boolean), cdp_router.node_grant_portal(integer, text, text), cdp_router.node_revoke_portal(integer, text, text),
    cdp_router.prune_changes(jsonb, text), cdp_router.node_prune_changes(integer, bigint, text), cdp_router.clear_shared(text, text, text),
    cdp_router.prune_cursors(interval)
    TO cdp_admin;

-- The administration functions (nodes, placement, moves, settings) are not
-- granted: superusers only. They call dblink, wherever it is installed.
DO $$
DECLARE
    f regprocedure;
    dblink_schema text := (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                           WHERE e.extname = 'dblink');
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'cdp_router'::regnamespace AND p.prokind = 'f'
               AND p.proname IN ('admin_connstr', 'add_node', 'place_portal', 'portal_tables', 'delete_portal_rows', 'move_begin',
                                 'move_quiesce', 'move_copy', 'move_disconnect', 'move_finish_source', 'clean_source', 'abort_move') LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp', f, dblink_schema);
    END LOOP;
END
$$;
