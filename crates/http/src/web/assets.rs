//! The web app's files, embedded in the binary: no build step, no files to
//! install, nothing fetched at run time.
//!
//! Every file is answered with a strong `ETag` (a hash of its bytes) and
//! `Cache-Control: no-cache`: the browser keeps its copy and revalidates it
//! with one small request that answers `304` until the binary changes. The
//! file names are not content-hashed because the ES modules import each other
//! by name, and rewriting imports would need a build step.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the app; `index.html` is served at `/`, the rest under `/assets/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("markdown.js", JS),
    asset!("diff.js", JS),
    asset!("i18n.js", JS),
    asset!("dom.js", JS),
    asset!("run.js", JS),
    asset!("library.js", JS),
];

/// The policy every page is served with: scripts, styles and connections only
/// from this server, no inline script or style, no plugins, no framing. Model
/// output that slipped past the renderer still could not run or load anything.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The ETag of each asset, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..20]))
            .collect()
    })
}

/// Headers every web response carries.
pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// `SLUICE_WEB_DIR`: a folder whose files replace the embedded ones, read on
/// every request, so the page's code can be changed without recompiling.
/// For working on the app only; a served build leaves it unset.
pub const DEV_DIR_ENV: &str = "SLUICE_WEB_DIR";

fn dev_file(name: &str) -> Option<(Vec<u8>, String)> {
    let dir = std::env::var_os(DEV_DIR_ENV)?;
    let bytes = std::fs::read(std::path::Path::new(&dir).join(name)).ok()?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..20]);
    Some((bytes, etag))
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let (dev, etag) = match dev_file(asset.name) {
        Some((bytes, etag)) => (Some(bytes), etag),
        None => (None, etags()[index].clone()),
    };
    let etag = etag.as_str();
    let mut response = if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = match dev {
            Some(bytes) => bytes.into_response(),
            None => asset.bytes.into_response(),
        };
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).expect("hex digits"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    response
}

/// `GET /`: the app's page.
pub(crate) async fn index(request: HeaderMap) -> Response {
    serve(0, &request)
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name && name != "index.html") {
        Some(i) => serve(i, &request),
        None => {
            let mut r = (StatusCode::NOT_FOUND, "not found").into_response();
            security_headers(r.headers_mut());
            r
        }
    }
}

/// Every asset's name and size in bytes (uncompressed), for the budget bench.
pub fn sizes() -> Vec<(&'static str, usize)> {
    ASSETS.iter().map(|a| (a.name, a.bytes.len())).collect()
}
