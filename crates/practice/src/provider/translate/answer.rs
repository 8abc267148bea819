//! An answer across wire formats, whole or streamed event by event, back in
//! the client's format.

use serde_json::{Map, Value, json};

use super::openai_tool_calls;
use crate::provider::{ProviderError, ProviderKind, RawObject, WireEvent};

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
