//! `cdp.merges`: one row per identity decision, and the statements that make
//! and undo them together with the profile links they set:
//! - a merge sets the anonymous profile's `merged_into`, fills the customer's
//!   attribute gaps from it (recorded in `filled_attributes`) and writes the row;
//! - a UID reassignment (a shared browser) moves the UID and writes the row;
//! - undoing either restores exactly what it changed and marks the row.
//!
//! Events are never touched.

use crate::store::{exec, exec_unkept, Row};
use crate::validate::IdentifyType;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

/// Why an anonymous profile was merged; the order is the order of preference
/// when one profile is found through several pieces of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Uid,
    DeviceId,
    Email,
    Phone,
    IdentifyId,
    /// A predicted match (identify_type 'predict'): the weakest.
    Predict,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Uid => "uid",
            Reason::DeviceId => "device_id",
            Reason::Email => "email",
            Reason::Phone => "phone",
            Reason::IdentifyId => "identify_id",
            Reason::Predict => "predict",
        }
    }

    pub fn of_identifier_kind(kind: &str) -> Option<Self> {
        match kind {
            "device_id" => Some(Reason::DeviceId),
            "email" => Some(Reason::Email),
            "phone" => Some(Reason::Phone),
            "identify_id" => Some(Reason::IdentifyId),
            _ => None,
        }
    }
}

/// Who decided: an identify (its UID, type and time) or a reviewer accepting
/// a suggestion (no UID).
pub struct Decision<'a> {
    pub uid: Option<&'a str>,
    pub identify_type: IdentifyType,
    pub identify_time: TimestampWithTimeZone,
}

/// Merges a locked anonymous profile into a customer; returns the merge id.
/// Cost is independent of the number of events. The customer's attributes
/// win; the merged profile only fills gaps, and the filled keys are recorded
/// so the merge can be undone.
pub fn merge(
    client: &mut SpiClient<'_>,
    portal: &str,
    anonymous: i64,
    customer: i64,
    reason: Reason,
    evidence: &str,
    decided_by: &Decision<'_>,
) -> i64 {
    let merge_id: i64 = exec(
        client,
        "WITH merged AS (
             UPDATE cdp.profiles SET merged_into = $2, merged_at = pg_catalog.now()
             WHERE portal = $8 AND profile_id = $1 RETURNING profile_id
         ), filled AS (
             INSERT INTO cdp.profile_attributes (portal, profile_id, key, value, set_at, source, source_profile)
             SELECT $8, $2, a.key, a.value, a.set_at, 'merge', $1 FROM cdp.profile_attributes a WHERE a.portal = $8 AND a.profile_id = $1
             ORDER BY a.key COLLATE \"C\"
             ON CONFLICT (portal, profile_id, key) DO NOTHING
             RETURNING key
         )
         INSERT INTO cdp.merges (portal, kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time, filled_attributes)
         SELECT $8, 'merge', merged.profile_id, $2, $3, $4, $5, $6, $7,
                coalesce((SELECT pg_catalog.array_agg(key ORDER BY key) FROM filled), '{}')
         FROM merged
         RETURNING merge_id",
        &[
            anonymous.into(),
            customer.into(),
            reason.as_str().into(),
            evidence.into(),
            decided_by.uid.into(),
            decided_by.identify_type.as_str().into(),
            decided_by.identify_time.into(),
            portal.into(),
        ],
    )
    .one()
    .value("merge_id");
    record_change(client, portal, merge_id, false);
    merge_id
}

/// Records a decision (or its undoing) in the change feed, `cdp.identity_changes`.
fn record_change(client: &mut SpiClient<'_>, portal: &str, merge_id: i64, undone: bool) {
    exec(client, "SELECT cdp.record_decision($1, $2, $3)", &[portal.into(), merge_id.into(), undone.into()]);
}

/// A UID on a shared device starts a new session: it writes to `new_profile`
/// (just created) from now on; its earlier sessions keep their profiles and
/// events. Recorded as a `uid_reassigned` row with reason `session` and the
/// session as evidence, so profile_at, explain, unmerge and erasure treat it
/// like any other move of a UID.
pub fn start_session(
    client: &mut SpiClient<'_>,
    portal: &str,
    uid: &str,
    from_root: i64,
    new_profile: i64,
    evidence: &str,
    at: TimestampWithTimeZone,
) {
    move_uid(client, portal, uid, (from_root, new_profile), ("session", evidence), IdentifyType::Exact, at);
}

/// The profile an earlier session of a UID on a shared device was given, if
/// that session was split off (`evidence` as `start_session` recorded it).
pub fn session_profile(client: &mut SpiClient<'_>, portal: &str, uid: &str, evidence: &str) -> Option<i64> {
    exec(
        client,
        "SELECT m.into_profile FROM cdp.merges m
         WHERE m.portal = $3 AND m.kind = 'uid_reassigned' AND m.uid = $1 AND m.reason = 'session' AND m.evidence = $2
           AND m.undone_at IS NULL
         ORDER BY m.merge_id DESC LIMIT 1",
        &[uid.into(), evidence.into(), portal.into()],
    )
    .optional()
    .map(|row| row.value("into_profile"))
}

/// A UID of customer `from` identifies as another customer: the UID counts
/// for `into` from now on, `from` keeps its id and its history.
pub fn reassign_uid(client: &mut SpiClient<'_>, portal: &str, uid: &str, from: i64, into: i64, decided_by: &Decision<'_>) {
    move_uid(client, portal, uid, (from, into), ("uid", uid), decided_by.identify_type, decided_by.identify_time);
}

/// Moves a UID to write to another profile and records the decision
/// (`uid_reassigned`, with the profile it wrote to before, for the undo).
fn move_uid(
    client: &mut SpiClient<'_>,
    portal: &str,
    uid: &str,
    (from, into): (i64, i64),
    (reason, evidence): (&str, &str),
    identify_type: IdentifyType,
    at: TimestampWithTimeZone,
) {
    let made = exec(
        client,
        "WITH before AS (SELECT profile_id FROM cdp.uids WHERE portal = $8 AND uid = $1),
              moved AS (UPDATE cdp.uids SET profile_id = $3 WHERE portal = $8 AND uid = $1 RETURNING uid)
         INSERT INTO cdp.merges (portal, kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time,
                                 uid_profile_before)
         SELECT $8, 'uid_reassigned', $2, $3, $4, $5, moved.uid, $6, $7, before.profile_id FROM moved, before
         RETURNING merge_id",
        &[uid.into(), from.into(), into.into(), reason.into(), evidence.into(), identify_type.as_str().into(), at.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value::<i64>("merge_id"))
    .collect::<Vec<i64>>();
    for merge_id in made {
        record_change(client, portal, merge_id, false);
    }
}

/// A decision row as unmerge needs it.
pub struct MergeRow {
    pub merge_id: i64,
    pub kind: String,
    pub from_profile: i64,
    pub into_profile: i64,
    pub uid: Option<String>,
    pub uid_profile_before: Option<i64>,
    pub undone_at: Option<TimestampWithTimeZone>,
}

fn decode(row: &Row<'_>) -> MergeRow {
    MergeRow {
        merge_id: row.value("merge_id"),
        kind: row.value("kind"),
        from_profile: row.value("from_profile"),
        into_profile: row.value("into_profile"),
        uid: row.get("uid"),
        uid_profile_before: row.get("uid_profile_before"),
        undone_at: row.get("undone_at"),
    }
}

pub fn load(client: &mut SpiClient<'_>, portal: &str, merge_id: i64) -> Option<MergeRow> {
    exec_unkept(
        client,
        "SELECT merge_id, kind, from_profile, into_profile, uid, uid_profile_before, undone_at FROM cdp.merges
         WHERE portal = $2 AND merge_id = $1",
        &[merge_id.into(), portal.into()],
    )
    .optional()
    .map(|row| decode(&row))
}

/// Later, still active merges into the same customer whose evidence is an
/// identifier of the profile being restored (newest first). (OFFSET 0 keeps
/// the EXISTS a lookup by the whole key per merge: as a semi-join it would
/// read the profile's identifiers through the primary key's range.)
pub fn dependents(client: &mut SpiClient<'_>, portal: &str, merge: &MergeRow) -> Vec<i64> {
    exec_unkept(
        client,
        "SELECT m.merge_id FROM cdp.merges m
         WHERE m.portal = $4 AND m.into_profile = $1 AND m.kind = 'merge' AND m.undone_at IS NULL AND m.merge_id > $2
           AND EXISTS (SELECT FROM cdp.identifiers i
                       WHERE i.portal = $4 AND i.profile_id = $3 AND i.kind = m.reason AND i.value = m.evidence OFFSET 0)
         ORDER BY m.merge_id DESC",
        &[merge.into_profile.into(), merge.merge_id.into(), merge.from_profile.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value("merge_id"))
    .collect()
}

/// Undoes a merge: the profile is unlinked from the customer, the attributes
/// it had filled on the customer (still holding its value) are removed
/// (returned, sorted), the row is marked.
pub fn undo_merge(client: &mut SpiClient<'_>, portal: &str, merge: &MergeRow, cascade_of: Option<i64>) -> Vec<String> {
    let mut removed: Vec<String> = exec_unkept(
        client,
        "WITH restored AS (
             UPDATE cdp.profiles SET merged_into = NULL, merged_at = NULL
             WHERE portal = $5 AND profile_id = $1 AND merged_into = $2 RETURNING profile_id
         ), marked AS (
             UPDATE cdp.merges SET undone_at = pg_catalog.now(), undone_by_cascade_of = $4 WHERE portal = $5 AND merge_id = $3
         )
         DELETE FROM cdp.profile_attributes a
         WHERE a.portal = $5 AND a.profile_id = $2 AND a.source = 'merge' AND a.source_profile = $1
         RETURNING a.key",
        &[merge.from_profile.into(), merge.into_profile.into(), merge.merge_id.into(), cascade_of.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value("key"))
    .collect();
    record_change(client, portal, merge.merge_id, true);
    removed.sort();
    removed
}

/// Undoes a UID reassignment: the UID goes back to the profile it wrote to
/// before; false (nothing changed) when it has moved again since.
pub fn undo_reassignment(client: &mut SpiClient<'_>, portal: &str, merge: &MergeRow, uid: &str, before: i64) -> bool {
    let moved = !exec_unkept(
        client,
        "WITH moved AS (
             UPDATE cdp.uids SET profile_id = $3 WHERE portal = $5 AND uid = $1 AND profile_id = $2 RETURNING uid
         ), marked AS (
             UPDATE cdp.merges SET undone_at = pg_catalog.now() WHERE portal = $5 AND merge_id = $4 AND EXISTS (SELECT FROM moved)
         )
         SELECT uid FROM moved",
        &[uid.into(), merge.into_profile.into(), before.into(), merge.merge_id.into(), portal.into()],
    )
    .is_empty();
    if moved {
        record_change(client, portal, merge.merge_id, true);
    }
    moved
}
