//! Cross-origin requests from browsers, allowed only for configured origins.

use axum::http::{HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, Any, CorsLayer};

use crate::server::middleware::REQUEST_ID;

/// The CORS layer for `origins`, or `None` when the list is empty (no CORS
/// headers at all, so browsers refuse cross-origin calls). `*` allows any
/// origin; other entries must match the `Origin` header exactly. Entries that
/// are not valid header values were refused by [`Config::validate`](crate::Config::validate).
pub(crate) fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            // Authorization, Content-Type and the API's own headers.
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([REQUEST_ID])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
