//! The request bodies of the practice API, checked field by field (see
//! [`validate`](crate::validate)) into typed values.

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::contract::{FORMATS, GenerationParams, LENGTH_PRESETS, STYLE_PRESETS, StyleParams};
use crate::error::Result;
use crate::store::{AgentInput, FewShotInput, KnowledgeInput, ProjectInput};
use crate::validate::{Checker, at};

/// Longest prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 100_000;
/// Longest free text of a library object (instructions, examples), in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Most models in one run.
pub const MAX_MODELS: usize = 8;
/// Most ids in one list (knowledge bases, few-shot examples).
pub const MAX_IDS: usize = 50;

/// A run (`POST /user/practice/sessions/run`) or the next turn of a session
/// (`POST /user/practice/sessions/{id}/chat`).
///
/// A server reads one from JSON with [`RunRequest::parse`]; a program builds
/// one with [`RunRequest::new`], sets its fields, and checks it with
/// [`RunRequest::validate`], which refuses what `parse` refuses, with the same
/// errors. It serializes as the body `parse` reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunRequest {
    /// The prompt, trimmed, non-empty.
    pub prompt_text: String,
    /// Logical model names; `None` means the class's primary model (or, on a
    /// continuation, the session's models).
    pub model_names: Option<Vec<String>>,
    /// The agent whose instructions and defaults to use.
    pub agent_id: Option<i64>,
    /// The project the session goes in (run only).
    pub project_id: Option<i64>,
    /// Knowledge bases to search (run only: a session keeps them).
    pub knowledge_ids: Vec<i64>,
    /// The style preset.
    pub style_preset: Option<&'static str>,
    /// The style's details.
    pub style_params: StyleParams,
    /// Generation parameters.
    pub generation_params: GenerationParams,
    /// Few-shot examples, in order.
    pub few_shot_example_ids: Vec<i64>,
    /// A blind comparison: the answers are labelled `A`, `B`, … in a random
    /// order and the models are named only after a vote (needs two or more
    /// models).
    pub blind: bool,
}

fn body_loc() -> Vec<Value> {
    vec![Value::from("body")]
}

/// Parses `style_params` at `loc` into `out`.
pub fn parse_style_params(check: &mut Checker, value: &Value, loc: &[Value]) -> StyleParams {
    const KEYS: [&str; 5] = [
        "format",
        "persona",
        "hint_mode",
        "self_check",
        "system_prompt",
    ];
    let Some(map) = check.object(value, loc) else {
        return StyleParams::default();
    };
    check.no_unknown(map, &KEYS, loc);
    StyleParams {
        format: check.choice(map, "format", loc, &FORMATS),
        persona: check.string(map, "persona", loc, 0..=2_000, true),
        hint_mode: check.boolean(map, "hint_mode", loc),
        self_check: check.boolean(map, "self_check", loc),
        system_prompt: check.string(map, "system_prompt", loc, 0..=MAX_TEXT_CHARS, true),
    }
}

/// Parses `generation_params` at `loc`.
pub fn parse_generation_params(
    check: &mut Checker,
    value: &Value,
    loc: &[Value],
) -> GenerationParams {
    const KEYS: [&str; 6] = [
        "temperature",
        "top_p",
        "response_length_preset",
        "max_completion_tokens",
        "max_tokens",
        "seed",
    ];
    let Some(map) = check.object(value, loc) else {
        return GenerationParams::default();
    };
    check.no_unknown(map, &KEYS, loc);
    let max_completion = check.int(map, "max_completion_tokens", loc, 1, i64::from(u32::MAX));
    let max_tokens = check.int(map, "max_tokens", loc, 1, i64::from(u32::MAX));
    // One setting under two names, as OpenAI has it: `max_completion_tokens`
    // is the current name and wins when both are given.
    let max = max_completion.or(max_tokens);
    let preset = check.choice(map, "response_length_preset", loc, &LENGTH_PRESETS);
    if preset == Some("custom") && max.is_none() {
        custom_needs_max(check, loc);
    }
    GenerationParams {
        temperature: check.float(map, "temperature", loc, 0.0, 2.0),
        top_p: check.float(map, "top_p", loc, 0.0, 1.0),
        response_length_preset: preset,
        max_tokens: max.map(|m| m as u32),
        seed: check.int(map, "seed", loc, 0, i64::MAX).map(|s| s as u64),
    }
}

impl RunRequest {
    /// A run of `prompt_text` with every other field at its default (the
    /// class's primary model, no agent, no knowledge, the balanced style).
    pub fn new(prompt_text: impl Into<String>) -> Self {
        Self {
            prompt_text: prompt_text.into(),
            ..Self::default()
        }
    }

    /// Checks a request built in code as [`parse`](Self::parse) checks a body
    /// (`continuation` as there), with the same errors at the same
    /// locations, and normalizes it as `parse` does: the prompt and texts
    /// trimmed, lists without duplicates, no model names meaning the default.
    pub fn validate(self, continuation: bool) -> Result<Self> {
        let loc = body_loc();
        let mut check = Checker::new();
        if continuation {
            if !self.knowledge_ids.is_empty() {
                check.extra(at(&loc, "knowledge_ids"));
            }
            if self.project_id.is_some() {
                check.extra(at(&loc, "project_id"));
            }
        }
        let prompt = check.text(
            &self.prompt_text,
            at(&loc, "prompt_text"),
            1..=MAX_PROMPT_CHARS,
            true,
        );
        let model_names = self.model_names.map(|names| {
            let mut out = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                check.list_item(name, at(&at(&loc, "model_names"), i), 200, &mut out);
            }
            out
        });
        let ids = |check: &mut Checker, key: &str, given: &[i64]| {
            let mut out = Vec::with_capacity(given.len());
            for (i, &id) in given.iter().enumerate() {
                check.list_id(id, at(&at(&loc, key), i), &mut out);
            }
            out
        };
        let knowledge_ids = ids(&mut check, "knowledge_ids", &self.knowledge_ids);
        let few_shot_example_ids = ids(
            &mut check,
            "few_shot_example_ids",
            &self.few_shot_example_ids,
        );
        check_lengths(
            &mut check,
            &loc,
            model_names.as_deref(),
            &knowledge_ids,
            &few_shot_example_ids,
        );
        let id = |check: &mut Checker, key: &str, id: Option<i64>| {
            id.and_then(|id| check.in_range(id, at(&loc, key), 1, i64::MAX))
        };
        let request = RunRequest {
            prompt_text: prompt.unwrap_or_default(),
            model_names: model_names.filter(|names| !names.is_empty()),
            agent_id: id(&mut check, "agent_id", self.agent_id),
            project_id: id(&mut check, "project_id", self.project_id),
            knowledge_ids,
            style_preset: self
                .style_preset
                .and_then(|p| check.one_of(p, at(&loc, "style_preset"), &STYLE_PRESETS)),
            style_params: check_style(&mut check, self.style_params, &at(&loc, "style_params")),
            generation_params: check_generation(
                &mut check,
                self.generation_params,
                &at(&loc, "generation_params"),
            ),
            few_shot_example_ids,
            blind: self.blind,
        };
        check.finish()?;
        Ok(request)
    }

    /// Checks a run's body (`continuation: false`) or a next turn's (`true`:
    /// `project_id` and `knowledge_ids` belong to the session and are refused).
    pub fn parse(body: &Value, continuation: bool) -> Result<Self> {
        const RUN: [&str; 10] = [
            "prompt_text",
            "model_names",
            "agent_id",
            "project_id",
            "knowledge_ids",
            "style_preset",
            "style_params",
            "generation_params",
            "few_shot_example_ids",
            "blind",
        ];
        let loc = body_loc();
        let mut check = Checker::new();
        let map = object_body(body)?;
        let allowed: Vec<&str> = RUN
            .iter()
            .copied()
            .filter(|k| !continuation || !matches!(*k, "project_id" | "knowledge_ids"))
            .collect();
        check.no_unknown(map, &allowed, &loc);
        let prompt = check.string(map, "prompt_text", &loc, 1..=MAX_PROMPT_CHARS, true);
        let prompt = check.required(
            prompt,
            map.get("prompt_text").is_some_and(|v| !v.is_null()),
            at(&loc, "prompt_text"),
        );
        let model_names = check.string_list(map, "model_names", &loc, 200);
        let knowledge_ids = check
            .id_list(map, "knowledge_ids", &loc)
            .unwrap_or_default();
        let few_shot_example_ids = check
            .id_list(map, "few_shot_example_ids", &loc)
            .unwrap_or_default();
        check_lengths(
            &mut check,
            &loc,
            model_names.as_deref(),
            &knowledge_ids,
            &few_shot_example_ids,
        );
        let request = RunRequest {
            prompt_text: prompt.unwrap_or_default(),
            // An empty list means the same as null: the default models.
            model_names: model_names.filter(|names| !names.is_empty()),
            agent_id: check.int(map, "agent_id", &loc, 1, i64::MAX),
            project_id: check.int(map, "project_id", &loc, 1, i64::MAX),
            knowledge_ids,
            style_preset: check.choice(map, "style_preset", &loc, &STYLE_PRESETS),
            style_params: match map.get("style_params") {
                None | Some(Value::Null) => StyleParams::default(),
                Some(v) => parse_style_params(&mut check, v, &at(&loc, "style_params")),
            },
            generation_params: match map.get("generation_params") {
                None | Some(Value::Null) => GenerationParams::default(),
                Some(v) => parse_generation_params(&mut check, v, &at(&loc, "generation_params")),
            },
            few_shot_example_ids,
            blind: check.boolean(map, "blind", &loc).unwrap_or(false),
        };
        check.finish()?;
        Ok(request)
    }
}

/// The counts `parse` and `validate` refuse: more than [`MAX_MODELS`] models,
/// more than [`MAX_IDS`] ids in a list.
fn check_lengths(
    check: &mut Checker,
    loc: &[Value],
    model_names: Option<&[String]>,
    knowledge_ids: &[i64],
    few_shot_example_ids: &[i64],
) {
    for (key, n, max) in [
        (
            "model_names",
            model_names.map_or(0, <[String]>::len),
            MAX_MODELS,
        ),
        ("knowledge_ids", knowledge_ids.len(), MAX_IDS),
        ("few_shot_example_ids", few_shot_example_ids.len(), MAX_IDS),
    ] {
        if n > max {
            check.error(
                at(loc, key),
                "too_long",
                format!("List should have at most {max} items after validation, not {n}"),
            );
        }
    }
}

/// `style_params` given in code, checked as [`parse_style_params`] checks them.
fn check_style(check: &mut Checker, style: StyleParams, loc: &[Value]) -> StyleParams {
    let text = |check: &mut Checker, key: &str, s: Option<String>, max: usize| {
        s.and_then(|s| check.text(&s, at(loc, key), 0..=max, true))
    };
    StyleParams {
        format: style
            .format
            .and_then(|f| check.one_of(f, at(loc, "format"), &FORMATS)),
        hint_mode: style.hint_mode,
        persona: text(check, "persona", style.persona, 2_000),
        self_check: style.self_check,
        system_prompt: text(check, "system_prompt", style.system_prompt, MAX_TEXT_CHARS),
    }
}

/// `generation_params` given in code, checked as [`parse_generation_params`]
/// checks them.
fn check_generation(
    check: &mut Checker,
    params: GenerationParams,
    loc: &[Value],
) -> GenerationParams {
    let max_tokens = params
        .max_tokens
        .and_then(|m| check.in_range(i64::from(m), at(loc, "max_tokens"), 1, i64::MAX))
        .map(|m| m as u32);
    let preset = params
        .response_length_preset
        .and_then(|p| check.one_of(p, at(loc, "response_length_preset"), &LENGTH_PRESETS));
    if preset == Some("custom") && max_tokens.is_none() {
        custom_needs_max(check, loc);
    }
    let temperature = params
        .temperature
        .and_then(|t| check.number(t, at(loc, "temperature"), 0.0, 2.0));
    let top_p = params
        .top_p
        .and_then(|p| check.number(p, at(loc, "top_p"), 0.0, 1.0));
    let seed = params.seed.and_then(|s| match i64::try_from(s) {
        Ok(n) => check
            .in_range(n, at(loc, "seed"), 0, i64::MAX)
            .map(|n| n as u64),
        Err(_) => {
            let max = i64::MAX;
            let msg = format!("Input should be less than or equal to {max}");
            check.error(at(loc, "seed"), "less_than_equal", msg);
            None
        }
    });
    GenerationParams {
        max_tokens,
        response_length_preset: preset,
        seed,
        temperature,
        top_p,
    }
}

fn custom_needs_max(check: &mut Checker, loc: &[Value]) {
    check.error(
        at(loc, "response_length_preset"),
        "value_error",
        "Value error, response_length_preset 'custom' needs max_completion_tokens or max_tokens",
    );
}

/// `body` over `base`: the keys of a partial update laid over the stored object.
fn overlay(base: Value, body: &Value) -> Value {
    match (base, body) {
        (Value::Object(mut base), Value::Object(patch)) => {
            for (k, v) in patch {
                base.insert(k.clone(), v.clone());
            }
            Value::Object(base)
        }
        (_, body) => body.clone(),
    }
}

/// The body as an object, or pydantic's `model_attributes_type` error.
fn object_body(body: &Value) -> Result<&Map<String, Value>> {
    let mut check = Checker::new();
    let map = check.object(body, &body_loc());
    check.finish()?;
    Ok(map.expect("an object when there is no error"))
}

fn required_string(check: &mut Checker, map: &Map<String, Value>, key: &str, max: usize) -> String {
    check
        .required_string(map, key, &body_loc(), 1..=max, true)
        .unwrap_or_default()
}

/// An agent's body: `name` (1..=100), `instructions`, and optional `model_name`,
/// `style_preset`, `style_params`, `generation_params`, `class_id`.
pub fn parse_agent(body: &Value, base: Option<Value>) -> Result<AgentInput> {
    const KEYS: [&str; 7] = [
        "name",
        "instructions",
        "model_name",
        "style_preset",
        "style_params",
        "generation_params",
        "class_id",
    ];
    let mut check = Checker::new();
    let loc = body_loc();
    check.no_unknown(object_body(body)?, &KEYS, &loc);
    let merged = base.map_or_else(|| body.clone(), |b| overlay(b, body));
    let map = merged.as_object().expect("an object over an object");
    let input = AgentInput {
        name: required_string(&mut check, map, "name", 100),
        instructions: check
            .string(map, "instructions", &loc, 0..=MAX_TEXT_CHARS, true)
            .unwrap_or_default(),
        model_name: check.string(map, "model_name", &loc, 1..=200, true),
        style_preset: check
            .choice(map, "style_preset", &loc, &STYLE_PRESETS)
            .map(str::to_string),
        style_params: map
            .get("style_params")
            .filter(|v| !v.is_null())
            .map(|v| parse_style_params(&mut check, v, &at(&loc, "style_params"))),
        generation_params: map
            .get("generation_params")
            .filter(|v| !v.is_null())
            .map(|v| parse_generation_params(&mut check, v, &at(&loc, "generation_params"))),
        class_id: check.int(map, "class_id", &loc, 1, i64::MAX),
    };
    check.finish()?;
    Ok(input)
}

/// A project's body: `name` (1..=200), optional `description`, `class_id`.
pub fn parse_project(body: &Value, base: Option<Value>) -> Result<ProjectInput> {
    let (name, description, class_id) = parse_named(body, base)?;
    Ok(ProjectInput {
        name,
        description,
        class_id,
    })
}

/// A knowledge base's body: `name` (1..=200), optional `description`, `class_id`.
pub fn parse_knowledge(body: &Value, base: Option<Value>) -> Result<KnowledgeInput> {
    let (name, description, class_id) = parse_named(body, base)?;
    Ok(KnowledgeInput {
        name,
        description,
        class_id,
    })
}

fn parse_named(body: &Value, base: Option<Value>) -> Result<(String, String, Option<i64>)> {
    const KEYS: [&str; 3] = ["name", "description", "class_id"];
    let mut check = Checker::new();
    let loc = body_loc();
    check.no_unknown(object_body(body)?, &KEYS, &loc);
    let merged = base.map_or_else(|| body.clone(), |b| overlay(b, body));
    let map = merged.as_object().expect("an object over an object");
    let name = required_string(&mut check, map, "name", 200);
    let description = check
        .string(map, "description", &loc, 0..=10_000, true)
        .unwrap_or_default();
    let class_id = check.int(map, "class_id", &loc, 1, i64::MAX);
    check.finish()?;
    Ok((name, description, class_id))
}

/// A few-shot example's body: `input`, `output` (non-empty), optional `note`, `class_id`.
pub fn parse_few_shot(body: &Value, base: Option<Value>) -> Result<FewShotInput> {
    const KEYS: [&str; 4] = ["input", "output", "note", "class_id"];
    let mut check = Checker::new();
    let loc = body_loc();
    check.no_unknown(object_body(body)?, &KEYS, &loc);
    let merged = base.map_or_else(|| body.clone(), |b| overlay(b, body));
    let map = merged.as_object().expect("an object over an object");
    let input = FewShotInput {
        input: required_string(&mut check, map, "input", MAX_TEXT_CHARS),
        output: required_string(&mut check, map, "output", MAX_TEXT_CHARS),
        note: check.string(map, "note", &loc, 0..=10_000, true),
        class_id: check.int(map, "class_id", &loc, 1, i64::MAX),
    };
    check.finish()?;
    Ok(input)
}

#[cfg(test)]
mod tests;
