//! `sluice count`, `sluice trim` and `sluice tokenizer`.
//!
//! One JSON request, or JSONL batches streamed through `sluice_pipeline` (parallel,
//! in input order, memory flat however large the file is).

use std::io::{self, BufWriter, IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use indicatif::ProgressBar;
use sluice_core::{CacheScope, Embedded, Profiles};
use sluice_pipeline::{COUNTS_PER_THREAD, Job, JobKind, Tally};

use crate::batch::{open_input, progress_bar, show_progress};

/// Options that choose the model.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Model profile (built-in: HCX-003, HCX-DASH-001, HCX-005, HCX-DASH-002, HCX-007,
    /// cl100k, o200k).
    #[arg(long, default_value = "HCX-003")]
    model: String,
    /// A TOML file that adds or overrides model profiles.
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Count with this Hugging Face tokenizer.json instead of the profile's tokenizer.
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Messages whose token counts each worker thread remembers; 0 turns the cache
    /// off, about 12% faster when no message repeats across lines.
    #[arg(long, value_name = "N", default_value_t = COUNTS_PER_THREAD)]
    cache: usize,
}

/// Where requests come from and how batches run.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Input file: one JSON request, or JSONL (one request per line). Default: stdin.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// Treat the input as JSONL (implied by a .jsonl file name).
    #[arg(long)]
    jsonl: bool,
    /// Worker threads for JSONL input (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Arguments of `sluice trim`.
#[derive(Debug, clap::Args)]
pub struct TrimArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// maxTokens for requests that do not give one.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    max_tokens: i64,
    /// Also count dropped messages, so the report always has tokensBefore.
    #[arg(long)]
    full_report: bool,
    #[command(flatten)]
    input: InputArgs,
}

/// Arguments of `sluice count`.
#[derive(Debug, clap::Args)]
pub struct CountArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
}

/// `sluice tokenizer ...`
#[derive(Debug, clap::Subcommand)]
pub enum TokenizerCommand {
    /// Write an embedded encoding as a Hugging Face tokenizer.json.
    Export {
        /// cl100k_base or o200k_base.
        encoding: String,
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// The profiles, with `--profiles` and `--tokenizer` applied. Their models keep
/// one count cache per worker thread, so that workers share no memory they write
/// (see `sluice_core::CacheScope` for what it costs and saves).
fn load_profiles(args: &ModelArgs) -> anyhow::Result<Profiles> {
    let mut profiles = Profiles::builtin().with_cache_scope(CacheScope::PerThread {
        capacity: args.cache,
    });
    if let Some(path) = &args.profiles {
        profiles.load_file(path)?;
    }
    if let Some(path) = &args.tokenizer {
        if !path.is_file() {
            bail!("cannot read tokenizer file {}", path.display());
        }
        profiles.set_tokenizer_file(path);
    }
    Ok(profiles)
}

/// `sluice count`.
pub fn count(args: CountArgs) -> anyhow::Result<ExitCode> {
    let profiles = load_profiles(&args.model)?;
    let job = Job::new(&profiles, &args.model.model, JobKind::Count)?;
    run_job(&job, &args.input)
}

/// `sluice trim`.
pub fn trim(args: TrimArgs) -> anyhow::Result<ExitCode> {
    let profiles = load_profiles(&args.model)?;
    let kind = JobKind::Trim {
        max_tokens: args.max_tokens,
        full_report: args.full_report,
    };
    let job = Job::new(&profiles, &args.model.model, kind)?;
    run_job(&job, &args.input)
}

/// `sluice tokenizer ...`.
pub fn tokenizer(cmd: TokenizerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenizerCommand::Export { encoding, output } => {
            let Some(encoding) = Embedded::from_name(&encoding) else {
                bail!("unknown encoding {encoding:?} (expected cl100k_base or o200k_base)");
            };
            let json = sluice_core::export_tokenizer_json(encoding);
            match output {
                Some(path) => std::fs::write(&path, json)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => io::stdout().lock().write_all(json.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_job(job: &Job<'_>, input: &InputArgs) -> anyhow::Result<ExitCode> {
    let is_jsonl = input.jsonl
        || input
            .input
            .as_deref()
            .and_then(Path::extension)
            .is_some_and(|e| e == "jsonl");
    let (reader, len) = open_input(input.input.as_deref())?;
    if !is_jsonl {
        return run_single(job, reader);
    }
    if let Some(threads) = input.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start worker threads")?;
    }
    let progress = (!input.no_progress && io::stderr().is_terminal()).then(|| progress_bar(len));
    run_batch(job, reader, progress)
}

fn run_single(job: &Job<'_>, mut reader: Box<dyn Read + Send>) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .context("cannot read input (is it UTF-8?)")?;
    let out = job.run_json(sluice_core::strip_bom(&text)).map_err(|e| {
        // Several requests in one file: say how to run them.
        let hint = if e.message.contains("there is more after the JSON value") {
            "; for one request per line, use --jsonl"
        } else {
            ""
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.write_all(b"\n")?;
    Ok(ExitCode::SUCCESS)
}

fn run_batch(
    job: &Job<'_>,
    reader: Box<dyn Read + Send>,
    progress: Option<ProgressBar>,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let out = BufWriter::with_capacity(1 << 20, io::stdout());
    let mut total = Tally::default();
    let bytes = sluice_pipeline::stream(
        reader,
        out,
        |line| job.run_line(line),
        |tally| total += tally,
        show_progress(progress.as_ref()),
    )?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let before = if total.before_unknown > 0 {
        format!(
            "{} on the {} lines kept whole ({} trimmed lines are not counted in full; \
             --full-report counts them)",
            total.tokens_before,
            total.lines - total.errors - total.before_unknown,
            total.before_unknown
        )
    } else {
        total.tokens_before.to_string()
    };
    eprintln!(
        "sluice: {} lines, {} errors, tokens after {}, before {}, {:.0} lines/s, {:.1} MB/s",
        total.lines,
        total.errors,
        total.tokens_after,
        before,
        total.lines as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
    Ok(if total.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
