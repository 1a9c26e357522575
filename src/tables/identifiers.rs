//! `cdp.identifiers`: person-level identifiers (normalized email, phone,
//! identify id) and device ids seen on a profile, and the evidence lookup
//! identify makes through them. Merges leave identifiers where they are:
//! lookups resolve a profile to its customer.

use crate::attributes::Identifier;
use crate::store::exec;
use pgrx::spi::SpiClient;

/// Records identifiers on a profile. `trusted`: they come from a backend
/// identify or a verified claim, not from a lead form; an identifier seen
/// both ways is trusted.
pub fn add(client: &mut SpiClient<'_>, portal: &str, profile_id: i64, identifiers: &[Identifier], trusted: bool) {
    if identifiers.is_empty() {
        return;
    }
    let kinds: Vec<String> = identifiers.iter().map(|i| i.kind.to_string()).collect();
    let values: Vec<String> = identifiers.iter().map(|i| i.value.clone()).collect();
    exec(
        client,
        "INSERT INTO cdp.identifiers AS i (portal, kind, value, profile_id, trusted)
         SELECT $4, t.kind, t.value, $3, $5 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS t(kind, value)
         ON CONFLICT (portal, kind, value, profile_id) DO UPDATE SET trusted = true WHERE NOT i.trusted AND excluded.trusted",
        &[kinds.into(), values.into(), profile_id.into(), portal.into(), trusted.into()],
    );
}

/// One live anonymous profile that shares a piece of evidence with a customer.
pub struct Match {
    pub root: i64,
    pub kind: String,
    pub value: String,
    /// Whether the candidate's identifier came from a trusted source.
    pub trusted: bool,
}

/// Live anonymous profiles that share evidence with the customer: the
/// evidence given, the person-level identifiers (email, phone, identify id)
/// already known for the customer, and the identifiers of the identifying
/// UID's own profile (its device ids only when device linking is on).
pub fn anonymous_matches(
    client: &mut SpiClient<'_>,
    portal: &str,
    customer: i64,
    evidence: &[Identifier],
    evidence_profile: Option<i64>,
    device_linking: bool,
) -> Vec<Match> {
    let kinds: Vec<String> = evidence.iter().map(|i| i.kind.to_string()).collect();
    let values: Vec<String> = evidence.iter().map(|i| i.value.clone()).collect();
    exec(
        client,
        // Every lookup is an index lookup whatever the table sizes (OFFSET 0
        // keeps the planner from turning them into scans and hash joins).
        "WITH family(profile_id) AS (
             SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = $6 AND f.profile_id = $1
             UNION ALL
             SELECT f.profile_id FROM cdp.profiles f WHERE f.portal = $6 AND f.merged_into = $1
             UNION ALL
             SELECT $4 WHERE $4 IS NOT NULL
         ), evidence(kind, value) AS (
             SELECT t.kind, t.value
             FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS t(kind, value)
             UNION
             SELECT k.kind, k.value
             FROM family, LATERAL (
                 SELECT i.kind, i.value FROM cdp.identifiers i
                 WHERE i.portal = $6 AND i.profile_id = family.profile_id
                   AND (i.kind <> 'device_id' OR ($5 AND family.profile_id = $4))
                 OFFSET 0) AS k
         ), usable(kind, value) AS (
             -- a device id marked shared links nobody
             SELECT e.kind, e.value FROM evidence e
             WHERE e.kind <> 'device_id'
                OR (SELECT true FROM cdp.shared_devices s
                    WHERE s.portal = $6 AND s.kind = 'device_id' AND s.value = e.value AND s.cleared_at IS NULL) IS NULL
         )
         SELECT m.root, m.kind, m.value, bool_or(m.trusted) AS trusted
         FROM usable e, LATERAL (
             -- each profile and its root looked up by id (fenced: the planner must never
             -- start from `customer_id IS NULL`, which every anonymous profile matches)
             SELECT r.profile_id AS root, i.kind, i.value, i.trusted
             FROM (SELECT i.* FROM cdp.identifiers i WHERE i.portal = $6 AND i.kind = e.kind AND i.value = e.value OFFSET 0) AS i,
                  LATERAL (SELECT p.* FROM cdp.profiles p WHERE p.portal = $6 AND p.profile_id = i.profile_id OFFSET 0) AS p,
                  LATERAL (SELECT r.* FROM cdp.profiles r WHERE r.portal = $6 AND r.profile_id = coalesce(p.merged_into, p.profile_id) OFFSET 0) AS r
             WHERE r.customer_id IS NULL AND r.merged_into IS NULL AND NOT r.quarantined
             OFFSET 0) AS m
         GROUP BY m.root, m.kind, m.value",
        &[customer.into(), kinds.into(), values.into(), evidence_profile.into(), device_linking.into(), portal.into()],
    )
    .rows()
    .map(|row| Match { root: row.value("root"), kind: row.value("kind"), value: row.value("value"), trusted: row.value("trusted") })
    .collect()
}
