//! Messages as users have them: OpenAI and CLOVA shapes parse to the same
//! message, every format feature is counted as documented (checked against
//! tiktoken), and `WireMessage`s come back byte for byte.

use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_core::{Message, Profiles, Role, WireMessage, describe_json_error};

fn parse(json: Value) -> Message {
    serde_json::from_value(json).unwrap()
}

/// ChatML around `head` + `body`, counted by tiktoken: `<|im_start|>` and
/// `<|im_end|>` are one token each (the profile's special tokens), the text
/// between them is ordinary text, and the suffix's newline is counted alone.
fn chatml_reference(head: &str, body: &str) -> usize {
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    let text = format!("{head}{body}");
    1 + bpe.encode_ordinary(&text).len() + 1 + bpe.encode_ordinary("\n").len()
}

fn hcx003() -> sluice_core::Model {
    Profiles::builtin().model("HCX-003").unwrap()
}

#[test]
fn both_spellings_of_tool_fields_are_the_same_message() {
    let clova = parse(json!({
        "role": "assistant", "content": "",
        "toolCalls": [{"id": "c1", "type": "function",
                       "function": {"name": "weather", "arguments": {"city": "Seoul"}}}]
    }));
    let openai = parse(json!({
        "role": "assistant", "content": null,
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "weather", "arguments": {"city": "Seoul"}}}]
    }));
    assert_eq!(clova, openai);
    let model = hcx003();
    assert_eq!(model.count_message(&clova), model.count_message(&openai));

    let clova = parse(json!({"role": "tool", "content": "23°C", "toolCallId": "c1"}));
    let openai = parse(json!({"role": "tool", "content": "23°C", "tool_call_id": "c1"}));
    assert_eq!(clova, openai);
    assert_eq!(clova.tool_call_id.as_deref(), Some("c1"));
}

#[test]
fn tool_calls_are_counted_as_documented() {
    // Each call is written after the content as "\n{name}\n{arguments}", the
    // arguments as their JSON string (OpenAI) or compact JSON (CLOVA).
    let openai = parse(json!({
        "role": "assistant", "content": null,
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "weather", "arguments": "{\"city\": \"서울\"}"}}]
    }));
    let clova = parse(json!({
        "role": "assistant", "content": "Checking.",
        "toolCalls": [{"id": "call_9", "function": {"name": "weather", "arguments": {"city": "서울"}}}]
    }));
    let model = hcx003();
    assert_eq!(
        model.count_message(&openai),
        chatml_reference("assistant\n", "\nweather\n{\"city\": \"서울\"}")
    );
    assert_eq!(
        model.count_message(&clova),
        chatml_reference("assistant\n", "Checking.\nweather\n{\"city\":\"서울\"}")
    );
}

#[test]
fn names_are_counted_with_the_role_as_chatml_writes_them() {
    let named = parse(json!({"role": "user", "name": "alice", "content": "안녕하세요"}));
    assert_eq!(named.name.as_deref(), Some("alice"));
    let model = hcx003();
    assert_eq!(
        model.count_message(&named),
        chatml_reference("user name=alice\n", "안녕하세요")
    );
    assert_eq!(
        model.count_message(&Message::user("안녕하세요")),
        chatml_reference("user\n", "안녕하세요")
    );
    // The cache tells named and unnamed messages apart (long enough to be cached).
    let long = "the same long text that is long enough to be remembered by the cache";
    let plain = model.count_message(&Message::user(long));
    let bob = model.count_message(&Message::user(long).with_name("bob"));
    assert_eq!(bob, chatml_reference("user name=bob\n", long));
    assert_eq!(plain, chatml_reference("user\n", long));
}

#[test]
fn content_parts_count_their_text_joined_by_newlines() {
    let parts = parse(json!({"role": "user", "content": [
        {"type": "text", "text": "Describe"},
        {"type": "text", "text": "this table", "cache_control": {"type": "ephemeral"}}
    ]}));
    assert_eq!(parts.content, "Describe\nthis table");
    assert_eq!(
        hcx003().count_message(&parts),
        chatml_reference("user\n", "Describe\nthis table")
    );
    let empty = parse(json!({"role": "user", "content": []}));
    assert_eq!(empty.content, "");
    let null = parse(json!({"role": "assistant", "content": null, "tool_calls": null}));
    assert_eq!(null, Message::assistant(""));
    let absent = parse(json!({"role": "assistant"}));
    assert_eq!(absent, Message::assistant(""));
}

/// The plain-words error for one message, as the CLI and the server give it.
fn error_of(message: &str) -> String {
    let input = format!(r#"{{"messages":[{{"role":"user","content":"ok"}},{message}]}}"#);
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Request {
        messages: Vec<WireMessage>,
    }
    let mut de = serde_json::Deserializer::from_str(&input);
    let error = serde_path_to_error::deserialize::<_, Request>(&mut de)
        .map(|_| ())
        .unwrap_err();
    let path = error.path().to_string();
    describe_json_error(&input, error.inner(), &path)
}

#[test]
fn errors_name_the_field_inside_the_message() {
    let cases = [
        (
            r#"{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x"}}]}"#,
            "messages[1].content[0]: a content part of type `input_audio` cannot be counted",
        ),
        (
            r#"{"role":"user","content":[{"type":"text"}]}"#,
            "messages[1].content[0]: the field `text` is missing",
        ),
        (
            r#"{"role":"user","content":[{"type":"image_url","url":"x"}]}"#,
            "messages[1].content[0]: an image part needs its image: `image_url` (OpenAI), or `imageUrl` or `dataUri` (CLOVA Studio)",
        ),
        (
            r#"{"role":"user","content":5}"#,
            "messages[1].content: expected a string, null or an array of text and image parts, got a number",
        ),
        (
            r#"{"role":"robot","content":"x"}"#,
            "messages[1].role: unknown role \"robot\" (expected system, user, assistant or tool)",
        ),
        (
            r#"{"content":"x"}"#,
            "messages[1]: the field `role` is missing",
        ),
        (
            r#"{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}"#,
            "messages[1].tool_calls[0]: the field `id` is missing",
        ),
        (
            r#""hello""#,
            r#"messages[1]: expected a message object like {"role": "user", "content": "..."}, got a string"#,
        ),
    ];
    for (message, expected) in cases {
        let text = error_of(message);
        assert!(
            text.starts_with(expected),
            "{message}\n  got:  {text}\n  want: {expected}"
        );
    }
}

#[test]
fn a_count_is_added_to_the_message_as_it_came() {
    let m = WireMessage::from_json(r#"{"role":"user", "content":"hi" ,"x":[1, 2]}"#).unwrap();
    assert_eq!(
        m.json_with_count(7).get(),
        r#"{"role":"user", "content":"hi" ,"x":[1, 2],"count":7}"#
    );
    let m = WireMessage::from_json(r#"{"count":1,"role":"user","content":"count"}"#).unwrap();
    assert_eq!(
        m.json_with_count(7).get(),
        r#"{"role":"user","content":"count","count":7}"#
    );
    let m = WireMessage::from_json(r#"{"role":"user","content":"count"}"#).unwrap();
    assert_eq!(
        m.json_with_count(3).get(),
        r#"{"role":"user","content":"count","count":3}"#
    );
}

#[test]
fn messages_built_in_code_are_their_serialization() {
    let m = WireMessage::from(Message::tool("c1", "done").with_name("lookup"));
    assert_eq!(
        m.json(),
        r#"{"role":"tool","content":"done","name":"lookup","toolCallId":"c1"}"#
    );
    assert_eq!(m.message().role, Role::Tool);
}

// ---- the round trip, on arbitrary messages ----

#[path = "wire_gen.rs"]
mod wire_gen;
use wire_gen::message_json;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kept_messages_are_the_input_byte_for_byte(
        messages in prop::collection::vec(message_json(), 1..12),
        // Near the 8,192-token limit, so that most cases drop turns.
        max_tokens in 7990i64..8190,
    ) {
        let input = format!("[{}]", messages.join(" ,\n"));
        let parsed: Vec<WireMessage> = serde_json::from_str(&input).unwrap();
        for (wire, text) in parsed.iter().zip(&messages) {
            prop_assert_eq!(wire.json(), text.as_str());
            prop_assert_eq!(serde_json::to_string(wire).unwrap(), text.as_str());
        }
        let model = Profiles::builtin().model("cl100k").unwrap();
        if let Ok(trim) = model.window().max_output(8192).trim(&parsed, max_tokens) {
            let kept: Vec<&WireMessage> = trim.kept(&parsed).collect();
            let indices: Vec<usize> = trim.kept_indices().collect();
            let out = serde_json::to_string(&kept).unwrap();
            let expected = format!(
                "[{}]",
                indices.iter().map(|&i| messages[i].as_str()).collect::<Vec<_>>().join(",")
            );
            prop_assert_eq!(out, expected);
            // Counting the wire messages is counting their parsed messages.
            let plain: Vec<Message> = parsed.iter().map(|w| w.message().clone()).collect();
            prop_assert_eq!(model.count(&parsed), model.count(&plain));
        }
    }
}

/// Issue 28, point 5: image parts are read, counted by the profile's rule and
/// written back; a profiles file changes the rule.
#[test]
fn image_parts_are_counted_by_the_profiles_rule_and_kept() {
    let model = hcx003();
    let url = json!({"url": "https://example.com/cat.png"});
    let text = parse(json!({"role": "user", "content": "what is this?"}));
    let openai = parse(json!({"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": url},
    ]}));
    let clova = parse(json!({"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "imageUrl": url},
    ]}));
    let low = parse(json!({"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "u", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "v", "detail": "high"}},
    ]}));
    assert_eq!(openai.content, "what is this?");
    assert_eq!(openai.images.len(), 1);
    assert_eq!(openai.images[0].part()["image_url"], url);
    let base = model.count_message(&text);
    assert_eq!(model.count_message(&openai), base + 1445);
    assert_eq!(model.count_message(&clova), base + 1445);
    assert_eq!(model.count_message(&low), base + 85 + 1445);
    // The borrowed reader counts the same.
    let low_text = r#"[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"u","detail":"low"}},{"type":"image_url","image_url":{"url":"v","detail":"high"}}]}]"#;
    let borrowed: Vec<sluice_core::WireMessageRef<'_>> = serde_json::from_str(low_text).unwrap();
    let owned: Vec<WireMessage> = serde_json::from_str(low_text).unwrap();
    assert_eq!(model.trim(&borrowed, 100), model.trim(&owned, 100));
    assert_eq!(
        model.count(&owned).per_message[0],
        model.count_message(&low)
    );
    // Written back: one text part, then the images as they came.
    let written = serde_json::to_value(&low).unwrap();
    assert_eq!(
        written["content"],
        json!([
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "u", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "v", "detail": "high"}},
        ])
    );
    assert_eq!(parse(written), low);
    // An image alone: no text part is written.
    let only = parse(json!({"role": "user", "content": [{"type": "image_url", "image_url": url}]}));
    assert_eq!(
        serde_json::to_value(&only).unwrap()["content"],
        json!([{"type": "image_url", "image_url": url}])
    );
    // A profiles file sets the rule, for one profile only.
    let mut profiles = Profiles::builtin();
    profiles
        .load_str(
            "[profiles.HCX-003]\nimage_tokens = 500\nimage_tokens_low = 40\n",
            "test",
            std::path::Path::new("."),
        )
        .unwrap();
    let custom = profiles.model("HCX-003").unwrap();
    assert_eq!(custom.count_message(&low), base + 40 + 500);
    assert_eq!(
        profiles.model("HCX-005").unwrap().count_message(&low),
        Profiles::builtin()
            .model("HCX-005")
            .unwrap()
            .count_message(&low)
    );
}

/// Images count toward the window: a history whose images do not fit loses
/// its oldest turns, and a budget smaller than one image refuses the newest.
#[test]
fn the_window_counts_images() {
    let model = hcx003();
    let image = |i: usize| {
        parse(json!({"role": "user", "content": [
            {"type": "text", "text": format!("picture {i}")},
            {"type": "image_url", "image_url": {"url": format!("https://example.com/{i}.png")}},
        ]}))
    };
    let mut history = vec![parse(
        json!({"role": "system", "content": "Describe pictures."}),
    )];
    for i in 0..3 {
        history.push(image(i));
        history.push(parse(json!({"role": "assistant", "content": "a cat"})));
    }
    history.push(image(3));
    // Four images are 5,780 tokens: more than HCX-003's 4,096 on their own.
    let trim = model.trim(&history, 500).unwrap();
    let kept: Vec<&Message> = trim.kept(&history).collect();
    assert!(trim.report().turns_dropped >= 2, "{:?}", trim.report());
    assert!(model.count(&kept).total + 500 <= 4096);
    assert_eq!(kept.last().unwrap(), &&history[7]);
    assert!(model.trim(&history[7..], 4096 - 1000).is_err());
}
