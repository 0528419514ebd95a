//! The queue's rate limit: a token bucket the pool takes one token from per
//! job it receives.

use std::time::{Duration, Instant};

use sluice_core::RateLimit;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            per_second: limit.per_second,
            burst: f64::from(limit.burst),
            tokens: f64::from(limit.burst),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_second).min(self.burst);
        self.last = now;
    }

    /// Whole tokens available now.
    pub(crate) fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens.floor() as usize
    }

    /// Takes `n` tokens (at most what [`TokenBucket::available`] said).
    pub(crate) fn take(&mut self, n: usize) {
        self.tokens = (self.tokens - n as f64).max(0.0);
    }

    /// How long until one whole token is there.
    pub(crate) fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_then_refills_at_the_rate_up_to_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit {
            per_second: 10.0,
            burst: 3,
        });
        assert_eq!(b.available(t0), 3);
        b.take(3);
        assert_eq!(b.available(t0), 0);
        let w = b.wait(t0);
        assert!(
            w > Duration::from_millis(99) && w <= Duration::from_millis(100),
            "{w:?}"
        );
        assert_eq!(b.available(t0 + Duration::from_millis(250)), 2);
        assert_eq!(
            b.available(t0 + Duration::from_secs(60)),
            3,
            "never above burst"
        );
    }
}
