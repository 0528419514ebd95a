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

/// The admin state and router: the admin API behind the token. When it is
/// the process's only listener (`sluice admin` alone), also `/healthz`,
/// `/readyz` and `/metrics` without it, for probes and scrapers; beside a
/// main listener, which serves those, every path needs the token.
pub fn app(
    config: &Config,
    store: Arc<dyn Store>,
    token: &str,
    health: Option<(Arc<Health>, RenderMetrics)>,
) -> (AdminState, axum::Router) {
    let state = AdminState::new(
        store,
        config.queues.clone(),
        token,
        config.admin.max_replays,
    );
    let app = match health {
        Some((health, render)) => sluice_api::admin_app_with_health(state.clone(), health, render),
        None => sluice_api::admin_app(state.clone()),
    };
    (state, app)
}
