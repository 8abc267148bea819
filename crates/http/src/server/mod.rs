//! The server core every API shares: configuration, the shared state, the
//! connection layer, the middleware (request ids, auth, body reading, limits'
//! errors), metrics, the error envelope, and the credentials a request may
//! present (API keys, access tokens, the web app's session cookie).

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod cors;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod metrics;
pub(crate) mod middleware;
pub(crate) mod request_logs;
pub(crate) mod routers;
pub(crate) mod runs;
pub(crate) mod session;
pub(crate) mod state;
pub(crate) mod tokens;
