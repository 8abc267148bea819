//! When to try again, and how long to wait first.
//!
//! Retried: 429 (unless the quota is exhausted), 408, 502, 503, 504 and
//! connection failures before any answer. Not retried: 500 (a model that
//! crashes on a prompt usually crashes again), other 4xx (the request itself is
//! wrong) and anything that goes wrong once an answer has started (a streamed
//! answer may already have been shown). The wait is the upstream's
//! `retry-after-ms` or `Retry-After` when it sends one, else exponential back-off
//! from 500 ms with full jitter, so that many sessions rejected together do not
//! come back together. No wait ever runs past the model's deadline: the last
//! error is returned at once instead, unchanged.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

use super::ProviderError;
use super::wire::Fault;

/// The first back-off step; doubled on each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The largest back-off step, whatever the attempt.
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// A failed attempt, and whether it is worth another.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: ProviderError,
    pub(super) retry: Retry,
}

/// Whether and when a failed attempt may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Not worth repeating.
    Never,
    /// Worth repeating after the usual back-off.
    Backoff,
    /// Worth repeating after the wait the upstream asked for.
    After(Duration),
}

impl Failure {
    /// A failure not worth repeating.
    pub(super) fn fatal(error: ProviderError) -> Self {
        Self {
            error,
            retry: Retry::Never,
        }
    }

    /// A failure to get any answer: refused, reset or closed before the
    /// response head. Retried, since nothing of an answer has been seen.
    pub(super) fn from_send_error(error: reqwest::Error) -> Self {
        // A request that could not even be built will not build next time.
        let retry = if error.is_builder() {
            Retry::Never
        } else {
            Retry::Backoff
        };
        Self {
            error: ProviderError::Transport {
                message: error_chain(&error),
            },
            retry,
        }
    }

    /// A body cut short after the response head.
    pub(super) fn from_body_error(error: reqwest::Error) -> Self {
        Self::fatal(ProviderError::Transport {
            message: error_chain(&error),
        })
    }

    /// An error status, with what its body said and the headers that may ask for
    /// a particular wait.
    pub(super) fn from_status(status: u16, fault: Fault, headers: &HeaderMap) -> Self {
        let retry = match status {
            429 if fault.is_quota_exhausted() => Retry::Never,
            408 | 429 | 502 | 503 | 504 => {
                retry_after(headers, SystemTime::now()).map_or(Retry::Backoff, Retry::After)
            }
            _ => Retry::Never,
        };
        let message = if fault.message.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no message")
                .to_string()
        } else {
            fault.message
        };
        Self {
            error: ProviderError::from_status(status, message),
            retry,
        }
    }
}

/// Runs `attempt(1)`, `attempt(2)`, ... until one succeeds, one fails for good,
/// `max_retries` retries are spent or the next wait would pass `deadline`.
/// Returns the value and the number of attempts made.
pub(super) async fn run<T, F, Fut>(
    model: &str,
    max_retries: u32,
    deadline: Instant,
    mut attempt: F,
) -> Result<(T, u32), ProviderError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut made = 1;
    loop {
        let failure = match attempt(made).await {
            Ok(value) => return Ok((value, made)),
            Err(failure) => failure,
        };
        let wait = match failure.retry {
            Retry::Never => return Err(failure.error),
            _ if made > max_retries => {
                tracing::debug!(model, attempts = made, "retries spent");
                return Err(failure.error);
            }
            Retry::After(wait) => wait,
            Retry::Backoff => backoff(made),
        };
        if Instant::now() + wait >= deadline {
            // Sleeping only to time out would hide the upstream's real answer.
            tracing::debug!(
                model,
                wait_ms = wait.as_millis(),
                "not retrying: the wait would pass the deadline"
            );
            return Err(failure.error);
        }
        tracing::warn!(
            model,
            attempt = made,
            wait_ms = wait.as_millis(),
            error = %failure.error,
            "retrying the upstream"
        );
        tokio::time::sleep(wait).await;
        made += 1;
    }
}

/// The wait before retry number `retry` (1 for the first): uniform in
/// `[0, min(cap, base * 2^(retry-1))]` ("full jitter").
pub(super) fn backoff(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    // Without an entropy source, the middle of the range still spaces retries out.
    let random = getrandom::u64().unwrap_or(u64::MAX / 2);
    Duration::from_millis(random % (ceiling_ms + 1))
}

/// The wait the upstream asked for: `retry-after-ms` (milliseconds, sent by
/// OpenAI and some proxies) or `Retry-After` (seconds, or an HTTP date).
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(parse_seconds) {
        return Some(ms / 1000);
    }
    let value = header(RETRY_AFTER.as_str())?;
    parse_seconds(value).or_else(|| {
        let at = httpdate::parse_http_date(value).ok()?;
        // A date already past means "now".
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    })
}

/// A non-negative number of seconds, possibly fractional.
fn parse_seconds(value: &str) -> Option<Duration> {
    if let Ok(whole) = value.parse::<u64>() {
        return Some(Duration::from_secs(whole));
    }
    let secs = value.parse::<f64>().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// An error and its sources: reqwest's own message rarely says *why*
/// ("error sending request"), its sources do ("connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_in_seconds_milliseconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let wait = |pairs: &[(&'static str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(
            wait(&[("retry-after", "0.5")]),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            wait(&[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            wait(&[("retry-after", "Sun, 06 Nov 1994 08:49:00 GMT")]),
            Some(Duration::ZERO)
        );
        // The finer header wins.
        assert_eq!(
            wait(&[("retry-after", "3"), ("retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[("retry-after", "-1")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..100 {
            assert!(backoff(1) <= Duration::from_millis(500));
            assert!(backoff(3) <= Duration::from_millis(2000));
            assert!(backoff(40) <= BACKOFF_CAP);
        }
    }

    #[test]
    fn which_statuses_are_retried() {
        let fault = |message: &str| Fault {
            message: message.to_string(),
            code: None,
        };
        let retry = |status, message: &str| {
            Failure::from_status(status, fault(message), &HeaderMap::new()).retry
        };
        for status in [408, 429, 502, 503, 504] {
            assert_eq!(retry(status, "busy"), Retry::Backoff, "{status}");
        }
        for status in [400, 401, 404, 500, 501] {
            assert_eq!(retry(status, "no"), Retry::Never, "{status}");
        }
        assert_eq!(retry(429, "You exceeded your current quota"), Retry::Never);
        let quota = Fault {
            message: "no".into(),
            code: Some("insufficient_quota".into()),
        };
        assert_eq!(
            Failure::from_status(429, quota, &HeaderMap::new()).retry,
            Retry::Never
        );
        let slow = headers(&[("retry-after", "2")]);
        assert_eq!(
            Failure::from_status(503, fault("later"), &slow).retry,
            Retry::After(Duration::from_secs(2))
        );
    }
}
