//! The schemas of the envelope API: requests, results, the envelope and
//! errors of the CLOVA Studio-compatible tools and the gateway.

use serde_json::{Value, json};

use super::NOT_BLANK;

/// The gateway's request schemas (apart: one `json!` holding every schema
/// passes the macro's recursion limit).
pub(super) fn chat_request_schemas() -> Value {
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

pub(super) fn components_without_chat_requests() -> Value {
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
