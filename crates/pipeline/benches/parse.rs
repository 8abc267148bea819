//! `sluice trim` on JSONL against a bare parse of the same lines, side by side.
//!
//! Issue 16's batch target: trimming a line (parse, trim, write the kept
//! messages back) should cost at most 1.5× parsing it into a
//! `serde_json::Value`, the least any tool does with a JSON line; and one large
//! request at most 1.3× a bare parse of its bytes. This harness measures both in
//! one process, one thread, alternating the contenders round by round so that
//! the machine's load hits them alike, and prints medians and the ratios.
//!
//! ```text
//! cargo bench -p sluice-pipeline --bench parse
//! # knobs: PARSE_BENCH_FILE=path.jsonl (default: target/batch/chats-64mb.jsonl,
//! #        generated with benches/batch/gen.py when missing)  PARSE_BENCH_ROUNDS=7
//! ```
//!
//! The trim side is what `sluice trim --jsonl --threads 1` does per line
//! (`Job::run_line`, `HCX-003`, a count cache per thread) without the file
//! reading and writing, which are the same for both sides. Every output line is
//! checked to be a trimmed request (not an error object), so a broken path
//! cannot look fast. Under `cargo test --benches` it runs one round on the
//! first 2 MB.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::{CacheScope, Profiles, WireMessageRef};
use sluice_pipeline::{COUNTS_PER_THREAD, Job, JobKind, Line, Request};

/// The corpus: `benches/batch/gen.py`'s chat histories (1–120 turns, Korean and
/// English), generated once into the target directory.
fn corpus() -> String {
    let path = std::env::var_os("PARSE_BENCH_FILE").map_or_else(
        || {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let path = root.join("target/batch/chats-64mb.jsonl");
            if !path.exists() {
                generate(&root, &path);
            }
            path
        },
        PathBuf::from,
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn generate(root: &Path, path: &Path) {
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("create target/batch");
    let status = Command::new("python3")
        .arg(root.join("benches/batch/gen.py"))
        .arg(path)
        .arg("64")
        .status()
        .expect("run python3 benches/batch/gen.py");
    assert!(status.success(), "gen.py failed");
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// One large request made of every line's messages (the first line's system
/// message only, so that the newest turns fit), as one JSON text.
fn large_request(lines: &[&str]) -> String {
    let mut messages = Vec::new();
    for line in lines {
        let request: Value = serde_json::from_str(line).expect("a JSON line");
        if let Some(Value::Array(list)) = request.get("messages") {
            let first = messages.is_empty();
            messages.extend(
                list.iter()
                    .filter(|m| first || m["role"] != "system")
                    .cloned(),
            );
        }
    }
    serde_json::json!({ "maxTokens": 256, "messages": messages }).to_string()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut text = corpus();
    if !full {
        let cut = text[..2 << 20].rfind('\n').expect("a line end");
        text.truncate(cut + 1);
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let rounds = std::env::var("PARSE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 7 } else { 1 });

    let profiles = Profiles::builtin().with_cache_scope(CacheScope::PerThread {
        capacity: COUNTS_PER_THREAD,
    });
    let trim = JobKind::Trim {
        max_tokens: 100,
        full_report: false,
    };
    let job = Job::new(&profiles, "HCX-003", trim).expect("the built-in profile");
    let large = large_request(&lines);
    // The first use builds the tokenizer tables: not part of either side.
    job.run_json(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
        .expect("a warm-up request");

    let bare_lines = || {
        let started = Instant::now();
        for line in &lines {
            black_box(serde_json::from_str::<Value>(line).expect("a JSON line"));
        }
        started.elapsed()
    };
    let trim_lines = || {
        let started = Instant::now();
        for (i, line) in lines.iter().enumerate() {
            let (out, tally) = job.run_line(Line {
                number: i + 1,
                text: Ok(line),
            });
            assert_eq!(tally.errors, 0, "line {}: {out}", i + 1);
            black_box(out);
        }
        started.elapsed()
    };
    // Where the trim side's time goes: reading the request alone (as a trim
    // reads it, its messages borrowed from the line).
    let read_lines = || {
        let started = Instant::now();
        for line in &lines {
            black_box(
                serde_json::from_str::<Request<WireMessageRef<'_>>>(line).expect("a request"),
            );
        }
        started.elapsed()
    };
    let bare_large = || {
        let started = Instant::now();
        black_box(serde_json::from_str::<Value>(&large).expect("the large request"));
        started.elapsed()
    };
    let trim_large = || {
        let started = Instant::now();
        black_box(job.run_json(&large).expect("the large request"));
        started.elapsed()
    };

    let (mut bl, mut tl, mut bg, mut tg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rl = Vec::new();
    for round in 0..rounds {
        rl.push(read_lines());
        // Alternate which side goes first.
        if round % 2 == 0 {
            bl.push(bare_lines());
            tl.push(trim_lines());
            bg.push(bare_large());
            tg.push(trim_large());
        } else {
            tl.push(trim_lines());
            bl.push(bare_lines());
            tg.push(trim_large());
            bg.push(bare_large());
        }
    }
    let mb = |bytes: usize, t: Duration| bytes as f64 / 1e6 / t.as_secs_f64();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let (bl, tl, bg, tg, rl) = (median(bl), median(tl), median(bg), median(tg), median(rl));
    println!(
        "{} lines, {:.1} MB; one large request of {:.1} MB; {rounds} rounds, medians, 1 thread",
        lines.len(),
        bytes as f64 / 1e6,
        large.len() as f64 / 1e6
    );
    println!();
    println!(
        "| input | bare `serde_json::Value` parse | `sluice trim` (parse, trim, write) | ratio | target |"
    );
    println!("|---|--:|--:|--:|--:|");
    println!(
        "| JSONL lines | {:.3} s ({:.0} MB/s) | {:.3} s ({:.0} MB/s) | {:.2}× | ≤ 1.5× |",
        bl.as_secs_f64(),
        mb(bytes, bl),
        tl.as_secs_f64(),
        mb(bytes, tl),
        tl.as_secs_f64() / bl.as_secs_f64()
    );
    println!(
        "| JSONL lines, reading the requests only | | {:.3} s ({:.0} MB/s) | {:.2}× | |",
        rl.as_secs_f64(),
        mb(bytes, rl),
        rl.as_secs_f64() / bl.as_secs_f64()
    );
    println!(
        "| one large request | {:.3} s ({:.0} MB/s) | {:.3} s ({:.0} MB/s) | {:.2}× | ≤ 1.3× |",
        bg.as_secs_f64(),
        mb(large.len(), bg),
        tg.as_secs_f64(),
        mb(large.len(), tg),
        tg.as_secs_f64() / bg.as_secs_f64()
    );
}
