//! `cdp.track_batch`: many events in one call, with the rules of
//! `cdp.track_event`. Every item is validated before anything is written, so
//! a bad item is rejected alone; events that only append to a known UID's
//! timeline (nearly all page views) are inserted together in one statement;
//! the others go through `ingest::track_event`, in array order.
//!
//! Locks: a batch with identifying or lead-form items holds the identity lock
//! exclusively (they change customers' state), others hold it shared. The
//! UIDs it creates are created in sorted order and the profile rows it will
//! write are locked in ascending order before any write, so two batches
//! never wait on each other in a cycle.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::ingest::{self, EventTime, TrackRequest};
use crate::payload::{time_value, type_name};
use crate::profiles::UidState;
use crate::settings;
use crate::store::{column, exec, jsonb_arg, lock_identity_exclusive, lock_identity_shared};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Inserted together at most this many at a time, to bound memory.
const FLUSH_EVERY: usize = 1000;

pub struct Rejection {
    pub index: usize,
    pub error: CdpError,
}

/// Reads and validates the items of a batch. Fails as a whole only when the
/// batch itself is unusable (not an array, too many items).
pub fn read_items(events: Value, now: TimestampWithTimeZone) -> CdpResult<Vec<CdpResult<TrackRequest>>> {
    let Value::Array(items) = events else {
        return Err(CdpError::invalid(format!("events must be a JSON array, not {}", type_name(&events))));
    };
    let limit = settings::max_batch_items();
    if items.len() > limit {
        return Err(CdpError::new(
            ErrorKind::LimitExceeded,
            format!("the batch has {} events; cdp.max_batch_items allows {limit}", items.len()),
        )
        .with_hint("Split the batch."));
    }
    Ok(items.into_iter().map(|item| read_item(item, now)).collect())
}

fn read_item(item: Value, now: TimestampWithTimeZone) -> CdpResult<TrackRequest> {
    let Value::Object(mut fields) = item else {
        return Err(CdpError::invalid(format!("a batch item must be a JSON object, not {}", type_name(&item))));
    };
    let text = |fields: &Map<String, Value>, key: &str| -> CdpResult<Option<String>> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(CdpError::invalid(format!("{key} must be a string, not {}", type_name(other)))),
        }
    };
    let (uid, category, action) = (text(&fields, "uid")?, text(&fields, "category")?, text(&fields, "action")?);
    let event_time = match time_value(fields.get("event_time"), "event_time")? {
        Some(sent) => EventTime::Sent(sent),
        None => EventTime::At(now),
    };
    let payload = fields.remove("payload").filter(|p| !p.is_null());
    TrackRequest::new(uid.as_deref(), category.as_deref(), action.as_deref(), payload, None, event_time)
}

/// A UID's state as stored, so that the items of a batch can be checked
/// against it without a query each.
struct Known {
    state: UidState,
    system: Map<String, Value>,
}

impl Known {
    fn state_for(&self, req: &TrackRequest) -> UidState {
        let current = req.system.last.iter().all(|(k, v)| self.system.get(k) == Some(v));
        UidState { system_current: current, ..self.state.clone() }
    }
}

fn load_known(client: &mut SpiClient<'_>, uids: Vec<String>) -> HashMap<String, Known> {
    exec(
        client,
        // One index lookup per UID whatever the table sizes: OFFSET 0 keeps
        // the planner from turning the lateral lookups into a scan and a hash join.
        "SELECT k.*
         FROM pg_catalog.unnest($1::text[]) AS q(uid),
              LATERAL (SELECT u.uid, u.profile_id, coalesce(p.merged_into, p.profile_id),
                              p.merged_into IS NOT NULL OR p.customer_id IS NOT NULL,
                              u.last_device_id, p.system_at, p.first_touch_at, p.system
                       FROM cdp.uids u JOIN cdp.profiles p ON p.profile_id = u.profile_id
                       WHERE u.uid = q.uid OFFSET 0) AS k",
        &[uids.into()],
    )
    .filter_map(|row| {
        let state = UidState {
            own_profile: column(&row, 2)?,
            root: column(&row, 3)?,
            root_is_customer: column(&row, 4).unwrap_or(false),
            last_device_id: column(&row, 5),
            system_at: column(&row, 6),
            first_touch_at: column(&row, 7),
            system_current: false,
        };
        let system = match column::<JsonB>(&row, 8) {
            Some(JsonB(Value::Object(m))) => m,
            _ => Map::new(),
        };
        Some((column::<String>(&row, 1)?, Known { state, system }))
    })
    .collect()
}

/// Creates anonymous profiles for new UIDs in one statement, in UID order
/// (so concurrent batches creating the same UIDs wait for each other in the
/// same order). A UID that a concurrent call created first is left out, and
/// the profile made for it removed.
fn create_uids(client: &mut SpiClient<'_>, firsts: &[&TrackRequest]) -> HashMap<String, Known> {
    if firsts.is_empty() {
        return HashMap::new();
    }
    let json = |m: &Map<String, Value>| Some(Value::Object(m.clone()).to_string());
    let texts = |f: &dyn Fn(&TrackRequest) -> Option<String>| firsts.iter().map(|r| f(r)).collect::<Vec<Option<String>>>();
    let times: Vec<TimestampWithTimeZone> = firsts.iter().map(|r| r.event_time).collect();
    let rows = exec(
        client,
        "WITH new AS (
             SELECT pg_catalog.nextval('cdp.profiles_profile_id_seq') AS profile_id, t.*
             FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                             pg_catalog.unnest($4::timestamptz[]), pg_catalog.unnest($5::text[]))
                  AS t(uid, system, first_touch, seen_at, device_id)
         ), profiles AS (
             INSERT INTO cdp.profiles (profile_id, system, system_at, first_touch, first_touch_at)
             SELECT profile_id, system::jsonb, seen_at, first_touch::jsonb, seen_at FROM new
         ), mapped AS (
             INSERT INTO cdp.uids (uid, profile_id, last_device_id)
             SELECT uid, profile_id, device_id FROM new ORDER BY uid
             ON CONFLICT (uid) DO NOTHING
             RETURNING uid, profile_id, last_device_id
         ), devices AS (
             INSERT INTO cdp.identifiers (kind, value, profile_id)
             SELECT 'device_id', last_device_id, profile_id FROM mapped WHERE last_device_id IS NOT NULL
             ON CONFLICT DO NOTHING
         )
         SELECT new.uid, new.profile_id, mapped.uid IS NOT NULL FROM new LEFT JOIN mapped USING (uid)",
        &[
            texts(&|r| Some(r.uid.clone())).into(),
            texts(&|r| json(&r.system.last)).into(),
            texts(&|r| json(&r.system.first)).into(),
            times.into(),
            texts(&|r| r.device_id.clone()).into(),
        ],
    )
    .filter_map(|row| Some((column::<String>(&row, 1)?, column::<i64>(&row, 2)?, column::<bool>(&row, 3)?)))
    .collect::<Vec<_>>();
    let orphans: Vec<i64> = rows.iter().filter(|(_, _, mapped)| !mapped).map(|(_, id, _)| *id).collect();
    if !orphans.is_empty() {
        exec(client, "DELETE FROM cdp.profiles WHERE profile_id = ANY($1)", &[orphans.into()]);
    }
    let by_uid: HashMap<&str, &TrackRequest> = firsts.iter().map(|r| (r.uid.as_str(), *r)).collect();
    rows.into_iter()
        .filter(|(_, _, mapped)| *mapped)
        .map(|(uid, profile_id, _)| {
            let first = by_uid[uid.as_str()];
            let state = UidState::created(profile_id, first.event_time, first.device_id.clone());
            (uid, Known { state, system: first.system.last.clone() })
        })
        .collect()
}

/// The UIDs among these whose events are suppressed by an erasure.
fn erased_among(client: &mut SpiClient<'_>, uids: Vec<String>) -> HashSet<String> {
    if uids.is_empty() {
        return HashSet::new();
    }
    let hashes: Vec<String> = uids.iter().map(|u| crate::identifiers::sha256_hex(u)).collect();
    let erased: HashSet<String> = exec(
        client,
        "SELECT uid_sha256 FROM cdp.erased_uids WHERE uid_sha256 = ANY($1)",
        &[hashes.into()],
    )
    .filter_map(|row| column::<String>(&row, 1))
    .collect();
    uids.into_iter().filter(|u| erased.contains(&crate::identifiers::sha256_hex(u))).collect()
}

/// Events waiting to be inserted together: (item index, own profile, root).
struct Pending<'r> {
    items: Vec<(usize, &'r TrackRequest, i64, i64)>,
}

pub struct BatchOutcome {
    pub stored: usize,
    /// Events of erased UIDs, not stored.
    pub suppressed: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
    pub profile_ids: Vec<Option<i64>>,
}

impl BatchOutcome {
    pub fn to_json(&self) -> Value {
        json!({
            "accepted": self.stored + self.duplicates,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "rejected": self.rejected.iter().map(|r| json!({
                "index": r.index,
                "sqlstate": r.error.sqlstate(),
                "message": r.error.message,
            })).collect::<Vec<_>>(),
            "profile_ids": self.profile_ids,
        })
    }
}

/// `batch` is the caller's jsonb array the items were read from.
pub fn track_batch(client: &mut SpiClient<'_>, batch: pg_sys::Datum, items: Vec<CdpResult<TrackRequest>>) -> BatchOutcome {
    let mut outcome = BatchOutcome { stored: 0, suppressed: 0, duplicates: 0, rejected: Vec::new(), profile_ids: vec![None; items.len()] };
    let mut requests = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Ok(req) => requests.push((index, req)),
            Err(error) => outcome.rejected.push(Rejection { index, error }),
        }
    }
    if requests.is_empty() {
        return outcome;
    }

    let changes_customers = requests.iter().any(|(_, r)| r.identifies() || !r.lead_form.is_empty());
    if changes_customers {
        lock_identity_exclusive(client);
    } else {
        lock_identity_shared(client);
    }
    let distinct: BTreeSet<&str> = requests.iter().map(|(_, r)| r.uid.as_str()).collect();
    let mut known = load_known(client, distinct.iter().map(|u| u.to_string()).collect());

    // New UIDs first, all at once in sorted order, each from its first event
    // (an identifying first event creates its mapping itself).
    let mut first_request: HashMap<&str, &TrackRequest> = HashMap::new();
    for (_, r) in &requests {
        first_request.entry(r.uid.as_str()).or_insert(r);
    }
    let erased = erased_among(client, distinct.iter().filter(|u| !known.contains_key(**u)).map(|u| u.to_string()).collect());
    let new_uids: Vec<&TrackRequest> = distinct
        .iter()
        .filter(|u| !known.contains_key(**u) && !erased.contains(**u))
        .map(|u| first_request[u])
        .filter(|r| !r.identifies())
        .collect();
    let created = create_uids(client, &new_uids);
    let lost: Vec<String> = new_uids.iter().map(|r| r.uid.clone()).filter(|u| !created.contains_key(u)).collect();
    known.extend(created);
    if !lost.is_empty() {
        known.extend(load_known(client, lost)); // created concurrently by another call
    }
    if !changes_customers {
        lock_rows_to_write(client, &requests, &known);
    }

    let mut pending = Pending { items: Vec::new() };
    for (index, req) in &requests {
        let fast = known
            .get(&req.uid)
            .filter(|k| matches!(req.claim, ingest::Claim::None) && !req.changes(&k.state_for(req)));
        if let Some(k) = fast {
            pending.items.push((*index, req, k.state.own_profile, k.state.root));
            if pending.items.len() >= FLUSH_EVERY {
                flush(client, batch, &mut pending, &mut outcome);
            }
            continue;
        }
        flush(client, batch, &mut pending, &mut outcome);
        let Some(tracked) = ingest::track_event(client, req) else {
            outcome.suppressed += 1; // an erased UID
            continue;
        };
        outcome.profile_ids[*index] = Some(tracked.root);
        if tracked.stored {
            outcome.stored += 1;
        } else {
            outcome.duplicates += 1;
        }
        // The event changed its own UID; an identify also merged profiles
        // (other UIDs of the batch may now belong to the customer).
        for k in known.values_mut() {
            if tracked.merged.contains(&k.state.own_profile) {
                k.state.root = tracked.root;
                k.state.root_is_customer = true;
            }
        }
        known.remove(&req.uid);
        known.extend(load_known(client, vec![req.uid.clone()]));
    }
    flush(client, batch, &mut pending, &mut outcome);
    outcome
}

/// In a batch that only takes the identity lock shared, other batches may
/// write the same profiles: lock every row this batch will write up front,
/// in ascending order.
fn lock_rows_to_write(client: &mut SpiClient<'_>, requests: &[(usize, TrackRequest)], known: &HashMap<String, Known>) {
    let rows: BTreeSet<i64> = requests
        .iter()
        .filter_map(|(_, r)| known.get(&r.uid).filter(|k| r.changes(&k.state_for(r))).map(|k| k.state.own_profile))
        .collect();
    if !rows.is_empty() {
        exec(
            client,
            "SELECT 1 FROM cdp.profiles WHERE profile_id = ANY($1) ORDER BY profile_id FOR NO KEY UPDATE",
            &[rows.into_iter().collect::<Vec<i64>>().into()],
        );
    }
}

/// Inserts the pending events in one statement. An item whose message id is
/// already stored (or came earlier in the batch) is a duplicate and answers
/// with the profile of the stored event.
fn flush(client: &mut SpiClient<'_>, batch: pg_sys::Datum, pending: &mut Pending<'_>, outcome: &mut BatchOutcome) {
    if pending.items.is_empty() {
        return;
    }
    let items = std::mem::take(&mut pending.items);
    let column_of = |f: &dyn Fn(&TrackRequest) -> Option<String>| items.iter().map(|(_, r, _, _)| f(r)).collect::<Vec<Option<String>>>();
    let profiles: Vec<i64> = items.iter().map(|(_, _, own, _)| *own).collect();
    let times: Vec<TimestampWithTimeZone> = items.iter().map(|(_, r, _, _)| r.event_time).collect();
    let inserted: HashSet<String> = exec(
        client,
        "INSERT INTO cdp.events (profile_id, uid, category, action, event_time, session_id, message_id, payload)
         SELECT t.profile_id, t.uid, t.category, t.action, t.event_time, t.session_id, t.message_id,
                CASE WHEN pg_catalog.jsonb_typeof(pg_catalog.jsonb_extract_path($8, t.position::text, 'payload')) = 'object'
                     THEN pg_catalog.jsonb_extract_path($8, t.position::text, 'payload') ELSE '{}' END
         FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                         pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::timestamptz[]), pg_catalog.unnest($6::text[]),
                         pg_catalog.unnest($7::text[]), pg_catalog.unnest($9::int[]))
              AS t(profile_id, uid, category, action, event_time, session_id, message_id, position)
         ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING
         RETURNING message_id",
        &[
            profiles.into(),
            column_of(&|r| Some(r.uid.clone())).into(),
            column_of(&|r| Some(r.category.clone())).into(),
            column_of(&|r| Some(r.action.clone())).into(),
            times.into(),
            column_of(&|r| r.facts.context.session_id.clone()).into(),
            column_of(&|r| r.message_id.clone()).into(),
            // each payload is taken from the batch as it is (no text round trip)
            jsonb_arg(batch),
            items.iter().map(|(index, _, _, _)| *index as i32).collect::<Vec<i32>>().into(),
        ],
    )
    .filter_map(|row| column::<String>(&row, 1))
    .collect();

    let mut first_of_message: HashSet<&str> = HashSet::new();
    let mut duplicates: Vec<(usize, String)> = Vec::new();
    for (index, req, _, root) in &items {
        match req.message_id.as_deref() {
            Some(m) if !(inserted.contains(m) && first_of_message.insert(m)) => duplicates.push((*index, m.to_string())),
            _ => {
                outcome.stored += 1;
                outcome.profile_ids[*index] = Some(*root);
            }
        }
    }
    if duplicates.is_empty() {
        return;
    }
    outcome.duplicates += duplicates.len();
    let roots: HashMap<String, i64> = exec(
        client,
        "SELECT k.*
         FROM pg_catalog.unnest($1::text[]) AS q(message_id),
              LATERAL (SELECT e.message_id, coalesce(p.merged_into, p.profile_id)
                       FROM cdp.events e JOIN cdp.profiles p ON p.profile_id = e.profile_id
                       WHERE e.message_id = q.message_id OFFSET 0) AS k",
        &[duplicates.iter().map(|(_, m)| m.clone()).collect::<Vec<String>>().into()],
    )
    .filter_map(|row| Some((column::<String>(&row, 1)?, column::<i64>(&row, 2)?)))
    .collect();
    for (index, m) in duplicates {
        outcome.profile_ids[index] = roots.get(&m).copied();
    }
}
