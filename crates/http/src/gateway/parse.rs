//! Reading a chat-completions request in either wire format: the messages as
//! the sliding window reads them, and the type of every documented field.

use serde_json::Value;
use sluice_core::Message;

use super::Chat;

fn number(body: &Value, keys: &[&str]) -> Result<Option<f64>, String> {
    for key in keys {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| format!("Invalid parameter: {key} must be a number"));
            }
        }
    }
    Ok(None)
}

/// The first of `keys` that is set, each checked whether it is used or not
/// (`maxCompletionTokens` wins over `maxTokens`, but a `maxTokens` of the wrong
/// type is still an error).
fn count(body: &Value, keys: &[&str]) -> Result<Option<u64>, String> {
    let mut first = None;
    for key in keys {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                // `64.0` is 64, as the sliding window reads `maxTokens`.
                let whole = v.as_u64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
                        .map(|f| f as u64)
                });
                let n = whole.ok_or_else(|| {
                    format!("Invalid parameter: {key} must be a non-negative integer")
                })?;
                first = first.or(Some(n));
            }
        }
    }
    Ok(first)
}

/// The messages of a chat request, in either format, read as the sliding
/// window and the token calculators read them (`sluice_core::Message`): content
/// a string, `null` or text parts, tool fields in either spelling; errors name
/// the field, in the same words.
pub(super) fn parse_messages(body: &Value) -> Result<Vec<Message>, String> {
    let items = body
        .get("messages")
        .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()))
        .ok_or("Invalid parameter: messages must be a non-empty array")?;
    serde_path_to_error::deserialize(items).map_err(|e| {
        let path = format!("messages{}", e.path());
        // The body is an object: the words are about the field at `path`.
        let words = sluice_core::describe_json_error("{", e.inner(), &path);
        format!("Invalid parameter: {words}")
    })
}

/// The JSON types a forwarded field may have.
#[derive(Clone, Copy)]
enum Shape {
    Integer,
    Number,
    Object,
    /// A list of strings; with `or_string`, a single string too.
    Strings {
        or_string: bool,
    },
    /// A list of `{"type": "function", "function": {"name": ...}}`.
    Tools,
}

/// Checks the type of each field sluice documents but forwards as written, so
/// that a wrong one is refused here, naming it, as the OpenAPI document says.
fn check_shapes(body: &Value, fields: &[(&str, Shape)]) -> Result<(), String> {
    for (key, shape) in fields {
        let Some(value) = body.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        let ok = match shape {
            Shape::Integer => value.is_i64() || value.is_u64(),
            Shape::Number => value.is_number(),
            Shape::Object => value.is_object(),
            Shape::Strings { or_string } => strings(value) || (*or_string && value.is_string()),
            Shape::Tools => value.as_array().is_some_and(|tools| {
                tools
                    .iter()
                    .all(|t| t["type"] == "function" && t["function"]["name"].is_string())
            }),
        };
        if !ok {
            let what = match shape {
                Shape::Integer => "an integer",
                Shape::Number => "a number",
                Shape::Object => "an object",
                Shape::Strings { or_string: false } => "a list of strings",
                Shape::Strings { or_string: true } => "a string or a list of strings",
                Shape::Tools => "a list of {\"type\": \"function\", \"function\": {\"name\": ...}}",
            };
            return Err(format!("Invalid parameter: {key} must be {what}"));
        }
    }
    Ok(())
}

pub(super) fn parse_clova(body: &Value, model: String, stream: bool) -> Result<Chat, String> {
    check_shapes(
        body,
        &[
            ("topK", Shape::Integer),
            ("repetitionPenalty", Shape::Number),
            ("stop", Shape::Strings { or_string: false }),
            ("tools", Shape::Tools),
            ("responseFormat", Shape::Object),
            ("thinking", Shape::Object),
        ],
    )?;
    Ok(Chat {
        model,
        messages: parse_messages(body)?,
        temperature: number(body, &["temperature"])?,
        top_p: number(body, &["topP"])?,
        max_tokens: count(body, &["maxCompletionTokens", "maxTokens"])?
            .map(|m| m.min(u64::from(u32::MAX)) as u32),
        seed: count(body, &["seed"])?,
        stream,
    })
}

pub(super) fn parse_openai(body: &Value) -> Result<Chat, String> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or("Invalid parameter: model is required")?
        .to_string();
    check_shapes(
        body,
        &[
            ("tools", Shape::Tools),
            ("response_format", Shape::Object),
            ("stop", Shape::Strings { or_string: true }),
            ("n", Shape::Integer),
            ("stream_options", Shape::Object),
        ],
    )?;
    if body["n"].as_i64().is_some_and(|n| !(1..=16).contains(&n)) {
        return Err("Invalid parameter: n must be between 1 and 16".into());
    }
    Ok(Chat {
        model,
        messages: parse_messages(body)?,
        temperature: number(body, &["temperature"])?,
        top_p: number(body, &["top_p"])?,
        max_tokens: count(body, &["max_completion_tokens", "max_tokens"])?
            .map(|m| m.min(u64::from(u32::MAX)) as u32),
        seed: count(body, &["seed"])?,
        stream: match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("Invalid parameter: stream must be true or false".into()),
        },
    })
}
