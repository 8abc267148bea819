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

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

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
        let mut pieces = pieces(text);
        // The piece being emitted and the one after it, both normalised.
        let mut current = String::new();
        let mut next = String::new();
        let mut lookahead: Option<(usize, usize)> = None;
        loop {
            let (start, mut end) = match lookahead.take() {
                Some(piece) => {
                    std::mem::swap(&mut current, &mut next);
                    piece
                }
                None => match pieces.next() {
                    Some((start, end)) => {
                        normalize_piece(&text[start..end], &mut current);
                        (start, end)
                    }
                    None => break,
                },
            };
            // A piece whose normalised form starts with a character that would
            // not start a piece (a combining mark, a vowel jamo) joins the one
            // before it, so that normalising the result again splits it the
            // same way: normalisation is idempotent.
            for (next_start, next_end) in pieces.by_ref() {
                normalize_piece(&text[next_start..next_end], &mut next);
                if next.chars().next().is_some_and(|c| !starts_piece(c)) {
                    end = next_end;
                    normalize_piece(&text[start..end], &mut current);
                } else {
                    lookahead = Some((next_start, next_end));
                    break;
                }
            }
            let range = (start as u32, end as u32);
            for c in current.chars() {
                if c.is_whitespace() {
                    if !out.spaced.is_empty() && pending_space.is_none() {
                        pending_space = Some(range);
                    }
                    continue;
                }
                let gap = if let Some(space) = pending_space.take() {
                    out.spaced.push(' ');
                    out.spaced_map.push(space);
                    true
                } else {
                    false
                };
                let len = c.len_utf8();
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
/// Invisible characters neither start nor end a piece: they are removed before
/// composition ([`normalize_piece`]), so "ᄆ\u{200B}ᅵ" still composes to "미".
fn pieces(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut iter = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = iter.next()?;
        let mut end = start + first.len_utf8();
        while let Some(&(i, c)) = iter.peek() {
            if starts_piece(c) && !is_invisible(c) {
                break;
            }
            end = i + c.len_utf8();
            iter.next();
        }
        Some((start, end))
    })
}

/// Writes the normalised form of one piece into `out`: invisible characters
/// removed, NFKC, lowercase, invisible characters removed again; repeated while
/// lowercasing undoes NFKC (or NFKC undoes lowercasing), which a few characters
/// do, so that the result is a fixed point.
fn normalize_piece(piece: &str, out: &mut String) {
    out.clear();
    if piece.is_ascii() {
        out.extend(piece.chars().map(|c| c.to_ascii_lowercase()));
        return;
    }
    // Precomposed Hangul syllables are visible, lowercase and their own NFKC
    // form (no two of them compose): most of a Korean text is its own
    // normalisation, with no table lookups (a third of a query's routing time
    // was spent here).
    if piece.chars().all(is_hangul_syllable) {
        out.push_str(piece);
        return;
    }
    let visible = |c: &char| !is_invisible(*c);
    out.extend(
        piece
            .chars()
            .filter(visible)
            .nfkc()
            .flat_map(char::to_lowercase)
            .filter(visible),
    );
    // Each round can only shorten or reorder a handful of characters; a few
    // rounds reach the fixed point for every character Unicode has.
    for _ in 0..4 {
        if is_fixed_point(out) {
            return;
        }
        let again: String = out
            .nfkc()
            .flat_map(char::to_lowercase)
            .filter(visible)
            .collect();
        if again == *out {
            return;
        }
        *out = again;
    }
}

/// True if `text` is in NFKC, lowercase and free of invisible characters.
fn is_fixed_point(text: &str) -> bool {
    let lowercase = text.chars().all(|c| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    });
    lowercase && !text.chars().any(is_invisible) && is_nfkc_quick(text.chars()) == IsNormalized::Yes
}

/// A precomposed Hangul syllable, 가 to 힣.
pub(crate) fn is_hangul_syllable(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}')
}

fn starts_piece(c: char) -> bool {
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
    use proptest::prelude::*;

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
    fn invisible_characters_do_not_keep_jamo_apart() {
        assert_eq!(
            views("\u{1106}\u{200B}\u{1175}세먼지 정보"),
            views("미세먼지 정보")
        );
        // The span of the composed syllable covers the invisible character too.
        let text = "\u{1106}\u{200B}\u{1175}세";
        let n = Normalized::new(text);
        assert_eq!(
            &text[n.spaced_origin(0.."미".len())],
            "\u{1106}\u{200B}\u{1175}"
        );
        // A combining mark after an invisible character still composes.
        assert_eq!(views("e\u{200B}\u{301}").0, "\u{E9}");
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        // Found by fuzzing: the letter mark kept the two marks in separate
        // pieces, and the second pass reordered them.
        for text in [
            "\u{614}\u{61C}\u{618}",
            "a\u{301}\u{200B}\u{316}",
            "\u{1106}\u{FEFF}\u{1175}\u{200D}\u{11AB}",
            "\u{130}\u{307}",
            "\u{3A3}\u{345}\u{301}",
        ] {
            let once = spaced(text);
            assert_eq!(spaced(&once), once, "{text:?}");
            assert_eq!(compact(&once), compact(text), "{text:?}");
        }
    }

    /// Characters that stress composition: marks of several combining classes,
    /// invisible characters, conjoining jamo, case pairs with special mappings,
    /// compatibility forms and spaces.
    fn tricky_text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            Just('a'),
            Just('E'),
            Just(' '),
            Just('\u{A0}'),
            Just('\u{A8}'),
            Just('\u{130}'),
            Just('\u{3A3}'),
            Just('\u{1E9E}'),
            Just('\u{FB01}'),
            Just('\u{FF21}'),
            Just('\u{FF9E}'),
            Just('\u{FF76}'),
            Just('\u{1106}'),
            Just('\u{1175}'),
            Just('\u{11AB}'),
            Just('\u{1160}'),
            Just('\u{3164}'),
            Just('\u{B098}'),
            Just('\u{200B}'),
            Just('\u{200D}'),
            Just('\u{61C}'),
            Just('\u{FEFF}'),
            Just('\u{FE0F}'),
            Just('\u{034F}'),
            prop::char::range('\u{300}', '\u{36F}'),
            prop::char::range('\u{610}', '\u{61A}'),
            prop::char::range('\u{591}', '\u{5C7}'),
            prop::char::range('\u{B3E}', '\u{B57}'),
            prop::char::range('\u{F71}', '\u{F81}'),
            any::<char>(),
        ];
        prop::collection::vec(c, 0..16).prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(text in tricky_text()) {
            let once = spaced(&text);
            prop_assert_eq!(spaced(&once), once.clone());
            prop_assert_eq!(compact(&once), compact(&text));
        }

        #[test]
        fn every_offset_lands_on_char_boundaries(text in tricky_text()) {
            let n = Normalized::new(&text);
            prop_assert_eq!(n.spaced_map.len(), n.spaced.len());
            prop_assert_eq!(n.compact_map.len(), n.compact.len());
            for &(start, end) in n.spaced_map.iter().chain(&n.compact_map) {
                let (start, end) = (start as usize, end as usize);
                prop_assert!(start < end && end <= text.len());
                prop_assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
            }
            for (at, c) in n.spaced.char_indices() {
                let range = n.spaced_origin(at..at + c.len_utf8());
                prop_assert!(text.get(range).is_some());
            }
        }
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
