//! sluice-http: the HTTP server of sluice, a thin [axum] adapter over
//! [`sluice_core`] and [`sluice_router`] that speaks CLOVA Studio's wire format.
//!
//! - [`app`] builds the [`axum::Router`] from an [`AppState`] (model profiles,
//!   routers, API keys, [`Limits`]); [`serve`] runs it on a listener until a
//!   shutdown future completes ([`shutdown_signal`] for SIGINT/SIGTERM), and
//!   [`serve_with`] with [`ConnectionLimits`]: a cap on open connections, a
//!   header timeout that also closes idle keep-alive connections, a head size
//!   limit and a shutdown deadline.
//! - Endpoints, each also under `/testapp` and `/serviceapp` ([`PREFIXES`]):
//!   `POST /v1/api-tools/sliding/chat-messages/{modelName}` (sliding window),
//!   `POST /v1/api-tools/chat-tokenize/{modelName}` (token calculator),
//!   `POST /v1/routers/{router-id}/versions/{version}/route[?explain=true]`
//!   (router); and `GET /healthz` (liveness), `GET /readyz` (readiness: the
//!   database answers, migrations are done, not draining), `GET /metrics`
//!   (Prometheus), `GET /openapi.json`.
//! - Every answer is the envelope `{"status":{"code","message"},"result"}`; the
//!   HTTP status is the code's first three digits. Every failure is an
//!   [`ApiError`] with a [`Code`]: malformed JSON `40000`, a bad field `40001`,
//!   context exceeded `40003`, empty router query `40004`, unknown model
//!   `40080`, no or wrong key `40100`, unknown path, router or version `40400`,
//!   slow body `40800`, body too large `41300`, overload `42900`, too many
//!   connections `50300`, timeout `50400`, invalid router file `65001`, over
//!   the router's token limit `65400`
//!   (the `65xxx` codes are sent with HTTP 400).
//! - [`Config`] reads a TOML file and `SLUICE_*` environment overrides, and
//!   refuses a non-loopback address without API keys.
//!
//! ```
//! use sluice_http::{AppState, app, serve};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let router = app(AppState::builder().build());
//! // Stops at once here; a real server passes `sluice_http::shutdown_signal()`.
//! serve(listener, router, async {}).await?;
//! # Ok(())
//! # }
//! ```

mod app;
mod auth;
mod backlog;
mod config;
mod conn;
mod cors;
mod error;
mod extract;
mod gateway;
mod handlers;
mod instructor;
mod metrics;
mod middleware;
mod openapi;
mod practice;
mod reference;
mod routers;
mod runs;
mod state;
mod tokens;
mod votes;
mod web;

pub use app::{PREFIXES, app, drained_shutdown, served_routes, shutdown_signal};
pub use auth::ApiKeys;
pub use config::{Config, ConfigError, DEFAULT_ADDR, Limits, LogFormat, default_data_dir};
pub use conn::{ConnectionLimits, raise_open_files_limit, serve, serve_with};
pub use error::{ApiError, Code, Success};
pub use extract::ApiJson;
pub use gateway::TURNS_DROPPED;
pub use handlers::DEFAULT_MAX_TOKENS;
pub use instructor::INSTRUCTOR_ROUTES;
pub use metrics::Metrics;
pub use middleware::{REQUEST_ID, RequestId};
pub use openapi::document as openapi_document;
pub use practice::PRACTICE_ROUTES;
pub use reference::{
    EXAMPLE as CONFIG_EXAMPLE, MODEL_SETTINGS, OTHER_ENV, SETTINGS, Setting, accepted_keys,
    config_reference, env_vars,
};
pub use state::{AppState, StateBuilder};
pub use votes::{MAX_RESAMPLES, VOTE_ROUTES};
pub use web::{SessionSecret, asset_sizes};
