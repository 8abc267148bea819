//! `sluice route`: route one query or JSONL batches, and `eval`, `diff`, `check`.
//!
//! Batches are read in chunks, routed in parallel with rayon and written in input
//! order before the next chunk is read, so memory stays flat.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::Message;
use sluice_router::{Explanation, RouteRequest, RouteResult, Router, RouterStore};

use crate::batch::{self, LineError, open_input, progress_bar};

/// Arguments of `sluice route`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RouteArgs {
    #[command(subcommand)]
    cmd: Option<RouteCmd>,
    #[command(flatten)]
    query: QueryArgs,
}

/// Which router to use.
#[derive(Debug, Clone, clap::Args)]
struct RouterArgs {
    /// Directory of routers, laid out as DIR/ROUTER-ID/VERSION.toml
    /// (default: the sample router built into sluice).
    #[arg(long = "router", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Router id.
    #[arg(long, default_value = "sample")]
    router_id: String,
}

/// Routing one query or a JSONL batch.
#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// The query to route. Without it, JSONL requests are read from --jsonl FILE or stdin.
    query: Option<String>,
    #[command(flatten)]
    router: RouterArgs,
    /// Router version (default: the highest one).
    #[arg(long)]
    version: Option<u32>,
    /// An earlier user turn, oldest first (repeatable).
    #[arg(long = "history", value_name = "TEXT")]
    history: Vec<String>,
    /// Add the explanation: per-domain scores, runner-up, rules fired with spans.
    #[arg(long)]
    explain: bool,
    /// JSONL input, one request per line: {"query", "chatHistory"?, "id"?}; "-" for stdin.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Worker threads for batches (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, clap::Subcommand)]
enum RouteCmd {
    /// Score a router on labelled JSONL ({"query", "chatHistory"?, "domain"}):
    /// accuracy, per-domain precision and recall, confusion matrix.
    Eval {
        /// Labelled JSONL file ("-" for stdin).
        file: PathBuf,
        #[command(flatten)]
        router: RouterArgs,
        /// Router version (default: the highest one).
        #[arg(long)]
        version: Option<u32>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the queries whose domain or filters change between two versions.
    Diff {
        /// The old version.
        #[arg(long)]
        from: u32,
        /// The new version.
        #[arg(long)]
        to: u32,
        /// Queries: JSONL requests, or one plain-text query per line ("-" for stdin).
        file: PathBuf,
        #[command(flatten)]
        router: RouterArgs,
    },
    /// Validate a router file (or a directory of routers) and list duplicate,
    /// shadowed and unreachable rules.
    Check {
        /// A router file or a directory DIR/ROUTER-ID/VERSION.toml.
        config: PathBuf,
        /// Exit with status 1 when there are findings, not only errors.
        #[arg(long)]
        strict: bool,
    },
}

/// Runs `sluice route`.
pub fn run(args: RouteArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Some(RouteCmd::Eval {
            file,
            router,
            version,
            json,
        }) => eval(&router, version, &file, json),
        Some(RouteCmd::Diff {
            from,
            to,
            file,
            router,
        }) => diff(&router, from, to, &file),
        Some(RouteCmd::Check { config, strict }) => check(&config, strict),
        None => route(args.query),
    }
}

fn load_store(args: &RouterArgs) -> anyhow::Result<RouterStore> {
    match &args.dir {
        None => Ok(RouterStore::embedded_sample()),
        Some(dir) => RouterStore::load_dir(dir).map_err(|e| anyhow!("{} {e}", e.code())),
    }
}

fn pick(store: &RouterStore, id: &str, version: Option<u32>) -> anyhow::Result<Arc<Router>> {
    match version {
        Some(v) => store.get(id, v).map_err(|e| anyhow!("{} {e}", e.code())),
        None => store
            .latest(id)
            .ok_or_else(|| anyhow!("40400 router not found: {id}")),
    }
}

/// One output line of a batch: the request's id, the API result, and the
/// explanation when asked for.
#[derive(Serialize)]
struct Output<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    #[serde(flatten)]
    result: &'a RouteResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a Explanation>,
}

/// A JSONL request: the router API's body plus an optional `id`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(flatten)]
    request: RouteRequest,
    #[serde(default)]
    id: Option<Value>,
}

fn route(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let store = load_store(&args.router)?;
    let router = pick(&store, &args.router.router_id, args.version)?;
    if let Some(query) = &args.query {
        if args.jsonl.is_some() {
            bail!("give either a query or --jsonl, not both");
        }
        let request = RouteRequest {
            query: query.clone(),
            chat_history: args
                .history
                .iter()
                .map(|h| Message::user(h.as_str()))
                .collect(),
        };
        let routed = router
            .route_explained(&request)
            .map_err(|e| anyhow!("{} {e}", e.code()))?;
        let out = Output {
            id: None,
            result: &routed.result,
            explanation: args.explain.then_some(&routed.explanation),
        };
        let text = serde_json::to_string_pretty(&out).expect("serializable");
        writeln!(io::stdout().lock(), "{text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.history.is_empty() {
        bail!("--history applies to a single query; batch requests carry chatHistory");
    }
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start worker threads")?;
    }
    let (reader, len) = open_input(args.jsonl.as_deref())?;
    if args.jsonl.is_none() && io::stdin().is_terminal() {
        bail!("no query: give one (sluice route \"...\"), or JSONL with --jsonl FILE or on stdin");
    }
    let progress = (!args.no_progress && io::stderr().is_terminal()).then(|| progress_bar(len));
    batch(&router, args.explain, reader, progress)
}

/// What one routed line adds to the summary: its domain, or None for an error.
type Outcome = Option<String>;

fn route_line(router: &Router, explain: bool, line: batch::Line<'_>) -> (String, Outcome) {
    let request: Request = match batch::parse_line(&line) {
        Ok(r) => r,
        Err(out) => return (out, None),
    };
    match router.route_explained(&request.request) {
        Ok(routed) => {
            let out = Output {
                id: request.id.as_ref(),
                result: &routed.result,
                explanation: explain.then_some(&routed.explanation),
            };
            let domain = routed.result.domain.result.clone();
            (
                serde_json::to_string(&out).expect("serializable"),
                Some(domain),
            )
        }
        Err(e) => {
            let error = LineError {
                code: e.code(),
                message: e.to_string(),
            };
            (error.into_line(request.id.as_ref(), line.number), None)
        }
    }
}

/// Totals of a batch, for the summary.
#[derive(Debug, Default, PartialEq)]
struct BatchSummary {
    lines: u64,
    errors: u64,
    per_domain: BTreeMap<String, u64>,
}

fn batch(
    router: &Router,
    explain: bool,
    reader: Box<dyn Read + Send>,
    progress: Option<ProgressBar>,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let out = BufWriter::with_capacity(1 << 20, io::stdout());
    let summary = route_stream(router, explain, reader, out, progress.as_ref())?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let domains: Vec<String> = summary
        .per_domain
        .iter()
        .map(|(d, n)| format!("{}: {n}", if d.is_empty() { "(none)" } else { d }))
        .collect();
    eprintln!(
        "sluice route: {} lines, {} errors, {:.0} lines/s; {}",
        summary.lines,
        summary.errors,
        summary.lines as f64 / secs,
        domains.join(", ")
    );
    Ok(if summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Routes JSONL from `reader` to `out`, one output line per input line, in input
/// order, chunk by chunk.
fn route_stream(
    router: &Router,
    explain: bool,
    reader: impl Read + Send,
    out: impl Write + Send,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<BatchSummary> {
    let mut summary = BatchSummary::default();
    batch::stream(
        reader,
        out,
        progress,
        |line| route_line(router, explain, line),
        |outcome| {
            summary.lines += 1;
            match outcome {
                Some(domain) => *summary.per_domain.entry(domain).or_default() += 1,
                None => summary.errors += 1,
            }
        },
    )?;
    Ok(summary)
}

/// Reads all lines of `path` ("-" for stdin), skipping blank ones, with their
/// 1-based line numbers.
fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let (mut reader, _) = open_input(Some(path))?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} (is it UTF-8?)", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

/// A labelled eval line.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Labelled {
    #[serde(flatten)]
    request: RouteRequest,
    /// The expected domain ("" for none).
    #[serde(alias = "expected")]
    domain: String,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct DomainStats {
    domain: String,
    support: u64,
    predicted: u64,
    correct: u64,
    precision: f64,
    recall: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EvalReport {
    router: String,
    version: u32,
    total: u64,
    correct: u64,
    accuracy: f64,
    domains: Vec<DomainStats>,
    /// Labels in matrix order ("" is no domain).
    labels: Vec<String>,
    /// `confusion[expected][predicted]`.
    confusion: Vec<Vec<u64>>,
}

fn eval(
    args: &RouterArgs,
    version: Option<u32>,
    file: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = load_store(args)?;
    let router = pick(&store, &args.router_id, version)?;
    let report = eval_report(&router, file)?;
    let mut out = io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&report).expect("serializable");
        writeln!(out, "{text}")?;
    } else {
        write_eval(&mut out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn eval_report(router: &Router, file: &Path) -> anyhow::Result<EvalReport> {
    let lines = read_lines(file)?;
    let items: Vec<(usize, Labelled)> = lines
        .iter()
        .map(|(n, l)| {
            serde_json::from_str::<Labelled>(l)
                .map(|x| (*n, x))
                .map_err(|e| {
                    anyhow!(
                        "{}:{n}: {}",
                        file.display(),
                        LineError::json_in(l, &e, "").message
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let predicted: Vec<String> = items
        .par_iter()
        .map(|(n, x)| {
            router
                .route(&x.request)
                .map(|r| r.domain.result)
                .map_err(|e| anyhow!("{}:{n}: {} {e}", file.display(), e.code()))
        })
        .collect::<anyhow::Result<_>>()?;

    let mut labels: Vec<String> = router.domains().map(str::to_string).collect();
    labels.push(String::new());
    for (_, x) in &items {
        if !labels.contains(&x.domain) {
            labels.push(x.domain.clone());
        }
    }
    let index = |d: &str| labels.iter().position(|l| l == d).expect("label listed");
    let mut confusion = vec![vec![0u64; labels.len()]; labels.len()];
    for ((_, x), p) in items.iter().zip(&predicted) {
        confusion[index(&x.domain)][index(p)] += 1;
    }
    let total = items.len() as u64;
    let correct: u64 = (0..labels.len()).map(|i| confusion[i][i]).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let domains: Vec<DomainStats> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
            let hit = confusion[i][i];
            DomainStats {
                domain: l.clone(),
                support,
                predicted,
                correct: hit,
                precision: ratio(hit, predicted),
                recall: ratio(hit, support),
            }
        })
        .collect();
    Ok(EvalReport {
        router: router.id().to_string(),
        version: router.version(),
        total,
        correct,
        accuracy: ratio(correct, total),
        domains,
        labels,
        confusion,
    })
}

fn write_eval(out: &mut impl Write, r: &EvalReport) -> io::Result<()> {
    let name = |l: &str| {
        if l.is_empty() {
            "(none)".to_string()
        } else {
            l.to_string()
        }
    };
    writeln!(out, "router {} version {}", r.router, r.version)?;
    writeln!(
        out,
        "accuracy {:.4} ({} of {})",
        r.accuracy, r.correct, r.total
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:>9} {:>9} {:>8} {:>9}",
        "domain", "precision", "recall", "support", "predicted"
    )?;
    for d in &r.domains {
        writeln!(
            out,
            "{:<20} {:>9.4} {:>9.4} {:>8} {:>9}",
            name(&d.domain),
            d.precision,
            d.recall,
            d.support,
            d.predicted
        )?;
    }
    writeln!(out)?;
    writeln!(out, "confusion matrix (rows: expected, columns: predicted)")?;
    for (i, l) in r.labels.iter().enumerate() {
        writeln!(out, "  [{i}] {}", name(l))?;
    }
    write!(out, "{:>6}", "")?;
    for i in 0..r.labels.len() {
        write!(out, " {:>6}", format!("[{i}]"))?;
    }
    writeln!(out)?;
    for (i, row) in r.confusion.iter().enumerate() {
        write!(out, "{:>6}", format!("[{i}]"))?;
        for n in row {
            write!(out, " {n:>6}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The part of a result that `diff` compares.
#[derive(Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Decision {
    domain: String,
    blocked_content: Vec<String>,
    safety: Vec<String>,
}

impl From<RouteResult> for Decision {
    fn from(r: RouteResult) -> Self {
        Self {
            domain: r.domain.result,
            blocked_content: r.blocked_content.result,
            safety: r.safety.result,
        }
    }
}

#[derive(Serialize)]
struct Change {
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    query: String,
    from: Decision,
    to: Decision,
}

fn diff(args: &RouterArgs, from: u32, to: u32, file: &Path) -> anyhow::Result<ExitCode> {
    let store = load_store(args)?;
    let old = pick(&store, &args.router_id, Some(from))?;
    let new = pick(&store, &args.router_id, Some(to))?;
    let (total, changes) = find_changes(&old, &new, file)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for change in &changes {
        let text = serde_json::to_string(change).expect("serializable");
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    let domain_changes = changes
        .iter()
        .filter(|c| c.from.domain != c.to.domain)
        .count();
    eprintln!(
        "sluice route diff: {total} queries, {domain_changes} change domain, {} change only filters ({} v{from} -> v{to})",
        changes.len() - domain_changes,
        args.router_id,
    );
    Ok(ExitCode::SUCCESS)
}

/// The number of queries in `file` and those whose decision differs.
fn find_changes(old: &Router, new: &Router, file: &Path) -> anyhow::Result<(usize, Vec<Change>)> {
    let lines = read_lines(file)?;
    let requests: Vec<(usize, Request)> = lines
        .iter()
        .map(|(n, l)| {
            if l.trim_start().starts_with('{') {
                serde_json::from_str::<Request>(l)
                    .map(|r| (*n, r))
                    .map_err(|e| {
                        anyhow!(
                            "{}:{n}: {}",
                            file.display(),
                            LineError::json_in(l, &e, "").message
                        )
                    })
            } else {
                Ok((
                    *n,
                    Request {
                        request: RouteRequest::new(l.as_str()),
                        id: None,
                    },
                ))
            }
        })
        .collect::<anyhow::Result<_>>()?;
    let decided: Vec<(Decision, Decision)> = requests
        .par_iter()
        .map(|(n, r)| {
            let run = |router: &Router| {
                router
                    .route(&r.request)
                    .map(Decision::from)
                    .map_err(|e| anyhow!("{}:{n}: {} {e}", file.display(), e.code()))
            };
            Ok((run(old)?, run(new)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let changes = requests
        .into_iter()
        .zip(decided)
        .filter(|(_, (a, b))| a != b)
        .map(|((line, r), (from, to))| Change {
            line,
            id: r.id,
            query: r.request.query,
            from,
            to,
        })
        .collect::<Vec<_>>();
    Ok((lines.len(), changes))
}

fn check(config: &Path, strict: bool) -> anyhow::Result<ExitCode> {
    let routers: Vec<Arc<Router>> = if config.is_dir() {
        match RouterStore::load_dir(config) {
            Ok(store) => store.iter().cloned().collect(),
            Err(e) => return Err(report_build_error(e)),
        }
    } else {
        match Router::from_file(config) {
            Ok(r) => vec![Arc::new(r)],
            Err(e) => return Err(report_build_error(e)),
        }
    };
    let mut out = io::stdout().lock();
    let mut findings = 0;
    for r in &routers {
        let lints = r.lints();
        for l in &lints {
            writeln!(out, "{l}")?;
        }
        findings += lints.len();
        writeln!(
            out,
            "ok: {}: router {} version {}, {} domains, {} findings",
            r.file(),
            r.id(),
            r.version(),
            r.domains().len(),
            lints.len()
        )?;
    }
    Ok(if strict && findings > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints every problem but the first to stderr; the first becomes the error.
fn report_build_error(e: sluice_router::BuildError) -> anyhow::Error {
    let problems = e.problems();
    for p in problems.iter().skip(1) {
        eprintln!("{p}");
    }
    match problems.first() {
        Some(first) if problems.len() > 1 => {
            anyhow!(
                "{} {first} ({} problems in all, listed above)",
                e.code(),
                problems.len()
            )
        }
        _ => anyhow!("{} {e}", e.code()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn data(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn sample(version: u32) -> Arc<Router> {
        RouterStore::embedded_sample()
            .get("sample", version)
            .unwrap()
    }

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        Route(RouteArgs),
    }

    fn parse(args: &[&str]) -> Result<RouteArgs, clap::Error> {
        let argv = ["sluice", "route"].iter().chain(args);
        Cli::try_parse_from(argv).map(|c| match c.cmd {
            Top::Route(r) => r,
        })
    }

    #[test]
    fn command_line_forms() {
        let a = parse(&[
            "미세먼지 정보 알려줘",
            "--history",
            "내일 서울의 강수 예보 알려줘",
            "--explain",
        ])
        .unwrap();
        assert!(a.cmd.is_none());
        assert_eq!(a.query.query.as_deref(), Some("미세먼지 정보 알려줘"));
        assert_eq!(a.query.history, ["내일 서울의 강수 예보 알려줘"]);
        assert!(a.query.explain);
        assert_eq!(a.query.router.router_id, "sample");

        let a = parse(&[
            "--jsonl",
            "in.jsonl",
            "--router",
            "routers",
            "--router-id",
            "x",
            "--version",
            "3",
        ])
        .unwrap();
        assert_eq!(a.query.jsonl.as_deref(), Some(Path::new("in.jsonl")));
        assert_eq!(a.query.version, Some(3));

        let a = parse(&["eval", "labels.jsonl", "--json"]).unwrap();
        assert!(matches!(a.cmd, Some(RouteCmd::Eval { json: true, .. })));
        let a = parse(&["diff", "--from", "1", "--to", "2", "q.txt"]).unwrap();
        assert!(matches!(a.cmd, Some(RouteCmd::Diff { from: 1, to: 2, .. })));
        let a = parse(&["check", "routers/sample/1.toml"]).unwrap();
        assert!(matches!(a.cmd, Some(RouteCmd::Check { strict: false, .. })));

        // Bad input is refused by the parser.
        assert!(parse(&["diff", "--from", "one", "--to", "2", "q.txt"]).is_err());
        assert!(parse(&["--version", "-1", "q"]).is_err());
    }

    #[test]
    fn bad_input_is_a_one_line_error() {
        for (args, code) in [
            (&["", "--no-progress"][..], "40004 "),
            (&["q", "--version", "9"][..], "40400 "),
            (&["q", "--router-id", "nope"][..], "40400 "),
            (&["q", "--router", "/nonexistent/routers"][..], "50000 "),
            (
                &["q", "--jsonl", "x.jsonl"][..],
                "give either a query or --jsonl",
            ),
        ] {
            let err = run(parse(args).unwrap()).unwrap_err().to_string();
            assert!(
                err.starts_with(code) || err.contains(code),
                "{args:?}: {err}"
            );
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
        // A good query succeeds.
        assert_eq!(
            run(parse(&["서울 날씨"]).unwrap()).unwrap(),
            ExitCode::SUCCESS
        );
    }

    #[test]
    fn batch_keeps_input_order_across_chunks_and_reports_errors_per_line() {
        let queries = ["내일 서울 날씨 어때?", "서울 맛집", "안녕", "쿠폰 있어?"];
        let n = 4096 + 500;
        let mut input = String::new();
        for i in 0..n {
            if i == 7 {
                input.push_str("{\"id\":7,\"query\":\"\"}\n");
            } else if i == 8 {
                input.push_str("not json\n");
            } else {
                input.push_str(&format!("{{\"id\":{i},\"query\":{:?}}}\n", queries[i % 4]));
            }
        }
        let mut out = Vec::new();
        let summary = route_stream(&sample(1), false, input.as_bytes(), &mut out, None).unwrap();
        assert_eq!(summary.lines, n as u64);
        assert_eq!(summary.errors, 2);
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), n);
        let expected = ["날씨", "지역 검색", "", "쇼핑"];
        for (i, v) in lines.iter().enumerate() {
            match i {
                7 => assert_eq!(v["error"]["code"], "40004"),
                8 => assert_eq!(v["error"]["code"], "40000"),
                _ => {
                    assert_eq!(v["id"], i, "line {i}");
                    assert_eq!(v["domain"]["result"], expected[i % 4], "line {i}");
                    assert!(v.get("explanation").is_none());
                }
            }
        }
        assert_eq!(lines[1]["blockedContent"]["result"][0], "UnsupportedRegion");
        assert_eq!(
            summary.per_domain["날씨"],
            (0..n).filter(|i| i % 4 == 0 && *i != 8).count() as u64
        );
    }

    #[test]
    fn batch_explains_when_asked() {
        let input = "{\"query\":\"미세먼지 정보 알려줘\",\"chatHistory\":[{\"role\":\"user\",\"content\":\"내일 서울의 강수 예보 알려줘\"}]}\n";
        let mut out = Vec::new();
        route_stream(&sample(1), true, input.as_bytes(), &mut out, None).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["domain"]["result"], "지역 검색");
        assert_eq!(v["explanation"]["decidedBy"], "query");
        assert!(v["explanation"]["fired"].as_array().unwrap().len() >= 2);
    }

    #[test]
    fn eval_reports_accuracy_precision_recall_and_confusion() {
        let r = eval_report(&sample(1), &data("tests/data/router/eval.jsonl")).unwrap();
        assert_eq!(r.total, 25);
        // "오늘 뭐 먹지" is labelled local search and gets no domain.
        assert_eq!(r.correct, 24);
        assert!((r.accuracy - 0.96).abs() < 1e-9);
        let stat = |d: &str| r.domains.iter().find(|s| s.domain == d).unwrap();
        assert_eq!(
            (stat("지역 검색").support, stat("지역 검색").correct),
            (6, 5)
        );
        assert!((stat("지역 검색").recall - 5.0 / 6.0).abs() < 1e-9);
        assert_eq!(stat("지역 검색").precision, 1.0);
        assert!((stat("").precision - 4.0 / 5.0).abs() < 1e-9);
        let at = |l: &str| r.labels.iter().position(|x| x == l).unwrap();
        assert_eq!(r.confusion[at("지역 검색")][at("")], 1);
        assert_eq!(r.confusion[at("날씨")][at("날씨")], 5);
        let mut text = Vec::new();
        write_eval(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("accuracy 0.9600 (24 of 25)"), "{text}");
    }

    #[test]
    fn eval_rejects_a_bad_line_with_its_number() {
        let path =
            std::env::temp_dir().join(format!("sluice-route-eval-{}.jsonl", std::process::id()));
        std::fs::write(
            &path,
            "{\"query\":\"a\",\"domain\":\"\"}\n\n{\"query\":\"b\"}\n",
        )
        .unwrap();
        let err = eval_report(&sample(1), &path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(
            err.contains(":3: invalid parameter: the field `domain` is missing"),
            "{err}"
        );
    }

    #[test]
    fn diff_lists_queries_that_change_between_versions() {
        let (total, found) = find_changes(
            &sample(1),
            &sample(2),
            &data("tests/data/router/queries.txt"),
        )
        .unwrap();
        assert_eq!(total, 13);
        let got: Vec<(usize, &str, &str)> = found
            .iter()
            .map(|c| (c.line, c.from.domain.as_str(), c.to.domain.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "지역 검색", "날씨"),
                (4, "", "교통"),
                (5, "", "교통"),
                (11, "", "날씨"),
                (12, "", "교통"),
            ]
        );
        // Same version: nothing changes.
        let (_, none) = find_changes(
            &sample(1),
            &sample(1),
            &data("tests/data/router/queries.txt"),
        )
        .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn check_validates_files_and_directories() {
        assert_eq!(check(&data("routers"), true).unwrap(), ExitCode::SUCCESS);
        assert_eq!(
            check(&data("routers/sample/1.toml"), true).unwrap(),
            ExitCode::SUCCESS
        );
        let lint = data("crates/router/tests/data/lint/1.toml");
        assert_eq!(check(&lint, false).unwrap(), ExitCode::SUCCESS);
        assert_eq!(check(&lint, true).unwrap(), ExitCode::from(1));
        let bad =
            std::env::temp_dir().join(format!("sluice-route-bad-{}.toml", std::process::id()));
        std::fs::write(&bad, "[router]\nid = \"x\"\nversion = 1\n[[domain]]\nname = \"\"\n[[domain]]\nname = \"b\"\nsafety = [\"Nope\"]\n").unwrap();
        let err = check(&bad, false).unwrap_err().to_string();
        std::fs::remove_file(&bad).unwrap();
        assert!(err.starts_with("65001 "), "{err}");
        assert!(err.contains(":5: domain name must not be empty"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
