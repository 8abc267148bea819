//! The inference engine: llama.cpp (through the `llama-cpp-2` crate) running
//! the GGUF file's own quantized weights, and the continuous batcher that lets
//! many generations share its forward passes.
//!
//! Why llama.cpp rather than our own forward pass (measured on this 2-core
//! machine, side by side, BENCHMARKS.md "Local model"): decoding a model this
//! size is bounded by reading its weights once per token and by the integer
//! dot products against them. The previous candle engine dequantized the Q4_1
//! weights to `f32` at load (540 MB read per token; candle's own Q4_1 kernel
//! was 20-30x slower still), generated at 0.13-0.37x llama.cpp's speed, was
//! slower on two threads than on one, and held 559 MB. llama.cpp keeps
//! quantized blocks (mmap), multiplies them with SIMD kernels against 8-bit
//! activations, and batches several sequences in one forward pass with a
//! per-sequence causal mask: the three things the issue asked for, from a
//! maintained engine instead of a second hand-written one.
//!
//! What it runs: a Q4_1 file's weights re-quantized to Q8_0 once, at load
//! (`convert.rs` has the measurements: twice the prompt rate, the file's
//! perplexity), compiled for the building machine's CPU at `-O3`
//! (`.cargo/config.toml`, and the release profile's override for
//! llama-cpp-sys-2, which would otherwise build `-O2 -g`).
//!
//! The [`Batcher`] owns one llama.cpp context with one key/value cache per
//! slot (`kv_unified = false`) and runs steps: every generating sequence
//! contributes its last token to one `llama_decode` (one pass over the
//! weights for all of them), each samples its next token from its own logits
//! row, then waiting prompts are fed, first come, first served, each in its
//! own `llama_decode` of at most [`STEP_TOKENS`] tokens.
//!
//! Why a batched answer is the same as the answer alone, token for token
//! (`tests/generation.rs` asserts it): a sequence's numbers never depend on
//! the others in its batch.
//! - Its cache is its own (`kv_unified = false`), so its keys and values lie
//!   at the same cells as when it runs alone; with one shared cache they lie
//!   wherever the cells were free, and the attention's sums ran in another
//!   order (the first version: 8 of 8 answers were not guaranteed, and a
//!   practice run answered differently on its second run).
//! - Flash attention is off: llama.cpp's CPU flash attention picks its path
//!   by batch shape (a single sequence's token over 512 or more cells is
//!   split over the threads and recombined; several sequences' tokens are
//!   not), so the same token would sum in another order batched than alone,
//!   and on another number of threads. The plain path multiplies and
//!   normalises row by row, and the extra cells another sequence's longer
//!   cache adds are masked to exact zeros.
//! - The weights' products are the same numbers batched as alone, although
//!   llama.cpp takes another kernel: one token alone goes through
//!   `ggml_vec_dot_q8_0_q8_0`, several through llamafile's tinyBLAS. Both
//!   compute each output from the same per-block int8 dot products, scale
//!   each by the same product of the two blocks' scales, accumulate in block
//!   order into eight float lanes with fused multiply-adds, and add the lanes
//!   in the same order (ggml's `hsum_float_8` and tinyBLAS's `hsum` are the
//!   same three additions); each output is computed by one thread.
//! - A prompt is fed in its own `llama_decode`, in chunks that start at the
//!   same positions as alone (multiples of [`STEP_TOKENS`]): mixed with other
//!   sequences' tokens llama.cpp would cut it into other micro-batches, whose
//!   attention products take another kernel (one row against many).
//! - Sequences in one micro-batch must have consecutive ids (llama.cpp's
//!   per-sequence cache splits a batch by runs of ids), so a request takes
//!   the lowest free slot and tokens go in slot order.

use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use crate::LocalError;
use crate::generation::{Event, FinishReason, Generation};
use crate::sample::Sampler;
use crate::tokenizer::{GgufTokenizer, StreamDecoder};

/// llama.cpp's `LLAMA_FLASH_ATTN_TYPE_DISABLED`.
const FLASH_ATTENTION_OFF: i32 = 0;

/// The most tokens one step decodes: generating sequences take one each,
/// prompts share the rest. llama.cpp's default micro-batch, so a step is one
/// pass over the weights.
pub(crate) const STEP_TOKENS: usize = 512;

/// llama.cpp's process-wide state, initialised once.
fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor it loads; route it to `tracing`,
            // where it is filtered like the rest of the server's logs.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Model {
            message: format!("llama.cpp: {e}"),
        })
}

fn model_error(e: impl std::fmt::Display) -> LocalError {
    LocalError::Model {
        message: e.to_string(),
    }
}

/// The weights, loaded once (memory-mapped) and shared by every context.
pub(crate) struct Weights {
    model: LlamaModel,
}

impl Weights {
    pub(crate) fn load(path: &std::path::Path) -> Result<Self, LocalError> {
        let model = LlamaModel::load_from_file(backend()?, path, &LlamaModelParams::default())
            .map_err(|e| model_error(format!("{}: {e}", path.display())))?;
        Ok(Self { model })
    }

    /// A context for `sequences` sequences with `cells` key/value cells each
    /// (rounded up to llama.cpp's 256), running on `threads` threads.
    pub(crate) fn context(
        &self,
        sequences: usize,
        cells: usize,
        threads: usize,
    ) -> Result<LlamaContext<'_>, LocalError> {
        // llama-cpp-2 notes that creating contexts in parallel is unsound (it
        // may write to the model); one at a time.
        static CREATING: Mutex<()> = Mutex::new(());
        let _one = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let threads = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
        let sequences = sequences.max(1);
        let total = cells.max(1).next_multiple_of(256).saturating_mul(sequences);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(u32::try_from(total).unwrap_or(u32::MAX)))
            .with_n_batch(STEP_TOKENS as u32)
            .with_n_ubatch(STEP_TOKENS as u32)
            .with_n_seq_max(u32::try_from(sequences).unwrap_or(u32::MAX))
            // One cache per sequence, and no flash attention: see the module
            // documentation (the same answer batched as alone).
            .with_kv_unified(false)
            .with_flash_attention_policy(FLASH_ATTENTION_OFF)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        self.model
            .new_context(backend()?, params)
            .map_err(|e| model_error(format!("llama.cpp context: {e}")))
    }
}

/// Receives one generation's events; `false` from a text event stops it.
pub(crate) type EventSink<'a> = Box<dyn FnMut(Event) -> bool + 'a>;

/// One admitted request.
pub(crate) struct Request<'a> {
    pub(crate) prompt: Vec<u32>,
    /// The most tokens to generate (already clamped to the context).
    pub(crate) budget: usize,
    pub(crate) sampler: Sampler,
    pub(crate) sink: EventSink<'a>,
}

/// A request while it runs in a slot.
struct Sequence<'a> {
    request: Request<'a>,
    /// Prompt tokens already decoded.
    fed: usize,
    generated: Vec<u32>,
    decoder: StreamDecoder,
    text: String,
    started: Instant,
    first_logits: Option<Instant>,
    /// Where its logits are in the batch just decoded.
    logits_at: Option<i32>,
}

/// Runs up to `slots` sequences at once in one llama.cpp context, each with
/// its own key/value cache of `cells` cells.
pub(crate) struct Batcher<'m> {
    context: LlamaContext<'m>,
    tokenizer: &'m GgufTokenizer,
    batch: LlamaBatch<'static>,
    slots: Vec<Option<Sequence<'m>>>,
    cells: usize,
    /// Order of admission: prompts are fed first come, first served.
    order: Vec<usize>,
}

impl<'m> Batcher<'m> {
    pub(crate) fn new(
        weights: &'m Weights,
        tokenizer: &'m GgufTokenizer,
        slots: usize,
        cells: usize,
        threads: usize,
    ) -> Result<Self, LocalError> {
        let slots = slots.max(1);
        Ok(Self {
            context: weights.context(slots, cells, threads)?,
            tokenizer,
            batch: LlamaBatch::new(STEP_TOKENS.max(slots), 1),
            slots: (0..slots).map(|_| None).collect(),
            cells,
            order: Vec::new(),
        })
    }

    /// Whether any sequence is running.
    pub(crate) fn is_busy(&self) -> bool {
        !self.order.is_empty()
    }

    /// Whether `request` can start now: a free slot, whose cache has room
    /// for its prompt and its whole budget (so a running sequence never runs
    /// out of cells halfway).
    pub(crate) fn has_room_for(&self, request: &Request<'_>) -> bool {
        self.slots.iter().any(Option::is_none)
            && request.prompt.len() + request.budget <= self.cells
    }

    /// Starts `request` in the lowest free slot; call [`Self::has_room_for`]
    /// first.
    pub(crate) fn admit(&mut self, request: Request<'m>) {
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .expect("admit is called only with a free slot");
        self.slots[slot] = Some(Sequence {
            request,
            fed: 0,
            generated: Vec::new(),
            decoder: StreamDecoder::default(),
            text: String::new(),
            started: Instant::now(),
            first_logits: None,
            logits_at: None,
        });
        self.order.push(slot);
    }

    /// One step: a forward pass for every generating sequence's next token,
    /// then waiting prompts; finished sequences report `Done` and free their
    /// slot.
    pub(crate) fn step(&mut self) {
        if let Err(error) = self.generate().and_then(|()| self.feed_prompts()) {
            // A failed pass leaves the cache in an unknown state: every
            // running sequence fails, and the next ones start clean.
            for slot in std::mem::take(&mut self.order) {
                if let Some(mut sequence) = self.slots[slot].take() {
                    (sequence.request.sink)(Event::Done(Err(error.clone())));
                }
            }
            self.context.clear_kv_cache();
        }
    }

    /// Every generating sequence's last token, in slot order, in one batch.
    fn generate(&mut self) -> Result<(), LocalError> {
        self.batch.clear();
        let mut at = 0i32;
        for (slot, sequence) in self.slots.iter_mut().enumerate() {
            let Some(sequence) = sequence else { continue };
            if let Some(&last) = sequence.generated.last() {
                let pos = sequence.request.prompt.len() + sequence.generated.len() - 1;
                add(&mut self.batch, last, pos, slot, true)?;
                sequence.logits_at = Some(at);
                at += 1;
            }
        }
        if at > 0 {
            self.context.decode(&mut self.batch).map_err(model_error)?;
            self.sample();
        }
        Ok(())
    }

    /// Waiting prompts, oldest first, each in its own batch of at most
    /// [`STEP_TOKENS`] tokens starting at a multiple of it (the same chunks
    /// as alone), until the step has fed [`STEP_TOKENS`] prompt tokens.
    fn feed_prompts(&mut self) -> Result<(), LocalError> {
        let mut fed = 0;
        for slot in self.order.clone() {
            if fed >= STEP_TOKENS {
                break;
            }
            let Some(sequence) = &mut self.slots[slot] else {
                continue;
            };
            let prompt = &sequence.request.prompt;
            if sequence.fed == prompt.len() {
                continue;
            }
            let take = STEP_TOKENS.min(prompt.len() - sequence.fed);
            self.batch.clear();
            for (at, pos) in (sequence.fed..sequence.fed + take).enumerate() {
                let last = pos + 1 == prompt.len();
                add(&mut self.batch, prompt[pos], pos, slot, last)?;
                if last {
                    sequence.logits_at = Some(at as i32);
                }
            }
            sequence.fed += take;
            fed += take;
            self.context.decode(&mut self.batch).map_err(model_error)?;
            self.sample();
        }
        Ok(())
    }

    /// Each sequence with logits in the batch just decoded takes its next
    /// token; those that are done finish.
    fn sample(&mut self) {
        for slot in self.order.clone() {
            let finish = match &mut self.slots[slot] {
                Some(sequence) => match sequence.logits_at.take() {
                    Some(at) => advance(sequence, self.tokenizer, self.context.get_logits_ith(at)),
                    None => None,
                },
                None => None,
            };
            if let Some(reason) = finish {
                self.finish(slot, reason);
            }
        }
    }

    fn finish(&mut self, slot: usize, reason: FinishReason) {
        let Some(mut sequence) = self.slots[slot].take() else {
            return;
        };
        self.order.retain(|&s| s != slot);
        // Free its cache now, so that the next request in this slot lays out
        // its cells from the first one, as alone.
        let _ = self
            .context
            .clear_kv_cache_seq(Some(slot as u32), None, None);
        let tail = std::mem::take(&mut sequence.decoder).finish();
        if !tail.is_empty() {
            sequence.text.push_str(&tail);
            (sequence.request.sink)(Event::Text(tail));
        }
        let first = sequence.first_logits.unwrap_or(sequence.started);
        let generation = Generation {
            text: sequence.text,
            tokens: sequence.generated,
            prompt_tokens: sequence.request.prompt.len(),
            finish_reason: reason,
            prompt_time: first - sequence.started,
            generation_time: first.elapsed(),
        };
        (sequence.request.sink)(Event::Done(Ok(generation)));
    }
}

/// Adds `token` at `pos` of sequence `seq` to the batch.
fn add(
    batch: &mut LlamaBatch<'_>,
    token: u32,
    pos: usize,
    seq: usize,
    logits: bool,
) -> Result<(), LocalError> {
    batch
        .add(LlamaToken(token as i32), pos as i32, &[seq as i32], logits)
        .map_err(model_error)
}

/// Takes the next token from `logits`; `Some` when the sequence is done.
fn advance(
    sequence: &mut Sequence<'_>,
    tokenizer: &GgufTokenizer,
    logits: &[f32],
) -> Option<FinishReason> {
    sequence.first_logits.get_or_insert_with(Instant::now);
    if sequence.request.budget == 0 {
        return Some(FinishReason::Length);
    }
    let next = sequence.request.sampler.sample(logits);
    if tokenizer.is_stop(next) {
        return Some(FinishReason::Stop);
    }
    sequence.generated.push(next);
    let piece = sequence.decoder.push(tokenizer.token_bytes(next));
    if !piece.is_empty() {
        sequence.text.push_str(&piece);
        if !(sequence.request.sink)(Event::Text(piece)) {
            return Some(FinishReason::Cancelled);
        }
    }
    (sequence.generated.len() >= sequence.request.budget).then_some(FinishReason::Length)
}

/// The perplexity of `ids` under the model: `exp` of the mean negative
/// log-likelihood of each token given the ones before it, in independent
/// windows of `window` tokens (as llama.cpp's `llama-perplexity` does, but
/// scoring every position after the first of each window).
pub(crate) fn perplexity(
    weights: &Weights,
    ids: &[u32],
    window: usize,
    threads: usize,
) -> Result<f64, LocalError> {
    let window = window.clamp(2, STEP_TOKENS);
    let mut context = weights.context(1, window.next_multiple_of(256), threads)?;
    let mut batch = LlamaBatch::new(window, 1);
    let (mut nll, mut scored) = (0.0f64, 0usize);
    for chunk in ids.chunks(window).filter(|c| c.len() > 1) {
        context.clear_kv_cache();
        batch.clear();
        for (pos, &id) in chunk.iter().enumerate() {
            batch
                .add(LlamaToken(id as i32), pos as i32, &[0], true)
                .map_err(model_error)?;
        }
        context.decode(&mut batch).map_err(model_error)?;
        for (i, &next) in chunk.iter().enumerate().skip(1) {
            let logits = context.get_logits_ith(i as i32 - 1);
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = logits
                .iter()
                .map(|&l| f64::from(l - max).exp())
                .sum::<f64>()
                .ln();
            nll += log_sum - f64::from(logits[next as usize] - max);
            scored += 1;
        }
    }
    if scored == 0 {
        return Err(model_error("perplexity needs at least two tokens"));
    }
    Ok((nll / scored as f64).exp())
}
