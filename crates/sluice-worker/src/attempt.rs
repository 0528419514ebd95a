//! One attempt: running the handler under its timeout and deciding the
//! outcome from the queue's retry policy.

use std::time::{Duration, Instant};

use sluice_broker::AckToken;
use sluice_core::{decide, now_ms, Decision, Failure, FailureKind};
use sluice_store::{ActiveAttempt, Completion, Outcome};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::flush::Done;
use crate::{Handler, JobContext};

pub(crate) fn done(
    token: AckToken,
    active: &ActiveAttempt,
    started_at: i64,
    outcome: Outcome,
) -> Done {
    Done {
        token,
        completion: Completion {
            job_id: active.job.id,
            lease: active.lease.clone(),
            attempt: active.attempt,
            started_at,
            outcome,
        },
    }
}

/// Runs the handler once under the timeout and decides the outcome; also
/// says whether the downstream answered healthily (for the breaker: a
/// success or a permanent failure, which is an answer about the job).
///
/// The attempt runs in a `job.attempt` span, a child of the job's stored
/// trace context; the handler gets the span's own context to pass on.
pub(crate) async fn run_attempt(
    handler: &dyn Handler,
    active: &ActiveAttempt,
    policy: &sluice_core::RetryPolicy,
    timeout: Duration,
    queue: &str,
) -> (Outcome, Health) {
    let job = &active.job;
    let span = tracing::info_span!(
        "job.attempt",
        otel.kind = "consumer",
        otel.status_code = Empty,
        queue,
        job_id = %job.id,
        attempt = i64::from(active.attempt),
        replay_count = i64::from(job.replay_count),
        outcome = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    let traceparent = sluice_trace::continue_trace(&span, job.traceparent.as_deref())
        .or_else(|| job.traceparent.clone());
    attempt_in_span(handler, active, policy, timeout, queue, traceparent)
        .instrument(span)
        .await
}

async fn attempt_in_span(
    handler: &dyn Handler,
    active: &ActiveAttempt,
    policy: &sluice_core::RetryPolicy,
    timeout: Duration,
    queue: &str,
    traceparent: Option<String>,
) -> (Outcome, Health) {
    let job = &active.job;
    let ctx = JobContext {
        id: job.id,
        queue: job.queue.clone(),
        attempt: active.attempt,
        max_attempts: job.max_attempts,
        payload: job.payload.clone(),
        key: job.key.clone(),
        headers: job.headers.clone(),
        traceparent,
    };
    metrics::counter!("sluice_jobs_started_total", "queue" => queue.to_string()).increment(1);
    if active.attempt == 1 {
        let lag = (now_ms() - job.created_at).max(0) as f64 / 1000.0;
        metrics::histogram!("sluice_job_start_delay_seconds", "queue" => queue.to_string())
            .record(lag);
    }
    let t0 = Instant::now();
    let result = match tokio::time::timeout(timeout, handler.handle(&ctx)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::transient(format!(
            "handler timed out after {} ms",
            timeout.as_millis()
        ))
        .overloaded()),
    };
    let label = if result.is_ok() { "success" } else { "failure" };
    metrics::histogram!("sluice_handler_duration_seconds", "queue" => queue.to_string(), "outcome" => label)
        .record(t0.elapsed().as_secs_f64());
    let health = match &result {
        Ok(()) => Health {
            healthy: true,
            overload: false,
        },
        Err(f) => Health {
            healthy: matches!(f.kind, FailureKind::Permanent),
            overload: f.overload,
        },
    };
    let span = Span::current();
    let outcome = match result {
        Ok(()) => Outcome::Succeeded,
        Err(f) => match decide(policy, active.attempt, job.max_attempts, &f) {
            Decision::Retry { delay } => {
                tracing::info!(job_id = %job.id, queue, attempt = active.attempt, delay_ms = delay.as_millis() as u64, error = %f.message, "attempt failed; retrying");
                Outcome::Retry {
                    available_at: now_ms() + delay.as_millis() as i64,
                    error: f.message,
                }
            }
            Decision::Dead { reason } => {
                tracing::warn!(job_id = %job.id, queue, attempt = active.attempt, reason = %reason, "job dead-lettered");
                Outcome::Dead { error: reason }
            }
        },
    };
    let (name, failed) = match &outcome {
        Outcome::Succeeded => ("succeeded", false),
        Outcome::Retry { .. } => ("retry", true),
        Outcome::Dead { .. } => ("dead", true),
    };
    span.record("outcome", name);
    if failed {
        span.record("otel.status_code", "ERROR");
    }
    (outcome, health)
}

/// What an attempt says about the downstream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Health {
    /// It answered about the job (a success or a permanent failure): the
    /// breaker counts the rest against the downstream.
    pub healthy: bool,
    /// It signalled overload (a timeout, 429 or 503): adaptive concurrency
    /// backs off.
    pub overload: bool,
}
