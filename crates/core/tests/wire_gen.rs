//! Arbitrary chat messages as JSON text, in the OpenAI and CLOVA shapes with
//! extra fields, for the round-trip tests of the library, the CLI and the
//! server (they include this file by path).

use proptest::prelude::*;
use serde_json::{Value, json};

/// A JSON value for an extra field: anything JSON can spell.
fn extra_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One message's JSON text, in the OpenAI or CLOVA shape, with extra fields,
/// in any order and spacing.
pub fn message_json() -> impl Strategy<Value = String> {
    let role = prop_oneof![
        Just("user"),
        Just("assistant"),
        Just("system"),
        Just("tool")
    ];
    let content = prop_oneof![
        "\\PC{0,40}".prop_map(Value::String),
        Just(Value::Null),
        prop::collection::vec(
            (
                "\\PC{0,10}",
                prop::option::of((any::<bool>(), prop::option::of("low|high|auto")))
            ),
            0..3
        )
        .prop_map(|parts| {
            // Text parts, and image parts in OpenAI's spelling or CLOVA's.
            Value::Array(
                parts
                    .into_iter()
                    .map(|(t, image)| match image {
                        None => json!({"type": "text", "text": t}),
                        Some((openai, detail)) => {
                            let key = if openai { "image_url" } else { "imageUrl" };
                            let mut url = json!({"url": format!("https://example.com/{t}")});
                            if let Some(detail) = detail {
                                url["detail"] = json!(detail);
                            }
                            json!({"type": "image_url", key: url})
                        }
                    })
                    .collect(),
            )
        }),
    ];
    let openai = any::<bool>();
    let extras = prop::collection::vec(("x-[a-z]{1,5}", extra_value()), 0..3);
    let spacing = prop_oneof![Just(""), Just(" "), Just("\n  ")];
    (
        role,
        content,
        openai,
        proptest::option::of("[a-zA-Z0-9_-]{1,8}"),
        extras,
        spacing,
        any::<bool>(),
    )
        .prop_map(|(role, content, openai, name, extras, sp, tools)| {
            let (calls_key, id_key) = if openai {
                ("tool_calls", "tool_call_id")
            } else {
                ("toolCalls", "toolCallId")
            };
            let mut fields = vec![
                ("role".to_string(), json!(role)),
                ("content".to_string(), content),
            ];
            if let Some(name) = name {
                fields.push(("name".into(), json!(name)));
            }
            if tools && role == "assistant" {
                let arguments = if openai {
                    json!("{\"q\": \"서울\"}")
                } else {
                    json!({"q": "서울"})
                };
                fields.push((
                    calls_key.into(),
                    json!([{"id": "c1", "type": "function",
                            "function": {"name": "f", "arguments": arguments}}]),
                ));
            }
            if role == "tool" {
                fields.push((id_key.into(), json!("c1")));
            }
            fields.extend(extras);
            // Written by hand, so that key order and spacing are the test's.
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{sp}{}", json!(k), v))
                .collect();
            format!("{{{sp}{}{sp}}}", body.join(&format!(",{sp}")))
        })
}
