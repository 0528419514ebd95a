//! Circuit breaker settings of a queue (the `[queues.circuit]` table).

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// When a queue's circuit opens and how long it stays open.
///
/// Only failures that say the downstream is unwell count: transient ones
/// (5xx, timeouts, connection errors) and retry-after (429/503). A permanent
/// failure (a 4xx for this job) is an answer, so it counts as healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// `false` turns the breaker off for the queue.
    pub enabled: bool,
    /// Opens after this many counted failures in a row (0: never on this rule).
    pub consecutive_failures: u32,
    /// Opens when at least this share of the last `window` attempts failed...
    pub failure_ratio: f64,
    /// ...(the sliding window, in attempts)...
    pub window: u32,
    /// ...once the window holds at least this many attempts.
    pub min_attempts: u32,
    /// How long the circuit stays open before one probe job may go through.
    pub cooldown_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 10,
            failure_ratio: 0.5,
            window: 50,
            min_attempts: 20,
            cooldown_ms: 5_000,
        }
    }
}

impl CircuitConfig {
    /// Checks every value; the error names the key (relative to the table).
    pub fn validate(&self) -> Result<(), (String, CoreError)> {
        let err = |key: &str, m: String| Err((key.to_string(), CoreError::InvalidValue(m)));
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            return err(
                "failure_ratio",
                format!("must be in (0, 1], got {}", self.failure_ratio),
            );
        }
        if self.window == 0 || self.window > 10_000 {
            return err(
                "window",
                format!("must be between 1 and 10000, got {}", self.window),
            );
        }
        if self.min_attempts == 0 || self.min_attempts > self.window {
            return err(
                "min_attempts",
                format!(
                    "must be between 1 and window ({}), got {}",
                    self.window, self.min_attempts
                ),
            );
        }
        if self.cooldown_ms < 10 || self.cooldown_ms > 3_600_000 {
            return err(
                "cooldown_ms",
                format!("must be between 10 and 3600000, got {}", self.cooldown_ms),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        CircuitConfig::default().validate().unwrap();
        let bad = |f: fn(&mut CircuitConfig)| {
            let mut c = CircuitConfig::default();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        assert_eq!(bad(|c| c.failure_ratio = 0.0), "failure_ratio");
        assert_eq!(bad(|c| c.failure_ratio = 1.5), "failure_ratio");
        assert_eq!(bad(|c| c.window = 0), "window");
        assert_eq!(bad(|c| c.min_attempts = 51), "min_attempts");
        assert_eq!(bad(|c| c.cooldown_ms = 0), "cooldown_ms");
    }
}
