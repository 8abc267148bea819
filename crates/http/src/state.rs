//! What every handler shares: the model profiles, the keys, the limits, the metrics.

use std::sync::Arc;

use sluice_core::Profiles;

use crate::auth::ApiKeys;
use crate::config::{Config, ConfigError, Limits};
use crate::metrics::Metrics;

/// The shared state of [`app`](crate::app). Cloning is cheap.
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
    api_keys: ApiKeys,
    limits: Limits,
    metrics: Metrics,
}

/// Builds an [`AppState`]; every setter has a default.
#[derive(Debug, Default)]
pub struct StateBuilder {
    profiles: Option<Profiles>,
    api_keys: ApiKeys,
    limits: Limits,
}

impl StateBuilder {
    /// Model profiles. Default: [`Profiles::builtin`].
    pub fn profiles(mut self, profiles: Profiles) -> Self {
        self.profiles = Some(profiles);
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

    /// The state.
    pub fn build(self) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                profiles: self.profiles.unwrap_or_else(Profiles::builtin),
                api_keys: self.api_keys,
                limits: self.limits,
                metrics: Metrics::default(),
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
    /// its keys and limits.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut profiles = Profiles::builtin();
        if let Some(path) = &config.profiles {
            profiles
                .load_file(path)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        Ok(Self::builder()
            .profiles(profiles)
            .api_keys(config.api_keys.clone())
            .limits(config.limits())
            .build())
    }

    /// The model profiles.
    pub fn profiles(&self) -> &Profiles {
        &self.inner.profiles
    }

    /// The accepted API keys.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.inner.api_keys
    }

    /// The request limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}
