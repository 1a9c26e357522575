//! Review of predicted matches: `cdp.accept_suggestion` merges the suggested
//! profile into the customer (reason `predict`, undoable like every merge),
//! `cdp.reject_suggestion` records that the pair is not to be suggested or
//! predicted again.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identity;
use crate::portal::{self, Portal};
use crate::store::transaction_start;
use crate::tables::{profiles, suggestions};
use pgrx::spi::SpiClient;
use serde_json::{json, Value};

pub fn accept(client: &mut SpiClient<'_>, portal: &Portal, id: i64) -> CdpResult<Value> {
    portal::lock(client, portal);
    let here = portal.name.as_str();
    let s = suggestions::lock_open(client, here, id)?;
    if profiles::lock_still_anonymous(client, here, vec![s.profile_id]).is_empty() {
        return Err(CdpError::new(
            ErrorKind::NotInState,
            format!("profile {} is no longer anonymous: a predicted merge never takes a customer's profile", s.profile_id),
        ));
    }
    let evidence = format!("accepted suggestion {id} (p={:.3})", s.probability);
    let merge_id = identity::merge_accepted(client, here, s.profile_id, s.customer_profile, &evidence, transaction_start());
    suggestions::decide(client, here, id, "accepted", Some(merge_id));
    Ok(json!({"suggestion_id": id, "status": "accepted", "merge_id": merge_id,
              "profile_id": s.profile_id, "customer_profile": s.customer_profile}))
}

pub fn reject(client: &mut SpiClient<'_>, portal: &Portal, id: i64) -> CdpResult<Value> {
    portal::lock(client, portal);
    let here = portal.name.as_str();
    let s = suggestions::lock_open(client, here, id)?;
    suggestions::decide(client, here, id, "rejected", None);
    Ok(json!({"suggestion_id": id, "status": "rejected", "profile_id": s.profile_id, "customer_profile": s.customer_profile}))
}
