//! The web app's files, embedded in the binary: no build step, no files to
//! install, nothing fetched at run time.
//!
//! Each file is compressed once (brotli at its best quality, and gzip for
//! browsers without brotli), in a background thread when the routes are built,
//! and then served from memory: compressing per request with the highest
//! brotli quality would cost milliseconds of CPU that a run being served beside
//! the page would feel (measured in `benches/web_budget.py`).
//!
//! Every file is answered with a strong `ETag` (a hash of its bytes) and
//! `Cache-Control: no-cache`: the browser keeps its copy and revalidates it
//! with one small request that answers `304` until the binary changes. The
//! file names are not content-hashed because the ES modules import each other
//! by name, and rewriting imports would need a build step.

use std::sync::OnceLock;

use axum::body::Body;
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
    asset!("vote.js", JS),
    asset!("class.js", JS),
];

/// The policy every page is served with: scripts, styles and connections only
/// from this server, no inline script or style, no plugins, no framing. Model
/// output that slipped past the renderer still could not run or load anything.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// An asset's compressed forms.
struct Encoded {
    brotli: Vec<u8>,
    gzip: Vec<u8>,
}

/// Every asset compressed, computed once (the first caller waits for it).
fn encoded() -> &'static [Encoded] {
    static ENCODED: OnceLock<Vec<Encoded>> = OnceLock::new();
    ENCODED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut brotli = Vec::new();
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 11,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &a.bytes[..], &mut brotli, &params)
                    .expect("compressing into memory cannot fail");
                let mut gzip =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                std::io::Write::write_all(&mut gzip, a.bytes).expect("writing into memory");
                let gzip = gzip.finish().expect("writing into memory");
                Encoded { brotli, gzip }
            })
            .collect()
    })
}

/// Compresses the assets now, off the request path.
pub(crate) fn warm() {
    std::thread::spawn(encoded);
}

/// The encoding to answer with: brotli if the client takes it, else gzip,
/// else none (an encoding listed with `q=0` is refused).
fn pick_encoding(request: &HeaderMap) -> Option<&'static str> {
    let accepted: Vec<(String, bool)> = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name, !refused)
        })
        .collect();
    ["br", "gzip"]
        .into_iter()
        .find(|e| accepted.iter().any(|(name, ok)| *ok && name == e))
}

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
    // The body, its encoding and its ETag: each encoding is its own
    // representation, so its ETag differs too.
    let (body, encoding, etag): (Body, Option<&'static str>, String) = match dev_file(asset.name) {
        Some((bytes, etag)) => (bytes.into(), None, etag),
        None => {
            let base = &etags()[index];
            match pick_encoding(request) {
                None => (asset.bytes.into(), None, base.clone()),
                Some(encoding) => {
                    let forms = &encoded()[index];
                    let bytes: &'static [u8] = if encoding == "br" {
                        &forms.brotli
                    } else {
                        &forms.gzip
                    };
                    let tagged = format!("{}-{encoding}\"", base.trim_end_matches('"'));
                    (bytes.into(), Some(encoding), tagged)
                }
            }
        }
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(encoding) = encoding {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        r
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex digits"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    security_headers(headers);
    response
}

/// `GET /`: the app's page.
pub(crate) async fn index(request: HeaderMap) -> Response {
    serve(0, &request)
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>, request: HeaderMap) -> Response {
    match ASSETS
        .iter()
        .position(|a| a.name == name && name != "index.html")
    {
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
