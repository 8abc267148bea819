//! A request across wire formats: OpenAI's for a CLOVA Studio v3 provider,
//! CLOVA's for an OpenAI-compatible one.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{FieldError, openai_tool_calls};
use crate::provider::{ProviderKind, RawObject};

fn no_counterpart(field: &str, to: ProviderKind) -> FieldError {
    let target = match to {
        ProviderKind::Clova => "CLOVA Studio v3",
        _ => "the OpenAI wire format",
    };
    format!("Invalid parameter: {field} has no counterpart in {target}, which this model speaks")
}

fn parse(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// A value that means "not set": `null`, or the field's default.
fn unset(value: &Value, default: &Value) -> bool {
    value.is_null() || value == default
}

/// `body`, written in `from`'s wire format, in `to`'s. The result has the same
/// messages in the same order, so indices kept by auto-trim still apply.
pub fn request(
    from: ProviderKind,
    to: ProviderKind,
    body: &RawObject,
    stream: bool,
) -> Result<RawObject, FieldError> {
    match (from, to) {
        (ProviderKind::Openai, ProviderKind::Clova) => openai_to_clova(body),
        (ProviderKind::Clova, ProviderKind::Openai) => clova_to_openai(body, stream),
        _ => Ok(body.clone()),
    }
}

fn openai_to_clova(body: &RawObject) -> Result<RawObject, FieldError> {
    let to = ProviderKind::Clova;
    let mut out = RawObject::default();
    for (key, raw) in body.iter() {
        let value = parse(raw);
        match key {
            // Sluice's own: the path names the model, `stream` is the Accept
            // header, the maximum is set when sent, and a CLOVA stream always
            // ends with its usage.
            "model" | "stream" | "stream_options" | "max_tokens" | "max_completion_tokens" => {}
            "messages" => {
                let messages = value.as_array().cloned().unwrap_or_default();
                let mapped = messages
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| openai_message_to_clova(i, m))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("messages", &mapped);
            }
            "temperature" | "seed" | "tools" => out.insert_raw(key, raw.to_owned()),
            "top_p" => out.insert_raw("topP", raw.to_owned()),
            "top_k" => out.insert_raw("topK", raw.to_owned()),
            "repetition_penalty" => out.insert_raw("repetitionPenalty", raw.to_owned()),
            "stop" => match value {
                Value::String(s) => out.insert("stop", &[s]),
                _ => out.insert_raw("stop", raw.to_owned()),
            },
            "tool_choice" => match &value {
                Value::String(s) if s == "required" => {
                    return Err(no_counterpart("tool_choice \"required\"", to));
                }
                _ => out.insert_raw("toolChoice", raw.to_owned()),
            },
            "response_format" => match value.get("type").and_then(Value::as_str) {
                None if value.is_null() => {}
                Some("text") => {}
                Some("json_schema") => {
                    let schema = value["json_schema"]["schema"].clone();
                    out.insert("responseFormat", &json!({"type": "json", "schema": schema}));
                }
                other => {
                    return Err(no_counterpart(
                        &format!("response_format type {}", other.unwrap_or("(none)")),
                        to,
                    ));
                }
            },
            "reasoning_effort" if !value.is_null() => {
                out.insert("thinking", &json!({"effort": value}));
            }
            "n" if unset(&value, &json!(1)) => {}
            "logprobs" | "parallel_tool_calls" if unset(&value, &json!(false)) => {}
            "n"
            | "logprobs"
            | "top_logprobs"
            | "presence_penalty"
            | "frequency_penalty"
            | "logit_bias"
            | "parallel_tool_calls"
            | "modalities"
            | "audio"
            | "prediction"
            | "web_search_options"
            | "user"
            | "metadata"
            | "store"
            | "service_tier" => {
                if !value.is_null() {
                    return Err(no_counterpart(key, to));
                }
            }
            _ => out.insert_raw(key, raw.to_owned()),
        }
    }
    Ok(out)
}

fn openai_message_to_clova(index: usize, message: Value) -> Result<Value, FieldError> {
    let Value::Object(fields) = message else {
        return Ok(message);
    };
    let mut out = Map::new();
    for (key, value) in fields {
        match key.as_str() {
            "tool_calls" => {
                let calls: Vec<Value> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|call| {
                        let mut call = call.clone();
                        // CLOVA takes the arguments as an object.
                        if let Some(Value::String(text)) = call.pointer("/function/arguments") {
                            if let Ok(object) = serde_json::from_str::<Value>(text) {
                                call["function"]["arguments"] = object;
                            }
                        }
                        call
                    })
                    .collect();
                if !value.is_null() {
                    out.insert("toolCalls".into(), Value::Array(calls));
                }
            }
            "tool_call_id" => {
                out.insert("toolCallId".into(), value);
            }
            "content" => {
                out.insert("content".into(), parts(value, "image_url", "imageUrl"));
            }
            "name" if !value.is_null() => {
                return Err(no_counterpart(
                    &format!("messages[{index}].name"),
                    ProviderKind::Clova,
                ));
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Content with its image parts' URL object renamed (`image_url` <-> `imageUrl`).
fn parts(content: Value, from: &str, to: &str) -> Value {
    match content {
        Value::Array(parts) => Value::Array(
            parts
                .into_iter()
                .map(|mut part| {
                    if let Some(object) = part.as_object_mut() {
                        if let Some(url) = object.remove(from) {
                            object.insert(to.to_string(), url);
                        }
                    }
                    part
                })
                .collect(),
        ),
        other => other,
    }
}

fn clova_to_openai(body: &RawObject, stream: bool) -> Result<RawObject, FieldError> {
    let to = ProviderKind::Openai;
    let mut out = RawObject::default();
    // The model goes first, as OpenAI clients write it; replaced when sent.
    out.insert("model", "");
    for (key, raw) in body.iter() {
        let value = parse(raw);
        match key {
            "maxTokens" | "maxCompletionTokens" => {}
            "messages" => {
                let messages: Vec<Value> = value
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(clova_message_to_openai)
                    .collect();
                out.insert("messages", &messages);
            }
            "temperature" | "seed" | "stop" | "tools" => out.insert_raw(key, raw.to_owned()),
            "topP" => out.insert_raw("top_p", raw.to_owned()),
            "topK" => out.insert_raw("top_k", raw.to_owned()),
            "repetitionPenalty" => out.insert_raw("repetition_penalty", raw.to_owned()),
            "toolChoice" => out.insert_raw("tool_choice", raw.to_owned()),
            "responseFormat" => match value.get("type").and_then(Value::as_str) {
                None if value.is_null() => {}
                Some("json") => out.insert(
                    "response_format",
                    &json!({"type": "json_schema", "json_schema": {"name": "response", "schema": value["schema"]}}),
                ),
                other => {
                    return Err(no_counterpart(
                        &format!("responseFormat type {}", other.unwrap_or("(none)")),
                        to,
                    ));
                }
            },
            "thinking" => {
                if let Some(effort) = value.get("effort").filter(|e| !e.is_null()) {
                    out.insert("reasoning_effort", effort);
                }
            }
            "includeAiFilters" if unset(&value, &json!(false)) => {}
            "includeAiFilters" => return Err(no_counterpart(key, to)),
            _ => out.insert_raw(key, raw.to_owned()),
        }
    }
    if stream {
        out.insert("stream", &true);
        out.insert("stream_options", &json!({"include_usage": true}));
    }
    Ok(out)
}

fn clova_message_to_openai(message: Value) -> Value {
    let Value::Object(fields) = message else {
        return message;
    };
    let mut out = Map::new();
    for (key, value) in fields {
        match key.as_str() {
            "toolCalls" if !value.is_null() => {
                out.insert("tool_calls".into(), openai_tool_calls(&value, false));
            }
            "toolCallId" => {
                out.insert("tool_call_id".into(), value);
            }
            "content" => {
                out.insert("content".into(), parts(value, "imageUrl", "image_url"));
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    Value::Object(out)
}
