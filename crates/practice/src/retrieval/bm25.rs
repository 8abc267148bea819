//! Okapi BM25, computed in Rust so every database ranks identically.

/// BM25 parameters: `k1` saturates term frequency, `b` sets how much a passage's
/// length (in [`terms`](super::terms)) is normalised against the average.
/// The default is the usual `k1 = 1.2`, `b = 0.75`.
#[derive(Debug, Clone, Copy)]
pub struct Bm25 {
    /// Term-frequency saturation; 0 ignores repeats entirely.
    pub k1: f64,
    /// Length normalisation, from 0 (none) to 1 (full).
    pub b: f64,
}

impl Default for Bm25 {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

impl Bm25 {
    /// The inverse document frequency of a term found in `df` of `n_docs`
    /// passages: `ln(1 + (n - df + 0.5) / (df + 0.5))`, the Lucene form, which is
    /// positive for every `df` (the classic form goes negative for terms in more
    /// than half the passages, which would make a match lower a score).
    ///
    /// `df` is clamped to `n_docs`, so counts read at slightly different moments
    /// cannot produce a negative or NaN weight.
    pub fn idf(&self, df: u64, n_docs: u64) -> f64 {
        let df = df.min(n_docs) as f64;
        let n = n_docs as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The score contributed by one query term to one passage: the term occurs
    /// `tf` times in the passage, which has `doc_len` terms, in `df` of `n_docs`
    /// passages whose average length is `avg_len`.
    ///
    /// A `tf` of 0 scores 0. A non-positive or non-finite `avg_len` (an empty
    /// collection) disables length normalisation rather than dividing by zero.
    pub fn term_score(&self, tf: u32, df: u64, n_docs: u64, doc_len: u32, avg_len: f64) -> f64 {
        if tf == 0 {
            return 0.0;
        }
        let tf = f64::from(tf);
        let relative_len = if avg_len.is_finite() && avg_len > 0.0 {
            f64::from(doc_len) / avg_len
        } else {
            1.0
        };
        let norm = self.k1 * (1.0 - self.b + self.b * relative_len);
        self.idf(df, n_docs) * tf * (self.k1 + 1.0) / (tf + norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parameters() {
        let bm = Bm25::default();
        assert_eq!((bm.k1, bm.b), (1.2, 0.75));
    }

    #[test]
    fn idf_matches_the_lucene_formula_and_stays_positive() {
        let bm = Bm25::default();
        let expected = (1.0f64 + (10.0 - 2.0 + 0.5) / (2.0 + 0.5)).ln();
        assert!((bm.idf(2, 10) - expected).abs() < 1e-12);
        for df in 0..=12 {
            let idf = bm.idf(df, 10);
            assert!(idf.is_finite() && idf > 0.0, "df {df}: {idf}");
        }
        // Clamped: a df above n behaves like df = n.
        assert_eq!(bm.idf(50, 10), bm.idf(10, 10));
        assert!(bm.idf(0, 0).is_finite());
    }

    #[test]
    fn rarer_term_scores_higher() {
        let bm = Bm25::default();
        let rare = bm.term_score(1, 2, 100, 20, 20.0);
        let common = bm.term_score(1, 60, 100, 20, 20.0);
        assert!(rare > common, "{rare} <= {common}");
        assert!(common > 0.0);
    }

    #[test]
    fn longer_passage_scores_lower_for_the_same_tf() {
        let bm = Bm25::default();
        let short = bm.term_score(2, 5, 100, 10, 30.0);
        let long = bm.term_score(2, 5, 100, 90, 30.0);
        assert!(short > long, "{short} <= {long}");
    }

    #[test]
    fn term_frequency_saturates() {
        let bm = Bm25::default();
        let scores: Vec<f64> = (1..=50)
            .map(|tf| bm.term_score(tf, 5, 100, 30, 30.0))
            .collect();
        assert!(scores.windows(2).all(|w| w[1] > w[0]));
        // Never more than idf * (k1 + 1).
        let cap = bm.idf(5, 100) * (bm.k1 + 1.0);
        assert!(scores.iter().all(|&s| s < cap));
        // At average length, tf = 1 scores exactly idf.
        assert!((scores[0] - bm.idf(5, 100)).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs() {
        let bm = Bm25::default();
        assert_eq!(bm.term_score(0, 5, 100, 30, 30.0), 0.0);
        for avg in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let s = bm.term_score(1, 5, 100, 30, avg);
            assert!((s - bm.idf(5, 100)).abs() < 1e-12, "avg {avg}: {s}");
        }
        // b = 0: length does not matter.
        let flat = Bm25 { k1: 1.2, b: 0.0 };
        assert_eq!(
            flat.term_score(1, 5, 100, 5, 30.0),
            flat.term_score(1, 5, 100, 500, 30.0)
        );
    }
}
