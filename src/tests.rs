//! Rust-level tests run inside PostgreSQL by `cargo pgrx test`.
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn smoke() {
        let p = Spi::get_one::<i64>("SELECT cdp.track_event('u1', 'page', 'view')").unwrap().unwrap();
        assert!(p > 0);
    }
}
