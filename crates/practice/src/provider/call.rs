//! The call loop: one completion, bounded by the model's deadline, in one of
//! its concurrency slots, retried as its policy allows, each attempt one HTTP
//! exchange in the model's wire format.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::config::ProviderKind;
use super::error::ProviderError;
use super::retry::Failure;
use super::wire::{Fault, is_event_stream};
use super::{ApiKey, ChatReply, ChatRequest, Provider, clova, openai, read, retry};

impl Provider {
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
    pub(super) async fn in_slot_with_retries<T, F, Fut>(
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
        // This process's slot first, so calls queued here hold no global one.
        let _global = match self.config.global_max_concurrency {
            Some(limit) => Some(
                self.global
                    .take(
                        &self.name,
                        limit,
                        Duration::from_millis(self.config.global_lease_ms),
                    )
                    .await?,
            ),
            None => None,
        };
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
    pub(super) async fn send(
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
