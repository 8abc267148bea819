//! Running a practice turn: resolve the class, models, agent, project,
//! knowledge and few-shot examples; build the prompt; check it with the router;
//! trim it per model; call every model at once, each with its own deadline; and
//! store the turn with every result in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{Value, json};
use sluice_core::{Model, Profiles};
use sluice_router::{RouteRequest, Router};

use crate::budget::{Clock, SystemClock};
use crate::error::{PracticeError, Result};
use crate::prompt::{self, CONTEXT_TOKENS, EffectiveParams, Source};
use crate::provider::{ChatReply, ChatRequest, Provider, ProviderError};
use crate::request::RunRequest;
use crate::stop::{STOPPED, Streaming};
use crate::store::{
    Agent, CallUsage, Class, NewResult, NewSession, NewTurn, Reservation, RunUsage, SearchHit,
    SessionDetail, Store, StoredResult, User,
};

/// Passages retrieved per turn, before packing into the token budget.
const RETRIEVED: usize = 8;
/// Deltas a streamed call may have read ahead of their forwarding.
const DELTAS_IN_FLIGHT: usize = 64;

/// One configured model: its provider and the profile that counts and trims for it.
#[derive(Debug, Clone)]
pub struct PracticeModel {
    /// The client.
    pub provider: Arc<Provider>,
    /// The tokenizer, context limit and template of the model.
    pub model: Arc<Model>,
}

/// The practice service: the store, the configured models and the router that
/// checks prompts. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Practice {
    store: Store,
    models: Arc<BTreeMap<String, PracticeModel>>,
    router: Option<Arc<Router>>,
    clock: Arc<dyn Clock>,
}

/// Something that happened during a streamed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// Every check passed (membership, ids, models, the router) and the models
    /// are being called. Until this event, a failure means nothing was created.
    Started {
        /// The models called, in the order of the results.
        model_names: Vec<String>,
    },
    /// A piece of one model's answer.
    Token {
        /// The logical model name.
        model_name: String,
        /// The text delta.
        text: String,
    },
    /// One model finished (its result is not stored yet).
    ModelDone {
        /// The logical model name.
        model_name: String,
        /// `None` when it succeeded.
        error: Option<Value>,
        /// Why it stopped: the upstream's reason, or `stopped` when stopped
        /// by the client.
        finish_reason: Option<String>,
    },
}

/// The answer to a run or a next turn: the seed's response body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResponse {
    /// The session.
    pub session_id: i64,
    /// The session's class (not part of the answer's body).
    #[serde(skip)]
    pub class_id: i64,
    /// The prompt as stored.
    pub prompt_text: String,
    /// One per model, in the order of `model_names`; the first is primary.
    pub results: Vec<StoredResult>,
    /// The session's title.
    pub session_title: Option<String>,
    /// The turn's id (votes name it).
    pub turn_id: i64,
    /// True for a blind comparison: `results` are in label order, each with
    /// its `label`, and name no model until the turn has a vote.
    pub blind: bool,
    /// The model of each result, in the order of `results`, even when the
    /// answer conceals it: for the server's own accounting, never sent.
    #[serde(skip)]
    pub model_names: Vec<String>,
}

/// Why the router refused a prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    /// The domain the prompt was put in.
    pub domain: String,
    /// The content filters that hit.
    pub content_filters: Vec<String>,
    /// The safety categories that hit.
    pub safety: Vec<String>,
}

/// Everything resolved for one turn, before any model is called.
struct Plan {
    prompt_text: String,
    models: Vec<String>,
    agent: Option<Agent>,
    few_shots: Vec<(String, String)>,
    hits: Vec<SearchHit>,
    /// The chosen preset: the request's, else the agent's; `None` is balanced
    /// without overriding the agent's parameters.
    preset: Option<&'static str>,
    settings: Value,
    /// Per model (in the order of `models`), the name shown while the run
    /// streams: the model's own, or its label in a blind run.
    shown: Vec<String>,
}

impl Practice {
    /// The service over `store`, with `models` by logical name and an optional
    /// router that checks every prompt before a model is called.
    pub fn new(
        store: Store,
        models: BTreeMap<String, PracticeModel>,
        router: Option<Arc<Router>>,
    ) -> Self {
        // Models with a global limit keep its slots in this store.
        for model in models.values() {
            model.provider.attach_store(&store);
        }
        Self {
            store,
            models: Arc::new(models),
            router,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same service with budget periods read from `clock` (default: the
    /// system's clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock budget periods are read from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Builds the models of a config: each provider with the profile named by
    /// its `profile` (default: the logical name when it is a profile, else
    /// `o200k` for OpenAI-compatible servers and local models, `HCX-005` for CLOVA).
    pub fn models_from(
        providers: Vec<Provider>,
        profiles: &Profiles,
    ) -> std::result::Result<BTreeMap<String, PracticeModel>, String> {
        let mut models = BTreeMap::new();
        for provider in providers {
            let name = provider.name().to_string();
            let profile = match &provider.config().profile {
                Some(p) => p.clone(),
                None if profiles.get(&name).is_ok() => name.clone(),
                None => match provider.config().provider {
                    // No built-in profile has a GGUF model's tokenizer; a local
                    // model's own counts come back as the reply's usage.
                    crate::provider::ProviderKind::Openai
                    | crate::provider::ProviderKind::Local => "o200k".into(),
                    crate::provider::ProviderKind::Clova => "HCX-005".into(),
                },
            };
            let model = profiles
                .model(&profile)
                .map_err(|e| format!("model {name:?}: profile {profile:?}: {e}"))?;
            models.insert(
                name,
                PracticeModel {
                    provider: Arc::new(provider),
                    model: Arc::new(model),
                },
            );
        }
        Ok(models)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configured model names.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// A configured model: its provider and profile.
    pub fn model(&self, name: &str) -> Option<&PracticeModel> {
        self.models.get(name)
    }

    /// The router that checks prompts, if any.
    pub fn router(&self) -> Option<&Arc<Router>> {
        self.router.as_ref()
    }

    /// `POST /user/practice/sessions/run?class_id=N`: a new session with its first turn.
    pub async fn run(
        &self,
        user: &User,
        class_id: i64,
        request: &RunRequest,
        events: Option<Streaming>,
    ) -> Result<RunResponse> {
        let (class, _) = self.store.class_for_member(class_id, user.id).await?;
        if let Some(project_id) = request.project_id {
            self.store.project(user.id, project_id).await?;
        }
        let agent = match request.agent_id {
            Some(id) => Some(self.store.agent(user.id, id).await?),
            None => None,
        };
        let models = match &request.model_names {
            Some(names) => names.clone(),
            None => vec![
                agent
                    .as_ref()
                    .and_then(|a| a.model_name.clone())
                    .filter(|m| class.models.contains(m))
                    .unwrap_or_else(|| class.primary_model.clone()),
            ],
        };
        let plan = self
            .plan(user, &class, request, models, agent, &request.knowledge_ids)
            .await?;
        let history = BTreeMap::new();
        let calls = self.prepare_calls(&plan, request, &history);
        let reservation = self.reserve(class_id, user.id, &calls).await?;
        started(&events, &plan);
        let (results, usage) = self.call_models(&plan, calls, events).await;
        let title = prompt::session_title(&plan.prompt_text);
        let session = NewSession {
            user_id: user.id,
            class_id,
            project_id: request.project_id,
            agent_id: request.agent_id,
            title: Some(title.clone()),
            knowledge_ids: request.knowledge_ids.clone(),
        };
        let stored = match all_failed(&results) {
            Some(e) => Err(e),
            None => {
                let turn = NewTurn {
                    prompt_text: plan.prompt_text.clone(),
                    settings: plan.settings,
                    results,
                };
                self.store.create_session(&session, &turn).await
            }
        };
        let session_id = stored.as_ref().ok().map(|(id, _)| *id);
        self.settle(&reservation, usage, session_id, request.agent_id)
            .await;
        let (session_id, mut stored) = stored?;
        let model_names = concealed_order(&mut stored);
        Ok(RunResponse {
            model_names,
            session_id,
            class_id,
            prompt_text: plan.prompt_text,
            turn_id: stored.turn_id,
            blind: stored.revealed.is_some(),
            results: stored.results,
            session_title: Some(title),
        })
    }

    /// `POST /user/practice/sessions/{id}/chat`: the next turn. Each model sees
    /// its own earlier answers (trimmed with its own profile); `model_names`
    /// defaults to the session's models.
    pub async fn chat(
        &self,
        user: &User,
        session_id: i64,
        request: &RunRequest,
        events: Option<Streaming>,
    ) -> Result<RunResponse> {
        let session = self.store.session(user.id, session_id).await?;
        let (class, _) = self
            .store
            .class_for_member(session.summary.class_id, user.id)
            .await?;
        let agent_id = request.agent_id.or(session.summary.agent_id);
        let agent = match agent_id {
            Some(id) => Some(self.store.agent(user.id, id).await?),
            None => None,
        };
        let models = match &request.model_names {
            Some(names) => names.clone(),
            None => session
                .summary
                .models
                .iter()
                .map(|m| m.model_name.clone())
                .collect(),
        };
        // A base deleted (or unshared) since the session began is left out
        // rather than failing every later turn of the session.
        let mut knowledge_ids = Vec::with_capacity(session.summary.knowledge_ids.len());
        for &id in &session.summary.knowledge_ids {
            match self.store.knowledge(user.id, id).await {
                Ok(_) => knowledge_ids.push(id),
                Err(PracticeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let plan = self
            .plan(user, &class, request, models, agent, &knowledge_ids)
            .await?;
        let history = own_history(&session);
        let calls = self.prepare_calls(&plan, request, &history);
        let reservation = self.reserve(class.id, user.id, &calls).await?;
        started(&events, &plan);
        let (results, usage) = self.call_models(&plan, calls, events).await;
        let stored = match all_failed(&results) {
            Some(e) => Err(e),
            None => {
                let turn = NewTurn {
                    prompt_text: plan.prompt_text.clone(),
                    settings: plan.settings,
                    results,
                };
                self.store.append_turn(user.id, session_id, &turn).await
            }
        };
        let stored_in = stored.as_ref().ok().map(|_| session_id);
        self.settle(&reservation, usage, stored_in, agent_id).await;
        let mut stored = stored?;
        let model_names = concealed_order(&mut stored);
        Ok(RunResponse {
            model_names,
            session_id,
            class_id: class.id,
            prompt_text: plan.prompt_text,
            turn_id: stored.turn_id,
            blind: stored.revealed.is_some(),
            results: stored.results,
            session_title: session.summary.session_title,
        })
    }

    /// Resolves everything a turn needs and checks the prompt with the router.
    async fn plan(
        &self,
        user: &User,
        class: &Class,
        request: &RunRequest,
        models: Vec<String>,
        agent: Option<Agent>,
        knowledge_ids: &[i64],
    ) -> Result<Plan> {
        for name in &models {
            if !class.models.contains(name) {
                return Err(PracticeError::BadRequest(format!(
                    "model {name:?} is not allowed in this class (allowed: {})",
                    class.models.join(", ")
                )));
            }
            if !self.models.contains_key(name) {
                let configured = if self.models.is_empty() {
                    "none".to_string()
                } else {
                    self.models.keys().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(PracticeError::BadRequest(format!(
                    "model {name:?} is not configured on this server (configured: {configured}); \
                     models are the [models.NAME] tables of the config file that `sluice serve \
                     --config FILE` (or `sluice practice run --config FILE`) reads, and one whose \
                     api_key_env variable is unset is skipped at start-up"
                )));
            }
        }
        let mut few_shots = Vec::with_capacity(request.few_shot_example_ids.len());
        for &id in &request.few_shot_example_ids {
            let shot = self.store.few_shot(user.id, id).await?;
            few_shots.push((shot.input, shot.output));
        }
        for &id in knowledge_ids {
            self.store.knowledge(user.id, id).await?;
        }
        if request.blind && models.len() < 2 {
            return Err(PracticeError::BadRequest(
                "a blind comparison needs two or more models (model_names)".into(),
            ));
        }
        let mut domain: Option<String> = None;
        if let Some(router) = &self.router {
            let routed = router
                .route(&RouteRequest::new(request.prompt_text.as_str()))
                .map_err(|e| {
                    PracticeError::BadRequest(format!("the router cannot check the prompt: {e}"))
                })?;
            if !routed.blocked_content.result.is_empty() || !routed.safety.result.is_empty() {
                let blocked = Blocked {
                    domain: routed.domain.result,
                    content_filters: routed.blocked_content.result,
                    safety: routed.safety.result,
                };
                return Err(PracticeError::Blocked(
                    serde_json::to_value(blocked).expect("serializable"),
                ));
            }
            domain = Some(routed.domain.result);
        }
        let hits = if knowledge_ids.is_empty() {
            Vec::new()
        } else {
            self.store
                .search_unchecked(knowledge_ids, &request.prompt_text, RETRIEVED)
                .await?
        };
        let preset = request.style_preset.or_else(|| {
            agent
                .as_ref()
                .and_then(|a| a.style_preset.as_deref())
                .and_then(|p| {
                    crate::request::STYLE_PRESETS
                        .iter()
                        .find(|s| **s == p)
                        .copied()
                })
        });
        let settings = json!({
            "model_names": models,
            "agent_id": agent.as_ref().map(|a| a.id),
            "knowledge_ids": knowledge_ids,
            "few_shot_example_ids": request.few_shot_example_ids,
            "style_preset": preset.unwrap_or("balanced"),
            "style_params": request.style_params,
            "generation_params": request.generation_params,
            "domain": domain,
        });
        let (settings, shown) = if request.blind {
            let order = shuffled(&models)?;
            let labels = crate::store::blind_labels(models.len());
            let shown = models
                .iter()
                .map(|m| labels[order.iter().position(|o| o == m).expect("a permutation")].clone())
                .collect();
            let mut settings = settings;
            settings["blind"] = Value::Bool(true);
            settings["blind_order"] = json!(order);
            (settings, shown)
        } else {
            (settings, models.clone())
        };
        Ok(Plan {
            shown,
            prompt_text: request.prompt_text.clone(),
            models,
            agent,
            few_shots,
            hits,
            preset,
            settings,
        })
    }

    /// Builds, trims and counts what every model of the plan will be sent.
    fn prepare_calls(
        &self,
        plan: &Plan,
        request: &RunRequest,
        history: &BTreeMap<String, Vec<(String, String)>>,
    ) -> Vec<Prepared> {
        let style = if request.style_params == Default::default() {
            prompt::stored_style(plan.agent.as_ref().and_then(|a| a.style_params.as_ref()))
        } else {
            request.style_params.clone()
        };
        let agent_params = prompt::stored_params(
            plan.agent
                .as_ref()
                .and_then(|a| a.generation_params.as_ref()),
        );
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

    /// Reserves the worst case of `calls` (every prompt as counted plus every
    /// answer's maximum) against the budgets of the class and the student.
    async fn reserve(
        &self,
        class_id: i64,
        user_id: i64,
        calls: &[Prepared],
    ) -> Result<Reservation> {
        let (mut tokens, mut cost) = (0i64, 0.0);
        for call in calls {
            if let (Some(counted), Some(request)) = (call.counted_prompt_tokens, &call.request) {
                let answer = u64::from(request.max_tokens);
                tokens += counted as i64 + answer as i64;
                cost += crate::budget::cost(call.prices, counted as u64, answer).unwrap_or(0.0);
            }
        }
        self.store
            .reserve(class_id, user_id, tokens, cost, self.clock.now_ms())
            .await
    }

    /// Settles a reservation with what the run used. A failure is logged and
    /// leaves the reservation standing: a run that cannot be settled keeps
    /// counting its worst case, so a budget never counts less than was used.
    async fn settle(
        &self,
        reservation: &Reservation,
        calls: Vec<CallUsage>,
        session_id: Option<i64>,
        agent_id: Option<i64>,
    ) {
        let usage = RunUsage {
            session_id,
            agent_id,
            calls,
        };
        if let Err(e) = self
            .store
            .settle(reservation, &usage, self.clock.now_ms())
            .await
        {
            tracing::warn!(error = %e, run = reservation.id, "usage not settled; the reservation stands");
        }
    }

    /// Calls every prepared model at once and collects the results in order,
    /// with what each call used.
    async fn call_models(
        &self,
        plan: &Plan,
        calls: Vec<Prepared>,
        events: Option<Streaming>,
    ) -> (Vec<NewResult>, Vec<CallUsage>) {
        let calls = plan.models.iter().zip(calls).enumerate().map(|(i, (name, prepared))| {
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
                        finish_reason: outcome.reply.as_ref().and_then(|r| r.finish_reason.clone()),
                    });
                }
                let (prompt_tokens, completion_tokens) = outcome
                    .reply
                    .as_ref()
                    .map_or((0, 0), |r| (r.usage.prompt_tokens, r.usage.completion_tokens));
                let usage = CallUsage {
                    model_name: name.clone(),
                    prompt_tokens: prompt_tokens as i64,
                    completion_tokens: completion_tokens as i64,
                    error_kind: outcome
                        .error
                        .as_ref()
                        .map(|e| e["kind"].as_str().unwrap_or("error").to_string()),
                    latency_ms: outcome.latency_ms,
                    cost: crate::budget::cost(prices, prompt_tokens, completion_tokens),
                };
                let result = NewResult {
                    model_name: name.clone(),
                    is_primary: i == 0,
                    response_text: outcome.reply.as_ref().map(|r| r.text.clone()),
                    error: outcome.error,
                    token_usage: json!({
                        "prompt_tokens": outcome.reply.as_ref().map(|r| r.usage.prompt_tokens),
                        "completion_tokens": outcome.reply.as_ref().map(|r| r.usage.completion_tokens),
                        "total_tokens": outcome.reply.as_ref().map(|r| r.usage.total_tokens),
                        "counted_prompt_tokens": outcome.counted_prompt_tokens,
                        "sources": outcome.sources,
                    }),
                    latency_ms: outcome.latency_ms,
                    generation_params: serde_json::to_value(&params).expect("serializable"),
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
fn all_failed(results: &[NewResult]) -> Option<PracticeError> {
    if results.iter().all(|r| r.error.is_some()) {
        let errors = results
            .iter()
            .map(|r| json!({"model_name": r.model_name, "error": r.error, "latency_ms": r.latency_ms}))
            .collect();
        return Some(PracticeError::AllModelsFailed(errors));
    }
    None
}

/// What one model will be sent, built before any model is called so that the
/// run's worst case can be reserved first.
struct Prepared {
    params: EffectiveParams,
    prices: (Option<f64>, Option<f64>),
    /// `None` when the prompt cannot fit the model (`error` says why).
    request: Option<ChatRequest>,
    error: Option<Value>,
    sources: Vec<Source>,
    counted_prompt_tokens: Option<usize>,
    sent: Value,
}

/// What came of calling one model.
struct Outcome {
    reply: Option<ChatReply>,
    error: Option<Value>,
    latency_ms: i64,
    sources: Vec<Source>,
    counted_prompt_tokens: Option<usize>,
    sent: Value,
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
    let (kept, report) = match model.trim(&messages, i64::from(params.max_tokens)) {
        Ok(trim) => {
            let report = trim.report().clone();
            (trim.apply(messages), report)
        }
        Err(e) => {
            return Prepared {
                params,
                prices,
                request: None,
                error: Some(
                    json!({"kind": "context_exceeded", "message": e.to_string(), "status": null}),
                ),
                sources,
                counted_prompt_tokens: None,
                sent: Value::Null,
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
    let sent = json!({
        "messages": request.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect::<Vec<_>>(),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "window": {
            "messages_before": messages_before,
            "messages_dropped": report.messages_dropped,
            "turns_dropped": report.turns_dropped,
            "tokens_after": report.tokens_after,
            "max_tokens": report.max_tokens,
            "limit": report.limit,
        },
    });
    Prepared {
        params,
        prices,
        request: Some(request),
        error: None,
        sources,
        counted_prompt_tokens: Some(counted),
        sent,
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
            // Bounded like every delta channel; the receiver drains it at once
            // into `events`, whose reader coalesces what a slow client has not
            // taken yet (see sluice-http), so the model is never held back.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(DELTAS_IN_FLIGHT);
            let name = shown.to_string();
            let forward = tokio::spawn(async move {
                let mut text = String::new();
                while let Some(delta) = rx.recv().await {
                    text.push_str(&delta);
                    let _ = events.send(RunEvent::Token {
                        model_name: name.clone(),
                        text: delta,
                    });
                }
                text
            });
            // Stopping drops the call: its connection closes, so the upstream
            // stops generating, and the sender closes, so `forward` ends with
            // exactly the text the client has seen.
            let stopped = tokio::select! {
                reply = configured.provider.chat_stream(&request, tx) => Some(reply),
                // A blind run's answers are stopped by their labels.
                () = stop.stopped(configured.provider.name()) => None,
                () = stop.stopped(shown) => None,
            };
            let text = forward.await.unwrap_or_default();
            match stopped {
                Some(reply) => reply,
                None => Ok(ChatReply {
                    // The upstream never sent its counts: ours, with the
                    // model's own profile, stand in for them.
                    usage: stopped_usage(model, counted, &text),
                    text,
                    finish_reason: Some(STOPPED.to_string()),
                    upstream_id: None,
                    attempts: 1,
                }),
            }
        }
        None => configured.provider.chat(&request).await,
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
            error: Some(error_json(&e)),
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
fn started(events: &Option<Streaming>, plan: &Plan) {
    if let Some(streaming) = events {
        let mut model_names = plan.shown.clone();
        if plan.settings["blind"] == Value::Bool(true) {
            // Labels in label order, as the answer will list them.
            model_names.sort();
        }
        let _ = streaming.events.send(RunEvent::Started { model_names });
    }
}

/// Conceals a blind turn's models (see [`crate::conceal_turn`]) and returns
/// the model of each result in the order they are shown.
fn concealed_order(turn: &mut crate::store::StoredTurn) -> Vec<String> {
    let mut named: Vec<(i64, String)> = turn
        .results
        .iter()
        .map(|r| (r.response_id, r.model_name.clone()))
        .collect();
    crate::store::conceal_turn(turn, false);
    turn.results
        .iter()
        .map(|r| {
            let at = named.iter().position(|(id, _)| *id == r.response_id);
            at.map(|i| named.swap_remove(i).1).unwrap_or_default()
        })
        .collect()
}

/// `models` in a random order (a blind turn's label order), from the
/// operating system's generator: a student must not be able to predict it.
fn shuffled(models: &[String]) -> Result<Vec<String>> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed)
        .map_err(|e| PracticeError::Corrupt(format!("no random numbers: {e}")))?;
    let mut rng = crate::leaderboard::SplitMix64::new(u64::from_le_bytes(seed));
    let mut order = models.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    Ok(order)
}

/// A provider error as stored and returned: kind, message, upstream status.
pub fn error_json(e: &ProviderError) -> Value {
    json!({"kind": e.kind(), "message": e.to_string(), "status": e.status()})
}

/// Per model, the earlier turns it answered: (prompt, its answer).
fn own_history(session: &SessionDetail) -> BTreeMap<String, Vec<(String, String)>> {
    let mut history: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for turn in &session.history {
        for result in &turn.results {
            if let Some(text) = &result.response_text {
                history
                    .entry(result.model_name.clone())
                    .or_default()
                    .push((turn.prompt_text.clone(), text.clone()));
            }
        }
    }
    history
}
