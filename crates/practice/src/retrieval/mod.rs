//! Knowledge retrieval: document parsing, passage splitting, Korean-capable terms
//! and BM25.
//!
//! Everything here is pure and synchronous, so the store can index and query with
//! exactly the same code on SQLite and PostgreSQL and get identical rankings:
//!
//! - [`parse_document`] turns an uploaded `.txt`, `.md` or `.jsonl` file into
//!   documents;
//! - [`split_passages`] cuts a document into passages that fit a token budget;
//! - [`terms`] / [`term_frequencies`] produce the index and query terms (Latin and
//!   digit words whole, Hangul/CJK runs as character bigrams), which work for
//!   Korean without a morphological analyser;
//! - [`Bm25`] scores a passage for a query term from counts the store keeps.

mod bm25;
mod document;
mod passages;
mod terms;

pub use bm25::Bm25;
pub use document::{DocumentError, DocumentFormat, ParsedDocument, parse_document};
pub use passages::split_passages;
pub(crate) use terms::with_term_frequencies;
pub use terms::{term_frequencies, terms};
