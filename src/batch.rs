//! `cdp.track_batch`: many events in one call, with the rules of
//! `cdp.track_event`. Every item is validated before anything is written, so
//! a bad item is rejected alone; events that only append to a known UID's
//! timeline (nearly all page views) are inserted together in one statement;
//! the others go through `ingest::track_event`, in array order.
//!
//! Locks: a batch whose items only append to known UIDs' timelines takes no
//! lock; any other batch takes its portal's identity lock before its first
//! write (the one lock order of every path, see `portal::lock`).

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identity::suppression;
use crate::ingest::{self, changes};
use crate::jsonb::{Container, JsonbArg, Value};
use crate::payload::{string_text, time_value};
use crate::portal::{self, Portal};
use crate::request::{Claim, EventTime, StoredPayload, TrackRequest};

use crate::tables::events::{self, BatchedEvent};
use crate::tables::profiles::{self, NewUid};
use crate::tables::uids::{self, UidState};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::{json, Value as Json};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Inserted together at most this many at a time, to bound memory.
const FLUSH_EVERY: usize = 1000;

pub struct Rejection {
    pub index: usize,
    pub error: CdpError,
}

/// Reads and validates the items of a batch, in place in the batch's jsonb.
/// Fails as a whole only when the batch itself is unusable (not an array,
/// too many items).
pub fn read_items<'a>(events: &'a JsonbArg, now: TimestampWithTimeZone, portal: &Portal) -> CdpResult<Vec<CdpResult<TrackRequest<'a>>>> {
    let (size, byte_limit) = (events.size(), portal.settings.max_batch_bytes());
    if size > byte_limit {
        return Err(CdpError::new(
            ErrorKind::LimitExceeded,
            format!("the batch is {size} bytes; {} allows {byte_limit}", portal.settings.source_of("max_batch_bytes")),
        )
        .with_hint("Split the batch."));
    }
    let array = match events.root().as_value() {
        Value::Array(array) => array,
        other => return Err(CdpError::invalid(format!("events must be a JSON array, not {}", other.type_name()))),
    };
    let limit = portal.settings.max_batch_items();
    if array.len() > limit {
        return Err(CdpError::new(
            ErrorKind::LimitExceeded,
            format!("the batch has {} events; {} allows {limit}", array.len(), portal.settings.source_of("max_batch_items")),
        )
        .with_hint("Split the batch."));
    }
    Ok((0..array.len())
        .map(|i| match array.element(i) {
            Some(Value::Object(item)) => read_item(item, now, portal),
            other => Err(CdpError::invalid(format!(
                "a batch item must be a JSON object, not {}",
                other.map(|v| v.type_name()).unwrap_or("missing")
            ))),
        })
        .collect())
}

/// The keys a batch item may have.
const ITEM_KEYS: [&str; 5] = ["uid", "category", "action", "payload", "event_time"];

fn read_item<'a>(item: Container<'a>, now: TimestampWithTimeZone, portal: &Portal) -> CdpResult<TrackRequest<'a>> {
    // A misspelt key ("timestamp" for "event_time") would be silently ignored: refuse the item instead.
    if let Some((key, _)) = item.entries().into_iter().find(|(key, _)| !ITEM_KEYS.iter().any(|k| k.as_bytes() == *key)) {
        return Err(CdpError::invalid(format!(
            "a batch item has the unknown key \"{}\"; the keys are {}",
            String::from_utf8_lossy(key).chars().take(64).collect::<String>(),
            ITEM_KEYS.join(", ")
        )));
    }
    let uid = string_text(item.get("uid"), "uid")?;
    let category = string_text(item.get("category"), "category")?;
    let action = string_text(item.get("action"), "action")?;
    let event_time = match time_value(item.get("event_time"), "event_time")? {
        Some(sent) => EventTime::Sent(sent),
        None => EventTime::At(now),
    };
    let payload = match item.get("payload") {
        None | Some(Value::Null) => StoredPayload::Empty,
        Some(Value::Object(payload)) => StoredPayload::Item(payload),
        Some(other) => return Err(CdpError::invalid(format!("payload must be a JSON object, not {}", other.type_name()))),
    };
    TrackRequest::new(uid.as_deref(), category.as_deref(), action.as_deref(), payload, event_time, portal)
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
    pub fn to_json(&self) -> Json {
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
pub fn track_batch(client: &mut SpiClient<'_>, portal: &Portal, batch: &JsonbArg, items: Vec<CdpResult<TrackRequest<'_>>>) -> BatchOutcome {
    let here = portal.name.as_str();
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

    let distinct: BTreeSet<&str> = requests.iter().map(|(_, r)| r.uid.as_str()).collect();
    let resolve_all = |client: &mut SpiClient<'_>| -> HashMap<String, UidState> {
        uids::resolve_many(client, here, distinct.iter().map(|u| u.to_string()).collect()).into_iter().collect()
    };
    let mut known = resolve_all(client);
    // Anything but appends to known UIDs writes identity state: lock, then look again.
    let writes = requests.iter().any(|(_, r)| !matches!(r.claim, Claim::None) || known.get(&r.uid).is_none_or(|k| changes(r, k)));
    if writes {
        portal::lock(client, portal);
        known = resolve_all(client);
    }

    // New UIDs first, all at once in sorted order, each from its first event
    // (an identifying first event creates its mapping itself).
    // Only UIDs that first appear before the batch's first identify are made
    // up front: a UID first seen after a sign-in must not exist when that
    // sign-in links profiles (the batch means exactly what its events one by
    // one mean); those are made in order, by the general path.
    let first_identify = requests.iter().position(|(_, r)| r.identifies()).unwrap_or(requests.len());
    let mut first_request: HashMap<&str, (usize, &TrackRequest<'_>)> = HashMap::new();
    for (order, (_, r)) in requests.iter().enumerate() {
        first_request.entry(r.uid.as_str()).or_insert((order, r));
    }
    let unknown: Vec<&str> = distinct.iter().copied().filter(|u| !known.contains_key(*u)).collect();
    let erased = suppression::erased_among(client, here, &unknown);
    let new_uids: Vec<&TrackRequest<'_>> = unknown
        .iter()
        .filter(|u| !erased.contains(**u))
        .map(|u| first_request[u])
        .filter(|(order, r)| *order < first_identify && !r.identifies())
        .map(|(_, r)| r)
        .collect();
    let created = profiles::create_anonymous(
        client,
        here,
        &new_uids
            .iter()
            .map(|r| NewUid {
                uid: &r.uid,
                system: r.system(),
                seen_at: r.event_time,
                device_id: r.device_id.as_deref(),
                quarantined: r.junk_uid.is_some(),
            })
            .collect::<Vec<_>>(),
    );

    let by_uid: HashMap<&str, &TrackRequest<'_>> = new_uids.iter().map(|r| (r.uid.as_str(), *r)).collect();
    for (uid, profile_id) in &created {
        let first = by_uid[uid.as_str()];
        known.insert(uid.clone(), UidState::created(*profile_id, first.event_time, first.device_id.clone(), first.system_fields.clone()));
    }

    let mut pending: Vec<BatchedEvent<'_, '_>> = Vec::new();
    let mut roots: HashMap<usize, i64> = HashMap::new();
    for (index, req) in &requests {
        let fast = known.get(&req.uid).filter(|k| matches!(req.claim, Claim::None) && !changes(req, k));
        if let Some(k) = fast {
            pending.push(BatchedEvent { position: *index, req, profile_id: k.own_profile });
            roots.insert(*index, k.root);
            if pending.len() >= FLUSH_EVERY {
                flush(client, here, batch, &mut pending, &roots, &mut outcome);
            }
            continue;
        }
        flush(client, here, batch, &mut pending, &roots, &mut outcome);
        let Some(tracked) = ingest::track_event(client, portal, req) else {
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
            if tracked.merged.contains(&k.own_profile) {
                k.root = tracked.root;
                k.root_is_customer = true;
            }
        }
        known.remove(&req.uid);
        known.extend(uids::resolve_many(client, here, vec![req.uid.clone()]));
    }
    flush(client, here, batch, &mut pending, &roots, &mut outcome);
    outcome
}

/// Inserts the pending events in one statement. An item whose message id is
/// already stored (or came earlier in the batch) is a duplicate and answers
/// with the profile of the stored event.
fn flush(
    client: &mut SpiClient<'_>,
    portal: &str,
    batch: &JsonbArg,
    pending: &mut Vec<BatchedEvent<'_, '_>>,
    roots: &HashMap<usize, i64>,
    outcome: &mut BatchOutcome,
) {
    if pending.is_empty() {
        return;
    }
    let items = std::mem::take(pending);
    let inserted = events::insert_batch(client, portal, batch, &items);
    let mut first_of_message: HashSet<&str> = HashSet::new();
    let mut duplicates: Vec<(usize, String)> = Vec::new();
    for e in &items {
        match e.req.message_id.as_deref() {
            Some(m) if !(inserted.contains(m) && first_of_message.insert(m)) => duplicates.push((e.position, m.to_string())),
            _ => {
                outcome.stored += 1;
                outcome.profile_ids[e.position] = roots.get(&e.position).copied();
            }
        }
    }
    if duplicates.is_empty() {
        return;
    }
    outcome.duplicates += duplicates.len();
    let stored_roots = events::roots_of_messages(client, portal, duplicates.iter().map(|(_, m)| m.clone()).collect());
    for (position, m) in duplicates {
        outcome.profile_ids[position] = stored_roots.get(&m).copied();
    }
}
