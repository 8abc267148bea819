//! The operations and schemas of blind votes, ratings, the leaderboard and
//! the export.

use serde_json::{Map, Value, json};
use sluice_practice::{LABELS, MAX_COMMENT_CHARS, VERDICTS};

use crate::practice::MAX_RESAMPLES;
use crate::routes::VOTE_ROUTES;

/// The OpenAPI operations of [`VOTE_ROUTES`].
pub(super) fn paths(paths: &mut Map<String, Value>) {
    let detail = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}});
    let with = |description: &str| {
        let mut d = detail.clone();
        d["description"] = json!(description);
        d
    };
    for (method, path, summary, status) in VOTE_ROUTES {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}}))
            .collect();
        let query = |name: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "schema": schema});
        let mut responses = json!({
            "401": with("Missing, invalid or revoked key"),
            "404": with("Not found, or not visible to the caller"),
            "422": {"description": "Validation error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationDetail"}}}},
            "503": {"description": "The database is busy or out of reach; the request may be sent again",
                    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}}
        });
        let mut body = None;
        let ok = if path.ends_with("/vote") {
            responses["400"] = with("Not a blind turn, or no answer with that label");
            responses["409"] = with("The turn already has a vote");
            body = Some(
                json!({"type": "object", "additionalProperties": false, "required": ["verdict"],
                "properties": {
                    "verdict": {"enum": VERDICTS, "description": "best: the answer with `label` is best; tie: all as good; all_bad: all bad (a tie for the leaderboard); skip: no verdict, the names are shown all the same"},
                    "label": {"enum": LABELS, "description": "With verdict best only"}},
                "if": {"properties": {"verdict": {"const": "best"}}},
                "then": {"required": ["label"], "properties": {"label": {"type": "string"}}},
                "else": {"properties": {"label": {"type": "null"}}}}),
            );
            json!({"description": "The vote, with every label's model", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PracticeVoteReveal"}}}})
        } else if path.ends_with("/rating") {
            body = Some(
                json!({"type": "object", "additionalProperties": false, "required": ["value"],
                "properties": {"value": {"enum": ["up", "down"]},
                    "comment": {"type": ["string", "null"], "maxLength": MAX_COMMENT_CHARS}}}),
            );
            json!({"description": "The rating", "content": {"application/json": {"schema": {"type": "object",
                "required": ["rating_id", "response_id", "value", "comment", "created_at"]}}}})
        } else if path.ends_with("/leaderboard") {
            responses["403"] = with("Not a member of the class");
            parameters.push(query("domain", json!({"type": "string", "maxLength": 30, "description": "The router's domain of the prompt (empty: prompts with none)"})));
            parameters.push(query(
                "agent_id",
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
            ));
            parameters.push(query(
                "style_preset",
                json!({"enum": sluice_practice::STYLE_PRESETS}),
            ));
            parameters.push(query(
                "resamples",
                json!({"type": "integer", "minimum": 0, "maximum": MAX_RESAMPLES, "default": 1000}),
            ));
            parameters.push(query(
                "seed",
                json!({"type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0}),
            ));
            json!({"description": "Best first. Ties count half a win to each side; all_bad is a tie; skips are counted, not fitted. Scores are centred natural-log strengths with a weak prior (one virtual tie per model against an anchor at 0); rating = 1000 + 400·score/ln 10; lower and upper are the 2.5th and 97.5th percentiles of a seeded bootstrap over votes.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PracticeLeaderboard"}}}})
        } else {
            responses["403"] = with("Not an instructor of the class");
            parameters.push(query(
                "format",
                json!({"enum": ["jsonl", "csv"], "default": "jsonl"}),
            ));
            parameters.push(query(
                "kind",
                json!({"enum": ["all", "results", "votes", "ratings"], "default": "all"}),
            ));
            json!({"description": "JSONL: one record a line with kind (result, vote, rating), id and messages (each line a request `sluice trim --jsonl` reads); CSV: one header for every kind",
                "content": {"application/jsonl": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}})
        };
        responses[status.to_string()] = ok;
        let id = format!(
            "practice_{}_{}",
            method.to_lowercase(),
            path.trim_start_matches("/user/practice/")
                .replace(['/', '-'], "_")
                .replace(['{', '}'], "")
        );
        let mut op = json!({
            "operationId": id, "summary": summary, "tags": ["practice"],
            "security": [{"bearer": []}], "parameters": parameters, "responses": responses,
        });
        if let Some(schema) = body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = op;
    }
}

/// Schemas of this module's answers.
pub(super) fn schemas() -> Value {
    let number = json!({"type": "number"});
    let interval = json!({"type": ["number", "null"]});
    json!({
        "PracticeVoteReveal": {"type": "object", "required": ["vote_id", "turn_id", "verdict", "labels"],
            "properties": {"vote_id": {"type": "integer"}, "turn_id": {"type": "integer"},
                "verdict": {"enum": VERDICTS}, "best_label": {"type": ["string", "null"]},
                "best_model": {"type": ["string", "null"]}, "domain": {"type": "string"},
                "created_at": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "object", "required": ["label", "model_name"],
                    "properties": {"label": {"type": "string"}, "model_name": {"type": "string"}}}}}},
        "PracticeLeaderboard": {"type": "object", "required": ["rows", "matrix", "total_votes", "skipped", "filter", "facets"],
            "properties": {
                "rows": {"type": "array", "items": {"type": "object",
                    "required": ["model_name", "score", "rating", "lower", "upper", "votes", "wins", "losses", "ties"],
                    "properties": {"model_name": {"type": "string"}, "score": number, "rating": number,
                        "lower": interval, "upper": interval, "votes": {"type": "integer"},
                        "wins": {"type": "integer"}, "losses": {"type": "integer"}, "ties": {"type": "integer"}}}},
                "matrix": {"type": "object", "required": ["models", "win_rate", "comparisons"]},
                "total_votes": {"type": "integer"}, "skipped": {"type": "integer"},
                "resamples": {"type": "integer"}, "seed": {"type": "integer"}, "prior_ties": number,
                "filter": {"type": "object"}, "facets": {"type": "object"}}}
    })
}
