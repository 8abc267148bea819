//! The instructor side's operations and the budget limits' schema.

use serde_json::{Map, Value, json};

use super::NOT_BLANK;
use crate::routes::INSTRUCTOR_ROUTES;

/// The instructor routes, from [`INSTRUCTOR_ROUTES`], in the practice
/// routes' conventions.
pub(super) fn paths(paths: &mut Map<String, Value>) {
    let detail = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}});
    for (method, path, summary, status) in INSTRUCTOR_ROUTES {
        let id_schema = json!({"type": "integer", "minimum": 1, "maximum": i64::MAX});
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": id_schema}))
            .collect();
        for (name, kind) in query_parameters(path) {
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
        if is_paged(path) {
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

/// The query parameters each route reads, beyond `page` and `size`: for the
/// OpenAPI document.
fn query_parameters(path: &str) -> &'static [(&'static str, &'static str)] {
    const SESSIONS: &[(&str, &str)] = &[
        ("student_id", "id"),
        ("model_name", "string"),
        ("agent_id", "id"),
        ("from", "time"),
        ("to", "time"),
        ("has_errors", "boolean"),
    ];
    const USAGE: &[(&str, &str)] = &[
        ("student_id", "id"),
        ("model_name", "string"),
        ("from", "time"),
        ("to", "time"),
    ];
    match path {
        "/user/practice/classes/{class_id}/sessions" => SESSIONS,
        "/user/practice/session-reads" => &[("session_id", "id")],
        p if p.contains("/usage") => USAGE,
        _ => &[],
    }
}

/// Whether a route's answer is one page of a list (`page`, `size`).
fn is_paged(path: &str) -> bool {
    matches!(
        path,
        "/user/practice/classes/{class_id}/sessions"
            | "/user/practice/session-reads"
            | "/user/practice/classes/{class_id}/usage/events"
    )
}

/// The limits of a class or a student: each one `null` (or absent) for no limit.
pub(super) fn budget_limits_schema() -> Value {
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
