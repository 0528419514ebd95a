//! The admin route table and the router built from it.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

use super::auth::{self, AuthState};
use super::{audit, bulk, dead_letters, queues, replays, AdminState, MAX_ADMIN_BODY_BYTES};
use crate::health::{self, Health, HealthState, RenderMetrics};

/// Every admin route as (method, path template, handler). [`admin_app`]
/// is built from exactly this table, so tests can enumerate it.
pub fn admin_routes() -> Vec<(Method, &'static str, MethodRouter<AdminState>)> {
    vec![
        (Method::GET, "/admin/v1/queues", get(queues::list)),
        (
            Method::POST,
            "/admin/v1/queues/{queue}/pause",
            post(queues::pause),
        ),
        (
            Method::POST,
            "/admin/v1/queues/{queue}/resume",
            post(queues::resume),
        ),
        (
            Method::GET,
            "/admin/v1/dead-letters",
            get(dead_letters::list),
        ),
        (
            Method::POST,
            "/admin/v1/dead-letters/replay",
            post(bulk::bulk),
        ),
        (
            Method::GET,
            "/admin/v1/dead-letters/{id}",
            get(dead_letters::show),
        ),
        (
            Method::DELETE,
            "/admin/v1/dead-letters/{id}",
            delete(dead_letters::delete),
        ),
        (
            Method::POST,
            "/admin/v1/dead-letters/{id}/replay",
            post(replays::single),
        ),
        (Method::GET, "/admin/v1/replays/{id}", get(replays::get)),
        (Method::GET, "/admin/v1/audit", get(audit::list)),
    ]
}

/// The admin router: every route of [`admin_routes`], all of them (and
/// every unknown path) behind the bearer token, with problem+json
/// fallbacks and request metrics.
pub fn admin_app(state: AdminState) -> Router {
    build(state, None)
}

/// [`admin_app`] plus `/healthz`, `/readyz` and `/metrics`, which need no
/// token (for a process running the admin role alone).
pub fn admin_app_with_health(
    state: AdminState,
    health: Arc<Health>,
    render_metrics: RenderMetrics,
) -> Router {
    build(
        state,
        Some(HealthState {
            health,
            render_metrics,
        }),
    )
}

fn build(state: AdminState, health: Option<HealthState>) -> Router {
    let auth = AuthState {
        admin: state.clone(),
        public_health: health.is_some(),
    };
    let mut router = Router::new();
    for (_, path, handler) in admin_routes() {
        router = router.route(path, handler);
    }
    let mut router = router
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES));
    if let Some(h) = health {
        router = router.merge(health::routes(h));
    }
    // The fallbacks come before the token layer, so unknown paths need the
    // token too (a caller without it learns nothing about the routes).
    router
        .fallback(crate::error::route_not_found)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track))
}
