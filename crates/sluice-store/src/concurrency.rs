//! The adaptive concurrency limits that worker processes report, so the
//! admin API can show a queue's total across processes.

use async_trait::async_trait;
use sluice_core::EpochMs;

use crate::StoreError;

/// A queue's reported concurrency, summed over its live worker processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConcurrency {
    pub queue: String,
    /// The sum of the live reports' limits.
    pub limit: u64,
    /// How many worker processes reported one.
    pub workers: u64,
}

impl QueueConcurrency {
    /// From the `(queue, total, workers)` row both backends' SQL returns.
    pub(crate) fn from_row(queue: String, total: i64, workers: i64) -> Self {
        Self {
            queue,
            limit: u64::try_from(total).unwrap_or(0),
            workers: u64::try_from(workers).unwrap_or(0),
        }
    }
}

/// Worker processes' concurrency reports. A report lapses at its
/// `expires_at` unless the worker reports again.
#[async_trait]
pub trait ConcurrencyStore: Send + Sync {
    /// Records that `worker` runs up to `limit` jobs of `queue` at once,
    /// replacing its earlier report, until `expires_at` (a time already past
    /// withdraws the report). Removes reports of `queue` that lapsed.
    async fn report_concurrency(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        expires_at: EpochMs,
    ) -> Result<(), StoreError>;

    /// Per queue with a live report (`expires_at` after `now`), by name.
    async fn concurrency(&self, now: EpochMs) -> Result<Vec<QueueConcurrency>, StoreError>;
}
