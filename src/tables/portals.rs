//! `cdp.portal_settings`, `cdp.portal_secrets`, `cdp.portal_grants`: the
//! portals, their settings, their write-only secret and who may use them.
//! The portal row is also the portal's identity lock (`lock_row`).

use crate::errors::{CdpError, CdpResult};
use crate::settings::PortalSettings;
use crate::store::exec;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// A portal's settings and secret; None when it does not exist ('default'
/// always exists, with the server defaults until it is configured).
pub fn load(client: &mut SpiClient<'_>, portal: &str) -> CdpResult<Option<(PortalSettings, Option<String>)>> {
    let row = exec(
        client,
        "SELECT s.settings, k.identity_secret FROM cdp.portal_settings s
         LEFT JOIN cdp.portal_secrets k ON k.portal = s.portal WHERE s.portal = $1",
        &[portal.into()],
    )
    .optional();
    match row {
        Some(row) => Ok(Some((PortalSettings::parse(&stored_settings(row.value::<JsonB>("settings")))?, row.get("identity_secret")))),
        None if portal == "default" => Ok(Some((PortalSettings::default(), None))),
        None => Ok(None),
    }
}

fn stored_settings(settings: JsonB) -> Map<String, Value> {
    match settings.0 {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The stored settings object of a portal (empty for an unconfigured 'default').
pub fn settings_of(client: &mut SpiClient<'_>, portal: &str) -> Map<String, Value> {
    exec(client, "SELECT settings FROM cdp.portal_settings WHERE portal = $1", &[portal.into()])
        .optional()
        .map(|row| stored_settings(row.value("settings")))
        .unwrap_or_default()
}

/// Whether `role` has the privileges of a role the portal is granted to
/// ('default' is granted to cdp_writer and cdp_reader unless taken back).
pub fn granted(client: &mut SpiClient<'_>, portal: &str, role: pg_sys::Oid) -> bool {
    exec(
        client,
        "SELECT EXISTS (
             SELECT FROM (SELECT g.role FROM cdp.portal_grants g WHERE g.portal = $1 AND g.granted
                          UNION ALL
                          SELECT d.role FROM pg_catalog.unnest(ARRAY['cdp_writer', 'cdp_reader']::name[]) AS d(role)
                          WHERE $1 = 'default'
                            AND NOT EXISTS (SELECT FROM cdp.portal_grants g WHERE g.portal = $1 AND g.role = d.role AND NOT g.granted))
                  AS a(role)
             JOIN pg_catalog.pg_roles r ON r.rolname = a.role
             WHERE pg_catalog.pg_has_role($2, r.oid, 'USAGE')) AS granted",
        &[portal.into(), role.into()],
    )
    .one()
    .value("granted")
}

/// Every portal's name ('default' included).
pub fn names(client: &mut SpiClient<'_>) -> Vec<String> {
    exec(client, "SELECT portal FROM cdp.portal_settings UNION SELECT 'default' ORDER BY 1", &[])
        .rows()
        .map(|row| row.value("portal"))
        .collect()
}

pub fn settings_relid(client: &mut SpiClient<'_>) -> pg_sys::Oid {
    exec(client, "SELECT 'cdp.portal_settings'::pg_catalog.regclass::pg_catalog.oid AS relid", &[]).one().value("relid")
}

/// Locks the portal's row (its identity lock); false when it has no row yet.
pub fn lock_row(client: &mut SpiClient<'_>, portal: &str) -> bool {
    !exec(client, "SELECT portal FROM cdp.portal_settings WHERE portal = $1 FOR NO KEY UPDATE", &[portal.into()]).is_empty()
}

/// Makes the portal's row if it has none.
pub fn ensure(client: &mut SpiClient<'_>, portal: &str) {
    exec(client, "INSERT INTO cdp.portal_settings (portal) VALUES ($1) ON CONFLICT (portal) DO NOTHING", &[portal.into()]);
}

/// A new portal; false when it exists already.
pub fn create(client: &mut SpiClient<'_>, portal: &str, settings: &Map<String, Value>) -> CdpResult<bool> {
    if !portal_name_is_valid(portal) {
        return Err(CdpError::invalid(format!("portal name \"{portal}\" is not usable"))
            .with_hint("Up to 63 letters, digits and . _ : - , starting with a letter or a digit."));
    }
    Ok(!exec(
        client,
        "INSERT INTO cdp.portal_settings (portal, settings) VALUES ($1, $2) ON CONFLICT (portal) DO NOTHING RETURNING portal",
        &[portal.into(), JsonB(Value::Object(settings.clone())).into()],
    )
    .is_empty())
}

fn portal_name_is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

pub fn store_settings(client: &mut SpiClient<'_>, portal: &str, settings: &Map<String, Value>) {
    exec(
        client,
        "UPDATE cdp.portal_settings SET settings = $2, updated_at = pg_catalog.now() WHERE portal = $1",
        &[portal.into(), JsonB(Value::Object(settings.clone())).into()],
    );
}

/// Sets (Some) or removes (None) the portal's identity secret.
pub fn store_secret(client: &mut SpiClient<'_>, portal: &str, secret: Option<&str>) {
    match secret {
        Some(secret) => exec(
            client,
            "INSERT INTO cdp.portal_secrets (portal, identity_secret) VALUES ($1, $2)
             ON CONFLICT (portal) DO UPDATE SET identity_secret = excluded.identity_secret, set_at = pg_catalog.now()",
            &[portal.into(), secret.into()],
        ),
        None => exec(client, "DELETE FROM cdp.portal_secrets WHERE portal = $1", &[portal.into()]),
    };
}

pub fn has_secret(client: &mut SpiClient<'_>, portal: &str) -> bool {
    !exec(client, "SELECT portal FROM cdp.portal_secrets WHERE portal = $1", &[portal.into()]).is_empty()
}

/// Records whether a role may use a portal; false when it already stood so.
pub fn set_grant(client: &mut SpiClient<'_>, portal: &str, role: &str, granted: bool) -> bool {
    !exec(
        client,
        "INSERT INTO cdp.portal_grants AS g (portal, role, granted) VALUES ($1, $2, $3)
         ON CONFLICT (portal, role) DO UPDATE SET granted = excluded.granted, granted_at = pg_catalog.now()
         WHERE g.granted IS DISTINCT FROM excluded.granted
         RETURNING role",
        &[portal.into(), role.into(), granted.into()],
    )
    .is_empty()
}

/// Removes a role's row for a portal; false when it had none.
pub fn forget_grant(client: &mut SpiClient<'_>, portal: &str, role: &str) -> bool {
    !exec(client, "DELETE FROM cdp.portal_grants WHERE portal = $1 AND role = $2 RETURNING role", &[portal.into(), role.into()]).is_empty()
}
