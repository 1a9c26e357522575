//! `cdp.events`: the append-only event log. Every statement that stores an
//! event is here, side by side, with one column list: the hot path (append to
//! a known UID whose profile does not change, in one statement), one event
//! after its profile was written, and a batch of events at once. Events keep
//! the profile they arrived on: merges never rewrite them.

use crate::jsonb::{self, JsonbArg};
use crate::request::{StoredPayload, TrackRequest};
use crate::store::{exec, jsonb_arg};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::spi::SpiClient;
use std::collections::{HashMap, HashSet};

/// The stored columns. The statements below give them as `$8` (portal), the
/// profile, then `$1` uid ... `$7` payload.
macro_rules! event_columns {
    () => {
        "portal, profile_id, uid, category, action, event_time, session_id, message_id, payload"
    };
}

/// An SDK retry (a message id already stored) is not stored again.
macro_rules! on_retry {
    () => {
        " ON CONFLICT (portal, message_id) WHERE message_id IS NOT NULL DO NOTHING "
    };
}

/// The event's own values as `$1..$8` (uid, category, action, event_time,
/// session_id, message_id, payload, portal), followed by a statement's other
/// arguments.
fn event_values<'a>(portal: &'a str, req: &'a TrackRequest<'_>, more: impl IntoIterator<Item = DatumWithOid<'a>>) -> Vec<DatumWithOid<'a>> {
    let payload = match &req.payload {
        StoredPayload::Whole(arg) => arg.as_arg(),
        StoredPayload::Item(container) => jsonb_arg(container.to_datum()),
        StoredPayload::Empty => jsonb_arg(jsonb::object_datum(&[])),
    };
    let mut values = Vec::from([
        req.uid.as_str().into(),
        req.category.as_str().into(),
        req.action.as_str().into(),
        req.event_time.into(),
        req.context.session_id.as_deref().into(),
        req.message_id.as_deref().into(),
        payload,
        portal.into(),
    ]);
    values.extend(more);
    values
}

/// The hot path in one statement: appends the event when the UID is known
/// and the event changes nothing about its profile (every system field it
/// carries equals the stored one, same device, not an earlier first touch;
/// the same rule as `UidState::system_changes`). Returns the unified profile
/// and whether the event was stored (false for a retry); None when the rule
/// does not hold and the caller takes the general path.
pub fn append_to_known_uid(client: &mut SpiClient<'_>, portal: &str, req: &TrackRequest<'_>) -> Option<(i64, bool)> {
    let f = &req.system_fields;
    let row = exec(
        client,
        concat!(
            "WITH s AS (
                 SELECT u.profile_id, coalesce(p.merged_into, p.profile_id) AS root
                 FROM cdp.uids u",
            profile_of!("u", "$8"),
            "WHERE u.portal = $8 AND u.uid = $1
                   AND ($9::text IS NULL OR p.system ->> 'user_agent' = $9)
                   AND ($10::text IS NULL OR p.system ->> 'locale' = $10)
                   AND ($11::text IS NULL OR p.system ->> 'timezone' = $11)
                   AND ($12::text IS NULL OR p.system ->> 'ip' = $12)
                   AND ($13::text IS NULL OR p.system ->> 'screen' = $13)
                   AND ($14::text IS NULL OR p.system ->> 'device_id' = $14)
                   AND ($15::text IS NULL OR u.last_device_id = $15)
                   AND ($16 OR p.first_touch_at <= $4)
                   -- a UID on a shared device takes the general path (sessions)
                   AND NOT u.shared
                 -- an erasure of this UID waits for this append (see erasure)
                 FOR KEY SHARE OF u
             ), ins AS (
                 INSERT INTO cdp.events (",
            event_columns!(),
            ") SELECT $8, s.profile_id, $1, $2, $3, $4, $5, $6, $7 FROM s",
            on_retry!(),
            "RETURNING event_id
             )
             SELECT s.root, EXISTS (SELECT FROM ins) AS stored FROM s"
        ),
        &event_values(
            portal,
            req,
            [
                f.user_agent.as_deref().into(),
                f.locale.as_deref().into(),
                f.timezone.as_deref().into(),
                f.ip.as_deref().into(),
                f.screen.as_deref().into(),
                f.device_id.as_deref().into(),
                req.device_id.as_deref().into(),
                (!req.has_first_touch).into(),
            ],
        ),
    )
    .optional()?;
    Some((row.value("root"), row.value("stored")))
}

/// The session id and time of the UID's latest event on a profile (by event
/// time), if any: where a UID that just became shared is in its session (read
/// once; from then on `cdp.uids` keeps it).
pub fn latest_of_uid(
    client: &mut SpiClient<'_>,
    portal: &str,
    profile_id: i64,
    uid: &str,
) -> Option<(Option<String>, TimestampWithTimeZone)> {
    exec(
        client,
        "SELECT e.session_id, e.event_time FROM cdp.events e
         WHERE e.portal = $3 AND e.profile_id = $1 AND e.uid = $2
         ORDER BY e.event_time DESC, e.event_id DESC LIMIT 1",
        &[profile_id.into(), uid.into(), portal.into()],
    )
    .optional()
    .map(|row| (row.get("session_id"), row.value("event_time")))
}

/// Stores one event on a profile; None when its message id is already
/// stored (an SDK retry).
pub fn insert_one(client: &mut SpiClient<'_>, portal: &str, req: &TrackRequest<'_>, profile_id: i64) -> Option<i64> {
    exec(
        client,
        concat!(
            "INSERT INTO cdp.events (",
            event_columns!(),
            ") VALUES ($8, $9, $1, $2, $3, $4, $5, $6, $7)",
            on_retry!(),
            "RETURNING event_id"
        ),
        &event_values(portal, req, [profile_id.into()]),
    )
    .optional()
    .map(|row| row.value("event_id"))
}

/// An event of a batch waiting to be inserted with others: its position in
/// the batch array and the profile it goes to.
pub struct BatchedEvent<'r, 'a> {
    pub position: usize,
    pub req: &'r TrackRequest<'a>,
    pub profile_id: i64,
}

/// Stores events of a batch in one statement; each payload is taken from the
/// batch array as it is (no copy through Rust). Returns the message ids that
/// were stored (the others are retries, in the batch or before it).
pub fn insert_batch(client: &mut SpiClient<'_>, portal: &str, batch: &JsonbArg, events: &[BatchedEvent<'_, '_>]) -> HashSet<String> {
    let column = |f: &dyn Fn(&TrackRequest<'_>) -> Option<String>| events.iter().map(|e| f(e.req)).collect::<Vec<Option<String>>>();
    let times: Vec<TimestampWithTimeZone> = events.iter().map(|e| e.req.event_time).collect();
    exec(
        client,
        concat!(
            "INSERT INTO cdp.events (",
            event_columns!(),
            ") SELECT $10, t.profile_id, t.uid, t.category, t.action, t.event_time, t.session_id, t.message_id,
                      -- the item's payload, read from the batch in place (its position is NULL when it has none)
                      coalesce($8 OPERATOR(pg_catalog.->) t.position OPERATOR(pg_catalog.->) 'payload', '{}')
               FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                               pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::timestamptz[]), pg_catalog.unnest($6::text[]),
                               pg_catalog.unnest($7::text[]), pg_catalog.unnest($9::int[]))
                    AS t(profile_id, uid, category, action, event_time, session_id, message_id, position)",
            on_retry!(),
            "RETURNING message_id"
        ),
        &[
            events.iter().map(|e| e.profile_id).collect::<Vec<i64>>().into(),
            column(&|r| Some(r.uid.clone())).into(),
            column(&|r| Some(r.category.clone())).into(),
            column(&|r| Some(r.action.clone())).into(),
            times.into(),
            column(&|r| r.context.session_id.clone()).into(),
            column(&|r| r.message_id.clone()).into(),
            batch.as_arg(),
            events
                .iter()
                .map(|e| matches!(e.req.payload, StoredPayload::Item(_)).then_some(e.position as i32))
                .collect::<Vec<Option<i32>>>()
                .into(),
            portal.into(),
        ],
    )
    .rows()
    .filter_map(|row| row.get::<String>("message_id"))
    .collect()
}

/// The unified profile of the stored event of each of these message ids.
pub fn roots_of_messages(client: &mut SpiClient<'_>, portal: &str, message_ids: Vec<String>) -> HashMap<String, i64> {
    exec(
        client,
        concat!(
            "SELECT k.* FROM pg_catalog.unnest($1::text[]) AS q(message_id),
              LATERAL (SELECT e.message_id, coalesce(p.merged_into, p.profile_id) AS root
                       FROM cdp.events e",
            profile_of!("e", "$2"),
            "WHERE e.portal = $2 AND e.message_id = q.message_id OFFSET 0) AS k"
        ),
        &[message_ids.into(), portal.into()],
    )
    .rows()
    .map(|row| (row.value("message_id"), row.value("root")))
    .collect()
}

/// The unified profile of the stored event with this message id.
pub fn root_of_message(client: &mut SpiClient<'_>, portal: &str, message_id: &str) -> Option<i64> {
    roots_of_messages(client, portal, vec![message_id.to_string()]).remove(message_id)
}

/// How many events arrived on a profile (not counting merged ones).
pub fn count_on_profile(client: &mut SpiClient<'_>, portal: &str, profile_id: i64) -> i64 {
    exec(client, "SELECT count(*) AS events FROM cdp.events WHERE portal = $2 AND profile_id = $1", &[profile_id.into(), portal.into()])
        .one()
        .value("events")
}
