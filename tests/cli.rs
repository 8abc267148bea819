//! `sluice count`, `sluice trim` and `sluice tokenizer` as a user runs them.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

pub fn sluice(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn trims_the_seed_request() {
    let out = sluice(
        &["trim"],
        r#"{"maxTokens":200,"messages":[{"role":"user","content":"hello"}]}"#,
    );
    let v = stdout_json(&out);
    assert_eq!(v["messages"], json!([{"role": "user", "content": "hello"}]));
    assert_eq!(v["report"]["messagesDropped"], 0);
    assert_eq!(v["report"]["limit"], 4096);
}

#[test]
fn trims_a_long_history() {
    let mut messages = vec![json!({"role": "system", "content": "시스템 지시문"})];
    for i in 0..300 {
        messages.push(
            json!({"role": "user", "content": format!("질문 {i} about the weather in Seoul")}),
        );
        messages.push(json!({"role": "assistant", "content": format!("answer {i}: 맑음")}));
    }
    let body = json!({"maxTokens": 3000, "messages": messages}).to_string();
    let v = stdout_json(&sluice(&["trim"], &body));
    let kept = v["messages"].as_array().unwrap();
    assert_eq!(kept[0]["role"], "system");
    assert_eq!(kept.last().unwrap()["content"], "answer 299: 맑음");
    let after = v["report"]["tokensAfter"].as_u64().unwrap();
    assert!(after + 3000 <= 4096);
    assert!(v["report"]["turnsDropped"].as_u64().unwrap() > 200);
}

#[test]
fn counts_messages_like_chat_tokenize() {
    let out = sluice(
        &["count", "--model", "o200k"],
        r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hello world"}]}"#,
    );
    let v = stdout_json(&out);
    let counts: Vec<u64> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), 2);
    assert_eq!(
        v["total"].as_u64().unwrap(),
        counts.iter().sum::<u64>() + v["reply"].as_u64().unwrap()
    );
}

#[test]
fn batch_keeps_order_echoes_ids_and_isolates_bad_lines() {
    let input = [
        r#"{"id":1,"messages":[{"role":"user","content":"hi"}]}"#,
        r#"not json"#,
        r#"{"id":"two","messages":[{"role":"robot","content":"hi"}]}"#,
        r#"{"id":3,"messages":[{"role":"user","content":"hi"}],"maxTokens":0}"#,
        r#"{"id":4,"messages":[{"role":"user","content":"hi"}],"model":"nope"}"#,
        r#"{"id":5,"messages":[{"role":"user","content":"x"}],"maxTokens":4096}"#,
        r#"{"id":6,"messages":[]}"#,
        r#"{"id":7,"messages":[{"role":"user","content":"hi"}],"model":"HCX-005","maxTokens":5}"#,
    ]
    .join("\n");
    let out = sluice(&["trim", "--jsonl"], &input);
    assert_eq!(out.status.code(), Some(1), "errors give exit code 1");
    let lines: Vec<Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    let codes: Vec<&str> = lines
        .iter()
        .map(|l| l["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "ok", "40000", "40001", "40001", "40080", "40003", "40001", "ok"
        ]
    );
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[2]["id"], "two");
    assert_eq!(lines[7]["id"], 7);
    assert_eq!(lines[7]["report"]["limit"], 128_000);
    assert!(
        stderr(&out).contains("8 lines, 6 errors"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn batch_output_is_the_same_on_one_and_many_threads() {
    let mut input = String::new();
    for i in 0..5000 {
        let turns = 1 + i % 40;
        let messages: Vec<Value> = (0..turns)
            .flat_map(|t| {
                [
                    json!({"role": "user", "content": format!("line {i} turn {t}: 미세먼지 정보 알려줘 ").repeat(t % 7 + 1)}),
                    json!({"role": "assistant", "content": "네, 알려드릴게요."}),
                ]
            })
            .collect();
        input.push_str(&json!({"id": i, "maxTokens": 3900, "messages": messages}).to_string());
        input.push('\n');
    }
    let one = sluice(&["trim", "--jsonl", "--threads", "1"], &input);
    let many = sluice(&["trim", "--jsonl", "--threads", "4"], &input);
    let uncached = sluice(
        &["trim", "--jsonl", "--threads", "3", "--cache", "0"],
        &input,
    );
    assert!(one.status.success() && many.status.success() && uncached.status.success());
    assert_eq!(one.stdout, many.stdout);
    assert_eq!(one.stdout, uncached.stdout);
    let ids: Vec<u64> = String::from_utf8(one.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (0..5000).collect::<Vec<_>>());
}

#[test]
fn invalid_utf8_fails_only_its_line() {
    let mut input = b"{\"id\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n".to_vec();
    input
        .extend_from_slice(b"{\"id\":2,\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}\n");
    input.extend_from_slice(b"{\"id\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n");
    let dir = std::env::temp_dir().join(format!("sluice-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let out = sluice(&["trim", path.to_str().unwrap()], "");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains("40000") && lines[1].contains("UTF-8"));
    assert!(lines[2].contains("\"id\":3"));
}

#[test]
fn bad_input_gets_a_one_line_error_and_a_non_zero_exit() {
    let hi = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let cases: [(&[&str], &str, &str); 6] = [
        (&["trim"], r#"{"messages":["#, "40000"),
        (
            &["trim"],
            r#"{"messages":[{"role":"robot","content":"hi"}]}"#,
            "unknown role",
        ),
        (&["trim", "--max-tokens", "0"], hi, "maxTokens"),
        (&["trim", "--max-tokens", "-1"], hi, "maxTokens"),
        (&["trim", "/no/such/file.json"], "", "cannot read"),
        (&["trim", "--model", "HCX-999"], hi, "model not found"),
    ];
    for (args, stdin, expected) in cases {
        let out = sluice(args, stdin);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = sluice(&["trim", "--max-tokens", "abc"], hi);
    assert!(!out.status.success());
}

/// Common mistakes get plain words: what is wrong, where, and what to do.
#[test]
fn malformed_input_is_explained_in_plain_words() {
    let messages = r#"[{"role":"user","content":"hi"}]"#;
    let cases: [(&str, &str); 6] = [
        ("[]", r#"wrap the array in {"messages": [...]}"#),
        (messages, r#"wrap the array in {"messages": [...]}"#),
        (
            r#"{"messages":[{"role":"user","content":"\ud800"}]}"#,
            "messages[0].content: a string has an invalid \\u escape",
        ),
        (
            "{\"messages\":[]}\n{\"messages\":[]}\n",
            "for one request per line, use --jsonl",
        ),
        (
            r#"{"messages":[{"role":"user","content":5}]}"#,
            "messages[0].content: expected a string, null or an array of text and image parts, got a number",
        ),
        ("", "the input is empty"),
    ];
    for (stdin, expected) in cases {
        let out = sluice(&["trim"], stdin);
        assert!(!out.status.success(), "{stdin}");
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{stdin}\n  got: {err}\n  want: {expected}"
        );
        assert!(!err.contains("struct Request"), "no serde internals: {err}");
    }
    // A byte-order mark is fine.
    let out = sluice(&["trim"], &format!("\u{feff}{{\"messages\":{messages}}}"));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[path = "../crates/http/tests/malformed.rs"]
mod malformed;

/// The table of malformed requests, word for word (the server answers the
/// same table in crates/http/tests/bad_input.rs).
#[test]
fn malformed_requests_get_the_exact_words() {
    for &(request, code, words) in malformed::CASES {
        let out = sluice(&["trim"], request);
        assert!(!out.status.success(), "{request}");
        let prefix = if code == "40000" {
            "malformed JSON"
        } else {
            "invalid parameter"
        };
        assert_eq!(
            stderr(&out).trim_end(),
            format!("error: {code} {prefix}: {words}"),
            "{request}"
        );
    }
}

/// Blank lines in JSONL are skipped (a trailing one is common); every error
/// object says its line, with or without an id.
#[test]
fn jsonl_skips_blank_lines_and_numbers_errors() {
    let input = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n\n[1]\n\n";
    let out = sluice(&["trim", "--jsonl"], input);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["line"], 3);
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrap the array")
    );
    assert_eq!(out.status.code(), Some(1), "one line failed");
    let out = sluice(
        &["trim", "--jsonl"],
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n\n",
    );
    assert!(
        out.status.success(),
        "a trailing blank line is no error: {}",
        stderr(&out)
    );
}

#[test]
fn context_exceeded_reports_the_numbers() {
    let big = "word ".repeat(5000);
    let body = json!({"messages": [{"role": "user", "content": big}]}).to_string();
    let out = sluice(&["trim"], &body);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("40003") && err.contains("4096"), "{err}");
}

#[test]
fn exported_tokenizer_loads_back_with_the_same_counts() {
    let dir = std::env::temp_dir().join(format!("sluice-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cl100k.json");
    let out = sluice(
        &[
            "tokenizer",
            "export",
            "cl100k_base",
            "-o",
            path.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body = r#"{"messages":[{"role":"system","content":"당신은 친절한 비서입니다."},{"role":"user","content":"What's the weather like in 서울 today?  Tell me\n\nplease!"}]}"#;
    let embedded = stdout_json(&sluice(&["count"], body));
    let from_file = stdout_json(&sluice(
        &["count", "--tokenizer", path.to_str().unwrap()],
        body,
    ));
    assert_eq!(embedded["total"], from_file["total"]);
    assert_eq!(embedded["messages"], from_file["messages"]);
    let out = sluice(&["tokenizer", "export", "p50k_base"], "");
    assert!(!out.status.success());
}

/// Issue 23, item 7: `sluice config check` refuses a `practice_router` that
/// `serve` would refuse, in plain words (no Rust debug formatting).
#[test]
fn config_check_refuses_an_unknown_practice_router() {
    let dir = std::env::temp_dir().join(format!("sluice-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, router: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("practice_router = \"{router}\"\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = file("good.toml", "sample/1");
    let out = sluice(&["config", "check", &good], "");
    assert!(out.status.success(), "{}", stderr(&out));
    for (name, router, says) in [
        ("nope.toml", "nope/1", "router not found: nope version 1"),
        ("badspec.toml", "nope", "expected id/version or none"),
    ] {
        let out = sluice(&["config", "check", &file(name, router)], "");
        let err = stderr(&out);
        assert!(!out.status.success(), "{router}: passed");
        assert!(
            err.contains("practice_router") && err.contains(says),
            "{router}: {err}"
        );
        assert!(
            !err.contains("NotFound {"),
            "{router}: debug-formatted: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
