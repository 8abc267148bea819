//! Messages come back from the server exactly as they were sent: the kept
//! messages of the sliding window and the counted messages of the token
//! calculator are the request's own bytes (unknown fields, `null`, parts,
//! both spellings of the tool fields, key order and spacing).

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use sluice_core::{Profiles, WireMessage};

use crate::support::{SLIDING, TOKENIZE, call, default_app};

#[path = "../../core/tests/wire_gen.rs"]
mod wire_gen;

#[derive(Deserialize)]
struct Envelope {
    result: Messages,
}

#[derive(Deserialize)]
struct Messages {
    messages: Vec<Box<RawValue>>,
}

/// POSTs `body` and returns the result's messages as raw JSON text.
fn messages_of(path: &str, body: String) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = runtime.block_on(call(
        &default_app(),
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    ));
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let envelope: Envelope = serde_json::from_slice(&reply.body).unwrap();
    envelope
        .result
        .messages
        .iter()
        .map(|m| m.get().to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn kept_and_counted_messages_are_the_request_bytes(
        messages in prop::collection::vec(wire_gen::message_json(), 1..10),
        // Near the 4,096-token limit, so that most cases drop turns.
        max_tokens in 3900i64..4090,
    ) {
        let list = messages.join(" , ");
        let parsed: Vec<WireMessage> = serde_json::from_str(&format!("[{list}]")).unwrap();
        let model = Profiles::builtin().model("HCX-003").unwrap();

        if let Ok(trim) = model.trim(&parsed, max_tokens) {
            let kept = messages_of(
                &format!("{SLIDING}?tools=true"),
                format!(r#"{{"maxTokens":{max_tokens},"messages":[{list}]}}"#),
            );
            let expected: Vec<&str> = trim.kept_indices().map(|i| messages[i].as_str()).collect();
            prop_assert_eq!(kept, expected);
        }

        let counted = messages_of(TOKENIZE, format!(r#"{{"messages":[{list}]}}"#));
        let counts = model.count(&parsed).per_message;
        for ((out, sent), count) in counted.iter().zip(&messages).zip(counts) {
            // The message as sent, `count` added before its closing brace.
            let body = sent.trim_end().strip_suffix('}').unwrap().trim_end();
            let comma = if body == "{" { "" } else { "," };
            prop_assert_eq!(out, &format!("{body}{comma}\"count\":{count}}}"));
        }
    }
}
