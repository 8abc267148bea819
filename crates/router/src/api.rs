//! Requests, results and explanations, shaped as the router API writes them.

use serde::{Deserialize, Serialize};
use sluice_core::Message;

use crate::config::Category;

/// A request to route: the body of `POST /v1/routers/{id}/versions/{version}/route`.
///
/// ```
/// let req: sluice_router::RouteRequest = serde_json::from_str(
///     r#"{"query":"미세먼지 정보 알려줘","chatHistory":[{"role":"user","content":"내일 서울의 강수 예보 알려줘"}]}"#,
/// ).unwrap();
/// assert_eq!(req.chat_history.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RouteRequest {
    /// The text to classify.
    pub query: String,
    /// Earlier messages, oldest first. Their `user` turns are consulted when the
    /// query alone selects no domain; every message counts towards the usage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat_history: Vec<Message>,
}

impl RouteRequest {
    /// A request with no history.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            chat_history: Vec::new(),
        }
    }

    /// Adds an earlier `user` turn (after the ones already there).
    pub fn with_user_turn(mut self, content: impl Into<String>) -> Self {
        self.chat_history.push(Message::user(content));
        self
    }
}

/// The router's answer, exactly the `result` object of the router API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RouteResult {
    /// The chosen domain.
    pub domain: DomainResult,
    /// The content filters of the chosen domain that hit.
    pub blocked_content: FilterResult,
    /// The safety categories of the chosen domain that hit.
    pub safety: FilterResult,
    /// Token usage.
    pub usage: Usage,
}

/// Which domain was chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DomainResult {
    /// The domain name, or `""` when no domain scored above the threshold.
    pub result: String,
    /// Whether classification ran (always true for a routed request).
    pub called: bool,
}

/// Which filters hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FilterResult {
    /// Names of the filters (or safety categories) that hit, in declaration order.
    pub result: Vec<String>,
    /// Whether the filters ran: only when a domain was chosen.
    pub called: bool,
}

/// Token usage: the router generates nothing, so `completionTokens` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Usage {
    /// Tokens of the history plus the query under the router's model profile.
    pub prompt_tokens: usize,
    /// Always 0.
    pub completion_tokens: usize,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: usize,
}

/// A result with the reasons behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Routed {
    /// The API result.
    pub result: RouteResult,
    /// Why.
    pub explanation: Explanation,
}

/// Where a text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// The query.
    Query,
    /// The message at this index of `chatHistory`.
    ChatHistory(usize),
}

/// Why a request was routed as it was.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Explanation {
    /// The text whose scores chose the domain (`None` when none was chosen).
    pub decided_by: Option<Source>,
    /// The score a domain needs.
    pub threshold: f64,
    /// Every domain that scored in the deciding text (the query when nothing was
    /// chosen), best first; ties in declaration order.
    pub scores: Vec<DomainScore>,
    /// The best domain after the chosen one (or the best one when none was
    /// chosen because it fell below the threshold).
    pub runner_up: Option<DomainScore>,
    /// Every rule that fired: the deciding text's domain rules, then the chosen
    /// domain's filters and safety categories over the texts they read.
    pub fired: Vec<FiredRule>,
}

/// One domain's score and what it is made of.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DomainScore {
    /// The domain name.
    pub domain: String,
    /// The total: keywords × 1.0 + patterns × 1.5 + 2.0 × best example similarity.
    pub score: f64,
    /// Distinct keywords that fired.
    pub keywords: usize,
    /// Distinct patterns that fired.
    pub patterns: usize,
    /// The best example similarity (Jaccard index of character bigrams, 0 to 1).
    pub similarity: f64,
}

/// What a rule belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[non_exhaustive]
pub enum Target {
    /// A domain's selection rules.
    Domain {
        /// The domain.
        domain: String,
    },
    /// A content filter.
    Filter {
        /// The domain it belongs to.
        domain: String,
        /// The filter.
        filter: String,
    },
    /// A safety category.
    Safety {
        /// The category.
        category: Category,
    },
}

impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The kind of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RuleKind {
    /// A literal keyword or phrase.
    Keyword,
    /// A regex pattern.
    Pattern,
    /// An example query (similarity).
    Example,
}

/// One rule that fired, with where.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FiredRule {
    /// What the rule belongs to.
    pub target: Target,
    /// Its kind.
    pub kind: RuleKind,
    /// Its source text as written in the router file.
    pub rule: String,
    /// The text it fired in.
    pub source: Source,
    /// Start byte of the match in that original text (a char boundary).
    pub start: usize,
    /// End byte of the match in that original text (a char boundary).
    pub end: usize,
    /// The matched original text.
    pub text: String,
    /// For an example: its similarity to the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
}
