//! The public SQL functions written in Rust (schema `cdp`). A thin edge: it
//! builds the validated request (`request`), runs the flow (`ingest`,
//! `batch`, `identity`, `unmerge`, `erasure`, `review`) and returns its
//! answer. The read functions (profile, events_of, views) are plain SQL in
//! `sql/read_api.sql`.

use crate::errors::{CdpError, OrRaise};
use crate::jsonb::JsonbArg;
use crate::request::{AttributeSource, EventTime, IdentifyRequest, StoredPayload, TrackRequest};
use crate::store::transaction_start;
use crate::tables::skips;
use crate::validate;
use crate::{batch, erasure, identifiers, identity, ingest, review, unmerge};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Records one event for a UID and returns the id of the (unified) profile it
/// was attributed to. See README "cdp.track_event".
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_event(
    uid: Option<&str>,
    category: Option<&str>,
    action: Option<&str>,
    payload: default!(Option<JsonbArg>, "'{}'"),
    event_time: default!(Option<TimestampWithTimeZone>, "now()"),
) -> Option<i64> {
    let payload = payload.as_ref().map(StoredPayload::Whole).unwrap_or(StoredPayload::Empty);
    let at = EventTime::At(event_time.unwrap_or_else(transaction_start));
    let request = TrackRequest::new(uid, category, action, payload, at).or_raise();
    Spi::connect_mut(|client| ingest::track_event(client, &request).map(|t| t.root))
}

/// Records an array of events (`{uid, category, action, payload, event_time}`)
/// with the rules of `track_event`; a bad item is rejected alone. Returns
/// counts, the rejected items and the profile id of every item.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_batch(events: Option<JsonbArg>) -> JsonB {
    let events = events.unwrap_or_else(|| CdpError::null("events").raise());
    let items = batch::read_items(&events, transaction_start()).or_raise();
    JsonB(Spi::connect_mut(|client| batch::track_batch(client, &events, items)).to_json())
}

/// Assigns a customer id to a UID and merges the person's anonymous profiles
/// into the customer profile; returns the customer profile id.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn identify(
    uid: Option<&str>,
    customer_id: Option<&str>,
    attributes: default!(Option<JsonbArg>, "'{}'"),
    identify_type: default!(Option<&str>, "'exact'"),
    identify_time: default!(Option<TimestampWithTimeZone>, "now()"),
) -> i64 {
    let request = IdentifyRequest::new(
        uid,
        customer_id,
        AttributeSource::Argument(attributes.as_ref()),
        identify_type,
        identify_time.unwrap_or_else(transaction_start),
        None,
        None,
    )
    .or_raise();
    Spi::connect_mut(|client| {
        let outcome = identity::identify(client, &request);
        skips::record(client, &request.uid, None, &outcome.skips);
        outcome.customer
    })
}

/// Undoes a merge (or a shared-browser UID reassignment) and reports what
/// moved. Later merges that used evidence of the restored profile are undone
/// with it when `cascade`, else the call fails naming them.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn unmerge(merge_id: Option<i64>, cascade: default!(Option<bool>, "false")) -> JsonB {
    let merge_id = merge_id.unwrap_or_else(|| CdpError::null("merge_id").raise());
    JsonB(Spi::connect_mut(|client| unmerge::unmerge(client, merge_id, cascade.unwrap_or(false))).or_raise())
}

/// Erases a customer and every profile merged into it; keeps only hashes and
/// counts (returned) and suppresses later events of its UIDs.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn forget_customer(customer_id: Option<&str>) -> JsonB {
    let customer_id = validate::identifier("customer_id", customer_id).or_raise();
    JsonB(Spi::connect_mut(|client| erasure::forget_customer(client, customer_id)).or_raise())
}

/// Erases one UID: its events, its own anonymous profile, the decisions that
/// name it; keeps only hashes and counts (returned) and suppresses its later events.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn forget_uid(uid: Option<&str>) -> JsonB {
    let uid = validate::identifier("uid", uid).or_raise();
    JsonB(Spi::connect_mut(|client| erasure::forget_uid(client, uid)).or_raise())
}

/// Accepts a predicted match: merges the profile into the customer (reason
/// `predict`, undoable with cdp.unmerge).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn accept_suggestion(suggestion_id: Option<i64>) -> JsonB {
    let id = suggestion_id.unwrap_or_else(|| CdpError::null("suggestion_id").raise());
    JsonB(Spi::connect_mut(|client| review::accept(client, id)).or_raise())
}

/// Rejects a predicted match: the pair is not suggested or predicted again.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reject_suggestion(suggestion_id: Option<i64>) -> JsonB {
    let id = suggestion_id.unwrap_or_else(|| CdpError::null("suggestion_id").raise());
    JsonB(Spi::connect_mut(|client| review::reject(client, id)).or_raise())
}

/// Lowercase hex MD5 of the text, as the SDK's `md5(email)`.
#[pg_extern(immutable, parallel_safe, strict, name = "md5")]
#[search_path(pg_catalog, pg_temp)]
fn md5_hex(input: &str) -> String {
    identifiers::md5_hex(input)
}

/// Lowercase hex SHA-256 of the text.
#[pg_extern(immutable, parallel_safe, strict, name = "sha256")]
#[search_path(pg_catalog, pg_temp)]
fn sha256_hex(input: &str) -> String {
    identifiers::sha256_hex(input)
}

/// The normalized email (lowercase, Gmail dots and +tags removed), or NULL
/// when the text is not a usable address.
#[pg_extern(immutable, parallel_safe, strict)]
#[search_path(pg_catalog, pg_temp)]
fn normalize_email(input: &str) -> Option<String> {
    identifiers::normalize_email(input)
}

/// The normalized phone number (digits, "+" for international form), or
/// NULL when the text is not a usable number.
#[pg_extern(immutable, parallel_safe, strict)]
#[search_path(pg_catalog, pg_temp)]
fn normalize_phone(input: &str) -> Option<String> {
    identifiers::normalize_phone(input)
}

/// Why a value cannot identify anybody (a placeholder, the hash of an empty
/// value, ...), or NULL when it can.
#[pg_extern(immutable, parallel_safe, strict)]
#[search_path(pg_catalog, pg_temp)]
fn junk_reason(input: &str) -> Option<&'static str> {
    identifiers::junk_reason(input)
}

/// A fresh UID (UUIDv7 text), for backends that mint UIDs themselves.
#[pg_extern(volatile, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn new_uid() -> String {
    identifiers::new_uid()
}
