//! sluice-http: the HTTP server of sluice. It serves three APIs, the web app
//! and the operational endpoints from one [`axum::Router`], mapping requests to
//! [`sluice_core`], [`sluice_router`] and [`sluice_practice`] calls and their
//! results and errors to each API's wire format; the business logic lives in
//! those crates.
//!
//! - **The CLOVA Studio-compatible tools**, each also under `/testapp` and
//!   `/serviceapp` ([`PREFIXES`]) and with a trailing `/{appId}`:
//!   `POST /v1/api-tools/sliding/chat-messages/{modelName}` (sliding window),
//!   `POST /v1/api-tools/chat-tokenize/{modelName}` and its v3 form (token
//!   calculator), `POST /v1/routers/{router-id}/versions/{version}/route[?explain=true]`
//!   (router).
//! - **The chat-completions gateway**: CLOVA Studio's
//!   `POST /v3/chat-completions/{modelName}` and `/v1/chat-completions/{modelName}`
//!   and the OpenAI-compatible `POST /v1/openai/chat/completions` and
//!   `/v1/chat/completions`, forwarded (streaming included) to the provider
//!   configured for the model, with an optional router check and sliding-window
//!   trim first ([`TURNS_DROPPED`] says how many turns went); and
//!   `GET /v1/auth/token` (access tokens for an API key).
//! - **Practice** (`/user/practice/...`, the original product's FastAPI
//!   conventions, bearer keys of stored users or the web app's session
//!   cookie): sessions run against several models at once (whole or streamed),
//!   agents, projects, few-shot examples, knowledge bases and search
//!   ([`PRACTICE_ROUTES`]); the instructor side: a class's students, their
//!   sessions (read-only), usage and budgets ([`INSTRUCTOR_ROUTES`]); blind
//!   votes, ratings, the leaderboard and the class export ([`VOTE_ROUTES`]).
//! - **The web app**: `/`, `/assets/{name}` (embedded, compressed,
//!   [`asset_sizes`]) and `/web/session` (sign in with a cookie signed by a
//!   [`SessionSecret`]).
//! - **Operational endpoints**, without prefix, auth or limits: `GET /healthz`
//!   (liveness), `GET /readyz` (readiness: the database answers, migrations
//!   are done, not draining), `GET /metrics` (Prometheus, [`Metrics`]),
//!   `GET /openapi.json` ([`openapi_document`]; every served route is in it,
//!   [`served_routes`]).
//!
//! The envelope API answers `{"status":{"code","message"},"result"}`; the HTTP
//! status is the code's first three digits. Every failure there is an
//! [`ApiError`] with a [`Code`]: malformed JSON `40000`, a bad field `40001`,
//! context exceeded `40003`, empty router query `40004`, unknown model
//! `40080`, no or wrong key `40100`, blocked by the router `40300`, unknown
//! path, router or version `40400`, slow body `40800`, body too large `41300`,
//! overload `42900`, upstream failure `50200`, too many connections `50300`,
//! timeout `50400`, invalid router file `65001`, over the router's token limit
//! `65400` (the `65xxx` codes are sent with HTTP 400).
//!
//! Serving: [`app`](fn@app) builds the router from an [`AppState`] (model profiles,
//! routers, API keys, [`Limits`], the practice service); [`serve`] runs it on a
//! listener until a shutdown future completes ([`shutdown_signal`] for
//! SIGINT/SIGTERM, [`drained_shutdown`] to answer `/readyz` with 503 first),
//! and [`serve_with`] with [`ConnectionLimits`]: a cap on open connections, a
//! header timeout that also closes idle keep-alive connections, a head size
//! limit and a shutdown deadline.
//!
//! Configuration: [`Config`] reads a TOML file and `SLUICE_*` environment
//! overrides, and refuses a non-loopback address without API keys; every
//! setting is described in [`SETTINGS`] and [`MODEL_SETTINGS`], rendered by
//! [`config_reference`].
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
mod clova;
mod gateway;
mod openapi;
mod ops;
mod practice;
mod routes;
mod server;
mod web;

pub use app::{app, drained_shutdown, shutdown_signal};
pub use clova::window::DEFAULT_MAX_TOKENS;
pub use gateway::TURNS_DROPPED;
pub use openapi::document as openapi_document;
pub use practice::MAX_RESAMPLES;
pub use routes::{INSTRUCTOR_ROUTES, PRACTICE_ROUTES, PREFIXES, VOTE_ROUTES, served_routes};
pub use server::auth::ApiKeys;
pub use server::config::reference::{
    EXAMPLE as CONFIG_EXAMPLE, accepted_keys, config_reference, env_vars,
};
pub use server::config::settings::{MODEL_SETTINGS, OTHER_ENV, SETTINGS, Setting};
pub use server::config::{Config, ConfigError, DEFAULT_ADDR, Limits, LogFormat};
pub use server::conn::{ConnectionLimits, raise_open_files_limit, serve, serve_with};
pub use server::error::{ApiError, Code, Success};
pub use server::extract::ApiJson;
pub use server::metrics::Metrics;
pub use server::middleware::{REQUEST_ID, RequestId};
pub use server::session::SessionSecret;
pub use server::state::{AppState, StateBuilder};
pub use web::asset_sizes;
