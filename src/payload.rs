//! Reading the SDK payload of an event: `dims`, `extra`, `items` and the
//! optional `context` object, read in place from the jsonb binary value (see
//! `jsonb`): only the fields the extension uses are looked at; the payload is
//! stored as it came.

use crate::errors::{CdpError, CdpResult};
use crate::jsonb::{Container, Value};
use crate::timeparse::TimeValue;
use crate::validate::IdentifyType;

/// What an event says about who the visitor is.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyClaim {
    /// Where the customer id came from, for the skip log.
    pub field: &'static str,
    pub customer_id: String,
    pub identify_id: Option<String>,
    pub identify_type: IdentifyType,
    pub identify_time: Option<TimeValue>,
    /// `extra.identify_hash`: the identity hash a backend signed (verified identity).
    pub identify_hash: Option<String>,
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

/// What the extension reads of one payload.
#[derive(Clone)]
pub struct EventFacts<'a> {
    pub claim: Option<IdentifyClaim>,
    /// `dims.users` then `dims.customers` (its values win): customer and
    /// custom user attributes, as sent.
    pub attribute_sources: Vec<Container<'a>>,
    pub context: Context,
}

pub fn read<'a>(payload: Value<'a>) -> CdpResult<EventFacts<'a>> {
    let root = match payload {
        Value::Object(root) => root,
        other => return Err(CdpError::invalid(format!("payload must be a JSON object, not {}", other.type_name()))),
    };
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

    let customer_id = match customers {
        Some(c) => scalar_text(c.get("customer_id"), "payload.dims.customers.customer_id")?,
        None => None,
    };
    let extra_text = |key: &str, path: &str| match extra {
        Some(e) => scalar_text(e.get(key), path),
        None => Ok(None),
    };
    let identify_id = extra_text("identify_id", "payload.extra.identify_id")?;
    let identify_type = extra_text("identify_type", "payload.extra.identify_type")?;
    let identify_time = time_value(extra.and_then(|e| e.get("identify_time")), "payload.extra.identify_time")?;
    let identify_hash = extra_text("identify_hash", "payload.extra.identify_hash")?;

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
            identify_type: IdentifyType::parse(identify_type.as_deref())?,
            identify_time,
            identify_hash,
        }),
        None => None,
    };

    Ok(EventFacts { claim, attribute_sources: [users, customers].into_iter().flatten().collect(), context: read_context(context)? })
}

fn read_context(context: Option<Container<'_>>) -> CdpResult<Context> {
    let Some(c) = context else { return Ok(Context::default()) };
    // (the field's path is only spelled out for an error message)
    let get = |key: &str| match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::String(_)) => Ok(v.as_text().map(|t| t.into_owned())),
        value => scalar_text(value, &format!("payload.context.{key}")),
    };
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

/// An object member: absent and null are None, anything else must be an object.
pub fn object_at<'a>(parent: Container<'a>, key: &str, path: &str) -> CdpResult<Option<Container<'a>>> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(CdpError::invalid(format!("{path} must be a JSON object, not {}", other.type_name()))),
    }
}

/// A string or number as text; null and absent are None; anything else is an error.
pub fn scalar_text(value: Option<Value<'_>>, path: &str) -> CdpResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::String(_)) => Ok(v.as_text().map(|t| t.into_owned())),
        Some(Value::Number(n)) => Ok(Some(n.text())),
        Some(other) => Err(CdpError::invalid(format!("{path} must be a string, not {}", other.type_name()))),
    }
}

/// A JSON string (a number is refused: a UID, category or action is text).
pub fn string_text(value: Option<Value<'_>>, path: &str) -> CdpResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::String(_)) => Ok(v.as_text().map(|t| t.into_owned())),
        Some(other) => Err(CdpError::invalid(format!("{path} must be a JSON string, not {}", other.type_name()))),
    }
}

/// A time: text (ISO 8601 or the SDK's local form) or a number of epoch
/// milliseconds; null and absent are None.
pub fn time_value(value: Option<Value<'_>>, path: &str) -> CdpResult<Option<TimeValue>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::String(_)) => Ok(v.as_text().map(|t| TimeValue::Text(t.into_owned()))),
        Some(Value::Number(n)) => Ok(Some(TimeValue::EpochMillis(n.as_f64()))),
        Some(other) => {
            Err(CdpError::invalid(format!("{path} must be a time (ISO 8601 text or epoch milliseconds), not {}", other.type_name())))
        }
    }
}
