//! The ingest connection pool and what a database failure means to a client.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;

/// Connection settings every pooled connection gets.
pub fn pg_config(
    url: &str,
    password: Option<&str>,
    connect_timeout: Duration,
    statement_timeout_ms: u64,
) -> Result<tokio_postgres::Config, String> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| format!("database url: {e}"))?;
    if let Some(p) = password {
        config.password(p);
    }
    config.connect_timeout(connect_timeout);
    config.application_name("cdp_collector");
    // Server-side guard: a statement stuck longer than the client waits is cancelled.
    config.options(format!("-c statement_timeout={statement_timeout_ms}"));
    Ok(config)
}

pub fn ingest_pool(db: &DatabaseConfig) -> Result<Pool, String> {
    let connect = Duration::from_millis(db.connect_timeout_ms);
    let config = pg_config(&db.url, db.password.as_deref(), connect, db.statement_timeout_ms)?;
    build_pool(config, db.pool_size, Duration::from_millis(db.pool_timeout_ms), connect)
}

pub fn build_pool(config: tokio_postgres::Config, size: usize, wait: Duration, connect: Duration) -> Result<Pool, String> {
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts { wait: Some(wait), create: Some(connect + Duration::from_millis(500)), recycle: Some(connect) })
        .build()
        .map_err(|e| format!("database pool: {e}"))
}

/// How a failed database call is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Down, restarting, unreachable, overloaded or too slow: 503 with Retry-After,
    /// the SDK keeps the events and sends them again (message ids make that safe).
    Unavailable(String),
    /// 54000 for the whole call: the batch is over a limit of the portal (413).
    TooLarge(String),
    /// The input itself cannot be stored as jsonb (400).
    BadInput(String),
    /// Anything else: logged, answered 500 without details.
    Internal(String),
}

impl Failure {
    /// The SQLSTATE (or a short kind) for logs and metrics.
    pub fn label(&self) -> &str {
        match self {
            Failure::Unavailable(s) | Failure::TooLarge(s) | Failure::BadInput(s) | Failure::Internal(s) => s,
        }
    }
}

/// A classified error with its detail for the log (never sent to clients,
/// except for BadInput where the database's message is about the input).
#[derive(Debug)]
pub struct DbError {
    pub failure: Failure,
    pub detail: String,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(&e)
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => classify(&e),
            PoolError::Timeout(t) => {
                DbError { failure: Failure::Unavailable("pool_timeout".into()), detail: format!("no database connection in time ({t:?})") }
            }
            PoolError::Closed => DbError { failure: Failure::Unavailable("pool_closed".into()), detail: "pool closed".into() },
            other => DbError { failure: Failure::Internal("pool".into()), detail: other.to_string() },
        }
    }
}

pub fn classify(e: &tokio_postgres::Error) -> DbError {
    let detail = e.to_string();
    if let Some(db) = e.as_db_error() {
        let code = db.code().code().to_string();
        let message = db.message().to_string();
        let failure = match code.as_str() {
            // connection exceptions, shutdown/crash/cannot connect now, resources,
            // cancelled by statement_timeout, busy identity lock, serialization
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => Failure::Unavailable(code),
            "57014" | "55P03" | "40001" | "40P01" => Failure::Unavailable(code),
            // the collector's own login failed: keep the SDKs retrying while it is fixed
            "28P01" | "28000" => Failure::Unavailable(code),
            "54000" => Failure::TooLarge(code),
            // text that jsonb refuses (\u0000, lone surrogates)
            "22P02" | "22P05" | "22021" => Failure::BadInput(code),
            _ => Failure::Internal(code),
        };
        let detail = if matches!(failure, Failure::BadInput(_) | Failure::TooLarge(_)) { message } else { detail };
        return DbError { failure, detail };
    }
    // Not a server error: the connection could not be opened, was closed, or timed out.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io || detail.contains("connect") || detail.contains("timeout") || detail.contains("closed") {
        DbError { failure: Failure::Unavailable("connection".into()), detail }
    } else {
        DbError { failure: Failure::Internal("client".into()), detail }
    }
}
