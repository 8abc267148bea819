//! Rate-limited request logs: a flood of rejected requests must not become a
//! flood of log lines.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket on request log lines: at most `rate` lines a second, in
/// bursts of up to `rate`. The lines it turns away are counted, and the count
/// is logged just before the next line it lets through.
#[derive(Debug)]
pub(crate) struct RequestLogs {
    rate: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    skipped: u64,
}

impl RequestLogs {
    /// A bucket of `per_sec` lines a second; `0` lets no line through.
    pub(crate) fn new(per_sec: u32) -> Self {
        Self {
            rate: f64::from(per_sec),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(per_sec),
                refilled: Instant::now(),
                skipped: 0,
            }),
        }
    }

    /// True if a request line may be written now. Logs how many were not,
    /// when that is the case, before saying yes.
    pub(crate) fn admit(&self) -> bool {
        if self.rate == 0.0 {
            return false;
        }
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(bucket.refilled).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + earned).min(self.rate);
        bucket.refilled = now;
        if bucket.tokens < 1.0 {
            bucket.skipped += 1;
            return false;
        }
        bucket.tokens -= 1.0;
        let skipped = std::mem::take(&mut bucket.skipped);
        drop(bucket);
        if skipped > 0 {
            tracing::info!(
                skipped,
                "request lines not logged (over log_requests_per_sec)"
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_logs_are_rate_limited_and_count_what_they_skip() {
        let logs = RequestLogs::new(5);
        // A burst of the rate passes, then lines are counted, not written.
        assert_eq!((0..5).filter(|_| logs.admit()).count(), 5);
        assert!(!logs.admit() && !logs.admit());
        assert_eq!(logs.bucket.lock().unwrap().skipped, 2);
        let off = RequestLogs::new(0);
        assert!(!off.admit());
    }
}
