//! GroupCommit against a counting, gated SQLite store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use sluice_core::{now_ms, EpochMs};
use tokio::sync::Notify;

use super::*;
use crate::{sqlite::SqliteStore, LeaseToken, LostJob};
use crate::{
    AttemptStore, Completion, NewJob, OutboxClaim, OutboxStore, QueueStats, StartOutcome,
    StartRequest,
};

/// Counts inner `enqueue` calls, requests and calls in flight at once;
/// each call first waits for a permit of `gate`.
struct Counting {
    inner: SqliteStore,
    calls: AtomicUsize,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Counting {
    async fn new(open_gate: bool) -> Arc<Self> {
        let permits = if open_gate {
            tokio::sync::Semaphore::MAX_PERMITS
        } else {
            0
        };
        Arc::new(Counting {
            inner: SqliteStore::open("sqlite::memory:").await.unwrap(),
            calls: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            gate: Arc::new(tokio::sync::Semaphore::new(permits)),
        })
    }
}

#[async_trait]
impl IngestStore for Counting {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(requests.len(), Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let _permit = self.gate.acquire().await.unwrap();
        let res = self.inner.enqueue(requests).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        res
    }
    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.inner.get_job(id).await
    }
}

#[async_trait]
impl OutboxStore for Counting {
    async fn claim_outbox(&self, limit: usize, lease: Duration) -> Result<OutboxClaim, StoreError> {
        self.inner.claim_outbox(limit, lease).await
    }
    async fn mark_published(&self, lease: &LeaseToken, ids: &[i64]) -> Result<usize, StoreError> {
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
    async fn dead_letter_refused(
        &self,
        lease: &LeaseToken,
        refused: &[(i64, String)],
    ) -> Result<Vec<JobId>, StoreError> {
        self.inner.dead_letter_refused(lease, refused).await
    }
    async fn next_due(&self) -> Result<Option<EpochMs>, StoreError> {
        self.inner.next_due().await
    }
    async fn lost_jobs(
        &self,
        queue: &str,
        before: EpochMs,
        limit: usize,
    ) -> Result<Vec<LostJob>, StoreError> {
        self.inner.lost_jobs(queue, before, limit).await
    }
    async fn redrive_published(
        &self,
        queue: &str,
        lost: &[LostJob],
    ) -> Result<Vec<JobId>, StoreError> {
        self.inner.redrive_published(queue, lost).await
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
    async fn finish_attempts(&self, completions: Vec<Completion>) -> Vec<Result<(), StoreError>> {
        self.inner.finish_attempts(completions).await
    }
    async fn abandon_attempt(
        &self,
        job_id: JobId,
        lease: &crate::LeaseToken,
        attempt: u32,
    ) -> Result<bool, StoreError> {
        self.inner.abandon_attempt(job_id, lease, attempt).await
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
    async fn replay_from_snapshot(
        &self,
        replay: uuid::Uuid,
        from: u64,
        limit: usize,
        max_replays: u32,
    ) -> Result<Vec<(JobId, Result<(), crate::ReplaySkip>)>, StoreError> {
        self.inner
            .replay_from_snapshot(replay, from, limit, max_replays)
            .await
    }
    async fn create_replay(
        &self,
        replay: crate::NewReplay,
    ) -> Result<(crate::ReplayRecord, bool), StoreError> {
        self.inner.create_replay(replay).await
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
    async fn stale_replays(&self, stale_ms: i64) -> Result<Vec<crate::ReplayRecord>, StoreError> {
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
impl crate::CircuitStore for Counting {
    async fn open_circuit(&self, queue: &str, until: i64) -> Result<bool, StoreError> {
        self.inner.open_circuit(queue, until).await
    }
    async fn claim_probe(&self, queue: &str, claim_until: i64) -> Result<bool, StoreError> {
        self.inner.claim_probe(queue, claim_until).await
    }
    async fn close_circuit(&self, queue: &str) -> Result<(), StoreError> {
        self.inner.close_circuit(queue).await
    }
    async fn circuits(&self) -> Result<Vec<crate::Circuit>, StoreError> {
        self.inner.circuits().await
    }
}

#[async_trait]
impl crate::ConcurrencyStore for Counting {
    async fn report_concurrency(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .report_concurrency(queue, worker, limit, expires_at)
            .await
    }
    async fn concurrency(&self, now: i64) -> Result<Vec<crate::QueueConcurrency>, StoreError> {
        self.inner.concurrency(now).await
    }
}

#[async_trait]
impl crate::RetentionStore for Counting {
    async fn prune_succeeded(&self, before: i64, limit: usize) -> Result<u64, StoreError> {
        self.inner.prune_succeeded(before, limit).await
    }
    async fn prune_idempotency_keys(&self, before: i64, limit: usize) -> Result<u64, StoreError> {
        self.inner.prune_idempotency_keys(before, limit).await
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
    async fn queue_scaling(
        &self,
        queues: &[String],
        now: sluice_core::EpochMs,
    ) -> Result<Vec<crate::QueueScaling>, StoreError> {
        self.inner.queue_scaling(queues, now).await
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
    let counting = Counting::new(true).await;
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
    let gave_up = tokio::time::timeout(Duration::from_millis(5), gc.enqueue(vec![dropped])).await;
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

/// A group commit over a [`Counting`] store whose calls wait at its gate.
async fn gated(options: GroupCommitOptions) -> (Arc<Counting>, Arc<GroupCommit>) {
    let counting = Counting::new(false).await;
    let gc = Arc::new(GroupCommit::with_options(counting.clone(), options));
    (counting, gc)
}

/// Opens the gate of `counting` and waits (bounded) for every task; each
/// request must have been stored.
async fn open_and_join(
    counting: &Counting,
    tasks: Vec<tokio::task::JoinHandle<Vec<Result<Enqueued, StoreError>>>>,
) {
    counting
        .gate
        .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    for t in tasks {
        let res = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
        assert!(res[0].is_ok(), "{res:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_flushes_let_the_next_batch_fill_up() {
    let (counting, gc) = gated(GroupCommitOptions {
        max_wait: Duration::from_millis(1),
        max_concurrent: 2,
        ..GroupCommitOptions::default()
    })
    .await;
    let spawn = |n: usize| {
        let gc = gc.clone();
        tokio::spawn(async move { gc.enqueue(vec![request(n)]).await })
    };
    let wait_calls = |want: usize| {
        let counting = counting.clone();
        async move {
            while counting.calls.load(Ordering::SeqCst) < want {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let limit = Duration::from_secs(10);
    // Two requests, well apart: two flushes, both held by the gate.
    let mut tasks = vec![spawn(0)];
    tokio::time::timeout(limit, wait_calls(1)).await.unwrap();
    tasks.push(spawn(1));
    tokio::time::timeout(limit, wait_calls(2)).await.unwrap();
    // Both slots are busy: these wait, in one batch, long past max_wait.
    for n in 2..10 {
        tasks.push(spawn(n));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        counting.calls.load(Ordering::SeqCst),
        2,
        "no third flush yet"
    );
    open_and_join(&counting, tasks).await;
    assert_eq!(
        counting.calls.load(Ordering::SeqCst),
        3,
        "8 requests, one flush"
    );
    assert_eq!(counting.requests.load(Ordering::SeqCst), 10);
    assert_eq!(counting.peak.load(Ordering::SeqCst), 2);
    assert_eq!(counting.queue_stats().await.unwrap()[0].pending, 10);
}

#[test]
fn a_batch_takes_its_share_only_while_other_slots_are_free() {
    let options = GroupCommitOptions {
        max_batch: 256,
        max_concurrent: 4,
        min_share: 24,
        ..GroupCommitOptions::default()
    };
    // Other slots free: a share of what waits, not below min_share.
    assert_eq!(batch_limit(&options, 40, 4), 24);
    assert_eq!(batch_limit(&options, 200, 2), 50);
    assert_eq!(batch_limit(&options, 2000, 3), 256);
    // Only the batch's own slot (or none) free: as many as max_batch.
    assert_eq!(batch_limit(&options, 40, 1), 256);
    assert_eq!(batch_limit(&options, 40, 0), 256);
    let single = GroupCommitOptions {
        max_concurrent: 1,
        ..options
    };
    assert_eq!(batch_limit(&single, 40, 1), 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_goes_to_the_free_slots_in_shares() {
    let (counting, gc) = gated(GroupCommitOptions {
        max_wait: Duration::from_millis(200),
        max_concurrent: 4,
        min_share: 4,
        ..GroupCommitOptions::default()
    })
    .await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let gc = gc.clone();
            tokio::spawn(async move { gc.enqueue(vec![request(n)]).await })
        })
        .collect();
    // The inner calls are held by the gate: a burst in one batch would be
    // one call; in shares it is several at once.
    tokio::time::timeout(Duration::from_secs(10), async {
        while counting.in_flight.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a second call in flight");
    open_and_join(&counting, tasks).await;
    let calls = counting.calls.load(Ordering::SeqCst);
    assert!((2..=16).contains(&calls), "{calls} calls");
    assert_eq!(counting.requests.load(Ordering::SeqCst), 16);
    assert_eq!(counting.queue_stats().await.unwrap()[0].pending, 16);
}
