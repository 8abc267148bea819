//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand and
//! expanded over [`PREFIXES`] from the same tables the router is built from
//! ([`routes`](crate::routes)): the envelope API's operations and schemas, then
//! the practice API's, the instructor side's and the votes'.

mod endpoints;
mod instructor;
mod practice;
mod schemas;
mod votes;

use serde_json::{Map, Value, json};

use crate::routes::{API, Endpoint, PREFIXES};

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
            let mut op = endpoints::operation(endpoint, path, names);
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
    practice::paths(&mut paths);
    votes::paths(&mut paths);
    instructor::paths(&mut paths);
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

pub(super) fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}})
}

fn components() -> Value {
    let mut components = schemas::components_without_chat_requests();
    if let (Some(schemas), Value::Object(chat)) = (
        components["schemas"].as_object_mut(),
        schemas::chat_request_schemas(),
    ) {
        schemas.extend(chat);
    }
    components
}

/// The components, practice schemas included.
fn all_components() -> Value {
    let mut components = components();
    if let (Some(schemas), Value::Object(extra)) =
        (components["schemas"].as_object_mut(), practice::schemas())
    {
        schemas.extend(extra);
        if let Value::Object(votes) = votes::schemas() {
            schemas.extend(votes);
        }
        schemas.insert("SseEvent".into(), sse_event_schema());
        schemas.insert("BudgetLimits".into(), instructor::budget_limits_schema());
    }
    components
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

/// A string with at least one character that is not Unicode `White_Space`
/// (what `str::trim` removes): the router refuses blank queries (`40004`).
/// Spelled out, not `\S`: regex engines disagree on `\s`.
pub(super) const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
