//! Starting attempts ahead of free slots, with the real SQLite store,
//! embedded broker and relay: while handlers are fast a pool starts up to one
//! limit's worth of jobs beyond its running handlers, never more, and never
//! runs more handlers than the limit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{now_ms, Concurrency, Failure, HandlerConfig, JobStatus};
use sluice_worker::{Handler, JobContext};
use tokio::sync::Semaphore;

mod common;

use common::{queue, Rig};

/// Returns at once while `fast`; otherwise each call waits for a permit of
/// `gate`.
struct Gated {
    fast: AtomicBool,
    gate: Semaphore,
    running: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait]
impl Handler for Gated {
    async fn handle(&self, _job: &JobContext) -> Result<(), Failure> {
        let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        if !self.fast.load(Ordering::SeqCst) {
            self.gate.acquire().await.expect("gate open").forget();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_handlers_get_one_limit_of_jobs_started_ahead_and_no_more() {
    const LIMIT: u32 = 3;
    let mut q = queue("ahead", HandlerConfig::Log);
    q.concurrency = Concurrency {
        min: LIMIT,
        max: LIMIT,
    };
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let handler = Arc::new(Gated {
        fast: AtomicBool::new(true),
        gate: Semaphore::new(0),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    rig.start(handler.clone(), None);
    // fast jobs first: the pool learns its handlers are fast
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    for id in &ids {
        assert_eq!(rig.wait_final(*id).await.status, JobStatus::Succeeded);
    }
    // then slow ones: LIMIT run, LIMIT more are started and wait for a slot
    handler.fast.store(false, Ordering::SeqCst);
    let mut slow = Vec::new();
    for i in 0..10 {
        slow.push(rig.submit(json!({ "slow": i }), BTreeMap::new()).await);
    }
    let in_flight = || async {
        let queues = [rig.queue.name.clone()];
        let s = rig.store.queue_scaling(&queues, now_ms()).await;
        s.expect("scaling figures")[0].in_flight
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight().await < u64::from(2 * LIMIT) {
        assert!(Instant::now() < deadline, "jobs were not started ahead");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // it stays there: no job starts beyond one limit ahead
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        assert_eq!(in_flight().await, u64::from(2 * LIMIT));
        assert_eq!(handler.running.load(Ordering::SeqCst), LIMIT as usize);
    }
    handler.gate.add_permits(slow.len());
    for id in &slow {
        let job = rig.wait_final(*id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.attempts, 1, "a job started ahead ran once");
    }
    assert_eq!(handler.peak.load(Ordering::SeqCst), LIMIT as usize);
}
