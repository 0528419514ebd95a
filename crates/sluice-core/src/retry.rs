use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// How the backoff ceiling is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Uniform in `[0, ceiling]` (AWS "full jitter"): spreads retries best.
    #[default]
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`.
    Equal,
    /// Exactly the ceiling.
    None,
}

/// Exponential backoff with jitter and a cap, plus the attempt budget.
///
/// The ceiling for attempt `n` (1-based: the delay after the `n`th failure) is
/// `min(max_ms, initial_ms * multiplier^(n-1))`. Build one with
/// [`RetryPolicy::new`] or validate a deserialised one with
/// [`RetryPolicy::validate`]; a nonsensical policy is a configuration error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub multiplier: f64,
    #[serde(default)]
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_ms: 200,
            max_ms: 60_000,
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

/// Upper bound on any single backoff: one day.
const MAX_BACKOFF_MS: u64 = 86_400_000;

impl RetryPolicy {
    /// A validated policy.
    pub fn new(
        initial_ms: u64,
        max_ms: u64,
        multiplier: f64,
        jitter: Jitter,
    ) -> Result<Self, CoreError> {
        let p = Self {
            initial_ms,
            max_ms,
            multiplier,
            jitter,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks that the values make sense: `initial_ms >= 1`,
    /// `max_ms >= initial_ms`, `max_ms <= 1 day`, `1 <= multiplier <= 100`.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::InvalidPolicy(m));
        if self.initial_ms == 0 {
            return bad("initial_ms must be at least 1".into());
        }
        if self.max_ms < self.initial_ms {
            return bad(format!(
                "max_ms ({}) must be at least initial_ms ({})",
                self.max_ms, self.initial_ms
            ));
        }
        if self.max_ms > MAX_BACKOFF_MS {
            return bad(format!(
                "max_ms ({}) must be at most {MAX_BACKOFF_MS}",
                self.max_ms
            ));
        }
        if !self.multiplier.is_finite() || !(1.0..=100.0).contains(&self.multiplier) {
            return bad(format!(
                "multiplier ({}) must be between 1 and 100",
                self.multiplier
            ));
        }
        Ok(())
    }

    /// The largest delay the policy allows after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(1000) as i32;
        let raw = self.initial_ms as f64 * self.multiplier.powi(exp);
        let ms = if raw.is_finite() {
            raw.min(self.max_ms as f64)
        } else {
            self.max_ms as f64
        };
        Duration::from_millis(ms as u64)
    }

    /// The smallest delay the policy allows after failed attempt `attempt`.
    pub fn floor(&self, attempt: u32) -> Duration {
        match self.jitter {
            Jitter::Full => Duration::ZERO,
            Jitter::Equal => self.ceiling(attempt) / 2,
            Jitter::None => self.ceiling(attempt),
        }
    }

    /// A random delay after failed attempt `attempt`, within `[floor, ceiling]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_with(attempt, rand::rng().random::<f64>())
    }

    /// The delay for a given uniform sample `u` in `[0, 1)`; deterministic.
    pub fn backoff_with(&self, attempt: u32, u: f64) -> Duration {
        let u = u.clamp(0.0, 1.0);
        let lo = self.floor(attempt).as_secs_f64();
        let hi = self.ceiling(attempt).as_secs_f64();
        Duration::from_secs_f64(lo + (hi - lo) * u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_and_cap() {
        let p = RetryPolicy::new(100, 1000, 2.0, Jitter::Full).unwrap();
        let c: Vec<u64> = (1..=6).map(|a| p.ceiling(a).as_millis() as u64).collect();
        assert_eq!(c, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(u32::MAX).as_millis(), 1000);
    }

    #[test]
    fn full_jitter_stays_in_range() {
        let p = RetryPolicy::default();
        for a in 1..20 {
            for _ in 0..50 {
                let d = p.backoff(a);
                assert!(d <= p.ceiling(a));
            }
        }
        assert_eq!(p.backoff_with(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff_with(3, 1.0), p.ceiling(3));
    }

    #[test]
    fn equal_and_none_jitter() {
        let e = RetryPolicy::new(100, 1000, 2.0, Jitter::Equal).unwrap();
        assert_eq!(e.backoff_with(2, 0.0).as_millis(), 100);
        let n = RetryPolicy::new(100, 1000, 2.0, Jitter::None).unwrap();
        assert_eq!(n.backoff_with(2, 0.3).as_millis(), 200);
    }

    #[test]
    fn nonsense_is_rejected() {
        assert!(RetryPolicy::new(0, 10, 2.0, Jitter::Full).is_err());
        assert!(RetryPolicy::new(100, 10, 2.0, Jitter::Full).is_err());
        assert!(RetryPolicy::new(100, 1000, 0.5, Jitter::Full).is_err());
        assert!(RetryPolicy::new(100, 1000, f64::NAN, Jitter::Full).is_err());
        assert!(RetryPolicy::new(100, MAX_BACKOFF_MS + 1, 2.0, Jitter::Full).is_err());
        let err = RetryPolicy::new(100, 10, 2.0, Jitter::Full).unwrap_err();
        assert!(err.to_string().contains("max_ms"), "{err}");
    }
}
