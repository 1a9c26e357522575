//! Settings (GUCs) of the extension. The `cdp.` prefix is reserved: a
//! misspelt setting is an error. Most can be set per session, per role, per
//! database or in postgresql.conf; `cdp.default_timezone` only by a superuser.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// Whether identify also merges anonymous profiles seen with the same
/// `context.device_id` (a browser that lost its UID cookie).
pub static DEVICE_LINKING: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Largest accepted event payload: bytes of the stored jsonb (a batch
/// item's payload likewise).
pub static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);

/// Most anonymous profiles one identify merges (a public computer must not
/// fold hundreds of visitors into one customer).
pub static MAX_MERGES_PER_IDENTIFY: GucSetting<i32> = GucSetting::<i32>::new(50);

/// Predicted matching: merge at or above this match probability...
pub static PREDICT_AUTO_MERGE: GucSetting<f64> = GucSetting::<f64>::new(0.95);
/// ...suggest for review at or above this one.
pub static PREDICT_REVIEW: GucSetting<f64> = GucSetting::<f64>::new(0.6);
/// The prior probability that a candidate is the same person.
pub static PREDICT_PRIOR: GucSetting<f64> = GucSetting::<f64>::new(0.01);
/// m/u per signal (see `predict::DEFAULT_WEIGHTS`).
pub static PREDICT_WEIGHTS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// The zone local-form times (`YYYY-MM-DD HH:MM:SS`) are read in when the
/// event carries no `context.timezone`. Server-level (superuser): the
/// meaning of stored times must not depend on who connected.
pub static DEFAULT_TIMEZONE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"UTC"));

/// Most items one `cdp.track_batch` call accepts.
pub static MAX_BATCH_ITEMS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

pub fn register() {
    for (name, short, setting) in [
        (c"cdp.predict_auto_merge", c"Match probability at or above which identify_type 'predict' merges a profile.", &PREDICT_AUTO_MERGE),
        (c"cdp.predict_review", c"Match probability at or above which a predicted match is suggested for review.", &PREDICT_REVIEW),
        (c"cdp.predict_prior", c"Prior probability that a scored anonymous profile is the customer.", &PREDICT_PRIOR),
    ] {
        GucRegistry::define_float_guc(name, short, c"Between 0 and 1.", setting, 0.0, 1.0, GucContext::Userset, GucFlags::default());
    }
    GucRegistry::define_string_guc(
        c"cdp.predict_weights",
        c"m and u probabilities per signal for predicted matching, as a JSON object.",
        c"Signals: device_id, user_agent, ip_network, screen, timezone, locale, recent. Empty means the defaults.",
        &PREDICT_WEIGHTS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"cdp.default_timezone",
        c"Time zone of local-form times in events without context.timezone.",
        c"An IANA zone name (UTC, Europe/Paris) or an offset (+07:00). The session's TimeZone is never used.",
        &DEFAULT_TIMEZONE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"cdp.max_merges_per_identify",
        c"Most anonymous profiles one identify merges into a customer.",
        c"Candidates beyond it (weakest evidence first out) are recorded in cdp.identify_skips, not merged.",
        &MAX_MERGES_PER_IDENTIFY,
        1,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"cdp.max_batch_items",
        c"Most events one cdp.track_batch call accepts.",
        c"Larger batches fail with SQLSTATE 54000; split them.",
        &MAX_BATCH_ITEMS,
        1,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"cdp.device_linking",
        c"Merge anonymous profiles that share the identifying visitor's device id.",
        c"When on, identify merges every still-anonymous profile seen with the same context.device_id into the customer.",
        &DEVICE_LINKING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"cdp.max_payload_bytes",
        c"Largest event payload accepted by cdp.track_event.",
        c"Larger payloads fail with SQLSTATE 54000 (a batch item is rejected).",
        &MAX_PAYLOAD_BYTES,
        1024,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_BYTE,
    );
    // A misspelt cdp.* setting (SET cdp.max_payload_byte = ...) is an error,
    // not a silently ignored placeholder.
    // SAFETY: called once from _PG_init with a static C string.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"cdp".as_ptr()) };
}

pub fn device_linking() -> bool {
    DEVICE_LINKING.get()
}

pub fn max_payload_bytes() -> usize {
    MAX_PAYLOAD_BYTES.get() as usize
}

pub fn max_batch_items() -> usize {
    MAX_BATCH_ITEMS.get() as usize
}

/// The zone for local-form times without `context.timezone`.
pub fn default_zone() -> crate::errors::CdpResult<crate::timeparse::Zone> {
    match DEFAULT_TIMEZONE.get() {
        None => Ok(crate::timeparse::Zone::utc()),
        Some(name) => crate::timeparse::Zone::named("cdp.default_timezone", &name.to_string_lossy()),
    }
}

pub fn max_merges_per_identify() -> usize {
    MAX_MERGES_PER_IDENTIFY.get() as usize
}

/// The predicted-matching settings, checked together.
pub struct PredictSettings {
    pub auto_merge: f64,
    pub review: f64,
    pub prior: f64,
    pub weights: crate::predict::Weights,
}

pub fn predict_settings() -> crate::errors::CdpResult<PredictSettings> {
    let (auto_merge, review, prior) = (PREDICT_AUTO_MERGE.get(), PREDICT_REVIEW.get(), PREDICT_PRIOR.get());
    if review > auto_merge {
        return Err(crate::errors::CdpError::invalid(format!(
            "cdp.predict_review ({review}) must not be above cdp.predict_auto_merge ({auto_merge})"
        )));
    }
    if prior <= 0.0 || prior >= 1.0 {
        return Err(crate::errors::CdpError::invalid(format!("cdp.predict_prior ({prior}) must be strictly between 0 and 1")));
    }
    let text = PREDICT_WEIGHTS.get().and_then(|c| c.to_str().ok().map(str::to_string)).filter(|t| !t.trim().is_empty());
    let weights = crate::predict::Weights::parse(text.as_deref().unwrap_or(crate::predict::DEFAULT_WEIGHTS))?;
    Ok(PredictSettings { auto_merge, review, prior, weights })
}
