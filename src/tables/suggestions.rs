//! `cdp.match_suggestions`: predicted matches between the review and the
//! auto-merge threshold, waiting for a person to accept or reject them.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::store::exec;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::Value;

/// Stores (or refreshes) the open suggestion that `profile` is the customer.
pub fn suggest(client: &mut SpiClient<'_>, portal: &str, profile: i64, customer: i64, probability: f64, signals: &Value) {
    exec(
        client,
        "INSERT INTO cdp.match_suggestions (portal, profile_id, customer_profile, probability, signals)
         VALUES ($5, $1, $2, $3, $4)
         ON CONFLICT (portal, profile_id, customer_profile) WHERE status = 'open'
         DO UPDATE SET probability = excluded.probability, signals = excluded.signals",
        &[profile.into(), customer.into(), probability.into(), JsonB(signals.clone()).into(), portal.into()],
    );
}

pub struct Suggestion {
    pub profile_id: i64,
    pub customer_profile: i64,
    pub probability: f64,
}

/// The open suggestion, locked; a clear error when it is unknown or decided.
pub fn lock_open(client: &mut SpiClient<'_>, portal: &str, id: i64) -> CdpResult<Suggestion> {
    let row = exec(
        client,
        "SELECT profile_id, customer_profile, probability, status FROM cdp.match_suggestions
         WHERE portal = $2 AND suggestion_id = $1 FOR UPDATE",
        &[id.into(), portal.into()],
    )
    .optional()
    .ok_or_else(|| CdpError::invalid(format!("suggestion {id} does not exist")))?;
    let status: String = row.value("status");
    if status != "open" {
        return Err(CdpError::new(ErrorKind::NotInState, format!("suggestion {id} was already {status}")));
    }
    Ok(Suggestion {
        profile_id: row.value("profile_id"),
        customer_profile: row.value("customer_profile"),
        probability: row.value("probability"),
    })
}

/// Records the decision on a suggestion (and the merge an acceptance made).
pub fn decide(client: &mut SpiClient<'_>, portal: &str, id: i64, status: &str, merge_id: Option<i64>) {
    exec(
        client,
        "UPDATE cdp.match_suggestions SET status = $2, decided_at = pg_catalog.now(), merge_id = $3 WHERE portal = $4 AND suggestion_id = $1",
        &[id.into(), status.into(), merge_id.into(), portal.into()],
    );
    if status == "accepted" {
        // The change feed: the acceptance, beside the predicted merge it made.
        exec(client, "SELECT cdp.record_suggestion_accepted($1, $2)", &[portal.into(), id.into()]);
    }
}
