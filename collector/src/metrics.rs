//! Prometheus metrics, served as text at GET /metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::AppState;

pub struct Metrics {
    registry: Registry,
    pub http_responses: IntCounterVec,
    pub http_duration: HistogramVec,
    pub events_accepted: IntCounterVec,
    pub events_stored: IntCounterVec,
    pub events_duplicates: IntCounterVec,
    pub events_suppressed: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub batches_failed: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub pool_size: IntGauge,
    pub pool_available: IntGauge,
    pub dashboard_sessions: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
            registry.register(Box::new(c.clone())).expect("metric registration");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("metric definition");
            registry.register(Box::new(g.clone())).expect("metric registration");
            g
        };
        let http_duration = HistogramVec::new(
            HistogramOpts::new("cdp_collector_http_request_duration_seconds", "HTTP request latency, by route")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route"],
        )
        .expect("metric definition");
        registry.register(Box::new(http_duration.clone())).expect("metric registration");
        Metrics {
            http_responses: counter("cdp_collector_http_responses_total", "HTTP responses, by route and status", &["route", "status"]),
            http_duration,
            events_accepted: counter(
                "cdp_collector_events_accepted_total",
                "Events track_batch accepted (stored + duplicates)",
                &["portal"],
            ),
            events_stored: counter("cdp_collector_events_stored_total", "Events stored", &["portal"]),
            events_duplicates: counter("cdp_collector_events_duplicates_total", "Events whose message id was already stored", &["portal"]),
            events_suppressed: counter("cdp_collector_events_suppressed_total", "Events of erased UIDs, not stored", &["portal"]),
            events_rejected: counter(
                "cdp_collector_events_rejected_total",
                "Events track_batch rejected, by SQLSTATE",
                &["portal", "sqlstate"],
            ),
            batches_failed: counter(
                "cdp_collector_batches_failed_total",
                "Requests whose database call failed as a whole, by SQLSTATE or kind",
                &["portal", "sqlstate"],
            ),
            rate_limited: counter("cdp_collector_rate_limited_total", "Requests refused by the rate limit", &["portal"]),
            pool_size: gauge("cdp_collector_db_pool_connections", "Open connections of the ingest pool"),
            pool_available: gauge("cdp_collector_db_pool_available", "Idle connections of the ingest pool"),
            dashboard_sessions: gauge("cdp_collector_dashboard_sessions", "Dashboard sessions open"),
            registry,
        }
    }

    pub fn render(&self) -> (String, String) {
        let encoder = TextEncoder::new();
        let mut buffer = Vec::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "encoding metrics");
        }
        (encoder.format_type().to_string(), String::from_utf8_lossy(&buffer).into_owned())
    }

    /// Counts a track_batch report.
    pub fn record_report(&self, portal: &str, report: &serde_json::Value) {
        let n = |k: &str| report.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        self.events_accepted.with_label_values(&[portal]).inc_by(n("accepted"));
        self.events_stored.with_label_values(&[portal]).inc_by(n("stored"));
        self.events_duplicates.with_label_values(&[portal]).inc_by(n("duplicates"));
        self.events_suppressed.with_label_values(&[portal]).inc_by(n("suppressed"));
        if let Some(rejected) = report.get("rejected").and_then(serde_json::Value::as_array) {
            for r in rejected {
                let code = r.get("sqlstate").and_then(serde_json::Value::as_str).unwrap_or("unknown");
                // SQLSTATEs are five characters: keep the label set bounded whatever comes back.
                let code = if code.len() == 5 && code.chars().all(|c| c.is_ascii_alphanumeric()) { code } else { "other" };
                self.events_rejected.with_label_values(&[portal, code]).inc();
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Middleware: every response counted by route and status, and timed.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_string(),
        None if state.static_at_root => "static".to_string(),
        None => "unmatched".to_string(),
    };
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.metrics.http_duration.with_label_values(&[&route]).observe(start.elapsed().as_secs_f64());
    state.metrics.http_responses.with_label_values(&[&route, &status]).inc();
    response
}

pub async fn handler(State(state): State<AppState>) -> Response {
    let status = state.pool.status();
    state.metrics.pool_size.set(status.size as i64);
    state.metrics.pool_available.set(status.available as i64);
    if let Some(d) = &state.dashboard {
        state.metrics.dashboard_sessions.set(d.session_count() as i64);
    }
    let (content_type, body) = state.metrics.render();
    ([(CONTENT_TYPE, content_type)], body).into_response()
}
