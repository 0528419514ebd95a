//! Redrive on the real SQLite store (and on PostgreSQL, where publishing
//! leaves the job's row alone) and embedded broker: a job whose message
//! the broker lost (here: consumed by the workers' group without any attempt
//! being started, as if it had never been there) is published again, with the
//! same id and attempt, once the group has caught up; a job that is still
//! waiting on the broker is left alone.

use std::sync::Arc;
use std::time::Duration;

use sluice_broker::Broker;
use sluice_core::{JobId, QueueConfig};
use sluice_relay::{Redrive, RedriveConfig};
use sluice_store::Store;
use tokio_util::sync::CancellationToken;

mod common;

use common::{drain_as, each_with_attempt, ids_and_attempts, published, relay_published, rig_on};
use sluice_tests::pg::{server_url, TempDb};

/// Longest wait for the relay to publish the test's jobs.
const PUBLISH_LIMIT: Duration = Duration::from_secs(10);

/// A running relay and `n` jobs it published.
struct Published {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    q: QueueConfig,
    ids: Vec<JobId>,
    shutdown: CancellationToken,
}

/// `n` jobs published on the store at `store_url` (SQLite when `None`).
async fn published_jobs(n: usize, store_url: Option<&str>) -> Published {
    let dir = tempfile::tempdir().unwrap();
    let url = match store_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}/s.db", dir.path().display()),
    };
    let (_dir, store, broker, q) = rig_on(dir, &url).await;
    let shutdown = CancellationToken::new();
    let ids = relay_published(&store, &broker, &q, n, &shutdown, PUBLISH_LIMIT).await;
    Published {
        _dir,
        store,
        broker,
        q,
        ids,
        shutdown,
    }
}

async fn lag(broker: &Arc<dyn Broker>, topic: &str, group: &str) -> Option<u64> {
    broker.consumer_lag(topic, group).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_the_broker_lost_are_published_again_once_the_group_caught_up() {
    lost_jobs_are_published_again(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_jobs_the_broker_lost_are_published_again_once_the_group_caught_up() {
    let Some(server) = server_url() else { return };
    let db = TempDb::create(&server).await.unwrap();
    lost_jobs_are_published_again(Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_on_the_broker_are_left_alone() {
    waiting_jobs_are_left_alone(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_jobs_waiting_on_the_broker_are_left_alone() {
    let Some(server) = server_url() else { return };
    let db = TempDb::create(&server).await.unwrap();
    waiting_jobs_are_left_alone(Some(&db.url)).await;
}

async fn lost_jobs_are_published_again(store_url: Option<&str>) {
    let Published {
        _dir,
        store,
        broker,
        q,
        ids,
        shutdown,
    } = published_jobs(2, store_url).await;
    let (topic, group) = (q.topic(), q.worker_group());
    // the workers' group reads both without starting them: the broker "lost"
    // them, as far as the store can tell
    let lost = drain_as(&broker, &group, &topic, 2, Duration::from_secs(10)).await;
    assert_eq!(lost.len(), 2);
    assert_eq!(lag(&broker, &topic, &group).await, Some(0));

    let redrive = Redrive::new(
        store.clone(),
        broker.clone(),
        std::slice::from_ref(&q),
        RedriveConfig {
            after: Duration::from_millis(300),
        },
    );
    tokio::spawn(redrive.run(shutdown.child_token()));
    let again = drain_as(&broker, &group, &topic, 2, Duration::from_secs(15)).await;
    shutdown.cancel();
    assert_eq!(
        ids_and_attempts(&again),
        each_with_attempt(&ids, 1),
        "each lost job once more, same id and attempt"
    );
    published(&store, &ids, PUBLISH_LIMIT).await;
}

async fn waiting_jobs_are_left_alone(store_url: Option<&str>) {
    let Published {
        _dir,
        store,
        broker,
        q,
        shutdown,
        ..
    } = published_jobs(3, store_url).await;
    let (topic, group) = (q.topic(), q.worker_group());
    // nobody consumed them: the group lags by 3
    assert_eq!(lag(&broker, &topic, &group).await, Some(3));
    let redrive = Redrive::new(
        store.clone(),
        broker.clone(),
        std::slice::from_ref(&q),
        RedriveConfig {
            after: Duration::from_millis(200),
        },
    );
    tokio::spawn(redrive.run(shutdown.child_token()));
    // several checks pass (every second at least)
    tokio::time::sleep(Duration::from_millis(2500)).await;
    shutdown.cancel();
    assert_eq!(
        lag(&broker, &topic, &group).await,
        Some(3),
        "nothing published again"
    );
    let got = drain_as(&broker, &group, &topic, 4, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 3);
}
