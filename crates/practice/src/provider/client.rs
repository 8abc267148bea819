//! Building a provider: the shared HTTP client, and a model's configuration
//! checked and turned into a ready [`Provider`].

use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;

use super::config::{
    ConfigError, MAX_GLOBAL_CONCURRENCY, MAX_TIMEOUT_MS, ModelConfig, ProviderKind,
};
#[cfg(feature = "local")]
use super::local;
use super::{ApiKey, Provider, clova, global, openai};

/// The HTTP client every provider shares: rustls, a connect timeout, pooled
/// connections and the user agent `sluice/<version>`.
///
/// There is no overall request timeout here on purpose: each model bounds its
/// own calls by its `timeout_ms`, and a stream may legitimately run long.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        // Below the keep-alive of the servers in front of models: uvicorn
        // (vLLM, LiteLLM) closes an idle connection after 5 s, sluice's own
        // server after 10 s. A pooled connection the server has just closed
        // fails the next request on it (retried, unless `max_retries = 0`).
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(32)
        .tcp_keepalive(Duration::from_secs(60))
        .build()
        // Only fails when the TLS backend cannot start, which for the bundled
        // rustls means a broken build rather than a runtime condition.
        .expect("the HTTP client (rustls) can be built")
}

impl Provider {
    /// The provider for the logical model `name`, reading its API key from the
    /// variable `config.api_key_env` now (an unset variable is an error naming
    /// the variable).
    pub fn new(
        name: &str,
        config: ModelConfig,
        client: reqwest::Client,
    ) -> Result<Provider, ConfigError> {
        let api_key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| ConfigError::MissingApiKey {
                model: name.to_string(),
                var: var.clone(),
            })?),
            None => None,
        };
        Self::with_api_key(name, config, client, api_key)
    }

    /// The provider for `name` with the API key given directly (`config.api_key_env`
    /// is ignored); for tests and embedders that keep keys elsewhere.
    pub fn with_api_key(
        name: &str,
        config: ModelConfig,
        client: reqwest::Client,
        api_key: Option<String>,
    ) -> Result<Provider, ConfigError> {
        let model = name.to_string();
        if !(1..=MAX_TIMEOUT_MS).contains(&config.timeout_ms) {
            return Err(ConfigError::InvalidSetting {
                model,
                message: format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"),
            });
        }
        if config.max_concurrency == 0 || config.max_concurrency > Semaphore::MAX_PERMITS {
            return Err(ConfigError::InvalidSetting {
                model,
                message: format!(
                    "max_concurrency must be between 1 and {}",
                    Semaphore::MAX_PERMITS
                ),
            });
        }
        if let Some(limit) = config.global_max_concurrency {
            let message = if config.provider == ProviderKind::Local {
                Some("global_max_concurrency does not apply to a local model (it runs in this process)".to_string())
            } else if !(1..=MAX_GLOBAL_CONCURRENCY).contains(&limit) {
                Some(format!(
                    "global_max_concurrency must be between 1 and {MAX_GLOBAL_CONCURRENCY}"
                ))
            } else if !(100..=MAX_TIMEOUT_MS).contains(&config.global_lease_ms) {
                Some(format!(
                    "global_lease_ms must be between 100 and {MAX_TIMEOUT_MS}"
                ))
            } else {
                None
            };
            if let Some(message) = message {
                return Err(ConfigError::InvalidSetting { model, message });
            }
        }
        for (field, price) in [
            ("input_price_per_million", config.input_price_per_million),
            ("output_price_per_million", config.output_price_per_million),
        ] {
            if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
                return Err(ConfigError::InvalidSetting {
                    model,
                    message: format!("{field} must be a finite number, 0 or more"),
                });
            }
        }
        for (field, value) in [
            ("max_reply_bytes", config.max_reply_bytes),
            ("max_line_bytes", config.max_line_bytes),
            ("max_stream_bytes", config.max_stream_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::InvalidSetting {
                    model,
                    message: format!("{field} must be at least 1"),
                });
            }
        }
        if config.requantize_q8_0 && config.provider != ProviderKind::Local {
            return Err(ConfigError::InvalidSetting {
                model,
                message: "requantize_q8_0 is for provider \"local\" only".into(),
            });
        }
        let base = config.base_url.trim_end_matches('/');
        match reqwest::Url::parse(base) {
            _ if config.provider == ProviderKind::Local => {}
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ConfigError::InvalidBaseUrl {
                    model,
                    url: config.base_url.clone(),
                });
            }
        }
        let api_key = match api_key {
            Some(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                    ConfigError::InvalidApiKey {
                        model: model.clone(),
                    }
                })?;
                // Keeps the header out of any HTTP-level debug logging too.
                value.set_sensitive(true);
                Some(ApiKey(value))
            }
            None => None,
        };
        let upstream_model = config.model.clone().unwrap_or_else(|| model.clone());
        let endpoint = match config.provider {
            ProviderKind::Openai => openai::endpoint(base),
            ProviderKind::Clova => clova::endpoint(base, &upstream_model),
            ProviderKind::Local => match &config.path {
                Some(path) => path.display().to_string(),
                None => String::new(),
            },
        };
        #[cfg(feature = "local")]
        let local = match config.provider {
            ProviderKind::Local => Some(local::Engine::load(&model, &config)?),
            _ => None,
        };
        #[cfg(not(feature = "local"))]
        if config.provider == ProviderKind::Local {
            return Err(ConfigError::InvalidSetting {
                model,
                message: "provider \"local\" needs sluice built with the `local` feature \
                          (cargo build --release --features local)"
                    .into(),
            });
        }
        Ok(Provider {
            name: model,
            slots: Semaphore::new(config.max_concurrency),
            global: global::GlobalSlots::default(),
            config,
            client,
            api_key,
            upstream_model,
            endpoint,
            #[cfg(feature = "local")]
            local,
        })
    }
}
