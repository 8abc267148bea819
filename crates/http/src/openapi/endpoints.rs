//! The operations of the envelope API: the CLOVA Studio-compatible tools and
//! the chat-completions gateway, one per [`Endpoint`].

use serde_json::{Value, json};

use super::error_content;
use crate::routes::Endpoint;

pub(super) fn operation(endpoint: Endpoint, path: &str, models: &[&str]) -> Value {
    let (id, summary, request, result, codes) = match endpoint {
        Endpoint::Sliding => (
            "slidingChatMessages",
            "Sliding window: drop the oldest whole turns so that the history plus maxTokens fits the model's context.",
            "SlidingRequest",
            "SlidingResult",
            "40000 malformed body, 40001 invalid parameter (maxTokens out of 1..=the model's max output, empty messages, both spellings of a field in one message, a tools flag not true/false), 40003 context length exceeded, 40080 model not found",
        ),
        Endpoint::Tokenize => (
            "chatTokenize",
            "Token calculator: the token count of each message under the model's profile.",
            "TokenizeRequest",
            "TokenizeResult",
            "40000 malformed body, 40001 invalid parameter, 40080 model not found",
        ),
        Endpoint::Route => (
            "route",
            "Router: classify a query (with its chat history) into a domain and run that domain's content and safety filters.",
            "RouteRequest",
            "RouteResult",
            "40000 malformed body, 40001 invalid parameter (version not an integer >= 1, explain not true/false), 40004 empty query, 65001 invalid router file, 65400 over the router's token limit",
        ),
        Endpoint::TokenizeV3 => (
            "chatTokenizeV3",
            "Token calculator (v3): content may be a string or an array of parts; text parts are counted, image parts by the profile's image rule (1,445 tokens, 85 at low detail, by default), other parts are refused (40001, naming the part type).",
            "TokenizeV3Request",
            "TokenizeResult",
            "40000 malformed body, 40001 invalid parameter (or a non-text content part), 40080 model not found",
        ),
        Endpoint::ChatV3 | Endpoint::ChatV1 => (
            if endpoint == Endpoint::ChatV3 {
                "chatCompletionsV3"
            } else {
                "chatCompletionsV1"
            },
            "Chat completions gateway (CLOVA Studio wire format): forwarded to the provider configured for the model ([models.NAME]); with Accept: text/event-stream the answer streams as token, result and signal events; a call that fails before its first token is answered with the error status below, one that fails after it ends the 200 stream with an error event ({status: {code, message}}). With the model's auto_trim the history is trimmed first and X-Sluice-Turns-Dropped says how many turns went; with route_check the router checks the last user message first (40300 when blocked).",
            "ClovaChatRequest",
            "ClovaChatResult",
            "40000 malformed body, 40001 invalid parameter (or the upstream refused the request), 40003 context exceeded (auto_trim), 40080 model not configured; 40300 blocked by the router; 42900 upstream rate limit; 50200 upstream failure; 50400 upstream timeout",
        ),
        Endpoint::OpenAi => (
            "openaiChatCompletions",
            "Chat completions gateway (OpenAI wire format, `model` in the body); `stream: true` answers with chat.completion.chunk data lines and [DONE]. Errors use OpenAI's {error: {message, type, code}} with the envelope code in `code`; a stream that fails before its first chunk is answered with the error status, one that fails after it ends with an {error} chunk, then [DONE].",
            "OpenAiChatRequest",
            "OpenAiChatResult",
            "40000 malformed body, 40001 invalid parameter (or the upstream refused the request), 40003 context exceeded (auto_trim); 40300 blocked by the router; 42900 upstream rate limit; 50200 upstream failure; 50400 upstream timeout",
        ),
        Endpoint::AuthToken => (
            "authToken",
            "Access token for the presented API key (`existingToken=true` returns the unexpired one issued before). Send it as `Authorization: Bearer <token>`; once expired, calls answer 40103 and the client gets a new one.",
            "",
            "AuthTokenResult",
            "",
        ),
    };
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| match name {
            "modelName" => json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "enum": models}, "example": "HCX-003",
                                  "description": "A model profile this server knows (built-in or configured); any other is 40080."}),
            "router-id" => json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "example": "sample"}),
            "version" => json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": u32::MAX}, "example": 1}),
            _ => json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"},
                        "description": "The hosted API's app (task) id; accepted and ignored."}),
        })
        .collect();
    match endpoint {
        Endpoint::Sliding => parameters.push(json!({"name": "tools", "in": "query", "required": false, "schema": {"type": "boolean", "default": false},
            "description": "Kept for older clients; changes nothing (`tool` messages are always accepted). Any value other than true or false is 40001."})),
        Endpoint::Route => parameters.push(json!({"name": "explain", "in": "query", "required": false, "schema": {"type": "boolean", "default": false},
            "description": "Add `result.explanation`: per-domain scores, the runner-up and every rule that fired, with spans."})),
        Endpoint::AuthToken => parameters.push(json!({"name": "existingToken", "in": "query", "required": false, "schema": {"type": "boolean", "default": false},
            "description": "Return the unexpired token issued before for this key, if any."})),
        _ => {}
    }
    parameters.push(json!({"$ref": "#/components/parameters/RequestId"}));
    let parameters = Value::Array(parameters);
    if endpoint == Endpoint::AuthToken {
        return json!({
            "operationId": id,
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK (code 20000)", "content": {"application/json": {"schema": {
                    "allOf": [{"$ref": "#/components/schemas/Envelope"},
                              {"type": "object", "properties": {"result": {"$ref": format!("#/components/schemas/{result}")}}}]}}}},
                "400": {"description": "40001 existingToken not true or false", "content": error_content()},
                "401": {"description": "40100 missing or invalid API key", "content": error_content()}
            }
        });
    }
    // The OpenAI routes answer the gateway's own errors in OpenAI's shape; the
    // server's layers (the key, the body limit, busy slots, the timeout)
    // answer with the envelope on every route.
    let errors = if endpoint == Endpoint::OpenAi {
        json!({"application/json": {"schema": {"anyOf": [
            {"$ref": "#/components/schemas/OpenAiError"}, {"$ref": "#/components/schemas/Envelope"}]}}})
    } else {
        error_content()
    };
    let mut op = json!({
        "operationId": id,
        "summary": summary,
        "parameters": parameters,
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}}}
        },
        "responses": {
            "200": {
                "description": "OK (code 20000)",
                "headers": {"X-NCP-CLOVASTUDIO-REQUEST-ID": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Envelope"},
                        {"type": "object", "properties": {"result": {"$ref": format!("#/components/schemas/{result}")}}}
                    ]
                }}}
            },
            "400": {"description": codes, "content": errors},
            "401": {"description": "40100 missing or invalid API key", "content": errors},
            "404": {"description": "40400 not found (for the router: unknown router id or version)", "content": errors},
            "408": {"description": "40800 the body was not received in time", "content": errors},
            "413": {"description": "41300 body over the configured limit", "content": errors},
            "429": {"description": "42900 every request slot is busy (on the chat routes also: the upstream's rate limit)", "content": errors},
            "500": {"description": "50000 internal error", "content": errors},
            "504": {"description": "50400 the request took longer than the configured timeout (on the chat routes also: the upstream's deadline)", "content": errors}
        }
    });
    if endpoint == Endpoint::OpenAi {
        op["responses"]["404"] = json!({"description": "model_not_found: the model is not configured on this server ([models.NAME]), as OpenAI answers an unknown model", "content": errors});
        op["responses"]["200"] = json!({
            "description": "OK: OpenAI's chat.completion, or with stream: true its chat.completion.chunk data lines and [DONE]",
            "headers": {"X-NCP-CLOVASTUDIO-REQUEST-ID": {"$ref": "#/components/headers/RequestId"}},
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/OpenAiChatResult"}},
                "text/event-stream": {"schema": {"$ref": "#/components/schemas/SseEvent"}}
            }
        });
    }
    if matches!(endpoint, Endpoint::ChatV3 | Endpoint::ChatV1) {
        op["responses"]["200"]["content"]["text/event-stream"] = json!({"schema": {"$ref": "#/components/schemas/SseEvent"},
            "description": "With Accept: text/event-stream: token events, then result and signal"});
    }
    if matches!(
        endpoint,
        Endpoint::ChatV3 | Endpoint::ChatV1 | Endpoint::OpenAi
    ) {
        op["responses"]["403"] =
            json!({"description": "40300 blocked by the router (route_check)", "content": errors});
        op["responses"]["502"] = json!({"description": "50200 the upstream failed: refused or reset, an error status, a reply cut short, not in its wire format or not UTF-8, or past the model's max_reply_bytes, max_line_bytes or max_stream_bytes (named in the message)", "content": errors});
    }
    op
}
