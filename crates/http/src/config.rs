//! Server configuration: a TOML file, then `SLUICE_*` environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_practice::provider::ModelConfig;

use crate::auth::ApiKeys;

/// The default address: loopback only, port 8080.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Everything `sluice serve` can be told, with defaults that need no file.
///
/// ```toml
/// addr = "127.0.0.1:8080"          # SLUICE_ADDR
/// api_keys = ["nv-..."]             # SLUICE_API_KEYS (comma separated)
/// profiles = "profiles.toml"        # SLUICE_PROFILES: extra model profiles
/// routers = "routers/"              # SLUICE_ROUTERS: router directory
/// body_limit = 16777216             # SLUICE_BODY_LIMIT (bytes)
/// body_timeout_ms = 10000           # SLUICE_BODY_TIMEOUT_MS
/// request_timeout_ms = 30000        # SLUICE_REQUEST_TIMEOUT_MS
/// concurrency_limit = 256           # SLUICE_CONCURRENCY_LIMIT
/// log_format = "text"               # SLUICE_LOG_FORMAT: text or json
/// database = "sqlite:sluice.db"     # SLUICE_DATABASE_URL: practice store (or postgres://...)
/// data_dir = "/var/lib/sluice"      # SLUICE_DATA_DIR: where the default SQLite file lives
/// practice_router = "sample/1"      # router that checks practice prompts ("none": no check)
///
/// [models.gpt-small]                # a model practice sessions may call
/// provider = "openai"               # or "clova"
/// base_url = "http://127.0.0.1:8000/v1"
/// ```
///
/// Relative paths in a file are resolved against the file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen. Default [`DEFAULT_ADDR`].
    pub addr: SocketAddr,
    /// Accepted `Authorization: Bearer` keys. Default none: no auth, loopback only.
    pub api_keys: ApiKeys,
    /// A TOML file of model profiles added to the built-in ones.
    pub profiles: Option<PathBuf>,
    /// A directory of router files (`<router-id>/<version>.toml`).
    pub routers: Option<PathBuf>,
    /// Largest request body in bytes; larger ones get `41300`. Default 16 MiB,
    /// which holds 100,000 short messages.
    pub body_limit: usize,
    /// How long a client may take to send its body; then `40800`. Default 10 s.
    pub body_timeout_ms: u64,
    /// How long a request may take in all; then `50400`. Default 30 s.
    pub request_timeout_ms: u64,
    /// Requests handled at once; more get `42900` at once. Default 256.
    pub concurrency_limit: usize,
    /// `text` (default) or `json` log lines.
    pub log_format: LogFormat,
    /// The practice store: `sqlite:PATH`, `sqlite::memory:` or `postgres://...`.
    /// Default: `sluice.db` in [`Config::data_dir`].
    pub database: Option<String>,
    /// Where the default SQLite file lives. Default: `$SLUICE_DATA_DIR`,
    /// `$XDG_DATA_HOME/sluice`, `~/.local/share/sluice`, or `./sluice-data`.
    pub data_dir: Option<PathBuf>,
    /// The router (`id/version`) that checks every practice prompt; `none`
    /// turns the check off. Default: `sample/1`, the embedded sample router.
    pub practice_router: Option<String>,
    /// The models practice sessions may call, by logical name.
    pub models: BTreeMap<String, ModelConfig>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable `key=value` lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.parse().expect("valid default address"),
            api_keys: ApiKeys::default(),
            profiles: None,
            routers: None,
            body_limit: 16 * 1024 * 1024,
            body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            concurrency_limit: 256,
            log_format: LogFormat::Text,
            database: None,
            data_dir: None,
            practice_router: None,
            models: BTreeMap::new(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("{name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A non-loopback address with no API keys.
    #[error(
        "refusing to listen on {0} without API keys: anyone who can reach it could use the API. \
         Set api_keys in the config file or SLUICE_API_KEYS=key1,key2, or listen on 127.0.0.1"
    )]
    OpenWithoutKeys(SocketAddr),
}

impl Config {
    /// Reads a TOML file (relative paths in it are taken from its directory).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let err = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.profiles,
            &mut config.routers,
            &mut config.data_dir,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Applies `SLUICE_*` overrides from the process environment.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_vars(|name| std::env::var(name).ok())
    }

    /// Applies `SLUICE_*` overrides looked up with `var` (for tests).
    pub fn apply_vars(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                message: format!("{e} (got {v:?})"),
            })
        }
        if let Some(v) = var("SLUICE_ADDR") {
            self.addr = parse("SLUICE_ADDR", &v)?;
        }
        if let Some(v) = var("SLUICE_API_KEYS") {
            self.api_keys = ApiKeys::new(v.split(','));
        }
        if let Some(v) = var("SLUICE_PROFILES") {
            self.profiles = Some(v.into());
        }
        if let Some(v) = var("SLUICE_ROUTERS") {
            self.routers = Some(v.into());
        }
        if let Some(v) = var("SLUICE_BODY_LIMIT") {
            self.body_limit = parse("SLUICE_BODY_LIMIT", &v)?;
        }
        if let Some(v) = var("SLUICE_BODY_TIMEOUT_MS") {
            self.body_timeout_ms = parse("SLUICE_BODY_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = var("SLUICE_REQUEST_TIMEOUT_MS") {
            self.request_timeout_ms = parse("SLUICE_REQUEST_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = var("SLUICE_CONCURRENCY_LIMIT") {
            self.concurrency_limit = parse("SLUICE_CONCURRENCY_LIMIT", &v)?;
        }
        if let Some(v) = var("SLUICE_DATABASE_URL") {
            self.database = Some(v.trim().to_string());
        }
        if let Some(v) = var("SLUICE_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = var("SLUICE_LOG_FORMAT") {
            self.log_format = match v.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "SLUICE_LOG_FORMAT",
                        message: format!("expected text or json, got {v:?}"),
                    });
                }
            };
        }
        Ok(())
    }

    /// Checks the values, and that the server is not opened to the network
    /// without API keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.body_limit == 0 || self.concurrency_limit == 0 {
            return Err(ConfigError::Invalid(
                "body_limit and concurrency_limit must be positive".into(),
            ));
        }
        if self.request_timeout_ms == 0 || self.body_timeout_ms == 0 {
            return Err(ConfigError::Invalid("timeouts must be positive".into()));
        }
        if self.api_keys.is_empty() && !self.addr.ip().is_loopback() {
            return Err(ConfigError::OpenWithoutKeys(self.addr));
        }
        Ok(())
    }

    /// The practice store's URL: [`Config::database`], or `sluice.db` in the
    /// data directory.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database {
            return url.clone();
        }
        let dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        format!("sqlite:{}", dir.join("sluice.db").display())
    }

    /// The request limits.
    pub fn limits(&self) -> Limits {
        Limits {
            body_limit: self.body_limit,
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            concurrency_limit: self.concurrency_limit,
        }
    }
}

/// The default data directory: `$XDG_DATA_HOME/sluice`,
/// `~/.local/share/sluice`, or `./sluice-data` when neither is known.
pub fn default_data_dir() -> PathBuf {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("SLUICE_DATA_DIR") {
        return dir;
    }
    if let Some(xdg) = env("XDG_DATA_HOME") {
        return xdg.join("sluice");
    }
    match env("HOME") {
        Some(home) => home.join(".local/share/sluice"),
        None => PathBuf::from("sluice-data"),
    }
}

/// Per-request limits, enforced by the layers of [`app`](crate::app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body in bytes (`41300` above).
    pub body_limit: usize,
    /// Time to receive the body (`40800` after).
    pub body_timeout: Duration,
    /// Time for the whole request (`50400` after).
    pub request_timeout: Duration,
    /// Requests in flight at once (`42900` above).
    pub concurrency_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Config::default().limits()
    }
}
