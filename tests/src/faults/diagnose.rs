//! Where lost jobs went missing, printed when the checker finds any: their
//! state in the store and, on Kafka, whether the topic holds them and where
//! the workers' group stands on each partition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

use super::Rig;
use crate::kafka::read_topic;

/// Prints what is known of `lost` (job ids): store status and attempts,
/// and for Kafka the records of the topic and the group's offsets.
pub(super) async fn lost_jobs(rig: &Rig, lost: &[&String], store: &HashMap<String, (String, i64)>) {
    let mut by_state: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for id in lost {
        let (s, a) = store
            .get(*id)
            .cloned()
            .unwrap_or_else(|| ("absent".into(), 0));
        *by_state.entry((s, a)).or_default() += 1;
    }
    eprintln!("lost jobs by (store status, attempts): {by_state:?}");
    let Some(brokers) = &rig.kafka_brokers else {
        return;
    };
    let records = read_topic(brokers, &rig.topic, usize::MAX, Duration::from_secs(15)).await;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &records {
        let e = ends.entry(r.partition).or_default();
        *e = (*e).max(r.offset + 1);
    }
    let wanted: HashSet<&str> = lost.iter().map(|s| s.as_str()).collect();
    let mut found: Vec<(i32, i64)> = records
        .iter()
        .filter(|r| {
            let id = r.headers.get("ce_id").map(String::as_str);
            id.or(r.key.as_deref())
                .is_some_and(|id| wanted.contains(id))
        })
        .map(|r| (r.partition, r.offset))
        .collect();
    found.sort_unstable();
    eprintln!(
        "topic {}: {} records, ends by partition {ends:?}; {} of {} lost jobs are in it, at {:?}",
        rig.topic,
        records.len(),
        found.len(),
        lost.len(),
        &found[..found.len().min(40)]
    );
    let group = format!("sluice-workers.{}", rig.queue);
    match committed(brokers, &group, &rig.topic, ends.keys().copied().collect()).await {
        Ok(c) => eprintln!("group {group} committed offsets: {c:?}"),
        Err(e) => eprintln!("group {group} committed offsets unknown: {e}"),
    }
}

async fn committed(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<BTreeMap<i32, String>, String> {
    let (brokers, group, topic) = (brokers.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| e.to_string())?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&topic, p);
        }
        let c = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        Ok(c.elements()
            .iter()
            .map(|e| (e.partition(), format!("{:?}", e.offset())))
            .collect())
    })
    .await
    .map_err(|e| e.to_string())?
}
