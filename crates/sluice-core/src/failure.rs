use std::time::Duration;

use crate::RetryPolicy;

/// How a failed attempt is classified, before any retry decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// May succeed later: retry with the policy's backoff.
    Transient,
    /// The downstream asked to be retried no sooner than this.
    RetryAfter(Duration),
    /// Will never succeed as is: dead-letter at once.
    Permanent,
}

/// A failed attempt: its class and a human-readable reason (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// The downstream signalled overload (a timeout, 429 or 503): adaptive
    /// concurrency backs off on these, not on other failures.
    pub overload: bool,
}

impl Failure {
    /// This failure, marked as an overload signal.
    pub fn overloaded(mut self) -> Self {
        self.overload = true;
        self
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            message: message.into(),
            overload: false,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            message: message.into(),
            overload: false,
        }
    }
    pub fn retry_after(after: Duration, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::RetryAfter(after),
            message: message.into(),
            overload: false,
        }
    }
}

/// What happens to a job after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Back into the outbox, due after this delay.
    Retry { delay: Duration },
    /// To the dead letters, with the reason.
    Dead { reason: String },
}

/// Longest `Retry-After` honoured: one day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// Decides the fate of a job whose attempt number `attempt` (1-based) failed.
///
/// Permanent failures die at once; transient ones retry with the policy's
/// backoff until `max_attempts` attempts were made; `RetryAfter` retries no
/// sooner than asked (capped at one day) within the same attempt budget.
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    max_attempts: u32,
    failure: &Failure,
) -> Decision {
    match failure.kind {
        FailureKind::Permanent => Decision::Dead {
            reason: format!("permanent failure: {}", failure.message),
        },
        _ if attempt >= max_attempts => Decision::Dead {
            reason: format!("gave up after {attempt} attempts: {}", failure.message),
        },
        FailureKind::Transient => Decision::Retry {
            delay: policy.backoff(attempt),
        },
        FailureKind::RetryAfter(after) => Decision::Retry {
            delay: after.min(MAX_RETRY_AFTER),
        },
    }
}

/// Classifies an HTTP response status from a downstream: `None` for 2xx
/// (success); 408, 429 and 5xx are transient (with `retry_after` when given);
/// every other status is permanent.
pub fn classify_http_status(status: u16, retry_after: Option<Duration>) -> Option<FailureKind> {
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(match retry_after {
            Some(d) => FailureKind::RetryAfter(d),
            None => FailureKind::Transient,
        }),
        _ => Some(FailureKind::Permanent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_classification() {
        assert_eq!(classify_http_status(200, None), None);
        assert_eq!(classify_http_status(204, None), None);
        assert_eq!(
            classify_http_status(500, None),
            Some(FailureKind::Transient)
        );
        assert_eq!(
            classify_http_status(503, None),
            Some(FailureKind::Transient)
        );
        assert_eq!(
            classify_http_status(408, None),
            Some(FailureKind::Transient)
        );
        let d = Duration::from_secs(3);
        assert_eq!(
            classify_http_status(429, Some(d)),
            Some(FailureKind::RetryAfter(d))
        );
        assert_eq!(
            classify_http_status(400, None),
            Some(FailureKind::Permanent)
        );
        assert_eq!(
            classify_http_status(404, Some(d)),
            Some(FailureKind::Permanent)
        );
        assert_eq!(
            classify_http_status(301, None),
            Some(FailureKind::Permanent)
        );
    }

    #[test]
    fn decisions() {
        let p = RetryPolicy::default();
        assert!(matches!(
            decide(&p, 1, 5, &Failure::permanent("bad")),
            Decision::Dead { .. }
        ));
        assert!(matches!(
            decide(&p, 1, 5, &Failure::transient("x")),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            decide(&p, 5, 5, &Failure::transient("x")),
            Decision::Dead { .. }
        ));
        let ra = Failure::retry_after(Duration::from_secs(7), "busy");
        assert_eq!(
            decide(&p, 2, 5, &ra),
            Decision::Retry {
                delay: Duration::from_secs(7)
            }
        );
        assert!(matches!(decide(&p, 5, 5, &ra), Decision::Dead { .. }));
        if let Decision::Retry { delay } = decide(&p, 3, 5, &Failure::transient("x")) {
            assert!(delay <= p.ceiling(3));
        }
    }
}
