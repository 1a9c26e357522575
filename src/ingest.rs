//! Event ingestion: what `cdp.track_event` does for every page view.
//!
//! The hot path for a known UID is one lookup (UID -> profile, with a check
//! whether the system attributes changed) and one INSERT, with no lock.
//! Profiles are only written when something about them changed: a new UID, a
//! new device, a new browser, a lead form, an identify.

use crate::attributes::{contact_identifiers, storable, system_attributes, Identifier, Skip, SystemAttributes};
use crate::erasure;
use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identifiers::junk_reason;
use crate::identity::{self, IdentifyRequest};
use crate::payload::{self, EventFacts};
use crate::profiles::{self, UidState};
use crate::settings;
use crate::store::{exec, first_value, jsonb_arg, lock_identity_shared};
use crate::timeparse::{self, TimeValue, Zone};
use crate::validate;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// What an event's customer id asks for, decided before anything is written.
pub enum Claim {
    None,
    /// A junk customer id: the event is stored, nobody is identified.
    Junk(Skip),
    Identify { customer_id: String, identify_time: TimestampWithTimeZone },
}

pub enum StoredPayload {
    Datum(pgrx::pg_sys::Datum),
    Text(String),
}

/// One event, fully validated: processing it can no longer fail on its input.
pub struct TrackRequest {
    pub uid: String,
    pub category: String,
    pub action: String,
    /// The payload as it is stored: the caller's jsonb datum, or JSON text
    /// (a batch item) parsed when the event goes the per-row way.
    pub payload: StoredPayload,
    pub facts: EventFacts,
    pub event_time: TimestampWithTimeZone,
    pub claim: Claim,
    /// Customer attributes of an event that does not identify (a lead form).
    pub lead_form: Map<String, Value>,
    pub system: SystemAttributes,
    pub device_id: Option<String>,
    pub message_id: Option<String>,
}

impl TrackRequest {
    /// `payload_datum` is the same payload as the caller's jsonb datum, when
    /// there is one (`cdp.track_event`); it is stored as it is.
    pub fn new(
        uid: Option<&str>,
        category: Option<&str>,
        action: Option<&str>,
        payload: Option<Value>,
        payload_datum: Option<pgrx::pg_sys::Datum>,
        event_time: EventTime,
    ) -> CdpResult<Self> {
        let uid = validate::identifier("uid", uid)?.to_string();
        let category = validate::event_name("category", category)?.to_string();
        let action = validate::event_name("action", action)?.to_string();
        let payload = payload.unwrap_or_else(|| Value::Object(Map::new()));
        let facts = payload::read(&payload)?;
        let timezone = facts.context.timezone.as_deref();
        let event_time = match event_time {
            EventTime::At(t) => t,
            EventTime::Sent(value) => time_at("event_time", &value, timezone)?,
        };
        let payload = match payload_datum {
            Some(datum) => StoredPayload::Datum(datum),
            None => StoredPayload::Text(payload.to_string()),
        };
        let size = match &payload {
            StoredPayload::Datum(datum) => crate::store::jsonb_size(*datum),
            StoredPayload::Text(text) => text.len(),
        };
        let limit = settings::max_payload_bytes();
        if size > limit {
            return Err(CdpError::new(
                ErrorKind::LimitExceeded,
                format!("payload is {size} bytes; cdp.max_payload_bytes allows {limit}"),
            ));
        }
        let claim = match &facts.claim {
            None => Claim::None,
            Some(c) => match junk_reason(&c.customer_id) {
                Some(why) => Claim::Junk(Skip { field: c.field.into(), value: c.customer_id.clone(), reason: why.into() }),
                None => Claim::Identify {
                    customer_id: validate::identifier("customer_id", Some(&c.customer_id))?.to_string(),
                    identify_time: match &c.identify_time {
                        Some(value) => time_at("identify_time", value, timezone)?,
                        None => event_time,
                    },
                },
            },
        };
        let lead_form = match claim {
            Claim::Identify { .. } => Map::new(),
            _ => storable(&facts.attributes),
        };
        let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let device_id = trimmed(&facts.context.device_id).filter(|d| junk_reason(d).is_none());
        let message_id = trimmed(&facts.context.message_id);
        let system = system_attributes(&facts.context);
        Ok(TrackRequest { uid, category, action, payload, facts, event_time, claim, lead_form, system, device_id, message_id })
    }

    pub fn identifies(&self) -> bool {
        matches!(self.claim, Claim::Identify { .. })
    }

    /// Whether the event writes profile state given the UID's state (events
    /// that do not only append to the timeline).
    pub fn changes(&self, state: &UidState) -> bool {
        state.system_changes(&self.system, self.event_time) != (false, false)
            || self.device_id.as_deref().is_some_and(|d| state.last_device_id.as_deref() != Some(d))
            || !self.lead_form.is_empty()
    }
}

/// What became of one event.
pub struct Tracked {
    /// The unified profile the event belongs to.
    pub root: i64,
    /// False when its message id was already stored (an SDK retry).
    pub stored: bool,
    /// Profiles an identify merged into `root` on the way.
    pub merged: Vec<i64>,
}

/// Records one event; None when the UID was erased and its events are
/// suppressed (nothing is written).
pub fn track_event(client: &mut SpiClient<'_>, req: &TrackRequest) -> Option<Tracked> {
    let mut skips: Vec<Skip> = Vec::new();
    let mut merged = Vec::new();
    match &req.claim {
        Claim::None => {}
        Claim::Junk(skip) => skips.push(skip.clone()),
        Claim::Identify { customer_id, identify_time } => {
            // A retried sign-in must not identify twice.
            if let Some(root) = req.message_id.as_deref().and_then(|m| stored_event_root(client, m)) {
                return Some(Tracked { root, stored: false, merged });
            }
            // Identify first, so the event itself lands on the customer.
            let outcome = identity::identify(
                client,
                &IdentifyRequest {
                    uid: &req.uid,
                    customer_id,
                    attributes: storable(&req.facts.attributes),
                    identify_type: req.facts.claim.as_ref().map(|c| c.identify_type).unwrap_or(validate::IdentifyType::Exact),
                    identify_time: *identify_time,
                    identify_id: req.facts.claim.as_ref().and_then(|c| c.identify_id.as_deref()),
                    device_id: req.device_id.as_deref(),
                },
            );
            skips.extend(outcome.skips);
            merged = outcome.merged;
        }
    }
    if !req.lead_form.is_empty() {
        skips.extend(contact_identifiers(&req.lead_form).1);
    }
    if matches!(req.claim, Claim::None) && req.lead_form.is_empty() {
        if let Some(tracked) = append_if_unchanged(client, req) {
            return Some(tracked);
        }
    }

    let state = match profiles::resolve_uid(client, &req.uid, &req.system.last) {
        Some(state) if !req.changes(&state) => state,
        None if !req.identifies() && erasure::is_suppressed(client, &req.uid) => return None,
        _ => {
            if !req.identifies() {
                lock_identity_shared(client);
            }
            apply_profile_changes(client, req)
        }
    };

    match insert_event(client, req, state.own_profile) {
        Some(event_id) => {
            profiles::record_skips(client, &req.uid, Some(event_id), &skips);
            Some(Tracked { root: state.root, stored: true, merged })
        }
        // The same message id was stored meanwhile: an SDK retry.
        None => Some(Tracked {
            root: req.message_id.as_deref().and_then(|m| stored_event_root(client, m)).unwrap_or(state.root),
            stored: false,
            merged,
        }),
    }
}

/// The hot path in one statement: appends the event when the UID is known
/// and the event changes nothing about its profile (same system attributes,
/// same device, not an earlier first touch). None when that does not hold;
/// the caller then takes the general path.
fn append_if_unchanged(client: &mut SpiClient<'_>, req: &TrackRequest) -> Option<Tracked> {
    let table = exec(
        client,
        "WITH s AS (
             SELECT u.profile_id, coalesce(p.merged_into, p.profile_id) AS root
             FROM cdp.uids u JOIN cdp.profiles p ON p.profile_id = u.profile_id
             WHERE u.uid = $1
               AND p.system OPERATOR(pg_catalog.@>) $8
               AND ($9::text IS NULL OR u.last_device_id = $9)
               AND ($10 OR p.first_touch_at <= $4)
         ), ins AS (
             INSERT INTO cdp.events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
             SELECT s.profile_id, $1, $2, $3, $4, $5, $6, $7 FROM s
             ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING
             RETURNING event_id
         )
         SELECT s.root, EXISTS (SELECT FROM ins) FROM s",
        &event_columns(req, [
            JsonB(Value::Object(req.system.last.clone())).into(),
            req.device_id.as_deref().into(),
            req.system.first.is_empty().into(),
        ]),
    );
    if table.is_empty() {
        return None;
    }
    let row = table.first();
    let root: i64 = row.get(1).ok().flatten()?;
    let stored: bool = row.get(2).ok().flatten()?;
    let root = if stored { root } else { req.message_id.as_deref().and_then(|m| stored_event_root(client, m)).unwrap_or(root) };
    Some(Tracked { root, stored, merged: Vec::new() })
}

/// Creates the UID's profile or writes what the event changes about it:
/// system attributes, a new device id, lead-form attributes. The caller holds
/// the identity lock (shared, or exclusive after an identify), so no identity
/// decision runs meanwhile; concurrent events of the same profile queue on
/// its row.
pub fn apply_profile_changes(client: &mut SpiClient<'_>, req: &TrackRequest) -> UidState {
    loop {
        let Some(found) = profiles::resolve_uid(client, &req.uid, &req.system.last) else {
            match profiles::create_anonymous(client, &req.uid, &req.system, req.event_time, req.device_id.as_deref()) {
                Some(profile_id) => {
                    write_lead_form(client, profile_id, profile_id, &req.lead_form, req.event_time);
                    return UidState::created(profile_id, req.event_time, req.device_id.clone());
                }
                None => continue, // created concurrently: use that one
            }
        };
        profiles::lock_own_profile(client, found.own_profile);
        // Re-read under the row lock: another event of this profile may have written it.
        let state = profiles::resolve_uid(client, &req.uid, &req.system.last).unwrap_or(found);
        profiles::update_system(client, &state, &req.system, req.event_time);
        if let Some(device) = req.device_id.as_deref().filter(|d| state.last_device_id.as_deref() != Some(*d)) {
            record_device(client, &req.uid, state.own_profile, device);
        }
        write_lead_form(client, state.own_profile, state.root, &req.lead_form, req.event_time);
        return state;
    }
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

fn insert_event(client: &mut SpiClient<'_>, req: &TrackRequest, profile_id: i64) -> Option<i64> {
    first_value(exec(
        client,
        "INSERT INTO cdp.events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
         VALUES ($8, $1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING
         RETURNING event_id",
        &event_columns(req, [profile_id.into()]),
    ))
}

/// The event's own columns, as $1..$7 of the statements that store it (uid,
/// category, action, event_time, session_id, message_id, payload), followed
/// by the statement's other arguments.
fn event_columns<'a, const N: usize>(req: &'a TrackRequest, more: [DatumWithOid<'a>; N]) -> Vec<DatumWithOid<'a>> {
    let mut columns = Vec::from([
        req.uid.as_str().into(),
        req.category.as_str().into(),
        req.action.as_str().into(),
        req.event_time.into(),
        req.facts.context.session_id.as_deref().into(),
        req.message_id.as_deref().into(),
        match &req.payload {
            StoredPayload::Datum(datum) => jsonb_arg(*datum),
            StoredPayload::Text(text) => JsonText(text).into(),
        },
    ]);
    columns.extend(more);
    columns
}

/// The unified profile of an already stored event with this message id.
pub fn stored_event_root(client: &mut SpiClient<'_>, message_id: &str) -> Option<i64> {
    first_value(exec(
        client,
        "SELECT coalesce(p.merged_into, p.profile_id)
         FROM cdp.events e JOIN cdp.profiles p ON p.profile_id = e.profile_id
         WHERE e.message_id = $1",
        &[message_id.into()],
    ))
}

/// A time sent inside JSON (see `timeparse`), as a timestamptz. Local-form
/// times are read in `context_timezone` when the event has one (it must be
/// a known zone), else in `cdp.default_timezone`; never in the session's
/// TimeZone.
pub fn time_at(field: &str, value: &TimeValue, context_timezone: Option<&str>) -> CdpResult<TimestampWithTimeZone> {
    let zone = || match context_timezone.map(str::trim).filter(|tz| !tz.is_empty()) {
        Some(tz) => Zone::named("payload.context.timezone", tz),
        None => settings::default_zone(),
    };
    let micros = timeparse::instant(field, value, zone)?;
    TimestampWithTimeZone::try_from(micros)
        .map_err(|_| CdpError::new(ErrorKind::DatetimeOverflow, format!("{field} is out of range")))
}

/// When an event happened: given by the caller as a timestamptz, or sent
/// inside JSON (a batch item's `event_time`), read like every JSON time.
pub enum EventTime {
    At(TimestampWithTimeZone),
    Sent(TimeValue),
}

/// JSON text handed to a statement as jsonb (parsed once, by jsonb_in).
struct JsonText<'a>(&'a str);

impl<'a> From<JsonText<'a>> for DatumWithOid<'a> {
    fn from(text: JsonText<'a>) -> Self {
        let cstring = std::ffi::CString::new(text.0).expect("JSON text has no NUL byte");
        // SAFETY: jsonb_in takes a C string and returns a jsonb datum.
        let datum = unsafe {
            pgrx::direct_function_call_as_datum(pgrx::pg_sys::jsonb_in, &[Some(pgrx::pg_sys::Datum::from(cstring.as_ptr()))])
        };
        jsonb_arg(datum.expect("jsonb_in returns a value"))
    }
}
