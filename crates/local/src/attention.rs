//! One head's causal attention over its sequence's cache, and the
//! element-wise functions of the forward pass, compiled for the CPU's widest
//! vectors.
//!
//! The code is plain Rust, written so that it vectorizes (sums in 16 fixed
//! lanes, no libm calls); [`dispatch`] runs it compiled for AVX-512 when the
//! CPU has it. Rust never fuses or reorders floating-point operations, so
//! both builds give the same bits; the AVX-512 one is 3-4x faster than the
//! x86-64 baseline's 4-wide SSE2 (attention took a third of a batched step
//! on SSE2; BENCHMARKS.md, "Local model").
//!
//! `unsafe`: calling a `#[target_feature]` function after checking that the
//! CPU has the feature.

#![allow(unsafe_code)]

use half::f16;

use crate::simd::{dispatch, dot, f16_to_f32, reduce};

/// Where one head's keys and values are: cell `c`'s are at
/// `c * stride + offset`, `len` values each, in `f16` (half the memory of a
/// class's caches; converting to `f32` is exact).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads<'a> {
    pub(crate) keys: &'a [f16],
    pub(crate) values: &'a [f16],
    pub(crate) stride: usize,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

/// The attention of a group of heads that share their keys and values
/// (`queries` and `out` hold `n` heads of `d` one after the other):
/// `out = Σ_cells softmax(q·k / √d) v` over the first `cells` cells.
pub(crate) fn group(
    queries: &[f32],
    cache: Heads<'_>,
    cells: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512() {
        // SAFETY (each arm): the CPU has AVX-512F (checked); `group_64`
        // checks its slices' bounds.
        match queries.len() {
            64 => return unsafe { avx512::group_64::<1>(queries, cache, cells, scores, out) },
            128 => return unsafe { avx512::group_64::<2>(queries, cache, cells, scores, out) },
            192 => return unsafe { avx512::group_64::<3>(queries, cache, cells, scores, out) },
            256 => return unsafe { avx512::group_64::<4>(queries, cache, cells, scores, out) },
            _ => {}
        }
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2() {
        // SAFETY (each arm): the CPU has AVX2, FMA and F16C (checked);
        // `group_64` checks its slices' bounds.
        match queries.len() {
            64 => return unsafe { avx2::group_64::<1>(queries, cache, cells, scores, out) },
            128 => return unsafe { avx2::group_64::<2>(queries, cache, cells, scores, out) },
            192 => return unsafe { avx2::group_64::<3>(queries, cache, cells, scores, out) },
            256 => return unsafe { avx2::group_64::<4>(queries, cache, cells, scores, out) },
            _ => {}
        }
    }
    portable(queries, cache, cells, scores, out);
}

dispatch!(portable(queries: &[f32], cache: Heads<'_>, cells: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    for (query, out) in queries.chunks_exact(cache.len).zip(out.chunks_exact_mut(cache.len)) {
        match cache.len {
            64 => head_sized::<64>(query, cache, cells, scores, out),
            128 => head_sized::<128>(query, cache, cells, scores, out),
            _ => head_any(query, cache, cells, scores, out),
        }
    }
});

/// Groups of up to four heads of 64 (SmolLM2's: three) with AVX-512: each
/// head's operations in the same order as `head_sized::<64>` (a test
/// compares the bits), with the per-cell sums written out, which the
/// compiler did not vectorize well (a quarter of a batched step), and each
/// key and value loaded once for the group.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{Heads, softmax};

    /// `reduce`'s order: halves first.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce(v: __m512) -> f32 {
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        let h = _mm256_add_ps(_mm512_castps512_ps256(v), high);
        let x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)))
    }

    /// Sixteen [`reduce`]s at once: lane `i` of the result is `reduce(v[i])`,
    /// the same additions in the same order (halves first), with the
    /// shuffles shared: pairs of vectors add their halves side by side,
    /// then quarters, eighths and sixteenths (about 3 operations per sum
    /// instead of 7).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce_16(v: &[__m512; 16]) -> __m512 {
        // Lanes 0-7: v[2p]'s j + (j + 8); lanes 8-15: v[2p+1]'s.
        let halves: [__m512; 8] = std::array::from_fn(|p| {
            let (a, b) = (v[2 * p], v[2 * p + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        });
        // 128-bit lane k: cell 4r + k's j + (j + 4).
        let quarters: [__m512; 4] = std::array::from_fn(|r| {
            let (a, b) = (halves[2 * r], halves[2 * r + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        });
        // 128-bit lane k: cells 8u + k and 8u + 4 + k, j + (j + 2) each.
        let eighths: [__m512; 2] = std::array::from_fn(|u| {
            let (a, b) = (quarters[2 * u], quarters[2 * u + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
            )
        });
        // Lane 4k + m: cell 4m + k, whole.
        let (a, b) = (eighths[0], eighths[1]);
        let sums = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm512_shuffle_ps::<0b11_01_11_01>(a, b),
        );
        // Cell c from lane 4(c % 4) + c / 4.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, sums)
    }

    /// Cells ahead of the one being read that are asked for from memory: a
    /// batch's caches (eight sequences, thirty layers) do not stay in the
    /// CPU's caches between layers.
    const AHEAD: usize = 16;

    /// Asks for the 64 `f16` values at `at`, if they are in `s`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn prefetch(s: &[f16], at: usize) {
        if let Some(head) = s.get(at..at + 64) {
            // SAFETY: hints, at addresses in the slice (two 64-byte lines).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(head.as_ptr().cast());
                _mm_prefetch::<_MM_HINT_T0>(head.as_ptr().add(32).cast());
            }
        }
    }

    /// Four vectors of the 64 values at `at`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(s: &[f32], at: usize) -> [__m512; 4] {
        let s: &[f32; 64] = s[at..at + 64].try_into().expect("a head of 64");
        // SAFETY: 64 values (checked above).
        std::array::from_fn(|i| unsafe { _mm512_loadu_ps(s.as_ptr().add(16 * i)) })
    }

    /// The 64 `f16` values at `at`, as four vectors of `f32`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_f16(s: &[f16], at: usize) -> [__m512; 4] {
        let s: &[f16; 64] = s[at..at + 64].try_into().expect("a head of 64");
        // SAFETY: 64 values of 2 bytes (checked above).
        std::array::from_fn(|i| unsafe {
            _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(16 * i).cast()))
        })
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn group_64<const G: usize>(
        queries: &[f32],
        cache: Heads<'_>,
        cells: usize,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        assert_eq!(cache.len, 64);
        let q: [[__m512; 4]; G] = std::array::from_fn(|h| load(queries, 64 * h));
        let scale = 1.0 / 8.0;
        scores.resize(G * cells, 0.0);
        // Each cell's products, summed over the head's four vectors.
        let lanes = |k: &[__m512; 4], q: &[__m512; 4]| {
            let mut lanes = _mm512_mul_ps(q[0], k[0]);
            for i in 1..4 {
                lanes = _mm512_add_ps(lanes, _mm512_mul_ps(q[i], k[i]));
            }
            lanes
        };
        // Sixteen cells at a time, their sums reduced together.
        let whole = cells - cells % 16;
        let mut products = [[_mm512_setzero_ps(); 16]; G];
        for start in (0..whole).step_by(16) {
            for i in 0..16 {
                prefetch(
                    cache.keys,
                    (start + i + AHEAD) * cache.stride + cache.offset,
                );
                let k = load_f16(cache.keys, (start + i) * cache.stride + cache.offset);
                for (products, q) in products.iter_mut().zip(&q) {
                    products[i] = lanes(&k, q);
                }
            }
            for (h, products) in products.iter().enumerate() {
                let sums = _mm512_mul_ps(reduce_16(products), _mm512_set1_ps(scale));
                let out: &mut [f32; 16] = (&mut scores[h * cells + start..h * cells + start + 16])
                    .try_into()
                    .expect("16 scores");
                // SAFETY: 16 values.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), sums) };
            }
        }
        for cell in whole..cells {
            let k = load_f16(cache.keys, cell * cache.stride + cache.offset);
            for (h, q) in q.iter().enumerate() {
                scores[h * cells + cell] = reduce(lanes(&k, q)) * scale;
            }
        }
        let totals: [f32; G] =
            std::array::from_fn(|h| softmax(&mut scores[h * cells..(h + 1) * cells]));
        let mut acc = [[_mm512_setzero_ps(); 4]; G];
        for cell in 0..cells {
            prefetch(cache.values, (cell + AHEAD) * cache.stride + cache.offset);
            let v = load_f16(cache.values, cell * cache.stride + cache.offset);
            for (h, acc) in acc.iter_mut().enumerate() {
                let p = _mm512_set1_ps(scores[h * cells + cell]);
                for i in 0..4 {
                    acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(p, v[i]));
                }
            }
        }
        let out: &mut [f32] = &mut out[..64 * G];
        for (h, acc) in acc.iter().enumerate() {
            let inverse = _mm512_set1_ps(1.0 / totals[h]);
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY: 64 values per head (the slice above).
                unsafe {
                    _mm512_storeu_ps(
                        out.as_mut_ptr().add(64 * h + 16 * i),
                        _mm512_mul_ps(*acc, inverse),
                    )
                };
            }
        }
    }
}

/// Groups of heads of 64 with AVX2 (CPUs without AVX-512): `head_sized::<64>`'s
/// operations in its order, 16 lanes held as two halves of 8 (bit-equal,
/// tested), each key and value loaded and converted once for the group.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{Heads, softmax};

    /// `reduce`'s order on 16 lanes held as `lo` (0-7) and `hi` (8-15).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn reduce(lo: __m256, hi: __m256) -> f32 {
        let h = _mm256_add_ps(lo, hi);
        let x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)))
    }

    /// Eight vectors of the 64 values at `at`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load(s: &[f32], at: usize) -> [__m256; 8] {
        let s: &[f32; 64] = s[at..at + 64].try_into().expect("a head of 64");
        // SAFETY: 64 values (checked above).
        std::array::from_fn(|i| unsafe { _mm256_loadu_ps(s.as_ptr().add(8 * i)) })
    }

    /// The 64 `f16` values at `at`, as eight vectors of `f32`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_f16(s: &[f16], at: usize) -> [__m256; 8] {
        let s: &[f16; 64] = s[at..at + 64].try_into().expect("a head of 64");
        // SAFETY: 64 values of 2 bytes (checked above).
        std::array::from_fn(|i| unsafe {
            _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().add(8 * i).cast()))
        })
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn group_64<const G: usize>(
        queries: &[f32],
        cache: Heads<'_>,
        cells: usize,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        assert_eq!(cache.len, 64);
        let q: [[__m256; 8]; G] = std::array::from_fn(|h| load(queries, 64 * h));
        let scale = 1.0 / 8.0;
        scores.resize(G * cells, 0.0);
        for cell in 0..cells {
            let k = load_f16(cache.keys, cell * cache.stride + cache.offset);
            for (h, q) in q.iter().enumerate() {
                let mut lo = _mm256_mul_ps(q[0], k[0]);
                let mut hi = _mm256_mul_ps(q[1], k[1]);
                for i in 1..4 {
                    lo = _mm256_add_ps(lo, _mm256_mul_ps(q[2 * i], k[2 * i]));
                    hi = _mm256_add_ps(hi, _mm256_mul_ps(q[2 * i + 1], k[2 * i + 1]));
                }
                scores[h * cells + cell] = reduce(lo, hi) * scale;
            }
        }
        let totals: [f32; G] =
            std::array::from_fn(|h| softmax(&mut scores[h * cells..(h + 1) * cells]));
        let mut acc = [[_mm256_setzero_ps(); 8]; G];
        for cell in 0..cells {
            let v = load_f16(cache.values, cell * cache.stride + cache.offset);
            for (h, acc) in acc.iter_mut().enumerate() {
                let p = _mm256_set1_ps(scores[h * cells + cell]);
                for i in 0..8 {
                    acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(p, v[i]));
                }
            }
        }
        let out: &mut [f32] = &mut out[..64 * G];
        for (h, acc) in acc.iter().enumerate() {
            let inverse = _mm256_set1_ps(1.0 / totals[h]);
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY: 64 values per head (the slice above).
                unsafe {
                    _mm256_storeu_ps(
                        out.as_mut_ptr().add(64 * h + 8 * i),
                        _mm256_mul_ps(*acc, inverse),
                    )
                };
            }
        }
    }
}

#[inline(always)]
fn head_sized<const D: usize>(
    query: &[f32],
    cache: Heads<'_>,
    cells: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let query: &[f32; D] = query.try_into().expect("a head of D");
    let row = |s: &[f16], cell: usize| -> [f32; D] {
        let at = cell * cache.stride + cache.offset;
        std::array::from_fn(|j| f16_to_f32(s[at + j]))
    };
    let scale = 1.0 / (D as f32).sqrt();
    scores.resize(cells, 0.0);
    for (cell, score) in scores.iter_mut().enumerate() {
        *score = dot_sized(query, &row(cache.keys, cell)) * scale;
    }
    let mut acc = [0.0f32; D];
    let total = softmax(scores);
    for (cell, &p) in scores.iter().enumerate() {
        let value = row(cache.values, cell);
        for j in 0..D {
            acc[j] += p * value[j];
        }
    }
    let inverse = 1.0 / total;
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a * inverse;
    }
}

#[inline(always)]
fn head_any(query: &[f32], cache: Heads<'_>, cells: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    let d = query.len();
    let scale = 1.0 / (d as f32).sqrt();
    let row = |s: &[f16], cell: usize| -> Vec<f32> {
        let at = cell * cache.stride + cache.offset;
        s[at..at + d].iter().map(|&v| f16_to_f32(v)).collect()
    };
    scores.resize(cells, 0.0);
    for (cell, score) in scores.iter_mut().enumerate() {
        *score = dot(query, &row(cache.keys, cell)) * scale;
    }
    let total = softmax(scores);
    out.fill(0.0);
    for (cell, &p) in scores.iter().enumerate() {
        for (o, v) in out.iter_mut().zip(row(cache.values, cell)) {
            *o += p * v;
        }
    }
    let inverse = 1.0 / total;
    for o in out.iter_mut() {
        *o *= inverse;
    }
}

/// Replaces `scores` by `e^(score - max)`; returns their sum.
#[inline(always)]
fn softmax(scores: &mut [f32]) -> f32 {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    let mut lanes = [0.0f32; 16];
    for chunk in scores.chunks_exact(16) {
        for j in 0..16 {
            lanes[j] += chunk[j];
        }
    }
    let tail: f32 = scores.chunks_exact(16).remainder().iter().sum();
    reduce(lanes) + tail
}

/// `Σ a·b` over a head, in 16 lanes (the first product starts each lane),
/// added in a fixed order.
#[inline(always)]
fn dot_sized<const D: usize>(a: &[f32; D], b: &[f32; D]) -> f32 {
    let mut lanes: [f32; 16] = std::array::from_fn(|j| a[j] * b[j]);
    for i in (16..D).step_by(16) {
        for j in 0..16 {
            lanes[j] += a[i + j] * b[i + j];
        }
    }
    reduce(lanes)
}

dispatch!(swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
});

dispatch!(rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean = dot(x, x) / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &x), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = x * scale * w;
    }
});

/// `e^x` in single precision without a libm call (so loops over it
/// vectorize): Cephes' `expf` (range reduction by `ln 2`, degree-6
/// polynomial), relative error ~2e-7.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.clamp(-87.0, 88.0);
    // Round to the nearest integer without a libm call.
    let n = (x * LOG2E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_the_standard_library() {
        for i in -2000..=2000 {
            let x = i as f32 / 25.0;
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 4e-7 * want, "{x}: {got} vs {want}");
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
    }

    #[test]
    fn dot_adds_every_product() {
        let a: Vec<f32> = (0..70).map(|i| i as f32).collect();
        let b = vec![2.0; 70];
        assert_eq!(dot(&a, &b), (0..70).sum::<i32>() as f32 * 2.0);
    }

    #[test]
    fn the_simd_head_gives_the_portable_heads_bits() {
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let (stride, cells) = (192, 37);
        let keys: Vec<f16> = (0..stride * cells)
            .map(|_| f16::from_f32(next() * 4.0))
            .collect();
        let values: Vec<f16> = (0..stride * cells).map(|_| f16::from_f32(next())).collect();
        let queries: Vec<f32> = (0..192).map(|_| next() * 4.0).collect();
        let cache = Heads {
            keys: &keys,
            values: &values,
            stride,
            offset: 64,
            len: 64,
        };
        // A group of three heads, as SmolLM2's.
        let (mut scores, mut fast) = (Vec::new(), vec![0.0f32; 192]);
        group(&queries, cache, cells, &mut scores, &mut fast);
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            let mut wide = vec![0.0f32; 192];
            // SAFETY: the CPU has the features (checked).
            unsafe { avx2::group_64::<3>(&queries, cache, cells, &mut scores, &mut wide) };
            assert_eq!(wide, fast);
        }
        for (query, fast) in queries.chunks_exact(64).zip(fast.chunks_exact(64)) {
            let mut portable = [0.0f32; 64];
            head_sized::<64>(query, cache, cells, &mut scores, &mut portable);
            assert_eq!(fast, portable);
            let mut any = [0.0f32; 64];
            head_any(query, cache, cells, &mut scores, &mut any);
            for (a, b) in any.iter().zip(&portable) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_head_attends_by_softmax_weights() {
        // Two cells: the query matches the second key far better.
        let query = [1.0f32; 16];
        let keys: Vec<f16> = [0.0f32; 16]
            .iter()
            .chain(&[1.0f32; 16])
            .map(|&v| f16::from_f32(v))
            .collect();
        let values: Vec<f16> = [10.0f32; 16]
            .iter()
            .chain(&[20.0f32; 16])
            .map(|&v| f16::from_f32(v))
            .collect();
        let cache = Heads {
            keys: &keys,
            values: &values,
            stride: 16,
            offset: 0,
            len: 16,
        };
        let (mut scores, mut out) = (Vec::new(), [0.0f32; 16]);
        group(&query, cache, 2, &mut scores, &mut out);
        // Scores 0 and 16 / 4 = 4: weights 1 / (1 + e^4) and e^4 / (1 + e^4).
        let w = 1.0 / (1.0 + 4f32.exp());
        let want = 10.0 * w + 20.0 * (1.0 - w);
        assert!(
            out.iter().all(|&o| (o - want).abs() < 1e-4),
            "{out:?} vs {want}"
        );
        // The first cell alone: its own value.
        group(&query, cache, 1, &mut scores, &mut out);
        assert!(out.iter().all(|&o| (o - 10.0).abs() < 1e-5));
    }
}
