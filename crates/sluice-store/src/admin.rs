//! The operators' side of the store: pause state, dead letters, replays and
//! the audit log.

use async_trait::async_trait;
use serde_json::Value;
use sluice_core::{EpochMs, JobId};

use crate::{Idempotency, StoreError};

/// Which dead letters an operation applies to; every given field must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeadLetterFilter {
    pub queue: Option<String>,
    /// Case-insensitive substring of the last error.
    pub error_contains: Option<String>,
    /// Only these jobs.
    pub ids: Option<Vec<JobId>>,
}

/// Position in the stable listing order of dead letters: `(died_at, id)`
/// ascending, so pages stay stable while new jobs die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterCursor {
    pub died_at: EpochMs,
    pub id: JobId,
}

/// A dead letter as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: JobId,
    pub queue: String,
    pub payload: Value,
    /// Attempts made in the run that died.
    pub attempts: u32,
    pub last_error: String,
    pub died_at: EpochMs,
    /// How many times the job was replayed before it died this time.
    pub replay_count: u32,
}

/// One finished attempt in a job's history.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// The replay run the attempt belongs to (0 before any replay).
    pub replay_count: u32,
    pub attempt: u32,
    pub started_at: EpochMs,
    pub finished_at: EpochMs,
    /// `succeeded`, `retry` or `dead`.
    pub outcome: String,
    pub error: Option<String>,
}

/// A dead letter with the job's whole attempt history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterDetail {
    pub dead_letter: DeadLetter,
    pub key: Option<String>,
    pub max_attempts: u32,
    pub created_at: EpochMs,
    pub history: Vec<AttemptRecord>,
}

/// A bulk (or single) replay to create. `ids` is the snapshot of matched
/// dead letters, replayed in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReplay {
    pub id: uuid::Uuid,
    /// The request as given (filter, rate), for display.
    pub request: Value,
    pub ids: Vec<JobId>,
    /// Jobs per second; `None` means as fast as possible.
    pub rate_per_second: Option<f64>,
    pub max_replays: u32,
    /// An `Idempotency-Key` of the request: the same key and fingerprint
    /// return the earlier replay instead of creating one.
    pub idempotency: Option<Idempotency>,
    pub actor: String,
}

/// Progress of a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRecord {
    pub id: uuid::Uuid,
    pub request: Value,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub matched: u64,
    /// Dead letters sent back to the outbox.
    pub replayed: u64,
    /// Skipped: no longer dead (deleted, already replayed) or over `max_replays`.
    pub skipped: u64,
    pub rate_per_second: Option<f64>,
    pub max_replays: u32,
    pub created_at: EpochMs,
    pub updated_at: EpochMs,
    pub finished_at: Option<EpochMs>,
    /// Index into the snapshot of the next job to replay.
    pub position: u64,
}

/// Why one dead letter was not replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySkip {
    /// Not (or no longer) a dead letter.
    NotDead,
    /// Already replayed this many times, the limit.
    LimitReached(u32),
    /// Taken by an earlier call for the same replay (see
    /// [`AdminStore::replay_from_snapshot`]): replayed or skipped then.
    Taken,
}

/// How many entries of a [`AdminStore::replay_from_snapshot`] call it
/// replayed and how many it skipped; entries an earlier call took
/// ([`ReplaySkip::Taken`]) are neither (that call counted them).
pub fn replay_tally(results: &[(JobId, Result<(), ReplaySkip>)]) -> (u64, u64) {
    let (mut replayed, mut skipped) = (0, 0);
    for (_, r) in results {
        match r {
            Ok(()) => replayed += 1,
            Err(ReplaySkip::Taken) => {}
            Err(_) => skipped += 1,
        }
    }
    (replayed, skipped)
}

/// An operator action, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: EpochMs,
    /// Who: the `Sluice-Actor` header or `admin`.
    pub actor: String,
    /// `pause`, `resume`, `replay`, `replay_bulk`, `delete`.
    pub action: String,
    /// The queue, job id or replay id acted on.
    pub target: String,
    /// How many jobs it affected.
    pub count: u64,
    pub detail: Value,
}

/// Operators' operations. Every backend runs the same conformance cases.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Pauses or resumes a queue: a paused queue still accepts jobs, its
    /// workers start none until resumed.
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError>;

    /// The queues currently paused.
    async fn paused_queues(&self) -> Result<Vec<String>, StoreError>;

    /// Dead letters matching `filter` after `after`, in `(died_at, id)` order,
    /// at most `limit`.
    async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<DeadLetterCursor>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// How many dead letters match `filter`.
    async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError>;

    /// One dead letter with its history, or [`StoreError::NotFound`].
    async fn get_dead_letter(&self, id: JobId) -> Result<DeadLetterDetail, StoreError>;

    /// Deletes a dead letter and its job for good, or [`StoreError::NotFound`].
    /// The job's outbox rows go with it, including a dead-letter publication
    /// not yet on the broker (there is no job left to publish).
    async fn delete_dead_letter(&self, id: JobId) -> Result<(), StoreError>;

    /// Replays the entries of `replay`'s snapshot at positions
    /// `from..from + limit` (fewer at its end, none past it), in one
    /// transaction and in snapshot order (a job replayed earlier in the range
    /// is no longer dead for an entry after it). Each dead letter goes back
    /// to the outbox with the same job id, status `pending`,
    /// `replay_count + 1` and a fresh attempt budget (attempts restart at 0),
    /// the dead letter removed. A job not dead, or already replayed
    /// `max_replays` times, is skipped with the reason. Each entry is taken
    /// in the same transaction: it is replayed at most once however many
    /// calls cover it (a runner resumed from an older recorded position, or
    /// two runners of one replay at once), and one that an earlier call took
    /// comes back as [`ReplaySkip::Taken`]. Notifies the relay after commit.
    /// A dead-letter publication of the job still in the outbox is left alone
    /// and published as usual (an outside consumer may see it after the
    /// replay; it carries the same job id and the error of that death), and
    /// never changes the job. Returns every entry of the range.
    ///
    /// The same transaction records the range in the replay's progress (and
    /// so as a sign of life): its position moves to the range's end (never
    /// back, nor past the snapshot's end), and the entries this call replayed or skipped (see
    /// [`replay_tally`]) are added to its counts. A runner that stops
    /// between calls leaves exact counts: an entry is counted by the call
    /// that takes it. A `replay` that does not exist records nothing.
    async fn replay_from_snapshot(
        &self,
        replay: uuid::Uuid,
        from: u64,
        limit: usize,
        max_replays: u32,
    ) -> Result<Vec<(JobId, Result<(), ReplaySkip>)>, StoreError>;

    /// Records a replay to run (status `running`, position 0). With an
    /// idempotency key already used for the same fingerprint it returns the
    /// earlier replay and `false` (nothing created); another fingerprint is
    /// [`StoreError::IdempotencyConflict`].
    async fn create_replay(&self, replay: NewReplay) -> Result<(ReplayRecord, bool), StoreError>;

    /// Records that a replay's runner is alive: moves the position to
    /// `position` unless it is past it already, and finishes the replay when
    /// `status` is given. The counts are [`AdminStore::replay_from_snapshot`]'s.
    async fn update_replay(
        &self,
        id: uuid::Uuid,
        position: u64,
        status: Option<&str>,
    ) -> Result<ReplayRecord, StoreError>;

    /// A replay, or [`StoreError::NotFound`].
    async fn get_replay(&self, id: uuid::Uuid) -> Result<ReplayRecord, StoreError>;

    /// Replays still `running` whose last update is older than `stale_ms`
    /// (their runner died): candidates to resume.
    async fn stale_replays(&self, stale_ms: i64) -> Result<Vec<ReplayRecord>, StoreError>;

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError>;

    /// The newest audit entries first, at most `limit`.
    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}
