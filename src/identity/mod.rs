//! Identity resolution and merging: what `cdp.identify` (and an identifying
//! event) does, and what may stop a merge:
//! - `blocks`: decisions an unmerge remembers (the same evidence does not
//!   merge the same profiles again);
//! - `suppression`: UIDs whose events an erasure suppresses;
//! - the merge cap (the portal's `max_merges_per_identify`);
//! - the portal's `contact_linking` policy for emails and phones only a lead
//!   form gave (merge, suggest for review, or ignore);
//! - a profile already belonging to a customer is never taken, and two
//!   customers are never merged.
//!
//! Concurrency: an identify holds its portal's identity lock (see
//! `portal::lock`), so identity decisions of a portal never interleave, and
//! events that change profiles wait for it (events that only append do not).
//! The profiles it merges are also locked and re-checked, in ascending id
//! order. The request was checked before (`request::IdentifyRequest`):
//! nothing here fails on input.

pub mod blocks;
pub mod shared;
pub mod suppression;

use crate::attributes::{Identifier, Skip};
use crate::identifiers::constant_device_reason;
use crate::portal::Portal;
use crate::predict;
use crate::request::IdentifyRequest;
use crate::settings::{ContactLinking, PredictSettings};
use crate::tables::merges::{self, Decision, Reason};
use crate::tables::{identifiers, profile_attributes, profiles, shared_devices, signals, suggestions, uids};
use crate::validate::IdentifyType;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::json;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// What an identify did with its UID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UidOutcome {
    /// A new customer profile was made for it.
    Created,
    /// It joined an existing customer.
    Linked,
    /// It moved from another customer (a shared browser).
    Reassigned,
    /// It already was this customer's, or could not be attached (a junk
    /// UID, an undone merge): see the skips.
    Unchanged,
}

impl UidOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UidOutcome::Created => "created",
            UidOutcome::Linked => "linked",
            UidOutcome::Reassigned => "reassigned",
            UidOutcome::Unchanged => "unchanged",
        }
    }
}

pub struct IdentifyOutcome {
    pub customer: i64,
    pub uid_outcome: UidOutcome,
    /// The customer the UID moved from, when reassigned.
    pub reassigned_from: Option<i64>,
    /// Identifier values that were refused, and profiles over the merge cap.
    pub skips: Vec<Skip>,
    /// The anonymous profiles merged into the customer.
    pub merged: Vec<i64>,
}

pub fn identify(client: &mut SpiClient<'_>, portal: &Portal, req: &IdentifyRequest) -> IdentifyOutcome {
    let here = portal.name.as_str();
    crate::portal::lock(client, portal);
    if req.trusted {
        // A backend's identify is a new decision about the UID; a payload claim is not.
        suppression::lift(client, here, &req.uid);
    }
    let (customer, created) = profiles::find_or_create_customer(client, here, &req.customer_id, req.identify_time);
    let decision = Decision { uid: Some(&req.uid), identify_type: req.identify_type, identify_time: req.identify_time };

    // The identifying UID's own profile: merge it, keep it, or move the UID.
    let mut candidates: BTreeMap<i64, (Reason, String)> = BTreeMap::new();
    let mut evidence_profile = None;
    let mut shared_browser = false;
    let blocks = blocks::for_customer(client, here, customer);
    let uid_evidence = format!("uid:{}", req.uid);
    let joined = if created { UidOutcome::Created } else { UidOutcome::Linked };
    let mut reassigned_from = None;
    let uid_state = uids::resolve(client, here, &req.uid);
    // The device of the sign-in: the event's, else the one the UID was last seen on.
    let device = req.device_id.clone().or_else(|| uid_state.as_ref().and_then(|s| s.last_device_id.clone()));
    let uid_outcome = match uid_state {
        // A placeholder UID is never attached to anybody (the skip is in req.skips).
        _ if req.junk_uid.is_some() => {
            if created {
                UidOutcome::Created
            } else {
                UidOutcome::Unchanged
            }
        }
        // Under the portal's identity lock nobody else creates UIDs, so this insert always wins.
        None => {
            uids::map(client, here, &req.uid, customer, req.identify_time);
            joined
        }
        Some(s) if s.root == customer => {
            evidence_profile = Some(s.own_profile);
            UidOutcome::Unchanged
        }
        Some(s) if blocks::is_blocked(&blocks, s.root, &uid_evidence, req.identify_time) => UidOutcome::Unchanged,
        Some(s) if !s.root_is_customer => {
            candidates.insert(s.root, (Reason::Uid, req.uid.clone()));
            evidence_profile = Some(s.own_profile);
            joined
        }
        Some(s) => {
            merges::reassign_uid(client, here, &req.uid, s.root, customer, &decision);
            shared_browser = true;
            reassigned_from = Some(s.root);
            UidOutcome::Reassigned
        }
    };

    identifiers::add(client, here, customer, &req.person, true);
    // The identify's own attributes first: merged profiles only fill gaps.
    profile_attributes::set(client, here, customer, &req.attributes, req.identify_time, "identify");

    // Two customers on one device id or UID within the window make it shared.
    let identified_uid = req.junk_uid.is_none().then_some(req.uid.as_str());
    let device_shared = shared::note_identify(client, portal, customer, identified_uid, device.as_deref(), req.identify_time);
    // A browser or device shared by several people says nothing about who its anonymous visitors were.
    let device_linking = portal.settings.device_linking() && !shared_browser && !device_shared;
    let contact_linking = portal.settings.contact_linking();
    let mut evidence = req.person.clone();
    if let (true, Some(device)) = (device_linking, req.device_id.as_deref()) {
        evidence.push(Identifier { kind: "device_id", value: device.to_string() });
    }
    for m in identifiers::anonymous_matches(client, here, customer, &evidence, evidence_profile, device_linking) {
        // (anonymous_matches skips device ids marked shared)
        let Some(reason) = Reason::of_identifier_kind(&m.kind) else { continue };
        if blocks::is_blocked(&blocks, m.root, &format!("{}:{}", m.kind, m.value), req.identify_time) {
            continue;
        }
        // An email or phone only a lead form gave (no verified identity)
        // links by the portal's contact_linking policy.
        if !m.trusted && !candidates.contains_key(&m.root) {
            match contact_linking {
                ContactLinking::Merge => {}
                ContactLinking::Off => continue,
                ContactLinking::Suggest => {
                    let signals = json!({m.kind.as_str(): {"agrees": true, "unverified": true, "value": m.value}});
                    suggestions::suggest(client, here, m.root, customer, 1.0, &signals);
                    continue;
                }
            }
        }
        let entry = candidates.entry(m.root).or_insert((reason, m.value.clone()));
        if reason < entry.0 {
            *entry = (reason, m.value);
        }
    }

    if let Some(settings) = &req.predict {
        for (profile, score) in predicted_matches(client, portal, customer, evidence_profile, req.identify_time, settings) {
            if candidates.contains_key(&profile) || blocks::is_blocked(&blocks, profile, "predict", req.identify_time) {
                continue;
            }
            let probability = score.probability;
            // No strong signals configured: the portal chose to let weak ones auto-merge.
            if probability >= settings.auto_merge && (score.strong || settings.strong.is_empty()) {
                candidates.insert(profile, (Reason::Predict, format!("p={probability:.3} {}", score.report)));
            } else if probability >= settings.review {
                // Without a strong signal even a high probability is only a suggestion.
                suggestions::suggest(client, here, profile, customer, probability, &score.report);
            }
        }
    }

    let mut merged = profiles::lock_still_anonymous(client, here, candidates.keys().copied().collect());
    let mut skips = req.skips.clone();
    // The cap keeps the strongest evidence (then the oldest profiles); the rest is recorded.
    let cap = portal.settings.max_merges_per_identify();
    if merged.len() > cap {
        merged.sort_by_key(|id| (candidates[id].0, *id));
        for id in merged.split_off(cap) {
            let (reason, evidence) = &candidates[&id];
            skips.push(Skip {
                field: "merge_cap".into(),
                value: format!("profile {id} ({}: {evidence})", reason.as_str()),
                reason: format!("over {} ({cap})", portal.settings.source_of("max_merges_per_identify")),
            });
        }
    }
    for profile_id in &merged {
        let (reason, evidence) = &candidates[profile_id];
        merges::merge(client, here, *profile_id, customer, *reason, evidence, &decision);
    }
    IdentifyOutcome { customer, uid_outcome, reassigned_from, skips, merged }
}

/// Live anonymous profiles sharing a device id, a user agent or an IP network
/// with the customer or the identifying UID's own profile (the blocking step:
/// index lookups, a bounded number per value, within the predict window),
/// each with its score. Device ids that are shared or constant are no
/// evidence: they neither find candidates nor agree.
fn predicted_matches(
    client: &mut SpiClient<'_>,
    portal: &Portal,
    customer: i64,
    identifying_profile: Option<i64>,
    identify_time: TimestampWithTimeZone,
    settings: &PredictSettings,
) -> Vec<(i64, predict::Score)> {
    let here = portal.name.as_str();
    let mut ours = predict::Signals::new();
    for system in profiles::systems_of(client, here, customer, identifying_profile) {
        predict::signals_of(&system, &mut ours);
    }
    let devices: Vec<String> = ours.remove("device_id").unwrap_or_default().into_iter().collect();
    let shared = shared_devices::shared_among(client, here, devices.clone());
    let usable: BTreeSet<String> = devices
        .into_iter()
        .filter(|d| !shared.contains(d) && constant_device_reason(d, portal.settings.constant_device_ids()).is_none())
        .collect();
    if !usable.is_empty() {
        ours.insert("device_id".into(), usable);
    }
    if ours.is_empty() {
        return Vec::new();
    }
    let pairs_of = |names: &[&str]| -> Vec<(String, String)> {
        names.iter().flat_map(|n| ours.get(*n).into_iter().flatten().map(move |v| (n.to_string(), v.clone()))).collect()
    };
    let weighed = pairs_of(predict::FREQUENCY_SIGNALS);
    let search = pairs_of(&["device_id", "user_agent", "ip_network"]);
    let frequencies = signals::frequencies(client, here, &weighed, identify_time, settings.window_s);
    let frequency = |signal: &str, value: &str| frequencies.get(&(signal.to_string(), value.to_string())).copied();
    ours.entry("recent".into()).or_default().insert("yes".into());
    signals::candidates(client, here, customer, &search, identify_time, settings.window_s)
        .into_iter()
        .map(|candidate| {
            let mut theirs = predict::Signals::new();
            predict::signals_of(&candidate.system, &mut theirs);
            if let Some(recent) = candidate.recent {
                theirs.entry("recent".into()).or_default().insert(if recent { "yes" } else { "no" }.into());
            }
            (candidate.profile_id, predict::score(&ours, &theirs, &settings.weights, settings.prior, &settings.strong, &frequency))
        })
        .collect()
}

/// Merges a profile a reviewer accepted (reason `predict`, no UID).
pub fn merge_accepted(
    client: &mut SpiClient<'_>,
    portal: &str,
    profile: i64,
    customer: i64,
    evidence: &str,
    at: TimestampWithTimeZone,
) -> i64 {
    let decision = Decision { uid: None, identify_type: IdentifyType::Predict, identify_time: at };
    merges::merge(client, portal, profile, customer, Reason::Predict, evidence, &decision)
}
