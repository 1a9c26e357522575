-- The invariants of the identity model, each one assertion. Shared by
-- tests/concurrency.sh (after its concurrent run) and tests/crash.py (after
-- every crash recovery, and again once the interrupted calls were retried).
-- Run with psql -v ON_ERROR_STOP=1 in the database to check: every assertion
-- that holds prints NOTICE "ok <label>"; the first that does not stops the
-- file with ERROR "FAILED: <label>".
--
-- The first group holds in every state the extension may leave behind. The
-- assertions about one run need the figures of that run, as psql variables
-- (an assertion whose variable is not set is skipped):
--   sent_messages      distinct message ids sent: each stored exactly once
--   sent_uids          distinct UIDs sent: each has exactly one profile
--   customers          distinct customer ids sent: each has its profile
--   expect_unmerges    (any value) merges were undone during the run
--   expect_identified  (any value) UIDs were identified during the run
CREATE FUNCTION pg_temp.check(ok boolean, label text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS DISTINCT FROM true THEN RAISE EXCEPTION 'FAILED: %', label; END IF;
    RAISE NOTICE 'ok %', label;
END $$;
\if :{?sent_messages}
SELECT pg_temp.check((SELECT count(*) FROM cdp.events) = :sent_messages,
    'every distinct message id stored exactly once (no event lost, no retry duplicated)');
\endif
\if :{?sent_uids}
SELECT pg_temp.check((SELECT count(*) FROM cdp.uids) = :sent_uids, 'every UID has exactly one profile');
\endif
SELECT pg_temp.check((SELECT count(DISTINCT customer_id) = count(*) FROM cdp.profiles WHERE customer_id IS NOT NULL),
    'one profile per customer id');
\if :{?customers}
SELECT pg_temp.check((SELECT count(*) FROM cdp.profiles WHERE customer_id IS NOT NULL) = :customers,
    format('all %s customers exist', :customers));
\endif
SELECT pg_temp.check(NOT EXISTS (SELECT FROM cdp.profiles p JOIN cdp.profiles r ON r.profile_id = p.merged_into
                                 WHERE r.customer_id IS NULL OR r.merged_into IS NOT NULL),
    'profiles are only ever merged into live customers');
-- (a restored profile whose UID moved on to a customer meanwhile keeps its history without a UID)
SELECT pg_temp.check(NOT EXISTS (SELECT FROM cdp.profiles p WHERE p.customer_id IS NULL AND p.merged_into IS NULL
                                 AND NOT EXISTS (SELECT FROM cdp.uids u WHERE u.profile_id = p.profile_id)
                                 AND NOT EXISTS (SELECT FROM cdp.merges m WHERE m.from_profile = p.profile_id)
                                 -- an earlier session of a UID on a shared device keeps its visits, not the UID
                                 AND NOT EXISTS (SELECT FROM cdp.merges m WHERE m.kind = 'uid_reassigned' AND m.reason = 'session'
                                                   AND p.profile_id IN (m.into_profile, m.uid_profile_before))),
    'no orphan anonymous profile');
SELECT pg_temp.check((SELECT count(*) FROM cdp.profiles WHERE merged_into IS NOT NULL)
                     = (SELECT count(*) FROM cdp.merges WHERE kind = 'merge' AND undone_at IS NULL),
    'one active merge row per merged profile');
SELECT pg_temp.check(NOT EXISTS (SELECT FROM cdp.merges m JOIN cdp.profiles p ON p.profile_id = m.from_profile
                                 WHERE m.kind = 'merge' AND m.undone_at IS NULL AND p.merged_into IS DISTINCT FROM m.into_profile),
    'every active merge row matches the profile it moved');
\if :{?expect_unmerges}
SELECT pg_temp.check((SELECT count(*) FROM cdp.merges WHERE undone_at IS NOT NULL) > 0, 'merges were undone during the run');
\endif
SELECT pg_temp.check(NOT EXISTS (SELECT FROM cdp.events e LEFT JOIN cdp.profiles p USING (profile_id) WHERE p.profile_id IS NULL),
    'every event belongs to a profile');
-- The backend check held under concurrency: no anonymous profile is left that
-- shares a device or an email with a customer's identifying UID profile merged
-- before it... would depend on timing; what must hold is that every UID that
-- last identified is on a customer:
\if :{?expect_identified}
SELECT pg_temp.check(
    (SELECT count(*) FROM cdp.uids u JOIN cdp.profiles p ON p.profile_id = u.profile_id
     WHERE coalesce(p.merged_into, p.profile_id) IN (SELECT profile_id FROM cdp.profiles WHERE customer_id IS NOT NULL)) > 0,
    'UIDs were identified');
\endif
