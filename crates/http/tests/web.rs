//! The web app's server side over a real socket: the page and its assets
//! (CSP, ETags, compression) and the session-cookie sign-in with its CSRF
//! token. The page itself is tested in a real browser (tests/browser/).

use std::collections::BTreeMap;
use std::io::Read;

use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use sluice_http::{AppState, app};
use sluice_practice::{Practice, Store};
use tokio::sync::oneshot;

struct Web {
    base: String,
    http: reqwest::Client,
    key: String,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Web {
    let store = Store::in_memory().await.unwrap();
    let (_, key) = store.create_user("student").await.unwrap();
    let practice = Practice::new(store, BTreeMap::new(), None);
    let state = AppState::builder().practice(practice).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sluice_http::serve(listener, app(state), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    Web {
        base,
        http,
        key: key.key,
        _stop: stop,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_embedded_compressed_cached_and_locked_down() {
    let web = start().await;
    let page = web.http.get(format!("{}/", web.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(header(&headers, "content-type").starts_with("text/html"));
    let html = page.text().await.unwrap();
    // No inline script or style: every script and stylesheet has a source.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script type=\"module\" src=").count()
    );
    assert!(
        !html.contains("<style") && !html.contains(" style="),
        "{html}"
    );

    // ETag and revalidation.
    let asset = format!("{}/assets/run.js", web.base);
    let plain = web.http.get(&asset).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(header(plain.headers(), "content-type").starts_with("text/javascript"));
    assert_eq!(header(plain.headers(), "cache-control"), "no-cache");
    let etag = header(plain.headers(), "etag").to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let identity = plain.bytes().await.unwrap();
    assert!(
        std::str::from_utf8(&identity)
            .unwrap()
            .contains("export async function runPage")
    );
    let again = web
        .http
        .get(&asset)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // Brotli when accepted, else gzip; each decodes to the same file.
    let br = web
        .http
        .get(&asset)
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(br.headers(), "content-encoding"), "br");
    assert_ne!(
        header(br.headers(), "etag"),
        etag,
        "each encoding has its own ETag"
    );
    let compressed = br.bytes().await.unwrap();
    assert!(
        compressed.len() * 3 < identity.len(),
        "{} of {}",
        compressed.len(),
        identity.len()
    );
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&compressed[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, identity);
    let gz = web
        .http
        .get(&asset)
        .header(header::ACCEPT_ENCODING, "br;q=0, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(gz.headers(), "content-encoding"), "gzip");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, identity);

    // Only the embedded files are served.
    for path in [
        "/assets/../Cargo.toml",
        "/assets/index.html",
        "/assets/nope.js",
    ] {
        let r = web
            .http
            .get(format!("{}{path}", web.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_signs_in_to_a_strict_http_only_cookie_whose_changes_need_the_csrf_token() {
    let web = start().await;
    let url = format!("{}/web/session", web.base);
    // Wrong key, no JSON.
    let r = web
        .http
        .post(&url)
        .json(&json!({"key": "sk-sluice-wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    let r = web
        .http
        .post(&url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("key={}", web.key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "a cross-site form cannot sign anyone in");

    let r = web
        .http
        .post(&url)
        .json(&json!({"key": web.key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set_cookie = header(r.headers(), "set-cookie").to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP on loopback: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["name"], "student");
    let csrf = body["csrf_token"].as_str().unwrap().to_string();

    // The cookie reads; a change needs the token; a bad cookie is 401.
    let me = web
        .http
        .get(format!("{}/user/practice/me", web.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let projects = format!("{}/user/practice/projects", web.base);
    let create = |token: Option<&str>| {
        let mut r = web
            .http
            .post(&projects)
            .header(header::COOKIE, &cookie)
            .json(&json!({"name": "p"}));
        if let Some(token) = token {
            r = r.header("x-csrf-token", token);
        }
        r.send()
    };
    assert_eq!(create(None).await.unwrap().status(), 403);
    assert_eq!(create(Some("00ff")).await.unwrap().status(), 403);
    assert_eq!(create(Some(&csrf)).await.unwrap().status(), 201);
    let forged = cookie.replacen('=', "=1", 1);
    let r = web
        .http
        .get(format!("{}/user/practice/me", web.base))
        .header(header::COOKIE, forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Bearer keys work as before, without a token.
    let r = web
        .http
        .post(&projects)
        .bearer_auth(&web.key)
        .json(&json!({"name": "q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Who am I, then sign out (which needs the token too) clears the cookie.
    let who = web
        .http
        .get(&url)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    let r = web
        .http
        .delete(&url)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = web
        .http
        .delete(&url)
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(header(r.headers(), "set-cookie").contains("Max-Age=0"));
    // Behind a TLS proxy the cookie is Secure.
    let r = web
        .http
        .post(&url)
        .header("x-forwarded-proto", "https")
        .json(&json!({"key": web.key}))
        .send()
        .await
        .unwrap();
    assert!(header(r.headers(), "set-cookie").ends_with("; Secure"));
}
