//! Store traits of sluice and their backends, chosen at runtime by URL.
//!
//! The store holds jobs (the source of truth for status and attempts), the
//! outbox (rows waiting to be published), attempt history, idempotency keys
//! and dead letters. Every state change made under a lease is fenced by it.
//!
//! Backends: `sqlite://path` (feature `sqlite`, default) and
//! `postgres://user@host/db` (feature `postgres`, default).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{EpochMs, JobId};
use tokio::sync::Notify;

mod admin;
mod circuit;
mod concurrency;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
pub mod group_commit;
pub mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
mod retention;
mod scaling;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod start_rule;
#[cfg(feature = "testing")]
pub mod testing;

pub use admin::*;
pub use circuit::{Circuit, CircuitState, CircuitStore};
pub use concurrency::{ConcurrencyStore, QueueConcurrency};
pub use error::StoreError;
pub use group_commit::{GroupCommit, GroupCommitOptions};
pub use model::*;
pub use retention::RetentionStore;
pub use scaling::QueueScaling;

/// Ingest: durable acceptance of jobs, and reads for the status endpoint.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Stores each request's jobs and their outbox rows atomically per request
    /// and durably before returning; the results are in request order. A
    /// request whose idempotency key matches an earlier one with the same
    /// fingerprint stores nothing and returns the earlier ids with
    /// `replayed = true`; another fingerprint fails that request alone with
    /// [`StoreError::IdempotencyConflict`]. Backends may commit all requests
    /// in one transaction (group commit).
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>>;

    /// The job, or [`StoreError::NotFound`].
    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError>;
}

/// Relay: claims due outbox rows under a lease and records their publication.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` rows whose `available_at` has passed and that no
    /// unexpired lease holds, oldest first, under a new lease lasting `lease`.
    /// Two concurrent claims never return the same row.
    async fn claim_outbox(&self, limit: usize, lease: Duration) -> Result<OutboxClaim, StoreError>;

    /// Records that these rows of the claim are on the broker: removes them,
    /// so that the jobs of [`OutboxKind::Job`] rows read as `published` from
    /// then on (unless a worker already moved the job on). A
    /// [`OutboxKind::DeadLetter`] row is only removed: its job is never
    /// changed. Rows no longer held by `lease` are left alone; returns how
    /// many were marked. A backend need not rewrite the job (PostgreSQL
    /// does not), so `updated_at` may keep the time of the job's last
    /// enqueue, retry or redrive.
    async fn mark_published(
        &self,
        lease: &LeaseToken,
        row_ids: &[i64],
    ) -> Result<usize, StoreError>;

    /// Gives rows of the claim back, due again at `available_at` (after a
    /// failed publish). Rows no longer held by `lease` are left alone.
    async fn release_outbox(
        &self,
        lease: &LeaseToken,
        row_ids: &[i64],
        available_at: EpochMs,
    ) -> Result<usize, StoreError>;

    /// Extends the lease of these rows of the claim to `lease` from now, for
    /// a relay still publishing them when half of its lease has passed.
    /// Rows no longer held by `lease_token` (taken by another claim after
    /// the lease lapsed, marked, released or removed) are left alone;
    /// returns the
    /// rows it still holds, in no particular order. A lapsed lease that no
    /// other claim took is still held.
    async fn extend_claim(
        &self,
        lease_token: &LeaseToken,
        row_ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError>;

    /// Dead-letters the jobs of these job rows of the claim, which the broker
    /// refused for good (too large, invalid), each with its reason: the row
    /// is removed, and its job, if no worker has started this attempt of it,
    /// becomes `dead` with the reason as its error, gets a dead letter and a
    /// dead letter's row (published to the queue's dead-letter topic as
    /// usual; relays are notified). Rows no longer held by `lease`, and dead
    /// letters' rows, are left alone. Returns the jobs dead-lettered.
    async fn dead_letter_refused(
        &self,
        lease: &LeaseToken,
        refused: &[(i64, String)],
    ) -> Result<Vec<JobId>, StoreError>;

    /// The earliest `available_at` of an unleased row, if any: when the relay
    /// should look again.
    async fn next_due(&self) -> Result<Option<EpochMs>, StoreError>;

    /// Jobs of `queue` that look lost by the broker, at most `limit`, oldest
    /// first: `published`, with no attempt started since (no lease), without
    /// an outbox row, and unchanged since before `changed_before`. Each was
    /// on the broker before this call returned, so once the broker reports
    /// that the queue's consumers have read everything published before a
    /// moment after this call, they are lost: see
    /// [`OutboxStore::redrive_published`].
    async fn lost_jobs(
        &self,
        queue: &str,
        changed_before: EpochMs,
        limit: usize,
    ) -> Result<Vec<LostJob>, StoreError>;

    /// Publishes again the jobs `lost` (from [`OutboxStore::lost_jobs`])
    /// that still look lost and have not changed since they were listed.
    /// Call it only when the broker reported, after `lost` was listed, that
    /// the queue's consumers have read everything published before then. Each goes back to
    /// `pending` (`retrying` after earlier attempts) with an outbox row for
    /// the same attempt, due now; returns their ids, oldest first. A second
    /// copy of a message that was not lost after all is harmless: workers
    /// start each attempt once. Relays are notified when rows were added.
    async fn redrive_published(
        &self,
        queue: &str,
        lost: &[LostJob],
    ) -> Result<Vec<JobId>, StoreError>;
}

/// Workers: start attempts under a lease and record their outcomes.
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// For each request, in order: starts the next attempt of the job when
    /// the message is current (its attempt is the job's next one after a
    /// finished attempt, or the job's latest attempt never finished and its
    /// lease expired, that is a crashed worker's: then any message of the
    /// job of no later attempt takes it over), counting it and leasing the
    /// job for `lease`; while the latest attempt's lease holds, every such
    /// message is `Busy`; otherwise says why not.
    async fn start_attempts(
        &self,
        requests: Vec<StartRequest>,
        lease: Duration,
    ) -> Vec<Result<StartOutcome, StoreError>>;

    /// Records outcomes, each fenced by its lease ([`StoreError::LeaseLost`]
    /// when it is no longer held): success; a retry (status `retrying` and a
    /// new outbox row due at `available_at`); or a dead letter (status
    /// `dead`, a dead-letter entry, and an [`OutboxKind::DeadLetter`] outbox
    /// row due now, so the relay publishes it to the queue's dead-letter
    /// topic at least once). Each failed attempt is kept in the job's
    /// history with its error; a success is recorded on the job alone (its
    /// status, attempt count and `updated_at`). Relays are notified after a
    /// commit that added outbox rows.
    async fn finish_attempts(&self, completions: Vec<Completion>) -> Vec<Result<(), StoreError>>;

    /// Undoes the start of attempt `attempt` whose handler never ran (a job
    /// started ahead of a free slot whose lease ran short while it waited):
    /// while `lease` still holds the job at that attempt, the attempt no
    /// longer counts and the job is left as the start found it, so the
    /// job's message, delivered again, starts that same attempt at once.
    /// `took_over` says the start took over a lapsed lease (the message's
    /// attempt had been started before and never finished): the job is then
    /// left under a lapsed lease again, for the message to take over again;
    /// otherwise it is left with no lease. Returns whether it was undone; an
    /// attempt whose lease was lost is left alone.
    async fn abandon_attempt(
        &self,
        job_id: JobId,
        lease: &LeaseToken,
        attempt: u32,
        took_over: bool,
    ) -> Result<bool, StoreError>;
}

/// Counts per queue and status, for metrics and operators.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueStats {
    pub queue: String,
    pub pending: u64,
    pub published: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub dead: u64,
    /// `created_at` of the oldest job still `pending`.
    pub oldest_pending_at: Option<EpochMs>,
}

/// Folds `(queue, status, count, oldest created_at)` rows, ordered by queue,
/// into per-queue stats; the oldest time counts for `pending` only. Shared by
/// the backends, whose `queue_stats` SQL returns these rows.
pub(crate) fn fold_queue_stats(
    rows: impl IntoIterator<Item = (String, String, i64, Option<EpochMs>)>,
) -> Result<Vec<QueueStats>, StoreError> {
    let mut out: Vec<QueueStats> = Vec::new();
    for (queue, status, n, oldest) in rows {
        if out.last().is_none_or(|s| s.queue != queue) {
            out.push(QueueStats {
                queue: queue.clone(),
                ..QueueStats::default()
            });
        }
        let stats = out.last_mut().expect("pushed above");
        let n = u64::try_from(n).unwrap_or(0);
        match status.as_str() {
            "pending" => {
                stats.pending = n;
                stats.oldest_pending_at = oldest;
            }
            "published" => stats.published = n,
            "retrying" => stats.retrying = n,
            "succeeded" => stats.succeeded = n,
            "dead" => stats.dead = n,
            other => return Err(StoreError::Corrupt(format!("unknown job status {other:?}"))),
        }
    }
    Ok(out)
}

/// The whole store: every role's trait plus health, stats and wake-ups.
#[async_trait]
pub trait Store:
    IngestStore
    + OutboxStore
    + AttemptStore
    + AdminStore
    + CircuitStore
    + ConcurrencyStore
    + RetentionStore
{
    /// Succeeds when the store answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Per-queue counts (queues with no jobs are absent).
    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError>;

    /// Autoscaling figures of each of `queues` at `now`, one entry per
    /// queue in the order given (zero figures for a queue with no jobs).
    /// Reads only unfinished jobs and due outbox rows.
    async fn queue_scaling(
        &self,
        queues: &[String],
        now: EpochMs,
    ) -> Result<Vec<QueueScaling>, StoreError>;

    /// Notified after every commit that added outbox rows in this process
    /// (and, for backends that can, in other processes): the relay waits on it.
    fn outbox_notify(&self) -> Arc<Notify>;

    /// The backend's name, for logs (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
}

/// Opens (creating when needed) and migrates the store named by `url`.
///
/// `sqlite://path/to/file.db` (relative to the working directory; parent
/// directories are created), `sqlite::memory:`, or `postgres://…` /
/// `postgresql://…` (see [`postgres`] for the URL's own parameters).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split(':').next().unwrap_or("");
    match scheme {
        "sqlite" => open_sqlite(url).await,
        "postgres" | "postgresql" => open_postgres(url).await,
        _ => Err(StoreError::InvalidUrl(format!(
            "unknown scheme {scheme:?}: expected sqlite:// or postgres://"
        ))),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::BackendDisabled("sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(postgres::PgStore::open(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::BackendDisabled("postgres"))
}

/// Runs migrations only (`sluice migrate`); [`open`] also runs them.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    open(url).await.map(|_| ())
}
