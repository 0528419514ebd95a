//! `POST /admin/v1/dead-letters/replay`: a dry run, or a bulk replay run in
//! the background at a rate (see [`super::runner`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_core::JobId;
use sluice_store::{DeadLetterFilter, NewReplay};

use super::auth::Actor;
use super::dead_letters::DeadLetterView;
use super::params::{self, bad};
use super::replays::idempotency;
use super::{
    runner, AdminState, DRY_RUN_SAMPLE, MAX_LIST_LIMIT, MAX_REPLAY_LIMIT, MAX_REPLAY_RATE,
};
use crate::validate::require_json;
use crate::ApiError;

/// Most ids kept in a replay's displayed request.
const SHOWN_IDS: usize = 20;

/// The bulk replay body; every field is optional.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_contains: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::request::optional_whole",
        skip_serializing_if = "Option::is_none"
    )]
    limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
}

/// A bulk request once checked.
struct Bulk {
    filter: DeadLetterFilter,
    limit: usize,
    rate: Option<f64>,
    dry_run: bool,
}

fn check_bulk(body: &[u8]) -> Result<(Bulk, BulkRequest), ApiError> {
    let value = crate::request::parse_json(body)?;
    let req: BulkRequest = serde_json::from_value(value)
        .map_err(|e| bad(&format!("the body is not a valid replay request: {e}")))?;
    let ids = match &req.ids {
        None => None,
        Some(v) if v.is_empty() || v.len() > MAX_REPLAY_LIMIT => {
            return Err(bad(&format!(
                "ids must hold 1 to {MAX_REPLAY_LIMIT} job ids"
            )))
        }
        Some(v) => {
            let mut ids = Vec::with_capacity(v.len());
            for s in v {
                let id: JobId = s
                    .parse()
                    .map_err(|_| bad(&format!("ids: {s:?} is not a job id")))?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
    };
    let rate = match req.rate_per_second {
        Some(r) if !(r.is_finite() && r > 0.0 && r <= MAX_REPLAY_RATE) => {
            return Err(bad(&format!(
                "rate_per_second must be a number above 0 and at most {MAX_REPLAY_RATE}"
            )))
        }
        r => r,
    };
    let limit = match req.limit {
        None => MAX_REPLAY_LIMIT,
        l => params::check_limit(l, MAX_REPLAY_LIMIT)?,
    };
    let filter = DeadLetterFilter {
        queue: params::queue_filter(req.queue.as_deref())?,
        error_contains: params::error_filter(req.error_contains.as_deref())?,
        ids,
    };
    let dry_run = req.dry_run.unwrap_or(false);
    Ok((
        Bulk {
            filter,
            limit,
            rate,
            dry_run,
        },
        req,
    ))
}

/// `POST /admin/v1/dead-letters/replay`: a dry run (`200 {"matched",
/// "sample"}`, nothing changed) or a background replay (`202 {"replay_id",
/// "matched"}` and `Location`).
pub(crate) async fn bulk(
    State(state): State<AdminState>,
    Actor(actor): Actor,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let body = params::body(body)?;
    let idem = idempotency(&headers, &method, &uri, &body)?;
    let (bulk, request) = check_bulk(&body)?;
    if bulk.dry_run {
        let count = state.store().count_dead_letters(&bulk.filter).await?;
        let sample = state
            .store()
            .list_dead_letters(&bulk.filter, None, DRY_RUN_SAMPLE.min(bulk.limit))
            .await?;
        let sample: Vec<DeadLetterView> = sample.into_iter().map(Into::into).collect();
        let matched = count.min(bulk.limit as u64);
        return Ok(Json(json!({ "matched": matched, "sample": sample })).into_response());
    }
    let ids = snapshot(&state, &bulk.filter, bulk.limit).await?;
    let new = NewReplay {
        id: uuid::Uuid::now_v7(),
        request: shown_request(&request),
        ids,
        rate_per_second: bulk.rate,
        max_replays: state.inner.max_replays,
        idempotency: idem,
        actor: actor.clone(),
    };
    let (record, created) = state.store().create_replay(new).await?;
    if created {
        state
            .audit(
                &actor,
                "replay_bulk",
                record.id.to_string(),
                record.matched,
                json!({ "replay_id": record.id.to_string(), "request": record.request }),
            )
            .await;
        runner::spawn(state.clone(), record.clone());
    }
    let url = format!("/admin/v1/replays/{}", record.id);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&url) {
        headers.insert(header::LOCATION, v);
    }
    let body =
        json!({ "replay_id": record.id.to_string(), "matched": record.matched, "status_url": url });
    Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response())
}

/// The request as kept with the replay, for display: a long `ids` list is
/// replaced by its length (the ids themselves are in the snapshot).
fn shown_request(request: &BulkRequest) -> Value {
    let mut v = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        let long = obj
            .get("ids")
            .and_then(Value::as_array)
            .map(Vec::len)
            .filter(|n| *n > SHOWN_IDS);
        if let Some(n) = long {
            obj.remove("ids");
            obj.insert("ids_count".into(), json!(n));
        }
    }
    v
}

/// The ids of up to `limit` dead letters matching `filter`, in listing order.
async fn snapshot(
    state: &AdminState,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<JobId>, ApiError> {
    let mut ids = Vec::new();
    let mut after = None;
    while ids.len() < limit {
        let want = (limit - ids.len()).min(MAX_LIST_LIMIT);
        let page = state.store().list_dead_letters(filter, after, want).await?;
        let Some(last) = page.last() else { break };
        after = Some(sluice_store::DeadLetterCursor {
            died_at: last.died_at,
            id: last.id,
        });
        let full = page.len() == want;
        ids.extend(page.into_iter().map(|d| d.id));
        if !full {
            break;
        }
    }
    Ok(ids)
}
