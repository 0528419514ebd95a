//! The per-queue rate limit and the per-attempt timeout, with the real
//! SQLite store, embedded broker and relay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{Failure, HandlerConfig, JobStatus, RateLimit};
use sluice_worker::{Handler, JobContext, WorkerOptions};

mod common;

use common::{queue, Rig};

/// Records when each job started.
#[derive(Default)]
struct Clock(Mutex<Vec<Instant>>);

#[async_trait]
impl Handler for Clock {
    async fn handle(&self, _job: &JobContext) -> Result<(), Failure> {
        self.0.lock().unwrap().push(Instant::now());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_starts_keep_to_the_rate_limit() {
    let mut q = queue("rated", HandlerConfig::Log);
    q.concurrency.max = 16;
    q.rate_limit = Some(RateLimit {
        per_second: 20.0,
        burst: 2,
    });
    let rig = Rig::new(q).await;
    let clock = Arc::new(Clock::default());
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    rig.start(clock.clone(), None);
    for id in &ids {
        assert_eq!(rig.wait_final(*id).await.status, JobStatus::Succeeded);
    }
    let mut starts = clock.0.lock().unwrap().clone();
    starts.sort();
    assert_eq!(starts.len(), 30);
    // a full bucket of 2, then 28 more at 20/s: at least 1.4 s
    let span = starts[29] - starts[0];
    assert!(span >= Duration::from_millis(1300), "30 starts in {span:?}");
    // no second holds more than the rate plus the burst
    for (i, t) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|s| **s - *t < Duration::from_secs(1))
            .count();
        assert!(within <= 22, "{within} starts within one second");
    }
    println!(
        "30 starts over {span:?}: {:.1}/s",
        29.0 / span.as_secs_f64()
    );
}

/// Hangs on the first attempt, succeeds on the next.
struct HangsOnce;

#[async_trait]
impl Handler for HangsOnce {
    async fn handle(&self, job: &JobContext) -> Result<(), Failure> {
        if job.attempt == 1 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_past_its_timeout_fails_transiently_and_is_retried() {
    let rig = Rig::new(queue("slow", HandlerConfig::Log)).await;
    let options = WorkerOptions {
        default_timeout: Duration::from_millis(300),
        ..WorkerOptions::default()
    };
    rig.start_with(Arc::new(HangsOnce), None, options);
    let id = rig.submit(json!({}), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 2);
    // a success keeps the last error for the record
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("timed out after 300 ms"), "{error}");
}

/// Panics on the first attempt, succeeds on the next.
struct PanicsOnce;

#[async_trait]
impl Handler for PanicsOnce {
    async fn handle(&self, job: &JobContext) -> Result<(), Failure> {
        if job.attempt == 1 {
            panic!("a bug in a Rust handler");
        }
        Ok(())
    }
}

/// A handler's panic fails its attempt transiently: the job is retried
/// instead of staying unfinished with its message never acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_attempt_and_is_retried() {
    let rig = Rig::new(queue("panics", HandlerConfig::Log)).await;
    rig.start_with(Arc::new(PanicsOnce), None, WorkerOptions::default());
    let id = rig.submit(json!({}), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 2);
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("handler panicked"), "{error}");
}
