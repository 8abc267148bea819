//! The router: routes, layers and the server loop.

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;

use crate::middleware::{auth, layer_error, observe, read_body, read_body_practice};
use crate::state::AppState;
use crate::{gateway, handlers};

/// Every API path is also served under these prefixes, as older CLOVA Studio
/// deployments use them.
pub const PREFIXES: [&str; 3] = ["", "/testapp", "/serviceapp"];

/// The API endpoints, without prefix. The router and the OpenAPI document are
/// both built from this table. The hosted API's app-id (task-id) forms, with a
/// trailing `/{appId}`, are served too: older clients post to them.
pub(crate) const API: [(&str, Endpoint); 14] = [
    (
        "/v1/api-tools/sliding/chat-messages/{modelName}",
        Endpoint::Sliding,
    ),
    (
        "/v1/api-tools/sliding/chat-messages/{modelName}/{appId}",
        Endpoint::Sliding,
    ),
    (
        "/v1/api-tools/chat-tokenize/{modelName}",
        Endpoint::Tokenize,
    ),
    (
        "/v1/api-tools/chat-tokenize/{modelName}/{appId}",
        Endpoint::Tokenize,
    ),
    (
        "/v3/api-tools/chat-tokenize/{modelName}",
        Endpoint::TokenizeV3,
    ),
    (
        "/v3/api-tools/chat-tokenize/{modelName}/{appId}",
        Endpoint::TokenizeV3,
    ),
    (
        "/v1/routers/{router-id}/versions/{version}/route",
        Endpoint::Route,
    ),
    ("/v3/chat-completions/{modelName}", Endpoint::ChatV3),
    ("/v3/chat-completions/{modelName}/{appId}", Endpoint::ChatV3),
    ("/v1/chat-completions/{modelName}", Endpoint::ChatV1),
    ("/v1/chat-completions/{modelName}/{appId}", Endpoint::ChatV1),
    ("/v1/openai/chat/completions", Endpoint::OpenAi),
    ("/v1/chat/completions", Endpoint::OpenAi),
    ("/v1/auth/token", Endpoint::AuthToken),
];

/// The least time a practice request may take: model calls with retries.
const PRACTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Operational endpoints: no prefix, no auth, no limits.
pub(crate) const OPS: [&str; 4] = ["/healthz", "/metrics", "/openapi.json", "/readyz"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Sliding,
    Tokenize,
    TokenizeV3,
    Route,
    ChatV3,
    ChatV1,
    OpenAi,
    AuthToken,
}

impl Endpoint {
    fn method_router(self) -> MethodRouter<AppState> {
        match self {
            Endpoint::Sliding => post(handlers::sliding),
            Endpoint::Tokenize => post(handlers::tokenize),
            Endpoint::TokenizeV3 => post(gateway::tokenize_v3),
            Endpoint::Route => post(handlers::route),
            Endpoint::ChatV3 => post(gateway::clova_v3),
            Endpoint::ChatV1 => post(gateway::clova_v1),
            Endpoint::OpenAi => post(gateway::openai),
            Endpoint::AuthToken => get(gateway::auth_token),
        }
    }

    /// The method the endpoint answers.
    pub(crate) fn method(self) -> Method {
        match self {
            Endpoint::AuthToken => Method::GET,
            _ => Method::POST,
        }
    }
}

/// Every `(method, path)` the server answers, prefixes included.
pub fn served_routes() -> Vec<(Method, String)> {
    let mut routes: Vec<_> = PREFIXES
        .iter()
        .flat_map(|prefix| {
            API.iter()
                .map(move |(path, endpoint)| (endpoint.method(), format!("{prefix}{path}")))
        })
        .collect();
    routes.extend(OPS.iter().map(|path| (Method::GET, path.to_string())));
    routes
}

/// The server's router: the API routes (under every prefix in [`PREFIXES`]) behind
/// auth, a concurrency limit with load shedding, a timeout and a body limit; the
/// operational routes `/healthz`, `/metrics`, `/openapi.json`; an envelope `40400`
/// for anything else. Every response carries `X-NCP-CLOVASTUDIO-REQUEST-ID`.
pub fn app(state: AppState) -> Router {
    let limits = *state.limits();
    let cors = crate::cors::layer(state.cors_origins());
    let mut api = Router::new();
    for prefix in PREFIXES {
        for (path, endpoint) in API {
            api = api.route(&format!("{prefix}{path}"), endpoint.method_router());
        }
    }
    // Outermost first. Auth runs before the body is read, and the body is read
    // (within its own deadline) before a request takes a slot, so that a slow
    // upload holds no slot; the timeout covers the work.
    let api = api.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(state.clone(), auth))
            .layer(from_fn_with_state(state.clone(), read_body))
            .layer(HandleErrorLayer::new(layer_error))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(limits.concurrency_limit))
            .layer(TimeoutLayer::new(limits.request_timeout))
            .layer(DefaultBodyLimit::max(limits.body_limit)),
    );
    // Practice routes authenticate their own users and answer in FastAPI's
    // shape; a run waits on model calls, so it gets a longer deadline.
    let practice = crate::practice::routes()
        .merge(crate::votes::routes())
        .merge(crate::instructor::routes())
        .layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state.clone(), read_body_practice))
                .layer(HandleErrorLayer::new(layer_error))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(limits.concurrency_limit))
                .layer(TimeoutLayer::new(
                    limits.request_timeout.max(PRACTICE_TIMEOUT),
                ))
                .layer(DefaultBodyLimit::max(limits.body_limit)),
        );
    let ops = Router::new()
        .route(OPS[0], get(handlers::healthz))
        .route(OPS[1], get(handlers::metrics))
        .route(OPS[2], get(handlers::openapi))
        .route(OPS[3], get(handlers::readyz));
    let app = api
        .merge(practice)
        .merge(ops)
        .merge(crate::web::routes())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state);
    // Outermost, so that a preflight is answered before auth and limits.
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// Completes `drain` after `signal`: marks `state` draining as soon as the
/// signal comes (`/readyz` answers 503 while every route still serves), so
/// that a load balancer moves traffic away before the listener closes; pass
/// it as the shutdown future of [`serve_with`](crate::serve_with), which then
/// lets requests in flight finish within its shutdown deadline.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let state = sluice_http::AppState::builder().build();
/// let drain = std::time::Duration::from_millis(1);
/// sluice_http::drained_shutdown(state.clone(), async {}, drain).await;
/// assert!(state.is_draining());
/// # }
/// ```
pub async fn drained_shutdown(
    state: AppState,
    signal: impl std::future::Future<Output = ()>,
    drain: std::time::Duration,
) {
    signal.await;
    state.start_draining();
    if !drain.is_zero() {
        tracing::info!(
            drain_ms = drain.as_millis(),
            "draining: /readyz answers 503"
        );
        tokio::time::sleep(drain).await;
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
