//! Event ingestion: what `cdp.track_event` does for every page view.
//!
//! The hot path for a known UID is one lookup (UID -> profile, with a check
//! whether the system attributes changed) and one INSERT. Profiles are only
//! written when something about them changed: a new device, a new browser, a
//! lead form, an identify.

use crate::attributes::{contact_identifiers, storable, system_attributes, Identifier, Skip, SystemAttributes};
use crate::errors::{CdpError, CdpResult, ErrorKind, OrRaise};
use crate::identifiers::junk_reason;
use crate::identity::{self, IdentifyRequest};
use crate::payload::EventFacts;
use crate::profiles::{self, UidState};
use crate::store::{exec, first_value, lock_identity_shared, lock_uid};
use crate::timeparse::{self, ParsedTime};
use crate::validate;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::{Map, Value};

pub struct TrackRequest<'a> {
    pub uid: &'a str,
    pub category: &'a str,
    pub action: &'a str,
    pub payload_json: &'a str,
    pub facts: EventFacts,
    pub event_time: TimestampWithTimeZone,
}

/// Records one event and returns the unified profile it belongs to.
pub fn track_event(client: &mut SpiClient<'_>, req: &TrackRequest<'_>) -> i64 {
    let ctx = &req.facts.context;
    let message_id = ctx.message_id.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let device_id = ctx.device_id.as_deref().map(str::trim).filter(|d| !d.is_empty() && junk_reason(d).is_none());
    let mut skips: Vec<Skip> = Vec::new();

    // Identify first, so the event lands on the customer.
    let mut identified = false;
    if let Some(claim) = &req.facts.claim {
        // A retried sign-in must not identify twice.
        if let Some(root) = message_id.and_then(|m| stored_event_root(client, m)) {
            return root;
        }
        match junk_reason(&claim.customer_id) {
            Some(why) => skips.push(Skip { field: claim.field.into(), value: claim.customer_id.clone(), reason: why.into() }),
            None => {
                let customer_id = validate::identifier("customer_id", Some(&claim.customer_id)).or_raise();
                let identify_time = match &claim.identify_time {
                    Some(text) => identify_time_of(text, ctx.timezone.as_deref()).or_raise(),
                    None => req.event_time,
                };
                let outcome = identity::identify(
                    client,
                    &IdentifyRequest {
                        uid: req.uid,
                        customer_id,
                        attributes: storable(&req.facts.attributes),
                        identify_type: claim.identify_type,
                        identify_time,
                        identify_id: claim.identify_id.as_deref(),
                        device_id,
                    },
                );
                skips.extend(outcome.skips);
                identified = true;
            }
        }
    }

    let system = system_attributes(ctx);
    // A lead form: customer attributes without a usable customer id.
    let lead_form = if identified { Default::default() } else { storable(&req.facts.attributes) };
    let state = match profiles::resolve_uid(client, req.uid, &system.last) {
        None => {
            if !identified {
                lock_identity_shared(client);
            }
            first_sight(client, req, &system, device_id, &lead_form)
        }
        Some(state) => {
            let needs_write = state.system_changes(&system, req.event_time) != (false, false)
                || device_id.is_some_and(|d| state.last_device_id.as_deref() != Some(d))
                || !lead_form.is_empty();
            if needs_write {
                if !identified {
                    lock_identity_shared(client);
                }
                write_profile_changes(client, req, state, &system, device_id, &lead_form)
            } else {
                state
            }
        }
    };
    if !lead_form.is_empty() {
        skips.extend(contact_identifiers(&lead_form).1);
    }

    match insert_event(client, req, state.own_profile, message_id) {
        Some(event_id) => {
            profiles::record_skips(client, req.uid, Some(event_id), &skips);
            state.root
        }
        // The same message id was stored meanwhile: an SDK retry.
        None => message_id.and_then(|m| stored_event_root(client, m)).unwrap_or(state.root),
    }
}

/// The first event of a UID: creates its anonymous profile under the UID's
/// lock, unless a concurrent call created it first.
fn first_sight(
    client: &mut SpiClient<'_>,
    req: &TrackRequest<'_>,
    system: &SystemAttributes,
    device_id: Option<&str>,
    lead_form: &Map<String, Value>,
) -> UidState {
    lock_uid(client, req.uid);
    if let Some(state) = profiles::resolve_uid(client, req.uid, &system.last) {
        // Created meanwhile by a concurrent event of this UID.
        return write_profile_changes(client, req, state, system, device_id, lead_form);
    }
    let profile_id = profiles::create_anonymous(client, req.uid, system, req.event_time, device_id);
    if let Some(device) = device_id {
        profiles::add_identifiers(client, profile_id, &[Identifier { kind: "device_id", value: device.into() }]);
    }
    write_lead_form(client, profile_id, profile_id, lead_form, req.event_time);
    UidState {
        own_profile: profile_id,
        root: profile_id,
        root_is_customer: false,
        last_device_id: device_id.map(str::to_string),
        system_at: Some(req.event_time),
        first_touch_at: Some(req.event_time),
        system_current: true,
    }
}

/// Writes what an event changes about its UID's profile: system attributes,
/// a new device id, lead-form attributes. The caller holds the identity lock
/// (shared, or exclusive after an identify), so no merge runs meanwhile;
/// concurrent events of the same profile queue on its row.
fn write_profile_changes(
    client: &mut SpiClient<'_>,
    req: &TrackRequest<'_>,
    state: UidState,
    system: &SystemAttributes,
    device_id: Option<&str>,
    lead_form: &Map<String, Value>,
) -> UidState {
    // Identity decisions that committed before we took the identity lock may
    // have moved the UID; after it, only other events of this profile can
    // change it, and they queue on its row.
    let own_profile = profiles::resolve_uid(client, req.uid, &system.last).map_or(state.own_profile, |s| s.own_profile);
    profiles::lock_own_profile(client, own_profile);
    let state = profiles::resolve_uid(client, req.uid, &system.last).unwrap_or(state);
    profiles::update_system(client, &state, system, req.event_time);
    if let Some(device) = device_id.filter(|d| state.last_device_id.as_deref() != Some(*d)) {
        record_device(client, req.uid, state.own_profile, device);
    }
    write_lead_form(client, state.own_profile, state.root, lead_form, req.event_time);
    state
}

/// Lead-form attributes go to the unified profile; the email and phone in
/// them become identifiers of the UID's own profile.
fn write_lead_form(client: &mut SpiClient<'_>, own_profile: i64, root: i64, lead_form: &Map<String, Value>, at: TimestampWithTimeZone) {
    if lead_form.is_empty() {
        return;
    }
    let (contacts, _) = contact_identifiers(lead_form);
    profiles::add_identifiers(client, own_profile, &contacts);
    profiles::set_attributes(client, root, lead_form, at, "event");
}

fn record_device(client: &mut SpiClient<'_>, uid: &str, own_profile: i64, device: &str) {
    profiles::add_identifiers(client, own_profile, &[Identifier { kind: "device_id", value: device.into() }]);
    exec(client, "UPDATE cdp.uids SET last_device_id = $2 WHERE uid = $1", &[uid.into(), device.into()]);
}

fn insert_event(client: &mut SpiClient<'_>, req: &TrackRequest<'_>, profile_id: i64, message_id: Option<&str>) -> Option<i64> {
    first_value(exec(
        client,
        "INSERT INTO cdp.events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
         ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING
         RETURNING event_id",
        &[
            profile_id.into(),
            req.uid.into(),
            req.category.into(),
            req.action.into(),
            req.event_time.into(),
            req.facts.context.session_id.as_deref().into(),
            message_id.into(),
            req.payload_json.into(),
        ],
    ))
}

/// The unified profile of an already stored event with this message id.
fn stored_event_root(client: &mut SpiClient<'_>, message_id: &str) -> Option<i64> {
    first_value(exec(
        client,
        "SELECT coalesce(p.merged_into, p.profile_id)
         FROM cdp.events e JOIN cdp.profiles p ON p.profile_id = e.profile_id
         WHERE e.message_id = $1",
        &[message_id.into()],
    ))
}

/// `extra.identify_time` as a timestamptz. The SDK's local form has no zone:
/// it is read in `context.timezone` when that is a known zone, else in the
/// session's TimeZone.
pub fn identify_time_of(text: &str, timezone: Option<&str>) -> CdpResult<TimestampWithTimeZone> {
    let bad = || CdpError::new(ErrorKind::InvalidDatetime, format!("identify_time \"{}\" is out of range", text.trim()));
    match timeparse::parse(text)? {
        ParsedTime::Absolute(micros) => TimestampWithTimeZone::try_from(micros).map_err(|_| bad()),
        ParsedTime::Local(w) => {
            let in_zone = timezone
                .filter(|tz| !tz.trim().is_empty())
                .and_then(|tz| TimestampWithTimeZone::with_timezone(w.year, w.month, w.day, w.hour, w.minute, w.second, tz.to_string()).ok());
            match in_zone {
                Some(t) => Ok(t),
                None => TimestampWithTimeZone::new(w.year, w.month, w.day, w.hour, w.minute, w.second).map_err(|_| bad()),
            }
        }
    }
}
