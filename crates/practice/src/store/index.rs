//! The in-memory inverted index of each knowledge base, and the cache of them.
//!
//! Why in memory: reading a term's postings through the database costs a few
//! microseconds per row, so a query of common Korean bigrams over 10,000
//! passages took 7-23 ms on SQLite even with the postings clustered by term
//! (BENCHMARKS.md, "Retrieval"); scoring from memory takes well under a
//! millisecond. The database stays the source of truth: the base's `revision`,
//! bumped in the same transaction as every change to its passages, is read on
//! each search, and an index is only used at the revision it was built for.
//!
//! Why built from the passages' text rather than stored postings: one posting
//! row per (term, passage) made an 8 MiB Korean upload write 1.9 M rows into a
//! B-tree keyed by term, which took most of a minute under SQLite's write lock,
//! and reading them back for the first search took 10-25 s (issue 23). The
//! terms are a pure function of the text ([`retrieval::term_frequencies`], the
//! same code that reads queries), and computing them is far cheaper than
//! reading them as rows: a base is rebuilt from its passages in well under a
//! second per 8 MiB (BENCHMARKS.md, "A big upload").
//!
//! An index is a list of immutable [`Segment`]s. An upload builds a segment
//! from its own passages while it is written, and the replica that wrote it
//! adds that segment to the cached index in place of a rebuild; when there are
//! more than [`MAX_SEGMENTS`], they are merged into one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use crate::retrieval::{self, Bm25};

/// Segments an index may have before they are merged into one. Each query
/// term is looked up once per segment, so more segments mean slower searches;
/// merging costs time proportional to the whole base.
pub(crate) const MAX_SEGMENTS: usize = 8;

/// One passage in a term's posting list.
#[derive(Debug, Clone, Copy)]
struct PostingEntry {
    passage_id: i64,
    tf: u32,
    len: u32,
}

/// The postings of a set of passages, and their BM25 statistics.
#[derive(Debug, Default)]
pub(crate) struct Segment {
    /// FxHash: the keys are short terms we produced ourselves (not
    /// attacker-chosen in a way that matters for a per-base map), and hashing
    /// them is most of the cost of building an index.
    postings: FxHashMap<Box<str>, Vec<PostingEntry>>,
    passages: u64,
    terms: u64,
}

impl Segment {
    /// Indexes one passage; returns its length in terms.
    pub(crate) fn add(&mut self, passage_id: i64, text: &str) -> u32 {
        let postings = &mut self.postings;
        let len = retrieval::with_term_frequencies(text, |terms, len| {
            for &(term, tf) in terms {
                let entry = PostingEntry {
                    passage_id,
                    tf,
                    len,
                };
                match postings.get_mut(term) {
                    Some(list) => list.push(entry),
                    None => {
                        postings.insert(Box::from(term), vec![entry]);
                    }
                }
            }
        });
        self.passages += 1;
        self.terms += u64::from(len);
        len
    }

    /// Replaces provisional passage ids, which are positions in `ids`, with
    /// `ids`' values: an upload indexes its passages before the database has
    /// given them ids.
    pub(crate) fn renumber(&mut self, ids: &[i64]) {
        for list in self.postings.values_mut() {
            for entry in list {
                entry.passage_id = ids[entry.passage_id as usize];
            }
        }
    }

    /// All of `segments` in one.
    fn merge(segments: &[Arc<Segment>]) -> Segment {
        let largest = segments.iter().map(|s| s.postings.len()).max().unwrap_or(0);
        let mut merged = Segment {
            postings: FxHashMap::with_capacity_and_hasher(largest, Default::default()),
            passages: 0,
            terms: 0,
        };
        for segment in segments {
            for (term, list) in &segment.postings {
                match merged.postings.get_mut(term) {
                    Some(into) => into.extend_from_slice(list),
                    None => {
                        merged.postings.insert(term.clone(), list.clone());
                    }
                }
            }
            merged.passages += segment.passages;
            merged.terms += segment.terms;
        }
        merged
    }
}

/// A knowledge base's inverted index, as of one revision.
#[derive(Debug)]
pub(crate) struct KnowledgeIndex {
    revision: i64,
    segments: Vec<Arc<Segment>>,
}

impl KnowledgeIndex {
    /// The index of a base at `revision`, from all of its passages.
    pub(crate) fn new(revision: i64, segment: Segment) -> Self {
        Self::from_segments(revision, vec![segment])
    }

    /// The index of a base at `revision`, from segments that together hold
    /// each of its passages once.
    pub(crate) fn from_segments(revision: i64, segments: Vec<Segment>) -> Self {
        Self {
            revision,
            segments: segments.into_iter().map(Arc::new).collect(),
        }
    }

    /// How many segments it has.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The same index with its segments merged into one.
    pub(crate) fn merged(&self) -> Self {
        Self::new(self.revision, Segment::merge(&self.segments))
    }
}

/// The `k` passages of `indexes` that best match `terms` (sorted, without
/// repeats), by BM25 over all of them together: best first, ties to the older
/// passage.
///
/// Each passage is in one segment of one index, and its score is summed over
/// `terms` in their sorted order, so the floating-point result is the same
/// whatever backend or cache state produced the index.
pub(crate) fn top_passages(
    indexes: &[Arc<KnowledgeIndex>],
    terms: &[String],
    k: usize,
) -> Vec<(i64, f64)> {
    let segments: Vec<&Segment> = indexes
        .iter()
        .flat_map(|i| i.segments.iter().map(Arc::as_ref))
        .collect();
    let n_docs: u64 = segments.iter().map(|s| s.passages).sum();
    let total_len: u64 = segments.iter().map(|s| s.terms).sum();
    if n_docs == 0 || k == 0 {
        return Vec::new();
    }
    let bm25 = Bm25::default();
    let avg_len = total_len as f64 / n_docs as f64;
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for term in terms {
        let lists: Vec<&[PostingEntry]> = segments
            .iter()
            .filter_map(|s| s.postings.get(term.as_str()).map(Vec::as_slice))
            .collect();
        let df: u64 = lists.iter().map(|l| l.len() as u64).sum();
        for entry in lists.into_iter().flatten() {
            let s = bm25.term_score(entry.tf, df, n_docs, entry.len, avg_len);
            *scores.entry(entry.passage_id).or_default() += s;
        }
    }
    let mut scores: Vec<(i64, f64)> = scores.into_iter().collect();
    scores.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores.truncate(k);
    scores
}

/// The loaded indexes, by base id; at most [`IndexCache::CAPACITY`] bases,
/// the least recently used dropped first.
#[derive(Debug, Default)]
pub(crate) struct IndexCache {
    /// A use clock, and per base id the clock of its last use and its index.
    entries: Mutex<(u64, CacheEntries)>,
    /// Per base, held while its index is built or changed, so that concurrent
    /// searches after a write build it once, and a search waits for the
    /// writer's own update rather than rebuilding.
    building: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

type CacheEntries = HashMap<i64, (u64, Arc<KnowledgeIndex>)>;

/// The right to build or change one base's index, from [`IndexCache::lock`].
pub(crate) struct BuildGuard<'a> {
    cache: &'a IndexCache,
    id: i64,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for BuildGuard<'_> {
    fn drop(&mut self) {
        let mut building = self
            .cache
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The map's handle and ours: nobody else waits, so the entry goes.
        if building
            .get(&self.id)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            building.remove(&self.id);
        }
        drop(building);
        self.guard.take();
    }
}

impl IndexCache {
    const CAPACITY: usize = 64;

    /// The cached index of base `id` at `revision`.
    pub(crate) fn get(&self, id: i64, revision: i64) -> Option<Arc<KnowledgeIndex>> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        let (used, index) = entries.get_mut(&id)?;
        if index.revision != revision {
            return None;
        }
        *used = *clock;
        Some(Arc::clone(index))
    }

    /// Caches `index` for base `id`, unless a newer revision is cached.
    pub(crate) fn put(&self, id: i64, index: Arc<KnowledgeIndex>) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        if entries
            .get(&id)
            .is_some_and(|(_, cached)| cached.revision > index.revision)
        {
            return;
        }
        if entries.len() >= Self::CAPACITY && !entries.contains_key(&id) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| *id)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(id, (*clock, index));
    }

    /// After a write that added `segment`'s passages to base `id` and moved
    /// its revision to `revision`: the index at `revision`, when the cache
    /// holds the one just before it (or the base was empty, revision 0),
    /// cached and returned. Otherwise the next search rebuilds it.
    pub(crate) fn extend(
        &self,
        id: i64,
        revision: i64,
        segment: Segment,
    ) -> Option<Arc<KnowledgeIndex>> {
        let mut segments = if revision == 1 {
            Vec::new()
        } else {
            self.get(id, revision - 1)?.segments.clone()
        };
        segments.push(Arc::new(segment));
        let index = Arc::new(KnowledgeIndex { revision, segments });
        self.put(id, Arc::clone(&index));
        Some(index)
    }

    /// Drops base `id`'s index (the base is gone).
    pub(crate) fn forget(&self, id: i64) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.remove(&id);
    }

    /// Waits for the right to build or change base `id`'s index.
    pub(crate) async fn lock(&self, id: i64) -> BuildGuard<'_> {
        let mutex = {
            let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(building.entry(id).or_default())
        };
        let guard = mutex.lock_owned().await;
        BuildGuard {
            cache: self,
            id,
            guard: Some(guard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(passages: &[(i64, &str)]) -> Segment {
        let mut s = Segment::default();
        for (id, text) in passages {
            s.add(*id, text);
        }
        s
    }

    const TEXTS: [&str; 5] = [
        "서울은 한국의 수도이다",
        "부산은 항구 도시이다",
        "서울에서 부산까지 기차로 간다",
        "HCX-005 모델은 서울에서 만들었다",
        "날씨가 맑다",
    ];

    fn query(text: &str) -> Vec<String> {
        let mut terms = retrieval::terms(text);
        terms.sort_unstable();
        terms.dedup();
        terms
    }

    /// One segment, several, merged, or renumbered: the same scores, bit for bit.
    #[test]
    fn segments_score_like_one_index() {
        let all: Vec<(i64, &str)> = TEXTS
            .iter()
            .enumerate()
            .map(|(i, t)| (i as i64 + 1, *t))
            .collect();
        let whole = Arc::new(KnowledgeIndex::new(1, segment(&all)));
        let mut second = segment(&[(0, TEXTS[2]), (1, TEXTS[3]), (2, TEXTS[4])]);
        second.renumber(&[3, 4, 5]);
        let split = Arc::new(KnowledgeIndex {
            revision: 2,
            segments: vec![Arc::new(segment(&all[..2])), Arc::new(second)],
        });
        let merged = Arc::new(split.merged());
        assert_eq!(merged.segment_count(), 1);
        for q in ["서울에서", "부산 기차", "hcx-005 모델", "날씨", "없는말"] {
            let terms = query(q);
            let expected = top_passages(&[Arc::clone(&whole)], &terms, 5);
            assert_eq!(
                top_passages(&[Arc::clone(&split)], &terms, 5),
                expected,
                "{q}"
            );
            assert_eq!(
                top_passages(&[Arc::clone(&merged)], &terms, 5),
                expected,
                "{q}"
            );
        }
        assert_eq!(top_passages(&[whole], &query("서울"), 5)[0].0, 1);
    }

    #[test]
    fn extending_needs_the_revision_just_before() {
        let cache = IndexCache::default();
        // An empty base (revision 0) needs nothing cached.
        let first = cache.extend(7, 1, segment(&[(1, TEXTS[0])])).unwrap();
        assert_eq!(first.segment_count(), 1);
        let second = cache.extend(7, 2, segment(&[(2, TEXTS[1])])).unwrap();
        assert_eq!(second.segment_count(), 2);
        assert!(cache.get(7, 2).is_some() && cache.get(7, 1).is_none());
        // A write this replica did not see (revision 3) breaks the chain.
        assert!(cache.extend(7, 4, segment(&[(3, TEXTS[2])])).is_none());
        assert!(cache.get(7, 4).is_none());
        // An older index never replaces a newer one.
        cache.put(7, first);
        assert!(cache.get(7, 2).is_some());
        cache.forget(7);
        assert!(cache.get(7, 2).is_none());
    }
}
