//! Static checks of a valid router: rules that are duplicated, shadowed by an
//! earlier domain, or can never fire.

use std::fmt;

use regex_syntax::hir::{Hir, HirKind};

use crate::config::{Config, Rule};
use crate::normalize;
use crate::router::Router;

/// What kind of finding a [`Lint`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LintKind {
    /// The same rule twice in one list.
    Duplicate,
    /// A keyword whose every hit also fires a keyword of a domain declared
    /// earlier, which wins ties.
    Shadowed,
    /// A rule, filter or domain that can never fire or be chosen.
    Unreachable,
}

impl LintKind {
    /// The kind in lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            LintKind::Duplicate => "duplicate",
            LintKind::Shadowed => "shadowed",
            LintKind::Unreachable => "unreachable",
        }
    }
}

/// A finding of [`Router::lints`]: the router loads, but a rule is useless.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lint {
    /// The kind.
    pub kind: LintKind,
    /// The file.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// What and why.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file,
            self.line,
            self.kind.as_str(),
            self.message
        )
    }
}

impl Router {
    /// Duplicate, shadowed and unreachable rules, in line order.
    ///
    /// ```
    /// use sluice_router::{LintKind, Router};
    ///
    /// let router = Router::from_toml(
    ///     "[router]\nid = \"x\"\nversion = 1\n\
    ///      [[domain]]\nname = \"a\"\nkeywords = [\"rain\", \"rain\"]\n\
    ///      [[domain]]\nname = \"b\"\nkeywords = [\"rain\"]\n",
    ///     "x.toml",
    /// )
    /// .unwrap();
    /// let kinds: Vec<LintKind> = router.lints().iter().map(|l| l.kind).collect();
    /// assert_eq!(kinds, [LintKind::Duplicate, LintKind::Unreachable, LintKind::Shadowed]);
    /// ```
    pub fn lints(&self) -> Vec<Lint> {
        lint(self.config())
    }
}

fn lint(config: &Config) -> Vec<Lint> {
    let mut out = Vec::new();
    let mut push = |kind, line, message: String| {
        out.push(Lint {
            kind,
            file: config.file.clone(),
            line,
            message,
        })
    };
    let compact_keys = |rules: &[Rule]| -> Vec<String> {
        rules.iter().map(|r| normalize::compact(&r.text)).collect()
    };
    let keys: Vec<Vec<String>> = config
        .domains
        .iter()
        .map(|d| compact_keys(&d.rules.keywords))
        .collect();

    for (di, d) in config.domains.iter().enumerate() {
        let owner = format!("domain {:?}", d.name);
        duplicates(&d.rules.keywords, &keys[di], "keyword", &owner, &mut push);
        let patterns: Vec<String> = d.rules.patterns.iter().map(|r| r.text.clone()).collect();
        duplicates(&d.rules.patterns, &patterns, "pattern", &owner, &mut push);
        let examples: Vec<String> = d
            .examples
            .iter()
            .map(|r| normalize::spaced(&r.text))
            .collect();
        duplicates(&d.examples, &examples, "example", &owner, &mut push);
        for p in &d.rules.patterns {
            unreachable_pattern(p, &owner, &mut push);
        }

        for (ki, k) in d.rules.keywords.iter().enumerate() {
            let key = &keys[di][ki];
            let earlier = (0..di).find_map(|ei| {
                keys[ei]
                    .iter()
                    .position(|other| always_fires(key, other))
                    .map(|oi| (ei, oi))
            });
            if let Some((ei, oi)) = earlier {
                let e = &config.domains[ei];
                push(
                    LintKind::Shadowed,
                    k.line,
                    format!(
                        "{owner}: keyword {:?} always fires keyword {:?} of domain {:?} (line {}), declared earlier",
                        k.text, e.rules.keywords[oi].text, e.name, e.rules.keywords[oi].line
                    ),
                );
            }
        }

        if d.rules.keywords.is_empty() && d.rules.patterns.is_empty() && d.examples.is_empty() {
            push(
                LintKind::Unreachable,
                d.line,
                format!("{owner} has no keywords, patterns or examples: it is never chosen"),
            );
        } else if d.rules.patterns.is_empty() && d.examples.is_empty() {
            // Every keyword is also a keyword of one earlier domain: that domain
            // scores at least as much on any text and wins the tie.
            let covering = (0..di).find(|&ei| keys[di].iter().all(|k| keys[ei].contains(k)));
            if let Some(ei) = covering {
                push(
                    LintKind::Unreachable,
                    d.line,
                    format!(
                        "{owner} is never chosen: each of its keywords is a keyword of domain {:?}, declared earlier",
                        config.domains[ei].name
                    ),
                );
            }
        }

        for f in &d.filters {
            let fowner = format!("{owner} filter {:?}", f.name);
            let fkeys = compact_keys(&f.rules.keywords);
            duplicates(&f.rules.keywords, &fkeys, "keyword", &fowner, &mut push);
            let fpatterns: Vec<String> = f.rules.patterns.iter().map(|r| r.text.clone()).collect();
            duplicates(&f.rules.patterns, &fpatterns, "pattern", &fowner, &mut push);
            for p in &f.rules.patterns {
                unreachable_pattern(p, &fowner, &mut push);
            }
            if f.rules.keywords.is_empty() && f.rules.patterns.is_empty() {
                push(
                    LintKind::Unreachable,
                    f.line,
                    format!("{fowner} has no rules: it never hits"),
                );
            }
        }
    }
    for c in crate::Category::ALL {
        let rules = &config.safety[c.index()];
        let owner = format!("safety {c}");
        let k = compact_keys(&rules.keywords);
        duplicates(&rules.keywords, &k, "keyword", &owner, &mut push);
        for p in &rules.patterns {
            unreachable_pattern(p, &owner, &mut push);
        }
    }
    out.sort_by_key(|l| (l.line, l.kind));
    out
}

/// Whether every hit of keyword `outer` is also a hit of keyword `inner` (both
/// compact): `inner` occurs in `outer` where its word-start rule holds.
fn always_fires(outer: &str, inner: &str) -> bool {
    let needs_word_start = inner
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric);
    outer.match_indices(inner).any(|(p, _)| {
        !needs_word_start || p == 0 || !outer.as_bytes()[p - 1].is_ascii_alphanumeric()
    })
}

fn duplicates(
    rules: &[Rule],
    keys: &[String],
    what: &str,
    owner: &str,
    push: &mut impl FnMut(LintKind, usize, String),
) {
    for (i, r) in rules.iter().enumerate() {
        if let Some(first) = keys[..i].iter().position(|k| *k == keys[i]) {
            push(
                LintKind::Duplicate,
                r.line,
                format!(
                    "{owner}: {what} {:?} repeats line {} (after normalisation)",
                    r.text, rules[first].line
                ),
            );
        }
    }
}

/// A pattern with a literal character that normalised text never contains
/// (full-width forms, tabs, newlines, zero-width characters, ...) cannot match
/// where that character is required.
fn unreachable_pattern(rule: &Rule, owner: &str, push: &mut impl FnMut(LintKind, usize, String)) {
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(&rule.text)
    else {
        return;
    };
    let mut bad = None;
    find_unnormal(&hir, &mut bad);
    if let Some(c) = bad {
        push(
            LintKind::Unreachable,
            rule.line,
            format!(
                "{owner}: pattern {:?} requires {c:?}, which normalised text never contains (it reads {:?})",
                rule.text,
                normalize::spaced(&c.to_string())
            ),
        );
    }
}

fn find_unnormal(hir: &Hir, bad: &mut Option<char>) {
    if bad.is_some() {
        return;
    }
    match hir.kind() {
        HirKind::Literal(lit) => {
            if let Ok(s) = std::str::from_utf8(&lit.0) {
                *bad = s.chars().find(|&c| {
                    c != ' ' && normalize::spaced(&c.to_string()) != c.to_lowercase().to_string()
                });
            }
        }
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().for_each(|h| find_unnormal(h, bad))
        }
        HirKind::Capture(c) => find_unnormal(&c.sub, bad),
        HirKind::Repetition(r) => find_unnormal(&r.sub, bad),
        _ => {}
    }
}
