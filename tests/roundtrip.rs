//! `sluice trim` and `sluice count` write each message back exactly as it came
//! in: unknown fields, `null`, content parts, both spellings of the tool fields,
//! key order and spacing.

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use sluice_core::{Profiles, WireMessage};

use crate::cli::sluice;

#[path = "../crates/core/tests/wire_gen.rs"]
mod wire_gen;

#[derive(Deserialize)]
struct Line {
    messages: Vec<Box<RawValue>>,
}

/// Runs `sluice <args> --jsonl` on `lines` and returns each output line's
/// messages as raw JSON text.
fn run(args: &[&str], lines: &[String]) -> Vec<Vec<String>> {
    let mut all = args.to_vec();
    all.extend(["--jsonl", "--no-progress"]);
    let out = sluice(&all, &lines.join("\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let line: Line = serde_json::from_str(line).unwrap();
            line.messages.iter().map(|m| m.get().to_string()).collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn kept_and_counted_messages_are_the_input_bytes(
        requests in prop::collection::vec(
            // Near HCX-003's 4,096-token limit, so that most requests drop turns.
            (prop::collection::vec(wire_gen::message_json(), 1..8), 3950i64..4090),
            1..6,
        ),
    ) {
        let model = Profiles::builtin().model("HCX-003").unwrap();
        // One request per line: the generator's newlines (spacing between
        // tokens, never inside strings) become spaces.
        let requests: Vec<(Vec<String>, i64)> = requests
            .into_iter()
            .map(|(messages, max)| (messages.iter().map(|m| m.replace('\n', " ")).collect(), max))
            .collect();
        // Requests that cannot be trimmed at all are error lines; leave them out.
        let fitting: Vec<_> = requests
            .iter()
            .filter_map(|(messages, max_tokens)| {
                let parsed: Vec<WireMessage> =
                    serde_json::from_str(&format!("[{}]", messages.join(","))).unwrap();
                let trim = model.trim(&parsed, *max_tokens).ok()?;
                Some((messages, *max_tokens, trim, model.count(&parsed).per_message))
            })
            .collect();
        let lines: Vec<String> = fitting
            .iter()
            .map(|(messages, max_tokens, ..)| {
                format!(r#"{{"maxTokens":{max_tokens}, "messages":[{}]}}"#, messages.join(" , "))
            })
            .collect();
        prop_assume!(!lines.is_empty());

        let trimmed = run(&["trim"], &lines);
        let counted = run(&["count"], &lines);
        for (i, (messages, _, trim, counts)) in fitting.iter().enumerate() {
            let kept: Vec<&str> = trim.kept_indices().map(|k| messages[k].as_str()).collect();
            prop_assert_eq!(&trimmed[i], &kept);
            for ((out, sent), count) in counted[i].iter().zip(messages.iter()).zip(counts) {
                let body = sent.trim_end().strip_suffix('}').unwrap().trim_end();
                let comma = if body == "{" { "" } else { "," };
                prop_assert_eq!(out, &format!("{body}{comma}\"count\":{count}}}"));
            }
        }
    }
}
