//! Shared computers: a family computer, a shop's kiosk, a library PC.
//!
//! Detection: every identify notes the customer on its device id and its UID
//! (`tables::shared_devices`); one identified as two or more customers within
//! the portal's `shared_device_window` is marked shared, a decision with its
//! evidence (`cdp.shared_devices`, shown by `cdp.explain`, cleared by an
//! admin with `cdp.clear_shared`). A shared device id links no anonymous
//! profiles (identify skips it as device evidence).
//!
//! Sessions: the UIDs of a shared device (flagged in `cdp.uids`) take the
//! general ingest path, where each new session starts a new anonymous
//! profile for the UID, so a sign-in merges the current session's visits,
//! not everybody's who used the computer before. A session is the payload's
//! `context.session_id`; without a usable one, an idle gap longer than the
//! portal's `session_idle` ends it. The move is a `uid_reassigned` decision
//! with reason `session` (undoable, explained, in point-in-time answers);
//! events are never rewritten. A late event of an earlier session goes to
//! that session's profile.

use crate::errors::{CdpError, CdpResult};
use crate::identifiers::junk_reason;
use crate::portal::Portal;
use crate::request::TrackRequest;
use crate::tables::shared_devices::{self, Kind};
use crate::tables::uids::UidState;
use crate::tables::{events, merges, profiles, uids};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::json;

/// Notes an identify of `customer` on its device id and UID and marks either
/// shared when it now has two customers within the window. Returns whether
/// the device id is shared (then it links nothing).
pub fn note_identify(
    client: &mut SpiClient<'_>,
    portal: &Portal,
    customer: i64,
    uid: Option<&str>,
    device: Option<&str>,
    at: TimestampWithTimeZone,
) -> bool {
    if !portal.settings.shared_device_detection() {
        return false;
    }
    let window = portal.settings.shared_device_window_s();
    let mut device_shared = false;
    for (kind, value) in [(Kind::Device, device), (Kind::Uid, uid)] {
        let Some(value) = value else { continue };
        let (customers, shared) = shared_devices::note_identified(client, &portal.name, kind, value, customer, at, window);
        // A device also counts as shared when it saw many cookies (logouts, cleared cookies) within the window.
        let churn = match (kind, portal.settings.shared_device_uids()) {
            (Kind::Device, limit) if limit > 0 && customers < 2 && !shared => {
                Some(shared_devices::uids_on_device(client, &portal.name, value, at, window)).filter(|n| *n >= limit)
            }
            _ => None,
        };
        if !shared && (customers >= 2 || churn.is_some()) {
            let mut evidence = json!({"customers": customers, "window_s": window});
            if let Some(uids) = churn {
                evidence["uids"] = json!(uids);
            }
            shared_devices::mark_shared(client, &portal.name, kind, value, at, &evidence);
        }
        if kind == Kind::Device {
            device_shared = shared || customers >= 2 || churn.is_some();
        }
    }
    device_shared
}

/// Where an event of a UID on a shared device goes.
pub enum SessionRoute {
    /// The UID's current session: its own profile.
    Current,
    /// A late event of an earlier session: that session's profile.
    Earlier(i64),
    /// A new session: a new anonymous profile, with this evidence.
    New(String),
}

/// The event's session id, when usable (junk and constant ids are none).
fn session_of<'r>(req: &'r TrackRequest<'_>) -> Option<&'r str> {
    req.context.session_id.as_deref().map(str::trim).filter(|s| !s.is_empty() && junk_reason(s).is_none())
}

/// Decides the session of an event of a shared UID (see the module comment)
/// from the session the UID is in (kept on its `cdp.uids` row).
pub fn route(client: &mut SpiClient<'_>, portal: &Portal, req: &TrackRequest<'_>, state: &UidState) -> SessionRoute {
    // The UID's first event since it became shared: its session is that of its latest event.
    let (current, latest_at) = match state.last_event_at {
        Some(at) => (state.session.clone(), at),
        None => match events::latest_of_uid(client, &portal.name, state.own_profile, &req.uid) {
            Some((session, at)) => (session, at),
            None => return SessionRoute::Current,
        },
    };
    match session_of(req) {
        Some(session) if current.as_deref() == Some(session) => SessionRoute::Current,
        Some(session) => {
            let evidence = format!("session:{session}");
            match merges::session_profile(client, &portal.name, &req.uid, &evidence) {
                Some(profile) if profile != state.own_profile => SessionRoute::Earlier(profile),
                Some(_) => SessionRoute::Current,
                // The UID's session before it was first split has no decision: it is
                // the current one unless the session id changed.
                None if current.is_none() && req.event_time <= latest_at => SessionRoute::Current,
                None => SessionRoute::New(evidence),
            }
        }
        None => {
            let gap_s = (i64::from(req.event_time) - i64::from(latest_at)).abs() / 1_000_000;
            if gap_s > portal.settings.session_idle_s() {
                SessionRoute::New(format!("idle:{}m", gap_s / 60))
            } else {
                SessionRoute::Current
            }
        }
    }
}

/// Routes an event of a shared UID and keeps its session up to date: a new
/// session starts a new anonymous profile (a decision) and the UID moves to
/// it. Returns the state to write the event with.
pub fn follow_session(client: &mut SpiClient<'_>, portal: &Portal, req: &TrackRequest<'_>, state: UidState) -> UidState {
    match route(client, portal, req, &state) {
        SessionRoute::Current => {
            uids::note_session(client, &portal.name, &req.uid, session_of(req), req.event_time, false);
            state
        }
        SessionRoute::Earlier(profile) => {
            let root = profiles::root_of(client, &portal.name, profile);
            UidState { own_profile: profile, root, ..state }
        }
        SessionRoute::New(evidence) => {
            let profile = profiles::create_session_profile(client, &portal.name, &req.system(), req.event_time);
            merges::start_session(client, &portal.name, &req.uid, state.root, profile, &evidence, req.event_time);
            uids::note_session(client, &portal.name, &req.uid, session_of(req), req.event_time, true);
            let mut moved = UidState::created(profile, req.event_time, state.last_device_id.clone(), req.system_fields.clone());
            moved.shared = true;
            moved
        }
    }
}

/// An admin's decision that a device id or UID is not shared after all:
/// it links again, and only identifies after now count as new evidence.
/// False when it was not marked shared.
pub fn clear(client: &mut SpiClient<'_>, portal: &Portal, kind: &str, value: &str) -> CdpResult<bool> {
    let kind = Kind::parse(kind).ok_or_else(|| CdpError::invalid(format!("kind must be 'device_id' or 'uid', not \"{kind}\"")))?;
    crate::portal::lock(client, portal);
    Ok(shared_devices::clear(client, &portal.name, kind, value))
}
