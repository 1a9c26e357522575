//! `cdp.profiles`: anonymous and customer profiles. Creation (one statement
//! for one new UID or a batch of them), customers, system attributes, row
//! locks, and the reads identity decisions make of profiles. Merging and
//! restoring a profile are decisions: `tables::merges`.

use crate::attributes::SystemAttributes;
use crate::predict::{self, Signals};
use crate::store::exec;
use crate::tables::signals;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// A new UID's first event: what its anonymous profile starts with.
pub struct NewUid<'r> {
    pub uid: &'r str,
    /// A placeholder UID: its profile never merges and never links.
    pub quarantined: bool,
    pub system: SystemAttributes,
    pub seen_at: TimestampWithTimeZone,
    pub device_id: Option<&'r str>,
}

/// Creates an anonymous profile for each new UID, maps the UID to it and
/// records its device, in one statement, in UID order (so concurrent calls
/// creating the same UIDs wait for each other in the same order). Returns
/// the profile of each UID this call created; a UID that a concurrent call
/// created first is left out (and the profile made for it removed).
pub fn create_anonymous(client: &mut SpiClient<'_>, portal: &str, firsts: &[NewUid<'_>]) -> Vec<(String, i64)> {
    if firsts.is_empty() {
        return Vec::new();
    }
    let json = |m: &Map<String, Value>| Some(Value::Object(m.clone()).to_string());
    let column = |f: &dyn Fn(&NewUid<'_>) -> Option<String>| firsts.iter().map(f).collect::<Vec<Option<String>>>();
    let first_touch_at: Vec<Option<TimestampWithTimeZone>> =
        firsts.iter().map(|f| (!f.system.first.is_empty()).then_some(f.seen_at)).collect();
    let rows: Vec<(String, i64, bool)> = exec(
        client,
        "WITH new AS (
             SELECT pg_catalog.nextval('cdp.profiles_profile_id_seq') AS profile_id, t.*
             FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                                                          pg_catalog.unnest($4::timestamptz[]), pg_catalog.unnest($5::timestamptz[]), pg_catalog.unnest($6::text[]),
                             pg_catalog.unnest($8::boolean[]))
                  AS t(uid, system, first_touch, seen_at, first_touch_at, device_id, quarantined)
         ), profiles AS (
             INSERT INTO cdp.profiles (portal, profile_id, system, system_at, first_touch, first_touch_at, quarantined)
             SELECT $7, profile_id, system::jsonb, seen_at, first_touch::jsonb, first_touch_at, quarantined FROM new
         ), mapped AS (
             INSERT INTO cdp.uids (portal, uid, profile_id, last_device_id, first_seen, shared)
             SELECT $7, uid, profile_id, device_id, seen_at,
                    -- a new UID on a shared device (a new cookie on the family computer) is shared from its start
                    -- (a scalar subquery: one index probe per new UID, never a join over the table)
                    device_id IS NOT NULL AND (SELECT true FROM cdp.shared_devices s
                                               WHERE s.portal = $7 AND s.kind = 'device_id' AND s.value = new.device_id
                                                 AND s.cleared_at IS NULL) IS NOT NULL
             FROM new ORDER BY uid
             ON CONFLICT (portal, uid) DO NOTHING
             RETURNING uid, profile_id, last_device_id
         ), devices AS (
             INSERT INTO cdp.identifiers (portal, kind, value, profile_id, trusted)
             SELECT $7, 'device_id', last_device_id, profile_id, true FROM mapped WHERE last_device_id IS NOT NULL
             ON CONFLICT DO NOTHING
         )
         SELECT new.uid, new.profile_id, mapped.uid IS NOT NULL AS mapped FROM new LEFT JOIN mapped USING (uid)",
        &[
            column(&|f| Some(f.uid.to_string())).into(),
            column(&|f| json(&f.system.last)).into(),
            column(&|f| json(&f.system.first)).into(),
            firsts.iter().map(|f| f.seen_at).collect::<Vec<_>>().into(),
            first_touch_at.into(),
                        column(&|f| f.device_id.map(str::to_string)).into(),
            portal.into(),
            firsts.iter().map(|f| f.quarantined).collect::<Vec<bool>>().into(),
        ],
    )
    .rows()
    .map(|row| (row.value("uid"), row.value("profile_id"), row.value("mapped")))
    .collect();
    let orphans: Vec<i64> = rows.iter().filter(|(_, _, mapped)| !mapped).map(|(_, id, _)| *id).collect();
    // The new profiles' signals for predicted matching.
    let by_uid: std::collections::HashMap<&str, &NewUid<'_>> = firsts.iter().map(|f| (f.uid, f)).collect();
    let made: Vec<(i64, Signals, TimestampWithTimeZone)> = rows
        .iter()
        .filter(|(_, _, mapped)| *mapped)
        .map(|(uid, id, _)| (*id, signals_of_system(&by_uid[uid.as_str()].system.last), by_uid[uid.as_str()].seen_at))
        .collect();
    signals::record(client, portal, &made.iter().map(|(id, sig, at)| (*id, sig, *at)).collect::<Vec<_>>());
    if !orphans.is_empty() {
        exec(client, "DELETE FROM cdp.profiles WHERE portal = $2 AND profile_id = ANY($1)", &[orphans.into(), portal.into()]);
    }
    rows.into_iter().filter(|(_, _, mapped)| *mapped).map(|(uid, id, _)| (uid, id)).collect()
}

/// A new anonymous profile for a new session of a UID on a shared device
/// (the UID is moved to it by `merges::start_session`).
pub fn create_session_profile(client: &mut SpiClient<'_>, portal: &str, system: &SystemAttributes, at: TimestampWithTimeZone) -> i64 {
    let json = |m: &Map<String, Value>| Value::Object(m.clone()).to_string();
    let profile: i64 = exec(
        client,
        "INSERT INTO cdp.profiles (portal, system, system_at, first_touch, first_touch_at)
         VALUES ($1, $2::jsonb, $3, $4::jsonb, CASE WHEN $4::jsonb <> '{}' THEN $3 END)
         RETURNING profile_id",
        &[portal.into(), json(&system.last).into(), at.into(), json(&system.first).into()],
    )
    .one()
    .value("profile_id");
    signals::record(client, portal, &[(profile, &signals_of_system(&system.last), at)]);
    profile
}

/// The predicted-matching signals of a profile's last-value system attributes.
fn signals_of_system(system: &Map<String, Value>) -> Signals {
    let mut signals = Signals::new();
    predict::signals_of(system, &mut signals);
    signals
}

/// The unified profile of a profile: the customer it was merged into, or itself.
pub fn root_of(client: &mut SpiClient<'_>, portal: &str, profile_id: i64) -> i64 {
    exec(
        client,
        "SELECT coalesce(p.merged_into, p.profile_id) AS root FROM cdp.profiles p WHERE p.portal = $2 AND p.profile_id = $1",
        &[profile_id.into(), portal.into()],
    )
    .one()
    .value("root")
}

/// The customer profile of a customer id, created when the id is new; its
/// `identified_at` is the earliest identify time seen.
/// The customer's profile, made when the customer id is new; true when this call made it.
pub fn find_or_create_customer(client: &mut SpiClient<'_>, portal: &str, customer_id: &str, at: TimestampWithTimeZone) -> (i64, bool) {
    let row = exec(
        client,
        "WITH found AS (
             SELECT profile_id, identified_at FROM cdp.profiles WHERE portal = $3 AND customer_id = $1
         ), earlier AS (
             -- (the id as a value: as a join, a plan made on empty tables read every profile of the portal)
             UPDATE cdp.profiles p SET identified_at = $2
             WHERE p.portal = $3 AND p.profile_id = (SELECT profile_id FROM found WHERE identified_at > $2)
         ), created AS (
             INSERT INTO cdp.profiles (portal, customer_id, identified_at)
             SELECT $3, $1, $2 WHERE NOT EXISTS (SELECT FROM found)
             RETURNING profile_id
         )
         SELECT profile_id, false AS created FROM found UNION ALL SELECT profile_id, true FROM created",
        &[customer_id.into(), at.into(), portal.into()],
    )
    .one();
    (row.value("profile_id"), row.value("created"))
}

/// Writes the last-value and/or the first-touch system attributes of a
/// profile (`changed`, as `UidState::system_changes` decided), as of `at`.
pub fn update_system(
    client: &mut SpiClient<'_>,
    portal: &str,
    profile_id: i64,
    system: &SystemAttributes,
    changed: (bool, bool),
    at: TimestampWithTimeZone,
) {
    let (last_changed, first_changed) = changed;
    if !last_changed && !first_changed {
        return;
    }
    if last_changed {
        signals::record(client, portal, &[(profile_id, &signals_of_system(&system.last), at)]);
    }
    exec(
        client,
        "UPDATE cdp.profiles
         SET system = CASE WHEN $4 THEN system OPERATOR(pg_catalog.||) $2 ELSE system END,
             system_at = CASE WHEN $4 THEN $6 ELSE system_at END,
             first_touch = CASE WHEN $5 THEN $3 ELSE first_touch END,
             first_touch_at = CASE WHEN $5 THEN $6 ELSE first_touch_at END
         WHERE portal = $7 AND profile_id = $1",
        &[
            profile_id.into(),
            JsonB(Value::Object(system.last.clone())).into(),
            JsonB(Value::Object(system.first.clone())).into(),
            last_changed.into(),
            first_changed.into(),
            at.into(),
            portal.into(),
        ],
    );
}

/// Locks the candidates of a merge in ascending id order (so two identifies
/// never wait on each other in a cycle) and returns those still anonymous
/// and unmerged.
pub fn lock_still_anonymous(client: &mut SpiClient<'_>, portal: &str, mut candidates: Vec<i64>) -> Vec<i64> {
    if candidates.is_empty() {
        return Vec::new();
    }
    candidates.sort_unstable();
    exec(
        client,
        // One key lookup per candidate, in the (ascending) order given.
        "SELECT k.profile_id
         FROM pg_catalog.unnest($1::bigint[]) AS q(id),
              LATERAL (SELECT p.profile_id FROM cdp.profiles p
                                              WHERE p.portal = $2 AND p.profile_id = q.id AND p.customer_id IS NULL AND p.merged_into IS NULL
                         AND NOT p.quarantined
                       FOR UPDATE) AS k",
        &[candidates.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value("profile_id"))
    .collect()
}

/// The profile ids of a customer's unified profile (the customer and every
/// profile merged into it); empty for an unknown customer id.
pub fn family_of_customer(client: &mut SpiClient<'_>, portal: &str, customer_id: &str) -> Vec<i64> {
    exec(
        client,
        "SELECT c.profile_id FROM cdp.profiles c WHERE c.portal = $2 AND c.customer_id = $1
         UNION ALL
         SELECT f.profile_id FROM cdp.profiles c, LATERAL (
             SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = $2 AND f.merged_into = c.profile_id OFFSET 0) AS f
         WHERE c.portal = $2 AND c.customer_id = $1",
        &[customer_id.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value("profile_id"))
    .collect()
}

/// The profile of a customer id, if the customer exists.
pub fn customer_profile(client: &mut SpiClient<'_>, portal: &str, customer_id: &str) -> Option<i64> {
    exec(client, "SELECT profile_id FROM cdp.profiles WHERE portal = $2 AND customer_id = $1", &[customer_id.into(), portal.into()])
        .optional()
        .map(|row| row.value("profile_id"))
}

/// Live anonymous profiles about a customer that were not merged into it:
/// they carry its email, phone or identify id (the merge cap was reached, a
/// merge was undone) or wait in an open suggestion for it.
pub fn unmerged_about(client: &mut SpiClient<'_>, portal: &str, customer: i64) -> Vec<i64> {
    exec(client, "SELECT profile_id FROM cdp.unmerged_profiles_about($1, $2) AS profile_id", &[portal.into(), customer.into()])
        .rows()
        .map(|row| row.value("profile_id"))
        .collect()
}

/// Whether a profile is a customer's own profile (not an anonymous one).
pub fn is_customer(client: &mut SpiClient<'_>, portal: &str, profile_id: i64) -> bool {
    exec(
        client,
        "SELECT customer_id IS NOT NULL AS is_customer FROM cdp.profiles WHERE portal = $2 AND profile_id = $1",
        &[profile_id.into(), portal.into()],
    )
    .one()
    .value("is_customer")
}

/// The last-value system attributes of a customer's family and of one more
/// profile (the identifying UID's own), for predicted matching.
pub fn systems_of(client: &mut SpiClient<'_>, portal: &str, customer: i64, also: Option<i64>) -> Vec<Map<String, Value>> {
    exec(
        client,
        "SELECT p.system FROM cdp.profiles p WHERE p.portal = $3 AND p.profile_id = $1
         UNION ALL
         SELECT p.system FROM cdp.profiles p WHERE p.portal = $3 AND p.merged_into = $1
         UNION ALL
         SELECT p.system FROM cdp.profiles p WHERE p.portal = $3 AND p.profile_id = $2",
        &[customer.into(), also.into(), portal.into()],
    )
    .rows()
    .filter_map(|row| match row.get::<JsonB>("system") {
        Some(JsonB(Value::Object(system))) => Some(system),
        _ => None,
    })
    .collect()
}
