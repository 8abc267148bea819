//! Malformed requests and the exact words sluice answers them with: one table
//! for the CLI (`tests/cli.rs`, which includes this file) and the server
//! (`bad_input.rs`). Each row: the request, the code, and the message after
//! the code's prefix ("invalid parameter: ", "malformed JSON: ").

/// (request body, code, message)
pub const CASES: &[(&str, &str, &str)] = &[
    (
        "[]",
        "40001",
        r#"expected a JSON object like {"messages": [...]}, got an array: wrap the array in {"messages": [...]}"#,
    ),
    (
        r#"[{"role":"user","content":"hi"}]"#,
        "40001",
        r#"expected a JSON object like {"messages": [...]}, got an array: wrap the array in {"messages": [...]}"#,
    ),
    (
        r#"{"messages":[{"role":"user","content":"\ud800"}]}"#,
        "40000",
        r"messages[0].content: a string has an invalid \u escape: a lone UTF-16 surrogate such as \ud800 is not text; fix or remove it",
    ),
    (
        r#"{"messages":[{"role":"user","content":5}]}"#,
        "40001",
        "messages[0].content: expected a string, null or an array of text and image parts, got a number",
    ),
    (
        r#"{"messages":[{"role":"robot","content":"x"}]}"#,
        "40001",
        r#"messages[0].role: unknown role "robot" (expected system, user, assistant or tool)"#,
    ),
    (
        r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"x"}}]}]}"#,
        "40001",
        "messages[0].content[0]: a content part of type `file` cannot be counted: its tokens depend on the \
         model's own encoder, which no local tokenizer knows; only `text` and `image_url` parts are counted (send \
         the text, or trim before adding the file part)",
    ),
    (
        r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
        "40001",
        "messages[0].content[0]: the field `text` is missing",
    ),
    (
        r#"{"maxTokens":5}"#,
        "40001",
        "the field `messages` is missing",
    ),
    (
        r#"{"messages":"hello"}"#,
        "40001",
        "messages: expected an array, got a string",
    ),
    (
        r#"{"messages":["hello"]}"#,
        "40001",
        r#"messages[0]: expected a message object like {"role": "user", "content": "..."}, got a string"#,
    ),
    (
        r#"{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}"#,
        "40001",
        "messages[0].tool_calls[0]: the field `id` is missing",
    ),
    (
        r#"{"messages":[{"role":"user","content":"hi"}],"maxTokens":"100"}"#,
        "40001",
        "maxTokens: expected an integer, got a string",
    ),
    (
        r#"{"messages":[{"role":"user""#,
        "40000",
        "the JSON ends too early (line 1, column 27): is it cut off?",
    ),
    (r#"{"messages":[]}"#, "40001", "messages must not be empty"),
    (
        r#"{"messages":[{"role":"user","content":"hi"}],"maxTokens":0}"#,
        "40001",
        "maxTokens must be between 1 and 4096, got 0",
    ),
];
