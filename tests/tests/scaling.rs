//! Autoscaling signals of the real binary: jobs posted with no worker
//! running show up in `GET /v1/queues/{queue}/scaling` and as `/metrics`
//! gauges, first pending in the outbox, then (once a relay runs) published
//! and counted by the broker's consumer lag.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_tests::{eventually, SluiceProcess};

fn write_config(dir: &Path, store: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "embedded://./data/broker?poll_interval_ms=50"
[http]
scaling_refresh_ms = 200
[[queues]]
name = "q"
handler = {{ type = "log" }}
[[queues]]
name = "other"
handler = {{ type = "log" }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_sqlite_embedded() {
    backlog_without_workers("sqlite://./data/sluice.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_postgres_embedded() {
    let Some(server) = sluice_tests::pg::server_url() else {
        return;
    };
    let db = sluice_tests::pg::TempDb::create(&server).await.unwrap();
    backlog_without_workers(&db.url).await;
}

/// Polls the queue's figures until `done` holds; returns them.
async fn figures_until(
    client: &reqwest::Client,
    url: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let got = eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let resp = client.get(url).send().await.ok()?;
            assert_eq!(resp.status(), 200);
            let v: Value = resp.json().await.ok()?;
            *last.lock().unwrap() = v.clone();
            done(&v).then_some(v)
        },
    )
    .await;
    got.unwrap_or_else(|e| panic!("{e}; last figures {}", last.lock().unwrap()))
}

/// The gauge's value in a Prometheus text exposition.
fn gauge(text: &str, name: &str, queue: &str) -> Option<f64> {
    let prefix = format!("{name}{{queue=\"{queue}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn backlog_without_workers(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), store);
    let ingest =
        SluiceProcess::start(dir.path(), &["ingest", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let client = reqwest::Client::new();
    let post = |body: Value| {
        let (client, url) = (client.clone(), ingest.url("/v1/queues/q/jobs"));
        async move {
            let resp = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 202);
        }
    };
    for i in 0..5 {
        post(json!({"payload": {"n": i}})).await;
    }
    for i in 0..2 {
        post(json!({"payload": {"n": i}, "delay_seconds": 3600})).await;
    }
    let scaling = ingest.url("/v1/queues/q/scaling");

    // No relay: all seven wait in the outbox, five of them due.
    let v = figures_until(&client, &scaling, |v| v["pending"] == 7).await;
    assert_eq!(v["queue"], "q");
    assert_eq!(v["backlog"], 5, "{v}");
    for field in ["published", "in_flight", "retrying", "dead"] {
        assert_eq!(v[field], 0, "{field}: {v}");
    }
    assert_eq!(v["consumer_lag"], 0, "nothing on the broker yet: {v}");
    let age = v["oldest_pending_age_seconds"].as_f64().unwrap();
    assert!(age > 0.0 && age < 60.0, "{v}");
    assert_eq!(v["relay_lag_seconds"], v["oldest_pending_age_seconds"]);

    // A relay publishes the five due jobs; no worker takes them.
    let _relay =
        SluiceProcess::start(dir.path(), &["relay", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let v = figures_until(&client, &scaling, |v| v["published"] == 5).await;
    assert_eq!(v["pending"], 2, "{v}");
    assert_eq!(v["backlog"], 5, "{v}");
    assert_eq!(v["in_flight"], 0, "{v}");
    assert_eq!(v["relay_lag_seconds"], 0.0, "{v}");
    let v = figures_until(&client, &scaling, |v| v["consumer_lag"] == 5).await;
    assert!(v["oldest_pending_age_seconds"].as_f64().unwrap() > 0.0);

    // The same figures as gauges, refreshed in the background; every
    // configured queue has them.
    let metrics = ingest.url("/metrics");
    let expected = [
        ("sluice_queue_backlog_jobs", "q", 5.0),
        ("sluice_queue_pending_jobs", "q", 2.0),
        ("sluice_queue_published_jobs", "q", 5.0),
        ("sluice_queue_in_flight_jobs", "q", 0.0),
        ("sluice_queue_retrying_jobs", "q", 0.0),
        ("sluice_queue_dead_jobs", "q", 0.0),
        ("sluice_queue_consumer_lag_messages", "q", 5.0),
        ("sluice_outbox_oldest_age_seconds", "q", 0.0),
        ("sluice_queue_backlog_jobs", "other", 0.0),
        ("sluice_queue_consumer_lag_messages", "other", 0.0),
        ("sluice_queue_oldest_pending_age_seconds", "other", 0.0),
    ];
    let text = eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let text = client.get(&metrics).send().await.ok()?.text().await.ok()?;
            expected
                .iter()
                .all(|(name, q, want)| gauge(&text, name, q) == Some(*want))
                .then_some(text)
        },
    )
    .await;
    let text = text.unwrap_or_else(|e| panic!("{e}; gauges not as expected"));
    let age = gauge(&text, "sluice_queue_oldest_pending_age_seconds", "q").unwrap();
    assert!(age > 0.0, "{age}");

    let resp = client
        .get(ingest.url("/v1/queues/nope/scaling"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
}
