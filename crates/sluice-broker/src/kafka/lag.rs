//! Consumer-group lag for autoscalers: per partition, the high watermark
//! minus the group's committed offset (or minus the low watermark when the
//! group committed nothing there, since a new group starts at the earliest
//! offset), summed over the topic's partitions; and, for redrive, marks of
//! where a topic ends (its high watermarks) that the group's committed
//! offsets are later compared with.
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
use crate::{BrokerError, ConsumerMark};

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
        let read = self.positions(config, topic, group).await?;
        Ok(read.map(|ps| {
            ps.iter()
                .map(|p| u64::try_from(p.high - p.from).unwrap_or(0))
                .sum()
        }))
    }

    /// Each partition's high watermark; `None` when the cluster does not
    /// know the topic.
    pub(crate) async fn mark(
        &self,
        config: &KafkaConfig,
        topic: &str,
        group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        let read = self.positions(config, topic, group).await?;
        Ok(read.map(|ps| ConsumerMark {
            ends: ps.iter().map(|p| (p.partition, p.high)).collect(),
        }))
    }

    /// Whether the group's position reached `mark` on each of its
    /// partitions; a partition the topic no longer has is not passed.
    pub(crate) async fn passed(
        &self,
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        let Some(ps) = self.positions(config, topic, group).await? else {
            return Ok(Some(false));
        };
        let from: HashMap<i32, i64> = ps.iter().map(|p| (p.partition, p.from)).collect();
        Ok(Some(mark.ends.iter().all(|(partition, end)| {
            from.get(partition).is_some_and(|from| from >= end)
        })))
    }

    async fn positions(
        &self,
        config: &KafkaConfig,
        topic: &str,
        group: &str,
    ) -> Result<Option<Vec<Position>>, BrokerError> {
        let reader = self.reader(config, group)?;
        let (topic, timeout) = (topic.to_string(), config.request_timeout);
        tokio::task::spawn_blocking(move || positions_of(&reader, &topic, timeout))
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

/// Where one partition of a topic stands for a group.
struct Position {
    partition: i32,
    /// The high watermark: the offset the next record will take.
    high: i64,
    /// Where the group reads next: its committed offset, or the low
    /// watermark when it committed nothing there (a new group starts at the
    /// earliest offset) or the records it committed up to are gone.
    from: i64,
}

fn positions_of(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Option<Vec<Position>>, BrokerError> {
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
    let mut positions = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| fail("watermarks request", e))?;
        let from = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => n.max(low),
            _ => low,
        };
        positions.push(Position {
            partition: p,
            high,
            from,
        });
    }
    Ok(Some(positions))
}
