//! Configuration: one TOML file (`--config` or `CDP_COLLECTOR_CONFIG`) plus
//! environment overrides for what differs per deployment (listen address,
//! database URL and password, pool size, logging, dashboard switch, static
//! files). Every field is documented in collector.example.toml.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Portals by name: their write keys and browser origins.
    #[serde(default)]
    pub portals: BTreeMap<String, PortalConfig>,
    #[serde(default)]
    pub dashboard: DashboardConfig,
    #[serde(default)]
    pub static_files: Option<StaticConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body of /v1/batch and /v1/event, in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Whole-request deadline (reading the body and answering), seconds.
    pub request_timeout_secs: u64,
    /// How long a shutdown waits for requests in flight, seconds.
    pub shutdown_timeout_secs: u64,
    /// The Retry-After of 503 answers (database unavailable), seconds.
    pub retry_after_secs: u64,
    /// Peers whose X-Forwarded-For is believed (addresses or CIDR networks).
    pub trusted_proxies: Vec<String>,
    /// Serve /metrics (Prometheus text format).
    pub metrics: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 15,
            shutdown_timeout_secs: 30,
            retry_after_secs: 5,
            trusted_proxies: Vec::new(),
            metrics: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter (`info`, `cdp_collector=debug,tower_http=info`); RUST_LOG wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style URL or key=value string; the role should be a member of cdp_writer only.
    pub url: String,
    /// Overrides the URL's password (keep it out of the file: CDP_COLLECTOR_DATABASE_PASSWORD).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Opening a connection, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Waiting for a free pooled connection, milliseconds.
    #[serde(default = "default_pool_timeout")]
    pub pool_timeout_ms: u64,
    /// One batch's database work (server-side statement_timeout too), milliseconds.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
}

fn default_pool_size() -> usize {
    16
}
fn default_connect_timeout() -> u64 {
    3000
}
fn default_pool_timeout() -> u64 {
    2000
}
fn default_statement_timeout() -> u64 {
    10000
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per (write key, client IP); 0 turns limiting off.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { per_second: 20, burst: 100 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// The keys an SDK sends (`?key=` or `X-Write-Key`); each names this portal.
    pub write_keys: Vec<String>,
    /// Origins (scheme://host[:port]) browsers may send from; `"*"` for any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Overrides [rate_limit] for this portal's keys.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    pub enabled: bool,
    /// Where it is served, e.g. "/dashboard".
    pub path: String,
    /// Host, port and database of the dashboard's connections (user and password
    /// come from the login form); default: those of [database].url.
    pub database_url: Option<String>,
    /// Mark cookies Secure (serve the dashboard over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// A session ends after this long without a request, seconds.
    pub session_idle_secs: u64,
    /// A session ends this long after login whatever happens, seconds.
    pub session_max_secs: u64,
    /// Timeline page size.
    pub page_size: u32,
    /// Login attempts per minute per client IP.
    pub login_attempts_per_minute: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            path: "/dashboard".into(),
            database_url: None,
            secure_cookies: false,
            session_idle_secs: 1800,
            session_max_secs: 12 * 3600,
            page_size: 25,
            login_attempts_per_minute: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub dir: PathBuf,
    /// "/static" (default) or "/" (then it answers every path no route takes).
    #[serde(default = "default_static_path")]
    pub path: String,
}

fn default_static_path() -> String {
    "/static".into()
}

/// A write key resolved: the portal it writes to and who may use it.
#[derive(Debug, Clone)]
pub struct WriteKey {
    pub portal: String,
    pub allowed_origins: Vec<String>,
    pub any_origin: bool,
    pub rate_limit: RateLimitConfig,
}

impl WriteKey {
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.any_origin || self.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// What the handlers need, checked and indexed once at startup.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub keys: HashMap<String, WriteKey>,
    pub trusted_proxies: Vec<IpNet>,
}

impl Config {
    /// Reads the file, applies the environment overrides and checks the result.
    pub fn load(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config = Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Environment overrides (see README): each replaces one setting.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        fn parsed<T: FromStr>(name: &str, value: String) -> Result<T, String> {
            value.trim().parse().map_err(|_| format!("{name}: cannot read {value:?}"))
        }
        if let Some(v) = get("CDP_COLLECTOR_LISTEN") {
            self.server.listen = parsed("CDP_COLLECTOR_LISTEN", v)?;
        }
        if let Some(v) = get("CDP_COLLECTOR_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = get("CDP_COLLECTOR_DATABASE_PASSWORD") {
            self.database.password = Some(v);
        }
        if let Some(v) = get("CDP_COLLECTOR_POOL_SIZE") {
            self.database.pool_size = parsed("CDP_COLLECTOR_POOL_SIZE", v)?;
        }
        if let Some(v) = get("CDP_COLLECTOR_LOG_FORMAT") {
            self.log.format = match v.trim() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => return Err(format!("CDP_COLLECTOR_LOG_FORMAT: {v:?} is neither json nor text")),
            };
        }
        if let Some(v) = get("CDP_COLLECTOR_LOG_LEVEL") {
            self.log.level = v;
        }
        if let Some(v) = get("CDP_COLLECTOR_DASHBOARD") {
            self.dashboard.enabled = parsed("CDP_COLLECTOR_DASHBOARD", v)?;
        }
        if let Some(v) = get("CDP_COLLECTOR_DASHBOARD_DATABASE_URL") {
            self.dashboard.database_url = Some(v);
        }
        if let Some(v) = get("CDP_COLLECTOR_STATIC_DIR") {
            let path = self.static_files.as_ref().map_or_else(default_static_path, |s| s.path.clone());
            self.static_files = Some(StaticConfig { dir: PathBuf::from(v), path });
        }
        Ok(())
    }

    pub fn check(&self) -> Result<(), String> {
        if self.database.pool_size == 0 {
            return Err("database.pool_size must be at least 1".into());
        }
        if self.server.body_limit_bytes < 1024 {
            return Err("server.body_limit_bytes must be at least 1024".into());
        }
        if self.server.request_timeout_secs == 0 {
            return Err("server.request_timeout_secs must be at least 1".into());
        }
        tokio_postgres::Config::from_str(&self.database.url).map_err(|e| format!("database.url: {e}"))?;
        if let Some(url) = &self.dashboard.database_url {
            tokio_postgres::Config::from_str(url).map_err(|e| format!("dashboard.database_url: {e}"))?;
        }
        let path = &self.dashboard.path;
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') || path.starts_with("/v1") {
            return Err(format!("dashboard.path {path:?}: give an absolute path like \"/dashboard\" (no trailing slash)"));
        }
        if let Some(s) = &self.static_files {
            if !s.path.starts_with('/') || (s.path.len() > 1 && s.path.ends_with('/')) {
                return Err(format!("static_files.path {:?}: \"/\" or an absolute path without trailing slash", s.path));
            }
        }
        self.resolve().map(|_| ())
    }

    pub fn resolve(&self) -> Result<Resolved, String> {
        let mut keys = HashMap::new();
        for (portal, p) in &self.portals {
            if portal.is_empty() || portal.len() > 63 {
                return Err(format!("portal name {portal:?} must have 1 to 63 characters"));
            }
            for origin in &p.allowed_origins {
                if origin != "*" && (!origin.contains("://") || origin.ends_with('/')) {
                    return Err(format!("portals.{portal}.allowed_origins: {origin:?} is not an origin like \"https://shop.example.com\""));
                }
            }
            let rate_limit = p.rate_limit.unwrap_or(self.rate_limit);
            for key in &p.write_keys {
                if key.len() < 8 {
                    return Err(format!("portals.{portal}: write keys must have at least 8 characters"));
                }
                let wk = WriteKey {
                    portal: portal.clone(),
                    allowed_origins: p.allowed_origins.iter().filter(|o| *o != "*").cloned().collect(),
                    any_origin: p.allowed_origins.iter().any(|o| o == "*"),
                    rate_limit,
                };
                if keys.insert(key.clone(), wk).is_some() {
                    return Err(format!("write key of portal {portal:?} is used twice"));
                }
            }
        }
        let trusted_proxies = self
            .server
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("server.trusted_proxies: {s:?} is not an address or network"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Resolved { keys, trusted_proxies })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../collector.example.toml");

    #[test]
    fn example_config_parses_and_checks() {
        let config = Config::parse(EXAMPLE).unwrap();
        config.check().unwrap();
        let resolved = config.resolve().unwrap();
        assert!(!resolved.keys.is_empty());
        assert!(!resolved.trusted_proxies.is_empty());
    }

    #[test]
    fn environment_overrides() {
        let mut config = Config::parse(EXAMPLE).unwrap();
        let env: HashMap<&str, &str> = [
            ("CDP_COLLECTOR_LISTEN", "0.0.0.0:9999"),
            ("CDP_COLLECTOR_DATABASE_URL", "host=/tmp port=5 dbname=x user=y"),
            ("CDP_COLLECTOR_LOG_FORMAT", "json"),
            ("CDP_COLLECTOR_DASHBOARD", "false"),
        ]
        .into_iter()
        .collect();
        config.apply_env(|n| env.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(config.database.url, "host=/tmp port=5 dbname=x user=y");
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(!config.dashboard.enabled);
        assert!(config.apply_env(|n| (n == "CDP_COLLECTOR_LISTEN").then(|| "nope".to_string())).is_err());
    }

    #[test]
    fn rejects_bad_settings() {
        let base = "[database]\nurl = \"host=/tmp dbname=x user=y\"\n";
        assert!(Config::parse(&format!("{base}[server]\nlisten = \"x\"\n")).is_err());
        assert!(Config::parse(&format!("{base}unknown = 1\n")).is_err());
        let c = Config::parse(&format!("{base}[portals.a]\nwrite_keys = [\"short\"]\n")).unwrap();
        assert!(c.check().is_err());
        let c =
            Config::parse(&format!("{base}[portals.a]\nwrite_keys = [\"longenough\"]\nallowed_origins = [\"shop.example\"]\n")).unwrap();
        assert!(c.check().is_err());
        let c = Config::parse(&format!("{base}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n")).unwrap();
        assert!(c.check().is_err());
        let c = Config::parse(&format!("{base}[portals.a]\nwrite_keys = [\"longenough\"]\n[portals.b]\nwrite_keys = [\"longenough\"]\n"))
            .unwrap();
        assert!(c.check().is_err());
    }
}
