//! Redrive on a queue that never reads as caught up, on Kafka (the broker at
//! `SLUICE_TEST_KAFKA_BROKERS`) and the real SQLite store. The broker is
//! wrapped so that its consumer lag always reads 1, as on a queue with
//! steady traffic, where a lag of exactly 0 may never be seen; everything
//! else, the marks of the topic's end and the group's committed offsets
//! included, is Kafka's own. A job whose message the workers' group read
//! without starting it (as if the broker had lost it) is published again
//! once the group has passed a mark taken after it was listed; jobs whose
//! messages still wait on the broker are left alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_broker::conformance::service_from_env;
use sluice_broker::forward::Forward;
use sluice_broker::{Broker, BrokerError, ConsumerMark};
use sluice_core::{JobId, QueueConfig};
use sluice_relay::{Redrive, RedriveConfig};
use sluice_store::Store;
use sluice_tests::brokers::unique_topic;
use sluice_tests::kafka::{kafka_url, KafkaTopics};
use tokio_util::sync::CancellationToken;

mod common;

use common::{drain_as, each_with_attempt, ids_and_attempts, relay_published};

/// Kafka, with a consumer lag that never reads 0 (or, when `swing`, reads 0
/// and 1 by turns, so that the read after a listing is never 0); counts the
/// questions whether the group passed a mark.
struct Busy {
    kafka: Arc<dyn Broker>,
    asked: Arc<AtomicUsize>,
    swing: bool,
    lag_reads: AtomicUsize,
}

#[async_trait]
impl Forward for Busy {
    fn inner(&self) -> &dyn Broker {
        &*self.kafka
    }
    async fn consumer_lag(&self, _topic: &str, _group: &str) -> Result<Option<u64>, BrokerError> {
        let read = self.lag_reads.fetch_add(1, Ordering::Relaxed);
        Ok(Some(u64::from(!self.swing || read % 2 == 1)))
    }
    async fn consumer_passed(
        &self,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.kafka.consumer_passed(topic, group, mark).await
    }
}

/// `n` jobs of a queue of its own, published to Kafka by a running relay.
struct Published {
    _dir: tempfile::TempDir,
    _topics: KafkaTopics,
    store: Arc<dyn Store>,
    kafka: Arc<dyn Broker>,
    q: QueueConfig,
    ids: Vec<JobId>,
    shutdown: CancellationToken,
}

async fn published_jobs(brokers: &str, n: usize) -> Published {
    let dir = tempfile::tempdir().unwrap();
    let store = sluice_store::open(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    let topic = unique_topic("redrive");
    let q = QueueConfig::named(topic.trim_start_matches("sluice."));
    let topics = KafkaTopics::of_queue(brokers, &q.topic());
    let kafka = sluice_broker::open(&kafka_url(brokers, 2), dir.path())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let ids = relay_published(&store, &kafka, &q, n, &shutdown, Duration::from_secs(20)).await;
    Published {
        _dir: dir,
        _topics: topics,
        store,
        kafka,
        q,
        ids,
        shutdown,
    }
}

/// The group's lag on the real broker once it reads `want`, 20 s at most.
async fn lag_reaches(kafka: &Arc<dyn Broker>, q: &QueueConfig, want: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lag = kafka
            .consumer_lag(&q.topic(), &q.worker_group())
            .await
            .unwrap();
        if lag == Some(want) || Instant::now() >= deadline {
            return lag;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn redrive(
    store: &Arc<dyn Store>,
    kafka: &Arc<dyn Broker>,
    q: &QueueConfig,
    asked: &Arc<AtomicUsize>,
    swing: bool,
) -> Redrive {
    Redrive::new(
        store.clone(),
        Arc::new(Busy {
            kafka: kafka.clone(),
            asked: asked.clone(),
            swing,
            lag_reads: AtomicUsize::new(0),
        }),
        std::slice::from_ref(q),
        RedriveConfig {
            after: Duration::from_millis(300),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_lost_on_a_busy_queue_are_published_again_once_the_group_passed_them() {
    lost_jobs_are_published_again(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_lost_on_a_queue_whose_lag_swings_are_published_again() {
    lost_jobs_are_published_again(true).await;
}

async fn lost_jobs_are_published_again(swing: bool) {
    let Some(brokers) = service_from_env("SLUICE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Published {
        _dir,
        _topics,
        store,
        kafka,
        q,
        ids,
        shutdown,
    } = published_jobs(&brokers, 2).await;
    let (topic, group) = (q.topic(), q.worker_group());
    // the workers' group reads both without starting them: the broker
    // "lost" them, as far as the store can tell
    let lost = drain_as(&kafka, &group, &topic, 2, Duration::from_secs(20)).await;
    assert_eq!(lost.len(), 2);
    assert_eq!(
        lag_reaches(&kafka, &q, 0).await,
        Some(0),
        "offsets committed"
    );
    let asked = Arc::new(AtomicUsize::new(0));
    tokio::spawn(redrive(&store, &kafka, &q, &asked, swing).run(shutdown.child_token()));
    let again = drain_as(&kafka, &group, &topic, 2, Duration::from_secs(20)).await;
    shutdown.cancel();
    assert_eq!(
        ids_and_attempts(&again),
        each_with_attempt(&ids, 1),
        "each lost job once more, same id and attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_on_a_busy_queue_are_left_alone() {
    let Some(brokers) = service_from_env("SLUICE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Published {
        _dir,
        _topics,
        store,
        kafka,
        q,
        shutdown,
        ..
    } = published_jobs(&brokers, 3).await;
    // nobody consumed them (their lag is not read: tansu 0.6 reports a
    // partition's high watermark short after a batch of several records)
    let asked = Arc::new(AtomicUsize::new(0));
    tokio::spawn(redrive(&store, &kafka, &q, &asked, false).run(shutdown.child_token()));
    // the jobs are listed at the first check (after 1 s), and the group's
    // positions compared with the mark at each later one
    tokio::time::sleep(Duration::from_millis(3500)).await;
    shutdown.cancel();
    assert!(
        asked.load(Ordering::Relaxed) > 0,
        "the jobs never waited for a mark"
    );
    let got = drain_as(
        &kafka,
        &q.worker_group(),
        &q.topic(),
        4,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got.len(), 3, "nothing published again");
}
