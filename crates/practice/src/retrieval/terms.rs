//! Index and query terms.
//!
//! Korean attaches particles and endings to words (`서울에서`, `서울은`), and
//! spacing is inconsistent (`미세 먼지` / `미세먼지`), so whitespace words rarely
//! match. Overlapping character bigrams of each Hangul run make `서울에서`
//! contain `서울`, and a two-syllable query (`날씨`) is a single bigram that is
//! found wherever the word occurs. Latin and digit words are kept whole, as
//! usual for alphabetic scripts.
//!
//! Design decisions:
//!
//! - The text is NFKC-normalised and then lowercased, so full-width Latin
//!   (`ＨＣＸ`), compatibility characters and case variants all meet.
//! - A *word* is a maximal run of alphanumeric characters that are not in the
//!   bigram scripts (so Latin, digits, Cyrillic, Greek, ... are words).
//! - Words joined by a single `-`, `_` or `.` with a word on both sides form a
//!   *compound* (`hcx-005`, `gpt-4o`, `snake_case`, `3.5`, `file.txt`). Each part
//!   is emitted, then the whole compound: `HCX-005` gives `hcx`, `005`,
//!   `hcx-005`. A query for the exact name then ranks exact matches above
//!   documents that merely mention `HCX` and `005` separately, while `HCX 005` or
//!   `hcx` alone still match.
//! - A *bigram run* is a maximal run of Hangul (syllables and jamo), CJK
//!   ideographs, or kana; it becomes overlapping character bigrams, and a
//!   one-character run is kept as itself (`한국 차` gives `한국`, `차`).
//! - Bigrams never cross whitespace or punctuation. Joining across a space would
//!   make `미세 먼지` also produce `세먼` (the bigram a spaced text lacks for the
//!   query `미세먼지`), but it would equally produce noise such as `서날` from
//!   `서울에서 날씨` in every document. The spaced and unspaced forms already
//!   share `미세` and `먼지`, which is enough for BM25 to find both.
//! - A change of script ends a run: `HCX모델` gives `hcx` and `모델`, and
//!   `2024년` gives `2024` and `년`.
//! - Everything else (whitespace, punctuation, symbols) only separates terms.
//!
//! Terms repeat as often as they occur, so callers can compute term frequencies.

use unicode_normalization::UnicodeNormalization;

/// How a character takes part in terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Part of a Latin/digit (or other alphabetic script) word.
    Word,
    /// Part of a Hangul/CJK/kana run, indexed as bigrams.
    Bigram,
    /// Joins two words into a compound when a word follows directly.
    Connector,
    /// Separates terms.
    Other,
}

fn class(c: char) -> Class {
    if is_bigram_script(c) {
        Class::Bigram
    } else if c.is_alphanumeric() {
        Class::Word
    } else if matches!(c, '-' | '_' | '.') {
        Class::Connector
    } else {
        Class::Other
    }
}

/// Scripts written without spaces between words (CJK) or with particles glued
/// to words (Korean), where bigrams beat whitespace words.
fn is_bigram_script(c: char) -> bool {
    matches!(c,
        '\u{AC00}'..='\u{D7A3}'     // Hangul syllables
        | '\u{1100}'..='\u{11FF}'   // Hangul jamo (NFKC maps compatibility jamo here)
        | '\u{3130}'..='\u{318F}'   // Hangul compatibility jamo
        | '\u{A960}'..='\u{A97F}'   // Hangul jamo extended-A
        | '\u{D7B0}'..='\u{D7FF}'   // Hangul jamo extended-B
        | '\u{3040}'..='\u{309F}'   // Hiragana
        | '\u{30A0}'..='\u{30FF}'   // Katakana
        | '\u{31F0}'..='\u{31FF}'   // Katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // CJK compatibility ideographs
        | '\u{20000}'..='\u{3FFFF}' // CJK extensions B and later
    )
}

/// The normalised index/query terms of `text`, in order of occurrence and with
/// repeats: NFKC and
/// lowercase; Latin/digit words whole, plus the whole of a compound such as
/// `hcx-005`; each Hangul/CJK/kana run as overlapping character bigrams, a
/// one-character run as itself.
///
/// ```
/// use sluice_practice::retrieval::terms;
/// assert_eq!(terms("HCX-005 모델"), ["hcx", "005", "hcx-005", "모델"]);
/// assert_eq!(terms("서울에서"), ["서울", "울에", "에서"]);
/// ```
pub fn terms(text: &str) -> Vec<String> {
    let normalised = normalise(text);
    let mut out = Vec::new();
    for_each_term(&normalised, |term| out.push(term.to_string()));
    out
}

/// NFKC, then lowercase. Most text is already NFKC (precomposed Hangul is),
/// and the quick check that says so costs a fraction of normalising.
fn normalise(text: &str) -> String {
    match unicode_normalization::is_nfkc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text.to_lowercase(),
        _ => text.nfkc().collect::<String>().to_lowercase(),
    }
}

/// Calls `emit` with each term of `normalised` text, in order and with
/// repeats, as slices of it: every term is a contiguous piece of the
/// normalised text, so none needs a string of its own. Building an index
/// from text hashes millions of terms, and one allocation each was most of
/// its cost.
fn for_each_term<'a>(normalised: &'a str, mut emit: impl FnMut(&'a str)) {
    let chars: Vec<(usize, char)> = normalised.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(normalised.len(), |&(offset, _)| offset);
    let class_at = |i: usize| class(chars[i].1);
    let run_end = |start: usize, of: Class| {
        chars[start..]
            .iter()
            .position(|&(_, c)| class(c) != of)
            .map_or(chars.len(), |n| start + n)
    };
    let mut i = 0;
    while i < chars.len() {
        match class_at(i) {
            Class::Bigram => {
                let end = run_end(i, Class::Bigram);
                if end - i == 1 {
                    emit(&normalised[at(i)..at(end)]);
                } else {
                    for k in i..end - 1 {
                        emit(&normalised[at(k)..at(k + 2)]);
                    }
                }
                i = end;
            }
            Class::Word => {
                let start = i;
                let mut parts = 0;
                loop {
                    let end = run_end(i, Class::Word);
                    emit(&normalised[at(i)..at(end)]);
                    parts += 1;
                    // A connector only joins when a word follows it at once, so a
                    // sentence-final "model." or a dash before a space stays out.
                    let joined = end + 1 < chars.len()
                        && class_at(end) == Class::Connector
                        && class_at(end + 1) == Class::Word;
                    if joined {
                        i = end + 1;
                    } else {
                        i = end;
                        break;
                    }
                }
                if parts > 1 {
                    emit(&normalised[at(start)..at(i)]);
                }
            }
            Class::Connector | Class::Other => i += 1,
        }
    }
}

/// The distinct [`terms`] of `text` with their counts, sorted by term, and the
/// total number of terms (the passage length BM25 normalises by).
pub fn term_frequencies(text: &str) -> (Vec<(String, u32)>, u32) {
    let mut out = Vec::new();
    let total = with_term_frequencies(text, |counts, _| {
        out = counts
            .iter()
            .map(|&(term, n)| (term.to_string(), n))
            .collect();
    });
    (out, total)
}

/// [`term_frequencies`] lent to `visit` as slices, without a string per
/// term, with the total number of terms (also returned).
pub(crate) fn with_term_frequencies(text: &str, visit: impl FnOnce(&[(&str, u32)], u32)) -> u32 {
    let normalised = normalise(text);
    let mut all = Vec::new();
    for_each_term(&normalised, |term| all.push(term));
    let total = u32::try_from(all.len()).unwrap_or(u32::MAX);
    // Byte order, as `String`'s `Ord`.
    all.sort_unstable();
    let mut counts: Vec<(&str, u32)> = Vec::new();
    for term in all {
        match counts.last_mut() {
            Some((last, n)) if *last == term => *n = n.saturating_add(1),
            _ => counts.push((term, 1)),
        }
    }
    visit(&counts, total);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shared(a: &str, b: &str) -> Vec<String> {
        let b = terms(b);
        let mut s: Vec<String> = terms(a).into_iter().filter(|t| b.contains(t)).collect();
        s.sort();
        s.dedup();
        s
    }

    #[test]
    fn particles_share_the_stem_bigram() {
        assert_eq!(terms("서울"), ["서울"]);
        assert_eq!(terms("서울에서"), ["서울", "울에", "에서"]);
        assert_eq!(shared("서울에서", "서울"), ["서울"]);
        assert_eq!(shared("서울은 춥다", "서울"), ["서울"]);
    }

    #[test]
    fn two_syllable_query_is_one_bigram_found_inside_longer_runs() {
        assert_eq!(terms("날씨"), ["날씨"]);
        assert!(terms("오늘날씨가 좋다").contains(&"날씨".to_string()));
        assert!(terms("역사는").contains(&"역사".to_string()));
    }

    #[test]
    fn one_syllable_run_is_kept_as_itself() {
        assert_eq!(terms("차 한 잔"), ["차", "한", "잔"]);
        assert_eq!(terms("2024년"), ["2024", "년"]);
    }

    #[test]
    fn spacing_variants_share_terms_without_cross_space_bigrams() {
        assert_eq!(terms("미세 먼지"), ["미세", "먼지"]);
        assert_eq!(terms("미세먼지"), ["미세", "세먼", "먼지"]);
        assert_eq!(shared("미세 먼지", "미세먼지"), ["먼지", "미세"]);
        // No bigram is made across the space or punctuation.
        assert!(!terms("서울에서 날씨").contains(&"서날".to_string()));
        assert_eq!(terms("가,나"), ["가", "나"]);
    }

    #[test]
    fn mixed_model_name_and_korean() {
        assert_eq!(terms("HCX-005 모델"), ["hcx", "005", "hcx-005", "모델"]);
        assert_eq!(terms("HCX-005를"), ["hcx", "005", "hcx-005", "를"]);
        assert_eq!(terms("HCX모델"), ["hcx", "모델"]);
        assert_eq!(terms("hcx 005"), ["hcx", "005"]);
        assert_eq!(shared("HCX-005", "hcx"), ["hcx"]);
    }

    #[test]
    fn compounds_need_a_word_on_both_sides() {
        assert_eq!(
            terms("gpt-4o and snake_case v3.5"),
            [
                "gpt",
                "4o",
                "gpt-4o",
                "and",
                "snake",
                "case",
                "snake_case",
                "v3",
                "5",
                "v3.5"
            ]
        );
        assert_eq!(terms("a-b-c"), ["a", "b", "c", "a-b-c"]);
        // Sentence-final dots, dashes before spaces and doubled connectors split.
        assert_eq!(terms("the model. next"), ["the", "model", "next"]);
        assert_eq!(terms("well - done"), ["well", "done"]);
        assert_eq!(terms("a--b"), ["a", "b"]);
        assert_eq!(terms("-x-"), ["x"]);
    }

    #[test]
    fn nfkc_and_lowercase() {
        // Full-width Latin and digits.
        assert_eq!(terms("ＨＣＸ－００５"), terms("hcx-005"));
        assert_eq!(terms("Ｈｅｌｌｏ"), ["hello"]);
        // Ligature and circled digit are compatibility characters.
        assert_eq!(terms("ﬁle ①"), ["file", "1"]);
        // Half-width katakana and decomposed Hangul meet their composed forms.
        assert_eq!(terms("ｶﾀｶﾅ"), terms("カタカナ"));
        let decomposed: String = "날씨".nfd().collect();
        assert_eq!(terms(&decomposed), ["날씨"]);
        assert_eq!(terms("ÉCOLE école"), ["école", "école"]);
    }

    #[test]
    fn cjk_and_kana_are_bigrams() {
        assert_eq!(terms("東京タワー"), ["東京", "京タ", "タワ", "ワー"]);
        assert_eq!(terms("北京"), ["北京"]);
    }

    #[test]
    fn punctuation_and_symbols_only_separate() {
        assert!(terms("").is_empty());
        assert!(terms("  ... !!! — ** ").is_empty());
        assert_eq!(terms("(서울)"), ["서울"]);
        assert_eq!(terms("C++ & Rust"), ["c", "rust"]);
    }

    #[test]
    fn term_frequencies_count_and_sort() {
        let (tf, total) = term_frequencies("서울 서울에서 Seoul seoul");
        assert_eq!(total, 6);
        assert_eq!(
            tf,
            [
                ("seoul".to_string(), 2),
                ("서울".to_string(), 2),
                ("에서".to_string(), 1),
                ("울에".to_string(), 1),
            ]
        );
        assert_eq!(term_frequencies("  "), (Vec::new(), 0));
    }

    proptest! {
        #[test]
        fn terms_are_non_empty_normalised_and_stable(text in "[a-zA-Z0-9ａ-ｚ가-힣 .\\-_,\n]{0,40}") {
            let ts = terms(&text);
            for t in &ts {
                prop_assert!(!t.is_empty());
                prop_assert!(!t.chars().any(char::is_whitespace));
                prop_assert_eq!(&t.to_lowercase(), t);
            }
            // Normalising first changes nothing: index and query agree.
            let normalised: String = text.nfkc().collect();
            prop_assert_eq!(terms(&normalised), ts.clone());
            let (tf, total) = term_frequencies(&text);
            prop_assert_eq!(total as usize, ts.len());
            prop_assert_eq!(tf.iter().map(|(_, n)| *n as usize).sum::<usize>(), ts.len());
            prop_assert!(tf.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
