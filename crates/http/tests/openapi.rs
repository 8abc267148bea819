//! /openapi.json lists exactly the served routes, and is a well-formed document.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use crate::support::*;

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A concrete URL for a templated path.
fn instantiate(path: &str) -> String {
    path.replace("{modelName}", "HCX-003")
        .replace("{appId}", "app-1")
        .replace("{router-id}", "sample")
        .replace("{version}", "1")
}

#[tokio::test]
async fn openapi_lists_exactly_the_served_routes() {
    let app = default_app();
    let reply = call(&app, "GET", "/openapi.json", &[], "").await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert_eq!(doc, sluice_http::openapi_document());
    let served: BTreeSet<_> = sluice_http::served_routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    let practice: BTreeSet<_> = sluice_http::PRACTICE_ROUTES
        .iter()
        .chain(sluice_http::VOTE_ROUTES)
        .chain(sluice_http::INSTRUCTOR_ROUTES)
        .map(|(m, p, ..)| (m.to_string(), p.to_string()))
        .collect();
    let (user, api): (BTreeSet<_>, BTreeSet<_>) = documented(&doc)
        .into_iter()
        .partition(|(_, p)| p.starts_with("/user/practice/"));
    assert_eq!(api, served);
    assert_eq!(
        user, practice,
        "every practice route is documented, and only those"
    );
    // Each documented route is really served: not the 40400 fallback, not 40500.
    for (method, path) in &served {
        let reply = call(
            &app,
            method,
            &instantiate(path),
            &[],
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
        assert!(
            !matches!(reply.status.as_u16(), 404 | 405),
            "{method} {path}: {}",
            reply.status
        );
        // The other method is not.
        let other = if method == "GET" { "POST" } else { "GET" };
        let reply = call(&app, other, &instantiate(path), &[], "").await;
        assert_eq!(reply.status, 405, "{other} {path}");
    }
    // And paths next to them are not.
    for path in [
        "/v1/api-tools/sliding/chat-messages",
        "/v2/api-tools/chat-tokenize/HCX-003",
        "/other/v1/api-tools/chat-tokenize/HCX-003",
    ] {
        assert_eq!(
            call(&app, "POST", path, &[], "{}").await.code(),
            "40400",
            "{path}"
        );
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("local ref: {reference}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

fn check_refs(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref") {
                resolve(doc, r.as_str().expect("$ref is a string"));
            }
            map.values().for_each(|v| check_refs(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
        _ => {}
    }
}

#[test]
fn openapi_document_validates() {
    let doc = sluice_http::openapi_document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    check_refs(&doc, &doc);
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post", "put", "delete", "patch"].contains(&method.as_str()),
                "{method}"
            );
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: operationId"));
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty());
            for (status, response) in responses {
                assert!(
                    status == "default" || status.parse::<u16>().is_ok(),
                    "{status}"
                );
                assert!(response["description"].is_string(), "{path} {status}");
            }
            // Every `{param}` of the path is declared as a required path parameter.
            let declared: HashSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            if p.get("$ref").is_some() {
                                resolve(&doc, p["$ref"].as_str().unwrap())
                            } else {
                                p
                            }
                        })
                        .filter(|p| p["in"] == "path")
                        .inspect(|p| assert_eq!(p["required"], true))
                        .map(|p| p["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let templated: HashSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_string)
                .collect();
            assert_eq!(declared, templated, "{method} {path}");
            if method == "post" && path.ends_with("/documents") {
                // A document is uploaded as the raw file.
                assert!(
                    op["requestBody"]["content"]["application/octet-stream"]["schema"].is_object(),
                    "{path}"
                );
            } else if method == "post" && !path.ends_with("/stop") {
                // Stopping a run takes no body: the path and query say it all.
                assert!(
                    op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{path}"
                );
            }
        }
    }
}

/// The document's limits are the profiles' limits, not constants.
#[test]
fn max_tokens_bounds_come_from_the_profiles() {
    let doc = sluice_http::openapi_document();
    let max_tokens = &doc["components"]["schemas"]["SlidingRequest"]["properties"]["maxTokens"];
    let profiles = sluice_core::builtin_profiles();
    let largest = profiles.iter().map(|p| p.max_output).max().unwrap();
    assert_eq!(max_tokens["maximum"], largest, "{max_tokens}");
    let description = max_tokens["description"].as_str().unwrap();
    for p in &profiles {
        assert!(
            description.contains(&format!("{} {}", p.name, p.max_output)),
            "{description}"
        );
    }
}

/// The check every in-process call makes (`support::accepted_by_the_spec`)
/// refuses what the document refuses.
#[test]
#[should_panic(expected = "the server accepted a body its OpenAPI schema refuses")]
fn the_spec_check_can_fail() {
    crate::support::accepted_by_the_spec(
        "POST",
        "/v1/api-tools/sliding/chat-messages/HCX-003",
        br#"{"messages":[{"role":"user","content":5}]}"#,
    );
}

#[test]
fn the_spec_check_accepts_both_spellings_and_parts() {
    crate::support::accepted_by_the_spec(
        "POST",
        "/v1/api-tools/sliding/chat-messages/HCX-003?tools=true",
        br#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}],"name":"kim","x":1},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c","content":"ok"}]}"#,
    );
}

/// What Schemathesis found (issue 12, point 4), each answered as the document
/// says: boolean query flags are true or false (else 40001), `maxTokens` is a
/// JSON Schema integer (so `100.0` is one), a blank query is outside the
/// schema, and `{modelName}` lists the server's models.
#[tokio::test]
async fn the_server_answers_as_the_document_says() {
    let app = default_app();
    let json = [("content-type", "application/json")];
    let route = r#"{"query":"내일 서울 날씨 어때?"}"#;
    for (query, code) in [
        ("", "20000"),
        ("?explain=true", "20000"),
        ("?explain=false", "20000"),
        ("?explain=1", "40001"),
        ("?explain", "40001"),
    ] {
        let reply = call(&app, "POST", &format!("{ROUTE}{query}"), &json, route).await;
        assert_eq!(reply.code(), code, "{query}: {}", reply.message());
    }
    let reply = call(
        &app,
        "POST",
        &format!("{SLIDING}?tools=maybe"),
        &json,
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.code(), "40001", "{}", reply.message());
    for (max, code) in [
        ("100.0", "20000"),
        ("100", "20000"),
        ("100.5", "40001"),
        ("1e300", "40001"),
        ("18446744073709551615", "40001"),
    ] {
        let body =
            format!(r#"{{"maxTokens":{max},"messages":[{{"role":"user","content":"hi"}}]}}"#);
        let reply = call(&app, "POST", SLIDING, &json, body).await;
        assert_eq!(reply.code(), code, "{max}: {}", reply.message());
    }
    let doc = sluice_http::openapi_document();
    let query = &doc["components"]["schemas"]["RouteRequest"]["properties"]["query"];
    assert_eq!(query["minLength"], 1);
    let blank = pattern_refuses_blank(query["pattern"].as_str().unwrap());
    assert!(blank, "the pattern refuses blank strings");
    let sliding = &doc["paths"]["/v1/api-tools/sliding/chat-messages/{modelName}"]["post"];
    let model = sliding["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "modelName")
        .unwrap();
    let names: Vec<&str> = model["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"HCX-003") && names.contains(&"HCX-007"),
        "{names:?}"
    );
}

/// The router's blank-query pattern is one negated character class: every
/// character `str::trim` removes is in it, so a blank string cannot match.
fn pattern_refuses_blank(pattern: &str) -> bool {
    let whitespace: Vec<char> = (0..=0x3000u32)
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace())
        .collect();
    pattern.starts_with("[^")
        && pattern.ends_with(']')
        && whitespace.iter().all(|c| {
            let escaped = format!("\\u{:04x}", *c as u32);
            pattern.contains(&escaped)
                || matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
                || in_range(pattern, *c)
        })
}

fn in_range(pattern: &str, c: char) -> bool {
    // The one range in the class: \u2000-\u200a.
    pattern.contains("\\u2000-\\u200a") && ('\u{2000}'..='\u{200a}').contains(&c)
}
