//! The broker conformance suite on RabbitMQ (`SLUICE_TEST_AMQP_URL`), plus
//! what only the AMQP backend promises: topology verification, returned
//! messages as failures, direct producers' headers and positions, URL errors.
//! Every case uses its own exchanges and queues and deletes them after.

#![cfg(feature = "amqp")]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sluice_broker::amqp::AmqpBroker;
use sluice_broker::conformance::{message, service_from_env, Fixture, Settings};
use sluice_broker::recording::{Created, Recording};
use sluice_broker::{Broker, BrokerError, SubscribeOptions};
use tokio::time::Instant;

fn amqp_url() -> Option<String> {
    service_from_env("SLUICE_TEST_AMQP_URL")
}

fn unique(what: &str) -> String {
    format!(
        "sluice.test.{what}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Deletes everything recorded, on a thread of its own (drop runs inside the
/// test's runtime, which cannot be blocked).
struct Cleanup {
    url: String,
    created: Arc<Mutex<Created>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        let url = self.url.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let broker = AmqpBroker::open(&url).await.expect("open for cleanup");
                for topic in &created.topics {
                    let groups: Vec<String> = created
                        .groups
                        .iter()
                        .filter(|(t, _)| t == topic)
                        .map(|(_, g)| g.clone())
                        .collect();
                    broker
                        .delete_topic(topic, &groups)
                        .await
                        .expect("delete test topology");
                }
            })
        });
        done.join().expect("cleanup thread");
    }
}

async fn fresh() -> Option<Fixture> {
    let url = amqp_url()?;
    let broker = Recording::new(Arc::new(AmqpBroker::open(&url).await.expect("open")));
    let created = broker.created.clone();
    Some(Fixture::new(Arc::new(broker)).keeping(Cleanup { url, created }))
}

fn settings() -> Settings {
    Settings {
        visibility_timeout: None,
        counts_redeliveries: true,
        patience: Duration::from_secs(5),
    }
}

mod conformance {
    sluice_broker::broker_conformance!(super::fresh(), super::settings());
}

/// A raw lapin connection for what sluice must cope with from outside.
async fn raw(url: &str) -> Connection {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    Connection::connect(url, props).await.expect("raw connect")
}

/// The first message of `queue` for a raw consumer, with the connection and
/// channel that hold it.
async fn first_raw(url: &str, queue: &str, what: &str) -> (Connection, Channel, Delivery) {
    let conn = raw(url).await;
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect(what)
        .unwrap()
        .unwrap();
    (conn, ch, d)
}

fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_mismatches_are_clear_errors() {
    let Some(url) = amqp_url() else { return };
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.unwrap();
    // A classic queue where sluice is told to want quorum.
    let classic = unique("mismatch-queue");
    ch.queue_declare(
        &classic,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // A direct exchange where sluice wants fanout.
    let direct = unique("mismatch-exchange");
    ch.exchange_declare(
        &direct,
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();

    let quorum = AmqpBroker::open(&with_option(&url, "queue_type=quorum"))
        .await
        .unwrap();
    let e = quorum
        .declare(std::slice::from_ref(&classic))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BrokerError::Topology(m) if m.contains(&classic) && m.contains("quorum")),
        "{e}"
    );
    let e = quorum
        .declare(std::slice::from_ref(&direct))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BrokerError::Topology(m) if m.contains(&direct) && m.contains("fanout")),
        "{e}"
    );
    // The same queue declared as classic is fine.
    let classic_broker = AmqpBroker::open(&with_option(&url, "queue_type=classic"))
        .await
        .unwrap();
    classic_broker
        .declare(std::slice::from_ref(&classic))
        .await
        .expect("matching topology is accepted");

    quorum.delete_topic(&classic, &[]).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete(&direct, ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_and_unknown_topics_fail_the_publish() {
    let Some(url) = amqp_url() else { return };
    let broker = AmqpBroker::open(&url).await.unwrap();
    let topic = unique("routed");
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    // An exchange with no queue bound: the broker returns the message.
    let lonely = unique("unbound");
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        &lonely,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let unknown = unique("unknown");
    let batch = vec![
        message(&topic, 0),
        message(&lonely, 1),
        message(&unknown, 2),
        message(&topic, 3),
    ];
    let results = broker.publisher().publish(batch).await;
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok() && results[3].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(BrokerError::Rejected(m)) if m.contains("returned")),
        "{results:?}"
    );
    assert!(
        matches!(&results[2], Err(BrokerError::Rejected(m)) if m.contains("unknown topic")),
        "{results:?}"
    );
    let options = SubscribeOptions {
        group: "sluice-workers.none".into(),
        max_in_flight: 1,
    };
    match broker.subscribe(&unknown, options).await {
        Err(BrokerError::Topology(m)) => assert!(m.contains("unknown topic"), "{m}"),
        Err(e) => panic!("expected a topology error, got {e}"),
        Ok(_) => panic!("subscribed to an undeclared topic"),
    }
    broker.delete_topic(&topic, &[]).await.unwrap();
    ch.exchange_delete(&lonely, ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

/// A body larger than the server's max_message_size is refused for good
/// without being sent (the server would close the channel, failing the
/// messages sent with it): the messages around it are confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_max_message_size_is_refused() {
    let Some(url) = amqp_url() else { return };
    let broker = AmqpBroker::open(&with_option(&url, "max_message_bytes=1024"))
        .await
        .unwrap();
    let topic = unique("large");
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let mut big = message(&topic, 1);
    big.body = format!("\"{}\"", "x".repeat(2000)).into_bytes();
    let batch = vec![message(&topic, 0), big, message(&topic, 2)];
    let results = broker.publisher().publish(batch).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(BrokerError::Refused(e)) if e.contains("max_message_size")),
        "{results:?}"
    );
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(&topic, passive, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.message_count(), 2, "only the small messages were sent");
    broker.delete_topic(&topic, &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_persistent_with_the_job_id_and_cloudevents_headers() {
    let Some(url) = amqp_url() else { return };
    let broker = AmqpBroker::open(&url).await.unwrap();
    let topic = unique("headers");
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let mut m = message(&topic, 7);
    m.attributes.insert("sluiceattempt".into(), "2".into());
    m.attributes.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    let results = broker.publisher().publish(vec![m.clone()]).await;
    assert!(results[0].is_ok(), "{results:?}");

    let (_conn, _ch, d) = first_raw(&url, &topic, "delivered").await;
    let p = &d.properties;
    assert_eq!(p.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        p.message_id().as_ref().map(|s| s.to_string()),
        Some(m.job_id.to_string())
    );
    assert_eq!(
        p.content_type().as_ref().map(|s| s.to_string()),
        Some("application/json".to_string())
    );
    let headers = p.headers().clone().unwrap();
    let text = |k: &str| match headers.inner().get(k) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    };
    assert_eq!(text("cloudEvents:sluiceattempt").as_deref(), Some("2"));
    assert_eq!(text("cloudEvents:id"), Some(m.job_id.to_string()));
    assert_eq!(text("cloudEvents:specversion").as_deref(), Some("1.0"));
    assert_eq!(
        text("traceparent"),
        m.attributes.get("traceparent").cloned()
    );
    assert_eq!(text("sluice-key").as_deref(), Some("key-7"));
    d.ack(BasicAckOptions::default()).await.unwrap();
    broker.delete_topic(&topic, &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_producer_headers_and_positions() {
    let Some(url) = amqp_url() else { return };
    let broker = AmqpBroker::open(&url).await.unwrap();
    let topic = unique("direct");
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // Through the default exchange straight to the queue, like most clients.
    let publish = |props: BasicProperties, body: &'static [u8]| {
        let ch = ch.clone();
        let topic = topic.clone();
        async move {
            ch.basic_publish("", &topic, BasicPublishOptions::default(), body, props)
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let mut headers = FieldTable::default();
    headers.insert(
        "cloudEvents_id".into(),
        AMQPValue::LongString(LongString::from("order-1")),
    );
    headers.insert(
        "cloudEvents_source".into(),
        AMQPValue::LongString(LongString::from("shop")),
    );
    headers.insert(
        "cloudEvents:type".into(),
        AMQPValue::LongString(LongString::from("order.created")),
    );
    headers.insert(
        "cloudEvents:specversion".into(),
        AMQPValue::LongString(LongString::from("1.0")),
    );
    headers.insert(
        "cloudEvents:time".into(),
        AMQPValue::Timestamp(1_700_000_000),
    );
    headers.insert(
        "other".into(),
        AMQPValue::LongString(LongString::from("ignored")),
    );
    publish(
        BasicProperties::default()
            .with_headers(headers)
            .with_content_type("application/json".into()),
        b"{\"order\":1}",
    )
    .await;
    // the same message twice, without a message id: two messages
    publish(BasicProperties::default(), b"{\"plain\":true}").await;
    publish(BasicProperties::default(), b"{\"plain\":true}").await;
    publish(
        BasicProperties::default().with_message_id("m-42".into()),
        b"{\"plain\":2}",
    )
    .await;

    let options = SubscribeOptions {
        group: "sluice-workers.direct".into(),
        max_in_flight: 10,
    };
    let mut sub = broker.subscribe(&topic, options.clone()).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 4 && Instant::now() < deadline {
        got.extend(sub.recv(10, Duration::from_millis(300)).await.unwrap());
    }
    assert_eq!(got.len(), 4, "{got:?}");
    let ce = got.iter().find(|d| d.body == b"{\"order\":1}").unwrap();
    assert_eq!(ce.attributes["id"], "order-1");
    assert_eq!(ce.attributes["source"], "shop");
    assert_eq!(ce.attributes["type"], "order.created");
    assert_eq!(ce.attributes["time"], "2023-11-14T22:13:20.000Z");
    assert!(!ce.attributes.contains_key("other"));
    assert_eq!(ce.content_type.as_deref(), Some("application/json"));
    let plain: Vec<_> = got
        .iter()
        .filter(|d| d.body == b"{\"plain\":true}")
        .collect();
    assert_eq!(plain.len(), 2);
    for p in &plain {
        assert!(p.attributes.is_empty());
        assert!(
            p.position.starts_with(&format!("{topic}/delivery:")),
            "{}",
            p.position
        );
        assert!(!p.stable_position, "a position made up per delivery");
    }
    assert_ne!(plain[0].position, plain[1].position, "two messages");
    let with_id = got.iter().find(|d| d.body == b"{\"plain\":2}").unwrap();
    assert_eq!(with_id.position, format!("{topic}/m-42"));
    assert!(with_id.stable_position);

    // A message id's position survives redelivery; a message without one
    // gets a new position each time it is delivered.
    let positions: BTreeSet<String> = got.iter().map(|d| d.position.clone()).collect();
    let tokens: Vec<_> = got.iter().map(|d| d.token).collect();
    sub.release(&tokens, Duration::ZERO).await.unwrap();
    let mut again = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while again.len() < 4 && Instant::now() < deadline {
        again.extend(sub.recv(10, Duration::from_millis(300)).await.unwrap());
    }
    assert_eq!(again.len(), 4, "{again:?}");
    let kept: BTreeSet<String> = again
        .iter()
        .map(|d| d.position.clone())
        .filter(|p| positions.contains(p))
        .collect();
    assert_eq!(kept, BTreeSet::from([format!("{topic}/m-42")]));
    assert!(again.iter().all(|d| d.redeliveries >= 1), "{again:?}");
    let tokens: Vec<_> = again.iter().map(|d| d.token).collect();
    sub.ack(&tokens).await.unwrap();
    drop(sub);
    broker.delete_topic(&topic, &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_messages_are_held_not_spun() {
    // A release with a delay must not hand the message back before it: count
    // every delivery of one message on a raw consumer of the same queue.
    let Some(url) = amqp_url() else { return };
    let broker = AmqpBroker::open(&url).await.unwrap();
    let topic = unique("hold");
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let options = SubscribeOptions {
        group: "sluice-workers.hold".into(),
        max_in_flight: 5,
    };
    let mut sub = broker.subscribe(&topic, options).await.unwrap();
    assert!(broker.publisher().publish(vec![message(&topic, 0)]).await[0].is_ok());
    let mut deliveries = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let got = sub.recv(5, Duration::from_millis(200)).await.unwrap();
        deliveries += got.len();
        let tokens: Vec<_> = got.iter().map(|d| d.token).collect();
        sub.release(&tokens, Duration::from_millis(1000))
            .await
            .unwrap();
    }
    assert!(
        (2..=4).contains(&deliveries),
        "{deliveries} deliveries in 3 s with a 1 s release delay"
    );
    drop(sub);
    // Nothing was lost: a fresh subscriber still gets it once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_conn, ch, d) = first_raw(&url, &topic, "still queued").await;
    d.nack(BasicNackOptions::default()).await.unwrap();
    ch.queue_delete(&topic, QueueDeleteOptions::default())
        .await
        .unwrap();
    broker.delete_topic(&topic, &[]).await.unwrap();
}

#[tokio::test]
async fn urls_are_checked_and_passwords_never_shown() {
    for (url, needle) in [
        (
            "amqp://u:hunter2@127.0.0.1:1/%2f?queue_type=lazy",
            "queue_type",
        ),
        ("amqp://u:hunter2@127.0.0.1:1/%2f?colour=blue", "\"colour\""),
    ] {
        match sluice_broker::open(url, std::path::Path::new(".")).await {
            Err(e @ BrokerError::InvalidUrl(_)) => {
                let text = e.to_string();
                assert!(text.contains(needle) && !text.contains("hunter2"), "{text}")
            }
            Err(e) => panic!("{url}: expected an invalid url error, got {e}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
    // Nothing listens on port 1: unavailable, password hidden.
    match sluice_broker::open(
        "amqp://u:hunter2@127.0.0.1:1/%2f",
        std::path::Path::new("."),
    )
    .await
    {
        Err(e @ BrokerError::Unavailable(_)) => {
            let text = e.to_string();
            assert!(
                !text.contains("hunter2") && text.contains("127.0.0.1:1"),
                "{text}"
            );
        }
        Err(e) => panic!("expected unavailable, got {e}"),
        Ok(_) => panic!("connected to port 1"),
    }
}
