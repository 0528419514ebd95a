//! The Kafka backend (`kafka://host:port,...`), through librdkafka.
//!
//! - Publisher: `acks=all`, idempotence on, every delivery report awaited; a
//!   report that does not come within `publish_timeout_ms` is an unknown
//!   outcome ([`BrokerError::Unavailable`]).
//! - Topics are created (configured partition count) or verified by
//!   [`Broker::declare`]; nothing relies on the broker auto-creating them.
//! - Subscriptions are consumer group members with auto commit and auto offset
//!   store off: an offset is committed only once every delivery before it on
//!   its partition was acknowledged, never for a revoked partition. While the
//!   buffer of fetched messages is full, librdkafka's bounded fetch queue
//!   holds what it prefetched; if it stays full for a moment (the subscriber
//!   holds `max_in_flight` deliveries or takes nothing), the partitions are
//!   paused; the group membership stays alive. A released
//!   delivery is held by the subscription and handed out again after its delay
//!   (its offset stays uncommitted meanwhile).
//! - [`Broker::consumer_lag`] sums high watermark minus committed offset
//!   over the topic's partitions (see `lag.rs`); [`Broker::consumer_mark`]
//!   is the partitions' high watermarks and [`Broker::consumer_passed`]
//!   compares the group's committed offsets with them.
//! - Kafka does not count redeliveries: a delivery after a rebalance or restart
//!   has `redeliveries == 0`; only releases within one subscription count.

mod config;
mod consumer;
mod headers;
mod lag;
mod publisher;
mod subscription;
mod topology;
mod tracker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::AdminClient;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;

pub use config::KafkaConfig;
pub use publisher::KafkaPublisher;
pub use subscription::KafkaSubscription;

use crate::{Broker, BrokerError, ConsumerMark, Publisher, SubscribeOptions, Subscription};

/// Routes librdkafka's logs and errors of producers and admin clients to
/// tracing.
#[derive(Clone, Default)]
pub struct KafkaContext;

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        consumer::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, "kafka client: {reason}");
    }
}

/// A Kafka cluster: one shared idempotent producer, an admin client for
/// topics, one consumer per subscription.
pub struct KafkaBroker {
    config: KafkaConfig,
    admin: Arc<AdminClient<KafkaContext>>,
    publisher: Arc<KafkaPublisher>,
    lag: lag::LagReader,
}

impl KafkaBroker {
    /// Parses the URL and creates the clients; connecting happens on use.
    pub fn open(url: &str) -> Result<Self, BrokerError> {
        let config = KafkaConfig::parse(url)?;
        let producer: FutureProducer<KafkaContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("client.id", "sluice")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                config.publish_timeout.as_millis().to_string(),
            )
            // With no linger, a batch handed over message by message left
            // in many small produce requests: in `scripts/bench kafka`
            // (300,000 rows) the relay drained 64,817 and 69,407 msgs/s with
            // 0 ms, 81,446 and 83,900 with 1 ms, 83,054 and 81,508 with
            // 2 ms, 68,074 and 79,099 with 5 ms; with 1 ms the broker's CPU
            // per message fell from 2.5 to 1.2 µs and sluice's from 8.6 to
            // 5.8 µs.
            .set("linger.ms", config.linger.as_millis().to_string())
            .create_with_context(KafkaContext)
            .map_err(|e| BrokerError::Unavailable(format!("cannot create kafka producer: {e}")))?;
        let admin: AdminClient<KafkaContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("client.id", "sluice-admin")
            .set("allow.auto.create.topics", "false")
            .create_with_context(KafkaContext)
            .map_err(|e| {
                BrokerError::Unavailable(format!("cannot create kafka admin client: {e}"))
            })?;
        let publisher = Arc::new(KafkaPublisher::new(producer.clone(), config.clone()));
        Ok(Self {
            config,
            admin: Arc::new(admin),
            publisher,
            lag: lag::LagReader::default(),
        })
    }

    /// The parsed URL.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }
}

#[async_trait]
impl Broker for KafkaBroker {
    fn publisher(&self) -> Arc<dyn Publisher> {
        self.publisher.clone()
    }

    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        topology::declare(&self.admin, &self.config, topics).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        let topic_name = topic.to_string();
        let known =
            topology::partition_counts(&self.admin, &[&topic_name], self.config.request_timeout)
                .await?;
        if !known.contains_key(topic) {
            return Err(BrokerError::Topology(format!(
                "unknown topic {topic:?}: declare it first"
            )));
        }
        Ok(Box::new(
            KafkaSubscription::start(&self.config, topic, options).await?,
        ))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        topology::partition_counts(&self.admin, &[], Duration::from_secs(5))
            .await
            .map(|_| ())
    }

    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        self.lag.lag(&self.config, topic, group).await
    }

    async fn consumer_mark(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        self.lag.mark(&self.config, topic, group).await
    }

    async fn consumer_passed(
        &self,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        self.lag.passed(&self.config, topic, group, mark).await
    }

    /// A partition is consumed by one member of a group at a time.
    fn owned_partitions(&self) -> bool {
        true
    }

    fn backend(&self) -> &'static str {
        "kafka"
    }
}
