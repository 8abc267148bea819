//! Chat-model providers: OpenAI-compatible and CLOVA Studio v3 chat completions,
//! and (with the `local` feature) a GGUF model run in-process.
//!
//! A [`Provider`] is one logical model name from the server's configuration
//! (`[models.NAME]`, see [`ModelConfig`]). It sends a [`ChatRequest`] in the
//! model's wire format, retries what is worth retrying and bounds the whole call
//! — waiting for a concurrency slot, every attempt and every back-off — by the
//! model's own deadline, so one slow model never holds up a practice turn for
//! longer than its `timeout_ms`.
//!
//! The wire formats live in `openai` and `clova`, the SSE line parser in `sse`,
//! reading an answer under the model's size limits in `read`, the retry policy
//! in `retry` and the in-process model in `local`; this module
//! holds the public types and the call loop that ties them together.

mod clova;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "local")]
mod local;
mod openai;
mod passthrough;
mod raw;
mod read;
mod retry;
mod sse;
pub mod translate;

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc::Sender};
use tokio::time::Instant;

pub use passthrough::{WireAnswer, WireEvent, WireRequest};
pub use raw::RawObject;
use retry::Failure;

/// Which wire format a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions (`POST {base_url}/chat/completions`):
    /// vLLM, llama.cpp, Ollama, LiteLLM, CLOVA Studio's `/v1/openai` base.
    Openai,
    /// CLOVA Studio v3 chat completions (`POST {base_url}/v3/chat-completions/{model}`).
    Clova,
    /// A GGUF model file (`path`) run in this process on the CPU; needs sluice
    /// built with the `local` feature. Always understood by the configuration
    /// loader, so a file that names it fails with a clear message elsewhere.
    Local,
}

impl ProviderKind {
    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Clova => "clova",
            ProviderKind::Local => "local",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured model: the table `[models.NAME]` of the server's TOML file.
///
/// It holds the *name* of the environment variable with the API key, never the
/// key itself, so it may be logged and printed freely.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The wire format.
    pub provider: ProviderKind,
    /// The API base: `http://127.0.0.1:8000/v1` for an OpenAI-compatible server,
    /// `https://clovastudio.stream.ntruss.com` for CLOVA Studio. A trailing `/`
    /// is ignored. Required except for `local`, which ignores it.
    #[serde(default)]
    pub base_url: String,
    /// `local` only: the GGUF model file.
    #[serde(default)]
    pub path: Option<std::path::PathBuf>,
    /// The model id sent upstream; defaults to the logical name.
    #[serde(default)]
    pub model: Option<String>,
    /// The sluice profile used to count and trim this model's prompts; the
    /// caller picks a default when absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// The environment variable that holds the API key, read once when the
    /// [`Provider`] is built; no key is sent when absent.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The deadline of one call, retries and queueing included, in milliseconds
    /// (1 to [`MAX_TIMEOUT_MS`]).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many calls to this model may be in flight at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How many times a failed attempt may be retried (so at most
    /// `max_retries + 1` attempts).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Gateway only: trim a chat-completions request's history with the sliding
    /// window (this model's profile and the request's maximum) before
    /// forwarding it, instead of letting the upstream refuse it. Default false.
    #[serde(default)]
    pub auto_trim: bool,
    /// Gateway only: check the last user message with the practice router
    /// before forwarding; a blocked request is refused. Default false.
    #[serde(default)]
    pub route_check: bool,
    /// The most bytes of one reply sluice holds: a whole JSON answer as
    /// received, or the text a streamed answer adds up to. A longer reply is
    /// an error naming this limit (`too_large`), never read to its end.
    /// Default [`DEFAULT_MAX_REPLY_BYTES`].
    #[serde(default = "default_max_reply_bytes")]
    pub max_reply_bytes: u64,
    /// The longest line of a streamed answer, and the longest event its lines
    /// make together. Default [`DEFAULT_MAX_LINE_BYTES`].
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
    /// The most bytes read of one streamed answer, the framing of every event
    /// included: bounds a stream that never ends while adding no text.
    /// Default [`DEFAULT_MAX_STREAM_BYTES`].
    #[serde(default = "default_max_stream_bytes")]
    pub max_stream_bytes: u64,
    /// The price of a million prompt tokens, for usage reports and cost
    /// budgets (any currency, the same for every model). No price: no cost.
    #[serde(default)]
    pub input_price_per_million: Option<f64>,
    /// The price of a million answer tokens.
    #[serde(default)]
    pub output_price_per_million: Option<f64>,
}

/// The default of [`ModelConfig::timeout_ms`].
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The largest [`ModelConfig::timeout_ms`] accepted: a day. Far beyond any real
/// answer, and small enough that a deadline can always be computed.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// The default of [`ModelConfig::max_concurrency`].
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// The default of [`ModelConfig::max_retries`].
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// The default of [`ModelConfig::max_reply_bytes`]: 4 MiB. A real answer of
/// 128k tokens is about 0.6 MB of Korean text, 1.2 MB as `\u`-escaped JSON.
pub const DEFAULT_MAX_REPLY_BYTES: u64 = 4 << 20;
/// The default of [`ModelConfig::max_line_bytes`]: 4 MiB. The longest real line
/// is CLOVA Studio's `result` event, which repeats the whole answer once.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 4 << 20;
/// The default of [`ModelConfig::max_stream_bytes`]: 64 MiB. An OpenAI stream
/// spends 150 to 250 bytes of framing per token: 128k tokens make about 32 MB.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 64 << 20;

fn default_max_reply_bytes() -> u64 {
    DEFAULT_MAX_REPLY_BYTES
}

fn default_max_line_bytes() -> u64 {
    DEFAULT_MAX_LINE_BYTES
}

fn default_max_stream_bytes() -> u64 {
    DEFAULT_MAX_STREAM_BYTES
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_max_concurrency() -> usize {
    DEFAULT_MAX_CONCURRENCY
}

fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

impl ModelConfig {
    /// A configuration with the defaults for everything but the wire format and
    /// the base URL.
    pub fn new(provider: ProviderKind, base_url: impl Into<String>) -> Self {
        Self {
            provider,
            base_url: base_url.into(),
            path: None,
            model: None,
            profile: None,
            api_key_env: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_retries: DEFAULT_MAX_RETRIES,
            auto_trim: false,
            route_check: false,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            input_price_per_million: None,
            output_price_per_million: None,
        }
    }

    /// The prices per million prompt and answer tokens.
    pub fn prices(&self) -> (Option<f64>, Option<f64>) {
        (self.input_price_per_million, self.output_price_per_million)
    }
}

/// A model configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `api_key_env` names a variable that is not set (or not valid Unicode).
    #[error("model {model:?}: the environment variable {var} (api_key_env) is not set")]
    MissingApiKey {
        /// The logical model name.
        model: String,
        /// The variable's name.
        var: String,
    },
    /// The key cannot be sent in an HTTP header (a control character, say).
    #[error("model {model:?}: the API key is not a valid HTTP header value")]
    InvalidApiKey {
        /// The logical model name.
        model: String,
    },
    /// `base_url` is not an absolute `http` or `https` URL.
    #[error("model {model:?}: base_url {url:?} is not an http(s) URL")]
    InvalidBaseUrl {
        /// The logical model name.
        model: String,
        /// The configured value.
        url: String,
    },
    /// A setting outside its range.
    #[error("model {model:?}: {message}")]
    InvalidSetting {
        /// The logical model name.
        model: String,
        /// What is wrong.
        message: String,
    },
}

/// One chat completion to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation; only each message's role and content are sent.
    pub messages: Vec<sluice_core::Message>,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// The most output tokens (`max_tokens`, or CLOVA's `maxTokens` /
    /// `maxCompletionTokens`).
    pub max_tokens: u32,
    /// A sampling seed, sent when set.
    pub seed: Option<u64>,
    /// Sent to CLOVA Studio as `X-NCP-CLOVASTUDIO-REQUEST-ID` so the two sides'
    /// logs can be matched.
    pub request_id: Option<String>,
}

/// Token counts as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenUsage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
    /// Both together.
    pub total_tokens: u64,
}

/// A model's complete answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The answer. When streamed, exactly the concatenation of the deltas sent.
    pub text: String,
    /// The upstream's token counts.
    pub usage: TokenUsage,
    /// Why the model stopped (`stop`, `length`, ...), as the upstream spells it.
    pub finish_reason: Option<String>,
    /// The upstream's id of the completion, when it gives one.
    pub upstream_id: Option<String>,
    /// How many attempts the call took (1 when the first one succeeded).
    pub attempts: u32,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The model's deadline passed (queueing, attempts and back-off included).
    #[error("no answer within {after_ms} ms")]
    Timeout {
        /// The deadline, in milliseconds from the start of the call.
        after_ms: u64,
    },
    /// The upstream answered 429 (and retrying did not help, or the quota is
    /// exhausted, or its `Retry-After` lies past the deadline).
    #[error("rate limited by the upstream (HTTP {status}): {message}")]
    RateLimited {
        /// The HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// The upstream rejected the request (a 4xx other than 429).
    #[error("the upstream rejected the request (HTTP {status}): {message}")]
    Upstream4xx {
        /// The HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// The upstream failed (a 5xx).
    #[error("the upstream failed (HTTP {status}): {message}")]
    Upstream5xx {
        /// The HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// No HTTP answer: connection refused or reset, TLS failure, a body cut short.
    #[error("transport error: {message}")]
    Transport {
        /// What went wrong.
        message: String,
    },
    /// An answer that is not what the wire format promises.
    #[error("bad response from the upstream: {message}")]
    BadResponse {
        /// What is wrong with it.
        message: String,
    },
    /// An answer past one of the model's reading limits; the rest was not read.
    #[error("the reply is larger than {limit} ({bytes} bytes) allows")]
    TooLarge {
        /// The [`ModelConfig`] field that bounds it: `max_reply_bytes`,
        /// `max_line_bytes` or `max_stream_bytes`.
        limit: &'static str,
        /// Its value.
        bytes: u64,
    },
}

impl ProviderError {
    /// A stable, machine-readable name of the variant, for API responses and
    /// metrics: `timeout`, `rate_limited`, `upstream_4xx`, `upstream_5xx`,
    /// `transport`, `bad_response` or `too_large`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Upstream4xx { .. } => "upstream_4xx",
            ProviderError::Upstream5xx { .. } => "upstream_5xx",
            ProviderError::Transport { .. } => "transport",
            ProviderError::BadResponse { .. } => "bad_response",
            ProviderError::TooLarge { .. } => "too_large",
        }
    }

    /// The upstream's HTTP status, when it answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::RateLimited { status, .. }
            | ProviderError::Upstream4xx { status, .. }
            | ProviderError::Upstream5xx { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error for an upstream error status and its message.
    fn from_status(status: u16, message: String) -> Self {
        match status {
            429 => ProviderError::RateLimited { status, message },
            400..=499 => ProviderError::Upstream4xx { status, message },
            500..=599 => ProviderError::Upstream5xx { status, message },
            _ => ProviderError::BadResponse {
                message: format!("unexpected HTTP status {status}: {message}"),
            },
        }
    }

    fn bad_response(message: impl Into<String>) -> Self {
        ProviderError::BadResponse {
            message: message.into(),
        }
    }
}

/// The HTTP client every provider shares: rustls, a connect timeout, pooled
/// connections and the user agent `sluice/<version>`.
///
/// There is no overall request timeout here on purpose: each model bounds its
/// own calls by its `timeout_ms`, and a stream may legitimately run long.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(32)
        .tcp_keepalive(Duration::from_secs(60))
        .build()
        // Only fails when the TLS backend cannot start, which for the bundled
        // rustls means a broken build rather than a runtime condition.
        .expect("the HTTP client (rustls) can be built")
}

/// An API key; kept out of `Debug` output so that it cannot leak into logs.
#[derive(Clone)]
struct ApiKey(HeaderValue);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The client of one logical model.
///
/// Cheap to share behind an `Arc`; every call takes `&self`.
pub struct Provider {
    name: String,
    config: ModelConfig,
    client: reqwest::Client,
    api_key: Option<ApiKey>,
    /// The upstream model id: `config.model` or the logical name.
    upstream_model: String,
    /// The full URL of the chat-completions endpoint.
    endpoint: String,
    /// One permit per call in flight, so a burst of practice turns cannot
    /// overrun a small self-hosted server.
    slots: Semaphore,
    /// The loaded model of a `local` provider.
    #[cfg(feature = "local")]
    local: Option<local::Engine>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("api_key", &self.api_key)
            .field("upstream_model", &self.upstream_model)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
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
            config,
            client,
            api_key,
            upstream_model,
            endpoint,
            #[cfg(feature = "local")]
            local,
        })
    }

    /// The logical model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The model id sent upstream.
    pub fn upstream_model(&self) -> &str {
        &self.upstream_model
    }

    /// Asks for one completion and waits for the whole answer.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ProviderError> {
        self.call(request, None).await
    }

    /// Asks for one completion as a stream: each text delta is sent to `tokens`
    /// as it arrives, and the complete reply is returned at the end (its text is
    /// exactly the concatenation of the deltas).
    ///
    /// The channel is bounded on purpose: the answer is read no faster than
    /// `tokens` is emptied, so a slow reader holds the upstream back instead of
    /// piling up deltas. A dropped receiver does not stop the call: the reply
    /// is still wanted (to be stored) even when nobody watches it being written.
    pub async fn chat_stream(
        &self,
        request: &ChatRequest,
        tokens: Sender<String>,
    ) -> Result<ChatReply, ProviderError> {
        self.call(request, Some(&tokens)).await
    }

    /// Runs `attempt` in one of this model's concurrency slots, retried as
    /// the model's policy allows until `deadline`: the part of every upstream
    /// call ([`Provider::call`], [`Provider::forward`]) that is not its wire
    /// format. Returns the value and the attempts made.
    async fn in_slot_with_retries<T, F, Fut>(
        &self,
        deadline: Instant,
        attempt: F,
    ) -> Result<(T, u32), ProviderError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| ProviderError::Transport {
                message: "provider shut down".into(),
            })?;
        retry::run(&self.name, self.config.max_retries, deadline, attempt).await
    }

    async fn call(
        &self,
        request: &ChatRequest,
        tokens: Option<&Sender<String>>,
    ) -> Result<ChatReply, ProviderError> {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.config.timeout_ms);
        let outcome = tokio::time::timeout_at(deadline, async {
            // A local model queues (and refuses) in its own pool, and retrying
            // a computation gives the same failure.
            #[cfg(feature = "local")]
            if let Some(local) = &self.local {
                return local.chat(request, tokens).await.map(|reply| (reply, 1));
            }
            self.in_slot_with_retries(deadline, |attempt| self.attempt(request, tokens, attempt))
                .await
        })
        .await;
        let result = match outcome {
            Ok(Ok((reply, attempts))) => Ok(ChatReply { attempts, ..reply }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ProviderError::Timeout {
                after_ms: self.config.timeout_ms,
            }),
        };
        let elapsed_ms = started.elapsed().as_millis();
        match &result {
            Ok(reply) => tracing::debug!(
                model = %self.name,
                attempts = reply.attempts,
                elapsed_ms,
                "chat completion done"
            ),
            Err(error) => tracing::warn!(
                model = %self.name,
                kind = error.kind(),
                elapsed_ms,
                %error,
                "chat completion failed"
            ),
        }
        result
    }

    /// One HTTP exchange. Its `attempts` field is filled in by the caller.
    async fn attempt(
        &self,
        request: &ChatRequest,
        tokens: Option<&Sender<String>>,
        attempt: u32,
    ) -> Result<ChatReply, Failure> {
        let stream = tokens.is_some();
        tracing::debug!(model = %self.name, attempt, stream, url = %self.endpoint, "calling upstream");
        let body = match self.config.provider {
            ProviderKind::Openai => openai::request_body(&self.upstream_model, request, stream),
            ProviderKind::Clova => clova::request_body(&self.upstream_model, request),
            ProviderKind::Local => unreachable!("a local provider makes no HTTP request"),
        };
        let response = self
            .send(body, stream, request.request_id.as_deref())
            .await?;

        let limits = read::Limits::of(&self.config);
        let is_event_stream = is_event_stream(response.headers());
        match tokens {
            // A server that ignores `stream` and answers with one JSON document
            // is still understood: the whole text goes out as one delta.
            Some(tokens) if is_event_stream => {
                read::stream(response, self.config.provider, limits, tokens).await
            }
            _ => {
                let body = read::body(response, limits).await?;
                read::check_utf8(&body).map_err(Failure::fatal)?;
                let reply = match self.config.provider {
                    ProviderKind::Openai => openai::parse_reply(&body),
                    ProviderKind::Clova => clova::parse_reply(&body),
                    ProviderKind::Local => unreachable!("a local provider makes no HTTP request"),
                }
                .map_err(Failure::fatal)?;
                if let Some(tokens) = tokens.filter(|_| !reply.text.is_empty()) {
                    let _ = tokens.send(reply.text.clone()).await;
                }
                Ok(reply)
            }
        }
    }

    /// Sends one request and waits for the response head; an error status is
    /// a [`Failure`] with what its body says.
    async fn send(
        &self,
        body: Vec<u8>,
        stream: bool,
        request_id: Option<&str>,
    ) -> Result<reqwest::Response, Failure> {
        let mut http = self
            .client
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(ApiKey(key)) = &self.api_key {
            http = http.header(AUTHORIZATION, key.clone());
        }
        if stream {
            http = http.header(ACCEPT, "text/event-stream");
        } else {
            http = http.header(ACCEPT, "application/json");
        }
        if let (ProviderKind::Clova, Some(id)) = (self.config.provider, request_id) {
            http = http.header(clova::REQUEST_ID_HEADER, id);
        }

        let response = http.send().await.map_err(Failure::from_send_error)?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let headers = response.headers().clone();
            let body = read::error_body(response).await;
            return Err(Failure::from_status(
                status,
                Fault::from_body(&body),
                &headers,
            ));
        }
        Ok(response)
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// What one stream event means.
#[derive(Debug, PartialEq)]
enum StreamStep {
    /// Text to append and forward.
    Delta(String),
    /// Nothing to forward (role-only chunks, usage, keep-alives).
    Continue,
    /// The end of the answer.
    Done,
}

/// A message as sent upstream: both formats take role and content alike.
#[derive(serde::Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

fn wire_messages(messages: &[sluice_core::Message]) -> Vec<WireMessage<'_>> {
    messages
        .iter()
        .map(|m| WireMessage {
            role: m.role.as_str(),
            content: &m.content,
        })
        .collect()
}

/// What an error body says, in whichever shape the upstream used: OpenAI's
/// `{"error":{"message","type","code"}}`, CLOVA's `{"status":{"code","message"}}`,
/// FastAPI's `{"detail": "..."}`, a bare `{"message"}` or plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fault {
    message: String,
    /// The machine-readable codes found (`type` and `code`), space-separated.
    code: Option<String>,
}

impl Fault {
    fn from_body(body: &[u8]) -> Self {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Fault {
                message: preview(&String::from_utf8_lossy(body)),
                code: None,
            };
        };
        let text = |value: &serde_json::Value| match value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let error = json.get("error");
        let message = [
            error.and_then(|e| e.get("message")),
            error,
            json.get("status").and_then(|s| s.get("message")),
            json.get("message"),
            json.get("detail"),
        ]
        .into_iter()
        .flatten()
        .find_map(text)
        .unwrap_or_else(|| preview(&json.to_string()));
        let codes: Vec<String> = [
            error.and_then(|e| e.get("type")),
            error.and_then(|e| e.get("code")),
            json.get("status").and_then(|s| s.get("code")),
            json.get("code"),
        ]
        .into_iter()
        .flatten()
        .filter_map(text)
        .collect();
        Fault {
            message,
            code: (!codes.is_empty()).then(|| codes.join(" ")),
        }
    }

    /// A 429 that says the quota or credit is used up: waiting seconds will not
    /// help, so it is not retried.
    fn is_quota_exhausted(&self) -> bool {
        let says_quota = |s: &str| s.to_ascii_lowercase().contains("quota");
        says_quota(&self.message) || self.code.as_deref().is_some_and(says_quota)
    }
}

/// Reads a JSON document, mapping any failure to [`ProviderError::BadResponse`].
fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        ProviderError::bad_response(format!(
            "{e}; the body starts: {}",
            preview(&String::from_utf8_lossy(body))
        ))
    })
}

/// The first characters of an upstream text, for error messages.
fn preview(text: &str) -> String {
    const MAX: usize = 200;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
