//! Hand-written pre-tokenizers for the `cl100k_base` and `o200k_base` split patterns.
//!
//! Performance note: with the `regex` crate, finding the next piece costs a lazy-DFA
//! search per piece and dominated counting time (about two thirds of it on English
//! text, measured with `cargo bench -p sluice-core --bench core`). These scanners
//! decide each piece by looking at one character class at a time, from a 64 KiB
//! table for the Basic Multilingual Plane and a binary search above it. They
//! implement exactly the leftmost-first semantics of OpenAI's patterns, including the
//! `\s+(?!\S)` look-ahead; tests compare them piece by piece with the regex
//! implementation (`crate::pretokenize::reference`) on random Unicode and with
//! `tiktoken-rs` on a generated corpus.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// `\p{L}`
const L: u8 = 1;
/// `\p{N}`
const N: u8 = 2;
/// `\s`
const WS: u8 = 4;
/// o200k's "upper" class: `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`
const U: u8 = 8;
/// o200k's "lower" class: `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
const W: u8 = 16;

/// Character classes of every code point, built once from the same Unicode tables
/// the `regex` crate uses, so that both agree on every character.
struct Classes {
    bmp: Box<[u8]>,
    /// Ranges above the BMP with a non-zero class, sorted.
    astral: Vec<(u32, u32, u8)>,
}

fn ranges(pattern: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .expect("valid class");
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => class
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        other => panic!("{pattern} is not a Unicode class: {other:?}"),
    }
}

fn classes() -> &'static Classes {
    static CLASSES: OnceLock<Classes> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let sets = [
            (L, r"\p{L}"),
            (N, r"\p{N}"),
            (WS, r"\s"),
            (U, r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"),
            (W, r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"),
        ];
        // Performance note: this runs once per process, before the first count,
        // so it is written to cost well under a millisecond: the BMP ranges are
        // filled slice by slice, and the astral ranges are cut at every range's
        // boundaries and each range's flag is added to the pieces it covers (an
        // earlier version tested every piece against every range, ~1 ms of a
        // ~5 ms `sluice trim`, measured with `perf`).
        let mut bmp = vec![0u8; 0x1_0000].into_boxed_slice();
        let mut boundaries = vec![0x1_0000u32, 0x11_0000];
        let mut all = Vec::new();
        for (flag, pattern) in sets {
            for (start, end) in ranges(pattern) {
                if start <= 0xFFFF {
                    for class in &mut bmp[start as usize..=end.min(0xFFFF) as usize] {
                        *class |= flag;
                    }
                }
                if end >= 0x1_0000 {
                    let start = start.max(0x1_0000);
                    boundaries.push(start);
                    boundaries.push(end + 1);
                    all.push((start, end, flag));
                }
            }
        }
        boundaries.sort_unstable();
        boundaries.dedup();
        // `flags[i]` is the class of the code points in `boundaries[i]..boundaries[i + 1]`.
        let mut flags = vec![0u8; boundaries.len() - 1];
        for (start, end, flag) in all {
            let first = boundaries.binary_search(&start).expect("a boundary");
            let past = boundaries.binary_search(&(end + 1)).expect("a boundary");
            for class in &mut flags[first..past] {
                *class |= flag;
            }
        }
        let astral = boundaries
            .windows(2)
            .zip(flags)
            .filter(|&(_, flags)| flags != 0)
            .map(|(pair, flags)| (pair[0], pair[1] - 1, flags))
            .collect();
        Classes { bmp, astral }
    })
}

impl Classes {
    #[inline(always)]
    fn of(&self, c: char) -> u8 {
        let c = c as u32;
        if c < 0x1_0000 {
            self.bmp[c as usize]
        } else {
            match self.astral.binary_search_by(|&(s, e, _)| {
                if e < c {
                    std::cmp::Ordering::Less
                } else if s > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            }) {
                Ok(i) => self.astral[i].2,
                Err(_) => 0,
            }
        }
    }
}

/// Which pattern a [`Scanner`] implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    Cl100k,
    O200k,
}

/// A pre-tokenizer for one of OpenAI's split patterns.
pub(crate) struct Scanner {
    pattern: Pattern,
    classes: &'static Classes,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("pattern", &self.pattern)
            .finish()
    }
}

/// A cursor over a text: the character at a byte offset and its class.
struct Text<'a> {
    s: &'a str,
    classes: &'a Classes,
}

impl Text<'_> {
    /// The character at byte offset `at` (< len), its length and its class.
    #[inline(always)]
    fn at(&self, at: usize) -> (char, usize, u8) {
        let b = self.s.as_bytes()[at];
        if b < 0x80 {
            let c = b as char;
            (c, 1, self.classes.bmp[b as usize])
        } else {
            let c = self.s[at..].chars().next().expect("at < len");
            (c, c.len_utf8(), self.classes.of(c))
        }
    }

    #[inline(always)]
    fn class_at(&self, at: usize) -> u8 {
        if at < self.s.len() { self.at(at).2 } else { 0 }
    }

    /// End of the run of characters whose class has any of `flags`, from `at`.
    #[inline(always)]
    fn run_end(&self, mut at: usize, flags: u8) -> usize {
        let len = self.s.len();
        while at < len {
            let (_, l, f) = self.at(at);
            if f & flags == 0 {
                break;
            }
            at += l;
        }
        at
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `at`: the match length, if any. Case
    /// folding follows the regex crate's simple folding, in which `ſ` (U+017F) is
    /// an `s`.
    #[inline]
    fn contraction(&self, at: usize) -> Option<usize> {
        let rest = &self.s.as_bytes()[at..];
        if rest.first() != Some(&b'\'') {
            return None;
        }
        let lower = |i: usize| rest.get(i).map(u8::to_ascii_lowercase);
        match lower(1)? {
            b's' | b't' | b'm' | b'd' => Some(2),
            b'r' | b'v' if lower(2) == Some(b'e') => Some(3),
            b'l' if lower(2) == Some(b'l') => Some(3),
            0xC5 if rest.get(2) == Some(&0xBF) => Some(3), // ſ
            _ => None,
        }
    }

    /// Alternatives shared by both patterns once no letter alternative matched:
    /// `\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n]*` (o200k also takes `/` at the end),
    /// `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.
    #[inline(always)]
    fn rest(&self, p: usize, c: char, clen: usize, class: u8, slash: bool) -> usize {
        let bytes = self.s.as_bytes();
        let len = bytes.len();
        if class & N != 0 {
            let mut e = p + clen;
            for _ in 0..2 {
                if e >= len {
                    break;
                }
                let (_, l, f) = self.at(e);
                if f & N == 0 {
                    break;
                }
                e += l;
            }
            return e;
        }
        let q = if c == ' ' { p + 1 } else { p };
        if q < len && self.class_at(q) & (WS | L | N) == 0 {
            let mut e = q;
            while e < len {
                let (_, l, f) = self.at(e);
                if f & (WS | L | N) != 0 {
                    break;
                }
                e += l;
            }
            while e < len && (bytes[e] == b'\r' || bytes[e] == b'\n' || (slash && bytes[e] == b'/'))
            {
                e += 1;
            }
            return e;
        }
        // Here `c` is whitespace: every other character matched above.
        let mut e = p;
        let mut last_newline_end = None;
        let mut last_len = 0;
        let mut count = 0;
        while e < len {
            let (ch, l, f) = self.at(e);
            if f & WS == 0 {
                break;
            }
            if ch == '\r' || ch == '\n' {
                last_newline_end = Some(e + l);
            }
            last_len = l;
            count += 1;
            e += l;
        }
        if let Some(end) = last_newline_end {
            return end;
        }
        if e < len && count >= 2 {
            // `\s+(?!\S)`: leave the last space to the word that follows.
            return e - last_len;
        }
        e
    }
}

impl Scanner {
    pub(crate) fn new(pattern: Pattern) -> Self {
        Self {
            pattern,
            classes: classes(),
        }
    }

    /// Calls `f` with each piece of `text`, in order; stops when `f` returns `false`.
    #[inline]
    pub(crate) fn pieces(&self, text: &str, mut f: impl FnMut(&str) -> bool) {
        let t = Text {
            s: text,
            classes: self.classes,
        };
        let mut p = 0;
        while p < text.len() {
            let end = match self.pattern {
                Pattern::Cl100k => cl100k_next(&t, p),
                Pattern::O200k => o200k_next(&t, p),
            };
            if !f(&text[p..end]) {
                return;
            }
            p = end;
        }
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
#[inline(always)]
fn cl100k_next(t: &Text<'_>, p: usize) -> usize {
    let len = t.s.len();
    let (c, clen, class) = t.at(p);
    if c == '\'' {
        if let Some(n) = t.contraction(p) {
            return p + n;
        }
    }
    if class & L != 0 {
        return t.run_end(p + clen, L);
    }
    if c != '\r' && c != '\n' && class & N == 0 {
        let q = p + clen;
        if q < len && t.class_at(q) & L != 0 {
            return t.run_end(q, L);
        }
    }
    t.rest(p, c, clen, class, false)
}

/// o200k_base: two letter alternatives that tell upper from lower case
/// (`[^\r\n\p{L}\p{N}]?U*W+('s..)?` and `[^\r\n\p{L}\p{N}]?U+W*('s..)?`), then the
/// same tail as cl100k with `[\r\n/]*` after punctuation.
#[inline(always)]
fn o200k_next(t: &Text<'_>, p: usize) -> usize {
    let (c, clen, class) = t.at(p);
    let prefix = c != '\r' && c != '\n' && class & (L | N) == 0;
    let with_suffix = |e: usize| e + t.contraction(e).unwrap_or(0);
    if prefix {
        if let Some(e) = upper_then_lower(t, p + clen) {
            return with_suffix(e);
        }
    }
    if let Some(e) = upper_then_lower(t, p) {
        return with_suffix(e);
    }
    if prefix {
        if let Some(e) = upper_then_maybe_lower(t, p + clen) {
            return with_suffix(e);
        }
    }
    if let Some(e) = upper_then_maybe_lower(t, p) {
        return with_suffix(e);
    }
    t.rest(p, c, clen, class, true)
}

/// `U*W+` from `q`: `U*` is greedy and gives characters back until `W+` can match.
#[inline(always)]
fn upper_then_lower(t: &Text<'_>, q: usize) -> Option<usize> {
    let len = t.s.len();
    let mut e = q;
    let mut last_w_end = None;
    while e < len {
        let (_, l, f) = t.at(e);
        if f & U == 0 {
            break;
        }
        if f & W != 0 {
            last_w_end = Some(e + l);
        }
        e += l;
    }
    if t.class_at(e) & W != 0 {
        return Some(t.run_end(e, W));
    }
    last_w_end
}

/// `U+W*` from `q`.
#[inline(always)]
fn upper_then_maybe_lower(t: &Text<'_>, q: usize) -> Option<usize> {
    let e = t.run_end(q, U);
    (e > q).then(|| t.run_end(e, W))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretokenize::reference::{Pretokenizer, without_lookahead};
    use crate::pretokenize::{CL100K_PATTERN_ORIGINAL, O200K_PATTERN_ORIGINAL};

    fn split_scan(s: &Scanner, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        s.pieces(text, |p| {
            out.push(p.to_string());
            true
        });
        out
    }

    fn split_regex(p: &Pretokenizer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        p.pieces(text, |s| {
            out.push(s.to_string());
            true
        });
        out
    }

    /// Characters from every class the patterns distinguish, and the tricky ones.
    const ALPHABET: &[char] = &[
        'a',
        'Z',
        'e',
        's',
        'S',
        'l',
        'L',
        'r',
        'v',
        'm',
        'd',
        't',
        'D',
        '\'',
        '\'',
        ' ',
        ' ',
        '\t',
        '\n',
        '\r',
        '\u{a0}',
        '\u{3000}',
        '\u{200b}',
        '1',
        '9',
        '٣',
        'Ⅻ',
        '½',
        '.',
        ',',
        '!',
        '/',
        '-',
        '(',
        '"',
        '가',
        '힣',
        '한',
        'ㄱ',
        '中',
        'ſ',
        'K',
        'ǅ',
        'ʰ',
        '\u{301}',
        '\u{93f}',
        'क',
        'é',
        'ß',
        'Ω',
        'ω',
        '😀',
        '𝐀',
        '𝐚',
        '𝟙',
        '\u{1F3FD}',
        '\u{e0041}',
        '\u{85}',
        '\u{2028}',
        '_',
        '$',
        '€',
    ];

    fn random_texts(seed: u64, n: usize) -> Vec<String> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let len = (next() % 24) as usize;
                (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 10 == 0 {
                            char::from_u32((r >> 8) as u32 % 0x3_0000).unwrap_or('x')
                        } else {
                            ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn scanners_agree_with_the_regex_pre_tokenizers() {
        for (pattern, regex) in [
            (Pattern::Cl100k, CL100K_PATTERN_ORIGINAL),
            (Pattern::O200k, O200K_PATTERN_ORIGINAL),
        ] {
            let scanner = Scanner::new(pattern);
            let reference = Pretokenizer::new(&without_lookahead(regex));
            for text in random_texts(0x5EED, 60_000) {
                assert_eq!(
                    split_scan(&scanner, &text),
                    split_regex(&reference, &text),
                    "{pattern:?} {text:?}"
                );
            }
        }
    }

    #[test]
    fn classes_agree_with_the_regex_crate_on_every_code_point() {
        let c = classes();
        let l = regex::Regex::new(r"^\p{L}$").unwrap();
        let ws = regex::Regex::new(r"^\s$").unwrap();
        for cp in (0..0x11_0000u32).step_by(7) {
            let Some(ch) = char::from_u32(cp) else {
                continue;
            };
            let s = ch.to_string();
            assert_eq!(c.of(ch) & L != 0, l.is_match(&s), "{cp:x}");
            assert_eq!(c.of(ch) & WS != 0, ws.is_match(&s), "{cp:x}");
        }
    }
}
