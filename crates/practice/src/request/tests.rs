//! Bodies parsed, and requests built in code validated, alike.

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
    let shot = parse_few_shot(&json!({"input": "q", "output": "a", "note": "n"}), None).unwrap();
    assert_eq!(shot.note.as_deref(), Some("n"));
    assert_eq!(
        locs(parse_project(&json!({"name": ""}), None).unwrap_err()),
        [r#"["body","name"]"#]
    );
}

/// `validate` refuses what `parse` refuses, with the same errors, and
/// accepts what it accepts, normalized the same way.
#[test]
fn validate_agrees_with_parse() {
    let cases: Vec<(Value, RunRequest)> = vec![
        (
            json!({"prompt_text": "  hi  ", "model_names": [" a", "b", "a"], "knowledge_ids": [3, 3],
                   "generation_params": {"temperature": 1.5, "max_tokens": 9, "seed": 4}}),
            RunRequest {
                model_names: Some(vec![" a".into(), "b".into(), "a".into()]),
                knowledge_ids: vec![3, 3],
                generation_params: GenerationParams {
                    temperature: Some(1.5),
                    max_tokens: Some(9),
                    seed: Some(4),
                    ..GenerationParams::default()
                },
                ..RunRequest::new("  hi  ")
            },
        ),
        (json!({"prompt_text": "   "}), RunRequest::new("   ")),
        (
            json!({"prompt_text": "x", "model_names": [""], "agent_id": 0, "few_shot_example_ids": [-1]}),
            RunRequest {
                model_names: Some(vec![String::new()]),
                agent_id: Some(0),
                few_shot_example_ids: vec![-1],
                ..RunRequest::new("x")
            },
        ),
        (
            json!({"prompt_text": "x", "model_names": ["a","b","c","d","e","f","g","h","i"]}),
            RunRequest {
                model_names: Some("abcdefghi".chars().map(String::from).collect()),
                ..RunRequest::new("x")
            },
        ),
        (
            json!({"prompt_text": "x", "style_preset": "fast", "style_params": {"format": "html", "persona": " p "},
                   "generation_params": {"temperature": 3, "top_p": -1, "max_tokens": 0,
                                         "response_length_preset": "custom"}}),
            RunRequest {
                style_preset: Some("fast"),
                style_params: StyleParams {
                    format: Some("html"),
                    persona: Some(" p ".into()),
                    ..StyleParams::default()
                },
                generation_params: GenerationParams {
                    temperature: Some(3.0),
                    top_p: Some(-1.0),
                    max_tokens: Some(0),
                    response_length_preset: Some("custom"),
                    ..GenerationParams::default()
                },
                ..RunRequest::new("x")
            },
        ),
        (
            json!({"prompt_text": "x", "generation_params": {"response_length_preset": "custom"}}),
            RunRequest {
                generation_params: GenerationParams {
                    response_length_preset: Some("custom"),
                    ..GenerationParams::default()
                },
                ..RunRequest::new("x")
            },
        ),
    ];
    for (body, built) in cases {
        for continuation in [false, true] {
            let parsed = RunRequest::parse(&body, continuation);
            let validated = built.clone().validate(continuation);
            match (parsed, validated) {
                (Ok(p), Ok(v)) => assert_eq!(p, v, "{body}"),
                (Err(PracticeError::Validation(p)), Err(PracticeError::Validation(v))) => {
                    assert_eq!(p, v, "{body}")
                }
                (p, v) => panic!("{body}: parse {p:?}, validate {v:?}"),
            }
        }
    }
    // A continuation refuses the session's fields.
    let built = RunRequest {
        knowledge_ids: vec![1],
        project_id: Some(2),
        ..RunRequest::new("x")
    };
    let body = json!({"prompt_text": "x", "knowledge_ids": [1], "project_id": 2});
    match (RunRequest::parse(&body, true), built.validate(true)) {
        (Err(PracticeError::Validation(p)), Err(PracticeError::Validation(v))) => assert_eq!(p, v),
        other => panic!("{other:?}"),
    }
}
