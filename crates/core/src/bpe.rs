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

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU8, Ordering};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::rank_layout;

/// Token id (== rank) type.
pub type Rank = u32;

/// Pieces longer than this (in bytes) use the heap-based merge.
const HEAP_MERGE_THRESHOLD: usize = 96;

/// Pieces that are not a token themselves and at most this long have their token
/// count remembered per thread.
///
/// Performance note: a piece that is not one token costs a full merge, about a
/// dozen table lookups for a Korean word with its particle (` 서울의`, 10 bytes).
/// Words recur, so the counts of such pieces are kept in small per-thread maps
/// keyed by the piece's bytes packed into one `u128` (up to 15 bytes) or two (up
/// to 31): no allocation, no locking, no pointer to follow. Korean counting got
/// about 2x faster on the bench corpus with the first map. The second one came
/// from a profile of the mixed Korean/English text (`perf record` on `cargo bench
/// -p sluice-core --bench core -- count/cl100k/mixed`): with only the first, 37%
/// of the time went to merging Korean words of five syllables or more with their
/// space (16 to 22 bytes, such as ` 업데이트됩니다`), which recur as much as the
/// short ones. Only counts are cached, never ids, and a piece's count depends on
/// nothing but its bytes and the table, so a hit is always exact. A two-way
/// set-associative array of packed slots (one memory access per probe) was
/// measured as an alternative and did not change counting or re-trimming times
/// beyond noise.
const CACHED_PIECE: usize = 31;

/// Pieces up to this long are keyed by one `u128`.
const SHORT_CACHED_PIECE: usize = 15;

/// Entries per thread before a piece cache starts over.
const PIECE_CACHE_CAPACITY: usize = 1 << 16;

/// Token counts of pieces that needed a merge, per thread (see [`CACHED_PIECE`]).
#[derive(Default)]
struct PieceCounts {
    short: FxHashMap<u128, u8>,
    long: FxHashMap<[u128; 2], u8>,
}

thread_local! {
    static PIECE_COUNTS: RefCell<PieceCounts> = RefCell::default();
}

/// The count of the piece keyed `key` in `cache`, computed and remembered on a miss.
#[inline(always)]
fn remember<K: std::hash::Hash + Eq>(
    cache: &mut FxHashMap<K, u8>,
    key: K,
    count: impl FnOnce() -> usize,
) -> usize {
    if let Some(&n) = cache.get(&key) {
        return n as usize;
    }
    let n = count();
    if cache.len() >= PIECE_CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(
        key,
        u8::try_from(n).expect("a piece of 31 bytes has at most 31 tokens"),
    );
    n
}

/// A rank table: byte strings to ranks, plus the reverse mapping, in the byte
/// layout of [`crate::rank_layout`].
///
/// The embedded encodings' tables were laid out by `build.rs` and are read where
/// they lie in the binary ([`RankTable::from_layout`]); a `tokenizer.json`'s table
/// is laid out when it is loaded ([`RankTable::from_pairs`]). Lookups go through a
/// [`Ranks`] view.
#[derive(Debug)]
pub(crate) struct RankTable {
    /// Distinguishes this table's entries in the per-thread piece cache.
    id: u8,
    layout: Cow<'static, [u8]>,
    /// Number of ranks (the largest rank plus one).
    ranks: usize,
    /// `log2` of the number of slots.
    bits: u32,
}

/// A rank table's sections, borrowed: what every lookup reads.
///
/// Performance note: BPE does one lookup per candidate pair. Two-byte candidates
/// (the first ones of every merge) are a direct index into the pairs section;
/// longer ones hash into an open-addressing table whose slots hold the token's
/// packed bytes, so that most lookups read one slot and follow no pointer (see
/// `rank_layout.rs`). Keying tokens by packed bytes instead of boxed slices made
/// Korean counting about twice as fast (measured with `cargo bench -p sluice-core
/// --bench core`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ranks<'a> {
    id: u8,
    mask: usize,
    bits: u32,
    pairs: &'a [u8],
    slots: &'a [u8],
    tags: &'a [u8],
    offsets: &'a [u8],
    blob: &'a [u8],
}

#[inline(always)]
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

#[inline(always)]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl RankTable {
    /// A table from tokens and their ranks (every rank distinct, no empty token).
    pub(crate) fn from_pairs(pairs: Vec<(Box<[u8]>, Rank)>) -> Self {
        let borrowed: Vec<(&[u8], Rank)> = pairs.iter().map(|(b, r)| (&b[..], *r)).collect();
        Self::from_layout(Cow::Owned(rank_layout::build(&borrowed)))
            .expect("a layout just built is valid")
    }

    /// A table over a layout written by [`rank_layout::build`]; checks that the
    /// sections fit, nothing more, so this costs nothing whatever the table's size.
    pub(crate) fn from_layout(layout: Cow<'static, [u8]>) -> Result<Self, String> {
        if layout.len() < rank_layout::HEADER || layout[..4] != rank_layout::MAGIC {
            return Err("not a rank table layout".into());
        }
        let ranks = read_u32(&layout, 4) as usize;
        let bits = read_u32(&layout, 8);
        let blob = read_u32(&layout, 12) as usize;
        let expected = rank_layout::HEADER
            + 4 * 65_536
            + (rank_layout::SLOT << bits)
            + (1 << bits)
            + 4 * (ranks + 1)
            + blob;
        if !(4..32).contains(&bits) || layout.len() != expected {
            return Err("rank table layout has the wrong size".into());
        }
        static NEXT_ID: AtomicU8 = AtomicU8::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed) & 0x0F,
            layout,
            ranks,
            bits,
        })
    }

    /// The table's sections, for lookups.
    #[inline]
    pub(crate) fn view(&self) -> Ranks<'_> {
        let (pairs, rest) = self.layout[rank_layout::HEADER..].split_at(4 * 65_536);
        let (slots, rest) = rest.split_at(rank_layout::SLOT << self.bits);
        let (tags, rest) = rest.split_at(1 << self.bits);
        let (offsets, blob) = rest.split_at(4 * (self.ranks + 1));
        Ranks {
            id: self.id,
            mask: (1 << self.bits) - 1,
            bits: self.bits,
            pairs,
            slots,
            tags,
            offsets,
            blob,
        }
    }

    /// The rank of `bytes`, if it is a token.
    pub(crate) fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        self.view().rank(bytes)
    }

    /// Number of ranks (the largest rank plus one).
    pub(crate) fn len(&self) -> usize {
        self.ranks
    }

    /// Iterates over `(bytes, rank)` in rank order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Rank)> {
        let view = self.view();
        (0..self.ranks as Rank).filter_map(move |r| view.token(r).map(|b| (b, r)))
    }

    /// Number of tokens `piece` encodes to.
    #[cfg(test)]
    fn count_piece(&self, piece: &[u8]) -> usize {
        self.view().count_piece(piece)
    }
}

impl<'a> Ranks<'a> {
    /// The rank of `bytes`, if it is a token.
    #[inline(always)]
    pub(crate) fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        if let [a, b] = *bytes {
            let r = read_u32(self.pairs, 4 * (usize::from(a) << 8 | usize::from(b)));
            return (r != rank_layout::NO_RANK).then_some(r);
        }
        if bytes.len() <= rank_layout::PACKED {
            self.probe(rank_layout::key(bytes), |_| true)
        } else {
            self.probe(rank_layout::long_key(bytes), |r| {
                self.token(r) == Some(bytes)
            })
        }
    }

    /// Linear probing from `key`'s home slot, over the tags until an empty one;
    /// a slot is read only where the tag matches. `confirm` checks a slot whose
    /// key matches (always true for packed keys, which are the bytes themselves).
    #[inline(always)]
    fn probe(&self, key: u64, confirm: impl Fn(Rank) -> bool) -> Option<Rank> {
        let (mut i, tag) = rank_layout::home(key, self.bits);
        loop {
            let t = self.tags[i];
            if t == 0 {
                return None;
            }
            if t == tag {
                let at = i * rank_layout::SLOT;
                if read_u64(self.slots, at) == key {
                    let r = read_u32(self.slots, at + 8);
                    if confirm(r) {
                        return Some(r);
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The bytes of token `rank`.
    #[inline]
    pub(crate) fn token(&self, rank: Rank) -> Option<&'a [u8]> {
        let at = 4 * rank as usize;
        let start = read_u32(self.offsets, at) as usize;
        let end = read_u32(self.offsets, at + 4) as usize;
        (start < end).then(|| &self.blob[start..end])
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
        let merge = || small_merge(self, piece).len() - 1;
        PIECE_COUNTS.with(|cache| {
            let cache = &mut *cache.borrow_mut();
            if piece.len() <= SHORT_CACHED_PIECE {
                remember(&mut cache.short, self.cache_key(piece), merge)
            } else {
                remember(&mut cache.long, self.long_cache_key(piece), merge)
            }
        })
    }

    /// The bytes of a piece of up to 15 bytes, packed with its length and this
    /// table's id.
    #[inline(always)]
    fn cache_key(&self, piece: &[u8]) -> u128 {
        let mut buf = [0u8; 16];
        buf[..piece.len()].copy_from_slice(piece);
        u128::from_le_bytes(buf) | (piece.len() as u128) << 120 | u128::from(self.id) << 124
    }

    /// The bytes of a piece of 16 to 31 bytes, packed with its length and this
    /// table's id.
    #[inline(always)]
    fn long_cache_key(&self, piece: &[u8]) -> [u128; 2] {
        let (head, tail) = piece.split_at(16);
        let head = u128::from_le_bytes(head.try_into().expect("16 bytes"));
        [head, self.cache_key(tail)]
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
fn small_merge(table: &Ranks<'_>, piece: &[u8]) -> SmallVec<[(usize, Rank); 64]> {
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
fn heap_merge(table: &Ranks<'_>, piece: &[u8]) -> Vec<usize> {
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
                let scan: Vec<usize> = small_merge(&table.view(), text.as_bytes())
                    .iter()
                    .map(|p| p.0)
                    .collect();
                let heap = heap_merge(&table.view(), text.as_bytes());
                assert_eq!(&scan[..scan.len() - 1], &heap[..], "{text}");
            }
        }
    }

    #[test]
    fn embedded_layouts_hold_exactly_tiktokens_tables() {
        use crate::Embedded;
        for (encoding, reference) in [
            (Embedded::Cl100kBase, tiktoken_rs::cl100k_base().unwrap()),
            (Embedded::O200kBase, tiktoken_rs::o200k_base().unwrap()),
        ] {
            let tokenizer = encoding.tokenizer();
            let table = &tokenizer.bpe().expect("embedded").table;
            let ranks = table.view();
            let mut seen = 0;
            for (bytes, rank) in table.iter() {
                assert_eq!(reference.decode_bytes(&[rank]).unwrap(), bytes, "{rank}");
                assert_eq!(ranks.rank(bytes), Some(rank), "{bytes:?}");
                seen += 1;
            }
            // Ranks are contiguous: every rank below `len` is a token.
            assert_eq!(seen, table.len(), "{encoding}");
            assert_eq!(ranks.rank(b""), None);
            assert_eq!(ranks.rank("서울의 날씨".as_bytes()), None);
        }
    }

    #[test]
    fn cached_counts_are_the_merged_counts() {
        let table = &crate::Embedded::Cl100kBase.tokenizer();
        let ranks = table.bpe().expect("embedded").table.view();
        let reference = tiktoken_rs::cl100k_base().unwrap();
        // Pieces of 2 to 40 bytes, each counted on a miss and then on a hit.
        for word in [
            "서울",
            "업데이트",
            "따뜻하겠습니다",
            "하이퍼클로바엑스는",
            "슬라이딩윈도우에서는요",
        ] {
            for piece in [
                word.to_string(),
                format!(" {word}"),
                format!(" {word}{word}"),
            ] {
                let expected = reference.encode_ordinary(&piece).len();
                for _ in 0..2 {
                    assert_eq!(ranks.count_piece(piece.as_bytes()), expected, "{piece}");
                }
            }
        }
    }

    #[test]
    fn a_layout_of_the_wrong_size_is_refused() {
        let layout = rank_layout::build(&[(b"a", 0), (b"bc", 1), (b"a long token", 2)]);
        let table = RankTable::from_layout(Cow::Owned(layout.clone())).unwrap();
        assert_eq!(table.rank(b"a long token"), Some(2));
        assert_eq!(table.rank(b"a long tokeN"), None);
        assert_eq!(table.rank(b"bc"), Some(1));
        assert_eq!(table.rank(b"cb"), None);
        let short = layout[..layout.len() - 1].to_vec();
        assert!(RankTable::from_layout(Cow::Owned(short)).is_err());
        assert!(RankTable::from_layout(Cow::Borrowed(b"SLR0")).is_err());
    }

    #[test]
    fn whole_piece_is_one_token() {
        let table = toy();
        assert_eq!(table.count_piece(b"abcd"), 1);
        assert_eq!(table.count_piece(b"abcdab"), 2);
        let mut out = Vec::new();
        table.view().encode_piece(b"aaaaaaa", &mut out);
        assert_eq!(out, vec![263, 262]);
    }
}
