//! One attempt: running the handler under its timeout and deciding the
//! outcome from the queue's retry policy.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use metrics::{Counter, Histogram};
use sluice_broker::AckToken;
use sluice_core::{
    decide, now_ms, without_nul, Decision, Failure, FailureKind, JobId, RetryPolicy,
};
use sluice_store::{ActiveAttempt, Completion, LeaseToken, Outcome, Store};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::flush::Done;
use crate::{Handler, JobContext};

/// The outcome of attempt `attempt` of `job_id` under `lease`, to be
/// recorded and then acknowledged with `token`.
pub(crate) fn done(
    token: AckToken,
    job_id: JobId,
    lease: LeaseToken,
    attempt: u32,
    started_at: i64,
    outcome: Outcome,
) -> Done {
    Done {
        token,
        completion: Completion {
            job_id,
            lease,
            attempt,
            started_at,
            outcome,
        },
    }
}

/// How one pool runs its attempts: its handler, retry policy and timeout,
/// the store (to undo a start that never ran), and its queue's metrics,
/// registered once rather than looked up per job.
pub(crate) struct Attempts {
    handler: Arc<dyn Handler>,
    store: Arc<dyn Store>,
    policy: RetryPolicy,
    timeout: Duration,
    queue: String,
    started: Counter,
    start_delay: Histogram,
    handled_ok: Histogram,
    handled_failed: Histogram,
}

impl Attempts {
    pub(crate) fn new(
        handler: Arc<dyn Handler>,
        store: Arc<dyn Store>,
        policy: RetryPolicy,
        timeout: Duration,
        queue: &str,
    ) -> Self {
        let label = || queue.to_string();
        let handled = |outcome: &'static str| metrics::histogram!("sluice_handler_duration_seconds", "queue" => label(), "outcome" => outcome);
        Self {
            handler,
            store,
            policy,
            timeout,
            queue: queue.to_string(),
            started: metrics::counter!("sluice_jobs_started_total", "queue" => label()),
            start_delay: metrics::histogram!("sluice_job_start_delay_seconds", "queue" => label()),
            handled_ok: handled("success"),
            handled_failed: handled("failure"),
        }
    }

    /// Undoes the start of an attempt whose handler will not run (its lease
    /// ran short while it waited for a slot), so that it does not count;
    /// its message is then handed back to the broker. When the store cannot
    /// be reached the attempt stays counted, and the job is taken over once
    /// its lease lapses. `message_attempt` is the attempt the job's message
    /// was for: a start beyond it took over a lapsed lease, which the store
    /// then leaves lapsed again for the message to take over.
    pub(crate) async fn abandon(&self, active: &ActiveAttempt, message_attempt: u32) {
        let job = active.job.id;
        let took_over = active.attempt > message_attempt;
        let undone = self
            .store
            .abandon_attempt(job, &active.lease, active.attempt, took_over)
            .await;
        if let Err(e) = undone {
            tracing::warn!(job_id = %job, error = %e, "cannot undo the start of a job handed back; it is taken over once its lease lapses, its attempt counted");
        }
    }

    /// Runs the handler once under the timeout and decides the outcome, to
    /// be recorded under the attempt's lease and acknowledged with `token`;
    /// also says whether the downstream answered healthily (for the
    /// breaker: a success or a permanent failure, which is an answer about
    /// the job).
    ///
    /// The attempt runs in a `job.attempt` span, a child of the job's
    /// stored trace context; the handler gets the span's own context to
    /// pass on.
    pub(crate) async fn run(&self, active: ActiveAttempt, token: AckToken) -> (Done, Health) {
        let started_at = now_ms();
        let ActiveAttempt {
            lease,
            attempt,
            job,
            ..
        } = active;
        let span = tracing::info_span!(
            "job.attempt",
            otel.kind = "consumer",
            otel.status_code = Empty,
            queue = self.queue.as_str(),
            job_id = %job.id,
            attempt = i64::from(attempt),
            replay_count = i64::from(job.replay_count),
            outcome = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        let traceparent =
            sluice_trace::continue_trace(&span, job.traceparent.as_deref()).or(job.traceparent);
        if attempt == 1 {
            self.start_delay
                .record((now_ms() - job.created_at).max(0) as f64 / 1000.0);
        }
        let ctx = JobContext {
            id: job.id,
            queue: job.queue,
            attempt,
            max_attempts: job.max_attempts,
            payload: job.payload,
            key: job.key,
            headers: job.headers,
            traceparent,
        };
        let (outcome, health) = self.attempt(&ctx).instrument(span).await;
        (
            done(token, ctx.id, lease, attempt, started_at, outcome),
            health,
        )
    }

    async fn attempt(&self, ctx: &JobContext) -> (Outcome, Health) {
        let queue = self.queue.as_str();
        self.started.increment(1);
        let timeout = self.timeout;
        let t0 = Instant::now();
        // a panicking handler fails its attempt like any transient failure,
        // instead of leaving the job and its message unfinished
        let handled = AssertUnwindSafe(self.handler.handle(ctx)).catch_unwind();
        let result = match tokio::time::timeout(timeout, handled).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Failure::transient("handler panicked")),
            Err(_) => Err(Failure::transient(format!(
                "handler timed out after {} ms",
                timeout.as_millis()
            ))
            .overloaded()),
        }
        // an error text (a downstream's body) is stored: no NUL in it
        .map_err(|mut f| {
            f.message = without_nul(f.message);
            f
        });
        match result {
            Ok(()) => &self.handled_ok,
            Err(_) => &self.handled_failed,
        }
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
            Err(f) => match decide(&self.policy, ctx.attempt, ctx.max_attempts, &f) {
                Decision::Retry { delay } => {
                    tracing::info!(job_id = %ctx.id, queue, attempt = ctx.attempt, delay_ms = delay.as_millis() as u64, error = %f.message, "attempt failed; retrying");
                    Outcome::Retry {
                        available_at: now_ms() + delay.as_millis() as i64,
                        error: f.message,
                    }
                }
                Decision::Dead { reason } => {
                    tracing::warn!(job_id = %ctx.id, queue, attempt = ctx.attempt, reason = %reason, "job dead-lettered");
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
