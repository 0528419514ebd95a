//! One trace from the POST to the downstream through the real binary: the
//! ingest span, each worker attempt and each downstream request share the
//! caller's trace id, on the embedded default and on PostgreSQL + RabbitMQ.
//! Spans are exported over OTLP/HTTP to a collector in the test (the
//! in-memory exporter's equivalent across processes), with a batch delay
//! so long that only the flush at SIGTERM delivers them.

use std::time::Duration;

use serde_json::Value;
use sluice_tests::brokers::{amqp_url, unique_topic, AmqpCleanup};
use sluice_tests::collector::{CollectedSpan, Collector};
use sluice_tests::jobs::job_status;
use sluice_tests::pg::{server_url, TempDb};
use sluice_tests::{eventually, Downstream, Mode, SluiceProcess};

/// The caller's trace context (a fixed trace id per test).
fn caller_traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-00f067aa0ba902b7-01")
}

fn write_config(dir: &std::path::Path, store: &str, broker: &str, topic: &str, ds: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[http]
admin_listen = "127.0.0.1:0"
[store]
url = "{store}"
[broker]
url = "{broker}"
[[queues]]
name = "traced"
topic = "{topic}"
max_attempts = 3
backoff = {{ initial_ms = 50, max_ms = 100, multiplier = 2.0, jitter = "full" }}
handler = {{ type = "http", url = "{ds}", timeout_ms = 3000 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

fn named<'a>(spans: &'a [CollectedSpan], name: &str) -> Vec<&'a CollectedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

async fn one_trace(store: &str, broker: &str, topic: &str, trace_id: &str) {
    let collector = Collector::start().await.unwrap();
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), store, broker, topic, &ds.url());
    let endpoint = collector.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ];
    let mut sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &env).unwrap();
    let client = reqwest::Client::new();
    let incoming = caller_traceparent(trace_id);
    let r = client
        .post(sluice.url("/v1/queues/traced/jobs"))
        .header("traceparent", &incoming)
        .json(&serde_json::json!({ "payload": Mode::FailTimes(1).payload(0) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = sluice.url("");
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            (job_status(&client, &base, &id).await.as_deref() == Some("succeeded")).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("job {id} did not succeed: {e}\n{}", sluice.log_text()));

    // SIGTERM: the drain ends with the batched spans flushed to the collector.
    let code = sluice.terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(code, Some(0), "{}", sluice.log_text());
    let spans = collector.trace(trace_id);

    let ingest = named(&spans, "job.ingest");
    assert_eq!(
        ingest.len(),
        1,
        "one ingest span: {spans:#?}\n{}",
        sluice.log_text()
    );
    let ingest = ingest[0];
    assert_eq!(
        ingest.parent_span_id, "00f067aa0ba902b7",
        "child of the caller"
    );
    assert_eq!(
        (ingest.service.as_str(), ingest.role.as_str()),
        ("sluice", "serve")
    );

    let attempts = named(&spans, "job.attempt");
    assert_eq!(
        attempts.len(),
        2,
        "a failed attempt and a retry: {spans:#?}"
    );
    for a in &attempts {
        assert_eq!(
            a.parent_span_id, ingest.span_id,
            "attempts descend from ingest"
        );
    }
    let requests = named(&spans, "downstream.request");
    assert_eq!(requests.len(), 2, "{spans:#?}");
    for r in &requests {
        assert!(
            attempts.iter().any(|a| a.span_id == r.parent_span_id),
            "a downstream request outside the attempts: {r:?}"
        );
    }

    // the span's ids are its own; the log-line fields holding them are not
    // exported again as attributes
    for s in &spans {
        for field in ["trace_id", "span_id"] {
            assert!(
                !s.attributes.iter().any(|k| k == field),
                "{} exports a {field} attribute: {:?}",
                s.name,
                s.attributes
            );
        }
    }
    assert!(
        attempts
            .iter()
            .all(|a| a.attributes.iter().any(|k| k == "job_id")),
        "other fields are still exported: {attempts:#?}"
    );

    // the downstream received that same trace, as the request spans' children
    let arrivals = ds.arrivals().remove(&id).expect("deliveries");
    assert_eq!(arrivals.len(), 2);
    for a in &arrivals {
        let tp = a.traceparent.as_deref().expect("a traceparent header");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts[1], trace_id, "downstream traceparent {tp}");
        assert!(
            requests.iter().any(|r| r.span_id == parts[2]),
            "downstream parent {} is no exported request span",
            parts[2]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_embedded_one_trace_from_post_to_downstream() {
    one_trace(
        "sqlite://./data/sluice.db",
        "embedded://./data/broker?poll_interval_ms=50",
        "sluice.traced",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_amqp_one_trace_from_post_to_downstream() {
    let (Some(server), Some(amqp)) = (server_url(), amqp_url()) else {
        return;
    };
    let db = TempDb::create(&server).await.unwrap();
    let topic = unique_topic("trace");
    let _cleanup = AmqpCleanup::topics_with_dlq(&amqp, &[&topic]);
    one_trace(&db.url, &amqp, &topic, "0af7651916cd43dd8448eb211c80319c").await;
}
