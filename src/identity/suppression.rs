//! Suppression (`cdp.erased_uids`): after an erasure, events still arriving
//! for an erased UID are not stored. UIDs are kept only as keyed hashes
//! (HMAC-SHA256 under the install's key, `cdp.install_key`, which no group
//! role can read), so nobody can test a candidate UID or email against them.
//! Erasure suppresses through `suppress`; ingestion asks `erased_among`; a
//! trusted identify of the UID (a new decision) lifts it.

use crate::identifiers::{identity_hash, sha256_hex};
use crate::store::exec;
use pgrx::spi::SpiClient;
use std::cell::RefCell;
use std::collections::HashSet;

thread_local! {
    /// The key once read: it never changes for a database (a backend serves one).
    static INSTALL_KEY: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The install's key: the oldest row of `cdp.install_key` (made at install;
/// see schema.sql for why the oldest).
fn key(client: &mut SpiClient<'_>) -> Option<String> {
    if let Some(key) = INSTALL_KEY.with_borrow(|k| k.clone()) {
        return Some(key);
    }
    let key: Option<String> =
        exec(client, "SELECT key FROM cdp.install_key ORDER BY created_at, key LIMIT 1", &[]).optional().map(|row| row.value("key"));
    INSTALL_KEY.set(key.clone());
    key
}

/// The install's key, made again (from PostgreSQL's strong random source) if
/// somebody deleted it.
pub fn key_or_make(client: &mut SpiClient<'_>) -> String {
    if let Some(key) = key(client) {
        return key;
    }
    exec(
        client,
        "INSERT INTO cdp.install_key (key)
         SELECT pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', '')",
        &[],
    );
    let made = key(client).expect("the install key exists now");
    // Not kept: the transaction that made it may still roll back.
    INSTALL_KEY.set(None);
    made
}

/// The keyed hash of a subject (a UID, a customer id) under the install key.
pub fn keyed_hash(key: &str, subject: &str) -> String {
    identity_hash(subject, key)
}

/// The UIDs among these whose events are suppressed. (Erasures recorded by
/// 0.1 hold the plain SHA-256, which is looked up as well.)
pub fn erased_among(client: &mut SpiClient<'_>, portal: &str, uids: &[&str]) -> HashSet<String> {
    if uids.is_empty() {
        return HashSet::new();
    }
    let key = key(client);
    let hashes_of = |u: &str| -> Vec<String> {
        let mut hashes = vec![sha256_hex(u)];
        hashes.extend(key.as_deref().map(|k| keyed_hash(k, u)));
        hashes
    };
    let all: Vec<String> = uids.iter().flat_map(|u| hashes_of(u)).collect();
    let erased: HashSet<String> =
        exec(client, "SELECT uid_hash FROM cdp.erased_uids WHERE portal = $2 AND uid_hash = ANY($1)", &[all.into(), portal.into()])
            .rows()
            .map(|row| row.value("uid_hash"))
            .collect();
    uids.iter().filter(|u| hashes_of(u).iter().any(|h| erased.contains(h))).map(|u| u.to_string()).collect()
}

pub fn is_suppressed(client: &mut SpiClient<'_>, portal: &str, uid: &str) -> bool {
    !erased_among(client, portal, &[uid]).is_empty()
}

/// Suppresses the later events of these UIDs, recorded against an erasure.
pub fn suppress(client: &mut SpiClient<'_>, portal: &str, uids: &[String], erasure_id: i64) {
    let key = key_or_make(client);
    let hashes: Vec<String> = uids.iter().map(|u| keyed_hash(&key, u)).collect();
    exec(
        client,
        "INSERT INTO cdp.erased_uids (portal, uid_hash, erasure_id) SELECT $3, h, $2 FROM pg_catalog.unnest($1::text[]) AS h
         ON CONFLICT (portal, uid_hash) DO UPDATE SET erasure_id = excluded.erasure_id",
        &[hashes.into(), erasure_id.into(), portal.into()],
    );
}

/// A trusted identify of an erased UID is a new decision: its events count again.
pub fn lift(client: &mut SpiClient<'_>, portal: &str, uid: &str) {
    let mut hashes = vec![sha256_hex(uid)];
    hashes.extend(key(client).map(|k| keyed_hash(&k, uid)));
    exec(client, "DELETE FROM cdp.erased_uids WHERE portal = $2 AND uid_hash = ANY($1)", &[hashes.into(), portal.into()]);
}
