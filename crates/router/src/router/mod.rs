//! The compiled router: one Aho-Corasick automaton for every literal, one
//! pattern index (`PatternIndex`) for every pattern, one bigram index for every example.
//!
//! Scoring, in integer thousandths so that scores are exact and ties stable:
//!
//! | evidence | points |
//! |---|---|
//! | each distinct keyword of the domain that fired | 1000 |
//! | each distinct pattern of the domain that fired | 1500 |
//! | best example similarity `s` (Jaccard of bigrams, 0..=1) | `2000 × s` |
//!
//! A domain is chosen when it has the most points and at least the threshold
//! (1.0 = 1000 points by default): one keyword is enough, an example alone needs
//! a similarity of 0.5. Equal points go to the domain declared first.

use std::path::Path;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::Hir;
use rustc_hash::FxHashMap;
use sluice_core::{Message, Model, Profiles, Role};

use crate::api::{
    DomainResult, DomainScore, Explanation, FilterResult, FiredRule, RouteRequest, RouteResult,
    Routed, RuleKind, Source, Target, Usage,
};
use crate::config::{self, Category, Config, Origin};
use crate::error::{BuildError, Problem, RouteError};
use crate::normalize::{self, Normalized};
use crate::patterns::{self, PatternIndex};
use crate::safety::builtin_rules;
use crate::similarity::{self, ExampleIndex};

/// Points for each distinct keyword that fired.
pub const KEYWORD_POINTS: u32 = 1000;
/// Points for each distinct pattern that fired.
pub const PATTERN_POINTS: u32 = 1500;
/// Points for a perfect example match (similarity 1.0).
pub const EXAMPLE_POINTS: u32 = 2000;

static PROFILES: LazyLock<Profiles> = LazyLock::new(Profiles::builtin);

/// Who a rule belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Domain(u32),
    Filter(u32, u32),
    Safety(Category),
}

/// A rule: its owner and its position in the owner's keyword or pattern list.
#[derive(Clone, Copy, Debug)]
struct RuleRef {
    owner: Owner,
    index: u32,
}

/// A router version, compiled and ready to route. Immutable, cheap to share
/// (`Arc`) and safe to use from many threads.
///
/// ```
/// use sluice_router::{RouteRequest, Router, SAMPLE_V1};
///
/// let router = Router::from_toml(SAMPLE_V1, "routers/sample/1.toml").unwrap();
/// assert!(router.domains().len() > 0);
/// let result = router.route(&RouteRequest::new("미세먼지 정보 알려줘")).unwrap();
/// assert!(result.usage.total_tokens > 0);
/// println!("domain: {:?}, filters: {:?}", result.domain.result, result.blocked_content.result);
/// ```
#[derive(Debug)]
pub struct Router {
    config: Config,
    model: Model,
    token_limit: usize,
    threshold: u32,
    /// Safety rule texts, built-in then from the file, by category.
    safety_keywords: [Vec<String>; 2],
    safety_patterns: [Vec<String>; 2],
    literals: AhoCorasick,
    literal_owners: Vec<Vec<RuleRef>>,
    literal_word_start: Vec<bool>,
    patterns: PatternIndex,
    pattern_owners: Vec<Vec<RuleRef>>,
    examples: ExampleIndex,
    example_owner: Vec<(u32, u32)>,
}

/// What fired in one text.
struct Scan {
    norm: Normalized,
    /// (literal id, compact range), every occurrence that passed the word check.
    literals: Vec<(u32, usize, usize)>,
    /// Pattern ids that matched.
    patterns: Vec<u32>,
    /// Per domain: best example similarity (thousandths) and that example.
    similarity: Vec<(u32, u32)>,
}

/// One domain's points in one text.
#[derive(Clone, Copy, Debug, Default)]
struct Points {
    total: u32,
    keywords: u32,
    patterns: u32,
    similarity: u32,
}

mod build;
mod score;

impl Router {
    /// The router id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The router version.
    pub fn version(&self) -> u32 {
        self.config.version
    }

    /// The router's description.
    pub fn description(&self) -> &str {
        &self.config.description
    }

    /// The file it was loaded from (or the name it was given).
    pub fn file(&self) -> &str {
        &self.config.file
    }

    /// The domain names, in declaration order.
    pub fn domains(&self) -> impl ExactSizeIterator<Item = &str> {
        self.config.domains.iter().map(|d| d.name.as_str())
    }

    /// The content filter names of a domain, in declaration order.
    pub fn filters(&self, domain: &str) -> impl Iterator<Item = &str> {
        self.config
            .domains
            .iter()
            .filter(move |d| d.name == domain)
            .flat_map(|d| d.filters.iter().map(|f| f.name.as_str()))
    }

    /// A domain's description (documentation, not used for matching).
    pub fn domain_description(&self, domain: &str) -> Option<&str> {
        self.config
            .domains
            .iter()
            .find(|d| d.name == domain)
            .map(|d| d.description.as_str())
    }

    /// A content filter's description: what a request that it blocks *is*.
    pub fn filter_description(&self, domain: &str, filter: &str) -> Option<&str> {
        self.config
            .domains
            .iter()
            .find(|d| d.name == domain)
            .and_then(|d| d.filters.iter().find(|f| f.name == filter))
            .map(|f| f.description.as_str())
    }

    /// The safety categories a domain checks.
    pub fn safety_categories(&self, domain: &str) -> &[Category] {
        self.config
            .domains
            .iter()
            .find(|d| d.name == domain)
            .map_or(&[], |d| d.safety.as_slice())
    }

    /// The model profile that counts `usage`.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The most prompt tokens a request may have.
    pub fn token_limit(&self) -> usize {
        self.token_limit
    }

    /// The score a domain needs, in points (1.0 = one keyword).
    pub fn threshold(&self) -> f64 {
        f64::from(self.threshold) / 1000.0
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Routes a request.
    ///
    /// ```
    /// use sluice_router::{RouteRequest, RouterStore};
    ///
    /// let store = RouterStore::embedded_sample();
    /// let router = store.get("sample", 1).unwrap();
    /// let result = router.route(&RouteRequest::new("내일 부산 날씨 어때?")).unwrap();
    /// assert_eq!(result.domain.result, "날씨");
    /// assert!(result.safety.called);
    /// ```
    pub fn route(&self, request: &RouteRequest) -> Result<RouteResult, RouteError> {
        self.run(request, false).map(|r| r.result)
    }

    /// Routes a request and says why.
    pub fn route_explained(&self, request: &RouteRequest) -> Result<Routed, RouteError> {
        self.run(request, true)
    }

    /// Tokens of the history plus the query, as `usage.promptTokens` reports them.
    pub fn prompt_tokens(&self, request: &RouteRequest) -> usize {
        let query = Message::user(request.query.as_str());
        let reply = self.model.count::<Message>(&[]).total;
        request
            .chat_history
            .iter()
            .chain(std::iter::once(&query))
            .map(|m| self.model.count_message(m))
            .sum::<usize>()
            + reply
    }

    fn run(&self, request: &RouteRequest, explain: bool) -> Result<Routed, RouteError> {
        if request.query.trim().is_empty() {
            return Err(RouteError::EmptyQuery);
        }
        let tokens = self.prompt_tokens(request);
        if tokens > self.token_limit {
            return Err(RouteError::TokenLimit {
                tokens,
                limit: self.token_limit,
            });
        }
        let usage = Usage {
            prompt_tokens: tokens,
            completion_tokens: 0,
            total_tokens: tokens,
        };

        // The texts that may decide, newest first: the query, then recent user turns.
        let mut sources = vec![(Source::Query, request.query.as_str())];
        sources.extend(
            request
                .chat_history
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, m)| m.role == Role::User)
                .take(self.config.history_turns)
                .map(|(i, m)| (Source::ChatHistory(i), m.content.as_str())),
        );
        let mut scans: Vec<Option<Scan>> = (0..sources.len()).map(|_| None).collect();

        let mut decided: Option<(usize, usize)> = None;
        let mut ranked_first: Vec<(usize, Points)> = Vec::new();
        for (s, (_, text)) in sources.iter().enumerate() {
            let scan = scans[s].insert(self.scan(text));
            let ranked = self.rank(scan);
            let top = ranked
                .first()
                .filter(|(_, p)| p.total >= self.threshold)
                .map(|(d, _)| *d);
            if s == 0 || top.is_some() {
                ranked_first = ranked;
            }
            if let Some(d) = top {
                decided = Some((s, d));
                break;
            }
        }

        let Some((decider, domain)) = decided else {
            let result = RouteResult {
                domain: DomainResult {
                    result: String::new(),
                    called: true,
                },
                blocked_content: FilterResult {
                    result: Vec::new(),
                    called: false,
                },
                safety: FilterResult {
                    result: Vec::new(),
                    called: false,
                },
                usage,
            };
            let explanation = explain.then(|| Explanation {
                decided_by: None,
                threshold: self.threshold(),
                scores: ranked_first
                    .iter()
                    .map(|&(d, p)| self.domain_score(d, p))
                    .collect(),
                runner_up: ranked_first.first().map(|&(d, p)| self.domain_score(d, p)),
                fired: scans[0]
                    .as_ref()
                    .map(|scan| {
                        self.fired_domain_rules(scan, Source::Query, request.query.as_str())
                    })
                    .unwrap_or_default(),
            });
            return Ok(Routed {
                result,
                explanation: explanation.unwrap_or_else(|| self.empty_explanation()),
            });
        };

        // Filters read the query and every recent user turn.
        for (s, (_, text)) in sources.iter().enumerate() {
            if scans[s].is_none() {
                scans[s] = Some(self.scan(text));
            }
        }
        let d = domain as u32;
        let dom = &self.config.domains[domain];
        let mut filter_hit = vec![false; dom.filters.len()];
        let mut safety_hit = [false; 2];
        let mut fired = Vec::new();
        if explain {
            let (src, text) = sources[decider];
            fired = self.fired_domain_rules(scans[decider].as_ref().expect("scanned"), src, text);
        }
        for (s, scan) in scans.iter().enumerate() {
            let scan = scan.as_ref().expect("scanned");
            let (src, text) = sources[s];
            let mut on = |r: &RuleRef, kind: RuleKind, span: std::ops::Range<usize>| -> bool {
                let hit = match r.owner {
                    Owner::Filter(fd, f) if fd == d => {
                        filter_hit[f as usize] = true;
                        true
                    }
                    Owner::Safety(c) if dom.safety.contains(&c) => {
                        safety_hit[c.index()] = true;
                        true
                    }
                    _ => false,
                };
                if hit && explain {
                    fired.push(self.fired_rule(r, kind, src, text, span));
                }
                hit
            };
            for &(id, start, end) in &scan.literals {
                for r in &self.literal_owners[id as usize] {
                    on(r, RuleKind::Keyword, scan.norm.compact_origin(start..end));
                }
            }
            for &id in &scan.patterns {
                for r in &self.pattern_owners[id as usize] {
                    if matches!(r.owner, Owner::Domain(_)) {
                        continue;
                    }
                    let span = if explain {
                        self.pattern_span(id, &scan.norm)
                    } else {
                        0..0
                    };
                    on(r, RuleKind::Pattern, span);
                }
            }
        }

        let result = RouteResult {
            domain: DomainResult {
                result: dom.name.clone(),
                called: true,
            },
            blocked_content: FilterResult {
                result: dom
                    .filters
                    .iter()
                    .zip(&filter_hit)
                    .filter(|(_, hit)| **hit)
                    .map(|(f, _)| f.name.clone())
                    .collect(),
                called: true,
            },
            safety: FilterResult {
                result: dom
                    .safety
                    .iter()
                    .filter(|c| safety_hit[c.index()])
                    .map(|c| c.as_str().to_string())
                    .collect(),
                called: true,
            },
            usage,
        };
        let explanation = if explain {
            fired.sort_by_key(|f| (f.source, f.start, f.end));
            fired.dedup();
            Explanation {
                decided_by: Some(sources[decider].0),
                threshold: self.threshold(),
                scores: ranked_first
                    .iter()
                    .map(|&(d, p)| self.domain_score(d, p))
                    .collect(),
                runner_up: ranked_first.get(1).map(|&(d, p)| self.domain_score(d, p)),
                fired,
            }
        } else {
            self.empty_explanation()
        };
        Ok(Routed {
            result,
            explanation,
        })
    }
}

/// The id and version a path `…/<id>/<version>.toml` names.
/// Only a file named after its version is taken to sit in its router's directory.
pub(crate) fn origin_of(path: &Path) -> Origin {
    let version: Option<u32> = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok());
    Origin {
        id: version.and_then(|_| {
            path.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string)
        }),
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression for the 1.39 ms/query bench: one Unicode `\b` pattern must not
    /// share a set with the others (BENCHMARKS.md, "Router"). Patterns with prefix
    /// literals are in no set at all: they run alone, when a literal is found.
    #[test]
    fn unicode_word_boundary_patterns_get_their_own_set() {
        let router = Router::from_toml(
            "[router]\nid = \"t\"\nversion = 1\n[[domain]]\nname = \"a\"\npatterns = ['\\bword\\b', '(?-u:\\b)ascii', '\\d+번', '\\w*\\b7']\n",
            "t.toml",
        )
        .unwrap();
        let index = &router.patterns;
        let sets: Vec<Vec<&str>> = index
            .sets()
            .iter()
            .map(|(_, ids)| ids.iter().map(|&id| index.source(id)).collect())
            .collect();
        // The first set may also hold built-in safety patterns; ours are
        // `\d+번` there and `\w*\b7` alone in the second, while those with
        // prefix literals (`word`, `ascii`) are in neither.
        assert!(sets[0].contains(&"\\d+번"), "{sets:?}");
        assert_eq!(sets[1], ["\\w*\\b7"]);
        assert!(
            sets.concat()
                .iter()
                .all(|s| !s.contains("word") && !s.contains("ascii")),
            "{sets:?}"
        );
        for query in ["한국어 word 문장", "12번", "가나다 7"] {
            let routed = router.route(&RouteRequest::new(query)).unwrap();
            assert_eq!(routed.domain.result, "a", "{query}");
        }
        let routed = router
            .route(&RouteRequest::new("한국어 wordy 문장"))
            .unwrap();
        assert_ne!(routed.domain.result, "a");
    }
}
