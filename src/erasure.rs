//! Erasure of a person (`cdp.forget_customer`, `cdp.forget_uid`). Exactly
//! its subject's data goes, in one statement (the one statement that
//! deletes from every table, so an erasure is all or nothing and reports
//! its counts): events are found by the profiles that are erased, never by
//! a UID another customer shared (the family browser: Kid's erasure leaves
//! Dad's events of that browser alone). What stays is a record with a keyed
//! hash of the subject and the counts, and the suppression of each erased
//! UID (`identity::suppression`) so that events still arriving for it are
//! not stored.
//!
//! Erasure never locks the events table and never scans it: appends hold a
//! KEY SHARE lock on their UID's row (`tables::events`), so an erasure waits
//! only for the appends of the UIDs it erases (polling with SKIP LOCKED, up
//! to the portal's lock_timeout, so it never waits while others wait for
//! it) and every other ingestion goes on. Appends that come later find the
//! UID erased and are suppressed.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identity::suppression;
use crate::portal::{self, Portal};
use crate::store::exec_unkept;
use crate::tables::{profiles, uids};
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The decisions about the profiles `$1` and the UIDs `$3` in portal `$2`:
/// one index lookup per column (as one statement with an OR, or as a list
/// computed inside ERASE, the planner read every merge of the portal).
const DOOMED_MERGES: &str = "
    SELECT coalesce(pg_catalog.array_agg(DISTINCT d.merge_id), '{}') AS merges FROM (
        SELECT m.merge_id FROM cdp.merges m WHERE m.portal = $2 AND m.from_profile = ANY($1)
        UNION ALL SELECT m.merge_id FROM cdp.merges m WHERE m.portal = $2 AND m.into_profile = ANY($1)
        UNION ALL SELECT m.merge_id FROM cdp.merges m WHERE m.portal = $2 AND m.uid_profile_before = ANY($1)
        UNION ALL SELECT m.merge_id FROM cdp.merges m WHERE m.portal = $2 AND m.kind = 'uid_reassigned' AND m.uid = ANY($3)
    ) AS d";

/// Deletes the profiles `$1` with everything on them, the UIDs `$2`, the
/// events of the UIDs `$6` on the profiles `$7` (found by the profile index:
/// the events table has no UID index to keep appends cheap), the decisions
/// `$8` (DOOMED_MERGES) and every block, suggestion and skip about them;
/// records the erasure (`$3` kind, `$4` subject hash) in portal `$5`. Every
/// row is found by index. (`cardinality(..) > 0` drops the conditions on an
/// empty list when the statement is planned: left in, a plan made before the
/// tables were analyzed read the whole portal for them.)
const ERASE: &str = "
    WITH blocks AS (
             DELETE FROM cdp.merge_blocks b
             -- the rows by their addresses, each found by an index lookup per value
             WHERE b.ctid = ANY(ARRAY(
                 SELECT k.ctid FROM pg_catalog.unnest($8::bigint[]) AS x(id),
                        LATERAL (SELECT k.ctid FROM cdp.merge_blocks k WHERE k.portal = $5 AND k.merge_id = x.id OFFSET 0) AS k
                 UNION SELECT k.ctid FROM pg_catalog.unnest($1::bigint[]) AS x(id),
                        LATERAL (SELECT k.ctid FROM cdp.merge_blocks k WHERE k.portal = $5 AND k.from_profile = x.id
                                 UNION ALL SELECT k.ctid FROM cdp.merge_blocks k WHERE k.portal = $5 AND k.into_profile = x.id OFFSET 0) AS k))
             RETURNING 1
         ),
         unlinked AS (
             UPDATE cdp.merges SET undone_by_cascade_of = NULL
             WHERE portal = $5 AND pg_catalog.cardinality($8) > 0 AND undone_by_cascade_of = ANY($8) AND merge_id <> ALL($8)
         ),
         suggestions AS (
             DELETE FROM cdp.match_suggestions s
             WHERE s.portal = $5
               AND ((pg_catalog.cardinality($1) > 0 AND (s.profile_id = ANY($1) OR s.customer_profile = ANY($1)))
                    OR (pg_catalog.cardinality($8) > 0 AND s.merge_id = ANY($8)))
             RETURNING 1
         ),
         merges AS (DELETE FROM cdp.merges WHERE portal = $5 AND merge_id = ANY($8) RETURNING 1),
         events_on_profiles AS (
             DELETE FROM cdp.events e WHERE e.portal = $5 AND e.profile_id = ANY($1) RETURNING 1
         ),
         events_of_uids AS (
             DELETE FROM cdp.events e
                          WHERE e.portal = $5 AND e.profile_id = ANY($7) AND e.profile_id <> ALL($1) AND e.uid = ANY($6)
             RETURNING 1
         ),
         identifiers AS (DELETE FROM cdp.identifiers i WHERE i.portal = $5 AND i.profile_id = ANY($1) RETURNING 1),
         profile_signals AS (DELETE FROM cdp.profile_signals s WHERE s.portal = $5 AND s.profile_id = ANY($1)),
         attributes AS (DELETE FROM cdp.profile_attributes a WHERE a.portal = $5 AND a.profile_id = ANY($1) RETURNING 1),
         -- what the erased profiles gave to others by merges
         given AS (
             DELETE FROM cdp.profile_attributes a
             WHERE a.portal = $5 AND a.source_profile = ANY($1) AND a.profile_id <> ALL($1)
             RETURNING 1
         ),
         skips AS (
             DELETE FROM cdp.identify_skips s
             WHERE s.ctid = ANY(ARRAY(SELECT k.ctid FROM pg_catalog.unnest($2::text[]) AS x(uid),
                                             LATERAL (SELECT k.ctid FROM cdp.identify_skips k WHERE k.portal = $5 AND k.uid = x.uid OFFSET 0) AS k))
             RETURNING 1
         ),
         -- which devices the subject was identified on, and the erased UIDs found shared
         identified AS (DELETE FROM cdp.identified_on o WHERE o.portal = $5 AND o.customer_profile = ANY($1)),
         identified_uids AS (DELETE FROM cdp.identified_on o WHERE o.portal = $5 AND o.kind = 'uid' AND o.value = ANY($2)),
         shared_uids AS (DELETE FROM cdp.shared_devices d WHERE d.portal = $5 AND d.kind = 'uid' AND d.value = ANY($2)),
         uids AS (DELETE FROM cdp.uids u WHERE u.portal = $5 AND u.uid = ANY($2) RETURNING u.uid),
         profiles AS (DELETE FROM cdp.profiles p WHERE p.portal = $5 AND p.profile_id = ANY($1) RETURNING 1),
         counts AS (
             SELECT pg_catalog.jsonb_build_object(
                 'profiles', (SELECT count(*) FROM profiles), 'uids', (SELECT count(*) FROM uids),
                 'events', (SELECT count(*) FROM events_on_profiles) + (SELECT count(*) FROM events_of_uids),
                 'identifiers', (SELECT count(*) FROM identifiers),
                 'attributes', (SELECT count(*) FROM attributes) + (SELECT count(*) FROM given), 'merges', (SELECT count(*) FROM merges),
                 'merge_blocks', (SELECT count(*) FROM blocks), 'identify_skips', (SELECT count(*) FROM skips),
                 'match_suggestions', (SELECT count(*) FROM suggestions)) AS c
         ),
         erasure AS (
             INSERT INTO cdp.erasures (portal, kind, subject_hash, counts) SELECT $5, $3, $4, c FROM counts RETURNING erasure_id, counts
         ),
         -- The change feed: earlier rows about the subject lose its customer id and details,
         -- and the erasure is announced with the erased profile ids (no personal data).
         scrubbed AS (
             UPDATE cdp.identity_changes c SET customer_id = NULL, detail = '{}'
             WHERE c.portal = $5
               AND (c.profile_id = ANY($1) OR c.customer_profile = ANY($1) OR c.merge_id = ANY($8))
         ),
         announced AS (
             INSERT INTO cdp.identity_changes (portal, kind, detail)
             SELECT $5, 'erasure', pg_catalog.jsonb_build_object('erasure_id', erasure.erasure_id, 'subject', $3, 'profiles', pg_catalog.to_jsonb($1))
             FROM erasure
             RETURNING pg_catalog.pg_notify('cdp_identity_changes', $5)
         )
    SELECT erasure.erasure_id,
           erasure.counts OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('erasure_id', erasure.erasure_id) AS report
    FROM erasure, (SELECT count(*) FROM announced) AS feed";

/// What one erasure removes.
struct Subject<'a> {
    kind: &'a str,
    name: &'a str,
    profiles: Vec<i64>,
    /// UIDs whose rows go (and whose later events are suppressed).
    uids: Vec<String>,
    /// UIDs whose events go from the profiles `uid_event_profiles` too.
    events_of_uids: Vec<String>,
    uid_event_profiles: Vec<i64>,
}

fn erase(client: &mut SpiClient<'_>, portal: &Portal, subject: Subject<'_>) -> CdpResult<Value> {
    lock_uids(client, portal, &subject.uids)?;
    let key = suppression::key_or_make(client);
    let merges: Vec<i64> =
        exec_unkept(client, DOOMED_MERGES, &[subject.profiles.clone().into(), portal.name.as_str().into(), subject.uids.clone().into()])
            .one()
            .value("merges");
    let row = exec_unkept(
        client,
        ERASE,
        &[
            subject.profiles.into(),
            subject.uids.clone().into(),
            subject.kind.into(),
            suppression::keyed_hash(&key, subject.name).into(),
            portal.name.as_str().into(),
            subject.events_of_uids.into(),
            subject.uid_event_profiles.into(),
            merges.into(),
        ],
    )
    .one();
    suppression::suppress(client, &portal.name, &subject.uids, row.value("erasure_id"));
    Ok(row.value::<JsonB>("report").0)
}

/// Locks the rows of the UIDs to erase, so that appends to them in flight
/// have finished (each holds a KEY SHARE lock on its UID's row) and later
/// ones wait, then find the UID erased. SKIP LOCKED and a short pause
/// instead of a wait: the erasure holds the portal's identity lock, and a
/// transaction appending to such a UID may be waiting for that lock.
fn lock_uids(client: &mut SpiClient<'_>, portal: &Portal, uids: &[String]) -> CdpResult<()> {
    let timeout = portal.settings.lock_timeout_ms();
    let deadline = Instant::now() + Duration::from_millis(timeout as u64);
    let mut remaining: BTreeSet<String> = uids::existing(client, &portal.name, uids.to_vec()).into_iter().collect();
    while !remaining.is_empty() {
        for uid in uids::lock_for_erasure(client, &portal.name, remaining.iter().cloned().collect()) {
            remaining.remove(&uid);
        }
        if remaining.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(CdpError::new(
                ErrorKind::LockNotAvailable,
                format!(
                    "portal \"{}\": events of the UIDs to erase were still being appended after lock_timeout ({timeout} ms)",
                    portal.name
                ),
            )
            .with_hint("A transaction that tracked one of them is still open: let it finish, then erase again."));
        }
        // SAFETY: a sleep that still answers cancel requests.
        unsafe {
            pgrx::pg_sys::pg_usleep(5_000);
        }
        pgrx::check_for_interrupts!();
    }
    Ok(())
}

/// Erases a customer: the customer profile, every profile merged into it,
/// the anonymous profiles that carry its email, phone or identify id
/// without being merged (cap reached, unmerged, open suggestion), their
/// UIDs, events, identifiers, attributes, decisions and skips.
pub fn forget_customer(client: &mut SpiClient<'_>, portal: &Portal, customer_id: &str) -> CdpResult<Value> {
    portal::lock(client, portal);
    let here = portal.name.as_str();
    let Some(customer) = profiles::customer_profile(client, here, customer_id) else {
        return Err(CdpError::invalid(format!("customer \"{customer_id}\" is unknown")));
    };
    let mut doomed: BTreeSet<i64> = profiles::family_of_customer(client, here, customer_id).into_iter().collect();
    doomed.extend(profiles::unmerged_about(client, here, customer));
    let doomed: Vec<i64> = doomed.into_iter().collect();
    let subject_uids = uids::of_profiles(client, here, doomed.clone());
    erase(
        client,
        portal,
        Subject {
            kind: "customer",
            name: customer_id,
            profiles: doomed,
            uids: subject_uids,
            events_of_uids: Vec::new(),
            uid_event_profiles: Vec::new(),
        },
    )
}

/// Erases one UID: its events on its own anonymous profile and on the
/// customer it belongs to now (events it left on another customer's
/// profile, before a shared browser moved it, are that customer's), its own
/// anonymous profile (merged or not, with what it filled on a customer), and
/// the decisions that name it. A customer it belongs to keeps everything else.
pub fn forget_uid(client: &mut SpiClient<'_>, portal: &Portal, uid: &str) -> CdpResult<Value> {
    portal::lock(client, portal);
    let here = portal.name.as_str();
    let Some(state) = uids::resolve(client, here, uid) else {
        return Err(CdpError::invalid(format!("UID \"{uid}\" is unknown")));
    };
    let own_is_customer = profiles::is_customer(client, here, state.own_profile);
    let own_customer = state.root_is_customer.then_some(state.root);
    let mut doomed: BTreeSet<i64> = if own_is_customer { BTreeSet::new() } else { BTreeSet::from([state.own_profile]) };
    // On a shared device, the UID's earlier sessions are profiles of their own.
    doomed.extend(uids::session_profiles(client, here, uid, own_customer));
    let doomed: Vec<i64> = doomed.into_iter().collect();
    let mut subject_uids = uids::of_profiles(client, here, doomed.clone());
    if !subject_uids.iter().any(|u| u == uid) {
        subject_uids.push(uid.to_string());
    }
    let uid_event_profiles = uids::event_profiles_for_erasure(client, here, uid, own_customer);
    erase(
        client,
        portal,
        Subject { kind: "uid", name: uid, profiles: doomed, uids: subject_uids, events_of_uids: vec![uid.to_string()], uid_event_profiles },
    )
}
