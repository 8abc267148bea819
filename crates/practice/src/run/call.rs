//! Calling the models of a turn: what each is sent (built, trimmed and counted
//! before any is called), the calls at once, each streamed and stoppable, and
//! what each result stores.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::future::join_all;
use sluice_core::Model;

use super::output::RunEvent;
use super::stop::{STOPPED, Streaming};
use super::{DELTAS_IN_FLIGHT, Plan, Practice, PracticeModel};
use crate::contract::{
    ModelError, ModelErrorKind, ModelFailure, ResultUsage, SentMessage, SentRequest, WindowReport,
};
use crate::error::PracticeError;
use crate::prompt::{self, CONTEXT_TOKENS, EffectiveParams, Source};
use crate::provider::{ChatReply, ChatRequest, ProviderError};
use crate::request::RunRequest;
use crate::store::{CallUsage, NewResult};

impl Practice {
    /// Builds, trims and counts what every model of the plan will be sent.
    pub(super) fn prepare_calls(
        &self,
        plan: &Plan,
        request: &RunRequest,
        history: &BTreeMap<String, Vec<(String, String)>>,
    ) -> Vec<Prepared> {
        let agent = plan.agent.as_ref();
        let style = if request.style_params == Default::default() {
            agent
                .and_then(|a| a.style_params.clone())
                .unwrap_or_default()
        } else {
            request.style_params.clone()
        };
        let agent_params = agent
            .and_then(|a| a.generation_params.clone())
            .unwrap_or_default();
        let system = prompt::system_text(
            plan.preset.unwrap_or("balanced"),
            &style,
            plan.agent.as_ref().map(|a| a.instructions.as_str()),
        );
        plan.models
            .iter()
            .map(|name| {
                let configured = &self.models[name];
                let params = prompt::effective_params(
                    &agent_params,
                    plan.preset,
                    &request.generation_params,
                    configured.model.profile().max_output,
                );
                let own = history.get(name).map_or(&[][..], Vec::as_slice);
                prepare_one(configured, plan, &system, own, params)
            })
            .collect()
    }

    /// Calls every prepared model at once and collects the results in order,
    /// with what each call used.
    pub(super) async fn call_models(
        &self,
        plan: &Plan,
        calls: Vec<Prepared>,
        events: Option<Streaming>,
    ) -> (Vec<NewResult>, Vec<CallUsage>) {
        let calls = plan
            .models
            .iter()
            .zip(calls)
            .enumerate()
            .map(|(i, (name, prepared))| {
                let configured = &self.models[name];
                let events = events.clone();
                let shown = plan.shown[i].as_str();
                async move {
                    let prices = prepared.prices;
                    let params = prepared.params.clone();
                    let outcome = call_one(configured, prepared, events.clone(), shown).await;
                    if let Some(streaming) = &events {
                        let _ = streaming.events.send(RunEvent::ModelDone {
                            model_name: shown.to_string(),
                            error: outcome.error.clone(),
                            finish_reason: outcome
                                .reply
                                .as_ref()
                                .and_then(|r| r.finish_reason.clone()),
                        });
                    }
                    let (prompt_tokens, completion_tokens) =
                        outcome.reply.as_ref().map_or((0, 0), |r| {
                            (r.usage.prompt_tokens, r.usage.completion_tokens)
                        });
                    let usage = CallUsage {
                        model_name: name.clone(),
                        prompt_tokens: prompt_tokens as i64,
                        completion_tokens: completion_tokens as i64,
                        error_kind: outcome.error.as_ref().map(|e| e.kind.as_str().to_string()),
                        latency_ms: outcome.latency_ms,
                        cost: crate::budget::cost(prices, prompt_tokens, completion_tokens),
                    };
                    let result = NewResult {
                        model_name: name.clone(),
                        is_primary: i == 0,
                        response_text: outcome.reply.as_ref().map(|r| r.text.clone()),
                        error: outcome.error,
                        token_usage: ResultUsage {
                            completion_tokens: outcome
                                .reply
                                .as_ref()
                                .map(|r| r.usage.completion_tokens),
                            counted_prompt_tokens: outcome.counted_prompt_tokens,
                            prompt_tokens: outcome.reply.as_ref().map(|r| r.usage.prompt_tokens),
                            sources: outcome.sources,
                            total_tokens: outcome.reply.as_ref().map(|r| r.usage.total_tokens),
                        },
                        latency_ms: outcome.latency_ms,
                        generation_params: params,
                        request: outcome.sent,
                        finish_reason: outcome.reply.as_ref().and_then(|r| r.finish_reason.clone()),
                        upstream_id: outcome.reply.and_then(|r| r.upstream_id),
                    };
                    (result, usage)
                }
            });
        join_all(calls).await.into_iter().unzip()
    }
}

/// When every model failed: the error to answer with (502), and nothing is stored.
pub(super) fn all_failed(results: &[NewResult]) -> Option<PracticeError> {
    let failures = results
        .iter()
        .map(|r| {
            Some(ModelFailure {
                error: r.error.clone()?,
                latency_ms: r.latency_ms,
                model_name: r.model_name.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(PracticeError::AllModelsFailed(failures))
}

/// What one model will be sent, built before any model is called so that the
/// run's worst case can be reserved first.
pub(super) struct Prepared {
    params: EffectiveParams,
    pub(super) prices: (Option<f64>, Option<f64>),
    /// `None` when the prompt cannot fit the model (`error` says why).
    pub(super) request: Option<ChatRequest>,
    error: Option<ModelError>,
    sources: Vec<Source>,
    pub(super) counted_prompt_tokens: Option<usize>,
    sent: Option<SentRequest>,
}

/// What came of calling one model.
struct Outcome {
    reply: Option<ChatReply>,
    error: Option<ModelError>,
    latency_ms: i64,
    sources: Vec<Source>,
    counted_prompt_tokens: Option<usize>,
    sent: Option<SentRequest>,
}

fn prepare_one(
    configured: &PracticeModel,
    plan: &Plan,
    system: &str,
    history: &[(String, String)],
    params: EffectiveParams,
) -> Prepared {
    let model = &configured.model;
    let prices = configured.provider.config().prices();
    let limit = model.profile().context_limit as usize;
    // Context gets what is left of the window after the answer, capped so a
    // large window does not fill with marginal passages.
    let budget = limit
        .saturating_sub(params.max_tokens as usize)
        .saturating_sub(model.count_message(&sluice_core::Message::user(plan.prompt_text.as_str())))
        .saturating_sub(model.count_message(&sluice_core::Message::system(system)))
        .min(CONTEXT_TOKENS);
    let (user, sources) = prompt::user_message(&plan.prompt_text, &plan.hits, model, budget);
    let messages = prompt::messages(system, &plan.few_shots, history, user);
    let messages_before = messages.len();
    let (kept, report) = match configured.fit(&messages, i64::from(params.max_tokens)) {
        Ok(trim) => {
            let report = trim.report().clone();
            (trim.apply(messages), report)
        }
        Err(e) => {
            return Prepared {
                params,
                prices,
                request: None,
                error: Some(ModelError {
                    kind: ModelErrorKind::ContextExceeded,
                    message: e.to_string(),
                    status: None,
                }),
                sources,
                counted_prompt_tokens: None,
                sent: None,
            };
        }
    };
    let counted = model.count(&kept).total;
    let request = ChatRequest {
        messages: kept,
        temperature: params.temperature,
        top_p: params.top_p,
        max_tokens: params.max_tokens,
        seed: params.seed,
        request_id: None,
    };
    let sent = SentRequest {
        max_tokens: request.max_tokens,
        messages: request
            .messages
            .iter()
            .map(|m| SentMessage {
                content: m.content.clone(),
                role: m.role.as_str().to_string(),
            })
            .collect(),
        seed: request.seed,
        temperature: request.temperature,
        top_p: request.top_p,
        window: Some(WindowReport {
            limit: report.limit,
            max_tokens: report.max_tokens,
            messages_before,
            messages_dropped: report.messages_dropped,
            tokens_after: report.tokens_after,
            turns_dropped: report.turns_dropped,
        }),
    };
    Prepared {
        params,
        prices,
        request: Some(request),
        error: None,
        sources,
        counted_prompt_tokens: Some(counted),
        sent: Some(sent),
    }
}

/// Calls one prepared model; a streamed call's events name it `shown` (its
/// label in a blind run).
async fn call_one(
    configured: &PracticeModel,
    prepared: Prepared,
    events: Option<Streaming>,
    shown: &str,
) -> Outcome {
    let model = &configured.model;
    let Prepared {
        request,
        error,
        sources,
        counted_prompt_tokens,
        sent,
        ..
    } = prepared;
    let (Some(request), Some(counted)) = (request, counted_prompt_tokens) else {
        return Outcome {
            reply: None,
            error,
            latency_ms: 0,
            sources,
            counted_prompt_tokens: None,
            sent,
        };
    };
    let started = Instant::now();
    let reply = match events {
        Some(Streaming { events, stop }) => {
            // Deltas go on to `events` as they come (its reader coalesces what
            // a slow client has not taken yet, see sluice-http), so the model
            // is never held back by a client.
            let mut streamed = configured.stream(request, DELTAS_IN_FLIGHT);
            // A blind run's answers are stopped by their labels.
            let stopped = async {
                tokio::select! {
                    () = stop.stopped(configured.provider.name()) => {}
                    () = stop.stopped(shown) => {}
                }
            };
            tokio::pin!(stopped);
            let mut text = String::new();
            let stopped = loop {
                tokio::select! {
                    delta = streamed.next() => match delta {
                        Some(delta) => {
                            text.push_str(&delta);
                            let _ = events.send(RunEvent::Token {
                                model_name: shown.to_string(),
                                text: delta,
                            });
                        }
                        None => break false,
                    },
                    () = &mut stopped => break true,
                }
            };
            if stopped {
                // Dropping the call closes its connection, so the upstream
                // stops generating; what is stored is exactly the text the
                // client has seen.
                drop(streamed);
                Ok(ChatReply {
                    // The upstream never sent its counts: ours, with the
                    // model's own profile, stand in for them.
                    usage: stopped_usage(model, counted, &text),
                    text,
                    finish_reason: Some(STOPPED.to_string()),
                    upstream_id: None,
                    attempts: 1,
                })
            } else {
                streamed.finish().await
            }
        }
        None => configured.call(&request).await,
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    match reply {
        Ok(reply) => Outcome {
            reply: Some(reply),
            error: None,
            latency_ms,
            sources,
            counted_prompt_tokens: Some(counted),
            sent,
        },
        Err(e) => Outcome {
            reply: None,
            error: Some(model_error(&e)),
            latency_ms,
            sources,
            counted_prompt_tokens: Some(counted),
            sent,
        },
    }
}

/// Token counts of a stopped answer, counted by sluice.
fn stopped_usage(model: &Model, prompt: usize, text: &str) -> crate::provider::TokenUsage {
    let completion = model.tokenizer().count(text) as u64;
    crate::provider::TokenUsage {
        prompt_tokens: prompt as u64,
        completion_tokens: completion,
        total_tokens: prompt as u64 + completion,
    }
}

/// Tells a streaming client that the checks passed and the models are called.
pub(super) fn started(events: &Option<Streaming>, plan: &Plan) {
    if let Some(streaming) = events {
        let mut model_names = plan.shown.clone();
        if plan.settings.blind {
            // Labels in label order, as the answer will list them.
            model_names.sort();
        }
        let _ = streaming.events.send(RunEvent::Started { model_names });
    }
}

/// A provider error as stored and returned: kind, message, upstream status.
fn model_error(e: &ProviderError) -> ModelError {
    let kind = match e {
        ProviderError::Timeout { .. } => ModelErrorKind::Timeout,
        ProviderError::RateLimited { .. } => ModelErrorKind::RateLimited,
        ProviderError::Upstream4xx { .. } => ModelErrorKind::Upstream4xx,
        ProviderError::Upstream5xx { .. } => ModelErrorKind::Upstream5xx,
        ProviderError::Transport { .. } => ModelErrorKind::Transport,
        ProviderError::BadResponse { .. } => ModelErrorKind::BadResponse,
        ProviderError::TooLarge { .. } => ModelErrorKind::TooLarge,
    };
    debug_assert_eq!(kind.as_str(), e.kind());
    ModelError {
        kind,
        message: e.to_string(),
        status: e.status(),
    }
}
