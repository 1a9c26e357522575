//! `cdp.profile_signals` and `cdp.signal_counts`: the context signals of each
//! profile for predicted matching, and how common each value is. Written when
//! a profile is created or its system attributes change (never on the hot
//! path of a known UID, whose profile does not change); read by
//! `identity::predicted_matches` through index lookups only.

use crate::predict::Signals;
use crate::store::exec;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Candidates read per signal value: the most recently recorded ones, so a
/// popular value (the most common phone) costs the same whatever its count.
pub const CANDIDATES_PER_VALUE: i64 = 200;

/// Records the signals of profiles (each with the time of the event that set
/// them) and counts every value that is new for its profile.
pub fn record(client: &mut SpiClient<'_>, portal: &str, profiles: &[(i64, &Signals, TimestampWithTimeZone)]) {
    let (mut ids, mut names, mut values, mut times) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (profile, signals, at) in profiles {
        for (name, set) in signals.iter() {
            // The last value only (a profile's system attributes hold one per signal).
            if let Some(value) = set.iter().next_back() {
                ids.push(*profile);
                names.push(name.clone());
                values.push(value.clone());
                times.push(*at);
            }
        }
    }
    if ids.is_empty() {
        return;
    }
    exec(
        client,
        "WITH input AS (
             SELECT * FROM ROWS FROM (pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),
                                      pg_catalog.unnest($5::timestamptz[])) AS t(profile_id, signal, value, seen_at)
         ), changed AS (
             INSERT INTO cdp.profile_signals AS s (portal, profile_id, signal, value, seen_at)
             SELECT $1, i.profile_id, i.signal, i.value, i.seen_at FROM input i ORDER BY i.profile_id, i.signal
             ON CONFLICT (portal, profile_id, signal) DO UPDATE SET value = excluded.value, seen_at = excluded.seen_at
             WHERE s.value IS DISTINCT FROM excluded.value
             RETURNING s.signal, s.value, s.seen_at
         )
         INSERT INTO cdp.signal_counts AS c (portal, signal, value, day, profiles)
         SELECT $1, c.signal, x.value, (c.seen_at AT TIME ZONE 'UTC')::date, count(*)
         FROM changed c, LATERAL (VALUES (c.value), ('*')) AS x(value)
         GROUP BY c.signal, x.value, (c.seen_at AT TIME ZONE 'UTC')::date
         ORDER BY 2, 3, 4
         ON CONFLICT (portal, signal, value, day) DO UPDATE SET profiles = c.profiles + excluded.profiles",
        &[portal.into(), ids.into(), names.into(), values.into(), times.into()],
    );
}

/// For each (signal, value): profiles recorded with it and with the signal
/// at all, within `window_s` seconds before `at`.
pub fn frequencies(
    client: &mut SpiClient<'_>,
    portal: &str,
    pairs: &[(String, String)],
    at: TimestampWithTimeZone,
    window_s: i64,
) -> HashMap<(String, String), (i64, i64)> {
    if pairs.is_empty() {
        return HashMap::new();
    }
    let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
    let values: Vec<String> = pairs.iter().map(|(_, v)| v.clone()).collect();
    exec(
        client,
        "WITH span AS (
             SELECT (($4::timestamptz - pg_catalog.make_interval(secs => $5)) AT TIME ZONE 'UTC')::date AS first_day,
                    ($4::timestamptz AT TIME ZONE 'UTC')::date AS last_day
         )
         SELECT q.signal, q.value,
                (SELECT coalesce(sum(c.profiles), 0) FROM cdp.signal_counts c, span
                 WHERE c.portal = $1 AND c.signal = q.signal AND c.value = q.value AND c.day BETWEEN span.first_day AND span.last_day) AS n,
                (SELECT coalesce(sum(c.profiles), 0) FROM cdp.signal_counts c, span
                 WHERE c.portal = $1 AND c.signal = q.signal AND c.value = '*' AND c.day BETWEEN span.first_day AND span.last_day) AS total
         FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS q(signal, value)",
        &[portal.into(), names.into(), values.into(), at.into(), (window_s as f64).into()],
    )
    .rows()
    .map(|row| ((row.value("signal"), row.value("value")), (row.value::<i64>("n"), row.value::<i64>("total"))))
    .collect()
}

/// A candidate of predicted matching: a live anonymous profile, its system
/// attributes, and whether it had an event within 24 hours of the identify.
pub struct Candidate {
    pub profile_id: i64,
    pub system: Map<String, Value>,
    pub recent: Option<bool>,
}

/// Live anonymous profiles recorded with one of these (signal, value) pairs
/// within `window_s` seconds before `at` (the latest `CANDIDATES_PER_VALUE`
/// of each value), not the customer's and not rejected for it by a reviewer.
pub fn candidates(
    client: &mut SpiClient<'_>,
    portal: &str,
    customer: i64,
    pairs: &[(String, String)],
    at: TimestampWithTimeZone,
    window_s: i64,
) -> Vec<Candidate> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
    let values: Vec<String> = pairs.iter().map(|(_, v)| v.clone()).collect();
    exec(
        client,
        // Index lookups only, a bounded number per value (OFFSET 0 keeps each lookup a lookup).
        "WITH found AS (
             SELECT DISTINCT k.profile_id
             FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS q(signal, value),
                  LATERAL (SELECT s.profile_id FROM cdp.profile_signals s
                           WHERE s.portal = $1 AND s.signal = q.signal AND s.value = q.value
                             AND s.seen_at >= $4::timestamptz - pg_catalog.make_interval(secs => $5) AND s.seen_at <= $4::timestamptz + interval '1 day'
                           ORDER BY s.seen_at DESC LIMIT $7 OFFSET 0) AS k
         )
         SELECT p.profile_id, p.system,
                (SELECT e.event_time FROM cdp.events e WHERE e.portal = p.portal AND e.profile_id = p.profile_id
                 ORDER BY e.event_time DESC, e.event_id DESC LIMIT 1) >= $4::timestamptz - interval '24 hours' AS recent
         FROM found, LATERAL (SELECT p.* FROM cdp.profiles p WHERE p.portal = $1 AND p.profile_id = found.profile_id OFFSET 0) AS p
         WHERE p.customer_id IS NULL AND p.merged_into IS NULL AND NOT p.quarantined
           AND (SELECT true FROM cdp.match_suggestions s
                WHERE s.portal = p.portal AND s.profile_id = p.profile_id AND s.customer_profile = $6 AND s.status = 'rejected'
                LIMIT 1) IS NULL",
        &[portal.into(), names.into(), values.into(), at.into(), (window_s as f64).into(), customer.into(), CANDIDATES_PER_VALUE.into()],
    )
    .rows()
    .map(|row| {
        let system = match row.get::<pgrx::JsonB>("system") {
            Some(pgrx::JsonB(Value::Object(system))) => system,
            _ => Map::new(),
        };
        Candidate { profile_id: row.value("profile_id"), system, recent: row.get("recent") }
    })
    .collect()
}
