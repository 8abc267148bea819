//! sluice-practice: practice sessions — one prompt, built from an agent, a style
//! preset, few-shot examples and retrieved knowledge, checked by the router,
//! trimmed per model and sent to several chat models at once; every answer is
//! stored.
//!
//! This crate is async (tokio) but knows no HTTP server: `sluice-http` maps the
//! `/user/practice/...` routes onto it.
//!
//! - [`Store`] is one API over two databases: a SQLite file (the zero set-up
//!   default) and PostgreSQL (for several server replicas), with versioned
//!   migrations. It holds users and their API keys (hashed), classes, agents,
//!   projects, knowledge bases, few-shot examples and sessions.
//! - [`retrieval`] splits documents into passages and ranks them with BM25 over
//!   terms that work for Korean without a model (character bigrams for Hangul
//!   runs, Latin words whole); the scores are computed here, so both databases
//!   rank identically.
//! - [`provider`] calls OpenAI-compatible and CLOVA Studio v3 chat completions,
//!   with retries, deadlines and streaming.
//! - [`Settings`] say where the store lives, which models sessions may call
//!   and which router checks prompts; [`Settings::open`] sets up the
//!   [`Practice`] service from them. A server's configuration embeds them, and
//!   [`SettingsFile`] reads them from a configuration file for a run without
//!   a server.

pub mod budget;
pub mod chat;
mod contract;
mod error;
pub mod leaderboard;
pub mod prompt;
pub mod provider;
mod request;
pub mod retrieval;
mod run;
mod settings;
mod store;
pub mod validate;

pub use contract::{
    Blocked, ModelError, ModelErrorKind, ModelFailure, ResultUsage, SentMessage, SentRequest,
    TurnSettings, WindowReport,
};
pub use error::{FieldError, PracticeError};
pub use request::{
    FORMATS, GenerationParams, LENGTH_PRESETS, MAX_IDS, MAX_MODELS, MAX_PROMPT_CHARS,
    MAX_TEXT_CHARS, RunRequest, STYLE_PRESETS, StyleParams, parse_agent, parse_few_shot,
    parse_knowledge, parse_project,
};
pub use run::{Practice, PracticeModel, RunEvent, RunResponse, STOPPED, StopSignal, Streaming};
pub use settings::{
    DEFAULT_ROUTER, Opened, Settings, SettingsError, SettingsFile, default_data_dir,
    describe_toml_error, resolve_relative,
};
pub use store::*;
pub use store::{Page, PageRequest};
