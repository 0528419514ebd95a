//! A token bucket: the worker pool takes one token per job it receives (a
//! queue's rate limit), and a paced replay one per job it replays.

use std::time::{Duration, Instant};

use crate::RateLimit;

/// Tokens that refill at `per_second` up to `burst`, by the clock passed in:
/// time lost between calls is made up, never beyond `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self::starting_with(limit, f64::from(limit.burst))
    }

    /// A bucket holding `tokens` (at most `burst`) now.
    pub fn starting_with(limit: RateLimit, tokens: f64) -> Self {
        let burst = f64::from(limit.burst);
        Self {
            per_second: limit.per_second,
            burst,
            tokens: tokens.min(burst),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_second).min(self.burst);
        self.last = now;
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        // a hair of slack, so waiting exactly `wait` yields the token
        (self.tokens + 1e-9).floor() as usize
    }

    /// Takes `n` tokens (at most what [`TokenBucket::available`] said).
    pub fn take(&mut self, n: usize) {
        self.tokens = (self.tokens - n as f64).max(0.0);
    }

    /// How long until one whole token is there.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = (1.0 - 1e-9 - self.tokens).max(0.0);
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

    /// Paces `total` jobs at `rate` as the replay runner does (waits of at
    /// least 10 ms, every available token taken), each batch costing `cost`
    /// of store time; returns the virtual time it took.
    fn replay(rate: f64, total: usize, cost: Duration) -> Duration {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: rate,
            burst: rate.ceil() as u32,
        };
        let mut b = TokenBucket::starting_with(limit, 1.0);
        let (mut now, mut done) = (t0, 0);
        while done < total {
            let n = b.available(now).min(total - done);
            if n == 0 {
                now += b.wait(now).max(Duration::from_millis(10));
                continue;
            }
            b.take(n);
            done += n;
            now += cost;
        }
        now - t0
    }

    #[test]
    fn keeps_the_rate_when_store_calls_are_fast() {
        let took = replay(20.0, 81, Duration::ZERO);
        assert!((took.as_secs_f64() - 4.0).abs() < 0.05, "{took:?}");
    }

    #[test]
    fn makes_up_for_store_calls_slower_than_the_period() {
        // 90 ms per store call at 20/s (50 ms apart): batches grow instead
        // of the pace halving.
        let took = replay(20.0, 81, Duration::from_millis(90));
        assert!(took.as_secs_f64() < 4.2, "{took:?}");
        assert!(took.as_secs_f64() > 3.9, "{took:?}");
    }

    #[test]
    fn high_rates_go_in_batches_of_several_jobs() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 1000.0,
            burst: 1000,
        };
        let mut b = TokenBucket::starting_with(limit, 1.0);
        let n = b.available(t0);
        b.take(n);
        assert!(b.wait(t0) <= Duration::from_millis(1));
        assert_eq!(b.available(t0 + Duration::from_millis(10)), 10);
    }

    #[test]
    fn a_held_up_bucket_bursts_at_most_its_burst() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 5.0,
            burst: 5,
        };
        let mut b = TokenBucket::starting_with(limit, 1.0);
        let n = b.available(t0);
        b.take(n);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(b.available(later), 5);
        b.take(5);
        assert!(b.wait(later) > Duration::ZERO);
    }
}
