//! Browser sign-in: a user's key is exchanged once for a signed session cookie.
//!
//! The cookie holds `<user id>.<expiry>.<nonce>.<mac>`, signed with HMAC-SHA256
//! under the server's session secret, so no session table is needed and every
//! replica sharing the secret accepts it. It is `HttpOnly` (scripts never see
//! it), `SameSite=Strict` (other sites cannot make the browser send it) and
//! `Secure` when the page was served over TLS.
//!
//! Cross-site request protection: besides `SameSite=Strict`, every request
//! that changes state and is authorised by the cookie (not by a bearer key)
//! must carry `X-CSRF-Token`, a MAC of the cookie that only the signed-in page
//! can read (from the sign-in answer or `GET /web/session`). A cross-site form
//! cannot set that header, and a cross-site script cannot read the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "sluice_session";

/// The header that carries the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How long a sign-in lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The secret that signs session cookies.
#[derive(Clone)]
pub struct SessionSecret([u8; 32]);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(redacted)")
    }
}

impl Default for SessionSecret {
    fn default() -> Self {
        Self::random()
    }
}

impl SessionSecret {
    /// A fresh random secret: sign-ins last until the server restarts.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        Self(bytes)
    }

    /// A secret derived from configured text, so that replicas (and restarts)
    /// accept each other's cookies.
    pub fn from_text(text: &str) -> Self {
        use sha2::Digest;
        Self(Sha256::digest(text.as_bytes()).into())
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length works");
        for part in parts {
            mac.update(part);
            mac.update(b"\0");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A new signed cookie value for `user_id`, valid for `lifetime` from `now`.
    pub(crate) fn issue(&self, user_id: i64, now: SystemTime, lifetime: Duration) -> String {
        let expires = unix(now) + lifetime.as_secs();
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let body = format!("{user_id}.{expires}.{}", hex::encode(nonce));
        let mac = self.mac(&[b"session", body.as_bytes()]);
        format!("{body}.{mac}")
    }

    /// The user of a cookie value whose signature holds and that has not
    /// expired at `now`.
    pub(crate) fn verify(&self, value: &str, now: SystemTime) -> Option<i64> {
        let (body, mac) = value.rsplit_once('.')?;
        let expected = self.mac(&[b"session", body.as_bytes()]);
        if !crate::server::auth::constant_time_eq_str(&expected, mac) {
            return None;
        }
        let mut fields = body.split('.');
        let user_id = fields.next()?.parse().ok()?;
        let expires: u64 = fields.next()?.parse().ok()?;
        (unix(now) < expires).then_some(user_id)
    }

    /// The CSRF token that goes with a cookie value.
    pub(crate) fn csrf_token(&self, cookie: &str) -> String {
        self.mac(&[b"csrf", cookie.as_bytes()])
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The session cookie's value in a request, if any.
pub(crate) fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
        .filter(|v| !v.is_empty())
}

/// Why a cookie-authorised request was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CookieAuth {
    /// No cookie, or a bad or expired one.
    Invalid,
    /// A state-changing request without the right CSRF token.
    Csrf,
}

/// The user a request's session cookie signs in, checking the CSRF token on
/// every method that may change state. `Ok(None)` when there is no cookie.
pub(crate) fn cookie_user(
    secret: &SessionSecret,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<i64>, CookieAuth> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let user = secret
        .verify(value, SystemTime::now())
        .ok_or(CookieAuth::Invalid)?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !crate::server::auth::constant_time_eq_str(&secret.csrf_token(value), presented) {
            return Err(CookieAuth::Csrf);
        }
    }
    Ok(Some(user))
}

/// True when the request reached us over TLS (directly or through a proxy
/// that says so), so the cookie must be `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that stores `value` (or clears the cookie when `None`).
pub(crate) fn set_cookie(value: Option<&str>, request: &HeaderMap) -> HeaderValue {
    let secure = if over_tls(request) { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("cookie values are hex and digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_verifies_until_it_expires_and_not_when_tampered() {
        let secret = SessionSecret::random();
        let now = SystemTime::now();
        let cookie = secret.issue(7, now, Duration::from_secs(60));
        assert_eq!(secret.verify(&cookie, now), Some(7));
        assert_eq!(secret.verify(&cookie, now + Duration::from_secs(61)), None);
        let forged = cookie.replacen("7.", "8.", 1);
        assert_eq!(secret.verify(&forged, now), None);
        assert_eq!(SessionSecret::random().verify(&cookie, now), None);
        assert_eq!(secret.verify("garbage", now), None);
    }

    #[test]
    fn state_changes_need_the_csrf_token_of_the_cookie() {
        let secret = SessionSecret::random();
        let cookie = secret.issue(3, SystemTime::now(), LIFETIME);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={cookie}")).unwrap(),
        );
        assert_eq!(cookie_user(&secret, &Method::GET, &headers), Ok(Some(3)));
        assert_eq!(
            cookie_user(&secret, &Method::POST, &headers),
            Err(CookieAuth::Csrf)
        );
        headers.insert(CSRF_HEADER, HeaderValue::from_static("0000"));
        assert_eq!(
            cookie_user(&secret, &Method::DELETE, &headers),
            Err(CookieAuth::Csrf)
        );
        headers.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&secret.csrf_token(&cookie)).unwrap(),
        );
        assert_eq!(cookie_user(&secret, &Method::POST, &headers), Ok(Some(3)));
        assert_eq!(
            cookie_user(&secret, &Method::GET, &HeaderMap::new()),
            Ok(None)
        );
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_tls() {
        let plain = set_cookie(Some("v"), &HeaderMap::new());
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let mut tls = HeaderMap::new();
        tls.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(Some("v"), &tls)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
