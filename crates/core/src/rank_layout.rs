//! The byte layout of a rank table, shared by `build.rs` (which lays out the
//! embedded encodings at build time) and [`crate::bpe`] (which reads a layout in
//! place, and lays out the tables of `tokenizer.json` files at run time).
//!
//! Performance note: loading the embedded `cl100k_base` used to mean inflating
//! its gzipped `.tiktoken` file, decoding 100,256 base64 lines and inserting them
//! into hash maps, about 28 ms per process (65 ms for `o200k_base`), which a
//! short-lived CLI run paid every time. The layout below is written once by
//! `build.rs`, embedded with `include_bytes!` and read where it lies, so an
//! embedded encoding costs nothing to load: the pages a count touches are mapped
//! from the binary on first use. All integers are little-endian and read with
//! `from_le_bytes`; nothing depends on the alignment of the embedded bytes.
//!
//! Layout:
//!
//! | section | size | content |
//! |---|---|---|
//! | header | [`HEADER`] bytes | [`MAGIC`], number of ranks, `log2` of the slot count, blob length |
//! | pairs | 65,536 × 4 | the rank of every two-byte token, indexed by its bytes; [`NO_RANK`] if none |
//! | slots | 2^bits × [`SLOT`] | an open-addressing table (linear probing): key `u64`, rank `u32` |
//! | tags | 2^bits | one byte per slot: 0 if the slot is empty, else `0x80` and 7 more bits of the key's hash |
//! | offsets | (ranks + 1) × 4 | token `r`'s bytes are `blob[offsets[r]..offsets[r + 1]]` (empty: no token) |
//! | blob | blob length | every token's bytes, in rank order |
//!
//! A slot's key is the token's bytes packed into a `u64` with the length in the
//! top byte for tokens of up to [`PACKED`] bytes (so a key comparison is the
//! whole check), and a 56-bit hash of the bytes with `0xFF` in the top byte for
//! longer ones (a matching key is then confirmed against the blob). The table is
//! at most half full. A probe reads the tags first and a slot only where the tag
//! matches: a lookup of a byte string that is not a token, the most common
//! lookup in a merge, then reads one or two bytes of a 256 KiB array (512 KiB for
//! `o200k_base`) that stays in cache, instead of slots spread over 3 MiB. Without
//! the tags, re-trimming a conversation whose new turn has made-up words (every
//! word a merge) was 40% slower than with the hash maps this layout replaced
//! (`benches/compare`, 10.4 → 14–16 µs median), as those maps have such tags.

/// First bytes of a layout (and its version).
pub(crate) const MAGIC: [u8; 4] = *b"SLR2";

/// Header size: magic, ranks, slot bits, blob length.
pub(crate) const HEADER: usize = 16;

/// Size of one slot: a `u64` key and a `u32` rank.
pub(crate) const SLOT: usize = 12;

/// The rank that marks "no token" in the pairs section.
pub(crate) const NO_RANK: u32 = u32::MAX;

/// Tokens up to this many bytes are keyed by their packed bytes.
pub(crate) const PACKED: usize = 7;

/// The multiplier of the slot hash (Fibonacci hashing: the top bits of the
/// product are the slot).
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The key of a byte string: packed bytes and length, or a tagged hash.
#[inline(always)]
pub(crate) fn key(bytes: &[u8]) -> u64 {
    if bytes.len() <= PACKED {
        let mut buf = [0u8; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(buf) | (bytes.len() as u64) << 56
    } else {
        long_key(bytes)
    }
}

/// The key of a byte string longer than [`PACKED`]: an FxHash-style hash over
/// its 8-byte words, with `0xFF` in the top byte (packed keys have 1 to 7 there).
#[inline]
pub(crate) fn long_key(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(MIX);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut buf = [0u8; 8];
        buf[..tail.len()].copy_from_slice(tail);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(MIX);
    }
    h | 0xFF << 56
}

/// The first slot to probe for `key` in a table of `2^bits` slots, and the tag
/// of the slot that holds it: the top bits of one product (Fibonacci hashing).
#[inline(always)]
pub(crate) fn home(key: u64, bits: u32) -> (usize, u8) {
    let h = key.wrapping_mul(MIX);
    ((h >> (64 - bits)) as usize, (h >> (57 - bits)) as u8 | 0x80)
}

/// Lays out a rank table. Every token must be non-empty and every rank distinct.
pub(crate) fn build(tokens: &[(&[u8], u32)]) -> Vec<u8> {
    let ranks = tokens
        .iter()
        .map(|&(_, r)| r as usize + 1)
        .max()
        .unwrap_or(0);
    let mut bits = 4;
    while (1usize << bits) < 2 * tokens.len() {
        bits += 1;
    }
    let mut by_rank: Vec<Option<&[u8]>> = vec![None; ranks];
    for &(bytes, rank) in tokens {
        assert!(!bytes.is_empty(), "empty token");
        assert!(by_rank[rank as usize].is_none(), "rank {rank} given twice");
        by_rank[rank as usize] = Some(bytes);
    }
    let blob_len: usize = tokens.iter().map(|(b, _)| b.len()).sum();

    let mut out = Vec::with_capacity(
        HEADER + 4 * 65_536 + (SLOT << bits) + (1 << bits) + 4 * (ranks + 1) + blob_len,
    );
    out.extend_from_slice(&MAGIC);
    for n in [ranks, bits as usize, blob_len] {
        out.extend_from_slice(&u32::try_from(n).expect("fits in u32").to_le_bytes());
    }

    let mut pairs = vec![NO_RANK; 65_536];
    for &(bytes, rank) in tokens {
        if let [a, b] = *bytes {
            pairs[usize::from(a) << 8 | usize::from(b)] = rank;
        }
    }
    out.extend(pairs.iter().flat_map(|r| r.to_le_bytes()));

    let mut slots = vec![(0u64, 0u32); 1 << bits];
    let mut tags = vec![0u8; 1 << bits];
    let mask = (1 << bits) - 1;
    for &(bytes, rank) in tokens {
        let k = key(bytes);
        let (mut i, tag) = home(k, bits);
        while tags[i] != 0 {
            i = (i + 1) & mask;
        }
        slots[i] = (k, rank);
        tags[i] = tag;
    }
    for (k, r) in slots {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&r.to_le_bytes());
    }
    out.extend_from_slice(&tags);

    let mut offset = 0u32;
    out.extend_from_slice(&offset.to_le_bytes());
    for bytes in &by_rank {
        offset += bytes.map_or(0, |b| b.len() as u32);
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for bytes in by_rank.into_iter().flatten() {
        out.extend_from_slice(bytes);
    }
    out
}
