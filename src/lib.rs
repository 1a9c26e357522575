//! cdp_identity: customer-data-platform user tracking and identity merging
//! inside PostgreSQL.
//!
//! Layers, each using only the ones below it:
//! - `api`: the `#[pg_extern]` functions, a thin edge;
//! - flows: `ingest` (track_event), `batch` (track_batch), `identity`
//!   (identify and merging, with what may stop a merge: `identity::blocks`,
//!   `identity::suppression`), `unmerge`, `erasure`, `review` (suggestions),
//!   `configure` (portals);
//! - `tables`: one module per table, owning its statements;
//! - `request`: validated requests (every input check happens here, before
//!   anything is read or written);
//! - pure domain modules: `payload` (the SDK payload), `attributes`,
//!   `identifiers` (hashing, normalization, junk), `useragent`, `timeparse`,
//!   `validate`, `predict` (Fellegi-Sunter scoring);
//! - the edges to PostgreSQL: `store` (SPI: kept plans, reading rows, the
//!   identity lock), `jsonb` (reading jsonb in place), `errors`
//!   (SQLSTATEs), `settings` (server defaults and portal settings),
//!   `portal` (the portal of a call: access, settings cache, identity lock),
//!   `version` (library and catalog versions).
//!
//! The schema and the SQL read functions are in `sql/`.

use pgrx::prelude::*;

mod api;
mod attributes;
mod batch;
mod configure;
mod erasure;
mod errors;
mod identifiers;
mod identity;
mod ingest;
mod jsonb;
mod payload;
mod portal;
mod predict;
mod request;
mod review;
mod settings;
mod store;
mod tables;
mod timeparse;
mod unmerge;
mod useragent;
mod validate;
mod version;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/read_api.sql", name = "read_api", requires = [api::current_portal, api::usable_portals]);
extension_sql_file!("../sql/changes.sql", name = "changes", requires = ["read_api"]);
extension_sql_file!("../sql/security.sql", name = "security", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    if version::another_release_loaded() {
        // An older release ran in this session before an update: its
        // settings are registered; ours would clash (see `version`).
        version::mark_inactive();
        return;
    }
    settings::register();
    portal::register_invalidation();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
