//! Liveness (`/healthz`), readiness (`/readyz`) and the Prometheus text
//! endpoint (`/metrics`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::ApiError;

/// Renders the process's metrics as Prometheus text (the binary passes its
/// exporter's `render`).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Content type of `/metrics` (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long one readiness check may take before it counts as failing.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A dependency the process needs to serve (store, broker): `/readyz` is
/// `200` only when every check passes.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Short stable name shown in the `/readyz` problem (e.g. `store`).
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency is reachable; the error is logged, never shown.
    async fn check(&self) -> Result<(), String>;
}

/// Readiness checks plus the draining flag, shared by every router of a process.
pub struct Health {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    draining: AtomicBool,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field(
                "checks",
                &self.checks.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Health {
    /// Not draining, with these checks.
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>) -> Arc<Self> {
        Arc::new(Self {
            checks,
            draining: AtomicBool::new(false),
        })
    }

    /// From now on `/readyz` answers `503` (SIGTERM received); irreversible.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`Health::set_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Runs every check (each bounded by [`CHECK_TIMEOUT`]); the names of the
    /// failing ones, in check order.
    pub async fn failing_checks(&self) -> Vec<String> {
        let mut failing = Vec::new();
        for c in &self.checks {
            let result = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {CHECK_TIMEOUT:?}")),
            };
            if let Err(error) = result {
                tracing::warn!(check = c.name(), %error, "readiness check failed");
                failing.push(c.name().to_string());
            }
        }
        failing
    }
}

/// State of the health routes.
#[derive(Clone)]
pub(crate) struct HealthState {
    pub health: Arc<Health>,
    pub render_metrics: RenderMetrics,
}

/// `/healthz`, `/readyz` and `/metrics`, without fallbacks or layers.
pub(crate) fn routes(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(s): State<HealthState>) -> Result<Json<serde_json::Value>, ApiError> {
    let draining = s.health.is_draining();
    let failing = s.health.failing_checks().await;
    if draining || !failing.is_empty() {
        return Err(ApiError::NotReady { failing, draining });
    }
    Ok(Json(serde_json::json!({ "status": "ready" })))
}

async fn metrics(State(s): State<HealthState>) -> Response {
    let body = (s.render_metrics)();
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(METRICS_CONTENT_TYPE),
    );
    resp
}
