//! Undoing identity decisions: `cdp.unmerge`.
//!
//! A merge only set `merged_into` on the anonymous profile, filled gaps in the
//! customer's attributes and wrote a decision row; events, UIDs and
//! identifiers stayed on the merged profile, so undoing it restores the
//! profile exactly (`tables::merges`). Later merges into the same customer
//! whose evidence came from the restored profile's identifiers built on it:
//! they are undone with it (`cascade`) or the call fails naming them. The
//! undone decision is remembered (`identity::blocks`), so the same evidence
//! does not merge the two again.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identity::blocks;
use crate::portal::{self, Portal};
use crate::tables::merges::{self, MergeRow};
use crate::tables::{events, uids};
use pgrx::spi::SpiClient;
use serde_json::{json, Value};

pub fn unmerge(client: &mut SpiClient<'_>, portal: &Portal, merge_id: i64, cascade: bool) -> CdpResult<Value> {
    portal::lock(client, portal);
    let here = portal.name.as_str();
    let merge = merges::load(client, here, merge_id).ok_or_else(|| CdpError::invalid(format!("merge {merge_id} does not exist")))?;
    if let Some(at) = merge.undone_at {
        return Err(CdpError::new(ErrorKind::NotInState, format!("merge {merge_id} was already undone (at {at})")));
    }
    if merge.kind == "uid_reassigned" {
        return undo_reassignment(client, here, &merge);
    }
    let mut cascaded = Vec::new();
    undo_merge(client, here, &merge, None, cascade, &mut cascaded)
}

fn undo_merge(
    client: &mut SpiClient<'_>,
    portal: &str,
    merge: &MergeRow,
    cascade_of: Option<i64>,
    cascade: bool,
    cascaded: &mut Vec<i64>,
) -> CdpResult<Value> {
    let later = merges::dependents(client, portal, merge);
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
        if let Some(row) = merges::load(client, portal, dependent).filter(|r| r.undone_at.is_none()) {
            undo_merge(client, portal, &row, Some(merge.merge_id), true, cascaded)?;
            cascaded.push(dependent);
        }
    }
    let removed = merges::undo_merge(client, portal, merge, cascade_of);
    blocks::record_undone_merge(client, portal, merge.from_profile, merge.into_profile, merge.merge_id);
    Ok(json!({
        "merge_id": merge.merge_id,
        "kind": "merge",
        "restored_profile": merge.from_profile,
        "customer_profile": merge.into_profile,
        "uids": uids::of_profile(client, portal, merge.from_profile),"events": events::count_on_profile(client, portal, merge.from_profile),"attributes_removed": removed,
        "cascaded": cascaded.clone(),
    }))
}

/// A shared-browser reassignment undone: the UID goes back to the profile it
/// wrote to before, unless it has moved again since.
fn undo_reassignment(client: &mut SpiClient<'_>, portal: &str, merge: &MergeRow) -> CdpResult<Value> {
    let (Some(uid), Some(before)) = (merge.uid.as_deref(), merge.uid_profile_before) else {
        return Err(CdpError::new(ErrorKind::NotInState, format!("merge {} has no UID to move back", merge.merge_id)));
    };
    if !merges::undo_reassignment(client, portal, merge, uid, before) {
        return Err(CdpError::new(
            ErrorKind::NotInState,
            format!("UID {uid} no longer belongs to profile {}: undo the later decisions about it first", merge.into_profile),
        ));
    }
    blocks::record_undone_reassignment(client, portal, uid, merge.from_profile, merge.into_profile, merge.merge_id);
    Ok(json!({
        "merge_id": merge.merge_id,
        "kind": "uid_reassigned",
        "uid": uid,
        "restored_profile": before,
        "customer_profile": merge.into_profile,
        "cascaded": [],
    }))
}
