//! A real outside client publishing straight to a queue's Kafka topic: Python
//! `confluent-kafka` (`tests/python/kafka_produce.py`, interpreter from
//! `SLUICE_TEST_PYTHON`) sends CloudEvents binary and structured mode, plain
//! JSON and a message that is not JSON. The valid ones are processed and
//! visible at `GET /v1/jobs/{id}` under their derived ids; the bad one is dead
//! with its reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::JobId;
use sluice_tests::brokers::{kafka_brokers, unique_topic};
use sluice_tests::jobs::{python, run_python};
use sluice_tests::kafka::{kafka_url, KafkaTopics};
use sluice_tests::{Downstream, SluiceProcess};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kafka_produce.py")
}

fn write_config(dir: &Path, downstream: &str, broker: &str, topic: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "sqlite://./data/sluice.db"
[broker]
url = "{broker}"
[[queues]]
name = "direct"
topic = "{topic}"
max_attempts = 3
backoff = {{ initial_ms = 100, max_ms = 500, multiplier = 2.0 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 3000 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

async fn job(client: &reqwest::Client, base: &str, id: &JobId) -> Option<Value> {
    let resp = client
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    resp.json().await.ok()
}

/// Waits until job `id` is `succeeded` or `dead`; returns its record.
async fn final_record(client: &reqwest::Client, base: &str, id: &JobId, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = job(client, base, id).await {
            if matches!(v["status"].as_str(), Some("succeeded" | "dead")) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "{what} job {id} not final");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_producer_messages_become_jobs() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let topic = unique_topic("direct");
    let _topics = KafkaTopics::of_queue(&brokers, &topic);
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url(), &kafka_url(&brokers, 1), &topic);
    // ready once serve has declared the topic: the producer publishes after
    let sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    sluice.wait_ready(Duration::from_secs(60)).await.unwrap();
    let base = sluice.url("");

    let binary_ce_id = format!("order-{}", uuid::Uuid::new_v4());
    let structured_id = JobId::new();
    let structured = structured_id.to_string();
    let lines = run_python(
        &python,
        &script(),
        &[&brokers, &topic, &binary_ce_id, &structured],
    )
    .await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    let position = |kind: &str| {
        let l = lines.iter().find(|l| l["kind"] == kind).unwrap();
        match l["timestamp"].as_i64() {
            Some(ts) => format!("{topic}/{}/{}/{ts}", l["partition"], l["offset"]),
            None => format!("{topic}/{}/{}", l["partition"], l["offset"]),
        }
    };

    let client = reqwest::Client::new();
    let binary = JobId::derived("shop", &binary_ce_id);
    let plain = JobId::derived("sluice:broker-position", &position("plain"));
    let bad = JobId::derived("sluice:undecodable", &position("bad"));
    for (id, what) in [
        (binary, "binary"),
        (structured_id, "structured"),
        (plain, "plain"),
    ] {
        let rec = final_record(&client, &base, &id, what).await;
        assert_eq!(rec["status"], "succeeded", "{what}: {rec}");
        assert_eq!(rec["queue"], "direct", "{what}: {rec}");
        assert!(
            ds.arrivals().contains_key(&id.to_string()),
            "{what} job {id} never reached the downstream"
        );
    }
    let rec = final_record(&client, &base, &bad, "bad").await;
    assert_eq!(rec["status"], "dead", "{rec}");
    let reason = rec["last_error"].as_str().unwrap_or_default();
    assert!(reason.to_lowercase().contains("json"), "reason: {rec}");
    assert!(!ds.arrivals().contains_key(&bad.to_string()));
}
