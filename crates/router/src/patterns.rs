//! Patterns: checking one when a router loads, and matching many at once.
//!
//! Both are written against `regex-automata` rather than `regex`, because
//! loading a router with many patterns was dominated by regex compilation
//! (BENCHMARKS.md, "Router"): `regex` compiles each pattern's forward and
//! reverse NFAs, literal prefilters and one-pass DFA to check it, then parses
//! and compiles everything again for the `RegexSet`. Here each pattern is parsed
//! once, a pattern that is provably small is not compiled on its own, a pattern
//! that can only start with a few literals is not compiled until a text holds
//! one of them ([`PatternIndex`]), and the set of the others compiles only the
//! forward NFA that its search runs on.

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use regex_automata::hybrid::dfa::OverlappingState;
use regex_automata::nfa::thompson::{self, NFA, WhichCaptures, pikevm::PikeVM};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternSet, hybrid, meta};
use regex_syntax::hir::{Class, ClassUnicodeRange, Hir, HirKind, literal};
use regex_syntax::utf8::Utf8Sequences;
use rustc_hash::FxHashMap;

// The compiled-size limits are the pattern compiler's own settings, so they
// live here; the config module only checks pattern sources (and calls this
// module to do it), so the dependency runs one way: config -> patterns.
/// Compiled size limit of one pattern, in bytes (`RegexBuilder::size_limit`).
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Lazy DFA cache limit of one pattern, in bytes (`RegexBuilder::dfa_size_limit`).
pub const PATTERN_DFA_LIMIT: usize = 1 << 20;

/// The syntax every pattern is parsed with, as [`pattern_builder`] and
/// `RegexSetBuilder` configure it: case-insensitive (texts are lowercased
/// anyway), Unicode, UTF-8.
fn syntax_config() -> syntax::Config {
    syntax::Config::new().case_insensitive(true).utf8(true)
}

/// A single pattern as `regex` compiles it: bounded program and cache sizes.
/// Explanation spans use it; so does [`check`] when it cannot decide cheaply.
pub(crate) fn pattern_builder(source: &str) -> regex::RegexBuilder {
    let mut b = regex::RegexBuilder::new(source);
    b.case_insensitive(true)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_DFA_LIMIT);
    b
}

/// Parses a pattern and says why it is unusable: a syntax error, a compiled
/// size over [`PATTERN_SIZE_LIMIT`], or matching the empty text. The verdict
/// and the message are exactly those of compiling it with [`pattern_builder`]
/// and trying it on `""`; that compilation only runs when the parsed pattern
/// does not settle the question (an error, a pattern that may be large, one
/// that can match zero bytes).
pub(crate) fn check(source: &str) -> Result<Hir, String> {
    let hir = syntax::parse_with(source, &syntax_config()).ok();
    match hir {
        Some(hir)
            if hir.properties().minimum_len() != Some(0)
                && (size_bound(&hir) <= PATTERN_SIZE_LIMIT as u64 / 2 || fits(&hir)) =>
        {
            Ok(hir)
        }
        _ => {
            let re = pattern_builder(source).build().map_err(|e| {
                let msg = e.to_string();
                // The regex crate's messages span lines; the last non-empty one says why.
                let why = msg
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string();
                format!("invalid pattern {source:?}: {why}")
            })?;
            if re.is_match("") {
                return Err(format!(
                    "pattern {source:?} matches the empty text, so it would fire on every query"
                ));
            }
            Ok(syntax::parse_with(source, &syntax_config()).expect("it compiled"))
        }
    }
}

/// Whether `hir` compiles within [`PATTERN_SIZE_LIMIT`] as the meta regex
/// compiles it: the forward NFA with captures and the reverse one without,
/// the only two of its parts that have a size limit. For a pattern whose
/// [`size_bound`] is too loose to settle it (`\d{6}` compiles Unicode
/// digits six times, and the bound charges every copy in full), this is
/// most of what building the regex costs and none of its prefilters, one-pass
/// DFA and lazy DFA set-up: two such patterns in the built-in router were
/// 15% of a whole `sluice route` run (`perf record`). Where it says no,
/// [`check`] builds the regex for the exact message.
fn fits(hir: &Hir) -> bool {
    [(false, WhichCaptures::All), (true, WhichCaptures::None)]
        .into_iter()
        .all(|(reverse, captures)| {
            thompson::Compiler::new()
                .configure(
                    thompson::Config::new()
                        .utf8(true)
                        .shrink(false)
                        .reverse(reverse)
                        .which_captures(captures)
                        .nfa_size_limit(Some(PATTERN_SIZE_LIMIT)),
                )
                .build_from_hir(hir)
                .is_ok()
        })
}

/// An upper bound, in bytes, on the heap a Thompson NFA of `hir` takes to
/// compile, forward or reverse, with capture states: the size `regex` checks
/// against its size limit.
///
/// Every HIR node becomes at most a fixed number of NFA states, except classes
/// (one state and one transition per byte of each UTF-8 sequence of their
/// ranges) and counted repetitions (one copy of the repeated part per count).
/// A builder state takes at most 32 bytes and a transition 8; the bound charges
/// 128 bytes per unit (`size_bound_is_an_upper_bound` compiles patterns under
/// half their bound), and [`check`] only trusts a bound of half the limit.
fn size_bound(hir: &Hir) -> u64 {
    /// Fixed states around a whole pattern: capture group 0, the unanchored
    /// prefix, the match state.
    const FRAME: u64 = 16;
    (units(hir).saturating_add(FRAME)).saturating_mul(128)
}

/// NFA states and transitions `hir` compiles to, at most.
fn units(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 2,
        HirKind::Literal(lit) => lit.0.len() as u64 + 2,
        HirKind::Class(Class::Bytes(c)) => 2 * c.ranges().len() as u64 + 2,
        HirKind::Class(Class::Unicode(c)) => {
            let sequences: u64 = c.ranges().iter().map(utf8_sequences).sum();
            // Each sequence is at most four byte ranges: a state and a transition each.
            8 * sequences + 2
        }
        HirKind::Repetition(rep) => {
            // `x{n,m}` compiles n copies and m - n optional ones; `x{n,}` n
            // copies and a loop over one more.
            let copies = u64::from(rep.max.unwrap_or(rep.min)) + 1;
            copies.saturating_mul(units(&rep.sub).saturating_add(4))
        }
        HirKind::Capture(cap) => units(&cap.sub).saturating_add(4),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs
            .iter()
            .fold(2 * subs.len() as u64 + 2, |n, h| n.saturating_add(units(h))),
    }
}

/// How many UTF-8 byte sequences a class range compiles to. Most ranges of the
/// common classes (`\d`, `\s`, scripts) differ only in their last byte: one
/// sequence, known without splitting the range.
fn utf8_sequences(range: &ClassUnicodeRange) -> u64 {
    let (start, end) = (range.start(), range.end());
    if start.len_utf8() == end.len_utf8() && u32::from(start) >> 6 == u32::from(end) >> 6 {
        1
    } else {
        Utf8Sequences::new(start, end).count() as u64
    }
}

/// Whether a pattern uses a Unicode word boundary (`\b`), which the lazy DFA
/// cannot evaluate on non-ASCII text.
pub(crate) fn has_unicode_word_boundary(hir: &Hir) -> bool {
    hir.properties().look_set().contains_word_unicode()
}

/// Every pattern of a router, and which of them match a text.
///
/// Compiling patterns is most of the time it takes to load a router with many
/// of them: with 1,000 patterns like `주제12번?\s*7\d*(을|를|은|는)?`, the
/// Thompson NFA of one set over all of them (every `\d` and `\s` compiled as
/// hundreds of UTF-8 byte ranges, once per pattern) took half of a 26 ms build
/// (`perf record`, BENCHMARKS.md "Router"). Most patterns, though, can only
/// match where one of a few literals starts (`주제12`, `마약`, `how `): such a
/// pattern is not compiled at load time. Its literals go into one Aho-Corasick
/// automaton, and the pattern is compiled alone, on the first text that holds
/// one of them; a text that holds none never runs it. Only the patterns without
/// such literals (one starting with `\d+`, say) are compiled when the router
/// loads, into [`PatternMatcher`] sets.
#[derive(Debug)]
pub(crate) struct PatternIndex {
    /// The prefix literals of the patterns that have a short list of them.
    prefixes: AhoCorasick,
    /// For each literal of `prefixes`, the group of patterns it may start.
    prefix_group: Vec<u32>,
    groups: Vec<PrefixGroup>,
    /// The patterns without prefix literals, compiled as sets, with the
    /// pattern id of each set index.
    sets: Vec<(PatternMatcher, Vec<u32>)>,
    /// Each pattern alone, compiled on the first text that needs it.
    regexes: Vec<(String, OnceLock<meta::Regex>)>,
}

/// The patterns that one or more prefix literals may start.
#[derive(Debug)]
struct PrefixGroup {
    /// Their ids, ascending, but for those in `alone`.
    ids: Vec<u32>,
    /// Those of them compiled together, on the first text that needs them:
    /// one anchored search where a literal was found answers for all of
    /// them. `None` when they could not be compiled together (their sizes
    /// add up past the limit): then each is searched for alone.
    set: OnceLock<Option<PatternMatcher>>,
    /// The ids of the patterns with a Unicode word boundary, searched for
    /// alone (see [`PatternIndex::new`] for why they stay out of sets).
    /// (`set` is `None` too when every pattern of the group is here.)
    alone: Vec<u32>,
}

/// A pattern is left to its prefix literals only when they are this many or
/// fewer, and each at least [`MIN_PREFIX_LEN`] bytes: more or shorter literals
/// would fire on most texts and cost a search each time.
const MAX_PREFIXES: usize = 64;
/// See [`MAX_PREFIXES`]. Two bytes: an ASCII pair or a lead byte and one more.
const MIN_PREFIX_LEN: usize = 2;

/// The literals every match of `hir` starts with, ASCII letters in lower case,
/// when they are few and long enough to be worth searching for instead of the
/// pattern (see [`MAX_PREFIXES`]); they are to be searched for ignoring ASCII
/// case.
///
/// Sound by construction: `regex-syntax`'s extractor returns a finite sequence
/// only when every match begins with one of its literals (exact or not: an
/// inexact literal is still a prefix of the match), and a literal found
/// ignoring ASCII case is found whatever its case. Patterns are
/// case-insensitive, so the extractor spells out every case of every letter
/// (`how ` alone is 8 literals); folding ASCII case merges them back, while a
/// non-ASCII variant (the Kelvin sign of `k`) stays a literal of its own.
fn prefix_literals(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    // Limited to as many literals as are usable: past that the extractor
    // shortens them (every case of `how do i ` becomes `how `, `HOW `, ...),
    // and spelling out hundreds of cases first was a tenth of the time to load
    // and run the sample router once (`perf record` of `sluice route`).
    let seq = literal::Extractor::new()
        .limit_total(MAX_PREFIXES)
        .extract(hir);
    let mut literals: Vec<Vec<u8>> = seq
        .literals()?
        .iter()
        .map(|l| l.as_bytes().to_ascii_lowercase())
        .collect();
    literals.sort_unstable();
    literals.dedup();
    let usable = !literals.is_empty()
        && literals.len() <= MAX_PREFIXES
        && literals.iter().all(|l| l.len() >= MIN_PREFIX_LEN);
    usable.then_some(literals)
}

impl PatternIndex {
    /// Indexes the patterns, `sources[i]` parsed by [`check`] as `hirs[i]`.
    /// The error says why the patterns without prefix literals cannot be
    /// compiled together, in the words of `regex`.
    pub fn new(sources: Vec<String>, hirs: &[Hir]) -> Result<PatternIndex, String> {
        // Unicode word boundaries (`\b`) make the lazy DFA give up on
        // non-ASCII text, and a set falls back to the much slower PikeVM as a
        // whole: with 1,000 patterns and one `\b` among them, a Korean query
        // took 1.1 ms instead of microseconds (measured, BENCHMARKS.md "Router"). So
        // patterns with Unicode word boundaries get a set of their own, or
        // are searched for alone.
        let slow: Vec<bool> = hirs.iter().map(has_unicode_word_boundary).collect();
        let mut literal_ids: FxHashMap<Vec<u8>, usize> = FxHashMap::default();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut owners: Vec<Vec<u32>> = Vec::new();
        let mut unfiltered: [Vec<u32>; 2] = Default::default();
        for (id, hir) in hirs.iter().enumerate() {
            match prefix_literals(hir) {
                Some(prefixes) => {
                    for prefix in prefixes {
                        let lit = *literal_ids.entry(prefix).or_insert_with_key(|prefix| {
                            literals.push(prefix.clone());
                            owners.push(Vec::new());
                            literals.len() - 1
                        });
                        owners[lit].push(id as u32);
                    }
                }
                None => unfiltered[usize::from(slow[id])].push(id as u32),
            }
        }
        // A contiguous NFA rather than the DFA that `aho-corasick` picks for
        // a few literals: building that DFA was the largest single cost of
        // loading the sample router (`perf record` of `sluice route`), and the
        // texts searched are a query's few hundred bytes.
        let prefixes = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(aho_corasick::MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&literals)
            .map_err(|e| e.to_string())?;
        // Literals that may start the same patterns (`주제1` and `주제1번`)
        // share one group, and so one compiled set.
        let mut group_ids: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let mut groups = Vec::new();
        let prefix_group = owners
            .into_iter()
            .map(|ids| {
                *group_ids.entry(ids).or_insert_with_key(|ids| {
                    let (alone, ids) = ids.iter().partition(|&&id| slow[id as usize]);
                    groups.push(PrefixGroup {
                        ids,
                        set: OnceLock::new(),
                        alone,
                    });
                    groups.len() as u32 - 1
                })
            })
            .collect();
        let mut sets = Vec::new();
        for ids in unfiltered {
            if !ids.is_empty() {
                let group: Vec<&Hir> = ids.iter().map(|&i| &hirs[i as usize]).collect();
                sets.push((set_of(&group)?, ids));
            }
        }
        Ok(PatternIndex {
            prefixes,
            prefix_group,
            groups,
            sets,
            regexes: sources.into_iter().map(|s| (s, OnceLock::new())).collect(),
        })
    }

    /// Pattern `id` alone, compiled on first use, as [`pattern_builder`]
    /// would compile it; `regex-automata`'s own form of it, because that one
    /// can search anchored at a given position.
    pub fn regex(&self, id: u32) -> &meta::Regex {
        let (source, regex) = &self.regexes[id as usize];
        regex.get_or_init(|| {
            meta::Builder::new()
                .configure(
                    meta::Config::new()
                        .match_kind(MatchKind::LeftmostFirst)
                        .utf8_empty(true)
                        .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
                        .hybrid_cache_capacity(PATTERN_DFA_LIMIT),
                )
                .syntax(syntax_config())
                .build(source)
                .expect("validated when the router was loaded")
        })
    }

    /// The source text of pattern `id`.
    #[cfg(test)]
    pub fn source(&self, id: u32) -> &str {
        &self.regexes[id as usize].0
    }

    /// The sets of patterns compiled at load time.
    #[cfg(test)]
    pub fn sets(&self) -> &[(PatternMatcher, Vec<u32>)] {
        &self.sets
    }

    /// The ids of the patterns that match somewhere in `text`, ascending.
    pub fn matches(&self, text: &str) -> Vec<u32> {
        let mut found: Vec<u32> = Vec::new();
        for m in self.prefixes.find_overlapping_iter(text) {
            // Every match of these patterns starts with one of their literals,
            // so one that matches at all matches starting where such a literal
            // was found: an anchored search there settles it, usually within a
            // few bytes.
            let input = Input::new(text).range(m.start()..).anchored(Anchored::Yes);
            let group = &self.groups[self.prefix_group[m.pattern().as_usize()] as usize];
            let set = group.set.get_or_init(|| {
                let hirs: Vec<Hir> = group.ids.iter().map(|&id| self.hir(id)).collect();
                let hirs: Vec<&Hir> = hirs.iter().collect();
                (!hirs.is_empty()).then(|| set_of(&hirs).ok()).flatten()
            });
            // Those not in the set (all of them if there is none) one by one.
            let singles = match set {
                Some(set) => {
                    let hits = set.matches(input.clone());
                    found.extend(hits.into_iter().map(|i| group.ids[i as usize]));
                    [&group.alone[..], &[]]
                }
                None => [&group.ids[..], &group.alone[..]],
            };
            for &id in singles.into_iter().flatten() {
                if self.regex(id).is_match(input.clone()) {
                    found.push(id);
                }
            }
        }
        for (set, ids) in &self.sets {
            let hits = set.matches(Input::new(text));
            found.extend(hits.into_iter().map(|i| ids[i as usize]));
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Pattern `id` parsed again (it was checked when the router loaded).
    fn hir(&self, id: u32) -> Hir {
        syntax::parse_with(&self.regexes[id as usize].0, &syntax_config())
            .expect("validated when the router was loaded")
    }
}

/// Patterns compiled together, within the size limit of that many patterns.
fn set_of(hirs: &[&Hir]) -> Result<PatternMatcher, String> {
    let limit = PATTERN_SIZE_LIMIT.saturating_mul(hirs.len()).min(1 << 30);
    PatternMatcher::new(hirs, limit, limit.min(64 << 20))
}

/// The creation function of a [`PatternMatcher`]'s cache pool.
type CacheFn = Box<dyn Fn() -> Caches + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// One search's scratch space: the lazy DFA's states and the PikeVM's threads.
#[derive(Debug)]
struct Caches {
    dfa: Option<hybrid::dfa::Cache>,
    pikevm: regex_automata::nfa::thompson::pikevm::Cache,
}

/// Which of many patterns match a text, as `RegexSet::matches` answers it.
///
/// Written by hand because `RegexSet` is built on the meta regex, which also
/// compiles a reverse NFA and extracts prefix literals for leftmost searches:
/// finding *which* patterns match runs only the forward lazy DFA (and the
/// PikeVM where that DFA gives up), so the rest is time spent loading the
/// router for nothing. This is that same forward lazy DFA and PikeVM, with the
/// same configuration as the meta regex gives them.
pub(crate) struct PatternMatcher {
    /// `None` where the cache limit is too small for the lazy DFA to run.
    dfa: Option<hybrid::dfa::DFA>,
    pikevm: PikeVM,
    caches: Pool<Caches, CacheFn>,
}

impl std::fmt::Debug for PatternMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternMatcher")
            .field("patterns", &self.pikevm.get_nfa().pattern_len())
            .finish_non_exhaustive()
    }
}

impl PatternMatcher {
    /// Compiles the patterns (parsed by [`check`]) into one matcher. Its NFA
    /// may take `size_limit` bytes, its lazy DFA's cache `cache_limit`; the
    /// error says why it cannot be built, in the words of `regex`.
    pub fn new(
        hirs: &[&Hir],
        size_limit: usize,
        cache_limit: usize,
    ) -> Result<PatternMatcher, String> {
        let nfa: NFA = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(true)
                    .shrink(false)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(size_limit)),
            )
            .build_many_from_hir(hirs)
            .map_err(|e| match e.size_limit() {
                Some(limit) => regex::Error::CompiledTooBig(limit).to_string(),
                None => e.to_string(),
            })?;
        // The meta regex's lazy DFA settings: it quits (and the PikeVM takes
        // over) on a Unicode word boundary in non-ASCII text, or when its cache
        // thrashes.
        let dfa = hybrid::dfa::DFA::builder()
            .configure(
                hybrid::dfa::Config::new()
                    .match_kind(MatchKind::All)
                    .starts_for_each_pattern(true)
                    .unicode_word_boundary(true)
                    .cache_capacity(cache_limit)
                    .skip_cache_capacity_check(false)
                    .minimum_cache_clear_count(Some(3))
                    .minimum_bytes_per_state(Some(10)),
            )
            .build_from_nfa(nfa.clone())
            .ok();
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        let (d, p) = (dfa.clone(), pikevm.clone());
        let create: CacheFn = Box::new(move || Caches {
            dfa: d.as_ref().map(hybrid::dfa::DFA::create_cache),
            pikevm: p.create_cache(),
        });
        Ok(PatternMatcher {
            dfa,
            pikevm,
            caches: Pool::new(create),
        })
    }

    /// How many patterns it holds.
    pub fn len(&self) -> usize {
        self.pikevm.get_nfa().pattern_len()
    }

    /// The indexes of the patterns that match in `input` (somewhere in its
    /// span, or at its start where it is anchored), ascending.
    pub fn matches(&self, input: Input<'_>) -> Vec<u32> {
        let caches = &mut *self.caches.get();
        if let (Some(dfa), Some(cache)) = (&self.dfa, &mut caches.dfa) {
            // `try_which_overlapping_matches`, collecting the patterns as they
            // are found rather than setting and then scanning a flag per pattern.
            let mut found = Vec::new();
            let mut state = OverlappingState::start();
            let complete = loop {
                if dfa
                    .try_search_overlapping_fwd(cache, &input, &mut state)
                    .is_err()
                {
                    break false;
                }
                match state.get_match() {
                    Some(m) => found.push(m.pattern().as_u32()),
                    None => break true,
                }
            };
            if complete {
                found.sort_unstable();
                found.dedup();
                return found;
            }
        }
        let mut found = PatternSet::new(self.len());
        self.pikevm
            .which_overlapping_matches(&mut caches.pikevm, &input, &mut found);
        found.iter().map(|p| p.as_u32()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns of every shape the bound has a rule for, small and large.
    const CORPUS: &[&str] = &[
        r"rain",
        r"(오늘|내일|모레|주말|이번\s*주)\s*(에는|엔|에)?\s*(비|눈)\s*(와|오|올|내리)",
        r"\d+\s*(도|°c)",
        r"(?-u:\b)will it (rain|snow)(?-u:\b)",
        r"\bword\b",
        r"주제12번?\s*7\d*(을|를|은|는)?",
        r"\w+",
        r"\w{20}",
        r"[\p{L}\p{N}]{3,9}",
        r"\pL{2,}x",
        r"(?s).{5}",
        r"(a|b|c|d|e|f|g|h|i|j)+[^\s]*",
        r"(?-u)[\x00-\x7f]{30}",
        r"(\d{1,3}(,\d{3})*)원",
        r"[^a]{10}",
        r"^$",
        r"(?i)ǆ{4}",
    ];

    #[test]
    fn size_bound_is_an_upper_bound() {
        for source in CORPUS {
            let hir = syntax::parse_with(source, &syntax_config()).unwrap();
            let bound = size_bound(&hir);
            for reverse in [false, true] {
                let captures = if reverse {
                    WhichCaptures::None
                } else {
                    WhichCaptures::All
                };
                // The builder's own accounting, checked as it compiles.
                let compiled = thompson::Compiler::new()
                    .configure(
                        thompson::Config::new()
                            .shrink(false)
                            .reverse(reverse)
                            .which_captures(captures)
                            .nfa_size_limit(Some(bound as usize / 2)),
                    )
                    .build_from_hir(&hir);
                assert!(
                    compiled.is_ok(),
                    "{source}: reverse {reverse}, bound {bound}: {compiled:?}"
                );
            }
        }
    }

    #[test]
    fn utf8_sequences_counts_like_splitting_the_range() {
        let ranges = [
            ('a', 'z'),
            ('\0', '\x7f'),
            ('\u{660}', '\u{669}'),
            ('\u{9e6}', '\u{9ef}'),
            ('\u{7f}', '\u{80}'),
            ('\u{ac00}', '\u{d7a3}'),
            ('\u{d7ff}', '\u{e000}'),
            ('\u{1d7ce}', '\u{1d7ff}'),
            ('\0', '\u{10ffff}'),
        ];
        for (start, end) in ranges {
            let range = ClassUnicodeRange::new(start, end);
            assert_eq!(
                utf8_sequences(&range),
                Utf8Sequences::new(start, end).count() as u64,
                "{start:?}..={end:?}"
            );
        }
    }

    #[test]
    fn check_agrees_with_compiling_each_pattern() {
        let huge = format!("{}x", r"\w".repeat(300));
        let extra: &[&str] = &[
            r"(?-u)[\x00-\xff]",
            r"\w{1000}{1000}",
            &huge,
            r"x*",
            r"(?-u:\b)",
            r"a|",
            r"[a&&b]",
            r"(unclosed",
            r"(a)\1",
            r"foo(?=bar)",
        ];
        for source in CORPUS.iter().chain(extra) {
            let compiled = pattern_builder(source).build();
            let expected = match &compiled {
                Ok(re) => !re.is_match(""),
                Err(_) => false,
            };
            let got = check(source);
            assert_eq!(got.is_ok(), expected, "{source}: {got:?}");
            if let Err(e) = compiled {
                assert!(
                    got.unwrap_err().contains(
                        e.to_string()
                            .lines()
                            .last()
                            .unwrap()
                            .trim()
                            .trim_start_matches("error: ")
                    ),
                    "{source}"
                );
            }
        }
    }

    /// The corpus as a [`PatternIndex`] and as a `RegexSet`.
    fn index_and_set() -> (PatternIndex, regex::RegexSet) {
        let sources: Vec<String> = CORPUS
            .iter()
            .filter(|s| **s != "^$")
            .map(|s| s.to_string())
            .chain(
                [
                    r"(?:마약|필로폰|대마초?|코카인)\s*(?:어디서|구매|구입|살\s*수)",
                    r"(?-u:\b)how (?:do i|to|can i) (?:kill|poison)(?-u:\b)",
                    r"주제3번?\s*1\d*(을|를|은|는)?",
                    r"\bk",
                    r"\bkg",
                    r"(?:x|yz)?abc",
                    r"[a-c]{2}d",
                ]
                .map(String::from),
            )
            .collect();
        let hirs: Vec<Hir> = sources.iter().map(|s| check(s).unwrap()).collect();
        let set = regex::RegexSetBuilder::new(&sources)
            .case_insensitive(true)
            .build()
            .unwrap();
        (PatternIndex::new(sources, &hirs).unwrap(), set)
    }

    #[test]
    fn index_leaves_patterns_with_prefix_literals_out_of_its_sets() {
        let (index, _) = index_and_set();
        let in_sets: Vec<&str> = index
            .sets
            .iter()
            .flat_map(|(_, ids)| ids.iter().map(|&id| index.source(id)))
            .collect();
        for source in [
            "rain",
            r"(?:x|yz)?abc",
            r"\bkg",
            r"[a-c]{2}d",
            r"(?-u:\b)how (?:do i|to|can i) (?:kill|poison)(?-u:\b)",
        ] {
            assert!(!in_sets.contains(&source), "{source} is in a set");
        }
        for source in [r"\d+\s*(도|°c)", r"\w+", r"(?s).{5}", r"\bk"] {
            assert!(in_sets.contains(&source), "{source} is not in a set");
        }
    }

    proptest::proptest! {
        /// Texts made of the corpus's own literals and a few other characters,
        /// so that prefixes occur, in every case and width, with and without
        /// the rest of their pattern.
        #[test]
        fn index_agrees_with_regex_set(
            parts in proptest::collection::vec(
                proptest::sample::select(&[
                    "rain", "RAIN", "Rain", "will it ", "snow", "주제", "12번", " ", "7", "30도",
                    "word", "wordy", "마약", " 어디서", "대마", "how to ", "How do I ", "kill",
                    "abc", "yzabc", "xab", "K", "kg", "KG", "\u{212a}g", "\u{212a}", "bcd", "ǅ", "ǆ", "1,000원", "x", "가",
                    "\n", "\u{3000}", "°C",
                ][..]),
                0..12,
            )
        ) {
            let (index, set) = &*INDEX;
            let text: String = parts.concat();
            let want: Vec<u32> = set.matches(&text).into_iter().map(|i| i as u32).collect();
            proptest::prop_assert_eq!(index.matches(&text), want, "{:?}", text);
        }
    }

    static INDEX: std::sync::LazyLock<(PatternIndex, regex::RegexSet)> =
        std::sync::LazyLock::new(index_and_set);

    #[test]
    fn matcher_agrees_with_regex_set() {
        let sources: Vec<&str> = CORPUS.iter().copied().filter(|s| *s != "^$").collect();
        let hirs: Vec<Hir> = sources.iter().map(|s| check(s).unwrap()).collect();
        let refs: Vec<&Hir> = hirs.iter().collect();
        let matcher = PatternMatcher::new(&refs, 1 << 30, 64 << 20).unwrap();
        assert_eq!(matcher.len(), sources.len());
        let set = regex::RegexSetBuilder::new(&sources)
            .case_insensitive(true)
            .build()
            .unwrap();
        for text in [
            "will it rain tomorrow 내일 비 와?",
            "주제12번 7을 찾아 30도 word",
            "한국어 word 문장 1,000원 ǅǅǆǄ",
            "",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbb",
        ] {
            let want: Vec<usize> = set.matches(text).into_iter().collect();
            let got: Vec<usize> = matcher
                .matches(Input::new(text))
                .into_iter()
                .map(|p| p as usize)
                .collect();
            assert_eq!(got, want, "{text}");
        }
    }
}
