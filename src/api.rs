//! The public SQL functions written in Rust (schema `cdp`). A thin layer:
//! argument checks, then the domain modules. The read functions (profile,
//! events_of, views) are plain SQL in `sql/read_api.sql`.

use crate::errors::{CdpError, OrRaise};
use crate::identity::{self, IdentifyRequest};
use crate::batch;
use crate::store;
use crate::ingest::{self, EventTime, TrackRequest};
use crate::validate::{self, IdentifyType};
use crate::{attributes, erasure, identifiers, payload, profiles, suggestions, unmerge};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use crate::store::transaction_start;

/// Records one event for a UID and returns the id of the (unified) profile it
/// was attributed to. See README "cdp.track_event".
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_event(
    uid: Option<&str>,
    category: Option<&str>,
    action: Option<&str>,
    payload: default!(Option<JsonB>, "'{}'"),
    event_time: default!(Option<TimestampWithTimeZone>, "now()"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<i64> {
    // SAFETY: argument 3 of this call is the jsonb payload.
    let payload_datum = unsafe { store::jsonb_argument(fcinfo, 3) };
    let request =
        TrackRequest::new(uid, category, action, payload.map(|p| p.0), payload_datum, EventTime::At(event_time.unwrap_or_else(transaction_start)))
            .or_raise();
    Spi::connect_mut(|client| ingest::track_event(client, &request).map(|t| t.root))
}

/// Records an array of events (`{uid, category, action, payload, event_time}`)
/// with the rules of `track_event`; a bad item is rejected alone. Returns
/// counts, the rejected items and the profile id of every item.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_batch(events: Option<JsonB>, fcinfo: pg_sys::FunctionCallInfo) -> JsonB {
    let events = events.map(|e| e.0).unwrap_or_else(|| CdpError::null("events").raise());
    // SAFETY: argument 0 of this call is the jsonb batch (not NULL: checked above).
    let batch_datum = unsafe { store::jsonb_argument(fcinfo, 0) }.expect("events is not NULL");
    let items = batch::read_items(events, transaction_start()).or_raise();
    JsonB(Spi::connect_mut(|client| batch::track_batch(client, batch_datum, items)).to_json())
}

/// Assigns a customer id to a UID and merges the person's anonymous profiles
/// into the customer profile; returns the customer profile id.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn identify(
    uid: Option<&str>,
    customer_id: Option<&str>,
    attributes: default!(Option<JsonB>, "'{}'"),
    identify_type: default!(Option<&str>, "'exact'"),
    identify_time: default!(Option<TimestampWithTimeZone>, "now()"),
) -> i64 {
    let uid = validate::identifier("uid", uid).or_raise();
    let customer_id = validate::identifier("customer_id", customer_id).or_raise();
    if let Some(why) = identifiers::junk_reason(customer_id) {
        CdpError::invalid(format!("customer_id \"{customer_id}\" cannot identify anybody ({why})"))
            .with_hint("Pass the real customer id, for example md5 of a normalized email that is present.")
            .raise();
    }
    let identify_type = IdentifyType::parse(identify_type).or_raise();
    let attributes = match attributes.map(|a| a.0) {
        None => Default::default(),
        Some(Value::Object(map)) => attributes::storable(&map),
        Some(other) => CdpError::invalid(format!("attributes must be a JSON object, not {}", payload::type_name(&other))).raise(),
    };
    let request = IdentifyRequest {
        uid,
        customer_id,
        attributes,
        identify_type,
        identify_time: identify_time.unwrap_or_else(transaction_start),
        identify_id: None,
        device_id: None,
    };
    Spi::connect_mut(|client| {
        let outcome = identity::identify(client, &request);
        profiles::record_skips(client, uid, None, &outcome.skips);
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
    JsonB(Spi::connect_mut(|client| suggestions::accept(client, id)).or_raise())
}

/// Rejects a predicted match: the pair is not suggested or predicted again.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reject_suggestion(suggestion_id: Option<i64>) -> JsonB {
    let id = suggestion_id.unwrap_or_else(|| CdpError::null("suggestion_id").raise());
    JsonB(Spi::connect_mut(|client| suggestions::reject(client, id)).or_raise())
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
