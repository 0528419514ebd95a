//! Group commit for any backend: concurrent [`IngestStore::enqueue`] calls
//! are coalesced into one call of the inner store (one transaction).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::JobId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{EnqueueRequest, Enqueued, IngestStore, JobRecord, Store, StoreError};

/// How requests are gathered into one inner call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// At most this many requests per inner call.
    pub max_batch: usize,
    /// At most this long from the first request of a batch to its flush.
    pub max_wait: Duration,
    /// Requests that may wait for a flush before callers are held back.
    pub queue_capacity: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            max_wait: Duration::from_millis(2),
            queue_capacity: 8192,
        }
    }
}

type Reply = oneshot::Sender<Result<Enqueued, StoreError>>;

/// An [`IngestStore`] that batches concurrent `enqueue` calls into one call of
/// the wrapped store, flushed when `max_batch` requests are gathered or
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

/// Gathers batches and flushes them one at a time until every sender is gone.
async fn run(
    inner: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Vec<(EnqueueRequest, Reply)>>,
    options: GroupCommitOptions,
) {
    let max_batch = options.max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = first;
        let deadline = Instant::now() + options.max_wait;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(more)) => batch.extend(more),
                Ok(None) | Err(_) => break,
            }
        }
        // Callers that went away get no answer; leave their requests out.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
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
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;
    use sluice_core::{now_ms, EpochMs};
    use tokio::sync::Notify;

    use super::*;
    use crate::{sqlite::SqliteStore, LeaseToken};
    use crate::{
        AttemptStore, Completion, NewJob, OutboxClaim, OutboxStore, QueueStats, StartOutcome,
        StartRequest,
    };

    /// Counts inner `enqueue` calls and requests.
    struct Counting {
        inner: SqliteStore,
        calls: AtomicUsize,
        requests: AtomicUsize,
    }

    #[async_trait]
    impl IngestStore for Counting {
        async fn enqueue(
            &self,
            requests: Vec<EnqueueRequest>,
        ) -> Vec<Result<Enqueued, StoreError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.requests.fetch_add(requests.len(), Ordering::SeqCst);
            self.inner.enqueue(requests).await
        }
        async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
            self.inner.get_job(id).await
        }
    }

    #[async_trait]
    impl OutboxStore for Counting {
        async fn claim_outbox(
            &self,
            limit: usize,
            lease: Duration,
        ) -> Result<OutboxClaim, StoreError> {
            self.inner.claim_outbox(limit, lease).await
        }
        async fn mark_published(
            &self,
            lease: &LeaseToken,
            ids: &[i64],
        ) -> Result<usize, StoreError> {
            self.inner.mark_published(lease, ids).await
        }
        async fn release_outbox(
            &self,
            lease: &LeaseToken,
            ids: &[i64],
            at: EpochMs,
        ) -> Result<usize, StoreError> {
            self.inner.release_outbox(lease, ids, at).await
        }
        async fn next_due(&self) -> Result<Option<EpochMs>, StoreError> {
            self.inner.next_due().await
        }
    }

    #[async_trait]
    impl AttemptStore for Counting {
        async fn start_attempts(
            &self,
            requests: Vec<StartRequest>,
            lease: Duration,
        ) -> Vec<Result<StartOutcome, StoreError>> {
            self.inner.start_attempts(requests, lease).await
        }
        async fn finish_attempts(
            &self,
            completions: Vec<Completion>,
        ) -> Vec<Result<(), StoreError>> {
            self.inner.finish_attempts(completions).await
        }
    }

    #[async_trait]
    impl crate::AdminStore for Counting {
        async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
            self.inner.set_paused(queue, paused).await
        }
        async fn paused_queues(&self) -> Result<Vec<String>, StoreError> {
            self.inner.paused_queues().await
        }
        async fn list_dead_letters(
            &self,
            filter: &crate::DeadLetterFilter,
            after: Option<crate::DeadLetterCursor>,
            limit: usize,
        ) -> Result<Vec<crate::DeadLetter>, StoreError> {
            self.inner.list_dead_letters(filter, after, limit).await
        }
        async fn count_dead_letters(
            &self,
            filter: &crate::DeadLetterFilter,
        ) -> Result<u64, StoreError> {
            self.inner.count_dead_letters(filter).await
        }
        async fn get_dead_letter(&self, id: JobId) -> Result<crate::DeadLetterDetail, StoreError> {
            self.inner.get_dead_letter(id).await
        }
        async fn delete_dead_letter(&self, id: JobId) -> Result<(), StoreError> {
            self.inner.delete_dead_letter(id).await
        }
        async fn replay_dead_letters(
            &self,
            ids: &[JobId],
            max_replays: u32,
        ) -> Result<Vec<Result<(), crate::ReplaySkip>>, StoreError> {
            self.inner.replay_dead_letters(ids, max_replays).await
        }
        async fn create_replay(
            &self,
            replay: crate::NewReplay,
        ) -> Result<(crate::ReplayRecord, bool), StoreError> {
            self.inner.create_replay(replay).await
        }
        async fn replay_ids(
            &self,
            id: uuid::Uuid,
            position: u64,
            limit: usize,
        ) -> Result<Vec<JobId>, StoreError> {
            self.inner.replay_ids(id, position, limit).await
        }
        async fn update_replay(
            &self,
            id: uuid::Uuid,
            position: u64,
            replayed: u64,
            skipped: u64,
            status: Option<&str>,
        ) -> Result<crate::ReplayRecord, StoreError> {
            self.inner
                .update_replay(id, position, replayed, skipped, status)
                .await
        }
        async fn get_replay(&self, id: uuid::Uuid) -> Result<crate::ReplayRecord, StoreError> {
            self.inner.get_replay(id).await
        }
        async fn stale_replays(
            &self,
            stale_ms: i64,
        ) -> Result<Vec<crate::ReplayRecord>, StoreError> {
            self.inner.stale_replays(stale_ms).await
        }
        async fn record_audit(&self, entry: crate::AuditEntry) -> Result<(), StoreError> {
            self.inner.record_audit(entry).await
        }
        async fn list_audit(&self, limit: usize) -> Result<Vec<crate::AuditEntry>, StoreError> {
            self.inner.list_audit(limit).await
        }
    }

    #[async_trait]
    impl Store for Counting {
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
            self.inner.queue_stats().await
        }
        fn outbox_notify(&self) -> Arc<Notify> {
            self.inner.outbox_notify()
        }
        fn backend(&self) -> &'static str {
            "counting"
        }
    }

    fn request(n: usize) -> EnqueueRequest {
        EnqueueRequest {
            jobs: vec![NewJob {
                id: JobId::new(),
                queue: "q".into(),
                payload: json!({"n": n}),
                key: None,
                headers: BTreeMap::new(),
                max_attempts: 3,
                available_at: now_ms(),
                traceparent: None,
            }],
            idempotency: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_enqueues_are_coalesced_and_all_stored() {
        let counting = Arc::new(Counting {
            inner: SqliteStore::open("sqlite::memory:").await.unwrap(),
            calls: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        });
        let gc = Arc::new(GroupCommit::new(counting.clone()));
        const N: usize = 200;
        let mut tasks = Vec::new();
        for n in 0..N {
            let gc = gc.clone();
            tasks.push(tokio::spawn(async move {
                let req = request(n);
                let id = req.jobs[0].id;
                let res = gc.enqueue(vec![req]).await;
                (id, res)
            }));
        }
        let work = async {
            for t in tasks {
                let (id, mut res) = t.await.unwrap();
                assert_eq!(res.len(), 1);
                let got = res.pop().unwrap().unwrap();
                assert_eq!(
                    got,
                    Enqueued {
                        ids: vec![id],
                        replayed: false
                    }
                );
                let job = gc.get_job(id).await.unwrap();
                assert_eq!(job.id, id);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .expect("enqueues finish");
        let calls = counting.calls.load(Ordering::SeqCst);
        assert_eq!(counting.requests.load(Ordering::SeqCst), N);
        assert!(calls < N, "{calls} inner calls for {N} requests");
        let stats = counting.queue_stats().await.unwrap();
        assert_eq!(stats[0].pending, N as u64);
    }

    #[tokio::test]
    async fn dropped_caller_does_not_break_the_batch() {
        let inner = SqliteStore::open("sqlite::memory:").await.unwrap();
        let gc = GroupCommit::with_options(
            Arc::new(inner),
            GroupCommitOptions {
                max_wait: Duration::from_millis(50),
                ..GroupCommitOptions::default()
            },
        );
        // This caller gives up while its request waits for the flush.
        let dropped = request(0);
        let dropped_id = dropped.jobs[0].id;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(5), gc.enqueue(vec![dropped])).await;
        assert!(gave_up.is_err(), "flush waits for max_wait");
        let kept = request(1);
        let kept_id = kept.jobs[0].id;
        let res = tokio::time::timeout(Duration::from_secs(10), gc.enqueue(vec![kept]))
            .await
            .unwrap();
        assert_eq!(res[0].as_ref().unwrap().ids, vec![kept_id]);
        assert_eq!(gc.get_job(kept_id).await.unwrap().id, kept_id);
        assert!(matches!(
            gc.get_job(dropped_id).await,
            Err(StoreError::NotFound)
        ));
    }
}
