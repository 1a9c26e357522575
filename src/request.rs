//! Validated requests: everything `track_event`, `track_batch` and
//! `identify` need is checked here, before anything is read or written, so
//! processing a request can no longer fail on its input. Pure: no database
//! access (settings are read, not written).

use crate::attributes::{
    contact_identifiers, first_touch, system_attributes, Attributes, Identifier, Skip, SystemAttributes, SystemFields,
};
use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::identifiers::{constant_device_reason, identity_hash_is_valid, junk_reason};
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

/// Deepest nesting accepted in a payload or an attributes object.
pub const MAX_DEPTH: usize = 32;

/// A time an event or identify happened: not infinite and not further in the
/// future than the portal's clock skew allows (22008).
pub fn check_time(field: &str, at: TimestampWithTimeZone, settings: &PortalSettings) -> CdpResult<TimestampWithTimeZone> {
    let skew = settings.clock_skew_s();
    let latest = i64::from(crate::store::transaction_start()).saturating_add(skew.saturating_mul(1_000_000));
    if at.is_infinity() || at.is_neg_infinity() || i64::from(at) > latest {
        return Err(CdpError::new(
            ErrorKind::DatetimeOverflow,
            format!("{field} {at} is infinite or more than {} (clock_skew) in the future", humane_seconds(skew)),
        )
        .with_hint("Send the time the event happened; a device clock far ahead is refused."));
    }
    Ok(at)
}

fn humane_seconds(s: i64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{s} s"),
    }
}

/// Refuses JSON nested deeper than `MAX_DEPTH` (54000).
pub fn check_depth(field: &str, value: &Value<'_>) -> CdpResult<()> {
    if let Value::Object(c) | Value::Array(c) = value {
        if c.depth(MAX_DEPTH) > MAX_DEPTH {
            return Err(CdpError::new(ErrorKind::LimitExceeded, format!("{field} nests deeper than {MAX_DEPTH} levels")));
        }
    }
    Ok(())
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
    let at = TimestampWithTimeZone::try_from(micros)
        .map_err(|_| CdpError::new(ErrorKind::DatetimeOverflow, format!("{field} is out of range")))?;
    check_time(field, at, settings)
}

/// One identify, checked: the customer id is usable, the attributes are an
/// object, the evidence it brings is normalized, the predict settings are
/// sound.
pub struct IdentifyRequest {
    pub uid: String,
    /// Why the UID cannot be attached to the customer (a placeholder such as
    /// `undefined`): the customer is found or made, the UID stays where it is.
    pub junk_uid: Option<Skip>,
    /// A backend's `cdp.identify()` (true) or a claim in an event payload.
    /// Only a trusted identify lifts the suppression of an erased UID.
    pub trusted: bool,
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
    pub trusted: bool,
}

impl IdentifyRequest {
    /// Checks in the order a caller reads the arguments: uid, customer id
    /// (usable, not junk), identify type, attributes, then the evidence.
    pub fn new(input: IdentifyInput<'_>, settings: &PortalSettings) -> CdpResult<Self> {
        let IdentifyInput { uid, customer_id, attributes, identify_type, identify_time, identify_id, device_id, trusted } = input;
        let uid = validate::identifier("uid", uid)?;
        let customer_id = validate::customer_id("customer_id", customer_id)?;
        let junk_uid = junk_reason(&uid).map(|why| Skip { field: "uid".into(), value: uid.clone(), reason: why.into() });
        if let Some(why) = junk_reason(&customer_id) {
            return Err(CdpError::invalid(format!("customer_id \"{customer_id}\" cannot identify anybody ({why})"))
                .with_hint("Pass the real customer id, for example md5 of a normalized email that is present."));
        }
        let identify_type = IdentifyType::parse(identify_type)?;
        let attributes = match attributes {
            AttributeSource::Event(attributes) => attributes,
            AttributeSource::Argument(None) => Attributes::none(),
            AttributeSource::Argument(Some(arg)) => match arg.root().as_value() {
                v @ Value::Object(object) => {
                    check_depth("attributes", &v)?;
                    Attributes::from_sources("attributes", &[object])?
                }
                other => return Err(CdpError::invalid(format!("attributes must be a JSON object, not {}", other.type_name()))),
            },
        };
        let identify_time = check_time("identify_time", identify_time, settings)?;
        let (mut person, mut skips) = contact_identifiers(&attributes, settings.default_phone_region().as_deref())?;
        if let Some(iid) = validate::optional("extra.identify_id", identify_id)? {
            match junk_reason(&iid) {
                None => person.push(Identifier { kind: "identify_id", value: iid }),
                Some(why) => skips.push(Skip { field: "extra.identify_id".into(), value: iid, reason: why.into() }),
            }
        }
        skips.extend(junk_uid.clone());
        let predict = match identify_type {
            IdentifyType::Predict => Some(settings.predict()?),
            IdentifyType::Exact => None,
        };
        // A junk UID never links by device either.
        let device_id = device_id.filter(|_| junk_uid.is_none());
        Ok(IdentifyRequest {
            uid,
            junk_uid,
            customer_id,
            attributes,
            trusted,
            identify_type,
            identify_time,
            device_id,
            person,
            skips,
            predict,
        })
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
    /// Why the UID is a placeholder (`undefined`, `null`, ...): its events go
    /// to a quarantined profile that never merges and never links.
    pub junk_uid: Option<&'static str>,
    pub category: String,
    pub action: String,
    pub payload: StoredPayload<'a>,
    pub context: Context,
    pub event_time: TimestampWithTimeZone,
    pub claim: Claim,
    /// Customer attributes of an event that does not identify (a lead form).
    pub lead_form: Attributes,
    /// The lead form's email and phone, and the values that were unusable.
    pub lead_contacts: (Vec<Identifier>, Vec<Skip>),
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
        let uid = validate::identifier("uid", uid)?;
        let junk_uid = junk_reason(&uid);
        let category = validate::event_name("category", category)?;
        let action = validate::event_name("action", action)?;
        // The size first: a payload over the limit is never read (nor detoasted).
        let size = match &payload {
            StoredPayload::Whole(arg) => arg.size(),
            StoredPayload::Item(container) => container.byte_len(),
            StoredPayload::Empty => 0,
        };
        let limit = settings.max_payload_bytes();
        if size > limit {
            return Err(CdpError::new(
                ErrorKind::LimitExceeded,
                format!("payload is {size} bytes; {} allows {limit}", settings.source_of("max_payload_bytes")),
            ));
        }
        let value = match &payload {
            StoredPayload::Whole(arg) => arg.root().as_value(),
            StoredPayload::Item(container) => container.as_value(),
            StoredPayload::Empty => Value::Null,
        };
        check_depth("payload", &value)?;
        let facts = match value {
            Value::Null if matches!(payload, StoredPayload::Empty) => {
                payload::EventFacts { claim: None, attribute_sources: Vec::new(), context: Context::default() }
            }
            value => payload::read(value)?,
        };
        let timezone = facts.context.timezone.as_deref();
        let event_time = match event_time {
            EventTime::At(t) => check_time("event_time", t, settings)?,
            EventTime::Sent(value) => time_at("event_time", &value, timezone, settings)?,
        };
        let message_id = validate::optional("payload.context.message_id", facts.context.message_id.as_deref())?;
        validate::optional("payload.context.session_id", facts.context.session_id.as_deref())?;
        // A device id many devices share, or any device of a junk UID, never links.
        let device_id = validate::optional("payload.context.device_id", facts.context.device_id.as_deref())?
            .filter(|d| junk_uid.is_none() && constant_device_reason(d, settings.constant_device_ids()).is_none());
        let attributes = if facts.attribute_sources.is_empty() {
            Attributes::none()
        } else {
            Attributes::from_sources("payload.dims.customers", &facts.attribute_sources)?
        };
        let claim = match &facts.claim {
            None => Claim::None,
            Some(c) => {
                let customer_id = validate::customer_id("customer_id", Some(&c.customer_id))?;
                match junk_reason(&customer_id) {
                    Some(why) => Claim::Refused(Skip { field: c.field.into(), value: customer_id, reason: why.into() }),
                    None if !claim_is_verified(portal, &customer_id, c.identify_hash.as_deref()) => {
                        Claim::Refused(Skip { field: c.field.into(), value: customer_id, reason: "unverified".into() })
                    }
                    None => {
                        let identify_time = match &c.identify_time {
                            Some(value) => time_at("identify_time", value, timezone, settings)?,
                            None => event_time,
                        };
                        let input = IdentifyInput {
                            uid: Some(&uid),
                            customer_id: Some(&customer_id),
                            attributes: AttributeSource::Event(attributes),
                            identify_type: Some(c.identify_type.as_str()),
                            identify_time,
                            identify_id: c.identify_id.as_deref(),
                            device_id: device_id.clone(),
                            trusted: false,
                        };
                        Claim::Identify(Box::new(IdentifyRequest::new(input, settings)?))
                    }
                }
            }
        };
        let lead_form = match claim {
            Claim::Identify(_) => Attributes::none(),
            _ => attributes,
        };
        let lead_contacts = match (lead_form.is_empty(), junk_uid) {
            // A junk UID's lead form keeps its attributes but links nobody.
            (false, None) => contact_identifiers(&lead_form, settings.default_phone_region().as_deref())?,
            _ => (Vec::new(), Vec::new()),
        };
        let system_fields = SystemFields::of(&facts.context);
        let has_first_touch = !first_touch(&facts.context).is_empty();
        Ok(TrackRequest {
            uid,
            junk_uid,
            category,
            action,
            payload,
            context: facts.context,
            event_time,
            claim,
            lead_form,
            lead_contacts,
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
