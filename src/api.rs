//! The public SQL functions written in Rust (schema `cdp`). A thin edge: it
//! builds the validated request (`request`), runs the flow (`ingest`,
//! `batch`, `identity`, `unmerge`, `erasure`, `review`) and returns its
//! answer. The read functions (profile, events_of, views) are plain SQL in
//! `sql/read_api.sql`.

use crate::errors::{CdpError, OrRaise};
use crate::jsonb::JsonbArg;
use crate::portal::{self, Portal};
use crate::request::{AttributeSource, EventTime, IdentifyInput, IdentifyRequest, StoredPayload, TrackRequest};
use crate::store::transaction_start;
use crate::tables::skips;
use crate::validate;
use crate::{batch, configure, erasure, identifiers, identity, ingest, review, unmerge};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;

/// Runs a call in a portal: it must exist and the caller may use it (22023,
/// 42501 otherwise), and the database's catalog must be the library's
/// version (55000 naming the command to run otherwise). The portal is the
/// call's optional last argument `portal` (every public function takes one,
/// so a router can forward a call without session state, and Citus could
/// delegate it by that argument), else the session's `cdp.portal`.
fn in_portal_of<R>(name: Option<&str>, f: impl FnOnce(&mut SpiClient<'_>, &Portal) -> R) -> R {
    Spi::connect_mut(|client| {
        portal::check_catalog_version(client).or_raise();
        let portal = match name {
            Some(name) => portal::named(client, name).or_raise(),
            None => portal::current(client).or_raise(),
        };
        f(client, &portal)
    })
}

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
    portal: default!(Option<&str>, "NULL"),
) -> Option<i64> {
    in_portal_of(portal, |client, portal| {
        let payload = payload.as_ref().map(StoredPayload::Whole).unwrap_or(StoredPayload::Empty);
        let at = EventTime::At(event_time.unwrap_or_else(transaction_start));
        let request = TrackRequest::new(uid, category, action, payload, at, portal).or_raise();
        ingest::track_event(client, portal, &request).map(|t| t.root)
    })
}

/// Records an array of events (`{uid, category, action, payload, event_time}`)
/// with the rules of `track_event`; a bad item is rejected alone. Returns
/// counts, the rejected items and the profile id of every item.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_batch(events: Option<JsonbArg>, portal: default!(Option<&str>, "NULL")) -> JsonB {
    in_portal_of(portal, |client, portal| {
        let events = events.unwrap_or_else(|| CdpError::null("events").raise());
        let items = batch::read_items(&events, transaction_start(), portal).or_raise();
        JsonB(batch::track_batch(client, portal, &events, items).to_json())
    })
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
    portal: default!(Option<&str>, "NULL"),
) -> i64 {
    trusted_identify(uid, customer_id, attributes, identify_type, identify_time, portal).customer
}

/// `identify`, answering what happened: `{"profile_id", "outcome"
/// (created | linked | reassigned | unchanged), "merged_profiles",
/// "reassigned_from", "skipped"}`.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn identify_outcome(
    uid: Option<&str>,
    customer_id: Option<&str>,
    attributes: default!(Option<JsonbArg>, "'{}'"),
    identify_type: default!(Option<&str>, "'exact'"),
    identify_time: default!(Option<TimestampWithTimeZone>, "now()"),
    portal: default!(Option<&str>, "NULL"),
) -> JsonB {
    let outcome = trusted_identify(uid, customer_id, attributes, identify_type, identify_time, portal);
    JsonB(serde_json::json!({
        "profile_id": outcome.customer,
        "outcome": outcome.uid_outcome.as_str(),
        "merged_profiles": outcome.merged,
        "reassigned_from": outcome.reassigned_from,
        "skipped": outcome.skips.iter().map(|s| serde_json::json!({"field": s.field, "value": s.value, "reason": s.reason})).collect::<Vec<_>>(),
    }))
}

/// A backend's identify (trusted), with its skips recorded.
fn trusted_identify(
    uid: Option<&str>,
    customer_id: Option<&str>,
    attributes: Option<JsonbArg>,
    identify_type: Option<&str>,
    identify_time: Option<TimestampWithTimeZone>,
    portal: Option<&str>,
) -> identity::IdentifyOutcome {
    in_portal_of(portal, |client, portal| {
        let input = IdentifyInput {
            uid,
            customer_id,
            attributes: AttributeSource::Argument(attributes.as_ref()),
            identify_type,
            identify_time: identify_time.unwrap_or_else(transaction_start),
            identify_id: None,
            device_id: None,
            trusted: true,
        };
        let request = IdentifyRequest::new(input, &portal.settings).or_raise();
        let outcome = identity::identify(client, portal, &request);
        skips::record(client, &portal.name, &request.uid, None, &outcome.skips);
        outcome
    })
}

/// Undoes a merge (or a shared-browser UID reassignment) and reports what
/// moved. Later merges that used evidence of the restored profile are undone
/// with it when `cascade`, else the call fails naming them.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn unmerge(merge_id: Option<i64>, cascade: default!(Option<bool>, "false"), portal: default!(Option<&str>, "NULL")) -> JsonB {
    in_portal_of(portal, |client, portal| {
        let merge_id = merge_id.unwrap_or_else(|| CdpError::null("merge_id").raise());
        JsonB(unmerge::unmerge(client, portal, merge_id, cascade.unwrap_or(false)).or_raise())
    })
}

/// Clears the decision that a device id (`kind` 'device_id') or UID ('uid')
/// is shared; false when it was not marked shared.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn clear_shared(kind: Option<&str>, value: Option<&str>, portal: default!(Option<&str>, "NULL")) -> bool {
    in_portal_of(portal, |client, portal| {
        let kind = kind.unwrap_or_else(|| CdpError::null("kind").raise());
        let value = value.unwrap_or_else(|| CdpError::null("value").raise());
        identity::shared::clear(client, portal, kind, value).or_raise()
    })
}

/// Erases a customer and every profile merged into it; keeps only hashes and
/// counts (returned) and suppresses later events of its UIDs.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn forget_customer(customer_id: Option<&str>, portal: default!(Option<&str>, "NULL")) -> JsonB {
    in_portal_of(portal, |client, portal| {
        let customer_id = validate::customer_id("customer_id", customer_id).or_raise();
        JsonB(erasure::forget_customer(client, portal, &customer_id).or_raise())
    })
}

/// Erases one UID: its events, its own anonymous profile, the decisions that
/// name it; keeps only hashes and counts (returned) and suppresses its later events.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn forget_uid(uid: Option<&str>, portal: default!(Option<&str>, "NULL")) -> JsonB {
    in_portal_of(portal, |client, portal| {
        let uid = validate::identifier("uid", uid).or_raise();
        JsonB(erasure::forget_uid(client, portal, &uid).or_raise())
    })
}

/// Accepts a predicted match: merges the profile into the customer (reason
/// `predict`, undoable with cdp.unmerge).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn accept_suggestion(suggestion_id: Option<i64>, portal: default!(Option<&str>, "NULL")) -> JsonB {
    in_portal_of(portal, |client, portal| {
        let id = suggestion_id.unwrap_or_else(|| CdpError::null("suggestion_id").raise());
        JsonB(review::accept(client, portal, id).or_raise())
    })
}

/// Rejects a predicted match: the pair is not suggested or predicted again.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reject_suggestion(suggestion_id: Option<i64>, portal: default!(Option<&str>, "NULL")) -> JsonB {
    in_portal_of(portal, |client, portal| {
        let id = suggestion_id.unwrap_or_else(|| CdpError::null("suggestion_id").raise());
        JsonB(review::reject(client, portal, id).or_raise())
    })
}

/// The session's portal (the setting `cdp.portal`), checked: it exists and
/// the caller may use it. The read functions call it.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn current_portal(portal: default!(Option<&str>, "NULL")) -> String {
    in_portal_of(portal, |_, portal| portal.name.clone())
}

/// The portals the caller may use.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn usable_portals() -> SetOfIterator<'static, String> {
    SetOfIterator::new(Spi::connect_mut(portal::usable))
}

/// The library's and the database catalog's versions of cdp_identity.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn version() -> JsonB {
    JsonB(Spi::connect_mut(crate::version::versions))
}

/// The identity hash of a customer id under the session portal's secret,
/// for a backend to hand to the page as `extra.identify_hash` (verified
/// identity). 55000 when the portal has no secret.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn identity_hash(customer_id: Option<&str>, portal: default!(Option<&str>, "NULL")) -> String {
    in_portal_of(portal, |_, portal| {
        let customer_id = validate::customer_id("customer_id", customer_id).or_raise();
        match portal.identity_secret.as_deref() {
            Some(secret) => identifiers::identity_hash(&customer_id, secret),
            None => CdpError::new(crate::errors::ErrorKind::NotInState, format!("portal \"{}\" has no identity_secret", portal.name))
                .with_hint("A member of cdp_admin sets one: cdp.configure_portal(portal, '{\"identity_secret\": \"...\"}').")
                .raise(),
        }
    })
}

/// Creates a portal (an identity space) with optional settings.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn create_portal(portal: Option<&str>, settings: default!(Option<JsonbArg>, "'{}'")) -> JsonB {
    let name = portal.unwrap_or_else(|| CdpError::null("portal").raise());
    let changes = configure::settings_argument(settings.map(|s| s.to_json_text())).or_raise();
    JsonB(Spi::connect_mut(|client| {
        portal::check_catalog_version(client).or_raise();
        configure::create_portal(client, name, &changes).or_raise()
    }))
}

/// Changes a portal's settings (a key set to null goes back to the server
/// default; identity_secret is stored apart and never shown).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn configure_portal(portal: Option<&str>, settings: Option<JsonbArg>) -> JsonB {
    let name = portal.unwrap_or_else(|| CdpError::null("portal").raise());
    let changes = configure::settings_argument(settings.map(|s| s.to_json_text())).or_raise();
    JsonB(Spi::connect_mut(|client| {
        portal::check_catalog_version(client).or_raise();
        let target = portal::named(client, name).or_raise();
        configure::configure_portal(client, &target, &changes).or_raise()
    }))
}

/// Lets a role (and its members) use a portal. True when it changed anything.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn grant_portal(role: Option<&str>, portal: Option<&str>) -> bool {
    let role = role.unwrap_or_else(|| CdpError::null("role").raise());
    let name = portal.unwrap_or_else(|| CdpError::null("portal").raise());
    Spi::connect_mut(|client| {
        let target = portal::named(client, name).or_raise();
        configure::grant_portal(client, role, &target).or_raise()
    })
}

/// Takes a portal back from a role. True when it changed anything.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_portal(role: Option<&str>, portal: Option<&str>) -> bool {
    let role = role.unwrap_or_else(|| CdpError::null("role").raise());
    let name = portal.unwrap_or_else(|| CdpError::null("portal").raise());
    Spi::connect_mut(|client| {
        let target = portal::named(client, name).or_raise();
        configure::revoke_portal(client, role, &target).or_raise()
    })
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

/// The customer id the seed's sign-in derives from an email, computed the
/// one documented way: `md5(normalize_email(email))` (trimmed, lowercased,
/// domain in IDNA form, Gmail dots and +tags removed). 22023 when the text
/// is not a usable address.
#[pg_extern(immutable, parallel_safe, strict)]
#[search_path(pg_catalog, pg_temp)]
fn customer_id_for_email(email: &str) -> String {
    match identifiers::normalize_email(email) {
        Some(normalized) => identifiers::md5_hex(&normalized),
        None => CdpError::invalid("email is not a usable email address")
            .with_hint("An address such as user@example.com; placeholders (undefined@..., null@...) are refused.")
            .raise(),
    }
}

/// The phone number in E.164 (a national number read in `region`, an ISO
/// 3166 code; without one it keeps its digits), or NULL when the text is
/// not a usable number.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn normalize_phone(input: Option<&str>, region: default!(Option<&str>, "NULL")) -> Option<String> {
    identifiers::normalize_phone(input?, region)
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
