//! Per-key rate limits: a token bucket per API key, refilled at a steady
//! rate, read against the server's (injected) clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use keel_core::Timestamp;

/// Requests per second a key may make, with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests a key may make at once after being idle.
    pub burst: f64,
}

impl RateLimit {
    /// `per_second` sustained, bursts of twice that.
    pub fn per_second(per_second: f64) -> Self {
        Self { per_second, burst: (per_second * 2.0).max(1.0) }
    }
}

/// The buckets of every key seen.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<String, (f64, Timestamp)>>,
}

impl Limiter {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Self { limit, buckets: Mutex::default() }
    }

    /// Takes one request from `key`'s bucket; `Err(seconds)` to wait when empty.
    pub(crate) fn take(&self, key: &str, now: Timestamp) -> Result<(), u64> {
        let Some(limit) = self.limit else { return Ok(()) };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((limit.burst, now));
        let elapsed = (now - *last).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        *tokens = (*tokens + elapsed * limit.per_second).min(limit.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / limit.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let t0 = keel_core::parse_timestamp("2026-01-01T00:00:00Z").unwrap();
        let limiter = Limiter::new(Some(RateLimit { per_second: 2.0, burst: 3.0 }));
        for _ in 0..3 {
            assert_eq!(limiter.take("k", t0), Ok(()));
        }
        assert_eq!(limiter.take("k", t0), Err(1));
        assert_eq!(limiter.take("other", t0), Ok(()), "buckets are per key");
        let later = t0 + chrono::Duration::milliseconds(500);
        assert_eq!(limiter.take("k", later), Ok(()), "half a second refills one request");
        assert_eq!(limiter.take("k", later), Err(1));
        assert_eq!(Limiter::new(None).take("k", t0), Ok(()));
    }
}
