use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use sluice_core::{Failure, JobId};

/// What a handler gets for one attempt of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobContext {
    pub id: JobId,
    pub queue: String,
    /// 1-based number of this attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    pub payload: Value,
    pub key: Option<String>,
    /// Headers given at submission, to pass on to the downstream.
    pub headers: BTreeMap<String, String>,
    /// W3C trace context of this attempt's span (a descendant of the
    /// submitting request's), or the job's stored one without a tracing layer.
    pub traceparent: Option<String>,
}

/// Does the work of a job. Implement it to run sluice as a library with your
/// own Rust code as the downstream.
///
/// Return `Ok(())` on success, or a classified [`Failure`]: transient and
/// retry-after failures are retried with the queue's backoff until
/// `max_attempts`; permanent ones are dead-lettered at once. A handler may be
/// called more than once for a job (at-least-once): dedupe on `ctx.id`.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, ctx: &JobContext) -> Result<(), Failure>;
}

/// Logs each job and succeeds: the default queue's handler.
#[derive(Debug, Default, Clone)]
pub struct LogHandler;

#[async_trait]
impl Handler for LogHandler {
    async fn handle(&self, ctx: &JobContext) -> Result<(), Failure> {
        tracing::info!(
            job_id = %ctx.id,
            queue = %ctx.queue,
            attempt = ctx.attempt,
            payload = %ctx.payload,
            "job handled by log handler"
        );
        Ok(())
    }
}

/// Succeeds at once and logs nothing: the `noop` handler, for benchmarks.
#[derive(Debug, Default, Clone)]
pub struct NoopHandler;

#[async_trait]
impl Handler for NoopHandler {
    async fn handle(&self, _ctx: &JobContext) -> Result<(), Failure> {
        Ok(())
    }
}
