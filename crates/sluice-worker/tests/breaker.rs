//! The circuit breaker with the real SQLite store, embedded broker and
//! relay: a downstream that is down pauses the queue instead of burning
//! attempts, one probe at a time checks it, and everything succeeds after.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{Concurrency, Failure, HandlerConfig, JobId, JobStatus, QueueConfig};
use sluice_store::CircuitState;
use sluice_worker::{Handler, JobContext};

mod common;

use common::{queue, Rig};

/// A downstream that fails transiently while `down`, counting those calls.
#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    calls_while_down: AtomicUsize,
    calls: AtomicUsize,
}

#[async_trait]
impl Handler for Flaky {
    async fn handle(&self, _job: &JobContext) -> Result<(), Failure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if self.down.load(Ordering::SeqCst) {
            self.calls_while_down.fetch_add(1, Ordering::SeqCst);
            return Err(Failure::transient("503 from downstream"));
        }
        Ok(())
    }
}

/// Runs `q` against a downstream that is down, submits `jobs` jobs and
/// waits until the circuit has opened.
async fn down_until_open(q: QueueConfig, jobs: usize) -> (Rig, Arc<Flaky>, Vec<JobId>) {
    let rig = Rig::new(q).await;
    let flaky = Arc::new(Flaky::default());
    flaky.down.store(true, Ordering::SeqCst);
    rig.start(flaky.clone(), None);
    let mut ids = Vec::new();
    for i in 0..jobs {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.store.circuits().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the circuit never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (rig, flaky, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_downstream_opens_the_circuit_and_nothing_dies() {
    let mut q = queue("breaker", HandlerConfig::Log);
    q.concurrency.max = 4;
    q.circuit.consecutive_failures = 3;
    q.circuit.cooldown_ms = 300;
    // the breaker opens after 3 failures; probes follow every 300 ms
    let (rig, flaky, ids) = down_until_open(q, 40).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let burned = flaky.calls_while_down.load(Ordering::SeqCst);
    // without a breaker all 40 jobs would have used their 3 attempts (120
    // calls) by now; with it: the failures that opened it, the jobs already
    // running, and about one probe per cooldown
    assert!(
        burned <= 3 + 4 + 8,
        "{burned} attempts burned while the downstream was down"
    );
    assert!(burned >= 4, "a probe should have run ({burned} calls)");
    let open = rig.store.circuits().await.unwrap();
    assert!(
        matches!(open[0].state, CircuitState::Open | CircuitState::HalfOpen),
        "{open:?}"
    );
    flaky.down.store(false, Ordering::SeqCst);
    for id in &ids {
        let job = rig.wait_final(*id).await;
        assert_eq!(
            job.status,
            JobStatus::Succeeded,
            "job {id} ended {:?}",
            job.status
        );
    }
    assert!(
        rig.store.circuits().await.unwrap().is_empty(),
        "a successful probe closes the circuit"
    );
    println!(
        "attempts while down: {burned}; handler calls in all: {}",
        flaky.calls.load(Ordering::SeqCst)
    );
}

/// Jobs started ahead of free slots that have not run when the circuit
/// trips are held by the pool, not sent to the failing downstream nor
/// returned to the broker (which may count returns against a delivery
/// limit); their starts are undone, so no attempt is counted that did not
/// run, and they all run once the downstream is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_for_a_slot_when_the_circuit_trips_are_held_unrun() {
    const LIMIT: u32 = 2;
    let mut q = queue("breaker_ahead", HandlerConfig::Log);
    q.concurrency = Concurrency {
        min: LIMIT,
        max: LIMIT,
    };
    q.circuit.consecutive_failures = 3;
    // no probe while the calls are counted
    q.circuit.cooldown_ms = 1500;
    let (rig, flaky, ids) = down_until_open(q, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // the failures that tripped it and the job running beside the last
    let burned = flaky.calls_while_down.load(Ordering::SeqCst);
    assert!(
        burned <= 3 + LIMIT as usize,
        "{burned} calls reached the downstream after it was found down"
    );
    flaky.down.store(false, Ordering::SeqCst);
    let mut attempts = 0;
    for id in &ids {
        let job = rig.wait_final(*id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        attempts += job.attempts as usize;
    }
    assert_eq!(
        attempts,
        flaky.calls.load(Ordering::SeqCst),
        "attempts counted that never reached the handler"
    );
    assert_eq!(rig.watched.released(), 0, "messages returned to the broker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_breaker_never_opens() {
    let mut q = queue("nobreaker", HandlerConfig::Log);
    q.circuit.enabled = false;
    q.circuit.consecutive_failures = 1;
    let rig = Rig::new(q).await;
    let flaky = Arc::new(Flaky::default());
    flaky.down.store(true, Ordering::SeqCst);
    rig.start(flaky.clone(), None);
    let id = rig.submit(json!({}), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempts, 3, "every attempt ran");
    assert!(rig.store.circuits().await.unwrap().is_empty());
}
