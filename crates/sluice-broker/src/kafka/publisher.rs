//! [`Publisher`] over an idempotent librdkafka producer with `acks=all`:
//! every message of a batch is handed to librdkafka at once and each delivery
//! report is awaited.

use async_trait::async_trait;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::config::KafkaConfig;
use super::headers;
use super::KafkaContext;
use crate::{BrokerError, OutgoingMessage, Publisher};

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

    async fn publish_one(&self, m: &OutgoingMessage) -> Result<(), BrokerError> {
        let key = headers::outgoing_key(m);
        let record = FutureRecord::to(&m.topic)
            .key(&key)
            .payload(&m.body)
            .headers(headers::outgoing_headers(m));
        // A full local queue is waited out for at most the delivery timeout;
        // the delivery report itself comes within `message.timeout.ms`.
        let queue_wait = Timeout::After(self.config.publish_timeout);
        match self.producer.send(record, queue_wait).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(classify(&m.topic, e)),
        }
    }
}

/// Refusals for good are [`BrokerError::Rejected`]; everything else
/// (timeouts included) is an unknown outcome, [`BrokerError::Unavailable`].
fn classify(topic: &str, e: KafkaError) -> BrokerError {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(C::UnknownTopic | C::UnknownTopicOrPartition | C::UnknownTopicId) => {
            BrokerError::Rejected(format!("unknown topic {topic:?}"))
        }
        Some(
            code @ (C::MessageSizeTooLarge
            | C::InvalidMessage
            | C::InvalidMessageSize
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
        join_all(messages.iter().map(|m| self.publish_one(m))).await
    }
}
