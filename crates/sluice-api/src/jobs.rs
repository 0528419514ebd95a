//! `GET /v1/jobs/{id}`: a job's public status.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use sluice_core::{format_ms, JobId};

use crate::state::IngestState;
use crate::ApiError;

/// The status body; times are RFC 3339.
#[derive(Debug, Serialize)]
pub(crate) struct JobView {
    id: String,
    queue: String,
    status: &'static str,
    attempts: u32,
    max_attempts: u32,
    key: Option<String>,
    created_at: String,
    updated_at: String,
    last_error: Option<String>,
}

/// `200` with the job, or a `404` problem for unknown and malformed ids.
pub(crate) async fn get_job(
    State(state): State<IngestState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    // A path segment that does not decode cannot name a job either.
    let id: JobId = id
        .ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or(ApiError::JobNotFound)?;
    let job = state.inner.store.get_job(id).await?;
    Ok(Json(JobView {
        id: job.id.to_string(),
        queue: job.queue,
        status: job.status.as_str(),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        key: job.key,
        created_at: format_ms(job.created_at),
        updated_at: format_ms(job.updated_at),
        last_error: job.last_error,
    }))
}
