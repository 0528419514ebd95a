//! Kafka helpers for tests: topics deleted when a test ends, and a plain
//! consumer reading a whole topic (no group, no commits).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

/// `kafka://<brokers>?...` for a test: replication factor 1 (a single test
/// broker) and `partitions` partitions.
pub fn kafka_url(brokers: &str, partitions: u32) -> String {
    format!("kafka://{brokers}?partitions={partitions}&replication_factor=1")
}

/// Deletes its topics when dropped (a test's cleanup, also on panic).
pub struct KafkaTopics {
    brokers: String,
    names: Vec<String>,
}

impl KafkaTopics {
    /// Guards `<topic>` and `<topic>.dlq`.
    pub fn of_queue(brokers: &str, topic: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            names: vec![topic.to_string(), format!("{topic}.dlq")],
        }
    }
}

impl Drop for KafkaTopics {
    fn drop(&mut self) {
        let admin: AdminClient<DefaultClientContext> = match ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
        {
            Ok(a) => a,
            Err(e) => return eprintln!("cannot delete topics {:?}: {e}", self.names),
        };
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        if let Err(e) = futures::executor::block_on(admin.delete_topics(&names, &options)) {
            eprintln!("cannot delete topics {names:?}: {e}");
        }
    }
}

/// One record as a plain consumer sees it.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// Reads `topic` from the beginning of every partition until `want` records
/// arrived or `within` passed.
pub async fn read_topic(brokers: &str, topic: &str, want: usize, within: Duration) -> Vec<Record> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "sluice-tests-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("kafka consumer");
        let md = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("kafka metadata");
        let mut tpl = TopicPartitionList::new();
        for t in md.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
                    .expect("partition");
            }
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let v = h.value.unwrap_or_default();
                                (h.key.to_string(), String::from_utf8_lossy(v).into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
        out
    })
    .await
    .expect("reader task")
}
