//! Retention in the real binary on the embedded default: a succeeded job
//! reads as `404` once past `retention.succeeded_ms`, an expired
//! `Idempotency-Key` is accepted as a new request, and `/metrics` counts
//! both.

use std::time::Duration;

use serde_json::json;
use sluice_tests::jobs::{job_status, SERVE_EPHEMERAL};
use sluice_tests::prom::Exposition;
use sluice_tests::{eventually, SluiceProcess};

const CONFIG: &str = r#"
data_dir = "./data"
[store]
url = "sqlite://./data/sluice.db"
[broker]
url = "embedded://./data/broker?poll_interval_ms=50"
[retention]
succeeded_ms = 10000
idempotency_keys_ms = 1000
interval_ms = 200
[[queues]]
name = "r"
handler = { type = "noop" }
"#;

async fn post(client: &reqwest::Client, sluice: &SluiceProcess, key: &str) -> String {
    let resp = client
        .post(sluice.url("/v1/queues/r/jobs"))
        .header("Idempotency-Key", key)
        .json(&json!({ "payload": {"n": 1} }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_successes_and_keys_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sluice.toml"), CONFIG).unwrap();
    let sluice = SluiceProcess::start(dir.path(), SERVE_EPHEMERAL, &[]).unwrap();
    let client = reqwest::Client::new();
    let base = sluice.url("");

    let id = post(&client, &sluice, "order-1").await;
    let every = Duration::from_millis(50);
    eventually(Duration::from_secs(30), every, || async {
        (job_status(&client, &base, &id).await.as_deref() == Some("succeeded")).then_some(())
    })
    .await
    .expect("the job succeeds");
    eventually(Duration::from_secs(30), every, || async {
        let resp = client
            .get(format!("{base}/v1/jobs/{id}"))
            .send()
            .await
            .ok()?;
        (resp.status() == 404).then_some(())
    })
    .await
    .expect("the succeeded job is pruned");

    // the key expired before the job did: the same request is a new job
    let again = post(&client, &sluice, "order-1").await;
    assert_ne!(again, id);

    let url = sluice.url("/metrics");
    let pruned = eventually(Duration::from_secs(10), every, || async {
        let text = client.get(&url).send().await.ok()?.text().await.ok()?;
        let e = Exposition::parse(&text).unwrap();
        let jobs = e.value("sluice_retention_pruned_jobs_total", &[])?;
        let keys = e.value("sluice_retention_pruned_idempotency_keys_total", &[])?;
        (jobs >= 1.0 && keys >= 1.0).then_some((jobs, keys))
    })
    .await;
    assert!(pruned.is_ok(), "pruning is counted on /metrics");
}
