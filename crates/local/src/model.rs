//! Loading a GGUF model and generating text with it.

use std::path::{Path, PathBuf};

use crate::LocalError;
use crate::chat::{ChatMessage, prompt_ids};
use crate::engine::{Batcher, Request};
use crate::forward::Weights;
use crate::generation::{Event, Generation, SamplingParams};
use crate::gguf::Metadata;
use crate::sample::Sampler;
use crate::tokenizer::GgufTokenizer;

/// How to run a model: threads, and the key/value cache a [`Pool`](crate::Pool)
/// shares between its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Threads per forward pass. Default: the machine's available
    /// parallelism, at most 8 (a forward pass starts its threads, and a
    /// model this size has about 40 groups of 16 rows in its smaller
    /// products to share out; more threads than that were not measured).
    pub threads: usize,
    /// Key/value cells (token positions) of each of a pool's slots: the
    /// longest prompt plus answer one request may have, which is also
    /// [`LocalModel::context_length`]. A [`Pool`](crate::Pool) allocates them
    /// as a request's tokens come in and frees them when it ends (23 KB per
    /// cell for SmolLM2-135M, keys and values in `f16`: 8 slots of 2,048
    /// cells, all full, hold 377 MB). Default (`0`): the model's context
    /// length (8,192 for SmolLM2).
    pub cache_tokens: usize,
    /// Run a Q4_1 file's weights re-quantized to Q8_0 (converted once and
    /// cached in the model cache's `converted/` folder). With this crate's
    /// kernels it is slower than the file's Q4_1 (more bytes per weight:
    /// BENCHMARKS.md, "Local model") at about the same perplexity, and holds
    /// 50 MiB more; kept for comparing formats. Other files run as they are.
    /// Default: off.
    pub requantize_q8_0: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| usize::from(n).min(8)),
            cache_tokens: 0,
            requantize_q8_0: false,
        }
    }
}

/// A GGUF chat model loaded into memory: its quantized weights (read from the
/// file and repacked for this crate's kernels, in memory of the file's size)
/// and its tokenizer.
///
/// Generate through a [`Pool`](crate::Pool), which batches concurrent
/// requests, or one at a time with [`LocalModel::generate`].
pub struct LocalModel {
    path: PathBuf,
    weights: Weights,
    tokenizer: GgufTokenizer,
    context_length: usize,
    options: LoadOptions,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("path", &self.path)
            .field("vocab_size", &self.tokenizer.vocab_size())
            .field("context_length", &self.context_length)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A request's prompt ids, token budget and sampler.
pub(crate) struct Prepared {
    pub(crate) prompt: Vec<u32>,
    pub(crate) budget: usize,
    pub(crate) sampler: Sampler,
}

impl LocalModel {
    /// Loads a GGUF file (a Llama-architecture model with a `gpt2` tokenizer,
    /// such as SmolLM2) with the default [`LoadOptions`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LocalError> {
        Self::load_with(path, LoadOptions::default())
    }

    /// Loads a GGUF file with these options.
    pub fn load_with(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self, LocalError> {
        let path = path.as_ref();
        let meta = Metadata::read_file(path)?;
        let architecture = meta.get("general.architecture").and_then(|v| v.as_str());
        if architecture != Some("llama") {
            return Err(LocalError::Model {
                message: format!("architecture {architecture:?} is not supported (only \"llama\")"),
            });
        }
        let context_length = meta
            .get("llama.context_length")
            .and_then(|v| v.as_i64())
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 1)
            .ok_or_else(|| LocalError::Model {
                message: "the GGUF file has no llama.context_length".into(),
            })?;
        let tokenizer = GgufTokenizer::from_gguf(&meta)?;
        let runnable = if options.requantize_q8_0 {
            crate::convert::runnable(path, &meta)?
        } else {
            path.to_path_buf()
        };
        // The metadata holds the vocabulary and merges as strings (a few MB):
        // gone before the weights come in, so they never count together.
        drop(meta);
        let weights = Weights::load(&runnable)?;
        let options = LoadOptions {
            threads: options.threads.max(1),
            cache_tokens: match options.cache_tokens {
                0 => context_length,
                n => n.max(2),
            },
            ..options
        };
        Ok(Self {
            path: path.to_path_buf(),
            weights,
            tokenizer,
            context_length,
            options,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The largest prompt plus answer, in tokens: the model's trained context
    /// (`llama.context_length`), or the pool's shared cache if smaller.
    pub fn context_length(&self) -> usize {
        self.context_length.min(self.options.cache_tokens)
    }

    /// Its tokenizer as a Hugging Face `tokenizer.json` (see
    /// [`tokenizer_json`](crate::tokenizer_json)), re-read from the file.
    pub fn tokenizer_json(&self) -> Result<String, LocalError> {
        crate::tokenizer_json(&Metadata::read_file(&self.path)?)
    }

    /// The options it runs with (defaults filled in).
    pub fn options(&self) -> LoadOptions {
        self.options
    }

    pub(crate) fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The prompt's ids and the token budget left by the context window.
    pub(crate) fn prepare(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Prepared, LocalError> {
        let prompt = prompt_ids(&self.tokenizer, messages)?;
        let context = self.context_length();
        // One position is needed for the first generated token.
        if prompt.len() >= context {
            return Err(LocalError::PromptTooLong {
                tokens: prompt.len(),
                limit: context - 1,
            });
        }
        Ok(Prepared {
            budget: (params.max_tokens as usize).min(context - prompt.len()),
            sampler: Sampler::new(
                params.temperature,
                params.top_p,
                params.seed.unwrap_or_else(random_seed),
            ),
            prompt,
        })
    }

    /// The model's perplexity on `text` (plain text, no chat template), in
    /// independent windows of 512 tokens: a quality check that compares
    /// engines, quantizations and builds on the same text.
    pub fn perplexity(&self, text: &str) -> Result<f64, LocalError> {
        let ids = self.tokenizer.encode(text);
        crate::forward::perplexity(&self.weights, &ids, 512, self.options.threads)
    }

    /// Generates the assistant's answer to `messages` on the calling thread,
    /// alone, calling `on_text` with each piece of text as soon as it is
    /// complete UTF-8; generation stops early (finish reason `cancelled`)
    /// when `on_text` returns `false`.
    pub fn generate(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation, LocalError> {
        let Prepared {
            prompt,
            budget,
            sampler,
        } = self.prepare(messages, params)?;
        let cells = prompt.len() + budget;
        let mut result = None;
        {
            let mut batcher = Batcher::new(
                &self.weights,
                &self.tokenizer,
                1,
                cells,
                self.options.threads,
            );
            batcher.admit(Request {
                prompt,
                budget,
                sampler,
                sink: Box::new(|event: Event| match event {
                    Event::Text(text) => on_text(&text),
                    Event::Done(done) => {
                        result = Some(done);
                        true
                    }
                }),
            });
            while batcher.is_busy() {
                batcher.step();
            }
        }
        result.unwrap_or(Err(LocalError::Stopped))
    }
}

/// A seed for requests that bring none: the standard library's per-process
/// random hash keys, so no RNG crate is needed for one number.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}
