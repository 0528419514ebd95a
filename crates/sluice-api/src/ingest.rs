//! `POST /v1/queues/{queue}/jobs` and `/jobs/batch`: a `202` only after the
//! store has durably accepted every job of the request (or replayed an
//! earlier identical request with the same `Idempotency-Key`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sluice_core::{now_ms, JobId};
use sluice_store::{EnqueueRequest, Enqueued, Idempotency, NewJob, StoreError};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::extract::QueueParam;
use crate::request::{self, JobSpec};
use crate::state::{IngestState, QueueEntry};
use crate::validate::{
    fingerprint, idempotency_key, incoming_traceparent, new_traceparent, require_json,
};
use crate::ApiError;

/// One accepted job in a `202` body.
#[derive(Debug, Serialize)]
struct Accepted {
    id: String,
    queue: String,
    status: &'static str,
    status_url: String,
}

impl Accepted {
    fn new(id: JobId, queue: &str) -> Self {
        Self {
            id: id.to_string(),
            queue: queue.to_string(),
            status: "pending",
            status_url: status_url(id),
        }
    }
}

fn status_url(id: JobId) -> String {
    format!("/v1/jobs/{id}")
}

#[derive(Debug, Serialize)]
struct BatchAccepted {
    jobs: Vec<Accepted>,
}

/// A checked request, ready for the store.
struct Checked {
    jobs: Vec<JobSpec>,
    idempotency: Option<Idempotency>,
    traceparent: String,
}

/// Everything before the store, in the order the errors are reported:
/// unknown queue `404`, content type `415`, `Idempotency-Key` `400`, body
/// size `413`, malformed JSON `400`, invalid fields `422`, schema `422`.
async fn check(
    state: &IngestState,
    queue: &str,
    route: &str,
    req: Request,
    parse: fn(serde_json::Value) -> Result<Vec<JobSpec>, ApiError>,
    traceparent: String,
) -> Result<Checked, ApiError> {
    let entry = state.queue(queue)?;
    let headers = req.headers().clone();
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let limit = state.inner.max_body_bytes;
    let body = Bytes::from_request(req, &())
        .await
        .map_err(|r| ApiError::body_rejected(r, limit))?;
    let jobs = parse(request::parse_json(&body)?)?;
    check_schema(entry, &jobs, route.ends_with("batch"))?;
    let idempotency = key.map(|key| Idempotency {
        scope: format!("{queue}/{route}"),
        key,
        fingerprint: fingerprint(&body),
    });
    Ok(Checked {
        jobs,
        idempotency,
        traceparent,
    })
}

fn single(v: serde_json::Value) -> Result<Vec<JobSpec>, ApiError> {
    request::single(v).map(|j| vec![j])
}

fn check_schema(entry: &QueueEntry, jobs: &[JobSpec], batch: bool) -> Result<(), ApiError> {
    let Some(schema) = &entry.schema else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let (prefix, index) = if batch {
            (format!("/jobs/{i}"), Some(i))
        } else {
            (String::new(), None)
        };
        schema.violations(&job.payload, &prefix, index, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::SchemaViolation(errors))
    }
}

/// Stores the request's jobs atomically; the ids in request order.
async fn store(state: &IngestState, queue: &str, checked: Checked) -> Result<Vec<JobId>, ApiError> {
    let entry = state.queue(queue)?;
    let now = now_ms();
    let count = checked.jobs.len();
    let jobs = checked
        .jobs
        .into_iter()
        .map(|j| NewJob {
            id: JobId::new(),
            queue: queue.to_string(),
            payload: j.payload,
            key: j.key,
            headers: j.headers,
            max_attempts: j.max_attempts.unwrap_or(entry.config.max_attempts),
            available_at: now.saturating_add(j.delay_ms),
            traceparent: Some(checked.traceparent.clone()),
        })
        .collect();
    let request = EnqueueRequest {
        jobs,
        idempotency: checked.idempotency,
    };
    let result = state
        .inner
        .store
        .enqueue(vec![request])
        .await
        .into_iter()
        .next();
    let Enqueued { ids, replayed } = match result {
        Some(r) => r?,
        None => {
            return Err(ApiError::Store(StoreError::Corrupt(
                "enqueue returned no result".into(),
            )))
        }
    };
    if ids.len() != count {
        let msg = format!("enqueue returned {} ids for {count} jobs", ids.len());
        return Err(ApiError::Store(StoreError::Corrupt(msg)));
    }
    Span::current().record("jobs", count as i64);
    if replayed {
        tracing::debug!(queue, jobs = count, "idempotent replay");
    } else {
        crate::metrics::jobs_accepted(queue, count);
        tracing::debug!(queue, jobs = count, "jobs accepted");
    }
    Ok(ids)
}

/// The span of an ingest request, a child of its incoming `traceparent` (or
/// the root of a new trace), and the `traceparent` its jobs are stored with:
/// the span's own, so every later span of the jobs descends from it; without
/// a tracing layer, the incoming one or a fresh one.
fn ingest_span(queue: &str, route: &'static str, headers: &HeaderMap) -> (Span, String) {
    let span = tracing::info_span!(
        "job.ingest",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = route,
        queue,
        jobs = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    let incoming = incoming_traceparent(headers);
    let traceparent = sluice_trace::continue_trace(&span, incoming.as_deref())
        .or(incoming)
        .unwrap_or_else(new_traceparent);
    (span, traceparent)
}

/// A draining process takes no new jobs: `503` with `Retry-After`, so the
/// client retries on another ingest process.
fn refuse_when_draining(state: &IngestState) -> Result<(), ApiError> {
    if state.inner.health.is_draining() {
        return Err(ApiError::NotReady {
            failing: Vec::new(),
            draining: true,
        });
    }
    Ok(())
}

/// `POST /v1/queues/{queue}/jobs`: `202` with the job's id and `Location`.
pub(crate) async fn submit(
    State(state): State<IngestState>,
    QueueParam(queue): QueueParam,
    req: Request,
) -> Result<Response, ApiError> {
    refuse_when_draining(&state)?;
    let (span, tp) = ingest_span(&queue, "/v1/queues/{queue}/jobs", req.headers());
    let ids = async {
        let checked = check(&state, &queue, "jobs", req, single, tp).await?;
        store(&state, &queue, checked).await
    }
    .instrument(span)
    .await?;
    let id = ids[0];
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&status_url(id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(Accepted::new(id, &queue)),
    )
        .into_response())
}

/// `POST /v1/queues/{queue}/jobs/batch`: all jobs or none; `202` with their ids.
pub(crate) async fn submit_batch(
    State(state): State<IngestState>,
    QueueParam(queue): QueueParam,
    req: Request,
) -> Result<Response, ApiError> {
    refuse_when_draining(&state)?;
    let (span, tp) = ingest_span(&queue, "/v1/queues/{queue}/jobs/batch", req.headers());
    let ids = async {
        let checked = check(&state, &queue, "jobs/batch", req, request::batch, tp).await?;
        store(&state, &queue, checked).await
    }
    .instrument(span)
    .await?;
    let jobs = ids
        .into_iter()
        .map(|id| Accepted::new(id, &queue))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(BatchAccepted { jobs })).into_response())
}
