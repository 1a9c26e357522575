//! Portal configuration (cdp_admin): creating portals, changing their
//! settings and secret, granting and revoking them. Every change makes all
//! backends drop their cached settings and grants when it commits.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use crate::portal::{self, Portal};
use crate::settings::{apply_changes, PortalSettings, SettingsChange, Verification};
use crate::tables::portals;
use pgrx::spi::SpiClient;
use serde_json::{json, Map, Value};

/// What the configuration functions answer: the portal as `cdp.portals`
/// shows it (never the secret).
fn describe(client: &mut SpiClient<'_>, name: &str) -> Value {
    json!({
        "portal": name,
        "settings": Value::Object(portals::settings_of(client, name)),
        "identity_secret_set": portals::has_secret(client, name),
    })
}

/// A settings argument: a JSON object (NULL means none).
pub fn settings_argument(text: Option<String>) -> CdpResult<Map<String, Value>> {
    match text.map(|t| serde_json::from_str::<Value>(&t)) {
        None => Ok(Map::new()),
        Some(Ok(Value::Object(map))) => Ok(map),
        Some(Ok(_)) | Some(Err(_)) => Err(CdpError::invalid("settings must be a JSON object")),
    }
}

fn check_secret_for_verification(settings: &Map<String, Value>, has_secret: bool) -> CdpResult<()> {
    if PortalSettings::parse(settings)?.identity_verification() == Verification::Required && !has_secret {
        return Err(CdpError::invalid("portal setting \"identity_verification\" 'required' needs an identity_secret").with_hint(
            "Give both: cdp.configure_portal(portal, '{\"identity_verification\": \"required\", \"identity_secret\": \"...\"}').",
        ));
    }
    Ok(())
}

pub fn create_portal(client: &mut SpiClient<'_>, name: &str, changes: &Map<String, Value>) -> CdpResult<Value> {
    let SettingsChange { settings, secret } = apply_changes(&Map::new(), changes)?;
    check_secret_for_verification(&settings, matches!(secret, Some(Some(_))))?;
    if !portals::create(client, name, &settings)? {
        return Err(CdpError::new(ErrorKind::DuplicateObject, format!("portal \"{name}\" already exists"))
            .with_hint("Change its settings with cdp.configure_portal."));
    }
    if let Some(Some(secret)) = secret {
        portals::store_secret(client, name, Some(&secret));
    }
    portal::invalidate_everywhere(client);
    Ok(describe(client, name))
}

pub fn configure_portal(client: &mut SpiClient<'_>, target: &Portal, changes: &Map<String, Value>) -> CdpResult<Value> {
    let name = target.name.as_str();
    // Settings change between identity decisions, never during one.
    portal::lock(client, target);
    let SettingsChange { settings, secret } = apply_changes(&portals::settings_of(client, name), changes)?;
    let has_secret = match &secret {
        Some(new) => new.is_some(),
        None => portals::has_secret(client, name),
    };
    check_secret_for_verification(&settings, has_secret)?;
    portals::store_settings(client, name, &settings);
    if let Some(secret) = secret {
        portals::store_secret(client, name, secret.as_deref());
    }
    portal::invalidate_everywhere(client);
    Ok(describe(client, name))
}

/// Grants a portal to a role (which must exist); false when it was granted already.
pub fn grant_portal(client: &mut SpiClient<'_>, role: &str, target: &Portal) -> CdpResult<bool> {
    role_must_exist(role)?;
    portals::ensure(client, &target.name);
    let changed = if opens_default(&target.name, role) {
        portals::forget_grant(client, &target.name, role) // back to the implicit grant
    } else {
        portals::set_grant(client, &target.name, role, true)
    };
    portal::invalidate_everywhere(client);
    Ok(changed)
}

/// Takes a portal back from a role; false when it did not have it.
pub fn revoke_portal(client: &mut SpiClient<'_>, role: &str, target: &Portal) -> CdpResult<bool> {
    if role == "cdp_admin" {
        return Err(CdpError::invalid("cdp_admin may use every portal; revoke cdp_admin from a role instead"));
    }
    portals::ensure(client, &target.name);
    let changed = if opens_default(&target.name, role) {
        portals::set_grant(client, &target.name, role, false)
    } else {
        portals::forget_grant(client, &target.name, role)
    };
    portal::invalidate_everywhere(client);
    Ok(changed)
}

/// Whether the role is one the portal 'default' is open to without a grant.
fn opens_default(portal: &str, role: &str) -> bool {
    portal == "default" && (role == "cdp_writer" || role == "cdp_reader")
}

fn role_must_exist(role: &str) -> CdpResult<()> {
    let name = std::ffi::CString::new(role).map_err(|_| CdpError::invalid("role names have no NUL character"))?;
    // SAFETY: a catalog lookup by name; missing_ok gives InvalidOid.
    if unsafe { pgrx::pg_sys::get_role_oid(name.as_ptr(), true) } == pgrx::pg_sys::InvalidOid {
        return Err(CdpError::new(ErrorKind::UndefinedObject, format!("role \"{role}\" does not exist")));
    }
    Ok(())
}
