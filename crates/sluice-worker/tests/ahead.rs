//! Starting attempts ahead of free slots, with the real SQLite store,
//! embedded broker and relay: while handlers are fast a pool starts up to one
//! limit's worth of jobs beyond its running handlers (with owned partitions,
//! as Kafka's, up to its prefetch window), never more, and never runs more
//! handlers than the limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{now_ms, Concurrency, Failure, HandlerConfig, JobId, JobStatus};
use sluice_worker::{prefetch_window, Handler, JobContext, WorkerOptions};
use tokio::sync::Semaphore;

mod common;

use common::{queue, Rig};

/// Runs 20 fast jobs, then `slow` jobs that block until the gate opens.
async fn fast_then_blocked(
    limit: u32,
    slow: usize,
    options: WorkerOptions,
    owned_partitions: bool,
) -> (Rig, Arc<Gated>, Vec<JobId>) {
    let mut q = queue("ahead", HandlerConfig::Log);
    q.concurrency = Concurrency {
        min: limit,
        max: limit,
    };
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let handler = Gated::new();
    if owned_partitions {
        rig.watched.claim_owned_partitions();
    }
    rig.start_with(handler.clone(), None, options);
    // fast jobs first: the pool learns its handlers are fast
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    for id in &ids {
        assert_eq!(rig.wait_final(*id).await.status, JobStatus::Succeeded);
    }
    handler.fast.store(false, Ordering::SeqCst);
    let mut blocked = Vec::new();
    for i in 0..slow {
        blocked.push(rig.submit(json!({ "slow": i }), BTreeMap::new()).await);
    }
    (rig, handler, blocked)
}

/// Returns at once while `fast`; otherwise each call waits for a permit of
/// `gate`. Counts its calls per job.
struct Gated {
    fast: AtomicBool,
    gate: Semaphore,
    running: AtomicUsize,
    peak: AtomicUsize,
    calls: Mutex<HashMap<JobId, usize>>,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            fast: AtomicBool::new(true),
            gate: Semaphore::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            calls: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait]
impl Handler for Gated {
    async fn handle(&self, job: &JobContext) -> Result<(), Failure> {
        *self.calls.lock().unwrap().entry(job.id).or_default() += 1;
        let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        if !self.fast.load(Ordering::SeqCst) {
            self.gate.acquire().await.expect("gate open").forget();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

const LIMIT: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_handlers_get_one_limit_of_jobs_started_ahead_and_no_more() {
    // LIMIT run, LIMIT more are started and wait for a slot
    jobs_started_stay_at(false, u64::from(2 * LIMIT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_owned_partitions_fast_handlers_get_the_window_started_and_no_more() {
    // LIMIT run, the rest of the window is started and waits for a slot
    jobs_started_stay_at(true, prefetch_window(LIMIT as usize, true) as u64).await;
}

/// While the handlers are blocked after fast ones, `full` jobs are started
/// (run or wait for a slot) and no more; then every job runs once.
async fn jobs_started_stay_at(owned_partitions: bool, full: u64) {
    let options = WorkerOptions::default();
    let (rig, handler, slow) =
        fast_then_blocked(LIMIT, 2 * full as usize, options, owned_partitions).await;
    let in_flight = || async {
        let queues = [rig.queue.name.clone()];
        let s = rig.store.queue_scaling(&queues, now_ms()).await;
        s.expect("scaling figures")[0].in_flight
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight().await < full {
        assert!(Instant::now() < deadline, "jobs were not started ahead");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // it stays there: no job starts beyond that
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        assert_eq!(in_flight().await, full);
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

/// Jobs started ahead whose lease can no longer cover their handler by the
/// time a slot frees up are handed back to the broker instead of run, their
/// start undone; they come back and run once each, as their first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_whose_lease_ran_short_waiting_for_a_slot_are_handed_back_and_run_once() {
    const LIMIT: u32 = 2;
    // lease = 1 s timeout + 400 ms margin; ahead while handlers take <= 100 ms
    let options = WorkerOptions {
        default_timeout: Duration::from_secs(1),
        lease_margin: Duration::from_millis(400),
        ..WorkerOptions::default()
    };
    let (rig, handler, slow) = fast_then_blocked(LIMIT, 4, options, false).await;
    let queues = [rig.queue.name.clone()];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = rig.store.queue_scaling(&queues, now_ms()).await.unwrap();
        if s[0].in_flight >= u64::from(2 * LIMIT) {
            break;
        }
        assert!(Instant::now() < deadline, "jobs were not started ahead");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // the running ones finish after 800 ms: too late for the jobs started
    // ahead to finish within their 1.4 s lease
    tokio::time::sleep(Duration::from_millis(800)).await;
    handler.gate.add_permits(100);
    for id in &slow {
        let job = rig.wait_final(*id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
    }
    let calls = handler.calls.lock().unwrap().clone();
    for id in &slow {
        assert_eq!(calls.get(id), Some(&1), "job {id} ran once");
    }
    assert!(
        rig.watched.released() >= LIMIT as usize,
        "the jobs started ahead were not handed back: {} released",
        rig.watched.released()
    );
    // an attempt that never ran is not counted (before, the jobs handed
    // back were taken over once their lease lapsed, as attempt 2)
    for id in &slow {
        let job = rig.store.get_job(*id).await.unwrap();
        assert_eq!(job.attempts, 1, "job {id}: attempts counted");
    }
    assert_eq!(handler.peak.load(Ordering::SeqCst), LIMIT as usize);
}
