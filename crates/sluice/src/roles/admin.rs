//! The admin role: its token and its router (admin API plus health).

use std::sync::Arc;

use sluice_api::{AdminState, Health, RenderMetrics};
use sluice_store::Store;

use crate::admin_token;
use crate::config::Config;

/// The admin token (configured, read or generated), its source logged.
pub fn token(config: &Config) -> anyhow::Result<String> {
    let (token, source) = admin_token::resolve(config.admin.token.as_deref(), &config.data_dir)?;
    admin_token::log_source(&source);
    Ok(token)
}

/// The admin state and router: the admin API behind the token, and
/// `/healthz`, `/readyz`, `/metrics` without it.
pub fn app(
    config: &Config,
    store: Arc<dyn Store>,
    token: &str,
    health: Arc<Health>,
    render: RenderMetrics,
) -> (AdminState, axum::Router) {
    let state = AdminState::new(
        store,
        config.queues.clone(),
        token,
        config.admin.max_replays,
    );
    let app = sluice_api::admin_app_with_health(state.clone(), health, render);
    (state, app)
}
