//! Replays of one dead letter (inline) and replay progress; bulk replays
//! are in [`super::bulk`]. Both replay routes honour `Idempotency-Key`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use sluice_core::{format_ms, JobId};
use sluice_store::{Idempotency, NewReplay, ReplayRecord, ReplaySkip, StoreError};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::auth::Actor;
use super::params;
use super::{runner, AdminState};
use crate::validate::{fingerprint, idempotency_key, incoming_traceparent};
use crate::ApiError;

/// Idempotency scope of the admin replay routes.
pub(crate) const SCOPE: &str = "admin/replay";

/// The idempotency record of a request: its key and a fingerprint of
/// method, path and body.
pub(crate) fn idempotency(
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<Option<Idempotency>, ApiError> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok(None);
    };
    let mut bytes = format!("{method} {}\n", uri.path()).into_bytes();
    bytes.extend_from_slice(body);
    Ok(Some(Idempotency {
        scope: SCOPE.to_string(),
        key,
        fingerprint: fingerprint(&bytes),
    }))
}

/// `POST /admin/v1/dead-letters/{id}/replay`: replays one dead letter now;
/// `202 {"id", "status": "pending", "replay_count"}`, `404` when it is not
/// a dead letter, `409` when it reached `max_replays`.
pub(crate) async fn single(
    State(state): State<AdminState>,
    Actor(actor): Actor,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = params::job_id(id, ApiError::DeadLetterNotFound)?;
    let body = params::body(body)?;
    let idem = idempotency(&headers, &method, &uri, &body)?;
    let span = replay_span(&state, id, &headers).await;
    replay_one(state, actor, id, idem).instrument(span).await
}

/// The span of a replay: a child of the job's stored trace context, so it
/// sits in the job's trace beside its attempts, and linked to the operator's
/// request when that carried a `traceparent`.
async fn replay_span(state: &AdminState, id: JobId, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        "job.replay",
        otel.kind = "server",
        job_id = %id,
        replay_count = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    let job = state.store().get_job(id).await.ok();
    sluice_trace::continue_trace(&span, job.and_then(|j| j.traceparent).as_deref());
    if let Some(tp) = incoming_traceparent(headers) {
        sluice_trace::link(&span, &tp);
    }
    span
}

async fn replay_one(
    state: AdminState,
    actor: String,
    id: JobId,
    idem: Option<Idempotency>,
) -> Result<Response, ApiError> {
    let max = state.inner.max_replays;
    if idem.is_none() {
        // Refuse before recording anything when the outcome is known.
        let d = state
            .store()
            .get_dead_letter(id)
            .await
            .map_err(super::dead_letters::not_found)?;
        refuse_over_limit(id, d.dead_letter.replay_count, max)?;
    }
    let new = NewReplay {
        id: uuid::Uuid::now_v7(),
        request: json!({ "ids": [id.to_string()] }),
        ids: vec![id],
        rate_per_second: None,
        max_replays: max,
        idempotency: idem,
        actor: actor.clone(),
    };
    let (record, created) = state.store().create_replay(new).await?;
    if !created {
        return repeat(&state, id, &record).await;
    }
    // Through the snapshot: a supervisor that resumes this replay should
    // this process stall or die now finds the entry taken.
    let results = match state
        .store()
        .replay_from_snapshot(record.id, 0, 1, max)
        .await
    {
        Ok(results) => results,
        Err(e) => {
            let _ = state
                .store()
                .update_replay(record.id, 0, Some("failed"))
                .await;
            return Err(e.into());
        }
    };
    runner::count_outcomes(&results);
    let outcome = results
        .into_iter()
        .next()
        .map_or(Err(ReplaySkip::NotDead), |(_, r)| r);
    state
        .store()
        .update_replay(record.id, 1, Some("completed"))
        .await?;
    match outcome {
        Ok(()) => {
            let job = state.store().get_job(id).await?;
            Span::current().record("replay_count", i64::from(job.replay_count));
            tracing::info!(job_id = %id, replay_count = job.replay_count, "dead letter replayed");
            state
                .audit(
                    &actor,
                    "replay",
                    id.to_string(),
                    1,
                    json!({ "replay_id": record.id.to_string(), "replay_count": job.replay_count }),
                )
                .await;
            Ok(accepted(id, job.replay_count))
        }
        Err(ReplaySkip::NotDead) => Err(ApiError::DeadLetterNotFound),
        Err(ReplaySkip::LimitReached(n)) => Err(limit_reached(id, n, max)),
        Err(ReplaySkip::Taken) => Err(ApiError::ReplayRefused(
            "this request was stalled and resumed by another process; see the replay".into(),
        )),
    }
}

/// The answer to a request repeated with its `Idempotency-Key`: the same
/// outcome, nothing replayed again.
async fn repeat(
    state: &AdminState,
    id: JobId,
    earlier: &ReplayRecord,
) -> Result<Response, ApiError> {
    if earlier.finished_at.is_none() {
        return Err(ApiError::ReplayRefused(
            "a request with this Idempotency-Key is still in progress".into(),
        ));
    }
    if earlier.status == "failed" {
        return Err(ApiError::ReplayRefused(
            "the first request with this Idempotency-Key failed; retry with a new key".into(),
        ));
    }
    // The job's replay count now (the same as then unless replayed since).
    if earlier.replayed > 0 {
        let job = state.store().get_job(id).await?;
        return Ok(accepted(id, job.replay_count));
    }
    match state.store().get_dead_letter(id).await {
        Ok(d) => refuse_over_limit(id, d.dead_letter.replay_count, earlier.max_replays)
            .and(Err(ApiError::DeadLetterNotFound)),
        Err(StoreError::NotFound) => Err(ApiError::DeadLetterNotFound),
        Err(e) => Err(e.into()),
    }
}

fn accepted(id: JobId, replay_count: u32) -> Response {
    let body = json!({ "id": id.to_string(), "status": "pending", "replay_count": replay_count });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn refuse_over_limit(id: JobId, replay_count: u32, max: u32) -> Result<(), ApiError> {
    if replay_count >= max {
        Err(limit_reached(id, replay_count, max))
    } else {
        Ok(())
    }
}

fn limit_reached(id: JobId, n: u32, max: u32) -> ApiError {
    ApiError::ReplayRefused(format!(
        "job {id} was already replayed {n} time(s); the limit is max_replays = {max}"
    ))
}

/// A replay's progress; times RFC 3339.
#[derive(Debug, Serialize)]
pub(crate) struct ReplayView {
    id: String,
    status: String,
    matched: u64,
    replayed: u64,
    skipped: u64,
    position: u64,
    rate_per_second: Option<f64>,
    max_replays: u32,
    request: Value,
    created_at: String,
    updated_at: String,
    finished_at: Option<String>,
}

impl From<ReplayRecord> for ReplayView {
    fn from(r: ReplayRecord) -> Self {
        Self {
            id: r.id.to_string(),
            status: r.status,
            matched: r.matched,
            replayed: r.replayed,
            skipped: r.skipped,
            position: r.position,
            rate_per_second: r.rate_per_second,
            max_replays: r.max_replays,
            request: r.request,
            created_at: format_ms(r.created_at),
            updated_at: format_ms(r.updated_at),
            finished_at: r.finished_at.map(format_ms),
        }
    }
}

/// `GET /admin/v1/replays/{id}`.
pub(crate) async fn get(
    State(state): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ReplayView>, ApiError> {
    let id = params::replay_id(id)?;
    match state.store().get_replay(id).await {
        Ok(r) => Ok(Json(r.into())),
        Err(StoreError::NotFound) => Err(ApiError::ReplayNotFound),
        Err(e) => Err(e.into()),
    }
}
