//! The SDK's wire format, read without changing what the client sent except
//! `context.ip` and `context.user_agent`: values are kept as raw JSON text
//! (numbers such as `1.10` or `1e400` reach the database exactly as written,
//! where jsonb stores them exactly), and only the objects on the way to the
//! context are taken apart.
//!
//! `POST /v1/batch`: `{"batch": [item, ...], "sent_at": "<ISO>"}`;
//! `POST /v1/event`: one item. An item is a `cdp.track_batch` item; the
//! database checks items one by one (a bad item is rejected alone, in the
//! report), so here only the envelope is checked.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    sent_at: Option<&'a RawValue>,
}

/// What the collector writes into every item's context.
pub struct Stamp<'a> {
    pub ip: &'a str,
    pub user_agent: Option<&'a str>,
}

/// A request body turned into the JSON array given to cdp.track_batch.
#[derive(Debug)]
pub struct Prepared {
    pub json: String,
    /// Items in the request.
    pub items: usize,
    /// For each item sent to the database, its index in the request.
    pub positions: Vec<usize>,
    /// Items jsonb cannot hold (`\u0000`, a lone surrogate), rejected here
    /// like the database rejects an item: (index, sqlstate, message).
    pub refused: Vec<(usize, &'static str, &'static str)>,
}

impl Prepared {
    fn new(stamped: Vec<String>) -> Prepared {
        let items = stamped.len();
        let mut kept = Vec::with_capacity(items);
        let mut positions = Vec::with_capacity(items);
        let mut refused = Vec::new();
        for (i, item) in stamped.into_iter().enumerate() {
            match unstorable(&item) {
                Some((code, message)) => refused.push((i, code, message)),
                None => {
                    positions.push(i);
                    kept.push(item);
                }
            }
        }
        Prepared { json: format!("[{}]", kept.join(",")), items, positions, refused }
    }

    /// The database's report in terms of the request: indexes of the items
    /// as sent, the items refused here among the rejected, a null profile id
    /// for each of them.
    pub fn report(&self, mut report: serde_json::Value) -> serde_json::Value {
        use serde_json::{json, Value};
        if self.refused.is_empty() {
            return report;
        }
        let Some(map) = report.as_object_mut() else { return report };
        let mut rejected: Vec<Value> = match map.remove("rejected") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        for r in &mut rejected {
            if let Some(i) = r.get("index").and_then(Value::as_u64) {
                if let Some(original) = self.positions.get(i as usize) {
                    r["index"] = json!(original);
                }
            }
        }
        rejected.extend(self.refused.iter().map(|(i, code, message)| json!({"index": i, "sqlstate": code, "message": message})));
        rejected.sort_by_key(|r| r.get("index").and_then(Value::as_u64).unwrap_or(u64::MAX));
        map.insert("rejected".into(), Value::Array(rejected));
        if let Some(Value::Array(ids)) = map.remove("profile_ids") {
            let mut all = vec![Value::Null; self.items];
            for (id, position) in ids.into_iter().zip(&self.positions) {
                all[*position] = id;
            }
            map.insert("profile_ids".into(), Value::Array(all));
        }
        report
    }
}

/// Text PostgreSQL's jsonb refuses, which would fail the whole batch: the
/// escape `\u0000` (22P05) and surrogate escapes that are not a pair (22P02).
/// `text` is valid JSON, so every backslash is inside a string.
fn unstorable(text: &str) -> Option<(&'static str, &'static str)> {
    let bytes = text.as_bytes();
    let hex = |at: usize| -> Option<u32> { u32::from_str_radix(text.get(at..at + 4)?, 16).ok() };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let code = hex(i + 2)?;
        i += 6;
        match code {
            0 => return Some(("22P05", "the item contains \\u0000, which PostgreSQL text cannot hold")),
            0xD800..=0xDBFF => {
                let low = if bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u') { hex(i + 2) } else { None };
                match low {
                    Some(0xDC00..=0xDFFF) => i += 6,
                    _ => return Some(("22P02", "the item contains a Unicode high surrogate escape without its low surrogate")),
                }
            }
            0xDC00..=0xDFFF => return Some(("22P02", "the item contains a Unicode low surrogate escape without its high surrogate")),
            _ => {}
        }
    }
    None
}

pub fn prepare_batch(body: &str, stamp: &Stamp) -> Result<Prepared, String> {
    let parsed: BatchBody =
        serde_json::from_str(body).map_err(|e| format!("the body must be {{\"batch\": [events...], \"sent_at\": \"<ISO time>\"}}: {e}"))?;
    if let Some(sent_at) = parsed.sent_at {
        let v: serde_json::Value = serde_json::from_str(sent_at.get()).map_err(|e| e.to_string())?;
        if !(v.is_string() || v.is_null()) {
            return Err("sent_at must be a string (an ISO 8601 time)".into());
        }
    }
    let mut items = Vec::with_capacity(parsed.batch.len());
    for item in &parsed.batch {
        items.push(stamp_item(item, stamp)?);
    }
    Ok(Prepared::new(items))
}

pub fn prepare_event(body: &str, stamp: &Stamp) -> Result<Prepared, String> {
    let item: &RawValue = serde_json::from_str(body).map_err(|e| format!("the body must be one event object: {e}"))?;
    if !item.get().trim_start().starts_with('{') {
        return Err("the body must be one event object {\"uid\", \"category\", \"action\", \"event_time\", \"payload\"}".into());
    }
    Ok(Prepared::new(vec![stamp_item(item, stamp)?]))
}

type Object<'a> = BTreeMap<String, &'a RawValue>;

fn raw(text: String) -> Result<Box<RawValue>, String> {
    RawValue::from_string(text).map_err(|e| e.to_string())
}

fn is_object(v: &RawValue) -> bool {
    v.get().trim_start().starts_with('{')
}

fn is_null(v: &RawValue) -> bool {
    v.get().trim() == "null"
}

/// The item with the collector's context fields. Items that are not objects,
/// and payloads or contexts that are not objects, are passed on unchanged: the
/// database rejects that item alone (22023) and reports it.
fn stamp_item(item: &RawValue, stamp: &Stamp) -> Result<String, String> {
    if !is_object(item) {
        return Ok(item.get().to_string());
    }
    let mut fields: Object = serde_json::from_str(item.get()).map_err(|e| e.to_string())?;
    let payload_text = match fields.get("payload") {
        None => Some(stamp_payload(None, stamp)?),
        Some(p) if is_null(p) => Some(stamp_payload(None, stamp)?),
        Some(p) if is_object(p) => Some(stamp_payload(Some(p), stamp)?),
        Some(_) => None,
    };
    let payload_raw;
    if let Some(text) = payload_text {
        payload_raw = raw(text)?;
        fields.insert("payload".into(), &payload_raw);
    }
    serde_json::to_string(&fields).map_err(|e| e.to_string())
}

fn stamp_payload(payload: Option<&RawValue>, stamp: &Stamp) -> Result<String, String> {
    let mut fields: Object = match payload {
        Some(p) => serde_json::from_str(p.get()).map_err(|e| e.to_string())?,
        None => Object::new(),
    };
    let mut context: Object = match fields.get("context") {
        None => Object::new(),
        Some(c) if is_null(c) => Object::new(),
        Some(c) if is_object(c) => serde_json::from_str(c.get()).map_err(|e| e.to_string())?,
        // not an object: the database rejects the item, nothing to stamp
        Some(_) => return serde_json::to_string(&fields).map_err(|e| e.to_string()),
    };
    let ip = raw(serde_json::to_string(stamp.ip).map_err(|e| e.to_string())?)?;
    context.insert("ip".into(), &ip);
    let ua;
    match stamp.user_agent {
        Some(agent) => {
            ua = raw(serde_json::to_string(agent).map_err(|e| e.to_string())?)?;
            context.insert("user_agent".into(), &ua);
        }
        None => {
            context.remove("user_agent");
        }
    }
    let context_raw = raw(serde_json::to_string(&context).map_err(|e| e.to_string())?)?;
    fields.insert("context".into(), &context_raw);
    serde_json::to_string(&fields).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const STAMP: Stamp = Stamp { ip: "203.0.113.9", user_agent: Some("Mozilla/5.0 \"quoted\"") };

    fn items(p: &Prepared) -> Vec<Value> {
        serde_json::from_str::<Vec<Value>>(&p.json).unwrap()
    }

    #[test]
    fn stamps_every_item_and_overrides_the_client() {
        let body = r#"{"batch": [
            {"uid": "u1", "category": "page", "action": "view", "payload": {"context": {"ip": "6.6.6.6", "user_agent": "spoof", "device_id": "d"}}},
            {"uid": "u2", "category": "page", "action": "view"},
            {"uid": "u3", "category": "page", "action": "view", "payload": null},
            {"uid": "u4", "category": "page", "action": "view", "payload": {"dims": {"a": 1}, "context": null}}
        ], "sent_at": "2026-11-30T10:00:00Z"}"#;
        let p = prepare_batch(body, &STAMP).unwrap();
        assert_eq!(p.items, 4);
        for item in items(&p) {
            assert_eq!(item["payload"]["context"]["ip"], "203.0.113.9");
            assert_eq!(item["payload"]["context"]["user_agent"], "Mozilla/5.0 \"quoted\"");
        }
        let all = items(&p);
        assert_eq!(all[0]["payload"]["context"]["device_id"], "d");
        assert_eq!(all[3]["payload"]["dims"], json!({"a": 1}));
    }

    #[test]
    fn keeps_numbers_exactly() {
        let body = r#"{"batch": [{"uid": "u", "category": "c", "action": "a", "event_time": 1764497709250,
                      "payload": {"extra": {"price": 1.10, "huge": 1e400}}}]}"#;
        let p = prepare_batch(body, &STAMP).unwrap();
        assert!(p.json.contains("1.10"), "{}", p.json);
        assert!(p.json.contains("1e400"), "{}", p.json);
        assert!(p.json.contains("1764497709250"), "{}", p.json);
    }

    #[test]
    fn removes_a_client_user_agent_when_the_request_has_none() {
        let stamp = Stamp { ip: "::1", user_agent: None };
        let p =
            prepare_event(r#"{"uid": "u", "category": "c", "action": "a", "payload": {"context": {"user_agent": "x"}}}"#, &stamp).unwrap();
        let item = &items(&p)[0];
        assert_eq!(item["payload"]["context"], json!({"ip": "::1"}));
    }

    #[test]
    fn passes_items_the_database_will_reject_unchanged() {
        let body = r#"{"batch": [7, {"uid": "u", "category": "c", "action": "a", "payload": "text"},
                       {"uid": "u", "category": "c", "action": "a", "payload": {"context": [1]}}]}"#;
        let p = prepare_batch(body, &STAMP).unwrap();
        let all = items(&p);
        assert_eq!(all[0], json!(7));
        assert_eq!(all[1]["payload"], "text");
        assert_eq!(all[2]["payload"]["context"], json!([1]));
    }

    #[test]
    fn items_jsonb_cannot_hold_are_rejected_alone() {
        let body = r#"{"batch": [
            {"uid": "ok1", "category": "c", "action": "a"},
            {"uid": "nul", "category": "c", "action": "a", "payload": {"extra": {"s": "x\u0000y"}}},
            {"uid": "ok2", "category": "c", "action": "a", "payload": {"extra": {"pair": "\ud83d\ude00", "esc": "\\u0000"}}},
            {"uid": "lone", "category": "c", "action": "a", "payload": {"extra": {"s": "\udc00"}}},
            {"uid": "ok3", "category": "c", "action": "a"}
        ]}"#;
        let p = prepare_batch(body, &STAMP).unwrap();
        assert_eq!(p.items, 5);
        assert_eq!(p.positions, vec![0, 2, 4]);
        assert_eq!(items(&p).len(), 3);
        let from_db = json!({"accepted": 2, "stored": 2, "duplicates": 0, "suppressed": 0,
                             "rejected": [{"index": 2, "sqlstate": "22023", "message": "m"}], "profile_ids": [10, 11, null]});
        let report = p.report(from_db);
        assert_eq!(report["rejected"].as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 3, 4]);
        assert_eq!(report["rejected"][0]["sqlstate"], "22P05");
        assert_eq!(report["rejected"][1]["sqlstate"], "22P02");
        assert_eq!(report["profile_ids"], json!([10, null, 11, null, null]));
        assert_eq!(report["stored"], 2);
    }

    #[test]
    fn refuses_what_is_not_the_envelope() {
        for body in [
            "",
            "not json",
            "[]",
            r#"{"events": []}"#,
            r#"{"batch": {}}"#,
            r#"{"batch": [], "extra": 1}"#,
            r#"{"batch": [], "sent_at": 5}"#,
            r#"{"batch": [{"uid": "u"}"#,
        ] {
            assert!(prepare_batch(body, &STAMP).is_err(), "{body}");
        }
        assert!(prepare_event("[{}]", &STAMP).is_err());
        assert!(prepare_event("\"x\"", &STAMP).is_err());
        assert!(prepare_event("{", &STAMP).is_err());
        assert_eq!(prepare_batch(r#"{"batch": []}"#, &STAMP).unwrap().json, "[]");
    }
}
