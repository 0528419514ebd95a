//! `GET /v1/queues/{queue}/scaling`: the figures of a configured queue as
//! flat JSON (the fields `schemas/openapi.yaml` lists), 404 for other queues.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::{json, Value};
use sluice_api::{ingest_app, ConsumerLag, Health, IngestSettings, IngestState, Scaling};

use common::{assert_problem, get, open_store, post_json, queues, render_fixed, send, Ingest};

/// The broker's lag: 7 for `emails`, unknown for the rest.
struct FixedLag;

#[async_trait]
impl ConsumerLag for FixedLag {
    async fn consumer_lag(&self, queue: &str) -> Option<u64> {
        (queue == "emails").then_some(7)
    }
}

fn settings() -> IngestSettings {
    IngestSettings {
        max_body_bytes: 1 << 20,
        queues: queues(),
    }
}

fn openapi_fields() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["components"]["schemas"]["QueueScaling"]["required"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn scaling_figures_of_a_queue() {
    let (store, _dir) = open_store().await;
    let names = vec!["emails".to_string(), "plain".to_string()];
    let scaling =
        Scaling::new(store.clone(), names, Some(Arc::new(FixedLag))).fresh_for(Duration::ZERO);
    let state = IngestState::new(
        Arc::new(Ingest(store.clone())),
        settings(),
        Health::new(vec![]),
        render_fixed(),
    )
    .unwrap()
    .with_scaling(Arc::new(scaling));
    let app = ingest_app(state);
    let job = json!({"payload": {"to": "a@example.com"}});
    let delayed = json!({"payload": {"to": "b@example.com"}, "delay_seconds": 60});
    for body in [&job, &delayed] {
        let resp = post_json(&app, "/v1/queues/emails/jobs", body).await;
        assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    }

    let resp = send(&app, get("/v1/queues/emails/scaling")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    let fields: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(fields, openapi_fields());
    let age = body["oldest_pending_age_seconds"].as_f64().unwrap();
    let relay = body["relay_lag_seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&age), "{body}");
    assert_eq!(age, relay, "the due job is the oldest outbox row: {body}");
    let mut counts = body.clone();
    for f in ["oldest_pending_age_seconds", "relay_lag_seconds"] {
        counts.as_object_mut().unwrap().remove(f);
    }
    assert_eq!(
        counts,
        json!({"queue": "emails", "backlog": 1, "pending": 2, "published": 0,
               "in_flight": 0, "retrying": 0, "dead": 0, "consumer_lag": 7})
    );

    let resp = send(&app, get("/v1/queues/plain/scaling")).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.json(),
        json!({"queue": "plain", "backlog": 0, "pending": 0, "published": 0,
               "in_flight": 0, "retrying": 0, "dead": 0,
               "oldest_pending_age_seconds": 0.0, "relay_lag_seconds": 0.0,
               "consumer_lag": Value::Null})
    );

    let resp = send(&app, get("/v1/queues/nope/scaling")).await;
    assert_problem(&resp, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn scaling_without_figures_is_unavailable_and_unknown_queue_404() {
    let (store, _dir) = open_store().await;
    let state = IngestState::new(
        Arc::new(Ingest(store)),
        settings(),
        Health::new(vec![]),
        render_fixed(),
    )
    .unwrap();
    let app = ingest_app(state);
    let resp = send(&app, get("/v1/queues/nope/scaling")).await;
    assert_problem(&resp, StatusCode::NOT_FOUND);
    let resp = send(&app, get("/v1/queues/emails/scaling")).await;
    assert_problem(&resp, StatusCode::SERVICE_UNAVAILABLE);
}
