//! Faults on PostgreSQL + Kafka with the roles in separate processes
//! (`ingest`, `relay`, two `worker`s): 5,000 accepted jobs, the relay killed
//! with `kill -9` while publishing and a worker killed while its jobs run,
//! each replaced (the worker once the group rebalanced without it).
//! Every accepted job must succeed and reach the downstream;
//! duplicate deliveries are counted and printed.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_tests::brokers::{kafka_brokers, unique_topic};
use sluice_tests::jobs::{job_statuses, start_role, wait_attempt_in_flight};
use sluice_tests::kafka::{kafka_url, KafkaTopics};
use sluice_tests::{Downstream, Mode, SluiceProcess};

const JOBS: usize = 5000;

fn write_config(dir: &Path, downstream: &str, store: &str, broker: &str, topic: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "{broker}"
[relay]
lease_ms = 3000
batch_size = 200
[worker]
lease_margin_ms = 1000
[[queues]]
name = "faults"
topic = "{topic}"
max_attempts = 10
backoff = {{ initial_ms = 50, max_ms = 500, multiplier = 2.0 }}
concurrency = {{ min = 1, max = 16 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 2000 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

async fn accept(client: &reqwest::Client, base: &str) -> Vec<String> {
    let url = format!("{base}/v1/queues/faults/jobs/batch");
    let mut ids = Vec::with_capacity(JOBS);
    for chunk in 0..JOBS / 500 {
        let jobs: Vec<Value> = (0..500)
            .map(|i| json!({"payload": Mode::Ok.payload(chunk * 500 + i)}))
            .collect();
        let resp = client
            .post(&url)
            .json(&json!({ "jobs": jobs }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let v: Value = resp.json().await.unwrap();
        ids.extend(
            v["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string()),
        );
    }
    ids
}

/// Waits until the downstream has seen `n` deliveries in all.
async fn until_delivered(ds: &Downstream, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while ds.total() < n {
        assert!(
            Instant::now() < deadline,
            "only {} deliveries after {limit:?}",
            ds.total()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many assignments `worker` has logged.
fn assignments(worker: &SluiceProcess) -> usize {
    worker
        .log_text()
        .matches("kafka partitions assigned")
        .count()
}

/// Waits until `worker` logged more than `before` assignments: the group
/// rebalanced after the killed member's session expired.
///
/// The replacement worker must not join before that. tansu 0.6's group
/// coordinator keeps the generation and the stored assignment when a member's
/// session expires (the members that rejoin get their old partitions back),
/// so the dead member's partitions are reassigned only by the new generation
/// a joining member starts; if the replacement joins while the dead member
/// is still in the group, they stay assigned to it for good. Apache Kafka
/// reassigns them on the expiry.
async fn until_rebalanced(worker: &SluiceProcess, before: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while assignments(worker) <= before {
        assert!(
            Instant::now() < deadline,
            "the surviving worker saw no rebalance within {limit:?} of the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_relay_and_worker_loses_no_job() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let Some(server) = sluice_tests::pg::server_url() else {
        return;
    };
    let db = sluice_tests::pg::TempDb::create(&server).await.unwrap();
    let topic = unique_topic("faults");
    let _topics = KafkaTopics::of_queue(&brokers, &topic);
    // a slowish downstream keeps jobs running when a worker dies
    let ds = Downstream::start(Duration::from_millis(20)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &ds.url(),
        &db.url,
        &kafka_url(&brokers, 4),
        &topic,
    );
    let status =
        sluice_tests::process::run_to_end(dir.path(), &["migrate"], Duration::from_secs(60))
            .unwrap()
            .0;
    assert_eq!(status, Some(0), "migrate");

    let ingest = start_role(dir.path(), "ingest");
    let mut workers = vec![
        start_role(dir.path(), "worker"),
        start_role(dir.path(), "worker"),
    ];
    let client = reqwest::Client::new();
    let base = ingest.url("");
    let t0 = Instant::now();
    let ids = accept(&client, &base).await;
    assert_eq!(ids.len(), JOBS);
    eprintln!("accepted {JOBS} jobs in {:?}", t0.elapsed());

    // The relay dies mid-batch: the first deliveries prove it is publishing.
    let mut relay = start_role(dir.path(), "relay");
    until_delivered(&ds, 300, Duration::from_secs(60)).await;
    relay.kill9();
    let at_relay_kill = ds.total();
    eprintln!("relay killed with {at_relay_kill} deliveries done");
    let relay = start_role(dir.path(), "relay");

    // A worker dies with jobs running. Its replacement starts once the group
    // noticed (the dead member's session expired): see `until_rebalanced`.
    until_delivered(&ds, at_relay_kill + 800, Duration::from_secs(60)).await;
    let assigned_before = assignments(&workers[1]);
    wait_attempt_in_flight(&client, &workers[0].url("/metrics")).await;
    workers[0].kill9();
    let at_worker_kill = ds.total();
    eprintln!("worker killed with {at_worker_kill} deliveries done");
    assert!(
        at_worker_kill < JOBS,
        "the kill came too late to test anything"
    );
    until_rebalanced(&workers[1], assigned_before, Duration::from_secs(60)).await;
    eprintln!(
        "group rebalanced without the killed worker; {} deliveries done",
        ds.total()
    );
    workers[0] = start_role(dir.path(), "worker");

    let deadline = Instant::now() + Duration::from_secs(240);
    let mut left = ids.clone();
    while !left.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} of {JOBS} accepted jobs not succeeded; e.g. {:?}",
            left.len(),
            &left[..left.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let statuses = job_statuses(&client, &base, &left).await;
        left = left
            .into_iter()
            .zip(statuses)
            .filter(|(_, s)| s.as_deref() != Some("succeeded"))
            .map(|(id, _)| id)
            .collect();
    }
    eprintln!("all {JOBS} succeeded after {:?}", t0.elapsed());

    let arrivals = ds.arrivals();
    let missing = ds.never_delivered(&ids);
    assert!(
        missing.is_empty(),
        "{} accepted jobs never reached the downstream",
        missing.len()
    );
    let accepted: HashSet<&String> = ids.iter().collect();
    let strangers = arrivals.keys().filter(|id| !accepted.contains(id)).count();
    assert_eq!(strangers, 0, "deliveries of jobs never accepted");
    let duplicates: usize = arrivals.values().map(|a| a.len() - 1).sum();
    eprintln!("duplicate deliveries seen by the downstream: {duplicates} (of {JOBS} jobs)");
    drop((relay, workers, ingest));
}
