//! Event ingestion: what `cdp.track_event` does for every page view (and
//! `cdp.track_batch` for the items it cannot insert in bulk).
//!
//! The hot path for a known UID is one statement (`events::append_to_known_uid`):
//! look the UID up, check that nothing about its profile changes, append the
//! event; no lock. Profiles are only written when something about them
//! changed: a new UID, a new device, new system attributes, a lead form, an
//! identify; such an event takes its portal's identity lock first (the one
//! lock order of every path, see `portal::lock`).

use crate::attributes::{Identifier, Skip};
use crate::identity::shared;
use crate::identity::{self, suppression};
use crate::portal::{self, Portal};
use crate::request::{Claim, TrackRequest};
use crate::tables::profiles::{self, NewUid};
use crate::tables::uids::{self, UidState};
use crate::tables::{events, identifiers, profile_attributes, skips};
use pgrx::spi::SpiClient;

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
pub fn track_event(client: &mut SpiClient<'_>, portal: &Portal, req: &TrackRequest<'_>) -> Option<Tracked> {
    let here = portal.name.as_str();
    let mut skipped: Vec<Skip> = Vec::new();
    let mut merged = Vec::new();
    match &req.claim {
        Claim::None => {}
        Claim::Refused(skip) => skipped.push(skip.clone()),
        Claim::Identify(identify_req) => {
            // A retried sign-in must not identify twice.
            if let Some(root) = req.message_id.as_deref().and_then(|m| events::root_of_message(client, here, m)) {
                return Some(Tracked { root, stored: false, merged });
            }
            // A page's claim does not bring an erased UID back: only a backend's identify does.
            if suppression::is_suppressed(client, here, &req.uid) {
                return None;
            }
            // On a shared device, a sign-in in a new session identifies that session's visits only.
            if let Some(state) = uids::resolve(client, here, &req.uid).filter(|s| s.shared) {
                portal::lock(client, portal);
                shared::follow_session(client, portal, req, state);
            }
            // Identify first, so the event itself lands on the customer.
            let outcome = identity::identify(client, portal, identify_req);
            skipped.extend(outcome.skips);
            merged = outcome.merged;
            if req.junk_uid.is_some() {
                // A placeholder UID belongs to nobody: the event is the customer's alone.
                let event_id = events::insert_one(client, here, req, outcome.customer);
                skips::record(client, here, &req.uid, event_id, &skipped);
                let stored = event_id.is_some();
                return Some(Tracked { root: outcome.customer, stored, merged });
            }
        }
    }
    if !req.lead_form.is_empty() {
        skipped.extend(req.lead_contacts.1.iter().cloned());
    }
    if matches!(req.claim, Claim::None) && req.lead_form.is_empty() {
        if let Some((root, stored)) = events::append_to_known_uid(client, here, req) {
            let root = if stored {
                root
            } else {
                req.message_id.as_deref().and_then(|m| events::root_of_message(client, here, m)).unwrap_or(root)
            };
            return Some(Tracked { root, stored, merged });
        }
    }

    let state = match uids::resolve(client, here, &req.uid) {
        Some(state) if !changes(req, &state) => state,
        None if !req.identifies() && suppression::is_suppressed(client, here, &req.uid) => return None,
        _ => {
            portal::lock(client, portal);
            apply_profile_changes(client, portal, req)
        }
    };

    match events::insert_one(client, here, req, state.own_profile) {
        Some(event_id) => {
            skips::record(client, here, &req.uid, Some(event_id), &skipped);
            Some(Tracked { root: state.root, stored: true, merged })
        }
        // The same message id was stored meanwhile: an SDK retry.
        None => Some(Tracked {
            root: req.message_id.as_deref().and_then(|m| events::root_of_message(client, here, m)).unwrap_or(state.root),
            stored: false,
            merged,
        }),
    }
}

/// Whether the event writes profile state given the UID's state (events
/// that do not only append to the timeline).
pub fn changes(req: &TrackRequest<'_>, state: &UidState) -> bool {
    state.system_changes(&req.system_fields, req.has_first_touch, req.event_time) != (false, false)
        || req.device_id.as_deref().is_some_and(|d| state.last_device_id.as_deref() != Some(d))
        || !req.lead_form.is_empty()
        || state.shared
}

/// Creates the UID's profile or writes what the event changes about it:
/// system attributes, a new device id, lead-form attributes. The caller holds
/// the portal's identity lock, so nothing else writes these profiles
/// meanwhile.
pub fn apply_profile_changes(client: &mut SpiClient<'_>, on: &Portal, req: &TrackRequest<'_>) -> UidState {
    let portal = on.name.as_str();
    let Some(state) = uids::resolve(client, portal, &req.uid) else {
        let new = NewUid {
            uid: &req.uid,
            system: req.system(),
            seen_at: req.event_time,
            device_id: req.device_id.as_deref(),
            quarantined: req.junk_uid.is_some(),
        };
        let (_, profile_id) = profiles::create_anonymous(client, portal, &[new]).pop().expect("under the portal lock a new UID is created");
        write_lead_form(client, portal, profile_id, profile_id, req);
        return UidState::created(profile_id, req.event_time, req.device_id.clone(), req.system_fields.clone());
    };
    // A UID on a shared device: which session's profile the event belongs to.
    let state = if state.shared { shared::follow_session(client, on, req, state) } else { state };
    let changed = state.system_changes(&req.system_fields, req.has_first_touch, req.event_time);
    if changed != (false, false) {
        profiles::update_system(client, portal, state.own_profile, &req.system(), changed, req.event_time);
    }
    if let Some(device) = req.device_id.as_deref().filter(|d| state.last_device_id.as_deref() != Some(*d)) {
        identifiers::add(client, portal, state.own_profile, &[Identifier { kind: "device_id", value: device.into() }], true);
        uids::set_last_device(client, portal, &req.uid, device);
    }
    write_lead_form(client, portal, state.own_profile, state.root, req);
    state
}

/// Lead-form attributes go to the unified profile; the email and phone in
/// them become identifiers of the UID's own profile, not trusted (no
/// verified identity came with them: the portal's contact_linking decides
/// what they link).
fn write_lead_form(client: &mut SpiClient<'_>, portal: &str, own_profile: i64, root: i64, req: &TrackRequest<'_>) {
    if req.lead_form.is_empty() {
        return;
    }
    identifiers::add(client, portal, own_profile, &req.lead_contacts.0, false);
    profile_attributes::set(client, portal, root, &req.lead_form, req.event_time, "event");
}
