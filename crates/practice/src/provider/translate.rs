//! Across wire formats: an OpenAI request for a CLOVA Studio v3 provider, a
//! CLOVA v3 request for an OpenAI-compatible one, and their answers (whole or
//! streamed) back in the client's format.
//!
//! Every field with a counterpart is mapped; a field the other format has no
//! counterpart for is refused with a message naming it, never dropped. Fields
//! neither format defines go across as written: they may mean something to
//! the server behind (vLLM and llama.cpp take many), and dropping them would
//! be silent. The mapping:
//!
//! | OpenAI | CLOVA v3 |
//! |---|---|
//! | `temperature`, `seed`, `stop` (a string becomes a list) | the same |
//! | `top_p`, `top_k`, `repetition_penalty` (vLLM's spelling) | `topP`, `topK`, `repetitionPenalty` |
//! | `tools` | `tools` |
//! | `tool_choice` (`auto`, `none`, a named function) | `toolChoice` |
//! | `response_format` `json_schema` | `responseFormat` `{"type": "json", "schema"}` |
//! | `reasoning_effort` | `thinking.effort` |
//! | message `tool_calls` (arguments a JSON string), `tool_call_id` | `toolCalls` (arguments an object), `toolCallId` |
//! | content part `image_url` | `image_url` with `imageUrl` |
//! | answer `tool_calls`, `reasoning_content`, `finish_reason`, usage details | `toolCalls`, `thinkingContent`, `finishReason`, usage |
//!
//! Without a counterpart (a 400 naming the field when set to anything but
//! `null` or its default): OpenAI's `n` above 1, `logprobs`, `top_logprobs`,
//! `presence_penalty`, `frequency_penalty`, `logit_bias`, `parallel_tool_calls`,
//! `tool_choice: "required"`, `response_format: json_object`, `modalities`,
//! `audio`, `prediction`, `web_search_options`, `user`, `metadata`, `store`,
//! `service_tier`, a message's `name`; CLOVA's `includeAiFilters`.
//! The maximum and the model are sluice's own ([`super::WireRequest`]).

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::raw::RawObject;
use super::{ProviderError, ProviderKind, WireEvent};

/// Why a request cannot go across: the message names the field.
pub type FieldError = String;

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

/// CLOVA's tool calls in OpenAI's shape: arguments as a JSON string, and with
/// `indexed` each call's `index` (as stream deltas carry it).
fn openai_tool_calls(calls: &Value, indexed: bool) -> Value {
    let calls = calls.as_array().cloned().unwrap_or_default();
    Value::Array(
        calls
            .into_iter()
            .enumerate()
            .map(|(i, mut call)| {
                if let Some(arguments) = call.pointer_mut("/function/arguments") {
                    if !arguments.is_string() {
                        *arguments = Value::String(arguments.to_string());
                    }
                }
                if let Some(object) = call.as_object_mut() {
                    object
                        .entry("type")
                        .or_insert_with(|| Value::String("function".into()));
                    if indexed {
                        object.entry("index").or_insert_with(|| json!(i));
                    }
                }
                call
            })
            .collect(),
    )
}

/// OpenAI's tool calls in CLOVA's shape: arguments as an object when they
/// hold one.
fn clova_tool_calls(calls: Vec<Value>) -> Value {
    Value::Array(
        calls
            .into_iter()
            .map(|mut call| {
                if let Some(object) = call.as_object_mut() {
                    object.remove("index");
                }
                if let Some(Value::String(text)) = call.pointer("/function/arguments") {
                    if let Ok(object) = serde_json::from_str::<Value>(text) {
                        call["function"]["arguments"] = object;
                    }
                }
                call
            })
            .collect(),
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// OpenAI usage from CLOVA's, details included.
fn openai_usage(usage: &Value) -> Value {
    let mut out = json!({
        "prompt_tokens": usage["promptTokens"],
        "completion_tokens": usage["completionTokens"],
        "total_tokens": usage["totalTokens"],
    });
    if let Some(thinking) = usage.pointer("/completionTokensDetails/thinkingTokens") {
        out["completion_tokens_details"] = json!({"reasoning_tokens": thinking});
    }
    out
}

/// CLOVA usage from OpenAI's, details included.
fn clova_usage(usage: &Value) -> Value {
    let mut out = json!({
        "promptTokens": usage["prompt_tokens"],
        "completionTokens": usage["completion_tokens"],
        "totalTokens": usage["total_tokens"],
    });
    if let Some(reasoning) = usage.pointer("/completion_tokens_details/reasoning_tokens") {
        out["completionTokensDetails"] = json!({"thinkingTokens": reasoning});
    }
    out
}

/// A whole answer written in `from`'s wire format (already checked by the
/// call), in `to`'s; `model` is the name the client asked for.
pub fn answer(
    from: ProviderKind,
    to: ProviderKind,
    body: &RawObject,
    model: &str,
) -> Result<RawObject, ProviderError> {
    let value: Value = serde_json::from_str(&body.to_json()).unwrap_or(Value::Null);
    let out = match (from, to) {
        (ProviderKind::Clova, ProviderKind::Openai) => {
            let result = &value["result"];
            let message = &result["message"];
            let mut reply = json!({"role": "assistant", "content": message["content"]});
            if let Some(calls) = message.get("toolCalls").filter(|c| !c.is_null()) {
                reply["tool_calls"] = openai_tool_calls(calls, false);
                if message["content"].as_str().is_none_or(str::is_empty) {
                    reply["content"] = Value::Null;
                }
            }
            if let Some(thinking) = message.get("thinkingContent").filter(|t| !t.is_null()) {
                reply["reasoning_content"] = thinking.clone();
            }
            json!({
                "id": result.get("id").cloned().unwrap_or_else(|| json!(format!("chatcmpl-sluice-{}", now()))),
                "object": "chat.completion",
                "created": result["created"].as_u64().map_or_else(now, |ms| ms / 1000),
                "model": model,
                "choices": [{"index": 0, "message": reply, "finish_reason": result.get("finishReason").cloned().unwrap_or(json!("stop"))}],
                "usage": openai_usage(&result["usage"]),
            })
        }
        (ProviderKind::Openai, ProviderKind::Clova) => {
            let choice = &value["choices"][0];
            let message = &choice["message"];
            let mut reply =
                json!({"role": "assistant", "content": message["content"].as_str().unwrap_or("")});
            if let Some(calls) = message["tool_calls"].as_array() {
                reply["toolCalls"] = clova_tool_calls(calls.clone());
            }
            if let Some(thinking) = message.get("reasoning_content").filter(|t| !t.is_null()) {
                reply["thinkingContent"] = thinking.clone();
            }
            json!({
                "status": {"code": "20000", "message": "OK"},
                "result": {
                    "created": value["created"].as_u64().unwrap_or_else(now) * 1000,
                    "message": reply,
                    "finishReason": choice.get("finish_reason").cloned().unwrap_or(json!("stop")),
                    "usage": clova_usage(&value["usage"]),
                }
            })
        }
        _ => return Ok(body.clone()),
    };
    RawObject::from_json(&out.to_string()).map_err(|e| ProviderError::bad_response(e.to_string()))
}

/// A streamed answer in `from`'s wire format turned, event by event, into
/// `to`'s. Same format in and out: the events pass unchanged.
#[derive(Debug)]
pub struct StreamTranslator {
    from: ProviderKind,
    to: ProviderKind,
    model: String,
    id: String,
    created: u64,
    /// The text so far (a CLOVA `result` repeats it whole).
    text: String,
    thinking: String,
    /// Tool calls so far, by index (OpenAI deltas into CLOVA's whole calls).
    calls: Vec<Value>,
    /// Whether tool calls went out as deltas (CLOVA into OpenAI).
    sent_calls: bool,
    sent_role: bool,
    finish_reason: Option<Value>,
    usage: Option<Value>,
}

impl StreamTranslator {
    /// Events of a `from` stream for a `to` client asking for `model`.
    pub fn new(from: ProviderKind, to: ProviderKind, model: &str) -> Self {
        Self {
            from,
            to,
            model: model.to_string(),
            id: format!("chatcmpl-sluice-{}", now()),
            created: now(),
            text: String::new(),
            thinking: String::new(),
            calls: Vec::new(),
            sent_calls: false,
            sent_role: false,
            finish_reason: None,
            usage: None,
        }
    }

    /// Whether events pass unchanged.
    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    fn chunk(&mut self, delta: Value, finish_reason: Value, usage: Option<Value>) -> WireEvent {
        let mut delta = delta;
        if !self.sent_role {
            self.sent_role = true;
            delta["role"] = json!("assistant");
        }
        let mut chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        WireEvent {
            name: None,
            data: chunk.to_string(),
        }
    }

    /// One upstream event as the client's events.
    pub fn event(&mut self, event: WireEvent) -> Vec<WireEvent> {
        if self.is_identity() {
            return vec![event];
        }
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return Vec::new();
        };
        match self.from {
            ProviderKind::Clova => match event.name.as_deref() {
                Some("token") => {
                    let message = &data["message"];
                    let mut delta = json!({});
                    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
                        self.text.push_str(text);
                        delta["content"] = json!(text);
                    }
                    if let Some(text) = message["thinkingContent"]
                        .as_str()
                        .filter(|t| !t.is_empty())
                    {
                        self.thinking.push_str(text);
                        delta["reasoning_content"] = json!(text);
                    }
                    if let Some(calls) = message
                        .get("toolCalls")
                        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
                    {
                        self.sent_calls = true;
                        delta["tool_calls"] = openai_tool_calls(calls, true);
                    }
                    if delta.as_object().is_some_and(Map::is_empty) {
                        return Vec::new();
                    }
                    vec![self.chunk(delta, Value::Null, None)]
                }
                Some("result") => {
                    let message = &data["message"];
                    let mut delta = json!({});
                    // What the tokens did not carry, the result does.
                    if self.text.is_empty() {
                        if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
                            delta["content"] = json!(text);
                        }
                    }
                    if !self.sent_calls {
                        if let Some(calls) = message
                            .get("toolCalls")
                            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
                        {
                            delta["tool_calls"] = openai_tool_calls(calls, true);
                        }
                    }
                    let finish = data.get("finishReason").cloned().unwrap_or(json!("stop"));
                    let usage = data.get("usage").map(openai_usage);
                    vec![self.chunk(delta, finish, usage)]
                }
                _ => Vec::new(),
            },
            _ => {
                let choice = &data["choices"][0];
                let delta = &choice["delta"];
                if let Some(usage) = data.get("usage").filter(|u| !u.is_null()) {
                    self.usage = Some(clova_usage(usage));
                }
                if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                    self.finish_reason = Some(reason.clone());
                }
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let index = call["index"].as_u64().unwrap_or(0) as usize;
                    if self.calls.len() <= index {
                        self.calls.resize(
                            index + 1,
                            json!({"type": "function", "function": {"name": "", "arguments": ""}}),
                        );
                    }
                    let slot = &mut self.calls[index];
                    if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                        slot["id"] = id.clone();
                    }
                    if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                        let joined =
                            format!("{}{name}", slot["function"]["name"].as_str().unwrap_or(""));
                        slot["function"]["name"] = json!(joined);
                    }
                    if let Some(part) = call.pointer("/function/arguments").and_then(Value::as_str)
                    {
                        let joined = format!(
                            "{}{part}",
                            slot["function"]["arguments"].as_str().unwrap_or("")
                        );
                        slot["function"]["arguments"] = json!(joined);
                    }
                }
                let mut message = json!({"role": "assistant", "content": ""});
                let mut any = false;
                if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                    self.text.push_str(text);
                    message["content"] = json!(text);
                    any = true;
                }
                if let Some(text) = delta["reasoning_content"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                {
                    self.thinking.push_str(text);
                    message["thinkingContent"] = json!(text);
                    any = true;
                }
                if !any {
                    return Vec::new();
                }
                vec![WireEvent {
                    name: Some("token".into()),
                    data: json!({"message": message}).to_string(),
                }]
            }
        }
    }

    /// The events that close a finished stream before its end marker: for a
    /// CLOVA client of an OpenAI stream, the `result` with the whole message.
    pub fn finish(&mut self) -> Vec<WireEvent> {
        if self.is_identity() || self.to != ProviderKind::Clova {
            return Vec::new();
        }
        let mut message = json!({"role": "assistant", "content": self.text});
        if !self.thinking.is_empty() {
            message["thinkingContent"] = json!(self.thinking);
        }
        if !self.calls.is_empty() {
            message["toolCalls"] = clova_tool_calls(std::mem::take(&mut self.calls));
        }
        let mut result = json!({
            "message": message,
            "finishReason": self.finish_reason.clone().unwrap_or(json!("stop")),
        });
        if let Some(usage) = &self.usage {
            result["usage"] = usage.clone();
        }
        vec![WireEvent {
            name: Some("result".into()),
            data: result.to_string(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, data: &str) -> WireEvent {
        WireEvent {
            name: name.map(str::to_string),
            data: data.to_string(),
        }
    }

    fn parsed(events: &[WireEvent]) -> Vec<Value> {
        events
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    #[test]
    fn an_openai_tool_call_stream_becomes_a_clova_result() {
        let mut t = StreamTranslator::new(ProviderKind::Openai, ProviderKind::Clova, "m");
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me check. "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"get_time","arguments":"{}"}},{"index":0,"function":{"arguments":"\"Seoul\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"completion_tokens_details":{"reasoning_tokens":1}}}"#,
        ];
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(t.event(event(None, chunk)));
        }
        assert_eq!(out.len(), 1, "only text goes out as tokens: {out:?}");
        assert_eq!(out[0].name.as_deref(), Some("token"));
        let result = t.finish();
        let result = &parsed(&result)[0];
        assert_eq!(result["message"]["content"], "Let me check. ");
        assert_eq!(
            result["message"]["toolCalls"],
            json!([
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Seoul"}}},
                {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": {}}}
            ])
        );
        assert_eq!(result["finishReason"], "tool_calls");
        assert_eq!(
            result["usage"]["completionTokensDetails"]["thinkingTokens"],
            1
        );
    }

    #[test]
    fn a_clova_stream_becomes_indexed_openai_deltas() {
        let mut t = StreamTranslator::new(ProviderKind::Clova, ProviderKind::Openai, "m");
        let mut out = t.event(event(
            Some("token"),
            r#"{"message":{"role":"assistant","content":"","thinkingContent":"hmm"}}"#,
        ));
        out.extend(t.event(event(
            Some("result"),
            r#"{"message":{"role":"assistant","content":"","toolCalls":[{"id":"a","type":"function","function":{"name":"f","arguments":{"x":1}}}]},"finishReason":"tool_calls","usage":{"promptTokens":1,"completionTokens":2,"totalTokens":3}}"#,
        )));
        assert!(t.finish().is_empty());
        let chunks = parsed(&out);
        assert_eq!(chunks[0]["choices"][0]["delta"]["reasoning_content"], "hmm");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let last = &chunks[1]["choices"][0];
        assert_eq!(
            last["delta"]["tool_calls"],
            json!([{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}])
        );
        assert_eq!(last["finish_reason"], "tool_calls");
        assert_eq!(chunks[1]["usage"]["total_tokens"], 3);
        assert_eq!(chunks[1]["model"], "m");
    }

    #[test]
    fn requests_map_field_by_field() {
        let openai = RawObject::from_json(
            r#"{"model":"x","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}}]}],"stop":"s","top_p":0.5,"x_custom":1e0,"reasoning_effort":"high"}"#,
        )
        .unwrap();
        let clova = request(ProviderKind::Openai, ProviderKind::Clova, &openai, false).unwrap();
        assert_eq!(
            clova.to_json(),
            r#"{"messages":[{"content":[{"imageUrl":{"url":"u"},"type":"image_url"}],"role":"user"}],"stop":["s"],"topP":0.5,"x_custom":1e0,"thinking":{"effort":"high"}}"#
        );
        let back = request(ProviderKind::Clova, ProviderKind::Openai, &clova, true).unwrap();
        let back: Value = serde_json::from_str(&back.to_json()).unwrap();
        assert_eq!(back["messages"][0]["content"][0]["image_url"]["url"], "u");
        assert_eq!(back["top_p"], 0.5);
        assert_eq!(back["reasoning_effort"], "high");
        assert_eq!(back["stream"], true);
        assert_eq!(back["stream_options"]["include_usage"], true);
    }
}
