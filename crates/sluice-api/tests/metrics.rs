//! Request and ingest metrics, rendered by a real Prometheus recorder.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;
use sluice_api::{ingest_app, Health, IngestSettings, IngestState};

/// The value of the sample whose line starts with `name{` and holds every label.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|lab| l.contains(lab)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_count_requests_by_route_template_and_accepted_jobs() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Every metric of this test is recorded on this thread (current_thread runtime).
    let _guard = metrics::set_default_local_recorder(&recorder);
    sluice_api::metrics::describe_metrics();

    let (store, _dir) = open_store().await;
    let settings = IngestSettings {
        queues: queues(),
        ..IngestSettings::default()
    };
    let render = {
        let h = handle.clone();
        Arc::new(move || h.render())
    };
    let state = IngestState::new(
        Arc::new(Ingest(store)),
        settings,
        Health::new(vec![]),
        render,
    )
    .unwrap();
    let app = ingest_app(state);

    let r = post_json(
        &app,
        "/v1/queues/emails/jobs",
        &json!({"payload": {"to": "a"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let batch = json!({"jobs": [{"payload": {"to": "b"}}, {"payload": {"to": "c"}}]});
    assert_eq!(
        post_json(&app, "/v1/queues/emails/jobs/batch", &batch)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(&app, get(&format!("/v1/jobs/{id}"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post_json(&app, "/v1/queues/nope/jobs", &json!({"payload": 1}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // an idempotent replay is not a newly accepted job
    let key = [("idempotency-key", "m-1")];
    for _ in 0..2 {
        let req = post(
            "/v1/queues/plain/jobs",
            json!({"payload": 1}).to_string(),
            &key,
        );
        assert_eq!(send(&app, req).await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(
        send(&app, get("/no/such/route")).await.status,
        StatusCode::NOT_FOUND
    );

    let r = send(&app, get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    let req = "sluice_http_requests_total";
    let jobs_route = r#"route="/v1/queues/{queue}/jobs""#;
    assert_eq!(
        sample(
            &text,
            req,
            &[jobs_route, r#"method="POST""#, r#"status="202""#]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, req, &[jobs_route, r#"status="404""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            req,
            &[
                r#"route="/v1/queues/{queue}/jobs/batch""#,
                r#"status="202""#
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            req,
            &[
                r#"route="/v1/jobs/{id}""#,
                r#"method="GET""#,
                r#"status="200""#
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, req, &[r#"route="unmatched""#, r#"status="404""#]),
        Some(1.0),
        "{text}"
    );
    let dur = "sluice_http_request_duration_seconds_count";
    assert_eq!(
        sample(&text, dur, &[r#"route="/v1/jobs/{id}""#, r#"method="GET""#]),
        Some(1.0),
        "{text}"
    );
    let acc = "sluice_jobs_accepted_total";
    assert_eq!(
        sample(&text, acc, &[r#"queue="emails""#]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, acc, &[r#"queue="plain""#]),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains(&id), "a raw path leaked into a label");
    assert!(
        !text.contains("nope") && !text.contains("/no/such/route"),
        "{text}"
    );
}
