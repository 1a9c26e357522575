//! Settings (GUCs) of the extension. They can be set per session, per role,
//! per database or in postgresql.conf.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Whether identify also merges anonymous profiles seen with the same
/// `context.device_id` (a browser that lost its UID cookie).
pub static DEVICE_LINKING: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Largest accepted event payload: bytes of the stored jsonb (of the JSON
/// text for a batch item).
pub static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);

/// Most anonymous profiles one identify merges (a public computer must not
/// fold hundreds of visitors into one customer).
pub static MAX_MERGES_PER_IDENTIFY: GucSetting<i32> = GucSetting::<i32>::new(50);

/// Most items one `cdp.track_batch` call accepts.
pub static MAX_BATCH_ITEMS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

pub fn register() {
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

pub fn max_merges_per_identify() -> usize {
    MAX_MERGES_PER_IDENTIFY.get() as usize
}
