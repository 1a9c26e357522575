//! POST /v1/batch and /v1/event: write key → portal, origin and rate checks,
//! the body read within its limit, the collector's context stamped on every
//! item, then one `cdp.track_batch` call in a transaction of the portal.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, RETRY_AFTER, USER_AGENT, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deadpool_postgres::{Object, Pool};
use serde_json::{json, Value};

use crate::config::WriteKey;
use crate::db::{DbError, Failure};
use crate::envelope::{self, Prepared, Stamp};
use crate::{clientip, ratelimit, AppState};

/// An error answer: `{"error": message}`, with Retry-After when it helps.
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.message, "status": self.status.as_u16()}))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Batch,
    Event,
}

pub async fn batch(state: State<AppState>, peer: ConnectInfo<SocketAddr>, request: Request) -> Response {
    ingest(state, peer, request, Shape::Batch).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn event(state: State<AppState>, peer: ConnectInfo<SocketAddr>, request: Request) -> Response {
    ingest(state, peer, request, Shape::Event).await.unwrap_or_else(IntoResponse::into_response)
}

/// The write key of a request: the X-Write-Key header, else `?key=`.
pub fn write_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(v) = headers.get("x-write-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    let query = uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok()?.into_iter().find(|(k, _)| k == "key").map(|(_, v)| v)
}

fn lookup<'a>(state: &'a AppState, headers: &HeaderMap, uri: &Uri) -> Result<(String, &'a WriteKey), ApiError> {
    let key = write_key(headers, uri)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "a write key is required: ?key=<write key> or the X-Write-Key header"))?;
    let found = state.resolved.keys.get(&key).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown write key"))?;
    Ok((key, found))
}

async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    shape: Shape,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (key, write_key) = lookup(&state, &parts.headers, &parts.uri)?;
    let portal = write_key.portal.as_str();
    if let Some(origin) = parts.headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !write_key.origin_allowed(origin) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, format!("origin {origin:?} may not send to this write key")));
        }
    }
    let ip = clientip::client_ip(peer.ip(), &parts.headers, &state.resolved.trusted_proxies);
    if let Err(wait) = state.ingest_limits.check(portal, &key, ip) {
        state.metrics.rate_limited.with_label_values(&[portal]).inc();
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "rate limit exceeded: send less often, retry after the given seconds".into(),
            retry_after: Some(ratelimit::retry_after_secs(wait)),
        });
    }
    check_content_type(&parts.headers)?;
    let bytes = read_body(body, &parts.headers, state.config.server.body_limit_bytes).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    let user_agent = parts.headers.get(USER_AGENT).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let ip_text = ip.to_string();
    let stamp = Stamp { ip: &ip_text, user_agent: user_agent.as_deref() };
    let prepared = match shape {
        Shape::Batch => envelope::prepare_batch(text, &stamp),
        Shape::Event => envelope::prepare_event(text, &stamp),
    }
    .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    let timeout = Duration::from_millis(state.config.database.statement_timeout_ms);
    match track_batch(&state.pool, portal, &prepared, timeout).await {
        Ok(report) => {
            let report = prepared.report(report);
            state.metrics.record_report(portal, &report);
            tracing::debug!(portal, items = prepared.items, %ip, "batch stored");
            Ok((StatusCode::OK, Json(report)).into_response())
        }
        Err(e) => {
            state.metrics.batches_failed.with_label_values(&[portal, e.failure.label()]).inc();
            Err(answer_failure(&state, portal, e))
        }
    }
}

pub fn answer_failure(state: &AppState, portal: &str, e: DbError) -> ApiError {
    let retry_after = Some(state.config.server.retry_after_secs);
    match e.failure {
        Failure::Unavailable(code) => {
            tracing::warn!(portal, sqlstate = %code, error = %e.detail, "database unavailable");
            ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: "the database is unavailable, retry later".into(), retry_after }
        }
        Failure::TooLarge(code) => {
            tracing::info!(portal, sqlstate = %code, error = %e.detail, "batch over a database limit");
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the batch is over a limit of the portal: {}", e.detail))
        }
        Failure::BadInput(code) => {
            tracing::info!(portal, sqlstate = %code, error = %e.detail, "batch refused by the database");
            ApiError::new(StatusCode::BAD_REQUEST, format!("the batch cannot be stored: {}", e.detail))
        }
        Failure::Internal(code) => {
            tracing::error!(portal, sqlstate = %code, error = %e.detail, "database error");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (logged)")
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else { return Ok(()) };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || essence == "text/plain" {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json or text/plain"))
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {limit} bytes"));
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if over {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "the body could not be read")
        }
    })
}

/// One `cdp.track_batch` call in its own transaction with the portal set
/// locally (set_config, never SQL built from input).
pub async fn track_batch(pool: &Pool, portal: &str, batch: &Prepared, timeout: Duration) -> Result<Value, DbError> {
    let mut client = pool.get().await?;
    let work = async {
        let tx = client.transaction().await?;
        let set = tx.prepare_cached("SELECT set_config('cdp.portal', $1, true)").await?;
        tx.query_one(&set, &[&portal]).await?;
        let call = tx.prepare_cached("SELECT cdp.track_batch($1::text::jsonb)").await?;
        let row = tx.query_one(&call, &[&batch.json]).await?;
        let report: Value = row.try_get(0)?;
        tx.commit().await?;
        Ok::<_, tokio_postgres::Error>(report)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(DbError::from),
        Err(_) => {
            // The connection may still be busy with the statement: do not reuse it.
            drop(Object::take(client));
            Err(DbError { failure: Failure::Unavailable("timeout".into()), detail: format!("no answer within {timeout:?}") })
        }
    }
}

/// Around the CORS layer of /v1: preflights (OPTIONS) from an origin no
/// portal of the key allows get 403; and every error answer to a browser is
/// readable by it (Access-Control-Allow-Origin echoing its Origin, Retry-After
/// exposed), also for an origin that may not send or an unknown key, so the
/// SDK sees a 4xx and drops the batch instead of taking an opaque answer for
/// a network error and retrying it forever. Reading an error reveals nothing;
/// what the allow-list guards, the storing, is refused with the 403.
pub async fn cors_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(ORIGIN).cloned();
    if request.method() == Method::OPTIONS {
        if let Some(o) = origin.as_ref().and_then(|o| o.to_str().ok()) {
            if !origin_allowed_for(&state, request.headers(), request.uri(), o) {
                return ApiError::new(StatusCode::FORBIDDEN, format!("origin {o:?} may not send here")).into_response();
            }
        }
        return next.run(request).await;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let status = response.status();
        let headers = response.headers_mut();
        if !status.is_success() && !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
    }
    response
}

/// Whether a browser at `origin` may call with this request's key (a
/// preflight may carry none in its URL: then any portal allowing the origin
/// will do, the request itself is checked against its key).
pub fn origin_allowed_for(state: &AppState, headers: &HeaderMap, uri: &Uri, origin: &str) -> bool {
    match write_key(headers, uri).filter(|k| !k.is_empty()) {
        Some(key) => state.resolved.keys.get(&key).is_some_and(|k| k.origin_allowed(origin)),
        None => state.resolved.keys.values().any(|k| k.origin_allowed(origin)),
    }
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    let check = async {
        let client = state.pool.get().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok::<_, DbError>(())
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ok", "database": "ok"}))).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e.detail, "health check: database unavailable");
            unavailable(&state)
        }
        Err(_) => unavailable(&state),
    }
}

fn unavailable(state: &AppState) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unavailable"}))).into_response();
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(state.config.server.retry_after_secs));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: usize, size: usize) -> Body {
        let stream = futures_util::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; size]))));
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_413() {
        let headers = HeaderMap::new();
        assert_eq!(read_body(chunked(4, 1000), &headers, 10_000).await.map(|b| b.len()).ok(), Some(4000));
        let err = read_body(chunked(20, 1000), &headers, 10_000).await.err().map(|e| e.status);
        assert_eq!(err, Some(StatusCode::PAYLOAD_TOO_LARGE));
        let mut declared = HeaderMap::new();
        declared.insert(CONTENT_LENGTH, HeaderValue::from(20_000u64));
        let err = read_body(chunked(1, 10), &declared, 10_000).await.err().map(|e| e.status);
        assert_eq!(err, Some(StatusCode::PAYLOAD_TOO_LARGE));
    }

    #[test]
    fn content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            check_content_type(&h).is_ok()
        };
        assert!(with("application/json"));
        assert!(with("text/plain;charset=UTF-8"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(check_content_type(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn write_key_from_header_or_query() {
        let uri: Uri = "/v1/batch?a=1&key=wk%2Babc&key=second".parse().unwrap();
        assert_eq!(write_key(&HeaderMap::new(), &uri).as_deref(), Some("wk+abc"));
        let mut h = HeaderMap::new();
        h.insert("x-write-key", HeaderValue::from_static(" hdr "));
        assert_eq!(write_key(&h, &uri).as_deref(), Some("hdr"));
        assert_eq!(write_key(&HeaderMap::new(), &"/v1/batch".parse().unwrap()), None);
    }
}
