//! Test support for code above the store (behind the `testing` feature).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{EpochMs, JobId};
use tokio::sync::{Notify, Semaphore};

use crate::*;

/// A store around another, for tests of code above the store: it counts
/// `enqueue` calls, their requests and the calls in flight at once, holds
/// each `enqueue` until [`Wrapped::gate`] gives it a permit, and fails
/// attempt starts and outcome writes as in an outage (transient
/// `Unavailable` errors) while [`Wrapped::set_down`], answers attempt
/// starts late after [`Wrapped::set_start_delay`], panics in the next
/// attempt starts after [`Wrapped::panic_in_starts`], loses the answers of
/// the next committed starts after [`Wrapped::lose_start_answers`];
/// everything else goes to the store it wraps.
pub struct Wrapped {
    inner: Arc<dyn Store>,
    pub calls: AtomicUsize,
    pub requests: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// The most `enqueue` calls in flight at once.
    pub peak: AtomicUsize,
    pub gate: Arc<Semaphore>,
    down: AtomicBool,
    refused: AtomicUsize,
    start_delay_ms: AtomicU64,
    start_panics: AtomicUsize,
    lost_answers: AtomicUsize,
}

/// Takes one from `left` unless it is 0; whether it did.
fn take_one(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Wrapped {
    /// Around `inner`, the gate open.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Self::gated(inner, Semaphore::MAX_PERMITS)
    }

    /// Around `inner`, the gate holding `permits`.
    pub fn gated(inner: Arc<dyn Store>, permits: usize) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            gate: Arc::new(Semaphore::new(permits)),
            down: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            start_delay_ms: AtomicU64::new(0),
            start_panics: AtomicUsize::new(0),
            lost_answers: AtomicUsize::new(0),
        })
    }

    /// Starts or ends the outage of attempt starts and outcome writes.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Attempt starts answer `delay` after the store committed them, as
    /// over a slow connection.
    pub fn set_start_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.start_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The next `n` calls of `start_attempts` panic before they reach the
    /// store (as a bug in a backend would).
    pub fn panic_in_starts(&self, n: usize) {
        self.start_panics.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls of `start_attempts` reach the store, which commits
    /// them, and answer as if the connection dropped before the answer came
    /// (`Unavailable`).
    pub fn lose_start_answers(&self, n: usize) {
        self.lost_answers.store(n, Ordering::SeqCst);
    }

    /// How many of the answers [`Wrapped::lose_start_answers`] asked for
    /// are still to be lost.
    pub fn lost_answers_left(&self) -> usize {
        self.lost_answers.load(Ordering::SeqCst)
    }

    /// How many of the calls [`Wrapped::panic_in_starts`] asked for have
    /// not panicked yet.
    pub fn panics_left(&self) -> usize {
        self.start_panics.load(Ordering::SeqCst)
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// How many attempt starts failed in outages so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("store outage (test)".into())
}

#[async_trait]
impl IngestStore for Wrapped {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(requests.len(), Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let permit = self.gate.acquire().await;
        let res = self.inner.enqueue(requests).await;
        drop(permit);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        res
    }
    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.inner.get_job(id).await
    }
}

#[async_trait]
impl OutboxStore for Wrapped {
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
    async fn extend_claim(
        &self,
        token: &LeaseToken,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        self.inner.extend_claim(token, ids, lease).await
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
impl AttemptStore for Wrapped {
    async fn start_attempts(
        &self,
        requests: Vec<StartRequest>,
        lease: Duration,
    ) -> Vec<Result<StartOutcome, StoreError>> {
        if self.is_down() {
            self.refused.fetch_add(requests.len(), Ordering::SeqCst);
            return requests.iter().map(|_| Err(down())).collect();
        }
        if take_one(&self.start_panics) {
            panic!("start_attempts panicked (Wrapped::panic_in_starts)");
        }
        let started = self.inner.start_attempts(requests, lease).await;
        if take_one(&self.lost_answers) {
            let lost = || StoreError::Unavailable("connection lost after the commit".into());
            return started.iter().map(|_| Err(lost())).collect();
        }
        let delay = self.start_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        started
    }
    async fn finish_attempts(&self, completions: Vec<Completion>) -> Vec<Result<(), StoreError>> {
        if self.is_down() {
            return completions.iter().map(|_| Err(down())).collect();
        }
        self.inner.finish_attempts(completions).await
    }
    async fn abandon_attempt(
        &self,
        job_id: JobId,
        lease: &crate::LeaseToken,
        attempt: u32,
        took_over: bool,
    ) -> Result<bool, StoreError> {
        self.inner
            .abandon_attempt(job_id, lease, attempt, took_over)
            .await
    }
}

#[async_trait]
impl crate::AdminStore for Wrapped {
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
        status: Option<&str>,
    ) -> Result<crate::ReplayRecord, StoreError> {
        self.inner.update_replay(id, position, status).await
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
impl crate::CircuitStore for Wrapped {
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
impl crate::ConcurrencyStore for Wrapped {
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
impl crate::RetentionStore for Wrapped {
    async fn prune_succeeded(&self, before: i64, limit: usize) -> Result<u64, StoreError> {
        self.inner.prune_succeeded(before, limit).await
    }
    async fn prune_idempotency_keys(&self, before: i64, limit: usize) -> Result<u64, StoreError> {
        self.inner.prune_idempotency_keys(before, limit).await
    }
}

#[async_trait]
impl Store for Wrapped {
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
        self.inner.backend()
    }
}
