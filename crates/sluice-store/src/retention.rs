//! Retention: finished work is deleted once it is old enough, so the tables
//! a busy queue writes to do not grow for ever. Only succeeded jobs and
//! idempotency keys are pruned; unfinished jobs and dead letters are kept
//! (an operator deletes or replays dead letters).

use async_trait::async_trait;
use sluice_core::EpochMs;

use crate::StoreError;

/// Deleting old finished work, in bounded batches. Several processes may
/// prune one store at once: each deletes rows no other one is deleting.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes up to `limit` succeeded jobs last changed before `before`,
    /// oldest first, with their attempt history and any outbox row still
    /// naming them; returns how many jobs. A pruned job reads as not found.
    /// A copy of its message that sluice published is acknowledged and
    /// dropped; a direct producer's message for it, delivered again (an
    /// offset reset, a republished event), creates and runs the job again,
    /// so succeeded jobs must be kept longer than the broker keeps messages.
    async fn prune_succeeded(&self, before: EpochMs, limit: usize) -> Result<u64, StoreError>;

    /// Deletes up to `limit` idempotency keys stored before `before`, oldest
    /// first, whatever their jobs' state, but not the key of a replay still
    /// running (a repeated replay request must find it for as long as it
    /// runs); returns how many. A request repeating a pruned key is
    /// accepted as a new one.
    async fn prune_idempotency_keys(
        &self,
        before: EpochMs,
        limit: usize,
    ) -> Result<u64, StoreError>;
}
