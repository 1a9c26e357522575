-- The functions run with a fixed search_path and schema-qualified names:
-- objects a user creates elsewhere are never picked up, whatever the caller's search_path.
CREATE SCHEMA decoy;
CREATE TABLE decoy.uids (uid text, profile_id bigint);
CREATE TABLE decoy.events (x int);
CREATE FUNCTION decoy.hashtext(text) RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION decoy.coalesce_trap() RETURNS int LANGUAGE sql AS 'SELECT 1';
SET search_path = decoy, public;

SELECT cdp.track_event('sec-uid', 'pageview', 'view') AS p \gset
SELECT cdp.identify('sec-uid', 'sec-customer') AS c \gset
SELECT t.eq((SELECT count(*) FROM decoy.uids), 0::bigint, 'a decoy uids table on the search_path is not written');
SELECT t.eq((SELECT count(*) FROM decoy.events), 0::bigint, 'a decoy events table is not written');
SELECT t.eq((SELECT count(*) FROM cdp.events WHERE uid = 'sec-uid'), 1::bigint, 'the event went to cdp.events');
SELECT t.eq(cdp.profile_of('sec-uid'), :c::bigint, 'identify worked as usual');
SELECT t.eq((SELECT bool_and(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'])
             FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'cdp_identity'), true,
            'every function of the extension pins its search_path');
SELECT t.eq((SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'cdp_identity'
             WHERE NOT p.prosecdef AND p.prorettype <> 'trigger'::regtype), 0::bigint,
            'every function runs as the extension''s owner (SECURITY DEFINER), so callers need no table privilege');
RESET search_path;
