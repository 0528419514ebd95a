//! Shared harness of the router tests: a real SQLite store in a temp dir,
//! request helpers and problem+json assertions.
#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_api::{
    ingest_app, Health, IngestQueue, IngestSettings, IngestState, ReadinessCheck, RenderMetrics,
};
use sluice_core::{JobId, QueueConfig};
use sluice_store::{EnqueueRequest, Enqueued, IngestStore, JobRecord, Store, StoreError};
use tempfile::TempDir;
use tower::ServiceExt;

pub mod admin;

/// `max_attempts` of the `emails` queue (not the global default of 5).
pub const EMAILS_MAX_ATTEMPTS: u32 = 7;

/// The `emails` queue's payload schema.
pub fn email_schema() -> Value {
    json!({
        "type": "object",
        "required": ["to"],
        "properties": {"to": {"type": "string"}, "n": {"type": "integer"}}
    })
}

/// Queues `emails` (with a schema, max_attempts 7) and `plain` (no schema).
pub fn queues() -> Vec<IngestQueue> {
    let mut emails = QueueConfig::named("emails");
    emails.max_attempts = EMAILS_MAX_ATTEMPTS;
    vec![
        IngestQueue {
            config: emails,
            schema: Some(email_schema()),
        },
        IngestQueue {
            config: QueueConfig::named("plain"),
            schema: None,
        },
    ]
}

/// Adapts the whole store to the ingest trait (no trait upcasting needed).
pub struct Ingest(pub Arc<dyn Store>);

#[async_trait]
impl IngestStore for Ingest {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        self.0.enqueue(requests).await
    }
    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.0.get_job(id).await
    }
}

/// An ingest store whose every call fails with the error `make` builds.
pub struct Failing(pub fn() -> StoreError);

#[async_trait]
impl IngestStore for Failing {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        requests.iter().map(|_| Err((self.0)())).collect()
    }
    async fn get_job(&self, _id: JobId) -> Result<JobRecord, StoreError> {
        Err((self.0)())
    }
}

/// A readiness check with a fixed answer.
pub struct Check(pub &'static str, pub Result<(), String>);

#[async_trait]
impl ReadinessCheck for Check {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn check(&self) -> Result<(), String> {
        self.1.clone()
    }
}

pub struct TestApp {
    pub app: Router,
    pub store: Arc<dyn Store>,
    pub health: Arc<Health>,
    _dir: TempDir,
}

pub async fn open_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = sluice_store::open(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    (store, dir)
}

pub fn render_fixed() -> RenderMetrics {
    Arc::new(|| "# fixed metrics text\nup 1\n".to_string())
}

/// The app over a fresh SQLite store with [`queues`] and this body limit.
pub async fn app_with_limit(max_body_bytes: usize) -> TestApp {
    let (store, dir) = open_store().await;
    let health = Health::new(vec![]);
    let settings = IngestSettings {
        max_body_bytes,
        queues: queues(),
    };
    let state = IngestState::new(
        Arc::new(Ingest(store.clone())),
        settings,
        health.clone(),
        render_fixed(),
    )
    .unwrap();
    TestApp {
        app: ingest_app(state),
        store,
        health,
        _dir: dir,
    }
}

pub async fn app() -> TestApp {
    app_with_limit(sluice_api::DEFAULT_MAX_BODY_BYTES).await
}

/// An app whose store always fails with `make()`, plus a real (empty) store
/// to show nothing was stored.
pub fn failing_app(make: fn() -> StoreError) -> Router {
    let settings = IngestSettings {
        max_body_bytes: 1 << 20,
        queues: queues(),
    };
    let state = IngestState::new(
        Arc::new(Failing(make)),
        settings,
        Health::new(vec![]),
        render_fixed(),
    )
    .unwrap();
    ingest_app(state)
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// A POST with a JSON content type and extra headers.
pub fn post(uri: &str, body: impl Into<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub async fn post_json(app: &Router, uri: &str, body: &Value) -> Resp {
    send(app, post(uri, body.to_string(), &[])).await
}

/// Asserts an RFC 9457 problem with this status; returns its body.
pub fn assert_problem(resp: &Resp, status: StatusCode) -> Value {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    let p = resp.json();
    assert_eq!(p["status"], json!(status.as_u16()), "{p}");
    for field in ["type", "title", "detail"] {
        assert!(
            p[field].as_str().is_some_and(|s| !s.is_empty()),
            "problem lacks {field}: {p}"
        );
    }
    p
}

/// Pointers of a problem's `errors`.
pub fn pointers(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {p}"))
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect()
}

/// Jobs stored in every queue and status.
pub async fn total_jobs(store: &Arc<dyn Store>) -> u64 {
    store
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.pending + s.published + s.retrying + s.succeeded + s.dead)
        .sum()
}
