#![cfg(feature = "kafka")]
//! The broker conformance suite on Kafka (`SLUICE_TEST_KAFKA_BROKERS`, skipped
//! when unset unless `SLUICE_TEST_REQUIRE_BACKENDS=1`), plus what only the
//! Kafka backend promises: contiguous commits per partition, nothing
//! committed for a revoked partition, no message skipped while partitions are
//! paused, topics created with their partition count and verified, CloudEvents
//! binary-mode headers. Every topic a test declares is deleted after it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_broker::conformance::{
    collect, declared, id_of as id, message, publish_ok, service_from_env, subscribe, unique,
    Fixture, Settings,
};
use sluice_broker::kafka::KafkaBroker;
use sluice_broker::recording::{Created, Recording};
use sluice_broker::{AckToken, Broker, BrokerError, Delivery, SubscribeOptions};
use tokio::time::Instant;

fn brokers() -> Option<String> {
    service_from_env("SLUICE_TEST_KAFKA_BROKERS")
}

/// Deletes the topics it lists when dropped.
struct Topics {
    brokers: String,
    created: Arc<Mutex<Created>>,
}

impl Drop for Topics {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.created.lock().unwrap().topics);
        if names.is_empty() {
            return;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("admin client");
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        if let Err(e) = futures::executor::block_on(admin.delete_topics(&names, &options)) {
            eprintln!("could not delete topics {names:?}: {e}");
        }
    }
}

/// A broker whose declared topics are deleted when the returned guard drops.
fn open(options: &str) -> Option<(Arc<dyn Broker>, Topics)> {
    let brokers = brokers()?;
    let url = format!("kafka://{brokers}?replication_factor=1{options}");
    let broker = Recording::new(Arc::new(KafkaBroker::open(&url).expect("open")));
    let guard = Topics {
        brokers,
        created: broker.created.clone(),
    };
    Some((Arc::new(broker), guard))
}

async fn fresh() -> Option<Fixture> {
    let (broker, topics) = open("&partitions=2")?;
    Some(Fixture::new(broker).keeping(topics))
}

fn settings() -> Settings {
    Settings {
        visibility_timeout: None,
        counts_redeliveries: false,
        patience: Duration::from_secs(15),
    }
}

mod conformance {
    sluice_broker::broker_conformance!(super::fresh(), super::settings());
}

/// Publishes `n` messages, all confirmed; their ids in order.
async fn publish(broker: &Arc<dyn Broker>, topic: &str, n: usize) -> Vec<String> {
    publish_ok(broker, (0..n).map(|i| message(topic, i)).collect()).await
}

fn tokens(ds: &[Delivery]) -> Vec<AckToken> {
    ds.iter().map(|d| d.token).collect()
}

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_never_passes_a_delivery_still_running() {
    let Some((broker, _topics)) = open("&partitions=1") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let topic = declared(&broker, "contiguous").await;
        let group = unique("g");
        let sent = publish(&broker, &topic, 10).await;
        let mut a = subscribe(&broker, &topic, &group, 10).await;
        let got = collect(&mut a, 10, Duration::from_secs(15)).await;
        assert_eq!(got.iter().map(id).collect::<Vec<_>>(), sent, "in order");
        // Everything but the third is done; the third is still running.
        let mut done = tokens(&got);
        done.remove(2);
        a.ack(&done).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(a); // the holder dies with the third un-acked

        let mut b = subscribe(&broker, &topic, &group, 10).await;
        let again = collect(&mut b, 8, Duration::from_secs(20)).await;
        let ids: Vec<String> = again.iter().map(id).collect();
        assert_eq!(
            ids,
            sent[2..].to_vec(),
            "resumes at the running delivery, not past it"
        );
        b.ack(&tokens(&again)).await.unwrap();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_of_a_revoked_partition_commit_nothing() {
    let Some((broker, _topics)) = open("&partitions=1") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let topic = declared(&broker, "revoked").await;
        let group = unique("g");
        let sent: BTreeSet<String> = publish(&broker, &topic, 5).await.into_iter().collect();
        let mut a = subscribe(&broker, &topic, &group, 10).await;
        let got = collect(&mut a, 5, Duration::from_secs(15)).await;
        assert_eq!(got.len(), 5);
        // A second member joins: the group rebalances and a's partition is
        // revoked (maybe assigned again, in a new generation).
        let b = subscribe(&broker, &topic, &group, 10).await;
        a.ack(&tokens(&got)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(a);
        drop(b);
        let mut c = subscribe(&broker, &topic, &group, 10).await;
        let again = collect(&mut c, 5, Duration::from_secs(30)).await;
        assert_eq!(
            again.iter().map(id).collect::<BTreeSet<_>>(),
            sent,
            "stale acks committed offsets"
        );
        c.ack(&tokens(&again)).await.unwrap();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_partitions_skip_nothing() {
    let Some((broker, _topics)) = open("&partitions=3") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let topic = declared(&broker, "paused").await;
        let mut sub = subscribe(&broker, &topic, &unique("g"), 4).await;
        let mut sent = BTreeSet::new();
        for _ in 0..3 {
            sent.extend(publish(&broker, &topic, 200).await);
        }
        let mut seen = BTreeMap::<String, usize>::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < sent.len() && Instant::now() < deadline {
            let got = sub.recv(100, Duration::from_millis(200)).await.unwrap();
            assert!(got.len() <= 4, "max_in_flight exceeded");
            // Slow consumer: the buffer fills; and now and then it stops
            // taking for longer than a full buffer is held, so the
            // partitions pause (and resume).
            let pause = if seen.len() % 150 < got.len() { 700 } else { 2 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            for d in &got {
                *seen.entry(id(d)).or_default() += 1;
            }
            sub.ack(&tokens(&got)).await.unwrap();
        }
        let got: BTreeSet<String> = seen.keys().cloned().collect();
        let missing = sent.difference(&got).count();
        assert_eq!(missing, 0, "{missing} of {} messages skipped", sent.len());
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "delivered twice: {twice:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_get_their_partition_count_and_fewer_is_a_topology_error() {
    let Some((broker, _topics)) = open("&partitions=2") else {
        return;
    };
    let topic = declared(&broker, "layout").await;
    let counts = partition_counts(&topic).await;
    assert_eq!(counts, Some(2));
    let (bigger, _more) = open("&partitions=4").unwrap();
    match bigger.declare(std::slice::from_ref(&topic)).await {
        Err(BrokerError::Topology(m)) => {
            assert!(
                m.contains("has 2 partitions, fewer than the configured 4"),
                "{m}"
            )
        }
        other => panic!("expected a topology error, got {other:?}"),
    }
    match broker
        .subscribe(
            &unique("never-declared"),
            SubscribeOptions {
                group: "g".into(),
                max_in_flight: 1,
            },
        )
        .await
    {
        Err(BrokerError::Topology(m)) => assert!(m.contains("unknown topic"), "{m}"),
        Err(e) => panic!("expected a topology error, got {e}"),
        Ok(_) => panic!("subscribed to an undeclared topic"),
    }
}

async fn partition_counts(topic: &str) -> Option<usize> {
    let brokers = brokers()?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        md.topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
    })
    .await
    .unwrap()
}

/// What a plain Kafka client sees: `ce_*` headers, `content-type`, the key
/// (the job id when the message has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_cloudevents_binary_headers() {
    let Some((broker, _topics)) = open("&partitions=1") else {
        return;
    };
    let topic = declared(&broker, "headers").await;
    let mut m = message(&topic, 0);
    m.key = None;
    m.attributes.insert("sluiceattempt".into(), "3".into());
    let job = m.job_id.to_string();
    let want = m.attributes.clone();
    let results = broker.publisher().publish(vec![m]).await;
    assert!(results[0].is_ok(), "{results:?}");

    let brokers = brokers().unwrap();
    let t = topic.clone();
    let (key, headers) = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "unused")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&t, 0, Offset::Beginning).unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
                let key = String::from_utf8(msg.key().unwrap().to_vec()).unwrap();
                let headers: BTreeMap<String, String> = msg
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let v = h.value.unwrap_or_default();
                                (h.key.to_string(), String::from_utf8_lossy(v).into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                return (key, headers);
            }
        }
        panic!("message not readable by a plain consumer");
    })
    .await
    .unwrap();
    assert_eq!(key, job, "key defaults to the job id");
    let mut expected: BTreeMap<String, String> = want
        .into_iter()
        .map(|(k, v)| (format!("ce_{k}"), v))
        .collect();
    expected.insert("content-type".into(), "application/json".into());
    assert_eq!(headers, expected);
}

/// A message larger than the producer may send is refused for good (the
/// relay dead-letters its job), not an unknown outcome to send again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_is_refused() {
    let Some((broker, _topics)) = open("&partitions=1") else {
        return;
    };
    let topic = declared(&broker, "large").await;
    let mut m = message(&topic, 0);
    // librdkafka's message.max.bytes is 1,000,000 by default
    m.body = format!("\"{}\"", "x".repeat(1_100_000)).into_bytes();
    let small = message(&topic, 1);
    let results = broker.publisher().publish(vec![m, small]).await;
    assert!(
        matches!(&results[0], Err(BrokerError::Refused(e)) if e.contains("too large")),
        "{results:?}"
    );
    assert!(results[1].is_ok(), "{results:?}");
}

/// Produces one record of `body` to `topic` with a header named `name`
/// (any bytes: the C API takes a NUL-terminated name, as Go clients' byte
/// slices can be), which rdkafka's own producer API cannot send.
#[allow(unsafe_code)]
fn produce_raw(brokers: &str, topic: &str, name: &[u8], body: &'static [u8]) {
    use rd::rd_kafka_vtype_t as V;
    use rdkafka::bindings as rd;
    use rdkafka::producer::{BaseProducer, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topic = std::ffi::CString::new(topic).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let value = b"v";
    let vu = |vtype, u| rd::rd_kafka_vu_t { vtype, u };
    let vus = [
        vu(
            V::RD_KAFKA_VTYPE_TOPIC,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                cstr: topic.as_ptr(),
            },
        ),
        vu(
            V::RD_KAFKA_VTYPE_VALUE,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                    ptr: body.as_ptr().cast_mut().cast(),
                    size: body.len(),
                },
            },
        ),
        vu(
            V::RD_KAFKA_VTYPE_HEADER,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                header: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                    name: name.as_ptr(),
                    val: value.as_ptr().cast(),
                    size: value.len() as isize,
                },
            },
        ),
    ];
    // SAFETY: the producer, topic, name and value outlive the call (the
    // header is copied into the message; the static body may be kept until
    // delivery); a non-null result is an error the caller owns.
    let err =
        unsafe { rd::rd_kafka_produceva(producer.client().native_ptr(), vus.as_ptr(), vus.len()) };
    assert!(err.is_null(), "produce failed");
    producer.flush(Duration::from_secs(15)).unwrap();
}

/// A record whose header name is not UTF-8 is delivered like any other,
/// that header left out, and the records after it too: rdkafka's header
/// accessors panic on such a name, which used to end the consumer thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_that_is_not_utf8_is_delivered() {
    let Some((broker, _topics)) = open("&partitions=1") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let topic = declared(&broker, "rawheader").await;
        let (brokers, t) = (brokers().unwrap(), topic.clone());
        tokio::task::spawn_blocking(move || produce_raw(&brokers, &t, b"\xffk", br#"{"n":1}"#))
            .await
            .unwrap();
        let after = publish(&broker, &topic, 1).await;
        let mut sub = subscribe(&broker, &topic, &unique("g"), 10).await;
        let got = collect(&mut sub, 2, Duration::from_secs(20)).await;
        assert_eq!(got.len(), 2, "delivered: {got:?}");
        assert_eq!(got[0].body, br#"{"n":1}"#);
        assert!(got[0].attributes.is_empty(), "{:?}", got[0].attributes);
        assert_eq!(id(&got[1]), after[0]);
        sub.ack(&tokens(&got)).await.unwrap();
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn bad_kafka_urls_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (url, needle) in [
        ("kafka://", "not host:port"),
        ("kafka://host:9092?partitions=many", "partitions"),
        ("kafka://user:secret@host:9092", "credentials"),
    ] {
        match sluice_broker::open(url, dir.path()).await {
            Err(e @ BrokerError::InvalidUrl(_)) => {
                assert!(e.to_string().contains(needle), "{url}: {e}");
                assert!(!e.to_string().contains("secret"), "{e}");
            }
            Err(e) => panic!("{url}: expected an invalid url error, got {e}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}
