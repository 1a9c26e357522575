//! Customer, custom and system user attributes: which values an event or an
//! identify contributes. `tables::profile_attributes` stores them.
//!
//! User attributes stay jsonb from end to end: the objects the caller sent
//! are combined into one jsonb object in place (no text round trip), so
//! every value is stored exactly as sent (`1.10` stays `1.10`).

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identifiers::{junk_reason, normalize_email, normalize_phone};
use crate::jsonb::{Container, Value as JsonbValue};
use crate::payload::Context;
use crate::useragent;
use crate::validate::MAX_IDENTIFIER_CHARS;
use pgrx::pg_sys;
use serde_json::{Map, Value};

/// The system-relevant fields of an event's context as sent: what decides
/// whether an event changes its profile's system attributes. The derived
/// ones (browser, os, device type) are functions of the user agent, so an
/// event whose raw fields all match the stored ones changes nothing, and the
/// user agent is only parsed when something changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemFields {
    pub user_agent: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub ip: Option<String>,
    pub screen: Option<String>,
    pub device_id: Option<String>,
}

impl SystemFields {
    pub fn of(ctx: &Context) -> Self {
        let some = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        SystemFields {
            user_agent: some(&ctx.user_agent),
            locale: some(&ctx.locale),
            timezone: some(&ctx.timezone),
            ip: some(&ctx.ip),
            screen: some(&ctx.screen),
            device_id: some(&ctx.device_id),
        }
    }

    /// Whether every field this event has equals the stored one (fields the
    /// event lacks do not matter). The hot-path statement in
    /// `tables::events` checks the same rule in SQL.
    pub fn contained_in(&self, stored: &SystemFields) -> bool {
        let same = |ours: &Option<String>, theirs: &Option<String>| ours.is_none() || ours == theirs;
        same(&self.user_agent, &stored.user_agent)
            && same(&self.locale, &stored.locale)
            && same(&self.timezone, &stored.timezone)
            && same(&self.ip, &stored.ip)
            && same(&self.screen, &stored.screen)
            && same(&self.device_id, &stored.device_id)
    }
}

/// System user attributes derived from an event's context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemAttributes {
    /// Last-value attributes (browser, os, device type, locale, ...).
    pub last: Map<String, Value>,
    /// First-touch attributes (first page, first referrer): the earliest event wins.
    pub first: Map<String, Value>,
}

pub fn system_attributes(ctx: &Context) -> SystemAttributes {
    let fields = SystemFields::of(ctx);
    let mut last = Map::new();
    if let Some(ua) = fields.user_agent.as_deref() {
        let parsed = useragent::parse(ua);
        last.insert("user_agent".into(), ua.into());
        last.insert("browser".into(), parsed.browser.into());
        if let Some(v) = parsed.browser_version {
            last.insert("browser_version".into(), v.into());
        }
        last.insert("os".into(), parsed.os.into());
        last.insert("device_type".into(), parsed.device_type.into());
    }
    for (key, value) in [
        ("locale", &fields.locale),
        ("timezone", &fields.timezone),
        ("ip", &fields.ip),
        ("screen", &fields.screen),
        ("device_id", &fields.device_id),
    ] {
        if let Some(v) = value {
            last.insert(key.into(), v.as_str().into());
        }
    }
    SystemAttributes { last, first: first_touch(ctx) }
}

/// First-touch attributes of an event (first page, first referrer).
pub fn first_touch(ctx: &Context) -> Map<String, Value> {
    let mut first = Map::new();
    for (key, value) in [("first_page_url", &ctx.page_url), ("first_referrer", &ctx.referrer), ("first_page_title", &ctx.page_title)] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            first.insert(key.into(), v.into());
        }
    }
    first
}

/// User attributes worth storing, as one jsonb object: JSON nulls mean
/// "unknown" and never erase a stored value; `customer_id` is the identity,
/// not an attribute; an empty key is dropped. Later sources win per key.
/// Most attributes one object may set.
pub const MAX_ATTRIBUTES: usize = 200;

#[derive(Clone, Copy)]
pub struct Attributes {
    /// A jsonb object datum (owned by the current call); None when empty.
    datum: Option<pg_sys::Datum>,
}

impl Attributes {
    pub fn none() -> Self {
        Attributes { datum: None }
    }

    /// The attributes of these objects; `field` names them in errors. At most
    /// `MAX_ATTRIBUTES` keys (54000) of at most 255 characters (22001).
    pub fn from_sources(field: &str, sources: &[Container<'_>]) -> CdpResult<Self> {
        let pairs: Vec<(&[u8], JsonbValue<'_>)> =
            sources.iter().flat_map(|c| c.entries()).filter(|(k, v)| !v.is_null() && !k.is_empty() && *k != b"customer_id").collect();
        if pairs.len() > MAX_ATTRIBUTES {
            return Err(CdpError::new(
                ErrorKind::LimitExceeded,
                format!("{field} has {} attributes; at most {MAX_ATTRIBUTES} are allowed", pairs.len()),
            ));
        }
        if let Some((key, _)) = pairs.iter().find(|(k, _)| String::from_utf8_lossy(k).chars().count() > MAX_IDENTIFIER_CHARS) {
            let shown: String = String::from_utf8_lossy(key).chars().take(40).collect();
            return Err(CdpError::new(
                ErrorKind::TooLong,
                format!("{field} has an attribute key longer than {MAX_IDENTIFIER_CHARS} characters (\"{shown}...\")"),
            ));
        }
        if pairs.is_empty() {
            return Ok(Attributes::none());
        }
        Ok(Attributes { datum: Some(crate::jsonb::object_datum(&pairs)) })
    }

    pub fn is_empty(&self) -> bool {
        self.datum.is_none()
    }

    /// The jsonb object, for a statement.
    pub fn datum(&self) -> Option<pg_sys::Datum> {
        self.datum
    }

    fn container(&self) -> Option<Container<'_>> {
        // SAFETY: the datum is a jsonb object built by `object_datum`.
        self.datum.map(|d| unsafe { Container::of_datum(d) })
    }

    /// The text of one attribute (a string or a number).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.container()?.get(key)? {
            v @ JsonbValue::String(_) => v.as_text().map(|t| t.into_owned()),
            JsonbValue::Number(n) => Some(n.text()),
            _ => None,
        }
    }
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
/// values that could not be used (recorded as skips). Phones are read in
/// `phone_region` when national. An email or phone over 255 characters is
/// refused (22001).
pub fn contact_identifiers(attributes: &Attributes, phone_region: Option<&str>) -> CdpResult<(Vec<Identifier>, Vec<Skip>)> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let phone = |v: &str| normalize_phone(v, phone_region);
    type Normalize<'f> = &'f dyn Fn(&str) -> Option<String>;
    let checks: [(&'static str, Normalize<'_>, &str); 2] =
        [("email", &normalize_email, "not a usable email address"), ("phone", &phone, "not a usable phone number")];
    for (kind, normalize, why) in checks {
        let Some(raw) = attributes.text(kind) else { continue };
        let chars = raw.chars().count();
        if chars > MAX_IDENTIFIER_CHARS {
            return Err(CdpError::new(
                ErrorKind::TooLong,
                format!("attribute {kind} is {chars} characters long; at most {MAX_IDENTIFIER_CHARS} are allowed"),
            ));
        }
        match normalize(&raw) {
            Some(value) => found.push(Identifier { kind, value }),
            None => skipped.push(Skip {
                field: format!("attributes.{kind}"),
                value: raw.clone(),
                reason: junk_reason(&raw).unwrap_or(why).to_string(),
            }),
        }
    }
    Ok((found, skipped))
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
    fn system_fields_decide_whether_anything_changed() {
        let stored = SystemFields { user_agent: Some("UA".into()), locale: Some("en".into()), ..Default::default() };
        let same_ua = SystemFields { user_agent: Some("UA".into()), ..Default::default() };
        let new_ip = SystemFields { user_agent: Some("UA".into()), ip: Some("10.0.0.1".into()), ..Default::default() };
        let other_ua = SystemFields { user_agent: Some("UA2".into()), ..Default::default() };
        assert!(SystemFields::default().contained_in(&stored), "no context: nothing changes");
        assert!(same_ua.contained_in(&stored), "fields the event lacks do not matter");
        assert!(!new_ip.contained_in(&stored), "a field seen for the first time is a change");
        assert!(!other_ua.contained_in(&stored), "a different value is a change");
        let empty = Context { user_agent: Some(String::new()), ..Default::default() };
        assert_eq!(SystemFields::of(&empty), SystemFields::default(), "empty strings are no value");
    }
}
