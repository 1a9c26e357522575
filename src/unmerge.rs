//! Undoing identity decisions: `cdp.unmerge`.
//!
//! A merge only set `merged_into` on the anonymous profile, filled gaps in the
//! customer's attributes (recorded in `filled_attributes` and marked
//! `source = 'merge'`) and wrote an audit row; events, UIDs and identifiers
//! stayed on the merged profile. So undoing it restores the profile exactly.
//! Later merges into the same customer whose evidence came from the restored
//! profile's identifiers built on it: they are undone with it (`cascade`) or
//! the call fails naming them. The undone decision is remembered in
//! `cdp.merge_blocks`, so the same evidence does not merge the two again.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::store::{column, exec, first_value, lock_identity_exclusive};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::{json, Value};

struct MergeRow {
    merge_id: i64,
    kind: String,
    from_profile: i64,
    into_profile: i64,
    uid: Option<String>,
    uid_profile_before: Option<i64>,
    undone_at: Option<TimestampWithTimeZone>,
}

fn load(client: &mut SpiClient<'_>, merge_id: i64) -> Option<MergeRow> {
    let table = exec(
        client,
        "SELECT merge_id, kind, from_profile, into_profile, uid, uid_profile_before, undone_at
         FROM cdp.merges WHERE merge_id = $1",
        &[merge_id.into()],
    );
    if table.is_empty() {
        return None;
    }
    let row = table.first();
    Some(MergeRow {
        merge_id: row.get(1).ok().flatten()?,
        kind: row.get(2).ok().flatten()?,
        from_profile: row.get(3).ok().flatten()?,
        into_profile: row.get(4).ok().flatten()?,
        uid: row.get(5).ok().flatten(),
        uid_profile_before: row.get(6).ok().flatten(),
        undone_at: row.get(7).ok().flatten(),
    })
}

pub fn unmerge(client: &mut SpiClient<'_>, merge_id: i64, cascade: bool) -> CdpResult<Value> {
    lock_identity_exclusive(client);
    let merge = load(client, merge_id)
        .ok_or_else(|| CdpError::invalid(format!("merge {merge_id} does not exist")))?;
    if let Some(at) = merge.undone_at {
        return Err(CdpError::new(ErrorKind::NotInState, format!("merge {merge_id} was already undone (at {at})")));
    }
    if merge.kind == "uid_reassigned" {
        return undo_reassignment(client, &merge);
    }
    let mut cascaded = Vec::new();
    undo_merge(client, &merge, None, cascade, &mut cascaded)
}

/// Later, still active merges into the same customer whose evidence is an
/// identifier of the profile being restored (newest first).
fn dependents(client: &mut SpiClient<'_>, merge: &MergeRow) -> Vec<i64> {
    exec(
        client,
        "SELECT m.merge_id FROM cdp.merges m
         WHERE m.into_profile = $1 AND m.kind = 'merge' AND m.undone_at IS NULL AND m.merge_id > $2
           AND EXISTS (SELECT FROM cdp.identifiers i
                       WHERE i.profile_id = $3 AND i.kind = m.reason AND i.value = m.evidence)
         ORDER BY m.merge_id DESC",
        &[merge.into_profile.into(), merge.merge_id.into(), merge.from_profile.into()],
    )
    .filter_map(|row| column::<i64>(&row, 1))
    .collect()
}

fn undo_merge(
    client: &mut SpiClient<'_>,
    merge: &MergeRow,
    cascade_of: Option<i64>,
    cascade: bool,
    cascaded: &mut Vec<i64>,
) -> CdpResult<Value> {
    let later = dependents(client, merge);
    if !later.is_empty() && !cascade {
        let ids: Vec<String> = later.iter().map(|m| m.to_string()).collect();
        return Err(CdpError::new(
            ErrorKind::NotInState,
            format!(
                "merge {} cannot be undone alone: later merge(s) {} used evidence that profile {} brought",
                merge.merge_id,
                ids.join(", "),
                merge.from_profile
            ),
        )
        .with_hint(format!("Undo them first, or call cdp.unmerge({}, cascade => true).", merge.merge_id)));
    }
    for dependent in later {
        if let Some(row) = load(client, dependent).filter(|r| r.undone_at.is_none()) {
            undo_merge(client, &row, Some(merge.merge_id), true, cascaded)?;
            cascaded.push(dependent);
        }
    }
    let removed: Vec<String> = exec(
        client,
        "WITH restored AS (
             UPDATE cdp.profiles SET merged_into = NULL, merged_at = NULL
             WHERE profile_id = $1 AND merged_into = $2 RETURNING profile_id
         ), marked AS (
             UPDATE cdp.merges SET undone_at = pg_catalog.now(), undone_by_cascade_of = $4 WHERE merge_id = $3
         ), blocked AS (
             INSERT INTO cdp.merge_blocks (from_profile, into_profile, evidence, merge_id)
             SELECT $1, $2, ARRAY(SELECT i.kind || ':' || i.value FROM cdp.identifiers i WHERE i.profile_id = $1
                                  UNION SELECT 'uid:' || u.uid FROM cdp.uids u WHERE u.profile_id = $1
                                  UNION SELECT 'predict'), $3
         )
         DELETE FROM cdp.profile_attributes a
         WHERE a.profile_id = $2 AND a.source = 'merge' AND a.source_profile = $1
         RETURNING a.key",
        &[merge.from_profile.into(), merge.into_profile.into(), merge.merge_id.into(), cascade_of.into()],
    )
    .filter_map(|row| column::<String>(&row, 1))
    .collect();
    let table = exec(
        client,
        "SELECT ARRAY(SELECT u.uid FROM cdp.uids u WHERE u.profile_id = $1 ORDER BY u.uid),
                (SELECT count(*) FROM cdp.events e WHERE e.profile_id = $1)",
        &[merge.from_profile.into()],
    );
    let row = table.first();
    let uids: Vec<String> = row.get(1).ok().flatten().unwrap_or_default();
    let events: i64 = row.get(2).ok().flatten().unwrap_or(0);
    let mut removed = removed;
    removed.sort();
    Ok(json!({
        "merge_id": merge.merge_id,
        "kind": "merge",
        "restored_profile": merge.from_profile,
        "customer_profile": merge.into_profile,
        "uids": uids,
        "events": events,
        "attributes_removed": removed,
        "cascaded": cascaded.clone(),
    }))
}

/// A shared-browser reassignment undone: the UID goes back to the profile it
/// wrote to before, unless it has moved again since.
fn undo_reassignment(client: &mut SpiClient<'_>, merge: &MergeRow) -> CdpResult<Value> {
    let (Some(uid), Some(before)) = (merge.uid.as_deref(), merge.uid_profile_before) else {
        return Err(CdpError::new(ErrorKind::NotInState, format!("merge {} has no UID to move back", merge.merge_id)));
    };
    let moved: Option<String> = first_value(exec(
        client,
        "WITH moved AS (
             UPDATE cdp.uids SET profile_id = $3 WHERE uid = $1 AND profile_id = $2 RETURNING uid
         ), marked AS (
             UPDATE cdp.merges SET undone_at = pg_catalog.now() WHERE merge_id = $4 AND EXISTS (SELECT FROM moved)
         ), blocked AS (
             INSERT INTO cdp.merge_blocks (from_profile, into_profile, evidence, merge_id)
             SELECT $5, $2, ARRAY['uid:' || $1], $4 FROM moved
         )
         SELECT uid FROM moved",
        &[uid.into(), merge.into_profile.into(), before.into(), merge.merge_id.into(), merge.from_profile.into()],
    ));
    if moved.is_none() {
        return Err(CdpError::new(
            ErrorKind::NotInState,
            format!("UID {uid} no longer belongs to profile {}: undo the later decisions about it first", merge.into_profile),
        ));
    }
    Ok(json!({
        "merge_id": merge.merge_id,
        "kind": "uid_reassigned",
        "uid": uid,
        "restored_profile": before,
        "customer_profile": merge.into_profile,
        "cascaded": [],
    }))
}

/// An undone decision about a profile and a customer, as identify checks it.
pub struct Block {
    pub from_profile: i64,
    pub evidence: Vec<String>,
    pub blocked_at: TimestampWithTimeZone,
}

/// The decisions remembered for merges into a customer (usually none).
pub fn blocks_for(client: &mut SpiClient<'_>, customer: i64) -> Vec<Block> {
    exec(
        client,
        "SELECT from_profile, evidence, blocked_at FROM cdp.merge_blocks WHERE into_profile = $1",
        &[customer.into()],
    )
    .filter_map(|row| {
        Some(Block { from_profile: column(&row, 1)?, evidence: column(&row, 2)?, blocked_at: column(&row, 3)? })
    })
    .collect()
}

/// Whether an undone decision forbids merging `profile` into the customer on
/// this evidence (`kind:value`). The UID itself counts as new evidence when
/// its identify is later than the undo.
pub fn is_blocked(blocks: &[Block], profile: i64, evidence: &str, identify_time: TimestampWithTimeZone) -> bool {
    blocks.iter().any(|b| {
        b.from_profile == profile
            && b.evidence.iter().any(|e| e == evidence)
            && !(evidence.starts_with("uid:") && identify_time > b.blocked_at)
    })
}
