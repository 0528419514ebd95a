//! Dead letters: a filtered, cursor-paginated list in the stable
//! `(died_at, id)` order; one with its whole attempt history; delete.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use sluice_core::format_ms;
use sluice_store::{AttemptRecord, DeadLetter, DeadLetterCursor, DeadLetterFilter, StoreError};

use super::auth::Actor;
use super::params::{self, Query};
use super::{AdminState, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use crate::ApiError;

/// A dead letter as listed; times RFC 3339.
#[derive(Debug, Serialize)]
pub(crate) struct DeadLetterView {
    id: String,
    queue: String,
    payload: Value,
    attempts: u32,
    last_error: String,
    died_at: String,
    replay_count: u32,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        Self {
            id: d.id.to_string(),
            queue: d.queue,
            payload: d.payload,
            attempts: d.attempts,
            last_error: d.last_error,
            died_at: format_ms(d.died_at),
            replay_count: d.replay_count,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Page {
    dead_letters: Vec<DeadLetterView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct AttemptView {
    replay_count: u32,
    attempt: u32,
    started_at: String,
    finished_at: String,
    outcome: String,
    error: Option<String>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(a: AttemptRecord) -> Self {
        Self {
            replay_count: a.replay_count,
            attempt: a.attempt,
            started_at: format_ms(a.started_at),
            finished_at: format_ms(a.finished_at),
            outcome: a.outcome,
            error: a.error,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct DetailView {
    #[serde(flatten)]
    dead_letter: DeadLetterView,
    key: Option<String>,
    max_attempts: u32,
    created_at: String,
    /// Every attempt of every run, oldest first.
    history: Vec<AttemptView>,
}

/// The `queue` / `error_contains` filter of a query string.
pub(crate) fn filter_from(q: &Query) -> Result<DeadLetterFilter, ApiError> {
    Ok(DeadLetterFilter {
        queue: params::queue_filter(q.get("queue"))?,
        error_contains: params::error_filter(q.get("error_contains"))?,
        ids: None,
    })
}

/// `GET /admin/v1/dead-letters?queue=&error_contains=&limit=&cursor=`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    uri: Uri,
) -> Result<Json<Page>, ApiError> {
    let q = Query::parse(uri.query(), &["queue", "error_contains", "limit", "cursor"])?;
    let filter = filter_from(&q)?;
    let limit = q.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let after = q.get("cursor").map(params::decode_cursor).transpose()?;
    // One more than asked tells whether another page follows.
    let mut rows = state
        .store()
        .list_dead_letters(&filter, after, limit + 1)
        .await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|d| {
            params::encode_cursor(DeadLetterCursor {
                died_at: d.died_at,
                id: d.id,
            })
        })
    } else {
        None
    };
    Ok(Json(Page {
        dead_letters: rows.into_iter().map(DeadLetterView::from).collect(),
        next_cursor,
    }))
}

/// `GET /admin/v1/dead-letters/{id}`: the dead letter and its history.
pub(crate) async fn show(
    State(state): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DetailView>, ApiError> {
    let id = params::job_id(id, ApiError::DeadLetterNotFound)?;
    let d = state.store().get_dead_letter(id).await.map_err(not_found)?;
    Ok(Json(DetailView {
        dead_letter: d.dead_letter.into(),
        key: d.key,
        max_attempts: d.max_attempts,
        created_at: format_ms(d.created_at),
        history: d.history.into_iter().map(AttemptView::from).collect(),
    }))
}

/// `DELETE /admin/v1/dead-letters/{id}`: `200 {"id", "deleted": true}`.
pub(crate) async fn delete(
    State(state): State<AdminState>,
    Actor(actor): Actor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = params::job_id(id, ApiError::DeadLetterNotFound)?;
    state
        .store()
        .delete_dead_letter(id)
        .await
        .map_err(not_found)?;
    state
        .audit(
            &actor,
            "delete",
            id.to_string(),
            1,
            json!({ "id": id.to_string() }),
        )
        .await;
    Ok(Json(json!({ "id": id.to_string(), "deleted": true })))
}

/// [`StoreError::NotFound`] as a dead-letter `404`.
pub(crate) fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::DeadLetterNotFound,
        other => other.into(),
    }
}
