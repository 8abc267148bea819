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
//!
//! Requests go across in `request`, answers (whole and streamed) in `answer`.

mod answer;
mod request;

use serde_json::{Value, json};

pub use answer::{StreamTranslator, answer};
pub use request::request;

/// Why a request cannot go across: the message names the field.
pub type FieldError = String;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ProviderKind, RawObject, WireEvent};

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
