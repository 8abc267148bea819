//! Tokenizers: the embedded BPE encodings and any Hugging Face `tokenizer.json`.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

use crate::bpe::{Rank, RankTable};
use crate::error::BuildError;
use crate::scan::{Pattern, Scanner};

/// An encoding embedded in the binary: usable with no files and no network.
///
/// ```
/// use sluice_core::Embedded;
///
/// let encoding = Embedded::from_name("o200k_base").unwrap();
/// assert_eq!(encoding, Embedded::O200kBase);
/// assert_eq!(encoding.tokenizer().count("hello world"), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Embedded {
    /// OpenAI's `cl100k_base` (GPT-4, GPT-3.5); also the proxy for HyperCLOVA X.
    Cl100kBase,
    /// OpenAI's `o200k_base` (GPT-4o and later).
    O200kBase,
}

impl Embedded {
    /// All embedded encodings.
    pub const ALL: [Embedded; 2] = [Embedded::Cl100kBase, Embedded::O200kBase];

    /// The encoding's conventional name (`cl100k_base`, `o200k_base`).
    pub fn name(self) -> &'static str {
        match self {
            Embedded::Cl100kBase => "cl100k_base",
            Embedded::O200kBase => "o200k_base",
        }
    }

    /// Looks an encoding up by its name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The rank table, laid out by `build.rs` from `data/<name>.tiktoken.gz`.
    fn table_layout(self) -> &'static [u8] {
        match self {
            Embedded::Cl100kBase => include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.ranks")),
            Embedded::O200kBase => include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ranks")),
        }
    }

    fn pattern(self) -> Pattern {
        match self {
            Embedded::Cl100kBase => Pattern::Cl100k,
            Embedded::O200kBase => Pattern::O200k,
        }
    }

    /// The split pattern as published (with its look-ahead), for exporting.
    pub(crate) fn original_pattern(self) -> &'static str {
        match self {
            Embedded::Cl100kBase => crate::pretokenize::CL100K_PATTERN_ORIGINAL,
            Embedded::O200kBase => crate::pretokenize::O200K_PATTERN_ORIGINAL,
        }
    }

    /// The encoding's own special tokens.
    pub(crate) fn special_tokens(self) -> &'static [(&'static str, Rank)] {
        match self {
            Embedded::Cl100kBase => &[
                ("<|endoftext|>", 100257),
                ("<|fim_prefix|>", 100258),
                ("<|fim_middle|>", 100259),
                ("<|fim_suffix|>", 100260),
                ("<|endofprompt|>", 100276),
            ],
            Embedded::O200kBase => &[("<|endoftext|>", 199999), ("<|endofprompt|>", 200018)],
        }
    }

    /// Returns the encoding (set up once per process, at no cost: its rank table
    /// is read in place from the binary).
    pub fn tokenizer(self) -> Tokenizer {
        static CACHE: [OnceLock<Tokenizer>; 2] = [OnceLock::new(), OnceLock::new()];
        CACHE[self as usize]
            .get_or_init(|| {
                let table = RankTable::from_layout(Cow::Borrowed(self.table_layout()))
                    .expect("build.rs lays out a valid table");
                Tokenizer::from_bpe(BpeTokenizer {
                    name: self.name().to_string(),
                    table,
                    pretokenizer: Scanner::new(self.pattern()),
                    specials: self
                        .special_tokens()
                        .iter()
                        .map(|&(s, r)| (s.to_string(), r))
                        .collect(),
                })
            })
            .clone()
    }
}

impl fmt::Display for Embedded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tiktoken-compatible BPE: a rank table and a split pattern.
pub(crate) struct BpeTokenizer {
    name: String,
    pub(crate) table: RankTable,
    pretokenizer: Scanner,
    specials: FxHashMap<String, Rank>,
}

/// A tokenizer that counts and encodes text.
///
/// Cloning is cheap (the tables are shared). Text is always encoded as ordinary
/// text: a string such as `<|im_start|>` inside the text is counted as the plain
/// characters it consists of, never as a special token. Special tokens only enter
/// a count through a chat template's markers (see [`crate::ChatTemplate`]).
///
/// ```
/// use sluice_core::Embedded;
///
/// let tokenizer = Embedded::Cl100kBase.tokenizer();
/// assert_eq!(tokenizer.count("hello world"), 2);
/// assert_eq!(tokenizer.encode("hello world").len(), 2);
/// // Stops counting once the limit is passed.
/// assert_eq!(tokenizer.count_within("hello world", 1), None);
/// ```
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Backend>,
}

enum Backend {
    Bpe(BpeTokenizer),
    HuggingFace {
        name: String,
        tokenizer: Box<tokenizers::Tokenizer>,
        /// sluice's own BPE for the same file, when it is a byte-level BPE that
        /// sluice can count exactly (see `fast_json`).
        fast: Option<BpeTokenizer>,
    },
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("name", &self.name())
            .finish()
    }
}

impl Tokenizer {
    fn from_bpe(bpe: BpeTokenizer) -> Self {
        Self {
            inner: Arc::new(Backend::Bpe(bpe)),
        }
    }

    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| BuildError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_json_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a Hugging Face `tokenizer.json` from memory; `name` labels it in errors.
    pub fn from_json_bytes(bytes: &[u8], name: &str) -> Result<Self, BuildError> {
        let mut tokenizer =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| BuildError::Tokenizer {
                name: name.to_string(),
                message: e.to_string(),
            })?;
        // Content is text: special tokens typed into a message are split like any
        // other characters instead of collapsing into one id.
        tokenizer.set_encode_special_tokens(true);
        let fast = crate::fast_json::rank_table(bytes)
            .map(|(table, pretokenizer)| BpeTokenizer {
                name: name.to_string(),
                table,
                pretokenizer,
                specials: FxHashMap::default(),
            })
            .filter(|fast| {
                crate::fast_json::validation_lines().iter().all(|line| {
                    let expected = tokenizer.encode_fast(line.as_str(), false).map(|e| e.len());
                    expected.ok() == fast.count_within(line, usize::MAX)
                })
            });
        Ok(Self {
            inner: Arc::new(Backend::HuggingFace {
                name: name.to_string(),
                tokenizer: Box::new(tokenizer),
                fast,
            }),
        })
    }

    /// Whether counting runs on sluice's own BPE. Always true for the embedded
    /// encodings; true for a `tokenizer.json` that is a byte-level BPE split by the
    /// cl100k or o200k pattern and counts exactly like `tokenizers` on a validation
    /// text. Otherwise counting goes through the `tokenizers` library.
    pub fn fast_counting(&self) -> bool {
        match &*self.inner {
            Backend::Bpe(_) => true,
            Backend::HuggingFace { fast, .. } => fast.is_some(),
        }
    }

    /// A short name: the embedded encoding's name or the file it came from.
    pub fn name(&self) -> &str {
        match &*self.inner {
            Backend::Bpe(b) => &b.name,
            Backend::HuggingFace { name, .. } => name,
        }
    }

    /// The number of tokens `text` encodes to.
    pub fn count(&self, text: &str) -> usize {
        self.count_within(text, usize::MAX)
            .expect("no count exceeds usize::MAX")
    }

    /// The number of tokens `text` encodes to, or `None` as soon as it is known to
    /// exceed `limit`. The embedded encodings stop reading the text at that point,
    /// so a huge text costs no more than the limit it is checked against.
    pub fn count_within(&self, text: &str, limit: usize) -> Option<usize> {
        match &*self.inner {
            Backend::Bpe(b) | Backend::HuggingFace { fast: Some(b), .. } => {
                b.count_within(text, limit)
            }
            Backend::HuggingFace { tokenizer, .. } => {
                // `tokenizers` fails only for a model with no way to represent some
                // input (no unknown token, no byte fallback). Such input then costs its
                // byte length, which no byte-level or unknown-token count exceeds.
                let n = tokenizer
                    .encode_fast(text, false)
                    .map_or(text.len(), |e| e.len());
                (n <= limit).then_some(n)
            }
        }
    }

    /// Encodes `text` as ordinary text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match &*self.inner {
            Backend::Bpe(b) => {
                let mut out = Vec::with_capacity(text.len() / 3);
                let ranks = b.table.view();
                b.pretokenizer.pieces(text, |piece| {
                    ranks.encode_piece(piece.as_bytes(), &mut out);
                    true
                });
                out
            }
            Backend::HuggingFace { tokenizer, .. } => tokenizer
                .encode_fast(text, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default(),
        }
    }

    /// The id of a special token (such as `<|im_start|>`), if this tokenizer has it.
    pub fn special_token_id(&self, token: &str) -> Option<u32> {
        match &*self.inner {
            Backend::Bpe(b) => b.specials.get(token).copied(),
            Backend::HuggingFace { tokenizer, .. } => tokenizer.token_to_id(token),
        }
    }

    pub(crate) fn bpe(&self) -> Option<&BpeTokenizer> {
        match &*self.inner {
            Backend::Bpe(b) => Some(b),
            Backend::HuggingFace { .. } => None,
        }
    }
}

impl BpeTokenizer {
    fn count_within(&self, text: &str, limit: usize) -> Option<usize> {
        let mut n = 0usize;
        let mut over = false;
        let ranks = self.table.view();
        self.pretokenizer.pieces(text, |piece| {
            n += ranks.count_piece(piece.as_bytes());
            over = n > limit;
            !over
        });
        (!over).then_some(n)
    }

    pub(crate) fn specials(&self) -> impl Iterator<Item = (&str, Rank)> {
        self.specials.iter().map(|(s, r)| (s.as_str(), *r))
    }
}
