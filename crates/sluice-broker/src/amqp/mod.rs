//! The AMQP 0-9-1 backend (`amqp://` / `amqps://`, RabbitMQ), with lapin.
//!
//! Topology: see [`topology`]. Each topic is a durable fanout exchange bound
//! to a durable queue of the same name (quorum by default), declared and
//! verified by [`Broker::declare`]; a mismatch is
//! [`BrokerError::Topology`].
//!
//! Publishing: confirms awaited for every message, `mandatory` (a returned
//! message is a failure), persistent, `message_id` = job id, CloudEvents
//! attributes as `cloudEvents:` headers (see [`codec`]).
//!
//! Consuming: manual acks sent only by [`Subscription::ack`] (after the
//! outcome is durable), prefetch = `max_in_flight`, channels and connections
//! reopened with backoff, releases held for their delay then requeued once.
//! A delivery un-acked when its channel closes (crash, lost connection) goes
//! back to the queue; AMQP has no lease expiry while the holder is alive.
//!
//! The publisher and the subscriptions use separate connections, so a
//! publisher blocked by the broker's flow control does not stall acks.

pub mod codec;
mod config;
mod connection;
mod lag;
mod publisher;
mod subscription;
pub mod topology;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{Broker, BrokerError, ConsumerMark, Publisher, SubscribeOptions, Subscription};
use connection::Connector;

pub use config::{AmqpConfig, QueueType, DEFAULT_PUBLISHER_CHANNELS};
pub use publisher::AmqpPublisher;
pub use subscription::AmqpSubscription;

/// The AMQP broker. Connections open lazily (on first use) and reopen after
/// being lost; [`AmqpBroker::open`] checks the broker is reachable.
pub struct AmqpBroker {
    config: AmqpConfig,
    /// Topology and subscriptions.
    consumers: Arc<Connector>,
    publisher: Arc<AmqpPublisher>,
    /// Exchanges known to exist, shared with the publisher.
    known: Arc<Mutex<HashSet<String>>>,
}

impl AmqpBroker {
    /// Connects to the broker named by `url`.
    pub async fn open(url: &str) -> Result<Self, BrokerError> {
        let config = AmqpConfig::parse(url)?;
        let consumers = Arc::new(Connector::new(config.clone(), "consumer"));
        let publishing = Arc::new(Connector::new(config.clone(), "publisher"));
        let known = Arc::new(Mutex::new(HashSet::new()));
        let publisher = Arc::new(AmqpPublisher::new(
            publishing,
            config.publisher_channels,
            config.max_message_bytes,
            known.clone(),
        ));
        consumers.connection().await?;
        Ok(Self {
            config,
            consumers,
            publisher,
            known,
        })
    }

    /// The broker's settings (URL without password).
    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Deletes a topic: its exchange, its queue and the queues of `groups`.
    /// For tests and tools; sluice itself never deletes topology.
    pub async fn delete_topic(&self, topic: &str, groups: &[String]) -> Result<(), BrokerError> {
        self.known.lock().unwrap().remove(topic);
        topology::delete(&self.consumers, topic, groups).await
    }
}

#[async_trait]
impl Broker for AmqpBroker {
    fn publisher(&self) -> Arc<dyn Publisher> {
        self.publisher.clone()
    }

    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        for topic in topics {
            topology::declare(&self.consumers, topic, topic, self.config.queue_type).await?;
            self.known.lock().unwrap().insert(topic.clone());
        }
        Ok(())
    }

    /// Subscribes to the topic's queue (the workers' group) or to the
    /// group's own queue, declared and bound here. The topic must exist.
    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        let queue = topology::group_queue(topic, &options.group);
        if queue != topic {
            topology::declare(&self.consumers, topic, &queue, self.config.queue_type).await?;
        }
        let prefetch = u16::try_from(options.max_in_flight.max(1)).unwrap_or(u16::MAX);
        let mut sub = AmqpSubscription::new(self.consumers.clone(), topic, &queue, prefetch);
        sub.ensure_live().await.map_err(|e| match e {
            BrokerError::Unavailable(m) if m.contains("NOT_FOUND") || m.contains("no queue") => {
                BrokerError::Topology(format!("unknown topic {topic:?}: {m}"))
            }
            other => other,
        })?;
        Ok(Box::new(sub))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.consumers.connection().await.map(|_| ())
    }

    // no message positions: redrive waits for a lag of 0 instead
    async fn consumer_mark(
        &self,
        _topic: &str,
        _group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        Ok(None)
    }

    async fn consumer_passed(
        &self,
        _topic: &str,
        _group: &str,
        _mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        Ok(None)
    }

    /// Ready messages of the group's queue (passive declare).
    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        lag::queue_depth(&self.consumers, topic, group).await
    }

    /// A group's subscribers compete for its one queue.
    fn owned_partitions(&self) -> bool {
        false
    }

    fn backend(&self) -> &'static str {
        "amqp"
    }
}

/// The AMQP reply code of a refused operation, if it was one.
pub(crate) fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

/// An error whose outcome is unknown (connection, channel, timeout).
pub(crate) fn unavailable(what: &str, e: lapin::Error) -> BrokerError {
    BrokerError::Unavailable(format!("{what}: {e}"))
}
