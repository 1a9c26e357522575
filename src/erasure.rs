//! Erasure of a person (`cdp.forget_customer`, `cdp.forget_uid`): every row
//! of theirs goes, in one statement (the one statement that deletes from
//! every table, so an erasure is all or nothing and reports its counts);
//! what stays is a record with the SHA-256 of the subject and the counts,
//! and the suppression of each erased UID (`identity::suppression`) so that
//! events still arriving for it are not stored.

use crate::errors::{CdpError, CdpResult};
use crate::identifiers::sha256_hex;
use crate::identity::suppression;
use crate::portal::Portal;
use crate::store::exec;
use crate::tables::{profiles, uids};
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::Value;
/// Deletes the profiles in `$1` (with everything on them), the events of the
/// UIDs in `$2` wherever they are, and every decision, block and skip that
/// mentions them; records the erasure (`$3` kind, `$4` subject hash) and
/// returns it with the erased UIDs.
const ERASE: &str = "
    WITH doomed_profiles AS (SELECT pg_catalog.unnest($1::bigint[]) AS profile_id),
         doomed_uids AS (
             SELECT u.uid FROM cdp.uids u WHERE u.portal = $5 AND u.profile_id IN (SELECT profile_id FROM doomed_profiles)
             UNION SELECT pg_catalog.unnest($2::text[])
         ),
         doomed_merges AS (
             SELECT m.merge_id FROM cdp.merges m
             WHERE m.portal = $5
               AND (m.from_profile IN (SELECT profile_id FROM doomed_profiles)
                    OR m.into_profile IN (SELECT profile_id FROM doomed_profiles)
                    OR m.uid_profile_before IN (SELECT profile_id FROM doomed_profiles)
                    OR (m.kind = 'uid_reassigned' AND m.uid IN (SELECT uid FROM doomed_uids)))
         ),
         blocks AS (
             DELETE FROM cdp.merge_blocks b
             WHERE b.portal = $5
               AND (b.merge_id IN (SELECT merge_id FROM doomed_merges)
                    OR b.from_profile IN (SELECT profile_id FROM doomed_profiles)
                    OR b.into_profile IN (SELECT profile_id FROM doomed_profiles))
             RETURNING 1
         ),
         unlinked AS (
             UPDATE cdp.merges SET undone_by_cascade_of = NULL
             WHERE portal = $5 AND undone_by_cascade_of IN (SELECT merge_id FROM doomed_merges)
               AND merge_id NOT IN (SELECT merge_id FROM doomed_merges)
         ),
         suggestions AS (
             DELETE FROM cdp.match_suggestions s
             WHERE s.portal = $5
               AND (s.profile_id IN (SELECT profile_id FROM doomed_profiles)
                    OR s.customer_profile IN (SELECT profile_id FROM doomed_profiles)
                    OR s.merge_id IN (SELECT merge_id FROM doomed_merges))
             RETURNING 1
         ),
         merges AS (DELETE FROM cdp.merges WHERE portal = $5 AND merge_id IN (SELECT merge_id FROM doomed_merges) RETURNING 1),
         events AS (
             DELETE FROM cdp.events e
             WHERE e.portal = $5
               AND (e.profile_id IN (SELECT profile_id FROM doomed_profiles) OR e.uid IN (SELECT uid FROM doomed_uids))
             RETURNING 1
         ),
         identifiers AS (
             DELETE FROM cdp.identifiers i WHERE i.portal = $5 AND i.profile_id IN (SELECT profile_id FROM doomed_profiles) RETURNING 1
         ),
         attributes AS (
             DELETE FROM cdp.profile_attributes a
             WHERE a.portal = $5
               AND (a.profile_id IN (SELECT profile_id FROM doomed_profiles)
                    OR a.source_profile IN (SELECT profile_id FROM doomed_profiles))
             RETURNING 1
         ),
         skips AS (DELETE FROM cdp.identify_skips s WHERE s.portal = $5 AND s.uid IN (SELECT uid FROM doomed_uids) RETURNING 1),
         uids AS (DELETE FROM cdp.uids u WHERE u.portal = $5 AND u.uid IN (SELECT uid FROM doomed_uids) RETURNING u.uid),
         profiles AS (
             DELETE FROM cdp.profiles p WHERE p.portal = $5 AND p.profile_id IN (SELECT profile_id FROM doomed_profiles) RETURNING 1
         ),
         counts AS (
             SELECT pg_catalog.jsonb_build_object(
                 'profiles', (SELECT count(*) FROM profiles), 'uids', (SELECT count(*) FROM uids),
                 'events', (SELECT count(*) FROM events), 'identifiers', (SELECT count(*) FROM identifiers),
                 'attributes', (SELECT count(*) FROM attributes), 'merges', (SELECT count(*) FROM merges),
                 'merge_blocks', (SELECT count(*) FROM blocks), 'identify_skips', (SELECT count(*) FROM skips),
                 'match_suggestions', (SELECT count(*) FROM suggestions)) AS c
         ),
         erasure AS (
             INSERT INTO cdp.erasures (portal, kind, subject_sha256, counts) SELECT $5, $3, $4, c FROM counts RETURNING erasure_id, counts
         )
    SELECT erasure.erasure_id,
           erasure.counts OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('erasure_id', erasure.erasure_id) AS report,
           ARRAY(SELECT d.uid FROM doomed_uids d) AS uids
    FROM erasure";

/// An erasure must not miss an event that is being appended at the same
/// moment (plain appends take no lock). Holding the portal's identity lock
/// (no identity decision or profile write runs), a SHARE lock on the events
/// waits for the appends in flight and holds new ones back until the erasure
/// commits; they then find the UID erased and are suppressed. Erasures are
/// rare; appends pay nothing for this.
fn lock_for_erasure(client: &mut SpiClient<'_>, portal: &Portal) {
    crate::portal::lock(client, portal);
    exec(client, "LOCK TABLE cdp.events IN SHARE MODE", &[]);
}

fn erase(client: &mut SpiClient<'_>, portal: &str, profiles: Vec<i64>, uids: Vec<String>, kind: &str, subject: &str) -> Value {
    let row = exec(client, ERASE, &[profiles.into(), uids.into(), kind.into(), sha256_hex(subject).into(), portal.into()]).one();
    let erased: Vec<String> = row.value("uids");
    suppression::suppress(client, portal, &erased, row.value("erasure_id"));
    row.value::<JsonB>("report").0
}

/// Erases a customer: the customer profile, every profile merged into it,
/// their UIDs, events, identifiers, attributes, decisions and skips.
pub fn forget_customer(client: &mut SpiClient<'_>, portal: &Portal, customer_id: &str) -> CdpResult<Value> {
    lock_for_erasure(client, portal);
    let family = profiles::family_of_customer(client, &portal.name, customer_id);
    if family.is_empty() {
        return Err(CdpError::invalid(format!("customer \"{customer_id}\" is unknown")));
    }
    Ok(erase(client, &portal.name, family, Vec::new(), "customer", customer_id))
}

/// Erases one UID: its events wherever they are, its own anonymous profile
/// (merged or not, with what it filled on a customer), and the decisions that
/// name it. A customer it belongs to directly keeps the rest of its data.
pub fn forget_uid(client: &mut SpiClient<'_>, portal: &Portal, uid: &str) -> CdpResult<Value> {
    lock_for_erasure(client, portal);
    let Some(state) = uids::resolve(client, &portal.name, uid) else {
        return Err(CdpError::invalid(format!("UID \"{uid}\" is unknown")));
    };
    let profiles = if profiles::is_customer(client, &portal.name, state.own_profile) { Vec::new() } else { vec![state.own_profile] };
    Ok(erase(client, &portal.name, profiles, vec![uid.to_string()], "uid", uid))
}
