//! A model's configuration: the `[models.NAME]` table, its defaults and
//! limits, and why a configuration cannot be used.

use std::fmt;

use serde::Deserialize;

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
    /// `local` only: run a Q4_1 file's weights re-quantized to Q8_0
    /// (converted once and cached in the model cache): about twice the
    /// prompt rate and half the time to the first token, at the file's
    /// perplexity, for 44 MiB more memory and no faster generation. Default
    /// false.
    #[serde(default)]
    pub requantize_q8_0: bool,
    /// The model id sent upstream; defaults to the logical name.
    #[serde(default)]
    pub model: Option<String>,
    /// The sluice profile used to count and trim this model's prompts; the
    /// caller picks a default when absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// The environment variable that holds the API key, read once when the
    /// [`Provider`](super::Provider) is built; no key is sent when absent.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The deadline of one call, retries and queueing included, in milliseconds
    /// (1 to [`MAX_TIMEOUT_MS`]).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many calls to this model may be in flight at once, in this
    /// process (each replica has its own).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How many calls to this model may be in flight at once across every
    /// replica on the database, for a provider whose quota is global; none
    /// by default. Slots are leased in the store (see
    /// [`Provider::attach_store`](super::Provider::attach_store)); a call holds one of this process's
    /// `max_concurrency` slots and one of these.
    #[serde(default)]
    pub global_max_concurrency: Option<usize>,
    /// How long a slot of `global_max_concurrency` outlives a replica that
    /// died holding it, in milliseconds; the lease is renewed every third of
    /// it while the call runs. Default [`DEFAULT_GLOBAL_LEASE_MS`].
    #[serde(default = "default_global_lease_ms")]
    pub global_lease_ms: u64,
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
/// The default of [`ModelConfig::global_lease_ms`]: 10 s, renewed every 3.3 s.
pub const DEFAULT_GLOBAL_LEASE_MS: u64 = 10_000;
/// The largest [`ModelConfig::global_max_concurrency`] accepted.
pub const MAX_GLOBAL_CONCURRENCY: usize = 10_000;
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

fn default_global_lease_ms() -> u64 {
    DEFAULT_GLOBAL_LEASE_MS
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
            requantize_q8_0: false,
            model: None,
            profile: None,
            api_key_env: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            global_max_concurrency: None,
            global_lease_ms: DEFAULT_GLOBAL_LEASE_MS,
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
