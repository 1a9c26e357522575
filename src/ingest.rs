//! Event ingestion: what `cdp.track_event` does for every page view (and
//! `cdp.track_batch` for the items it cannot insert in bulk).
//!
//! The hot path for a known UID is one statement (`events::append_to_known_uid`):
//! look the UID up, check that nothing about its profile changes, append the
//! event; no lock. Profiles are only written when something about them
//! changed: a new UID, a new device, new system attributes, a lead form, an
//! identify.

use crate::attributes::{Identifier, Skip};
use crate::identity::{self, suppression};
use crate::request::{Claim, TrackRequest};
use crate::store::lock_identity_shared;
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
pub fn track_event(client: &mut SpiClient<'_>, req: &TrackRequest<'_>) -> Option<Tracked> {
    let mut skipped: Vec<Skip> = Vec::new();
    let mut merged = Vec::new();
    match &req.claim {
        Claim::None => {}
        Claim::Junk(skip) => skipped.push(skip.clone()),
        Claim::Identify(identify_req) => {
            // A retried sign-in must not identify twice.
            if let Some(root) = req.message_id.as_deref().and_then(|m| events::root_of_message(client, m)) {
                return Some(Tracked { root, stored: false, merged });
            }
            // Identify first, so the event itself lands on the customer.
            let outcome = identity::identify(client, identify_req);
            skipped.extend(outcome.skips);
            merged = outcome.merged;
        }
    }
    if !req.lead_form.is_empty() {
        skipped.extend(req.lead_contacts().1);
    }
    if matches!(req.claim, Claim::None) && req.lead_form.is_empty() {
        if let Some((root, stored)) = events::append_to_known_uid(client, req) {
            let root =
                if stored { root } else { req.message_id.as_deref().and_then(|m| events::root_of_message(client, m)).unwrap_or(root) };
            return Some(Tracked { root, stored, merged });
        }
    }

    let state = match uids::resolve(client, &req.uid) {
        Some(state) if !changes(req, &state) => state,
        None if !req.identifies() && suppression::is_suppressed(client, &req.uid) => return None,
        _ => {
            if !req.identifies() {
                lock_identity_shared(client);
            }
            apply_profile_changes(client, req)
        }
    };

    match events::insert_one(client, req, state.own_profile) {
        Some(event_id) => {
            skips::record(client, &req.uid, Some(event_id), &skipped);
            Some(Tracked { root: state.root, stored: true, merged })
        }
        // The same message id was stored meanwhile: an SDK retry.
        None => Some(Tracked {
            root: req.message_id.as_deref().and_then(|m| events::root_of_message(client, m)).unwrap_or(state.root),
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
}

/// Creates the UID's profile or writes what the event changes about it:
/// system attributes, a new device id, lead-form attributes. The caller holds
/// the identity lock (shared, or exclusive after an identify), so no identity
/// decision runs meanwhile; concurrent events of the same profile queue on
/// its row.
pub fn apply_profile_changes(client: &mut SpiClient<'_>, req: &TrackRequest<'_>) -> UidState {
    loop {
        let Some(found) = uids::resolve(client, &req.uid) else {
            let new = NewUid { uid: &req.uid, system: req.system(), seen_at: req.event_time, device_id: req.device_id.as_deref() };
            match profiles::create_anonymous(client, &[new]).pop() {
                Some((_, profile_id)) => {
                    write_lead_form(client, profile_id, profile_id, req);
                    return UidState::created(profile_id, req.event_time, req.device_id.clone(), req.system_fields.clone());
                }
                None => continue, // created concurrently: use that one
            }
        };
        profiles::lock_own(client, found.own_profile);
        // Re-read under the row lock: another event of this profile may have written it.
        let state = uids::resolve(client, &req.uid).unwrap_or(found);
        let changed = state.system_changes(&req.system_fields, req.has_first_touch, req.event_time);
        if changed != (false, false) {
            profiles::update_system(client, state.own_profile, &req.system(), changed, req.event_time);
        }
        if let Some(device) = req.device_id.as_deref().filter(|d| state.last_device_id.as_deref() != Some(*d)) {
            identifiers::add(client, state.own_profile, &[Identifier { kind: "device_id", value: device.into() }]);
            uids::set_last_device(client, &req.uid, device);
        }
        write_lead_form(client, state.own_profile, state.root, req);
        return state;
    }
}

/// Lead-form attributes go to the unified profile; the email and phone in
/// them become identifiers of the UID's own profile.
fn write_lead_form(client: &mut SpiClient<'_>, own_profile: i64, root: i64, req: &TrackRequest<'_>) {
    if req.lead_form.is_empty() {
        return;
    }
    identifiers::add(client, own_profile, &req.lead_contacts().0);
    profile_attributes::set(client, root, &req.lead_form, req.event_time, "event");
}
