//! A trim reads its request's messages borrowed from the line
//! (`WireMessageRef`); this checks that it answers every line, right or wrong,
//! exactly as reading the request as an owned `Request` does.

use proptest::prelude::*;
use sluice_core::Profiles;
use sluice_pipeline::{Job, JobKind, Line, Request, Tally, parse_json, parse_line};

/// The owned path, as `Job::run_line` was before it borrowed: the reference.
fn owned_line(job: &Job<'_>, line: &Line<'_>) -> (String, Tally) {
    let failed = Tally {
        lines: 1,
        errors: 1,
        ..Tally::default()
    };
    match parse_line::<Request>(line) {
        Err(out) => (out, failed),
        Ok(request) => match job.run(&request) {
            Ok((out, tally)) => (out, Tally { lines: 1, ..tally }),
            Err(error) => (error.into_line(request.id(), line.number), failed),
        },
    }
}

fn check(line: &str) {
    let profiles = Profiles::builtin();
    for full_report in [false, true] {
        let kind = JobKind::Trim {
            max_tokens: 100,
            full_report,
        };
        let job = Job::new(&profiles, "HCX-003", kind).unwrap();
        let line = Line {
            number: 4,
            text: Ok(line),
        };
        let expected = owned_line(&job, &line);
        assert_eq!(job.run_line(line.clone()), expected, "{:?}", line.text);
        // One request alone (`sluice trim` without `--jsonl`, the large-request bench).
        let text = line.text.unwrap();
        let expected = parse_json::<Request>(text).and_then(|r| job.run(&r).map(|(out, _)| out));
        assert_eq!(job.run_json(text), expected, "{text}");
    }
}

#[test]
fn lines_right_and_wrong_are_answered_as_the_owned_reading_answers_them() {
    let lines = [
        r#"{"id":1,"messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"id":"x","maxTokens":4000,"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"#,
        r#"{"id":2,"messages":[{"role":"user","content":"\ud800"}]}"#,
        r#"{"id":3,"maxTokens":4000,"messages":[{"role":"user","content":"old"},{"role":"robot","content":"dropped but wrong"},{"role":"user","content":"new"}]}"#,
        r#"{"id":4,"messages":[{"role":"user","content":5}]}"#,
        r#"{"id":5,"messages":[["user","hi"]]}"#,
        r#"{"id":6,"messages":[]}"#,
        r#"{"id":7,"maxTokens":0,"messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"id":8,"maxTokens":"100","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"id":9,"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"id":10,"messages":[{"role":"user","content":"hi"}],"messages":[]}"#,
        r#"{"id":11,"messages":[{"role":"user","content":"hi"}]} trailing"#,
        r#"{"id":12,"messages":[{"role":"user","content":"hi"#,
        r#"[{"role":"user","content":"hi"}]"#,
        r#"{"messages":[{"role":"user","content":"hi"}],"id":{"deep":[1,2]}}"#,
        r#"{"id":13,"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}"#,
        r#"{"id":14,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
    ];
    for line in lines {
        check(line);
    }
}

/// One message: mostly valid, sometimes wrong in one of the ways a message can be.
fn message() -> impl Strategy<Value = String> {
    let role = prop_oneof![
        4 => Just("user"),
        4 => Just("assistant"),
        1 => Just("system"),
        1 => Just("tool"),
    ];
    let text = "[a-z가-힣 .?!]{0,300}";
    prop_oneof![
        20 => (role, text).prop_map(|(r, t)| format!(r#"{{"role":"{r}","content":{t:?}}}"#)),
        2 => "[a-z가-힣 ]{0,50}".prop_map(|t| format!(r#"{{"role":"user","content":"{t}\n\"esc\" \u00e9","name":"kim"}}"#)),
        1 => Just(r#"{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}"#.to_string()),
        1 => Just(r#"{"role":"tool","tool_call_id":"c","content":"ok"}"#.to_string()),
        1 => Just(r#"{"role":"user","content":"\ud800"}"#.to_string()),
        1 => Just(r#"{"role":"robot","content":"x"}"#.to_string()),
        1 => Just(r#"{"role":"user","content":{}}"#.to_string()),
        1 => Just(r#"{"content":"no role"}"#.to_string()),
        1 => Just(r#"["user","hi"]"#.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Requests of many messages, a few of them wrong anywhere (kept or
    /// dropped): the same output line, byte for byte, and the same tally.
    #[test]
    fn any_request_is_answered_as_the_owned_reading_answers_it(
        messages in prop::collection::vec(message(), 0..60),
        max_tokens in prop_oneof![Just("100"), Just("3900"), Just("4000"), Just("0"), Just("\"x\"")],
        cut in prop::option::weighted(0.05, any::<prop::sample::Index>()),
    ) {
        let mut line = format!(
            r#"{{"id":1,"maxTokens":{max_tokens},"messages":[{}]}}"#,
            messages.join(",")
        );
        if let Some(cut) = cut {
            let at = cut.index(line.len());
            let at = (0..=at).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
            line.truncate(at);
        }
        check(&line);
    }
}
