//! The README's `console` examples, run as written: each `$ command` line runs in
//! bash with this build's `sluice` first on PATH, and its stdout must equal the
//! lines shown under it.

use std::path::Path;
use std::process::Command;

fn examples(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_console = false;
    let mut current: Option<(String, String)> = None;
    for line in readme.lines() {
        if line.starts_with("```console") {
            in_console = true;
            continue;
        }
        if !in_console {
            continue;
        }
        if line.starts_with("```") {
            in_console = false;
            out.extend(current.take());
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            out.extend(current.take());
            current = Some((cmd.to_string(), String::new()));
        } else if let Some((_, expected)) = &mut current {
            expected.push_str(line);
            expected.push('\n');
        }
    }
    out
}

#[test]
fn readme_console_examples_run_as_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let examples = examples(&readme);
    assert!(examples.len() >= 3, "README examples not found");
    for (cmd, expected) in examples {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", &path)
            .current_dir(root)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "README example: {cmd}"
        );
    }
}

/// Issue 26: the request limits were only in `/openapi.json`. The README's
/// sentence must name the numbers the validator enforces.
#[test]
fn readme_states_the_request_limits_the_validator_enforces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let line = readme
        .split("\n\n")
        .find(|p| p.starts_with("**Request limits**"))
        .expect("a **Request limits** paragraph")
        .replace('\n', " ");
    let thousands = |n: usize| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let document_mib = sluice_practice::MAX_DOCUMENT_BYTES / (1024 * 1024);
    for expected in [
        format!("at most {} models", sluice_practice::MAX_MODELS),
        format!(
            "{} characters of `prompt_text`",
            thousands(sluice_practice::MAX_PROMPT_CHARS)
        ),
        format!("{} ids in `knowledge_ids`", sluice_practice::MAX_IDS),
        format!("at most {document_mib} MiB"),
    ] {
        assert!(line.contains(&expected), "{expected:?} missing in: {line}");
    }
    assert_eq!(
        sluice_practice::MAX_TEXT_CHARS,
        sluice_practice::MAX_PROMPT_CHARS
    );
}
