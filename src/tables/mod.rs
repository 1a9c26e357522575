//! One module per table: each owns every statement that writes its table
//! (and the reads made mostly of it). Multi-table statements live with the
//! table they are about: creating profiles (`profiles`, which also maps the
//! new UIDs and records their devices), a merge and its undo (`merges`, which
//! set and clear the profile link and fill or remove attributes), erasure
//! (`crate::erasure`, the one statement that deletes from every table).
//! Merge blocks and suppression are identity rules: `identity::blocks`,
//! `identity::suppression`.

/// The profile of `<outer>.profile_id`, looked up by its key: fenced (OFFSET
/// 0), because a plan made while the tables were empty could otherwise read
/// every profile of the portal and filter on the id (tests/plans.py).
macro_rules! profile_of {
    ($outer:literal, $portal:literal) => {
        concat!(
            " CROSS JOIN LATERAL (SELECT * FROM cdp.profiles p WHERE p.portal = ",
            $portal,
            " AND p.profile_id = ",
            $outer,
            ".profile_id OFFSET 0) AS p "
        )
    };
}

pub mod events;
pub mod identifiers;
pub mod merges;
pub mod portals;
pub mod profile_attributes;
pub mod profiles;
pub mod shared_devices;
pub mod signals;
pub mod skips;
pub mod suggestions;
pub mod uids;
