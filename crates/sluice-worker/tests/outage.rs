//! While the store cannot start attempts (an outage), a pool holds the
//! messages it received and starts them again once the store is back: none
//! is returned to the broker, which may count every return against a
//! delivery limit and drop the message (RabbitMQ quorum queues). A pool that
//! stops while the store is slow or down loses nothing either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{Concurrency, Failure, HandlerConfig, JobId, JobStatus};
use sluice_store::testing::Wrapped;
use sluice_worker::{Handler, JobContext, LogHandler, Worker, WorkerError, WorkerOptions};
use tokio_util::sync::CancellationToken;

mod common;

use common::broker::Watched;
use common::{queue, Rig};

/// A pool of the rig's queue running on `store` and `broker`.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    /// Runs `worker` until [`Running::stop`].
    fn start(worker: Worker) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        Self { stop, task }
    }

    /// Stops the pool; it must end within 10 s.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the pool did not stop")
            .unwrap()
            .unwrap();
    }
}

/// Submits five jobs, starts the relay and a pool on `store` and `broker`.
async fn run_five_jobs(
    rig: &Rig,
    store: &Arc<Wrapped>,
    broker: &Arc<Watched>,
) -> (Vec<JobId>, Running) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    rig.start_relay();
    let worker = rig.worker(store.clone(), broker.clone(), Arc::new(LogHandler));
    (ids, Running::start(worker))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_returns_no_message_to_the_broker() {
    let mut q = queue("outage", HandlerConfig::Log);
    // failed starts are the store's, not the downstream's
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let outage = Wrapped::new(rig.store.clone());
    let broker = Watched::new(rig.broker.clone());
    outage.set_down(true);
    let (ids, running) = run_five_jobs(&rig, &outage, &broker).await;
    // the pool takes only what it can start (its limit starts low): a
    // start failed, and was tried again after the pause
    let deadline = Instant::now() + Duration::from_secs(20);
    while outage.refused() < 4 {
        assert!(
            Instant::now() < deadline,
            "the pool tried {} starts",
            outage.refused()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    outage.set_down(false);
    for id in &ids {
        assert_eq!(rig.wait_final(*id).await.status, JobStatus::Succeeded);
    }
    assert_eq!(broker.released(), 0, "messages returned to the broker");
    running.stop().await;
}

/// Five jobs through a pool whose store `fault` has set up: each succeeds
/// with one attempt counted, and no message goes back to the broker.
/// Returns the store.
async fn each_job_runs_once_despite(name: &str, fault: impl FnOnce(&Wrapped)) -> Arc<Wrapped> {
    let mut q = queue(name, HandlerConfig::Log);
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let store = Wrapped::new(rig.store.clone());
    let broker = Watched::new(rig.broker.clone());
    fault(&store);
    let (ids, running) = run_five_jobs(&rig, &store, &broker).await;
    for id in &ids {
        let job = rig.wait_final(*id).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
    }
    assert_eq!(broker.released(), 0, "messages returned to the broker");
    running.stop().await;
    store
}

/// A start that panics (a bug in a backend) fails its batch as an outage
/// would: the pool keeps running, holds the batch's messages without
/// returning them to the broker, and starts them again; each job runs
/// once, with one attempt counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_panics_holds_its_messages_and_starts_them_again() {
    let store = each_job_runs_once_despite("start-panics", |s| s.panic_in_starts(2)).await;
    assert_eq!(store.panics_left(), 0, "the starts did not panic");
}

/// A start the store committed whose answer was lost (the connection
/// dropped) is asked again under the same lease token: the store hands back
/// the attempt it started, so the job runs with one attempt counted; it is
/// not handed back to the broker to wait out that attempt's lease and be
/// counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_answer_was_lost_runs_its_attempt_without_counting_another() {
    let store = each_job_runs_once_despite("lost-answer", |s| s.lose_start_answers(1)).await;
    assert_eq!(store.lost_answers_left(), 0, "no answer was lost");
}

/// A pool that stops while it holds a message whose start went unanswered
/// (the store committed it) undoes that attempt in its drain: the job is
/// left with no attempt counted and no lease, so that its message, delivered
/// again, starts at once as its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_stopping_undoes_the_attempts_of_starts_that_went_unanswered() {
    let mut q = queue("lost-answer-stop", HandlerConfig::Log);
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let flaky = Wrapped::new(rig.store.clone());
    flaky.lose_start_answers(1);
    let id = rig.submit(json!({ "i": 1 }), BTreeMap::new()).await;
    rig.start_relay();
    let worker = rig.worker(flaky.clone(), rig.broker.clone(), Arc::new(LogHandler));
    let running = Running::start(worker);
    let deadline = Instant::now() + Duration::from_secs(20);
    while flaky.lost_answers_left() > 0 {
        assert!(Instant::now() < deadline, "no start was answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // stopped before the held message is started again (a second later)
    running.stop().await;
    let job = rig.store.get_job(id).await.unwrap();
    assert_eq!(
        job.attempts, 0,
        "the unanswered start's attempt stays counted"
    );
    assert_ne!(job.status, JobStatus::Succeeded, "the job ran");
}

/// Runs `worker` until `id` has started an attempt and `then` has passed,
/// then stops it and waits (a bounded time) for it to end.
async fn stop_once_started(rig: &Rig, worker: Worker, id: JobId, then: Duration) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.store.get_job(id).await.unwrap().attempts == 0 {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(then).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the pool did not stop")
        .unwrap()
        .unwrap();
}

/// Takes the store down as it runs its job, so the job's outcome cannot be
/// written.
struct TakesTheStoreDown(Arc<Wrapped>);

#[async_trait]
impl Handler for TakesTheStoreDown {
    async fn handle(&self, _job: &JobContext) -> Result<(), Failure> {
        self.0.set_down(true);
        Ok(())
    }
}

/// A store still down when the pool is told to stop does not keep it from
/// stopping: once the drain is over (at least a few seconds after its last
/// job) the outcomes it could not write are left un-acked, for the broker
/// to deliver again, and the pool ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_down_while_draining_does_not_hold_the_pool_for_ever() {
    let mut q = queue("outage-drain", HandlerConfig::Log);
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let outage = Wrapped::new(rig.store.clone());
    let id = rig.submit(json!({ "i": 1 }), BTreeMap::new()).await;
    rig.start_relay();
    let options = WorkerOptions {
        drain_grace: Duration::from_millis(500),
        ..WorkerOptions::default()
    };
    let handler = Arc::new(TakesTheStoreDown(outage.clone()));
    let worker = rig.worker_with(outage.clone(), rig.broker.clone(), handler, None, options);
    stop_once_started(&rig, worker, id, Duration::from_millis(200)).await;
    // its outcome was never written: the job waits for its message again
    let job = rig.store.get_job(id).await.unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Published, 1));
}

/// A pool told to stop while a batch's attempts are starting (the store's
/// answer is slow) still runs those jobs in its drain: they are leased, and
/// dropped unrun they would wait out their leases and count an attempt
/// more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_whose_start_is_in_flight_when_the_pool_stops_run_in_the_drain() {
    let mut q = queue("starting-drain", HandlerConfig::Log);
    q.circuit.enabled = false;
    // free slots beside the job: the pool keeps receiving while it starts
    q.concurrency = Concurrency { min: 4, max: 4 };
    let rig = Rig::new(q).await;
    let slow = Wrapped::new(rig.store.clone());
    slow.set_start_delay(Duration::from_millis(1500));
    let id = rig.submit(json!({ "i": 1 }), BTreeMap::new()).await;
    rig.start_relay();
    let worker = rig.worker(slow.clone(), rig.broker.clone(), Arc::new(LogHandler));
    // stopped as soon as the start is committed, its answer still on its way
    stop_once_started(&rig, worker, id, Duration::ZERO).await;
    let job = rig.store.get_job(id).await.unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
}
