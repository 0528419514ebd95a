//! Direct producers on RabbitMQ: a real outside client (Python `pika`, see
//! `tests/python/amqp_produce.py`) publishes CloudEvents in binary mode
//! (`cloudEvents:` and `cloudEvents_` headers) and structured mode, plain
//! JSON, and invalid messages to a sluice queue. Valid ones are processed
//! with their statuses at `GET /v1/jobs/{id}`; invalid ones are dead at once
//! with the reason, and never block the queue.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sluice_core::JobId;
use sluice_tests::brokers::{amqp_url, unique_topic, AmqpCleanup};
use sluice_tests::jobs::{python, run_python};
use sluice_tests::{eventually, Downstream, SluiceProcess};

const TOKEN: &str = "direct-test-token";

fn write_config(dir: &Path, downstream: &str, broker: &str, topic: &str) {
    let schema =
        r#"{"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}"#;
    std::fs::write(dir.join("direct.schema.json"), schema).unwrap();
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "sqlite://./data/sluice.db"
[broker]
url = "{broker}"
[admin]
token = "{TOKEN}"
[[queues]]
name = "direct"
topic = "{topic}"
max_attempts = 3
schema = "direct.schema.json"
backoff = {{ initial_ms = 50, max_ms = 200, multiplier = 2.0 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 2000 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

async fn get(client: &reqwest::Client, url: String, token: Option<&str>) -> Value {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_producer_valid_processed_invalid_dead_with_reason() {
    let (Some(amqp), Some(python)) = (amqp_url(), python()) else {
        return;
    };
    let topic = unique_topic("direct");
    let _cleanup = AmqpCleanup::topics_with_dlq(&amqp, &[&topic]);
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url(), &amqp, &topic);
    let sluice = SluiceProcess::start(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .unwrap();
    let admin = format!("http://{}", sluice.addr_of("admin").unwrap());
    let client = reqwest::Client::new();
    // the topics are declared (and the queues bound) once ready: pika
    // publishes with `mandatory`, so a message before that is returned
    sluice.wait_ready(Duration::from_secs(60)).await.unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/amqp_produce.py");
    let sent = run_python(&python, &script, &[&amqp, &topic]).await;
    assert_eq!(sent.len(), 10, "{sent:?}");

    // The CloudEvents' job ids: the id when a UUID, else derived from
    // source and id.
    let ce_ids: Vec<String> = sent
        .iter()
        .filter(|s| s["ce_id"].is_string())
        .map(|s| {
            let (id, source) = (
                s["ce_id"].as_str().unwrap(),
                s["ce_source"].as_str().unwrap(),
            );
            id.parse::<JobId>()
                .unwrap_or_else(|_| JobId::derived(source, id))
                .to_string()
        })
        .collect();
    assert_eq!(ce_ids.len(), 3);

    // Six jobs reach the downstream (the plain message sent twice with one
    // message id is one job; the one sent twice without is two); three
    // messages are dead.
    let dead: Vec<Value> = eventually(Duration::from_secs(30), Duration::from_millis(300), || {
        let client = client.clone();
        let url = format!("{admin}/admin/v1/dead-letters?queue=direct&limit=50");
        let ds = ds.clone();
        async move {
            let page = get(&client, url, Some(TOKEN)).await;
            let dead = page["dead_letters"].as_array().cloned().unwrap_or_default();
            (dead.len() >= 3 && ds.arrivals().len() >= 6).then_some(dead)
        }
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {} jobs delivered; log:\n{}",
            ds.arrivals().len(),
            sluice.log_text()
        )
    });
    // Let any duplicate show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrivals = ds.arrivals();
    assert_eq!(arrivals.len(), 6, "distinct jobs delivered: {arrivals:?}");
    for id in &ce_ids {
        assert!(
            arrivals.contains_key(id),
            "CloudEvent job {id} not delivered"
        );
    }
    let once: HashMap<&String, usize> = arrivals.iter().map(|(k, v)| (k, v.len())).collect();
    assert!(
        once.values().all(|n| *n == 1),
        "deliveries per job: {once:?}"
    );
    assert_eq!(ds.missing_headers(), 0);
    for id in arrivals.keys() {
        let job = get(&client, sluice.url(&format!("/v1/jobs/{id}")), None).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["queue"], "direct", "{job}");
    }

    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| d["last_error"].as_str().unwrap_or("").to_lowercase())
        .collect();
    for needle in ["json", "\"source\"", "schema"] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "no dead letter says {needle}: {reasons:?}"
        );
    }
    let dead_ids: HashSet<&str> = dead.iter().filter_map(|d| d["id"].as_str()).collect();
    for id in dead_ids {
        let job = get(&client, sluice.url(&format!("/v1/jobs/{id}")), None).await;
        assert_eq!(job["status"], "dead", "{job}");
        assert_eq!(job["attempts"], 1, "dead at once: {job}");
        assert!(
            !job["last_error"].as_str().unwrap_or("").is_empty(),
            "{job}"
        );
        assert!(
            !arrivals.contains_key(id),
            "invalid message {id} reached the handler"
        );
    }
}
