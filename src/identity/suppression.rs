//! Suppression (`cdp.erased_uids`): after an erasure, events still arriving
//! for an erased UID are not stored. UIDs are kept only as SHA-256 hashes.
//! Erasure suppresses through `suppress`; ingestion asks `erased_among`; a
//! new identify of the UID (a new decision) lifts it.

use crate::identifiers::sha256_hex;
use crate::store::exec;
use pgrx::spi::SpiClient;
use std::collections::HashSet;

/// The UIDs among these whose events are suppressed.
pub fn erased_among(client: &mut SpiClient<'_>, portal: &str, uids: &[&str]) -> HashSet<String> {
    if uids.is_empty() {
        return HashSet::new();
    }
    let hashes: Vec<String> = uids.iter().map(|u| sha256_hex(u)).collect();
    let erased: HashSet<String> =
        exec(client, "SELECT uid_sha256 FROM cdp.erased_uids WHERE portal = $2 AND uid_sha256 = ANY($1)", &[hashes.into(), portal.into()])
            .rows()
            .map(|row| row.value("uid_sha256"))
            .collect();
    uids.iter().filter(|u| erased.contains(&sha256_hex(u))).map(|u| u.to_string()).collect()
}

pub fn is_suppressed(client: &mut SpiClient<'_>, portal: &str, uid: &str) -> bool {
    !erased_among(client, portal, &[uid]).is_empty()
}

/// Suppresses the later events of these UIDs, recorded against an erasure.
pub fn suppress(client: &mut SpiClient<'_>, portal: &str, uids: &[String], erasure_id: i64) {
    let hashes: Vec<String> = uids.iter().map(|u| sha256_hex(u)).collect();
    exec(
        client,
        "INSERT INTO cdp.erased_uids (portal, uid_sha256, erasure_id) SELECT $3, h, $2 FROM pg_catalog.unnest($1::text[]) AS h
         ON CONFLICT (portal, uid_sha256) DO UPDATE SET erasure_id = excluded.erasure_id",
        &[hashes.into(), erasure_id.into(), portal.into()],
    );
}

/// A new identify of an erased UID is a new decision: its events count again.
pub fn lift(client: &mut SpiClient<'_>, portal: &str, uid: &str) {
    exec(client, "DELETE FROM cdp.erased_uids WHERE portal = $2 AND uid_sha256 = $1", &[sha256_hex(uid).into(), portal.into()]);
}
