//! `sluice route`: route one query or JSONL batches, and `eval`, `diff`, `check`.
//!
//! Batches stream through `sluice_pipeline` (routed in parallel, written in input
//! order, memory flat); `eval` and `diff` run `sluice_pipeline::route`'s parallel
//! evaluation and comparison.

use std::io::{self, BufWriter, IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use indicatif::ProgressBar;
use sluice_core::Message;
use sluice_pipeline::route::{self as routing, Change, Output, RouteJob, RouteSummary};
use sluice_router::{EvalReport, RouteError, RouteRequest, Router, RouterStore};

use crate::batch::{open_input, progress_bar, show_progress};

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

fn route(args: QueryArgs) -> anyhow::Result<ExitCode> {
    // The embedded sample: only the version asked for is compiled.
    let store = match &args.router.dir {
        None => RouterStore::embedded_sample_version(args.version),
        Some(_) => load_store(&args.router)?,
    };
    let router = pick(&store, &args.router.router_id, args.version)?;
    if let Some(query) = &args.query {
        if args.jsonl.is_some() {
            bail!("give either a query or --jsonl, not both");
        }
        let mut request = RouteRequest::new(query.as_str());
        request.chat_history = args
            .history
            .iter()
            .map(|h| Message::user(h.as_str()))
            .collect();
        let code = |e: RouteError| anyhow!("{} {e}", e.code());
        // Explaining costs extra work (a span for every fired rule): only on request.
        let (result, explanation) = if args.explain {
            let routed = router.route_explained(&request).map_err(code)?;
            (routed.result, Some(routed.explanation))
        } else {
            (router.route(&request).map_err(code)?, None)
        };
        let out = Output {
            id: None,
            result: &result,
            explanation: explanation.as_ref(),
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
) -> anyhow::Result<RouteSummary> {
    let job = RouteJob::new(router, explain);
    let mut summary = RouteSummary::default();
    sluice_pipeline::stream(
        reader,
        out,
        |line| job.run_line(line),
        |outcome| summary.add(outcome),
        show_progress(progress),
    )?;
    Ok(summary)
}

/// The text of `path` ("-" for stdin).
fn read_input(path: &Path) -> anyhow::Result<String> {
    let (mut reader, _) = open_input(Some(path))?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} (is it UTF-8?)", path.display()))?;
    Ok(text)
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
        write!(out, "{report}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn eval_report(router: &Router, file: &Path) -> anyhow::Result<EvalReport> {
    let items = routing::read_labelled(&read_input(file)?)
        .map_err(|(n, message)| anyhow!("{}:{n}: {message}", file.display()))?;
    routing::evaluate(router, &items)
        .map_err(|(n, e)| anyhow!("{}:{n}: {} {e}", file.display(), e.code()))
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
    let requests = routing::read_queries(&read_input(file)?)
        .map_err(|(n, message)| anyhow!("{}:{n}: {message}", file.display()))?;
    let total = requests.len();
    let changes = routing::diff(old, new, requests)
        .map_err(|(n, e)| anyhow!("{}:{n}: {} {e}", file.display(), e.code()))?;
    Ok((total, changes))
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
    use serde_json::Value;

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
        let text = r.to_string();
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
