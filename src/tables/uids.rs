//! `cdp.uids`: which profile each UID writes its events to, and where the
//! UID stands (its own profile, the unified profile, the system attributes
//! stored for it). One column list and one decoder serve the single and the
//! batch lookups.

use crate::attributes::SystemFields;
use crate::store::{exec, Row};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

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
    /// The UID or its device is used by several people (`identity::shared`).
    pub shared: bool,
    /// A shared UID's current session id and latest event time.
    pub session: Option<String>,
    pub last_event_at: Option<TimestampWithTimeZone>,
    pub system_at: Option<TimestampWithTimeZone>,
    pub first_touch_at: Option<TimestampWithTimeZone>,
    /// The system-relevant fields stored on the own profile.
    pub stored: SystemFields,
}

impl UidState {
    /// The state of a profile just created for an event at `at`.
    pub fn created(profile_id: i64, at: TimestampWithTimeZone, device_id: Option<String>, fields: SystemFields) -> Self {
        UidState {
            own_profile: profile_id,
            root: profile_id,
            root_is_customer: false,
            last_device_id: device_id,
            shared: false,
            session: None,
            last_event_at: None,
            system_at: Some(at),
            first_touch_at: Some(at),
            stored: fields,
        }
    }

    /// Whether an event at `at` with these system fields (and first-touch
    /// fields, if any) changes the (last-value, first-touch) system
    /// attributes of the UID's own profile. An older event never overwrites.
    pub fn system_changes(&self, fields: &SystemFields, has_first_touch: bool, at: TimestampWithTimeZone) -> (bool, bool) {
        let last = !fields.contained_in(&self.stored) && self.system_at.is_none_or(|t| t <= at);
        let first = has_first_touch && self.first_touch_at.is_none_or(|t| at < t);
        (last, first)
    }
}

/// The columns every UID-state lookup returns, decoded by `decode`.
macro_rules! uid_state_columns {
    () => {
        "u.uid, u.profile_id AS own_profile, coalesce(p.merged_into, p.profile_id) AS root,
         p.merged_into IS NOT NULL OR p.customer_id IS NOT NULL AS root_is_customer,
         u.last_device_id, u.shared, u.last_session_id, u.last_event_at, p.system_at, p.first_touch_at,
         p.system ->> 'user_agent' AS user_agent, p.system ->> 'locale' AS locale, p.system ->> 'timezone' AS timezone,
         p.system ->> 'ip' AS ip, p.system ->> 'screen' AS screen, p.system ->> 'device_id' AS device_id"
    };
}

fn decode(row: &Row<'_>) -> (String, UidState) {
    let state = UidState {
        own_profile: row.value("own_profile"),
        root: row.value("root"),
        root_is_customer: row.value("root_is_customer"),
        last_device_id: row.get("last_device_id"),
        shared: row.value("shared"),
        session: row.get("last_session_id"),
        last_event_at: row.get("last_event_at"),
        system_at: row.get("system_at"),
        first_touch_at: row.get("first_touch_at"),
        stored: SystemFields {
            user_agent: row.get("user_agent"),
            locale: row.get("locale"),
            timezone: row.get("timezone"),
            ip: row.get("ip"),
            screen: row.get("screen"),
            device_id: row.get("device_id"),
        },
    };
    (row.value("uid"), state)
}

/// Where one UID stands; None when it was never seen. The UID's row is
/// share-locked for the rest of the transaction (an erasure of the UID
/// waits for it, see `erasure`).
pub fn resolve(client: &mut SpiClient<'_>, portal: &str, uid: &str) -> Option<UidState> {
    exec(
        client,
        concat!(
            "SELECT ",
            uid_state_columns!(),
            " FROM cdp.uids u",
            profile_of!("u", "$2"),
            "WHERE u.portal = $2 AND u.uid = $1 FOR KEY SHARE OF u"
        ),
        &[uid.into(), portal.into()],
    )
    .optional()
    .map(|row| decode(&row).1)
}

/// Where each of these UIDs stands (unknown ones are left out).
pub fn resolve_many(client: &mut SpiClient<'_>, portal: &str, uids: Vec<String>) -> Vec<(String, UidState)> {
    exec(
        client,
        // One index lookup per UID whatever the table sizes: OFFSET 0 keeps
        // the planner from turning the lateral lookups into a scan and a hash join.
        concat!(
            "SELECT k.* FROM pg_catalog.unnest($1::text[]) AS q(uid), LATERAL (SELECT ",
            uid_state_columns!(),
            " FROM cdp.uids u",
            profile_of!("u", "$2"),
            "WHERE u.portal = $2 AND u.uid = q.uid FOR KEY SHARE OF u OFFSET 0) AS k"
        ),
        &[uids.into(), portal.into()],
    )
    .rows()
    .map(|row| decode(&row))
    .collect()
}

/// Maps a new UID to a profile; false when the UID exists already (a
/// concurrent insert of the same UID waits for the other transaction).
pub fn map(client: &mut SpiClient<'_>, portal: &str, uid: &str, profile_id: i64, seen_at: TimestampWithTimeZone) -> bool {
    !exec(
        client,
        "INSERT INTO cdp.uids (portal, uid, profile_id, first_seen) VALUES ($3, $1, $2, $4)
         ON CONFLICT (portal, uid) DO NOTHING RETURNING uid",
        &[uid.into(), profile_id.into(), portal.into(), seen_at.into()],
    )
    .is_empty()
}

/// The device the UID was last seen on (so repeated page views on it write
/// nothing); a UID that moves to a shared device is shared from then on.
pub fn set_last_device(client: &mut SpiClient<'_>, portal: &str, uid: &str, device: &str) {
    exec(
        client,
        "UPDATE cdp.uids u SET last_device_id = $2,
                shared = u.shared OR EXISTS (SELECT FROM cdp.shared_devices s
                                             WHERE s.portal = $3 AND s.kind = 'device_id' AND s.value = $2 AND s.cleared_at IS NULL)
         WHERE u.portal = $3 AND u.uid = $1",
        &[uid.into(), device.into(), portal.into()],
    );
}

/// The UIDs mapped to any of these profiles, sorted.
pub fn of_profiles(client: &mut SpiClient<'_>, portal: &str, profile_ids: Vec<i64>) -> Vec<String> {
    exec(
        client,
        "SELECT k.uid FROM pg_catalog.unnest($1::bigint[]) AS q(id),
              LATERAL (SELECT u.uid FROM cdp.uids u WHERE u.portal = $2 AND u.profile_id = q.id OFFSET 0) AS k ORDER BY 1",
        &[profile_ids.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value("uid"))
    .collect()
}

/// The profiles a UID's events may sit on, but those of a customer other
/// than `own_customer`: its own profile now and every profile a shared
/// browser moved it from or to (`uid_reassigned` decisions).
pub fn event_profiles_for_erasure(client: &mut SpiClient<'_>, portal: &str, uid: &str, own_customer: Option<i64>) -> Vec<i64> {
    exec(
        client,
        "SELECT DISTINCT w.profile_id
         FROM (SELECT u.profile_id FROM cdp.uids u WHERE u.portal = $2 AND u.uid = $1
               UNION ALL
               SELECT pg_catalog.unnest(ARRAY[m.from_profile, m.into_profile, m.uid_profile_before]) FROM cdp.merges m
               WHERE m.portal = $2 AND m.kind = 'uid_reassigned' AND m.uid = $1) AS w
         -- (each profile and its root by id, fenced: never from `customer_id IS NULL`)
         , LATERAL (SELECT p.* FROM cdp.profiles p WHERE p.portal = $2 AND p.profile_id = w.profile_id OFFSET 0) AS p
         , LATERAL (SELECT r.* FROM cdp.profiles r WHERE r.portal = $2 AND r.profile_id = coalesce(p.merged_into, p.profile_id) OFFSET 0) AS r
         WHERE r.customer_id IS NULL OR r.profile_id = $3
         ORDER BY 1",
        &[uid.into(), portal.into(), own_customer.into()],
    )
    .rows()
    .map(|row| row.value("profile_id"))
    .collect()
}

/// Where a shared UID is in its session: the session id (kept when the event
/// carries none) and the latest event time.
pub fn note_session(
    client: &mut SpiClient<'_>,
    portal: &str,
    uid: &str,
    session: Option<&str>,
    at: TimestampWithTimeZone,
    new_session: bool,
) {
    exec(
        client,
        "UPDATE cdp.uids SET last_session_id = CASE WHEN $5 THEN $2 ELSE coalesce($2, last_session_id) END,
                             last_event_at = CASE WHEN $5 THEN $3 ELSE greatest(last_event_at, $3) END
         WHERE portal = $4 AND uid = $1",
        &[uid.into(), session.into(), at.into(), portal.into(), new_session.into()],
    );
}

/// The anonymous profiles of a UID's earlier sessions on a shared device
/// (its `session` decisions), but those merged into a customer other than
/// `own_customer`: they are that UID's visits alone.
pub fn session_profiles(client: &mut SpiClient<'_>, portal: &str, uid: &str, own_customer: Option<i64>) -> Vec<i64> {
    exec(
        client,
        "SELECT DISTINCT p.profile_id
         FROM cdp.merges m, pg_catalog.unnest(ARRAY[m.into_profile, m.uid_profile_before]) AS s(profile_id),
              LATERAL (SELECT p.* FROM cdp.profiles p WHERE p.portal = $2 AND p.profile_id = s.profile_id OFFSET 0) AS p
         WHERE m.portal = $2 AND m.kind = 'uid_reassigned' AND m.uid = $1 AND m.reason = 'session'
           AND p.customer_id IS NULL AND (p.merged_into IS NULL OR p.merged_into = $3)
         ORDER BY 1",
        &[uid.into(), portal.into(), own_customer.into()],
    )
    .rows()
    .map(|row| row.value("profile_id"))
    .collect()
}

/// Which of these UIDs exist.
pub fn existing(client: &mut SpiClient<'_>, portal: &str, uids: Vec<String>) -> Vec<String> {
    exec(client, "SELECT uid FROM cdp.uids WHERE portal = $2 AND uid = ANY($1)", &[uids.into(), portal.into()])
        .rows()
        .map(|row| row.value("uid"))
        .collect()
}

/// Locks the rows of these UIDs for their erasure, skipping (not waiting
/// for) rows an append holds; returns the UIDs locked.
pub fn lock_for_erasure(client: &mut SpiClient<'_>, portal: &str, uids: Vec<String>) -> Vec<String> {
    exec(
        client,
        "SELECT uid FROM cdp.uids WHERE portal = $2 AND uid = ANY($1) ORDER BY uid FOR UPDATE SKIP LOCKED",
        &[uids.into(), portal.into()],
    )
    .rows()
    .map(|row| row.value("uid"))
    .collect()
}

/// The UIDs of a profile, sorted.
pub fn of_profile(client: &mut SpiClient<'_>, portal: &str, profile_id: i64) -> Vec<String> {
    exec(client, "SELECT uid FROM cdp.uids WHERE portal = $2 AND profile_id = $1 ORDER BY uid", &[profile_id.into(), portal.into()])
        .rows()
        .map(|row| row.value("uid"))
        .collect()
}
