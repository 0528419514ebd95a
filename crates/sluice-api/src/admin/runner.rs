//! The background runner of a replay: replays the snapshot of job ids at
//! `rate_per_second` (steady pacing) or in batches as fast as the store
//! allows. Each batch records its progress in the transaction that replays
//! it; a slowly paced runner also records every [`IDLE_HEARTBEAT`] that it
//! is alive, and the end.
//! A supervisor resumes replays whose runner died (no progress recorded for
//! [`STALE_AFTER`]), from their recorded position. The store takes each
//! snapshot entry in the transaction that replays it, so entries past the
//! recorded position that the stopped runner (or a stalled one still going)
//! handled are not replayed again, even for a job that has died again since.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_core::{JobId, RateLimit, TokenBucket};
use sluice_store::{replay_tally, ReplayRecord, ReplaySkip, StoreError};
use tokio::time::Instant;

use super::AdminState;
use crate::metrics::REPLAY_JOBS_TOTAL;

/// A `running` replay without progress for this long has lost its runner
/// (the default of [`AdminState::set_replay_stale_after`]).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(30);
/// How often a slowly paced replay records that it is alive between jobs.
const IDLE_HEARTBEAT: Duration = Duration::from_secs(5);
/// Jobs per store call without a rate.
const FAST_BATCH: usize = 100;
/// Shortest wait between paced batches; faster rates replay several jobs
/// per batch.
const MIN_TICK: Duration = Duration::from_millis(10);
/// How long a transiently failing store call is retried before giving up
/// (the supervisor resumes the replay later).
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Counts the jobs a `replay_from_snapshot` call replayed and skipped (as
/// the store recorded them: see [`replay_tally`]) in
/// `sluice_replay_jobs_total`.
pub(crate) fn count_outcomes(results: &[(JobId, Result<(), ReplaySkip>)]) {
    let (replayed, skipped) = replay_tally(results);
    if replayed > 0 {
        metrics::counter!(REPLAY_JOBS_TOTAL, "outcome" => "replayed").increment(replayed);
    }
    if skipped > 0 {
        metrics::counter!(REPLAY_JOBS_TOTAL, "outcome" => "skipped").increment(skipped);
    }
}

/// Runs `record` in a task unless this process already runs it.
pub(crate) fn spawn(state: AdminState, record: ReplayRecord) {
    if !state.running().insert(record.id) {
        return;
    }
    tokio::spawn(async move {
        let id = record.id;
        match run(&state, record).await {
            Ok(()) => tracing::info!(replay = %id, "replay finished"),
            Err(e) => tracing::error!(replay = %id, error = %e, "replay stopped"),
        }
        state.running().remove(&id);
    });
}

/// Resumes stale replays every `STALE_AFTER / 2` until `shutdown`.
pub(crate) async fn supervise(state: AdminState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut every = tokio::time::interval(state.stale_after() / 2);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = every.tick() => {}
        }
        let stale_ms = i64::try_from(state.stale_after().as_millis()).unwrap_or(i64::MAX);
        match state.store().stale_replays(stale_ms).await {
            Ok(stale) => {
                for r in stale {
                    if !state.running().contains(&r.id) {
                        tracing::info!(replay = %r.id, position = r.position, "resuming a replay whose runner stopped");
                        spawn(state.clone(), r);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for stale replays"),
        }
    }
}

/// Where a runner is. Each store call records its own range and counts
/// (see `AdminStore::replay_from_snapshot`); the runner records that it is
/// alive while it waits, and the final status.
struct Progress {
    id: uuid::Uuid,
    position: u64,
}

impl Progress {
    async fn flush(&mut self, state: &AdminState, status: Option<&str>) -> Result<(), StoreError> {
        let store = state.store();
        retry(|| store.update_replay(self.id, self.position, status)).await?;
        Ok(())
    }
}

async fn run(state: &AdminState, record: ReplayRecord) -> Result<(), StoreError> {
    let mut progress = Progress {
        id: record.id,
        position: record.position,
    };
    match replay_all(state, &record, &mut progress).await {
        Ok(true) => progress.flush(state, Some("completed")).await,
        // Stopped by shutdown: keep the progress; a later process resumes.
        Ok(false) => progress.flush(state, None).await,
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            let _ = progress.flush(state, Some("failed")).await;
            Err(e)
        }
    }
}

/// Replays from `progress.position` to the end of the snapshot; `false`
/// when stopped by shutdown first.
async fn replay_all(
    state: &AdminState,
    record: &ReplayRecord,
    progress: &mut Progress,
) -> Result<bool, StoreError> {
    let store = state.store();
    // Paced by a token bucket that keeps time by the clock, so a slow store
    // call is made up by a bigger next batch; it holds at most one second
    // of the rate, and its first job goes at once.
    let mut pacer = record.rate_per_second.map(|rate| {
        let limit = RateLimit {
            per_second: rate,
            burst: (rate.ceil() as u32).max(1),
        };
        TokenBucket::starting_with(limit, 1.0)
    });
    loop {
        let n = match &mut pacer {
            None => FAST_BATCH,
            Some(pacer) => {
                let mut idle = Instant::now() + IDLE_HEARTBEAT;
                loop {
                    let now = Instant::now().into_std();
                    let n = pacer.available(now);
                    if n > 0 {
                        pacer.take(n);
                        break n;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(pacer.wait(now).max(MIN_TICK)) => {}
                        _ = tokio::time::sleep_until(idle) => {
                            progress.flush(state, None).await?;
                            idle = Instant::now() + IDLE_HEARTBEAT;
                        }
                        _ = state.inner.stop.notified() => {}
                    }
                    if state.stopping() {
                        return Ok(false);
                    }
                }
            }
        };
        if state.stopping() {
            return Ok(false);
        }
        if n == 0 {
            continue;
        }
        let (from, max) = (progress.position, record.max_replays);
        let results = retry(|| store.replay_from_snapshot(record.id, from, n, max)).await?;
        // the call recorded its range and counts; entries an earlier run
        // took were counted by that run's call
        count_outcomes(&results);
        progress.position += results.len() as u64;
        if results.len() < n {
            return Ok(true);
        }
    }
}

/// Runs `op`, retrying transient failures for up to [`RETRY_FOR`].
async fn retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let give_up = Instant::now() + RETRY_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if e.is_transient() && Instant::now() + wait < give_up => {
                tracing::warn!(error = %e, "replay: store call failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

impl AdminState {
    fn running(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<uuid::Uuid>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Stops this process's replay runners (each records its progress and
    /// stays `running`, to be resumed by a later process) and waits up to
    /// `grace` for them.
    pub async fn stop_replays(&self, grace: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.stop.notify_waiters();
        let deadline = Instant::now() + grace;
        while !self.running().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
