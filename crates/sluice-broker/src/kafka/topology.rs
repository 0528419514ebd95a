//! Topics: created with the configured partition count when missing (brokers
//! need not auto-create them), verified when present.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use tokio::time::Instant;

use super::config::KafkaConfig;
use super::KafkaContext;
use crate::BrokerError;

/// Partition counts of those of `topics` the cluster knows (asked one by
/// one through the admin client, which never has topics auto-created); with
/// no topics, just a metadata round trip.
pub(crate) async fn partition_counts(
    admin: &Arc<AdminClient<KafkaContext>>,
    topics: &[&String],
    timeout: Duration,
) -> Result<BTreeMap<String, usize>, BrokerError> {
    let admin = admin.clone();
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let fail = |e| BrokerError::Unavailable(format!("kafka metadata request failed: {e}"));
        let mut known = BTreeMap::new();
        if topics.is_empty() {
            admin.inner().fetch_metadata(None, timeout).map_err(fail)?;
        }
        for topic in &topics {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(topic), timeout)
                .map_err(fail)?;
            known.extend(
                metadata
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                    .filter(|t| t.name() == topic)
                    .map(|t| (t.name().to_string(), t.partitions().len())),
            );
        }
        Ok(known)
    })
    .await
    .map_err(|e| BrokerError::Unavailable(format!("kafka metadata task failed: {e}")))?
}

/// Creates the missing `topics`, then waits until the cluster's metadata shows
/// every one. An existing topic with fewer partitions than configured is a
/// [`BrokerError::Topology`] error.
pub(crate) async fn declare(
    admin: &Arc<AdminClient<KafkaContext>>,
    config: &KafkaConfig,
    topics: &[String],
) -> Result<(), BrokerError> {
    let mut wanted: Vec<&String> = topics.iter().collect();
    wanted.sort();
    wanted.dedup();
    let known = partition_counts(admin, &wanted, config.request_timeout).await?;
    let missing: Vec<&String> = wanted
        .iter()
        .copied()
        .filter(|t| !known.contains_key(*t))
        .collect();
    for topic in &wanted {
        if let Some(&n) = known.get(*topic) {
            if n < config.partitions as usize {
                return Err(BrokerError::Topology(format!(
                    "topic {topic:?} has {n} partitions, fewer than the configured {}",
                    config.partitions
                )));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    {
        let replication = config.replication_factor.unwrap_or(-1);
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(
                    t.as_str(),
                    config.partitions,
                    TopicReplication::Fixed(replication),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(config.request_timeout))
            .request_timeout(Some(config.request_timeout));
        let results = admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| BrokerError::Unavailable(format!("kafka create topics failed: {e}")))?;
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions = config.partitions, "kafka topic created")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((
                    name,
                    code @ (RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::BrokerNotAvailable
                    | RDKafkaErrorCode::NotController),
                )) => {
                    return Err(BrokerError::Unavailable(format!(
                        "cannot create kafka topic {name:?}: {code}"
                    )))
                }
                Err((name, code)) => {
                    return Err(BrokerError::Topology(format!(
                        "cannot create kafka topic {name:?}: {code}"
                    )))
                }
            }
        }
    }
    // Creation is asynchronous on the cluster: wait until it shows.
    let deadline = Instant::now() + config.request_timeout;
    loop {
        let known = partition_counts(admin, &missing, config.request_timeout).await?;
        let absent: Vec<&&String> = missing
            .iter()
            .filter(|t| !known.contains_key(**t))
            .collect();
        if absent.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::Unavailable(format!(
                "kafka topics {absent:?} not visible after creating them"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
