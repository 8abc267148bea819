//! The one chat flow of sluice, shared by practice runs and the gateway: the
//! router's check of a prompt, the trim of a conversation to one model's
//! window, and the call of that model's provider, whole or streamed, stopped
//! as soon as its caller lets go of it. The provider brings the rest of a
//! call: the model's deadline, its concurrency slots and its retries
//! ([`Provider`]).
//!
//! What each caller adds is its own: a practice run builds its prompt (system
//! text, few-shot examples, retrieved passages), checks it once and stores the
//! answers; the gateway reads and writes wire formats, and follows the model's
//! `route_check` and `auto_trim` switches ([`PracticeModel::prepare`]).

mod stream;

pub use stream::Streamed;

use std::fmt;
use std::sync::Arc;

use sluice_core::{Message, Model, Role, Trim, TrimError};
use sluice_router::{RouteRequest, Router};

pub use crate::contract::Blocked;

use crate::provider::{
    ChatReply, ChatRequest, Provider, ProviderError, WireAnswer, WireEvent, WireRequest,
};

/// One configured model: its provider and the profile that counts and trims for it.
#[derive(Debug, Clone)]
pub struct PracticeModel {
    /// The client.
    pub provider: Arc<Provider>,
    /// The tokenizer, context limit and template of the model.
    pub model: Arc<Model>,
}

/// Why a chat does not reach its model.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The router blocked the prompt.
    Blocked(Blocked),
    /// The router could not check the prompt (its message).
    Unchecked(String),
    /// The conversation does not fit the model's window, even trimmed.
    TooLong(TrimError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked(blocked) => {
                write!(f, "the request was blocked by the router ({blocked})")
            }
            Self::Unchecked(message) => write!(f, "the router cannot check the prompt: {message}"),
            Self::TooLong(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Refusal {}

/// The router's check of a prompt: the domain it was put in, or why it is refused.
pub fn check(router: &Router, prompt: &str) -> Result<String, Refusal> {
    let routed = router
        .route(&RouteRequest::new(prompt))
        .map_err(|e| Refusal::Unchecked(e.to_string()))?;
    if routed.blocked_content.result.is_empty() && routed.safety.result.is_empty() {
        return Ok(routed.domain.result);
    }
    Err(Refusal::Blocked(Blocked {
        domain: routed.domain.result,
        content_filters: routed.blocked_content.result,
        safety: routed.safety.result,
    }))
}

impl PracticeModel {
    /// Trims `messages` so that they and `reserved` tokens (the answer, and
    /// whatever else the prompt holds beside the messages) fit the model's
    /// window.
    pub fn fit(&self, messages: &[Message], reserved: i64) -> Result<Trim, Refusal> {
        self.model
            .trim(messages, reserved)
            .map_err(Refusal::TooLong)
    }

    /// A request's way to the model as the model's config asks: with
    /// `route_check`, `router` checks the last user message (a blank one, or
    /// one the router cannot read, is not refused); with `auto_trim`, the
    /// conversation is trimmed ([`PracticeModel::fit`]) and the trim returned.
    /// `reserved` is asked only then: what it counts (tool definitions, say)
    /// is not counted for a model that does not trim.
    pub fn prepare(
        &self,
        router: Option<&Router>,
        messages: &[Message],
        reserved: impl FnOnce() -> i64,
    ) -> Result<Option<Trim>, Refusal> {
        let config = self.provider.config();
        if config.route_check {
            let last_user = messages.iter().rev().find(|m| m.role == Role::User);
            if let (Some(router), Some(last_user)) = (router, last_user) {
                if !last_user.content.trim().is_empty() {
                    match check(router, &last_user.content) {
                        Ok(_) | Err(Refusal::Unchecked(_)) => {}
                        Err(refusal) => return Err(refusal),
                    }
                }
            }
        }
        if config.auto_trim {
            return self.fit(messages, reserved()).map(Some);
        }
        Ok(None)
    }

    /// Calls the model and waits for the whole answer.
    pub async fn call(&self, request: &ChatRequest) -> Result<ChatReply, ProviderError> {
        self.provider.chat(request).await
    }

    /// Calls the model for a streamed answer: its text deltas, then the
    /// whole reply ([`Streamed`]). At most `in_flight` deltas are read ahead
    /// of the caller; dropping the stream stops the call.
    pub fn stream(&self, request: ChatRequest, in_flight: usize) -> Streamed<String, ChatReply> {
        let provider = Arc::clone(&self.provider);
        Streamed::spawn(in_flight, move |deltas| async move {
            provider.chat_stream(&request, deltas).await
        })
    }

    /// Sends a request in the provider's own wire format and waits for the
    /// whole answer, as the upstream wrote it.
    pub async fn forward(&self, request: &WireRequest) -> Result<WireAnswer, ProviderError> {
        self.provider.forward(request, None).await
    }

    /// Sends a streamed request in the provider's own wire format: the
    /// upstream's events as written, then how the answer ended. At most
    /// `in_flight` events are read ahead of the caller; dropping the stream
    /// stops the call.
    pub fn forward_stream(
        &self,
        request: WireRequest,
        in_flight: usize,
    ) -> Streamed<WireEvent, WireAnswer> {
        let provider = Arc::clone(&self.provider);
        Streamed::spawn(in_flight, move |events| async move {
            provider.forward(&request, Some(&events)).await
        })
    }
}

#[cfg(test)]
mod tests;
