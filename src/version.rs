//! Which cdp_identity is running: the library's version and the version the
//! database's catalog is at. Each release installs its own library file
//! (cdp_identity-X.Y.Z.so) and a database's functions point at the file of
//! its catalog version, so a database not yet updated keeps running its own
//! release after a newer one is installed. What can still go wrong is
//! reported clearly instead of running on mismatched SQL:
//! - a session that used an older release before ALTER EXTENSION UPDATE has
//!   that library loaded; the newer one cannot register its settings beside
//!   it, so its entry points ask to reconnect;
//! - a catalog whose version is not the library's (a hand-copied file) is
//!   refused, naming the command to run.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::store::exec;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use serde_json::{json, Value};
use std::cell::Cell;

pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    static INACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether another release of the library already registered its settings
/// in this session (checked in `_PG_init`, before registering ours).
pub fn another_release_loaded() -> bool {
    // A session may SET cdp.* before any library defines them: such a
    // placeholder is not another release.
    // SAFETY: a lookup of a setting by name; missing_ok gives 0 when unknown.
    let flags = unsafe { pg_sys::GetConfigOptionFlags(c"cdp.max_payload_bytes".as_ptr(), true) } as u32;
    // SAFETY: as above; NULL when unknown.
    let defined = !unsafe { pg_sys::GetConfigOption(c"cdp.max_payload_bytes".as_ptr(), true, false) }.is_null();
    defined && flags & pg_sys::GUC_CUSTOM_PLACEHOLDER == 0
}

pub fn mark_inactive() {
    INACTIVE.with(|i| i.set(true));
}

/// The version in the database's catalog (pg_extension).
fn catalog(client: &mut SpiClient<'_>) -> Option<String> {
    exec(client, "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'cdp_identity'", &[])
        .optional()
        .and_then(|row| row.get("extversion"))
}

/// Both versions, for cdp.version().
pub fn versions(client: &mut SpiClient<'_>) -> Value {
    let catalog = catalog(client);
    let inactive = INACTIVE.with(|i| i.get());
    json!({
        "library": LIBRARY,
        "catalog": catalog,
        "matches": catalog.as_deref() == Some(LIBRARY) && !inactive,
        "session_must_reconnect": inactive,
    })
}

/// Ok when the library can serve this database in this session; checked on
/// the first call of a session (and again after catalog changes).
pub fn check(client: &mut SpiClient<'_>) -> CdpResult<()> {
    if INACTIVE.with(|i| i.get()) {
        return Err(CdpError::new(
            ErrorKind::NotInState,
            format!("this session loaded another release of cdp_identity before this one ({LIBRARY}) was installed or updated to"),
        )
        .with_hint("Reconnect: a new session uses the release the database is at."));
    }
    match catalog(client) {
        Some(v) if v == LIBRARY => Ok(()),
        other => {
            let catalog = other.unwrap_or_else(|| "(not installed)".into());
            pgrx::warning!("cdp_identity: the database is at {catalog}, the library is {LIBRARY}");
            Err(CdpError::new(
                ErrorKind::NotInState,
                format!("cdp_identity library {LIBRARY} cannot serve this database, which is at {catalog}"),
            )
            .with_hint(format!("Run ALTER EXTENSION cdp_identity UPDATE TO '{LIBRARY}'; (or install the library of {catalog}).")))
        }
    }
}
