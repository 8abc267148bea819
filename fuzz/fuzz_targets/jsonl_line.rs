//! Arbitrary JSONL through the sluice-pipeline per-line jobs (trim, trim with a
//! full report, count, route, route explained): never a panic, and every
//! non-blank input line gives exactly one output line holding one JSON object.
//!
//! Input: the first byte picks the job; the rest is split into lines as the
//! pipeline splits them.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice_core::Profiles;
use sluice_pipeline::route::RouteJob;
use sluice_pipeline::{Job, JobKind, Line, LineError};
use sluice_router::{Router, RouterStore};
use std::sync::Arc;

static PROFILES: LazyLock<Profiles> = LazyLock::new(Profiles::builtin);
static ROUTER: LazyLock<Arc<Router>> =
    LazyLock::new(|| RouterStore::embedded_sample().get("sample", 1).unwrap());
static JOBS: LazyLock<[Job<'static>; 3]> = LazyLock::new(|| {
    let trim = |full_report| JobKind::Trim {
        max_tokens: 100,
        full_report,
    };
    [
        Job::new(&PROFILES, "HCX-003", trim(false)).unwrap(),
        Job::new(&PROFILES, "HCX-003", trim(true)).unwrap(),
        Job::new(&PROFILES, "HCX-003", JobKind::Count).unwrap(),
    ]
});

fn check_output(out: &str, input: &[u8]) {
    assert!(
        !out.contains('\n'),
        "more than one line for {input:?}: {out}"
    );
    let value: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}) for {:?}: {out}",
            String::from_utf8_lossy(input)
        )
    });
    assert!(value.is_object(), "not an object: {out}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rest);
    for (i, raw) in rest.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = std::str::from_utf8(raw)
            .map_err(|_| LineError::new("40000", "malformed request: the line is not UTF-8"));
        let line = Line {
            number: i + 1,
            text,
        };
        let out = match selector % 5 {
            k @ 0..=2 => JOBS[usize::from(k)].run_line(line).0,
            k => RouteJob::new(&ROUTER, k == 4).run_line(line).0,
        };
        check_output(&out, raw);
        if let Ok(text) = std::str::from_utf8(raw) {
            // The same request given whole (not as a line) answers alike.
            if selector % 5 <= 2 {
                match JOBS[usize::from(selector % 5)].run_json(text) {
                    Ok(out) => check_output(&out, raw),
                    Err(e) => check_output(&e.into_line(None, 1), raw),
                }
            }
        }
    }
});
