//! sluice's HTTP routers: ingest (`/v1/...`), admin (`/admin/v1/...`, see
//! [`admin`]), health (`/healthz`, `/readyz`) and `/metrics`. Every error is
//! one [`ApiError`], rendered as RFC 9457 `application/problem+json` without
//! internal details.
//!
//! Request bodies that are JSON but not valid requests (missing `payload`,
//! unknown or mistyped fields, out-of-range values, an empty or over-long
//! batch) are `422`, like schema violations; malformed JSON is `400`.
//! `schemas/openapi.yaml` documents the routes and is tested against
//! [`INGEST_ROUTES`].

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub mod admin;
mod error;
mod extract;
mod health;
mod ingest;
mod jobs;
pub mod metrics;
mod problem;
mod request;
pub mod scaling;
mod state;
mod validate;

pub use admin::{admin_app, admin_app_with_health, admin_routes, AdminState};
pub use error::{ApiError, Violation, MAX_LISTED_VIOLATIONS, PROBLEM_JSON};
pub use health::{Health, ReadinessCheck, RenderMetrics, CHECK_TIMEOUT, METRICS_CONTENT_TYPE};
pub use request::{MAX_BATCH_JOBS, MAX_DELAY_SECONDS, MAX_JOB_HEADERS, MAX_KEY_LEN};
pub use scaling::{ConsumerLag, Scaling, ScalingFigures};
pub use state::{IngestQueue, IngestSettings, IngestState, DEFAULT_MAX_BODY_BYTES};
pub use validate::MAX_IDEMPOTENCY_KEY_LEN;

/// Every route of [`ingest_app`] as (method, path template); the OpenAPI
/// document lists exactly these.
pub const INGEST_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/queues/{queue}/jobs"),
    ("POST", "/v1/queues/{queue}/jobs/batch"),
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/queues/{queue}/scaling"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The ingest router: job submission and status, health and metrics, with
/// problem+json fallbacks and request metrics.
pub fn ingest_app(state: IngestState) -> Router {
    let limit = state.inner.max_body_bytes;
    let health = health::HealthState {
        health: state.inner.health.clone(),
        render_metrics: state.inner.render_metrics.clone(),
    };
    let api = Router::new()
        .route("/v1/queues/{queue}/jobs", post(ingest::submit))
        .route("/v1/queues/{queue}/jobs/batch", post(ingest::submit_batch))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/queues/{queue}/scaling", get(scaling::get_scaling))
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit));
    finish(api.merge(health::routes(health)))
}

/// `/healthz`, `/readyz` and `/metrics` alone, for roles without ingest.
pub fn health_app(health: Arc<Health>, render_metrics: RenderMetrics) -> Router {
    finish(health::routes(health::HealthState {
        health,
        render_metrics,
    }))
}

fn finish(router: Router) -> Router {
    router
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
}
