//! The rule both backends apply to a message that asks to start an attempt
//! (see [`crate::AttemptStore::start_attempts`]).

use sluice_core::EpochMs;

/// What a message may do with its job as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartRule {
    /// Start the job's next attempt (its attempts so far counted as seen).
    Start,
    /// The job's latest attempt runs under a lease until then: try again.
    Busy(EpochMs),
    /// Nothing to run: acknowledge the message.
    Stale,
}

/// The message of `attempt`, for a job that is `finished` or not, has seen
/// `attempts`, and whose latest attempt holds a lease until `lease` (`None`:
/// that attempt finished, or none started).
pub(crate) fn start_rule(
    attempt: u32,
    finished: bool,
    attempts: u32,
    lease: Option<EpochMs>,
    now: EpochMs,
) -> StartRule {
    if finished || attempt > attempts.saturating_add(1) {
        return StartRule::Stale;
    }
    match lease {
        // The job's latest attempt runs: any message of the job waits for
        // it, not only the one it started from, which it may have taken
        // over (counting one more attempt than the message says).
        Some(until) if until >= now => StartRule::Busy(until),
        // Its lease lapsed unfinished (the worker died): any message of the
        // job takes it over, even one of an earlier attempt, since after a
        // takeover that died too the job's message has fallen behind.
        Some(_) => StartRule::Start,
        // The latest attempt finished: only the next attempt's message runs.
        None if attempt == attempts.saturating_add(1) => StartRule::Start,
        None => StartRule::Stale,
    }
}
