//! Consumer-group lag for autoscalers: per partition, the high watermark
//! minus the group's committed offset (or minus the low watermark when the
//! group committed nothing there, since a new group starts at the earliest
//! offset), summed over the topic's partitions.
//!
//! One consumer client per group is kept to read committed offsets; it never
//! subscribes, so it never joins the group or takes partitions from workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaConfig;
use crate::BrokerError;

/// Offset readers by group.
#[derive(Default)]
pub(crate) struct LagReader {
    readers: Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl LagReader {
    /// The group's lag on `topic`; `None` when the cluster does not know the
    /// topic.
    pub(crate) async fn lag(
        &self,
        config: &KafkaConfig,
        topic: &str,
        group: &str,
    ) -> Result<Option<u64>, BrokerError> {
        let reader = self.reader(config, group)?;
        let (topic, timeout) = (topic.to_string(), config.request_timeout);
        tokio::task::spawn_blocking(move || lag_of(&reader, &topic, timeout))
            .await
            .map_err(|e| BrokerError::Unavailable(format!("kafka lag task failed: {e}")))?
    }

    fn reader(&self, config: &KafkaConfig, group: &str) -> Result<Arc<BaseConsumer>, BrokerError> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = readers.get(group) {
            return Ok(r.clone());
        }
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("group.id", group)
            .set("client.id", "sluice-lag")
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .create()
            .map_err(|e| {
                BrokerError::Unavailable(format!("cannot create kafka lag reader: {e}"))
            })?;
        let consumer = Arc::new(consumer);
        readers.insert(group.to_string(), consumer.clone());
        Ok(consumer)
    }
}

fn lag_of(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Option<u64>, BrokerError> {
    let fail = |what: &str, e: rdkafka::error::KafkaError| {
        BrokerError::Unavailable(format!("kafka {what} failed: {e}"))
    };
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| fail("metadata request", e))?;
    let Some(partitions) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
    else {
        return Ok(None);
    };
    let mut wanted = TopicPartitionList::new();
    for &p in &partitions {
        wanted.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .map_err(|e| fail("committed offsets request", e))?;
    let mut lag = 0u64;
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| fail("watermarks request", e))?;
        let from = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => n.max(low),
            _ => low,
        };
        lag += u64::try_from(high - from).unwrap_or(0);
    }
    Ok(Some(lag))
}
