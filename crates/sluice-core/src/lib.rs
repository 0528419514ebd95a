//! Core types of sluice: the job envelope (CloudEvents 1.0 attribute names plus
//! sluice extensions), UUID v7 job ids, the retry policy and failure
//! classification. This crate does no I/O.

mod circuit;
mod envelope;
mod error;
mod failure;
mod id;
mod queue;
mod rate;
mod retry;
mod status;
mod text;

pub use circuit::CircuitConfig;
pub use envelope::{
    decode_message, relayed_job, Envelope, RawMessage, ATTEMPT_ATTR, CE_SPECVERSION,
    POSITION_SOURCE, QUEUE_ATTR, SLUICE_SOURCE,
};
pub use error::CoreError;
pub use failure::{classify_http_status, decide, Decision, Failure, FailureKind};
pub use id::JobId;
pub use queue::{
    valid_queue_name, Concurrency, HandlerConfig, QueueConfig, RateLimit, MAX_ATTEMPTS_LIMIT,
};
pub use rate::TokenBucket;
pub use retry::{Jitter, RetryPolicy};
pub use status::JobStatus;
pub use text::{json_holds_nul, json_without_nul, without_nul};

/// Milliseconds since the Unix epoch, the time unit every store column uses.
pub type EpochMs = i64;

/// Current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> EpochMs {
    chrono::Utc::now().timestamp_millis()
}

/// Formats epoch milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn format_ms(ms: EpochMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
