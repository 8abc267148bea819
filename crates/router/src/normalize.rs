//! Text normalisation with a map back to the original text.
//!
//! Rules are matched against two views of the normalised text:
//!
//! - **spaced**: NFKC, lowercase, invisible characters removed, every run of
//!   whitespace folded to one ASCII space, no leading or trailing space. Patterns
//!   run here.
//! - **compact**: the spaced view without any space at all, so "미 세 먼 지"
//!   reads "미세먼지". Literal rules run here, compacted the same way.
//!
//! Every byte of either view remembers the byte range of the original text it
//! came from, so a match maps back to a range that starts and ends on character
//! boundaries of the original.

use std::ops::Range;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

/// A normalised text and the way back to the original.
#[derive(Debug, Clone, Default)]
pub(crate) struct Normalized {
    /// The spaced view.
    pub spaced: String,
    /// For each byte of `spaced`: the original range it came from.
    spaced_map: Vec<(u32, u32)>,
    /// The compact view.
    pub compact: String,
    /// For each byte of `compact`: the original range it came from.
    compact_map: Vec<(u32, u32)>,
    /// For each byte of `compact`: whether a space stood before it in the spaced view.
    gap_before: Vec<bool>,
}

impl Normalized {
    /// Normalises `text`.
    pub fn new(text: &str) -> Self {
        let mut out = Normalized {
            spaced: String::with_capacity(text.len()),
            spaced_map: Vec::with_capacity(text.len()),
            compact: String::with_capacity(text.len()),
            compact_map: Vec::with_capacity(text.len()),
            gap_before: Vec::with_capacity(text.len()),
        };
        let mut pending_space: Option<(u32, u32)> = None;
        let mut buf = String::new();
        for (start, end) in segments(text) {
            let segment = &text[start..end];
            let range = (start as u32, end as u32);
            buf.clear();
            if segment.is_ascii() {
                buf.push_str(segment);
            } else {
                buf.extend(segment.nfkc());
            }
            for c in buf.chars().flat_map(char::to_lowercase) {
                if c.is_whitespace() {
                    if !out.spaced.is_empty() && pending_space.is_none() {
                        pending_space = Some(range);
                    }
                    continue;
                }
                if is_invisible(c) {
                    continue;
                }
                let gap = if let Some(space) = pending_space.take() {
                    out.spaced.push(' ');
                    out.spaced_map.push(space);
                    true
                } else {
                    false
                };
                let mut utf8 = [0u8; 4];
                let len = c.encode_utf8(&mut utf8).len();
                out.spaced.push(c);
                out.compact.push(c);
                for i in 0..len {
                    out.spaced_map.push(range);
                    out.compact_map.push(range);
                    out.gap_before.push(gap && i == 0);
                }
            }
        }
        out
    }

    /// The original byte range of `range` of the spaced view.
    pub fn spaced_origin(&self, range: Range<usize>) -> Range<usize> {
        origin(&self.spaced_map, range)
    }

    /// The original byte range of `range` of the compact view.
    pub fn compact_origin(&self, range: Range<usize>) -> Range<usize> {
        origin(&self.compact_map, range)
    }

    /// Whether a match of the compact view starting at `pos` starts a word: it is
    /// at the start, after a removed space, or after a character that is not an
    /// ASCII letter or digit.
    pub fn compact_word_start(&self, pos: usize) -> bool {
        pos == 0
            || self.gap_before.get(pos).copied().unwrap_or(true)
            || !self.compact.as_bytes()[pos - 1].is_ascii_alphanumeric()
    }
}

fn origin(map: &[(u32, u32)], range: Range<usize>) -> Range<usize> {
    if range.start >= range.end || range.end > map.len() {
        return 0..0;
    }
    map[range.start].0 as usize..map[range.end - 1].1 as usize
}

/// Normalises a rule's literal the way texts are normalised, in its compact form.
pub(crate) fn compact(text: &str) -> String {
    Normalized::new(text).compact
}

/// Normalises a text into its spaced form.
pub(crate) fn spaced(text: &str) -> String {
    Normalized::new(text).spaced
}

/// Splits `text` into pieces that NFKC can normalise one at a time: a new piece
/// starts at every character of combining class 0 that does not compose with what
/// stands before it (Hangul vowel and final jamo compose with a leading jamo).
/// Invisible characters are pieces of their own, so they cannot glue anything.
fn segments(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut iter = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = iter.next()?;
        let mut end = start + first.len_utf8();
        if is_invisible(first) {
            return Some((start, end));
        }
        while let Some(&(i, c)) = iter.peek() {
            if is_invisible(c) || starts_segment(c) {
                break;
            }
            end = i + c.len_utf8();
            iter.next();
        }
        Some((start, end))
    })
}

fn starts_segment(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let jamo_vowel_or_final = matches!(c, '\u{1160}'..='\u{11FF}' | '\u{D7B0}'..='\u{D7FF}');
    canonical_combining_class(c) == 0 && !jamo_vowel_or_final && !is_voicing_mark(c)
}

/// Halfwidth katakana voicing marks become combining marks under NFKC.
fn is_voicing_mark(c: char) -> bool {
    matches!(c, '\u{FF9E}' | '\u{FF9F}')
}

/// Characters a reader cannot see and that are removed before matching: the
/// Unicode format characters (category `Cf`: zero-width spaces and joiners,
/// direction marks, the BOM, tag characters, ...), Hangul fillers, variation
/// selectors and the combining grapheme joiner.
pub(crate) fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{2800}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0100}'..='\u{E01EF}'
    ) || is_format(c)
}

/// Whether `c` is in the general category `Cf`. The ranges come from the Unicode
/// tables of `regex-syntax`, so they follow the same Unicode version as patterns.
pub(crate) fn is_format(c: char) -> bool {
    static RANGES: LazyLock<Vec<(char, char)>> = LazyLock::new(|| {
        let hir = regex_syntax::Parser::new()
            .parse(r"\p{Cf}")
            .expect("\\p{Cf} is a valid class");
        match hir.kind() {
            regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(class)) => class
                .ranges()
                .iter()
                .map(|r| (r.start(), r.end()))
                .collect(),
            _ => Vec::new(),
        }
    });
    RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(text: &str) -> (String, String) {
        let n = Normalized::new(text);
        (n.spaced, n.compact)
    }

    #[test]
    fn folds_width_case_space_and_invisibles() {
        assert_eq!(
            views("  ＷＥＡＴＨＥＲ\u{200B} in\t\n Seoul "),
            ("weather in seoul".into(), "weatherinseoul".into())
        );
        assert_eq!(
            views("미\u{200B}세\u{00AD}먼\u{FEFF}지"),
            ("미세먼지".into(), "미세먼지".into())
        );
        assert_eq!(
            views("미 세 먼 지"),
            ("미 세 먼 지".into(), "미세먼지".into())
        );
        assert_eq!(
            views("\u{3000}서울\u{3000}날씨"),
            ("서울 날씨".into(), "서울날씨".into())
        );
    }

    #[test]
    fn composes_hangul_jamo() {
        // ᄒ ᅡ ᆫ (conjoining jamo) compose to 한.
        assert_eq!(views("\u{1112}\u{1161}\u{11AB}").0, "한");
    }

    #[test]
    fn maps_back_to_original() {
        let text = "Ｓｅｏｕｌ의 날씨";
        let n = Normalized::new(text);
        let at = n.spaced.find("seoul").unwrap();
        let r = n.spaced_origin(at..at + 5);
        assert_eq!(&text[r], "Ｓｅｏｕｌ");
        let at = n.compact.find("의날씨").unwrap();
        let r = n.compact_origin(at..at + "의날씨".len());
        assert_eq!(&text[r], "의 날씨");
    }

    #[test]
    fn format_table_matches_regex() {
        let re = regex::Regex::new(r"^\p{Cf}$").unwrap();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32).step_by(7) {
            let mut b = [0; 4];
            assert_eq!(is_format(c), re.is_match(c.encode_utf8(&mut b)), "{c:?}");
        }
        assert!(is_format('\u{200B}') && is_format('\u{FEFF}') && is_format('\u{E0041}'));
    }
}
