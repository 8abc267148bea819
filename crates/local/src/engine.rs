//! The continuous batcher that lets many generations share the forward
//! passes of sluice's own engine (`forward`, on the `kernel` products).
//!
//! Why our own engine rather than llama.cpp (issue 27; BENCHMARKS.md, "Local
//! model", side by side with llama-bench): llama.cpp multiplies Q4_1 weights
//! one token at a time on x86, so eight sequences batched generated only
//! 1.07-1.27x one alone, and it made batched answers equal to answers alone
//! only with flash attention off (its CPU flash attention picks its path by
//! batch shape), which cost it its single-sequence speed. `kernel` unpacks a
//! block of weights once for up to eight tokens, and every token's numbers
//! are computed by itself, in a fixed order, whatever else is in the batch
//! and however many threads share the work; so the batcher is free to put
//! every generating sequence's next token and the waiting prompts into one
//! forward pass.
//!
//! The [`Batcher`] owns one key/value cache per slot and runs steps: every
//! generating sequence contributes its last token, waiting prompts add up to
//! [`STEP_TOKENS`] tokens, first come, first served, and one forward pass
//! computes them all; each sequence then samples its next token from its own
//! logits row.

use std::time::Instant;

use crate::forward::{Cache, Scratch, Token, Weights, forward};
use crate::generation::{Event, FinishReason, Generation};
use crate::sample::Sampler;
use crate::tokenizer::{GgufTokenizer, StreamDecoder};

/// The most prompt tokens one step takes (generating sequences add one each):
/// a prompt of 512 tokens is one pass over the weights.
pub(crate) const STEP_TOKENS: usize = 512;

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
    /// Which row of the last step's logits is its own.
    logits_at: Option<usize>,
}

/// Runs up to `slots` sequences at once, each with its own key/value cache of
/// at most `cells` cells.
pub(crate) struct Batcher<'m> {
    weights: &'m Weights,
    tokenizer: &'m GgufTokenizer,
    threads: usize,
    caches: Vec<Cache>,
    scratch: Scratch,
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
    ) -> Self {
        let slots = slots.max(1);
        Self {
            weights,
            tokenizer,
            threads: threads.max(1),
            caches: (0..slots).map(|_| Cache::default()).collect(),
            scratch: Scratch::default(),
            slots: (0..slots).map(|_| None).collect(),
            cells,
            order: Vec::new(),
        }
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

    /// One step: one forward pass for every generating sequence's next token
    /// and the waiting prompts' next tokens; finished sequences report
    /// `Done` and free their slot.
    pub(crate) fn step(&mut self) {
        let tokens = self.batch();
        if tokens.is_empty() {
            return;
        }
        match forward(
            self.weights,
            &tokens,
            &mut self.caches,
            self.threads,
            &mut self.scratch,
        ) {
            Ok(()) => self.sample(),
            Err(error) => {
                // Only a bug can bring a batch the model refuses: every
                // running sequence fails, and the next ones start clean.
                for slot in std::mem::take(&mut self.order) {
                    self.caches[slot].clear();
                    if let Some(mut sequence) = self.slots[slot].take() {
                        (sequence.request.sink)(Event::Done(Err(error.clone())));
                    }
                }
            }
        }
    }

    /// The step's tokens: each generating sequence's last token, then
    /// prompts, oldest first, until [`STEP_TOKENS`] prompt tokens.
    fn batch(&mut self) -> Vec<Token> {
        let mut tokens = Vec::new();
        let mut rows = 0;
        for &slot in &self.order {
            let Some(sequence) = &mut self.slots[slot] else {
                continue;
            };
            if let Some(&last) = sequence.generated.last() {
                let pos = sequence.request.prompt.len() + sequence.generated.len() - 1;
                tokens.push(Token {
                    id: last,
                    seq: slot,
                    pos,
                    logits: true,
                });
                sequence.logits_at = Some(rows);
                rows += 1;
            }
        }
        let mut fed = 0;
        for &slot in &self.order {
            let Some(sequence) = &mut self.slots[slot] else {
                continue;
            };
            let prompt = &sequence.request.prompt;
            if fed >= STEP_TOKENS || sequence.fed == prompt.len() {
                continue;
            }
            let take = (STEP_TOKENS - fed).min(prompt.len() - sequence.fed);
            for pos in sequence.fed..sequence.fed + take {
                let last = pos + 1 == prompt.len();
                tokens.push(Token {
                    id: prompt[pos],
                    seq: slot,
                    pos,
                    logits: last,
                });
                if last {
                    sequence.logits_at = Some(rows);
                    rows += 1;
                }
            }
            sequence.fed += take;
            fed += take;
        }
        tokens
    }

    /// Each sequence with logits in the step just run takes its next token;
    /// those that are done finish.
    fn sample(&mut self) {
        let vocab = self.weights.config().vocab;
        for slot in self.order.clone() {
            let finish = match &mut self.slots[slot] {
                Some(sequence) => match sequence.logits_at.take() {
                    Some(row) => advance(
                        sequence,
                        self.tokenizer,
                        &self.scratch.logits()[row * vocab..(row + 1) * vocab],
                    ),
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
        // Free its cache now, memory included.
        self.caches[slot].clear();
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
