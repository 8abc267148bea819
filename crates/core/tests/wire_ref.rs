//! `WireMessageRef` reads messages exactly as `WireMessage` does: the same
//! messages accepted with the same parts, the same refused in the same words,
//! the same trims.

use proptest::prelude::*;
use sluice_core::{Profiles, WireMessage, WireMessageRef, describe_json_error};

/// Both readings of a list of messages: `Ok` with each message's parts and
/// text, or the error text, which must be the same for both.
fn both(list: &str) -> Result<Vec<(sluice_core::Message, String)>, String> {
    let owned = serde_json::from_str::<Vec<WireMessage>>(list);
    let borrowed = serde_json::from_str::<Vec<WireMessageRef<'_>>>(list);
    match (owned, borrowed) {
        (Ok(owned), Ok(borrowed)) => {
            let owned: Vec<_> = owned
                .iter()
                .map(|m| (m.message().clone(), m.json().to_string()))
                .collect();
            let borrowed: Vec<_> = borrowed
                .iter()
                .map(|m| (m.view().to_message(), m.json().to_string()))
                .collect();
            assert_eq!(owned, borrowed, "{list}");
            Ok(owned)
        }
        (Err(owned), Err(borrowed)) => {
            assert_eq!(owned.to_string(), borrowed.to_string(), "{list}");
            // And the plain words a request with it gets, path included.
            Err(owned.to_string())
        }
        (owned, borrowed) => panic!(
            "{list}\n  WireMessage:    {:?}\n  WireMessageRef: {:?}",
            owned.map(|_| ()),
            borrowed.map(|_| ())
        ),
    }
}

/// The plain-words error of a request whose messages are read one way or the
/// other, with the path that `serde_path_to_error` finds.
fn request_error<M: serde::de::DeserializeOwned>(input: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Request<M> {
        messages: Vec<M>,
    }
    let mut de = serde_json::Deserializer::from_str(input);
    let error = serde_path_to_error::deserialize::<_, Request<M>>(&mut de).err()?;
    let path = error.path().to_string();
    Some(describe_json_error(input, error.inner(), &path))
}

#[test]
fn both_readings_refuse_the_same_messages_in_the_same_words() {
    let refused = [
        r#"[{"role":"user","content":5}]"#,
        r#"[{"role":"robot","content":"x"}]"#,
        r#"[{"role":5,"content":"x"}]"#,
        r#"[{"content":"x"}]"#,
        r#"[{"role":"user","content":"\ud800"}]"#,
        r#"[{"role":"user","content":"ok","name":"\udc00"}]"#,
        r#"[{"role":"user","content":[{"type":"text"}]}]"#,
        r#"[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x"}}]}]"#,
        r#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"\ud800"}}]}]"#,
        r#"[{"role":"user","content":[{"type":"text","text":"\ud800"}]}]"#,
        r#"[{"role":"user","content":"x","role":"user"}]"#,
        r#"[{"role":"assistant","tool_calls":[],"toolCalls":[]}]"#,
        r#"[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]"#,
        r#"[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{"a":"\ud800"}}}]}]"#,
        r#"[{"role":"tool","tool_call_id":7,"content":"x"}]"#,
        r#"[["user","hi"]]"#,
        r#"["hello"]"#,
        r#"[null]"#,
        r#"[{"role":"user","content":"ok"},{"role":"user","content":{}}]"#,
        // The plain shape read by hand, wrong in each way it can be.
        "[{\"role\":\"user\",\"content\":\"raw\ttab\"}]",
        r#"[{"role":"user","role":"user"}]"#,
        r#"[{"content":"a","content":"b"}]"#,
        r#"[{"role":"User","content":"a"}]"#,
        r#"[{"role":"user","content":"a","role":"tool"}]"#,
    ];
    for list in refused {
        assert!(both(list).is_err(), "{list} is refused");
        let request = format!(r#"{{"messages":{list}}}"#);
        let owned = request_error::<WireMessage>(&request).expect("refused");
        // `WireMessageRef` borrows, so it is read here from the text itself.
        let borrowed = {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            struct Request<'a> {
                #[serde(borrow)]
                messages: Vec<WireMessageRef<'a>>,
            }
            let mut de = serde_json::Deserializer::from_str(&request);
            let error = serde_path_to_error::deserialize::<_, Request<'_>>(&mut de)
                .err()
                .expect("refused");
            let path = error.path().to_string();
            describe_json_error(&request, error.inner(), &path)
        };
        assert_eq!(owned, borrowed, "{request}");
    }
}

#[test]
fn both_readings_accept_the_same_messages_as_the_same_parts() {
    let accepted = [
        r#"[{"role":"user","content":"hi","name":"kim","x-trace":7}]"#,
        r#"[{"role":"us\u0065r","content":"line\nbreak \"quoted\" \ud83d\ude00"}]"#,
        r#"[{"role":"assistant","content":null,"tool_calls":null}]"#,
        r#"[{"role":"assistant"}]"#,
        r#"[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b","x":1}]}]"#,
        r#"[{"role":"assistant","content":"","toolCalls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}]"#,
        r#"[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"f","arguments":{"city":"Seoul"}}}]}]"#,
        r#"[{"role":"tool","tool_call_id":"c1","content":"23°C"},{"role":"tool","toolCallId":"c2"}]"#,
        r#"[ { "role" : "system" , "content" : "spaced" } ]"#,
        r#"[{"role":"user","content":"ok","unknown":"\ud800"}]"#,
        // The plain shape, read by hand: either order, any JSON whitespace.
        r#"[{"content":"첫 번째","role":"assistant"}]"#,
        "[{ \"role\"\t:\n\"tool\" ,\r\n \"content\" : \"\" }]",
        r#"[{"role":"user","content":"a \"quoted\" word"}]"#,
        r#"[{"role":"user","content":"a\/b"}]"#,
        r#"[{"role":"user"}]"#,
        r#"[{"role":"user","content":"a","name":"kim"}]"#,
    ];
    for list in accepted {
        assert!(both(list).is_ok(), "{list} is accepted");
    }
}

/// A JSON value for one field of a message: right or wrong in many ways.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""user""#.to_string()),
        Just(r#""assistant""#.to_string()),
        Just(r#""tool""#.to_string()),
        Just(r#""system""#.to_string()),
        Just(r#""robot""#.to_string()),
        Just(r#""us\u0065r""#.to_string()),
        Just("null".to_string()),
        Just("5".to_string()),
        Just("true".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just(r#""\ud800""#.to_string()),
        Just(r#""a\"b\\c\n""#.to_string()),
        Just("\"raw\ttab\"".to_string()),
        "[a-z가-힣 ]{0,12}".prop_map(|s| format!("{s:?}")),
        Just(r#"[{"type":"text","text":"part"}]"#.to_string()),
        Just(r#"[{"type":"text"}]"#.to_string()),
        Just(r#"[{"type":"image_url","image_url":{}}]"#.to_string()),
        Just(r#"[{"type":"text","text":"\ud800"}]"#.to_string()),
        Just(r#"[{"id":"c","function":{"name":"f","arguments":"{}"}}]"#.to_string()),
        Just(r#"[{"id":"c","type":"function","function":{"name":"f","arguments":{"k":[1,"\u00e9"]}}}]"#.to_string()),
        Just(r#"[{"function":{"name":"f"}}]"#.to_string()),
        Just(r#"[{"id":"c","function":{"name":"f","arguments":"\udc00"}}]"#.to_string()),
    ]
}

/// JSON whitespace, or none.
fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\n\t "), 1 => Just("\r")]
}

/// A message text: fields drawn from the known names (both spellings), an
/// unknown one and repeats, each with any of [`field_value`]'s values, with
/// whitespace anywhere JSON allows it.
fn message_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        3 => Just("role"),
        3 => Just("content"),
        1 => Just("name"),
        1 => Just("tool_calls"),
        1 => Just("toolCalls"),
        1 => Just("tool_call_id"),
        1 => Just("toolCallId"),
        1 => Just("x-extra"),
    ];
    prop_oneof![
        8 => prop::collection::vec((key, field_value(), ws(), ws()), 0..5).prop_map(|fields| {
            let fields: Vec<String> = fields
                .into_iter()
                .map(|(k, v, a, b)| format!("{a}{k:?}{b}:{a}{v}{b}"))
                .collect();
            format!("{{{}}}", fields.join(","))
        }),
        1 => field_value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any message, right or wrong: accepted by both readings with the same
    /// parts and text, or refused by both in the same words.
    #[test]
    fn both_readings_agree_on_any_message(messages in prop::collection::vec(message_text(), 1..4)) {
        let list = format!("[{}]", messages.join(","));
        let _ = both(&list);
    }

    /// Valid histories trim the same, kept messages and report, read either way.
    #[test]
    fn both_readings_trim_the_same(
        turns in prop::collection::vec(("[a-z가-힣 ]{0,200}", "[a-z가-힣 ]{0,400}"), 1..30),
        max_tokens in prop_oneof![Just(100i64), Just(3800), Just(4000)],
        full_report: bool,
    ) {
        let mut messages = vec![r#"{"role":"system","content":"Be brief."}"#.to_string()];
        for (q, a) in &turns {
            messages.push(format!(r#"{{"role":"user","content":{q:?}}}"#));
            messages.push(format!(r#"{{"role":"assistant","content":{a:?},"x":1}}"#));
        }
        let list = format!("[{}]", messages.join(","));
        let owned: Vec<WireMessage> = serde_json::from_str(&list).unwrap();
        let borrowed: Vec<WireMessageRef<'_>> = serde_json::from_str(&list).unwrap();
        let model = Profiles::builtin().model("HCX-003").unwrap();
        let window = model.window().full_report(full_report);
        let (a, b) = (window.trim(&owned, max_tokens), window.trim(&borrowed, max_tokens));
        prop_assert_eq!(&a, &b);
        if let (Ok(a), Ok(b)) = (a, b) {
            let a: Vec<&str> = a.kept(&owned).map(|m| m.json()).collect();
            let b: Vec<&str> = b.kept(&borrowed).map(|m| m.json()).collect();
            prop_assert_eq!(a, b);
        }
    }
}
