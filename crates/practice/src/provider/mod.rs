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
//! A model's settings and their validation live in `config`, its errors in
//! `error`, building a provider in `client` and the call loop in `call`. The
//! wire formats live in `openai` and `clova`, what both share (messages as
//! sent, stream steps, error bodies) in `wire`, the SSE line parser in `sse`,
//! reading an answer under the model's size limits in `read`, the retry policy
//! in `retry` and the in-process model in `local`; this module holds the
//! public types.

mod call;
mod client;
mod clova;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod global;
#[cfg(feature = "local")]
mod local;
mod openai;
mod passthrough;
mod raw;
mod read;
mod retry;
mod sse;
pub mod translate;
mod wire;

use std::fmt;

use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;

pub use client::http_client;
pub use config::{
    ConfigError, DEFAULT_GLOBAL_LEASE_MS, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_REPLY_BYTES, DEFAULT_MAX_RETRIES, DEFAULT_MAX_STREAM_BYTES, DEFAULT_TIMEOUT_MS,
    MAX_GLOBAL_CONCURRENCY, MAX_TIMEOUT_MS, ModelConfig, ProviderKind,
};
pub use error::ProviderError;
pub use passthrough::{WireAnswer, WireEvent, WireRequest};
pub use raw::RawObject;

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
    /// The slots of `global_max_concurrency`, in the store.
    global: global::GlobalSlots,
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
    /// The logical model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The model's own counting profile, when the provider knows it (a
    /// `local` model: its own tokenizer and context); `None` otherwise.
    pub fn own_model(&self) -> Option<sluice_core::Model> {
        #[cfg(feature = "local")]
        if let Some(local) = &self.local {
            return Some(local.counting_model().clone());
        }
        None
    }

    /// The model id sent upstream.
    pub fn upstream_model(&self) -> &str {
        &self.upstream_model
    }

    /// Keeps this model's `global_max_concurrency` slots in `store`, shared
    /// with every replica on the same database; the first store given stays.
    /// [`crate::Practice::new`] does this for its models. Without a store, a
    /// model with a global limit fails its calls rather than ignore it.
    pub fn attach_store(&self, store: &crate::Store) {
        self.global.attach(store);
    }
}
