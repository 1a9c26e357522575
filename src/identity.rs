//! Identity resolution and merging: what `cdp.identify` does.
//!
//! Concurrency: an identify holds the identity lock exclusively (see
//! `store`), so identity decisions never interleave, and events that change
//! profiles wait for it (events that only append do not). The profiles it
//! merges are also locked and re-checked, in ascending id order.

use crate::attributes::{contact_identifiers, Identifier, Skip};
use crate::erasure;
use crate::identifiers::junk_reason;
use crate::profiles::{self, add_identifiers, resolve_uid, set_attributes};
use crate::settings;
use crate::store::{column, exec, first_value, lock_identity_exclusive};
use crate::predict;
use crate::unmerge::{self, is_blocked};
use crate::validate::IdentifyType;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub struct IdentifyRequest<'a> {
    pub uid: &'a str,
    pub customer_id: &'a str,
    /// Storable attributes (see `attributes::storable`).
    pub attributes: Map<String, Value>,
    pub identify_type: IdentifyType,
    pub identify_time: TimestampWithTimeZone,
    pub identify_id: Option<&'a str>,
    /// The identifying event's `context.device_id`, junk already removed.
    pub device_id: Option<&'a str>,
}

/// Who decided a merge: the identify (its UID, type and time) or a reviewer
/// accepting a suggestion (no UID).
pub struct Decision<'a> {
    pub uid: Option<&'a str>,
    pub identify_type: IdentifyType,
    pub identify_time: TimestampWithTimeZone,
}

pub struct IdentifyOutcome {
    pub customer: i64,
    /// Identifier values that were refused (junk emails, phones, identify ids).
    pub skips: Vec<Skip>,
    /// The anonymous profiles merged into the customer.
    pub merged: Vec<i64>,
}

/// Why an anonymous profile was merged; the order is the order of preference
/// when one profile is found through several pieces of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Uid,
    DeviceId,
    Email,
    Phone,
    IdentifyId,
    /// A predicted match (identify_type 'predict'): the weakest.
    Predict,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Uid => "uid",
            Reason::DeviceId => "device_id",
            Reason::Email => "email",
            Reason::Phone => "phone",
            Reason::IdentifyId => "identify_id",
            Reason::Predict => "predict",
        }
    }

    fn of_identifier_kind(kind: &str) -> Option<Self> {
        match kind {
            "device_id" => Some(Reason::DeviceId),
            "email" => Some(Reason::Email),
            "phone" => Some(Reason::Phone),
            "identify_id" => Some(Reason::IdentifyId),
            _ => None,
        }
    }
}

pub fn identify(client: &mut SpiClient<'_>, req: &IdentifyRequest<'_>) -> IdentifyOutcome {
    lock_identity_exclusive(client);
    erasure::lift_suppression(client, req.uid);
    let customer = find_or_create_customer(client, req.customer_id, req.identify_time);

    // The identifying UID's own profile: merge it, keep it, or move the UID.
    let mut candidates: BTreeMap<i64, (Reason, String)> = BTreeMap::new();
    let mut evidence_profile = None;
    let mut shared_browser = false;
    // Decisions undone by cdp.unmerge: the same evidence must not redo them.
    let blocks = unmerge::blocks_for(client, customer);
    let uid_evidence = format!("uid:{}", req.uid);
    match resolve_uid(client, req.uid, &Map::new()) {
        // Under the exclusive identity lock nobody else creates UIDs, so this insert always wins.
        None => _ = profiles::map_uid(client, req.uid, customer, None),
        Some(s) if s.root == customer => evidence_profile = Some(s.own_profile),
        Some(s) if is_blocked(&blocks, s.root, &uid_evidence, req.identify_time) => {}
        Some(s) if !s.root_is_customer => {
            candidates.insert(s.root, (Reason::Uid, req.uid.to_string()));
            evidence_profile = Some(s.own_profile);
        }
        Some(s) => {
            reassign_uid(client, req, s.root, customer);
            shared_browser = true;
        }
    }

    let (mut person, mut skips) = contact_identifiers(&req.attributes);
    if let Some(iid) = req.identify_id.map(str::trim).filter(|v| !v.is_empty()) {
        match junk_reason(iid) {
            None => person.push(Identifier { kind: "identify_id", value: iid.to_string() }),
            Some(why) => skips.push(Skip { field: "extra.identify_id".into(), value: iid.into(), reason: why.into() }),
        }
    }
    add_identifiers(client, customer, &person);
    // The identify's own attributes first: merged profiles only fill gaps.
    set_attributes(client, customer, &req.attributes, req.identify_time, "identify");

    // A browser shared by two customers says nothing about who its anonymous visitors were.
    let device_linking = settings::device_linking() && !shared_browser;
    let mut evidence = person;
    if let (true, Some(device)) = (device_linking, req.device_id) {
        evidence.push(Identifier { kind: "device_id", value: device.to_string() });
    }
    for (root, reason, value) in find_anonymous_matches(client, customer, &evidence, evidence_profile, device_linking) {
        if is_blocked(&blocks, root, &format!("{}:{value}", reason.as_str()), req.identify_time) {
            continue;
        }
        let entry = candidates.entry(root).or_insert((reason, value.clone()));
        if reason < entry.0 {
            *entry = (reason, value);
        }
    }

    if req.identify_type == IdentifyType::Predict {
        let settings = settings::predict_settings().unwrap_or_else(|e| e.raise());
        for (profile, probability, signals) in predicted_matches(client, customer, evidence_profile, req.identify_time, &settings) {
            if candidates.contains_key(&profile) || is_blocked(&blocks, profile, "predict", req.identify_time) {
                continue;
            }
            if probability >= settings.auto_merge {
                candidates.insert(profile, (Reason::Predict, format!("p={probability:.3} {signals}")));
            } else if probability >= settings.review {
                suggest(client, profile, customer, probability, &signals);
            }
        }
    }

    let mut merged = lock_still_anonymous(client, candidates.keys().copied().collect());
    // The cap keeps the strongest evidence (then the oldest profiles); the rest is recorded.
    let cap = settings::max_merges_per_identify();
    if merged.len() > cap {
        merged.sort_by_key(|id| (candidates[id].0, *id));
        for id in merged.split_off(cap) {
            let (reason, evidence) = &candidates[&id];
            skips.push(Skip {
                field: "merge_cap".into(),
                value: format!("profile {id} ({}: {evidence})", reason.as_str()),
                reason: format!("over cdp.max_merges_per_identify ({cap})"),
            });
        }
    }
    for profile_id in &merged {
        let (reason, evidence) = &candidates[profile_id];
        let decision = Decision { uid: Some(req.uid), identify_type: req.identify_type, identify_time: req.identify_time };
        merge_into_customer(client, *profile_id, customer, *reason, evidence, &decision);
    }
    IdentifyOutcome { customer, skips, merged }
}

fn find_or_create_customer(client: &mut SpiClient<'_>, customer_id: &str, at: TimestampWithTimeZone) -> i64 {
    let table = exec(
        client,
        "SELECT profile_id, identified_at > $2 FROM cdp.profiles WHERE customer_id = $1",
        &[customer_id.into(), at.into()],
    );
    if !table.is_empty() {
        let row = table.first();
        let profile_id: i64 = row.get(1).ok().flatten().expect("profile_id is NOT NULL");
        if row.get::<bool>(2).ok().flatten().unwrap_or(false) {
            exec(
                client,
                "UPDATE cdp.profiles SET identified_at = $2 WHERE profile_id = $1",
                &[profile_id.into(), at.into()],
            );
        }
        return profile_id;
    }
    first_value(exec(
        client,
        "INSERT INTO cdp.profiles (customer_id, identified_at) VALUES ($1, $2) RETURNING profile_id",
        &[customer_id.into(), at.into()],
    ))
    .expect("INSERT ... RETURNING returns a row")
}

/// A UID of customer `from` identifies as another customer: the UID counts
/// for `into` from now on, `from` keeps its id and its history.
fn reassign_uid(client: &mut SpiClient<'_>, req: &IdentifyRequest<'_>, from: i64, into: i64) {
    exec(
        client,
        "WITH before AS (SELECT profile_id FROM cdp.uids WHERE uid = $1),
              moved AS (UPDATE cdp.uids SET profile_id = $3 WHERE uid = $1 RETURNING uid)
         INSERT INTO cdp.merges (kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time,
                                 uid_profile_before)
         SELECT 'uid_reassigned', $2, $3, 'uid', moved.uid, moved.uid, $4, $5, before.profile_id FROM moved, before",
        &[req.uid.into(), from.into(), into.into(), req.identify_type.as_str().into(), req.identify_time.into()],
    );
}

/// Live anonymous profiles that share evidence with the customer: the
/// evidence given, the person-level identifiers (email, phone, identify id)
/// already known for the customer, and the identifiers of the identifying
/// UID's own profile (its device ids only when device linking is on).
fn find_anonymous_matches(
    client: &mut SpiClient<'_>,
    customer: i64,
    evidence: &[Identifier],
    evidence_profile: Option<i64>,
    device_linking: bool,
) -> Vec<(i64, Reason, String)> {
    let kinds: Vec<String> = evidence.iter().map(|i| i.kind.to_string()).collect();
    let values: Vec<String> = evidence.iter().map(|i| i.value.clone()).collect();
    let table = exec(
        client,
        // Every lookup is an index lookup whatever the table sizes (OFFSET 0
        // keeps the planner from turning them into scans and hash joins).
        "WITH family(profile_id) AS (
             SELECT f.profile_id FROM cdp.profiles f WHERE f.profile_id = $1
             UNION ALL
             SELECT f.profile_id FROM cdp.profiles f WHERE f.merged_into = $1
             UNION ALL
             SELECT $4 WHERE $4 IS NOT NULL
         ), evidence(kind, value) AS (
             SELECT t.kind, t.value
             FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS t(kind, value)
             UNION
             SELECT k.kind, k.value
             FROM family, LATERAL (
                 SELECT i.kind, i.value FROM cdp.identifiers i
                 WHERE i.profile_id = family.profile_id
                   AND (i.kind <> 'device_id' OR ($5 AND family.profile_id = $4))
                 OFFSET 0) AS k
         )
         SELECT DISTINCT m.root, m.kind, m.value
         FROM evidence e, LATERAL (
             SELECT r.profile_id AS root, i.kind, i.value
             FROM cdp.identifiers i
             JOIN cdp.profiles p ON p.profile_id = i.profile_id
             JOIN cdp.profiles r ON r.profile_id = coalesce(p.merged_into, p.profile_id)
             WHERE i.kind = e.kind AND i.value = e.value AND r.customer_id IS NULL AND r.merged_into IS NULL
             OFFSET 0) AS m",
        &[customer.into(), kinds.into(), values.into(), evidence_profile.into(), device_linking.into()],
    );
    table
        .filter_map(|row| {
            let root = column::<i64>(&row, 1)?;
            let reason = Reason::of_identifier_kind(&column::<String>(&row, 2)?)?;
            Some((root, reason, column::<String>(&row, 3)?))
        })
        .collect()
}

/// Locks the candidates in ascending id order (so two identifies never wait
/// on each other in a cycle) and returns those still anonymous and unmerged.
fn lock_still_anonymous(client: &mut SpiClient<'_>, candidates: Vec<i64>) -> Vec<i64> {
    if candidates.is_empty() {
        return Vec::new();
    }
    exec(
        client,
        // One key lookup per candidate, in the (ascending) order given.
        "SELECT k.profile_id
         FROM pg_catalog.unnest($1::bigint[]) AS q(id),
              LATERAL (SELECT p.profile_id FROM cdp.profiles p
                       WHERE p.profile_id = q.id AND p.customer_id IS NULL AND p.merged_into IS NULL
                       FOR UPDATE) AS k",
        &[candidates.into()],
    )
    .filter_map(|row| column::<i64>(&row, 1))
    .collect()
}

/// Merges a locked anonymous profile into a customer. Cost is independent of
/// the number of events: events keep their profile id and are found through
/// `merged_into`. The customer's attributes win; the merged profile only fills
/// gaps, and the filled keys are recorded so the merge can be undone.
pub fn merge_into_customer(
    client: &mut SpiClient<'_>,
    anonymous: i64,
    customer: i64,
    reason: Reason,
    evidence: &str,
    decided_by: &Decision<'_>,
) -> i64 {
    first_value(exec(
        client,
        "WITH merged AS (
             UPDATE cdp.profiles SET merged_into = $2, merged_at = pg_catalog.now()
             WHERE profile_id = $1 RETURNING profile_id
         ), filled AS (
             INSERT INTO cdp.profile_attributes (profile_id, key, value, set_at, source, source_profile)
             SELECT $2, a.key, a.value, a.set_at, 'merge', $1 FROM cdp.profile_attributes a WHERE a.profile_id = $1
             ORDER BY a.key COLLATE \"C\"
             ON CONFLICT (profile_id, key) DO NOTHING
             RETURNING key
         )
         INSERT INTO cdp.merges (kind, from_profile, into_profile, reason, evidence, uid, identify_type, identify_time, filled_attributes)
         SELECT 'merge', merged.profile_id, $2, $3, $4, $5, $6, $7,
                coalesce((SELECT pg_catalog.array_agg(key ORDER BY key) FROM filled), '{}')
         FROM merged
         RETURNING merge_id",
        &[
            anonymous.into(),
            customer.into(),
            reason.as_str().into(),
            evidence.into(),
            decided_by.uid.into(),
            decided_by.identify_type.as_str().into(),
            decided_by.identify_time.into(),
        ],
    ))
    .expect("the profile was locked as anonymous and unmerged")
}

/// Live anonymous profiles sharing a user agent, a device id or an IP network
/// with the customer or the identifying UID's own profile (the blocking step), each with its match probability
/// and what each signal did. Pairs a reviewer rejected are left out.
fn predicted_matches(
    client: &mut SpiClient<'_>,
    customer: i64,
    identifying_profile: Option<i64>,
    identify_time: TimestampWithTimeZone,
    settings: &settings::PredictSettings,
) -> Vec<(i64, f64, Value)> {
    let mut ours = predict::Signals::new();
    for row in exec(
        client,
        "SELECT system FROM cdp.profiles WHERE profile_id = $1 OR merged_into = $1 OR profile_id = $2",
        &[customer.into(), identifying_profile.into()],
    ) {
        if let Some(JsonB(Value::Object(system))) = column::<JsonB>(&row, 1) {
            predict::signals_of(&system, &mut ours);
        }
    }
    if ours.is_empty() {
        return Vec::new();
    }
    ours.entry("recent".into()).or_default().insert("yes".into());
    let set = |key: &str| ours.get(key).map(|s| s.iter().cloned().collect::<Vec<String>>()).unwrap_or_default();
    let (agents, devices, networks) = (set("user_agent"), set("device_id"), set("ip_network"));
    exec(
        client,
        "SELECT p.profile_id, p.system,
                (SELECT max(e.event_time) FROM cdp.events e WHERE e.profile_id = p.profile_id)
                    >= $5 - interval '24 hours'
         FROM cdp.profiles p
         WHERE p.customer_id IS NULL AND p.merged_into IS NULL
           AND (p.system ->> 'user_agent' = ANY($2) OR p.system ->> 'device_id' = ANY($3)
                OR pg_catalog.regexp_replace(p.system ->> 'ip', '[.][0-9]+$', '') = ANY($4))
           AND NOT EXISTS (SELECT FROM cdp.match_suggestions s
                           WHERE s.profile_id = p.profile_id AND s.customer_profile = $1 AND s.status = 'rejected')
         LIMIT 1000",
        &[customer.into(), agents.into(), devices.into(), networks.into(), identify_time.into()],
    )
    .filter_map(|row| {
        let profile = column::<i64>(&row, 1)?;
        let mut theirs = predict::Signals::new();
        if let Some(JsonB(Value::Object(system))) = column::<JsonB>(&row, 2) {
            predict::signals_of(&system, &mut theirs);
        }
        if let Some(recent) = column::<bool>(&row, 3) {
            theirs.entry("recent".into()).or_default().insert(if recent { "yes" } else { "no" }.into());
        }
        let (probability, signals) = predict::score(&ours, &theirs, &settings.weights, settings.prior);
        Some((profile, probability, signals))
    })
    .collect()
}

fn suggest(client: &mut SpiClient<'_>, profile: i64, customer: i64, probability: f64, signals: &Value) {
    exec(
        client,
        "INSERT INTO cdp.match_suggestions (profile_id, customer_profile, probability, signals)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (profile_id, customer_profile) WHERE status = 'open'
         DO UPDATE SET probability = excluded.probability, signals = excluded.signals",
        &[profile.into(), customer.into(), probability.into(), JsonB(signals.clone()).into()],
    );
}
