//! The request bodies of the practice API, checked field by field (see
//! [`validate`](crate::validate)) into typed values.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::store::{AgentInput, FewShotInput, KnowledgeInput, ProjectInput};
use crate::validate::{Checker, at};

/// The style presets (practice-notes.md).
pub const STYLE_PRESETS: [&str; 4] = ["accurate", "balanced", "creative", "custom"];
/// `style_params.format` values.
pub const FORMATS: [&str; 4] = ["plain", "markdown", "bullets", "json"];
/// `generation_params.response_length_preset` values.
pub const LENGTH_PRESETS: [&str; 4] = ["short", "normal", "long", "custom"];

/// Longest prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 100_000;
/// Longest free text of a library object (instructions, examples), in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Most models in one run.
pub const MAX_MODELS: usize = 8;
/// Most ids in one list (knowledge bases, few-shot examples).
pub const MAX_IDS: usize = 50;

/// `style_params`: the details of a `custom` style (also honoured with a preset).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StyleParams {
    /// `plain`, `markdown`, `bullets` or `json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// Who the model speaks as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// Guide with hints and questions instead of giving the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint_mode: Option<bool>,
    /// Re-check the answer before replying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_check: Option<bool>,
    /// Extra system instructions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

/// `generation_params` as given (every field optional; precedence is applied
/// when a run resolves them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerationParams {
    /// 0..=2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// `short`, `normal`, `long` or `custom`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_length_preset: Option<&'static str>,
    /// Largest answer in tokens (`max_completion_tokens` and `max_tokens` are one value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed, where the provider supports one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A run (`POST /user/practice/sessions/run`) or the next turn of a session
/// (`POST /user/practice/sessions/{id}/chat`).
#[derive(Debug, Clone, Default, PartialEq)]
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
        check.error(
            at(loc, "response_length_preset"),
            "value_error",
            "Value error, response_length_preset 'custom' needs max_completion_tokens or max_tokens",
        );
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
        if let Some(names) = &model_names {
            if names.len() > MAX_MODELS {
                check.error(
                    at(&loc, "model_names"),
                    "too_long",
                    format!(
                        "List should have at most {MAX_MODELS} items after validation, not {}",
                        names.len()
                    ),
                );
            }
        }
        let knowledge_ids = check
            .id_list(map, "knowledge_ids", &loc)
            .unwrap_or_default();
        let few_shot_example_ids = check
            .id_list(map, "few_shot_example_ids", &loc)
            .unwrap_or_default();
        for (key, ids) in [
            ("knowledge_ids", &knowledge_ids),
            ("few_shot_example_ids", &few_shot_example_ids),
        ] {
            if ids.len() > MAX_IDS {
                check.error(
                    at(&loc, key),
                    "too_long",
                    format!(
                        "List should have at most {MAX_IDS} items after validation, not {}",
                        ids.len()
                    ),
                );
            }
        }
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
        style_params: map.get("style_params").filter(|v| !v.is_null()).map(|v| {
            let parsed = parse_style_params(&mut check, v, &at(&loc, "style_params"));
            serde_json::to_value(parsed).expect("serializable")
        }),
        generation_params: map
            .get("generation_params")
            .filter(|v| !v.is_null())
            .map(|v| {
                let parsed = parse_generation_params(&mut check, v, &at(&loc, "generation_params"));
                serde_json::to_value(parsed).expect("serializable")
            }),
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::PracticeError;

    fn locs(err: PracticeError) -> Vec<String> {
        match err {
            PracticeError::Validation(e) => e
                .iter()
                .map(|e| serde_json::to_string(&e.loc).unwrap())
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_seed_example_parses() {
        let body = json!({
            "prompt_text": "  hello  ",
            "model_names": ["a", "b", "a"],
            "agent_id": 2, "project_id": 2, "knowledge_ids": [123],
            "style_preset": "accurate", "style_params": {},
            "generation_params": {"temperature": 1, "top_p": 0.5, "response_length_preset": "short",
                                  "max_completion_tokens": 2, "max_tokens": 2},
            "few_shot_example_ids": [123]
        });
        let r = RunRequest::parse(&body, false).unwrap();
        assert_eq!(r.prompt_text, "hello");
        assert_eq!(r.model_names, Some(vec!["a".into(), "b".into()]));
        assert_eq!(r.generation_params.max_tokens, Some(2));
        assert_eq!(r.generation_params.temperature, Some(1.0));
        assert_eq!(r.style_preset, Some("accurate"));
    }

    #[test]
    fn run_errors_carry_locations() {
        let body = json!({
            "prompt_text": "  ", "agent_id": 0, "style_preset": "fast", "extra": true,
            "style_params": {"format": "html", "tone": "x"},
            "generation_params": {"temperature": 3, "top_p": -1, "max_tokens": 5, "max_completion_tokens": 6}
        });
        let locs = locs(RunRequest::parse(&body, false).unwrap_err());
        for expected in [
            r#"["body","extra"]"#,
            r#"["body","prompt_text"]"#,
            r#"["body","agent_id"]"#,
            r#"["body","style_preset"]"#,
            r#"["body","style_params","format"]"#,
            r#"["body","style_params","tone"]"#,
            r#"["body","generation_params","temperature"]"#,
            r#"["body","generation_params","top_p"]"#,
        ] {
            assert!(
                locs.iter().any(|l| l == expected),
                "{expected} not in {locs:?}"
            );
        }
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let body = json!({"prompt_text": "x", "generation_params": {"max_tokens": 5, "max_completion_tokens": 6}});
        let r = RunRequest::parse(&body, false).unwrap();
        assert_eq!(r.generation_params.max_tokens, Some(6));
        let body = json!({"prompt_text": "x", "generation_params": {"max_tokens": 5}});
        let r = RunRequest::parse(&body, false).unwrap();
        assert_eq!(r.generation_params.max_tokens, Some(5));
    }

    #[test]
    fn a_continuation_refuses_session_fields() {
        let body = json!({"prompt_text": "x", "knowledge_ids": [1]});
        assert_eq!(
            locs(RunRequest::parse(&body, true).unwrap_err()),
            [r#"["body","knowledge_ids"]"#]
        );
        assert!(RunRequest::parse(&json!({}), false).is_err());
        assert!(RunRequest::parse(&json!([]), false).is_err());
    }

    #[test]
    fn library_bodies_patch_over_the_stored_object() {
        let base = json!({"name": "tutor", "instructions": "be kind", "class_id": null});
        let patched = parse_agent(&json!({"instructions": "be brief"}), Some(base)).unwrap();
        assert_eq!(patched.name, "tutor");
        assert_eq!(patched.instructions, "be brief");
        assert!(parse_agent(&json!({"instructions": "x"}), None).is_err());
        assert!(parse_agent(&json!({"name": "x", "colour": 1}), None).is_err());
        let shot =
            parse_few_shot(&json!({"input": "q", "output": "a", "note": "n"}), None).unwrap();
        assert_eq!(shot.note.as_deref(), Some("n"));
        assert_eq!(
            locs(parse_project(&json!({"name": ""}), None).unwrap_err()),
            [r#"["body","name"]"#]
        );
    }
}
