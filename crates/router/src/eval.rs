//! Scoring a router on labelled queries (`sluice route eval`) and comparing the
//! decisions of two versions (`sluice route diff`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::{RouteRequest, RouteResult};
use crate::router::Router;

/// A labelled query: a route request and the domain it should get.
///
/// ```
/// let x: sluice_router::Labelled =
///     serde_json::from_str(r#"{"query":"서울 날씨","domain":"날씨"}"#).unwrap();
/// assert_eq!((x.request.query.as_str(), x.domain.as_str()), ("서울 날씨", "날씨"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Labelled {
    /// What to route.
    #[serde(flatten)]
    pub request: RouteRequest,
    /// The expected domain (`""` for none); `expected` is accepted too.
    #[serde(alias = "expected")]
    pub domain: String,
}

impl Labelled {
    /// A request labelled with the domain it should get (`""` for none).
    pub fn new(request: RouteRequest, domain: impl Into<String>) -> Self {
        Self {
            request,
            domain: domain.into(),
        }
    }
}

/// How a router does on one domain of an [`EvalReport`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DomainStats {
    /// The domain (`""` for none).
    pub domain: String,
    /// Queries labelled with it.
    pub support: u64,
    /// Queries the router put into it.
    pub predicted: u64,
    /// Queries labelled with it that the router put into it.
    pub correct: u64,
    /// `correct / predicted` (0 when nothing was predicted).
    pub precision: f64,
    /// `correct / support` (0 when nothing is labelled with it).
    pub recall: f64,
}

/// A router's accuracy, per-domain precision and recall, and confusion matrix on
/// labelled queries. Its `Display` is the table `sluice route eval` prints; it
/// serializes as `--json` writes it.
///
/// ```
/// use sluice_router::{EvalReport, RouterStore};
///
/// let router = RouterStore::embedded_sample().get("sample", 1)?;
/// let report = EvalReport::new(&router, [("날씨", "날씨"), ("날씨", ""), ("", "")]);
/// assert_eq!((report.total, report.correct), (3, 2));
/// assert!(report.to_string().contains("accuracy 0.6667 (2 of 3)"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EvalReport {
    /// The router's id.
    pub router: String,
    /// The router's version.
    pub version: u32,
    /// Queries scored.
    pub total: u64,
    /// Queries that got their label.
    pub correct: u64,
    /// `correct / total` (0 for no queries).
    pub accuracy: f64,
    /// One entry per label, in matrix order.
    pub domains: Vec<DomainStats>,
    /// Labels in matrix order: the router's domains, `""` (no domain), then any
    /// other label the queries use.
    pub labels: Vec<String>,
    /// `confusion[expected][predicted]`.
    pub confusion: Vec<Vec<u64>>,
}

impl EvalReport {
    /// The report for `router` on `(expected, predicted)` domain pairs, one per
    /// query.
    pub fn new<'a>(
        router: &Router,
        outcomes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let outcomes: Vec<(&str, &str)> = outcomes.into_iter().collect();
        let mut labels: Vec<String> = router.domains().map(str::to_string).collect();
        labels.push(String::new());
        for (expected, _) in &outcomes {
            if !labels.iter().any(|l| l == expected) {
                labels.push(expected.to_string());
            }
        }
        let index = |d: &str| labels.iter().position(|l| l == d);
        let mut confusion = vec![vec![0u64; labels.len()]; labels.len()];
        for (expected, predicted) in &outcomes {
            let row = index(expected).expect("label listed");
            // A router predicts only its own domains or "".
            let column = index(predicted).expect("a domain of the router");
            confusion[row][column] += 1;
        }
        let total = outcomes.len() as u64;
        let correct: u64 = (0..labels.len()).map(|i| confusion[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let domains = labels
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
        Self {
            router: router.id().to_string(),
            version: router.version(),
            total,
            correct,
            accuracy: ratio(correct, total),
            domains,
            labels,
            confusion,
        }
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |l: &str| {
            if l.is_empty() {
                "(none)".to_string()
            } else {
                l.to_string()
            }
        };
        writeln!(out, "router {} version {}", self.router, self.version)?;
        writeln!(
            out,
            "accuracy {:.4} ({} of {})",
            self.accuracy, self.correct, self.total
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>8} {:>9}",
            "domain", "precision", "recall", "support", "predicted"
        )?;
        for d in &self.domains {
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
        for (i, l) in self.labels.iter().enumerate() {
            writeln!(out, "  [{i}] {}", name(l))?;
        }
        write!(out, "{:>6}", "")?;
        for i in 0..self.labels.len() {
            write!(out, " {:>6}", format!("[{i}]"))?;
        }
        writeln!(out)?;
        for (i, row) in self.confusion.iter().enumerate() {
            write!(out, "{:>6}", format!("[{i}]"))?;
            for n in row {
                write!(out, " {n:>6}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// The part of a [`RouteResult`] that `sluice route diff` compares between two
/// versions: the domain and the filters that hit (not the usage).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Decision {
    /// The chosen domain (`""` for none).
    pub domain: String,
    /// The content filters that hit.
    pub blocked_content: Vec<String>,
    /// The safety categories that hit.
    pub safety: Vec<String>,
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
