//! The relay tests' rig: the real SQLite store (or a PostgreSQL database of
//! the test's own) and the embedded broker in a temporary directory.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_broker::{Broker, Delivery, SubscribeOptions};
use sluice_core::{now_ms, JobId, JobStatus, QueueConfig};
use sluice_relay::{Relay, RelayConfig};
use sluice_store::{EnqueueRequest, NewJob, Store};
use tokio_util::sync::CancellationToken;

pub async fn rig() -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    Arc<dyn Broker>,
    QueueConfig,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db", dir.path().display());
    rig_on(dir, &url).await
}

/// The rig on the store at `store_url`.
pub async fn rig_on(
    dir: tempfile::TempDir,
    store_url: &str,
) -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    Arc<dyn Broker>,
    QueueConfig,
) {
    let store = sluice_store::open(store_url).await.unwrap();
    let broker = sluice_broker::open("embedded://?poll_interval_ms=20", dir.path())
        .await
        .unwrap();
    let q = QueueConfig::named("r");
    (dir, store, broker, q)
}

/// Job `i` of queue `r`, due in `delay_ms`.
pub fn job(i: usize, delay_ms: i64) -> NewJob {
    job_of("r", i, delay_ms)
}

/// Job `i` of `queue`, due in `delay_ms`.
pub fn job_of(queue: &str, i: usize, delay_ms: i64) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        payload: json!({"i": i}),
        key: Some(format!("k{i}")),
        headers: Default::default(),
        max_attempts: 3,
        available_at: now_ms() + delay_ms,
        traceparent: None,
    }
}

pub async fn enqueue(store: &Arc<dyn Store>, n: usize, delay_ms: i64) -> Vec<JobId> {
    enqueue_on(store, "r", n, delay_ms).await
}

/// `n` jobs of `queue`, due in `delay_ms`, in one request; their ids.
pub async fn enqueue_on(
    store: &Arc<dyn Store>,
    queue: &str,
    n: usize,
    delay_ms: i64,
) -> Vec<JobId> {
    let jobs: Vec<NewJob> = (0..n).map(|i| job_of(queue, i, delay_ms)).collect();
    let ids = jobs.iter().map(|j| j.id).collect();
    store
        .enqueue(vec![EnqueueRequest {
            jobs,
            idempotency: None,
        }])
        .await
        .remove(0)
        .unwrap();
    ids
}

/// The job id and attempt each delivery carries, sorted.
pub fn ids_and_attempts(deliveries: &[Delivery]) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| {
            (
                d.attributes["id"].clone(),
                d.attributes["sluiceattempt"].clone(),
            )
        })
        .collect();
    got.sort();
    got
}

/// Each of `ids` with attempt `attempt`, sorted as [`ids_and_attempts`].
pub fn each_with_attempt(ids: &[JobId], attempt: u32) -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = ids
        .iter()
        .map(|i| (i.to_string(), attempt.to_string()))
        .collect();
    want.sort();
    want
}

/// Receives (and acks) until `n` deliveries arrived or `limit` passed.
pub async fn drain(
    broker: &Arc<dyn Broker>,
    topic: &str,
    n: usize,
    limit: Duration,
) -> Vec<Delivery> {
    drain_as(broker, "test", topic, n, limit).await
}

/// [`drain`] as consumer group `group`.
pub async fn drain_as(
    broker: &Arc<dyn Broker>,
    group: &str,
    topic: &str,
    n: usize,
    limit: Duration,
) -> Vec<Delivery> {
    let mut sub = broker
        .subscribe(
            topic,
            SubscribeOptions {
                group: group.into(),
                max_in_flight: 100_000,
            },
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while got.len() < n && Instant::now() < deadline {
        let batch = sub.recv(1000, Duration::from_millis(100)).await.unwrap();
        let tokens: Vec<_> = batch.iter().map(|d| d.token).collect();
        sub.ack(&tokens).await.unwrap();
        got.extend(batch);
    }
    got
}

/// Relay tuning for tests: `poll` between rounds, quick retries.
pub fn config(poll: Duration) -> RelayConfig {
    RelayConfig {
        poll_interval: poll,
        retry_delay: Duration::from_millis(100),
        ..Default::default()
    }
}

/// Waits (`limit` at most) until the relay marked every job published.
pub async fn published(store: &Arc<dyn Store>, ids: &[JobId], limit: Duration) {
    let deadline = Instant::now() + limit;
    for id in ids {
        while store.get_job(*id).await.unwrap().status != JobStatus::Published {
            assert!(Instant::now() < deadline, "relay did not publish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a relay of `q` from `store` to `broker` (until `shutdown`) after
/// declaring the queue's topics, and enqueues `n` jobs of `q`; their ids,
/// once the relay published them (`limit` at most).
pub async fn relay_published(
    store: &Arc<dyn Store>,
    broker: &Arc<dyn Broker>,
    q: &QueueConfig,
    n: usize,
    shutdown: &CancellationToken,
    limit: Duration,
) -> Vec<JobId> {
    broker.declare(&[q.topic(), q.dlq_topic()]).await.unwrap();
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        std::slice::from_ref(q),
        config(Duration::from_millis(50)),
    )
    .unwrap();
    tokio::spawn(relay.run(shutdown.child_token()));
    let ids = enqueue_on(store, &q.name, n, 0).await;
    published(store, &ids, limit).await;
    ids
}
