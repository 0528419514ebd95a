//! Conformance case of [`Broker::consumer_lag`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{ack_all, collect, declared, message, publish_ok, subscribe, unique, Settings};
use crate::Broker;

/// Polls the group's lag until it is `want` or `within` passed; returns the
/// last figure.
async fn lag_becomes(
    broker: &Arc<dyn Broker>,
    topic: &str,
    group: &str,
    want: u64,
    within: Duration,
) -> Option<u64> {
    let deadline = Instant::now() + within;
    loop {
        let lag = broker
            .consumer_lag(topic, group)
            .await
            .expect("consumer_lag");
        if lag == Some(want) || Instant::now() >= deadline {
            return lag;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
