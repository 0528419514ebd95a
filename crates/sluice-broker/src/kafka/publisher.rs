//! [`Publisher`] over an idempotent librdkafka producer with `acks=all`:
//! the messages of a batch are handed to librdkafka one after another (in
//! order, waiting out a full local queue), then each delivery report is
//! awaited; the next batch can be handed over meanwhile.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::config::KafkaConfig;
use super::headers;
use super::KafkaContext;
use crate::{BrokerError, Confirms, OutgoingMessage, Publisher};

/// Publishes to `<message.topic>`; the message key is the message's key or
/// else its job id, its attributes travel as `ce_*` headers.
pub struct KafkaPublisher {
    producer: FutureProducer<KafkaContext>,
    config: KafkaConfig,
}

impl KafkaPublisher {
    pub(crate) fn new(producer: FutureProducer<KafkaContext>, config: KafkaConfig) -> Self {
        Self { producer, config }
    }

    /// Hands `m` to librdkafka, waiting out a full local queue for at most
    /// the publish timeout; the delivery report comes within
    /// `message.timeout.ms`.
    async fn enqueue(&self, m: &OutgoingMessage) -> Result<DeliveryFuture, BrokerError> {
        let id;
        let key = match &m.key {
            Some(key) => key,
            None => {
                id = m.job_id.to_string();
                &id
            }
        };
        let mut record = FutureRecord::to(&m.topic)
            .key(key)
            .payload(&m.body)
            .headers(headers::outgoing_headers(m));
        let deadline = Instant::now() + self.config.publish_timeout;
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((e, _)) => return Err(classify(&m.topic, e)),
            }
        }
    }
}

/// How long a message waits before it is offered again to a full queue.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// Refusals for good are [`BrokerError::Refused`] (the message itself) or
/// [`BrokerError::Rejected`] (its topic); everything else
/// (timeouts included) is an unknown outcome, [`BrokerError::Unavailable`].
fn classify(topic: &str, e: KafkaError) -> BrokerError {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(C::UnknownTopic | C::UnknownTopicOrPartition | C::UnknownTopicId) => {
            BrokerError::Rejected(format!("unknown topic {topic:?}"))
        }
        // too large wherever it goes; an invalid record may be about the
        // topic (a keyless record on a compacted one), so it is retried
        Some(code @ (C::MessageSizeTooLarge | C::InvalidMessageSize)) => {
            BrokerError::Refused(format!("kafka refused the message for {topic:?}: {code}"))
        }
        Some(
            code @ (C::InvalidMessage
            | C::InvalidRecord
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::PolicyViolation),
        ) => BrokerError::Rejected(format!("kafka refused the message for {topic:?}: {code}")),
        _ => BrokerError::Unavailable(format!("kafka publish to {topic:?} not confirmed: {e}")),
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>> {
        self.send(messages).await.await
    }

    async fn send(&self, messages: Vec<OutgoingMessage>) -> Confirms {
        let mut deliveries = Vec::with_capacity(messages.len());
        // each message is dropped once librdkafka has its copy; its topic
        // stays for the error of a failed delivery
        for mut m in messages {
            let enqueued = self.enqueue(&m).await;
            deliveries.push((enqueued, std::mem::take(&mut m.topic)));
        }
        Box::pin(join_all(deliveries.into_iter().map(
            |(enqueued, topic)| async move {
                match enqueued?.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(classify(&topic, e)),
                    Err(_) => Err(BrokerError::Unavailable(format!(
                        "kafka publish to {topic:?} not confirmed: the producer was dropped"
                    ))),
                }
            },
        )))
    }
}
