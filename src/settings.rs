//! Settings. Limits and policy belong to a portal: `cdp.configure_portal`
//! stores a portal's overrides (validated here, 22023 naming the key), and
//! whatever a portal does not set comes from the server-level defaults, the
//! `cdp.*` settings below, which only a superuser can change (PGC_SUSET): a
//! caller cannot lift a limit with SET. The `cdp.` prefix is reserved, so a
//! misspelt setting is an error. `cdp.portal` is the one setting a session
//! chooses: which portal its calls work in.

use crate::errors::{CdpError, CdpResult};
use crate::predict::{Weights, DEFAULT_WEIGHTS};
use crate::timeparse::Zone;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use serde_json::{Map, Value};
use std::ffi::CString;

/// The portal of the session's calls.
pub static PORTAL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"default"));

static DEVICE_LINKING: GucSetting<bool> = GucSetting::<bool>::new(true);
static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
static MAX_MERGES_PER_IDENTIFY: GucSetting<i32> = GucSetting::<i32>::new(50);
static MAX_BATCH_ITEMS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static PREDICT_AUTO_MERGE: GucSetting<f64> = GucSetting::<f64>::new(0.95);
static PREDICT_REVIEW: GucSetting<f64> = GucSetting::<f64>::new(0.6);
static PREDICT_PRIOR: GucSetting<f64> = GucSetting::<f64>::new(0.01);
static PREDICT_WEIGHTS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static DEFAULT_TIMEZONE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"UTC"));
static LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5000);
static IDENTITY_VERIFICATION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"off"));
// Unset by default: `merge`, or `suggest` in a portal that requires verified identity.
static CONTACT_LINKING: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static DEFAULT_PHONE_REGION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CLOCK_SKEW: GucSetting<i32> = GucSetting::<i32>::new(86_400);
static MAX_BATCH_BYTES: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024 * 1024);
static SHARED_DEVICE_DETECTION: GucSetting<bool> = GucSetting::<bool>::new(true);
static SHARED_DEVICE_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(30 * 86_400);
static SESSION_IDLE: GucSetting<i32> = GucSetting::<i32>::new(30 * 60);
static SHARED_DEVICE_UIDS: GucSetting<i32> = GucSetting::<i32>::new(0);
static PREDICT_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(30 * 86_400);
static PREDICT_STRONG_SIGNALS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"device_id"));

pub fn register() {
    GucRegistry::define_string_guc(
        c"cdp.portal",
        c"The portal (identity space) the session's cdp calls work in.",
        c"Created with cdp.create_portal; a role may use the portals granted to it (cdp.grant_portal).",
        &PORTAL,
        GucContext::Userset,
        GucFlags::default(),
    );
    for (name, short, setting) in [
        (
            c"cdp.predict_auto_merge",
            c"Default match probability at or above which identify_type 'predict' merges a profile.",
            &PREDICT_AUTO_MERGE,
        ),
        (c"cdp.predict_review", c"Default match probability at or above which a predicted match is suggested for review.", &PREDICT_REVIEW),
        (c"cdp.predict_prior", c"Default prior probability that a scored anonymous profile is the customer.", &PREDICT_PRIOR),
    ] {
        GucRegistry::define_float_guc(name, short, c"Between 0 and 1.", setting, 0.0, 1.0, GucContext::Suset, GucFlags::default());
    }
    for (name, short, long, setting) in [
        (
            c"cdp.predict_weights",
            c"Default m and u probabilities per signal for predicted matching, as a JSON object.",
            c"Signals: device_id, user_agent, ip_network, screen, timezone, locale, recent. Empty means the built-in weights.",
            &PREDICT_WEIGHTS,
        ),
        (
            c"cdp.default_timezone",
            c"Default time zone of local-form times in events without context.timezone.",
            c"An IANA zone name (UTC, Europe/Paris) or an offset (+07:00). The session's TimeZone is never used.",
            &DEFAULT_TIMEZONE,
        ),
        (
            c"cdp.identity_verification",
            c"Default identity verification of claims in event payloads: off or required.",
            c"required: a customer id in a payload identifies only with extra.identify_hash, the HMAC-SHA256 of the id under the portal's secret.",
            &IDENTITY_VERIFICATION,
        ),
                (
            c"cdp.predict_strong_signals",
            c"Default signals of which one must agree for a predicted auto-merge (comma-separated).",
            c"Agreement on other signals alone gives at most a suggestion for review. Empty: no such rule.",
            &PREDICT_STRONG_SIGNALS,
        ),
        (
            c"cdp.default_phone_region",
            c"Default region of phone numbers given without a country code (ISO 3166, e.g. GB, VN).",
            c"Phones are stored in E.164; without a region a national number keeps its digits.",
            &DEFAULT_PHONE_REGION,
        ),
        (
            c"cdp.contact_linking",c"Default for emails and phones from payloads without a verified identity: merge, suggest or off.",
            c"merge: they merge like any evidence; suggest: they make suggestions for review; off: they never link. Unset: merge, or suggest in portals with identity_verification = required.",
            &CONTACT_LINKING,
        ),
    ] {
        GucRegistry::define_string_guc(name, short, long, setting, GucContext::Suset, GucFlags::default());
    }
    for (name, short, long, setting, min, max, flags) in [
        (
            c"cdp.max_merges_per_identify",
            c"Default for the most anonymous profiles one identify merges into a customer.",
            c"Candidates beyond it (weakest evidence first out) are recorded in cdp.identify_skips, not merged.",
            &MAX_MERGES_PER_IDENTIFY,
            1,
            100_000,
            GucFlags::default(),
        ),
        (
            c"cdp.max_batch_items",
            c"Default for the most events one cdp.track_batch call accepts.",
            c"Larger batches fail with SQLSTATE 54000; split them.",
            &MAX_BATCH_ITEMS,
            1,
            1_000_000,
            GucFlags::default(),
        ),
        (
            c"cdp.max_payload_bytes",
            c"Default for the largest event payload accepted.",
            c"Larger payloads fail with SQLSTATE 54000 (a batch item is rejected).",
            &MAX_PAYLOAD_BYTES,
            1024,
            i32::MAX,
            GucFlags::UNIT_BYTE,
        ),
        (
            c"cdp.clock_skew",
            c"Default for how far in the future an event or identify time may be.",
            c"Later times fail with SQLSTATE 22008.",
            &CLOCK_SKEW,
            0,
            i32::MAX,
            GucFlags::UNIT_S,
        ),
        (
            c"cdp.max_batch_bytes",
            c"Default for the largest cdp.track_batch argument.",
            c"Larger batches fail with SQLSTATE 54000 before they are read; split them.",
            &MAX_BATCH_BYTES,
            1024,
            i32::MAX,
            GucFlags::UNIT_BYTE,
        ),
        (
            c"cdp.shared_device_window",
            c"Default window within which two customers identified on one device id or UID make it shared.",
            c"A shared device links no anonymous profiles and starts an anonymous profile per session.",
            &SHARED_DEVICE_WINDOW,
            0,
            i32::MAX,
            GucFlags::UNIT_S,
        ),
        (
            c"cdp.predict_window",
            c"Default window of predicted matching: candidates and value frequencies from profiles recorded within it.",
            c"Candidates are the latest profiles per signal value within the window, found by index.",
            &PREDICT_WINDOW,
            3600,
            i32::MAX,
            GucFlags::UNIT_S,
        ),
        (
            c"cdp.shared_device_uids",
            c"Default number of UIDs (cookies) seen on one device id within shared_device_window that makes it shared.",
            c"Logouts and cleared cookies give a family computer many UIDs; 0 turns this evidence off.",
            &SHARED_DEVICE_UIDS,
            0,
            1_000_000,
            GucFlags::default(),
        ),
        (
            c"cdp.session_idle",
            c"Default idle gap after which an event without a usable session id starts a new session on a shared device.",
            c"Only UIDs on shared devices are split into sessions.",
            &SESSION_IDLE,
            1,
            i32::MAX,
            GucFlags::UNIT_S,
        ),
        (
            c"cdp.lock_timeout",
            c"Default for how long a call waits for its portal's identity lock.",
            c"A longer wait fails with SQLSTATE 55P03.",
            &LOCK_TIMEOUT,
            1,
            600_000,
            GucFlags::UNIT_MS,
        ),
    ] {
        GucRegistry::define_int_guc(name, short, long, setting, min, max, GucContext::Suset, flags);
    }
    GucRegistry::define_bool_guc(
        c"cdp.device_linking",
        c"Default: merge anonymous profiles that share the identifying visitor's device id.",
        c"When on, identify merges every still-anonymous profile seen with the same context.device_id into the customer.",
        &DEVICE_LINKING,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"cdp.shared_device_detection",
        c"Default: detect device ids and UIDs used by several customers, and stop linking through them.",
        c"When on, a device id or UID identified as two customers within shared_device_window is shared.",
        &SHARED_DEVICE_DETECTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    // A misspelt cdp.* setting (SET cdp.max_payload_byte = ...) is an error,
    // not a silently ignored placeholder.
    // SAFETY: called once from _PG_init with a static C string.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"cdp".as_ptr()) };
}

/// The session's portal setting.
pub fn portal_setting() -> String {
    PORTAL.get().map(|c| c.to_string_lossy().into_owned()).unwrap_or_else(|| "default".into())
}

fn text_of(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|c: CString| c.to_string_lossy().into_owned()).filter(|t| !t.trim().is_empty())
}

/// Whether claims in event payloads must carry a valid `identify_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Off,
    Required,
}

/// What emails and phones from payloads without a verified identity do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactLinking {
    Merge,
    Suggest,
    Off,
}

/// The predicted-matching settings, checked together.
#[derive(Debug, Clone)]
pub struct PredictSettings {
    /// Signals of which one must agree for an auto-merge.
    pub strong: Vec<String>,
    /// Seconds back from the identify that candidates and frequencies come from.
    pub window_s: i64,
    pub auto_merge: f64,
    pub review: f64,
    pub prior: f64,
    pub weights: Weights,
}

/// The keys a portal may set, for messages.
const KEYS: &[&str] = &[
    "max_payload_bytes",
    "max_batch_items",
    "max_merges_per_identify",
    "device_linking",
    "predict_auto_merge",
    "predict_review",
    "predict_prior",
    "predict_weights",
    "identity_verification",
    "contact_linking",
    "lock_timeout",
    "default_timezone",
    "default_phone_region",
    "constant_device_ids",
    "clock_skew",
    "max_batch_bytes",
    "shared_device_detection",
    "shared_device_window",
    "session_idle",
    "shared_device_uids",
    "predict_window",
    "predict_strong_signals",
];

/// A portal's settings: its overrides, checked, over the server defaults
/// (read when asked, so a superuser's change of a default applies at once).
#[derive(Debug, Clone, Default)]
pub struct PortalSettings {
    max_payload_bytes: Option<usize>,
    max_batch_items: Option<usize>,
    max_merges_per_identify: Option<usize>,
    device_linking: Option<bool>,
    predict_auto_merge: Option<f64>,
    predict_review: Option<f64>,
    predict_prior: Option<f64>,
    predict_weights: Option<Weights>,
    identity_verification: Option<Verification>,
    contact_linking: Option<ContactLinking>,
    lock_timeout_ms: Option<i32>,
    default_timezone: Option<Zone>,
    default_phone_region: Option<String>,
    constant_device_ids: Vec<String>,
    clock_skew_s: Option<i64>,
    max_batch_bytes: Option<usize>,
    shared_device_detection: Option<bool>,
    shared_device_window_s: Option<i64>,
    session_idle_s: Option<i64>,
    shared_device_uids: Option<i64>,
    predict_window_s: Option<i64>,
    predict_strong_signals: Option<Vec<String>>,
}

impl PortalSettings {
    /// Checks a portal's settings object; 22023 names the offending key.
    pub fn parse(settings: &Map<String, Value>) -> CdpResult<Self> {
        let mut s = PortalSettings::default();
        for (key, value) in settings {
            let bad = |why: &str| CdpError::invalid(format!("portal setting \"{key}\" {why}"));
            let int = |min: i64, max: i64| {
                value
                    .as_i64()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(|| bad(&format!("must be a whole number from {min} to {max}")))
            };
            let probability =
                || value.as_f64().filter(|v| *v > 0.0 && *v < 1.0).ok_or_else(|| bad("must be a number strictly between 0 and 1"));
            let word = |words: &[&str]| {
                value
                    .as_str()
                    .filter(|w| words.contains(w))
                    .map(str::to_string)
                    .ok_or_else(|| bad(&format!("must be one of {}", words.join(", "))))
            };
            match key.as_str() {
                "max_payload_bytes" => s.max_payload_bytes = Some(int(1024, i32::MAX as i64)? as usize),
                "max_batch_items" => s.max_batch_items = Some(int(1, 1_000_000)? as usize),
                "max_merges_per_identify" => s.max_merges_per_identify = Some(int(1, 100_000)? as usize),
                "device_linking" => s.device_linking = Some(value.as_bool().ok_or_else(|| bad("must be true or false"))?),
                "predict_auto_merge" => s.predict_auto_merge = Some(probability()?),
                "predict_review" => s.predict_review = Some(probability()?),
                "predict_prior" => s.predict_prior = Some(probability()?),
                "predict_weights" => {
                    s.predict_weights = Some(Weights::parse(&value.to_string()).map_err(|e| bad(&format!("is not usable: {}", e.message)))?)
                }
                "identity_verification" => {
                    s.identity_verification = Some(match word(&["off", "required"])?.as_str() {
                        "required" => Verification::Required,
                        _ => Verification::Off,
                    })
                }
                "contact_linking" => {
                    s.contact_linking = Some(match word(&["merge", "suggest", "off"])?.as_str() {
                        "suggest" => ContactLinking::Suggest,
                        "off" => ContactLinking::Off,
                        _ => ContactLinking::Merge,
                    })
                }
                "lock_timeout" => s.lock_timeout_ms = Some(int(1, 600_000)? as i32),
                "clock_skew" => s.clock_skew_s = Some(int(0, i32::MAX as i64)?),
                "max_batch_bytes" => s.max_batch_bytes = Some(int(1024, i32::MAX as i64)? as usize),
                "shared_device_detection" => s.shared_device_detection = Some(value.as_bool().ok_or_else(|| bad("must be true or false"))?),
                "shared_device_window" => s.shared_device_window_s = Some(int(0, i32::MAX as i64)?),
                "session_idle" => s.session_idle_s = Some(int(1, i32::MAX as i64)?),
                "shared_device_uids" => s.shared_device_uids = Some(int(0, 1_000_000)?),
                "predict_window" => s.predict_window_s = Some(int(3600, i32::MAX as i64)?),
                "predict_strong_signals" => {
                    let names = value
                        .as_array()
                        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<String>>>())
                        .ok_or_else(|| bad("must be an array of signal names"))?;
                    if let Some(unknown) = names.iter().find(|n| !crate::predict::SIGNALS.contains(&n.as_str())) {
                        return Err(bad(&format!("names the unknown signal \"{unknown}\"; known: {}", crate::predict::SIGNALS.join(", "))));
                    }
                    s.predict_strong_signals = Some(names);
                }
                "default_phone_region" => {
                    let region = value.as_str().unwrap_or_default().trim().to_uppercase();
                    if region.parse::<phonenumber::country::Id>().is_err() {
                        return Err(bad("must be a region code such as GB, US or VN"));
                    }
                    s.default_phone_region = Some(region);
                }
                "constant_device_ids" => {
                    let ids =
                        value.as_array().filter(|a| a.len() <= 1000).ok_or_else(|| bad("must be an array of at most 1000 strings"))?;
                    s.constant_device_ids = ids
                        .iter()
                        .map(|v| v.as_str().filter(|t| t.chars().count() <= 255).map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| bad("must be an array of strings of at most 255 characters"))?;
                }
                "default_timezone" => {
                    let name = value.as_str().ok_or_else(|| bad("must be a time zone name"))?;
                    s.default_timezone = Some(Zone::named("portal setting \"default_timezone\"", name)?);
                }
                _ => {
                    return Err(
                        CdpError::invalid(format!("unknown portal setting \"{key}\"")).with_hint(format!("Known: {}.", KEYS.join(", ")))
                    )
                }
            }
        }
        Ok(s)
    }

    /// Where a limit comes from, for messages: the portal's setting when it
    /// has one, else the server default.
    pub fn source_of(&self, key: &str) -> String {
        let overridden = match key {
            "max_payload_bytes" => self.max_payload_bytes.is_some(),
            "max_batch_items" => self.max_batch_items.is_some(),
            "max_merges_per_identify" => self.max_merges_per_identify.is_some(),
            "max_batch_bytes" => self.max_batch_bytes.is_some(),
            "clock_skew" => self.clock_skew_s.is_some(),
            _ => false,
        };
        if overridden {
            format!("the portal's {key}")
        } else {
            format!("cdp.{key}")
        }
    }

    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes.unwrap_or(MAX_BATCH_BYTES.get() as usize)
    }

    /// How far in the future an event or identify time may be, in seconds.
    pub fn clock_skew_s(&self) -> i64 {
        self.clock_skew_s.unwrap_or_else(|| CLOCK_SKEW.get() as i64)
    }

    /// The region of national phone numbers, if any.
    pub fn default_phone_region(&self) -> Option<String> {
        self.default_phone_region.clone().or_else(|| text_of(&DEFAULT_PHONE_REGION))
    }

    /// The portal's own device ids that never link (besides the built-in list).
    pub fn constant_device_ids(&self) -> &[String] {
        &self.constant_device_ids
    }

    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes.unwrap_or(MAX_PAYLOAD_BYTES.get() as usize)
    }

    pub fn max_batch_items(&self) -> usize {
        self.max_batch_items.unwrap_or(MAX_BATCH_ITEMS.get() as usize)
    }

    pub fn max_merges_per_identify(&self) -> usize {
        self.max_merges_per_identify.unwrap_or(MAX_MERGES_PER_IDENTIFY.get() as usize)
    }

    pub fn device_linking(&self) -> bool {
        self.device_linking.unwrap_or_else(|| DEVICE_LINKING.get())
    }

    pub fn shared_device_detection(&self) -> bool {
        self.shared_device_detection.unwrap_or_else(|| SHARED_DEVICE_DETECTION.get())
    }

    /// Seconds within which two customers on one device id or UID make it shared.
    pub fn shared_device_window_s(&self) -> i64 {
        self.shared_device_window_s.unwrap_or_else(|| SHARED_DEVICE_WINDOW.get() as i64)
    }

    /// UIDs seen on one device id within the window that make it shared (0: never).
    pub fn shared_device_uids(&self) -> i64 {
        self.shared_device_uids.unwrap_or_else(|| SHARED_DEVICE_UIDS.get() as i64)
    }

    /// Seconds of idleness that end a session on a shared device (events without a session id).
    pub fn session_idle_s(&self) -> i64 {
        self.session_idle_s.unwrap_or_else(|| SESSION_IDLE.get() as i64)
    }

    pub fn lock_timeout_ms(&self) -> i32 {
        self.lock_timeout_ms.unwrap_or_else(|| LOCK_TIMEOUT.get())
    }

    pub fn identity_verification(&self) -> Verification {
        self.identity_verification.unwrap_or_else(|| match text_of(&IDENTITY_VERIFICATION).as_deref() {
            Some("required") => Verification::Required,
            _ => Verification::Off,
        })
    }

    /// A portal that requires verified identity does not let an unverified
    /// email merge by default: anybody can type a customer's email into a
    /// lead form (or a forged sign-in), and the customer's next sign-in
    /// would take that browser in.
    pub fn contact_linking(&self) -> ContactLinking {
        self.contact_linking.unwrap_or_else(|| match text_of(&CONTACT_LINKING).as_deref() {
            Some("suggest") => ContactLinking::Suggest,
            Some("off") => ContactLinking::Off,
            Some("merge") => ContactLinking::Merge,
            _ if self.identity_verification() == Verification::Required => ContactLinking::Suggest,
            _ => ContactLinking::Merge,
        })
    }

    /// The zone for local-form times without `context.timezone`.
    pub fn default_zone(&self) -> CdpResult<Zone> {
        match (&self.default_timezone, text_of(&DEFAULT_TIMEZONE)) {
            (Some(zone), _) => Ok(zone.clone()),
            (None, None) => Ok(Zone::utc()),
            (None, Some(name)) => Zone::named("cdp.default_timezone", &name),
        }
    }

    /// The predicted-matching settings; 22023 when they contradict each other.
    pub fn predict(&self) -> CdpResult<PredictSettings> {
        let auto_merge = self.predict_auto_merge.unwrap_or_else(|| PREDICT_AUTO_MERGE.get());
        let review = self.predict_review.unwrap_or_else(|| PREDICT_REVIEW.get());
        let prior = self.predict_prior.unwrap_or_else(|| PREDICT_PRIOR.get());
        if review > auto_merge {
            return Err(CdpError::invalid(format!("predict_review ({review}) must not be above predict_auto_merge ({auto_merge})")));
        }
        if prior <= 0.0 || prior >= 1.0 {
            return Err(CdpError::invalid(format!("predict_prior ({prior}) must be strictly between 0 and 1")));
        }
        let weights = match &self.predict_weights {
            Some(w) => w.clone(),
            None => Weights::parse(text_of(&PREDICT_WEIGHTS).as_deref().unwrap_or(DEFAULT_WEIGHTS))
                .map_err(|e| CdpError::invalid(format!("cdp.predict_weights: {}", e.message)))?,
        };
        let strong = match &self.predict_strong_signals {
            Some(names) => names.clone(),
            None => {
                let names: Vec<String> = text_of(&PREDICT_STRONG_SIGNALS)
                    .unwrap_or_default()
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                if let Some(unknown) = names.iter().find(|n| !crate::predict::SIGNALS.contains(&n.as_str())) {
                    return Err(CdpError::invalid(format!("cdp.predict_strong_signals names the unknown signal \"{unknown}\"")));
                }
                names
            }
        };
        let window_s = self.predict_window_s.unwrap_or_else(|| PREDICT_WINDOW.get() as i64);
        Ok(PredictSettings { strong, window_s, auto_merge, review, prior, weights })
    }
}

/// A portal's settings after a change, and what happens to its secret.
pub struct SettingsChange {
    pub settings: Map<String, Value>,
    /// None: unchanged; Some(None): removed; Some(Some(s)): set.
    pub secret: Option<Option<String>>,
}

/// A portal's settings after `changes`: keys set to JSON null go back to the
/// server default, others replace the stored value; the result is checked.
/// `identity_secret` is taken out (it is stored apart and never shown).
pub fn apply_changes(current: &Map<String, Value>, changes: &Map<String, Value>) -> CdpResult<SettingsChange> {
    let mut next = current.clone();
    let mut secret = None;
    for (key, value) in changes {
        if key == "identity_secret" {
            secret = Some(match value {
                Value::Null => None,
                Value::String(s) if s.chars().count() >= 16 => Some(s.clone()),
                // The value itself is never repeated in a message.
                _ => return Err(CdpError::invalid("portal setting \"identity_secret\" must be a string of at least 16 characters")),
            });
        } else if value.is_null() {
            next.remove(key);
        } else {
            next.insert(key.clone(), value.clone());
        }
    }
    PortalSettings::parse(&next)?.predict()?;
    Ok(SettingsChange { settings: next, secret })
}
