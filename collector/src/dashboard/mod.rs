//! The customer dashboard: server-rendered pages (minijinja templates with
//! HTML auto-escaping) that read the database AS THE ROLE THAT LOGGED IN, so
//! cdp_reader / cdp_admin privileges, row-level security and portal grants
//! apply exactly as in psql. There is no user database: the login form takes
//! a PostgreSQL role and password, the session (a random token in an
//! HttpOnly, SameSite=Strict cookie) keeps a small connection pool of that
//! role in memory, and every POST form carries the session's CSRF token.

mod graph;
mod session;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use deadpool_postgres::Transaction;
use ipnet::IpNet;
use minijinja::Environment;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;
use crate::{clientip, db, ratelimit};
pub use session::Session;

const SESSION_COOKIE: &str = "cdp_session";
const LOGIN_COOKIE: &str = "cdp_login";

pub struct Dashboard {
    env: Environment<'static>,
    sessions: session::Store,
    /// host, port, dbname (and options) of the dashboard's connections
    db_base: tokio_postgres::Config,
    base: String,
    secure_cookies: bool,
    page_size: u32,
    login_limiter: ratelimit::Keyed<IpAddr>,
    trusted_proxies: Vec<IpNet>,
    statement_timeout_ms: u64,
    connect_timeout: Duration,
}

impl Dashboard {
    pub fn new(config: &Config) -> Result<Dashboard, String> {
        let url = config.dashboard.database_url.as_deref().unwrap_or(&config.database.url);
        let mut db_base = tokio_postgres::Config::from_str(url).map_err(|e| format!("dashboard database url: {e}"))?;
        // Only where to connect is taken from the URL: who connects comes from the login form.
        db_base.user("");
        db_base.password("");
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(|e| format!("template {name}: {e}"))?;
        }
        let per_minute = config.dashboard.login_attempts_per_minute;
        let login_quota = std::num::NonZeroU32::new(per_minute).map(governor::Quota::per_minute);
        Ok(Dashboard {
            env,
            sessions: session::Store::new(
                Duration::from_secs(config.dashboard.session_idle_secs),
                Duration::from_secs(config.dashboard.session_max_secs),
            ),
            db_base,
            base: config.dashboard.path.clone(),
            secure_cookies: config.dashboard.secure_cookies,
            page_size: config.dashboard.page_size.clamp(1, 500),
            login_limiter: ratelimit::Keyed::new(login_quota),
            trusted_proxies: config.resolve()?.trusted_proxies,
            statement_timeout_ms: config.database.statement_timeout_ms,
            connect_timeout: Duration::from_millis(config.database.connect_timeout_ms),
        })
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn sweep(&self) {
        self.sessions.sweep();
    }

    fn render(&self, status: StatusCode, name: &str, mut ctx: Value) -> Response {
        if let Value::Object(map) = &mut ctx {
            map.insert("base".into(), Value::String(self.base.clone()));
        }
        match self.env.get_template(name).and_then(|t| t.render(&ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering a dashboard page");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error (logged)").into_response()
            }
        }
    }

    fn error_page(&self, status: StatusCode, title: &str, message: &str, session: Option<&Session>) -> Response {
        self.render(
            status,
            "error.html",
            json!({"title": title, "message": message, "user": session.map(|s| s.role.clone()), "csrf": session.map(|s| s.csrf.clone())}),
        )
    }

    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        let mut c = Cookie::new(name, value);
        c.set_http_only(true);
        c.set_same_site(SameSite::Strict);
        c.set_secure(self.secure_cookies);
        c.set_path(self.base.clone());
        c
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("overview.html", include_str!("../../templates/overview.html")),
    ("search.html", include_str!("../../templates/search.html")),
    ("profile.html", include_str!("../../templates/profile.html")),
    ("error.html", include_str!("../../templates/error.html")),
];

type D = State<Arc<Dashboard>>;

pub fn routes<S: Clone + Send + Sync + 'static>(dashboard: Arc<Dashboard>) -> Router<S> {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/search", get(search))
        .route("/portals/{portal}/profiles/{profile_id}", get(profile))
        .route("/portals/{portal}/merges/{merge_id}/undo", post(undo))
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .with_state(dashboard)
}

/// A failed page, answered with the error template.
enum PageError {
    Login,
    Status(StatusCode, String, String),
    Db(db::DbError),
}

impl From<tokio_postgres::Error> for PageError {
    fn from(e: tokio_postgres::Error) -> Self {
        PageError::Db(db::classify(&e))
    }
}

impl From<deadpool_postgres::PoolError> for PageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PageError::Db(e.into())
    }
}

impl Dashboard {
    fn fail(&self, e: PageError, session: Option<&Session>) -> Response {
        match e {
            PageError::Login => Redirect::to(&format!("{}/login", self.base)).into_response(),
            PageError::Status(status, title, message) => self.error_page(status, &title, &message, session),
            PageError::Db(e) => {
                let (status, title) = match &e.failure {
                    db::Failure::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Database unavailable"),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, "Database error"),
                };
                tracing::warn!(error = %e.detail, role = session.map(|s| s.role.as_str()), "dashboard database error");
                // Messages of the database are shown (the user could run the same
                // query in psql); never the SQL.
                let message = match &e.failure {
                    db::Failure::Unavailable(_) => "The database did not answer. Try again in a moment.".to_string(),
                    _ => e.detail.clone(),
                };
                self.error_page(status, title, &message, session)
            }
        }
    }

    fn session(&self, jar: &CookieJar) -> Result<Arc<Session>, PageError> {
        jar.get(SESSION_COOKIE).and_then(|c| self.sessions.get(c.value())).ok_or(PageError::Login)
    }
}

/// A transaction of the session's role in a portal (set_config, never SQL
/// built from input), read-only unless it writes.
async fn in_portal<'a>(client: &'a mut deadpool_postgres::Object, portal: &str, read_only: bool) -> Result<Transaction<'a>, PageError> {
    let tx = client.build_transaction().read_only(read_only).start().await?;
    let set = tx.prepare_cached("SELECT set_config('cdp.portal', $1, true)").await?;
    tx.query_one(&set, &[&portal]).await?;
    // The portal is checked by the extension: unknown 22023, not granted 42501.
    let check = tx.prepare_cached("SELECT cdp.current_portal()").await?;
    if let Err(e) = tx.query_one(&check, &[]).await {
        return Err(match e.code().map(|c| c.code()) {
            Some("22023") => PageError::Status(StatusCode::NOT_FOUND, "Unknown portal".into(), format!("There is no portal {portal:?}.")),
            Some("42501") => {
                PageError::Status(StatusCode::FORBIDDEN, "Not allowed".into(), format!("Your role may not use portal {portal:?}."))
            }
            _ => e.into(),
        });
    }
    Ok(tx)
}

async fn is_admin(client: &deadpool_postgres::Object) -> Result<bool, PageError> {
    let row = client.query_one("SELECT pg_catalog.pg_has_role(current_user, 'cdp_admin', 'MEMBER')", &[]).await?;
    Ok(row.get(0))
}

async fn usable_portals(client: &deadpool_postgres::Object) -> Result<Vec<String>, PageError> {
    let rows = client.query("SELECT portal FROM cdp.portals ORDER BY portal", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

// ---------------------------------------------------------------- login

#[derive(Deserialize)]
struct LoginForm {
    role: String,
    password: String,
    csrf: String,
}

async fn login_form(State(d): D, jar: CookieJar) -> Response {
    if jar.get(SESSION_COOKIE).and_then(|c| d.sessions.get(c.value())).is_some() {
        return Redirect::to(&d.base).into_response();
    }
    let token = session::random_token();
    let jar = jar.add(d.cookie(LOGIN_COOKIE, token.clone()));
    (jar, d.render(StatusCode::OK, "login.html", json!({"csrf": token}))).into_response()
}

async fn login(
    State(d): D,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let again = |d: &Dashboard, jar: CookieJar, status: StatusCode, message: &str, role: &str| {
        let token = session::random_token();
        let jar = jar.add(d.cookie(LOGIN_COOKIE, token.clone()));
        (jar, d.render(status, "login.html", json!({"csrf": token, "error": message, "role": role}))).into_response()
    };
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !session::same(&expected, &form.csrf) {
        return again(&d, jar, StatusCode::FORBIDDEN, "The form expired. Please log in again.", "");
    }
    let ip = clientip::client_ip(peer.ip(), &headers, &d.trusted_proxies);
    if let Err(wait) = d.login_limiter.check(&ip) {
        let mut r = again(&d, jar, StatusCode::TOO_MANY_REQUESTS, "Too many login attempts. Wait a minute.", &form.role);
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(ratelimit::retry_after_secs(wait)));
        return r;
    }
    let role = form.role.trim().to_string();
    if role.is_empty() || role.len() > 63 || form.password.is_empty() {
        return again(&d, jar, StatusCode::UNAUTHORIZED, "Give a role name and its password.", &role);
    }
    let mut config = d.db_base.clone();
    config.user(&role);
    config.password(form.password.as_bytes());
    config.connect_timeout(d.connect_timeout);
    config.application_name("cdp_dashboard");
    config.options(format!("-c statement_timeout={}", d.statement_timeout_ms));
    let pool = match db::build_pool(config, 2, Duration::from_secs(5), d.connect_timeout) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "dashboard pool");
            return again(&d, jar, StatusCode::INTERNAL_SERVER_ERROR, "Internal error (logged).", &role);
        }
    };
    let checked = async {
        let client = pool.get().await?;
        let row = client
            .query_one(
                "SELECT pg_catalog.pg_has_role(current_user, 'cdp_reader', 'MEMBER'), pg_catalog.pg_has_role(current_user, 'cdp_admin', 'MEMBER')",
                &[],
            )
            .await?;
        Ok::<(bool, bool), db::DbError>((row.get(0), row.get(1)))
    }
    .await;
    match checked {
        Ok((true, admin)) => {
            let (token, _) = d.sessions.create(role.clone(), pool);
            tracing::info!(role = %role, admin, %ip, "dashboard login");
            let jar = jar.remove(d.cookie(LOGIN_COOKIE, String::new())).add(d.cookie(SESSION_COOKIE, token));
            (jar, Redirect::to(&d.base)).into_response()
        }
        Ok((false, _)) => {
            tracing::info!(role = %role, %ip, "dashboard login refused: not a member of cdp_reader");
            again(&d, jar, StatusCode::FORBIDDEN, "This role may not read customer data (it is not a member of cdp_reader).", &role)
        }
        Err(e) => match e.failure {
            db::Failure::Unavailable(ref code) if code == "28P01" || code == "28000" => {
                tracing::info!(role = %role, %ip, "dashboard login failed");
                again(&d, jar, StatusCode::UNAUTHORIZED, "Login failed: wrong role name or password.", &role)
            }
            db::Failure::Unavailable(_) => {
                tracing::warn!(error = %e.detail, "dashboard login: database unavailable");
                again(&d, jar, StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable. Try again in a moment.", &role)
            }
            _ => {
                tracing::warn!(error = %e.detail, role = %role, "dashboard login: database error");
                again(&d, jar, StatusCode::UNAUTHORIZED, "Login failed.", &role)
            }
        },
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(d): D, jar: CookieJar, Form(form): Form<CsrfForm>) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        if let Some(s) = d.sessions.get(c.value()) {
            if !session::same(&s.csrf, &form.csrf) {
                return d.error_page(StatusCode::FORBIDDEN, "Expired form", "The form expired: reload the page and try again.", Some(&s));
            }
            d.sessions.remove(c.value());
        }
    }
    let jar = jar.remove(d.cookie(SESSION_COOKIE, String::new()));
    (jar, Redirect::to(&format!("{}/login", d.base))).into_response()
}

// ---------------------------------------------------------------- overview

async fn overview(State(d): D, jar: CookieJar) -> Response {
    let s = match d.session(&jar) {
        Ok(s) => s,
        Err(e) => return d.fail(e, None),
    };
    let page = async {
        let client = s.pool.get().await?;
        let rows = client
            .query(
                "SELECT p.portal,
                        (SELECT count(*) FROM cdp.customers c WHERE c.portal = p.portal) AS customers,
                        (SELECT count(*) FROM cdp.anonymous_profiles a WHERE a.portal = p.portal) AS anonymous,
                        (SELECT count(*) FROM cdp.profiles m WHERE m.portal = p.portal AND m.merged_into IS NOT NULL) AS merged
                 FROM cdp.portals p ORDER BY p.portal",
                &[],
            )
            .await?;
        let portals: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"portal": r.get::<_, String>(0), "customers": r.get::<_, i64>(1), "anonymous": r.get::<_, i64>(2), "merged": r.get::<_, i64>(3)})
            })
            .collect();
        let admin = is_admin(&client).await?;
        Ok::<_, PageError>(d.render(
            StatusCode::OK,
            "overview.html",
            json!({"user": s.role, "admin": admin, "csrf": s.csrf, "portals": portals, "portal_names": portals.iter().map(|p| p["portal"].clone()).collect::<Vec<_>>()}),
        ))
    };
    page.await.unwrap_or_else(|e| d.fail(e, Some(&s)))
}

// ---------------------------------------------------------------- search

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    portal: String,
    #[serde(default)]
    q: String,
}

async fn search(State(d): D, jar: CookieJar, Query(query): Query<SearchQuery>) -> Response {
    let s = match d.session(&jar) {
        Ok(s) => s,
        Err(e) => return d.fail(e, None),
    };
    let page = async {
        let mut client = s.pool.get().await?;
        let admin = is_admin(&client).await?;
        let portals = usable_portals(&client).await?;
        let portal =
            if query.portal.is_empty() { portals.first().cloned().unwrap_or_else(|| "default".into()) } else { query.portal.clone() };
        let q = query.q.trim().to_string();
        let mut results = Vec::new();
        if !q.is_empty() {
            let tx = in_portal(&mut client, &portal, true).await?;
            results = find(&tx, &portal, &q).await?;
            tx.commit().await?;
        }
        Ok::<_, PageError>(d.render(
            StatusCode::OK,
            "search.html",
            json!({"user": s.role, "admin": admin, "csrf": s.csrf, "portal": portal, "portal_names": portals, "q": q, "searched": !q.is_empty(), "results": results}),
        ))
    };
    page.await.unwrap_or_else(|e| d.fail(e, Some(&s)))
}

/// Profiles matching a customer id, email, phone, UID, identify id or device
/// id, each once (as its unified profile), with how it matched.
async fn find(tx: &Transaction<'_>, portal: &str, q: &str) -> Result<Vec<Value>, PageError> {
    let norm = tx
        .query_one(
            "SELECT cdp.normalize_email($1),
                    cdp.normalize_phone($1, (SELECT nullif(coalesce(p.settings->>'default_phone_region',
                                                          current_setting('cdp.default_phone_region', true)), '')
                                             FROM cdp.portals p WHERE p.portal = $2))",
            &[&q, &portal],
        )
        .await?;
    let email: Option<String> = norm.get(0);
    let phone: Option<String> = norm.get(1);
    let customer_from_email: Option<String> = match &email {
        Some(_) => tx.query_one("SELECT cdp.customer_id_for_email($1)", &[&q]).await?.get(0),
        None => None,
    };
    let rows = tx
        .query(
            "WITH hit(how, profile_id) AS (
                 SELECT 'customer id', p.profile_id FROM cdp.profiles p WHERE p.portal = $1 AND p.customer_id = $2
                 UNION ALL
                 SELECT 'customer id of the email', p.profile_id FROM cdp.profiles p WHERE p.portal = $1 AND p.customer_id = $3
                 UNION ALL
                 SELECT 'UID', u.profile_id FROM cdp.uids u WHERE u.portal = $1 AND u.uid = $2
                 UNION ALL
                 SELECT 'email', i.profile_id FROM cdp.identifiers i WHERE i.portal = $1 AND i.kind = 'email' AND i.value = $4
                 UNION ALL
                 SELECT 'phone', i.profile_id FROM cdp.identifiers i WHERE i.portal = $1 AND i.kind = 'phone' AND i.value = $5
                 UNION ALL
                 SELECT 'identify id', i.profile_id FROM cdp.identifiers i WHERE i.portal = $1 AND i.kind = 'identify_id' AND i.value = $2
                 UNION ALL
                 SELECT 'device id', i.profile_id FROM cdp.identifiers i WHERE i.portal = $1 AND i.kind = 'device_id' AND i.value = $2
             ), root AS (
                 SELECT coalesce(p.merged_into, p.profile_id) AS root, h.how
                 FROM hit h JOIN cdp.profiles p ON p.portal = $1 AND p.profile_id = h.profile_id
             )
             SELECT r.root, array_agg(DISTINCT r.how ORDER BY r.how), p.customer_id,
                    (SELECT count(*) FROM cdp.family_of(r.root)) AS profiles,
                    (SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}') FROM cdp.profile_attributes a
                     WHERE a.portal = $1 AND a.profile_id = r.root) AS attributes
             FROM root r JOIN cdp.profiles p ON p.portal = $1 AND p.profile_id = r.root
             GROUP BY r.root, p.customer_id
             ORDER BY p.customer_id IS NULL, r.root
             LIMIT 100",
            &[&portal, &q, &customer_from_email, &email, &phone],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let attributes: Value = r.get(4);
            json!({
                "profile_id": r.get::<_, i64>(0),
                "matched": r.get::<_, Vec<String>>(1),
                "customer_id": r.get::<_, Option<String>>(2),
                "profiles": r.get::<_, i64>(3),
                "name": attributes.get("name").map(display_value),
                "email": attributes.get("email").map(display_value),
            })
        })
        .collect())
}

/// A JSON value as text: strings as they are, the rest as JSON.
fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- profile

#[derive(Deserialize)]
struct ProfileQuery {
    after: Option<i64>,
    #[serde(default)]
    order: String,
    undone: Option<i64>,
}

async fn profile(
    State(d): D,
    jar: CookieJar,
    Path((portal, profile_id)): Path<(String, i64)>,
    Query(query): Query<ProfileQuery>,
) -> Response {
    let s = match d.session(&jar) {
        Ok(s) => s,
        Err(e) => return d.fail(e, None),
    };
    let page = async {
        let mut client = s.pool.get().await?;
        let admin = is_admin(&client).await?;
        let tx = in_portal(&mut client, &portal, true).await?;
        let root: Option<i64> = tx.query_one("SELECT cdp.root_of($1)", &[&profile_id]).await?.get(0);
        let Some(root) = root else {
            return Err(PageError::Status(
                StatusCode::NOT_FOUND,
                "No such profile".into(),
                format!("Portal {portal:?} has no profile {profile_id}."),
            ));
        };
        if root != profile_id {
            return Ok(Redirect::to(&format!("{}/portals/{}/profiles/{root}", d.base, urlencode(&portal))).into_response());
        }
        let row = tx.query_one("SELECT cdp.profile($1), cdp.explain($1)", &[&root]).await?;
        let prof: Value = row.get(0);
        let explain: Value = row.get(1);
        let uid_rows = tx
            .query(
                "SELECT u.uid, u.profile_id, to_char(u.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), u.last_device_id, u.shared
                 FROM cdp.family_of($2) AS f(profile_id) JOIN cdp.uids u ON u.portal = $1 AND u.profile_id = f.profile_id
                 ORDER BY u.uid LIMIT 500",
                &[&portal, &root],
            )
            .await?;
        let ident_rows = tx
            .query(
                "SELECT i.kind, i.value, i.profile_id, to_char(i.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), i.trusted,
                        coalesce(d.shared, false), coalesce(array_to_string(d.customers, ', '), '')
                 FROM cdp.family_of($2) AS f(profile_id)
                 JOIN cdp.identifiers i ON i.portal = $1 AND i.profile_id = f.profile_id
                 LEFT JOIN cdp.devices d ON d.portal = i.portal AND d.kind = 'device_id' AND i.kind = 'device_id' AND d.value = i.value
                 ORDER BY i.kind, i.value, i.profile_id LIMIT 500",
                &[&portal, &root],
            )
            .await?;
        let decisions: Vec<Value> = explain.get("decisions").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut profile_ids: Vec<i64> = decisions
            .iter()
            .flat_map(|m| [m.get("from_profile").and_then(Value::as_i64), m.get("into_profile").and_then(Value::as_i64)])
            .flatten()
            .collect();
        profile_ids.extend(prof.get("merged_profiles").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_i64));
        profile_ids.sort_unstable();
        profile_ids.dedup();
        let profile_rows = tx
            .query(
                "SELECT p.profile_id, p.customer_id, p.merged_into FROM cdp.profiles p WHERE p.portal = $1 AND p.profile_id = ANY($2)",
                &[&portal, &profile_ids],
            )
            .await?;
        let newest = query.order != "oldest";
        let limit = d.page_size as i32 + 1;
        let event_rows = tx
            .query(
                "SELECT e.event_id, e.uid, e.category, e.action,
                        to_char(e.event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), e.payload
                 FROM cdp.events_of($1, $2, $3, $4) AS e",
                &[&root, &query.after, &limit, &newest],
            )
            .await?;
        tx.commit().await?;

        let profiles: BTreeMap<i64, (Option<String>, Option<i64>)> =
            profile_rows.iter().map(|r| (r.get::<_, i64>(0), (r.get::<_, Option<String>>(1), r.get::<_, Option<i64>>(2)))).collect();
        let uids: Vec<(String, i64)> = uid_rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let devices: Vec<(String, i64)> =
            ident_rows.iter().filter(|r| r.get::<_, String>(0) == "device_id").map(|r| (r.get(1), r.get(2))).collect();
        let root_customer = prof.get("customer_id").and_then(Value::as_str).map(str::to_string);
        let svg = graph::build(&graph::Input {
            root,
            root_customer: root_customer.as_deref(),
            profiles: &profiles,
            uids: &uids,
            devices: &devices,
            decisions: &decisions,
        });

        let via: BTreeMap<String, Value> = explain
            .get("uids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|u| Some((u.get("uid")?.as_str()?.to_string(), u.get("via").cloned().unwrap_or(Value::Null))))
            .collect();
        let uid_view: Vec<Value> = uid_rows
            .iter()
            .map(|r| {
                let uid: String = r.get(0);
                let how = via.get(&uid).map(describe_via).unwrap_or_default();
                json!({"uid": uid, "profile_id": r.get::<_, i64>(1), "first_seen": r.get::<_, Option<String>>(2),
                       "device": r.get::<_, Option<String>>(3), "shared": r.get::<_, bool>(4), "via": how})
            })
            .collect();
        let identifiers: Vec<Value> = ident_rows
            .iter()
            .map(|r| {
                json!({"kind": r.get::<_, String>(0), "value": r.get::<_, String>(1), "profile_id": r.get::<_, i64>(2),
                       "first_seen": r.get::<_, Option<String>>(3), "trusted": r.get::<_, bool>(4), "shared": r.get::<_, bool>(5),
                       "customers": r.get::<_, String>(6)})
            })
            .collect();
        let attributes: Vec<Value> = explain
            .get("attributes")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, a)| {
                        json!({"key": k, "value": a.get("value").map(display_value).unwrap_or_default(),
                               "source": a.get("source").map(display_value).unwrap_or_default(),
                               "set_at": a.get("set_at").and_then(Value::as_str).map(short_time),
                               "from_profile": a.get("from_profile").and_then(Value::as_i64)})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let system: Vec<Value> = prof
            .get("system")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| json!({"key": k, "value": display_value(v)})).collect())
            .unwrap_or_default();
        let history: Vec<Value> = decisions
            .iter()
            .map(|m| {
                let g = |k: &str| m.get(k).map(display_value).unwrap_or_default();
                json!({"merge_id": m.get("merge_id").and_then(Value::as_i64), "kind": g("kind"), "reason": g("reason"), "evidence": g("evidence"),
                       "uid": m.get("uid").and_then(Value::as_str), "from_profile": m.get("from_profile").and_then(Value::as_i64),
                       "into_profile": m.get("into_profile").and_then(Value::as_i64), "identify_type": g("identify_type"),
                       "identify_time": m.get("identify_time").and_then(Value::as_str).map(short_time),
                       "merged_at": m.get("merged_at").and_then(Value::as_str).map(short_time),
                       "undone_at": m.get("undone_at").and_then(Value::as_str).map(short_time),
                       "cascade_of": m.get("undone_by_cascade_of").and_then(Value::as_i64),
                       "filled": m.get("filled_attributes").and_then(Value::as_array).map(|a| a.iter().map(display_value).collect::<Vec<_>>().join(", ")).unwrap_or_default()})
            })
            .collect();
        let more = event_rows.len() > d.page_size as usize;
        let events: Vec<Value> = event_rows.iter().take(d.page_size as usize).map(event_view).collect();
        let next_after = if more { events.last().and_then(|e| e["event_id"].as_i64()) } else { None };
        let shared = explain.get("shared").cloned().unwrap_or(Value::Array(vec![]));
        Ok::<_, PageError>(d.render(
            StatusCode::OK,
            "profile.html",
            json!({
                "user": s.role, "admin": admin, "csrf": s.csrf, "portal": portal, "portal_q": urlencode(&portal),
                "profile": {"profile_id": root, "customer_id": root_customer, "kind": prof.get("kind"),
                            "event_count": prof.get("event_count"), "session_count": prof.get("session_count"),
                            "first_seen": prof.get("first_seen").and_then(Value::as_str).map(short_time),
                            "last_seen": prof.get("last_seen").and_then(Value::as_str).map(short_time),
                            "identified_at": prof.get("identified_at").and_then(Value::as_str).map(short_time),
                            "merged_profiles": prof.get("merged_profiles")},
                "attributes": attributes, "system": system, "uids": uid_view, "identifiers": identifiers,
                "history": history, "shared": shared, "events": events, "graph": svg,
                "order": if newest { "newest" } else { "oldest" }, "after": query.after, "next_after": next_after,
                "undone": query.undone,
            }),
        ))
    };
    page.await.unwrap_or_else(|e| d.fail(e, Some(&s)))
}

fn short_time(t: &str) -> String {
    // "2026-11-30T16:50:40.212111+00:00" → "2026-11-30 16:50:40+00:00"
    let (date_time, zone) = match t.rfind(['+', '-']) {
        Some(i) if i > 10 => (&t[..i], &t[i..]),
        _ => (t, ""),
    };
    let date_time = date_time.split('.').next().unwrap_or(date_time).replace('T', " ");
    format!("{date_time}{zone}")
}

fn describe_via(via: &Value) -> String {
    if let Some(rule) = via.get("rule").and_then(Value::as_str) {
        return rule.to_string();
    }
    let g = |k: &str| via.get(k).map(display_value).unwrap_or_default();
    match g("kind").as_str() {
        "uid_reassigned" => format!("moved here by decision #{} ({}: {})", g("merge_id"), g("reason"), g("evidence")),
        "merge" => format!("merged by decision #{} ({}: {})", g("merge_id"), g("reason"), g("evidence")),
        "" => String::new(),
        other => format!("{other} #{}", g("merge_id")),
    }
}

fn event_view(r: &tokio_postgres::Row) -> Value {
    let payload: Value = r.get(5);
    let context = payload.get("context").cloned().unwrap_or(Value::Null);
    let mut details = serde_json::Map::new();
    for key in ["dims", "extra", "items"] {
        if let Some(v) = payload.get(key) {
            details.insert(key.into(), v.clone());
        }
    }
    let c = |k: &str| context.get(k).map(display_value);
    let mut summary = Value::Object(details).to_string();
    if summary.chars().count() > 300 {
        summary = format!("{}…", summary.chars().take(299).collect::<String>());
    }
    json!({
        "event_id": r.get::<_, i64>(0), "uid": r.get::<_, String>(1), "category": r.get::<_, String>(2),
        "action": r.get::<_, String>(3), "time": r.get::<_, Option<String>>(4), "summary": summary,
        "ip": c("ip"), "user_agent": c("user_agent"), "page_url": c("page_url"), "device_id": c("device_id"),
        "payload": serde_json::to_string_pretty(&payload).unwrap_or_default(),
    })
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).map(|e| e[2..].to_string()).unwrap_or_default()
}

// ---------------------------------------------------------------- undo

#[derive(Deserialize)]
struct UndoForm {
    csrf: String,
    #[serde(default)]
    cascade: Option<String>,
    back: Option<i64>,
}

async fn undo(State(d): D, jar: CookieJar, Path((portal, merge_id)): Path<(String, i64)>, Form(form): Form<UndoForm>) -> Response {
    let s = match d.session(&jar) {
        Ok(s) => s,
        Err(e) => return d.fail(e, None),
    };
    if !session::same(&s.csrf, &form.csrf) {
        return d.error_page(StatusCode::FORBIDDEN, "Expired form", "The form expired: reload the page and try again.", Some(&s));
    }
    let page = async {
        let mut client = s.pool.get().await?;
        // Checked again here, whatever the page showed: only cdp_admin may undo.
        if !is_admin(&client).await? {
            tracing::warn!(role = %s.role, merge_id, "undo refused: not a member of cdp_admin");
            return Err(PageError::Status(
                StatusCode::FORBIDDEN,
                "Not allowed".into(),
                "Only members of cdp_admin may undo identity decisions.".into(),
            ));
        }
        let cascade = form.cascade.as_deref().is_some_and(|c| c == "on" || c == "true");
        let tx = in_portal(&mut client, &portal, false).await?;
        let result = tx.query_one("SELECT cdp.unmerge($1, $2)", &[&merge_id, &cascade]).await;
        let outcome: Value = match result {
            Ok(row) => row.get(0),
            Err(e) => {
                let message = e.as_db_error().map(|db| {
                    let hint = db.hint().map(|h| format!(" ({h})")).unwrap_or_default();
                    format!("{}{hint}", db.message())
                });
                return Err(match (e.code().map(|c| c.code()), message) {
                    (Some("55000" | "22023" | "22004"), Some(m)) => {
                        PageError::Status(StatusCode::CONFLICT, format!("Decision {merge_id} was not undone"), m)
                    }
                    _ => e.into(),
                });
            }
        };
        tx.commit().await?;
        tracing::info!(role = %s.role, portal = %portal, merge_id, cascade, outcome = %outcome, "identity decision undone");
        let back = form.back.or_else(|| outcome.get("customer_profile").and_then(Value::as_i64));
        let to = match back {
            Some(p) => format!("{}/portals/{}/profiles/{p}?undone={merge_id}", d.base, urlencode(&portal)),
            None => d.base.clone(),
        };
        Ok::<_, PageError>(Redirect::to(&to).into_response())
    };
    page.await.unwrap_or_else(|e| d.fail(e, Some(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_values_display() {
        assert_eq!(short_time("2026-11-30T16:50:40.212111+00:00"), "2026-11-30 16:50:40+00:00");
        assert_eq!(short_time("2026-11-30T16:50:40-05:30"), "2026-11-30 16:50:40-05:30");
        assert_eq!(display_value(&json!("a")), "a");
        assert_eq!(display_value(&json!({"a": 1})), "{\"a\":1}");
        assert_eq!(urlencode("shop eu/1"), "shop+eu%2F1");
    }

    #[test]
    fn templates_escape_what_they_show() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source).unwrap();
        }
        let html = env
            .get_template("error.html")
            .unwrap()
            .render(json!({"base": "/dashboard", "title": "<script>x</script>", "message": "\"'&", "user": null}))
            .unwrap();
        assert!(!html.contains("<script>x"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
