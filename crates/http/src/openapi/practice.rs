//! The practice API's operations and schemas, in its FastAPI conventions.

use serde_json::{Map, Value, json};

use super::NOT_BLANK;
use crate::routes::PRACTICE_ROUTES;

/// The `/user/practice/...` routes, from [`PRACTICE_ROUTES`]. They keep
/// the original FastAPI conventions: plain bodies, `{"detail": ...}` errors.
pub(super) fn paths(paths: &mut Map<String, Value>) {
    for (method, path, summary, status) in PRACTICE_ROUTES {
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

/// Schemas of the practice routes: exactly what `sluice_practice`'s parsers
/// accept (strings are trimmed before their length is checked, so a required
/// one must hold a character that is not white space).
pub(super) fn schemas() -> Value {
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
