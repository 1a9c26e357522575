//! The portal of a call: which identity space it works in (the session's
//! `cdp.portal`), whether the caller may use it, its settings, and its
//! identity lock.
//!
//! Who the caller is: every function runs as the extension's owner
//! (SECURITY DEFINER), so the role checked is the session's outer role (the
//! login role, or the role of SET ROLE). Superusers and members of cdp_admin
//! may use every portal; members of cdp_writer and cdp_reader may use
//! 'default' (until cdp.revoke_portal takes it back from the group); other
//! portals are granted with cdp.grant_portal.
//!
//! Settings and grants are cached per backend and dropped whenever
//! PostgreSQL sends a relation cache invalidation (cdp.configure_portal and
//! the grant functions send one for cdp.portal_settings when they commit) or
//! role memberships change, so a call never pays a lookup for them and never
//! acts on settings older than the last committed change.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::settings::{self, PortalSettings};
use crate::tables::portals;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use pgrx::{PgSqlErrorCode, PgTryBuilder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The portal a call works in, with its settings.
pub struct Portal {
    pub name: String,
    pub settings: PortalSettings,
    /// The identity verification key (never shown, never logged).
    pub identity_secret: Option<String>,
}

#[derive(Default)]
struct Cache {
    /// The catalog's version was checked against the library's.
    version_checked: bool,
    /// None: no such portal.
    portals: HashMap<String, Option<Rc<Portal>>>,
    /// (outer role, portal) -> may use it.
    access: HashMap<(u32, String), bool>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Registers the cache invalidation callbacks (from `_PG_init`).
pub fn register_invalidation() {
    unsafe extern "C-unwind" fn on_relation(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
        CACHE.with(|c| *c.borrow_mut() = Cache::default());
    }
    unsafe extern "C-unwind" fn on_roles(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
        CACHE.with(|c| *c.borrow_mut() = Cache::default());
    }
    // SAFETY: called once per backend from _PG_init; the callbacks only clear a cache.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relation), pg_sys::Datum::from(0));
        pg_sys::CacheRegisterSyscacheCallback(pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM as i32, Some(on_roles), pg_sys::Datum::from(0));
        pg_sys::CacheRegisterSyscacheCallback(pg_sys::SysCacheIdentifier::AUTHOID as i32, Some(on_roles), pg_sys::Datum::from(0));
    }
}

/// Ok when this library may serve the database (see `version`); checked
/// once, again after any catalog change.
pub fn check_catalog_version(client: &mut SpiClient<'_>) -> CdpResult<()> {
    if CACHE.with(|c| c.borrow().version_checked) {
        return Ok(());
    }
    crate::version::check(client)?;
    CACHE.with(|c| c.borrow_mut().version_checked = true);
    Ok(())
}

/// The session's portal, checked: it exists and the caller may use it.
pub fn current(client: &mut SpiClient<'_>) -> CdpResult<Rc<Portal>> {
    named(client, &settings::portal_setting())
}

/// A portal by name, checked like `current`.
pub fn named(client: &mut SpiClient<'_>, name: &str) -> CdpResult<Rc<Portal>> {
    let portal = match CACHE.with(|c| c.borrow().portals.get(name).cloned()) {
        Some(cached) => cached,
        None => {
            let loaded = portals::load(client, name)?
                .map(|(settings, identity_secret)| Rc::new(Portal { name: name.to_string(), settings, identity_secret }));
            CACHE.with(|c| c.borrow_mut().portals.insert(name.to_string(), loaded.clone()));
            loaded
        }
    };
    let Some(portal) = portal else {
        return Err(CdpError::invalid(format!("portal \"{name}\" does not exist"))
            .with_hint(format!("A member of cdp_admin creates it: SELECT cdp.create_portal('{name}');")));
    };
    check_access(client, name)?;
    Ok(portal)
}

/// The role the session acts as (outside the SECURITY DEFINER switch).
pub fn caller() -> pg_sys::Oid {
    // SAFETY: plain read of the session's outer user id.
    unsafe { pg_sys::GetOuterUserId() }
}

fn role_oid(name: &std::ffi::CStr) -> pg_sys::Oid {
    // SAFETY: a lookup by name; missing_ok gives InvalidOid.
    unsafe { pg_sys::get_role_oid(name.as_ptr(), true) }
}

fn has_privs_of(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup; an invalid role is simply not held.
    role != pg_sys::InvalidOid && unsafe { pg_sys::has_privs_of_role(member, role) }
}

/// Whether the caller is a superuser or a member of cdp_admin: it may use
/// every portal and configure them.
pub fn caller_is_admin() -> bool {
    let who = caller();
    // SAFETY: a catalog lookup.
    (unsafe { pg_sys::superuser_arg(who) }) || has_privs_of(who, role_oid(c"cdp_admin"))
}

fn check_access(client: &mut SpiClient<'_>, portal: &str) -> CdpResult<()> {
    let who = caller();
    let key = (u32::from(who), portal.to_string());
    let allowed = match CACHE.with(|c| c.borrow().access.get(&key).copied()) {
        Some(allowed) => allowed,
        None => {
            let allowed = caller_is_admin() || portals::granted(client, portal, who);
            CACHE.with(|c| c.borrow_mut().access.insert(key, allowed));
            allowed
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(CdpError::new(ErrorKind::InsufficientPrivilege, format!("permission denied for portal \"{portal}\""))
            .with_hint(format!("A member of cdp_admin grants it: SELECT cdp.grant_portal('<role>', '{portal}');")))
    }
}

/// The names of the portals the caller may use.
pub fn usable(client: &mut SpiClient<'_>) -> Vec<String> {
    let mut names = portals::names(client);
    names.retain(|name| check_access(client, name).is_ok());
    names
}

/// Drops this backend's cache and makes every backend drop its own when the
/// current transaction commits (after a change of settings or grants).
pub fn invalidate_everywhere(client: &mut SpiClient<'_>) {
    let relid = portals::settings_relid(client);
    // SAFETY: queues a relation cache invalidation, sent at commit.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    CACHE.with(|c| *c.borrow_mut() = Cache::default());
}

/// Takes the portal's identity lock for the rest of the transaction. Every
/// call that writes identity state (profiles, UIDs, identifiers, attributes,
/// decisions) takes it before its first write, and nothing else is locked
/// before it: one lock order for every path, so calls never deadlock. Only
/// the extension can take it (a row lock on a table no other role may read).
/// A wait longer than the portal's lock_timeout fails with 55P03.
pub fn lock(client: &mut SpiClient<'_>, portal: &Portal) {
    let timeout = portal.settings.lock_timeout_ms();
    let name = portal.name.clone();
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        with_lock_timeout(timeout, || {
            if !portals::lock_row(client, &name) {
                // 'default' gets its row the first time it is locked.
                portals::ensure(client, &name);
                portals::lock_row(client, &name);
            }
        })
    }))
    .catch_when(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, |_| {
        CdpError::new(
            ErrorKind::LockNotAvailable,
            format!("portal \"{name}\": waited longer than lock_timeout ({timeout} ms) for the identity lock"),
        )
        .with_hint(
            "Another identity decision of this portal is still running, or a transaction that made one is still open: \
             keep transactions short and retry (pg_stat_activity shows who holds it).",
        )
        .raise()
    })
    .execute();
}

/// Runs `f` with the session's lock_timeout set to `ms`, restored afterwards
/// (as a function's SET clause would; an error restores it too).
fn with_lock_timeout<R>(ms: i32, f: impl FnOnce() -> R) -> R {
    let value = std::ffi::CString::new(format!("{ms}ms")).expect("no NUL");
    // SAFETY: the same calls fmgr makes for a function's SET clause: a new
    // GUC nest level, the value set in it, and the level popped after.
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"lock_timeout".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        let result = f();
        pg_sys::AtEOXact_GUC(true, level);
        result
    }
}
