//! cdp-collector: the HTTP collector of cdp_identity (the SDK's batches into
//! `cdp.track_batch`) and the customer dashboard (server-rendered pages that
//! read as the PostgreSQL role that logged in). See collector/README.md.

mod clientip;
mod config;
mod dashboard;
mod db;
mod envelope;
mod ingest;
mod metrics;
mod ratelimit;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, Method, StatusCode};
use axum::routing::{get, post};
use axum::{middleware, Router};
use clap::Parser;
use deadpool_postgres::Pool;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat, Resolved};

#[derive(Parser)]
#[command(version, about = "HTTP collector and customer dashboard for cdp_identity")]
struct Cli {
    /// The TOML configuration file (see collector.example.toml).
    #[arg(long, env = "CDP_COLLECTOR_CONFIG")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub resolved: Arc<Resolved>,
    pub pool: Pool,
    pub metrics: Arc<metrics::Metrics>,
    pub ingest_limits: Arc<ratelimit::Ingest>,
    pub dashboard: Option<Arc<dashboard::Dashboard>>,
    pub static_at_root: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cdp-collector: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.check {
        println!("cdp-collector: {} is valid", cli.config.display());
        return std::process::ExitCode::SUCCESS;
    }
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cdp-collector stopped");
            eprintln!("cdp-collector: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(config: Config) -> Result<(), String> {
    let state = build_state(config)?;
    let app = router(state.clone());
    let config = state.config.clone();
    let listener =
        tokio::net::TcpListener::bind(config.server.listen).await.map_err(|e| format!("listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, portals = state.resolved.keys.len(), dashboard = config.dashboard.enabled, "cdp-collector listening");
    spawn_sweeper(state.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing the requests in flight");
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(signal);
    let grace = Duration::from_secs(config.server.shutdown_timeout_secs);
    let deadline = async move {
        let mut rx = stop_rx;
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(|e| format!("server: {e}"))?,
        () = deadline => tracing::warn!(?grace, "shutdown: requests still in flight after the grace period, stopping anyway"),
    }
    state.pool.close();
    tracing::info!("cdp-collector stopped");
    Ok(())
}

fn build_state(config: Config) -> Result<AppState, String> {
    let resolved = config.resolve()?;
    let pool = db::ingest_pool(&config.database)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let ingest_limits = Arc::new(ratelimit::Ingest::new(&resolved));
    let dashboard = if config.dashboard.enabled { Some(Arc::new(dashboard::Dashboard::new(&config)?)) } else { None };
    let static_at_root = config.static_files.as_ref().is_some_and(|s| s.path == "/");
    if let Some(s) = config.static_files.as_ref().filter(|s| !s.dir.is_dir()) {
        tracing::warn!(dir = %s.dir.display(), "static_files.dir is not a directory: its path answers 404");
    }
    Ok(AppState { config: Arc::new(config), resolved: Arc::new(resolved), pool, metrics, ingest_limits, dashboard, static_at_root })
}

pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let cors_state = state.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            origin.to_str().is_ok_and(|o| ingest::origin_allowed_for(&cors_state, &parts.headers, &parts.uri, o))
        }))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([CONTENT_TYPE, HeaderName::from_static("x-write-key")])
        .expose_headers([RETRY_AFTER])
        .max_age(Duration::from_secs(86400));
    let ingest_routes = Router::new()
        .route("/v1/batch", post(ingest::batch))
        .route("/v1/event", post(ingest::event))
        .layer(cors)
        .layer(middleware::from_fn_with_state(state.clone(), ingest::cors_guard));

    let mut app = Router::new().merge(ingest_routes).route("/healthz", get(ingest::healthz));
    if config.server.metrics {
        app = app.route("/metrics", get(metrics::handler));
    }
    if let Some(d) = &state.dashboard {
        let base = config.dashboard.path.clone();
        app = app
            .nest(&base, dashboard::routes(d.clone()))
            .route(&format!("{base}/"), get(move || async move { axum::response::Redirect::permanent(&base) }));
    }
    if let Some(s) = &config.static_files {
        let files = ServeDir::new(&s.dir);
        app = if s.path == "/" { app.fallback_service(files) } else { app.nest_service(&s.path, files) };
    }
    // Per-route layers (they run after routing, so the metrics see the route):
    // the deadline inside, the metrics around it (408s are counted too).
    app.layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout()))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Now and then: forget idle rate-limit buckets, end expired dashboard
/// sessions, close idle dashboard connections.
fn spawn_sweeper(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            state.ingest_limits.sweep();
            if let Some(d) = &state.dashboard {
                d.sweep();
            }
        }
    });
}
