//! The router file format and its validation.
//!
//! ```toml
//! [router]
//! id = "sample"            # optional: taken from the directory name
//! version = 1              # optional: taken from the file name
//! model = "HCX-003"        # model profile for usage.promptTokens (default HCX-003)
//! token_limit = 4096       # default: the profile's context limit
//! threshold = 1.0          # the score a domain needs (default 1.0)
//! history_turns = 3        # recent user turns consulted (default 3)
//!
//! [[domain]]
//! name = "날씨"
//! description = "weather questions"
//! keywords = ["날씨", "weather"]
//! patterns = ['(내일|오늘)\s*(비|눈)']
//! examples = ["내일 서울 날씨 어때?"]
//! safety = ["Unethical"]
//!
//! [[domain.filter]]
//! name = "UnsupportedRegion"
//! description = "asks about a region the service does not cover"
//! keywords = ["평양"]
//!
//! [safety.Unethical]      # extends the built-in rule set
//! keywords = ["..."]
//! ```

use std::collections::BTreeMap;

use regex_syntax::hir::Hir;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{BuildError, Problem};
use crate::{normalize, patterns};

/// Most domains in one router.
pub const MAX_DOMAINS: usize = 1000;
/// Longest domain name, in characters.
pub const MAX_DOMAIN_NAME: usize = 30;
/// Longest domain description, in characters.
pub const MAX_DOMAIN_DESCRIPTION: usize = 400;
/// Most content filters in one domain.
pub const MAX_FILTERS: usize = 7;
/// Longest filter name (ASCII letters and digits).
pub const MAX_FILTER_NAME: usize = 30;
/// Longest filter description, in characters.
pub const MAX_FILTER_DESCRIPTION: usize = 200;
/// Longest keyword or example, in characters.
pub const MAX_LITERAL: usize = 400;
/// Longest pattern source, in characters.
pub const MAX_PATTERN: usize = 1000;

/// A safety category: the two the hosted router has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Violence, crime, self-harm, hate, sexual exploitation, ...
    Unethical,
    /// Politics, religion, divisive social issues, ...
    Contentious,
}

impl Category {
    /// Both categories, in the order results list them.
    pub const ALL: [Category; 2] = [Category::Unethical, Category::Contentious];

    /// The name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Unethical => "Unethical",
            Category::Contentious => "Contentious",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's source text and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub text: String,
    pub line: usize,
    /// A pattern, parsed when it was checked, so that the router does not
    /// parse it again; `None` for keywords and examples.
    pub hir: Option<Hir>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    pub keywords: Vec<Rule>,
    pub patterns: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub(crate) struct FilterConfig {
    pub name: String,
    pub line: usize,
    pub description: String,
    pub rules: RuleSet,
}

#[derive(Debug, Clone)]
pub(crate) struct DomainConfig {
    pub name: String,
    pub description: String,
    /// The line of its name.
    pub line: usize,
    pub rules: RuleSet,
    pub examples: Vec<Rule>,
    pub filters: Vec<FilterConfig>,
    pub safety: Vec<Category>,
}

/// A validated router file.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub file: String,
    pub id: String,
    pub version: u32,
    pub description: String,
    pub model: String,
    /// The line of `model` (0 when it is the default).
    pub model_line: usize,
    pub token_limit: Option<usize>,
    pub threshold: f64,
    pub history_turns: usize,
    pub domains: Vec<DomainConfig>,
    /// Rules added to the built-in safety sets, by [`Category::index`].
    pub safety: [RuleSet; 2],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    router: Option<Spanned<RawRouter>>,
    #[serde(default, rename = "domain")]
    domains: Vec<Spanned<RawDomain>>,
    #[serde(default)]
    safety: BTreeMap<Spanned<String>, Spanned<RawRules>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    id: Option<Spanned<String>>,
    version: Option<Spanned<i64>>,
    #[serde(default)]
    description: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    token_limit: Option<Spanned<i64>>,
    threshold: Option<Spanned<f64>>,
    history_turns: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<Spanned<String>>,
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
    #[serde(default)]
    examples: Vec<Spanned<String>>,
    #[serde(default)]
    safety: Vec<Spanned<String>>,
    #[serde(default, rename = "filter")]
    filters: Vec<Spanned<RawFilter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<Spanned<String>>,
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
}

/// Collects problems with their lines.
struct Checker<'a> {
    file: &'a str,
    /// Where each line break of the text is: a rule's line is a binary search
    /// away (counting breaks from the start for each rule made loading a large
    /// router quadratic in its size).
    breaks: Vec<usize>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        1 + self.breaks.partition_point(|&b| b < offset)
    }

    fn at<T>(&mut self, value: &Spanned<T>, reason: impl Into<String>) {
        let line = self.line(value.span().start);
        self.push(line, reason);
    }

    fn push(&mut self, line: usize, reason: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            reason: reason.into(),
        });
    }

    fn text_field(&mut self, value: &Option<Spanned<String>>, what: &str, max: usize) -> String {
        let Some(v) = value else { return String::new() };
        let n = v.get_ref().chars().count();
        if n > max {
            self.at(
                v,
                format!("{what} is {n} characters long, the limit is {max}"),
            );
        }
        v.get_ref().clone()
    }

    fn keywords(&mut self, raw: &[Spanned<String>], owner: &str) -> Vec<Rule> {
        self.literals(raw, owner, "keyword", |k| {
            (normalize::compact(k).is_empty()).then_some("is empty after normalisation")
        })
    }

    fn examples(&mut self, raw: &[Spanned<String>], owner: &str) -> Vec<Rule> {
        self.literals(raw, owner, "example", |e| {
            crate::similarity::grams(&normalize::compact(e))
                .is_empty()
                .then_some("has no letters or digits")
        })
    }

    /// Literal rules (keywords, example queries): each within [`MAX_LITERAL`]
    /// characters and not rejected by `unusable`, which says why a text cannot
    /// match anything.
    fn literals(
        &mut self,
        raw: &[Spanned<String>],
        owner: &str,
        what: &str,
        unusable: impl Fn(&str) -> Option<&'static str>,
    ) -> Vec<Rule> {
        let mut out = Vec::with_capacity(raw.len());
        for item in raw {
            let text = item.get_ref();
            let line = self.line(item.span().start);
            let n = text.chars().count();
            if n > MAX_LITERAL {
                self.push(
                    line,
                    format!("{owner}: {what} is {n} characters long, the limit is {MAX_LITERAL}"),
                );
            } else if let Some(reason) = unusable(text) {
                self.push(line, format!("{owner}: {what} {text:?} {reason}"));
            } else {
                out.push(Rule {
                    text: text.clone(),
                    line,
                    hir: None,
                });
            }
        }
        out
    }

    fn patterns(&mut self, raw: &[Spanned<String>], owner: &str) -> Vec<Rule> {
        let mut out = Vec::with_capacity(raw.len());
        for p in raw {
            let line = self.line(p.span().start);
            let n = p.get_ref().chars().count();
            let checked = if n > MAX_PATTERN {
                Err(format!(
                    "pattern is {n} characters long, the limit is {MAX_PATTERN}"
                ))
            } else {
                patterns::check(p.get_ref())
            };
            match checked {
                Ok(hir) => out.push(Rule {
                    text: p.get_ref().clone(),
                    line,
                    hir: Some(hir),
                }),
                Err(reason) => self.push(line, format!("{owner}: {reason}")),
            }
        }
        out
    }

    fn rules(
        &mut self,
        keywords: &[Spanned<String>],
        patterns: &[Spanned<String>],
        owner: &str,
    ) -> RuleSet {
        RuleSet {
            keywords: self.keywords(keywords, owner),
            patterns: self.patterns(patterns, owner),
        }
    }
}

fn is_filter_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_FILTER_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_router_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the file's location says the router is: its directory's name and the
/// number its file is named after.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub id: Option<String>,
    pub version: Option<u32>,
}

/// Parses and validates one router file.
pub(crate) fn parse(text: &str, file: &str, origin: &Origin) -> Result<Config, BuildError> {
    let mut ck = Checker {
        file,
        breaks: memchr::memchr_iter(b'\n', text.as_bytes()).collect(),
        problems: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| ck.line(s.start)).unwrap_or(0);
            ck.push(line, e.message().trim().to_string());
            return Err(BuildError::Invalid(ck.problems));
        }
    };

    let router = raw.router.as_ref().map(|r| r.get_ref());
    let id = match router.and_then(|r| r.id.as_ref()) {
        Some(id) => {
            if !is_router_id(id.get_ref()) {
                ck.at(
                    id,
                    format!(
                        "router id {:?} must be 1 to 64 ASCII letters, digits, '-' or '_'",
                        id.get_ref()
                    ),
                );
            }
            if let Some(dir) = &origin.id
                && dir != id.get_ref()
            {
                ck.at(
                    id,
                    format!(
                        "router id {:?} does not match its directory {dir:?}",
                        id.get_ref()
                    ),
                );
            }
            id.get_ref().clone()
        }
        None => match &origin.id {
            Some(dir) => dir.clone(),
            None => {
                ck.push(1, "router id missing: set [router] id");
                String::new()
            }
        },
    };
    let version = match router.and_then(|r| r.version.as_ref()) {
        Some(v) => {
            let value = *v.get_ref();
            if !(1..=i64::from(u32::MAX)).contains(&value) {
                ck.at(v, format!("version must be an integer >= 1, not {value}"));
            }
            if let Some(from_name) = origin.version
                && i64::from(from_name) != value
            {
                ck.at(
                    v,
                    format!("version {value} does not match its file name {from_name}.toml"),
                );
            }
            value.clamp(1, i64::from(u32::MAX)) as u32
        }
        None => match origin.version {
            Some(v) => v,
            None => {
                ck.push(1, "router version missing: set [router] version");
                1
            }
        },
    };
    let description = ck.text_field(
        &router.and_then(|r| r.description.clone()),
        "router description",
        2000,
    );
    let (model, model_line) = match router.and_then(|r| r.model.as_ref()) {
        Some(m) => (m.get_ref().clone(), ck.line(m.span().start)),
        None => ("HCX-003".to_string(), 0),
    };
    let token_limit = match router.and_then(|r| r.token_limit.as_ref()) {
        Some(t) if *t.get_ref() < 1 => {
            ck.at(t, format!("token_limit must be >= 1, not {}", t.get_ref()));
            None
        }
        Some(t) => Some(*t.get_ref() as usize),
        None => None,
    };
    let threshold = match router.and_then(|r| r.threshold.as_ref()) {
        Some(t) if !(t.get_ref().is_finite() && *t.get_ref() > 0.0 && *t.get_ref() <= 1000.0) => {
            ck.at(
                t,
                format!("threshold must be > 0 and <= 1000, not {}", t.get_ref()),
            );
            1.0
        }
        Some(t) => *t.get_ref(),
        None => 1.0,
    };
    let history_turns = match router.and_then(|r| r.history_turns.as_ref()) {
        Some(h) if !(0..=100).contains(h.get_ref()) => {
            ck.at(
                h,
                format!("history_turns must be 0 to 100, not {}", h.get_ref()),
            );
            3
        }
        Some(h) => *h.get_ref() as usize,
        None => 3,
    };

    if raw.domains.len() > MAX_DOMAINS {
        ck.push(
            1,
            format!("{} domains, the limit is {MAX_DOMAINS}", raw.domains.len()),
        );
    }
    let mut domains: Vec<DomainConfig> = Vec::with_capacity(raw.domains.len());
    for d in &raw.domains {
        let d = d.get_ref();
        let line = ck.line(d.name.span().start);
        let name = d.name.get_ref().clone();
        let chars = name.chars().count();
        if name.trim().is_empty() {
            ck.at(&d.name, "domain name must not be empty");
        } else if chars > MAX_DOMAIN_NAME {
            ck.at(&d.name, format!("domain name {name:?} is {chars} characters long, the limit is {MAX_DOMAIN_NAME}"));
        } else if name.chars().any(char::is_control) || name.trim() != name {
            ck.at(
                &d.name,
                format!("domain name {name:?} has control characters or surrounding spaces"),
            );
        } else if domains.iter().any(|o| o.name == name) {
            ck.at(&d.name, format!("domain name {name:?} is used twice"));
        }
        let owner = format!("domain {name:?}");
        let description = ck.text_field(
            &d.description,
            &format!("{owner}: description"),
            MAX_DOMAIN_DESCRIPTION,
        );
        let rules = ck.rules(&d.keywords, &d.patterns, &owner);
        let examples = ck.examples(&d.examples, &owner);

        if d.filters.len() > MAX_FILTERS {
            ck.at(
                &d.filters[MAX_FILTERS],
                format!(
                    "{owner} has {} content filters, the limit is {MAX_FILTERS}",
                    d.filters.len()
                ),
            );
        }
        let mut filters: Vec<FilterConfig> = Vec::with_capacity(d.filters.len());
        for f in &d.filters {
            let f = f.get_ref();
            let fname = f.name.get_ref().clone();
            if !is_filter_name(&fname) {
                ck.at(&f.name, format!("{owner}: filter name {fname:?} must be 1 to {MAX_FILTER_NAME} ASCII letters or digits"));
            } else if filters.iter().any(|o| o.name == fname) {
                ck.at(
                    &f.name,
                    format!("{owner}: filter name {fname:?} is used twice"),
                );
            }
            let fowner = format!("{owner} filter {fname:?}");
            let description = ck.text_field(
                &f.description,
                &format!("{fowner}: description"),
                MAX_FILTER_DESCRIPTION,
            );
            let rules = ck.rules(&f.keywords, &f.patterns, &fowner);
            filters.push(FilterConfig {
                line: ck.line(f.name.span().start),
                name: fname,
                description,
                rules,
            });
        }

        let mut safety = Vec::new();
        for s in &d.safety {
            match Category::parse(s.get_ref()) {
                Some(c) if safety.contains(&c) => {
                    ck.at(s, format!("{owner}: safety category {c} is listed twice"))
                }
                Some(c) => safety.push(c),
                None => ck.at(
                    s,
                    format!(
                        "{owner}: unknown safety category {:?} (expected Unethical or Contentious)",
                        s.get_ref()
                    ),
                ),
            }
        }
        safety.sort();
        domains.push(DomainConfig {
            name,
            description,
            line,
            rules,
            examples,
            filters,
            safety,
        });
    }

    let mut safety: [RuleSet; 2] = Default::default();
    for (name, rules) in &raw.safety {
        match Category::parse(name.get_ref()) {
            Some(c) => {
                let r = rules.get_ref();
                safety[c.index()] = ck.rules(&r.keywords, &r.patterns, &format!("safety {c}"));
            }
            None => ck.at(
                name,
                format!(
                    "unknown safety category {:?} (expected Unethical or Contentious)",
                    name.get_ref()
                ),
            ),
        }
    }

    if !ck.problems.is_empty() {
        ck.problems.sort_by_key(|p| p.line);
        return Err(BuildError::Invalid(ck.problems));
    }
    Ok(Config {
        file: file.to_string(),
        id,
        version,
        description,
        model,
        model_line,
        token_limit,
        threshold,
        history_turns,
        domains,
        safety,
    })
}
