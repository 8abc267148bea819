//! The server's router: every API's routes, mounted from [`routes`](crate::routes),
//! behind their layers; and the shutdown futures.

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, get, on};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;

use crate::routes::{API, Endpoint, OPS, PREFIXES};
use crate::server::middleware::{auth, layer_error, observe, read_body, read_body_practice};
use crate::server::state::AppState;
use crate::{clova, gateway, ops, practice, web};

/// The least time a practice request may take: model calls with retries.
const PRACTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The handler of each API endpoint, for the method the table gives it.
fn handler(endpoint: Endpoint) -> MethodRouter<AppState> {
    let method = MethodFilter::try_from(endpoint.method()).expect("a method axum routes");
    match endpoint {
        Endpoint::Sliding => on(method, clova::sliding),
        Endpoint::Tokenize => on(method, clova::tokenize),
        Endpoint::TokenizeV3 => on(method, gateway::tokenize_v3),
        Endpoint::Route => on(method, clova::route),
        Endpoint::ChatV3 => on(method, gateway::clova_v3),
        Endpoint::ChatV1 => on(method, gateway::clova_v1),
        Endpoint::OpenAi => on(method, gateway::openai),
        Endpoint::AuthToken => on(method, gateway::auth_token),
    }
}

/// The server's router: the API routes (under every prefix in [`PREFIXES`]) behind
/// auth, a concurrency limit with load shedding, a timeout and a body limit; the
/// operational routes `/healthz`, `/metrics`, `/openapi.json`; an envelope `40400`
/// for anything else. Every response carries `X-NCP-CLOVASTUDIO-REQUEST-ID`.
pub fn app(state: AppState) -> Router {
    let limits = *state.limits();
    let cors = crate::server::cors::layer(state.cors_origins());
    let mut api = Router::new();
    for prefix in PREFIXES {
        for (path, endpoint) in API {
            api = api.route(&format!("{prefix}{path}"), handler(endpoint));
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
    let practice = practice::routes().layer(
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
        .route(OPS[0], get(ops::healthz))
        .route(OPS[1], get(ops::metrics))
        .route(OPS[2], get(ops::openapi))
        .route(OPS[3], get(ops::readyz));
    let app = api
        .merge(practice)
        .merge(ops)
        .merge(web::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::routes::{INSTRUCTOR_ROUTES, PRACTICE_ROUTES, VOTE_ROUTES};

    /// Every row of the practice tables reaches its handler: with no practice
    /// service configured, the handler's caller check answers 503, where a
    /// route that is not mounted would get the 404 or 405 fallback.
    #[tokio::test]
    async fn every_practice_route_in_the_tables_is_mounted() {
        let router = app(AppState::builder().build());
        let tables = [PRACTICE_ROUTES, VOTE_ROUTES, INSTRUCTOR_ROUTES];
        for (method, path, ..) in tables.into_iter().flatten() {
            let uri: Vec<&str> = path
                .split('/')
                .map(|part| if part.starts_with('{') { "1" } else { part })
                .collect();
            let request = Request::builder()
                .method(*method)
                .uri(uri.join("/"))
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path}"
            );
        }
    }
}
