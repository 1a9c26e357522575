//! `cdp.identified_on` and `cdp.shared_devices`: which customers were
//! identified on which device ids and UIDs, and the decisions that a device id
//! or UID is shared (see `identity::shared`). Marking one shared also flags
//! its UIDs in `cdp.uids` (their events then take the general path).

use crate::store::exec;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

/// A device id or a UID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Device,
    Uid,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Device => "device_id",
            Kind::Uid => "uid",
        }
    }

    pub fn parse(kind: &str) -> Option<Kind> {
        match kind {
            "device_id" => Some(Kind::Device),
            "uid" => Some(Kind::Uid),
            _ => None,
        }
    }
}

/// Notes that `customer` was identified on the device id or UID at `at`
/// (business time), and answers how many customers were identified on it
/// within `window_s` seconds of `at` since the last time an admin cleared it
/// (this one included), and whether it is marked shared now.
pub fn note_identified(
    client: &mut SpiClient<'_>,
    portal: &str,
    kind: Kind,
    value: &str,
    customer: i64,
    at: TimestampWithTimeZone,
    window_s: i64,
) -> (i64, bool) {
    let row = exec(
        client,
        "WITH noted AS (
             INSERT INTO cdp.identified_on AS o (portal, kind, value, customer_profile, first_at, last_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (portal, kind, value, customer_profile)
             DO UPDATE SET first_at = least(o.first_at, excluded.first_at), last_at = greatest(o.last_at, excluded.last_at)
         ), decision AS (
             SELECT s.cleared_at FROM cdp.shared_devices s WHERE s.portal = $1 AND s.kind = $2 AND s.value = $3
         )
         SELECT 1 + (SELECT count(*) FROM cdp.identified_on o
                     WHERE o.portal = $1 AND o.kind = $2 AND o.value = $3 AND o.customer_profile <> $4
                       AND o.last_at >= $5 - pg_catalog.make_interval(secs => $6) AND o.first_at <= $5 + pg_catalog.make_interval(secs => $6)
                       AND o.last_at > coalesce((SELECT cleared_at FROM decision), '-infinity')) AS customers,
                EXISTS (SELECT FROM decision WHERE cleared_at IS NULL) AS shared",
        &[portal.into(), kind.as_str().into(), value.into(), customer.into(), at.into(), (window_s as f64).into()],
    )
    .one();
    (row.value("customers"), row.value("shared"))
}

/// UIDs (cookies) first seen within `window_s` seconds before `at` whose
/// device is this one, since an admin last cleared it.
pub fn uids_on_device(client: &mut SpiClient<'_>, portal: &str, device: &str, at: TimestampWithTimeZone, window_s: i64) -> i64 {
    exec(
        client,
        "SELECT count(*) AS uids FROM cdp.uids u
         WHERE u.portal = $1 AND u.last_device_id = $2
           AND u.first_seen >= $3::timestamptz - pg_catalog.make_interval(secs => $4) AND u.first_seen <= $3
           AND u.first_seen > coalesce((SELECT s.cleared_at FROM cdp.shared_devices s
                                         WHERE s.portal = $1 AND s.kind = 'device_id' AND s.value = $2), '-infinity')",
        &[portal.into(), device.into(), at.into(), (window_s as f64).into()],
    )
    .one()
    .value("uids")
}

/// Marks the device id or UID shared (again, if an admin had cleared it) and
/// flags its UIDs: the UID itself, or every UID last seen on the device.
pub fn mark_shared(
    client: &mut SpiClient<'_>,
    portal: &str,
    kind: Kind,
    value: &str,
    at: TimestampWithTimeZone,
    evidence: &serde_json::Value,
) {
    // One statement per kind, each a lookup by its own index (one statement
    // for both, with the kind as a parameter, plans a scan of the portal).
    macro_rules! mark {
        ($uids:literal) => {
            concat!(
                "WITH decided AS (
                     INSERT INTO cdp.shared_devices AS s (portal, kind, value, detected_at, evidence)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (portal, kind, value) DO UPDATE
                     SET detected_at = excluded.detected_at, decided_at = now(), evidence = excluded.evidence, cleared_at = NULL, cleared_by = NULL
                 )
                 UPDATE cdp.uids u SET shared = true WHERE u.portal = $1 AND NOT u.shared AND ",
                $uids
            )
        };
    }
    let sql = match kind {
        Kind::Uid => mark!("u.uid = $3"),
        Kind::Device => mark!("u.last_device_id = $3"),
    };
    exec(client, sql, &[portal.into(), kind.as_str().into(), value.into(), at.into(), pgrx::JsonB(evidence.clone()).into()]);
}

/// Which of these device ids are marked shared.
pub fn shared_among(client: &mut SpiClient<'_>, portal: &str, devices: Vec<String>) -> Vec<String> {
    if devices.is_empty() {
        return Vec::new();
    }
    exec(
        client,
        // One index probe per device id (a scalar subquery is never turned into a scan and a join).
        "SELECT d.value FROM pg_catalog.unnest($2::text[]) AS d(value)
         WHERE (SELECT true FROM cdp.shared_devices s
                WHERE s.portal = $1 AND s.kind = 'device_id' AND s.value = d.value AND s.cleared_at IS NULL) IS NOT NULL",
        &[portal.into(), devices.into()],
    )
    .rows()
    .map(|row| row.value("value"))
    .collect()
}

/// Clears the decision (an admin's call); the UIDs it flagged are unflagged
/// unless their device or themselves are still shared. False when it was not
/// marked shared.
pub fn clear(client: &mut SpiClient<'_>, portal: &str, kind: Kind, value: &str) -> bool {
    exec(
        client,
        "WITH cleared AS (
             UPDATE cdp.shared_devices s SET cleared_at = now(), cleared_by = session_user
             WHERE s.portal = $1 AND s.kind = $2 AND s.value = $3 AND s.cleared_at IS NULL
             RETURNING s.value
         ), unflagged AS (
             UPDATE cdp.uids u SET shared = false
             FROM cleared
             WHERE u.portal = $1 AND u.shared
               AND ((($2 = 'uid') AND u.uid = $3) OR (($2 = 'device_id') AND u.last_device_id = $3))
               AND NOT EXISTS (SELECT FROM cdp.shared_devices o
                               WHERE o.portal = $1 AND o.cleared_at IS NULL AND NOT (o.kind = $2 AND o.value = $3)
                                 AND ((o.kind = 'uid' AND o.value = u.uid) OR (o.kind = 'device_id' AND o.value = u.last_device_id)))
         )
         SELECT count(*) AS cleared FROM cleared",
        &[portal.into(), kind.as_str().into(), value.into()],
    )
    .one()
    .value::<i64>("cleared")
        > 0
}
