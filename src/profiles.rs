//! Profiles and their attributes in the database: creating profiles, writing
//! attributes with time ordering, recording identifiers and skipped values.

use crate::attributes::{Identifier, Skip, SystemAttributes};
use crate::store::{exec, first_value};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// Where a UID stands: the profile its events are written to, and the
/// unified profile (its customer when that profile was merged).
#[derive(Debug, Clone)]
pub struct UidState {
    pub own_profile: i64,
    pub root: i64,
    /// Whether the unified profile is a customer (profiles are only ever
    /// merged into customers).
    pub root_is_customer: bool,
    pub last_device_id: Option<String>,
    pub system_at: Option<TimestampWithTimeZone>,
    pub first_touch_at: Option<TimestampWithTimeZone>,
    /// Whether the stored last-value system attributes already contain the
    /// ones asked about (so no write is needed).
    pub system_current: bool,
}

impl UidState {
    /// The state of a profile just created for an event at `at`.
    pub fn created(profile_id: i64, at: TimestampWithTimeZone, device_id: Option<String>) -> Self {
        UidState {
            own_profile: profile_id,
            root: profile_id,
            root_is_customer: false,
            last_device_id: device_id,
            system_at: Some(at),
            first_touch_at: Some(at),
            system_current: true,
        }
    }

    /// Whether an event at `at` changes the (last-value, first-touch) system
    /// attributes of the UID's own profile.
    pub fn system_changes(&self, system: &SystemAttributes, at: TimestampWithTimeZone) -> (bool, bool) {
        let last = !self.system_current && self.system_at.is_none_or(|t| t <= at);
        let first = !system.first.is_empty() && self.first_touch_at.is_none_or(|t| at < t);
        (last, first)
    }
}

pub fn resolve_uid(client: &mut SpiClient<'_>, uid: &str, system: &Map<String, Value>) -> Option<UidState> {
    let table = exec(
        client,
        "SELECT u.profile_id, coalesce(p.merged_into, p.profile_id),
                p.merged_into IS NOT NULL OR p.customer_id IS NOT NULL,
                u.last_device_id, p.system_at, p.first_touch_at, p.system OPERATOR(pg_catalog.@>) $2
         FROM cdp.uids u JOIN cdp.profiles p ON p.profile_id = u.profile_id
         WHERE u.uid = $1",
        &[uid.into(), JsonB(Value::Object(system.clone())).into()],
    );
    if table.is_empty() {
        return None;
    }
    let row = table.first();
    Some(UidState {
        own_profile: row.get::<i64>(1).ok().flatten()?,
        root: row.get::<i64>(2).ok().flatten()?,
        root_is_customer: row.get::<bool>(3).ok().flatten().unwrap_or(false),
        last_device_id: row.get::<String>(4).ok().flatten(),
        system_at: row.get::<TimestampWithTimeZone>(5).ok().flatten(),
        first_touch_at: row.get::<TimestampWithTimeZone>(6).ok().flatten(),
        system_current: row.get::<bool>(7).ok().flatten().unwrap_or(false),
    })
}

/// A new anonymous profile for a UID seen for the first time, with the UID
/// mapped to it and its device recorded. None when a concurrent call created
/// the UID first (its insert wins; ours is removed again).
pub fn create_anonymous(
    client: &mut SpiClient<'_>,
    uid: &str,
    system: &SystemAttributes,
    at: TimestampWithTimeZone,
    device_id: Option<&str>,
) -> Option<i64> {
    let first_touch_at = (!system.first.is_empty()).then_some(at);
    let profile_id: i64 = first_value(exec(
        client,
        "INSERT INTO cdp.profiles (system, system_at, first_touch, first_touch_at) VALUES ($1, $2, $3, $4)
         RETURNING profile_id",
        &[
            JsonB(Value::Object(system.last.clone())).into(),
            at.into(),
            JsonB(Value::Object(system.first.clone())).into(),
            first_touch_at.into(),
        ],
    ))
    .expect("INSERT ... RETURNING returns a row");
    if !map_uid(client, uid, profile_id, device_id) {
        exec(client, "DELETE FROM cdp.profiles WHERE profile_id = $1", &[profile_id.into()]);
        return None;
    }
    if let Some(device) = device_id {
        add_identifiers(client, profile_id, &[Identifier { kind: "device_id", value: device.into() }]);
    }
    Some(profile_id)
}

/// Maps a new UID to a profile; false when the UID exists already (a
/// concurrent insert of the same UID waits for the other transaction).
pub fn map_uid(client: &mut SpiClient<'_>, uid: &str, profile_id: i64, device_id: Option<&str>) -> bool {
    first_value::<String>(exec(
        client,
        "INSERT INTO cdp.uids (uid, profile_id, last_device_id) VALUES ($1, $2, $3)
         ON CONFLICT (uid) DO NOTHING RETURNING uid",
        &[uid.into(), profile_id.into(), device_id.into()],
    ))
    .is_some()
}

/// Writes last-value system attributes when they changed and the event is
/// not older than what is stored, and first-touch attributes when the event
/// is the earliest seen. Repeated page views with the same context write nothing.
pub fn update_system(client: &mut SpiClient<'_>, state: &UidState, system: &SystemAttributes, at: TimestampWithTimeZone) {
    let (last_changed, first_changed) = state.system_changes(system, at);
    if last_changed {
        exec(
            client,
            "UPDATE cdp.profiles SET system = system OPERATOR(pg_catalog.||) $2, system_at = $3 WHERE profile_id = $1",
            &[state.own_profile.into(), JsonB(Value::Object(system.last.clone())).into(), at.into()],
        );
    }
    if first_changed {
        exec(
            client,
            "UPDATE cdp.profiles SET first_touch = $2, first_touch_at = $3 WHERE profile_id = $1",
            &[state.own_profile.into(), JsonB(Value::Object(system.first.clone())).into(), at.into()],
        );
    }
}

/// Upserts attributes; a stored value is only replaced by a value from a
/// later (or the same) time, so late-arriving old data never wins.
pub fn set_attributes(
    client: &mut SpiClient<'_>,
    profile_id: i64,
    attributes: &Map<String, Value>,
    set_at: TimestampWithTimeZone,
    source: &str,
) {
    if attributes.is_empty() {
        return;
    }
    exec(
        client,
        "INSERT INTO cdp.profile_attributes AS pa (profile_id, key, value, set_at, source)
         SELECT $1, a.key, a.value, $3, $4 FROM pg_catalog.jsonb_each($2) AS a ORDER BY a.key COLLATE \"C\"
         ON CONFLICT (profile_id, key) DO UPDATE
            SET value = excluded.value, set_at = excluded.set_at, source = excluded.source, source_profile = NULL
          WHERE pa.set_at < excluded.set_at
             OR (pa.set_at = excluded.set_at AND pa.value IS DISTINCT FROM excluded.value)",
        &[profile_id.into(), JsonB(Value::Object(attributes.clone())).into(), set_at.into(), source.into()],
    );
}

pub fn add_identifiers(client: &mut SpiClient<'_>, profile_id: i64, identifiers: &[Identifier]) {
    if identifiers.is_empty() {
        return;
    }
    let kinds: Vec<String> = identifiers.iter().map(|i| i.kind.to_string()).collect();
    let values: Vec<String> = identifiers.iter().map(|i| i.value.clone()).collect();
    exec(
        client,
        "INSERT INTO cdp.identifiers (kind, value, profile_id)
         SELECT t.kind, t.value, $3 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS t(kind, value)
         ON CONFLICT DO NOTHING",
        &[kinds.into(), values.into(), profile_id.into()],
    );
}

pub fn record_skips(client: &mut SpiClient<'_>, uid: &str, event_id: Option<i64>, skips: &[Skip]) {
    if skips.is_empty() {
        return;
    }
    let fields: Vec<String> = skips.iter().map(|s| s.field.clone()).collect();
    let values: Vec<String> = skips.iter().map(|s| s.value.clone()).collect();
    let reasons: Vec<String> = skips.iter().map(|s| s.reason.clone()).collect();
    exec(
        client,
        "INSERT INTO cdp.identify_skips (uid, event_id, field, value, reason)
         SELECT $1, $2, t.field, t.value, t.reason
         FROM ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[])) AS t(field, value, reason)",
        &[uid.into(), event_id.into(), fields.into(), values.into(), reasons.into()],
    );
}

/// Locks a UID's own profile row against concurrent writers of the same
/// profile and against a concurrent merge of it (identify locks the profiles
/// it merges FOR UPDATE, which conflicts).
pub fn lock_own_profile(client: &mut SpiClient<'_>, profile_id: i64) {
    exec(
        client,
        "SELECT 1 FROM cdp.profiles WHERE profile_id = $1 FOR NO KEY UPDATE",
        &[profile_id.into()],
    );
}
