//! The sluice side of the comparison harness in `benches/compare/` (issue 5).
//!
//! Reads the data that `benches/compare/gen_data.py` writes, times sluice on it
//! and prints one JSON object: timings plus every count and trimming result, for
//! `benches/compare/compare.py` to check against the reference (LangChain,
//! tiktoken, `tokenizers`). It verifies nothing itself.
//!
//! ```text
//! cargo run --release --example compare_sluice -- target/compare [SECONDS_PER_CASE]
//! ```
//!
//! Every timing is the median of single operations timed with
//! [`std::time::Instant`], repeated until a per-case time budget is spent (with
//! a floor on the number of runs).

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use sluice_core::{Conversation, Embedded, Message, Model, Profiles};

/// The profile the harness compares: cl100k_base with ChatML, 4,096-token limit.
const PROFILE: &str = "HCX-003";

/// What `gen_data.py` writes next to the data.
#[derive(Deserialize)]
struct Manifest {
    /// `maxTokens` values to trim every conversation with.
    max_tokens: Vec<i64>,
    /// `maxTokens` of the grow-by-one-turn runs.
    grow_max_tokens: i64,
    /// Conversation sets: name and JSONL file.
    sets: Vec<SetEntry>,
    /// Text corpus for counting, one text per line.
    corpus: String,
    /// Turns (user + assistant pairs) appended one at a time in the grow runs.
    grow_turns: String,
    /// Report the kept window of every `grow_checkpoint`-th grow step.
    grow_checkpoint: usize,
}

#[derive(Deserialize)]
struct SetEntry {
    name: String,
    file: String,
}

#[derive(Deserialize)]
struct ConversationLine {
    messages: Vec<Message>,
}

/// Times `op` until `budget` is spent (at least `min_runs` times, at most
/// `max_runs`) and returns per-op nanoseconds, sorted.
fn time_runs<T>(
    budget: Duration,
    min_runs: usize,
    max_runs: usize,
    mut op: impl FnMut() -> T,
) -> Vec<u64> {
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < max_runs && (samples.len() < min_runs || start.elapsed() < budget) {
        let t = Instant::now();
        black_box(op());
        samples.push(t.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    samples
}

fn median(sorted: &[u64]) -> u64 {
    sorted[sorted.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn read_conversations(path: &Path) -> Result<Vec<Vec<Message>>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<ConversationLine>(line)
                .map(|c| c.messages)
                .with_context(|| format!("{}: line {}", path.display(), i + 1))
        })
        .collect()
}

/// Indices of the kept messages.
fn kept_indices(trim: &sluice_core::Trim, messages: &[Message]) -> Vec<usize> {
    (0..messages.len())
        .filter(|&i| trim.is_kept(i, messages))
        .collect()
}

/// How the grow-by-one-turn runs re-trim.
#[derive(Clone, Copy)]
enum GrowMode {
    /// `Model::trim` on the whole slice each time, with the model's count cache.
    Trim,
    /// A `Conversation` that the new turn is pushed into, then `Conversation::trim`.
    Conversation,
}

impl GrowMode {
    fn name(self) -> &'static str {
        match self {
            GrowMode::Trim => "Model::trim",
            GrowMode::Conversation => "Conversation::trim",
        }
    }
}

/// Appends `turns` to `base` one at a time and times re-trimming after each, with
/// a fresh model (default cache) warmed by trimming `base` once. Pushing the new
/// messages is not timed; counting them is (it happens inside the trim).
fn grow(
    mode: GrowMode,
    name: &str,
    base: &[Message],
    turns: &[Vec<Message>],
    profile: &sluice_core::ModelProfile,
    tokenizer: &sluice_core::Tokenizer,
    manifest: &Manifest,
) -> Result<serde_json::Value> {
    let max_tokens = manifest.grow_max_tokens;
    let model = Model::new(profile.clone(), tokenizer.clone());
    // The history grows in a `Conversation` either way (untimed); `Model::trim`
    // gets it as a slice, so it never sees the conversation's remembered counts.
    let mut chat = Conversation::with_messages(model.clone(), base.to_vec());
    let trim = |chat: &mut Conversation| match mode {
        GrowMode::Trim => model.trim(chat.messages(), max_tokens),
        GrowMode::Conversation => chat.trim(max_tokens),
    };
    trim(&mut chat)?;
    let mut samples = Vec::with_capacity(turns.len());
    let mut checkpoints = Vec::new();
    for (step, turn) in turns.iter().enumerate() {
        chat.extend(turn.iter().cloned());
        let t = Instant::now();
        let result = trim(&mut chat);
        samples.push(t.elapsed().as_nanos() as u64);
        let result = result?;
        if (step + 1) % manifest.grow_checkpoint == 0 || step + 1 == turns.len() {
            checkpoints.push(json!({
                "turns": step + 1,
                "kept": kept_indices(&result, chat.messages()),
                "tokensAfter": result.report().tokens_after,
            }));
        }
    }
    samples.sort_unstable();
    Ok(json!({
        "set": name,
        "mode": mode.name(),
        "baseMessages": base.len(),
        "maxTokens": max_tokens,
        "steps": samples.len(),
        "medianNs": median(&samples),
        "p90Ns": percentile(&samples, 0.9),
        "p99Ns": percentile(&samples, 0.99),
        "checkpoints": checkpoints,
    }))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/compare".into()));
    let case_secs: f64 = match args.next() {
        Some(s) => s.parse().context("SECONDS_PER_CASE must be a number")?,
        None => 0.1,
    };
    let budget = Duration::from_secs_f64(case_secs);
    let manifest: Manifest = serde_json::from_str(
        &fs::read_to_string(dir.join("manifest.json")).context("cannot read manifest.json")?,
    )?;

    let profiles = Profiles::builtin();
    let profile = profiles.get(PROFILE)?.clone();
    let tokenizer = Embedded::Cl100kBase.tokenizer();
    // Trimming against LangChain runs with the count cache off: every run counts
    // from scratch, as the Python side does. The grow runs use the default cache.
    let uncached = Model::with_cache_capacity(profile.clone(), tokenizer.clone(), 0);

    // ---- counting: per-message counts of every conversation, and trimming ----
    let mut sets = Vec::new();
    let mut trims = Vec::new();
    let mut loaded = Vec::new();
    for set in &manifest.sets {
        let conversations = read_conversations(&dir.join(&set.file))?;
        let mut per_conversation = Vec::new();
        for (c, messages) in conversations.iter().enumerate() {
            let counts = uncached.count(messages);
            per_conversation.push(json!({
                "perMessage": counts.per_message,
                "reply": counts.reply,
                "total": counts.total,
            }));
            for &max_tokens in &manifest.max_tokens {
                let trim = uncached
                    .trim(messages, max_tokens)
                    .with_context(|| format!("{} #{c} maxTokens {max_tokens}", set.name))?;
                let samples = time_runs(budget, 5, 1_000_000, || {
                    uncached.trim(messages, max_tokens).map(|t| t.first_kept())
                });
                trims.push(json!({
                    "set": set.name,
                    "conversation": c,
                    "maxTokens": max_tokens,
                    "kept": kept_indices(&trim, messages),
                    "tokensAfter": trim.report().tokens_after,
                    "turnsDropped": trim.report().turns_dropped,
                    "medianNs": median(&samples),
                    "runs": samples.len(),
                }));
            }
        }
        sets.push(json!({ "name": set.name, "counts": per_conversation }));
        loaded.push((set.name.clone(), conversations));
    }

    // ---- counting text: the corpus as one document, and line by line ----
    let corpus = fs::read_to_string(dir.join(&manifest.corpus)).context("cannot read corpus")?;
    let lines: Vec<&str> = corpus.lines().collect();
    let line_counts: Vec<usize> = lines.iter().map(|l| tokenizer.count(l)).collect();
    let doc_tokens = tokenizer.count(&corpus);
    let doc = time_runs(budget * 10, 5, 1_000, || tokenizer.count(&corpus));
    let per_line = time_runs(budget * 10, 5, 1_000, || {
        lines.iter().map(|l| tokenizer.count(l)).sum::<usize>()
    });

    // ---- re-trimming a conversation that grew by one turn (warm cache) ----
    let grow_text =
        fs::read_to_string(dir.join(&manifest.grow_turns)).context("cannot read grow turns")?;
    let grow_turns: Vec<Vec<Message>> = serde_json::from_str::<Vec<ConversationLine>>(&grow_text)?
        .into_iter()
        .map(|c| c.messages)
        .collect();
    if grow_turns.is_empty() {
        bail!("no grow turns");
    }
    let mut grows = Vec::new();
    for (name, conversations) in &loaded {
        for mode in [GrowMode::Trim, GrowMode::Conversation] {
            // Each run on a thread of its own: tokenizers keep a per-thread cache
            // of word counts, and no run may find the new turns' words there
            // because an earlier run counted them.
            let run = std::thread::scope(|s| {
                s.spawn(|| {
                    grow(
                        mode,
                        name,
                        &conversations[0],
                        &grow_turns,
                        &profile,
                        &tokenizer,
                        &manifest,
                    )
                })
                .join()
                .expect("grow run panicked")
            })?;
            grows.push(run);
        }
    }

    let out = json!({
        "profile": PROFILE,
        "encoding": tokenizer.name(),
        "sets": sets,
        "trims": trims,
        "countText": {
            "bytes": corpus.len(),
            "lines": lines.len(),
            "docTokens": doc_tokens,
            "lineCounts": line_counts,
            "docMedianNs": median(&doc),
            "docRuns": doc.len(),
            "linesMedianNs": median(&per_line),
            "linesRuns": per_line.len(),
        },
        "grow": grows,
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
