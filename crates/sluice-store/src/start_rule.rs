//! The rule both backends apply to a message that asks to start an attempt
//! (see [`crate::AttemptStore::start_attempts`]).

use sluice_core::{EpochMs, JobStatus};

use crate::LeaseToken;

/// What a message may do with its job as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartRule {
    /// Start the job's next attempt (its attempts so far counted as seen).
    Start,
    /// The request's own lease holds the job's latest attempt, started by
    /// an earlier ask whose answer was lost: hand that attempt back.
    Resume,
    /// The job's latest attempt runs under a lease until then: try again.
    Busy(EpochMs),
    /// Nothing to run: acknowledge the message.
    Stale,
}

/// [`start_rule`] for the message of `attempt` (`None`: a new job's first)
/// asking under `asked` (its own lease token, if it chose one), given the
/// job's stored state: its status, attempts so far and lease (`token`; a
/// token without a time counts as a lapsed lease).
pub(crate) fn start_rule_for(
    attempt: Option<u32>,
    asked: Option<&LeaseToken>,
    status: JobStatus,
    attempts: u32,
    (token, lease_until): (Option<&str>, Option<EpochMs>),
    now: EpochMs,
) -> StartRule {
    // only the unfinished attempt a lease names holds it
    let mine = token.is_some_and(|t| asked.is_some_and(|a| a.0 == t));
    if mine && !status.is_final() {
        return StartRule::Resume;
    }
    let lease = token.map(|_| lease_until.unwrap_or(EpochMs::MIN));
    start_rule(
        attempt.unwrap_or(1),
        status.is_final(),
        attempts,
        lease,
        now,
    )
}

/// The message of `attempt`, for a job that is `finished` or not, has seen
/// `attempts`, and whose latest attempt holds a lease until `lease` (`None`:
/// that attempt finished, or none started).
fn start_rule(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_token_without_a_time_is_a_lapsed_lease() {
        let rule = |leased: bool, until| {
            let token = leased.then_some("t");
            start_rule_for(Some(1), None, JobStatus::Published, 1, (token, until), 100)
        };
        assert_eq!(rule(true, None), StartRule::Start, "taken over");
        assert_eq!(rule(true, Some(50)), StartRule::Start, "lapsed");
        assert_eq!(rule(true, Some(150)), StartRule::Busy(150));
        assert_eq!(rule(false, None), StartRule::Stale, "attempt 1 finished");
    }

    #[test]
    fn a_finished_job_and_a_message_from_the_future_are_stale() {
        let unleased = (None, None);
        let done = start_rule_for(Some(2), None, JobStatus::Succeeded, 1, unleased, 100);
        assert_eq!(done, StartRule::Stale);
        let ahead = start_rule_for(Some(3), None, JobStatus::Retrying, 1, unleased, 100);
        assert_eq!(ahead, StartRule::Stale);
        let next = start_rule_for(None, None, JobStatus::Pending, 0, unleased, 100);
        assert_eq!(next, StartRule::Start);
    }

    #[test]
    fn the_request_whose_lease_holds_the_job_resumes_its_attempt() {
        let mine = LeaseToken::new();
        let rule = |status, until| {
            start_rule_for(Some(1), Some(&mine), status, 1, (Some(&mine.0), until), 100)
        };
        assert_eq!(rule(JobStatus::Published, Some(150)), StartRule::Resume);
        assert_eq!(
            rule(JobStatus::Published, Some(50)),
            StartRule::Resume,
            "lapsed"
        );
        assert_eq!(rule(JobStatus::Succeeded, Some(150)), StartRule::Stale);
        assert_eq!(rule(JobStatus::Dead, None), StartRule::Stale);
        // another token's lease holds it: that attempt is not this request's
        let other = LeaseToken::new();
        let held = (Some(other.0.as_str()), Some(150));
        let busy = start_rule_for(Some(1), Some(&mine), JobStatus::Published, 1, held, 100);
        assert_eq!(busy, StartRule::Busy(150));
    }
}
