//! Loading a GGUF model and generating text with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;

use crate::LocalError;
use crate::chat::{ChatMessage, prompt_ids};
use crate::llama::{Cache, Llama};
use crate::sample::Sampler;
use crate::tokenizer::{GgufTokenizer, StreamDecoder};

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

/// A GGUF chat model loaded into memory: its weights (dequantized to `f32`)
/// and its tokenizer.
///
/// Generating needs a [`Session`] (one key/value cache); sessions share the
/// model, so any number of them costs one copy of the weights.
pub struct LocalModel {
    path: PathBuf,
    llama: Llama,
    tokenizer: GgufTokenizer,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("path", &self.path)
            .field("vocab_size", &self.tokenizer.vocab_size())
            .finish_non_exhaustive()
    }
}

/// The working state of one generation at a time: a key/value cache.
#[derive(Debug, Default)]
pub struct Session {
    cache: Cache,
}

impl LocalModel {
    /// Loads a GGUF file (a Llama-architecture model with a `gpt2` tokenizer,
    /// such as SmolLM2) onto the CPU, dequantizing its weights.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LocalError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| LocalError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let content = gguf_file::Content::read(&mut file).map_err(|e| LocalError::Model {
            message: format!("{}: {e}", path.display()),
        })?;
        let tokenizer = GgufTokenizer::from_gguf(&content)?;
        let llama = Llama::load(&content, &mut file)?;
        Ok(Self {
            path: path.to_path_buf(),
            llama,
            tokenizer,
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

    /// The largest prompt plus answer, in tokens.
    pub fn context_length(&self) -> usize {
        self.llama.context_length()
    }

    /// A fresh session; the weights are shared, not copied.
    pub fn session(&self) -> Session {
        Session::default()
    }

    /// Generates the assistant's answer to `messages`, calling `on_text` with
    /// each piece of text as soon as it is complete UTF-8; generation stops
    /// early (finish reason `cancelled`) when `on_text` returns `false`.
    pub fn generate(
        &self,
        session: &mut Session,
        messages: &[ChatMessage],
        params: &SamplingParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation, LocalError> {
        let prompt = prompt_ids(&self.tokenizer, messages)?;
        let context = self.context_length();
        // One position is needed for the first generated token.
        if prompt.len() >= context {
            return Err(LocalError::PromptTooLong {
                tokens: prompt.len(),
                limit: context - 1,
            });
        }
        let budget = (params.max_tokens as usize).min(context - prompt.len());
        let mut sampler = Sampler::new(
            params.temperature,
            params.top_p,
            params.seed.unwrap_or_else(random_seed),
        );
        let cache = &mut session.cache;
        cache.clear();

        let started = Instant::now();
        let mut logits = self.llama.forward(&prompt, 0, cache)?.to_vec1::<f32>()?;
        let prompt_time = started.elapsed();

        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut decoder = StreamDecoder::default();
        let mut finish_reason = FinishReason::Length;
        let generating = Instant::now();
        while tokens.len() < budget {
            let next = sampler.sample(&logits);
            if self.tokenizer.is_stop(next) {
                finish_reason = FinishReason::Stop;
                break;
            }
            tokens.push(next);
            let piece = decoder.push(self.tokenizer.token_bytes(next));
            if !piece.is_empty() {
                text.push_str(&piece);
                if !on_text(&piece) {
                    finish_reason = FinishReason::Cancelled;
                    break;
                }
            }
            if tokens.len() == budget {
                break;
            }
            logits = self
                .llama
                .forward(&[next], prompt.len() + tokens.len() - 1, cache)?
                .to_vec1::<f32>()?;
        }
        let tail = decoder.finish();
        if !tail.is_empty() {
            text.push_str(&tail);
            on_text(&tail);
        }
        Ok(Generation {
            text,
            tokens,
            prompt_tokens: prompt.len(),
            finish_reason,
            prompt_time,
            generation_time: generating.elapsed(),
        })
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
