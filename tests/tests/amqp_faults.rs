//! Faults on PostgreSQL + RabbitMQ with separate `ingest`, `relay` and two
//! `worker` processes: during a run of 5,000 accepted jobs, `kill -9` of the
//! relay, `kill -9` of a worker and a restart of RabbitMQ (a private node of
//! this test, never the shared one). No accepted job is lost; duplicate
//! deliveries are counted and printed.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use sluice_tests::jobs::{job_statuses, start_role, wait_attempt_in_flight, wait_deliveries};
use sluice_tests::pg::{server_url, TempDb};
use sluice_tests::rabbit::PrivateRabbit;
use sluice_tests::{brokers, Downstream, Mode};

const JOBS: usize = 5000;

fn write_config(dir: &Path, downstream: &str, store: &str, broker: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "{broker}"
[relay]
lease_ms = 5000
[worker]
lease_margin_ms = 1000
[[queues]]
name = "faults"
max_attempts = 20
backoff = {{ initial_ms = 50, max_ms = 1000, multiplier = 2.0 }}
concurrency = {{ min = 1, max = 8 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 2000 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_worker_kill9_and_rabbitmq_restart_lose_nothing() {
    let (Some(server), Some(_shared)) = (server_url(), brokers::amqp_url()) else {
        return;
    };
    let mut rabbit = PrivateRabbit::start().expect("private RabbitMQ node");
    let db = TempDb::create(&server).await.unwrap();
    // Slow enough that work is in flight through every fault.
    let ds = Downstream::start(Duration::from_millis(30)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url(), &db.url, &rabbit.url());

    let ingest = start_role(dir.path(), "ingest");
    let mut relay = start_role(dir.path(), "relay");
    let mut worker_a = start_role(dir.path(), "worker");
    let _worker_b = start_role(dir.path(), "worker");
    let base = ingest.url("");
    let client = reqwest::Client::new();

    let posting = {
        let client = client.clone();
        let url = format!("{base}/v1/queues/faults/jobs");
        tokio::spawn(async move {
            futures::stream::iter(0..JOBS)
                .map(|i| {
                    let client = client.clone();
                    let url = url.clone();
                    async move {
                        let resp = client
                            .post(&url)
                            .json(&json!({"payload": Mode::Ok.payload(i)}))
                            .send()
                            .await
                            .expect("post");
                        assert_eq!(resp.status(), 202, "job {i}");
                        let v: Value = resp.json().await.unwrap();
                        v["id"].as_str().unwrap().to_string()
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<String>>()
                .await
        })
    };

    wait_deliveries(&ds, 500, "kill -9 relay").await;
    relay.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _relay = start_role(dir.path(), "relay");

    wait_deliveries(&ds, 1500, "kill -9 worker").await;
    // Only a worker with an attempt in flight has work to lose when it dies.
    wait_attempt_in_flight(&client, &worker_a.url("/metrics")).await;
    worker_a.kill9();
    let _worker_c = start_role(dir.path(), "worker");

    wait_deliveries(&ds, 2500, "RabbitMQ restart").await;
    rabbit.stop_server().expect("stop RabbitMQ");
    tokio::time::sleep(Duration::from_secs(1)).await;
    rabbit.start_server().expect("start RabbitMQ again");
    eprintln!("RabbitMQ back at {} deliveries", ds.total());

    let ids = posting.await.expect("all jobs accepted");
    assert_eq!(ids.len(), JOBS);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(240);
    loop {
        let s = job_statuses(&client, &base, &ids).await;
        let ok = s
            .iter()
            .filter(|s| s.as_deref() == Some("succeeded"))
            .count();
        if ok == JOBS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {ok} of {JOBS} jobs succeeded; {} deliveries",
            ds.total()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let retried: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE attempts > 1")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let arrivals = ds.arrivals();
    let lost = ds.never_delivered(&ids).len();
    let duplicates: usize = arrivals.values().map(|a| a.len() - 1).sum();
    eprintln!(
        "all {JOBS} succeeded {:?} after the faults; lost: {lost}; duplicate deliveries: {duplicates}; jobs attempted more than once: {retried}",
        t0.elapsed()
    );
    assert_eq!(lost, 0, "accepted jobs never reached the downstream");
    assert!(
        retried > 0,
        "no job was re-attempted: the kills hit no attempt in flight"
    );
    assert_eq!(ds.missing_headers(), 0);
}
