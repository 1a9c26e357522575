//! `cdp.profile_attributes`: customer and custom user attributes, one row per
//! key, each with the time its value is from and where it came from. A value
//! is only replaced by one from a later (or the same) time, so late-arriving
//! old data never wins. (Merges fill gaps from the merged profile and
//! unmerges remove what they filled: `tables::merges`.)

use crate::attributes::Attributes;
use crate::store::{exec, jsonb_arg};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

pub fn set(
    client: &mut SpiClient<'_>,
    portal: &str,
    profile_id: i64,
    attributes: &Attributes,
    set_at: TimestampWithTimeZone,
    source: &str,
) {
    let Some(object) = attributes.datum() else { return };
    exec(
        client,
        "INSERT INTO cdp.profile_attributes AS pa (portal, profile_id, key, value, set_at, source)
         SELECT $5, $1, a.key, a.value, $3, $4 FROM pg_catalog.jsonb_each($2) AS a ORDER BY a.key COLLATE \"C\"
         ON CONFLICT (portal, profile_id, key) DO UPDATE
            SET value = excluded.value, set_at = excluded.set_at, source = excluded.source, source_profile = NULL
          WHERE pa.set_at < excluded.set_at
             OR (pa.set_at = excluded.set_at AND pa.value IS DISTINCT FROM excluded.value)",
        &[profile_id.into(), jsonb_arg(object), set_at.into(), source.into(), portal.into()],
    );
}
