//! Broker traits of sluice and their backends, chosen at runtime by URL.
//!
//! Messages are CloudEvents in binary mode: `attributes` hold the bare
//! attribute names (`id`, `source`, `type`, `specversion`, extensions) and each
//! backend maps them to its own headers (`ce_` for Kafka, `cloudEvents:` for
//! AMQP). Delivery is at least once: a delivery not acknowledged comes back.
//!
//! Backends: `embedded://[dir]` (feature `embedded`, default): durable in the
//! data directory, shared by the processes of one machine;
//! `kafka://host:port,...` (feature `kafka`, default): Apache Kafka or any
//! Kafka-protocol broker, through librdkafka; `amqp://` and `amqps://`
//! (feature `amqp`, default): RabbitMQ or another AMQP 0-9-1 broker.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::JobId;

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "embedded")]
pub mod embedded;
mod error;
#[cfg(feature = "testing")]
pub mod forward;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "testing")]
pub mod recording;

pub use error::BrokerError;

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub job_id: JobId,
    /// Partitioning / ordering key (Kafka message key); `None` means the job id.
    pub key: Option<String>,
    /// CloudEvents attributes, bare names.
    pub attributes: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Identifies one delivery to its subscription, for [`Subscription::ack`]
/// and [`Subscription::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckToken(pub u64);

/// A message as a broker delivered it. A subscription that hands one message
/// out again (Kafka's, after a release) shares it, copying nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    pub topic: String,
    pub key: Option<String>,
    /// CloudEvents binary-mode attributes, bare names (may be empty).
    pub attributes: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Position on the broker (Kafka: `topic/partition/offset/timestamp`), the
    /// same for every delivery of one message where the broker gives it an
    /// identity (Kafka's offset, an AMQP `message_id`); plain JSON jobs
    /// take their id from it.
    pub position: String,
    /// Whether `position` is the same for every delivery of the message:
    /// false for an AMQP message without a `message_id`, whose position is
    /// made up for each delivery.
    pub stable_position: bool,
}

/// One delivery of a message to a subscriber: its token, how often the
/// message came before, and the message itself (its fields read through
/// `Deref`). Cloning one shares the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub token: AckToken,
    /// How many times it was delivered before (0 on first delivery), where the
    /// broker knows.
    pub redeliveries: u32,
    pub message: Arc<IncomingMessage>,
}

impl Delivery {
    pub fn new(token: AckToken, redeliveries: u32, message: IncomingMessage) -> Self {
        Self {
            token,
            redeliveries,
            message: Arc::new(message),
        }
    }
}

impl std::ops::Deref for Delivery {
    type Target = IncomingMessage;

    fn deref(&self) -> &IncomingMessage {
        &self.message
    }
}

/// Options of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeOptions {
    /// Consumer group: subscriptions of one group share the messages.
    pub group: String,
    /// Most deliveries un-acknowledged at once (prefetch).
    pub max_in_flight: usize,
}

/// The broker's confirms of a batch already handed to it: results in input
/// order, as [`Publisher::publish`] gives them.
pub type Confirms = std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<Result<(), BrokerError>>> + Send + 'static>,
>;

/// Publishes batches, each message confirmed by the broker.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes every message and waits for the broker to confirm each one
    /// durable; results are in input order. An error is an unknown outcome:
    /// the caller publishes the message again later (a duplicate, never a loss).
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>>;

    /// Hands every message to the broker and returns once they are sent,
    /// after those of earlier calls; the returned [`Confirms`] then waits
    /// for the broker's confirms. A caller can so send the next batch while
    /// the broker still confirms this one. The default publishes the whole
    /// batch (confirms included) before it returns.
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Confirms {
        let results = self.publish(messages).await;
        Box::pin(std::future::ready(results))
    }
}

/// A consumer of one topic in one group.
#[async_trait]
pub trait Subscription: Send {
    /// Waits up to `wait` for deliveries and returns at most `max` (possibly
    /// none). Fewer than [`SubscribeOptions::max_in_flight`] stay unacked.
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError>;

    /// Acknowledges deliveries whose outcome is durable; they never come back.
    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError>;

    /// Hands deliveries back untouched, to be delivered again after about
    /// `delay` (to this or another subscriber). Not a failure path.
    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError>;
}

/// A broker connection: publisher, subscriptions, topology, health.
#[async_trait]
pub trait Broker: Send + Sync {
    fn publisher(&self) -> Arc<dyn Publisher>;

    /// Creates or verifies these topics / queues.
    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError>;

    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError>;

    /// Succeeds when the broker is reachable.
    async fn ping(&self) -> Result<(), BrokerError>;

    /// How many messages of `topic` the consumer `group` has yet to consume,
    /// for autoscalers; `None` where the backend has no such figure or the
    /// broker does not know the topic or group. Kafka: the sum over
    /// partitions of high watermark minus committed offset (in-flight,
    /// uncommitted messages included). RabbitMQ: the group's queue's ready
    /// messages (unacknowledged deliveries excluded). Embedded: messages the
    /// group has not acknowledged.
    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError>;

    /// Where `topic` ends now, to learn later through
    /// [`Broker::consumer_passed`] whether the consumer `group` has consumed
    /// every message published before this call. `None` where the backend
    /// has no message positions (RabbitMQ, embedded) or the
    /// broker does not know the topic. Kafka: each partition's high
    /// watermark.
    async fn consumer_mark(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError>;

    /// Whether `group` has consumed `topic` up to `mark` on every partition
    /// (Kafka: its committed offset reached the mark, or the partition holds
    /// nothing before it), however many messages came after the mark; `None`
    /// where the backend has no message positions.
    async fn consumer_passed(
        &self,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError>;

    /// Whether each message goes to the one subscriber of a group that owns
    /// its partition (Kafka), so that what a subscriber holds un-acked is
    /// kept from no other subscriber. False where a group's subscribers
    /// compete for one queue (RabbitMQ, embedded): there the deliveries one
    /// holds wait while another may be idle, so a deep prefetch costs
    /// fairness between workers.
    fn owned_partitions(&self) -> bool;

    /// The backend's name, for logs.
    fn backend(&self) -> &'static str;
}

/// The end of a topic at one moment, from [`Broker::consumer_mark`]: per
/// partition, the position the next message will take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMark {
    pub ends: BTreeMap<i32, i64>,
}

/// [`Broker::consumer_lag`] given at most `timeout`: `None` when the broker
/// has no figure, fails or is too slow, as [`answer_within`].
pub async fn consumer_lag_within(
    broker: &dyn Broker,
    topic: &str,
    group: &str,
    timeout: Duration,
) -> Option<u64> {
    let lag = broker.consumer_lag(topic, group);
    answer_within("consumer lag", topic, timeout, lag).await
}

/// The answer of one of the broker's questions about `topic` (`what`, for
/// the log) given at most `timeout`: `None` when the broker has no answer,
/// fails or is too slow (logged at debug level), so a broker that is down
/// never holds up the caller.
pub async fn answer_within<T>(
    what: &str,
    topic: &str,
    timeout: Duration,
    question: impl std::future::Future<Output = Result<Option<T>, BrokerError>>,
) -> Option<T> {
    match tokio::time::timeout(timeout, question).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::debug!(topic, error = %e, "cannot read {what}");
            None
        }
        Err(_) => {
            tracing::debug!(topic, "{what} timed out");
            None
        }
    }
}

/// Opens the broker named by `url`. `data_dir` is where the embedded broker
/// keeps its files when the URL names none.
pub async fn open(url: &str, data_dir: &Path) -> Result<Arc<dyn Broker>, BrokerError> {
    let scheme = url.split(':').next().unwrap_or("");
    match scheme {
        "embedded" => open_embedded(url, data_dir).await,
        "kafka" => open_kafka(url),
        "amqp" | "amqps" => open_amqp(url).await,
        _ => Err(BrokerError::InvalidUrl(format!(
            "unknown scheme {scheme:?}: expected embedded://, kafka:// or amqp://"
        ))),
    }
}

#[cfg(feature = "embedded")]
async fn open_embedded(url: &str, data_dir: &Path) -> Result<Arc<dyn Broker>, BrokerError> {
    Ok(Arc::new(
        embedded::EmbeddedBroker::open(url, data_dir).await?,
    ))
}

#[cfg(not(feature = "embedded"))]
async fn open_embedded(_url: &str, _data_dir: &Path) -> Result<Arc<dyn Broker>, BrokerError> {
    Err(BrokerError::BackendDisabled("embedded"))
}

#[cfg(feature = "amqp")]
async fn open_amqp(url: &str) -> Result<Arc<dyn Broker>, BrokerError> {
    Ok(Arc::new(amqp::AmqpBroker::open(url).await?))
}

#[cfg(not(feature = "amqp"))]
async fn open_amqp(_url: &str) -> Result<Arc<dyn Broker>, BrokerError> {
    Err(BrokerError::BackendDisabled("amqp"))
}

#[cfg(feature = "kafka")]
fn open_kafka(url: &str) -> Result<Arc<dyn Broker>, BrokerError> {
    Ok(Arc::new(kafka::KafkaBroker::open(url)?))
}

#[cfg(not(feature = "kafka"))]
fn open_kafka(_url: &str) -> Result<Arc<dyn Broker>, BrokerError> {
    Err(BrokerError::BackendDisabled("kafka"))
}
