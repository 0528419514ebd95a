//! Adaptive concurrency with the real SQLite store, embedded broker and
//! relay: a downstream that slows under load gets fewer concurrent attempts
//! instead of timeouts; a fast one is used up to `concurrency.max`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{now_ms, Concurrency, Failure, HandlerConfig, JobStatus};
use sluice_worker::{Handler, JobContext, WorkerOptions};

mod common;

use common::{queue, Rig};

/// A downstream of limited capacity: each request takes `base`, times the
/// number of requests in progress over `capacity` when that is above 1.
struct Capacity {
    base: Duration,
    capacity: usize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Capacity {
    fn new(base: Duration, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            base,
            capacity,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Handler for Capacity {
    async fn handle(&self, _job: &JobContext) -> Result<(), Failure> {
        let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let load = n.div_ceil(self.capacity).max(1) as u32;
        tokio::time::sleep(self.base * load).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Runs `jobs` jobs through a pool of `concurrency` on `handler`; returns the
/// attempts each job took and the limit the pool last reported.
async fn run(handler: Arc<Capacity>, concurrency: Concurrency, jobs: usize) -> (Vec<u32>, u64) {
    let mut q = queue("adaptive", HandlerConfig::Log);
    q.concurrency = concurrency;
    q.max_attempts = 10;
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let mut ids = Vec::new();
    for i in 0..jobs {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    let options = WorkerOptions {
        default_timeout: Duration::from_millis(400),
        ..WorkerOptions::default()
    };
    rig.start_with(handler, None, options);
    let mut attempts = Vec::new();
    for id in &ids {
        let job = rig.wait_final(*id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        attempts.push(job.attempts);
    }
    // the pool reports every 2 s
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut limit = 0;
    while Instant::now() < deadline {
        let reports = rig.store.concurrency(now_ms()).await.unwrap();
        limit = reports.first().map_or(0, |c| c.limit);
        if limit > 0 && limit >= u64::from(concurrency.max) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (attempts, limit)
}

/// At 64 concurrent requests this downstream needs 640 ms a request, past
/// the 400 ms timeout: a fixed pool of 64 would time out most attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_slowing_under_load_gets_fewer_requests_and_no_timeouts() {
    let ds = Capacity::new(Duration::from_millis(20), 2);
    let (attempts, limit) = run(ds.clone(), Concurrency { min: 1, max: 64 }, 300).await;
    let peak = ds.peak.load(Ordering::SeqCst);
    let retried = attempts.iter().filter(|a| **a > 1).count();
    println!("peak concurrency {peak}, last reported limit {limit}, jobs retried {retried}");
    assert_eq!(retried, 0, "attempts timed out");
    assert!(peak <= 32, "the pool reached {peak} concurrent requests");
    assert!((1..64).contains(&limit), "limit {limit}");
}

/// A downstream that does not slow under load is used up to `max`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_downstream_is_used_up_to_max() {
    let ds = Capacity::new(Duration::from_millis(20), 1000);
    let (attempts, limit) = run(ds.clone(), Concurrency { min: 1, max: 16 }, 400).await;
    let peak = ds.peak.load(Ordering::SeqCst);
    println!("peak concurrency {peak}, last reported limit {limit}");
    assert!(attempts.iter().all(|a| *a == 1));
    assert_eq!(peak, 16);
    assert_eq!(limit, 16);
}
