//! sluice-router: a rule-based, deterministic router, wire-compatible with
//! CLOVA Studio's router API (`POST /v1/routers/{id}/versions/{version}/route`).
//!
//! - [`Router`] is one router version compiled from a TOML file: domains chosen
//!   by keywords, linear-time regex patterns and example queries; per domain up
//!   to 7 content filters and the safety categories ([`Category`]) it checks.
//!   Loading validates every label and limit and reports `file:line: reason`
//!   ([`BuildError`], `65001`).
//! - [`RouterStore`] holds routers by id and version, loaded from
//!   `routers/<id>/<version>.toml` or the [embedded sample](RouterStore::embedded_sample);
//!   an unknown pair is [`NotFound`] (`40400`).
//! - [`Router::route`] answers a [`RouteRequest`] with a [`RouteResult`], the
//!   API's `result` object; [`Router::route_explained`] adds an [`Explanation`]:
//!   per-domain scores, the runner-up and every rule that fired, with its span in
//!   the original text. Too many prompt tokens is a [`RouteError`] (`65400`).
//! - [`Router::lints`] lists duplicate, shadowed and unreachable rules.
//! - [`EvalReport`] scores a router on [`Labelled`] queries; [`Decision`] is what
//!   two versions are compared on.
//!
//! Matching reads normalised text: NFKC, lowercase, invisible (format)
//! characters removed, whitespace folded. Keywords match with spacing removed,
//! so "미 세 먼 지" and "미\u{200B}세먼지" hit `미세먼지`, and as substrings, so
//! Korean particles ("서울의", "부산은") do not hide a keyword; a keyword that
//! starts with an ASCII letter or digit must start a word ("rain" does not fire
//! in "train"). Scores are integers: 1000 points per distinct keyword, 1500 per
//! distinct pattern, up to 2000 for the most similar example (character
//! bigrams); the best domain with at least the threshold (default 1000) wins,
//! ties going to the domain declared first. When the query selects nothing, the
//! recent user turns of `chatHistory` are tried, newest first. Content and
//! safety filters run only for the chosen domain, over the query and those turns.
//!
//! Routing with the sample router:
//!
//! ```
//! use sluice_router::{RouteRequest, RouterStore};
//!
//! let store = RouterStore::embedded_sample();
//! let router = store.get("sample", 1)?;
//!
//! // The hosted API's example request.
//! let request = RouteRequest::new("미세먼지 정보 알려줘").with_user_turn("내일 서울의 강수 예보 알려줘");
//! let result = router.route(&request)?;
//! assert_eq!(result.domain.result, "지역 검색");
//! assert_eq!(result.blocked_content.result, ["UnsupportedRegion"]);
//! assert_eq!(result.usage.completion_tokens, 0);
//!
//! // "그럼 부산은?" selects nothing alone; the weather question before it does.
//! let request = RouteRequest::new("그럼 부산은?").with_user_turn("내일 서울 날씨 어때?");
//! let routed = router.route_explained(&request)?;
//! assert_eq!(routed.result.domain.result, "날씨");
//! assert_eq!(routed.explanation.decided_by, Some(sluice_router::Source::ChatHistory(0)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Loading a router file and routing with an explanation:
//!
//! ```
//! use sluice_router::{RouteRequest, Router, RuleKind};
//!
//! let router = Router::from_toml(r#"
//!     [router]
//!     id = "shop"
//!     version = 1
//!
//!     [[domain]]
//!     name = "shopping"
//!     keywords = ["price", "가격"]
//!     patterns = ['\d+\s*원']
//!
//!     [[domain.filter]]
//!     name = "Counterfeit"
//!     keywords = ["짝퉁", "replica"]
//! "#, "shop.toml")?;
//! let text = "ＲＥＰＬＩＣＡ 가방 가격이 5만 원?";
//! let routed = router.route_explained(&RouteRequest::new(text))?;
//! assert_eq!(routed.result.domain.result, "shopping");
//! assert_eq!(routed.result.blocked_content.result, ["Counterfeit"]);
//! let replica = routed.explanation.fired.iter().find(|f| f.rule == "replica").unwrap();
//! assert_eq!(replica.kind, RuleKind::Keyword);
//! assert_eq!(&text[replica.start..replica.end], "ＲＥＰＬＩＣＡ");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod api;
mod config;
mod error;
mod eval;
mod lint;
mod normalize;
mod patterns;
mod router;
mod safety;
mod similarity;
mod store;

pub use api::{
    DomainResult, DomainScore, Explanation, FilterResult, FiredRule, RouteRequest, RouteResult,
    Routed, RuleKind, Source, Target, Usage,
};
pub use config::{
    Category, MAX_DOMAIN_DESCRIPTION, MAX_DOMAIN_NAME, MAX_DOMAINS, MAX_FILTER_DESCRIPTION,
    MAX_FILTER_NAME, MAX_FILTERS, MAX_LITERAL, MAX_PATTERN,
};
pub use error::{BuildError, NotFound, Problem, RouteError};
pub use eval::{Decision, DomainStats, EvalReport, Labelled};
pub use lint::{Lint, LintKind};
pub use patterns::{PATTERN_DFA_LIMIT, PATTERN_SIZE_LIMIT};
pub use router::{EXAMPLE_POINTS, KEYWORD_POINTS, PATTERN_POINTS, Router};
pub use safety::{BuiltinRules, builtin_rules};
pub use store::{RouterStore, SAMPLE_V1, SAMPLE_V2};

/// Normalises a text the way the router reads it (the spaced view: NFKC,
/// lowercase, invisible characters removed, whitespace folded to single spaces).
///
/// ```
/// assert_eq!(sluice_router::normalize("  Ｓｅｏｕｌ\u{200B}의   날씨 "), "seoul의 날씨");
/// ```
pub fn normalize(text: &str) -> String {
    normalize::spaced(text)
}
