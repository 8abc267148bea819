//! sluice's own quantized matrix product: 4-bit (Q4_1) and 8-bit (Q8_0)
//! weights against 8-bit activations, for one token or a batch of them.
//!
//! Why by hand (issue 27, BENCHMARKS.md "Local model"): decoding SmolLM2 is
//! the product of ~135 M quantized weights with each token's activations.
//! llama.cpp's x86 kernel for Q4_1 takes one weight row against one token at
//! a time (`ggml_vec_dot_q4_1_q8_1`): measured here it reaches ~18 G
//! multiply-adds per second on one core, and eight tokens cost eight times
//! one, so a batch of eight generated 1.07-1.27x one alone. No crate has a
//! batched Q4_1 kernel (candle's was 20-30x slower still). This one lays
//! the weights out at load so that one AVX-512 VNNI instruction multiplies
//! four weights of each of 16 rows by four activations of one token
//! (`vpdpbusd`: unsigned 4-bit weights × signed 8-bit activations, summed
//! into 32-bit lanes), and unpacks a block of weights once for up to eight
//! tokens: the weights are read from memory once per batch, not per token.
//!
//! Layout: rows in groups of [`GROUP`]; for each group and each block of 32
//! columns, a record of 64-byte lines: the 16 rows' scales (`f16`), their
//! minimums for Q4_1, then the quantized weights, row `i`'s four weights
//! `k..k+4` at bytes `4i..4i+4` of a line. Q4_1 keeps the file's 4 bits
//! (the low nibbles of line `1 + j` hold columns `4j..4j+4`, the high
//! nibbles columns `16+4j..16+4j+4`), so the weights take the file's size.
//!
//! Every output is `Σ_blocks (d_w·d_a)·Σ(w·a) + m_w·s_a` (Q4_1) or
//! `(d_w·d_a)·Σ(w·a)` (Q8_0), accumulated in block order with fused
//! multiply-adds: the AVX-512, AVX2 and portable paths give the same bits (tested),
//! so greedy text does not depend on the CPU's instruction set, on the batch
//! a token is in, or on how many threads share the rows.
//!
//! `unsafe` (the workspace forbids it; this module and `parallel` allow it):
//! SIMD loads take raw pointers, and a `#[target_feature]` function is
//! called after `is_x86_feature_detected!` says the CPU has the features.

#![allow(unsafe_code)]

use half::f16;

use crate::parallel::Out;
use crate::simd::{dispatch, dot};
#[cfg(target_arch = "x86_64")]
use crate::simd::{has_avx2, has_avx512};

/// Rows interleaved in one record: one 512-bit register holds four weights
/// of each.
pub(crate) const GROUP: usize = 16;
/// Columns per quantization block (GGML's Q4_1, Q8_0 and Q8_1).
pub(crate) const BLOCK: usize = 32;
/// Tokens multiplied against one unpacked block of weights.
const TILE: usize = 8;

/// GGML type ids.
pub(crate) const GGML_F32: u32 = 0;
pub(crate) const GGML_Q4_1: u32 = 3;
pub(crate) const GGML_Q8_0: u32 = 8;
const GGML_F16: u32 = 1;

/// Bytes of `elements` values of GGML type `ty` in a GGUF file; `None` for a
/// type sluice-local does not read, or a count that is not whole blocks.
pub(crate) fn tensor_bytes(ty: u32, elements: u64) -> Option<u64> {
    match ty {
        GGML_F32 => Some(elements * 4),
        GGML_F16 => Some(elements * 2),
        _ => {
            let format = Format::from_ggml(ty)?;
            let block = BLOCK as u64;
            elements
                .is_multiple_of(block)
                .then(|| elements / block * format.file_bytes() as u64)
        }
    }
}

/// A 64-byte-aligned line, so every record's loads are aligned.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// The weights' quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// 32 weights: `f16` scale `d`, `f16` minimum `m`, 4-bit `q`: `d·q + m`.
    Q4_1,
    /// 32 weights: `f16` scale `d`, signed 8-bit `q`: `d·q`. Kept as
    /// `q + 128` (unsigned for `vpdpbusd`), corrected by `128·Σa` per block.
    Q8_0,
    /// Plain `f32` weights against unquantized activations: the reference
    /// that the quantized formats' perplexity is measured against (slow).
    F32,
}

impl Format {
    fn from_ggml(ty: u32) -> Option<Self> {
        match ty {
            GGML_Q4_1 => Some(Self::Q4_1),
            GGML_Q8_0 => Some(Self::Q8_0),
            GGML_F32 => Some(Self::F32),
            _ => None,
        }
    }

    /// Bytes of one block of 32 in a GGUF file.
    fn file_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::F32 => 128,
        }
    }

    /// Lines of one record: the scales, then the weights.
    fn lines(self) -> usize {
        match self {
            Self::Q4_1 => 1 + 4,
            Self::Q8_0 => 1 + 8,
            Self::F32 => 0,
        }
    }
}

/// A quantized `rows × cols` matrix in the interleaved layout (or `f32`
/// rows).
pub(crate) struct Matrix {
    format: Format,
    rows: usize,
    cols: usize,
    data: Vec<Line>,
    floats: Vec<f32>,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matrix")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Matrix {
    /// Repacks a GGUF tensor of GGML type `ty` (`rows` rows of `cols`, row
    /// after row of blocks, as GGUF stores them).
    pub(crate) fn from_gguf(
        ty: u32,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let format = Format::from_ggml(ty)
            .ok_or_else(|| format!("GGML type {ty} (only Q4_1, Q8_0 and F32 matrices run)"))?;
        if !rows.is_multiple_of(GROUP) || !cols.is_multiple_of(BLOCK) || rows == 0 || cols == 0 {
            return Err(format!(
                "a {rows}×{cols} matrix (rows must be a multiple of {GROUP}, columns of {BLOCK})"
            ));
        }
        let blocks = cols / BLOCK;
        let size = format.file_bytes();
        if bytes.len() != rows * blocks * size {
            return Err(format!(
                "{} bytes for a {rows}×{cols} {format:?} matrix",
                bytes.len()
            ));
        }
        if format == Format::F32 {
            return Ok(Self {
                format,
                rows,
                cols,
                data: Vec::new(),
                floats: bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            });
        }
        let lines = format.lines();
        let mut data = vec![Line([0; 64]); rows / GROUP * blocks * lines];
        for (g, group) in data.chunks_exact_mut(blocks * lines).enumerate() {
            for (b, record) in group.chunks_exact_mut(lines).enumerate() {
                for i in 0..GROUP {
                    let at = ((g * GROUP + i) * blocks + b) * size;
                    let block = &bytes[at..at + size];
                    // Scales at bytes 2i of line 0, minimums at 32 + 2i.
                    record[0].0[2 * i..2 * i + 2].copy_from_slice(&block[0..2]);
                    match format {
                        Format::Q4_1 => {
                            record[0].0[32 + 2 * i..32 + 2 * i + 2].copy_from_slice(&block[2..4]);
                            let qs = &block[4..20];
                            for k in 0..BLOCK {
                                let q = if k < 16 {
                                    qs[k] & 0x0F
                                } else {
                                    qs[k - 16] >> 4
                                };
                                let (line, shift) = ((k % 16) / 4, if k < 16 { 0 } else { 4 });
                                record[1 + line].0[4 * i + k % 4] |= q << shift;
                            }
                        }
                        Format::Q8_0 => {
                            for k in 0..BLOCK {
                                record[1 + k / 4].0[4 * i + k % 4] = block[2 + k] ^ 0x80;
                            }
                        }
                        Format::F32 => unreachable!("f32 rows are kept as they are"),
                    }
                }
            }
        }
        Ok(Self {
            format,
            rows,
            cols,
            data,
            floats: Vec::new(),
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Groups of [`GROUP`] rows: the unit in which threads share the rows.
    pub(crate) fn groups(&self) -> usize {
        self.rows / GROUP
    }

    fn blocks(&self) -> usize {
        self.cols / BLOCK
    }

    fn record(&self, group: usize, block: usize) -> &[Line] {
        let lines = self.format.lines();
        let at = (group * self.blocks() + block) * lines;
        &self.data[at..at + lines]
    }

    /// Row `row` dequantized into `out` (an embedding lookup).
    pub(crate) fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        if self.format == Format::F32 {
            out[..self.cols].copy_from_slice(&self.floats[row * self.cols..(row + 1) * self.cols]);
            return;
        }
        let (g, i) = (row / GROUP, row % GROUP);
        for (b, out) in out[..self.cols].chunks_exact_mut(BLOCK).enumerate() {
            let record = self.record(g, b);
            let d = scale(record, i);
            for (k, out) in out.iter_mut().enumerate() {
                let u = weight(self.format, record, i, k);
                *out = match self.format {
                    Format::Q4_1 => d * f32::from(u) + minimum(record, i),
                    Format::Q8_0 | Format::F32 => d * f32::from(i16::from(u) - 128),
                };
            }
        }
    }
}

fn scale(record: &[Line], row: usize) -> f32 {
    f16::from_le_bytes([record[0].0[2 * row], record[0].0[2 * row + 1]]).to_f32()
}

fn minimum(record: &[Line], row: usize) -> f32 {
    f16::from_le_bytes([record[0].0[32 + 2 * row], record[0].0[32 + 2 * row + 1]]).to_f32()
}

/// The unsigned weight at column `k` of row `row` of a record.
fn weight(format: Format, record: &[Line], row: usize, k: usize) -> u8 {
    match format {
        Format::Q4_1 => {
            let byte = record[1 + (k % 16) / 4].0[4 * row + k % 4];
            if k < 16 { byte & 0x0F } else { byte >> 4 }
        }
        Format::Q8_0 | Format::F32 => record[1 + k / 4].0[4 * row + k % 4],
    }
}

/// Tokens' activations quantized to 8 bits per block of 32 (GGML's Q8_1:
/// scale `d = max|x| / 127`, `q = round(x / d)`, and `s = d·Σq`).
#[derive(Debug, Default)]
pub(crate) struct Quantized {
    cols: usize,
    /// The values themselves, for `f32` matrices.
    x: Vec<f32>,
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    sum: Vec<i32>,
}

impl Quantized {
    /// Room for `tokens` rows of `cols` (a multiple of [`BLOCK`]).
    pub(crate) fn reset(&mut self, tokens: usize, cols: usize) {
        debug_assert_eq!(cols % BLOCK, 0);
        self.cols = cols;
        self.x.resize(tokens * cols, 0.0);
        self.q.resize(tokens * cols, 0);
        let blocks = tokens * cols / BLOCK;
        self.d.resize(blocks, 0.0);
        self.s.resize(blocks, 0.0);
        self.sum.resize(blocks, 0);
    }

    pub(crate) fn tokens(&self) -> usize {
        self.q.len().checked_div(self.cols).unwrap_or(0)
    }

    /// Quantizes `x` (one token's `cols` values) into row `token`.
    pub(crate) fn set(&mut self, token: usize, x: &[f32]) {
        self.rows().set(token, x);
    }
}

/// A [`Quantized`]'s rows, filled by several threads at once, each its own
/// tokens.
pub(crate) struct Rows<'a> {
    cols: usize,
    x: *mut f32,
    q: *mut i8,
    d: *mut f32,
    s: *mut f32,
    sum: *mut i32,
    tokens: usize,
    _rows: std::marker::PhantomData<&'a mut Quantized>,
}

// SAFETY: threads write disjoint tokens' rows (the callers' contract, as
// with `Out`), and the team's step boundaries order them.
unsafe impl Sync for Rows<'_> {}

impl Quantized {
    /// The rows, for threads to fill each its own tokens with
    /// [`Rows::set`].
    pub(crate) fn rows(&mut self) -> Rows<'_> {
        Rows {
            cols: self.cols,
            x: self.x.as_mut_ptr(),
            q: self.q.as_mut_ptr(),
            d: self.d.as_mut_ptr(),
            s: self.s.as_mut_ptr(),
            sum: self.sum.as_mut_ptr(),
            tokens: self.tokens(),
            _rows: std::marker::PhantomData,
        }
    }
}

impl Rows<'_> {
    /// [`Quantized::set`]; no other thread may set `token` in the same step.
    pub(crate) fn set(&self, token: usize, x: &[f32]) {
        assert!(token < self.tokens && x.len() == self.cols);
        let blocks = self.cols / BLOCK;
        // SAFETY: in bounds (asserted: the buffers hold `tokens` rows), and
        // no other thread touches this token's row during the step.
        unsafe {
            let row =
                |p: *mut f32| std::slice::from_raw_parts_mut(p.add(token * self.cols), self.cols);
            let at = |p: *mut f32| std::slice::from_raw_parts_mut(p.add(token * blocks), blocks);
            row(self.x).copy_from_slice(x);
            quantize(
                x,
                std::slice::from_raw_parts_mut(self.q.add(token * self.cols), self.cols),
                at(self.d),
                at(self.s),
                std::slice::from_raw_parts_mut(self.sum.add(token * blocks), blocks),
            );
        }
    }
}

/// Quantizes one token's row: per block of 32, `d = max|x| / 127`,
/// `q = round(x / d)` (half to even), `sum = Σq`, `s = d·sum`.
fn quantize(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32], sum: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    let wide = has_avx512();
    for (b, (x, q)) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        let x: &[f32; BLOCK] = x.try_into().expect("a block");
        let q: &mut [i8; BLOCK] = q.try_into().expect("a block");
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        #[cfg(target_arch = "x86_64")]
        let total = if wide {
            // SAFETY: the CPU has AVX-512F and BW (checked).
            unsafe { avx512::round(x, inverse, q) }
        } else {
            round(x, inverse, q)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let total = round(x, inverse, q);
        d[b] = scale;
        sum[b] = total;
        s[b] = scale * total as f32;
    }
}

/// `q = round(x · inverse)`, half to even, without a libm call: adding and
/// taking away 1.5·2^23 leaves the nearest integer (|x·inverse| ≤ 127).
/// Returns `Σq`.
fn round(x: &[f32; BLOCK], inverse: f32, q: &mut [i8; BLOCK]) -> i32 {
    let mut total = 0;
    for (q, &x) in q.iter_mut().zip(x) {
        let v = (x * inverse + 12_582_912.0) - 12_582_912.0;
        *q = v as i8;
        total += i32::from(*q);
    }
    total
}

/// How a product meets its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// `out = W·x`.
    Store,
    /// `out += W·x` (a residual connection).
    Add,
}

/// Rows `groups` (in groups of [`GROUP`]) of `W·x` for every token of `x`:
/// token `t`'s row `r` goes to `out[t * stride + r]`.
///
/// Threads may share one `out` when their `groups` do not overlap.
pub(crate) fn product(
    w: &Matrix,
    x: &Quantized,
    groups: std::ops::Range<usize>,
    out: &Out,
    stride: usize,
    write: Write,
) {
    assert_eq!(w.cols, x.cols, "the activations' width is the matrix's");
    assert!(groups.end <= w.groups());
    let tokens = x.tokens();
    assert!(tokens == 0 || (tokens - 1) * stride + w.rows <= out.len());
    if w.format == Format::F32 {
        for t in 0..tokens {
            let x = &x.x[t * x.cols..(t + 1) * x.cols];
            let rows = groups.start * GROUP..groups.end * GROUP;
            let out = out.slice(t * stride + rows.start..t * stride + rows.end);
            float_rows(
                &w.floats[rows.start * w.cols..rows.end * w.cols],
                x,
                out,
                write == Write::Add,
            );
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        for g in groups {
            let mut t = 0;
            while t < tokens {
                let n = TILE.min(tokens - t);
                // SAFETY: the CPU has the features (checked above); `record`
                // and the activations' bounds are checked by `group_avx512`'s
                // slicing, and `out` holds every token's rows (asserted).
                unsafe { avx512::group(w, x, g, t, n, out, stride, write) };
                t += n;
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        for g in groups {
            for half in 0..2 {
                let mut t = 0;
                while t < tokens {
                    let n = avx2::TILE.min(tokens - t);
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked above);
                    // the bounds as for AVX-512.
                    unsafe { avx2::group(w, x, g, half, t, n, out, stride, write) };
                    t += n;
                }
            }
        }
        return;
    }
    for g in groups {
        group_portable(w, x, g, out, stride, write);
    }
}

dispatch!(float_rows(w: &[f32], x: &[f32], out: &mut [f32], add: bool) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
        let v = dot(row, x);
        *o = if add { *o + v } else { v };
    }
});

/// `src` rounded to `f16` (to nearest, ties to even) into `dst`.
pub(crate) fn to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F (checked); the lengths are equal.
        unsafe { avx512::to_f16(src, dst) };
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(s);
    }
}

/// One group's 16 rows for every token, in the same order of rounding as
/// the SIMD path: each block's weights unpacked once, then each token's
/// integer sums (which the compiler vectorizes for the baseline CPU).
fn group_portable(w: &Matrix, x: &Quantized, g: usize, out: &Out, stride: usize, write: Write) {
    let (blocks, tokens) = (w.blocks(), x.tokens());
    let mut acc = vec![[0.0f32; GROUP]; tokens];
    let mut weights = [[0u8; BLOCK]; GROUP];
    for b in 0..blocks {
        let record = w.record(g, b);
        for (i, row) in weights.iter_mut().enumerate() {
            *row = std::array::from_fn(|k| weight(w.format, record, i, k));
        }
        let d: [f32; GROUP] = std::array::from_fn(|i| scale(record, i));
        let m: [f32; GROUP] = std::array::from_fn(|i| match w.format {
            Format::Q4_1 => minimum(record, i),
            Format::Q8_0 | Format::F32 => 0.0,
        });
        for (t, acc) in acc.iter_mut().enumerate() {
            let at = t * blocks + b;
            let a: &[i8; BLOCK] = x.q[at * BLOCK..(at + 1) * BLOCK]
                .try_into()
                .expect("a block");
            for (i, acc) in acc.iter_mut().enumerate() {
                let mut sum: i32 = weights[i]
                    .iter()
                    .zip(a)
                    .map(|(&w, &a)| i32::from(w) * i32::from(a))
                    .sum();
                match w.format {
                    Format::Q4_1 => {
                        *acc = (sum as f32).mul_add(d[i] * x.d[at], *acc);
                        *acc = m[i].mul_add(x.s[at], *acc);
                    }
                    Format::Q8_0 | Format::F32 => {
                        sum -= 128 * x.sum[at];
                        *acc = (sum as f32).mul_add(d[i] * x.d[at], *acc);
                    }
                }
            }
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        for (i, &acc) in acc.iter().enumerate() {
            let at = t * stride + g * GROUP + i;
            match write {
                Write::Store => out.set(at, acc),
                Write::Add => out.set(at, out.get(at) + acc),
            }
        }
    }
}

/// The products with AVX2 (x86-64-v3 CPUs without AVX-512): each record
/// in two halves of 8 rows, `vpmaddubsw` and `vpmaddwd` for `vpdpbusd`
/// (the same 32-bit sums: a pair of 4-bit weights by 8-bit activations
/// cannot saturate 16 bits; Q8_0 multiplies `|q|` by `a·sign(q)`, as ggml
/// does, whose pairs cannot either), then the same float operations, so
/// the same bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Format, GROUP, Matrix, Quantized, Write};
    use crate::parallel::Out;

    /// Tokens per unpacked half record (16 registers).
    pub(super) const TILE: usize = 4;

    /// Rows `8·half..8·half + 8` of group `g` for tokens `t..t + n`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `out` holds `(t + n - 1) * stride +
    /// w.rows` values.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn group(
        w: &Matrix,
        x: &Quantized,
        g: usize,
        half: usize,
        t: usize,
        n: usize,
        out: &Out,
        stride: usize,
        write: Write,
    ) {
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match n {
                    $($n => unsafe { half_group::<$n>(w, x, g, half, t, out, stride, write) },)*
                    _ => unreachable!("at most four tokens at once"),
                }
            };
        }
        dispatch!(1 2 3 4);
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half_group<const N: usize>(
        w: &Matrix,
        x: &Quantized,
        g: usize,
        half: usize,
        t: usize,
        out: &Out,
        stride: usize,
        write: Write,
    ) {
        let blocks = w.blocks();
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..blocks {
            let record = w.record(g, b);
            // SAFETY: a record's lines are 64 aligned bytes; this half's
            // scales are 16 bytes at 16·half (minimums 32 further), its
            // weights 32 bytes at 32·half of each line.
            let (d, m, weights) = unsafe {
                let head = record[0].0.as_ptr();
                let d = _mm256_cvtph_ps(_mm_load_si128(head.add(16 * half).cast()));
                let m = _mm256_cvtph_ps(_mm_load_si128(head.add(32 + 16 * half).cast()));
                let line = |l: usize| _mm256_load_si256(record[l].0.as_ptr().add(32 * half).cast());
                let weights: [__m256i; 8] = match w.format {
                    Format::Q4_1 => std::array::from_fn(|s| {
                        if s < 4 {
                            _mm256_and_si256(line(1 + s), low)
                        } else {
                            _mm256_and_si256(_mm256_srli_epi16(line(1 + s - 4), 4), low)
                        }
                    }),
                    // Back to the signed `q` (stored as `q + 128`).
                    _ => std::array::from_fn(|s| {
                        _mm256_xor_si256(line(1 + s), _mm256_set1_epi8(-128))
                    }),
                };
                (d, m, weights)
            };
            for (i, acc) in acc.iter_mut().enumerate() {
                let at = (t + i) * blocks + b;
                let a = &x.q[at * BLOCK..(at + 1) * BLOCK];
                let mut sum = _mm256_setzero_si256();
                for (s, &w8) in weights.iter().enumerate() {
                    let a = _mm256_set1_epi32(i32::from_le_bytes([
                        a[4 * s] as u8,
                        a[4 * s + 1] as u8,
                        a[4 * s + 2] as u8,
                        a[4 * s + 3] as u8,
                    ]));
                    let pairs = match w.format {
                        Format::Q4_1 => _mm256_maddubs_epi16(w8, a),
                        _ => {
                            _mm256_maddubs_epi16(_mm256_sign_epi8(w8, w8), _mm256_sign_epi8(a, w8))
                        }
                    };
                    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, ones));
                }
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(x.d[at]));
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, *acc);
                if w.format == Format::Q4_1 {
                    *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(x.s[at]), *acc);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let at = (t + i) * stride + g * GROUP + 8 * half;
            let p = out.ptr(at, 8);
            // SAFETY: `out.ptr` checked that 8 values from `at` are in it.
            unsafe {
                let v = match write {
                    Write::Store => *acc,
                    Write::Add => _mm256_add_ps(_mm256_loadu_ps(p), *acc),
                };
                _mm256_storeu_ps(p, v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{BLOCK, Format, GROUP, Matrix, Quantized, Write};
    use crate::parallel::Out;

    /// Group `g` for tokens `t..t + n` (`n` ≤ 8).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI; `out` holds `(t + n - 1) * stride
    /// + w.rows` values.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn group(
        w: &Matrix,
        x: &Quantized,
        g: usize,
        t: usize,
        n: usize,
        out: &Out,
        stride: usize,
        write: Write,
    ) {
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match (w.format, n) {
                    $((Format::Q4_1, $n) => unsafe { columns::<true, $n>(w, x, g, t, out, stride, write) },)*
                    $((Format::Q8_0, $n) => unsafe { columns::<false, $n>(w, x, g, t, out, stride, write) },)*
                    _ => unreachable!("at most eight tokens at once, of quantized weights"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8);
    }

    /// Records ahead of the one being multiplied that are asked for from
    /// memory: a step streams ~100 MB of weights, and with eight tokens per
    /// record the hardware prefetcher alone fell behind.
    const AHEAD: usize = 16;

    /// Asks for record `AHEAD` after group `g`'s block `b` (the next
    /// group's first blocks near the end of a group: the order they are read).
    #[inline(always)]
    fn prefetch(w: &Matrix, g: usize, b: usize) {
        let lines = w.format.lines();
        let at = (g * w.blocks() + b + AHEAD) * lines;
        if at + lines <= w.data.len() {
            for line in &w.data[at..at + lines] {
                // SAFETY: a hint; the address is in the matrix.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.0.as_ptr().cast()) };
            }
        }
    }

    /// Token `t`'s 32 activations of block `b`.
    #[inline(always)]
    fn activations(x: &Quantized, t: usize, b: usize) -> &[i8; BLOCK] {
        let at = t * x.cols + b * BLOCK;
        x.q[at..at + BLOCK]
            .try_into()
            .expect("a block of activations")
    }

    /// Σ over the 8 steps of `w[s] · a[4s..4s+4]` (each four activations
    /// broadcast to every row's lane: the load folds into `vpdpbusd`), in
    /// two chains (the instruction's latency is longer than its throughput).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn dot(w: &[__m512i; 8], a: &[i8; BLOCK]) -> __m512i {
        // SAFETY: steps 0-7 read bytes 0-31 of the 32.
        let step = |s: usize| {
            _mm512_set1_epi32(unsafe { a.as_ptr().cast::<i32>().add(s).read_unaligned() })
        };
        let zero = _mm512_setzero_si512();
        let mut even = _mm512_dpbusd_epi32(zero, w[0], step(0));
        let mut odd = _mm512_dpbusd_epi32(zero, w[1], step(1));
        for s in (2..8).step_by(2) {
            even = _mm512_dpbusd_epi32(even, w[s], step(s));
            odd = _mm512_dpbusd_epi32(odd, w[s + 1], step(s + 1));
        }
        _mm512_add_epi32(even, odd)
    }

    /// Runs `$body` for columns `0..N` as straight-line code, so that each
    /// column's accumulator stays in a register.
    macro_rules! columns {
        ($n:ident, $body:block) => {
            columns!(@ $n, $body, 0 1 2 3 4 5 6 7)
        };
        (@ $n:ident, $body:block, $($i:literal)*) => {
            $(if $i < N {
                let $n = $i;
                $body
            })*
        };
    }

    /// `to_f16` 16 values at a time (`vcvtps2ph`, which rounds as `half`
    /// does: to nearest, ties to even).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn to_f16(src: &[f32], dst: &mut [f16]) {
        let (chunks, tail) = (src.len() / 16, src.len() % 16);
        for c in 0..chunks {
            // SAFETY: 16 values at 16·c, in both (equal lengths).
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(16 * c));
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                _mm256_storeu_si256(dst.as_mut_ptr().add(16 * c).cast(), h);
            }
        }
        for i in src.len() - tail..src.len() {
            dst[i] = f16::from_f32(src[i]);
        }
    }

    /// `round`, 32 values in two vectors: the same operations, so the same
    /// bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn round(x: &[f32; BLOCK], inverse: f32, q: &mut [i8; BLOCK]) -> i32 {
        let magic = _mm512_set1_ps(12_582_912.0);
        let inverse = _mm512_set1_ps(inverse);
        let mut total = _mm512_setzero_si512();
        for half in 0..2 {
            // SAFETY: 16 values at 16·half of 32.
            let v = unsafe { _mm512_loadu_ps(x.as_ptr().add(16 * half)) };
            let v = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(v, inverse), magic), magic);
            // Whole numbers in -127..=127: the conversion is exact.
            let n = _mm512_cvtps_epi32(v);
            total = _mm512_add_epi32(total, n);
            // SAFETY: 16 bytes at 16·half of 32.
            unsafe {
                _mm_storeu_si128(
                    q.as_mut_ptr().add(16 * half).cast(),
                    _mm512_cvtepi32_epi8(n),
                )
            };
        }
        _mm512_reduce_add_epi32(total)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn store<const N: usize>(
        acc: &[__m512; N],
        g: usize,
        t: usize,
        out: &Out,
        stride: usize,
        write: Write,
    ) {
        for (n, acc) in acc.iter().enumerate() {
            let at = (t + n) * stride + g * GROUP;
            let p = out.ptr(at, GROUP);
            // SAFETY: `out.ptr` checked that 16 values from `at` are in it.
            unsafe {
                let v = match write {
                    Write::Store => *acc,
                    Write::Add => _mm512_add_ps(_mm512_loadu_ps(p), *acc),
                };
                _mm512_storeu_ps(p, v);
            }
        }
    }

    /// Group `g` for tokens `t..t + N`, of Q4_1 weights (`Q4_1`) or Q8_0.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn columns<const Q4_1: bool, const N: usize>(
        w: &Matrix,
        x: &Quantized,
        g: usize,
        t: usize,
        out: &Out,
        stride: usize,
        write: Write,
    ) {
        let blocks = w.blocks();
        let low = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); N];
        for b in 0..blocks {
            let record = w.record(g, b);
            prefetch(w, g, b);
            let line = |l: usize| {
                // SAFETY: a record's lines are 64 aligned bytes.
                unsafe { _mm512_load_si512(record[l].0.as_ptr().cast()) }
            };
            // SAFETY: the scales (and Q4_1's minimums) are line 0's two
            // halves of 32 bytes.
            let (d, m) = unsafe {
                let head = record[0].0.as_ptr();
                (
                    _mm512_cvtph_ps(_mm256_load_si256(head.cast())),
                    _mm512_cvtph_ps(_mm256_load_si256(head.add(32).cast())),
                )
            };
            // Q4_1: line 1 + j holds steps j (low nibbles) and j + 4 (high);
            // Q8_0: line 1 + s holds step s.
            let weights: [__m512i; 8] = std::array::from_fn(|s| match (Q4_1, s < 4) {
                (true, true) => _mm512_and_si512(line(1 + s), low),
                (true, false) => _mm512_and_si512(_mm512_srli_epi16(line(1 + s - 4), 4), low),
                (false, _) => line(1 + s),
            });
            columns!(n, {
                let at = (t + n) * blocks + b;
                let mut sum = dot(&weights, activations(x, t + n, b));
                if !Q4_1 {
                    // The weights are `q + 128`.
                    sum = _mm512_sub_epi32(sum, _mm512_set1_epi32(128 * x.sum[at]));
                }
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(x.d[at]));
                acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[n]);
                if Q4_1 {
                    acc[n] = _mm512_fmadd_ps(m, _mm512_set1_ps(x.s[at]), acc[n]);
                }
            });
        }
        // SAFETY: the caller's bounds.
        unsafe { store(&acc, g, t, out, stride, write) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of bytes.
    fn bytes(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (seed >> 33) as u8
            })
            .collect()
    }

    /// A GGUF tensor of random blocks with small, finite `f16` scales.
    fn tensor(format: Format, rows: usize, cols: usize) -> Vec<u8> {
        let size = format.file_bytes();
        let mut data = bytes(rows * cols / BLOCK * size, 7);
        for block in data.chunks_exact_mut(size) {
            let d = f16::from_f32(0.01 + f32::from(block[0]) / 4096.0);
            block[0..2].copy_from_slice(&d.to_le_bytes());
            if format == Format::Q4_1 {
                let m = f16::from_f32(-0.05 + f32::from(block[2]) / 8192.0);
                block[2..4].copy_from_slice(&m.to_le_bytes());
            }
        }
        data
    }

    fn dequantized(format: Format, rows: usize, cols: usize, data: &[u8]) -> Vec<f32> {
        let m = Matrix::from_gguf(
            match format {
                Format::Q4_1 => GGML_Q4_1,
                Format::Q8_0 => GGML_Q8_0,
                Format::F32 => GGML_F32,
            },
            rows,
            cols,
            data,
        )
        .unwrap();
        let mut out = vec![0.0; rows * cols];
        for (r, row) in out.chunks_exact_mut(cols).enumerate() {
            m.dequantize_row(r, row);
        }
        out
    }

    #[test]
    fn repacking_keeps_every_weight() {
        let (rows, cols) = (32, 64);
        let data = tensor(Format::Q4_1, rows, cols);
        let w = dequantized(Format::Q4_1, rows, cols, &data);
        // Row 17, block 1, as the file has it.
        let block = &data[(17 * 2 + 1) * 20..(17 * 2 + 2) * 20];
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
        for k in 0..32 {
            let q = if k < 16 {
                block[4 + k] & 15
            } else {
                block[4 + k - 16] >> 4
            };
            assert_eq!(w[17 * cols + 32 + k], d * f32::from(q) + m);
        }
        let data = tensor(Format::Q8_0, rows, cols);
        let w = dequantized(Format::Q8_0, rows, cols, &data);
        let block = &data[(5 * 2) * 34..(5 * 2 + 1) * 34];
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        for k in 0..32 {
            assert_eq!(w[5 * cols + k], d * f32::from(block[2 + k] as i8));
        }
    }

    fn activations(tokens: usize, cols: usize) -> (Vec<f32>, Quantized) {
        let x: Vec<f32> = bytes(tokens * cols, 3)
            .iter()
            .map(|&b| (f32::from(b) - 127.5) / 40.0)
            .collect();
        let mut q = Quantized::default();
        q.reset(tokens, cols);
        for (t, row) in x.chunks_exact(cols).enumerate() {
            q.set(t, row);
        }
        (x, q)
    }

    fn run(m: &Matrix, q: &Quantized, portable: bool) -> Vec<f32> {
        let mut out = vec![0.0; q.tokens() * m.rows];
        let shared = Out::new(&mut out);
        if portable {
            for g in 0..m.groups() {
                group_portable(m, q, g, &shared, m.rows, Write::Store);
            }
        } else {
            product(m, q, 0..m.groups(), &shared, m.rows, Write::Store);
        }
        out
    }

    #[test]
    fn products_match_the_dequantized_weights_and_both_paths_agree_bit_for_bit() {
        let (rows, cols, tokens) = (48, 96, 11);
        for format in [Format::Q4_1, Format::Q8_0] {
            let data = tensor(format, rows, cols);
            let ty = if format == Format::Q4_1 {
                GGML_Q4_1
            } else {
                GGML_Q8_0
            };
            let m = Matrix::from_gguf(ty, rows, cols, &data).unwrap();
            let w = dequantized(format, rows, cols, &data);
            let (x, q) = activations(tokens, cols);
            let fast = run(&m, &q, false);
            assert_eq!(
                fast,
                run(&m, &q, true),
                "{format:?}: SIMD and portable differ"
            );
            for t in 0..tokens {
                for r in 0..rows {
                    let exact: f32 = (0..cols).map(|k| w[r * cols + k] * x[t * cols + k]).sum();
                    let got = fast[t * rows + r];
                    // Rounding an activation moves it by at most half its
                    // block's step.
                    let tolerance: f32 = (0..cols)
                        .map(|k| w[r * cols + k].abs() * q.d[t * cols / BLOCK + k / BLOCK] / 2.0)
                        .sum::<f32>()
                        + 1e-4;
                    assert!(
                        (got - exact).abs() < tolerance,
                        "{format:?} t{t} r{r}: {got} vs {exact}"
                    );
                }
            }
            // The AVX2 products too, where the CPU has them.
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                let mut out = vec![0.0; tokens * rows];
                let shared = Out::new(&mut out);
                for g in 0..m.groups() {
                    for half in 0..2 {
                        for t in (0..tokens).step_by(avx2::TILE) {
                            let n = avx2::TILE.min(tokens - t);
                            // SAFETY: the CPU has the features (checked).
                            unsafe {
                                avx2::group(&m, &q, g, half, t, n, &shared, rows, Write::Store)
                            };
                        }
                    }
                }
                assert_eq!(out, fast, "{format:?}: AVX2 and the others differ");
            }
            // One token alone gives the same bits as in the batch.
            for t in [0, 5, 10] {
                let mut one = Quantized::default();
                one.reset(1, cols);
                one.set(0, &x[t * cols..(t + 1) * cols]);
                assert_eq!(run(&m, &one, false), fast[t * rows..(t + 1) * rows]);
            }
        }
    }

    #[test]
    fn both_roundings_give_the_same_bytes() {
        let x: Vec<f32> = bytes(32 * 64, 11)
            .iter()
            .map(|&b| (f32::from(b) - 128.0) / 7.0)
            .collect();
        for (i, block) in x.chunks_exact(BLOCK).enumerate() {
            let block: &[f32; BLOCK] = block.try_into().unwrap();
            // Exact halves come up when the inverse scale is a whole number.
            let inverse = if i % 2 == 0 { 2.0 } else { 127.0 / 18.3 };
            let (mut a, mut b) = ([0i8; BLOCK], [0i8; BLOCK]);
            let total = round(block, inverse, &mut a);
            #[cfg(target_arch = "x86_64")]
            if has_avx512() {
                // SAFETY: the CPU has the features (checked).
                assert_eq!(unsafe { avx512::round(block, inverse, &mut b) }, total);
                assert_eq!(a, b);
            }
            assert_eq!(total, a.iter().map(|&q| i32::from(q)).sum::<i32>());
        }
        // Half to even.
        let mut q = [0i8; BLOCK];
        let mut x = [0.0f32; BLOCK];
        x[..4].copy_from_slice(&[0.5, 1.5, 2.5, -0.5]);
        round(&x, 1.0, &mut q);
        assert_eq!(q[..4], [0, 2, 2, 0]);
    }

    #[test]
    fn both_conversions_to_f16_round_alike() {
        // Normal, subnormal, overflowing and halfway values.
        let mut src: Vec<f32> = bytes(4 * 1000, 5)
            .chunks_exact(4)
            .map(|b| f32::from_bits(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0xC7FF_FFFF))
            .filter(|v| !v.is_nan())
            .collect();
        src.extend([
            1.0 + 1.0 / 2048.0,
            1.0 + 3.0 / 2048.0,
            65_520.0,
            1e-7,
            -0.0,
            6.0e-8,
        ]);
        let mut fast = vec![f16::ZERO; src.len()];
        to_f16(&src, &mut fast);
        let portable: Vec<f16> = src.iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(
            fast.iter().map(|h| h.to_bits()).collect::<Vec<_>>(),
            portable.iter().map(|h| h.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn adding_accumulates_into_the_output() {
        let (rows, cols) = (16, 32);
        let m =
            Matrix::from_gguf(GGML_Q4_1, rows, cols, &tensor(Format::Q4_1, rows, cols)).unwrap();
        let (_, q) = activations(1, cols);
        let stored = run(&m, &q, false);
        let mut out = vec![1.5; rows];
        product(&m, &q, 0..1, &Out::new(&mut out), rows, Write::Add);
        for (a, s) in out.iter().zip(&stored) {
            assert_eq!(*a, 1.5 + s);
        }
    }

    #[test]
    fn shapes_that_do_not_fit_the_layout_are_refused() {
        assert!(Matrix::from_gguf(GGML_Q4_1, 15, 32, &vec![0; 15 * 20]).is_err());
        assert!(Matrix::from_gguf(GGML_Q4_1, 16, 33, &[]).is_err());
        // Q4_0: no kernel.
        assert!(Matrix::from_gguf(2, 16, 32, &vec![0; 16 * 18]).is_err());
        assert!(Matrix::from_gguf(GGML_Q8_0, 16, 32, &[0; 10]).is_err());
    }
}
