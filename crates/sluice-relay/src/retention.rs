//! Retention: every so often, succeeded jobs and idempotency keys older than
//! their configured age are deleted in batches (see
//! [`sluice_store::RetentionStore`]). Every relay process runs it; pruners
//! sharing a store skip each other's rows.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::now_ms;
use sluice_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Most rows deleted per statement, so no prune holds locks for long.
pub const BATCH: usize = 1000;

/// How old finished work must be before it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Succeeded jobs, counted from their success; zero keeps them for ever.
    /// The default, 14 days, outlives Kafka's default log retention (7 days,
    /// plus up to 7 more for a segment still being written): a direct
    /// producer's message read again runs again once its job is pruned.
    pub succeeded: Duration,
    /// Idempotency keys, counted from the request that stored them; zero
    /// keeps them for ever. A request repeating an expired key is new.
    pub idempotency_keys: Duration,
    /// How often to prune.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            succeeded: Duration::from_secs(14 * 24 * 3600),
            idempotency_keys: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(60),
        }
    }
}

/// Prunes a store as its [`RetentionConfig`] says.
pub struct Retention {
    store: Arc<dyn Store>,
    config: RetentionConfig,
}

impl Retention {
    pub fn new(store: Arc<dyn Store>, config: RetentionConfig) -> Self {
        Self { store, config }
    }

    /// Prunes now and then every `interval` until `shutdown`; returns at
    /// once when both ages are zero.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.config.succeeded.is_zero() && self.config.idempotency_keys.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.prune_once(&shutdown).await {
                tracing::warn!(error = %e, "pruning old jobs failed; trying again later");
            }
        }
    }

    /// One round: batch after batch until nothing old is left (or
    /// `shutdown`), jobs then keys, each on its own (a failure of one does
    /// not hold back the other); returns the jobs and keys deleted, or the
    /// first error. Each batch is counted on `/metrics` as it commits.
    pub async fn prune_once(&self, shutdown: &CancellationToken) -> Result<(u64, u64), StoreError> {
        let store = &self.store;
        let jobs = drain(
            self.config.succeeded,
            shutdown,
            metrics::counter!("sluice_retention_pruned_jobs_total"),
            |before| store.prune_succeeded(before, BATCH),
        )
        .await;
        let keys = drain(
            self.config.idempotency_keys,
            shutdown,
            metrics::counter!("sluice_retention_pruned_idempotency_keys_total"),
            |before| store.prune_idempotency_keys(before, BATCH),
        )
        .await;
        let (jobs, keys) = (jobs?, keys?);
        if jobs > 0 || keys > 0 {
            tracing::info!(
                jobs,
                idempotency_keys = keys,
                "pruned old succeeded jobs and keys"
            );
        }
        Ok((jobs, keys))
    }
}

/// Calls `prune` with the cutoff for `age` until a batch comes back short,
/// adding each batch to `counter`; returns the total. Zero `age` prunes
/// nothing.
async fn drain<F, Fut>(
    age: Duration,
    shutdown: &CancellationToken,
    counter: metrics::Counter,
    mut prune: F,
) -> Result<u64, StoreError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    if age.is_zero() {
        return Ok(0);
    }
    let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms().saturating_sub(age);
    let mut total = 0;
    while !shutdown.is_cancelled() {
        let n = prune(before).await?;
        counter.increment(n);
        total += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(total)
}
