//! The relay on the real SQLite store and embedded broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_broker::{Broker, BrokerError, Confirms, OutgoingMessage, Publisher};
use sluice_core::{now_ms, JobId, JobStatus, QueueConfig};
use sluice_relay::{Relay, RelayConfig};
use sluice_store::{
    Completion, EnqueueRequest, NewJob, Outcome, StartOutcome, StartRequest, Store,
};
use tokio_util::sync::CancellationToken;

mod common;

use common::{config, drain, enqueue, rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_as_cloudevents_and_marks_published() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let ids = enqueue(&store, 3, 0).await;
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        std::slice::from_ref(&q),
        config(Duration::from_secs(1)),
    )
    .unwrap();
    assert_eq!(relay.run_once().await.unwrap(), 3);
    assert_eq!(
        relay.run_once().await.unwrap(),
        0,
        "published rows are not claimed again"
    );
    for id in &ids {
        assert_eq!(
            store.get_job(*id).await.unwrap().status,
            JobStatus::Published
        );
    }
    let got = drain(&broker, &q.topic(), 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    let d = got
        .iter()
        .find(|d| d.attributes["id"] == ids[0].to_string())
        .unwrap();
    assert_eq!(d.attributes["specversion"], "1.0");
    assert_eq!(d.attributes["sluicequeue"], "r");
    assert_eq!(d.attributes["sluiceattempt"], "1");
    assert_eq!(d.key.as_deref(), Some("k0"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&d.body).unwrap(),
        json!({"i": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakes_at_once_on_commit_and_waits_for_delayed_rows() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    // a long poll interval: only the in-process wake-up can explain a fast publish
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        std::slice::from_ref(&q),
        config(Duration::from_secs(30)),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    enqueue(&store, 1, 0).await;
    let got = drain(&broker, &q.topic(), 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "relay did not wake on commit: {:?}",
        t0.elapsed()
    );

    let delayed = enqueue(&store, 1, 700).await;
    let t1 = Instant::now();
    let got = drain(&broker, &q.topic(), 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["id"], delayed[0].to_string());
    assert!(
        t1.elapsed() >= Duration::from_millis(650),
        "delayed row published early: {:?}",
        t1.elapsed()
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_each_row_once() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let ids = enqueue(&store, 2000, 0).await;
    let stop = CancellationToken::new();
    let mut cfg = config(Duration::from_millis(50));
    cfg.batch_size = 100;
    let tasks = spawn_relays(2, &store, broker.publisher(), &q, &cfg, &stop);
    let got = drain(&broker, &q.topic(), 2000, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = drain(&broker, &q.topic(), 1, Duration::from_millis(300)).await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for d in got.iter().chain(&late) {
        *counts.entry(d.attributes["id"].clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), ids.len(), "some rows were never published");
    let dups: usize = counts.values().map(|c| c - 1).sum();
    assert_eq!(dups, 0, "rows published twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_publish_is_retried_not_lost() {
    let (_d, store, broker, q) = rig().await;
    let ids = enqueue(&store, 2, 0).await;
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        std::slice::from_ref(&q),
        config(Duration::from_secs(1)),
    )
    .unwrap();
    // the topic does not exist yet: the broker rejects, the rows go back
    assert_eq!(relay.run_once().await.unwrap(), 2);
    assert_eq!(
        store.get_job(ids[0]).await.unwrap().status,
        JobStatus::Pending
    );
    assert_eq!(
        relay.run_once().await.unwrap(),
        0,
        "released rows wait for their retry delay"
    );
    broker.declare(&[q.topic()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(relay.run_once().await.unwrap(), 2);
    assert_eq!(
        drain(&broker, &q.topic(), 2, Duration::from_secs(5))
            .await
            .len(),
        2
    );
}

/// Starts attempt 1 of `id` as a worker would and finishes it dead.
async fn kill(store: &Arc<dyn Store>, id: JobId, error: &str) {
    let started = store
        .start_attempts(
            vec![StartRequest {
                job_id: id,
                attempt: Some(1),
                create: None,
                lease: None,
            }],
            Duration::from_secs(30),
        )
        .await
        .remove(0)
        .unwrap();
    let StartOutcome::Started(a) = started else {
        panic!("attempt of {id} did not start: {started:?}");
    };
    store
        .finish_attempts(vec![Completion {
            job_id: id,
            lease: a.lease,
            attempt: a.attempt,
            started_at: now_ms(),
            outcome: Outcome::Dead {
                error: error.into(),
            },
        }])
        .await
        .remove(0)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_to_the_dlq_topic_and_the_job_stays_dead() {
    let (_d, store, broker, q) = rig().await;
    let mut named = QueueConfig::named("n");
    named.topic = Some("custom.n".into());
    broker
        .declare(&[
            q.topic(),
            q.dlq_topic(),
            "custom.n".into(),
            "custom.n.dlq".into(),
        ])
        .await
        .unwrap();
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        &[q.clone(), named],
        config(Duration::from_secs(1)),
    )
    .unwrap();
    let ids = enqueue(&store, 2, 0).await;
    let mut other = NewJob {
        id: JobId::new(),
        queue: "n".into(),
        payload: json!({"named": true}),
        key: None,
        headers: Default::default(),
        max_attempts: 3,
        available_at: now_ms(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    };
    other.headers.insert("x".into(), "y".into());
    store
        .enqueue(vec![EnqueueRequest {
            jobs: vec![other.clone()],
            idempotency: None,
        }])
        .await
        .remove(0)
        .unwrap();
    assert_eq!(relay.run_once().await.unwrap(), 3);
    assert_eq!(
        drain(&broker, &q.topic(), 2, Duration::from_secs(5))
            .await
            .len(),
        2
    );
    assert_eq!(
        drain(&broker, "custom.n", 1, Duration::from_secs(5))
            .await
            .len(),
        1
    );

    kill(&store, ids[0], "HTTP 404: permanent").await;
    kill(&store, other.id, "schema: missing field").await;
    assert_eq!(
        relay.run_once().await.unwrap(),
        2,
        "one dead-letter row each"
    );
    assert_eq!(relay.run_once().await.unwrap(), 0, "published once");

    let got = drain(&broker, &q.dlq_topic(), 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.attributes["id"], ids[0].to_string());
    assert_eq!(d.attributes["type"], "sluice.job.dead");
    assert_eq!(d.attributes["sluiceerror"], "HTTP 404: permanent");
    assert_eq!(d.attributes["sluicequeue"], "r");
    assert_eq!(d.attributes["sluiceattempt"], "1");
    assert_eq!(d.attributes["specversion"], "1.0");
    assert_eq!(d.key.as_deref(), Some("k0"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&d.body).unwrap(),
        json!({"i": 0})
    );
    let got = drain(&broker, "custom.n.dlq", 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["id"], other.id.to_string());
    assert_eq!(got[0].attributes["sluiceerror"], "schema: missing field");
    assert_eq!(
        got[0].attributes["traceparent"],
        other.traceparent.clone().unwrap()
    );
    // Nothing else reached the job topics: workers never see a dead letter.
    assert!(drain(&broker, &q.topic(), 1, Duration::from_millis(300))
        .await
        .is_empty());
    assert!(drain(&broker, "custom.n", 1, Duration::from_millis(300))
        .await
        .is_empty());

    for id in [ids[0], other.id] {
        let job = store.get_job(id).await.unwrap();
        assert_eq!((job.status, job.attempts), (JobStatus::Dead, 1), "{job:?}");
    }
    assert_eq!(
        store.get_job(ids[1]).await.unwrap().status,
        JobStatus::Published
    );
    assert_eq!(
        store.count_dead_letters(&Default::default()).await.unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_unknown_queues_go_to_their_default_dlq_topic() {
    let (_d, store, broker, q) = rig().await;
    // "r" is not configured: sluice.r and sluice.r.dlq by default
    broker.declare(&[q.topic(), q.dlq_topic()]).await.unwrap();
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        &[],
        config(Duration::from_secs(1)),
    )
    .unwrap();
    let ids = enqueue(&store, 1, 0).await;
    assert_eq!(relay.run_once().await.unwrap(), 1);
    kill(&store, ids[0], "gave up").await;
    assert_eq!(relay.run_once().await.unwrap(), 1);
    let got = drain(&broker, "sluice.r.dlq", 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["id"], ids[0].to_string());
    assert_eq!(got[0].attributes["sluiceerror"], "gave up");
    assert_eq!(store.get_job(ids[0]).await.unwrap().status, JobStatus::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_dlq_topic_keeps_the_dead_letter_for_later() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let relay = Relay::new(
        store.clone(),
        broker.publisher(),
        std::slice::from_ref(&q),
        config(Duration::from_secs(1)),
    )
    .unwrap();
    let ids = enqueue(&store, 1, 0).await;
    assert_eq!(relay.run_once().await.unwrap(), 1);
    kill(&store, ids[0], "boom").await;
    // the dlq topic does not exist yet: the broker rejects, the row goes back
    assert_eq!(relay.run_once().await.unwrap(), 1);
    assert_eq!(store.get_job(ids[0]).await.unwrap().status, JobStatus::Dead);
    broker.declare(&[q.dlq_topic()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(relay.run_once().await.unwrap(), 1);
    let got = drain(&broker, &q.dlq_topic(), 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["sluiceerror"], "boom");
    assert_eq!(store.get_job(ids[0]).await.unwrap().status, JobStatus::Dead);
}

#[test]
fn nonsense_config_is_refused() {
    let bad = RelayConfig {
        batch_size: 0,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    let bad = RelayConfig {
        lease: Duration::from_millis(10),
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}

/// A publisher that takes `delay` per batch and records every published job
/// id in order and the most batches in flight at once.
struct SlowPublisher {
    inner: Arc<dyn Publisher>,
    delay: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    order: Mutex<Vec<JobId>>,
}

impl SlowPublisher {
    fn new(inner: Arc<dyn Publisher>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            delay,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            order: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait::async_trait]
impl Publisher for SlowPublisher {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.order
            .lock()
            .unwrap()
            .extend(messages.iter().map(|m| m.job_id));
        tokio::time::sleep(self.delay).await;
        let res = self.inner.publish(messages).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        res
    }
}

/// Runs a relay over `publisher` in batches of 10 until every job of `ids`
/// is delivered and marked published (the last batch before the relay
/// idles), then stops it.
async fn relay_in_batches_of_ten(
    store: &Arc<dyn Store>,
    broker: &Arc<dyn Broker>,
    q: &QueueConfig,
    ids: &[JobId],
    publisher: Arc<dyn Publisher>,
) {
    let mut cfg = config(Duration::from_millis(50));
    cfg.batch_size = 10;
    let relay = Relay::new(store.clone(), publisher, std::slice::from_ref(q), cfg).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    let got = drain(broker, &q.topic(), ids.len(), Duration::from_secs(30)).await;
    assert_eq!(got.len(), ids.len());
    wait_marked(store, ids).await;
    stop.cancel();
    task.await.unwrap();
}

/// Waits (at most 10 s) until every job of `ids` reads `published`.
async fn wait_marked(store: &Arc<dyn Store>, ids: &[JobId]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in ids {
        while store.get_job(*id).await.unwrap().status != JobStatus::Published {
            assert!(Instant::now() < deadline, "a batch was never marked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts `n` relays over one store and publisher until `stop`.
fn spawn_relays(
    n: usize,
    store: &Arc<dyn Store>,
    publisher: Arc<dyn Publisher>,
    q: &QueueConfig,
    cfg: &RelayConfig,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let relay = Relay::new(
                store.clone(),
                publisher.clone(),
                std::slice::from_ref(q),
                cfg.clone(),
            )
            .unwrap();
            tokio::spawn(relay.run(stop.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_relay_publishes_batches_one_at_a_time_in_claim_order() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let ids = enqueue(&store, 95, 0).await;
    let publisher = SlowPublisher::new(broker.publisher(), Duration::from_millis(30));
    relay_in_batches_of_ten(&store, &broker, &q, &ids, publisher.clone()).await;
    assert_eq!(
        publisher.peak.load(Ordering::SeqCst),
        1,
        "batches published concurrently"
    );
    assert_eq!(
        *publisher.order.lock().unwrap(),
        ids,
        "published out of claim order"
    );
    for id in &ids {
        assert_eq!(
            store.get_job(*id).await.unwrap().status,
            JobStatus::Published
        );
    }
}

/// A publisher whose `send` returns at once and whose confirms take `delay`
/// (the messages reach the broker when confirmed); records every sent job
/// id in order and the most batches sent but not yet confirmed.
struct ConfirmingPublisher {
    inner: Arc<dyn Publisher>,
    delay: Duration,
    unconfirmed: Arc<AtomicUsize>,
    peak: AtomicUsize,
    order: Mutex<Vec<JobId>>,
}

impl ConfirmingPublisher {
    fn new(inner: Arc<dyn Publisher>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            delay,
            unconfirmed: Arc::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
            order: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait::async_trait]
impl Publisher for ConfirmingPublisher {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>> {
        self.send(messages).await.await
    }

    async fn send(&self, messages: Vec<OutgoingMessage>) -> Confirms {
        let now = self.unconfirmed.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.order
            .lock()
            .unwrap()
            .extend(messages.iter().map(|m| m.job_id));
        let (inner, delay, unconfirmed) =
            (self.inner.clone(), self.delay, self.unconfirmed.clone());
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let res = inner.publish(messages).await;
            unconfirmed.fetch_sub(1, Ordering::SeqCst);
            res
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_is_sent_while_the_broker_confirms_one_in_claim_order() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let ids = enqueue(&store, 95, 0).await;
    let publisher = ConfirmingPublisher::new(broker.publisher(), Duration::from_millis(50));
    relay_in_batches_of_ten(&store, &broker, &q, &ids, publisher.clone()).await;
    assert_eq!(
        publisher.peak.load(Ordering::SeqCst),
        2,
        "one batch sent while the one before waits for confirms, never more"
    );
    assert_eq!(
        *publisher.order.lock().unwrap(),
        ids,
        "sent out of claim order"
    );
    assert_eq!(publisher.unconfirmed.load(Ordering::SeqCst), 0);
}

/// A publisher whose broker refuses for good every message whose body holds
/// `"big"` (as Kafka refuses one over its size limit), counting them.
struct Refusing {
    inner: Arc<dyn Publisher>,
    refused: Mutex<Vec<(String, JobId)>>,
}

#[async_trait::async_trait]
impl Publisher for Refusing {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>> {
        let big = |m: &OutgoingMessage| String::from_utf8_lossy(&m.body).contains("\"big\"");
        let (refused, passed): (Vec<_>, Vec<_>) =
            messages.iter().enumerate().partition(|(_, m)| big(m));
        let mut passed_results = self
            .inner
            .publish(passed.iter().map(|(_, m)| (*m).clone()).collect())
            .await
            .into_iter();
        let mut results: Vec<Result<(), BrokerError>> = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            if refused.iter().any(|(j, _)| *j == i) {
                self.refused
                    .lock()
                    .unwrap()
                    .push((m.topic.clone(), m.job_id));
                results.push(Err(BrokerError::Refused("message too large".into())));
            } else {
                results.push(passed_results.next().unwrap());
            }
        }
        results
    }
}

/// A job whose message the broker refuses for good is dead-lettered at once
/// with the reason, its dead letter kept in the store even when its message
/// is refused too; nothing is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_for_good_dead_letters_its_job_once() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic(), q.dlq_topic()]).await.unwrap();
    let mut big = common::job(0, 0);
    big.payload = json!({"big": "x".repeat(64)});
    let small = common::job(1, 0);
    let (big_id, small_id) = (big.id, small.id);
    store
        .enqueue(vec![EnqueueRequest {
            jobs: vec![big, small],
            idempotency: None,
        }])
        .await
        .remove(0)
        .unwrap();
    let refusing = Arc::new(Refusing {
        inner: broker.publisher(),
        refused: Mutex::new(Vec::new()),
    });
    let relay = Relay::new(
        store.clone(),
        refusing.clone(),
        std::slice::from_ref(&q),
        config(Duration::from_secs(1)),
    )
    .unwrap();
    assert_eq!(relay.run_once().await.unwrap(), 2);
    let job = store.get_job(big_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("message too large"),
        "{job:?}"
    );
    let letter = store.get_dead_letter(big_id).await.unwrap().dead_letter;
    assert!(letter.last_error.contains("message too large"));
    assert_eq!(
        store.get_job(small_id).await.unwrap().status,
        JobStatus::Published
    );
    // the dead letter's own message is refused too: it stays in the store
    assert_eq!(relay.run_once().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(relay.run_once().await.unwrap(), 0, "refused rows come back");
    assert_eq!(
        *refusing.refused.lock().unwrap(),
        vec![(q.topic(), big_id), (q.dlq_topic(), big_id)]
    );
    assert_eq!(store.get_job(big_id).await.unwrap().status, JobStatus::Dead);
    assert!(store.get_dead_letter(big_id).await.is_ok());
}

/// A relay stopped while full batches come releases the batch it claimed
/// ahead and never sent: every row not yet published can be claimed at
/// once by the next relay, none waits out a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_relay_releases_the_batch_it_claimed_ahead() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let ids = enqueue(&store, 100, 0).await;
    let publisher = SlowPublisher::new(broker.publisher(), Duration::from_millis(100));
    let mut cfg = config(Duration::from_millis(50));
    cfg.batch_size = 10;
    let relay = Relay::new(
        store.clone(),
        publisher.clone(),
        std::slice::from_ref(&q),
        cfg,
    )
    .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.order.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "the relay published nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the relay did not stop")
        .unwrap();
    let mut unpublished = 0;
    for id in &ids {
        if store.get_job(*id).await.unwrap().status == JobStatus::Pending {
            unpublished += 1;
        }
    }
    assert!(
        unpublished > 0,
        "the relay published everything before it stopped"
    );
    let claim = store
        .claim_outbox(1000, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claim.rows.len(), unpublished, "rows left leased");
}

/// Two relays whose broker takes longer to confirm a batch than their
/// claims' lease: each relay extends the leases of the batches it is still
/// sending or waiting to hear about, so the other never takes their rows
/// and no job is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_keep_their_claims_while_the_broker_is_slower_than_the_lease() {
    let (_d, store, broker, q) = rig().await;
    broker.declare(&[q.topic()]).await.unwrap();
    let ids = enqueue(&store, 60, 0).await;
    let publisher = ConfirmingPublisher::new(broker.publisher(), Duration::from_millis(3000));
    let mut cfg = config(Duration::from_millis(50));
    cfg.batch_size = 10;
    cfg.lease = Duration::from_secs(2);
    let stop = CancellationToken::new();
    let tasks = spawn_relays(2, &store, publisher.clone(), &q, &cfg, &stop);
    let got = drain(&broker, &q.topic(), ids.len(), Duration::from_secs(30)).await;
    assert_eq!(got.len(), ids.len());
    wait_marked(&store, &ids).await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let mut counts: HashMap<JobId, usize> = HashMap::new();
    for id in publisher.order.lock().unwrap().iter() {
        *counts.entry(*id).or_default() += 1;
    }
    assert_eq!(counts.len(), ids.len());
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}
