//! Merge blocks (`cdp.merge_blocks`): decisions an unmerge remembers. The
//! evidence that merged a profile into a customer no longer merges them;
//! new evidence does, and so does a later sign-in of the same UID. Unmerge
//! records blocks here; identify only asks `is_blocked`.

use crate::store::exec;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

/// An undone decision about a profile and a customer, as identify checks it.
pub struct Block {
    pub from_profile: i64,
    pub evidence: Vec<String>,
    pub blocked_at: TimestampWithTimeZone,
}

/// The decisions remembered for merges into a customer (usually none).
pub fn for_customer(client: &mut SpiClient<'_>, portal: &str, customer: i64) -> Vec<Block> {
    exec(
        client,
        "SELECT from_profile, evidence, blocked_at FROM cdp.merge_blocks WHERE portal = $2 AND into_profile = $1",
        &[customer.into(), portal.into()],
    )
    .rows()
    .map(|row| Block { from_profile: row.value("from_profile"), evidence: row.value("evidence"), blocked_at: row.value("blocked_at") })
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

/// Remembers an undone merge: every piece of evidence the restored profile
/// carries (its identifiers, its UIDs, and a predicted match) no longer
/// merges it into that customer.
pub fn record_undone_merge(client: &mut SpiClient<'_>, portal: &str, from_profile: i64, into_profile: i64, merge_id: i64) {
    exec(
        client,
        "INSERT INTO cdp.merge_blocks (portal, from_profile, into_profile, evidence, merge_id)
         SELECT $4, $1, $2, ARRAY(SELECT i.kind || ':' || i.value FROM cdp.identifiers i WHERE i.portal = $4 AND i.profile_id = $1
                                  UNION SELECT 'uid:' || u.uid FROM cdp.uids u WHERE u.portal = $4 AND u.profile_id = $1
                                  UNION SELECT 'predict'), $3",
        &[from_profile.into(), into_profile.into(), merge_id.into(), portal.into()],
    );
}

/// Remembers an undone UID reassignment: that UID no longer moves the
/// profile it left to that customer (until a later sign-in).
pub fn record_undone_reassignment(
    client: &mut SpiClient<'_>,
    portal: &str,
    uid: &str,
    from_profile: i64,
    into_profile: i64,
    merge_id: i64,
) {
    exec(
        client,
        "INSERT INTO cdp.merge_blocks (portal, from_profile, into_profile, evidence, merge_id)
         VALUES ($5, $1, $2, ARRAY['uid:' || $3], $4)",
        &[from_profile.into(), into_profile.into(), uid.into(), merge_id.into(), portal.into()],
    );
}
