//! cdp_identity: customer-data-platform user tracking and identity merging
//! inside PostgreSQL.
//!
//! Layout: pure domain modules (no database access) for validation, payload
//! reading, identifiers, user agents, attributes and time parsing; database
//! modules for profiles, identity resolution and ingestion on top of the SPI
//! edge in `store`; `api` holds the `#[pg_extern]` functions. The schema and
//! the SQL read functions are in `sql/`.

use pgrx::prelude::*;

mod api;
mod attributes;
mod batch;
mod erasure;
mod errors;
mod identifiers;
mod identity;
mod ingest;
mod payload;
mod predict;
mod profiles;
mod settings;
mod store;
mod suggestions;
mod timeparse;
mod unmerge;
mod useragent;
mod validate;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/read_api.sql", name = "read_api", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
