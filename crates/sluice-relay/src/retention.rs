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
/// nothing. After each full batch it rests as long as that batch took, so
/// a large backlog (the first round after an upgrade, or after shortening
/// an age) takes at most about half of one store connection's time rather
/// than deleting back to back beside the jobs being enqueued and run.
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
        let t0 = tokio::time::Instant::now();
        let n = prune(before).await?;
        counter.increment(n);
        total += n;
        if n < BATCH as u64 {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(t0.elapsed()) => {}
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A prune that takes 40 ms per batch and deletes up to `BATCH` of
    /// `left` rows, noting when each batch began.
    async fn batch(
        left: &Mutex<u64>,
        began: &Mutex<Vec<Duration>>,
        t0: tokio::time::Instant,
    ) -> u64 {
        began.lock().unwrap().push(t0.elapsed());
        tokio::time::sleep(ms(40)).await;
        let mut left = left.lock().unwrap();
        let n = (*left).min(BATCH as u64);
        *left -= n;
        n
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_are_followed_by_a_rest_as_long_as_they_took() {
        let (left, began) = (Mutex::new(2 * BATCH as u64 + 7), Mutex::new(Vec::new()));
        let t0 = tokio::time::Instant::now();
        let (l, b) = (&left, &began);
        let total = drain(
            ms(1),
            &CancellationToken::new(),
            metrics::Counter::noop(),
            |_| async move { Ok(batch(l, b, t0).await) },
        )
        .await
        .unwrap();
        assert_eq!(total, 2 * BATCH as u64 + 7);
        assert_eq!(*began.lock().unwrap(), vec![ms(0), ms(80), ms(160)]);
        // no rest after the short batch that ends the round
        assert_eq!(t0.elapsed(), ms(200));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_rest() {
        let (left, began) = (Mutex::new(u64::MAX), Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(50)).await;
            stop.cancel();
        });
        let t0 = tokio::time::Instant::now();
        let (l, b) = (&left, &began);
        let total = drain(ms(1), &shutdown, metrics::Counter::noop(), |_| async move {
            Ok(batch(l, b, t0).await)
        })
        .await
        .unwrap();
        assert_eq!(total, BATCH as u64);
        assert_eq!(t0.elapsed(), ms(50));
    }
}
