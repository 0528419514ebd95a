//! Group commit for any backend: concurrent [`IngestStore::enqueue`] calls
//! are coalesced into one call of the inner store (one transaction).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::JobId;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{EnqueueRequest, Enqueued, IngestStore, JobRecord, Store, StoreError};

/// How requests are gathered into one inner call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// At most this many requests per inner call.
    pub max_batch: usize,
    /// At most this long from the first request of a batch to its flush
    /// when a slot is free. Zero (the default) flushes at once: requests
    /// arriving while `max_concurrent` transactions are in flight still
    /// gather into the next batch, so batches grow with the load without
    /// holding back the first request. On PostgreSQL with 64 connections of
    /// single-job POSTs, zero accepted about 15,000 jobs/s against about
    /// 9,800 with 2 ms (`scripts/bench ingest`, 2026-12-06): a waiting
    /// batch only added latency, and with it fewer requests per second.
    pub max_wait: Duration,
    /// Requests that may wait for a flush before callers are held back.
    pub queue_capacity: usize,
    /// Inner calls (transactions) in flight at once. While they are all
    /// busy the next batch keeps filling up to `max_batch`. 1 suits a
    /// single-writer store (SQLite); a server store commits several at once.
    pub max_concurrent: usize,
    /// While another slot is free besides the one a batch takes, the batch
    /// stops at its share of the requests waiting (their number divided by
    /// `max_concurrent`), but not below this; the rest go to the free
    /// slots. One transaction runs on one database core, so a burst written
    /// as one batch leaves the other cores idle. With every other slot busy
    /// the batch fills up to `max_batch` as before, which is what a loaded
    /// database needs. On PostgreSQL, single-job POSTs over 64 connections
    /// went from about 24,900 to about 34,300 jobs/s with 24; over 256
    /// connections, 47,300 and 47,800 (`scripts/bench ingest`'s load,
    /// 2026-12-06). Shares of 16 cost more per job than they gained.
    pub min_share: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            max_wait: Duration::ZERO,
            queue_capacity: 8192,
            max_concurrent: 4,
            min_share: 24,
        }
    }
}

type Reply = oneshot::Sender<Result<Enqueued, StoreError>>;

/// An [`IngestStore`] that batches concurrent `enqueue` calls into one call of
/// the wrapped store, flushed when `max_batch` requests are gathered (fewer
/// while slots are free, see [`GroupCommitOptions::min_share`]) or
/// `max_wait` has passed since the first. Each caller gets its own request's
/// result; a caller that went away before the flush is left out of it. Reads
/// pass straight through. Must be created inside a Tokio runtime; the
/// background task ends when the `GroupCommit` is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<dyn Store>,
    tx: mpsc::Sender<Vec<(EnqueueRequest, Reply)>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("backend", &self.inner.backend())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Wraps `inner` with the default options.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self::with_options(inner, GroupCommitOptions::default())
    }

    /// Wraps `inner`, batching as `options` say.
    pub fn with_options(inner: Arc<dyn Store>, options: GroupCommitOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        tokio::spawn(run(inner.clone(), rx, options));
        Self { inner, tx }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("group commit stopped".into())
}

#[async_trait]
impl IngestStore for GroupCommit {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        let mut waits = Vec::with_capacity(requests.len());
        let mut sends = Vec::with_capacity(requests.len());
        for req in requests {
            let (reply, wait) = oneshot::channel();
            sends.push((req, reply));
            waits.push(wait);
        }
        if !sends.is_empty() && self.tx.send(sends).await.is_err() {
            return waits.iter().map(|_| Err(stopped())).collect();
        }
        let mut out = Vec::with_capacity(waits.len());
        for wait in waits {
            out.push(wait.await.unwrap_or_else(|_| Err(stopped())));
        }
        out
    }

    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.inner.get_job(id).await
    }
}

/// Gathers batches and flushes them, at most `max_concurrent` at once, until
/// every sender is gone and every flush has answered.
async fn run(
    inner: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Vec<(EnqueueRequest, Reply)>>,
    options: GroupCommitOptions,
) {
    let slots = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
    // The most a batch of `n` requests, with `rx` still holding more, takes.
    let limit = |n: usize, rx: &mpsc::Receiver<Vec<(EnqueueRequest, Reply)>>| {
        batch_limit(&options, n + rx.len(), slots.available_permits())
    };
    let mut flushes = JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut batch = first;
        let mut open = true;
        let deadline = Instant::now() + options.max_wait;
        while open && batch.len() < limit(batch.len(), &rx) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(more)) => batch.extend(more),
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        // Every slot busy: keep filling this batch until one frees up.
        let permit = loop {
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                break permit;
            }
            if !open || batch.len() >= limit(batch.len(), &rx) {
                break slots.clone().acquire_owned().await.expect("never closed");
            }
            tokio::select! {
                permit = slots.clone().acquire_owned() => break permit.expect("never closed"),
                more = rx.recv() => match more {
                    Some(more) => batch.extend(more),
                    None => open = false,
                },
            }
        };
        while flushes.try_join_next().is_some() {}
        flushes.spawn(flush(inner.clone(), batch, permit));
        if !open {
            break;
        }
    }
    while flushes.join_next().await.is_some() {}
}

/// The most requests a batch takes with `waiting` requests gathered or
/// queued and `free` slots (the batch's own among them); see
/// [`GroupCommitOptions::min_share`]. Counts channel entries, one per
/// `enqueue` call, as requests: a call's requests are never split.
fn batch_limit(options: &GroupCommitOptions, waiting: usize, free: usize) -> usize {
    let max_batch = options.max_batch.max(1);
    if free < 2 {
        return max_batch;
    }
    let share = waiting.div_ceil(options.max_concurrent.max(1));
    share.max(options.min_share).clamp(1, max_batch)
}

/// One inner call for `batch`; answers each caller still waiting.
async fn flush(
    inner: Arc<dyn Store>,
    mut batch: Vec<(EnqueueRequest, Reply)>,
    _slot: OwnedSemaphorePermit,
) {
    // Callers that went away get no answer; leave their requests out.
    batch.retain(|(_, reply)| !reply.is_closed());
    if batch.is_empty() {
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let mut results = inner.enqueue(requests).await.into_iter();
    for reply in replies {
        let res = results.next().unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "the store returned too few results".into(),
            ))
        });
        let _ = reply.send(res);
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests;
