//! The Llama forward pass (SmolLM2's architecture) on candle's CPU tensors.
//!
//! Written here, on `candle-core` and `candle-nn` alone, instead of using
//! `candle-transformers`' quantized Llama, for two measured reasons:
//!
//! - Speed: candle multiplies a Q4_1 matrix with a scalar loop that also
//!   quantizes the activations to 8 bits; the weights dequantized once at load
//!   to `f32` go through `gemm`'s vectorised kernels (picked at run time)
//!   instead. Prompt processing and generation were about 20x faster on the
//!   same machine and input (BENCHMARKS.md, "Local model"), for ~540 MB of
//!   memory instead of ~100 MB, and greedy answers are those of the unquantized
//!   activations.
//! - Build time: `candle-transformers` compiles a hundred models to use one;
//!   it was the largest part of the feature's cold build.
//!
//! The computation is llama.cpp's for `general.architecture = "llama"`:
//! RMS norm, grouped-query attention with interleaved rotary embeddings
//! (GGUF files store q/k permuted for it), a SiLU-gated MLP, and the output
//! projection tied to the token embeddings when the file has no
//! `output.weight`.

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device, Tensor};

use crate::LocalError;

/// The model's weights, read-only and shared by every [`Cache`].
#[derive(Debug, Clone)]
pub(crate) struct Llama {
    embeddings: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Tensor,
    cos: Tensor,
    sin: Tensor,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    eps: f32,
    context_length: usize,
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

/// One generation's keys and values, per layer.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
}

impl Cache {
    /// Forgets everything, for the next prompt.
    pub(crate) fn clear(&mut self) {
        self.kv.clear();
    }
}

impl Llama {
    /// Reads the weights named in `content` from `reader`, dequantizing every
    /// matrix to `f32`.
    pub(crate) fn load<R: std::io::Read + std::io::Seek>(
        content: &Content,
        reader: &mut R,
    ) -> Result<Self, LocalError> {
        let device = Device::Cpu;
        let meta = |key: &str| {
            content.metadata.get(key).ok_or_else(|| LocalError::Model {
                message: format!("the GGUF file has no {key}"),
            })
        };
        let arch = meta("general.architecture")?.to_string()?.clone();
        if arch != "llama" {
            return Err(LocalError::Model {
                message: format!("architecture {arch:?} is not supported (only \"llama\")"),
            });
        }
        let usize_of = |key: &str| -> Result<usize, LocalError> {
            Ok(meta(&format!("llama.{key}"))?.to_u32()? as usize)
        };
        let n_head = usize_of("attention.head_count")?;
        let n_kv_head = usize_of("attention.head_count_kv")?;
        let n_layer = usize_of("block_count")?;
        let dim = usize_of("embedding_length")?;
        let context_length = usize_of("context_length")?;
        let head_dim = dim / n_head;
        let eps = meta("llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let freq_base = match content.metadata.get("llama.rope.freq_base") {
            Some(v) => v.to_f32()?,
            None => 10_000.0,
        };
        let mut tensor = |name: &str| -> Result<Tensor, LocalError> {
            Ok(content.tensor(reader, name, &device)?.dequantize(&device)?)
        };
        let embeddings = tensor("token_embd.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            tensor("output.weight")?
        } else {
            embeddings.clone()
        };
        let norm = tensor("output_norm.weight")?;
        let layers = (0..n_layer)
            .map(|i| {
                let mut t = |name: &str| tensor(&format!("blk.{i}.{name}.weight"));
                Ok(Layer {
                    attn_norm: t("attn_norm")?,
                    wq: t("attn_q")?,
                    wk: t("attn_k")?,
                    wv: t("attn_v")?,
                    wo: t("attn_output")?,
                    ffn_norm: t("ffn_norm")?,
                    gate: t("ffn_gate")?,
                    up: t("ffn_up")?,
                    down: t("ffn_down")?,
                })
            })
            .collect::<Result<Vec<_>, LocalError>>()?;
        let (cos, sin) = rotary_tables(head_dim, freq_base, context_length, &device)?;
        Ok(Self {
            embeddings,
            layers,
            norm,
            output,
            cos,
            sin,
            n_head,
            n_kv_head,
            head_dim,
            eps,
            context_length,
        })
    }

    /// The most positions a prompt and its answer may take.
    pub(crate) fn context_length(&self) -> usize {
        self.context_length
    }

    /// Runs `ids`, which start at position `pos` (the number of tokens already
    /// in `cache`), and returns the logits of the last one.
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        pos: usize,
        cache: &mut Cache,
    ) -> Result<Tensor, LocalError> {
        let device = Device::Cpu;
        let seq = ids.len();
        cache.kv.resize(self.layers.len(), None);
        let mask = (seq > 1).then(|| causal_mask(seq, pos)).transpose()?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let mut x = self
            .embeddings
            .index_select(&Tensor::new(ids, &device)?, 0)?;
        for (layer, kv) in self.layers.iter().zip(&mut cache.kv) {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.eps)?;
            let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
                t.reshape((1, seq, n, self.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = heads(linear(&h, &layer.wq)?, self.n_head)?;
            let k = heads(linear(&h, &layer.wk)?, self.n_kv_head)?;
            let v = heads(linear(&h, &layer.wv)?, self.n_kv_head)?;
            let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
            let (k, v) = match kv.take() {
                Some((k0, v0)) => (Tensor::cat(&[&k0, &k], 2)?, Tensor::cat(&[&v0, &v], 2)?),
                None => (k, v),
            };
            *kv = Some((k.clone(), v.clone()));
            let group = self.n_head / self.n_kv_head;
            let (k, v) = (repeat_kv(k, group)?, repeat_kv(v, group)?);
            let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?;
            let scores = match &mask {
                Some(mask) => scores.broadcast_add(mask)?,
                None => scores,
            };
            let attn = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
            let attn = attn
                .transpose(1, 2)?
                .reshape((seq, self.n_head * self.head_dim))?;
            x = (x + linear(&attn, &layer.wo)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.eps)?;
            let gated = (linear(&h, &layer.gate)?.silu()? * linear(&h, &layer.up)?)?;
            x = (x + linear(&gated, &layer.down)?)?;
        }
        let last = x.narrow(0, seq - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.eps)?;
        Ok(linear(&last, &self.output)?
            .squeeze(0)?
            .to_dtype(DType::F32)?)
    }
}

/// `x · wᵀ` for a weight stored `[out, in]`, as GGUF stores them.
fn linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.matmul(&w.t()?)
}

/// Each key/value head repeated for the `group` query heads that share it.
fn repeat_kv(x: Tensor, group: usize) -> candle_core::Result<Tensor> {
    if group == 1 {
        return Ok(x);
    }
    let (b, n_kv, seq, d) = x.dims4()?;
    // Concatenating along the sequence then reshaping puts the copies of each
    // head next to each other without a strided copy.
    Tensor::cat(&vec![&x; group], 2)?.reshape((b, n_kv * group, seq, d))
}

/// `-inf` where position `pos + i` would look at a later position `j`.
fn causal_mask(seq: usize, pos: usize) -> candle_core::Result<Tensor> {
    let kv = pos + seq;
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..kv).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (seq, kv), &Device::Cpu)
}

/// The rotary embedding's cosines and sines, `[positions, head_dim / 2]`.
fn rotary_tables(
    head_dim: usize,
    base: f32,
    positions: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let theta: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?.reshape((1, head_dim / 2))?;
    let angles = Tensor::arange(0, positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((positions, 1))?
        .matmul(&theta)?;
    Ok((angles.cos()?, angles.sin()?))
}
