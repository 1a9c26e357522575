//! End-to-end test of cdp-collector against a real PostgreSQL cluster with the
//! extension installed: run by collector/test.sh, which starts the cluster
//! (scripts/cluster.sh, CDP_CLUSTER=collector, port 54350) and sets
//! CDP_COLLECTOR_E2E=1. Each check prints "ok - name" or "FAILED - name:
//! why"; the last line is "e2e: N passed, M failed".
//!
//! It creates the database, a login role that is only a member of
//! cdp_writer (what the collector runs as), dashboard roles of cdp_reader,
//! cdp_admin and cdp_writer, starts the collector binary with a test
//! configuration and checks ingestion (context stamping, X-Forwarded-For,
//! every error status, CORS, rate limits, metrics, retries), the database
//! stopped and started again under it, the dashboard (login, search, profile,
//! graph, paging, undo as admin and as reader), and a graceful shutdown that
//! finishes a request in flight.

use std::future::Future;
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio_postgres::NoTls;

const DB: &str = "cdp_collector_test";
const COLLECTOR_ROLE: &str = "cdp_collector_t";
const COLLECTOR_PW: &str = "collector-secret-pw";
const READER: &str = "dash_reader_t";
const ADMIN: &str = "dash_admin_t";
const WRITER: &str = "dash_writer_t";
const DASH_PW: &str = "dash-secret-pw";
const KEY: &str = "wk_e2e_default_key";
const SHOP_KEY: &str = "wk_e2e_shop_key";
const LIMITED_KEY: &str = "wk_e2e_limited_key";
const ORIGIN: &str = "https://shop.example";
const UA: &str = "E2E-Agent/1.0 (collector test)";

type R = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($arg)+));
        }
    };
}

struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    async fn check<F: Future<Output = R>>(&mut self, name: &str, f: F) -> bool {
        let started = Instant::now();
        let result = match tokio::time::timeout(Duration::from_secs(60), f).await {
            Ok(r) => r,
            Err(_) => Err("timed out after 60 s".into()),
        };
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("ok - {name} ({} ms)", started.elapsed().as_millis());
                true
            }
            Err(e) => {
                self.failed += 1;
                println!("FAILED - {name}: {e}");
                false
            }
        }
    }
}

struct Env {
    root: PathBuf,
    socket: String,
    port: u16,
    work: PathBuf,
    http_port: u16,
}

impl Env {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn cluster(&self, action: &str) -> R {
        let status = Command::new(self.root.join("scripts/cluster.sh"))
            .arg(action)
            .env("CDP_CLUSTER", "collector")
            .env("CDP_PGPORT", self.port.to_string())
            .status()
            .map_err(|e| e.to_string())?;
        ensure!(status.success(), "scripts/cluster.sh {action} failed");
        Ok(())
    }

    async fn superuser(&self, db: &str) -> Result<tokio_postgres::Client, String> {
        let (client, conn) = tokio_postgres::Config::new()
            .host_path(&self.socket)
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(NoTls)
            .await
            .map_err(|e| format!("connect as postgres: {e}"))?;
        tokio::spawn(conn);
        Ok(client)
    }

    fn start_collector(&self) -> Result<Child, String> {
        let log = std::fs::File::create(self.work.join("collector.log")).map_err(|e| e.to_string())?;
        Command::new(env!("CARGO_BIN_EXE_cdp-collector"))
            .arg("--config")
            .arg(self.work.join("collector.toml"))
            .env("CDP_COLLECTOR_DATABASE_PASSWORD", COLLECTOR_PW)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start the collector: {e}"))
    }
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(20)).user_agent(UA).build().unwrap()
}

/// A client whose connections come from another loopback address.
fn client_from(ip: &str) -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .user_agent(UA)
        .local_address(ip.parse::<IpAddr>().ok())
        .build()
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn body_json(r: reqwest::Response) -> Result<(StatusCode, reqwest::header::HeaderMap, Value), String> {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.map_err(|e| e.to_string())?;
    let v = serde_json::from_str(&text).map_err(|e| format!("{status}: not JSON: {text:?} ({e})"))?;
    Ok((status, headers, v))
}

fn item(uid: &str, category: &str, action: &str, message_id: &str, payload: Value) -> Value {
    let mut payload = payload;
    if payload.get("context").is_none() {
        payload["context"] = json!({});
    }
    payload["context"]["message_id"] = json!(message_id);
    json!({"uid": uid, "category": category, "action": action, "payload": payload})
}

async fn post_batch(c: &Client, env: &Env, key: &str, batch: &Value) -> Result<reqwest::Response, String> {
    c.post(format!("{}/v1/batch?key={key}", env.base()))
        .header("content-type", "application/json")
        .body(json!({"batch": batch, "sent_at": "2026-11-30T10:00:00Z"}).to_string())
        .send()
        .await
        .map_err(|e| format!("POST /v1/batch: {e}"))
}

async fn events_by_message(db: &tokio_postgres::Client, ids: &[&str]) -> Result<Vec<(String, Value)>, String> {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let rows = db
        .query("SELECT message_id, payload FROM cdp.events WHERE message_id = ANY($1) ORDER BY event_id", &[&ids])
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn metric(c: &Client, env: &Env, name_and_labels: &str) -> Result<f64, String> {
    let text = c.get(format!("{}/metrics", env.base())).send().await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
    Ok(text.lines().filter(|l| l.starts_with(name_and_labels)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum())
}

fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

/// Logs in through the form; the client keeps the cookies.
async fn login(env: &Env, role: &str, password: &str) -> Result<(Client, reqwest::Response), String> {
    let c = Client::builder().redirect(Policy::none()).cookie_store(true).timeout(Duration::from_secs(20)).build().unwrap();
    let form = c.get(format!("{}/dashboard/login", env.base())).send().await.map_err(|e| e.to_string())?;
    let html = form.text().await.map_err(|e| e.to_string())?;
    let csrf = csrf_of(&html).ok_or("no csrf token in the login form")?;
    let r = c
        .post(format!("{}/dashboard/login", env.base()))
        .form(&[("role", role), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok((c, r))
}

async fn page(c: &Client, url: String) -> Result<(StatusCode, String), String> {
    let r = c.get(url).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    Ok((status, r.text().await.map_err(|e| e.to_string())?))
}

async fn wait_http(env: &Env, want_ok: bool) -> R {
    let c = client();
    for _ in 0..150 {
        if let Ok(r) = c.get(format!("{}/healthz", env.base())).send().await {
            if !want_ok || r.status() == StatusCode::OK {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("the collector did not answer /healthz in 30 s".into())
}

async fn setup(env: &Env) -> R {
    let pg = env.superuser("postgres").await?;
    pg.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await.map_err(|e| e.to_string())?;
    pg.batch_execute(&format!("CREATE DATABASE {DB}")).await.map_err(|e| e.to_string())?;
    // Roles belong to the cluster (this test's own): made again each run.
    for role in [COLLECTOR_ROLE, READER, ADMIN, WRITER] {
        pg.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await.map_err(|e| e.to_string())?;
    }
    let db = env.superuser(DB).await?;
    db.batch_execute(&format!(
        "CREATE EXTENSION cdp_identity;
         CREATE ROLE {COLLECTOR_ROLE} LOGIN PASSWORD '{COLLECTOR_PW}';
         GRANT cdp_writer TO {COLLECTOR_ROLE};
         CREATE ROLE {READER} LOGIN PASSWORD '{DASH_PW}';
         GRANT cdp_reader TO {READER};
         CREATE ROLE {ADMIN} LOGIN PASSWORD '{DASH_PW}';
         GRANT cdp_admin TO {ADMIN};
         CREATE ROLE {WRITER} LOGIN PASSWORD '{DASH_PW}';
         GRANT cdp_writer TO {WRITER};
         SELECT cdp.create_portal('shop', '{{\"max_batch_items\": 5}}');
         SELECT cdp.create_portal('limited');
         SELECT cdp.grant_portal('{COLLECTOR_ROLE}', 'shop');
         SELECT cdp.grant_portal('{COLLECTOR_ROLE}', 'limited');"
    ))
    .await
    .map_err(|e| e.to_string())?;
    // The collector's role is a member of cdp_writer only.
    let row = db
        .query_one(
            "SELECT array_agg(b.rolname::text ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
             JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1",
            &[&COLLECTOR_ROLE],
        )
        .await
        .map_err(|e| e.to_string())?;
    let groups: Vec<String> = row.get(0);
    ensure!(groups == vec!["cdp_writer".to_string()], "the collector role is a member of {groups:?}");

    std::fs::create_dir_all(env.work.join("static")).map_err(|e| e.to_string())?;
    std::fs::write(env.work.join("static/demo.html"), "<!doctype html><title>demo</title><p>cdp demo page</p>")
        .map_err(|e| e.to_string())?;
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{http_port}"
body_limit_bytes = 65536
request_timeout_secs = 3
shutdown_timeout_secs = 10
retry_after_secs = 2
trusted_proxies = ["127.0.0.2", "10.0.0.0/8"]

[log]
format = "json"
level = "info"

[database]
url = "host={socket} port={port} dbname={DB} user={COLLECTOR_ROLE}"
pool_size = 4
connect_timeout_ms = 2000
pool_timeout_ms = 2000
statement_timeout_ms = 5000

[rate_limit]
per_second = 1000
burst = 1000

[portals.default]
write_keys = ["{KEY}"]
allowed_origins = ["{ORIGIN}"]

[portals.shop]
write_keys = ["{SHOP_KEY}"]
allowed_origins = ["*"]

[portals.limited]
write_keys = ["{LIMITED_KEY}"]
rate_limit = {{ per_second = 1, burst = 2 }}

[dashboard]
enabled = true
path = "/dashboard"
page_size = 3
login_attempts_per_minute = 60

[static_files]
dir = "{static_dir}"
path = "/static"
"#,
        http_port = env.http_port,
        socket = env.socket,
        port = env.port,
        static_dir = env.work.join("static").display(),
    );
    std::fs::write(env.work.join("collector.toml"), config).map_err(|e| e.to_string())?;
    Ok(())
}

fn story() -> Value {
    // The seed's story: Day 1 and Day 3, two anonymous visits with two cookies
    // on one laptop; a lead form on a phone with the email; Day 7, sign-in
    // with the Day 3 UID. The sign-in merges Day 3 (its UID), Day 1 (the
    // device id) and the phone's profile (the email).
    json!([
        item(
            "e2e-uid-day1",
            "page",
            "view",
            "e2e-m-1",
            json!({"context": {"device_id": "e2e-dev-1", "ip": "6.6.6.6", "user_agent": "spoofed"}})
        ),
        item(
            "e2e-uid-day1",
            "product",
            "view",
            "e2e-m-2",
            json!({"context": {"device_id": "e2e-dev-1"}, "dims": {"product": {"id": "p1"}}})
        ),
        item("e2e-uid-day3", "page", "view", "e2e-m-3", json!({"context": {"device_id": "e2e-dev-1"}})),
        item(
            "e2e-uid-phone",
            "form",
            "submit",
            "e2e-m-4",
            json!({"context": {"device_id": "e2e-dev-2"},
            "dims": {"customers": {"email": "ann.lee@example.com", "phone": "+44 20 7946 0958"}}})
        ),
        item(
            "e2e-uid-day3",
            "user",
            "sign_in",
            "e2e-m-5",
            json!({
            "context": {"device_id": "e2e-dev-1"},
            "dims": {"customers": {"customer_id": "e2e-cust-1", "email": "Ann.Lee@Example.com", "name": "Ann <b>Lee</b>"}},
            "extra": {"identify_id": "e2e-cust-1", "identify_event": "user_sign_in", "identify_type": "exact"}})
        ),
        item("e2e-uid-day3", "page", "view", "e2e-m-6", json!({"context": {"device_id": "e2e-dev-1"}})),
    ])
}

const STORY_IDS: [&str; 6] = ["e2e-m-1", "e2e-m-2", "e2e-m-3", "e2e-m-4", "e2e-m-5", "e2e-m-6"];

#[tokio::main]
async fn main() {
    if std::env::var("CDP_COLLECTOR_E2E").is_err() {
        println!("e2e: skipped (run collector/test.sh, which starts the database cluster)");
        return;
    }
    let root = PathBuf::from(std::env::var("CDP_ROOT").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/..").into()));
    let port: u16 = std::env::var("CDP_PGPORT").ok().and_then(|p| p.parse().ok()).unwrap_or(54350);
    let work = std::env::temp_dir().join(format!("cdp_collector_e2e_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let env = Env { root, socket: "/var/tmp/cdp_identity/collector/socket".into(), port, work: work.clone(), http_port: free_port() };
    let mut t = Tally { passed: 0, failed: 0 };

    if !t.check("setup: database, extension, least-privilege roles, config", setup(&env)).await {
        finish(&t, &env, None);
    }
    let mut child = match env.start_collector() {
        Ok(c) => c,
        Err(e) => {
            println!("FAILED - start the collector: {e}");
            t.failed += 1;
            finish(&t, &env, None);
        }
    };
    t.check("collector starts and /healthz is 200", async {
        wait_http(&env, true).await?;
        let (status, _, v) = body_json(client().get(format!("{}/healthz", env.base())).send().await.map_err(|e| e.to_string())?).await?;
        ensure!(status == StatusCode::OK && v["status"] == "ok", "{status} {v}");
        Ok(())
    })
    .await;
    let db = env.superuser(DB).await.expect("superuser connection");

    ingest_checks(&mut t, &env, &db).await;
    database_outage(&mut t, &env).await;
    let db = env.superuser(DB).await.expect("superuser connection after the restart");
    dashboard_checks(&mut t, &env, &db).await;
    graceful_shutdown(&mut t, &env, &db, &mut child).await;
    finish(&t, &env, Some(child));
}

fn finish(t: &Tally, env: &Env, child: Option<Child>) -> ! {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    if t.failed > 0 {
        if let Ok(log) = std::fs::read_to_string(env.work.join("collector.log")) {
            println!("--- collector log (last 40 lines)");
            for line in log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev() {
                println!("{line}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&env.work);
    println!("e2e: {} passed, {} failed", t.passed, t.failed);
    std::process::exit(if t.failed == 0 { 0 } else { 1 })
}

async fn ingest_checks(t: &mut Tally, env: &Env, db: &tokio_postgres::Client) {
    let c = client();
    t.check("a batch is stored with context.ip and user_agent set by the collector", async {
        let (status, _, report) = body_json(post_batch(&c, env, KEY, &story()).await?).await?;
        ensure!(status == StatusCode::OK, "{status} {report}");
        ensure!(report["accepted"] == 6 && report["stored"] == 6 && report["duplicates"] == 0, "report {report}");
        ensure!(report["rejected"] == json!([]), "report {report}");
        let events = events_by_message(db, &STORY_IDS).await?;
        ensure!(events.len() == 6, "{} events stored", events.len());
        for (id, payload) in &events {
            let ctx = &payload["context"];
            ensure!(ctx["ip"] == "127.0.0.1", "{id}: context.ip {} (the client's own ip must be ignored)", ctx["ip"]);
            ensure!(ctx["user_agent"] == UA, "{id}: context.user_agent {}", ctx["user_agent"]);
        }
        ensure!(events[0].1["context"]["device_id"] == "e2e-dev-1", "other context fields are kept: {}", events[0].1);
        // Numbers reach the database as the client wrote them.
        let raw = r#"{"batch": [{"uid": "e2e-exact", "category": "cart", "action": "add", "event_time": 1764497709250,
                      "payload": {"extra": {"price": 1.10, "huge": 1e400}, "context": {"message_id": "e2e-exact-1"}}}]}"#;
        let r = c.post(format!("{}/v1/batch?key={KEY}", env.base())).body(raw).send().await.map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::OK, "exact numbers: {}", r.status());
        let row = db
            .query_one(
                "SELECT payload->'extra'->>'price', payload->'extra'->>'huge', to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')
                 FROM cdp.events WHERE message_id = 'e2e-exact-1'",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (price, huge, time): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        ensure!(price == "1.10" && huge.starts_with("1000000000"), "numbers are stored exactly as sent: {price} {}", &huge[..huge.len().min(20)]);
        ensure!(time == "2025-11-30 10:15:09.250", "epoch milliseconds event_time: {time}");
        let customer: Option<String> = db
            .query_one("SELECT customer_id FROM cdp.profiles WHERE profile_id = (SELECT cdp.root_of(profile_id) FROM cdp.uids WHERE uid = 'e2e-uid-day3')", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        ensure!(customer.as_deref() == Some("e2e-cust-1"), "the sign-in identified: {customer:?}");
        Ok(())
    })
    .await;

    t.check("a retried batch (same message ids) stores nothing twice", async {
        let (status, _, report) = body_json(post_batch(&c, env, KEY, &story()).await?).await?;
        ensure!(status == StatusCode::OK && report["stored"] == 0 && report["duplicates"] == 6, "{status} {report}");
        let n = events_by_message(db, &STORY_IDS).await?.len();
        ensure!(n == 6, "{n} events");
        Ok(())
    })
    .await;

    t.check("X-Forwarded-For is ignored from a peer that is not a trusted proxy", async {
        let r = c
            .post(format!("{}/v1/event?key={KEY}", env.base()))
            .header("x-forwarded-for", "198.51.100.7")
            .header("content-type", "application/json")
            .body(item("e2e-xff-1", "page", "view", "e2e-xff-1", json!({})).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::OK, "{}", r.status());
        let ev = events_by_message(db, &["e2e-xff-1"]).await?;
        ensure!(ev.len() == 1 && ev[0].1["context"]["ip"] == "127.0.0.1", "{ev:?}");
        Ok(())
    })
    .await;

    t.check("X-Forwarded-For is honoured from a trusted proxy (right-most untrusted address)", async {
        let proxy = client_from("127.0.0.2");
        for (xff, id, want) in
            [("203.0.113.5, 198.51.100.7", "e2e-xff-2", "198.51.100.7"), ("203.0.113.5, 10.1.2.3", "e2e-xff-3", "203.0.113.5")]
        {
            let r = proxy
                .post(format!("{}/v1/event?key={KEY}", env.base()))
                .header("x-forwarded-for", xff)
                .header("content-type", "application/json")
                .body(item(id, "page", "view", id, json!({"context": {"ip": "6.6.6.6"}})).to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            ensure!(r.status() == StatusCode::OK, "{}", r.status());
            let ev = events_by_message(db, &[id]).await?;
            ensure!(ev.len() == 1 && ev[0].1["context"]["ip"] == want, "X-Forwarded-For {xff}: stored {:?}, want {want}", ev);
        }
        Ok(())
    })
    .await;

    t.check("a text/plain beacon from an allowed origin is accepted (with CORS headers)", async {
        let r = c
            .post(format!("{}/v1/event?key={KEY}", env.base()))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", ORIGIN)
            .body(item("e2e-beacon", "page", "leave", "e2e-beacon-1", json!({})).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let acao = r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status, _, report) = body_json(r).await?;
        ensure!(status == StatusCode::OK && report["stored"] == 1, "{status} {report}");
        ensure!(acao.as_deref() == Some(ORIGIN), "access-control-allow-origin {acao:?}");
        ensure!(events_by_message(db, &["e2e-beacon-1"]).await?.len() == 1, "not stored");
        Ok(())
    })
    .await;

    t.check("CORS preflight: allowed origin answered, other origin 403", async {
        let r = c
            .request(reqwest::Method::OPTIONS, format!("{}/v1/batch?key={KEY}", env.base()))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-write-key")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status().is_success(), "preflight {}", r.status());
        let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        ensure!(h("access-control-allow-origin") == ORIGIN, "allow-origin {:?}", h("access-control-allow-origin"));
        ensure!(h("access-control-allow-methods").contains("post"), "allow-methods {:?}", h("access-control-allow-methods"));
        ensure!(h("access-control-allow-headers").contains("x-write-key"), "allow-headers {:?}", h("access-control-allow-headers"));
        let bad = c
            .request(reqwest::Method::OPTIONS, format!("{}/v1/batch?key={KEY}", env.base()))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(bad.status() == StatusCode::FORBIDDEN, "disallowed preflight {}", bad.status());
        ensure!(bad.headers().get("access-control-allow-origin").is_none(), "no allow-origin for a disallowed origin");
        Ok(())
    })
    .await;

    t.check("403 for an origin not in the portal's allow-list", async {
        let r = c
            .post(format!("{}/v1/batch?key={KEY}", env.base()))
            .header("origin", "https://evil.example")
            .header("content-type", "text/plain")
            .body(json!({"batch": [item("e2e-evil", "page", "view", "e2e-evil-1", json!({}))]}).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let (status, headers, v) = body_json(r).await?;
        ensure!(status == StatusCode::FORBIDDEN && v["error"].is_string(), "{status} {v}");
        ensure!(events_by_message(db, &["e2e-evil-1"]).await?.is_empty(), "stored anyway");
        // The error is readable by the page (the SDK then drops the batch instead of retrying it forever).
        let acao = headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok());
        ensure!(acao == Some("https://evil.example"), "the 403 is not readable by the page: {acao:?}");
        Ok(())
    })
    .await;

    t.check("401 for a missing or unknown write key; the X-Write-Key header works", async {
        for url in [format!("{}/v1/batch", env.base()), format!("{}/v1/batch?key=wk_nope_nope_nope", env.base())] {
            let r =
                c.post(url).header("content-type", "application/json").body(r#"{"batch": []}"#).send().await.map_err(|e| e.to_string())?;
            let (status, _, v) = body_json(r).await?;
            ensure!(status == StatusCode::UNAUTHORIZED && v["error"].is_string(), "{status} {v}");
        }
        let r = c
            .post(format!("{}/v1/batch", env.base()))
            .header("x-write-key", KEY)
            .header("content-type", "application/json")
            .body(r#"{"batch": []}"#)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::OK, "header key: {}", r.status());
        Ok(())
    })
    .await;

    t.check("400 with a message for malformed JSON and for bodies not of the wire format", async {
        for (path, body) in [
            ("batch", "{\"batch\": [".to_string()),
            ("batch", "not json".to_string()),
            ("batch", r#"{"events": []}"#.to_string()),
            ("batch", r#"{"batch": {"uid": "x"}}"#.to_string()),
            ("batch", r#"{"batch": [], "sent_at": 12}"#.to_string()),
            ("event", r#"[{"uid": "x"}]"#.to_string()),
            ("event", "\"hello\"".to_string()),
        ] {
            let r = c
                .post(format!("{}/v1/{path}?key={KEY}", env.base()))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let (status, _, v) = body_json(r).await?;
            ensure!(status == StatusCode::BAD_REQUEST, "/v1/{path} {body}: {status} {v}");
            ensure!(v["error"].as_str().is_some_and(|m| m.len() > 10), "/v1/{path} {body}: no message: {v}");
        }
        Ok(())
    })
    .await;

    t.check("bad items are rejected alone (unknown key, \\u0000), the good ones stored", async {
        let body = format!(
            r#"{{"batch": [{}, {{"uid": "e2e-bad", "category": "c", "action": "a", "timestamp": 1}},
                 {{"uid": "e2e-nul", "category": "c", "action": "a", "payload": {{"extra": {{"s": "a\u0000b"}}, "context": {{"message_id": "e2e-nul-1"}}}}}},
                 {}]}}"#,
            item("e2e-good", "page", "view", "e2e-good-1", json!({})),
            item("e2e-good", "page", "view", "e2e-good-2", json!({})),
        );
        let r = c
            .post(format!("{}/v1/batch?key={KEY}", env.base()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let (status, _, report) = body_json(r).await?;
        ensure!(status == StatusCode::OK && report["stored"] == 2, "{status} {report}");
        let rejected: Vec<(u64, String)> = report["rejected"]
            .as_array()
            .ok_or("no rejected list")?
            .iter()
            .map(|r| (r["index"].as_u64().unwrap_or(99), r["sqlstate"].as_str().unwrap_or("").to_string()))
            .collect();
        ensure!(rejected == vec![(1, "22023".to_string()), (2, "22P05".to_string())], "rejected {rejected:?}");
        ensure!(report["profile_ids"].as_array().is_some_and(|p| p.len() == 4 && p[1].is_null() && p[2].is_null() && p[3].is_i64()), "{report}");
        ensure!(events_by_message(db, &["e2e-good-1", "e2e-good-2"]).await?.len() == 2, "good items not stored");
        Ok(())
    })
    .await;

    t.check("415 for another content type", async {
        let r = c
            .post(format!("{}/v1/batch?key={KEY}", env.base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(r#"{"batch": []}"#)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.status());
        Ok(())
    })
    .await;

    t.check("413 for a body over the limit", async {
        let big: Vec<Value> = (0..400)
            .map(|i| item("e2e-big", "page", "view", &format!("e2e-big-{i}"), json!({"extra": {"pad": "x".repeat(200)}})))
            .collect();
        let r = post_batch(&c, env, KEY, &Value::Array(big)).await?;
        let (status, _, v) = body_json(r).await?;
        ensure!(status == StatusCode::PAYLOAD_TOO_LARGE, "{status} {v}");
        ensure!(events_by_message(db, &["e2e-big-0"]).await?.is_empty(), "stored anyway");
        Ok(())
    })
    .await;

    t.check("413 when the database refuses the whole batch (54000, the portal's max_batch_items)", async {
        let batch: Vec<Value> = (0..6).map(|i| item("e2e-shop", "page", "view", &format!("e2e-shop-many-{i}"), json!({}))).collect();
        let (status, _, v) = body_json(post_batch(&c, env, SHOP_KEY, &Value::Array(batch)).await?).await?;
        ensure!(status == StatusCode::PAYLOAD_TOO_LARGE, "{status} {v}");
        Ok(())
    })
    .await;

    t.check("a write key writes to its portal", async {
        let batch = json!([item("e2e-shop-uid", "page", "view", "e2e-shop-1", json!({}))]);
        let (status, _, v) = body_json(post_batch(&c, env, SHOP_KEY, &batch).await?).await?;
        ensure!(status == StatusCode::OK && v["stored"] == 1, "{status} {v}");
        let portal: String =
            db.query_one("SELECT portal FROM cdp.events WHERE message_id = 'e2e-shop-1'", &[]).await.map_err(|e| e.to_string())?.get(0);
        ensure!(portal == "shop", "stored in portal {portal}");
        Ok(())
    })
    .await;

    t.check("429 with Retry-After over the rate limit of (key, client IP)", async {
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for i in 0..4 {
            let batch = json!([item("e2e-limited", "page", "view", &format!("e2e-limited-{i}"), json!({}))]);
            let r = post_batch(&c, env, LIMITED_KEY, &batch).await?;
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            }
            statuses.push(r.status().as_u16());
        }
        ensure!(statuses[..2] == [200, 200] && statuses[2..].contains(&429), "statuses {statuses:?}");
        ensure!(retry_after.is_some_and(|s| (1..=2).contains(&s)), "Retry-After {retry_after:?}");
        // Another client address has its own bucket.
        let other = client_from("127.0.0.3");
        let batch = json!([item("e2e-limited", "page", "view", "e2e-limited-other", json!({}))]);
        let r = post_batch(&other, env, LIMITED_KEY, &batch).await?;
        ensure!(r.status() == StatusCode::OK, "another IP: {}", r.status());
        Ok(())
    })
    .await;

    t.check("a request whose body never ends gets 408 at the request timeout", async {
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stream =
            futures_util::stream::once(async { Ok::<_, std::io::Error>("{\"batch\": [".to_string()) }).chain_rest(rx, String::new());
        let started = Instant::now();
        let r = c
            .post(format!("{}/v1/batch?key={KEY}", env.base()))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        ensure!(r.status() == StatusCode::REQUEST_TIMEOUT, "{}", r.status());
        ensure!(took >= Duration::from_millis(2500) && took < Duration::from_secs(8), "answered after {took:?} (request_timeout_secs = 3)");
        Ok(())
    })
    .await;

    t.check("static files are served", async {
        let (status, body) = page(&c, format!("{}/static/demo.html", env.base())).await?;
        ensure!(status == StatusCode::OK && body.contains("cdp demo page"), "{status} {body}");
        Ok(())
    })
    .await;

    t.check("/metrics counters move", async {
        let stored = r#"cdp_collector_events_stored_total{portal="default"}"#;
        let before = metric(&c, env, stored).await?;
        let batch = json!([
            item("e2e-metrics", "page", "view", "e2e-metrics-1", json!({})),
            item("e2e-metrics", "page", "view", "e2e-metrics-2", json!({}))
        ]);
        let r = post_batch(&c, env, KEY, &batch).await?;
        ensure!(r.status() == StatusCode::OK, "{}", r.status());
        let after = metric(&c, env, stored).await?;
        ensure!(after - before == 2.0, "stored went from {before} to {after}");
        let dup = metric(&c, env, r#"cdp_collector_events_duplicates_total{portal="default"}"#).await?;
        ensure!(dup >= 5.0, "duplicates {dup}");
        let rejected = metric(&c, env, r#"cdp_collector_events_rejected_total{portal="default",sqlstate="22023"}"#).await?;
        ensure!(rejected >= 1.0, "rejected 22023: {rejected}");
        let limited = metric(&c, env, r#"cdp_collector_http_responses_total{route="/v1/batch",status="429"}"#).await?;
        ensure!(limited >= 1.0, "429 responses: {limited}");
        let too_large = metric(&c, env, r#"cdp_collector_batches_failed_total{portal="shop",sqlstate="54000"}"#).await?;
        ensure!(too_large >= 1.0, "54000 batches: {too_large}");
        let latency = metric(&c, env, r#"cdp_collector_http_request_duration_seconds_count{route="/v1/batch"}"#).await?;
        ensure!(latency >= 10.0, "latency count {latency}");
        Ok(())
    })
    .await;
}

fn outage_batch() -> Value {
    json!((0..4).map(|i| item("e2e-outage", "page", "view", &format!("e2e-outage-{i}"), json!({"extra": {"n": i}}))).collect::<Vec<_>>())
}

async fn database_outage(t: &mut Tally, env: &Env) {
    let c = client();
    t.check("database stopped: 503 with Retry-After, answered quickly (not a hang, not 500)", async {
        env.cluster("stop")?;
        for attempt in 0..3 {
            let started = Instant::now();
            let r = post_batch(&c, env, KEY, &outage_batch()).await?;
            let took = started.elapsed();
            let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let (status, _, v) = body_json(r).await?;
            ensure!(status == StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}: {status} {v}");
            ensure!(retry.as_deref() == Some("2"), "attempt {attempt}: Retry-After {retry:?}");
            ensure!(took < Duration::from_secs(6), "attempt {attempt} took {took:?}");
        }
        Ok(())
    })
    .await;
    t.check("database stopped: /healthz is 503", async {
        let r = c.get(format!("{}/healthz", env.base())).send().await.map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::SERVICE_UNAVAILABLE && r.headers().contains_key("retry-after"), "{}", r.status());
        Ok(())
    })
    .await;
    t.check("database started again: the batch resent is stored once, nothing lost", async {
        env.cluster("start")?;
        wait_http(env, true).await?;
        let (status, _, v) = body_json(post_batch(&c, env, KEY, &outage_batch()).await?).await?;
        ensure!(status == StatusCode::OK && v["stored"] == 4, "{status} {v}");
        let (status, _, v) = body_json(post_batch(&c, env, KEY, &outage_batch()).await?).await?;
        ensure!(status == StatusCode::OK && v["stored"] == 0 && v["duplicates"] == 4, "{status} {v}");
        let db = env.superuser(DB).await?;
        let n: i64 = db
            .query_one("SELECT count(*) FROM cdp.events WHERE message_id LIKE 'e2e-outage-%'", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        ensure!(n == 4, "{n} outage events");
        let all: i64 =
            db.query_one("SELECT count(*) FROM cdp.events WHERE message_id LIKE 'e2e-m-%'", &[]).await.map_err(|e| e.to_string())?.get(0);
        ensure!(all == 6, "{all} story events after the restart");
        Ok(())
    })
    .await;
}

async fn dashboard_checks(t: &mut Tally, env: &Env, db: &tokio_postgres::Client) {
    let base = format!("{}/dashboard", env.base());
    let customer: i64 = db
        .query_one("SELECT profile_id FROM cdp.profiles WHERE portal = 'default' AND customer_id = 'e2e-cust-1'", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);

    t.check("dashboard: login with a wrong password fails cleanly", async {
        let (c, r) = login(env, READER, "wrong-password").await?;
        let status = r.status();
        let has_session = r.headers().get_all("set-cookie").iter().any(|v| v.to_str().unwrap_or("").starts_with("cdp_session="));
        let html = r.text().await.map_err(|e| e.to_string())?;
        ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
        ensure!(html.contains("Login failed") && html.contains("<form"), "the login form again with a message");
        ensure!(!has_session, "a session cookie was set");
        let (status, _) = page(&c, base.clone()).await?;
        ensure!(status == StatusCode::SEE_OTHER, "not logged in: {status}");
        let (_, r) = login(env, "no_such_role_e2e", "x").await?;
        ensure!(r.status() == StatusCode::UNAUTHORIZED, "unknown role: {}", r.status());
        Ok(())
    })
    .await;

    t.check("dashboard: a role that is not a member of cdp_reader may not log in", async {
        let (_, r) = login(env, WRITER, DASH_PW).await?;
        let status = r.status();
        let html = r.text().await.map_err(|e| e.to_string())?;
        ensure!(status == StatusCode::FORBIDDEN && html.contains("cdp_reader"), "{status}");
        Ok(())
    })
    .await;

    t.check("dashboard: a form without its CSRF token is refused", async {
        let c = Client::builder().redirect(Policy::none()).cookie_store(true).build().unwrap();
        let _ = page(&c, format!("{base}/login")).await?;
        let r = c
            .post(format!("{base}/login"))
            .form(&[("role", READER), ("password", DASH_PW), ("csrf", "forged")])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::FORBIDDEN, "{}", r.status());
        Ok(())
    })
    .await;

    let reader = match login(env, READER, DASH_PW).await {
        Ok((c, r)) if r.status() == StatusCode::SEE_OTHER => Some(c),
        _ => None,
    };
    t.check("dashboard: reader logs in; the session cookie is HttpOnly and SameSite=Strict", async {
        let (_, r) = login(env, READER, DASH_PW).await?;
        ensure!(r.status() == StatusCode::SEE_OTHER, "{}", r.status());
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("cdp_session="))
            .ok_or("no session cookie")?
            .to_string();
        ensure!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        ensure!(reader.is_some(), "reader login failed");
        Ok(())
    })
    .await;
    let Some(reader) = reader else { return };

    t.check("dashboard: per-portal counts of customers and anonymous visitors", async {
        let (status, html) = page(&reader, base.clone()).await?;
        ensure!(status == StatusCode::OK, "{status}");
        let expect: (i64, i64) = {
            let row = db
                .query_one(
                    "SELECT (SELECT count(*) FROM cdp.customers WHERE portal = 'default'), (SELECT count(*) FROM cdp.anonymous_profiles WHERE portal = 'default')",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            (row.get(0), row.get(1))
        };
        let row_html = html.split("<tr>").find(|r| r.contains(">default</a>")).ok_or("no row for portal default")?;
        ensure!(
            row_html.contains(&format!("<td class=\"num\">{}</td>", expect.0)) && row_html.contains(&format!("<td class=\"num\">{}</td>", expect.1)),
            "counts {expect:?} not in {row_html}"
        );
        // The reader is not granted 'shop': row-level security hides it.
        ensure!(!html.contains(">shop</a>"), "portal shop shown to a role without its grant");
        Ok(())
    })
    .await;

    t.check("dashboard: search finds the customer by email (normalized), phone and customer id", async {
        for q in [" ann.lee@EXAMPLE.com ", "+44 20 7946 0958", "e2e-cust-1"] {
            let url = format!("{base}/search?portal=default&q={}", urlencode(q));
            let (status, html) = page(&reader, url).await?;
            ensure!(status == StatusCode::OK, "{q}: {status}");
            ensure!(html.contains(&format!("/profiles/{customer}\"")) && html.contains("e2e-cust-1"), "{q}: customer not found");
        }
        let (_, html) = page(&reader, format!("{base}/search?portal=default&q=nobody%40nowhere.example")).await?;
        ensure!(html.contains("Nothing in portal"), "no result message");
        Ok(())
    })
    .await;

    t.check("dashboard: search finds the customer by UID", async {
        let (status, html) = page(&reader, format!("{base}/search?portal=default&q=e2e-uid-day1")).await?;
        ensure!(status == StatusCode::OK && html.contains(&format!("/profiles/{customer}\"")), "{status}");
        ensure!(html.contains("UID"), "matched by UID not shown");
        Ok(())
    })
    .await;

    let profile_url = format!("{base}/portals/default/profiles/{customer}");
    t.check("dashboard: the profile page shows attributes with sources, UIDs, devices, timeline and the SVG graph", async {
        let (status, html) = page(&reader, profile_url.clone()).await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(html.contains("e2e-cust-1"), "customer id");
        ensure!(html.contains("Ann &lt;b&gt;Lee&lt;&#x2f;b&gt;") && !html.contains("Ann <b>Lee"), "the name attribute, escaped");
        ensure!(html.contains("Ann.Lee@Example.com") && html.contains(">identify<"), "attribute with its source");
        for uid in ["e2e-uid-day1", "e2e-uid-day3", "e2e-uid-phone"] {
            ensure!(html.contains(uid), "UID {uid}");
        }
        ensure!(html.contains("e2e-dev-1") && html.contains("e2e-dev-2"), "device ids");
        ensure!(html.contains("<svg") && html.contains("n-root") && html.contains("n-uid") && html.contains("n-device"), "graph nodes");
        for label in ["uid: e2e-uid-day3", "device_id: e2e-dev-1", "email: ann.lee@example"] {
            ensure!(html.contains(label), "graph: no merge edge labelled {label:?}");
        }
        ensure!(html.contains("e-merge"), "graph: merge edges");
        ensure!(html.contains("sign_in") || html.contains("view"), "timeline events");
        ensure!(html.contains("class=\"timeline\""), "timeline table");
        ensure!(!html.contains("/undo\""), "a reader sees no Undo button");
        Ok(())
    })
    .await;

    t.check("dashboard: the timeline pages with after_event, without repeats", async {
        let mut seen = Vec::new();
        let mut url = format!("{profile_url}?order=oldest");
        for _ in 0..10 {
            let (status, html) = page(&reader, url.clone()).await?;
            ensure!(status == StatusCode::OK, "{status}");
            let table = html.split("class=\"timeline\"").nth(1).ok_or("no timeline")?;
            let ids: Vec<String> =
                table.split("<span class=\"muted\">#").skip(1).filter_map(|s| s.split('<').next().map(str::to_string)).collect();
            ensure!(ids.len() <= 3, "page of {} events (page_size 3)", ids.len());
            for id in &ids {
                ensure!(!seen.contains(id), "event {id} on two pages");
                seen.push(id.clone());
            }
            match html.split("class=\"next\" href=\"").nth(1).and_then(|s| s.split('"').next()) {
                Some(next) => url = format!("{}{}", env.base(), next.replace("&amp;", "&").replace("&#x2f;", "/")),
                None => break,
            }
        }
        let direct: i64 = db
            .query_one(
                "SELECT count(*) FROM cdp.events e JOIN cdp.profiles p ON p.portal = e.portal AND p.profile_id = e.profile_id
                 WHERE e.portal = 'default' AND (p.profile_id = $1 OR p.merged_into = $1)",
                &[&customer],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        ensure!(seen.len() as i64 == direct && direct > 3, "paged through {} events, the profile has {direct}", seen.len());
        Ok(())
    })
    .await;

    let merge_id: i64 = db
        .query_one(
            "SELECT m.merge_id FROM cdp.merges m JOIN cdp.uids u ON u.portal = m.portal AND u.profile_id = m.from_profile
             WHERE m.portal = 'default' AND m.into_profile = $1 AND m.kind = 'merge' AND u.uid = 'e2e-uid-day1' AND m.undone_at IS NULL",
            &[&customer],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);

    t.check("dashboard: a reader's Undo POST is refused (403), the merge stays", async {
        let (_, html) = page(&reader, profile_url.clone()).await?;
        let csrf = csrf_of(&html).ok_or("no csrf token on the page")?;
        let r = reader
            .post(format!("{base}/portals/default/merges/{merge_id}/undo"))
            .form(&[("csrf", csrf.as_str()), ("back", &customer.to_string())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::FORBIDDEN, "{}", r.status());
        ensure!(!is_undone(db, merge_id).await?, "merge {merge_id} was undone by a reader");
        Ok(())
    })
    .await;

    let admin = match login(env, ADMIN, DASH_PW).await {
        Ok((c, r)) if r.status() == StatusCode::SEE_OTHER => Some(c),
        _ => None,
    };
    t.check("dashboard: admin logs in and sees an Undo button per active merge", async {
        let admin = admin.as_ref().ok_or("admin login failed")?;
        let (status, html) = page(admin, profile_url.clone()).await?;
        ensure!(status == StatusCode::OK, "{status}");
        let active: i64 = db
            .query_one("SELECT count(*) FROM cdp.merges WHERE portal = 'default' AND into_profile = $1 AND undone_at IS NULL", &[&customer])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let buttons = html.matches("/undo\"").count() as i64;
        ensure!(active == 3 && buttons == active, "{buttons} Undo buttons for {active} active merges");
        ensure!(html.contains(&format!("/merges/{merge_id}/undo\"")), "no Undo for merge {merge_id}");
        Ok(())
    })
    .await;

    t.check("dashboard: admin's Undo without the CSRF token is refused", async {
        let admin = admin.as_ref().ok_or("admin login failed")?;
        let r = admin
            .post(format!("{base}/portals/default/merges/{merge_id}/undo"))
            .form(&[("csrf", "forged")])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::FORBIDDEN, "{}", r.status());
        ensure!(!is_undone(db, merge_id).await?, "undone without a CSRF token");
        Ok(())
    })
    .await;

    t.check("dashboard: admin's Undo unmerges (cdp.merges.undone_at set), the page says so", async {
        let admin = admin.as_ref().ok_or("admin login failed")?;
        let (_, html) = page(admin, profile_url.clone()).await?;
        let csrf = csrf_of(&html).ok_or("no csrf token")?;
        let r = admin
            .post(format!("{base}/portals/default/merges/{merge_id}/undo"))
            .form(&[("csrf", csrf.as_str()), ("back", &customer.to_string())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::SEE_OTHER, "{}", r.status());
        let to = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        ensure!(is_undone(db, merge_id).await?, "merge {merge_id} not undone");
        let (status, html) = page(admin, format!("{}{to}", env.base())).await?;
        ensure!(status == StatusCode::OK && html.contains(&format!("Decision #{merge_id} was undone")), "{status} after redirect to {to}");
        ensure!(html.contains("pill undone") && html.contains("e-undone"), "the undone merge in the history and the graph");
        // Undoing it again: a clean error, not a crash.
        let r = admin
            .post(format!("{base}/portals/default/merges/{merge_id}/undo"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::CONFLICT, "second undo: {}", r.status());
        Ok(())
    })
    .await;

    t.check("dashboard: logout ends the session", async {
        let (_, html) = page(&reader, base.clone()).await?;
        let csrf = csrf_of(&html).ok_or("no csrf token")?;
        let r = reader.post(format!("{base}/logout")).form(&[("csrf", csrf.as_str())]).send().await.map_err(|e| e.to_string())?;
        ensure!(r.status() == StatusCode::SEE_OTHER, "{}", r.status());
        let (status, _) = page(&reader, base.clone()).await?;
        ensure!(status == StatusCode::SEE_OTHER, "still logged in: {status}");
        Ok(())
    })
    .await;
}

async fn is_undone(db: &tokio_postgres::Client, merge_id: i64) -> Result<bool, String> {
    db.query_one("SELECT undone_at IS NOT NULL FROM cdp.merges WHERE merge_id = $1", &[&merge_id])
        .await
        .map(|r| r.get(0))
        .map_err(|e| e.to_string())
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn graceful_shutdown(t: &mut Tally, env: &Env, db: &tokio_postgres::Client, child: &mut Child) {
    t.check("graceful shutdown (SIGTERM) finishes a request in flight, then refuses new ones and exits 0", async {
        let body = json!({"batch": [item("e2e-inflight", "page", "view", "e2e-inflight-1", json!({}))]}).to_string();
        let (first, rest) = body.split_at(body.len() / 2);
        let (first, rest) = (first.to_string(), rest.to_string());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain_rest(rx, rest);
        let c = client();
        let url = format!("{}/v1/batch?key={KEY}", env.base());
        let request = tokio::spawn(async move {
            c.post(url).header("content-type", "application/json").body(reqwest::Body::wrap_stream(stream)).send().await
        });
        // Let the request reach the server and start sending its body.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let pid = child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().map_err(|e| e.to_string())?;
        ensure!(killed.success(), "kill -TERM failed");
        tokio::time::sleep(Duration::from_millis(700)).await;
        ensure!(child.try_wait().map_err(|e| e.to_string())?.is_none(), "the collector exited with a request in flight");
        let refused = client().get(format!("{}/healthz", env.base())).timeout(Duration::from_secs(2)).send().await;
        ensure!(refused.is_err(), "a new connection was accepted during shutdown: {:?}", refused.map(|r| r.status()));
        let _ = tx.send(());
        let response = request.await.map_err(|e| e.to_string())?.map_err(|e| format!("in-flight request failed: {e}"))?;
        let (status, _, v) = body_json(response).await?;
        ensure!(status == StatusCode::OK && v["stored"] == 1, "in-flight request: {status} {v}");
        ensure!(events_by_message(db, &["e2e-inflight-1"]).await?.len() == 1, "in-flight event not stored");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                ensure!(status.success(), "exit status {status}");
                break;
            }
            ensure!(Instant::now() < deadline, "the collector did not exit within 15 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(env.work.join("collector.log")).unwrap_or_default();
        ensure!(log.lines().all(|l| l.starts_with('{')), "log format json: every line a JSON object");
        ensure!(log.contains("shutting down") && log.contains("cdp-collector stopped"), "shutdown not logged");
        Ok(())
    })
    .await;
}

/// A body stream: the first chunk now, the rest once `go` fires.
trait ChainRest {
    fn chain_rest(
        self,
        go: tokio::sync::oneshot::Receiver<()>,
        rest: String,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<String, std::io::Error>> + Send>>;
}

impl<S> ChainRest for S
where
    S: futures_util::Stream<Item = Result<String, std::io::Error>> + Send + 'static,
{
    fn chain_rest(
        self,
        go: tokio::sync::oneshot::Receiver<()>,
        rest: String,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<String, std::io::Error>> + Send>> {
        use futures_util::StreamExt;
        let later = futures_util::stream::once(async move {
            let _ = go.await;
            Ok(rest)
        });
        Box::pin(self.chain(later))
    }
}
