//! Jobs get handler slots in the order they were launched, with the real
//! SQLite store, embedded broker and relay: a one-slot pool runs a topic's
//! jobs in the order the broker delivered them, each once.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{Concurrency, Failure, HandlerConfig, JobStatus};
use sluice_worker::{Handler, JobContext};

mod common;

use common::{queue, Rig};

/// Records the `i` of each payload it is handed, in call order.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, job: &JobContext) -> Result<(), Failure> {
        let i = job.payload["i"].as_u64().expect("payload has i");
        self.0.lock().unwrap().push(i);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_runs_jobs_in_delivery_order() {
    const JOBS: u64 = 400;
    let mut q = queue("order", HandlerConfig::Log);
    // one slot: the handler order is the launch order
    q.concurrency = Concurrency { min: 1, max: 1 };
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let handler = Arc::new(Recorder::default());
    let jobs = (0..JOBS).map(|i| rig.new_job(json!({ "i": i }))).collect();
    let ids = rig.submit_all(jobs).await;
    rig.start(handler.clone(), None);
    for id in &ids {
        let job = rig.wait_final(*id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.attempts, 1);
    }
    let seen = handler.0.lock().unwrap().clone();
    assert_eq!(seen, (0..JOBS).collect::<Vec<_>>());
}
