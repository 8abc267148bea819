//! What every handler shares: the model profiles, the keys, the limits, the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::path::PathBuf;

use sluice_core::Profiles;
use sluice_practice::{DEFAULT_ROUTER, Practice, SettingsError};
use sluice_router::{Router, RouterStore};

use crate::server::auth::ApiKeys;
use crate::server::config::{Config, ConfigError, Limits};
use crate::server::metrics::Metrics;
use crate::server::request_logs::RequestLogs;
use crate::server::routers::Routers;
use crate::server::tokens::Tokens;

/// The shared state of [`app`](fn@crate::app). Cloning is cheap.
///
/// ```
/// use sluice_http::{AppState, ApiKeys, Limits};
///
/// let state = AppState::builder()
///     .api_keys(ApiKeys::new(["nv-test"]))
///     .limits(Limits { body_limit: 1 << 20, ..Limits::default() })
///     .build();
/// let app = sluice_http::app(state);
/// # drop(app);
/// ```
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    profiles: Profiles,
    routers: Routers,
    api_keys: ApiKeys,
    limits: Limits,
    cors_origins: Vec<String>,
    metrics: Metrics,
    practice: Option<Practice>,
    tokens: Tokens,
    request_logs: RequestLogs,
    /// Configured models that could not be set up, each with the reason.
    unavailable_models: Vec<String>,
    /// Set on shutdown: `/readyz` answers 503 from then on.
    draining: AtomicBool,
    session_secret: crate::server::session::SessionSecret,
    runs: crate::server::runs::LiveRuns,
}

/// Builds an [`AppState`]; every setter has a default.
#[derive(Debug, Default)]
pub struct StateBuilder {
    profiles: Option<Profiles>,
    routers: Option<RouterStore>,
    routers_dir: Option<PathBuf>,
    api_keys: ApiKeys,
    limits: Limits,
    cors_origins: Vec<String>,
    practice: Option<Practice>,
    token_ttl: Option<std::time::Duration>,
    request_logs_per_sec: Option<u32>,
    session_secret: Option<crate::server::session::SessionSecret>,
}

impl StateBuilder {
    /// Model profiles. Default: [`Profiles::builtin`].
    pub fn profiles(mut self, profiles: Profiles) -> Self {
        self.profiles = Some(profiles);
        self
    }

    /// Routers. Default: [`RouterStore::embedded_sample`].
    pub fn routers(mut self, routers: RouterStore) -> Self {
        self.routers = Some(routers);
        self
    }

    /// A router directory (`<id>/<version>.toml`) where versions not loaded yet
    /// are looked up on first use. Default: none.
    pub fn routers_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.routers_dir = Some(dir.into());
        self
    }

    /// Accepted API keys. Default: none (no auth).
    pub fn api_keys(mut self, keys: ApiKeys) -> Self {
        self.api_keys = keys;
        self
    }

    /// Request limits. Default: [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Browser origins allowed to call the server (CORS); `*` allows any.
    /// Default: none, and no CORS headers are sent.
    pub fn cors_origins<S: Into<String>>(mut self, origins: impl IntoIterator<Item = S>) -> Self {
        self.cors_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// The practice-session service behind `/user/practice/...`. Default: none
    /// (those routes answer 503). Its users' keys also open the API routes.
    pub fn practice(mut self, practice: Practice) -> Self {
        self.practice = Some(practice);
        self
    }

    /// How long an access token from `/v1/auth/token` lives. Default: one hour.
    pub fn token_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.token_ttl = Some(ttl);
        self
    }

    /// Request log lines written per second at most; `0` writes none.
    /// Default: 100.
    pub fn request_logs_per_sec(mut self, per_sec: u32) -> Self {
        self.request_logs_per_sec = Some(per_sec);
        self
    }

    /// The secret that signs the web app's session cookies. Default: a random
    /// one, so sign-ins end when the server restarts; replicas that should
    /// accept each other's cookies need the same secret.
    pub fn session_secret(mut self, secret: crate::server::session::SessionSecret) -> Self {
        self.session_secret = Some(secret);
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        let token_ttl = self
            .token_ttl
            .unwrap_or(std::time::Duration::from_secs(3600));
        // With a store, tokens are rows in it (every replica knows them).
        let tokens = match &self.practice {
            Some(practice) => Tokens::in_store(token_ttl, practice.store().clone()),
            None => Tokens::in_memory(token_ttl),
        };
        AppState {
            inner: Arc::new(Inner {
                profiles: self.profiles.unwrap_or_else(Profiles::builtin),
                routers: Routers::new(
                    self.routers.unwrap_or_else(RouterStore::embedded_sample),
                    self.routers_dir,
                ),
                api_keys: self.api_keys,
                limits: self.limits,
                cors_origins: self.cors_origins,
                metrics: Metrics::default(),
                practice: self.practice,
                tokens,
                unavailable_models: Vec::new(),
                draining: AtomicBool::new(false),
                request_logs: RequestLogs::new(
                    self.request_logs_per_sec
                        .unwrap_or(Config::default().log_requests_per_sec),
                ),
                session_secret: self.session_secret.unwrap_or_default(),
                runs: crate::server::runs::LiveRuns::default(),
            }),
        }
    }
}

impl AppState {
    /// A builder with the defaults: built-in profiles, no keys, default limits.
    pub fn builder() -> StateBuilder {
        StateBuilder::default()
    }

    /// The state a [`Config`] describes: built-in profiles plus its profile file,
    /// the routers of its router directory (every file must be valid) or the
    /// embedded sample, its keys and limits.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut profiles = Profiles::builtin();
        if let Some(path) = &config.profiles {
            profiles
                .load_file(path)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let mut builder = Self::builder();
        if let Some(dir) = &config.routers {
            let store = RouterStore::load_dir_with(dir, &profiles)
                .map_err(|e| ConfigError::Invalid(format!("routers: {e}")))?;
            builder = builder.routers(store).routers_dir(dir);
        }
        let state = builder
            .profiles(profiles)
            .api_keys(config.api_keys.clone())
            .limits(config.limits())
            .cors_origins(config.cors_origins.iter().cloned())
            .token_ttl(std::time::Duration::from_millis(config.token_ttl_ms))
            .request_logs_per_sec(config.log_requests_per_sec)
            .build();
        // A router named in the file is checked here too, so that `sluice config
        // check` refuses what `serve` would.
        if config.practice.router.is_some() {
            state.practice_router(config)?;
        }
        Ok(state)
    }

    /// The router `config.practice.router` names (`id/version`, default
    /// `sample/1`), or `None` for `none`.
    fn practice_router(&self, config: &Config) -> Result<Option<Arc<Router>>, ConfigError> {
        let Some((id, version)) = config.practice.router_id()? else {
            return Ok(None);
        };
        let router = self
            .routers()
            .get(id, version, self.profiles())
            .map_err(|e| SettingsError::Router {
                spec: config
                    .practice
                    .router
                    .as_deref()
                    .unwrap_or(DEFAULT_ROUTER)
                    .into(),
                error: e.to_string(),
            })?;
        Ok(Some(router))
    }

    /// [`AppState::from_config`] plus the practice service that
    /// [`Config::practice`] describes ([`Settings::open`](sluice_practice::Settings::open)):
    /// its store, a provider per `[models.NAME]` and the router that checks
    /// prompts.
    pub async fn from_config_with_practice(config: &Config) -> Result<Self, ConfigError> {
        let plain = Self::from_config(config)?;
        let router = plain.practice_router(config)?;
        let opened = config.practice.open(plain.profiles(), router).await?;
        // Tokens go to the database, so that every replica on it knows them.
        let tokens = Tokens::in_store(
            Duration::from_millis(config.token_ttl_ms),
            opened.practice.store().clone(),
        );
        let mut state = plain;
        let inner = Arc::get_mut(&mut state.inner).expect("a state just built has one owner");
        inner.practice = Some(opened.practice);
        inner.tokens = tokens;
        inner.unavailable_models = opened.unavailable;
        Ok(state)
    }

    /// Loads every model profile's tokenizer now, so that no request pays for it;
    /// returns the profiles that cannot be loaded, with the reason.
    pub fn warm_up(&self) -> Vec<(String, String)> {
        let profiles = self.profiles();
        profiles
            .names()
            .filter_map(|name| {
                let error = profiles.model(name).err()?;
                Some((name.to_string(), error.to_string()))
            })
            .collect()
    }

    /// The model profiles.
    pub fn profiles(&self) -> &Profiles {
        &self.inner.profiles
    }

    pub(crate) fn routers(&self) -> &Routers {
        &self.inner.routers
    }

    /// The accepted API keys.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.inner.api_keys
    }

    /// The request limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The practice-session service, if enabled.
    pub fn practice(&self) -> Option<&Practice> {
        self.inner.practice.as_ref()
    }

    /// The access tokens issued by `/v1/auth/token`.
    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The budget of request log lines.
    pub(crate) fn request_logs(&self) -> &RequestLogs {
        &self.inner.request_logs
    }

    /// The origins allowed to call the server from a browser.
    pub fn cors_origins(&self) -> &[String] {
        &self.inner.cors_origins
    }

    /// The configured models that are not available, one line each saying
    /// why (an `api_key_env` variable that is not set).
    pub fn unavailable_models(&self) -> &[String] {
        &self.inner.unavailable_models
    }

    /// Marks this server as shutting down: `/readyz` answers 503 from now on,
    /// while every other route keeps serving.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// Whether [`AppState::start_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// The secret that signs session cookies.
    pub(crate) fn session_secret(&self) -> &crate::server::session::SessionSecret {
        &self.inner.session_secret
    }

    /// The streamed runs in progress.
    pub(crate) fn runs(&self) -> &crate::server::runs::LiveRuns {
        &self.inner.runs
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}
