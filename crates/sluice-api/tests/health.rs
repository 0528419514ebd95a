//! `/healthz`, `/readyz` and `/metrics` on the ingest router and on
//! `health_app` alone.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use common::*;
use serde_json::json;
use sluice_api::{health_app, ingest_app, Health, IngestSettings, IngestState, ReadinessCheck};

fn health_only(checks: Vec<Arc<dyn ReadinessCheck>>) -> (Router, Arc<Health>) {
    let health = Health::new(checks);
    (health_app(health.clone(), render_fixed()), health)
}

fn check(name: &'static str, r: Result<(), &str>) -> Arc<dyn ReadinessCheck> {
    Arc::new(Check(name, r.map_err(str::to_string)))
}

#[tokio::test]
async fn healthz_is_200_even_when_not_ready() {
    let (app, health) = health_only(vec![check("store", Err("down"))]);
    health.set_draining();
    let r = send(&app, get("/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_is_200_when_every_check_passes() {
    let (app, health) = health_only(vec![check("store", Ok(())), check("broker", Ok(()))]);
    let r = send(&app, get("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!health.is_draining());
}

#[tokio::test]
async fn readyz_is_503_naming_failing_checks_without_their_errors() {
    let (app, _) = health_only(vec![
        check("store", Ok(())),
        check("broker", Err("dial tcp 10.1.2.3:9092: secret=abc")),
    ]);
    let r = send(&app, get("/readyz")).await;
    let p = assert_problem(&r, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(p["failing_checks"], json!(["broker"]));
    assert_eq!(p["draining"], false);
    assert!(p["detail"].as_str().unwrap().contains("broker"));
    assert!(
        !r.text().contains("secret") && !r.text().contains("10.1.2.3"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn readyz_is_503_when_draining() {
    let (app, health) = health_only(vec![check("store", Ok(()))]);
    assert_eq!(send(&app, get("/readyz")).await.status, StatusCode::OK);
    health.set_draining();
    assert!(health.is_draining());
    let p = assert_problem(
        &send(&app, get("/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(p["draining"], true);
    assert_eq!(p["failing_checks"], json!([]));
    assert!(p["detail"].as_str().unwrap().contains("draining"));
}

#[tokio::test]
async fn metrics_serves_the_render_closure() {
    let (app, _) = health_only(vec![]);
    let r = send(&app, get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(r.text(), "# fixed metrics text\nup 1\n");
}

#[tokio::test]
async fn health_app_has_no_ingest_routes() {
    let (app, _) = health_only(vec![]);
    let p = assert_problem(&send(&app, get("/v1/jobs/x")).await, StatusCode::NOT_FOUND);
    assert_eq!(p["type"], "about:blank");
    assert_problem(
        &send(&app, post("/healthz", "{}", &[])).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
}

#[tokio::test]
async fn ingest_app_shares_health_and_draining() {
    let (store, _dir) = open_store().await;
    let health = Health::new(vec![check("store", Ok(()))]);
    let settings = IngestSettings {
        queues: queues(),
        ..IngestSettings::default()
    };
    let state = IngestState::new(
        Arc::new(Ingest(store)),
        settings,
        health.clone(),
        render_fixed(),
    )
    .unwrap();
    let app = ingest_app(state);
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
    assert_eq!(send(&app, get("/readyz")).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, get("/metrics")).await.text(),
        "# fixed metrics text\nup 1\n"
    );
    health.set_draining();
    assert_problem(
        &send(&app, get("/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
}
