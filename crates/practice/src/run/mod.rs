//! Running a practice turn: resolve the class, models, agent, project,
//! knowledge and few-shot examples; build the prompt; check it with the router;
//! trim it per model; call every model at once, each with its own deadline; and
//! store the turn with every result in one transaction.

mod blind;
mod call;
mod output;
mod stop;

pub use crate::chat::PracticeModel;
pub use output::{RunEvent, RunResponse};
pub use stop::{STOPPED, StopSignal, Streaming};

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::Profiles;
use sluice_router::Router;

use self::blind::{concealed_order, shuffled};
use self::call::{Prepared, all_failed, started};
use crate::budget::{Clock, SystemClock};
use crate::chat::{self, Refusal};
use crate::contract::TurnSettings;
use crate::error::{PracticeError, Result};
use crate::prompt;
use crate::provider::Provider;
use crate::request::RunRequest;
use crate::store::{
    Agent, CallUsage, Class, NewSession, NewTurn, Reservation, RunUsage, SearchHit, SessionDetail,
    Store, User,
};

/// Passages retrieved per turn, before packing into the token budget.
const RETRIEVED: usize = 8;
/// Deltas a streamed call may have read ahead of their forwarding.
const DELTAS_IN_FLIGHT: usize = 64;

/// The practice service: the store, the configured models and the router that
/// checks prompts. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Practice {
    store: Store,
    models: Arc<BTreeMap<String, PracticeModel>>,
    router: Option<Arc<Router>>,
    clock: Arc<dyn Clock>,
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
    settings: TurnSettings,
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
                    crate::provider::ProviderKind::Openai
                    | crate::provider::ProviderKind::Local => "o200k".into(),
                    crate::provider::ProviderKind::Clova => "HCX-005".into(),
                },
            };
            // A local model with no profile configured counts with its own
            // tokenizer and context (8,192 for SmolLM2), so it is never sent a
            // prompt it refuses.
            let own = match provider.config().profile {
                None => provider.own_model(),
                Some(_) => None,
            };
            let model = match own {
                Some(own) => own,
                None => profiles
                    .model(&profile)
                    .map_err(|e| format!("model {name:?}: profile {profile:?}: {e}"))?,
            };
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
            domain = Some(match chat::check(router, &request.prompt_text) {
                Ok(domain) => domain,
                Err(Refusal::Blocked(blocked)) => {
                    return Err(PracticeError::Blocked(blocked));
                }
                Err(refusal) => return Err(PracticeError::BadRequest(refusal.to_string())),
            });
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
        let mut settings = TurnSettings {
            agent_id: agent.as_ref().map(|a| a.id),
            blind: false,
            blind_order: None,
            domain: Some(domain),
            few_shot_example_ids: request.few_shot_example_ids.clone(),
            generation_params: request.generation_params.clone(),
            knowledge_ids: knowledge_ids.to_vec(),
            model_names: models.clone(),
            style_params: request.style_params.clone(),
            style_preset: preset.unwrap_or("balanced"),
        };
        let shown = if request.blind {
            let order = shuffled(&models)?;
            let labels = crate::store::blind_labels(models.len());
            let shown = models
                .iter()
                .map(|m| labels[order.iter().position(|o| o == m).expect("a permutation")].clone())
                .collect();
            settings.blind = true;
            settings.blind_order = Some(order);
            shown
        } else {
            models.clone()
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
