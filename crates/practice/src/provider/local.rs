//! The `local` provider: a GGUF model run in this process by `sluice-local`.
//!
//! The model is loaded once, when the [`Provider`](super::Provider) is built,
//! and runs in a [`Pool`]: one scheduler thread that batches up to [`SLOTS`]
//! requests into each forward pass (sluice-local spreads each pass over the
//! cores itself). `max_concurrency` is the number of requests accepted at a
//! time, running and waiting together; past it a call fails at once with
//! [`ProviderError::RateLimited`] (HTTP 429 from the gateway) instead of
//! queueing without bound.

use std::sync::Arc;

use sluice_local::{
    ChatMessage, Event, FinishReason, LoadOptions, LocalError, LocalModel, Pool, SamplingParams,
};
use tokio::sync::mpsc::{Sender, unbounded_channel};

use super::{ChatReply, ChatRequest, ConfigError, ModelConfig, ProviderError, TokenUsage};

/// Requests batched into one forward pass. Each gets the same tokens as it
/// would alone (sluice-local's engine: one key/value cache per slot, no flash
/// attention), so a greedy practice run answers the same however many
/// students generate with it.
const SLOTS: usize = 8;

/// Each slot's key/value cache, in tokens: the longest prompt plus answer,
/// and so the context the model's own profile trims to. SmolLM2 was trained
/// on 8,192, but eight slots of 8,192 would hold 1.5 GB of cache; eight of
/// 2,048 hold 377 MB.
const CONTEXT: usize = 2048;

/// A loaded local model, its pool, and the model's own profile for counting.
pub(super) struct Engine {
    pool: Pool,
    counting: sluice_core::Model,
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
        let model = LocalModel::load_with(
            path,
            LoadOptions {
                cache_tokens: CONTEXT,
                requantize_q8_0: config.requantize_q8_0,
                ..LoadOptions::default()
            },
        )
        .map_err(|e| invalid(e.to_string()))?;
        let counting = own_profile(name, &model).map_err(invalid)?;
        tracing::info!(model = name, path = %path.display(), "local model loaded");
        Ok(Self {
            pool: Pool::new(Arc::new(model), SLOTS, config.max_concurrency),
            counting,
        })
    }

    /// The model's own profile: its own tokenizer and its own context, so
    /// that practice trims a prompt to what the model accepts.
    pub(super) fn counting_model(&self) -> &sluice_core::Model {
        &self.counting
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

/// A profile named `name` that counts with the model's own tokenizer (its
/// GGUF vocabulary as a `tokenizer.json`) and ChatML, within its own context
/// less the default system turn SmolLM2's template adds to a conversation
/// that has none (so a trimmed prompt fits either way).
fn own_profile(name: &str, model: &LocalModel) -> Result<sluice_core::Model, String> {
    let json = model.tokenizer_json().map_err(|e| e.to_string())?;
    let tokenizer = sluice_core::Tokenizer::from_json_bytes(json.as_bytes(), name)
        .map_err(|e| e.to_string())?;
    let default_system =
        sluice_local::chat::default_system_tokens(model.tokenizer()).map_err(|e| e.to_string())?;
    let context = model.context_length().saturating_sub(default_system);
    let context = u32::try_from(context).unwrap_or(u32::MAX);
    let profile = sluice_core::ModelProfile::new(
        name,
        sluice_core::TokenizerSource::File(model.path().to_path_buf()),
        context,
        context / 2,
    );
    Ok(sluice_core::Model::new(profile, tokenizer))
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
