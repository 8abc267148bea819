//! sluice-pipeline: streamed, parallel, input-ordered batch work for sluice.
//!
//! - [`stream`] reads JSONL in chunks, processes each chunk's lines on every core
//!   (rayon) and writes their results in input order while the next chunk is
//!   read: memory stays flat however large the input is, and a bad line gets an
//!   error object ([`LineError`], the HTTP API's codes) while the others go on.
//! - [`Job`] is the per-request work of `sluice trim` and `sluice count`: one
//!   request in the sliding-window API's shape in, the JSON the command prints
//!   out ([`Job::run_json`] for one request, [`Job::run_line`] for a batch line).
//! - [`route`] holds the same for `sluice route` ([`route::RouteJob`]) and the
//!   parallel runs behind `route eval` and `route diff`.
//! - `arrow` (the `arrow` feature) runs the same jobs on Arrow record batches,
//!   one row per request, for the Python package and other columnar callers.
//!
//! A batch of trims, as `sluice trim --jsonl` runs it:
//!
//! ```
//! use sluice_core::Profiles;
//! use sluice_pipeline::{Job, JobKind, Tally};
//!
//! let profiles = Profiles::builtin();
//! let job = Job::new(&profiles, "HCX-003", JobKind::Trim { max_tokens: 100, full_report: false })?;
//! let input = concat!(
//!     r#"{"id":"a","messages":[{"role":"user","content":"hi"}]}"#, "\n",
//!     r#"{"id":"b","maxTokens":0,"messages":[{"role":"user","content":"hi"}]}"#, "\n",
//! );
//! let mut out = Vec::new();
//! let mut total = Tally::default();
//! sluice_pipeline::stream(input.as_bytes(), &mut out, |line| job.run_line(line), |t| total += t, |_| {})?;
//! let out = String::from_utf8(out)?;
//! let lines: Vec<&str> = out.lines().collect();
//! assert!(lines[0].starts_with(r#"{"id":"a","messages":[{"role":"user","content":"hi"}],"report":"#));
//! assert_eq!(
//!     lines[1],
//!     r#"{"id":"b","line":2,"error":{"code":"40001","message":"invalid parameter: maxTokens must be between 1 and 4096, got 0"}}"#
//! );
//! assert_eq!((total.lines, total.errors), (2, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "arrow")]
pub mod arrow;
mod job;
pub mod route;
mod stream;

pub use job::{COUNTS_PER_THREAD, Job, JobKind, Request, Tally};
pub use stream::{Line, LineError, StreamError, parse_json, parse_line, stream};
