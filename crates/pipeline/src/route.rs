//! The per-request job of `sluice route` batches, and the parallel runs behind
//! `sluice route eval` and `sluice route diff`.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_router::{
    Decision, EvalReport, Explanation, Labelled, RouteError, RouteRequest, RouteResult, Router,
};

use crate::stream::{Line, LineError, parse_line};

/// A JSONL request: the router API's body plus an optional `id`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// What to route.
    #[serde(flatten)]
    pub request: RouteRequest,
    /// Echoed in the output.
    #[serde(default)]
    pub id: Option<Value>,
}

/// One routed request as the command writes it: the request's id, the API
/// result, and the explanation when asked for.
#[derive(Serialize)]
pub struct Output<'a> {
    /// The request's `id`, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
    /// The router API's `result` object.
    #[serde(flatten)]
    pub result: &'a RouteResult,
    /// Scores and fired rules, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<&'a Explanation>,
}

/// Routes JSONL lines with one router version.
///
/// ```
/// use sluice_pipeline::{Line, route::RouteJob};
/// use sluice_router::RouterStore;
///
/// let router = RouterStore::embedded_sample().get("sample", 1)?;
/// let job = RouteJob::new(&router, false);
/// let (out, domain) = job.run_line(Line { number: 1, text: Ok(r#"{"id":1,"query":"서울 날씨"}"#) });
/// assert_eq!(domain.as_deref(), Some("날씨"));
/// assert!(out.starts_with(r#"{"id":1,"domain":{"result":"날씨","called":true}"#), "{out}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RouteJob<'r> {
    router: &'r Router,
    explain: bool,
}

impl<'r> RouteJob<'r> {
    /// Routes with `router`, adding the explanation to every output if `explain`.
    pub fn new(router: &'r Router, explain: bool) -> Self {
        Self { router, explain }
    }

    /// The router it routes with.
    pub fn router(&self) -> &'r Router {
        self.router
    }

    /// One JSONL line in, one line out, and the domain it got (`None` when the
    /// line failed: its output is then an error object).
    pub fn run_line(&self, line: Line<'_>) -> (String, Option<String>) {
        let request: Request = match parse_line(&line) {
            Ok(r) => r,
            Err(out) => return (out, None),
        };
        match self.router.route_explained(&request.request) {
            Ok(routed) => {
                let out = Output {
                    id: request.id.as_ref(),
                    result: &routed.result,
                    explanation: self.explain.then_some(&routed.explanation),
                };
                (
                    serde_json::to_string(&out).expect("serializable"),
                    Some(routed.result.domain.result),
                )
            }
            Err(e) => (
                LineError::from(e).into_line(request.id.as_ref(), line.number),
                None,
            ),
        }
    }
}

/// Totals of a routed batch, for its summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteSummary {
    /// Requests processed.
    pub lines: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests per domain (`""` for none).
    pub per_domain: BTreeMap<String, u64>,
}

impl RouteSummary {
    /// Adds one request's outcome ([`RouteJob::run_line`]'s domain).
    pub fn add(&mut self, outcome: Option<String>) {
        self.lines += 1;
        match outcome {
            Some(domain) => *self.per_domain.entry(domain).or_default() += 1,
            None => self.errors += 1,
        }
    }
}

/// A query routed in parallel failed: the number its caller gave it (its line)
/// and why.
pub type Failed = (usize, RouteError);

/// A line of an `eval` or `diff` input that could not be read: its 1-based
/// number and what was wrong with it.
pub type Unreadable = (usize, String);

/// The non-blank lines of `text` with their 1-based numbers.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// The labelled queries of a `route eval` input: one `{"query": ..., "domain":
/// ...}` object per line, blank lines skipped, each numbered by its line.
///
/// ```
/// let input = "{\"query\":\"서울 날씨\",\"domain\":\"날씨\"}\n\n{\"query\":\"hi\"}\n";
/// let err = sluice_pipeline::route::read_labelled(input).unwrap_err();
/// assert_eq!(err.0, 3);
/// assert!(err.1.contains("domain"), "{}", err.1);
/// ```
pub fn read_labelled(text: &str) -> Result<Vec<(usize, Labelled)>, Unreadable> {
    numbered_lines(text)
        .map(|(n, l)| {
            serde_json::from_str::<Labelled>(l)
                .map(|x| (n, x))
                .map_err(|e| (n, LineError::json_in(l, &e, "").message))
        })
        .collect()
}

/// The queries of a `route diff` input: per line a request object (the router
/// API's body plus an optional `id`) or, when the line does not start with
/// `{`, the query itself; blank lines skipped, each numbered by its line.
///
/// ```
/// let queries = sluice_pipeline::route::read_queries("서울 날씨\n{\"id\":7,\"query\":\"hi\"}\n").unwrap();
/// assert_eq!(queries[0].1.request.query, "서울 날씨");
/// assert_eq!((queries[1].0, queries[1].1.id.clone()), (2, Some(7.into())));
/// ```
pub fn read_queries(text: &str) -> Result<Vec<(usize, Request)>, Unreadable> {
    numbered_lines(text)
        .map(|(n, l)| {
            if l.trim_start().starts_with('{') {
                serde_json::from_str::<Request>(l)
                    .map(|r| (n, r))
                    .map_err(|e| (n, LineError::json_in(l, &e, "").message))
            } else {
                Ok((
                    n,
                    Request {
                        request: RouteRequest::new(l),
                        id: None,
                    },
                ))
            }
        })
        .collect()
}

/// Routes `labelled` queries in parallel and scores the router on them. Each
/// query comes with a number (its line) that names it if routing fails.
pub fn evaluate(router: &Router, labelled: &[(usize, Labelled)]) -> Result<EvalReport, Failed> {
    let predicted: Vec<String> = labelled
        .par_iter()
        .map(|(n, x)| {
            router
                .route(&x.request)
                .map(|r| r.domain.result)
                .map_err(|e| (*n, e))
        })
        .collect::<Result<_, _>>()?;
    Ok(EvalReport::new(
        router,
        labelled
            .iter()
            .zip(&predicted)
            .map(|((_, x), p)| (x.domain.as_str(), p.as_str())),
    ))
}

/// A query whose decision differs between two router versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The query's number (its line).
    pub line: usize,
    /// The request's `id`, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The query.
    pub query: String,
    /// The old version's decision.
    pub from: Decision,
    /// The new version's decision.
    pub to: Decision,
}

/// Routes numbered requests with `old` and `new` in parallel and returns those
/// whose decision (domain or filters) changes, in input order.
pub fn diff(
    old: &Router,
    new: &Router,
    requests: Vec<(usize, Request)>,
) -> Result<Vec<Change>, Failed> {
    let decided: Vec<(Decision, Decision)> = requests
        .par_iter()
        .map(|(n, r)| {
            let run = |router: &Router| {
                router
                    .route(&r.request)
                    .map(Decision::from)
                    .map_err(|e| (*n, e))
            };
            Ok((run(old)?, run(new)?))
        })
        .collect::<Result<_, _>>()?;
    Ok(requests
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
        .collect())
}
