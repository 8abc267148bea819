//! sluice-core: local, deterministic token counting and the sliding window for
//! chat histories.
//!
//! - [`Tokenizer`] counts text: the embedded `cl100k_base` and `o200k_base`
//!   encodings ([`Embedded`]) need no files and no network; any Hugging Face
//!   `tokenizer.json` loads with [`Tokenizer::from_file`].
//! - [`ModelProfile`] names a model's tokenizer, context limit, largest `maxTokens`
//!   and [`ChatTemplate`]; [`Profiles`] holds the built-in profiles plus any from a
//!   TOML file and resolves names to ready [`Model`]s.
//! - [`Model`] counts messages (`tokens(render(message))`, cached per message) and
//!   trims histories with a [`Window`], which returns a [`Trim`]: the kept messages
//!   and a [`TrimReport`].
//! - [`Conversation`] owns a growing chat history and remembers what it counted:
//!   re-trimming after a new turn tokenizes only the new messages and reads only
//!   the kept ones.
//!
//! Counting a text:
//!
//! ```
//! use sluice_core::Embedded;
//!
//! let cl100k = Embedded::Cl100kBase.tokenizer();
//! assert_eq!(cl100k.count("hello world"), 2);
//! // Text that looks like a special token is counted as text.
//! assert!(cl100k.count("<|endoftext|>") > 1);
//! ```
//!
//! Trimming a history for HCX-003 (4,096 tokens):
//!
//! ```
//! use sluice_core::{Message, Profiles};
//!
//! let model = Profiles::builtin().model("HCX-003").unwrap();
//! let mut history = vec![Message::system("Answer in Korean.")];
//! for i in 0..500 {
//!     history.push(Message::user(format!("질문 {i}: 오늘 서울 날씨는 어때요?")));
//!     history.push(Message::assistant("맑고 따뜻합니다. 미세먼지는 보통입니다."));
//! }
//! let trim = model.trim(&history, 1000).unwrap();
//! let report = trim.report();
//! assert!(report.tokens_after + 1000 <= 4096);
//! assert_eq!(trim.kept(&history).next(), Some(&history[0])); // system kept
//! let kept = trim.apply(history);
//! assert_eq!(kept.len(), 1 + 2 * (500 - report.turns_dropped));
//! ```

mod bpe;
mod conversation;
mod error;
mod export;
mod fast_json;
mod json_error;
mod message;
mod model;
mod pretokenize;
mod profile;
mod profiles;
mod rank_layout;
mod scan;
mod tokenizer;
mod window;
mod wire;

pub use conversation::Conversation;
pub use error::{BuildError, Exceeded, TrimError};
pub use export::export_tokenizer_json;
pub use json_error::{describe_json_error, is_malformed_json, strip_bom};
pub use message::{FunctionCall, ImagePart, Message, MessageView, Role, ToolCall, UnknownRole};
pub use model::{CacheScope, Counts, DEFAULT_CACHE_CAPACITY, Model};
pub use profile::{ChatTemplate, ImageRule, ModelProfile, TokenizerSource, builtin_profiles};
pub use profiles::Profiles;
pub use tokenizer::{Embedded, Tokenizer};
pub use window::{MessageCounter, Trim, TrimReport, Window, WindowMessage};
pub use wire::{WireMessage, WireMessageRef};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
