//! The values store operations take and return.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;
use sluice_core::{EpochMs, JobId, JobStatus};

/// A job to insert, with its first outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: JobId,
    pub queue: String,
    pub payload: Value,
    pub key: Option<String>,
    /// Sent on to the downstream with the payload.
    pub headers: BTreeMap<String, String>,
    pub max_attempts: u32,
    /// Not published before this time (from `delay_seconds`).
    pub available_at: EpochMs,
    /// W3C trace context of the request that created the job.
    pub traceparent: Option<String>,
}

/// An idempotency key and the fingerprint of the request it came with.
/// `scope` separates namespaces (for example queue and route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// One ingest request: all of its jobs are stored, or none.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueRequest {
    pub jobs: Vec<NewJob>,
    pub idempotency: Option<Idempotency>,
}

/// What an accepted request stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The ids of the request's jobs, in request order.
    pub ids: Vec<JobId>,
    /// True when the idempotency key matched an earlier identical request and
    /// nothing new was stored.
    pub replayed: bool,
}

/// A job as the status endpoint and workers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub queue: String,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub key: Option<String>,
    pub payload: Value,
    pub headers: BTreeMap<String, String>,
    pub traceparent: Option<String>,
    pub last_error: Option<String>,
    pub replay_count: u32,
    pub created_at: EpochMs,
    pub updated_at: EpochMs,
}

/// An opaque lease token. Every change made under a lease names it, and the
/// store refuses the change when the lease is no longer held (fencing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub String);

impl LeaseToken {
    /// A new random token.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl Default for LeaseToken {
    fn default() -> Self {
        Self::new()
    }
}

/// What an outbox row publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutboxKind {
    /// The job, to its queue's topic, for workers to run.
    #[default]
    Job,
    /// News that the job became a dead letter, to the queue's dead-letter
    /// topic for outside consumers; `error` is why it died. Publishing it
    /// never changes the job.
    DeadLetter { error: String },
}

impl OutboxKind {
    /// The stored name: `job` or `dead_letter`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::DeadLetter { .. } => "dead_letter",
        }
    }
}

/// A due outbox row, claimed by a relay.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub row_id: i64,
    pub job_id: JobId,
    pub queue: String,
    /// The attempt this publication is for (the job's attempts + 1 when written).
    pub attempt: u32,
    /// The job's payload, JSON text as the store returns it: the relay
    /// publishes it without parsing it again.
    pub payload: Box<RawValue>,
    pub key: Option<String>,
    pub traceparent: Option<String>,
    pub created_at: EpochMs,
    /// A job row, or a dead letter's (whose `attempt` is the attempt that died).
    pub kind: OutboxKind,
}

/// A job that looked lost when listed, with the `updated_at` it had then:
/// it is redriven only if it has not changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostJob {
    pub id: JobId,
    pub updated_at: EpochMs,
}

/// Outbox rows claimed under one lease.
#[derive(Debug, Clone)]
pub struct OutboxClaim {
    pub lease: LeaseToken,
    pub rows: Vec<OutboxRow>,
}

impl OutboxClaim {
    /// The ids of the claimed rows, in claim order.
    pub fn row_ids(&self) -> Vec<i64> {
        self.rows.iter().map(|r| r.row_id).collect()
    }
}

/// A worker's request to start an attempt for a delivered message.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub job_id: JobId,
    /// The attempt the message was published for; `None` for messages from
    /// direct producers (treated as 1).
    pub attempt: Option<u32>,
    /// For direct producers: the job to create when it does not exist yet.
    pub create: Option<NewJob>,
    /// The lease to start the attempt under (`None`: the store picks one).
    /// A start whose answer was lost (the store may have committed it) is
    /// asked again with the same token: when that token still holds the
    /// job's lease, the attempt it started is resumed (`Started`, its lease
    /// extended) rather than waited for and counted again.
    pub lease: Option<LeaseToken>,
}

/// An attempt a worker now holds the lease of.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAttempt {
    pub lease: LeaseToken,
    /// 1-based number of this attempt.
    pub attempt: u32,
    pub lease_until: EpochMs,
    pub job: JobRecord,
}

/// The answer to a [`StartRequest`].
#[derive(Debug, Clone, PartialEq)]
// Boxing `Started` would change the type other crates match on; outcomes are short-lived.
#[allow(clippy::large_enum_variant)]
pub enum StartOutcome {
    /// Run the job; finish it under `lease`.
    Started(ActiveAttempt),
    /// The message is stale (the job is final, or already moved past this
    /// attempt): acknowledge it and do nothing.
    Stale,
    /// Another worker holds an unexpired lease until this time: try again then
    /// (the holder may have crashed).
    Busy { until: EpochMs },
    /// No such job and nothing to create: acknowledge and drop.
    Missing,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Back to the outbox, due at `available_at`.
    Retry {
        available_at: EpochMs,
        error: String,
    },
    /// To the dead letters.
    Dead {
        error: String,
    },
}

/// A finished attempt, fenced by its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub job_id: JobId,
    pub lease: LeaseToken,
    pub attempt: u32,
    pub started_at: EpochMs,
    pub outcome: Outcome,
}
