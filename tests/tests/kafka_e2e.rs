//! End to end on PostgreSQL + Kafka: the shared 2,000-job scenario through the
//! real binary, then the dead letters read back from `<topic>.dlq` by a plain
//! Kafka consumer.

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_tests::brokers::{kafka_brokers, unique_topic};
use sluice_tests::kafka::{kafka_url, read_topic, KafkaTopics};
use sluice_tests::scenario::two_thousand_jobs_with_retries_and_dead_letters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kafka() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let Some(server) = sluice_tests::pg::server_url() else {
        return;
    };
    let db = sluice_tests::pg::TempDb::create(&server).await.unwrap();
    let topic = unique_topic("e2e");
    let _topics = KafkaTopics::of_queue(&brokers, &topic);
    let dead =
        two_thousand_jobs_with_retries_and_dead_letters(&db.url, &kafka_url(&brokers, 4), &topic)
            .await;
    assert_eq!(dead.len(), 40, "1% always 500 and 1% 400 of 2,000");

    let dlq = format!("{topic}.dlq");
    let records = read_topic(&brokers, &dlq, dead.len(), Duration::from_secs(30)).await;
    let on_dlq: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.headers.get("ce_id").cloned())
        .collect();
    let want: BTreeSet<String> = dead.into_iter().collect();
    assert_eq!(on_dlq, want, "every dead letter is on {dlq}");
    for r in &records {
        assert!(
            r.headers.contains_key("ce_sluiceerror"),
            "dead letter without its reason: {r:?}"
        );
    }
}
