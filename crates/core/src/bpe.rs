//! Byte-pair encoding over a tiktoken-style rank table.
//!
//! A rank table maps byte strings to ranks; a token's id is its rank. Encoding a
//! pre-tokenized piece repeatedly merges the adjacent pair whose concatenation has
//! the lowest rank (leftmost on ties) until no adjacent pair is a token. This is the
//! exact algorithm of OpenAI's `tiktoken`, so counts match it token for token.
//!
//! Performance notes (measured, see BENCHMARKS.md):
//! - Most pieces are whole tokens (common words with their leading space), so the
//!   first step is one hash lookup of the whole piece, exactly as tiktoken does.
//! - Short pieces use tiktoken's quadratic scan over a small on-stack vector: for
//!   pieces under ~64 bytes it beats any heap-based scheme.
//! - Long pieces (a base64 blob, Korean or Chinese text without spaces) switch to a
//!   binary heap with lazy invalidation, so a hostile 1 MB piece costs
//!   O(n log n), not O(n²).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU8, Ordering};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// Token id (== rank) type.
pub type Rank = u32;

/// Pieces longer than this (in bytes) use the heap-based merge.
const HEAP_MERGE_THRESHOLD: usize = 96;

/// Pieces that are not a token themselves and at most this long have their token
/// count remembered per thread.
///
/// Performance note: a piece that is not one token costs a full merge, about a
/// dozen table lookups for a Korean word with its particle (` 서울의`, 10 bytes).
/// Words recur, so the counts of such pieces are kept in a small per-thread map
/// keyed by the piece's bytes packed into a `u128`: no allocation, no locking, no
/// pointer to follow. Korean counting got about 2x faster on the bench corpus.
/// Only counts are cached, never ids, and a piece's count depends on nothing but
/// its bytes and the table, so a hit is always exact. A two-way set-associative
/// array of packed slots (one memory access per probe) was measured as an
/// alternative and did not change counting or re-trimming times beyond noise.
const CACHED_PIECE: usize = 15;

/// Entries per thread before the piece cache starts over.
const PIECE_CACHE_CAPACITY: usize = 1 << 16;

thread_local! {
    static PIECE_COUNTS: RefCell<FxHashMap<u128, u8>> = RefCell::new(FxHashMap::default());
}

/// A rank table: byte strings to ranks, plus the reverse mapping.
///
/// Performance note: BPE does one lookup per candidate pair, and most candidates
/// are short. Tokens of up to 7 bytes are keyed by their bytes packed into a `u64`
/// (with the length in the top byte), so a lookup is one hash and one probe with no
/// pointer to follow; this made Korean counting about twice as fast as a
/// `HashMap<Box<[u8]>, _>` (measured with `cargo bench -p sluice-core --bench core`).
#[derive(Debug)]
pub(crate) struct RankTable {
    /// Distinguishes this table's entries in the per-thread piece cache.
    id: u8,
    /// Ranks of all two-byte tokens, indexed by the two bytes: the first lookups of
    /// every merge are pairs of bytes, and a direct index beats any hash.
    pairs: Box<[Rank]>,
    short: FxHashMap<u64, Rank>,
    long: FxHashMap<Box<[u8]>, Rank>,
    decoder: Vec<Option<Box<[u8]>>>,
}

/// Longest token kept in the packed map.
const SHORT: usize = 7;

#[inline(always)]
fn pack(bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len() <= SHORT);
    let mut buf = [0u8; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(buf) | (bytes.len() as u64) << 56
}

impl RankTable {
    /// Parses a `.tiktoken` file: one `base64(token) rank` pair per line.
    pub(crate) fn from_tiktoken(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut pairs = Vec::with_capacity(text.len() / 12);
        for (line_no, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let (b64, rank) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {}: expected `<base64> <rank>`", line_no + 1))?;
            let bytes = engine
                .decode(b64)
                .map_err(|e| format!("line {}: bad base64: {e}", line_no + 1))?;
            let rank: Rank = rank
                .trim()
                .parse()
                .map_err(|e| format!("line {}: bad rank: {e}", line_no + 1))?;
            pairs.push((bytes.into_boxed_slice(), rank));
        }
        Ok(Self::from_pairs(pairs))
    }

    pub(crate) fn from_pairs(pairs: Vec<(Box<[u8]>, Rank)>) -> Self {
        let max = pairs
            .iter()
            .map(|(_, r)| *r as usize + 1)
            .max()
            .unwrap_or(0);
        let mut decoder = vec![None; max];
        let mut short = FxHashMap::default();
        let mut long = FxHashMap::default();
        let mut pair_ranks = vec![Rank::MAX; 1 << 16].into_boxed_slice();
        for (bytes, rank) in pairs {
            if let [a, b] = *bytes {
                pair_ranks[usize::from(a) << 8 | usize::from(b)] = rank;
            }
            if bytes.len() <= SHORT {
                short.insert(pack(&bytes), rank);
            } else {
                long.insert(bytes.clone(), rank);
            }
            decoder[rank as usize] = Some(bytes);
        }
        static NEXT_ID: AtomicU8 = AtomicU8::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed) & 0x0F,
            pairs: pair_ranks,
            short,
            long,
            decoder,
        }
    }

    #[inline(always)]
    pub(crate) fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        if let [a, b] = *bytes {
            let r = self.pairs[usize::from(a) << 8 | usize::from(b)];
            return (r != Rank::MAX).then_some(r);
        }
        if bytes.len() <= SHORT {
            self.short.get(&pack(bytes)).copied()
        } else {
            self.long.get(bytes).copied()
        }
    }

    /// Number of ranks (the largest rank plus one).
    pub(crate) fn len(&self) -> usize {
        self.decoder.len()
    }

    /// Iterates over `(bytes, rank)` in rank order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Rank)> {
        self.decoder
            .iter()
            .enumerate()
            .filter_map(|(r, b)| b.as_deref().map(|b| (b, r as Rank)))
    }

    /// Number of tokens `piece` encodes to.
    #[inline]
    pub(crate) fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() <= 1 || self.rank(piece).is_some() {
            return 1;
        }
        if piece.len() > HEAP_MERGE_THRESHOLD {
            return heap_merge(self, piece).len();
        }
        if piece.len() > CACHED_PIECE {
            return small_merge(self, piece).len() - 1;
        }
        let key = self.cache_key(piece);
        PIECE_COUNTS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(&n) = cache.get(&key) {
                return n as usize;
            }
            let n = small_merge(self, piece).len() - 1;
            if cache.len() >= PIECE_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, n as u8);
            n
        })
    }

    /// The piece's bytes packed with its length and this table's id.
    #[inline(always)]
    fn cache_key(&self, piece: &[u8]) -> u128 {
        let mut buf = [0u8; 16];
        buf[..piece.len()].copy_from_slice(piece);
        u128::from_le_bytes(buf) | (piece.len() as u128) << 120 | u128::from(self.id) << 124
    }

    /// Appends the tokens of `piece` to `out`.
    pub(crate) fn encode_piece(&self, piece: &[u8], out: &mut Vec<Rank>) {
        if let Some(r) = self.rank(piece) {
            out.push(r);
            return;
        }
        if piece.len() > HEAP_MERGE_THRESHOLD {
            let parts = heap_merge(self, piece);
            out.extend(parts.windows(2).map(|w| self.rank_of(&piece[w[0]..w[1]])));
            let last = *parts.last().expect("non-empty");
            out.push(self.rank_of(&piece[last..]));
            return;
        }
        let parts = small_merge(self, piece);
        out.extend(
            parts
                .windows(2)
                .map(|w| self.rank_of(&piece[w[0].0..w[1].0])),
        );
    }

    #[inline]
    fn rank_of(&self, bytes: &[u8]) -> Rank {
        // Every single byte is a token in a byte-level table, and merges only ever
        // produce tokens, so every final part has a rank.
        self.rank(bytes)
            .expect("byte-level BPE part is always a token")
    }
}

/// tiktoken's `byte_pair_merge`: returns the part boundaries `(start, rank of the
/// pair starting here)`, with a sentinel at `piece.len()`.
fn small_merge(table: &RankTable, piece: &[u8]) -> SmallVec<[(usize, Rank); 64]> {
    let pair_rank = |parts: &[(usize, Rank)], i: usize| -> Rank {
        if i + 3 < parts.len() {
            table
                .rank(&piece[parts[i].0..parts[i + 3].0])
                .unwrap_or(Rank::MAX)
        } else {
            Rank::MAX
        }
    };
    let mut parts: SmallVec<[(usize, Rank); 64]> = SmallVec::with_capacity(piece.len() + 1);
    let mut min = (Rank::MAX, usize::MAX);
    for i in 0..piece.len() - 1 {
        let rank = table.rank(&piece[i..i + 2]).unwrap_or(Rank::MAX);
        if rank < min.0 {
            min = (rank, i);
        }
        parts.push((i, rank));
    }
    parts.push((piece.len() - 1, Rank::MAX));
    parts.push((piece.len(), Rank::MAX));

    while min.0 != Rank::MAX {
        let i = min.1;
        if i > 0 {
            parts[i - 1].1 = pair_rank(&parts, i - 1);
        }
        parts[i].1 = pair_rank(&parts, i);
        parts.remove(i + 1);

        min = (Rank::MAX, usize::MAX);
        for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
            if rank < min.0 {
                min = (rank, i);
            }
        }
    }
    parts
}

/// The same merge order as [`small_merge`], in O(n log n): a doubly linked list of
/// parts and a min-heap of candidate pairs keyed by `(rank, start)`, so that the
/// lowest rank wins and ties go to the leftmost pair, exactly like the linear scan.
/// Stale heap entries are detected by re-checking the pair's current rank.
///
/// Returns the start offsets of the final parts.
fn heap_merge(table: &RankTable, piece: &[u8]) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = piece.len();
    // Parts are identified by their start offset; `next[s]` is the start of the
    // following part (or `n`), `prev[s]` the start of the preceding one.
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    prev[0] = NONE;
    let mut alive = vec![true; n];
    let pair = |next: &[usize], s: usize| -> Option<Rank> {
        let mid = next[s];
        if mid >= n {
            return None;
        }
        table.rank(&piece[s..next[mid]])
    };
    let mut heap: BinaryHeap<Reverse<(Rank, usize)>> = (0..n)
        .filter_map(|s| pair(&next, s).map(|r| Reverse((r, s))))
        .collect();
    while let Some(Reverse((rank, s))) = heap.pop() {
        if !alive[s] || pair(&next, s) != Some(rank) {
            continue;
        }
        let mid = next[s];
        alive[mid] = false;
        next[s] = next[mid];
        if next[s] < n {
            prev[next[s]] = s;
        }
        if let Some(r) = pair(&next, s) {
            heap.push(Reverse((r, s)));
        }
        let p = prev[s];
        if p != NONE {
            if let Some(r) = pair(&next, p) {
                heap.push(Reverse((r, p)));
            }
        }
    }
    let mut starts = Vec::new();
    let mut s = 0;
    while s < n {
        starts.push(s);
        s = next[s];
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> RankTable {
        let mut pairs: Vec<(Box<[u8]>, Rank)> = (0u8..=255)
            .map(|b| (vec![b].into_boxed_slice(), Rank::from(b)))
            .collect();
        for (i, t) in ["ab", "bc", "abc", "cd", "abcd", "aa", "aaa", "aaaa"]
            .iter()
            .enumerate()
        {
            pairs.push((t.as_bytes().into(), 256 + i as Rank));
        }
        RankTable::from_pairs(pairs)
    }

    #[test]
    fn heap_and_scan_agree() {
        let table = toy();
        let inputs = [
            "abcd",
            "aaaaaaa",
            "abcabcdaaab",
            "bcabbcdcdab",
            "aaaaabcdaaaa",
        ];
        for input in inputs {
            let long = input.repeat(40);
            for text in [input.to_string(), long] {
                let scan: Vec<usize> = small_merge(&table, text.as_bytes())
                    .iter()
                    .map(|p| p.0)
                    .collect();
                let heap = heap_merge(&table, text.as_bytes());
                assert_eq!(&scan[..scan.len() - 1], &heap[..], "{text}");
            }
        }
    }

    #[test]
    fn whole_piece_is_one_token() {
        let table = toy();
        assert_eq!(table.count_piece(b"abcd"), 1);
        assert_eq!(table.count_piece(b"abcdab"), 2);
        let mut out = Vec::new();
        table.encode_piece(b"aaaaaaa", &mut out);
        assert_eq!(out, vec![263, 262]);
    }
}
