//! OpenAI's published split patterns, and the `regex`-based pre-tokenizer that the
//! hand-written scanners in [`crate::scan`] are tested against.
//!
//! The patterns contain the alternative `\s+(?!\S)` (a whitespace run that is not
//! followed by a non-space). The `regex` crate has no look-around, so the reference
//! compiles them without it and emulates the look-ahead: when a match is a run of
//! non-newline whitespace of two or more characters followed by a non-space, the
//! last whitespace character is given back to the next piece. That is exactly what
//! a backtracking engine does for `\s+(?!\S)` followed by the fallback `\s+`.

/// The original `cl100k_base` pattern (with the look-ahead), as published.
pub(crate) const CL100K_PATTERN_ORIGINAL: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The original `o200k_base` pattern (with the look-ahead), as published.
pub(crate) const O200K_PATTERN_ORIGINAL: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+(?!\S)",
    r"|\s+",
);

/// The reference pre-tokenizer (tests only).
#[cfg(test)]
pub(crate) mod reference {
    use regex::Regex;

    /// The split pattern of a BPE encoding, run by the `regex` crate: the reference
    /// the hand-written scanners in [`crate::scan`] are tested against.
    #[derive(Debug)]
    pub(crate) struct Pretokenizer {
        regex: Regex,
    }

    /// A published pattern without its `\s+(?!\S)` alternative, which
    /// [`Pretokenizer::pieces`] emulates.
    pub(crate) fn without_lookahead(pattern: &str) -> String {
        let stripped = pattern.replace(r"|\s+(?!\S)", "");
        assert_ne!(
            stripped, pattern,
            "the pattern has the look-ahead alternative"
        );
        stripped
    }

    impl Pretokenizer {
        pub(crate) fn new(pattern: &str) -> Self {
            Self {
                regex: Regex::new(pattern).expect("built-in pattern is valid"),
            }
        }

        /// Calls `f` with each piece of `text`, in order. Stops early when `f` returns
        /// `false`.
        #[inline]
        pub(crate) fn pieces(&self, text: &str, mut f: impl FnMut(&str) -> bool) {
            let mut at = 0;
            while at < text.len() {
                let Some(m) = self.regex.find_at(text, at) else {
                    break;
                };
                let mut end = m.end();
                let piece = &text[m.start()..end];
                if end < text.len() && ends_in_lookahead_run(piece) {
                    let next = text[end..].chars().next().expect("not at end");
                    if !next.is_whitespace() {
                        let last = piece.chars().next_back().expect("non-empty");
                        end -= last.len_utf8();
                    }
                }
                if !f(&text[m.start()..end]) {
                    return;
                }
                at = end;
            }
        }
    }

    /// True for a run of two or more whitespace characters with no newline at its end:
    /// the only kind of match that `\s+(?!\S)` would have shortened.
    #[inline]
    fn ends_in_lookahead_run(piece: &str) -> bool {
        let mut chars = piece.chars();
        let Some(last) = chars.next_back() else {
            return false;
        };
        last.is_whitespace()
            && last != '\n'
            && last != '\r'
            && chars.next_back().is_some()
            && piece.chars().all(char::is_whitespace)
    }

    mod tests {
        use super::*;

        fn split(p: &Pretokenizer, text: &str) -> Vec<String> {
            let mut out = Vec::new();
            p.pieces(text, |s| {
                out.push(s.to_string());
                true
            });
            out
        }

        #[test]
        fn lookahead_emulation() {
            let p = Pretokenizer::new(&without_lookahead(
                crate::pretokenize::CL100K_PATTERN_ORIGINAL,
            ));
            assert_eq!(split(&p, "a   b"), ["a", "  ", " b"]);
            assert_eq!(split(&p, "a b"), ["a", " b"]);
            assert_eq!(split(&p, "a   "), ["a", "   "]);
            assert_eq!(split(&p, "a \n\n b"), ["a", " \n\n", " b"]);
            assert_eq!(split(&p, "안녕하세요  세계"), ["안녕하세요", " ", " 세계"]);
            assert_eq!(split(&p, "x\t\t1"), ["x", "\t", "\t", "1"]);
        }
    }
}
