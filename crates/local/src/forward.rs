//! SmolLM2's forward pass (the Llama architecture) on sluice's own kernels:
//! a batch of tokens from any number of sequences, each with its own cache of
//! keys and values, in one pass over the weights.
//!
//! Per layer: RMS norm, the query/key/value products, rotary positions
//! (adjacent pairs, as GGUF's Llama weights are laid out), causal attention
//! with grouped keys and values, the output product added to the residual,
//! RMS norm, SwiGLU (gate, up, down) added to the residual; then the final
//! norm and the output product (the token embeddings, tied) for the tokens
//! that want logits.
//!
//! The same token gets the same numbers in any batch and on any number of
//! threads: the products are computed per token (`kernel`), attention per
//! token and head over its own sequence's cache in a fixed order, and every
//! sum below runs in a fixed order of 16 lanes.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use half::f16;

use crate::LocalError;
use crate::attention::{self, Heads, rms_norm, swiglu};
use crate::gguf::{Layout, TensorInfo};
use crate::kernel::{GGML_F32, Matrix, Quantized, Write, product, tensor_bytes, to_f16};
use crate::parallel::{Out, Team, with_team};

/// The model's shape, from the GGUF metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Config {
    pub(crate) layers: usize,
    pub(crate) embd: usize,
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) ffn: usize,
    pub(crate) vocab: usize,
    pub(crate) rope_base: f64,
    pub(crate) eps: f32,
}

impl Config {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The weights, repacked for the kernels.
pub(crate) struct Weights {
    config: Config,
    embed: Matrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// `None`: the embeddings are tied (SmolLM2).
    output: Option<Matrix>,
}

fn bad(message: impl std::fmt::Display) -> LocalError {
    LocalError::Model {
        message: message.to_string(),
    }
}

impl Weights {
    /// Reads a Llama-architecture GGUF file's weights.
    pub(crate) fn load(path: &Path) -> Result<Self, LocalError> {
        let io = |e: std::io::Error| LocalError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut file = BufReader::new(std::fs::File::open(path).map_err(io)?);
        let layout =
            Layout::read(&mut file).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        let meta = &layout.metadata;
        let number = |key: &str| {
            meta.get(&format!("llama.{key}"))
                .and_then(|v| v.as_i64())
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(format!("the GGUF file has no llama.{key}")))
        };
        let float = |key: &str, default: f64| match meta.get(&format!("llama.{key}")) {
            Some(crate::gguf::Value::Float(f)) => *f,
            _ => default,
        };
        let embd = number("embedding_length")?;
        let heads = number("attention.head_count")?;
        let kv_heads = number("attention.head_count_kv").unwrap_or(heads);
        let head_dim = embd / heads;
        if head_dim * heads != embd || heads % kv_heads != 0 || head_dim % 16 != 0 {
            return Err(bad(format!(
                "{heads} heads over {kv_heads} key/value heads of {embd}"
            )));
        }
        let mut config = Config {
            layers: number("block_count")?,
            embd,
            heads,
            kv_heads,
            head_dim,
            ffn: number("feed_forward_length")?,
            vocab: 0,
            rope_base: float("rope.freq_base", 10_000.0),
            eps: float("attention.layer_norm_rms_epsilon", 1e-5) as f32,
        };
        let mut reader = Tensors {
            file: &mut file,
            layout: &layout,
        };
        let embed = reader.matrix("token_embd.weight", None, Some(embd))?;
        config.vocab = embed.rows();
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let name = |n: &str| format!("blk.{l}.{n}.weight");
            let (e, kv, f) = (Some(embd), Some(config.kv_dim()), Some(config.ffn));
            layers.push(Layer {
                attn_norm: reader.vector(&name("attn_norm"), embd)?,
                q: reader.matrix(&name("attn_q"), e, e)?,
                k: reader.matrix(&name("attn_k"), kv, e)?,
                v: reader.matrix(&name("attn_v"), kv, e)?,
                o: reader.matrix(&name("attn_output"), e, e)?,
                ffn_norm: reader.vector(&name("ffn_norm"), embd)?,
                gate: reader.matrix(&name("ffn_gate"), f, e)?,
                up: reader.matrix(&name("ffn_up"), f, e)?,
                down: reader.matrix(&name("ffn_down"), e, f)?,
            });
        }
        let norm = reader.vector("output_norm.weight", embd)?;
        let output = match layout.tensors.iter().any(|t| t.name == "output.weight") {
            true => Some(reader.matrix("output.weight", Some(config.vocab), Some(embd))?),
            false => None,
        };
        Ok(Self {
            config,
            embed,
            layers,
            norm,
            output,
        })
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
}

/// Reads tensors by name.
struct Tensors<'a, R> {
    file: &'a mut R,
    layout: &'a Layout,
}

impl<R: Read + Seek> Tensors<'_, R> {
    fn bytes(&mut self, name: &str) -> Result<(&TensorInfo, Vec<u8>), LocalError> {
        let tensor = self
            .layout
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| bad(format!("the GGUF file has no tensor {name}")))?;
        let size = tensor_bytes(tensor.ty, tensor.elements())
            .ok_or_else(|| bad(format!("{name}: GGML type {} is not supported", tensor.ty)))?;
        let mut data = vec![0; usize::try_from(size).map_err(bad)?];
        self.file
            .seek(SeekFrom::Start(self.layout.data_start + tensor.offset))
            .and_then(|_| self.file.read_exact(&mut data))
            .map_err(|e| bad(format!("{name}: {e}")))?;
        Ok((tensor, data))
    }

    /// A matrix of `rows × cols` (GGUF lists the columns first).
    fn matrix(
        &mut self,
        name: &str,
        rows: Option<usize>,
        cols: Option<usize>,
    ) -> Result<Matrix, LocalError> {
        let (tensor, data) = self.bytes(name)?;
        let dims: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        let [c, r] = dims[..] else {
            return Err(bad(format!("{name} has dimensions {dims:?}")));
        };
        if rows.is_some_and(|rows| rows != r) || cols.is_some_and(|cols| cols != c) {
            return Err(bad(format!("{name} is {r}×{c}, not {rows:?}×{cols:?}")));
        }
        Matrix::from_gguf(tensor.ty, r, c, &data).map_err(|e| bad(format!("{name}: {e}")))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, LocalError> {
        let (tensor, data) = self.bytes(name)?;
        if tensor.ty != GGML_F32 || tensor.elements() != len as u64 {
            return Err(bad(format!(
                "{name}: {:?} of type {}, not {len} f32",
                tensor.dims, tensor.ty
            )));
        }
        Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// One sequence's keys and values: per layer and key/value head, `len`
/// cells of `head_dim` values, in `f16` (as llama.cpp keeps them: half the
/// memory of `f32` for a class's eight caches, and half the bytes attention
/// reads). A head's cells lie one after the other, so attention reads each
/// head's keys as one stream (with the heads interleaved per cell, a batch's
/// attention waited on memory a quarter of its time).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    len: usize,
    /// `[layer * kv_heads + head]`.
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
}

impl Cache {
    /// Cells filled.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets every cell and gives the memory back.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    fn grow(&mut self, config: &Config, len: usize) {
        let heads = config.layers * config.kv_heads;
        self.k.resize_with(heads, Vec::new);
        self.v.resize_with(heads, Vec::new);
        for head in self.k.iter_mut().chain(&mut self.v) {
            head.resize(len * config.head_dim, f16::ZERO);
        }
        self.len = len;
    }
}

/// One token of a batch: its id, its position in its sequence (the next
/// cell of that sequence's cache) and whether its logits are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) id: u32,
    pub(crate) seq: usize,
    pub(crate) pos: usize,
    pub(crate) logits: bool,
}

/// Buffers a forward pass reuses.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,
    xq: Quantized,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attention: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    hq: Quantized,
    rope: Vec<(f32, f32)>,
    logits: Vec<f32>,
}

impl Scratch {
    /// The logits of the last forward pass.
    pub(crate) fn logits(&self) -> &[f32] {
        &self.logits
    }
}

/// Runs `tokens` through the model, appending their keys and values to
/// `caches[token.seq]`; leaves the logits of the tokens that want them in
/// [`Scratch::logits`], one row of `vocab` each, in batch order.
pub(crate) fn forward(
    weights: &Weights,
    tokens: &[Token],
    caches: &mut [Cache],
    threads: usize,
    scratch: &mut Scratch,
) -> Result<(), LocalError> {
    let c = weights.config;
    // Each sequence's tokens continue its cache, in order.
    let mut next: Vec<usize> = caches.iter().map(Cache::len).collect();
    for token in tokens {
        let expected = next
            .get_mut(token.seq)
            .ok_or_else(|| bad(format!("sequence {} has no cache", token.seq)))?;
        if token.pos != *expected || token.id as usize >= c.vocab {
            return Err(bad(format!(
                "token {} at {} of sequence {} (its cache holds {})",
                token.id, token.pos, token.seq, expected
            )));
        }
        *expected += 1;
    }
    for (cache, &len) in caches.iter_mut().zip(&next) {
        if len > cache.len {
            cache.grow(&c, len);
        }
    }
    let n = tokens.len();
    let s = scratch;
    s.x.resize(n * c.embd, 0.0);
    for (t, token) in tokens.iter().enumerate() {
        weights
            .embed
            .dequantize_row(token.id as usize, &mut s.x[t * c.embd..(t + 1) * c.embd]);
    }
    rope_table(&c, tokens, &mut s.rope);
    s.q.resize(n * c.embd, 0.0);
    s.k.resize(n * c.kv_dim(), 0.0);
    s.v.resize(n * c.kv_dim(), 0.0);
    s.attention.resize(n * c.embd, 0.0);
    s.gate.resize(n * c.ffn, 0.0);
    s.up.resize(n * c.ffn, 0.0);
    with_team(threads, |team| {
        for (l, layer) in weights.layers.iter().enumerate() {
            norm_into(team, &c, &s.x, &layer.attn_norm, &mut s.xq);
            products(
                team,
                &s.xq,
                &mut [
                    (&layer.q, &mut s.q[..], Write::Store),
                    (&layer.k, &mut s.k[..], Write::Store),
                    (&layer.v, &mut s.v[..], Write::Store),
                ],
            );
            let half = c.head_dim / 2;
            for (t, token) in tokens.iter().enumerate() {
                let angles = &s.rope[t * half..(t + 1) * half];
                for head in s.q[t * c.embd..(t + 1) * c.embd].chunks_exact_mut(c.head_dim) {
                    rotate(head, angles);
                }
                let (k, v) = (
                    &mut s.k[t * c.kv_dim()..(t + 1) * c.kv_dim()],
                    &s.v[t * c.kv_dim()..(t + 1) * c.kv_dim()],
                );
                for head in k.chunks_exact_mut(c.head_dim) {
                    rotate(head, angles);
                }
                let cache = &mut caches[token.seq];
                let cell = token.pos * c.head_dim..(token.pos + 1) * c.head_dim;
                let heads = k.chunks_exact(c.head_dim).zip(v.chunks_exact(c.head_dim));
                for (h, (k, v)) in heads.enumerate() {
                    to_f16(k, &mut cache.k[l * c.kv_heads + h][cell.clone()]);
                    to_f16(v, &mut cache.v[l * c.kv_heads + h][cell.clone()]);
                }
            }
            attend(team, &c, l, tokens, caches, &s.q, &mut s.attention);
            s.xq.reset(n, c.embd);
            let (rows, attention) = (s.xq.rows(), &s.attention);
            team.run(&|id| {
                for t in team.share(id, n) {
                    rows.set(t, &attention[t * c.embd..(t + 1) * c.embd]);
                }
            });
            products(team, &s.xq, &mut [(&layer.o, &mut s.x[..], Write::Add)]);
            norm_into(team, &c, &s.x, &layer.ffn_norm, &mut s.xq);
            products(
                team,
                &s.xq,
                &mut [
                    (&layer.gate, &mut s.gate[..], Write::Store),
                    (&layer.up, &mut s.up[..], Write::Store),
                ],
            );
            s.hq.reset(n, c.ffn);
            let (rows, gate, up) = (s.hq.rows(), Out::new(&mut s.gate), &s.up);
            team.run(&|id| {
                for t in team.share(id, n) {
                    let row = t * c.ffn..(t + 1) * c.ffn;
                    let gate = gate.slice(row.clone());
                    swiglu(gate, &up[row]);
                    rows.set(t, gate);
                }
            });
            products(team, &s.hq, &mut [(&layer.down, &mut s.x[..], Write::Add)]);
        }
        // The final norm and the output product, for the tokens that ask.
        let wanted: Vec<usize> = (0..n).filter(|&t| tokens[t].logits).collect();
        s.xq.reset(wanted.len(), c.embd);
        let mut row = vec![0.0; c.embd];
        for (i, &t) in wanted.iter().enumerate() {
            rms_norm(
                &s.x[t * c.embd..(t + 1) * c.embd],
                &weights.norm,
                c.eps,
                &mut row,
            );
            s.xq.set(i, &row);
        }
        s.logits.resize(wanted.len() * c.vocab, 0.0);
        let output = weights.output.as_ref().unwrap_or(&weights.embed);
        products(
            team,
            &s.xq,
            &mut [(output, &mut s.logits[..], Write::Store)],
        );
    });
    Ok(())
}

/// `W·x` for each (matrix, output, write) on the team, the matrices' row
/// groups split evenly between the threads.
fn products(team: &Team<'_>, x: &Quantized, jobs: &mut [(&Matrix, &mut [f32], Write)]) {
    let total: usize = jobs.iter().map(|(m, _, _)| m.groups()).sum();
    let outs: Vec<(&Matrix, Out<'_>, usize, Write)> = jobs
        .iter_mut()
        .map(|(m, out, write)| (*m, Out::new(out), m.rows(), *write))
        .collect();
    team.run(&|id| {
        let mine = team.share(id, total);
        let mut start = 0;
        for (m, out, stride, write) in &outs {
            let end = start + m.groups();
            let from = mine.start.clamp(start, end) - start;
            let to = mine.end.clamp(start, end) - start;
            if from < to {
                product(m, x, from..to, out, *stride, *write);
            }
            start = end;
        }
    });
}

/// Each token's RMS norm times `weight`, quantized into `out`.
fn norm_into(team: &Team<'_>, c: &Config, x: &[f32], weight: &[f32], out: &mut Quantized) {
    let n = x.len() / c.embd;
    out.reset(n, c.embd);
    let rows = out.rows();
    team.run(&|id| {
        let mut row = vec![0.0; c.embd];
        for t in team.share(id, n) {
            rms_norm(&x[t * c.embd..(t + 1) * c.embd], weight, c.eps, &mut row);
            rows.set(t, &row);
        }
    });
}

/// The rotation angles' cosines and sines of each token's position.
fn rope_table(c: &Config, tokens: &[Token], table: &mut Vec<(f32, f32)>) {
    let half = c.head_dim / 2;
    table.clear();
    for token in tokens {
        for i in 0..half {
            let frequency = c.rope_base.powf(-2.0 * i as f64 / c.head_dim as f64);
            let angle = token.pos as f64 * frequency;
            table.push((angle.cos() as f32, angle.sin() as f32));
        }
    }
}

/// Rotates the adjacent pairs of one head.
fn rotate(head: &mut [f32], angles: &[(f32, f32)]) {
    for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(angles) {
        let (a, b) = (pair[0], pair[1]);
        pair[0] = a * cos - b * sin;
        pair[1] = a * sin + b * cos;
    }
}

/// Causal attention of every token and head over its sequence's cache.
fn attend(
    team: &Team<'_>,
    c: &Config,
    layer: usize,
    tokens: &[Token],
    caches: &[Cache],
    q: &[f32],
    out: &mut [f32],
) {
    let out = Out::new(out);
    // One item per token and group of heads sharing a key/value head.
    let work = tokens.len() * c.kv_heads;
    let group = c.heads / c.kv_heads;
    let d = c.head_dim;
    team.run(&|id| {
        let mut scores = Vec::new();
        for item in team.share(id, work) {
            let (t, g) = (item / c.kv_heads, item % c.kv_heads);
            let token = tokens[t];
            let cache = &caches[token.seq];
            let heads = Heads {
                keys: &cache.k[layer * c.kv_heads + g],
                values: &cache.v[layer * c.kv_heads + g],
                stride: d,
                offset: 0,
                len: d,
            };
            let at = t * c.embd + g * group * d..t * c.embd + (g + 1) * group * d;
            attention::group(
                &q[at.clone()],
                heads,
                token.pos + 1,
                &mut scores,
                out.slice(at),
            );
        }
    });
}

/// The perplexity of `ids`: `exp` of the mean negative log-likelihood of
/// each token given the ones before it, in independent windows of `window`
/// tokens (scoring every position after the first of each window).
pub(crate) fn perplexity(
    weights: &Weights,
    ids: &[u32],
    window: usize,
    threads: usize,
) -> Result<f64, LocalError> {
    let mut scratch = Scratch::default();
    let (mut nll, mut scored) = (0.0f64, 0usize);
    for chunk in ids.chunks(window.max(2)).filter(|c| c.len() > 1) {
        let mut caches = [Cache::default()];
        let tokens: Vec<Token> = chunk
            .iter()
            .enumerate()
            .map(|(pos, &id)| Token {
                id,
                seq: 0,
                pos,
                logits: true,
            })
            .collect();
        forward(weights, &tokens, &mut caches, threads, &mut scratch)?;
        let logits = scratch.logits();
        let vocab = weights.config.vocab;
        for (i, &next) in chunk.iter().enumerate().skip(1) {
            let row = &logits[(i - 1) * vocab..i * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row
                .iter()
                .map(|&l| f64::from(l - max).exp())
                .sum::<f64>()
                .ln();
            nll += log_sum - f64::from(row[next as usize] - max);
            scored += 1;
        }
    }
    if scored == 0 {
        return Err(bad("perplexity needs at least two tokens"));
    }
    Ok((nll / scored as f64).exp())
}
