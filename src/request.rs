//! Validated requests: everything `track_event`, `track_batch` and
//! `identify` need is checked here, before anything is read or written, so
//! processing a request can no longer fail on its input. Pure: no database
//! access (settings are read, not written).

use crate::attributes::{
    contact_identifiers, first_touch, system_attributes, Attributes, Identifier, Skip, SystemAttributes, SystemFields,
};
use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identifiers::{identity_hash_is_valid, junk_reason};
use crate::jsonb::{Container, JsonbArg, Value};
use crate::payload::{self, Context};
use crate::portal::Portal;
use crate::settings::{PortalSettings, PredictSettings, Verification};
use crate::timeparse::{self, TimeValue, Zone};
use crate::validate::{self, IdentifyType};
use pgrx::datum::TimestampWithTimeZone;

/// When an event happened: given by the caller as a timestamptz, or sent
/// inside JSON (a batch item's `event_time`), read like every JSON time.
pub enum EventTime {
    At(TimestampWithTimeZone),
    Sent(TimeValue),
}

/// A time sent inside JSON (see `timeparse`), as a timestamptz. Local-form
/// times are read in `context_timezone` when the event has one (it must be
/// a known zone), else in the portal's `default_timezone`; never in the
/// session's TimeZone.
pub fn time_at(
    field: &str,
    value: &TimeValue,
    context_timezone: Option<&str>,
    settings: &PortalSettings,
) -> CdpResult<TimestampWithTimeZone> {
    let zone = || match context_timezone.map(str::trim).filter(|tz| !tz.is_empty()) {
        Some(tz) => Zone::named("payload.context.timezone", tz),
        None => settings.default_zone(),
    };
    let micros = timeparse::instant(field, value, zone)?;
    TimestampWithTimeZone::try_from(micros).map_err(|_| CdpError::new(ErrorKind::DatetimeOverflow, format!("{field} is out of range")))
}

/// One identify, checked: the customer id is usable, the attributes are an
/// object, the evidence it brings is normalized, the predict settings are
/// sound.
pub struct IdentifyRequest {
    pub uid: String,
    pub customer_id: String,
    pub attributes: Attributes,
    pub identify_type: IdentifyType,
    pub identify_time: TimestampWithTimeZone,
    /// The identifying event's `context.device_id`, junk already removed.
    pub device_id: Option<String>,
    /// Person-level identifiers this identify brings (email, phone, identify id).
    pub person: Vec<Identifier>,
    /// Values that could not be used, recorded as skips.
    pub skips: Vec<Skip>,
    /// Read and checked only for `predict`.
    pub predict: Option<PredictSettings>,
}

/// Where an identify's attributes come from.
pub enum AttributeSource<'a> {
    /// An event's `dims.customers` (and `dims.users`), already combined.
    Event(Attributes),
    /// `cdp.identify`'s `attributes` argument: NULL means none, anything but
    /// an object is refused.
    Argument(Option<&'a JsonbArg>),
}

/// What an identify was given, before any check.
pub struct IdentifyInput<'a> {
    pub uid: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub attributes: AttributeSource<'a>,
    pub identify_type: Option<&'a str>,
    pub identify_time: TimestampWithTimeZone,
    pub identify_id: Option<&'a str>,
    pub device_id: Option<String>,
}

impl IdentifyRequest {
    /// Checks in the order a caller reads the arguments: uid, customer id
    /// (usable, not junk), identify type, attributes, then the evidence.
    pub fn new(input: IdentifyInput<'_>, settings: &PortalSettings) -> CdpResult<Self> {
        let IdentifyInput { uid, customer_id, attributes, identify_type, identify_time, identify_id, device_id } = input;
        let uid = validate::identifier("uid", uid)?.to_string();
        let customer_id = validate::identifier("customer_id", customer_id)?.to_string();
        if let Some(why) = junk_reason(&customer_id) {
            return Err(CdpError::invalid(format!("customer_id \"{customer_id}\" cannot identify anybody ({why})"))
                .with_hint("Pass the real customer id, for example md5 of a normalized email that is present."));
        }
        let identify_type = IdentifyType::parse(identify_type)?;
        let attributes = match attributes {
            AttributeSource::Event(attributes) => attributes,
            AttributeSource::Argument(None) => Attributes::none(),
            AttributeSource::Argument(Some(arg)) => match arg.root().as_value() {
                Value::Object(object) => Attributes::from_sources(&[object]),
                other => return Err(CdpError::invalid(format!("attributes must be a JSON object, not {}", other.type_name()))),
            },
        };
        let (mut person, mut skips) = contact_identifiers(&attributes);
        if let Some(iid) = identify_id.map(str::trim).filter(|v| !v.is_empty()) {
            match junk_reason(iid) {
                None => person.push(Identifier { kind: "identify_id", value: iid.to_string() }),
                Some(why) => skips.push(Skip { field: "extra.identify_id".into(), value: iid.into(), reason: why.into() }),
            }
        }
        let predict = match identify_type {
            IdentifyType::Predict => Some(settings.predict()?),
            IdentifyType::Exact => None,
        };
        Ok(IdentifyRequest { uid, customer_id, attributes, identify_type, identify_time, device_id, person, skips, predict })
    }
}

/// What an event's customer id asks for, decided before anything is written.
pub enum Claim {
    None,
    /// A junk customer id, or one without a valid identity hash where the
    /// portal requires it: the event is stored, nobody is identified.
    Refused(Skip),
    Identify(Box<IdentifyRequest>),
}

/// The payload as it is stored.
pub enum StoredPayload<'a> {
    /// `cdp.track_event`'s argument, stored as it came.
    Whole(&'a JsonbArg),
    /// A batch item's payload, a value inside the batch.
    Item(Container<'a>),
    /// A batch item without payload.
    Empty,
}

/// One event, fully validated: processing it can no longer fail on its input.
pub struct TrackRequest<'a> {
    pub uid: String,
    pub category: String,
    pub action: String,
    pub payload: StoredPayload<'a>,
    pub context: Context,
    pub event_time: TimestampWithTimeZone,
    pub claim: Claim,
    /// Customer attributes of an event that does not identify (a lead form).
    pub lead_form: Attributes,
    /// The system-relevant context fields as sent (see `SystemFields`).
    pub system_fields: SystemFields,
    pub has_first_touch: bool,
    pub device_id: Option<String>,
    pub message_id: Option<String>,
}

impl<'a> TrackRequest<'a> {
    pub fn new(
        uid: Option<&str>,
        category: Option<&str>,
        action: Option<&str>,
        payload: StoredPayload<'a>,
        event_time: EventTime,
        portal: &Portal,
    ) -> CdpResult<Self> {
        let settings = &portal.settings;
        let uid = validate::identifier("uid", uid)?.to_string();
        let category = validate::event_name("category", category)?.to_string();
        let action = validate::event_name("action", action)?.to_string();
        let (value, size) = match &payload {
            StoredPayload::Whole(arg) => (arg.root().as_value(), arg.size()),
            StoredPayload::Item(container) => (container.as_value(), container.byte_len()),
            StoredPayload::Empty => (Value::Null, 0),
        };
        let limit = settings.max_payload_bytes();
        if size > limit {
            return Err(CdpError::new(
                ErrorKind::LimitExceeded,
                format!("payload is {size} bytes; {} allows {limit}", settings.source_of("max_payload_bytes")),
            ));
        }
        let facts = match value {
            Value::Null if matches!(payload, StoredPayload::Empty) => {
                payload::EventFacts { claim: None, attribute_sources: Vec::new(), context: Context::default() }
            }
            value => payload::read(value)?,
        };
        let timezone = facts.context.timezone.as_deref();
        let event_time = match event_time {
            EventTime::At(t) => t,
            EventTime::Sent(value) => time_at("event_time", &value, timezone, settings)?,
        };
        let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let device_id = trimmed(&facts.context.device_id).filter(|d| junk_reason(d).is_none());
        let attributes =
            if facts.attribute_sources.is_empty() { Attributes::none() } else { Attributes::from_sources(&facts.attribute_sources) };
        let claim = match &facts.claim {
            None => Claim::None,
            Some(c) => match junk_reason(&c.customer_id) {
                Some(why) => Claim::Refused(Skip { field: c.field.into(), value: c.customer_id.clone(), reason: why.into() }),
                None if !claim_is_verified(portal, c.customer_id.trim(), c.identify_hash.as_deref()) => {
                    Claim::Refused(Skip { field: c.field.into(), value: c.customer_id.clone(), reason: "unverified".into() })
                }
                None => {
                    let identify_time = match &c.identify_time {
                        Some(value) => time_at("identify_time", value, timezone, settings)?,
                        None => event_time,
                    };
                    let input = IdentifyInput {
                        uid: Some(&uid),
                        customer_id: Some(&c.customer_id),
                        attributes: AttributeSource::Event(attributes),
                        identify_type: Some(c.identify_type.as_str()),
                        identify_time,
                        identify_id: c.identify_id.as_deref(),
                        device_id: device_id.clone(),
                    };
                    Claim::Identify(Box::new(IdentifyRequest::new(input, settings)?))
                }
            },
        };
        let lead_form = match claim {
            Claim::Identify(_) => Attributes::none(),
            _ => attributes,
        };
        let message_id = trimmed(&facts.context.message_id);
        let system_fields = SystemFields::of(&facts.context);
        let has_first_touch = !first_touch(&facts.context).is_empty();
        Ok(TrackRequest {
            uid,
            category,
            action,
            payload,
            context: facts.context,
            event_time,
            claim,
            lead_form,
            system_fields,
            has_first_touch,
            device_id,
            message_id,
        })
    }

    pub fn identifies(&self) -> bool {
        matches!(self.claim, Claim::Identify(_))
    }

    /// The system user attributes of this event (parses the user agent: only
    /// asked for when the profile is written).
    pub fn system(&self) -> SystemAttributes {
        system_attributes(&self.context)
    }

    /// Email and phone of a lead form, and the values that were unusable.
    pub fn lead_contacts(&self) -> (Vec<Identifier>, Vec<Skip>) {
        contact_identifiers(&self.lead_form)
    }
}

/// Whether an identity claim in a payload may identify: always where the
/// portal does not require verification; else only with `extra.identify_hash`
/// the HMAC-SHA256 of the customer id under the portal's secret.
fn claim_is_verified(portal: &Portal, customer_id: &str, hash: Option<&str>) -> bool {
    match portal.settings.identity_verification() {
        Verification::Off => true,
        Verification::Required => match (hash, portal.identity_secret.as_deref()) {
            (Some(hash), Some(secret)) => identity_hash_is_valid(customer_id, hash, secret),
            _ => false,
        },
    }
}
