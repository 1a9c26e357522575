//! Review of predicted matches: `cdp.accept_suggestion` merges the suggested
//! profile into the customer (reason `predict`, undoable like every merge),
//! `cdp.reject_suggestion` records that the pair is not to be suggested or
//! predicted again.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identity::{merge_into_customer, Decision, Reason};
use crate::store::{exec, first_value, lock_identity_exclusive, transaction_start};
use crate::validate::IdentifyType;
use pgrx::spi::SpiClient;
use serde_json::{json, Value};

struct Suggestion {
    profile_id: i64,
    customer_profile: i64,
    probability: f64,
}

/// The open suggestion, locked; a clear error when it is unknown or decided.
fn open_suggestion(client: &mut SpiClient<'_>, id: i64) -> CdpResult<Suggestion> {
    let table = exec(
        client,
        "SELECT profile_id, customer_profile, probability, status FROM cdp.match_suggestions
         WHERE suggestion_id = $1 FOR UPDATE",
        &[id.into()],
    );
    if table.is_empty() {
        return Err(CdpError::invalid(format!("suggestion {id} does not exist")));
    }
    let row = table.first();
    let status: String = row.get(4).ok().flatten().unwrap_or_default();
    if status != "open" {
        return Err(CdpError::new(ErrorKind::NotInState, format!("suggestion {id} was already {status}")));
    }
    Ok(Suggestion {
        profile_id: row.get(1).ok().flatten().unwrap_or(0),
        customer_profile: row.get(2).ok().flatten().unwrap_or(0),
        probability: row.get(3).ok().flatten().unwrap_or(0.0),
    })
}

pub fn accept(client: &mut SpiClient<'_>, id: i64) -> CdpResult<Value> {
    lock_identity_exclusive(client);
    let s = open_suggestion(client, id)?;
    let still_anonymous: Option<i64> = first_value(exec(
        client,
        "SELECT profile_id FROM cdp.profiles WHERE profile_id = $1 AND customer_id IS NULL AND merged_into IS NULL FOR UPDATE",
        &[s.profile_id.into()],
    ));
    if still_anonymous.is_none() {
        return Err(CdpError::new(
            ErrorKind::NotInState,
            format!("profile {} is no longer anonymous: a predicted merge never takes a customer's profile", s.profile_id),
        ));
    }
    let decision = Decision { uid: None, identify_type: IdentifyType::Predict, identify_time: transaction_start() };
    let evidence = format!("accepted suggestion {id} (p={:.3})", s.probability);
    let merge_id = merge_into_customer(client, s.profile_id, s.customer_profile, Reason::Predict, &evidence, &decision);
    exec(
        client,
        "UPDATE cdp.match_suggestions SET status = 'accepted', decided_at = pg_catalog.now(), merge_id = $2
         WHERE suggestion_id = $1",
        &[id.into(), merge_id.into()],
    );
    Ok(json!({"suggestion_id": id, "status": "accepted", "merge_id": merge_id,
              "profile_id": s.profile_id, "customer_profile": s.customer_profile}))
}

pub fn reject(client: &mut SpiClient<'_>, id: i64) -> CdpResult<Value> {
    lock_identity_exclusive(client);
    let s = open_suggestion(client, id)?;
    exec(
        client,
        "UPDATE cdp.match_suggestions SET status = 'rejected', decided_at = pg_catalog.now() WHERE suggestion_id = $1",
        &[id.into()],
    );
    Ok(json!({"suggestion_id": id, "status": "rejected", "profile_id": s.profile_id, "customer_profile": s.customer_profile}))
}
