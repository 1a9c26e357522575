//! Customer, custom and system user attributes: which values an event or an
//! identify contributes. Pure Rust; `profiles` stores them.

use crate::identifiers::{junk_reason, normalize_email, normalize_phone};
use crate::payload::Context;
use crate::useragent;
use serde_json::{Map, Value};

/// System user attributes derived from an event's context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemAttributes {
    /// Last-value attributes (browser, os, device type, locale, ...).
    pub last: Map<String, Value>,
    /// First-touch attributes (first page, first referrer): the earliest event wins.
    pub first: Map<String, Value>,
}

pub fn system_attributes(ctx: &Context) -> SystemAttributes {
    let mut last = Map::new();
    if let Some(ua) = ctx.user_agent.as_deref().filter(|s| !s.is_empty()) {
        let parsed = useragent::parse(ua);
        last.insert("user_agent".into(), ua.into());
        last.insert("browser".into(), parsed.browser.into());
        if let Some(v) = parsed.browser_version {
            last.insert("browser_version".into(), v.into());
        }
        last.insert("os".into(), parsed.os.into());
        last.insert("device_type".into(), parsed.device_type.into());
    }
    for (key, value) in [("locale", &ctx.locale), ("timezone", &ctx.timezone), ("ip", &ctx.ip), ("screen", &ctx.screen), ("device_id", &ctx.device_id)] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            last.insert(key.into(), v.into());
        }
    }
    let mut first = Map::new();
    for (key, value) in [("first_page_url", &ctx.page_url), ("first_referrer", &ctx.referrer), ("first_page_title", &ctx.page_title)] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            first.insert(key.into(), v.into());
        }
    }
    SystemAttributes { last, first }
}

/// User attributes worth storing: JSON nulls mean "unknown" and never erase a
/// stored value; `customer_id` is the identity, not an attribute.
pub fn storable(attributes: &Map<String, Value>) -> Map<String, Value> {
    attributes
        .iter()
        .filter(|(k, v)| !v.is_null() && k.as_str() != "customer_id" && !k.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub field: String,
    pub value: String,
    pub reason: String,
}

/// Normalized email and phone identifiers among the attributes, and the
/// values that could not be used (recorded as skips).
pub fn contact_identifiers(attributes: &Map<String, Value>) -> (Vec<Identifier>, Vec<Skip>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let checks: [(&'static str, fn(&str) -> Option<String>, &str); 2] =
        [("email", normalize_email, "not a usable email address"), ("phone", normalize_phone, "not a usable phone number")];
    for (kind, normalize, why) in checks {
        let Some(raw) = attributes.get(kind).and_then(text_of) else { continue };
        match normalize(&raw) {
            Some(value) => found.push(Identifier { kind, value }),
            None => skipped.push(Skip {
                field: format!("attributes.{kind}"),
                value: raw.clone(),
                reason: junk_reason(&raw).unwrap_or(why).to_string(),
            }),
        }
    }
    (found, skipped)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_attributes_from_context() {
        let ctx = Context {
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0".into()),
            locale: Some("vi-VN".into()),
            page_url: Some("https://shop.example/".into()),
            referrer: Some("".into()),
            ..Default::default()
        };
        let s = system_attributes(&ctx);
        assert_eq!(s.last.get("browser"), Some(&json!("Firefox")));
        assert_eq!(s.last.get("os"), Some(&json!("Linux")));
        assert_eq!(s.last.get("device_type"), Some(&json!("desktop")));
        assert_eq!(s.last.get("locale"), Some(&json!("vi-VN")));
        assert_eq!(s.first, json!({"first_page_url": "https://shop.example/"}).as_object().unwrap().clone());
        assert_eq!(system_attributes(&Context::default()), SystemAttributes::default());
    }

    #[test]
    fn contacts_are_normalized_or_skipped() {
        let attrs = json!({"email": " Ann@Example.com", "phone": "undefined", "name": "Ann"});
        let (found, skipped) = contact_identifiers(attrs.as_object().unwrap());
        assert_eq!(found, vec![Identifier { kind: "email", value: "ann@example.com".into() }]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].field, "attributes.phone");
        assert_eq!(skipped[0].reason, "placeholder value");
    }

    #[test]
    fn nulls_are_not_stored() {
        let attrs = json!({"name": null, "plan": "pro", "customer_id": "x"});
        assert_eq!(storable(attrs.as_object().unwrap()), json!({"plan": "pro"}).as_object().unwrap().clone());
    }
}
