//! The `local` provider: a GGUF model run in this process by `sluice-local`.
//!
//! The model is loaded once, when the [`Provider`](super::Provider) is built,
//! and runs on one blocking generation thread (candle spreads each forward
//! pass over the cores itself, so more threads only split the same cores).
//! `max_concurrency` is the number of requests accepted at a time, running and
//! waiting together; past it a call fails at once with
//! [`ProviderError::RateLimited`] (HTTP 429 from the gateway) instead of
//! queueing without bound.

use std::sync::Arc;

use sluice_local::{
    ChatMessage, Event, FinishReason, LocalError, LocalModel, Pool, SamplingParams,
};
use tokio::sync::mpsc::{Sender, unbounded_channel};

use super::{ChatReply, ChatRequest, ConfigError, ModelConfig, ProviderError, TokenUsage};

/// Generation threads per local model.
const WORKERS: usize = 1;

/// A loaded local model and its pool.
pub(super) struct Engine {
    pool: Pool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pool.fmt(f)
    }
}

impl Engine {
    /// Loads the model named by `config.path`.
    pub(super) fn load(name: &str, config: &ModelConfig) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::InvalidSetting {
            model: name.to_string(),
            message,
        };
        let path = config
            .path
            .as_ref()
            .ok_or_else(|| invalid("provider \"local\" needs `path`, the GGUF file".into()))?;
        let model = LocalModel::load(path).map_err(|e| invalid(e.to_string()))?;
        tracing::info!(model = name, path = %path.display(), "local model loaded");
        Ok(Self {
            pool: Pool::new(Arc::new(model), WORKERS, config.max_concurrency),
        })
    }

    /// One completion; text pieces go to `tokens` as they are generated.
    /// Dropping the future stops the generation at its next token.
    pub(super) async fn chat(
        &self,
        request: &ChatRequest,
        tokens: Option<&Sender<String>>,
    ) -> Result<ChatReply, ProviderError> {
        let messages = request
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
            .collect();
        let params = SamplingParams {
            temperature: request.temperature,
            top_p: request.top_p,
            max_tokens: request.max_tokens,
            seed: request.seed,
        };
        let (events, mut received) = unbounded_channel();
        self.pool
            .submit(
                messages,
                params,
                Box::new(move |event| events.send(event).is_ok()),
            )
            .map_err(provider_error)?;
        while let Some(event) = received.recv().await {
            match event {
                Event::Text(text) => {
                    if let Some(tokens) = tokens {
                        // A receiver that went away does not make the reply unwanted.
                        let _ = tokens.send(text).await;
                    }
                }
                Event::Done(result) => {
                    let generation = result.map_err(provider_error)?;
                    let prompt_tokens = generation.prompt_tokens as u64;
                    let completion_tokens = generation.tokens.len() as u64;
                    let finish_reason = match generation.finish_reason {
                        FinishReason::Stop => "stop",
                        FinishReason::Length | FinishReason::Cancelled => "length",
                    };
                    return Ok(ChatReply {
                        text: generation.text,
                        usage: TokenUsage {
                            prompt_tokens,
                            completion_tokens,
                            total_tokens: prompt_tokens + completion_tokens,
                        },
                        finish_reason: Some(finish_reason.into()),
                        upstream_id: None,
                        attempts: 1,
                    });
                }
            }
        }
        Err(provider_error(LocalError::Stopped))
    }
}

/// The provider error a local failure maps to: a full queue is a 429, a prompt
/// too long a 400, anything else a 500.
fn provider_error(error: LocalError) -> ProviderError {
    let message = error.to_string();
    match error {
        LocalError::Busy { .. } => ProviderError::RateLimited {
            status: 429,
            message,
        },
        LocalError::PromptTooLong { .. } => ProviderError::Upstream4xx {
            status: 400,
            message,
        },
        _ => ProviderError::Upstream5xx {
            status: 500,
            message,
        },
    }
}
