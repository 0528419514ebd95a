//! `GET /admin/v1/audit?limit=`: the newest audit entries first.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use sluice_core::format_ms;
use sluice_store::AuditEntry;

use super::params::Query;
use super::{AdminState, MAX_LIST_LIMIT};
use crate::ApiError;

/// Default number of audit entries returned.
const DEFAULT_AUDIT_LIMIT: usize = 100;

#[derive(Debug, Serialize)]
pub(crate) struct AuditView {
    entries: Vec<EntryView>,
}

#[derive(Debug, Serialize)]
struct EntryView {
    at: String,
    actor: String,
    action: String,
    target: String,
    count: u64,
    detail: Value,
}

impl From<AuditEntry> for EntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            at: format_ms(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            count: e.count,
            detail: e.detail,
        }
    }
}

pub(crate) async fn list(
    State(state): State<AdminState>,
    uri: Uri,
) -> Result<Json<AuditView>, ApiError> {
    let q = Query::parse(uri.query(), &["limit"])?;
    let limit = q.limit(DEFAULT_AUDIT_LIMIT, MAX_LIST_LIMIT)?;
    let entries = state.store().list_audit(limit).await?;
    Ok(Json(AuditView {
        entries: entries.into_iter().map(EntryView::from).collect(),
    }))
}
