//! The values a generation is asked with and answers with, shared by the
//! engine, the model and the pool (a leaf module, so none of them imports
//! another for these).

use std::time::Duration;

use crate::LocalError;

/// How to sample one generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` (or anything below 1e-7) is greedy decoding:
    /// always the most likely token, so the output depends on nothing else.
    pub temperature: f64,
    /// Nucleus sampling mass (`1` samples from the whole distribution).
    pub top_p: f64,
    /// The most tokens to generate; fewer when the context window ends first.
    pub max_tokens: u32,
    /// The sampling seed; a random one when absent. Ignored when greedy.
    pub seed: Option<u64>,
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn (`<|im_end|>` or `<|endoftext|>`).
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The caller stopped listening.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI spelling: `stop`, `length`, or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// One finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer: the generated tokens decoded, the stop token excluded.
    pub text: String,
    /// The generated tokens, the stop token excluded: `completion_tokens` is
    /// their number.
    pub tokens: Vec<u32>,
    /// How many tokens the prompt (chat template included) had.
    pub prompt_tokens: usize,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Time spent on the prompt, up to the first token's logits.
    pub prompt_time: Duration,
    /// Time spent generating every token after the first.
    pub generation_time: Duration,
}

/// What a generation reports to its caller.
#[derive(Debug)]
pub enum Event {
    /// A piece of the answer, as soon as it is complete UTF-8.
    Text(String),
    /// The end: the whole generation or why it failed. Always the last event.
    Done(Result<Generation, LocalError>),
}
