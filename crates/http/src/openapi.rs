//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand and
//! expanded over [`PREFIXES`] from the same table the router is built from.

use serde_json::{Map, Value, json};

use crate::app::{API, Endpoint, PREFIXES};

/// The OpenAPI document describing every route the server answers, with the
/// built-in model profiles as the `{modelName}` values.
pub fn document() -> Value {
    let profiles = sluice_core::builtin_profiles();
    document_for(profiles.iter().map(|p| p.name.as_str()), [])
}

/// The document for a server whose profiles are `models` and whose gateway
/// serves `chat_models` (`[models.NAME]`): `{modelName}` takes exactly those
/// names, and the OpenAI routes' `model` exactly the chat models (any other is
/// `40080`, HTTP 400, as the hosted API answers an unknown model). With no
/// chat models the chat routes list the profiles, as the other routes do.
pub fn document_for<'a>(
    models: impl IntoIterator<Item = &'a str>,
    chat_models: impl IntoIterator<Item = &'a str>,
) -> Value {
    let sorted = |names: Vec<&'a str>| {
        let mut names = names;
        names.sort_unstable();
        names.dedup();
        names
    };
    let models = sorted(models.into_iter().collect());
    let chat_models = sorted(chat_models.into_iter().collect());
    let mut paths = Map::new();
    for prefix in PREFIXES {
        for (path, endpoint) in API {
            let names = match endpoint {
                Endpoint::ChatV3 | Endpoint::ChatV1 if !chat_models.is_empty() => &chat_models,
                _ => &models,
            };
            let mut op = operation(endpoint, path, names);
            // operationIds must be unique across the document.
            let mut id = op["operationId"].as_str().unwrap_or_default().to_string();
            if path.ends_with("{appId}") {
                id.push_str("_appId");
            }
            if path == "/v1/chat/completions" {
                id.push_str("_short");
            }
            let suffix = prefix.trim_start_matches('/');
            if !suffix.is_empty() {
                id = format!("{id}_{suffix}");
            }
            op["operationId"] = Value::String(id);
            let method = endpoint.method().as_str().to_lowercase();
            paths.insert(format!("{prefix}{path}"), json!({ method: op }));
        }
    }
    paths.insert(
        "/healthz".into(),
        json!({"get": {
            "operationId": "healthz",
            "summary": "Liveness: the process is up and serving.",
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}}
        }}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {
            "operationId": "readyz",
            "summary": "Readiness: this replica can take traffic (the database answers, migrations are done, it is not shutting down). 503 with the reason otherwise.",
            "responses": {
                "200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
                "503": {"description": "Not ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
            }
        }}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics: requests by route and code, latency histograms, tokens counted and trimmed.",
            "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}
        }}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {
            "operationId": "openapi",
            "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
    practice_paths(&mut paths);
    crate::votes::openapi_paths(&mut paths);
    instructor_paths(&mut paths);
    let mut components = all_components();
    if !chat_models.is_empty() {
        components["schemas"]["OpenAiChatRequest"]["properties"]["model"] = json!({
            "type": "string", "enum": chat_models,
            "description": "A model configured on this server ([models.NAME]); any other is 40080."
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sluice",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Local, deterministic stand-in for CLOVA Studio's sliding-window, token-calculator and router APIs. \
                Every response is the envelope {status: {code, message}, result}; the HTTP status is the code's first three digits. \
                Every API path is also served under /testapp and /serviceapp."
        },
        "paths": paths,
        "components": components,
        "security": [{"bearer": []}, {}],
    })
}

fn operation(endpoint: Endpoint, path: &str, models: &[&str]) -> Value {
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

fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}})
}

fn components() -> Value {
    let mut components = components_without_chat_requests();
    if let (Some(schemas), Value::Object(chat)) = (
        components["schemas"].as_object_mut(),
        chat_request_schemas(),
    ) {
        schemas.extend(chat);
    }
    components
}

/// The gateway's request schemas (apart: one `json!` holding every schema
/// passes the macro's recursion limit).
fn chat_request_schemas() -> Value {
    json!({
            "ClovaChatRequest": {
                "type": "object", "required": ["messages"],
                "description": "On /v3 to a CLOVA Studio model, the body goes upstream as written, every field (documented or not) byte for byte; sluice replaces only the messages (after auto_trim, kept messages byte for byte) and the maximum (clamped to the model's profile). To an OpenAI-compatible model the fields are mapped (topP to top_p, toolChoice to tool_choice, responseFormat json to response_format json_schema, thinking.effort to reasoning_effort, toolCalls and toolCallId in messages); a field without a counterpart (includeAiFilters: true, a responseFormat type other than json) is 40001 naming it. The /v1 route and a local model take only messages, temperature, topP, maxTokens, maxCompletionTokens and seed: any other field is 40001 naming it.",
                "properties": {
                    "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}},
                    "temperature": {"type": ["number", "null"]}, "topP": {"type": ["number", "null"]},
                    "maxTokens": {"type": ["integer", "null"], "minimum": 0}, "maxCompletionTokens": {"type": ["integer", "null"], "minimum": 0},
                    "seed": {"type": ["integer", "null"], "minimum": 0},
                    "topK": {"type": ["integer", "null"], "description": "Forwarded as written."},
                    "repetitionPenalty": {"type": ["number", "null"], "description": "Forwarded as written."},
                    "stop": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Forwarded as written."},
                    "tools": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/Tool"}, "description": "Function calling (HCX-005, HCX-007); forwarded as written."},
                    "toolChoice": {"description": "auto, none, or a named function; forwarded as written."},
                    "responseFormat": {"type": ["object", "null"], "description": "Structured output ({type: json, schema}); forwarded as written."},
                    "thinking": {"type": ["object", "null"], "description": "HCX-007 reasoning ({effort}); answers carry message.thinkingContent."}
                }
            },
            "OpenAiChatRequest": {
                "type": "object", "required": ["model", "messages"],
                "description": "To an OpenAI-compatible model, the body goes upstream as written, every field (documented or not) byte for byte; sluice replaces only `model` (the configured upstream id), the messages (after auto_trim, kept messages byte for byte) and the maximum (max_tokens and max_completion_tokens, clamped to the model's profile; max_tokens added when neither is set). The answer comes back as written but for `model`. To a CLOVA Studio model the fields are mapped (top_p to topP, tool_choice to toolChoice, response_format json_schema to responseFormat, reasoning_effort to thinking.effort, stop, tools, tool_calls and tool_call_id in messages); a field without a counterpart (n > 1, logprobs, top_logprobs, presence_penalty, frequency_penalty, logit_bias, parallel_tool_calls, tool_choice required, response_format json_object, modalities, audio, prediction, web_search_options, user, metadata, store, service_tier, a message's name) is 40001 naming it. To a local model only model, messages, temperature, top_p, the maximum, seed and stream are taken: any other field is 40001 naming it.",
                "properties": {
                    "tools": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/Tool"}},
                    "tool_choice": {"description": "auto, none, required, or a named function."},
                    "response_format": {"type": ["object", "null"]},
                    "stop": {"type": ["string", "array", "null"], "items": {"type": "string"}},
                    "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 16},
                    "stream_options": {"type": ["object", "null"]},
                    "model": {"type": "string"},
                    "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}},
                    "temperature": {"type": ["number", "null"]}, "top_p": {"type": ["number", "null"]},
                    "max_tokens": {"type": ["integer", "null"], "minimum": 0}, "max_completion_tokens": {"type": ["integer", "null"], "minimum": 0},
                    "seed": {"type": ["integer", "null"], "minimum": 0}, "stream": {"type": ["boolean", "null"]}
                }
            },
            "Tool": {
                "type": "object",
                "required": ["type", "function"],
                "additionalProperties": true,
                "properties": {
                    "type": {"const": "function"},
                    "function": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": true,
                        "properties": {"name": {"type": "string"}, "description": {"description": "What the function does, forwarded as written"}, "parameters": {"description": "The arguments' JSON Schema, forwarded as written: the model's API judges it"}}
                    }
                }
            }
    })
}

fn components_without_chat_requests() -> Value {
    json!({
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Required when the server has API keys configured."}
        },
        "parameters": {
            "RequestId": {
                "name": "X-NCP-CLOVASTUDIO-REQUEST-ID", "in": "header", "required": false,
                "description": "Echoed on the response; generated (UUID v4) when absent. A value that is empty, over 256 bytes or not visible ASCII is not refused: it is replaced by a generated one (so logs stay bounded).",
                "schema": {"type": "string"}
            }
        },
        "headers": {
            "RequestId": {"description": "The request id, echoed or generated.", "schema": {"type": "string"}}
        },
        "schemas": {
            "TokenizeV3Request": {
                "type": "object", "required": ["messages"],
                "properties": {"messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}}}
            },
            "ClovaChatResult": {
                "type": "object",
                "properties": {
                    "message": {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string"}}},
                    "finishReason": {"type": "string"}, "stopReason": {"type": "string"},
                    "usage": {"type": "object"}, "inputLength": {"type": "integer"}, "outputLength": {"type": "integer"}
                }
            },
            "OpenAiChatResult": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "model": {"type": "string"},
                               "choices": {"type": "array"}, "usage": {"type": "object"}}
            },
            "AuthTokenResult": {
                "type": "object",
                "properties": {"accessToken": {"type": "string"}, "token": {"type": "string"},
                               "createdAt": {"type": "string", "format": "date-time"}, "expiresAt": {"type": "string", "format": "date-time"}}
            },
            "OpenAiError": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["message", "type", "code"], "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"},
                    "code": {"type": "string", "description": "The envelope code (50200, ...), or model_not_found as OpenAI's own"}}}}
            },
            "Envelope": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"$ref": "#/components/schemas/Status"},
                    "result": {"description": "The result; absent on error."}
                }
            },
            "Status": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[0-9]{5}$", "example": "20000"},
                    "message": {"type": "string", "example": "OK"}
                }
            },
            "Role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]},
            "Message": {
                "type": "object",
                "required": ["role"],
                "additionalProperties": true,
                "not": {"anyOf": [{"required": ["toolCalls", "tool_calls"]}, {"required": ["toolCallId", "tool_call_id"]}]},
                "description": "A chat message in CLOVA Studio's spelling (`toolCalls`, `toolCallId`) or OpenAI's (`tool_calls`, `tool_call_id`), one spelling per field (both in one message: 40001, duplicate field). Fields sluice does not know are kept: every message comes back exactly as it was sent. Counted as the README's \"How messages are counted\" says.",
                "properties": {
                    "role": {"$ref": "#/components/schemas/Role"},
                    "content": {
                        "description": "Text; `null` or absent reads as empty; text parts are joined with newlines. Image parts are kept as written and counted by the profile's image rule. Parts of other types are refused with 40001, naming the type.",
                        "oneOf": [
                            {"type": "string"},
                            {"type": "null"},
                            {"type": "array", "items": {"oneOf": [
                                {"$ref": "#/components/schemas/TextPart"},
                                {"$ref": "#/components/schemas/ImagePart"}
                            ]}}
                        ]
                    },
                    "name": {"type": ["string", "null"], "description": "The participant's name, counted with the role."},
                    "toolCalls": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/ToolCall"}},
                    "tool_calls": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/ToolCall"}},
                    "toolCallId": {"type": ["string", "null"]},
                    "tool_call_id": {"type": ["string", "null"]}
                }
            },
            "TextPart": {
                "type": "object",
                "required": ["type", "text"],
                "additionalProperties": true,
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}}
            },
            "ImagePart": {
                "type": "object",
                "required": ["type"],
                "anyOf": [{"required": ["image_url"]}, {"required": ["imageUrl"]}, {"required": ["dataUri"]}],
                "additionalProperties": true,
                "description": "An image: OpenAI's `image_url` object (`url`, `detail`) or CLOVA's `imageUrl` / `dataUri`; forwarded as written (renamed across wires), counted by the profile's image rule (`detail: low` at the low rate).",
                "properties": {"type": {"const": "image_url"}}
            },
            "ToolCall": {
                "type": "object",
                "required": ["id", "function"],
                "additionalProperties": true,
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string", "default": "function"},
                    "function": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": true,
                        "properties": {
                            "name": {"type": "string"},
                            "arguments": {"description": "A JSON object (CLOVA) or a string holding JSON (OpenAI)."}
                        }
                    }
                }
            },
            "SlidingRequest": {
                "type": "object",
                "required": ["messages"],
                "properties": {
                    "maxTokens": {"type": "integer", "minimum": 1, "maximum": max_output_bound(), "default": 100,
                        "description": max_output_description()},
                    "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"},
                        "description": "Roles system, user, assistant (the hosted v1 endpoint's three) and `tool` (ours): a tool result always stays with its call."}
                }
            },
            "TrimReport": {
                "type": "object",
                "properties": {
                    "tokensBefore": {"type": ["integer", "null"]},
                    "tokensAfter": {"type": "integer"},
                    "maxTokens": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "turnsDropped": {"type": "integer"},
                    "messagesDropped": {"type": "integer"},
                    "counts": {"type": "array", "items": {"type": "integer"}}
                }
            },
            "SlidingResult": {
                "type": "object",
                "required": ["messages"],
                "properties": {
                    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
                    "report": {"$ref": "#/components/schemas/TrimReport"}
                }
            },
            "TokenizeRequest": {
                "type": "object",
                "required": ["messages"],
                "properties": {
                    "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}}
                }
            },
            "RouteRequest": {
                "type": "object",
                "required": ["query"],
                "properties": {
                    "query": {"type": "string", "minLength": 1, "pattern": NOT_BLANK,
                        "description": "Not empty nor only whitespace (40004)."},
                    "chatHistory": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}
                }
            },
            "FilterResult": {
                "type": "object",
                "required": ["result", "called"],
                "properties": {
                    "result": {"type": "array", "items": {"type": "string"}},
                    "called": {"type": "boolean"}
                }
            },
            "RouteResult": {
                "type": "object",
                "required": ["domain", "blockedContent", "safety", "usage"],
                "properties": {
                    "domain": {"type": "object", "required": ["result", "called"], "properties": {
                        "result": {"type": "string", "description": "The domain, or \"\" when none matched."},
                        "called": {"type": "boolean"}
                    }},
                    "blockedContent": {"$ref": "#/components/schemas/FilterResult"},
                    "safety": {"$ref": "#/components/schemas/FilterResult"},
                    "usage": {"type": "object", "required": ["promptTokens", "completionTokens", "totalTokens"], "properties": {
                        "promptTokens": {"type": "integer"},
                        "completionTokens": {"type": "integer"},
                        "totalTokens": {"type": "integer"}
                    }},
                    "explanation": {"type": "object", "description": "Only with ?explain=true (ours)."}
                }
            },
            "TokenizeResult": {
                "type": "object",
                "required": ["messages"],
                "properties": {
                    "messages": {"type": "array", "items": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Message"},
                            {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}
                        ]
                    }},
                    "reply": {"type": "integer", "description": "Tokens of the reply prefix, counted once."},
                    "total": {"type": "integer", "description": "Sum of the counts plus reply."}
                }
            }
        }
    })
}

/// The `/user/practice/...` routes, from [`crate::PRACTICE_ROUTES`]. They keep
/// the original FastAPI conventions: plain bodies, `{"detail": ...}` errors.
fn practice_paths(paths: &mut Map<String, Value>) {
    for (method, path, summary, status) in crate::PRACTICE_ROUTES {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}}))
            .collect();
        let query = |name: &str, required: bool, schema: Value| json!({"name": name, "in": "query", "required": required, "schema": schema});
        if *path == "/user/practice/sessions/run" {
            parameters.push(query(
                "class_id",
                true,
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
            ));
        }
        if *method == "GET" && !path.ends_with('}') && *path != "/user/practice/me" {
            parameters.push(query(
                "page",
                false,
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX / 1024, "default": 1}),
            ));
            parameters.push(query(
                "size",
                false,
                json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
            ));
        }
        if path.ends_with("/stop") {
            parameters.push(query(
                "model_name",
                false,
                json!({"type": "string", "description": "The model to stop; every model when absent"}),
            ));
        }
        if *path == "/user/practice/sessions" && *method == "GET" {
            parameters.push(query(
                "class_id",
                false,
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
            ));
            parameters.push(query(
                "project_id",
                false,
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
            ));
        }
        let body = match (*method, *path) {
            ("POST", "/user/practice/sessions/run") => {
                Some(json!({"$ref": "#/components/schemas/PracticeRunRequest"}))
            }
            ("POST", p) if p.ends_with("/chat") => {
                Some(json!({"$ref": "#/components/schemas/PracticeChatRequest"}))
            }
            ("POST", p) if p.ends_with("/documents") => {
                parameters.push(query(
                    "file_name",
                    true,
                    json!({"type": "string", "minLength": 1, "pattern": NOT_BLANK}),
                ));
                parameters.push(query(
                    "format",
                    false,
                    json!({"enum": ["text", "markdown", "jsonl"]}),
                ));
                None
            }
            (method, p) => library_body(method, p),
        };
        let id = format!(
            "practice_{}_{}",
            method.to_lowercase(),
            path.trim_start_matches("/user/practice/")
                .replace(['/', '-'], "_")
                .replace(['{', '}'], "")
        );
        let mut responses = json!({
            "401": {"description": "Missing, invalid or revoked key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}},
            "404": {"description": "Not found, or not visible to the caller", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}},
            "422": {"description": "Validation error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationDetail"}}}}
        });
        responses["503"] = json!({
            "description": "The database is busy (SQLite's write lock held by another process past the busy timeout) or out of reach (PostgreSQL restarting); nothing half-stored, the request may be sent again",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}
        });
        if *method == "PATCH" && !path.starts_with("/user/practice/sessions") {
            responses["403"] = json!({"description": "The object may not move to that class: its owner does not belong there, or the caller may not write there",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}});
        }
        if path.ends_with("/documents") && *method == "POST" {
            responses["400"] = json!({"description": "The file is not UTF-8 text, or (jsonl) a line is not a JSON object with text",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}});
        }
        let ok = if *status == 204 {
            json!({"description": "Done"})
        } else if path.ends_with("/run") || path.ends_with("/chat") {
            responses["400"] = json!({"description": "Model not allowed or not configured, or the prompt blocked by the router"});
            responses["403"] = json!({"description": "Not a member of the class"});
            responses["502"] =
                json!({"description": "Every model failed; each model's error is listed"});
            responses["429"] = json!({"description": "Over a budget of the class or the student: refused before any model was called. The detail names the limit (tokens_per_day, tokens_per_week, runs_per_hour, cost_per_month), its scope (class or student), limit_value, used, remaining, requested and resets_at",
                "headers": {"Retry-After": {"description": "Seconds until the limit's period resets", "schema": {"type": "integer"}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}});
            json!({"description": "The turn, stored. With Accept: text/event-stream: started (with the run_id that stops models), token, model_done and result events; a failure before the models are called answers with its status and JSON body instead.",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PracticeRunResponse"}},
                               "text/event-stream": {"schema": {"$ref": "#/components/schemas/SseEvent"}}}})
        } else {
            json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}})
        };
        responses[status.to_string()] = ok;
        let mut op = json!({
            "operationId": id,
            "summary": summary,
            "tags": ["practice"],
            "security": [{"bearer": []}],
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(schema) = body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        } else if path.ends_with("/documents") && *method == "POST" {
            op["requestBody"] = json!({"required": true, "description": "The file's bytes (UTF-8 text, at most 8 MiB).",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}});
        }
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = op;
    }
}

/// The instructor routes, from [`crate::INSTRUCTOR_ROUTES`], in the practice
/// routes' conventions.
fn instructor_paths(paths: &mut Map<String, Value>) {
    let detail = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}});
    for (method, path, summary, status) in crate::INSTRUCTOR_ROUTES {
        let id_schema = json!({"type": "integer", "minimum": 1, "maximum": i64::MAX});
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": id_schema}))
            .collect();
        for (name, kind) in crate::instructor::query_parameters(path) {
            let schema = match *kind {
                "id" => id_schema.clone(),
                "boolean" => json!({"type": "boolean"}),
                "time" => {
                    json!({"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}],
                    "description": "A date (YYYY-MM-DD, UTC; as `to`, the whole day is in) or an RFC 3339 time"})
                }
                _ => json!({"type": "string", "minLength": 1, "pattern": NOT_BLANK}),
            };
            parameters
                .push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
        if crate::instructor::is_paged(path) {
            parameters.push(json!({"name": "page", "in": "query", "required": false,
                "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX / 1024, "default": 1}}));
            parameters.push(json!({"name": "size", "in": "query", "required": false,
                "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}));
        }
        let mut responses = json!({
            "401": {"description": "Missing, invalid or revoked key", "content": detail},
            "404": {"description": "No such class or session, or not one the caller instructs (the same answer for both)", "content": detail},
            "422": {"description": "Validation error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationDetail"}}}},
            "503": {"description": "The database is busy or out of reach; the request may be sent again",
                    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
                    "content": detail},
        });
        responses[status.to_string()] = json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}});
        if *method == "PUT" {
            responses["400"] = json!({"description": "A limit below 0", "content": detail});
        }
        let id = format!(
            "instructor_{}_{}",
            method.to_lowercase(),
            path.trim_start_matches("/user/practice/")
                .replace(['/', '-'], "_")
                .replace(['{', '}'], "")
        );
        let mut op = json!({
            "operationId": id,
            "summary": summary,
            "tags": ["instructor"],
            "security": [{"bearer": []}],
            "parameters": parameters,
            "responses": responses,
        });
        if *method == "PUT" {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BudgetLimits"}}}});
        }
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = op;
    }
}

/// The request body of a practice route that creates (`POST`) or changes
/// (`PATCH`) a stored object, or `None` for one without a body.
fn library_body(method: &str, path: &str) -> Option<Value> {
    let object = path
        .trim_start_matches("/user/practice/")
        .split('/')
        .next()
        .unwrap_or_default();
    let schema = match (method, object) {
        (_, "knowledge") if path.ends_with("/search") => "PracticeSearch",
        ("PATCH", "sessions") => "PracticeSessionPatch",
        ("POST", "agents") => "PracticeAgent",
        ("PATCH", "agents") => "PracticeAgentPatch",
        ("POST", "projects" | "knowledge") => "PracticeNamed",
        ("PATCH", "projects" | "knowledge") => "PracticeNamedPatch",
        ("POST", "few-shot-examples") => "PracticeFewShot",
        ("PATCH", "few-shot-examples") => "PracticeFewShotPatch",
        _ => return None,
    };
    Some(json!({ "$ref": format!("#/components/schemas/{schema}") }))
}

/// The components, practice schemas included.
fn all_components() -> Value {
    let mut components = components();
    if let (Some(schemas), Value::Object(extra)) =
        (components["schemas"].as_object_mut(), practice_schemas())
    {
        schemas.extend(extra);
        if let Value::Object(votes) = crate::votes::schemas() {
            schemas.extend(votes);
        }
        schemas.insert("SseEvent".into(), sse_event_schema());
        schemas.insert("BudgetLimits".into(), budget_limits_schema());
    }
    components
}

/// The limits of a class or a student: each one `null` (or absent) for no limit.
fn budget_limits_schema() -> Value {
    let count = |what: &str| json!({"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX / 2, "description": what});
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "tokens_per_day": count("Tokens (prompt and answer) per UTC day"),
            "tokens_per_week": count("Tokens per ISO week (from Monday 00:00 UTC)"),
            "runs_per_hour": count("Runs (a new session or a next turn) per hour"),
            "cost_per_month": {"type": ["number", "null"], "minimum": 0, "maximum": 1e15,
                "description": "Cost per calendar month, in the unit of the models' prices (input_price_per_million, output_price_per_million)"}
        }
    })
}

/// One server-sent event of a `text/event-stream` answer, its fields as the
/// SSE format names them: what a client (and Schemathesis) reads each event as.
fn sse_event_schema() -> Value {
    json!({
        "description": "One server-sent event of a text/event-stream answer: data is JSON text, or [DONE]",
        "type": "object", "required": ["data"],
        "properties": {
            "event": {"type": "string"}, "data": {"type": "string"},
            "id": {"type": "string"}, "retry": {"type": "integer"}
        }
    })
}

/// Schemas of the practice routes: exactly what `sluice_practice`'s parsers
/// accept (strings are trimmed before their length is checked, so a required
/// one must hold a character that is not white space).
pub(crate) fn practice_schemas() -> Value {
    use sluice_practice::{
        FORMATS, LENGTH_PRESETS, MAX_IDS, MAX_MODELS, MAX_PROMPT_CHARS as MAX_PROMPT,
        MAX_TEXT_CHARS as MAX_TEXT, STYLE_PRESETS,
    };
    let text = |min: usize, max: usize| {
        if min == 0 {
            json!({"type": ["string", "null"], "maxLength": max})
        } else {
            json!({"type": "string", "minLength": min, "maxLength": max, "pattern": NOT_BLANK})
        }
    };
    let optional_text =
        |max: usize| json!({"type": ["string", "null"], "maxLength": max, "pattern": NOT_BLANK});
    let id = json!({"type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX});
    let ids = json!({"type": ["array", "null"], "maxItems": MAX_IDS, "items": {"type": "integer", "minimum": 1, "maximum": i64::MAX}});
    let nullable_enum = |options: &[&str]| {
        let mut values: Vec<Value> = options.iter().map(|o| json!(o)).collect();
        values.push(Value::Null);
        json!({ "enum": values })
    };
    let style_params = json!({"type": ["object", "null"], "additionalProperties": false, "properties": {
        "format": nullable_enum(&FORMATS),
        "persona": text(0, 2_000), "hint_mode": {"type": ["boolean", "null"]},
        "self_check": {"type": ["boolean", "null"]}, "system_prompt": text(0, MAX_TEXT)}});
    let tokens = json!({"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX});
    let generation_params = json!({"type": ["object", "null"], "additionalProperties": false,
        "description": "max_completion_tokens and max_tokens are one setting under two names (max_completion_tokens wins when both are given); response_length_preset custom needs one of them",
        "properties": {
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "response_length_preset": nullable_enum(&LENGTH_PRESETS),
            "max_completion_tokens": tokens, "max_tokens": tokens,
            "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX}},
        "if": {"required": ["response_length_preset"], "properties": {"response_length_preset": {"const": "custom"}}},
        "then": {"anyOf": [
            {"required": ["max_tokens"], "properties": {"max_tokens": {"type": "integer"}}},
            {"required": ["max_completion_tokens"], "properties": {"max_completion_tokens": {"type": "integer"}}}]}});
    let agent = |required: bool| {
        let mut schema = json!({"type": "object", "additionalProperties": false, "properties": {
            "name": text(1, 100), "instructions": text(0, MAX_TEXT), "model_name": optional_text(200),
            "style_preset": nullable_enum(&STYLE_PRESETS), "style_params": style_params,
            "generation_params": generation_params, "class_id": id}});
        if required {
            schema["required"] = json!(["name"]);
        }
        schema
    };
    let named = |required: bool| {
        let mut schema = json!({"type": "object", "additionalProperties": false, "properties": {
            "name": text(1, 200), "description": text(0, 10_000), "class_id": id}});
        if required {
            schema["required"] = json!(["name"]);
        }
        schema
    };
    let few_shot = |required: bool| {
        let mut schema = json!({"type": "object", "additionalProperties": false, "properties": {
            "input": text(1, MAX_TEXT), "output": text(1, MAX_TEXT), "note": text(0, 10_000), "class_id": id}});
        if required {
            schema["required"] = json!(["input", "output"]);
        }
        schema
    };
    let mut run_request = json!({
        "type": "object", "additionalProperties": false, "required": ["prompt_text"],
        "properties": {
            "prompt_text": text(1, MAX_PROMPT),
            "model_names": {"type": ["array", "null"], "maxItems": MAX_MODELS, "items": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_BLANK},
                "description": "Models of the class (null or empty: the class's primary model, or the agent's); a model the class does not allow or the server does not serve is 400"},
            "agent_id": id,
            "project_id": id,
            "knowledge_ids": ids,
            "style_preset": nullable_enum(&STYLE_PRESETS),
            "style_params": style_params,
            "generation_params": generation_params,
            "few_shot_example_ids": ids,
            "blind": {"type": ["boolean", "null"], "description": "A blind comparison (two or more models): the answers come labelled A, B, … in a random order, and model_name holds the label (session_model_id 0, request null) until the turn has a vote (POST .../turns/{turn_id}/vote)"}
        }
    });
    run_request["properties"]["style_preset"]["description"] = json!(
        "accurate: temperature 0.2, top_p 0.8, precise answers; balanced: 0.7, 0.9; creative: 1.0, 0.95, imaginative answers with alternatives; custom: from style_params and generation_params"
    );
    run_request["properties"]["project_id"]["description"] = json!("run only");
    run_request["properties"]["knowledge_ids"]["description"] = json!("run only");
    // A next turn: the session keeps its project and knowledge bases.
    let mut chat_request = run_request.clone();
    if let Some(properties) = chat_request["properties"].as_object_mut() {
        properties.remove("project_id");
        properties.remove("knowledge_ids");
    }
    json!({
        "PracticeAgent": agent(true),
        "PracticeAgentPatch": agent(false),
        "PracticeNamed": named(true),
        "PracticeNamedPatch": named(false),
        "PracticeFewShot": few_shot(true),
        "PracticeFewShotPatch": few_shot(false),
        "PracticeSearch": {"type": "object", "additionalProperties": false, "required": ["knowledge_ids", "query"], "properties": {
            "knowledge_ids": {"type": "array", "minItems": 1, "maxItems": MAX_IDS, "items": {"type": "integer", "minimum": 1, "maximum": i64::MAX}},
            "query": text(1, 10_000), "k": {"type": ["integer", "null"], "minimum": 1, "maximum": 100}}},
        "PracticeSessionPatch": {"type": "object", "additionalProperties": false, "properties": {
            "title": optional_text(200), "session_title": optional_text(200), "project_id": id}},
        "Detail": {"type": "object", "required": ["detail"], "properties": {"detail": {}}},
        "ValidationDetail": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "array", "items": {
            "type": "object", "required": ["loc", "msg", "type"],
            "properties": {"loc": {"type": "array", "items": {"type": ["string", "integer"]}}, "msg": {"type": "string"}, "type": {"type": "string"}}}}}},
        "PracticeRunRequest": run_request,
        "PracticeChatRequest": chat_request,
        "PracticeRunResponse": {
            "type": "object", "required": ["session_id", "prompt_text", "results"],
            "properties": {
                "session_id": {"type": "integer"}, "prompt_text": {"type": "string"},
                "session_title": {"type": ["string", "null"]},
                "turn_id": {"type": "integer"}, "blind": {"type": "boolean"},
                "results": {"type": "array", "items": {"type": "object", "required": [
                    "session_model_id", "model_name", "response_id", "prompt_text", "response_text",
                    "created_at", "token_usage", "latency_ms", "is_primary", "generation_params"]}}
            }
        }
    })
}

/// A string with at least one character that is not Unicode `White_Space`
/// (what `str::trim` removes): the router refuses blank queries (`40004`).
/// Spelled out, not `\S`: regex engines disagree on `\s`.
const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// The largest `maxTokens` any built-in profile accepts: each model's own bound
/// is its profile's `max_output` (`40001` above it).
fn max_output_bound() -> u32 {
    sluice_core::builtin_profiles()
        .iter()
        .map(|p| p.max_output)
        .max()
        .unwrap_or(4096)
}

/// Each built-in profile's `maxTokens` bound, in words.
fn max_output_description() -> String {
    let limits: Vec<String> = sluice_core::builtin_profiles()
        .iter()
        .map(|p| format!("{} {}", p.name, p.max_output))
        .collect();
    format!(
        "Tokens reserved for the reply: 1 up to the model profile's max output ({}; profiles added by \
         configuration have their own).",
        limits.join(", ")
    )
}
