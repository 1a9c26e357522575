//! Reading the SDK payload of an event: `dims`, `extra`, `items` and the
//! optional `context` object. Pure Rust over serde_json values.

use crate::errors::{CdpError, CdpResult};
use crate::timeparse::TimeValue;
use crate::validate::IdentifyType;
use serde_json::{Map, Value};

/// What an event says about who the visitor is.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyClaim {
    /// Where the customer id came from, for the skip log.
    pub field: &'static str,
    pub customer_id: String,
    pub identify_id: Option<String>,
    pub identify_type: IdentifyType,
    pub identify_time: Option<TimeValue>,
}

/// The fields of `payload.context` the extension uses. Other keys are kept
/// in the stored payload untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub device_id: Option<String>,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub page_title: Option<String>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub screen: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFacts {
    pub claim: Option<IdentifyClaim>,
    /// `dims.customers` (and `dims.users`) without `customer_id`: customer and
    /// custom user attributes.
    pub attributes: Map<String, Value>,
    pub context: Context,
}

pub fn read(payload: &Value) -> CdpResult<EventFacts> {
    let root = payload
        .as_object()
        .ok_or_else(|| CdpError::invalid(format!("payload must be a JSON object, not {}", type_name(payload))))?;
    let dims = object_at(root, "dims", "payload.dims")?;
    let extra = object_at(root, "extra", "payload.extra")?;
    let context = object_at(root, "context", "payload.context")?;
    let customers = match dims {
        Some(d) => object_at(d, "customers", "payload.dims.customers")?,
        None => None,
    };
    let users = match dims {
        Some(d) => object_at(d, "users", "payload.dims.users")?,
        None => None,
    };

    let mut attributes = Map::new();
    for source in [users, customers].into_iter().flatten() {
        for (k, v) in source {
            if k != "customer_id" {
                attributes.insert(k.clone(), v.clone());
            }
        }
    }

    let customer_id = match customers {
        Some(c) => scalar_text(c.get("customer_id"), "payload.dims.customers.customer_id")?,
        None => None,
    };
    let identify_id = match extra {
        Some(e) => scalar_text(e.get("identify_id"), "payload.extra.identify_id")?,
        None => None,
    };
    let field_text = |key: &str, path: &str| match extra {
        Some(e) => scalar_text(e.get(key), path),
        None => Ok(None),
    };
    let identify_type_text = field_text("identify_type", "payload.extra.identify_type")?;
    let identify_time = time_value(extra.and_then(|e| e.get("identify_time")), "payload.extra.identify_time")?;

    let claim = match (customer_id, identify_id.clone()) {
        (Some(cid), _) => Some(("payload.dims.customers.customer_id", cid)),
        (None, Some(iid)) => Some(("payload.extra.identify_id", iid)),
        (None, None) => None,
    };
    let claim = match claim {
        Some((field, customer_id)) => Some(IdentifyClaim {
            field,
            customer_id,
            identify_id,
            identify_type: IdentifyType::parse(identify_type_text.as_deref())?,
            identify_time,
        }),
        None => None,
    };

    Ok(EventFacts { claim, attributes, context: read_context(context)? })
}

fn read_context(context: Option<&Map<String, Value>>) -> CdpResult<Context> {
    let Some(c) = context else { return Ok(Context::default()) };
    let get = |key: &str| scalar_text(c.get(key), &format!("payload.context.{key}"));
    Ok(Context {
        device_id: get("device_id")?,
        session_id: get("session_id")?,
        message_id: get("message_id")?,
        user_agent: get("user_agent")?,
        ip: get("ip")?,
        page_url: get("page_url")?,
        referrer: get("referrer")?,
        page_title: get("page_title")?,
        timezone: get("timezone")?,
        locale: get("locale")?,
        screen: get("screen")?,
    })
}

fn object_at<'a>(parent: &'a Map<String, Value>, key: &str, path: &str) -> CdpResult<Option<&'a Map<String, Value>>> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(CdpError::invalid(format!("{path} must be a JSON object, not {}", type_name(other)))),
    }
}

/// A string or number as text; null and absent are None; anything else is an error.
fn scalar_text(value: Option<&Value>, path: &str) -> CdpResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(CdpError::invalid(format!("{path} must be a string, not {}", type_name(other)))),
    }
}

/// A time: text (ISO 8601 or the SDK's local form) or a number of epoch
/// milliseconds; null and absent are None.
pub fn time_value(value: Option<&Value>, path: &str) -> CdpResult<Option<TimeValue>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(TimeValue::Text(s.clone()))),
        Some(Value::Number(n)) => Ok(Some(TimeValue::EpochMillis(n.as_f64().unwrap_or(f64::INFINITY)))),
        Some(other) => Err(CdpError::invalid(format!(
            "{path} must be a time (ISO 8601 text or epoch milliseconds), not {}",
            type_name(other)
        ))),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sign_in_payload_of_the_seed() {
        let facts = read(&json!({
            "dims": {"customers": {"customer_id": "abc", "name": "Ann", "email": "ann@example.com"}},
            "extra": {"identify_id": "abc", "identify_time": "2026-11-30 10:00:00",
                      "identify_event": "user_sign_in", "identify_type": "exact"},
            "context": {"device_id": "d1", "session_id": 42}
        }))
        .unwrap();
        let claim = facts.claim.unwrap();
        assert_eq!(claim.customer_id, "abc");
        assert_eq!(claim.field, "payload.dims.customers.customer_id");
        assert_eq!(claim.identify_time, Some(TimeValue::Text("2026-11-30 10:00:00".into())));
        assert_eq!(facts.attributes, json!({"name": "Ann", "email": "ann@example.com"}).as_object().unwrap().clone());
        assert_eq!(facts.context.device_id.as_deref(), Some("d1"));
        assert_eq!(facts.context.session_id.as_deref(), Some("42"));
    }

    #[test]
    fn identify_id_identifies_without_customer_id() {
        let facts = read(&json!({"extra": {"identify_id": "xyz", "identify_type": "predict"}})).unwrap();
        let claim = facts.claim.unwrap();
        assert_eq!((claim.customer_id.as_str(), claim.identify_type), ("xyz", IdentifyType::Predict));
    }

    #[test]
    fn numeric_identify_time_is_epoch_milliseconds() {
        let facts = read(&json!({"extra": {"identify_id": "x", "identify_time": 1704103872345_u64}})).unwrap();
        assert_eq!(facts.claim.unwrap().identify_time, Some(TimeValue::EpochMillis(1704103872345.0)));
        let bad = read(&json!({"extra": {"identify_id": "x", "identify_time": true}})).unwrap_err();
        assert_eq!(bad.sqlstate(), "22023");
    }

    #[test]
    fn lead_form_sets_attributes_only() {
        let facts = read(&json!({"dims": {"customers": {"email": "a@b.co"}}})).unwrap();
        assert!(facts.claim.is_none());
        assert_eq!(facts.attributes.get("email"), Some(&json!("a@b.co")));
    }

    #[test]
    fn shapes_are_checked() {
        for bad in [json!([]), json!("x"), json!({"dims": 1}), json!({"context": []}),
                    json!({"dims": {"customers": "x"}}), json!({"context": {"device_id": {}}}),
                    json!({"extra": {"identify_type": "maybe", "identify_id": "x"}})] {
            assert_eq!(read(&bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
    }
}
