//! Splitting a document into passages that fit a token budget.
//!
//! The split works on byte ranges of the original text and every passage is a
//! (trimmed) slice of it, so formatting inside a passage — markdown, line breaks,
//! the blank lines between packed paragraphs — is kept exactly, and nothing but
//! whitespace between passages can be lost.
//!
//! Token counts are not additive (`count(a + b)` need not equal
//! `count(a) + count(b)`), so every candidate passage is counted as a whole
//! rather than summing its parts.

use std::ops::Range;

/// Splits `text` into passages of at most `max_tokens` tokens as counted by
/// `count`, in order.
///
/// Paragraphs (separated by blank lines) are the preferred unit; adjacent
/// paragraphs are packed into one passage while the whole still fits. A
/// paragraph too long on its own is split into sentences (after `.`, `!`, `?`
/// or `…` followed by whitespace — which covers Korean endings such as `다.` —
/// after `。`, `！`, `？` anywhere, and at every line break), which are packed the
/// same way. Only a sentence too long on its own is hard-split, at the longest
/// prefix that fits, moved back to a whitespace when one lies in the second
/// half of that prefix, and otherwise on a character boundary (Korean and CJK
/// text without spaces).
///
/// Passages are trimmed and never empty, and together they hold all the
/// non-whitespace text in order. A single character that alone exceeds the
/// limit becomes a passage of its own. A `max_tokens` of 0 is treated as 1.
pub fn split_passages(text: &str, max_tokens: usize, count: &dyn Fn(&str) -> usize) -> Vec<String> {
    let max = max_tokens.max(1);
    let fits = |range: &Range<usize>| count(&text[range.clone()]) <= max;
    let mut pieces = Vec::new();
    for paragraph in paragraphs(text) {
        if fits(&paragraph) {
            pieces.push(paragraph);
            continue;
        }
        for sentence in sentences(text, paragraph) {
            if fits(&sentence) {
                pieces.push(sentence);
            } else {
                hard_split(text, sentence, max, count, &mut pieces);
            }
        }
    }
    pack(text, &pieces, max, count)
}

/// `range` without leading and trailing whitespace, or `None` if nothing is left.
fn trimmed(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let slice = &text[range.clone()];
    let start = range.start + (slice.len() - slice.trim_start().len());
    let end = range.start + slice.trim_end().len();
    (start < end).then_some(start..end)
}

/// The trimmed ranges of the paragraphs: maximal runs of lines that are not
/// blank (a line of only whitespace counts as blank).
fn paragraphs(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut current: Option<Range<usize>> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_range = offset..offset + line.len();
        offset = line_range.end;
        if line.trim().is_empty() {
            out.extend(current.take().and_then(|r| trimmed(text, r)));
        } else {
            let start = current.map_or(line_range.start, |r| r.start);
            current = Some(start..line_range.end);
        }
    }
    out.extend(current.and_then(|r| trimmed(text, r)));
    out
}

/// Ends a sentence when followed by whitespace or the end of the text.
fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '．') || is_full_stop(c)
}

/// Ends a sentence wherever it appears: CJK text puts no space after it.
fn is_full_stop(c: char) -> bool {
    matches!(c, '。' | '｡' | '！' | '？')
}

/// Closing quotes and brackets that belong to the sentence they follow.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '」' | '』' | '》' | '〉' | '）' | '】'
    )
}

/// The trimmed, non-empty sentence ranges of the paragraph at `range`.
fn sentences(text: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let base = range.start;
    let slice = &text[range];
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = slice.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = if c == '\n' {
            Some(i + 1)
        } else if is_terminal(c) {
            // Take "?!", "..." and a closing quote or bracket along.
            let mut end = i + c.len_utf8();
            let mut strong = is_full_stop(c);
            while let Some(&(j, d)) = chars.peek() {
                if !(is_terminal(d) || is_closer(d)) {
                    break;
                }
                strong |= is_full_stop(d);
                end = j + d.len_utf8();
                chars.next();
            }
            // "3.5", "e.g.x" and "wait...what" do not end a sentence.
            let at_break = chars.peek().is_none_or(|&(_, d)| d.is_whitespace());
            (strong || at_break).then_some(end)
        } else {
            None
        };
        if let Some(end) = end {
            out.extend(trimmed(text, base + start..base + end));
            start = end;
        }
    }
    out.extend(trimmed(text, base + start..base + slice.len()));
    out
}

/// The byte length of the first `n` characters of `s` (all of `s` if shorter).
fn char_prefix(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// Cuts the sentence at `range` (which does not fit) into pieces that fit,
/// appending them to `out`.
fn hard_split(
    text: &str,
    range: Range<usize>,
    max: usize,
    count: &dyn Fn(&str) -> usize,
    out: &mut Vec<Range<usize>>,
) {
    let mut start = range.start;
    while start < range.end {
        let rest = &text[start..range.end];
        // Longest fitting prefix, in characters. Galloping from the start keeps
        // the cost proportional to the piece, never to a huge unpunctuated
        // remainder (counting the whole remainder each time would be quadratic).
        // One character is taken even if it does not fit, so the loop ends.
        let fits = |chars: usize| count(&rest[..char_prefix(rest, chars)]) <= max;
        let (mut lo, mut hi) = (1, 1);
        while fits(hi) {
            if char_prefix(rest, hi) == rest.len() {
                out.push(start..range.end);
                return;
            }
            lo = hi;
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut cut = char_prefix(rest, lo);
        // Prefer ending at a word boundary, unless that would waste more than
        // half of the room (a long word near the start).
        let word_end = if rest[cut..].starts_with(char::is_whitespace) {
            None // already at a word's end
        } else {
            rest[..cut]
                .rfind(char::is_whitespace)
                .map(|ws| rest[..ws].trim_end().len())
        };
        // Token counts are not strictly monotone in the prefix, so recheck.
        if let Some(end) = word_end.filter(|&e| e > 0 && e >= cut / 2 && count(&rest[..e]) <= max) {
            cut = end;
        }
        out.extend(trimmed(text, start..start + cut));
        let after = &rest[cut..];
        start += cut + (after.len() - after.trim_start().len());
    }
}

/// Greedily joins consecutive pieces while the joined slice of `text` fits.
fn pack(
    text: &str,
    pieces: &[Range<usize>],
    max: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Range<usize>> = None;
    for piece in pieces {
        current = Some(match current {
            None => piece.clone(),
            Some(c) if count(&text[c.start..piece.end]) <= max => c.start..piece.end,
            Some(c) => {
                out.push(text[c].to_string());
                piece.clone()
            }
        });
    }
    out.extend(current.map(|c| text[c].to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn non_ws(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// The documented invariants, for any counter.
    fn check(text: &str, max: usize, count: &dyn Fn(&str) -> usize) -> Vec<String> {
        let passages = split_passages(text, max, count);
        for p in &passages {
            assert!(!p.is_empty(), "empty passage in {passages:?}");
            assert_eq!(p.trim(), p, "untrimmed passage {p:?}");
            assert!(
                count(p) <= max.max(1) || p.chars().count() == 1,
                "passage {p:?} has {} > {max} tokens",
                count(p)
            );
            assert!(
                text.contains(p.as_str()),
                "{p:?} is not a slice of the text"
            );
        }
        let joined: String = passages.iter().map(|p| non_ws(p)).collect();
        assert_eq!(joined, non_ws(text), "text lost or reordered");
        passages
    }

    #[test]
    fn empty_and_whitespace_give_nothing() {
        assert!(split_passages("", 10, &chars).is_empty());
        assert!(split_passages(" \n\n\t \r\n", 10, &chars).is_empty());
    }

    #[test]
    fn small_paragraphs_are_packed_keeping_the_original_text() {
        let text = "\n# Title\n\nFirst para.\n\n  \n\nSecond para.\n";
        assert_eq!(
            check(text, 1000, &chars),
            ["# Title\n\nFirst para.\n\n  \n\nSecond para."]
        );
    }

    #[test]
    fn paragraph_boundaries_come_first() {
        let text = "aaaa bbbb.\n\ncccc dddd.\n\neeee ffff.";
        // Two paragraphs fit (24 chars), three do not; no paragraph is cut.
        assert_eq!(
            check(text, 24, &chars),
            ["aaaa bbbb.\n\ncccc dddd.", "eeee ffff."]
        );
        // A paragraph that fits alone starts a new passage rather than being
        // split across two.
        assert_eq!(
            check(text, 12, &chars),
            ["aaaa bbbb.", "cccc dddd.", "eeee ffff."]
        );
    }

    #[test]
    fn long_paragraph_splits_at_sentences() {
        let text = "오늘은 날씨가 맑다. 내일은 비가 온다. 모레는 눈이 온다!\n다음 줄";
        let passages = check(text, 3, &words);
        assert_eq!(
            passages,
            [
                "오늘은 날씨가 맑다.",
                "내일은 비가 온다.",
                "모레는 눈이 온다!",
                "다음 줄"
            ]
        );
        // Sentences are packed while they fit.
        assert_eq!(
            check(text, 6, &words),
            [
                "오늘은 날씨가 맑다. 내일은 비가 온다.",
                "모레는 눈이 온다!\n다음 줄"
            ]
        );
    }

    #[test]
    fn sentence_ends_and_non_ends() {
        fn ranges(t: &str) -> Vec<&str> {
            sentences(t, 0..t.len())
                .into_iter()
                .map(|r| &t[r])
                .collect()
        }
        assert_eq!(
            ranges("v3.5 is out. Yes?! \"Done.\" Next"),
            ["v3.5 is out.", "Yes?!", "\"Done.\"", "Next"]
        );
        assert_eq!(ranges("東京です。大阪です。"), ["東京です。", "大阪です。"]);
        assert_eq!(ranges("wait...what"), ["wait...what"]);
        assert_eq!(ranges("그렇다.그래서"), ["그렇다.그래서"]);
        assert_eq!(ranges("했다\n그리고 했다."), ["했다", "그리고 했다."]);
        assert_eq!(ranges("(괄호 안이다.) 다음"), ["(괄호 안이다.)", "다음"]);
    }

    #[test]
    fn hard_split_prefers_whitespace() {
        let text = "alpha beta gamma delta epsilon";
        let passages = check(text, 12, &chars);
        assert_eq!(passages, ["alpha beta", "gamma delta", "epsilon"]);
    }

    #[test]
    fn hard_split_without_spaces_cuts_characters() {
        let text = "가나다라마바사아자차카타파하";
        let passages = check(text, 5, &chars);
        assert_eq!(passages, ["가나다라마", "바사아자차", "카타파하"]);
        // A long word near the start is not left alone just to reach a space.
        let passages = check("a bcdefghijklmnop", 8, &chars);
        assert_eq!(passages, ["a bcdefg", "hijklmno", "p"]);
    }

    #[test]
    fn a_character_over_the_limit_stands_alone() {
        // Each Hangul syllable is 3 bytes; a limit of 2 cannot hold one.
        let passages = check("가나 다", 2, &|s: &str| s.len());
        assert_eq!(passages, ["가", "나", "다"]);
        // A zero limit behaves as one.
        assert_eq!(check("ab", 0, &chars), ["a", "b"]);
    }

    #[test]
    fn real_tokenizer_on_korean_text() {
        let model = sluice_core::Profiles::builtin()
            .model("HCX-005")
            .expect("HCX-005 profile");
        let tokenizer = model.tokenizer();
        let count = |s: &str| tokenizer.count(s);
        let paragraph = "서울의 미세먼지 농도가 오늘 오후부터 높아질 것으로 보인다. \
            기상청은 외출을 자제하라고 당부했다. HCX-005 모델은 이 내용을 요약한다.\n";
        let text = format!(
            "# 날씨\n\n{}\n\n{}",
            paragraph.repeat(4),
            "짧은 문단.\n\n".repeat(5)
        );
        for max in [8, 20, 50, 200, 10_000] {
            let passages = check(&text, max, &count);
            if max == 10_000 {
                assert_eq!(passages, [text.trim()]);
            }
        }
    }

    #[test]
    fn a_huge_unpunctuated_sentence_splits_in_linear_time() {
        let text = "가나다라마바사아자차".repeat(30_000);
        let passages = check(&text, 100, &chars);
        assert_eq!(passages.len(), 3_000);
    }

    proptest! {
        #[test]
        fn invariants_hold(
            text in "[a-z가-힣 .!?。\n\t\r　\")]{0,120}",
            max in 0usize..30,
        ) {
            check(&text, max, &chars);
            check(&text, max, &words);
            check(&text, max, &|s: &str| s.len());
        }
    }
}
