//! Conformance cases of [`Broker::consumer_lag`], [`Broker::consumer_mark`]
//! and [`Broker::consumer_passed`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{ack_all, collect, declared, message, publish_ok, subscribe, unique, Settings};
use crate::{Broker, ConsumerMark};

/// Reads `read` every 100 ms until `done` holds for its answer or `within`
/// passed; returns the last answer.
async fn poll<T, F, Fut>(within: Duration, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + within;
    loop {
        let answer = read().await;
        if done(&answer) || Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the group's lag until it is `want` or `within` passed; returns the
/// last figure.
async fn lag_becomes(
    broker: &Arc<dyn Broker>,
    topic: &str,
    group: &str,
    want: u64,
    within: Duration,
) -> Option<u64> {
    let read = || async {
        broker
            .consumer_lag(topic, group)
            .await
            .expect("consumer_lag")
    };
    poll(within, read, |lag| *lag == Some(want)).await
}

/// A backend that reports lag counts published messages the workers' group
/// has not consumed (none at first, all of them before anyone subscribes,
/// none once all are acknowledged), and knows no lag of a topic never
/// declared. A backend without the notion answers `None` throughout.
pub async fn consumer_lag_counts_unconsumed(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "lag").await;
    // The workers' group: on AMQP it consumes the topic's own queue.
    let group = format!("sluice-workers.{}", unique("lag"));
    let first = broker
        .consumer_lag(&topic, &group)
        .await
        .expect("consumer_lag");
    let Some(first) = first else {
        let missing = broker.consumer_lag(&unique("none"), &group).await;
        assert_eq!(missing.expect("consumer_lag"), None);
        return;
    };
    assert_eq!(first, 0, "lag of an empty topic");
    // One at a time: tansu 0.6 reports the high watermark of a partition
    // wrong after a batch of several records (Kafka does not).
    for i in 0..3 {
        publish_ok(&broker, vec![message(&topic, i)]).await;
    }
    let lag = lag_becomes(&broker, &topic, &group, 3, settings.patience).await;
    assert_eq!(lag, Some(3), "three published, none consumed");
    let mut sub = subscribe(&broker, &topic, &group, 100).await;
    let got = collect(&mut sub, 3, settings.patience).await;
    assert_eq!(got.len(), 3);
    ack_all(&mut sub, &got).await;
    let lag = lag_becomes(&broker, &topic, &group, 0, settings.patience).await;
    assert_eq!(lag, Some(0), "all three acknowledged");
    let missing = broker.consumer_lag(&unique("none"), &group).await;
    assert_eq!(missing.expect("consumer_lag"), None, "undeclared topic");
}

/// Polls whether the group passed `mark` until it is `want` or `within`
/// passed; returns the last answer.
async fn passed_becomes(
    broker: &Arc<dyn Broker>,
    topic: &str,
    group: &str,
    mark: &ConsumerMark,
    want: bool,
    within: Duration,
) -> Option<bool> {
    let read = || async {
        let passed = broker.consumer_passed(topic, group, mark).await;
        passed.expect("consumer_passed")
    };
    poll(within, read, |passed| *passed == Some(want)).await
}

/// A backend with message positions marks where a topic ends and says
/// whether a group has consumed everything before the mark: at once for an
/// empty topic, not while messages before it wait, and once they are
/// acknowledged, whatever was published after the mark and not consumed
/// yet. A backend without positions answers `None` to both.
pub async fn consumer_mark_is_passed_once_consumed(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "mark").await;
    let group = format!("sluice-workers.{}", unique("mark"));
    // a cluster may learn of a topic just declared a moment later
    let read = || async {
        let mark = broker.consumer_mark(&topic, &group).await;
        mark.expect("consumer_mark")
    };
    let empty = poll(Duration::from_secs(2), read, Option::is_some).await;
    let Some(empty) = empty else {
        let mark = ConsumerMark {
            ends: [(0, 1)].into(),
        };
        let passed = broker.consumer_passed(&topic, &group, &mark).await;
        assert_eq!(passed.expect("consumer_passed"), None);
        return;
    };
    let passed = broker.consumer_passed(&topic, &group, &empty).await;
    assert_eq!(passed.expect("consumer_passed"), Some(true), "empty topic");
    // one at a time, as in consumer_lag_counts_unconsumed (tansu 0.6)
    for i in 0..3 {
        publish_ok(&broker, vec![message(&topic, i)]).await;
    }
    let mark = broker
        .consumer_mark(&topic, &group)
        .await
        .expect("consumer_mark")
        .expect("a mark of a known topic");
    assert_ne!(mark, empty, "three published since the first mark");
    let passed = broker.consumer_passed(&topic, &group, &mark).await;
    assert_eq!(
        passed.expect("consumer_passed"),
        Some(false),
        "none consumed"
    );
    let mut sub = subscribe(&broker, &topic, &group, 100).await;
    let got = collect(&mut sub, 3, settings.patience).await;
    assert_eq!(got.len(), 3);
    // the first two acknowledged: the mark is not passed while one waits
    ack_all(&mut sub, &got[..2]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let passed = broker.consumer_passed(&topic, &group, &mark).await;
    assert_eq!(passed.expect("consumer_passed"), Some(false), "one unacked");
    // a message after the mark, received and never acknowledged
    publish_ok(&broker, vec![message(&topic, 3)]).await;
    let late = collect(&mut sub, 1, settings.patience).await;
    assert_eq!(late.len(), 1);
    ack_all(&mut sub, &got[2..]).await;
    let passed = passed_becomes(&broker, &topic, &group, &mark, true, settings.patience).await;
    assert_eq!(passed, Some(true), "all before the mark acknowledged");
    let later = broker
        .consumer_mark(&topic, &group)
        .await
        .expect("consumer_mark")
        .expect("a mark of a known topic");
    let passed = broker.consumer_passed(&topic, &group, &later).await;
    assert_eq!(
        passed.expect("consumer_passed"),
        Some(false),
        "one after the mark unacked"
    );
}
