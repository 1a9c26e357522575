//! `cdp.identify_skips`: identifiers an event or identify carried that could
//! not be used (junk customer ids, unusable emails and phones, profiles over
//! the merge cap): the event was stored, nobody was identified by them.

use crate::attributes::Skip;
use crate::store::exec;
use pgrx::spi::SpiClient;

pub fn record(client: &mut SpiClient<'_>, portal: &str, uid: &str, event_id: Option<i64>, skips: &[Skip]) {
    if skips.is_empty() {
        return;
    }
    let fields: Vec<String> = skips.iter().map(|s| s.field.clone()).collect();
    let values: Vec<String> = skips.iter().map(|s| s.value.clone()).collect();
    let reasons: Vec<String> = skips.iter().map(|s| s.reason.clone()).collect();
    exec(
        client,
        "INSERT INTO cdp.identify_skips (portal, uid, event_id, field, value, reason)
         SELECT $6, $1, $2, t.field, t.value, t.reason
         FROM ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[])) AS t(field, value, reason)",
        &[uid.into(), event_id.into(), fields.into(), values.into(), reasons.into(), portal.into()],
    );
}
