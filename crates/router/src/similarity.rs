//! Similarity to example queries by character bigrams.
//!
//! Korean words carry their particles and endings attached ("서울의", "알려줘요"),
//! so word-level comparison needs a morphological analyser; overlapping
//! two-character grams of the compact text (letters and digits only) compare
//! stems without one. The score of a query against one example is the Jaccard
//! index of their gram sets; a domain takes its best example.

use rustc_hash::FxHashMap;

/// The distinct bigrams of a compact normalised text, letters and digits only,
/// sorted. A text of one such character is its own gram.
pub(crate) fn grams(compact: &str) -> Vec<u64> {
    let mut chars = compact.chars().filter(|&c| is_alphanumeric(c));
    let Some(first) = chars.next() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(compact.len() / 2);
    let mut prev = first;
    for c in chars {
        out.push((u64::from(prev as u32) << 32) | u64::from(c as u32));
        prev = c;
    }
    if out.is_empty() {
        out.push(u64::from(first as u32));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `char::is_alphanumeric`, answering Hangul syllables (most of a Korean
/// query) without its table search.
fn is_alphanumeric(c: char) -> bool {
    crate::normalize::is_hangul_syllable(c) || c.is_alphanumeric()
}

/// An inverted index from bigram to the examples that contain it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExampleIndex {
    postings: FxHashMap<u64, Vec<u32>>,
    /// Per example: its domain and its number of grams.
    examples: Vec<(u32, u32)>,
}

impl ExampleIndex {
    pub fn add(&mut self, domain: usize, compact: &str) {
        let id = self.examples.len() as u32;
        let g = grams(compact);
        self.examples.push((domain as u32, g.len() as u32));
        for gram in g {
            self.postings.entry(gram).or_default().push(id);
        }
    }

    /// Per domain: the best Jaccard index of the query against its examples, in
    /// thousandths, and that example's position in the index.
    pub fn best(&self, query_grams: &[u64], domains: usize) -> Vec<(u32, u32)> {
        let mut best = vec![(0u32, u32::MAX); domains];
        if query_grams.is_empty() || self.examples.is_empty() {
            return best;
        }
        let mut shared = vec![0u32; self.examples.len()];
        for gram in query_grams {
            if let Some(list) = self.postings.get(gram) {
                for &e in list {
                    shared[e as usize] += 1;
                }
            }
        }
        let q = query_grams.len() as u32;
        for (e, &inter) in shared.iter().enumerate() {
            if inter == 0 {
                continue;
            }
            let (domain, size) = self.examples[e];
            let union = q + size - inter;
            // Integer thousandths keep scores exact and ties stable. The score,
            // rounded, is `(inter * 1000 + union / 2) / union`; it beats the
            // slot's exactly when the dividend reaches `(slot + 1) * union`,
            // which spares a division for each example that does not.
            let slot = &mut best[domain as usize];
            if inter * 1000 + union / 2 >= (slot.0 + 1) * union {
                *slot = ((inter * 1000 + union / 2) / union, e as u32);
            }
        }
        best
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }
}
