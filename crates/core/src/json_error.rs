//! Plain words for a request that is not the JSON it should be: what is wrong,
//! where, and what to do — instead of serde's internals ("invalid length 0,
//! expected struct Request with 4 elements"). The CLI, the batch lines and the
//! HTTP server all describe their parse failures with [`describe_json_error`].

/// The byte-order mark some editors put at the start of UTF-8 files.
const BOM: &str = "\u{feff}";

/// `text` without a leading UTF-8 byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

/// What is wrong with `input` (one request), given the error serde_json gave
/// and the path of the field it was reading (`messages[3].content`; empty or
/// `.` for the top level).
///
/// ```
/// use sluice_core::describe_json_error;
///
/// let input = r#"[{"role":"user","content":"hi"}]"#;
/// let error = serde_json::from_str::<std::collections::HashMap<String, u8>>(input).unwrap_err();
/// let text = describe_json_error(input, &error, "");
/// assert!(text.contains(r#"wrap the array in {"messages": [...]}"#), "{text}");
/// ```
pub fn describe_json_error(input: &str, error: &serde_json::Error, path: &str) -> String {
    use serde_json::error::Category;
    let input = strip_bom(input);
    let first = input.trim_start().chars().next();
    let at = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        Category::Eof if first.is_none() => {
            "the input is empty: expected a JSON object like {\"messages\": [...]}".to_string()
        }
        // A request is always an object: whatever serde was reading when it
        // failed (`[0]` for an array), the top level is what is wrong.
        Category::Data if first == Some('[') => {
            "expected a JSON object like {\"messages\": [...]}, got an array: wrap the array in \
             {\"messages\": [...]}"
                .to_string()
        }
        Category::Data if first != Some('{') => format!(
            "expected a JSON object like {{\"messages\": [...]}}, got {}",
            kind_of(first)
        ),
        Category::Data if strip_position(error).starts_with(MALFORMED_IN_FIELD) => {
            let message = strip_position(error);
            let (path_inside, message) = split_field(&message[MALFORMED_IN_FIELD.len()..]);
            let path = join_path(path, path_inside);
            if message.contains("hex escape") || message.contains("surrogate") {
                format!(
                    "{path}: a string has an invalid \\u escape: a lone UTF-16 surrogate such as \
                     \\ud800 is not text; fix or remove it"
                )
            } else {
                format!("{path}: not valid JSON: {message}")
            }
        }
        Category::Data => {
            let message = strip_position(error);
            // An error from inside a value parsed on its own (a `WireMessage`)
            // names the field within it: join it to the outer path.
            let (inner, message) = split_field(&message);
            let words = data_words(message);
            let path = join_path(path, inner);
            if top_level(&path) {
                words
            } else {
                format!("{path}: {words}")
            }
        }
        Category::Eof => format!("the JSON ends too early ({at}): is it cut off?"),
        Category::Syntax => {
            let message = strip_position(error);
            if message.contains("hex escape") || message.contains("surrogate") {
                format!(
                    "a string has an invalid \\u escape ({at}): a lone UTF-16 surrogate such as \
                     \\ud800 is not text; fix or remove it"
                )
            } else if message.contains("trailing characters") {
                format!(
                    "there is more after the JSON value ({at}): one request is one JSON object \
                     (several requests, one per line, are JSONL)"
                )
            } else {
                format!("not valid JSON ({at}): {message}{}", near(input, error))
            }
        }
        Category::Io => format!("cannot read the input: {error}"),
    }
}

/// `outer` and the path `inner` within it, as one path.
fn join_path(outer: &str, inner: Option<&str>) -> String {
    match inner {
        Some(inner) if top_level(inner) => outer.to_string(),
        Some(inner) if top_level(outer) => inner.to_string(),
        Some(inner) if inner.starts_with('[') => format!("{outer}{inner}"),
        Some(inner) => format!("{outer}.{inner}"),
        None => outer.to_string(),
    }
}

/// How an error from inside a separately parsed value says that the text was not
/// valid JSON there (a lone surrogate escape in a string): serde lets such a
/// value report only data errors.
const MALFORMED_IN_FIELD: &str = "malformed JSON in ";

/// True if `error` means the input is not JSON (as opposed to JSON of the wrong
/// shape): a syntax error, an early end, or bad text inside a message that was
/// parsed on its own ([`crate::WireMessage`]).
pub fn is_malformed_json(error: &serde_json::Error) -> bool {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => true,
        Category::Data => strip_position(error).starts_with(MALFORMED_IN_FIELD),
    }
}

/// How an error from inside a separately parsed value names its field:
/// "field `tool_calls[0].id`: missing field `id`".
pub(crate) fn in_field(path: &str, message: &str) -> String {
    format!("field `{path}`: {message}")
}

/// [`in_field`] for text that is not valid JSON.
pub(crate) fn malformed_in_field(path: &str, message: &str) -> String {
    format!("{MALFORMED_IN_FIELD}{}", in_field(path, message))
}

/// The field and the message of an [`in_field`] error.
fn split_field(message: &str) -> (Option<&str>, &str) {
    message
        .strip_prefix("field `")
        .and_then(|rest| rest.split_once("`: "))
        .map_or((None, message), |(path, rest)| (Some(path), rest))
}

fn top_level(path: &str) -> bool {
    path.is_empty() || path == "."
}

fn kind_of(first: Option<char>) -> &'static str {
    match first {
        Some('"') => "a string",
        Some('t' | 'f') => "a boolean",
        Some('n') => "null",
        Some('[') => "an array",
        Some(c) if c == '-' || c.is_ascii_digit() => "a number",
        _ => "something else",
    }
}

/// serde's data errors in words: "invalid type: sequence, expected a string" →
/// "expected a string, got an array".
fn data_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = rest.split_once(", expected ") {
            let got = match got.split_once(' ').map_or(got, |(kind, _)| kind) {
                "sequence" => "an array",
                "map" => "an object",
                "string" => "a string",
                "integer" | "floating" => "a number",
                "boolean" => "a boolean",
                "null" => "null",
                other => other,
            };
            return format!("expected {}, got {got}", expected_words(expected));
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        return format!("the field `{field}` is missing");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((value, expected)) = rest.split_once("`, expected ") {
            return format!(
                "`{value}` is not allowed here (expected {})",
                expected.replace("one of ", "one of: ")
            );
        }
    }
    message.to_string()
}

/// What serde expected, without Rust's type names.
fn expected_words(expected: &str) -> &str {
    match expected {
        "struct Message" => r#"a message object like {"role": "user", "content": "..."}"#,
        "struct ToolCall" => r#"a tool call like {"id": "...", "function": {...}}"#,
        "struct FunctionCall" => r#"a function like {"name": "...", "arguments": ...}"#,
        other if other.starts_with("struct ") => "an object",
        "i64" | "u64" | "u32" | "i32" | "usize" | "u8" | "u16" => "an integer",
        "f64" | "f32" => "a number",
        "a sequence" => "an array",
        other => other,
    }
}

/// serde_json appends "at line 1 column 57"; the callers say where themselves.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A short excerpt of the input where the error is (at most 24 characters).
fn near(input: &str, error: &serde_json::Error) -> String {
    let Some(line) = input.lines().nth(error.line().saturating_sub(1)) else {
        return String::new();
    };
    let start = error.column().saturating_sub(12);
    let excerpt: String = line.chars().skip(start).take(24).collect();
    if excerpt.trim().is_empty() {
        String::new()
    } else {
        format!(", near `{excerpt}`")
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request {
        #[serde(default)]
        max_tokens: i64,
        messages: Vec<Msg>,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        model: Option<String>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Msg {
        role: Role,
        content: String,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        System,
        User,
    }

    fn describe(input: &str) -> String {
        let mut de = serde_json::Deserializer::from_str(strip_bom(input));
        let error = match Request::deserialize(&mut de).and_then(|_| de.end()) {
            Ok(()) => return "ok".into(),
            Err(e) => e,
        };
        // Where a data error happened, as serde_path_to_error would say it.
        let path = if input.contains("\"content\":[") {
            "messages[0].content"
        } else {
            ""
        };
        describe_json_error(input, &error, path)
    }

    #[test]
    fn common_mistakes_are_explained() {
        let cases = [
            (
                "",
                "the input is empty: expected a JSON object like {\"messages\": [...]}",
            ),
            (
                "[]",
                "expected a JSON object like {\"messages\": [...]}, got an array: wrap the array in {\"messages\": [...]}",
            ),
            (
                r#"[{"role":"user","content":"hi"}]"#,
                "wrap the array in {\"messages\": [...]}",
            ),
            (
                "\"hello\"",
                "expected a JSON object like {\"messages\": [...]}, got a string",
            ),
            (r#"{"maxTokens":5}"#, "the field `messages` is missing"),
            (
                r#"{"messages":[{"role":"robot","content":"x"}]}"#,
                "`robot` is not allowed here (expected `system` or `user`)",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
                "messages[0].content: expected a string, got an array",
            ),
            (
                r#"{"messages":[{"role":"user","content":"\ud800"}]}"#,
                "invalid \\u escape (line 1, column",
            ),
            (
                r#"{"messages":["#,
                "the JSON ends too early (line 1, column 13): is it cut off?",
            ),
            (
                "{\"messages\":[]}\n{\"messages\":[]}",
                "there is more after the JSON value (line 2, column 1)",
            ),
            (
                r#"{"messages":[}"#,
                "not valid JSON (line 1, column 14): expected value, near `",
            ),
        ];
        for (input, expected) in cases {
            let text = describe(input);
            assert!(
                text.contains(expected),
                "{input}\n  got: {text}\n  want: {expected}"
            );
            assert!(
                !text.contains("struct Request"),
                "no serde internals: {text}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_an_error() {
        assert_eq!(describe("\u{feff}{\"messages\":[]}"), "ok");
        assert_eq!(strip_bom("\u{feff}x"), "x");
        assert_eq!(strip_bom("x"), "x");
    }
}
