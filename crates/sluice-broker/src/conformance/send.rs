//! Conformance case of [`Publisher::send`](crate::Publisher::send).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{ack_all, collect, declared, id_of, message, subscribe, unique, Settings};
use crate::Broker;

/// A batch sent before the confirms of the batch before it are awaited:
/// every message of both is confirmed (results in input order, one per
/// message) and delivered once.
pub async fn send_ahead_of_confirms(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "send-ahead").await;
    let mut sub = subscribe(&broker, &topic, &unique("g"), 200).await;
    let publisher = broker.publisher();
    let first: Vec<_> = (0..40).map(|i| message(&topic, i)).collect();
    let second: Vec<_> = (40..80).map(|i| message(&topic, i)).collect();
    let ids: BTreeSet<String> = first
        .iter()
        .chain(&second)
        .map(|m| m.job_id.to_string())
        .collect();
    let first_confirms = publisher.send(first).await;
    let second_confirms = publisher.send(second).await;
    let (a, b) = tokio::join!(first_confirms, second_confirms);
    assert_eq!((a.len(), b.len()), (40, 40), "one result per message");
    for (i, r) in a.iter().chain(&b).enumerate() {
        assert!(r.is_ok(), "message {i} not confirmed: {r:?}");
    }
    let got = collect(&mut sub, ids.len(), settings.patience).await;
    assert_eq!(got.len(), ids.len(), "each message delivered once");
    assert_eq!(got.iter().map(id_of).collect::<BTreeSet<_>>(), ids);
    ack_all(&mut sub, &got).await;
}
